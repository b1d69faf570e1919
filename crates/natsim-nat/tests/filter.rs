//! Filter matches on the transport header (ICMP type, TCP flags) and the
//! raw PREROUTING chain, which sees a packet before DNAT.

mod common;

use common::*;
use natsim_nat::*;

const T0: Instant = Instant::ZERO;

/// `-p icmp ! --icmp-type echo-request -j DROP` in FORWARD: pings leave,
/// an echo reply sent out from inside is dropped, and UDP never meets the
/// rule (an ICMP type match holds only for ICMP, even negated, as xt_icmp's
/// `-p icmp` requirement makes it; `natsim verify` agreed on the
/// icmp-types fixture).
#[test]
fn an_icmp_type_match_sees_only_icmp_of_that_type() {
    let mut c = config(Behaviour::linux());
    c.rules.masquerade("masq", WAN, None);
    c.filter.forward.rules.push(FilterRule {
        name: "no other icmp".into(),
        matches: Match {
            proto: Some(Proto::Icmp),
            icmp_type: Some(natsim_nat::IcmpType { ty: 8, code: None }),
            not: natsim_nat::Negated {
                icmp_type: true,
                ..Default::default()
            },
            ..Match::default()
        },
        action: FilterAction::Drop,
    });
    let mut nat = NatEngine::new(c).unwrap();
    let mut req = ping(HOST_A, REMOTE, 0x1234, true);
    assert!(matches!(
        run(&mut nat, T0, LAN, &mut req).0,
        Verdict::Forward { .. }
    ));
    let mut reply = ping(HOST_B, REMOTE, 0x4321, false);
    assert_eq!(
        run(&mut nat, T0, LAN, &mut reply).0,
        Verdict::Drop(DropReason::FilterDenied {
            hook: FilterHook::Forward,
            rule: Some(0)
        })
    );
    let mut dgram = udp((HOST_A, 40000), (REMOTE, 53), b"query");
    assert!(matches!(
        run(&mut nat, T0, LAN, &mut dgram).0,
        Verdict::Forward { .. }
    ));
}

/// `-p tcp --syn -j DROP` (xt_tcpudp: flags & SYN,RST,ACK,FIN == SYN)
/// in FORWARD: a SYN is dropped, a SYN-ACK and UDP are not looked at.
#[test]
fn a_tcp_flags_match_sees_only_tcp_with_those_flags() {
    let mut c = config(Behaviour::linux());
    c.rules.masquerade("masq", WAN, None);
    c.filter.forward.rules.push(FilterRule {
        name: "no syn".into(),
        matches: Match {
            proto: Some(Proto::Tcp),
            tcp_flags: Some(TcpFlagsMatch::SYN),
            ..Match::default()
        },
        action: FilterAction::Drop,
    });
    let mut nat = NatEngine::new(c).unwrap();
    let denied = Verdict::Drop(DropReason::FilterDenied {
        hook: FilterHook::Forward,
        rule: Some(0),
    });
    let mut syn = tcp((HOST_A, 40000), (REMOTE, 80), "S", b"");
    assert_eq!(run(&mut nat, T0, LAN, &mut syn).0, denied);
    let mut syn_ack = tcp((HOST_A, 40001), (REMOTE, 80), "SA", b"");
    assert_ne!(run(&mut nat, T0, LAN, &mut syn_ack).0, denied);
    let mut dgram = udp((HOST_A, 40000), (REMOTE, 53), b"query");
    assert!(matches!(
        run(&mut nat, T0, LAN, &mut dgram).0,
        Verdict::Forward { .. }
    ));
}

/// A raw PREROUTING DROP of the server's own address (Docker 28's
/// `-t raw -A PREROUTING -d 172.17.0.2 ! -i docker0 -j DROP`) sees the
/// packet before DNAT: the forward through the public address still
/// works, the server's address from outside does not (as the kernel did
/// in `natsim verify` on the docker28-raw fixture).
#[test]
fn a_raw_drop_sees_the_destination_before_dnat() {
    let mut c = config(Behaviour::linux());
    c.rules.masquerade("masq", WAN, None);
    c.rules.rules.push(Rule {
        name: "fwd".into(),
        chain: Chain::Prerouting,
        matches: Match {
            proto: Some(Proto::Tcp),
            in_iface: Some(WAN),
            dst_ports: Some(PortRange::single(8080)),
            ..Match::default()
        },
        action: Action::Dnat {
            to: HOST_A,
            to_port: Some(80),
        },
    });
    c.filter.raw.rules.push(FilterRule {
        name: "direct access".into(),
        matches: Match {
            dst: Some(Prefix::new(HOST_A, 32)),
            in_iface: Some(LAN),
            not: Negated {
                in_iface: true,
                ..Default::default()
            },
            ..Match::default()
        },
        action: FilterAction::Drop,
    });
    let mut nat = NatEngine::new(c).unwrap();
    let mut published = tcp((REMOTE, 40000), (WAN_ADDR, 8080), "S", b"");
    assert!(matches!(
        run(&mut nat, T0, WAN, &mut published).0,
        Verdict::Forward { .. }
    ));
    assert_eq!(flow_of(&published).dst, Endpoint::new(HOST_A, 80));
    let mut direct = tcp((REMOTE, 40001), (HOST_A, 80), "S", b"");
    assert_eq!(
        run(&mut nat, T0, WAN, &mut direct).0,
        Verdict::Drop(DropReason::FilterDenied {
            hook: FilterHook::Raw,
            rule: Some(0)
        })
    );
    // From inside, the rule does not apply.
    let mut inside = tcp((HOST_B, 40002), (HOST_A, 80), "S", b"");
    assert_ne!(
        run(&mut nat, T0, LAN, &mut inside).0,
        Verdict::Drop(DropReason::FilterDenied {
            hook: FilterHook::Raw,
            rule: Some(0)
        })
    );
}
