//! The simulator end to end: smoltcp hosts behind a NAT router.

use natsim_nat::{Behaviour, Hairpin, Instant, PortRange, Prefix, Proto, Role};
use natsim_sim::probe::{Ping, ProbeOutcome, TcpProbe, TcpSender, TcpSink, UdpEcho, UdpProbe};
use natsim_sim::tcp::ConnectError;
use natsim_sim::*;
use std::net::Ipv4Addr;
use std::time::Duration;

const LAN_GW: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
const WAN_ADDR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const INSIDE: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
const INSIDE2: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 20);
const OUTSIDE: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);
const PUBLIC_1TO1: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);

struct Net {
    sim: Sim,
    fw: NodeId,
    inside: NodeId,
    inside2: NodeId,
    outside: NodeId,
    lan: SegmentId,
    wan: SegmentId,
}

fn net(
    seed: u64,
    behaviour: Behaviour,
    rules: impl FnOnce(&mut natsim_nat::NatConfig) + 'static,
) -> Net {
    let mut sim = Sim::builder().seed(seed).build();
    let lan = sim.segment("lan", LinkParams::default());
    let wan = sim.segment("internet", LinkParams::default());
    let fw = sim
        .router(
            "fw",
            RouterConfig::new()
                .interface("lan0", lan, LAN_GW, 24, Role::Inside)
                .interface("wan0", wan, WAN_ADDR, 24, Role::Outside)
                .nat(behaviour, rules),
        )
        .unwrap();
    let inside = sim
        .host("exchange", HostConfig::new(lan, INSIDE, 24).gateway(LAN_GW))
        .unwrap();
    let inside2 = sim
        .host(
            "workstation",
            HostConfig::new(lan, INSIDE2, 24).gateway(LAN_GW),
        )
        .unwrap();
    let outside = sim
        .host("internet-client", HostConfig::new(wan, OUTSIDE, 24))
        .unwrap();
    Net {
        sim,
        fw,
        inside,
        inside2,
        outside,
        lan,
        wan,
    }
}

fn masq(seed: u64, b: Behaviour) -> Net {
    net(seed, b, |c| {
        c.rules.masquerade("masq", natsim_nat::IfaceId(1), None);
    })
}

fn done<T: App>(sim: &Sim, id: AppId, f: impl Fn(&T) -> bool) -> bool {
    sim.app::<T>(id).is_some_and(f)
}

#[test]
fn masquerade_lets_inside_ping_tcp_and_udp_out_and_outside_sees_the_router() {
    let mut n = masq(1, Behaviour::linux());
    let sink = n
        .sim
        .add_app(n.outside, Box::new(TcpSink::new(80)))
        .unwrap();
    let echo = n
        .sim
        .add_app(n.outside, Box::new(UdpEcho::new(3478)))
        .unwrap();
    let ping = n
        .sim
        .add_app(n.inside, Box::new(Ping::new(OUTSIDE)))
        .unwrap();
    let tcp = n
        .sim
        .add_app(n.inside, Box::new(TcpProbe::new((OUTSIDE, 80))))
        .unwrap();
    let udp = n
        .sim
        .add_app(
            n.inside,
            Box::new(UdpProbe::new((OUTSIDE, 3478), 5000, b"hello")),
        )
        .unwrap();
    n.sim.run_for(Duration::from_secs(5));
    let icmp: Vec<_> = n
        .sim
        .traces()
        .iter()
        .filter(|t| t.summary.starts_with("icmp"))
        .collect();
    assert!(
        matches!(
            n.sim.app::<Ping>(ping).unwrap().outcome,
            Some(ProbeOutcome::Replied { .. })
        ),
        "{:?} {icmp:#?}",
        n.sim.app::<Ping>(ping).unwrap().outcome
    );
    assert!(matches!(
        n.sim.app::<TcpProbe>(tcp).unwrap().outcome,
        Some(ProbeOutcome::Connected { .. })
    ));
    let u = n.sim.app::<UdpProbe>(udp).unwrap();
    assert!(
        matches!(u.outcome, Some(ProbeOutcome::Replied { .. })),
        "{:?}",
        u.outcome
    );
    // The outside host saw the router's address, never the inside one.
    assert_eq!(n.sim.app::<TcpSink>(sink).unwrap().peers[0].0, WAN_ADDR);
    // The trace carries the rewrite as data: the SYN's flow before and
    // after the masquerade rule, at the router's hop.
    let syn = n
        .sim
        .traces()
        .iter()
        .find(|t| t.summary.contains(":80 [S]"))
        .unwrap();
    let fw = syn.hops.iter().find(|h| h.node == "fw").unwrap();
    let rewrite = fw.steps.iter().find_map(|s| match s {
        Step::Nat {
            kind: "translated",
            before: Some(b),
            after: Some(a),
            ..
        } => Some((*b, *a)),
        _ => None,
    });
    let (before, after) = rewrite.expect("a translated step");
    assert_eq!((before.src.addr, after.src.addr), (INSIDE, WAN_ADDR));
    assert_eq!(before.dst, after.dst);
    assert!(fw.steps.iter().any(
        |s| matches!(s, Step::Nat { kind: "rule-matched", rule: Some(r), .. } if r == "masq")
    ));
    assert_eq!(syn.disposition.code(), "delivered");
    assert_eq!(
        n.sim.app::<UdpEcho>(echo).unwrap().seen[0],
        (WAN_ADDR, 5000)
    );
}

