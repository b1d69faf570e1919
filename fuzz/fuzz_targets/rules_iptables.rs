//! The iptables-save importer on arbitrary bytes and on lines built from
//! its own vocabulary (so the fuzzer reaches chains, jumps, RETURN
//! negation, set expansion and target options).
//!
//! Invariants, as for the scenario parser: no panic; a refusal is located
//! (line and column >= 1, the line within the text, a non-empty message
//! and a list of what is supported); an accepted file is accepted again
//! identically, and the engine either builds from it or refuses it with a
//! ConfigError (never a panic).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use natsim_nat::{Behaviour, IfaceId, NatConfig, NatEngine, Role};
use std::net::Ipv4Addr;

const WORDS: [&str; 47] = [
    "-A", "PREROUTING", "POSTROUTING", "FORWARD", "INPUT", "DOCKER", "-i", "-o", "!", "eth0", "docker0",
    "-s", "-d", "10.0.0.0/8", "172.17.0.2/32", "-p", "tcp", "udp", "-m", "conntrack", "--ctstate",
    "RELATED,ESTABLISHED", "DNAT", "--dport", "80", "8080:8090", "-j", "MASQUERADE", "SNAT",
    "--to-source", "203.0.113.1", "--to-destination", "172.17.0.2:80", "RETURN", "ACCEPT", "DROP",
    "REJECT", "addrtype", "--dst-type", "LOCAL", "set", "--match-set", "s", "src", "--random",
    "--random-fully", "--to-ports",
];

#[derive(Arbitrary, Debug)]
enum Input {
    Raw(Vec<u8>),
    Lines { nat: Vec<Vec<u8>>, filter: Vec<Vec<u8>>, set: Vec<u8> },
}

fn render(lines: &[Vec<u8>]) -> String {
    lines.iter().take(24).map(|l| {
        l.iter().take(14).map(|w| WORDS[usize::from(*w) % WORDS.len()]).collect::<Vec<_>>().join(" ")
    }).collect::<Vec<_>>().join("\n")
}

fn check(src: &str, sets: Option<&str>) {
    let sets = sets.map(|s| ("sets", s));
    match natsim_import::import("fuzz.rules", src, sets) {
        Err(e) => {
            assert!(e.loc.line >= 1 && e.loc.col >= 1, "unlocated: {e}");
            if e.file == "fuzz.rules" {
                assert!(e.loc.line <= src.lines().count().max(1), "line past the end: {e}");
            }
            assert!(!e.message.is_empty() && !e.supported.is_empty(), "{e}");
        }
        Ok(imp) => {
            let again = natsim_import::import("fuzz.rules", src, sets).expect("accepted once, accepted again");
            assert_eq!(imp, again);
            // Rules name interfaces by index into `ifaces`: give the engine
            // that many interfaces.
            let n = imp.ifaces.len();
            let mut cfg = NatConfig::new(Behaviour::linux());
            for k in 0..n.max(1) {
                cfg = cfg.interface(IfaceId(k as u16), Ipv4Addr::new(10, k as u8, 0, 1), 24, if k == 0 { Role::Outside } else { Role::Inside });
            }
            cfg.rules = imp.rules;
            cfg.filter = imp.filter;
            let _ = NatEngine::new(cfg);
        }
    }
}

fuzz_target!(|input: Input| {
    match input {
        Input::Raw(b) => {
            if let Ok(s) = std::str::from_utf8(&b) {
                check(s, None);
            }
        }
        Input::Lines { nat, filter, set } => {
            let src = format!(
                "*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n:DOCKER - [0:0]\n{}\nCOMMIT\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:DOCKER - [0:0]\n{}\nCOMMIT\n",
                render(&nat),
                render(&filter)
            );
            let sets = format!("create s hash:net family inet\nadd s 10.{}.0.0/16\n", set.first().copied().unwrap_or(0));
            check(&src, Some(&sets));
        }
    }
});
