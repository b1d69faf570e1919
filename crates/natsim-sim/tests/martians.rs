//! A packet whose source is one of the router's own addresses is dropped
//! on input, before NAT, as Linux's `fib_validate_source` does with
//! `accept_local` 0. Measured on Linux 6.18 in network namespaces: a UDP
//! datagram from 203.0.113.1 (the router's WAN address) sent in on the WAN
//! to an inside host never arrived; the same from 203.0.113.50 did. This
//! is what ends a routing loop through a NAT: the masqueraded packet
//! coming back is not masqueraded again and again.

mod common;
use common::Udp;
use natsim_nat::{Behaviour, IfaceId, PortRange, Proto, Role};
use natsim_sim::*;
use std::net::Ipv4Addr;
use std::time::Duration;

const WAN_ADDR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);

fn datagram(to: [u8; 6], src: Ipv4Addr, sport: u16) -> Vec<u8> {
    Udp::new(to, src, WAN_ADDR, sport, 9000).frame()
}

#[test]
fn a_packet_from_the_routers_own_address_is_dropped_before_nat() {
    let mut sim = Sim::builder().seed(2).build();
    let lan = sim.segment("lan", LinkParams::default());
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
                        Ipv4Addr::new(192, 168, 1, 10),
                        None,
                    );
                }),
        )
        .unwrap();
    let remote = sim
        .host(
            "remote",
            HostConfig::new(wan, Ipv4Addr::new(203, 0, 113, 50), 24),
        )
        .unwrap();
    sim.run_for(Duration::from_millis(10));
    let mac = sim.mac(router, 1).unwrap();
    for (src, sport) in [
        (WAN_ADDR, 40001),
        (Ipv4Addr::new(192, 168, 1, 1), 40002),
        (Ipv4Addr::new(127, 0, 0, 1), 40003),
        (Ipv4Addr::new(203, 0, 113, 50), 40004),
    ] {
        sim.inject(remote, 0, datagram(mac, src, sport));
        sim.run_for(Duration::from_millis(100));
    }
    let ports: Vec<u16> = sim
        .nat(router)
        .unwrap()
        .connections()
        .map(|c| c.original.src.port)
        .collect();
    assert_eq!(ports, [40004]);
}
