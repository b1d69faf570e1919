//! natsim's side of verify delivers a packet on a segment as ARP would:
//! to the host that holds its destination, to the router if the router
//! holds it, else nowhere. The kernel's probe hosts behave so (checked in
//! namespaces: a remote sending to an on-link address that no one holds
//! gets no ARP answer and sends nothing), and an OpenWrt-style forward
//! published on an address that was not the router's used to disagree.

use natsim_linux::world::{EngineWorld, World};
use natsim_linux::{packet, IfaceSpec, RouterSpec, Topology};
use natsim_nat::*;
use std::net::Ipv4Addr;

#[test]
fn a_packet_to_an_on_link_address_nobody_holds_goes_nowhere() {
    let mut nat = NatConfig::new(Behaviour::linux())
        .interface(IfaceId(0), Ipv4Addr::new(192, 168, 1, 1), 24, Role::Inside)
        .interface(IfaceId(1), Ipv4Addr::new(203, 0, 113, 1), 24, Role::Outside);
    nat.rules.masquerade("masq", IfaceId(1), None);
    let server = Ipv4Addr::new(192, 168, 1, 10);
    for (name, dst) in [("on the router", None), ("published elsewhere", Some(7))] {
        let mut nat = nat.clone();
        let id = nat.rules.forward(
            name,
            IfaceId(1),
            Proto::Udp,
            PortRange::single(9000),
            server,
            None,
        );
        if let Some(host) = dst {
            let m = &mut nat.rules.rules[usize::from(id.0)].matches;
            m.dst_iface_addr = None;
            m.dst = Some(Prefix::host(Ipv4Addr::new(203, 0, 113, host)));
        }
        let topo = Topology::new(RouterSpec {
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
        })
        .unwrap();
        let remote = topo
            .hosts
            .iter()
            .position(|h| h.kind == natsim_linux::topology::HostKind::Remote)
            .unwrap();
        let to = Ipv4Addr::new(203, 0, 113, dst.unwrap_or(1));
        let ip = packet::Ip::new(topo.hosts[remote].addr, to, 1);
        let mut w = EngineWorld::new(&topo).unwrap();
        let seen = w.send(remote, packet::udp(ip, 40000, 9000, b"probe"));
        let servers: Vec<Ipv4Addr> = seen.iter().map(|s| topo.hosts[s.host].addr).collect();
        match dst {
            None => assert_eq!(servers, [server], "{name}"),
            Some(_) => {
                assert!(seen.is_empty(), "{name}: {servers:?}");
                assert!(w.explain().contains("no ARP answer"), "{}", w.explain());
            }
        }
    }
}
