//! What a host's own stack and services do that a step can see: a
//! listener's record of its clients, the ports a stack picks.

use natsim::scenario::{load_str, run_variant};

/// A listener whose handshake a client reset (the SYN-ACK of a
/// `dnat-only` hairpin reaches the client from an address it never
/// called, and it answers RST) still records the next client: smoltcp
/// puts the reset socket back in LISTEN beside the fresh listener, and
/// that second listener used to take the next SYN unrecorded.
#[test]
fn a_reset_handshake_does_not_hide_the_next_client_from_seen_from() {
    let src = r#"
title = "seen-from after a reset handshake"
[[segment]]
name = "lan"
[[segment]]
name = "wan"
[[router]]
name = "edge"
interfaces = [
  { name = "lan0", segment = "lan", address = "192.168.10.1/24", role = "inside" },
  { name = "wan0", segment = "wan", address = "203.0.113.1/24", role = "outside" },
]
[router.nat]
profile = "linux"
hairpin = "dnat-only"
masquerade = ["wan0"]
forwards = [ { name = "https", proto = "tcp", port = 443, to = "192.168.10.10" } ]
[[host]]
name = "pc1"
segment = "lan"
address = "192.168.10.101/24"
gateway = "192.168.10.1"
[[host]]
name = "web"
segment = "lan"
address = "192.168.10.10/24"
gateway = "192.168.10.1"
listen = ["tcp/443"]
[[host]]
name = "client"
segment = "wan"
address = "203.0.113.7/24"
gateway = "203.0.113.1"
[[step]]
name = "hairpin"
action = "tcp-connect"
from = "pc1"
to = "203.0.113.1"
port = 443
source_port = 40100
expect = ["timed-out", "seen-from 192.168.10.101:40100"]
[[step]]
name = "outside"
action = "tcp-connect"
from = "client"
to = "203.0.113.1"
port = 443
source_port = 40443
expect = ["connected", "seen-from 203.0.113.7:40443"]
"#;
    let l = load_str("reset.toml", src).unwrap_or_else(|p| panic!("{}", p[0]));
    let r = run_variant(&l, l.variants()[0], None, false).unwrap();
    for s in &r.steps {
        assert!(s.pass, "{}: {}", s.name, s.actual);
    }
}

/// A `linux` host picks its ephemeral ports where Linux does
/// (net.ipv4.ip_local_port_range, 32768–60999), a `windows` one from the
/// IANA dynamic range (49152–65535).
#[test]
fn ephemeral_ports_follow_the_hosts_profile() {
    let src = r#"
title = "ports"
seed = 9
[[segment]]
name = "lan"
[[host]]
name = "tux"
segment = "lan"
address = "192.168.1.20/24"
tcp_profile = "linux"
[[host]]
name = "win"
segment = "lan"
address = "192.168.1.21/24"
[[host]]
name = "srv"
segment = "lan"
address = "192.168.1.30/24"
udp_echo = [7]
"#;
    for (host, (lo, hi)) in [("tux", (32768, 60999)), ("win", (49152, 65535))] {
        for k in 0..8 {
            let steps = format!(
                "[[step]]\nname = \"s\"\naction = \"udp-send\"\nfrom = \"{host}\"\nto = \"192.168.1.30\"\nport = 7\npayload = \"{k}\"\nexpect = \"replied\"\n"
            );
            let l = load_str(
                "ports.toml",
                &format!("{src}{steps}").replace("seed = 9", &format!("seed = {k}")),
            )
            .unwrap_or_else(|p| panic!("{}", p[0]));
            let r = run_variant(&l, l.variants()[0], None, false).unwrap();
            let port = r
                .traces
                .iter()
                .find_map(|t| {
                    let s = &t.summary;
                    let at = s.find(":")?;
                    s[at + 1..]
                        .split(|c: char| !c.is_ascii_digit())
                        .next()?
                        .parse::<u32>()
                        .ok()
                })
                .expect("a datagram");
            assert!(
                (lo..=hi).contains(&port),
                "{host}: port {port} not in {lo}-{hi}"
            );
        }
    }
}
