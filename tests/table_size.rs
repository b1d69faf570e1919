//! `max_connections`: a NAT whose connection table is full. Established
//! connections are never evicted (Linux's early_drop takes only entries
//! not yet assured), so the next connect's SYN is dropped and the client
//! times out; with room for one more, it connects.

use natsim::scenario::{load_str, run_variant};

const SCENARIO: &str = r#"
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
    let l = load_str("table.toml", SCENARIO).unwrap_or_else(|p| {
        panic!(
            "{}",
            p.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    let variants = l.variants();
    assert_eq!(variants.len(), 2);
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

#[test]
fn a_table_size_out_of_range_is_a_located_error() {
    for (size, col) in [("0", 19), ("16777217", 19)] {
        let src = SCENARIO.replace("max_connections = 2", &format!("max_connections = {size}"));
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
