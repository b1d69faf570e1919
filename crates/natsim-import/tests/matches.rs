//! Matches beyond addresses and ports, as iptables-save and nft write
//! them: ICMP types, TCP flags, address ranges, rate limits, interface
//! wildcards and the raw table.

use natsim_import::{import, FilterAction};
use natsim_nat::{IfaceId, Prefix, Proto};
use std::net::Ipv4Addr;

/// `--icmp-type` as iptables-save writes it (numbers, `TYPE/CODE`) and as
/// people type it (libxt_icmp's names): a match field, negation kept, and
/// `any` the same as no type at all (xt_icmp's type 255).
#[test]
fn icmp_type_matches_import_by_name_number_and_code() {
    use natsim_nat::IcmpType;
    let src = "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n\
        -A INPUT -p icmp -m icmp --icmp-type 8 -j ACCEPT\n\
        -A INPUT -p icmp --icmp-type fragmentation-needed -j ACCEPT\n\
        -A INPUT -p icmp ! --icmp-type echo-reply -j DROP\n\
        -A INPUT -p icmp -m icmp --icmp-type 3/1 -j ACCEPT\n\
        -A INPUT -p icmp --icmp-type any -j ACCEPT\n\
        COMMIT\n";
    let imp = import("icmp.rules", src, None).unwrap();
    let got: Vec<_> = imp
        .filter
        .input
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
            (icmp, t(3, Some(4)), false),
            (icmp, t(0, None), true),
            (icmp, t(3, Some(1)), false),
            (icmp, None, false),
        ]
    );
    for (bad, col, says) in [
        ("-A INPUT --icmp-type 8 -j ACCEPT", 10, "needs -p icmp"),
        (
            "-A INPUT -p tcp --icmp-type 8 -j ACCEPT",
            17,
            "needs -p icmp",
        ),
        (
            "-A INPUT -p icmp --icmp-type echo -j ACCEPT",
            30,
            "not an ICMP type",
        ),
        (
            "-A INPUT -p icmp --icmp-type 3/x -j ACCEPT",
            30,
            "not an ICMP type",
        ),
        (
            "-A INPUT -p icmp ! --icmp-type any -j ACCEPT",
            32,
            "can never match",
        ),
    ] {
        let src = format!("*filter\n:INPUT DROP [0:0]\n{bad}\nCOMMIT\n");
        let e = import("bad.rules", &src, None).unwrap_err();
        assert_eq!((e.loc.line, e.loc.col), (3, col), "{bad}: {e}");
        assert!(e.message.contains(says), "{bad}: {e}");
    }
}

