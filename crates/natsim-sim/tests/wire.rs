//! What hosts and routers put on the wire, read back from the captures:
//! giving up a connect, its timing, routes, ARP, TTLs, router ICMP errors
//! and 802.1Q frames. Expected values come from RFC 9293 §3.10.4, the
//! Windows and Linux defaults (TcpMaxConnectRetransmissions = 2 with a
//! 3 s RTO; tcp_syn_retries = 6), RFC 1812 §4.3.2.3 and Linux icmp_send.

use natsim_nat::{Behaviour, IfaceId, Instant, Role};
use natsim_sim::probe::{Ping, ProbeOutcome, TcpProbe, TcpSink};
use natsim_sim::tcp::ConnectError;
use natsim_sim::*;
use std::net::Ipv4Addr;
use std::time::Duration;

const LAN_GW: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
const WAN_ADDR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const INSIDE: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
const OUTSIDE: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);

struct Net {
    sim: Sim,
    router: NodeId,
    inside: NodeId,
    outside: NodeId,
    lan: SegmentId,
    wan: SegmentId,
}

fn net(outside_tcp: TcpProfile) -> Net {
    net_with(Behaviour::rfc_recommended(), outside_tcp)
}

fn net_with(behaviour: Behaviour, outside_tcp: TcpProfile) -> Net {
    let mut sim = Sim::builder().seed(7).build();
    let lan = sim.segment("lan", LinkParams::default());
    let wan = sim.segment("internet", LinkParams::default());
    let router = sim
        .router(
            "fw",
            RouterConfig::new()
                .interface("lan0", lan, LAN_GW, 24, Role::Inside)
                .interface("wan0", wan, WAN_ADDR, 24, Role::Outside)
                // rfc-recommended drops unsolicited SYNs silently (RFC
                // 5382 REQ-4a).
                .nat(behaviour, |c| {
                    c.rules.masquerade("masq", IfaceId(1), None);
                }),
        )
        .unwrap();
    let inside = sim
        .host("inside", HostConfig::new(lan, INSIDE, 24).gateway(LAN_GW))
        .unwrap();
    let outside = sim
        .host(
            "outside",
            HostConfig::new(wan, OUTSIDE, 24).tcp(outside_tcp),
        )
        .unwrap();
    Net {
        sim,
        router,
        inside,
        outside,
        lan,
        wan,
    }
}

/// IPv4 frames on a segment: (time, offset of the IP header, bytes).
fn ipv4(sim: &Sim, seg: SegmentId) -> Vec<(Instant, usize, Vec<u8>)> {
    sim.capture(seg)
        .iter()
        .filter_map(|(t, f)| {
            let l3 = match u16::from_be_bytes([f[12], f[13]]) {
                0x0800 => 14,
                0x8100 if f[16..18] == [0x08, 0x00] => 18,
                _ => return None,
            };
            Some((*t, l3, f.clone()))
        })
        .collect()
}

fn src_of(f: &[u8], l3: usize) -> Ipv4Addr {
    Ipv4Addr::new(f[l3 + 12], f[l3 + 13], f[l3 + 14], f[l3 + 15])
}

/// TCP flags of a frame, if it is TCP.
fn tcp_flags(f: &[u8], l3: usize) -> Option<u8> {
    (f[l3 + 9] == 6).then(|| f[l3 + usize::from(f[l3] & 0x0f) * 4 + 13])
}

fn ip_checksum_ok(f: &[u8], l3: usize) -> bool {
    let ihl = usize::from(f[l3] & 0x0f) * 4;
    let mut sum = 0u32;
    for w in f[l3..l3 + ihl].chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum == 0xffff
}

fn timed_out(sim: &Sim, id: AppId) -> u64 {
    match sim.app::<TcpProbe>(id).unwrap().outcome.clone() {
        Some(ProbeOutcome::Failed {
            error: ConnectError::TimedOut { after_ms },
        }) => after_ms,
        o => panic!("expected a timeout, got {o:?}"),
    }
}

