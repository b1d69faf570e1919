//! Adversarial load end to end: a spoofed SYN flood of ten times the NAT
//! table's capacity against a forwarded port, while an established
//! connection carries a transfer through the same router.

use natsim_nat::{Behaviour, IfaceId, PortRange, Proto, Role};
use natsim_sim::probe::{TcpSender, TcpSink};
use natsim_sim::*;
use std::net::Ipv4Addr;
use std::time::Duration;

const CAPACITY: usize = 200;

fn syn(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, dst_mac: [u8; 6]) -> Vec<u8> {
    // Ethernet + IPv4 + TCP SYN, checksums computed here.
    let mut f = vec![0u8; 54];
    f[0..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&[0x02, 0xba, 0xd0, 0, 0, 1]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&40u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let c = natsim_nat::checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    let t = &mut f[34..54];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&u32::from(sport).wrapping_mul(2654435761).to_be_bytes());
    t[12] = 5 << 4;
    t[13] = 0x02;
    t[14..16].copy_from_slice(&8192u16.to_be_bytes());
    let sum = natsim_nat::checksum::sum(
        natsim_nat::checksum::pseudo_header_sum(src, dst, 6, 20),
        &f[34..54],
    );
    let c = !(sum as u16);
    f[50..52].copy_from_slice(&c.to_be_bytes());
    f
}

#[test]
fn syn_flood_of_ten_times_capacity_leaves_an_established_transfer_intact() {
    let mut sim = Sim::builder().seed(99).tracing(false).build();
    let lan = sim.segment("lan", LinkParams::default());
    let wan = sim.segment("internet", LinkParams::default());
    let fw = sim
        .router(
            "fw",
            RouterConfig::new()
                .interface("lan0", lan, Ipv4Addr::new(192, 168, 1, 1), 24, Role::Inside)
                .interface(
                    "wan0",
                    wan,
                    Ipv4Addr::new(203, 0, 113, 1),
                    24,
                    Role::Outside,
                )
                .nat(Behaviour::rfc_recommended(), |c| {
                    c.capacity = CAPACITY;
                    c.rules.forward(
                        "smtp",
                        IfaceId(1),
                        Proto::Tcp,
                        PortRange::single(25),
                        Ipv4Addr::new(192, 168, 1, 10),
                        None,
                    );
                    c.rules.masquerade("masq", IfaceId(1), None);
                }),
        )
        .unwrap();
    let server = sim
        .host(
            "server",
            HostConfig::new(lan, Ipv4Addr::new(192, 168, 1, 10), 24)
                .gateway(Ipv4Addr::new(192, 168, 1, 1)),
        )
        .unwrap();
    let client = sim
        .host(
            "client",
            HostConfig::new(wan, Ipv4Addr::new(203, 0, 113, 7), 24),
        )
        .unwrap();
    let attacker = sim
        .host(
            "attacker",
            HostConfig::new(wan, Ipv4Addr::new(203, 0, 113, 66), 24),
        )
        .unwrap();
    let sink = sim.add_app(server, Box::new(TcpSink::new(25))).unwrap();
    let data = vec![0xab; 300_000];
    sim.add_app(
        client,
        Box::new(TcpSender::new(
            (Ipv4Addr::new(203, 0, 113, 1), 25),
            data.clone(),
        )),
    )
    .unwrap();
    // Let the connection establish, then flood while it transfers.
    sim.run_for(Duration::from_millis(50));
    let router_mac = sim.mac(fw, 1).unwrap();
    for k in 0..10 * CAPACITY {
        let src = Ipv4Addr::from_bits(0x0a00_0000 | (k as u32 * 7919 + 1));
        sim.inject(
            attacker,
            0,
            syn(
                src,
                1024 + (k % 60000) as u16,
                Ipv4Addr::new(203, 0, 113, 1),
                25,
                router_mac,
            ),
        );
        if k % 50 == 0 {
            sim.run_for(Duration::from_millis(5));
        }
        assert!(sim.nat(fw).unwrap().connection_count() <= CAPACITY);
    }
    let done = sim.run_until_pred(Duration::from_secs(120), |s| {
        s.app::<TcpSink>(sink)
            .is_some_and(|k| k.received.len() == data.len())
    });
    assert!(done, "the established transfer did not survive the flood");
    assert_eq!(sim.app::<TcpSink>(sink).unwrap().received, data);
    let stats = sim.nat(fw).unwrap().stats();
    assert!(
        stats.tcp.evicted >= (8 * CAPACITY) as u64,
        "embryonic evictions counted: {} {stats:?}",
        stats.tcp.evicted
    );
    assert!(
        sim.nat(fw).unwrap().table_heap_bytes() < 512 * CAPACITY,
        "memory bounded"
    );
}

