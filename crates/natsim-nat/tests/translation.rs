//! Byte-level tests of each translation kind, driven frame by frame
//! (state, ICMP and limits are in `behaviour.rs`).

mod common;
use common::*;
use natsim_nat::*;
use std::net::Ipv4Addr;

const T0: Instant = Instant::ZERO;

#[test]
fn masquerade_rewrites_the_source_and_the_reply_restores_the_inside_endpoint() {
    let mut nat = masq(Behaviour::linux());
    let mut out = tcp((HOST_A, 40000), (REMOTE, 25), "S", b"");
    let (v, steps) = run(&mut nat, T0, LAN, &mut out);
    assert_eq!(v, fwd_wan());
    let f = flow_of(&out);
    assert_eq!(
        f.src,
        Endpoint::new(WAN_ADDR, 40000),
        "linux keeps a free source port"
    );
    assert_eq!(f.dst, Endpoint::new(REMOTE, 25));
    verify_checksums(&out).unwrap();
    assert!(steps
        .iter()
        .any(|s| matches!(s, NatStep::MappingCreated { .. })));

    let mut back = tcp((REMOTE, 25), (WAN_ADDR, 40000), "SA", b"");
    let (v, _) = run(&mut nat, T0, WAN, &mut back);
    assert_eq!(
        v,
        Verdict::Forward {
            iface: LAN,
            next_hop: HOST_A
        }
    );
    assert_eq!(flow_of(&back).dst, Endpoint::new(HOST_A, 40000));
    verify_checksums(&back).unwrap();
}

#[test]
fn linux_picks_another_port_on_a_clash_and_overloads_toward_other_destinations() {
    let mut nat = masq(Behaviour::linux());
    let mut a = udp((HOST_A, 5000), (REMOTE, 53), b"q");
    fwd(&mut nat, T0, LAN, &mut a);
    let mut b = udp((HOST_B, 5000), (REMOTE, 53), b"q");
    fwd(&mut nat, T0, LAN, &mut b);
    let pb = flow_of(&b).src.port;
    assert_ne!(
        pb, 5000,
        "same destination: the second host needs another port"
    );
    assert!((1024..=65535).contains(&pb));
    // toward another destination the same external port may be shared
    let mut c = udp((HOST_B, 6000), (REMOTE2, 53), b"q");
    let mut d = udp((HOST_A, 6000), (REMOTE, 53), b"q");
    fwd(&mut nat, T0, LAN, &mut c);
    fwd(&mut nat, T0, LAN, &mut d);
    assert_eq!(flow_of(&c).src.port, 6000);
    assert_eq!(
        flow_of(&d).src.port,
        6000,
        "linux overloads: uniqueness is per 5-tuple"
    );
}

#[test]
fn a_second_flow_from_the_same_endpoint_reuses_its_mapping() {
    for b in [
        Behaviour::linux(),
        Behaviour::full_cone(),
        Behaviour::rfc_recommended(),
    ] {
        let mut nat = masq(b);
        // occupy port 7000 so the mapping is not simply the preserved port
        let mut x = udp((HOST_B, 7000), (REMOTE, 9), b"");
        fwd(&mut nat, T0, LAN, &mut x);
        let mut a = udp((HOST_A, 7000), (REMOTE, 9), b"");
        fwd(&mut nat, T0, LAN, &mut a);
        let mut c = udp((HOST_A, 7000), (REMOTE2, 10), b"");
        let (_, steps) = run(&mut nat, T0, LAN, &mut c);
        assert_eq!(flow_of(&a).src, flow_of(&c).src);
        assert!(steps
            .iter()
            .any(|s| matches!(s, NatStep::MappingReused { .. })));
    }
}

