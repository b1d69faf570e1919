//! Each outcome belongs to its step: a step's client gives up when the
//! step ends (as its process exiting would), nothing of it reaches the
//! next step, `actual` always says something, repeated probes repeat
//! their answer, and a trace step appears only when it happened.

use natsim::scenario::{load_str, run_variant, VariantResult};

const NET: &str = r#"
[[segment]]
name = "lan"
[[segment]]
name = "internet"
[[router]]
name = "nat"
interfaces = [
  { name = "lan0", segment = "lan", address = "192.168.1.1/24", role = "inside" },
  { name = "wan0", segment = "internet", address = "203.0.113.1/24", role = "outside" },
]
[router.nat]
profile = "rfc-recommended"
hairpin = "off"
masquerade = ["wan0"]
forwards = [ { proto = "tcp", port = 80, to = "192.168.1.10", name = "web" } ]
[[host]]
name = "web"
segment = "lan"
address = "192.168.1.10/24"
gateway = "192.168.1.1"
[host.http_server]
pages = { "/" = "<html>hello</html>" }
[[host]]
name = "client"
segment = "lan"
address = "192.168.1.20/24"
gateway = "192.168.1.1"
[[host]]
name = "outside"
segment = "internet"
address = "203.0.113.7/24"
[[host]]
name = "stun-a"
segment = "internet"
address = "203.0.113.10/24"
udp_echo = [3478, 3479]
[[host]]
name = "stun-b"
segment = "internet"
address = "203.0.113.11/24"
udp_echo = [3478, 3479]
"#;