/// Giving up in SYN-SENT deletes the TCB and sends nothing (RFC 9293
/// §3.10.4); the Windows schedule is SYNs at 0, 3, 9 s and failure at
/// 21 s after the first SYN.
#[test]
fn a_windows_connect_that_times_out_sends_three_syns_and_no_rst() {
    let mut n = net(TcpProfile::windows());
    let telnet = n
        .sim
        .add_app(n.outside, Box::new(TcpProbe::new((WAN_ADDR, 25))))
        .unwrap();
    n.sim.run_for(Duration::from_secs(60));
    let after = timed_out(&n.sim, telnet);
    let mine: Vec<_> = ipv4(&n.sim, n.wan)
        .into_iter()
        .filter(|(_, l3, f)| src_of(f, *l3) == OUTSIDE)
        .filter_map(|(t, l3, f)| Some((t, tcp_flags(&f, l3)?)))
        .collect();
    assert!(mine.iter().all(|(_, fl)| fl & 0x04 == 0), "a RST: {mine:?}");
    let syns: Vec<u64> = mine
        .iter()
        .filter(|(_, fl)| *fl == 0x02)
        .map(|(t, _)| t.total_millis())
        .collect();
    assert_eq!(syns.len(), 3, "{syns:?}");
    assert_eq!((syns[1] - syns[0], syns[2] - syns[0]), (3000, 9000));
    // Reported from the first SYN on the wire.
    assert!((20_900..=21_100).contains(&after), "{after} ms");
    assert_eq!(mine.len(), 3, "nothing after the SYNs: {mine:?}");
}

/// Linux: tcp_syn_retries = 6, RTO 1 s doubling: 7 SYNs, ETIMEDOUT at
/// 127 s after the first.
#[test]
fn a_linux_connect_that_times_out_fails_after_127_s_without_rst() {
    let mut n = net(TcpProfile::linux());
    let telnet = n
        .sim
        .add_app(n.outside, Box::new(TcpProbe::new((WAN_ADDR, 25))))
        .unwrap();
    n.sim.run_for(Duration::from_secs(200));
    let after = timed_out(&n.sim, telnet);
    assert!((126_900..=127_100).contains(&after), "{after} ms");
    let mine: Vec<u8> = ipv4(&n.sim, n.wan)
        .into_iter()
        .filter(|(_, l3, f)| src_of(f, *l3) == OUTSIDE)
        .filter_map(|(_, l3, f)| tcp_flags(&f, l3))
        .collect();
    assert_eq!(mine, vec![0x02; 7]);
}

/// No route: connect() fails at once with ENETUNREACH; not even ARP.
#[test]
fn a_host_without_a_route_fails_at_once_and_sends_nothing() {
    let mut n = net(TcpProfile::windows());
    // `outside` has no gateway: 198.51.100.9 is off-link.
    let before = n.sim.capture(n.wan).len();
    let telnet = n
        .sim
        .add_app(
            n.outside,
            Box::new(TcpProbe::new((Ipv4Addr::new(198, 51, 100, 9), 80))),
        )
        .unwrap();
    n.sim.run_for(Duration::from_secs(30));
    let p = n.sim.app::<TcpProbe>(telnet).unwrap();
    assert_eq!(
        p.outcome,
        Some(ProbeOutcome::Failed {
            error: ConnectError::NetworkUnreachable
        })
    );
    assert_eq!(n.sim.capture(n.wan).len(), before, "something was sent");
}