/// `masquerade random` / `fully-random` (Linux get_unique_tuple under
/// NF_NAT_RANGE_PROTO_RANDOM_ALL): a free source port is not kept, no
/// live mapping is reused, and the port stays in its class.
#[test]
fn a_random_port_rule_neither_keeps_a_free_port_nor_reuses_a_mapping() {
    for flag in [PortFlag::Random, PortFlag::FullyRandom] {
        let mut c = config(Behaviour::linux());
        let id = c.rules.masquerade("masq", WAN, None);
        if let Action::Masquerade { random, .. } = &mut c.rules.rules[usize::from(id.0)].action {
            *random = flag;
        }
        let mut nat = NatEngine::new(c).unwrap();
        let mut ports = Vec::new();
        for (k, sport) in [(0u16, 40000u16), (1, 40000), (2, 700), (3, 300)] {
            let mut a = udp((HOST_A, sport), (REMOTE, 9 + k), b"");
            fwd(&mut nat, T0, LAN, &mut a);
            verify_checksums(&a).unwrap();
            ports.push(flow_of(&a).src.port);
        }
        assert_ne!(ports[0], 40000, "{flag:?}: a free port is not kept");
        assert_ne!(ports[0], ports[1], "{flag:?}: no mapping reused");
        assert!((1024..=65535).contains(&ports[1]));
        assert!((600..=1023).contains(&ports[2]), "{ports:?}");
        assert!((1..=511).contains(&ports[3]), "{ports:?}");
    }
    // Without the flag the same router keeps the port and reuses the mapping.
    let mut nat = masq(Behaviour::linux());
    let mut a = udp((HOST_A, 40000), (REMOTE, 9), b"");
    let mut b = udp((HOST_A, 40000), (REMOTE, 10), b"");
    fwd(&mut nat, T0, LAN, &mut a);
    fwd(&mut nat, T0, LAN, &mut b);
    assert_eq!((flow_of(&a).src.port, flow_of(&b).src.port), (40000, 40000));
}

#[test]
fn symmetric_nat_gives_each_destination_its_own_mapping() {
    let mut nat = masq(Behaviour::symmetric());
    let mut a = udp((HOST_A, 7000), (REMOTE, 9), b"");
    let mut c = udp((HOST_A, 7000), (REMOTE, 10), b"");
    fwd(&mut nat, T0, LAN, &mut a);
    fwd(&mut nat, T0, LAN, &mut c);
    assert_ne!(flow_of(&a).src.port, flow_of(&c).src.port);
}

#[test]
fn port_forward_to_a_different_inside_port_rewrites_both_ways() {
    let mut cfg = config(Behaviour::linux());
    cfg.rules.forward(
        "smtp",
        WAN,
        Proto::Tcp,
        PortRange::single(2525),
        HOST_A,
        Some(25),
    );
    cfg.rules.masquerade("masq", WAN, None);
    let mut nat = NatEngine::new(cfg).unwrap();
    let mut syn = tcp((REMOTE, 33000), (WAN_ADDR, 2525), "S", b"");
    let (v, steps) = run(&mut nat, T0, WAN, &mut syn);
    assert_eq!(
        v,
        Verdict::Forward {
            iface: LAN,
            next_hop: HOST_A
        }
    );
    assert_eq!(flow_of(&syn).dst, Endpoint::new(HOST_A, 25));
    assert_eq!(
        flow_of(&syn).src,
        Endpoint::new(REMOTE, 33000),
        "DNAT leaves the source alone"
    );
    verify_checksums(&syn).unwrap();
    assert!(steps.contains(&NatStep::RuleMatched { rule: RuleId(0) }));
    let mut synack = tcp((HOST_A, 25), (REMOTE, 33000), "SA", b"");
    let (v, _) = run(&mut nat, T0, LAN, &mut synack);
    assert_eq!(v, fwd_wan());
    assert_eq!(flow_of(&synack).src, Endpoint::new(WAN_ADDR, 2525));
    verify_checksums(&synack).unwrap();
}

#[test]
fn a_forward_port_range_keeps_the_offset() {
    let mut cfg = config(Behaviour::linux());
    cfg.rules.forward(
        "range",
        WAN,
        Proto::Udp,
        PortRange::new(6000, 6009),
        HOST_A,
        Some(7000),
    );
    let mut nat = NatEngine::new(cfg).unwrap();
    let mut f = udp((REMOTE, 1), (WAN_ADDR, 6004), b"x");
    fwd(&mut nat, T0, WAN, &mut f);
    assert_eq!(flow_of(&f).dst, Endpoint::new(HOST_A, 7004));
}

