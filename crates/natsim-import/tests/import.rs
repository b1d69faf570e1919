//! The fixtures import as their rules say, and bad files give located
//! errors. The fixtures follow the shape iptables-save v1.8.9 prints
//! (Docker's chains as Docker 24-27 writes them); nft documents are in
//! `nft.rs`.

use natsim_import::{import, FilterAction, RejectWith, Unreachable};
use natsim_nat::{Action, Chain, IfaceId, PortFlag, PortRange, Prefix, Proto};
use std::net::Ipv4Addr;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[test]
fn docker_host_imports_its_published_ports_masquerade_and_forward_filter() {
    let imp = import("docker-host.rules", &fixture("docker-host.rules"), None).unwrap();
    assert_eq!(imp.ifaces, ["docker0"]);
    let docker0 = IfaceId(0);
    let pre: Vec<_> = imp
        .rules
        .rules
        .iter()
        .filter(|r| r.chain == Chain::Prerouting)
        .collect();
    // PREROUTING -> DOCKER, under `--dst-type LOCAL`: `-i docker0 -j
    // RETURN` returns to the end of PREROUTING, so it is an exemption
    // (no NAT) for docker0; the DNAT rules keep their own `! -i docker0`.
    assert_eq!(pre.len(), 3);
    assert_eq!(pre[0].action, Action::Accept);
    assert_eq!(pre[0].matches.in_iface, Some(docker0));
    assert!(!pre[0].matches.not.in_iface && pre[0].matches.dst_local);
    for (r, port, to, to_port) in [
        (pre[1], 8080, Ipv4Addr::new(172, 17, 0, 2), 80),
        (pre[2], 5432, Ipv4Addr::new(172, 17, 0, 3), 5432),
    ] {
        assert_eq!(r.matches.in_iface, Some(docker0));
        assert!(r.matches.not.in_iface && r.matches.dst_local);
        assert_eq!(r.matches.dst_ports, Some(PortRange::single(port)));
        assert_eq!(
            r.action,
            Action::Dnat {
                to,
                to_port: Some(to_port)
            }
        );
    }
    let post: Vec<_> = imp
        .rules
        .rules
        .iter()
        .filter(|r| r.chain == Chain::Postrouting)
        .collect();
    assert_eq!(post.len(), 3);
    assert_eq!(
        post[0].matches.src,
        Some(Prefix::new(Ipv4Addr::new(172, 17, 0, 0), 16))
    );
    assert!(post[0].matches.not.out_iface);
    // FORWARD policy DROP; DOCKER-ISOLATION-STAGE-2's `-o docker0 -j DROP`
    // under STAGE-1's `! -o docker0` can never match and is gone.
    assert_eq!(imp.filter.forward.policy, FilterAction::Drop);
    assert!(
        imp.filter
            .forward
            .rules
            .iter()
            .all(|r| r.action == FilterAction::Accept),
        "{:#?}",
        imp.filter.forward.rules
    );
    assert_eq!(imp.filter.forward.rules.len(), 5);
    // The nat OUTPUT rule is reported, not applied.
    assert!(
        imp.notes.iter().any(|n| n.contains("nat OUTPUT")),
        "{:?}",
        imp.notes
    );
}