/// Interface wildcards (`ppp+`, xt's `ifname_compare`) bind to every
/// interface of the router whose name starts with the stem: one rule per
/// interface in the router's order, a negation to the interfaces it
/// leaves, none at all to a located note; a copy an earlier rule covers
/// is left out as the kernel never reaches it.
#[test]
fn interface_wildcards_expand_at_binding() {
    let src = "*nat\n:POSTROUTING ACCEPT [0:0]\n\
        -A POSTROUTING -o ppp+ -j MASQUERADE\n\
        -A POSTROUTING -o eth0 -j MASQUERADE\n\
        -A POSTROUTING -o eth+ -j MASQUERADE\n\
        COMMIT\n*filter\n:FORWARD DROP [0:0]\n\
        -A FORWARD -i lan0 -o ppp+ -j ACCEPT\n\
        -A FORWARD ! -i ppp+ -j ACCEPT\n\
        -A FORWARD -i wg+ -j DROP\n\
        COMMIT\n";
    let mut imp = import("wild.rules", src, None).unwrap();
    let router = ["lan0", "ppp0", "ppp1", "eth0", "eth1"];
    imp.bind(&router).unwrap();
    let id = |n: &str| Some(IfaceId(router.iter().position(|x| *x == n).unwrap() as u16));
    let outs: Vec<_> = imp
        .rules
        .rules
        .iter()
        .map(|r| (r.matches.out_iface, r.matches.not.out_iface))
        .collect();
    assert_eq!(
        outs,
        [
            (id("ppp0"), false),
            (id("ppp1"), false),
            (id("eth0"), false),
            (id("eth1"), false)
        ]
    );
    let fwd: Vec<_> = imp
        .filter
        .forward
        .rules
        .iter()
        .map(|r| {
            (
                r.matches.in_iface,
                r.matches.not.in_iface,
                r.matches.out_iface,
            )
        })
        .collect();
    assert_eq!(
        fwd,
        [
            (id("lan0"), false, id("ppp0")),
            (id("lan0"), false, id("ppp1")),
            (id("lan0"), false, None),
            (id("eth0"), false, None),
            (id("eth1"), false, None),
        ]
    );
    assert!(
        imp.notes
            .iter()
            .any(|n| n.contains("1 rule(s) left out: their interface wildcard")),
        "{:?}",
        imp.notes
    );
    assert!(
        imp.notes.iter().any(|n| n.contains("can never match")),
        "{:?}",
        imp.notes
    );
    // A negated wildcard naming one interface is that interface negated.
    let mut one = import(
        "w.rules",
        "*filter\n:FORWARD DROP [0:0]\n-A FORWARD ! -i wg+ -j ACCEPT\nCOMMIT\n",
        None,
    )
    .unwrap();
    one.bind(&["lan0", "wg0"]).unwrap();
    let m = &one.filter.forward.rules[0].matches;
    assert_eq!((m.in_iface, m.not.in_iface), (Some(IfaceId(1)), true));
    // An exact name the router lacks is still an error.
    let mut bad = import(
        "b.rules",
        "*filter\n:FORWARD DROP [0:0]\n-A FORWARD -i wan9 -j ACCEPT\nCOMMIT\n",
        None,
    )
    .unwrap();
    assert_eq!(bad.bind(&["lan0"]).unwrap_err().name, "wan9");
}

/// `--syn` and `--tcp-flags MASK COMP` (xt_tcpudp), negation kept; flags
/// outside the mask are not compared, so COMP is cut to the mask.
#[test]
fn tcp_flag_matches_import() {
    use natsim_nat::TcpFlagsMatch;
    let src = "*filter\n:INPUT DROP [0:0]\n\
        -A INPUT -p tcp -m tcp --syn -j ACCEPT\n\
        -A INPUT -p tcp ! --syn -m conntrack --ctstate NEW -j DROP\n\
        -A INPUT -p tcp -m tcp --tcp-flags ALL NONE -j DROP\n\
        -A INPUT -p tcp --tcp-flags SYN,RST SYN,RST,ACK -j DROP\n\
        COMMIT\n";
    let imp = import("flags.rules", src, None).unwrap();
    let got: Vec<_> = imp
        .filter
        .input
        .rules
        .iter()
        .map(|r| (r.matches.tcp_flags, r.matches.not.tcp_flags))
        .collect();
    let f = |mask, comp| Some(TcpFlagsMatch { mask, comp });
    assert_eq!(
        got,
        [
            (Some(TcpFlagsMatch::SYN), false),
            (Some(TcpFlagsMatch::SYN), true),
            (f(0xff, 0), false),
            (f(0x06, 0x06), false),
        ]
    );
    for (bad, col, says) in [
        ("-A INPUT --syn -j DROP", 10, "needs -p tcp"),
        (
            "-A INPUT -p udp --tcp-flags SYN SYN -j DROP",
            17,
            "needs -p tcp",
        ),
        (
            "-A INPUT -p tcp --tcp-flags SYN,BOGUS SYN -j DROP",
            17,
            "not a list of TCP flags",
        ),
    ] {
        let src = format!("*filter\n:INPUT DROP [0:0]\n{bad}\nCOMMIT\n");
        let e = import("bad.rules", &src, None).unwrap_err();
        assert_eq!((e.loc.line, e.loc.col), (3, col), "{bad}: {e}");
        assert!(e.message.contains(says), "{bad}: {e}");
    }
}