fn run(steps: &str) -> VariantResult {
    let src = format!("title = \"steps\"\nseed = 3\n{NET}\n{steps}");
    let l = load_str("steps.toml", &src).unwrap_or_else(|p| {
        panic!(
            "{}",
            p.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    run_variant(&l, l.variants()[0], None, false).unwrap()
}

/// A connect cut short by its step's duration: the SYN retries stop with
/// the step, so the `wait` after it sees no frame at all.
#[test]
fn a_wait_after_an_abandoned_connect_sees_none_of_its_retries() {
    let r = run(r#"
[[step]]
name = "short-connect"
action = "tcp-connect"
from = "outside"
to = "203.0.113.1"
port = 25
duration = "5s"
expect = "anything"
[[step]]
name = "quiet"
action = "wait"
duration = "60s"
expect = "anything"
"#);
    let (connect, wait) = (&r.steps[0], &r.steps[1]);
    assert!(!connect.actual.is_empty());
    assert!(
        connect.actual.contains("still connecting"),
        "{}",
        connect.actual
    );
    assert!(
        wait.traces.is_empty(),
        "the wait step caused {:?}",
        wait.traces
    );
    // And the abandoned connect sent no RST.
    assert!(
        !r.traces
            .iter()
            .any(|t| t.summary.contains("[R") && t.summary.contains("203.0.113.7")),
        "a RST"
    );
}

#[test]
fn every_step_says_what_happened() {
    let r = run(r#"
[[step]]
name = "ping"
action = "ping"
from = "client"
to = "203.0.113.7"
duration = "1ms"
expect = "anything"
[[step]]
name = "get"
action = "http-get"
from = "outside"
to = "203.0.113.1"
duration = "1ms"
expect = "anything"
[[step]]
name = "wait"
action = "wait"
duration = "1s"
expect = "anything"
"#);
    for s in &r.steps {
        assert!(!s.actual.is_empty(), "{}: empty actual", s.name);
    }
}

/// RFC 5780's probes twice from the same host: the same answer twice.
#[test]
fn nat_type_twice_gives_the_same_answer() {
    let r = run(r#"
[[step]]
name = "first"
action = "nat-type"
from = "client"
servers = ["stun-a", "stun-b"]
expect = "anything"
[[step]]
name = "second"
action = "nat-type"
from = "client"
servers = ["stun-a", "stun-b"]
expect = "anything"
"#);
    assert!(
        r.steps[0].actual.starts_with("mapping "),
        "{}",
        r.steps[0].actual
    );
    // The seen-as endpoints differ in port only if the mapping is new;
    // the classification must match.
    let class = |s: &str| s.split(" (seen as").next().unwrap().to_string();
    assert_eq!(class(&r.steps[0].actual), class(&r.steps[1].actual));
}

/// With hairpinning off the SYN is dropped, not hairpinned: the trace
/// must not claim a hairpin.
#[test]
fn hairpinned_appears_only_when_hairpinning_happened() {
    let r = run(r#"
[[step]]
name = "via-public"
action = "http-get"
from = "client"
to = "203.0.113.1"
expect = ["failed", "trace dropped-by-nat-filter"]
"#);
    assert!(r.steps[0].pass, "{:?}", r.steps[0].failures);
    let hairpinned = r
        .traces
        .iter()
        .flat_map(|t| &t.hops)
        .flat_map(|h| &h.steps)
        .any(|s| matches!(s, natsim::sim::Step::Nat { kind, .. } if *kind == "hairpinned"));
    assert!(!hairpinned);
}

/// `http-get` to a DNS name: the host asks its own DNS servers, then
/// fetches from the address they return; `port` on `ftp-get` reaches a
/// server forwarded from another port.
#[test]
fn http_get_resolves_a_name_through_the_hosts_dns() {
    let src = r#"
title = "names"
[[segment]]
name = "lan"
[[host]]
name = "ns"
segment = "lan"
address = "10.0.0.53/24"
[host.dns_server]
zones = [ { origin = "example.com", records = ["A www.example.com 10.0.0.80"] } ]
[[host]]
name = "web"
segment = "lan"
address = "10.0.0.80/24"
[host.http_server]
pages = { "/" = "<html>by name</html>" }
[[host]]
name = "client"
segment = "lan"
address = "10.0.0.20/24"
dns = ["10.0.0.53"]
[[step]]
name = "by-name"
action = "http-get"
from = "client"
to = "www.example.com"
expect = "status 200"
[[step]]
name = "unknown-name"
action = "http-get"
from = "client"
to = "nowhere.example.com"
expect = "failed"
"#;
    let l = load_str("names.toml", src).unwrap_or_else(|p| panic!("{}", p[0]));
    let r = run_variant(&l, l.variants()[0], None, false).unwrap();
    for s in &r.steps {
        assert!(s.pass, "{}: {} {:?}", s.name, s.actual, s.failures);
    }
    assert!(
        r.steps[1].actual.contains("cannot resolve"),
        "{}",
        r.steps[1].actual
    );
}

/// A `GROUP[*]` step runs from every member at once and passes only when
/// each member meets the expectations; a failure names the member.
#[test]
fn a_group_step_holds_for_every_member_and_names_the_ones_that_fail() {
    let group = r#"
[[host_group]]
name = "desks"
count = 12
segment = "lan"
address = "192.168.1.100/24"
gateway = "192.168.1.1"
"#;
    let r = run(&format!(
        r#"{group}
[[step]]
name = "web-from-every-desk"
action = "http-get"
from = "desks[*]"
to = "192.168.1.10"
expect = "status 200"

[[step]]
name = "closed-port-from-every-desk"
action = "tcp-connect"
from = "desks[*]"
to = "192.168.1.10"
port = 81
expect = "connected"
"#
    ));
    let ok = &r.steps[0];
    assert!(ok.pass, "{:?}", ok.failures);
    assert!(ok.actual.starts_with("12 members: 12 "), "{}", ok.actual);
    // Twelve requests, each from its own desk, all answered.
    let sources: std::collections::BTreeSet<_> = ok
        .traces
        .iter()
        .map(|id| &r.traces[*id as usize])
        .filter(|t| t.summary.contains(":80 [S]") || t.summary.ends_with("-> 192.168.1.10:80 [S]"))
        .map(|t| t.origin.clone())
        .collect();
    assert_eq!(sources.len(), 12, "{sources:?}");
    let bad = &r.steps[1];
    assert!(!bad.pass);
    assert!(
        bad.actual.starts_with("12 members: 12 refused"),
        "{}",
        bad.actual
    );
    assert!(
        bad.actual.contains("first failing: desks[0]"),
        "{}",
        bad.actual
    );
    // The first ten failing members by name, then a count of the rest.
    assert_eq!(bad.failures.len(), 11, "{:?}", bad.failures);
    assert!(
        bad.failures[0].starts_with("desks[0]: "),
        "{:?}",
        bad.failures
    );
    assert_eq!(bad.failures[10], "and 2 more members failed");
}

/// A server behind a port forward that refuses the recipient in the SMTP
/// dialogue is on the bounce's path: the address dialled and the one the
/// connection landed on. A message followed `until = "final"` outlasts a
/// deferral instead of stopping at it.
#[test]
fn a_refusal_in_the_dialogue_is_on_the_path_and_final_outlasts_deferral() {
    let src = r#"
title = "mail paths"
[[segment]]
name = "lan"
[[segment]]
name = "internet"
[[router]]
name = "nat"
interfaces = [
  { name = "lan0", segment = "lan", address = "192.168.1.1/24", role = "inside" },
  { name = "wan0", segment = "internet", address = "203.0.113.1/24", role = "outside" },
]
[router.nat]
profile = "linux"
masquerade = ["wan0"]
forwards = [ { proto = "tcp", port = 25, to = "192.168.1.25", name = "smtp-in" } ]
[[host]]
name = "mx"
segment = "lan"
address = "192.168.1.25/24"
gateway = "192.168.1.1"
[host.smtp_server]
hostname = "mx.example.com"
domains = ["example.com"]
[[host]]
name = "sender"
segment = "internet"
address = "203.0.113.7/24"
gateway = "203.0.113.1"
[host.mta]
hostname = "relay.example.net"
retry_interval = "1h"
give_up_after = "3h"
[[step]]
name = "relay-refused"
action = "send-mail"
from = "sender"
to = "bob@[203.0.113.1]"
expect = ["bounced containing \"550 5.7.1\"", "via 203.0.113.1", "via 192.168.1.25"]
[[step]]
name = "nobody-at-port-25-settled"
action = "send-mail"
from = "sender"
to = "bob@[203.0.113.99]"
expect = ["deferred"]
[[step]]
name = "nobody-at-port-25-final"
action = "send-mail"
from = "sender"
to = "bob@[203.0.113.99]"
until = "final"
expect = ["bounced containing \"expired after 3 h\""]
"#;
    let l = load_str("mail.toml", src).unwrap_or_else(|p| panic!("{}", p[0]));
    let r = run_variant(&l, l.variants()[0], None, false).unwrap();
    for s in &r.steps {
        assert!(s.pass, "{}: {} {:?}", s.name, s.actual, s.failures);
    }
    let hops = &r.steps[0].mail.as_ref().unwrap().hops;
    assert_eq!(hops.len(), 1, "{hops:?}");
    assert_eq!(
        (hops[0].dialled.as_str(), hops[0].landed.as_str()),
        ("203.0.113.1", "192.168.1.25")
    );
    assert_eq!(hops[0].server, "mx.example.com");
    // The final step ends at the 3 h time-out, not at its first deferral.
    let took = (r.steps[2].ended - r.steps[2].started).as_secs();
    assert!((3 * 3600..3 * 3600 + 60).contains(&took), "{took} s");
}

/// `dns-lookup` with `port`: a DNS server behind a 5353 → 53 forward
/// answers through the router; the same lookup on 53 reaches nothing.
#[test]
fn dns_lookup_asks_the_port_it_is_given() {
    let src = r#"
title = "dns port"
[[segment]]
name = "lan"
[[segment]]
name = "internet"
[[router]]
name = "nat"
interfaces = [
  { name = "lan0", segment = "lan", address = "192.168.1.1/24", role = "inside" },
  { name = "wan0", segment = "internet", address = "203.0.113.1/24", role = "outside" },
]
[router.nat]
profile = "linux"
masquerade = ["wan0"]
forwards = [ { proto = "udp", port = 5353, to = "192.168.1.53", to_port = 53, name = "dns-in" } ]
[[host]]
name = "ns"
segment = "lan"
address = "192.168.1.53/24"
gateway = "192.168.1.1"
[host.dns_server]
zones = [ { origin = "example.com", records = ["A www.example.com 192.0.2.80"] } ]
[[host]]
name = "outside"
segment = "internet"
address = "203.0.113.7/24"
gateway = "203.0.113.1"
[[step]]
name = "on-5353"
action = "dns-lookup"
from = "outside"
to = "nat"
port = 5353
query = "www.example.com"
expect = "answered"
[[step]]
name = "on-53"
action = "dns-lookup"
from = "outside"
to = "nat"
query = "www.example.com"
expect = "not answered"
"#;
    let l = load_str("dns.toml", src).unwrap_or_else(|p| panic!("{}", p[0]));
    let r = run_variant(&l, l.variants()[0], None, false).unwrap();
    for s in &r.steps {
        assert!(s.pass, "{}: {} {:?}", s.name, s.actual, s.failures);
    }
    assert!(
        r.steps[0].actual.contains("192.0.2.80"),
        "{}",
        r.steps[0].actual
    );
}

/// A DF datagram through a port forward onto a LAN of smaller MTU: the
/// router's "fragmentation needed" quotes what the sender sent (the public
/// address and port), not the NAT's translation, so the sender's socket
/// can match it (RFC 5508 §4.2; Linux translates the quote back), and it
/// quotes the TTL before the router's decrement (ip_forward checks the MTU
/// first).
#[test]
fn frag_needed_behind_a_forward_quotes_what_the_sender_sent() {
    let big = "x".repeat(1450);
    let src = format!(
        r#"
title = "pmtu behind a forward"
[[segment]]
name = "lan"
mtu = 1400
[[segment]]
name = "internet"
[[router]]
name = "nat"
interfaces = [
  {{ name = "lan0", segment = "lan", address = "192.168.1.1/24", role = "inside" }},
  {{ name = "wan0", segment = "internet", address = "203.0.113.1/24", role = "outside" }},
]
[router.nat]
profile = "linux"
masquerade = ["wan0"]
forwards = [ {{ proto = "udp", port = 4500, to = "192.168.1.10", name = "vpn" }} ]
[[host]]
name = "server"
segment = "lan"
address = "192.168.1.10/24"
gateway = "192.168.1.1"
udp_echo = [4500]
[[host]]
name = "outside"
segment = "internet"
address = "203.0.113.7/24"
gateway = "203.0.113.1"
# Linux sets DF on UDP (IP_PMTUDISC_WANT); Windows would be fragmented.
tcp_profile = "linux"
[[step]]
name = "small"
action = "udp-send"
from = "outside"
to = "nat"
port = 4500
expect = "replied"
[[step]]
name = "big"
action = "udp-send"
from = "outside"
to = "nat"
port = 4500
payload = "{big}"
expect = "icmp fragmentation-needed"
"#
    );
    let l = load_str("pmtu.toml", &src).unwrap_or_else(|p| panic!("{}", p[0]));
    let r = run_variant(&l, l.variants()[0], None, false).unwrap();
    for s in &r.steps {
        assert!(s.pass, "{}: {} {:?}", s.name, s.actual, s.failures);
    }
}

/// `nat-table` lists what `conntrack -L` would: ICMP queries by their
/// identifier (RFC 5508 §3.1), and a TCP entry with its state.
#[test]
fn nat_table_lists_icmp_queries_and_tcp_states() {
    let r = run(r#"
[[step]]
name = "ping"
action = "ping"
from = "client"
to = "203.0.113.7"
expect = "replied"
[[step]]
name = "get"
action = "http-get"
from = "outside"
to = "203.0.113.1"
expect = "status 200"
[[step]]
name = "table"
action = "nat-table"
router = "nat"
expect = ["listed containing \"icmp 192.168.1.20 id\"", "listed containing \"TIME_WAIT\""]
"#);
    for s in &r.steps {
        assert!(s.pass, "{}: {}", s.name, s.actual);
    }
}
