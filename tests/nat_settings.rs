//! The `[router.nat]` settings a user gives a router of their own:
//! `timeouts` (a router that forgets idle connections sooner, or later,
//! than its profile) and `max_connections` (a full table). Each scenario's
//! variants move one setting and expect what the RFCs and Linux say:
//! the profile's values are rfc-recommended's (UDP 300 s, TCP established
//! 7440 s: RFC 4787 REQ-5, RFC 5382 REQ-5); established connections are
//! never evicted (Linux's early_drop takes only entries not yet assured),
//! so a full table drops the next SYN and the client times out.

use natsim::scenario::{load_str, run_variant};

/// Loads `src` and runs every variant; each step must pass.
fn every_variant_passes(file: &str, src: &str, variants: usize) {
    let l = load_str(file, src).unwrap_or_else(|p| {
        panic!(
            "{}",
            p.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    assert_eq!(l.variants().len(), variants);
    for v in l.variants() {
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

const TIMEOUTS: &str = r#"
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
    every_variant_passes("timeouts.toml", TIMEOUTS, 3);
}

const TABLE: &str = r#"
title = "a full connection table"
seed = 9
[[segment]]
name = "lan"
[[segment]]
name = "internet"
[[router]]
name = "gw"
interfaces = [
  { name = "lan0", segment = "lan", address = "192.168.1.1/24", role = "inside" },
  { name = "wan0", segment = "internet", address = "203.0.113.1/24", role = "outside" },
]
[router.nat]
profile = "linux"
masquerade = ["wan0"]
max_connections = 2
[[host]]
name = "desk"
segment = "lan"
address = "192.168.1.10/24"
gateway = "192.168.1.1"
[[host]]
name = "server"
segment = "internet"
address = "203.0.113.50/24"
listen = ["tcp/22"]

[[step]]
name = "first"
action = "tcp-connect"
from = "desk"
to = "203.0.113.50"
port = 22
keep = "a"
expect = "connected"
[[step]]
name = "second"
action = "tcp-connect"
from = "desk"
to = "203.0.113.50"
port = 22
keep = "b"
expect = "connected"
[[step]]
name = "third"
action = "tcp-connect"
from = "desk"
to = "203.0.113.50"
port = 22
keep = "c"
expect = ["timed-out", "trace containing \"connection table full\""]

[[variant]]
name = "room-for-three"
set = { "gw.nat.max_connections" = 3 }
expect = { third = "connected" }
"#;

#[test]
fn a_full_table_refuses_the_next_connection_and_a_larger_one_takes_it() {
    every_variant_passes("table.toml", TABLE, 2);
}

#[test]
fn a_table_size_out_of_range_is_a_located_error() {
    for (size, col) in [("0", 19), ("16777217", 19)] {
        let src = TABLE.replace("max_connections = 2", &format!("max_connections = {size}"));
        let err = match load_str("table.toml", &src) {
            Ok(_) => panic!("max_connections = {size} loaded"),
            Err(p) => p
                .iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        };
        assert!(err.contains("is not a connection table size"), "{err}");
        assert!(err.contains(&format!("table.toml:17:{col}")), "{err}");
    }
}
