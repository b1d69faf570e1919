//! Byte-level tests of the engine's state and limits, frame by frame:
//! filtering, ICMP queries and errors, checksums and malformed input,
//! port and table exhaustion, timeouts and port choice. The translation
//! kinds themselves are in `translation.rs`.

mod common;
use common::*;
use natsim_nat::*;
use std::net::Ipv4Addr;

const T0: Instant = Instant::ZERO;

#[test]
fn filtering_behaviours_decide_who_may_use_a_mapping() {
    // (profile, other port same addr admitted?, other addr admitted?)
    let cases = [
        (Behaviour::full_cone(), true, true),
        (Behaviour::restricted_cone(), true, false),
        (Behaviour::port_restricted_cone(), false, false),
        (Behaviour::symmetric(), false, false),
    ];
    for (b, same_addr, other_addr) in cases {
        let name = b.name;
        let mut nat = masq(b);
        let mut out = udp((HOST_A, 4000), (REMOTE, 3478), b"");
        fwd(&mut nat, T0, LAN, &mut out);
        let ext = flow_of(&out).src;
        let mut p1 = udp((REMOTE, 3479), (ext.addr, ext.port), b"");
        let v1 = run(&mut nat, T0, WAN, &mut p1).0;
        let mut p2 = udp((REMOTE2, 3478), (ext.addr, ext.port), b"");
        let v2 = run(&mut nat, T0, WAN, &mut p2).0;
        assert_eq!(
            matches!(v1, Verdict::Forward { .. }),
            same_addr,
            "{name}: other port"
        );
        assert_eq!(
            matches!(v2, Verdict::Forward { .. }),
            other_addr,
            "{name}: other address"
        );
        if same_addr {
            assert_eq!(flow_of(&p1).dst, Endpoint::new(HOST_A, 4000));
        }
    }
}

#[test]
fn icmp_echo_identifiers_are_mapped_like_ports() {
    let mut nat = masq(Behaviour::linux());
    let mut req = ping(HOST_A, REMOTE, 0x1234, true);
    fwd(&mut nat, T0, LAN, &mut req);
    let f = flow_of(&req);
    assert_eq!(
        f.src,
        Endpoint::new(WAN_ADDR, 0x1234),
        "linux keeps a free identifier"
    );
    verify_checksums(&req).unwrap();
    // a second host with the same identifier to the same destination
    let mut req2 = ping(HOST_B, REMOTE, 0x1234, true);
    fwd(&mut nat, T0, LAN, &mut req2);
    let id2 = flow_of(&req2).src.port;
    assert_ne!(id2, 0x1234);
    let mut rep = ping(REMOTE, WAN_ADDR, id2, false);
    assert_eq!(
        run(&mut nat, T0, WAN, &mut rep).0,
        Verdict::Forward {
            iface: LAN,
            next_hop: HOST_B
        }
    );
    assert_eq!(flow_of(&rep).dst, Endpoint::new(HOST_B, 0x1234));
    verify_checksums(&rep).unwrap();
}

#[test]
fn icmp_errors_are_translated_outer_and_inner_with_the_inner_udp_checksum_restored() {
    let mut nat = masq(Behaviour::linux());
    let original = udp((HOST_A, 5000), (REMOTE, 9999), b"hello");
    let mut out = original.clone();
    fwd(&mut nat, T0, LAN, &mut out);
    // the remote answers port unreachable, quoting the translated datagram
    let mut err = icmp_error(REMOTE, WAN_ADDR, 3, 3, &out, 28 + 5);
    let (v, steps) = run(&mut nat, T0, WAN, &mut err);
    assert_eq!(
        v,
        Verdict::Forward {
            iface: LAN,
            next_hop: HOST_A
        }
    );
    verify_checksums(&err).unwrap();
    assert!(steps
        .iter()
        .any(|s| matches!(s, NatStep::IcmpInnerTranslated { .. })));
    assert_eq!(flow_of(&err).dst.addr, HOST_A);
    // the quoted packet is now byte-identical to what the host sent
    let quoted = &err[14 + 20 + 8..];
    assert_eq!(quoted, &original[14..14 + 28 + 5]);
}