#[test]
fn a_forward_restricted_by_source_prefix_ignores_other_senders() {
    let mut cfg = config(Behaviour::port_restricted_cone());
    cfg.rules.push(Rule {
        name: "ssh-from-office".into(),
        chain: Chain::Prerouting,
        matches: Match {
            proto: Some(Proto::Tcp),
            dst_iface_addr: Some(WAN),
            src: Some(Prefix::new(REMOTE, 32)),
            dst_ports: Some(PortRange::single(22)),
            ..Match::default()
        },
        action: Action::Dnat {
            to: HOST_A,
            to_port: None,
        },
    });
    let mut nat = NatEngine::new(cfg).unwrap();
    let mut ok = tcp((REMOTE, 40000), (WAN_ADDR, 22), "S", b"");
    assert!(matches!(
        run(&mut nat, T0, WAN, &mut ok).0,
        Verdict::Forward { .. }
    ));
    let mut no = tcp((REMOTE2, 40000), (WAN_ADDR, 22), "S", b"");
    assert_eq!(
        run(&mut nat, T0, WAN, &mut no).0,
        Verdict::Drop(DropReason::NoMapping { proto: Proto::Tcp })
    );
}

#[test]
fn one_to_one_maps_every_port_and_protocol_both_ways() {
    let public = Ipv4Addr::new(203, 0, 113, 10);
    let mut cfg = config(Behaviour::port_restricted_cone());
    cfg.rules
        .one_to_one("pipe", WAN, Prefix::host(HOST_A), Prefix::host(public));
    cfg.rules.masquerade("masq", WAN, None);
    let mut nat = NatEngine::new(cfg).unwrap();
    assert!(
        nat.owns(public),
        "the router must proxy-ARP the 1:1 address"
    );
    let mut syn = tcp((REMOTE, 40000), (public, 31337), "S", b"");
    let (v, steps) = run(&mut nat, T0, WAN, &mut syn);
    assert_eq!(
        v,
        Verdict::Forward {
            iface: LAN,
            next_hop: HOST_A
        }
    );
    assert_eq!(flow_of(&syn).dst, Endpoint::new(HOST_A, 31337));
    assert!(steps
        .iter()
        .any(|s| matches!(s, NatStep::StaticRule { .. })));
    verify_checksums(&syn).unwrap();
    let mut out = udp((HOST_A, 5000), (REMOTE, 53), b"q");
    fwd(&mut nat, T0, LAN, &mut out);
    assert_eq!(flow_of(&out).src, Endpoint::new(public, 5000));
    // GRE (47): no ports, still translated
    let mut gre = gre_frame(HOST_A, REMOTE);
    assert_eq!(run(&mut nat, T0, LAN, &mut gre).0, fwd_wan());
    assert_eq!(flow_of(&gre).src.addr, public);
    verify_checksums(&gre).unwrap();
}

fn gre_frame(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let mut ip =
        etherparse::Ipv4Header::new(4, 64, etherparse::IpNumber(47), src.octets(), dst.octets())
            .unwrap();
    ip.header_checksum = ip.calc_header_checksum();
    let mut v = Vec::new();
    etherparse::Ethernet2Header {
        source: MAC_HOST,
        destination: MAC_ROUTER,
        ether_type: etherparse::EtherType::IPV4,
    }
    .write(&mut v)
    .unwrap();
    ip.write(&mut v).unwrap();
    v.extend_from_slice(&[0, 0, 0x08, 0]);
    v
}

#[test]
fn netmap_maps_a_whole_prefix_keeping_host_bits() {
    let mut cfg = config(Behaviour::linux());
    cfg.rules.one_to_one(
        "netmap",
        WAN,
        Prefix::new(Ipv4Addr::new(192, 168, 1, 0), 24),
        Prefix::new(Ipv4Addr::new(198, 18, 0, 0), 24),
    );
    let mut nat = NatEngine::new(cfg).unwrap();
    let mut f = udp((HOST_B, 1), (REMOTE, 2), b"");
    fwd(&mut nat, T0, LAN, &mut f);
    assert_eq!(flow_of(&f).src.addr, Ipv4Addr::new(198, 18, 0, 20));
}

