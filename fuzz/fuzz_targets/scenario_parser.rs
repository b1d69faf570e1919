//! The scenario parser on arbitrary bytes and on structured TOML built
//! from arbitrary fields (so the fuzzer reaches semantic validation).
//!
//! Invariants: no panic; every rejected file gets located problems (line
//! and column ≥ 1 within the text, a non-empty message); an accepted file
//! is accepted again (validation is deterministic).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use natsim_scenario::load_str;

#[derive(Arbitrary, Debug)]
struct Node {
    name: String,
    segment: u8,
    a: u8,
    len: u8,
    gw: Option<u8>,
}

#[derive(Arbitrary, Debug)]
struct StepIn {
    action: u8,
    from: u8,
    to: String,
    port: u32,
    expect: String,
}

#[derive(Arbitrary, Debug)]
enum Input {
    Raw(Vec<u8>),
    Structured { segments: Vec<String>, hosts: Vec<Node>, profile: u8, forwards: Vec<(u8, u32, u8)>, steps: Vec<StepIn> },
}

const ACTIONS: [&str; 9] = ["ping", "tcp-connect", "send-mail", "dns-lookup", "outlook-connect", "http-get", "ftp-get", "nat-type", "wait"];
const PROFILES: [&str; 7] = ["linux", "rfc-recommended", "full-cone", "restricted-cone", "port-restricted-cone", "symmetric", "bogus"];

fn q(s: &str) -> String {
    format!("{s:?}")
}

fn render(segments: &[String], hosts: &[Node], profile: u8, forwards: &[(u8, u32, u8)], steps: &[StepIn]) -> String {
    let mut t = String::from("title = \"fuzz\"\n");
    for s in segments.iter().take(8) {
        t += &format!("[[segment]]\nname = {}\n", q(s));
    }
    let seg = |k: u8| segments.get(usize::from(k) % segments.len().max(1)).cloned().unwrap_or_default();
    t += &format!("[[router]]\nname = \"r\"\ninterfaces = [ {{ name = \"in0\", segment = {}, address = \"10.0.0.254/24\", role = \"inside\" }}, {{ name = \"out0\", segment = {}, address = \"203.0.113.1/24\", role = \"outside\" }} ]\n", q(&seg(0)), q(&seg(1)));
    t += &format!("[router.nat]\nprofile = {}\nmasquerade = [\"out0\"]\nforwards = [", q(PROFILES[usize::from(profile) % PROFILES.len()]));
    for (p, port, h) in forwards.iter().take(6) {
        t += &format!("{{ proto = {}, port = {port}, to = \"10.0.0.{h}\" }},", q(if p % 2 == 0 { "tcp" } else { "udp" }));
    }
    t += "]\n";
    for h in hosts.iter().take(8) {
        t += &format!("[[host]]\nname = {}\nsegment = {}\naddress = \"10.0.0.{}/{}\"\n", q(&h.name), q(&seg(h.segment)), h.a, h.len);
        if let Some(g) = h.gw {
            t += &format!("gateway = \"10.0.0.{g}\"\n");
        }
    }
    for (k, s) in steps.iter().take(8).enumerate() {
        let from = hosts.get(usize::from(s.from) % hosts.len().max(1)).map_or(String::new(), |h| h.name.clone());
        t += &format!("[[step]]\nname = \"s{k}\"\naction = {}\nfrom = {}\nto = {}\nport = {}\nexpect = {}\n", q(ACTIONS[usize::from(s.action) % ACTIONS.len()]), q(&from), q(&s.to), s.port, q(&s.expect));
    }
    t
}

fuzz_target!(|input: Input| {
    let src = match &input {
        Input::Raw(b) => match std::str::from_utf8(b) {
            Ok(s) => s.to_string(),
            Err(_) => return,
        },
        Input::Structured { segments, hosts, profile, forwards, steps } => render(segments, hosts, *profile, forwards, steps),
    };
    match load_str("fuzz.toml", &src) {
        Ok(_) => assert!(load_str("fuzz.toml", &src).is_ok(), "validation is not deterministic"),
        Err(problems) => {
            assert!(!problems.is_empty());
            let lines = src.lines().count().max(1) + 1;
            for p in problems {
                assert!(p.line >= 1 && p.col >= 1 && p.line <= lines, "unlocated problem {p:?}");
                assert!(!p.message.is_empty());
            }
        }
    }
});
