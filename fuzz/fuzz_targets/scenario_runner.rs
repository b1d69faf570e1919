//! Loads *and runs* small generated scenarios: a NAT router between a LAN
//! (hosts and a host group) and the Internet (services), forwards,
//! profiles, a patch variant, and up to five steps of any probe, each
//! bounded by a short `duration` so one input costs milliseconds of wall
//! time however long its virtual time.
//!
//! Invariants: no panic while loading or running; every step's `actual`
//! says something; the same file run twice gives byte-identical results
//! (the simulator is seeded, its maps ordered).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use natsim_scenario::report::{json, JsonLevel, Suite};
use natsim_scenario::{load_str, run_variant};

#[derive(Arbitrary, Debug)]
struct Service {
    /// Which of the Internet hosts offers it.
    on: u8,
    kind: u8,
    port: u8,
}

#[derive(Arbitrary, Debug)]
struct StepIn {
    action: u8,
    from: u8,
    to: u8,
    port: u8,
    source_port: Option<u16>,
    expect: u8,
    negate: bool,
    background: bool,
    millis: u16,
}

#[derive(Arbitrary, Debug)]
struct Input {
    profile: u8,
    hairpin: bool,
    lan_hosts: u8,
    group: u8,
    wan_hosts: u8,
    lan_listen: Vec<(u8, u8)>,
    services: Vec<Service>,
    forwards: Vec<(bool, u8, u8)>,
    steps: Vec<StepIn>,
    patch: u8,
}

const PROFILES: [&str; 6] = ["linux", "rfc-recommended", "full-cone", "restricted-cone", "port-restricted-cone", "symmetric"];
const PORTS: [u16; 6] = [80, 443, 25, 21, 3478, 8080];
const ACTIONS: [&str; 8] = ["tcp-connect", "udp-send", "ping", "http-get", "nat-table", "wait", "nat-type", "ftp-get"];
/// Expectations that load for each action (others are the parser's).
fn expects(action: &str) -> &'static [&'static str] {
    match action {
        "tcp-connect" => &["connected", "refused", "timed-out", "trace dropped-by-nat-filter", "trace-step translated"],
        "udp-send" => &["replied", "no-reply", "icmp port-unreachable", "trace-step translated"],
        "ping" => &["replied", "no-reply", "trace answered-by-nat"],
        "http-get" => &["status 200", "timed-out", "refused"],
        "ftp-get" => &["anything", "trace-step alg-rewrote"],
        "nat-type" => &["mapping endpoint-independent", "filtering address-and-port-dependent", "anything"],
        _ => &["anything"],
    }
}