#[test]
fn an_exemption_before_masquerade_leaves_the_packet_untranslated() {
    let mut cfg = config(Behaviour::linux());
    cfg.rules.push(Rule {
        name: "no-nat-to-partner".into(),
        chain: Chain::Postrouting,
        matches: Match {
            dst: Some(Prefix::new(REMOTE, 32)),
            ..Match::default()
        },
        action: Action::Accept,
    });
    cfg.rules.masquerade("masq", WAN, None);
    let mut nat = NatEngine::new(cfg).unwrap();
    let mut f = udp((HOST_A, 1), (REMOTE, 2), b"");
    fwd(&mut nat, T0, LAN, &mut f);
    assert_eq!(flow_of(&f).src.addr, HOST_A);
    let mut g = udp((HOST_A, 1), (REMOTE2, 2), b"");
    fwd(&mut nat, T0, LAN, &mut g);
    assert_eq!(flow_of(&g).src.addr, WAN_ADDR);
}

#[test]
fn redirect_sends_the_flow_to_the_router_itself_and_back() {
    let mut cfg = config(Behaviour::linux());
    cfg.rules.push(Rule {
        name: "transparent-proxy".into(),
        chain: Chain::Prerouting,
        matches: Match {
            proto: Some(Proto::Tcp),
            in_iface: Some(LAN),
            dst_ports: Some(PortRange::single(80)),
            ..Match::default()
        },
        action: Action::Redirect {
            to_port: Some(3128),
        },
    });
    cfg.rules.masquerade("masq", WAN, None);
    let mut nat = NatEngine::new(cfg).unwrap();
    let mut syn = tcp((HOST_A, 40000), (REMOTE, 80), "S", b"");
    assert_eq!(run(&mut nat, T0, LAN, &mut syn).0, Verdict::Local);
    assert_eq!(flow_of(&syn).dst, Endpoint::new(LAN_ADDR, 3128));
    let mut synack = tcp((LAN_ADDR, 3128), (HOST_A, 40000), "SA", b"");
    assert_eq!(
        run(&mut nat, T0, IfaceId::LOCAL, &mut synack).0,
        Verdict::Forward {
            iface: LAN,
            next_hop: HOST_A
        }
    );
    assert_eq!(flow_of(&synack).src, Endpoint::new(REMOTE, 80));
}

fn hairpin_nat(h: Hairpin) -> NatEngine {
    let mut b = Behaviour::linux();
    b.hairpin = h;
    let mut cfg = config(b);
    cfg.rules
        .forward("web", WAN, Proto::Tcp, PortRange::single(80), HOST_A, None);
    cfg.rules.masquerade("masq", WAN, None);
    NatEngine::new(cfg).unwrap()
}

#[test]
fn hairpin_off_drops_inside_traffic_to_the_external_address() {
    let mut nat = hairpin_nat(Hairpin::Off);
    let mut syn = tcp((HOST_B, 40000), (WAN_ADDR, 80), "S", b"");
    assert_eq!(
        run(&mut nat, T0, LAN, &mut syn).0,
        Verdict::Drop(DropReason::HairpinDisabled)
    );
}

#[test]
fn hairpin_dnat_only_leaves_the_inside_source_as_linux_does() {
    let mut nat = hairpin_nat(Hairpin::DnatOnly);
    let mut syn = tcp((HOST_B, 40000), (WAN_ADDR, 80), "S", b"");
    fwd(&mut nat, T0, LAN, &mut syn);
    assert_eq!(
        flow_of(&syn),
        Flow::new(
            Proto::Tcp,
            Endpoint::new(HOST_B, 40000),
            Endpoint::new(HOST_A, 80)
        )
    );
}

#[test]
fn hairpin_on_rewrites_the_source_to_the_external_mapping() {
    let mut nat = hairpin_nat(Hairpin::On);
    let mut syn = tcp((HOST_B, 40000), (WAN_ADDR, 80), "S", b"");
    let (v, steps) = run(&mut nat, T0, LAN, &mut syn);
    assert_eq!(
        v,
        Verdict::Forward {
            iface: LAN,
            next_hop: HOST_A
        }
    );
    assert_eq!(flow_of(&syn).src.addr, WAN_ADDR, "RFC 4787 REQ-9a");
    assert!(steps.contains(&NatStep::Hairpinned));
    verify_checksums(&syn).unwrap();
    let ext = flow_of(&syn).src;
    let mut synack = tcp((HOST_A, 80), (ext.addr, ext.port), "SA", b"");
    assert_eq!(
        run(&mut nat, T0, LAN, &mut synack).0,
        Verdict::Forward {
            iface: LAN,
            next_hop: HOST_B
        }
    );
    assert_eq!(flow_of(&synack).src, Endpoint::new(WAN_ADDR, 80));
    assert_eq!(flow_of(&synack).dst, Endpoint::new(HOST_B, 40000));
}