fn world(pool_ports: Option<(u16, u16)>) -> (Sim, NodeId, NodeId, NodeId, NodeId) {
    let mut sim = Sim::builder().seed(5).build();
    let lan = sim.segment("lan", LinkParams::default());
    let wan = sim.segment("internet", LinkParams::default());
    let fw = sim
        .router(
            "fw",
            RouterConfig::new()
                .interface("lan0", lan, Ipv4Addr::new(192, 168, 1, 1), 24, Role::Inside)
                .interface(
                    "wan0",
                    wan,
                    Ipv4Addr::new(203, 0, 113, 1),
                    24,
                    Role::Outside,
                )
                .nat(Behaviour::symmetric(), move |c| match pool_ports {
                    Some((a, b)) => {
                        c.rules.push(natsim_nat::Rule {
                            name: "tiny-pool".into(),
                            chain: natsim_nat::Chain::Postrouting,
                            matches: natsim_nat::Match {
                                out_iface: Some(IfaceId(1)),
                                ..Default::default()
                            },
                            action: natsim_nat::Action::Snat(natsim_nat::SnatPool {
                                first: Ipv4Addr::new(203, 0, 113, 1),
                                last: Ipv4Addr::new(203, 0, 113, 1),
                                ports: PortRange::new(a, b),
                                pooling: natsim_nat::Pooling::Paired,
                                random: natsim_nat::PortFlag::Profile,
                            }),
                        });
                    }
                    None => {
                        c.rules.masquerade("masq", IfaceId(1), None);
                    }
                }),
        )
        .unwrap();
    let inside = sim
        .host(
            "inside",
            HostConfig::new(lan, Ipv4Addr::new(192, 168, 1, 10), 24)
                .gateway(Ipv4Addr::new(192, 168, 1, 1)),
        )
        .unwrap();
    let outside = sim
        .host(
            "outside",
            HostConfig::new(wan, Ipv4Addr::new(203, 0, 113, 7), 24),
        )
        .unwrap();
    let attacker = sim
        .host(
            "attacker",
            HostConfig::new(wan, Ipv4Addr::new(203, 0, 113, 66), 24),
        )
        .unwrap();
    (sim, fw, inside, outside, attacker)
}

#[test]
fn port_exhaustion_gives_new_flows_a_clear_reason_and_old_flows_keep_working() {
    use natsim_sim::probe::{UdpEcho, UdpPeer};
    let (mut sim, fw, inside, outside, _) = world(Some((40000, 40004)));
    sim.add_app(outside, Box::new(UdpEcho::new(7))).unwrap();
    let peers: Vec<AppId> = (0..8)
        .map(|k| {
            sim.add_app(inside, Box::new(UdpPeer::new(5000 + k)))
                .unwrap()
        })
        .collect();
    for &p in &peers {
        sim.with_app::<UdpPeer, _>(p, |u| u.send((Ipv4Addr::new(203, 0, 113, 7), 7), b"hello"));
        sim.run_for(Duration::from_millis(100));
    }
    let answered: Vec<bool> = peers
        .iter()
        .map(|&p| !sim.app::<UdpPeer>(p).unwrap().received.is_empty())
        .collect();
    assert_eq!(
        answered,
        [true, true, true, true, true, false, false, false]
    );
    assert_eq!(
        sim.nat(fw)
            .unwrap()
            .stats()
            .drops_by_reason()
            .get("ports-exhausted"),
        Some(&3)
    );
    assert!(sim.traces().iter().any(|t| matches!(&t.disposition, Disposition::DroppedByNat { reason, .. } if reason == "ports-exhausted")));
    // The first flows still work.
    sim.with_app::<UdpPeer, _>(peers[0], |u| {
        u.send((Ipv4Addr::new(203, 0, 113, 7), 7), b"again")
    });
    sim.run_for(Duration::from_millis(100));
    assert_eq!(sim.app::<UdpPeer>(peers[0]).unwrap().received.len(), 2);
}