/// `-m iprange` becomes one rule per prefix of the range (a negated one,
/// of what it leaves), and `-m limit` on a verdict rule is taken as under
/// its limit, with a note.
#[test]
fn ipranges_and_limits_import() {
    let src = "*filter\n:FORWARD DROP [0:0]\n\
        -A FORWARD -m iprange --src-range 192.168.1.100-192.168.1.103 -j DROP\n\
        -A FORWARD -m iprange ! --dst-range 0.0.0.0-127.255.255.255 -j DROP\n\
        -A FORWARD -p icmp -m limit --limit 1/sec --limit-burst 4 -j ACCEPT\n\
        COMMIT\n";
    let imp = import("r.rules", src, None).unwrap();
    let got: Vec<_> = imp
        .filter
        .forward
        .rules
        .iter()
        .map(|r| (r.matches.src, r.matches.dst, r.matches.proto))
        .collect();
    let p = |a: [u8; 4], l| Some(Prefix::new(Ipv4Addr::from(a), l));
    assert_eq!(
        got,
        [
            (p([192, 168, 1, 100], 30), None, None),
            (None, p([128, 0, 0, 0], 1), None),
            (None, None, Some(Proto::Icmp)),
        ]
    );
    assert!(
        imp.notes
            .iter()
            .any(|n| n.contains("1 rule(s) with `-m limit` taken as under the limit")),
        "{:?}",
        imp.notes
    );
    let e = import(
        "b.rules",
        "*filter\n:FORWARD DROP [0:0]\n-A FORWARD -m iprange --src-range 10.0.0.9-10.0.0.1 -j DROP\nCOMMIT\n",
        None,
    )
    .unwrap_err();
    assert!(e.message.contains("not an address range"), "{e}");
}

/// The raw table's PREROUTING (Docker 28's direct-access rules) becomes
/// the raw chain; REJECT, conntrack state and `-o` are refused there (the
/// raw table runs before conntrack and routing; xt_REJECT is filter-only).
#[test]
fn the_raw_table_prerouting_imports_and_refuses_what_cannot_run_there() {
    let src = "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
        -A PREROUTING -d 172.17.0.2/32 ! -i docker0 -j DROP\n\
        -A OUTPUT -o docker0 -j ACCEPT\n\
        COMMIT\n";
    let imp = import("raw.rules", src, None).unwrap();
    let raw = &imp.filter.raw;
    assert_eq!(raw.rules.len(), 1);
    assert_eq!(raw.rules[0].action, FilterAction::Drop);
    let m = &raw.rules[0].matches;
    assert_eq!(m.dst, Some(Prefix::new(Ipv4Addr::new(172, 17, 0, 2), 32)));
    assert_eq!((m.in_iface, m.not.in_iface), (Some(IfaceId(0)), true));
    assert!(
        imp.notes
            .iter()
            .any(|n| n.starts_with("raw OUTPUT: 1 rule(s)")),
        "{:?}",
        imp.notes
    );
    for (bad, says) in [
        (
            "-A PREROUTING -p tcp -j REJECT",
            "not modelled in the raw table",
        ),
        (
            "-A PREROUTING -m conntrack --ctstate NEW -j DROP",
            "before conntrack",
        ),
        (
            "-A PREROUTING -o eth0 -j DROP",
            "before conntrack and routing",
        ),
    ] {
        let src = format!("*raw\n:PREROUTING ACCEPT [0:0]\n{bad}\nCOMMIT\n");
        let e = import("bad.rules", &src, None).unwrap_err();
        assert_eq!(e.loc.line, 3, "{bad}: {e}");
        assert!(e.message.contains(says), "{bad}: {e}");
    }
}