/// An on-link destination that never answers ARP: no SYN leaves. Linux
/// fails the connect with EHOSTUNREACH after mcast_solicit = 3 probes a
/// second apart; Windows only loses the SYNs and times out at 21 s.
#[test]
fn an_unanswered_arp_fails_the_connect_as_the_os_does() {
    for (profile, want) in [
        (TcpProfile::linux(), "host"),
        (TcpProfile::windows(), "timeout"),
    ] {
        let mut n = net(profile);
        let telnet = n
            .sim
            .add_app(
                n.outside,
                Box::new(TcpProbe::new((Ipv4Addr::new(203, 0, 113, 99), 80))),
            )
            .unwrap();
        n.sim.run_for(Duration::from_secs(30));
        let p = n.sim.app::<TcpProbe>(telnet).unwrap();
        match (&p.outcome, want) {
            (
                Some(ProbeOutcome::Failed {
                    error: ConnectError::HostUnreachable { after_ms },
                }),
                "host",
            ) => assert!((2_900..=3_100).contains(after_ms), "{after_ms} ms"),
            (
                Some(ProbeOutcome::Failed {
                    error: ConnectError::TimedOut { after_ms },
                }),
                "timeout",
            ) => assert!((20_900..=21_100).contains(after_ms), "{after_ms} ms"),
            (o, _) => panic!("{want}: got {o:?}"),
        }
        let syns = ipv4(&n.sim, n.wan)
            .into_iter()
            .filter(|(_, l3, f)| src_of(f, *l3) == OUTSIDE && tcp_flags(f, *l3).is_some())
            .count();
        assert_eq!(syns, 0);
    }
}

/// Windows DefaultTTL 128; Linux ip_default_ttl 64.
#[test]
fn the_ttl_of_a_host_follows_its_profile() {
    for (profile, ttl) in [(TcpProfile::windows(), 128), (TcpProfile::linux(), 64)] {
        let mut n = net(profile);
        n.sim
            .add_app(n.outside, Box::new(Ping::new(WAN_ADDR)))
            .unwrap();
        n.sim
            .add_app(n.outside, Box::new(TcpProbe::new((WAN_ADDR, 25))))
            .unwrap();
        n.sim.run_for(Duration::from_secs(2));
        let ttls: Vec<u8> = ipv4(&n.sim, n.wan)
            .into_iter()
            .filter(|(_, l3, f)| src_of(f, *l3) == OUTSIDE)
            .map(|(_, l3, f)| f[l3 + 8])
            .collect();
        assert!(ttls.len() >= 2, "{ttls:?}");
        assert!(ttls.iter().all(|&t| t == ttl), "{ttls:?} want {ttl}");
    }
}

/// A 1000-byte packet expiring at the router: Linux icmp_send quotes as
/// much as fits in 576 bytes (RFC 1812 §4.3.2.3), with TOS 0xc0, DF clear
/// and a non-zero IP ID of its own. The same packet sent to the
/// link-layer broadcast address gets none (`__icmp_send` answers only
/// PACKET_HOST frames).
#[test]
fn router_icmp_errors_quote_up_to_576_bytes_with_linux_header_fields() {
    let mut n = net(TcpProfile::windows());
    n.sim.run_for(Duration::from_millis(10));
    let time_exceeded = |n: &Net| {
        ipv4(&n.sim, n.lan)
            .into_iter()
            .filter(|(_, l3, f)| f[l3 + 9] == 1 && f[l3 + 20] == 11)
            .collect::<Vec<_>>()
    };
    n.sim.inject(
        n.inside,
        0,
        udp_frame([0xff; 6], INSIDE, OUTSIDE, 1, 1000, None),
    );
    n.sim.run_for(Duration::from_secs(1));
    assert!(
        time_exceeded(&n).is_empty(),
        "an error about a broadcast frame"
    );
    let router_mac = n.sim.mac(n.router, 0).unwrap();
    let frame = udp_frame(router_mac, INSIDE, OUTSIDE, 1, 1000, None);
    n.sim.inject(n.inside, 0, frame.clone());
    n.sim.run_for(Duration::from_secs(1));
    let (_, l3, f) = time_exceeded(&n).pop().expect("a time exceeded");
    let ip = &f[l3..];
    assert_eq!(u16::from_be_bytes([ip[2], ip[3]]), 576);
    assert_eq!(ip[1], 0xc0);
    assert_eq!(ip[6] & 0x40, 0, "DF set");
    assert_ne!(u16::from_be_bytes([ip[4], ip[5]]), 0);
    assert!(ip_checksum_ok(&f, l3));
    // The quote is the original datagram from its first byte.
    assert_eq!(&ip[28..576], &frame[14..14 + 548]);
}

