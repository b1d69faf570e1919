//! A connection is kept only if its first packet gets through. Linux
//! creates the conntrack entry in PREROUTING but confirms it only when
//! the packet leaves (nf_conntrack_confirm, at POSTROUTING or INPUT); a
//! packet dropped in between (ip_forward's PACKET_HOST, TTL and MTU
//! checks) frees the unconfirmed entry with it.
//!
//! Measured on Linux 6.18 in network namespaces, a `dnat to` rule for UDP
//! 9000 and `conntrack -L` after each datagram: to the router's MAC, an
//! entry; to ff:ff:ff:ff:ff:ff or 01:00:5e:00:00:01, none; TTL 1, none; DF
//! and larger than the inside MTU (1400), none; the same without DF
//! (fragmented on), an entry.

mod common;
use common::Udp;
use natsim_nat::{Behaviour, IfaceId, PortRange, Proto, Role};
use natsim_sim::*;
use std::net::Ipv4Addr;
use std::time::Duration;

const WAN_ADDR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
const CLIENT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);

struct Net {
    sim: Sim,
    router: NodeId,
    client: NodeId,
}

fn net() -> Net {
    let mut sim = Sim::builder().seed(11).build();
    let lan = sim.segment(
        "lan",
        LinkParams {
            mtu: 1400,
            ..LinkParams::default()
        },
    );
    let wan = sim.segment("internet", LinkParams::default());
    let router = sim
        .router(
            "fw",
            RouterConfig::new()
                .interface("lan0", lan, Ipv4Addr::new(192, 168, 1, 1), 24, Role::Inside)
                .interface("wan0", wan, WAN_ADDR, 24, Role::Outside)
                .nat(Behaviour::linux(), |c| {
                    c.rules.masquerade("masq", IfaceId(1), None);
                    c.rules.forward(
                        "udp9000",
                        IfaceId(1),
                        Proto::Udp,
                        PortRange::single(9000),
                        SERVER,
                        None,
                    );
                }),
        )
        .unwrap();
    sim.host(
        "server",
        HostConfig::new(lan, SERVER, 24).gateway(Ipv4Addr::new(192, 168, 1, 1)),
    )
    .unwrap();
    let client = sim
        .host("client", HostConfig::new(wan, CLIENT, 24))
        .unwrap();
    sim.run_for(Duration::from_millis(10));
    Net {
        sim,
        router,
        client,
    }
}

/// A UDP datagram from the client to the forwarded port, `payload` bytes.
fn datagram(to: [u8; 6], sport: u16, ttl: u8, df: bool, payload: usize) -> Vec<u8> {
    Udp {
        ttl,
        df,
        payload,
        ..Udp::new(to, CLIENT, WAN_ADDR, sport, 9000)
    }
    .frame()
}

/// The client ports of the connections the router's NAT holds.
fn tracked_ports(n: &Net) -> Vec<u16> {
    let nat = n.sim.nat(n.router).unwrap();
    nat.connections().map(|c| c.original.src.port).collect()
}

#[test]
fn a_datagram_dropped_after_dnat_leaves_no_connection() {
    let mut n = net();
    let mac = n.sim.mac(n.router, 1).unwrap();
    let sent = [
        datagram([0xff; 6], 40001, 64, false, 5),
        datagram([0x01, 0x00, 0x5e, 0, 0, 1], 40002, 64, false, 5),
        datagram(mac, 40003, 64, false, 5),
        datagram(mac, 40011, 1, false, 5),
        datagram(mac, 40012, 64, true, 1422),
        datagram(mac, 40013, 64, false, 1422),
    ];
    for f in sent {
        n.sim.inject(n.client, 0, f);
        n.sim.run_for(Duration::from_millis(100));
    }
    assert_eq!(tracked_ports(&n), [40003, 40013]);
}
