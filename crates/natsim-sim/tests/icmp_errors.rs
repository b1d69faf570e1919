//! The ICMP errors a router sends are routed, and those about a packet NAT
//! already rewrote are translated back, as Linux's `__icmp_send` does.
//!
//! Measured on Linux 6.18 in network namespaces (client 192.168.1.10
//! behind a router 192.168.1.1 / 203.0.113.1 with `oifname wan
//! masquerade` and `udp dport 9001 dnat to 192.168.1.99:9001`, remote
//! 203.0.113.9; the ICMP read with a raw socket at the sender):
//! * client → 203.0.113.77 (on the WAN, nobody answers ARP): after ~3 s,
//!   type 3 code 1 from 203.0.113.1 to 192.168.1.10, quoting
//!   192.168.1.10:5555 > 203.0.113.77:7000 with TTL 63;
//! * remote → 203.0.113.1:9001 (DNAT to an inside address nobody has):
//!   type 3 code 1 from 203.0.113.1 to 203.0.113.9, quoting
//!   203.0.113.9:5555 > 203.0.113.1:9001 with TTL 63;
//! * TTL 1 through a router: type 11 from the address of the interface
//!   the route back to the sender leaves by.

mod common;
use common::Udp;
use natsim_nat::{Behaviour, IfaceId, PortRange, Prefix, Proto, Role};
use natsim_sim::*;
use std::net::Ipv4Addr;
use std::time::Duration;

const LAN_ADDR: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
const WAN_ADDR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
const REMOTE: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 9);

struct Net {
    sim: Sim,
    router: NodeId,
    client: NodeId,
    remote: NodeId,
    lan: SegmentId,
    wan: SegmentId,
}

fn net() -> Net {
    let mut sim = Sim::builder().seed(5).build();
    let lan = sim.segment("lan", LinkParams::default());
    let wan = sim.segment("internet", LinkParams::default());
    let router = sim
        .router(
            "fw",
            RouterConfig::new()
                .interface("lan0", lan, LAN_ADDR, 24, Role::Inside)
                .interface("wan0", wan, WAN_ADDR, 24, Role::Outside)
                .nat(Behaviour::linux(), |c| {
                    c.rules.masquerade("masq", IfaceId(1), None);
                    c.rules.forward(
                        "udp9001",
                        IfaceId(1),
                        Proto::Udp,
                        PortRange::single(9001),
                        Ipv4Addr::new(192, 168, 1, 99),
                        None,
                    );
                }),
        )
        .unwrap();
    let client = sim
        .host("client", HostConfig::new(lan, CLIENT, 24).gateway(LAN_ADDR))
        .unwrap();
    let remote = sim
        .host("remote", HostConfig::new(wan, REMOTE, 24).gateway(WAN_ADDR))
        .unwrap();
    sim.run_for(Duration::from_millis(10));
    Net {
        sim,
        router,
        client,
        remote,
        lan,
        wan,
    }
}

/// A UDP datagram `src:5555 > dst:dport` with TTL `ttl`, sent to `mac`.
fn datagram(mac: [u8; 6], src: Ipv4Addr, dst: Ipv4Addr, dport: u16, ttl: u8) -> Vec<u8> {
    Udp {
        ttl,
        ..Udp::new(mac, src, dst, 5555, dport)
    }
    .frame()
}

/// An ICMP error as its receiver reads it.
#[derive(Debug, PartialEq)]
struct Error {
    to_mac: [u8; 6],
    kind: (u8, u8),
    from: Ipv4Addr,
    to: Ipv4Addr,
    /// The quoted header: source, source port, destination, destination
    /// port, TTL.
    quoted: (Ipv4Addr, u16, Ipv4Addr, u16, u8),
}

fn errors_on(n: &Net, seg: SegmentId) -> Vec<Error> {
    let a = |b: &[u8]| Ipv4Addr::new(b[0], b[1], b[2], b[3]);
    let p = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
    n.sim
        .capture(seg)
        .iter()
        .map(|(_, f)| f)
        .filter(|f| f.len() >= 14 + 28 + 28 && f[12..14] == [8, 0] && f[23] == 1)
        .filter(|f| matches!(f[34], 3 | 11))
        .map(|f| {
            let q = &f[42..];
            Error {
                to_mac: f[0..6].try_into().unwrap(),
                kind: (f[34], f[35]),
                from: a(&f[26..30]),
                to: a(&f[30..34]),
                quoted: (
                    a(&q[12..16]),
                    p(&q[20..22]),
                    a(&q[16..20]),
                    p(&q[22..24]),
                    q[8],
                ),
            }
        })
        .collect()
}