/// Linux's ip_forward forwards only frames sent to the router's own MAC
/// (PACKET_HOST): the same datagram to the link-layer broadcast address
/// stays on the LAN.
#[test]
fn a_link_layer_broadcast_is_not_forwarded() {
    let mut n = net(TcpProfile::windows());
    n.sim.run_for(Duration::from_millis(10));
    let router_mac = n.sim.mac(n.router, 0).unwrap();
    for (to, forwarded) in [([0xff; 6], false), (router_mac, true)] {
        let before = ipv4(&n.sim, n.wan).len();
        n.sim
            .inject(n.inside, 0, udp_frame(to, INSIDE, OUTSIDE, 64, 40, None));
        n.sim.run_for(Duration::from_secs(1));
        let udp_out = ipv4(&n.sim, n.wan)[before..]
            .iter()
            .filter(|(_, l3, f)| f[l3 + 9] == 17)
            .count();
        assert_eq!(udp_out, usize::from(forwarded), "to {to:02x?}");
    }
}

/// An 802.1Q-tagged frame through a plain router: TTL and checksum at the
/// tagged offsets, the IP ID untouched; TTL 255 stays a valid checksum.
#[test]
fn a_vlan_tagged_frame_is_forwarded_with_its_ttl_decremented_and_its_id_intact() {
    let mut sim = Sim::builder().seed(3).build();
    let a = sim.segment("a", LinkParams::default());
    let b = sim.segment("b", LinkParams::default());
    let r = sim
        .router(
            "r",
            RouterConfig::new()
                .interface("a0", a, Ipv4Addr::new(10, 0, 1, 1), 24, Role::Inside)
                .interface("b0", b, Ipv4Addr::new(10, 0, 2, 1), 24, Role::Outside),
        )
        .unwrap();
    let client = sim
        .host(
            "client",
            HostConfig::new(a, Ipv4Addr::new(10, 0, 1, 5), 24).gateway(Ipv4Addr::new(10, 0, 1, 1)),
        )
        .unwrap();
    let server = sim
        .host(
            "server",
            HostConfig::new(b, Ipv4Addr::new(10, 0, 2, 5), 24).gateway(Ipv4Addr::new(10, 0, 2, 1)),
        )
        .unwrap();
    sim.add_app(server, Box::new(TcpSink::new(80))).unwrap();
    sim.run_for(Duration::from_millis(10));
    for ttl in [64u8, 255] {
        let f = udp_frame(
            sim.mac(r, 0).unwrap(),
            Ipv4Addr::new(10, 0, 1, 5),
            Ipv4Addr::new(10, 0, 2, 5),
            ttl,
            64,
            Some(0x0123),
        );
        sim.inject(client, 0, f);
        sim.run_for(Duration::from_secs(2));
        let out: Vec<_> = ipv4(&sim, b)
            .into_iter()
            .filter(|(_, l3, f)| *l3 == 18 && f[l3 + 9] == 17 && f[l3 + 8] == ttl - 1)
            .collect();
        assert_eq!(out.len(), 1, "ttl {ttl}");
        let (_, l3, f) = &out[0];
        assert_eq!(u16::from_be_bytes([f[l3 + 4], f[l3 + 5]]), 0x4242, "IP ID");
        assert!(ip_checksum_ok(f, *l3), "ttl {ttl}");
    }
}

/// Ethernet II to `to` (optionally one 802.1Q tag), IPv4 with ID 0x4242
/// and DF clear, UDP 5000 -> 7 with `len` payload bytes.
fn udp_frame(
    to: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
    len: usize,
    vlan: Option<u16>,
) -> Vec<u8> {
    let mut ip = vec![0u8; 20 + 8 + len];
    let total = ip.len() as u16;
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[4..6].copy_from_slice(&0x4242u16.to_be_bytes());
    ip[8] = ttl;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let mut sum = 0u32;
    for w in ip[..20].chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    ip[20..22].copy_from_slice(&5000u16.to_be_bytes());
    ip[22..24].copy_from_slice(&7u16.to_be_bytes());
    ip[24..26].copy_from_slice(&((8 + len) as u16).to_be_bytes());
    // UDP checksum 0: none (RFC 768).
    for (k, b) in ip[28..].iter_mut().enumerate() {
        *b = k as u8;
    }
    let mut f = to.to_vec();
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x55]);
    if let Some(tci) = vlan {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&ip);
    f
}