#[test]
fn inbound_syn_to_masquerading_router_times_out_after_21s() {
    let mut n = masq(2, Behaviour::rfc_recommended()); // silent drop
    n.sim.add_app(n.inside, Box::new(TcpSink::new(25))).unwrap();
    let telnet = n
        .sim
        .add_app(n.outside, Box::new(TcpProbe::new((WAN_ADDR, 25))))
        .unwrap();
    n.sim.run_until_pred(Duration::from_secs(60), |s| {
        done::<TcpProbe>(s, telnet, |t| t.outcome.is_some())
    });
    let out = n
        .sim
        .app::<TcpProbe>(telnet)
        .unwrap()
        .outcome
        .clone()
        .unwrap();
    let ProbeOutcome::Failed {
        error: ConnectError::TimedOut { after_ms },
    } = out
    else {
        panic!("expected a timeout, got {out:?}");
    };
    assert!(
        (20_900..=21_100).contains(&after_ms),
        "timed out after {after_ms} ms"
    );
    // Exactly three SYNs (0, 3, 9 s), each dropped by the NAT filter.
    let syns: Vec<_> = n
        .sim
        .traces()
        .iter()
        .filter(|t| t.summary.contains(":25 [S]"))
        .collect();
    assert_eq!(
        syns.len(),
        3,
        "{:#?}",
        syns.iter().map(|t| (&t.summary, t.at)).collect::<Vec<_>>()
    );
    let at: Vec<u64> = syns.iter().map(|t| t.at.total_millis()).collect();
    assert_eq!(at[1] - at[0], 3000);
    assert_eq!(at[2] - at[0], 9000);
    for t in syns {
        assert_eq!(t.disposition.code(), "dropped-by-nat-filter", "{t:#?}");
        // The NAT's own drop step names the reason as data.
        assert!(
            t.hops
                .iter()
                .flat_map(|h| &h.steps)
                .any(|s| matches!(s, Step::Nat { reason: Some(r), .. } if *r == "no-mapping")),
            "{t:#?}"
        );
    }
}

#[test]
fn linux_profile_refuses_unsolicited_syn_with_a_rst() {
    let mut n = masq(3, Behaviour::linux());
    let telnet = n
        .sim
        .add_app(n.outside, Box::new(TcpProbe::new((WAN_ADDR, 25))))
        .unwrap();
    n.sim.run_for(Duration::from_secs(5));
    assert_eq!(
        n.sim.app::<TcpProbe>(telnet).unwrap().outcome,
        Some(ProbeOutcome::Failed {
            error: ConnectError::Refused
        })
    );
}

