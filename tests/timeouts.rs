//! `[router.nat.timeouts]`: a router that forgets idle connections sooner
//! (or later) than its profile. Each variant changes one timeout and
//! expects the mapping to be gone, or still there, after the same idle
//! time; the profile's values are the rfc-recommended ones (UDP 300 s,
//! TCP established 7440 s, RFC 4787 REQ-5 and RFC 5382 REQ-5).

use natsim::scenario::{load_str, run_variant};

const SCENARIO: &str = r#"
title = "idle timeouts"
seed = 5
[[segment]]
name = "home"
[[segment]]
name = "internet"
[[router]]
name = "gw"
interfaces = [
  { name = "lan0", segment = "home", address = "192.168.1.1/24", role = "inside" },
  { name = "wan0", segment = "internet", address = "203.0.113.1/24", role = "outside" },
]
[router.nat]
profile = "rfc-recommended"
masquerade = ["wan0"]
[router.nat.timeouts]
udp_unreplied = "60s"
tcp_established = "1h"
[[host]]
name = "laptop"
segment = "home"
address = "192.168.1.10/24"
gateway = "192.168.1.1"
[[host]]
name = "server"
segment = "internet"
address = "203.0.113.50/24"
udp_echo = [3478]
listen = ["tcp/22"]

[[step]]
name = "game"
action = "udp-send"
from = "laptop"
to = "203.0.113.50"
port = 3478
source_port = 40000
expect = "replied"
[[step]]
name = "ssh"
action = "tcp-connect"
from = "laptop"
to = "203.0.113.50"
port = 22
source_port = 50000
keep = "ssh"
expect = "connected"
[[step]]
name = "after-90s"
action = "wait"
duration = "90s"
expect = "anything"
[[step]]
name = "udp-table"
action = "nat-table"
router = "gw"
expect = ["no mapping udp 192.168.1.10:40000", "mapping tcp 192.168.1.10:50000 -> 203.0.113.1:50000"]
[[step]]
name = "after-an-hour"
action = "wait"
duration = "1h"
expect = "anything"
[[step]]
name = "tcp-table"
action = "nat-table"
router = "gw"
expect = "no mapping tcp 192.168.1.10:50000"

[[variant]]
name = "profile-udp"
remove = ["gw.nat.timeouts.udp_unreplied"]
expect = { udp-table = ["mapping udp 192.168.1.10:40000 -> 203.0.113.1:40000", "mapping tcp 192.168.1.10:50000 -> 203.0.113.1:50000"] }

[[variant]]
name = "two-hour-tcp"
set = { "gw.nat.timeouts.tcp_established" = "2h" }
expect = { tcp-table = "mapping tcp 192.168.1.10:50000 -> 203.0.113.1:50000" }
"#;

#[test]
fn a_router_forgets_idle_connections_after_the_timeouts_it_is_given() {
    let l = load_str("timeouts.toml", SCENARIO).unwrap_or_else(|p| {
        panic!(
            "{}",
            p.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    let variants = l.variants();
    assert_eq!(variants.len(), 3);
    for v in variants {
        let r = run_variant(&l, v, None, false).unwrap();
        for s in &r.steps {
            assert!(
                s.pass,
                "{}: {}: {} ({:?})",
                r.variant, s.name, s.actual, s.failures
            );
        }
    }
}