fn icmp_error(attacker_mac: [u8; 6], router_mac: [u8; 6], k: u32) -> Vec<u8> {
    let mut inner = vec![0u8; 28];
    inner[0] = 0x45;
    inner[2..4].copy_from_slice(&28u16.to_be_bytes());
    inner[8] = 64;
    inner[9] = if k.is_multiple_of(2) { 17 } else { 6 };
    inner[12..16].copy_from_slice(&[203, 0, 113, 1]);
    inner[16..20]
        .copy_from_slice(&(0xc633_0000u32 | (k.wrapping_mul(2_654_435_761) >> 16)).to_be_bytes());
    inner[20..22].copy_from_slice(&(k.wrapping_mul(7919) as u16).to_be_bytes());
    inner[22..24].copy_from_slice(&(k.wrapping_mul(104_729) as u16).to_be_bytes());
    let c = natsim_nat::checksum::checksum(&inner[..20]);
    inner[10..12].copy_from_slice(&c.to_be_bytes());
    let mut icmp = vec![3u8, 1, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&inner);
    let c = natsim_nat::checksum::checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut f = Vec::new();
    f.extend_from_slice(&router_mac);
    f.extend_from_slice(&attacker_mac);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let mut ip = vec![
        0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 203, 0, 113, 66, 203, 0, 113, 1,
    ];
    ip[2..4].copy_from_slice(&((20 + icmp.len()) as u16).to_be_bytes());
    let c = natsim_nat::checksum::checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&icmp);
    f
}

#[test]
fn an_icmp_error_storm_quoting_random_packets_reaches_no_inside_host() {
    let (mut sim, fw, inside, outside, attacker) = world(None);
    let sink = sim.add_app(outside, Box::new(TcpSink::new(80))).unwrap();
    let data = vec![7u8; 100_000];
    sim.add_app(
        inside,
        Box::new(TcpSender::new(
            (Ipv4Addr::new(203, 0, 113, 7), 80),
            data.clone(),
        )),
    )
    .unwrap();
    sim.run_for(Duration::from_millis(20));
    let router_mac = sim.mac(fw, 1).unwrap();
    let attacker_mac = [0x02, 0x4e, 0x53, 0x00, attacker.0 as u8, 0x00];
    for k in 0..5000 {
        sim.inject(attacker, 0, icmp_error(attacker_mac, router_mac, k));
        if k % 100 == 0 {
            sim.run_for(Duration::from_millis(2));
        }
    }
    assert!(sim.run_until_pred(Duration::from_secs(60), |s| s
        .app::<TcpSink>(sink)
        .is_some_and(|k| k.received.len() == data.len())));
    sim.run_for(Duration::from_secs(1)); // the last injected frames land
    let leaked = sim
        .traces()
        .iter()
        .filter(|t| {
            t.summary.starts_with("icmp")
                && matches!(&t.disposition, Disposition::Delivered { node } if node == "inside")
        })
        .count();
    assert_eq!(leaked, 0, "storm errors reached the inside host");
    assert_eq!(
        sim.nat(fw)
            .unwrap()
            .stats()
            .drops_by_reason()
            .get("icmp-error-no-match"),
        Some(&5000)
    );
}