#[test]
fn a_time_exceeded_from_a_router_on_the_path_keeps_its_source() {
    let mut nat = masq(Behaviour::linux());
    let mut out = tcp((HOST_A, 40000), (REMOTE, 80), "S", b"");
    fwd(&mut nat, T0, LAN, &mut out);
    let hop = Ipv4Addr::new(203, 0, 113, 254);
    let mut err = icmp_error(hop, WAN_ADDR, 11, 0, &out, 28);
    assert_eq!(
        run(&mut nat, T0, WAN, &mut err).0,
        Verdict::Forward {
            iface: LAN,
            next_hop: HOST_A
        }
    );
    let f = flow_of(&err);
    assert_eq!((f.src.addr, f.dst.addr), (hop, HOST_A));
    verify_checksums(&err).unwrap();
}

#[test]
fn an_icmp_error_about_no_known_connection_is_dropped() {
    let mut nat = masq(Behaviour::linux());
    let stray = udp((WAN_ADDR, 5555), (REMOTE, 9), b"");
    let mut err = icmp_error(REMOTE, WAN_ADDR, 3, 3, &stray, 28);
    assert_eq!(
        run(&mut nat, T0, WAN, &mut err).0,
        Verdict::Drop(DropReason::IcmpErrorNoMatch)
    );
}

#[test]
fn an_error_from_an_inside_server_goes_out_with_the_public_address() {
    let mut cfg = config(Behaviour::linux());
    cfg.rules
        .forward("dns", WAN, Proto::Udp, PortRange::single(53), HOST_A, None);
    let mut nat = NatEngine::new(cfg).unwrap();
    let mut q = udp((REMOTE, 40000), (WAN_ADDR, 53), b"q");
    fwd(&mut nat, T0, WAN, &mut q);
    let mut err = icmp_error(HOST_A, REMOTE, 3, 3, &q, 28);
    assert_eq!(run(&mut nat, T0, LAN, &mut err).0, fwd_wan());
    let f = flow_of(&err);
    assert_eq!((f.src.addr, f.dst.addr), (WAN_ADDR, REMOTE));
    let quoted_dst = Ipv4Addr::new(
        err[14 + 28 + 16],
        err[14 + 28 + 17],
        err[14 + 28 + 18],
        err[14 + 28 + 19],
    );
    assert_eq!(quoted_dst, WAN_ADDR);
    verify_checksums(&err).unwrap();
}

#[test]
fn a_zero_udp_checksum_stays_zero() {
    let mut nat = masq(Behaviour::linux());
    let mut f = udp((HOST_A, 5000), (REMOTE, 53), b"q");
    f[14 + 20 + 6] = 0;
    f[14 + 20 + 7] = 0;
    fwd(&mut nat, T0, LAN, &mut f);
    assert_eq!(&f[14 + 20 + 6..14 + 20 + 8], &[0, 0]);
    verify_checksums(&f).unwrap();
}

#[test]
fn an_802_1q_tag_is_kept_intact() {
    let mut nat = masq(Behaviour::linux());
    let plain = udp((HOST_A, 5000), (REMOTE, 53), b"q");
    let mut tagged = plain[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x20, 0x07]);
    tagged.extend_from_slice(&plain[12..]);
    let (v, _) = run(&mut nat, T0, LAN, &mut tagged);
    assert_eq!(v, fwd_wan());
    assert_eq!(&tagged[12..16], &[0x81, 0x00, 0x20, 0x07]);
    let mut untagged = tagged[..12].to_vec();
    untagged.extend_from_slice(&tagged[16..]);
    assert_eq!(flow_of(&untagged).src.addr, WAN_ADDR);
    verify_checksums(&untagged).unwrap();
}