#[test]
fn a_next_hop_that_never_answers_gets_the_sender_a_translated_host_unreachable() {
    let mut n = net();
    let gw = n.sim.mac(n.router, 0).unwrap();
    let own = n.sim.mac(n.client, 0).unwrap();
    let mut f = datagram(gw, CLIENT, Ipv4Addr::new(203, 0, 113, 77), 7000, 64);
    f[6..12].copy_from_slice(&own);
    n.sim.inject(n.client, 0, f);
    n.sim.run_for(Duration::from_secs(5));
    assert_eq!(
        errors_on(&n, n.lan),
        [Error {
            to_mac: own,
            kind: (3, 1),
            from: WAN_ADDR,
            to: CLIENT,
            quoted: (CLIENT, 5555, Ipv4Addr::new(203, 0, 113, 77), 7000, 63),
        }]
    );
}

#[test]
fn a_forward_to_an_absent_inside_host_gets_the_remote_a_host_unreachable_quoting_what_it_sent() {
    let mut n = net();
    let gw = n.sim.mac(n.router, 1).unwrap();
    let own = n.sim.mac(n.remote, 0).unwrap();
    let mut f = datagram(gw, REMOTE, WAN_ADDR, 9001, 64);
    f[6..12].copy_from_slice(&own);
    n.sim.inject(n.remote, 0, f);
    n.sim.run_for(Duration::from_secs(5));
    assert_eq!(
        errors_on(&n, n.wan),
        [Error {
            to_mac: own,
            kind: (3, 1),
            from: WAN_ADDR,
            to: REMOTE,
            quoted: (REMOTE, 5555, WAN_ADDR, 9001, 63),
        }]
    );
    let _ = n.client;
}

/// A packet that came in from a neighbour on one side, from a source the
/// router reaches on another (a routing loop upstream, asymmetric paths):
/// the time exceeded goes by the route to the source, from that side's
/// address, not back to the neighbour that handed the packet over.
#[test]
fn a_time_exceeded_leaves_by_the_route_back_to_the_sender() {
    let mut sim = Sim::builder().seed(5).build();
    let down = sim.segment("down", LinkParams::default());
    let up = sim.segment("up", LinkParams::default());
    let isp = sim
        .router(
            "isp",
            RouterConfig::new()
                .interface(
                    "down",
                    down,
                    Ipv4Addr::new(203, 0, 113, 254),
                    24,
                    Role::Inside,
                )
                .interface("up", up, Ipv4Addr::new(198, 51, 100, 1), 24, Role::Outside),
        )
        .unwrap();
    let sender = Ipv4Addr::new(203, 0, 113, 5);
    let office = sim
        .host("office", HostConfig::new(down, sender, 24))
        .unwrap();
    let far = sim
        .host(
            "far",
            HostConfig::new(up, Ipv4Addr::new(198, 51, 100, 2), 24),
        )
        .unwrap();
    sim.run_for(Duration::from_millis(10));
    let mac = sim.mac(isp, 1).unwrap();
    let f = datagram(mac, sender, Ipv4Addr::new(192, 0, 2, 1), 7000, 1);
    sim.inject(far, 0, f);
    sim.run_for(Duration::from_secs(1));
    let n = Net {
        sim,
        router: isp,
        client: office,
        remote: far,
        lan: down,
        wan: up,
    };
    let office_mac = n.sim.mac(office, 0).unwrap();
    assert_eq!(
        errors_on(&n, n.lan),
        [Error {
            to_mac: office_mac,
            kind: (11, 0),
            from: Ipv4Addr::new(203, 0, 113, 254),
            to: sender,
            quoted: (sender, 5555, Ipv4Addr::new(192, 0, 2, 1), 7000, 1),
        }]
    );
    assert_eq!(errors_on(&n, n.wan), []);
}