#[test]
fn a_silent_drop_router_drops_unsolicited_syns() {
    let mut nat = masq(Behaviour::port_restricted_cone());
    let mut syn = tcp((REMOTE, 40000), (WAN_ADDR, 25), "S", b"");
    let (v, steps) = run(&mut nat, T0, WAN, &mut syn);
    assert_eq!(
        v,
        Verdict::Drop(DropReason::NoMapping { proto: Proto::Tcp })
    );
    assert!(steps.contains(&NatStep::Dropped {
        reason: DropReason::NoMapping { proto: Proto::Tcp }
    }));
    assert!(DropReason::NoMapping { proto: Proto::Tcp }.is_nat_filter());
}

#[test]
fn linux_answers_an_unsolicited_syn_with_a_valid_rst() {
    let mut nat = masq(Behaviour::linux());
    let mut syn = tcp((REMOTE, 40000), (WAN_ADDR, 25), "S", b"");
    let (v, _) = run(&mut nat, T0, WAN, &mut syn);
    assert_eq!(v, Verdict::Reply { iface: WAN });
    verify_checksums(&syn).unwrap();
    let s = etherparse::SlicedPacket::from_ethernet(&syn).unwrap();
    let Some(etherparse::TransportSlice::Tcp(t)) = s.transport else {
        panic!("not tcp")
    };
    assert!(t.rst() && t.ack());
    assert_eq!(
        t.acknowledgment_number(),
        1001,
        "SYN consumes one sequence number"
    );
    assert_eq!(flow_of(&syn).dst, Endpoint::new(REMOTE, 40000));
    assert_eq!(&syn[0..6], &MAC_HOST, "sent back to the sender's MAC");
}

#[test]
fn linux_answers_unsolicited_udp_with_a_valid_port_unreachable() {
    let mut nat = masq(Behaviour::linux());
    let mut dgram = udp((REMOTE, 40000), (WAN_ADDR, 53), b"query");
    let (v, steps) = run(&mut nat, T0, WAN, &mut dgram);
    assert_eq!(v, Verdict::Reply { iface: WAN });
    assert!(steps.contains(&NatStep::Replied {
        kind: ReplyKind::IcmpUnreachable(natsim_nat::Unreachable::Port)
    }));
    verify_checksums(&dgram).unwrap();
    assert_eq!(dgram[14 + 20], 3);
    assert_eq!(dgram[14 + 21], 3);
}

/// A FORWARD REJECT answers with its own code (firewalld's `icmpx
/// admin-prohibited` is 3/13, nf_send_unreach), from the address of the
/// interface the packet came in on, as the kernel's did in `natsim verify`
/// on the firewalld fixture.
#[test]
fn a_filter_reject_answers_with_its_icmp_code() {
    let mut c = config(Behaviour::linux());
    c.rules.masquerade("masq", WAN, None);
    c.filter.forward.rules.push(FilterRule {
        name: "firewalld default".into(),
        matches: Match::default(),
        action: FilterAction::Reject(RejectWith::Icmp(Unreachable::AdminProhibited)),
    });
    let mut nat = NatEngine::new(c).unwrap();
    let mut dgram = udp((HOST_A, 40000), (REMOTE, 53), b"query");
    let (v, steps) = run(&mut nat, T0, LAN, &mut dgram);
    assert_eq!(v, Verdict::Reply { iface: LAN });
    assert!(steps.contains(&NatStep::Replied {
        kind: ReplyKind::IcmpUnreachable(Unreachable::AdminProhibited)
    }));
    verify_checksums(&dgram).unwrap();
    assert_eq!((dgram[14 + 20], dgram[14 + 21]), (3, 13));
    assert_eq!(flow_of(&dgram).src.addr, LAN_ADDR);
    assert_eq!(flow_of(&dgram).dst.addr, HOST_A);
}