#[test]
fn malformed_frames_are_verdicts() {
    let mut nat = masq(Behaviour::linux());
    let good = tcp((HOST_A, 40000), (REMOTE, 80), "S", b"");
    for n in 0..good.len() {
        let mut f = good[..n].to_vec();
        let (v, _) = run(&mut nat, T0, LAN, &mut f);
        assert!(v.is_drop(), "truncated to {n} bytes: {v:?}");
    }
    let mut frag = udp((HOST_A, 1), (REMOTE, 2), b"x");
    frag[14 + 6] |= 0x20; // more fragments
                          // Linux holds a first fragment until its datagram is whole.
    assert_eq!(run(&mut nat, T0, LAN, &mut frag).0, Verdict::Held);
    let mut v6 = good.clone();
    v6[12] = 0x86;
    v6[13] = 0xdd;
    assert_eq!(
        run(&mut nat, T0, LAN, &mut v6).0,
        Verdict::Drop(DropReason::NotIpv4 { ethertype: 0x86dd })
    );
    let mut bad_len = good.clone();
    bad_len[14 + 2] = 0;
    bad_len[14 + 3] = 10; // total length < header
    assert!(run(&mut nat, T0, LAN, &mut bad_len).0.is_drop());
}

#[test]
fn port_exhaustion_is_a_clear_drop_and_leaves_old_flows_alone() {
    let mut cfg = config(Behaviour::port_restricted_cone());
    cfg.rules.push(Rule {
        name: "tiny-pool".into(),
        chain: Chain::Postrouting,
        matches: Match {
            out_iface: Some(WAN),
            ..Match::default()
        },
        action: Action::Snat(SnatPool {
            first: WAN_ADDR,
            last: WAN_ADDR,
            ports: PortRange::new(2000, 2001),
            pooling: Pooling::Paired,
            random: natsim_nat::PortFlag::Profile,
        }),
    });
    let mut nat = NatEngine::new(cfg).unwrap();
    for p in [1, 2] {
        let mut f = udp((HOST_A, p), (REMOTE, 9), b"");
        assert!(matches!(
            run(&mut nat, T0, LAN, &mut f).0,
            Verdict::Forward { .. }
        ));
    }
    let mut third = udp((HOST_A, 3), (REMOTE, 9), b"");
    assert_eq!(
        run(&mut nat, T0, LAN, &mut third).0,
        Verdict::Drop(DropReason::PortsExhausted { rule: RuleId(0) })
    );
    let mut old = udp((HOST_A, 1), (REMOTE, 9), b"again");
    assert!(matches!(
        run(&mut nat, T0, LAN, &mut old).0,
        Verdict::Forward { .. }
    ));
}

#[test]
fn a_full_table_evicts_the_oldest_unreplied_entry_before_established_ones() {
    let mut cfg = config(Behaviour::linux());
    cfg.rules.masquerade("masq", WAN, None);
    cfg.capacity = 2;
    let mut nat = NatEngine::new(cfg).unwrap();
    // an established (replied) flow
    let mut a = udp((HOST_A, 1), (REMOTE, 9), b"");
    fwd(&mut nat, T0, LAN, &mut a);
    let ea = flow_of(&a).src;
    let mut ra = udp((REMOTE, 9), (ea.addr, ea.port), b"");
    fwd(&mut nat, T0, WAN, &mut ra);
    // an unreplied one, then a third flow
    let mut b = udp((HOST_A, 2), (REMOTE, 9), b"");
    fwd(&mut nat, T0, LAN, &mut b);
    let mut c = udp((HOST_A, 3), (REMOTE, 9), b"");
    let (v, steps) = run(&mut nat, T0, LAN, &mut c);
    assert!(matches!(v, Verdict::Forward { .. }));
    assert!(steps.iter().any(|s| matches!(s, NatStep::ConnEnded { reason: EndReason::Evicted, flow, .. } if flow.src.port == 2)));
    assert_eq!(nat.stats().udp.evicted, 1);
    // the replied flow still translates
    let mut ra2 = udp((REMOTE, 9), (ea.addr, ea.port), b"");
    assert!(matches!(
        run(&mut nat, T0, WAN, &mut ra2).0,
        Verdict::Forward { .. }
    ));
    // reply to flow c, then a fourth flow finds nothing evictable
    let ec = flow_of(&c).src;
    let mut rc = udp((REMOTE, 9), (ec.addr, ec.port), b"");
    fwd(&mut nat, T0, WAN, &mut rc);
    let mut d = udp((HOST_A, 4), (REMOTE, 9), b"");
    assert_eq!(
        run(&mut nat, T0, LAN, &mut d).0,
        Verdict::Drop(DropReason::TableFull)
    );
}