/// The router's own stack, from the LAN: pings on any of its addresses
/// are answered, TCP to a closed port gets a RST (Linux
/// tcp_v4_send_reset); switched off, the same SYNs meet silence.
#[test]
fn the_router_answers_ping_and_closed_ports_on_its_own_addresses() {
    for reject in [true, false] {
        let mut sim = Sim::builder().seed(5).build();
        let lan = sim.segment("lan", LinkParams::default());
        let wan = sim.segment("internet", LinkParams::default());
        sim.router(
            "fw",
            RouterConfig::new()
                .interface("lan0", lan, LAN_GW, 24, Role::Inside)
                .interface("wan0", wan, WAN_ADDR, 24, Role::Outside)
                .nat(Behaviour::rfc_recommended(), |c| {
                    c.rules.masquerade("masq", IfaceId(1), None);
                })
                .reject_closed_ports(reject),
        )
        .unwrap();
        let inside = sim
            .host("inside", HostConfig::new(lan, INSIDE, 24).gateway(LAN_GW))
            .unwrap();
        let pings: Vec<AppId> = [LAN_GW, WAN_ADDR]
            .into_iter()
            .map(|a| sim.add_app(inside, Box::new(Ping::new(a))).unwrap())
            .collect();
        let telnets: Vec<AppId> = [LAN_GW, WAN_ADDR]
            .into_iter()
            .map(|a| {
                sim.add_app(inside, Box::new(TcpProbe::new((a, 23))))
                    .unwrap()
            })
            .collect();
        sim.run_for(Duration::from_secs(30));
        for p in pings {
            assert!(matches!(
                sim.app::<Ping>(p).unwrap().outcome,
                Some(ProbeOutcome::Replied { .. })
            ));
        }
        for t in telnets {
            let o = sim.app::<TcpProbe>(t).unwrap().outcome.clone();
            if reject {
                assert_eq!(
                    o,
                    Some(ProbeOutcome::Failed {
                        error: ConnectError::Refused
                    })
                );
            } else {
                assert!(
                    matches!(
                        o,
                        Some(ProbeOutcome::Failed {
                            error: ConnectError::TimedOut { .. }
                        })
                    ),
                    "{o:?}"
                );
            }
        }
    }
}

/// Two neighbours needed at once (a ping on the LAN, a connect through
/// the gateway): an OS ARPs for both at once, so the SYN leaves as soon
/// as the gateway answers — not a second later, as smoltcp's single
/// global ARP rate limit would have it.
#[test]
fn arp_is_per_neighbour_so_a_second_neighbour_does_not_delay_the_syn() {
    let mut n = net(TcpProfile::windows());
    let lan_peer = n
        .sim
        .host(
            "peer",
            HostConfig::new(n.lan, Ipv4Addr::new(192, 168, 1, 30), 24),
        )
        .unwrap();
    let _ = lan_peer;
    n.sim
        .add_app(n.outside, Box::new(TcpSink::new(80)))
        .unwrap();
    n.sim.run_for(Duration::from_millis(10));
    let t0 = n.sim.now();
    n.sim
        .add_app(
            n.inside,
            Box::new(Ping::new(Ipv4Addr::new(192, 168, 1, 30))),
        )
        .unwrap();
    let c = n
        .sim
        .add_app(n.inside, Box::new(TcpProbe::new((OUTSIDE, 80))))
        .unwrap();
    n.sim.run_for(Duration::from_secs(3));
    assert!(matches!(
        n.sim.app::<TcpProbe>(c).unwrap().outcome,
        Some(ProbeOutcome::Connected { .. })
    ));
    let syn = ipv4(&n.sim, n.lan)
        .into_iter()
        .find(|(_, l3, f)| src_of(f, *l3) == INSIDE && tcp_flags(f, *l3) == Some(0x02))
        .expect("a SYN");
    let delay = syn.0.total_millis() - t0.total_millis();
    assert!(delay < 100, "first SYN {delay} ms after connect()");
}