/// Docker with a compose bridge: two conditional RETURNs in the nat DOCKER
/// chain. Folded into the later rules as negations they would need "neither
/// docker0 nor br-…"; each is an exemption of its own bridge instead.
#[test]
fn docker_with_two_bridges_exempts_each_bridge_and_keeps_both_forwards() {
    let imp = import(
        "docker-two-bridges.rules",
        &fixture("docker-two-bridges.rules"),
        None,
    )
    .unwrap();
    assert_eq!(imp.ifaces, ["br-5c1f8e2a9b3d", "docker0"]);
    let pre: Vec<_> = imp
        .rules
        .rules
        .iter()
        .filter(|r| r.chain == Chain::Prerouting)
        .collect();
    let shape: Vec<_> = pre
        .iter()
        .map(|r| {
            (
                r.matches.in_iface,
                r.matches.not.in_iface,
                r.matches.dst_local,
                r.name.as_str(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            (Some(IfaceId(0)), false, true, "line 44"),
            (Some(IfaceId(1)), false, true, "line 45"),
            (Some(IfaceId(0)), true, true, "line 46"),
            (Some(IfaceId(1)), true, true, "line 47"),
        ]
    );
    assert_eq!(
        (&pre[0].action, &pre[1].action),
        (&Action::Accept, &Action::Accept)
    );
    assert_eq!(
        pre[3].action,
        Action::Dnat {
            to: Ipv4Addr::new(172, 17, 0, 2),
            to_port: Some(6379)
        }
    );
}

/// A RETURN from a chain jumped to before other rules: its packets go on
/// with the caller's later rules (here a masquerade), not past them.
#[test]
fn a_conditional_return_resumes_in_the_calling_chain() {
    let src = "*nat\n:POSTROUTING ACCEPT [0:0]\n:SKIP - [0:0]\n\
        -A POSTROUTING -j SKIP\n\
        -A POSTROUTING -o wan0 -j MASQUERADE\n\
        -A SKIP -d 10.9.0.0/16 -j RETURN\n\
        -A SKIP -d 10.0.0.0/8 -j ACCEPT\n\
        COMMIT\n";
    let imp = import("f", src, None).unwrap();
    let r: Vec<_> = imp
        .rules
        .rules
        .iter()
        .map(|r| {
            (
                r.matches.dst.map(|d| d.len),
                r.matches.out_iface.is_some(),
                r.action.clone(),
            )
        })
        .collect();
    let masq = Action::Masquerade {
        ports: PortRange::ALL,
        random: PortFlag::Profile,
    };
    assert_eq!(
        r,
        [
            // 10.9/16 returns: masqueraded out of wan0, else untranslated,
            (Some(16), true, masq.clone()),
            (Some(16), false, Action::Accept),
            // and only the rest of 10/8 is exempt.
            (Some(8), false, Action::Accept),
            (None, true, masq),
        ]
    );
}

#[test]
fn home_router_imports_forwards_and_the_hairpin_masquerade() {
    let imp = import("home-router.rules", &fixture("home-router.rules"), None).unwrap();
    assert_eq!(imp.ifaces, ["wan0", "lan0"]);
    let r = &imp.rules.rules;
    assert_eq!(r[0].name, "web server");
    assert_eq!(r[1].matches.proto, Some(Proto::Udp));
    assert_eq!(
        r[1].action,
        Action::Dnat {
            to: Ipv4Addr::new(192, 168, 1, 10),
            to_port: None
        }
    );
    // `-o lan0 -m conntrack --ctstate DNAT -j MASQUERADE`: hairpin SNAT.
    assert_eq!(
        (r[2].matches.out_iface, r[2].matches.ct_dnat),
        (Some(IfaceId(1)), Some(true))
    );
    assert!(imp.filter.is_open());
}

#[test]
fn office_firewall_imports_one_to_one_and_expands_ipsets() {
    let sets = fixture("office.ipset");
    let imp = import(
        "office-1to1.rules",
        &fixture("office-1to1.rules"),
        Some(("office.ipset", &sets)),
    )
    .unwrap();
    let r = &imp.rules.rules;
    assert_eq!(
        r[0].action,
        Action::Dnat {
            to: Ipv4Addr::new(192, 168, 10, 20),
            to_port: None
        }
    );
    assert!(matches!(&r[1].action, Action::Snat(p) if p.first == Ipv4Addr::new(203, 0, 113, 20)));
    assert_eq!(
        (r[2].action.clone(), r[2].matches.dst),
        (
            Action::Accept,
            Some(Prefix::new(Ipv4Addr::new(10, 8, 0, 0), 16))
        )
    );
    // office-partners has two members: two accept rules.
    let from_set: Vec<_> = imp
        .filter
        .forward
        .rules
        .iter()
        .filter(|f| f.matches.src.is_some())
        .collect();
    assert_eq!(from_set.len(), 2);
    assert_eq!(
        imp.filter.forward.rules.last().unwrap().action,
        FilterAction::Reject(RejectWith::TcpReset)
    );
}

#[test]
fn an_unsupported_match_is_a_located_error_with_the_rule_and_what_is_supported() {
    let src = "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp -m recent --rcheck -j DNAT --to-destination 10.0.0.2\nCOMMIT\n";
    let e = import("bad.rules", src, None).unwrap_err();
    assert_eq!((e.loc.line, e.loc.col), (3, 25), "{e}");
    assert!(e.text.contains("recent"));
    assert!(
        e.to_string()
            .starts_with("bad.rules:3:25: match module `recent` is not modelled"),
        "{e}"
    );
    assert!(e.supported.contains("--dport"));
}

/// `-m multiport --dports 80,443,8000:8010` (UFW's `allow 80,443/tcp`,
/// DOCKER-USER rules) is one rule per port or range, first match wins;
/// `! --dports` (none of them) cannot be split so and is refused.
#[test]
fn multiport_is_one_rule_per_port_list_entry() {
    let src = "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -i wan0 -p tcp -m multiport --dports 80,443,8000:8010 -j DNAT --to-destination 10.0.0.2\nCOMMIT\n";
    let imp = import("f", src, None).unwrap();
    let ports: Vec<_> = imp
        .rules
        .rules
        .iter()
        .map(|r| r.matches.dst_ports)
        .collect();
    assert_eq!(
        ports,
        [
            Some(PortRange::single(80)),
            Some(PortRange::single(443)),
            Some(PortRange::new(8000, 8010))
        ]
    );
    let neg = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m multiport ! --dports 22,80 -j DROP\nCOMMIT\n";
    let e = import("f", neg, None).unwrap_err();
    assert!(e.message.contains("cannot negate"), "{e}");
}

#[test]
fn other_refusals_name_their_place() {
    for (src, line, col, what) in [
        ("*mangle\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j MARK --set-mark 1\nCOMMIT\n", 3, 1, "table `mangle`"),
        ("*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j DNAT --to-destination 10.0.0.2 --random\nCOMMIT\n", 3, 49, "--random"),
        ("*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j NOPE\nCOMMIT\n", 3, 1, "chain `NOPE`"),
        ("*filter\n:FORWARD DROP [0:0]\n-A FORWARD -m set --match-set ghosts src -j DROP\nCOMMIT\n", 3, 1, "ipset `ghosts`"),
        ("-A FORWARD -j DROP\n", 1, 1, "outside"),
        // A goto has no -j, yet it is no counting rule: refused, not left out.
        ("*filter\n:FORWARD ACCEPT [0:0]\n:X - [0:0]\n-A FORWARD -i wan0 -g X\n-A X -j DROP\nCOMMIT\n", 4, 20, "`-g`"),
    ] {
        let e = import("f", src, None).unwrap_err();
        assert_eq!((e.loc.line, e.loc.col), (line, col), "{e}");
        assert!(e.message.contains(what), "{e}");
    }
}

/// `--random` and `--random-fully` are per-rule port flags, in both
/// readers (iptables-save and `nft -j`).
#[test]
fn random_port_flags_import_per_rule() {
    let src = "*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -o wan0 -j MASQUERADE --random-fully\n-A POSTROUTING -o wan1 -j SNAT --to-source 198.51.100.7 --random\n-A POSTROUTING -o wan2 -j MASQUERADE\nCOMMIT\n";
    let imp = import("r.rules", src, None).unwrap();
    let flags: Vec<PortFlag> = imp
        .rules
        .rules
        .iter()
        .map(|r| match &r.action {
            Action::Masquerade { random, .. } => *random,
            Action::Snat(p) => p.random,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        flags,
        [PortFlag::FullyRandom, PortFlag::Random, PortFlag::Profile]
    );
    let json = r#"{"nftables":[{"table":{"family":"ip","name":"nat"}},
      {"chain":{"family":"ip","table":"nat","name":"post","type":"nat","hook":"postrouting","prio":100,"policy":"accept"}},
      {"rule":{"family":"ip","table":"nat","chain":"post","expr":[
        {"match":{"op":"==","left":{"meta":{"key":"oifname"}},"right":"wan0"}},
        {"masquerade":{"flags":["random","persistent"]}}]}}]}"#;
    let imp = import("r.json", json, None).unwrap();
    assert!(matches!(
        imp.rules.rules[0].action,
        Action::Masquerade {
            random: PortFlag::Random,
            ..
        }
    ));
}

/// OpenWrt fw3 writes a port forward as a WAN DNAT plus a "(reflection)"
/// DNAT and SNAT on br-lan. The printed block must not call the LAN
/// bridge an uplink because of that SNAT.
#[test]
fn openwrt_fw3_reflection_leaves_the_lan_inside_in_the_printed_block() {
    let src = std::fs::read_to_string(format!(
        "{}/../natsim-cli/tests/fixtures/openwrt-fw3.rules",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let imp = import("openwrt-fw3.rules", &src, None).unwrap();
    assert_eq!(imp.rules.rules.len(), 4);
    let block = natsim_import::render::router_block(&imp, "openwrt-fw3.rules", None);
    assert!(
        block.contains(
            r#"{ name = "br-lan", segment = "SEGMENT", address = "ADDRESS/LEN", role = "inside" }"#
        ),
        "{block}"
    );
    assert!(
        block.contains(
            r#"{ name = "eth0.2", segment = "SEGMENT", address = "ADDRESS/LEN", role = "outside" }"#
        ),
        "{block}"
    );
}

/// iptables REJECT's codes as iptables-save prints them (RHEL's default
/// ruleset ends INPUT and FORWARD with `--reject-with icmp-host-prohibited`).
#[test]
fn an_iptables_reject_keeps_its_icmp_code() {
    for (with, code) in [
        ("icmp-host-prohibited", Unreachable::HostProhibited),
        ("icmp-admin-prohibited", Unreachable::AdminProhibited),
        ("icmp-net-unreachable", Unreachable::Net),
        ("icmp-port-unreachable", Unreachable::Port),
    ] {
        let src = format!(
            "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -j REJECT --reject-with {with}\nCOMMIT\n"
        );
        let imp = import("f", &src, None).unwrap_or_else(|e| panic!("{with}: {e}"));
        assert_eq!(
            imp.filter.forward.rules[0].action,
            FilterAction::Reject(RejectWith::Icmp(code)),
            "{with}"
        );
    }
    let e = import("f", "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -j REJECT --reject-with icmp6-adm-prohibited\nCOMMIT\n", None).unwrap_err();
    assert!(e.message.contains("icmp6-adm-prohibited"), "{e}");
}

/// Logging rules change no packet's fate (LOG is non-terminating,
/// iptables-extensions(8)), whatever their matches: `-m limit` under
/// `-j LOG`, and a jump to a chain that only logs and returns, are left
/// out with a note; a LOGDROP chain's DROP stays.
#[test]
fn logging_rules_are_left_out_with_a_note() {
    let src = std::fs::read_to_string(format!(
        "{}/../natsim-cli/tests/fixtures/logging-router.rules",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let imp = import("logging-router.rules", &src, None).unwrap();
    let input: Vec<_> = imp.filter.input.rules.iter().map(|r| r.action).collect();
    assert_eq!(
        input,
        [
            FilterAction::Accept,
            FilterAction::Accept,
            FilterAction::Accept,
            FilterAction::Drop
        ]
    );
    assert_eq!(imp.filter.forward.rules.len(), 3);
    assert!(
        imp.notes
            .iter()
            .any(|n| n.starts_with("5 rule(s) left out")),
        "{:?}",
        imp.notes
    );
    // An undeclared chain is still an error, even for a logging rule.
    let e = import(
        "f",
        "*filter\n:INPUT ACCEPT [0:0]\n-A INPTU -j LOG\nCOMMIT\n",
        None,
    )
    .unwrap_err();
    assert!(e.message.contains("INPTU"), "{e}");
}

/// A NAT rule an earlier rule covers never runs in the kernel either:
/// wg-quick's PostUp run twice adds its MASQUERADE twice, and firewalld
/// follows `oifname "eth0" jump nat_POST_public` (which masquerades) with
/// `oifname "eth0" return`. Both are left out with a located note, where
/// the engine would refuse the configuration (found by a new user).
#[test]
fn a_covered_nat_rule_is_left_out_with_a_located_note() {
    for (src, line) in [
        (
            "*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -o eth0 -j MASQUERADE\n-A POSTROUTING -o eth0 -j MASQUERADE\nCOMMIT\n",
            4,
        ),
        (
            "*nat\n:POSTROUTING ACCEPT [0:0]\n:POST_public - [0:0]\n-A POSTROUTING -o eth0 -j POST_public\n-A POSTROUTING -o eth0 -j RETURN\n-A POST_public -j MASQUERADE\nCOMMIT\n",
            5,
        ),
    ] {
        let imp = import("f.rules", src, None).unwrap();
        assert_eq!(imp.rules.rules.len(), 1, "{:#?}", imp.rules.rules);
        assert!(matches!(imp.rules.rules[0].action, Action::Masquerade { .. }));
        let note = format!("f.rules:{line}: left out: ");
        assert!(
            imp.notes.iter().any(|n| n.starts_with(&note) && n.contains("can never match")),
            "{:?}",
            imp.notes
        );
        let cfg = natsim_nat::NatConfig::new(natsim_nat::Behaviour::linux());
        let mut cfg = cfg.interface(IfaceId(0), Ipv4Addr::new(203, 0, 113, 1), 24, natsim_nat::Role::Outside);
        cfg.rules = imp.rules.clone();
        natsim_nat::NatEngine::new(cfg).expect("the engine takes it");
    }
}
