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
use natsim_nat::{Behaviour, IfaceId, PortRange, Proto, Role};
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