fn render(i: &Input) -> String {
    let lan = 1 + usize::from(i.lan_hosts % 3);
    let wan = 1 + usize::from(i.wan_hosts % 3);
    let group = usize::from(i.group % 4);
    let mut t = String::from("title = \"fuzz run\"\nseed = 5\n[[segment]]\nname = \"lan\"\n[[segment]]\nname = \"net\"\n");
    t += "[[router]]\nname = \"r\"\ninterfaces = [ { name = \"in0\", segment = \"lan\", address = \"10.0.0.1/24\", role = \"inside\" }, { name = \"out0\", segment = \"net\", address = \"203.0.113.1/24\", role = \"outside\" } ]\n";
    t += &format!(
        "[router.nat]\nprofile = \"{}\"\nhairpin = \"{}\"\nmasquerade = [\"out0\"]\nforwards = [",
        PROFILES[usize::from(i.profile) % PROFILES.len()],
        if i.hairpin { "on" } else { "off" }
    );
    for (k, (udp, port, to)) in i.forwards.iter().take(3).enumerate() {
        t += &format!(
            "{{ name = \"f{k}\", proto = \"{}\", port = {}, to = \"10.0.0.{}\" }},",
            if *udp { "udp" } else { "tcp" },
            PORTS[usize::from(*port) % PORTS.len()],
            10 + usize::from(*to) % lan
        );
    }
    t += "]\n";
    for h in 0..lan {
        t += &format!("[[host]]\nname = \"l{h}\"\nsegment = \"lan\"\naddress = \"10.0.0.{}/24\"\ngateway = \"10.0.0.1\"\n", 10 + h);
        let listen: Vec<String> = i
            .lan_listen
            .iter()
            .filter(|(on, _)| usize::from(*on) % lan == h)
            .take(2)
            .map(|(_, p)| format!("\"tcp/{}\"", PORTS[usize::from(*p) % PORTS.len()]))
            .collect();
        if !listen.is_empty() {
            t += &format!("listen = [{}]\n", listen.join(", "));
        }
    }
    if group > 0 {
        t += &format!("[[host_group]]\nname = \"g\"\ncount = {group}\nsegment = \"lan\"\naddress = \"10.0.0.100/24\"\ngateway = \"10.0.0.1\"\n");
    }
    for h in 0..wan {
        t += &format!("[[host]]\nname = \"w{h}\"\nsegment = \"net\"\naddress = \"203.0.113.{}/24\"\n", 10 + h);
        let mine: Vec<&Service> = i.services.iter().filter(|s| usize::from(s.on) % wan == h).take(3).collect();
        // Keys first: after a [host.x] header, keys belong to that table.
        let (mut keys, mut tables) = (Vec::new(), Vec::new());
        let mut listen = Vec::new();
        for s in mine {
            match s.kind % 4 {
                0 => tables.push("[host.http_server]\npages = { \"/\" = \"hello\" }\n"),
                1 => keys.push("udp_echo = [3478, 3479]\n".to_string()),
                2 => tables.push("[host.ftp_server]\nfiles = { \"a.txt\" = 3000 }\n"),
                _ => listen.push(format!("\"udp/{}\"", PORTS[usize::from(s.port) % PORTS.len()])),
            }
        }
        if !listen.is_empty() {
            keys.push(format!("listen = [{}]\n", listen.join(", ")));
        }
        keys.dedup();
        tables.dedup();
        t += &keys.concat();
        t += &tables.concat();
    }
    let froms: Vec<String> = (0..lan)
        .map(|h| format!("l{h}"))
        .chain((0..group).map(|k| format!("g[{k}]")))
        .chain((group > 0).then(|| "g[*]".to_string()))
        .chain((0..wan).map(|h| format!("w{h}")))
        .collect();
    let tos: Vec<String> = (0..wan)
        .map(|h| format!("203.0.113.{}", 10 + h))
        .chain(["203.0.113.1".to_string(), "10.0.0.10".to_string()])
        .collect();
    for (k, s) in i.steps.iter().take(5).enumerate() {
        let action = ACTIONS[usize::from(s.action) % ACTIONS.len()];
        let choices = expects(action);
        let expect = choices[usize::from(s.expect) % choices.len()];
        let expect = if s.negate { format!("not {expect}") } else { expect.to_string() };
        t += &format!(
            "[[step]]\nname = \"s{k}\"\naction = \"{action}\"\nduration = \"{}ms\"\nexpect = \"{expect}\"\n",
            1 + u32::from(s.millis) % 8000
        );
        if s.background {
            t += "background = true\n";
        }
        let from = &froms[usize::from(s.from) % froms.len()];
        let to = &tos[usize::from(s.to) % tos.len()];
        match action {
            "tcp-connect" | "udp-send" => {
                t += &format!("from = \"{from}\"\nto = \"{to}\"\nport = {}\n", PORTS[usize::from(s.port) % PORTS.len()]);
                if let Some(p) = s.source_port {
                    t += &format!("source_port = {}\n", 1024 + p % 60000);
                }
            }
            "ping" | "http-get" => t += &format!("from = \"{from}\"\nto = \"{to}\"\n"),
            "ftp-get" => t += &format!("from = \"{from}\"\nto = \"{to}\"\nfile = \"a.txt\"\n"),
            "nat-table" => t += "router = \"r\"\n",
            "nat-type" => t += &format!("from = \"{from}\"\nservers = [\"w0\", \"w{}\"]\n", (wan - 1).min(1)),
            _ => {}
        }
    }
    match i.patch % 3 {
        0 => {}
        1 => t += "[[variant]]\nname = \"hairpin-flip\"\nset = { \"r.nat.hairpin\" = \"on\" }\n",
        _ => t += "[[variant]]\nname = \"no-first-forward\"\nremove = [\"r.nat.forwards.f0\"]\n",
    }
    t
}

fuzz_target!(|input: Input| {
    let src = render(&input);
    // Generated files may still be refused (a lint, a patch naming
    // nothing): the parser target covers those; here only runs count.
    let l = match load_str("run.toml", &src) {
        Ok(l) => l,
        Err(p) => {
            // NATSIM_FUZZ_SHOW=1: why generated files are refused (to keep
            // the generator reaching the runner).
            if std::env::var_os("NATSIM_FUZZ_SHOW").is_some() {
                eprintln!("refused: {}", p[0]);
            }
            return;
        }
    };
    let run = || {
        let results: Vec<_> = l
            .variants()
            .into_iter()
            .filter_map(|v| run_variant(&l, v, None, true).ok())
            .collect();
        for r in &results {
            for s in &r.steps {
                assert!(!s.actual.is_empty(), "step {} says nothing", s.name);
            }
        }
        let pcaps: Vec<_> = results.iter().map(|r| r.pcaps.clone()).collect();
        (json(&Suite::from_results(results), JsonLevel::Frames), pcaps)
    };
    let first = run();
    let second = run();
    assert!(first == second, "the same file ran differently twice:\n{src}");
});