#[test]
fn port_forward_connects_and_transfers_one_megabyte_intact() {
    let mut n = net(4, Behaviour::linux(), |c| {
        c.rules.masquerade("masq", natsim_nat::IfaceId(1), None);
        c.rules.forward(
            "smtp",
            natsim_nat::IfaceId(1),
            Proto::Tcp,
            PortRange::single(2525),
            INSIDE,
            Some(25),
        );
    });
    let sink = n.sim.add_app(n.inside, Box::new(TcpSink::new(25))).unwrap();
    let data: Vec<u8> = (0..1_048_576u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let sender = n
        .sim
        .add_app(
            n.outside,
            Box::new(TcpSender::new((WAN_ADDR, 2525), data.clone())),
        )
        .unwrap();
    let ok = n.sim.run_until_pred(Duration::from_secs(120), |s| {
        done::<TcpSink>(s, sink, |k| k.received.len() == data.len())
    });
    assert!(
        ok,
        "received {} bytes",
        n.sim.app::<TcpSink>(sink).unwrap().received.len()
    );
    assert_eq!(n.sim.app::<TcpSink>(sink).unwrap().received, data);
    assert!(matches!(
        n.sim.app::<TcpSender>(sender).unwrap().outcome,
        Some(ProbeOutcome::Connected { .. })
    ));
    // The server saw the real client (DNAT only).
    assert_eq!(n.sim.app::<TcpSink>(sink).unwrap().peers[0].0, OUTSIDE);
}

#[test]
fn one_to_one_nat_lets_inbound_reach_an_arbitrary_port() {
    let mut n = net(5, Behaviour::rfc_recommended(), |c| {
        c.rules.one_to_one(
            "pipe",
            natsim_nat::IfaceId(1),
            Prefix::host(INSIDE),
            Prefix::host(PUBLIC_1TO1),
        );
        c.rules.masquerade("masq", natsim_nat::IfaceId(1), None);
    });
    n.sim
        .add_app(n.inside, Box::new(TcpSink::new(6543)))
        .unwrap();
    let telnet = n
        .sim
        .add_app(n.outside, Box::new(TcpProbe::new((PUBLIC_1TO1, 6543))))
        .unwrap();
    n.sim.run_for(Duration::from_secs(5));
    assert!(
        matches!(
            n.sim.app::<TcpProbe>(telnet).unwrap().outcome,
            Some(ProbeOutcome::Connected { .. })
        ),
        "{:?}",
        n.sim.app::<TcpProbe>(telnet).unwrap().outcome
    );
}

fn hairpin_net(h: Hairpin) -> (Net, AppId) {
    let mut b = Behaviour::rfc_recommended();
    b.hairpin = h;
    let mut n = net(6, b, |c| {
        c.rules.forward(
            "web",
            natsim_nat::IfaceId(1),
            Proto::Tcp,
            PortRange::single(80),
            INSIDE,
            None,
        );
        c.rules.masquerade("masq", natsim_nat::IfaceId(1), None);
    });
    n.sim.add_app(n.inside, Box::new(TcpSink::new(80))).unwrap();
    let probe = n
        .sim
        .add_app(n.inside2, Box::new(TcpProbe::new((WAN_ADDR, 80))))
        .unwrap();
    n.sim.run_for(Duration::from_secs(30));
    (n, probe)
}

#[test]
fn hairpin_on_reaches_the_forwarded_server_through_the_external_address() {
    let (n, probe) = hairpin_net(Hairpin::On);
    assert!(matches!(
        n.sim.app::<TcpProbe>(probe).unwrap().outcome,
        Some(ProbeOutcome::Connected { .. })
    ));
}

#[test]
fn hairpin_off_fails_and_the_trace_says_why() {
    let (n, probe) = hairpin_net(Hairpin::Off);
    assert!(matches!(
        n.sim.app::<TcpProbe>(probe).unwrap().outcome,
        Some(ProbeOutcome::Failed { .. })
    ));
    assert!(n.sim.traces().iter().any(|t| matches!(&t.disposition, Disposition::DroppedByNatFilter { reason, .. } if reason == "hairpin-disabled")));
}

#[test]
fn idle_udp_mapping_expires_exactly_at_its_timeout() {
    let b = Behaviour::rfc_recommended();
    let timeout = b.timeouts.udp_unreplied;
    let mut n = masq(7, b);
    n.sim
        .add_app(n.inside, Box::new(UdpProbe::new((OUTSIDE, 9), 5000, b"x")))
        .unwrap();
    n.sim.run_for(Duration::from_millis(100));
    assert_eq!(n.sim.nat(n.fw).unwrap().connection_count(), 1);
    // The mapping was made when the datagram crossed the router.
    let crossed = n
        .sim
        .traces()
        .iter()
        .find(|t| t.summary.starts_with("udp 192.168.1.10:5000"))
        .and_then(|t| t.hops.iter().find(|h| h.node == "fw"))
        .map(|h| h.at)
        .unwrap();
    let expires = crossed + timeout;
    n.sim
        .run_until(Instant::from_micros(expires.total_micros() - 1));
    assert_eq!(
        n.sim.nat(n.fw).unwrap().connection_count(),
        1,
        "alive 1 µs before its timeout"
    );
    n.sim.run_until(expires);
    assert_eq!(
        n.sim.nat(n.fw).unwrap().connection_count(),
        0,
        "gone exactly at its timeout"
    );
    // The expiry is recorded at that instant, not at a later tick.
    assert!(n.sim.nat_log(n.fw).iter().any(|(at, _)| *at == expires));
}

#[test]
fn a_two_hour_idle_period_takes_few_events() {
    let mut n = masq(8, Behaviour::linux());
    let t0 = n.sim.now();
    n.sim.run_for(Duration::from_secs(7200));
    assert_eq!(n.sim.now(), t0 + Duration::from_secs(7200));
    // Start-up wake-ups only: a ticking simulator would need millions.
    assert!(
        n.sim.events_processed() < 20,
        "{} events",
        n.sim.events_processed()
    );
}

fn pcaps_of(seed: u64) -> (Vec<u8>, Vec<u8>, String) {
    let mut n = masq(seed, Behaviour::linux());
    n.sim
        .add_app(n.outside, Box::new(TcpSink::new(80)))
        .unwrap();
    n.sim
        .add_app(
            n.inside,
            Box::new(TcpSender::new((OUTSIDE, 80), vec![7; 20_000])),
        )
        .unwrap();
    n.sim
        .add_app(n.inside, Box::new(Ping::new(OUTSIDE)))
        .unwrap();
    n.sim.run_for(Duration::from_secs(10));
    let traces = serde_json::to_string(n.sim.traces()).unwrap();
    (n.sim.pcap_bytes(n.lan), n.sim.pcap_bytes(n.wan), traces)
}

#[test]
fn reruns_with_the_same_seed_give_identical_pcaps_and_traces() {
    let a = pcaps_of(42);
    let b = pcaps_of(42);
    assert!(a.0.len() > 1000);
    assert_eq!(a, b);
    let c = pcaps_of(43);
    assert_ne!(a.1, c.1, "a different seed changes ports/ISNs");
}

#[test]
fn captures_dissect_cleanly_in_tshark() {
    if std::process::Command::new("tshark")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("note: tshark not installed; skipping the dissection check");
        return;
    }
    let mut n = net(9, Behaviour::linux(), |c| {
        c.rules.masquerade("masq", natsim_nat::IfaceId(1), None);
        c.rules.forward(
            "web",
            natsim_nat::IfaceId(1),
            Proto::Tcp,
            PortRange::single(80),
            INSIDE,
            None,
        );
    });
    n.sim.add_app(n.inside, Box::new(TcpSink::new(80))).unwrap();
    n.sim
        .add_app(
            n.outside,
            Box::new(TcpSender::new((WAN_ADDR, 80), vec![1; 5000])),
        )
        .unwrap();
    n.sim
        .add_app(n.inside2, Box::new(Ping::new(OUTSIDE)))
        .unwrap();
    n.sim
        .add_app(
            n.inside2,
            Box::new(UdpProbe::new((OUTSIDE, 7777), 40123, b"plain udp payload")),
        )
        .unwrap();
    n.sim
        .add_app(n.outside, Box::new(TcpProbe::new((WAN_ADDR, 25))))
        .unwrap();
    // Router-made ICMP errors: time exceeded and net unreachable.
    n.sim
        .add_app(
            n.inside2,
            Box::new(UdpProbe::new((OUTSIDE, 7778), 40124, b"ttl 1").ttl(1)),
        )
        .unwrap();
    n.sim
        .add_app(
            n.inside2,
            Box::new(TcpProbe::new((Ipv4Addr::new(198, 51, 100, 9), 80))),
        )
        .unwrap();
    n.sim.run_for(Duration::from_secs(10));
    let kinds: Vec<&str> = n.sim.traces().iter().map(|t| t.summary.as_str()).collect();
    for want in ["time exceeded", "destination unreachable (code 0)"] {
        assert!(kinds.iter().any(|k| k.contains(want)), "no {want}");
    }
    let dir = std::env::temp_dir().join(format!("natsim-tshark-{}", std::process::id()));
    let paths = n.sim.write_pcaps(&dir, "t-").unwrap();
    for p in paths {
        let out = std::process::Command::new("tshark")
            .args([
                "-r",
                p.to_str().unwrap(),
                "-o",
                "tcp.check_checksum:TRUE",
                "-o",
                "udp.check_checksum:TRUE",
                "-o",
                "ip.check_checksum:TRUE",
                "-V",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("Frame 1"), "no frames in {p:?}");
        for bad in [
            "Malformed",
            "[Checksum Status: Bad]",
            "Bad checksum",
            "Expert Info (Error",
        ] {
            assert!(!text.contains(bad), "{p:?} has `{bad}`");
        }
        // Warnings are fine (a RST is one), checksum warnings are not.
        for line in text.lines().filter(|l| l.contains("Expert Info (Warning")) {
            assert!(!line.to_lowercase().contains("checksum"), "{p:?}: {line}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn connect_with_no_route_fails_unreachable_and_the_trace_says_no_route() {
    // The router has connected routes only: 198.51.100.0/24 is nowhere.
    let mut n = masq(11, Behaviour::linux());
    let far = Ipv4Addr::new(198, 51, 100, 9);
    let telnet = n
        .sim
        .add_app(n.inside, Box::new(TcpProbe::new((far, 80))))
        .unwrap();
    n.sim.run_for(Duration::from_secs(30));
    // The router's ICMP net unreachable ends the connect at once, not at
    // the 21 s timeout.
    assert_eq!(
        n.sim.app::<TcpProbe>(telnet).unwrap().outcome,
        Some(ProbeOutcome::Failed {
            error: ConnectError::Unreachable
        })
    );
    let syns: Vec<_> = n
        .sim
        .traces()
        .iter()
        .filter(|t| t.summary.contains(":80 [S]"))
        .collect();
    // One SYN: the ICMP error stopped the 3 s and 9 s retransmissions.
    assert_eq!(syns.len(), 1, "{syns:#?}");
    assert_eq!(syns[0].disposition.code(), "no-route", "{:#?}", syns[0]);
    let icmp = n
        .sim
        .traces()
        .iter()
        .find(|t| t.summary.contains("destination unreachable"))
        .expect("the router sent an ICMP error");
    assert_eq!(icmp.origin, "fw");
    assert_eq!(icmp.disposition.code(), "delivered");
}

#[test]
fn udp_with_ttl_one_expires_at_the_router_and_the_sender_hears_time_exceeded() {
    let mut n = masq(12, Behaviour::linux());
    n.sim
        .add_app(n.outside, Box::new(UdpEcho::new(3478)))
        .unwrap();
    let probe = n
        .sim
        .add_app(
            n.inside,
            Box::new(UdpProbe::new((OUTSIDE, 3478), 5001, b"ttl").ttl(1)),
        )
        .unwrap();
    n.sim.run_for(Duration::from_secs(5));
    // RFC 792 type 11 code 0 from the router's LAN address: the error
    // quotes the packet before NAT, so the probe matched it to its socket.
    assert_eq!(
        n.sim.app::<UdpProbe>(probe).unwrap().outcome,
        Some(ProbeOutcome::IcmpError {
            from: LAN_GW,
            icmp_type: 11,
            code: 0
        })
    );
    let req = n
        .sim
        .traces()
        .iter()
        .find(|t| t.summary.contains(":3478 len 3"))
        .unwrap();
    assert_eq!(req.disposition.code(), "ttl-exceeded", "{req:#?}");
    // Nothing crossed to the internet side but ARP.
    assert!(n
        .sim
        .capture(n.wan)
        .iter()
        .all(|(_, f)| f[12..14] == [0x08, 0x06]));
}

/// Fills the ARP caches on both sides of the router with one UDP exchange
/// (fault rules act on every frame, ARP included).
fn warm_up_arp(n: &mut Net) {
    n.sim
        .add_app(n.outside, Box::new(UdpEcho::new(3478)))
        .unwrap();
    let warm = n
        .sim
        .add_app(
            n.inside,
            Box::new(UdpProbe::new((OUTSIDE, 3478), 5000, b"warm")),
        )
        .unwrap();
    n.sim.run_for(Duration::from_secs(1));
    assert!(matches!(
        n.sim.app::<UdpProbe>(warm).unwrap().outcome,
        Some(ProbeOutcome::Replied { .. })
    ));
}

#[test]
fn one_way_partition_drops_only_one_direction_and_removing_it_heals() {
    let mut n = masq(13, Behaviour::linux());
    warm_up_arp(&mut n);
    // Replies from the internet host to the router are lost.
    n.sim
        .add_fault(FaultRule::partition_one_way("internet-client", "fw"));
    let first = n
        .sim
        .add_app(
            n.inside,
            Box::new(UdpProbe::new((OUTSIDE, 3478), 5002, b"one")),
        )
        .unwrap();
    n.sim.run_for(Duration::from_secs(5));
    assert!(matches!(
        n.sim.app::<UdpProbe>(first).unwrap().outcome,
        Some(ProbeOutcome::NoReply { .. })
    ));
    // The request got through (the echo answered it); the answer did not.
    let answers: Vec<_> = n
        .sim
        .traces()
        .iter()
        .filter(|t| t.origin == "internet-client" && t.summary.contains(":5002 "))
        .collect();
    assert_eq!(answers.len(), 1, "{answers:#?}");
    assert_eq!(answers[0].disposition.code(), "dropped-by-fault");
    n.sim.remove_fault("partition internet-client → fw");
    let second = n
        .sim
        .add_app(
            n.inside,
            Box::new(UdpProbe::new((OUTSIDE, 3478), 5003, b"two")),
        )
        .unwrap();
    n.sim.run_for(Duration::from_secs(5));
    assert!(matches!(
        n.sim.app::<UdpProbe>(second).unwrap().outcome,
        Some(ProbeOutcome::Replied { .. })
    ));
}

#[test]
fn a_one_way_delay_delays_delivery_by_its_duration() {
    let mut n = masq(14, Behaviour::linux());
    warm_up_arp(&mut n);
    n.sim.add_fault(FaultRule::delay_one_way(
        "internet-client",
        "fw",
        Duration::from_millis(700),
    ));
    let p = n
        .sim
        .add_app(
            n.inside,
            Box::new(UdpProbe::new((OUTSIDE, 3478), 5004, b"slow")),
        )
        .unwrap();
    n.sim.run_for(Duration::from_secs(5));
    let Some(ProbeOutcome::Replied { after_ms, .. }) = n.sim.app::<UdpProbe>(p).unwrap().outcome
    else {
        panic!("no reply");
    };
    // Without the hold a LAN-speed round trip takes well under 100 ms.
    assert!((700..800).contains(&after_ms), "{after_ms} ms");
}

#[test]
fn held_frames_are_delivered_when_released() {
    let mut n = masq(15, Behaviour::linux());
    warm_up_arp(&mut n);
    let hold = n.sim.add_fault(FaultRule::hold("fw", "internet-client"));
    let p = n
        .sim
        .add_app(
            n.inside,
            Box::new(UdpProbe::new((OUTSIDE, 3478), 5005, b"held")),
        )
        .unwrap();
    // Longer than the probe's 2 s timeout: the request is still held.
    n.sim.run_for(Duration::from_secs(3));
    assert!(matches!(
        n.sim.app::<UdpProbe>(p).unwrap().outcome,
        Some(ProbeOutcome::NoReply { .. })
    ));
    assert_eq!(n.sim.held_frames(), 1);
    let sent = n
        .sim
        .traces()
        .iter()
        .find(|t| t.summary.contains(":3478 len 4"))
        .unwrap()
        .id;
    assert_eq!(n.sim.release(&hold), 1);
    n.sim.run_for(Duration::from_secs(1));
    assert_eq!(n.sim.held_frames(), 0);
    // Released, the request reached the echo server after all.
    assert_eq!(
        n.sim.traces()[sent as usize].disposition.code(),
        "delivered"
    );
}

#[test]
fn a_router_without_nat_just_routes_and_decrements_ttl() {
    let mut sim = Sim::builder().seed(16).build();
    let a = sim.segment("a", LinkParams::default());
    let b = sim.segment("b", LinkParams::default());
    sim.router(
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
    let sink = sim.add_app(server, Box::new(TcpSink::new(80))).unwrap();
    let telnet = sim
        .add_app(
            client,
            Box::new(TcpProbe::new((Ipv4Addr::new(10, 0, 2, 5), 80))),
        )
        .unwrap();
    sim.run_for(Duration::from_secs(5));
    assert!(matches!(
        sim.app::<TcpProbe>(telnet).unwrap().outcome,
        Some(ProbeOutcome::Connected { .. })
    ));
    // No translation: the server saw the client's own address.
    assert_eq!(
        sim.app::<TcpSink>(sink).unwrap().peers[0].0,
        Ipv4Addr::new(10, 0, 1, 5)
    );
    let syn = sim
        .traces()
        .iter()
        .find(|t| t.summary.contains(":80 [S]"))
        .unwrap();
    let hop = syn.hops.iter().find(|h| h.node == "r").unwrap();
    assert_eq!(hop.iface_in.as_deref(), Some("a0"));
    assert_eq!(hop.iface_out.as_deref(), Some("b0"));
    // Windows hosts by default: DefaultTTL 128.
    assert!(hop.steps.contains(&Step::TtlDecremented { ttl: 127 }));
    assert!(!hop.steps.iter().any(|s| matches!(s, Step::Nat { .. })));
}

#[test]
fn linux_profile_answers_unsolicited_udp_with_port_unreachable() {
    let mut n = masq(17, Behaviour::linux());
    let probe = n
        .sim
        .add_app(
            n.outside,
            Box::new(UdpProbe::new((WAN_ADDR, 5353), 5006, b"anyone?")),
        )
        .unwrap();
    n.sim.run_for(Duration::from_secs(5));
    // RFC 792 type 3 code 3, from the router's external address.
    assert_eq!(
        n.sim.app::<UdpProbe>(probe).unwrap().outcome,
        Some(ProbeOutcome::IcmpError {
            from: WAN_ADDR,
            icmp_type: 3,
            code: 3
        })
    );
    let req = n
        .sim
        .traces()
        .iter()
        .find(|t| t.summary.contains(":5353 len 7"))
        .unwrap();
    assert_eq!(req.disposition.code(), "answered-by-nat", "{req:#?}");
}

#[test]
fn a_router_service_on_its_own_port_wins_over_a_port_forward() {
    // KB 291615: an NT-based firewall's own endpoint mapper owns TCP 135 on
    // its addresses, so a forward of 135 to the inside server never fires.
    let mut sim = Sim::builder().seed(18).build();
    let lan = sim.segment("lan", LinkParams::default());
    let wan = sim.segment("internet", LinkParams::default());
    let fw = sim
        .router(
            "fw",
            RouterConfig::new()
                .interface("lan0", lan, LAN_GW, 24, Role::Inside)
                .interface("wan0", wan, WAN_ADDR, 24, Role::Outside)
                .nat(Behaviour::linux(), |c| {
                    c.rules.forward(
                        "epm",
                        natsim_nat::IfaceId(1),
                        Proto::Tcp,
                        PortRange::single(135),
                        INSIDE,
                        None,
                    );
                    c.rules.masquerade("masq", natsim_nat::IfaceId(1), None);
                })
                .local_service(Proto::Tcp, 135),
        )
        .unwrap();
    let server = sim
        .host("exchange", HostConfig::new(lan, INSIDE, 24).gateway(LAN_GW))
        .unwrap();
    let client = sim
        .host("outlook", HostConfig::new(wan, OUTSIDE, 24))
        .unwrap();
    let inside_epm = sim.add_app(server, Box::new(TcpSink::new(135))).unwrap();
    let fw_epm = sim.add_app(fw, Box::new(TcpSink::new(135))).unwrap();
    let telnet = sim
        .add_app(client, Box::new(TcpProbe::new((WAN_ADDR, 135))))
        .unwrap();
    sim.run_for(Duration::from_secs(5));
    assert!(matches!(
        sim.app::<TcpProbe>(telnet).unwrap().outcome,
        Some(ProbeOutcome::Connected { .. })
    ));
    assert_eq!(sim.app::<TcpSink>(fw_epm).unwrap().peers[0].0, OUTSIDE);
    assert!(sim.app::<TcpSink>(inside_epm).unwrap().peers.is_empty());
    let syn = sim
        .traces()
        .iter()
        .find(|t| t.summary.contains(":135 [S]"))
        .unwrap();
    assert_eq!(syn.disposition.code(), "delivered-to-router", "{syn:#?}");
}

/// Every leg of a trace names a frame of its segment's capture: the first
/// leg holds the frame as sent (its summary), and a masqueraded SYN's
/// second leg, on the outside, holds it rewritten to the router's address.
#[test]
fn trace_legs_point_at_their_frames_in_each_segments_capture() {
    let mut n = masq(3, Behaviour::linux());
    n.sim
        .add_app(n.outside, Box::new(TcpSink::new(80)))
        .unwrap();
    n.sim
        .add_app(n.inside, Box::new(TcpProbe::new((OUTSIDE, 80))))
        .unwrap();
    n.sim.run_for(Duration::from_secs(3));
    let names = n.sim.segment_names();
    let seg = |name: &str| SegmentId(names.iter().position(|s| s == name).unwrap());
    let frame = |leg: &Leg| -> Vec<u8> {
        let k = leg.pcap_frame.expect("capture is on") as usize;
        n.sim.capture(seg(&leg.segment))[k - 1].1.clone()
    };
    assert!(!n.sim.traces().is_empty());
    for t in n.sim.traces() {
        assert!(!t.legs.is_empty(), "{t:#?}");
        assert_eq!(trace::summarize(&frame(&t.legs[0])), t.summary, "{t:#?}");
    }
    let syn = n
        .sim
        .traces()
        .iter()
        .find(|t| t.summary.starts_with("tcp 192.168.1.10:") && t.summary.ends_with("[S]"))
        .unwrap();
    assert_eq!(syn.legs.len(), 2, "{syn:#?}");
    assert_eq!(
        (syn.legs[0].segment.as_str(), syn.legs[1].segment.as_str()),
        ("lan", "internet")
    );
    assert_eq!(syn.legs[1].from, "fw");
    assert_eq!(syn.legs[1].to.as_deref(), Some("internet-client"));
    let out = trace::summarize(&frame(&syn.legs[1]));
    assert!(out.starts_with("tcp 203.0.113.1:"), "{out}");
}