/// From outside too, behind a NAT profile that drops unsolicited traffic
/// (RFC 5382 REQ-4a): `unsolicited` is about what would be forwarded, so
/// a ping to the router's own WAN address is still answered — unless the
/// router is told not to.
#[test]
fn a_drop_profile_router_still_answers_pings_on_its_wan_address() {
    for answer in [true, false] {
        let mut sim = Sim::builder().seed(6).build();
        let lan = sim.segment("lan", LinkParams::default());
        let wan = sim.segment("internet", LinkParams::default());
        sim.router(
            "fw",
            RouterConfig::new()
                .interface("lan0", lan, LAN_GW, 24, Role::Inside)
                .interface("wan0", wan, WAN_ADDR, 24, Role::Outside)
                .nat(Behaviour::rfc_recommended(), |c| {
                    c.rules.masquerade("masq", IfaceId(1), None);
                })
                .answer_ping(answer),
        )
        .unwrap();
        let outside = sim
            .host("outside", HostConfig::new(wan, OUTSIDE, 24))
            .unwrap();
        let p = sim.add_app(outside, Box::new(Ping::new(WAN_ADDR))).unwrap();
        sim.run_for(Duration::from_secs(20));
        let replied = matches!(
            sim.app::<Ping>(p).unwrap().outcome,
            Some(ProbeOutcome::Replied { .. })
        );
        assert_eq!(replied, answer);
    }
}

/// ICMP errors on a wire from `from` to `to`.
fn icmp_errors(sim: &Sim, seg: SegmentId, from: Ipv4Addr, to: Ipv4Addr) -> usize {
    ipv4(sim, seg)
        .into_iter()
        .filter(|(_, l3, f)| {
            f[l3 + 9] == 1
                && f[l3 + 20] == 3
                && src_of(f, *l3) == from
                && f[l3 + 16..l3 + 20] == to.octets()
        })
        .count()
}

/// Linux rate-limits the ICMP errors a router sends per destination
/// (icmp_ratelimit 1000 ms, burst 6; measured in network namespaces:
/// twenty datagrams to closed ports in a burst drew six port
/// unreachables, and one more 1.5 s later). That holds for the router's
/// own stack and for the NAT's answers to unsolicited traffic alike.
#[test]
fn a_burst_to_closed_ports_draws_six_port_unreachables() {
    // `count` UDP datagrams from `node` (at `src`) to the router's `iface`
    // address `dst`, then `wait`.
    let burst = |n: &mut Net, node: NodeId, iface, (src, dst), count, wait| {
        let mac = n.sim.mac(n.router, iface).unwrap();
        for _ in 0..count {
            n.sim.inject(node, 0, udp_frame(mac, src, dst, 64, 8, None));
        }
        n.sim.run_for(Duration::from_millis(wait));
    };
    // The router's own stack (its inside address).
    let mut n = net(TcpProfile::windows());
    n.sim.run_for(Duration::from_millis(10));
    let inside = n.inside;
    burst(&mut n, inside, 0, (INSIDE, LAN_GW), 20, 1500);
    assert_eq!(icmp_errors(&n.sim, n.lan, LAN_GW, INSIDE), 6);
    burst(&mut n, inside, 0, (INSIDE, LAN_GW), 5, 100);
    assert_eq!(icmp_errors(&n.sim, n.lan, LAN_GW, INSIDE), 7);

    // The NAT's answer to unsolicited UDP at its outside address
    // (Linux's profile rejects it).
    let mut n = net_with(Behaviour::linux(), TcpProfile::windows());
    n.sim.run_for(Duration::from_millis(10));
    let outside = n.outside;
    burst(&mut n, outside, 1, (OUTSIDE, WAN_ADDR), 20, 500);
    assert_eq!(icmp_errors(&n.sim, n.wan, WAN_ADDR, OUTSIDE), 6);
}