#[test]
fn tcp_idle_timeouts_follow_the_connection_state() {
    let mut nat = masq(Behaviour::rfc_recommended());
    let mut syn = tcp((HOST_A, 40000), (REMOTE, 80), "S", b"");
    fwd(&mut nat, T0, LAN, &mut syn);
    let ext = flow_of(&syn).src;
    let mut synack = tcp((REMOTE, 80), (ext.addr, ext.port), "SA", b"");
    fwd(&mut nat, T0, WAN, &mut synack);
    let mut ack = tcp((HOST_A, 40000), (REMOTE, 80), "A", b"");
    let (_, steps) = run(&mut nat, T0, LAN, &mut ack);
    assert!(steps.iter().any(|s| matches!(
        s,
        NatStep::TcpStateChanged {
            to: TcpState::Established,
            ..
        }
    )));
    let est = nat.connections().next().unwrap();
    assert_eq!(
        est.expires,
        T0 + Duration::from_secs(2 * 3600 + 4 * 60),
        "RFC 5382 REQ-5"
    );
    // idle just under 2 h 4 min: still there
    nat.handle_timeout(Instant::from_secs(7439), &mut ());
    assert_eq!(nat.connection_count(), 1);
    nat.handle_timeout(Instant::from_secs(7440), &mut ());
    assert_eq!(nat.connection_count(), 0);
}

#[test]
fn a_fin_exchange_shortens_the_timeout_to_the_transitory_one() {
    let mut nat = masq(Behaviour::linux());
    let mut syn = tcp((HOST_A, 40000), (REMOTE, 80), "S", b"");
    fwd(&mut nat, T0, LAN, &mut syn);
    let ext = flow_of(&syn).src;
    for (dir, flags) in [
        (WAN, "SA"),
        (LAN, "A"),
        (LAN, "FA"),
        (WAN, "FA"),
        (LAN, "A"),
    ] {
        let mut f = if dir == WAN {
            tcp((REMOTE, 80), (ext.addr, ext.port), flags, b"")
        } else {
            tcp((HOST_A, 40000), (REMOTE, 80), flags, b"")
        };
        fwd(&mut nat, T0, dir, &mut f);
    }
    let c = nat.connections().next().unwrap();
    assert_eq!(c.tcp_state, Some(TcpState::TimeWait));
    assert_eq!(c.expires, T0 + Duration::from_secs(120));
    assert!(nat.poll_at().unwrap() <= c.expires);
}