/// Two routers on one LAN, the hosts' gateway routing the other's network
/// back out of the LAN: Linux sends the sender an ICMP redirect for host
/// (RFC 1812 §5.2.7.2) before forwarding the packet. Measured on Linux
/// 6.18 in namespaces (sender 192.168.1.251 with a route via the router
/// 192.168.1.1 to a neighbour on the same /24): type 5 code 1 from
/// 192.168.1.1, gateway the next hop, TOS 0xc0, TTL 64, quoting the whole
/// packet with TTL 63; for a host that ignores them, again at 0.5, 1,
/// 1.5, 2, 3, 4.5, 7.5 and 13 s of a packet every 0.5 s, then never.
#[test]
fn a_packet_sent_back_out_of_its_link_gets_the_sender_a_redirect() {
    let mut sim = Sim::builder().seed(5).build();
    let lan = sim.segment("lan", LinkParams::default());
    let far = sim.segment("far", LinkParams::default());
    let other = Ipv4Addr::new(192, 168, 1, 5);
    let gw = sim
        .router(
            "gw",
            RouterConfig::new()
                .interface("lan0", lan, LAN_ADDR, 24, Role::Inside)
                .route(Prefix::new(Ipv4Addr::new(10, 9, 0, 0), 16), other)
                // NAT runs, but this connection is not translated.
                .nat(Behaviour::linux(), |_| {}),
        )
        .unwrap();
    let _r2 = sim
        .router(
            "r2",
            RouterConfig::new()
                .interface("lan0", lan, other, 24, Role::Inside)
                .interface("far0", far, Ipv4Addr::new(10, 9, 0, 1), 16, Role::Inside),
        )
        .unwrap();
    let client = sim
        .host("client", HostConfig::new(lan, CLIENT, 24).gateway(LAN_ADDR))
        .unwrap();
    let _target = sim
        .host(
            "target",
            HostConfig::new(far, Ipv4Addr::new(10, 9, 0, 7), 16)
                .gateway(Ipv4Addr::new(10, 9, 0, 1)),
        )
        .unwrap();
    sim.run_for(Duration::from_millis(10));
    let to_gw = sim.mac(gw, 0).unwrap();
    let own = sim.mac(client, 0).unwrap();
    let start = sim.now();
    for k in 0..40u64 {
        let mut f = datagram(to_gw, CLIENT, Ipv4Addr::new(10, 9, 0, 7), 7000, 64);
        f[6..12].copy_from_slice(&own);
        sim.inject(client, 0, f);
        sim.run_for(Duration::from_millis(500));
        let _ = k;
    }
    let redirects: Vec<(u64, Vec<u8>)> = sim
        .capture(lan)
        .iter()
        .filter(|(_, f)| f.len() >= 42 && f[12..14] == [8, 0] && f[23] == 1 && f[34] == 5)
        .map(|(t, f)| ((*t - start).as_millis() as u64, f.clone()))
        .collect();
    let at: Vec<u64> = redirects.iter().map(|(t, _)| t / 100 * 100).collect();
    assert_eq!(at, [0, 500, 1000, 1500, 2000, 3000, 4500, 7500, 13_000]);
    let f = &redirects[0].1;
    let a = |b: &[u8]| Ipv4Addr::new(b[0], b[1], b[2], b[3]);
    assert_eq!(&f[0..6], &own[..], "to the sender's MAC");
    assert_eq!(
        (f[15], f[22], f[34], f[35]),
        (0xc0, 64, 5, 1),
        "TOS, TTL, type, code"
    );
    assert_eq!((a(&f[26..30]), a(&f[30..34])), (LAN_ADDR, CLIENT));
    assert_eq!(a(&f[38..42]), other, "the gateway to use");
    let q = &f[42..];
    assert_eq!(
        (a(&q[12..16]), a(&q[16..20]), q[8]),
        (CLIENT, Ipv4Addr::new(10, 9, 0, 7), 63)
    );
    // The packets still go through: the sender ignores redirects.
    let delivered = sim
        .capture(far)
        .iter()
        .filter(|(_, f)| f.len() > 34 && f[23] == 17 && a(&f[30..34]) == Ipv4Addr::new(10, 9, 0, 7))
        .count();
    assert_eq!(delivered, 40);
}

/// A hairpin is NATed: Linux's NAT drops the redirect
/// (nf_nat_icmp_reply_translation), so none reaches the client.
#[test]
fn a_hairpinned_connection_gets_no_redirect() {
    let mut n = net();
    // Hairpin: the DNAT target is on the LAN the client sends from.
    let gw = n.sim.mac(n.router, 0).unwrap();
    let own = n.sim.mac(n.client, 0).unwrap();
    let mut f = datagram(gw, CLIENT, WAN_ADDR, 9001, 64);
    f[6..12].copy_from_slice(&own);
    n.sim.inject(n.client, 0, f);
    n.sim.run_for(Duration::from_secs(1));
    // It was DNATed back out of the LAN: the router asks for the target.
    let asked = n
        .sim
        .capture(n.lan)
        .iter()
        .any(|(_, f)| f.len() >= 42 && f[12..14] == [8, 6] && f[38..42] == [192, 168, 1, 99]);
    assert!(asked, "the hairpin was forwarded");
    let redirects = n
        .sim
        .capture(n.lan)
        .iter()
        .filter(|(_, f)| f.len() >= 42 && f[12..14] == [8, 0] && f[23] == 1 && f[34] == 5)
        .count();
    assert_eq!(redirects, 0);
}
