//! `nft -j list ruleset` documents import as their statements say, and a
//! bad document gives a located error.

use natsim_import::{import, FilterAction, RejectWith, Unreachable};
use natsim_nat::{Action, Chain, CtStates, Proto};
use std::net::Ipv4Addr;

/// An `inet` table `f` with a forward base chain (policy accept) holding
/// one rule per expression list, as `nft -j` prints them.
fn forward_rules(exprs: &[&str]) -> String {
    let rules: Vec<String> = exprs
        .iter()
        .enumerate()
        .map(|(k, e)| {
            format!(
                r#"{{"rule": {{"family": "inet", "table": "f", "chain": "fwd", "handle": {}, "expr": [{e}]}}}}"#,
                k + 2
            )
        })
        .collect();
    format!(
        r#"{{"nftables": [
  {{"table": {{"family": "inet", "name": "f", "handle": 1}}}},
  {{"chain": {{"family": "inet", "table": "f", "name": "fwd", "handle": 1, "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}}}},
  {}
]}}"#,
        rules.join(",\n  ")
    )
}

#[test]
fn nft_json_as_nft_prints_it_imports_with_chains_return_and_reject() {
    // `nft -j list ruleset` (nftables 1.0.6) output for a Docker-like
    // router: metainfo, handles, a user chain with return, counters.
    let src = include_str!("../../../fuzz/fuzz_targets/rules_nft.rs");
    let start = src.find("r#\"").unwrap() + 3;
    let end = src[start..].find("\"#").unwrap() + start;
    let imp = import("ruleset.json", &src[start..end], None).unwrap();
    assert_eq!(imp.ifaces, ["docker0"]);
    let pre: Vec<_> = imp
        .rules
        .rules
        .iter()
        .filter(|r| r.chain == Chain::Prerouting)
        .collect();
    // The user chain's `iifname "docker0" return` is an exemption first.
    assert_eq!(pre.len(), 2);
    assert_eq!(pre[0].action, Action::Accept);
    assert!(!pre[0].matches.not.in_iface && pre[0].matches.dst_local);
    assert_eq!(
        pre[1].action,
        Action::Dnat {
            to: Ipv4Addr::new(172, 17, 0, 2),
            to_port: Some(80)
        }
    );
    assert_eq!(imp.filter.forward.policy, FilterAction::Drop);
    assert_eq!(
        imp.filter.forward.rules[1].action,
        FilterAction::Reject(RejectWith::TcpReset)
    );
}

#[test]
fn bad_nft_json_is_located() {
    let e = import("x.json", "{\"nftables\": [ {\"rule\": 3 ", None).unwrap_err();
    assert!(e.loc.line >= 1 && e.loc.col > 1, "{e}");
}

/// Found by the rules_iptables fuzz target (twice): serde_json reports
/// column 0 at a line's start, and an error at EOF after a final newline on
/// a line past the last; the location must be 1-based and inside the text.
#[test]
fn a_json_error_at_a_line_start_or_eof_is_located_inside_the_text() {
    let e = import("x.json", "{\n", None).unwrap_err();
    assert_eq!((e.loc.line, e.loc.col), (1, 2), "{e}");
    let e = import("x.json", "{\"nftables\":\n[\u{1}", None).unwrap_err();
    assert!(e.loc.line == 2 && e.loc.col >= 1, "{e}");
}

/// nft rejects carry their ICMP code: firewalld's `reject with icmpx
/// admin-prohibited` is code 13 (nft_reject_icmp_code), icmpx `no-route`
/// is net unreachable. ICMPv6 codes and icmpx codes icmp does not have
/// are refused, not read as port unreachable.
#[test]
fn an_nft_reject_keeps_its_icmp_code() {
    let rule = |expr: &str| forward_rules(&[expr]);
    for (expr, code) in [
        (
            r#"{"type": "icmpx", "expr": "admin-prohibited"}"#,
            Unreachable::AdminProhibited,
        ),
        (
            r#"{"type": "icmpx", "expr": "port-unreachable"}"#,
            Unreachable::Port,
        ),
        (r#"{"type": "icmpx", "expr": "no-route"}"#, Unreachable::Net),
        (
            r#"{"type": "icmp", "expr": "host-prohibited"}"#,
            Unreachable::HostProhibited,
        ),
        (
            r#"{"type": "icmp", "expr": "prot-unreachable"}"#,
            Unreachable::Protocol,
        ),
    ] {
        let ok = import("x.json", &rule(&format!(r#"{{"reject": {expr}}}"#)), None)
            .unwrap_or_else(|e| panic!("{expr}: {e}"));
        assert_eq!(
            ok.filter.forward.rules[0].action,
            FilterAction::Reject(RejectWith::Icmp(code)),
            "{expr}"
        );
    }
    for expr in [
        r#"{"type": "icmpv6", "expr": "admin-prohibited"}"#,
        r#"{"type": "icmp", "expr": "no-route"}"#,
        r#"{"type": "icmpx", "expr": "host-prohibited"}"#,
    ] {
        let e = import("x.json", &rule(&format!(r#"{{"reject": {expr}}}"#)), None).unwrap_err();
        assert!(e.message.contains("not an IPv4 ICMP answer"), "{expr}: {e}");
    }
}

/// OpenWrt fw4 hangs an empty `mangle_forward` (policy accept) on the
/// forward hook beside `forward` (policy drop). In nftables a packet must
/// pass every base chain, so the drop policy stands; it used to be
/// replaced by the empty chain's accept. Rules in two base chains of one
/// hook are refused: they would run as one list here.
#[test]
fn base_chains_sharing_a_hook_keep_the_drop_policy() {
    let doc = |mangle_rule: &str| {
        format!(
            r#"{{"nftables": [
  {{"table": {{"family": "inet", "name": "fw4", "handle": 1}}}},
  {{"chain": {{"family": "inet", "table": "fw4", "name": "forward", "handle": 2, "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}}}},
  {{"chain": {{"family": "inet", "table": "fw4", "name": "mangle_forward", "handle": 3, "type": "filter", "hook": "forward", "prio": -150, "policy": "accept"}}}},
  {{"rule": {{"family": "inet", "table": "fw4", "chain": "forward", "handle": 4, "expr": [{{"match": {{"op": "==", "left": {{"meta": {{"key": "iifname"}}}}, "right": "br-lan"}}}}, {{"accept": null}}]}}}}{mangle_rule}
]}}"#
        )
    };
    let imp = import("fw4.json", &doc(""), None).unwrap();
    assert_eq!(imp.filter.forward.policy, FilterAction::Drop);
    assert_eq!(imp.filter.forward.rules.len(), 1);
    let both = doc(r#",
  {"rule": {"family": "inet", "table": "fw4", "chain": "mangle_forward", "handle": 5, "expr": [{"drop": null}]}}"#);
    let e = import("fw4.json", &both, None).unwrap_err();
    assert!(e.message.contains("two base chains on one hook"), "{e}");
}

/// firewalld's inet table holds IPv6 rules beside the IPv4 ones; they can
/// never match an IPv4 packet and are left out with a note, as are rules
/// that only log. `meta nfproto ipv4` is always true here, and
/// `{ icmp, ipv6-icmp }` is icmp.
#[test]
fn nft_ipv6_only_and_logging_rules_are_left_out() {
    let rules = [
        r#"{"match": {"op": "==", "left": {"meta": {"key": "nfproto"}}, "right": "ipv6"}}, {"drop": null}"#,
        r#"{"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "daddr"}}, "right": {"prefix": {"addr": "2002::", "len": 24}}}}, {"reject": {"type": "icmpv6", "expr": "addr-unreachable"}}"#,
        r#"{"log": {"prefix": "FWD: "}}"#,
        r#"{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": {"set": ["icmp", "ipv6-icmp"]}}}, {"accept": null}"#,
        r#"{"match": {"op": "==", "left": {"meta": {"key": "nfproto"}}, "right": "ipv4"}}, {"log": {"prefix": "v4: "}}, {"drop": null}"#,
    ];
    let doc = forward_rules(&rules);
    let imp = import("x.json", &doc, None).unwrap_or_else(|e| panic!("{e}"));
    let fwd = &imp.filter.forward.rules;
    assert_eq!(fwd.len(), 2, "{fwd:#?}");
    assert_eq!(fwd[0].matches.proto, Some(Proto::Icmp));
    assert_eq!(fwd[0].action, FilterAction::Accept);
    assert_eq!(
        (fwd[1].matches.proto, fwd[1].action),
        (None, FilterAction::Drop)
    );
    for note in [
        "2 rule(s) left out: they match only IPv6",
        "1 rule(s) left out: they only count or log",
    ] {
        assert!(
            imp.notes.iter().any(|n| n.starts_with(note)),
            "{note}: {:?}",
            imp.notes
        );
    }
}

/// fw4 (OpenWrt 22.03+) accepts tracked traffic with `ct state vmap {
/// established : accept, related : accept }` (the expression as `nft -j`
/// prints it): one rule per verdict, with the states that lead to it.
#[test]
fn an_nft_ct_state_verdict_map_is_a_rule_per_verdict() {
    let vmap = r#"{"vmap": {"key": {"ct": {"key": "state"}}, "data": {"set": [["established", {"accept": null}], ["related", {"accept": null}], ["invalid", {"drop": null}]]}}}"#;
    let doc = forward_rules(&[vmap]);
    let imp = import("x.json", &doc, None).unwrap_or_else(|e| panic!("{e}"));
    let got: Vec<_> = imp
        .filter
        .forward
        .rules
        .iter()
        .map(|r| (r.matches.ct_state, r.action))
        .collect();
    assert_eq!(
        got,
        [
            (
                Some(CtStates::ESTABLISHED.union(CtStates::RELATED)),
                FilterAction::Accept
            ),
            (Some(CtStates::INVALID), FilterAction::Drop),
        ]
    );
    let other = doc.replace(
        r#"{"ct": {"key": "state"}}"#,
        r#"{"meta": {"key": "iifname"}}"#,
    );
    let e = import("x.json", &other, None).unwrap_err();
    assert!(
        e.message.contains("verdict map on anything but `ct state`"),
        "{e}"
    );
}

/// ICMP type matches as `nft -j` (nftables 1.0.6) prints them: a name, a
/// set (one rule per type), a type with a code, a negation, and the
/// `ip protocol icmp` nft adds when written out.
#[test]
fn nft_icmp_type_matches_import() {
    use natsim_nat::IcmpType;
    let ty = |t: &str| {
        format!(
            r#"{{"match": {{"op": "==", "left": {{"payload": {{"protocol": "icmp", "field": "type"}}}}, "right": {t}}}}}"#
        )
    };
    let code = r#"{"match": {"op": "==", "left": {"payload": {"protocol": "icmp", "field": "code"}}, "right": "frag-needed"}}"#;
    let ip_icmp = r#"{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "protocol"}}, "right": "icmp"}}"#;
    let neg = r#"{"match": {"op": "!=", "left": {"payload": {"protocol": "icmp", "field": "type"}}, "right": "echo-request"}}"#;
    let drop = r#"{"drop": null}"#;
    let rules = [
        format!("{}, {drop}", ty(r#""echo-request""#)),
        format!(
            "{}, {drop}",
            ty(r#"{"set": ["echo-reply", "destination-unreachable"]}"#)
        ),
        format!(
            "{ip_icmp}, {}, {code}, {drop}",
            ty(r#""destination-unreachable""#)
        ),
        format!("{neg}, {drop}"),
    ];
    let refs: Vec<&str> = rules.iter().map(String::as_str).collect();
    let imp = import("icmp.json", &forward_rules(&refs), None).unwrap();
    let got: Vec<_> = imp
        .filter
        .forward
        .rules
        .iter()
        .map(|r| {
            (
                r.matches.proto,
                r.matches.icmp_type,
                r.matches.not.icmp_type,
            )
        })
        .collect();
    let t = |ty, code| Some(IcmpType { ty, code });
    let icmp = Some(Proto::Icmp);
    assert_eq!(
        got,
        [
            (icmp, t(8, None), false),
            (icmp, t(0, None), false),
            (icmp, t(3, None), false),
            (icmp, t(3, Some(4)), false),
            (icmp, t(8, None), true),
        ]
    );
    let bad = forward_rules(&[&format!("{code}, {drop}")]);
    let e = import("bad.json", &bad, None).unwrap_err();
    assert!(e.message.contains("icmp code"), "{e}");
}

/// What `nft -j` (nftables 1.0.6) printed for a home router's input
/// chain: port sets (one rule per entry; a negated set as the ranges it
/// leaves), a protocol set with `th dport`, `tcp flags` three ways, `oif`,
/// and `limit rate` (under: kept with a note; `over`: left out).
#[test]
fn nft_sets_flags_and_limits_import() {
    use natsim_nat::{PortRange, TcpFlagsMatch};
    let p = |proto: &str, f: &str| {
        format!(r#"{{"payload": {{"protocol": "{proto}", "field": "{f}"}}}}"#)
    };
    let mt = |op: &str, l: String, r: &str| {
        format!(r#"{{"match": {{"op": "{op}", "left": {l}, "right": {r}}}}}"#)
    };
    let (acc, drop) = (r#"{"accept": null}"#, r#"{"drop": null}"#);
    let rules = [
        format!(
            "{}, {acc}",
            mt("==", p("tcp", "dport"), r#"{"set": [22, 80, 443]}"#)
        ),
        format!(
            "{}, {drop}",
            mt("!=", p("tcp", "dport"), r#"{"set": [22, 80]}"#)
        ),
        format!(
            "{}, {acc}",
            mt(
                "==",
                p("tcp", "dport"),
                r#"{"set": [{"range": [1000, 2000]}, 3000]}"#
            )
        ),
        format!(
            "{}, {}, {acc}",
            mt(
                "==",
                r#"{"meta": {"key": "l4proto"}}"#.into(),
                r#"{"set": ["tcp", "udp"]}"#
            ),
            mt("==", p("th", "dport"), "53")
        ),
        format!(
            "{}, {}, {acc}",
            mt("in", p("tcp", "flags"), r#""syn""#),
            mt("==", p("tcp", "dport"), "8080")
        ),
        format!(
            "{}, {acc}",
            mt(
                "==",
                format!(r#"{{"&": [{}, ["syn", "ack"]]}}"#, p("tcp", "flags")),
                r#""syn""#
            )
        ),
        format!(
            "{}, {acc}",
            mt("==", r#"{"meta": {"key": "oif"}}"#.into(), r#""eth0""#)
        ),
        format!(r#"{{"limit": {{"rate": 10, "burst": 5, "per": "second", "inv": true}}}}, {drop}"#),
        format!(
            r#"{}, {{"limit": {{"rate": 5, "burst": 10, "per": "second"}}}}, {acc}"#,
            mt("==", p("icmp", "type"), r#""echo-request""#)
        ),
    ];
    let refs: Vec<&str> = rules.iter().map(String::as_str).collect();
    let imp = import("home.json", &forward_rules(&refs), None).unwrap();
    let r = PortRange::new;
    let got: Vec<_> = imp
        .filter
        .forward
        .rules
        .iter()
        .map(|x| {
            (
                x.matches.proto,
                x.matches.dst_ports,
                x.matches.not.dst_ports,
                x.matches.tcp_flags,
            )
        })
        .collect();
    let (tcp, udp, icmp) = (Some(Proto::Tcp), Some(Proto::Udp), Some(Proto::Icmp));
    let syn = Some(TcpFlagsMatch {
        mask: 0x02,
        comp: 0x02,
    });
    let syn_of_syn_ack = Some(TcpFlagsMatch {
        mask: 0x12,
        comp: 0x02,
    });
    assert_eq!(
        got,
        [
            (tcp, Some(r(22, 22)), false, None),
            (tcp, Some(r(80, 80)), false, None),
            (tcp, Some(r(443, 443)), false, None),
            (tcp, Some(r(0, 21)), false, None),
            (tcp, Some(r(23, 79)), false, None),
            (tcp, Some(r(81, 65_535)), false, None),
            (tcp, Some(r(1000, 2000)), false, None),
            (tcp, Some(r(3000, 3000)), false, None),
            (tcp, Some(r(53, 53)), false, None),
            (udp, Some(r(53, 53)), false, None),
            (tcp, Some(r(8080, 8080)), false, syn),
            (tcp, None, false, syn_of_syn_ack),
            (None, None, false, None),
            (icmp, None, false, None),
        ]
    );
    assert_eq!(imp.ifaces, ["eth0"]);
    assert!(
        imp.notes
            .iter()
            .any(|n| n.contains("1 rule(s) left out: they match only above a rate")),
        "{:?}",
        imp.notes
    );
    assert!(
        imp.notes
            .iter()
            .any(|n| n.contains("1 rule(s) with `limit rate` taken as under the limit")),
        "{:?}",
        imp.notes
    );
}

/// Address ranges and sets as `nft -j` (1.0.6) prints them: one rule per
/// prefix.
#[test]
fn nft_address_ranges_and_sets_import() {
    use natsim_nat::Prefix;
    let imp = import(
        "a.json",
        &forward_rules(&[
            r#"{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"range": ["192.168.1.100", "192.168.1.103"]}}}, {"drop": null}"#,
            r#"{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"set": ["10.0.0.1", {"prefix": {"addr": "10.1.0.0", "len": 16}}]}}}, {"drop": null}"#,
        ]),
        None,
    )
    .unwrap();
    let got: Vec<_> = imp
        .filter
        .forward
        .rules
        .iter()
        .map(|r| (r.matches.src, r.matches.dst))
        .collect();
    let p = |a: [u8; 4], l| Some(Prefix::new(Ipv4Addr::from(a), l));
    assert_eq!(
        got,
        [
            (p([192, 168, 1, 100], 30), None),
            (None, p([10, 0, 0, 1], 32)),
            (None, p([10, 1, 0, 0], 16)),
        ]
    );
}