#[test]
fn random_port_selection_is_determined_by_the_seed() {
    let ports = |seed: u64| {
        let mut b = Behaviour::full_cone();
        b.ports.strategy = PortStrategy::Random;
        let mut c = config(b);
        c.seed = seed;
        c.rules.masquerade("m", WAN, None);
        let mut nat = NatEngine::new(c).unwrap();
        (0..20u16)
            .map(|i| {
                let mut f = udp((HOST_A, 3000 + i), (REMOTE, 9), b"");
                fwd(&mut nat, T0, LAN, &mut f);
                flow_of(&f).src.port
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(ports(1), ports(1));
    assert_ne!(ports(1), ports(2));
}

#[test]
fn parity_is_preserved_when_the_profile_asks() {
    let mut nat = masq(Behaviour::rfc_recommended());
    let mut a = udp((HOST_A, 5001), (REMOTE, 9), b"");
    fwd(&mut nat, T0, LAN, &mut a);
    let mut b = udp((HOST_B, 5001), (REMOTE, 9), b"");
    fwd(&mut nat, T0, LAN, &mut b);
    let pb = flow_of(&b).src.port;
    assert_ne!(pb, 5001);
    assert_eq!(pb % 2, 1, "RFC 4787 REQ-4");
}

#[test]
fn low_ports_stay_low_with_range_class_preservation() {
    let mut nat = masq(Behaviour::rfc_recommended());
    let mut a = udp((HOST_A, 123), (REMOTE, 123), b"");
    fwd(&mut nat, T0, LAN, &mut a);
    let mut b = udp((HOST_B, 123), (REMOTE, 123), b"");
    fwd(&mut nat, T0, LAN, &mut b);
    assert!(flow_of(&b).src.port < 1024, "RFC 4787 REQ-3");
}

#[test]
fn contradictory_rule_sets_are_rejected_with_the_rule_named() {
    let mut cfg = config(Behaviour::linux());
    cfg.rules.forward(
        "all-smtp",
        WAN,
        Proto::Tcp,
        PortRange::new(20, 30),
        HOST_A,
        None,
    );
    cfg.rules.forward(
        "smtp-to-b",
        WAN,
        Proto::Tcp,
        PortRange::single(25),
        HOST_B,
        None,
    );
    assert_eq!(
        NatEngine::new(cfg).unwrap_err(),
        ConfigError::Shadowed {
            rule: RuleId(1),
            by: RuleId(0)
        }
    );
    let mut cfg = config(Behaviour::linux());
    cfg.rules.push(Rule {
        name: "dnat-in-post".into(),
        chain: Chain::Postrouting,
        matches: Match::default(),
        action: Action::Dnat {
            to: HOST_A,
            to_port: None,
        },
    });
    assert_eq!(
        NatEngine::new(cfg).unwrap_err(),
        ConfigError::ActionNotAllowedInChain { rule: RuleId(0) }
    );
    let mut cfg = config(Behaviour::linux());
    cfg.rules.masquerade("m", IfaceId(9), None);
    assert!(matches!(
        NatEngine::new(cfg).unwrap_err(),
        ConfigError::UnknownInterface { .. }
    ));
    let mut b = Behaviour::full_cone();
    b.ports.allow_overloading = true;
    assert_eq!(
        NatEngine::new(config(b)).unwrap_err(),
        ConfigError::OverloadingNeedsApdf
    );
}

#[test]
fn the_router_answers_for_pool_addresses() {
    let mut cfg = config(Behaviour::linux());
    cfg.rules.push(Rule {
        name: "pool".into(),
        chain: Chain::Postrouting,
        matches: Match {
            out_iface: Some(WAN),
            ..Match::default()
        },
        action: Action::Snat(SnatPool {
            first: Ipv4Addr::new(203, 0, 113, 100),
            last: Ipv4Addr::new(203, 0, 113, 103),
            ports: PortRange::EPHEMERAL,
            pooling: Pooling::Paired,
            random: natsim_nat::PortFlag::Profile,
        }),
    });
    let nat = NatEngine::new(cfg).unwrap();
    assert!(nat.owns(Ipv4Addr::new(203, 0, 113, 102)));
    assert!(!nat.owns(Ipv4Addr::new(203, 0, 113, 104)));
}

#[test]
fn paired_pooling_keeps_one_external_address_per_inside_host() {
    let mut cfg = config(Behaviour::port_restricted_cone());
    cfg.rules.push(Rule {
        name: "pool".into(),
        chain: Chain::Postrouting,
        matches: Match {
            out_iface: Some(WAN),
            ..Match::default()
        },
        action: Action::Snat(SnatPool {
            first: Ipv4Addr::new(203, 0, 113, 100),
            last: Ipv4Addr::new(203, 0, 113, 103),
            ports: PortRange::EPHEMERAL,
            pooling: Pooling::Paired,
            random: natsim_nat::PortFlag::Profile,
        }),
    });
    let mut nat = NatEngine::new(cfg).unwrap();
    let addrs: Vec<_> = (0..10u16)
        .map(|i| {
            let mut f = udp((HOST_A, 4000 + i), (REMOTE, 9 + i), b"");
            fwd(&mut nat, T0, LAN, &mut f);
            flow_of(&f).src.addr
        })
        .collect();
    assert!(
        addrs.iter().all(|a| *a == addrs[0]),
        "RFC 4787 REQ-2: {addrs:?}"
    );
}
