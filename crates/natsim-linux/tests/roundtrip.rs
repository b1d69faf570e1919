//! Round trip: a router's engine config -> the nftables JSON verify loads
//! into the kernel -> natsim import -> the same engine config. Where nft
//! has no word for an engine match (`dst_iface_addr` is written as the
//! address it stands for), the imported config is compared by behaviour:
//! the whole probe set through the engine gives byte-identical records.

use natsim_linux::{engine_only, nft, IfaceSpec, RouterSpec, Topology};
use natsim_nat::*;
use std::net::Ipv4Addr;

fn spec(nat: NatConfig) -> RouterSpec {
    RouterSpec {
        name: "r".into(),
        ifaces: vec![
            IfaceSpec {
                name: "lan0".into(),
                addr: Ipv4Addr::new(192, 168, 1, 1),
                prefix_len: 24,
                role: Role::Inside,
            },
            IfaceSpec {
                name: "wan0".into(),
                addr: Ipv4Addr::new(203, 0, 113, 1),
                prefix_len: 24,
                role: Role::Outside,
            },
        ],
        nat,
    }
}

fn base() -> NatConfig {
    NatConfig::new(Behaviour::linux())
        .interface(IfaceId(0), Ipv4Addr::new(192, 168, 1, 1), 24, Role::Inside)
        .interface(IfaceId(1), Ipv4Addr::new(203, 0, 113, 1), 24, Role::Outside)
}

fn reimport(s: &RouterSpec) -> NatConfig {
    let json = nft::ruleset_json(s).unwrap();
    let mut imp = natsim_import::import("generated.json", &json, None).unwrap();
    let names: Vec<&str> = s.ifaces.iter().map(|i| i.name.as_str()).collect();
    imp.bind(&names).unwrap();
    let mut cfg = base();
    cfg.rules = imp.rules;
    cfg.filter = imp.filter;
    cfg
}

#[test]
fn masquerade_negation_ct_status_random_flags_and_filter_come_back_identical() {
    let mut nat = base();
    nat.rules.masquerade(
        "masq",
        IfaceId(1),
        Some(Prefix::new(Ipv4Addr::new(192, 168, 1, 0), 24)),
    );
    nat.rules.push(Rule {
        name: "hairpin".into(),
        chain: Chain::Postrouting,
        matches: Match {
            out_iface: Some(IfaceId(0)),
            ct_dnat: Some(true),
            ..Match::default()
        },
        action: Action::Masquerade {
            ports: PortRange::ALL,
            random: PortFlag::FullyRandom,
        },
    });
    nat.rules.push(Rule {
        name: "snat-random".into(),
        chain: Chain::Postrouting,
        matches: Match {
            out_iface: Some(IfaceId(1)),
            src: Some(Prefix::new(Ipv4Addr::new(10, 0, 0, 0), 8)),
            ..Match::default()
        },
        action: Action::Snat(SnatPool {
            first: Ipv4Addr::new(203, 0, 113, 1),
            last: Ipv4Addr::new(203, 0, 113, 1),
            ports: PortRange::ALL,
            pooling: Pooling::Paired,
            random: PortFlag::Random,
        }),
    });
    nat.rules.push(Rule {
        name: "ssh".into(),
        chain: Chain::Prerouting,
        matches: Match {
            proto: Some(Proto::Tcp),
            in_iface: Some(IfaceId(0)),
            dst_ports: Some(PortRange::single(2222)),
            src_ports: Some(PortRange::new(1024, 65535)),
            not: Negated {
                in_iface: true,
                ..Negated::default()
            },
            ..Match::default()
        },
        action: Action::Dnat {
            to: Ipv4Addr::new(192, 168, 1, 10),
            to_port: Some(22),
        },
    });
    nat.filter.forward = FilterChain {
        policy: FilterAction::Drop,
        rules: vec![
            FilterRule {
                name: "replies".into(),
                matches: Match {
                    ct_state: Some(CtStates::ESTABLISHED.union(CtStates::RELATED)),
                    ..Match::default()
                },
                action: FilterAction::Accept,
            },
            FilterRule {
                name: "out".into(),
                matches: Match {
                    in_iface: Some(IfaceId(0)),
                    ..Match::default()
                },
                action: FilterAction::Accept,
            },
            FilterRule {
                name: "ssh".into(),
                matches: Match {
                    proto: Some(Proto::Tcp),
                    dst_ports: Some(PortRange::single(22)),
                    ..Match::default()
                },
                action: FilterAction::Reject(RejectWith::TcpReset),
            },
        ],
    };
    let s = spec(nat.clone());
    let back = reimport(&s);
    // The generated JSON names chains prerouting before postrouting.
    let mut want = nat.rules.rules.clone();
    want.sort_by_key(|r| r.chain);
    assert_eq!(back.rules.rules, want);
    assert_eq!(back.filter, nat.filter);
}

#[test]
fn a_scenario_style_forward_behaves_the_same_after_the_round_trip() {
    let mut nat = base();
    nat.rules.masquerade("masquerade-wan0", IfaceId(1), None);
    nat.rules.forward(
        "web",
        IfaceId(1),
        Proto::Tcp,
        PortRange::single(8080),
        Ipv4Addr::new(192, 168, 1, 10),
        Some(80),
    );
    let s = spec(nat);
    let back = spec(reimport(&s));
    let a = Topology::new(s).unwrap();
    let b = Topology::new(back).unwrap();
    let (ra, rb) = (engine_only(&a).unwrap(), engine_only(&b).unwrap());
    assert!(
        ra.iter().map(|p| p.len()).sum::<usize>() > 50,
        "the probe set ran"
    );
    for (x, y) in ra.iter().zip(&rb) {
        for (p, q) in x.iter().zip(y) {
            assert_eq!(p.record, q.record, "{}", p.label);
        }
    }
}
