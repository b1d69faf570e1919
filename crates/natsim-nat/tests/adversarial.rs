//! Adversarial load on the engine: SYN floods, port exhaustion and ICMP
//! error storms. (The simulator repeats the flood end to end.)

mod common;

use common::*;
use natsim_nat::*;
use rand::{Rng, SeedableRng};
use std::net::Ipv4Addr;

fn steps_count(steps: &[NatStep], pred: impl Fn(&NatStep) -> bool) -> usize {
    steps.iter().filter(|s| pred(s)).count()
}

#[test]
fn syn_flood_of_ten_times_capacity_evicts_only_embryonic_entries() {
    const CAPACITY: usize = 1000;
    let mut c = config(Behaviour::rfc_recommended());
    c.capacity = CAPACITY;
    c.rules
        .forward("smtp", WAN, Proto::Tcp, PortRange::single(25), HOST_A, None);
    c.rules.masquerade("masq", WAN, None);
    let mut nat = NatEngine::new(c).unwrap();
    let now = Instant::from_secs(1);
    // 100 established flows (outbound, answered).
    let mut established = Vec::new();
    for i in 0..100u16 {
        let mut f = tcp((HOST_B, 2000 + i), (REMOTE, 443), "S", b"");
        fwd(&mut nat, now, LAN, &mut f);
        let ext = flow_of(&f).src;
        let mut back = tcp((REMOTE, 443), (ext.addr, ext.port), "SA", b"");
        fwd(&mut nat, now, WAN, &mut back);
        let mut ack = tcp((HOST_B, 2000 + i), (REMOTE, 443), "A", b"");
        fwd(&mut nat, now, LAN, &mut ack);
        established.push((2000 + i, ext));
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut trace = Vec::new();
    for k in 0..10 * CAPACITY {
        let src = Ipv4Addr::from_bits(0x0a00_0000 | rng.gen_range(1..0x00ff_ffff));
        let mut syn = tcp((src, rng.gen_range(1024..65535)), (WAN_ADDR, 25), "S", b"");
        let v = nat.process(now, WAN, &mut syn, &routes, &mut trace);
        assert!(matches!(v, Verdict::Forward { .. }), "flood SYN {k}: {v:?}");
        // Established flows keep carrying traffic during the flood.
        if k % 97 == 0 {
            let (port, ext) = established[k % established.len()];
            let mut d = tcp((HOST_B, port), (REMOTE, 443), "A", b"data");
            fwd(&mut nat, now, LAN, &mut d);
            assert_eq!(flow_of(&d).src, ext);
            let mut r = tcp((REMOTE, 443), (ext.addr, ext.port), "A", b"ack");
            fwd(&mut nat, now, WAN, &mut r);
            assert_eq!(flow_of(&r).dst, Endpoint::new(HOST_B, port));
        }
        assert!(nat.connection_count() <= CAPACITY);
    }
    // Every established flow survived.
    for &(port, ext) in &established {
        let mut r = tcp((REMOTE, 443), (ext.addr, ext.port), "A", b"still here");
        fwd(&mut nat, now, WAN, &mut r);
        assert_eq!(flow_of(&r).dst, Endpoint::new(HOST_B, port));
    }
    let evicted = steps_count(&trace, |s| {
        matches!(
            s,
            NatStep::ConnEnded {
                reason: EndReason::Evicted,
                ..
            }
        )
    });
    assert_eq!(evicted as u64, nat.stats().tcp.evicted);
    assert!(
        evicted >= 10 * CAPACITY - CAPACITY,
        "evictions counted in the trace: {evicted}"
    );
    // Memory stays bounded: a second flood as big as the first does not
    // grow the table's heap (steady state at capacity).
    let mut heaps = vec![nat.table_heap_bytes()];
    for _ in 0..4 {
        for _ in 0..10 * CAPACITY {
            let src = Ipv4Addr::from_bits(0x0a00_0000 | rng.gen_range(1..0x00ff_ffff));
            let mut syn = tcp((src, rng.gen_range(1024..65535)), (WAN_ADDR, 25), "S", b"");
            let _ = nat.process(now, WAN, &mut syn, &routes, &mut ());
        }
        heaps.push(nat.table_heap_bytes());
    }
    eprintln!("table heap after each flood: {heaps:?}");
    assert_eq!(
        heaps[3], heaps[4],
        "the heap keeps growing under a flood: {heaps:?}"
    );
    assert!(
        heaps[4] / CAPACITY < 512,
        "{} bytes per slot",
        heaps[4] / CAPACITY
    );
}

#[test]
fn port_exhaustion_gives_new_flows_a_clear_reason_and_spares_old_ones() {
    let mut c = config(Behaviour::symmetric());
    let pool = SnatPool {
        first: WAN_ADDR,
        last: WAN_ADDR,
        ports: PortRange::new(40000, 40009),
        pooling: Pooling::Paired,
        random: natsim_nat::PortFlag::Profile,
    };
    c.rules.push(Rule {
        name: "small-pool".into(),
        chain: Chain::Postrouting,
        matches: Match {
            out_iface: Some(WAN),
            ..Match::default()
        },
        action: Action::Snat(pool),
    });
    let mut nat = NatEngine::new(c).unwrap();
    let now = Instant::from_secs(1);
    let mut old = Vec::new();
    for i in 0..10u16 {
        let mut f = udp((HOST_A, 5000 + i), (REMOTE, 53), b"q");
        fwd(&mut nat, now, LAN, &mut f);
        old.push((5000 + i, flow_of(&f).src));
    }
    for i in 10..20u16 {
        let mut f = udp((HOST_A, 5000 + i), (REMOTE, 53), b"q");
        let (v, _) = run(&mut nat, now, LAN, &mut f);
        assert!(
            matches!(v, Verdict::Drop(DropReason::PortsExhausted { .. })),
            "{v:?}"
        );
        assert_eq!(
            v,
            Verdict::Drop(DropReason::PortsExhausted { rule: RuleId(0) })
        );
    }
    assert_eq!(
        DropReason::PortsExhausted { rule: RuleId(0) }.to_string(),
        "no free external port left for rule#0"
    );
    for (port, ext) in old {
        let mut r = udp((REMOTE, 53), (ext.addr, ext.port), b"a");
        fwd(&mut nat, now, WAN, &mut r);
        assert_eq!(flow_of(&r).dst, Endpoint::new(HOST_A, port));
    }
}

#[test]
fn icmp_error_storm_quoting_random_packets_never_reaches_inside_unless_it_quotes_a_connection() {
    let mut nat = masq(Behaviour::rfc_recommended());
    let now = Instant::from_secs(1);
    let mut f = udp((HOST_A, 5000), (REMOTE, 53), b"q");
    fwd(&mut nat, now, LAN, &mut f);
    let ext = flow_of(&f).src;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let mut admitted = 0;
    for k in 0..20_000 {
        // Random quoted packets, some of them the real connection's.
        let real = k % 50 == 0;
        let inner = if real {
            udp((ext.addr, ext.port), (REMOTE, 53), b"q")
        } else {
            let src = Ipv4Addr::from_bits(rng.gen());
            let dst = Ipv4Addr::from_bits(rng.gen());
            let mut i = udp((src, rng.gen()), (dst, rng.gen()), b"junk");
            if rng.gen_bool(0.3) {
                let n = rng.gen_range(14..i.len());
                for b in &mut i[n..] {
                    *b = rng.gen();
                }
            }
            i
        };
        let quote = rng.gen_range(0..=inner.len() - 14);
        let t = [3, 11][k % 2];
        let code = if t == 3 {
            rng.gen_range(0..4)
        } else {
            rng.gen_range(0..2)
        };
        let mut e = icmp_error(REMOTE, WAN_ADDR, t, code, &inner, quote.max(28));
        let v = nat.process(now, WAN, &mut e, &routes, &mut ());
        if let Verdict::Forward { iface, next_hop } = v {
            assert_eq!(
                (iface, next_hop),
                (LAN, HOST_A),
                "storm frame {k} went to {iface:?}"
            );
            verify_checksums(&e).unwrap();
            admitted += 1;
        }
    }
    assert_eq!(
        admitted,
        20_000 / 50,
        "exactly the errors quoting the real connection pass"
    );
}

#[test]
fn contradictory_rules_are_rejected_at_load() {
    let mut c = config(Behaviour::linux());
    c.rules.forward(
        "smtp",
        WAN,
        Proto::Tcp,
        PortRange::new(20, 30),
        HOST_A,
        None,
    );
    c.rules.forward(
        "smtp-again",
        WAN,
        Proto::Tcp,
        PortRange::single(25),
        HOST_B,
        None,
    );
    let err = NatEngine::new(c).unwrap_err();
    assert_eq!(
        err,
        ConfigError::Shadowed {
            rule: RuleId(1),
            by: RuleId(0)
        }
    );
    assert_eq!(
        err.to_string(),
        "rule#1 can never match: rule#0 before it matches everything it would"
    );
}

/// A positive match does not cover its own negation: Docker's exemption
/// `-i br-x -j RETURN` (imported as `-i br-x` ACCEPT) before `! -i br-x
/// --dport 8080 -j DNAT` leaves the DNAT reachable. The same negation
/// before a narrower rule does shadow it.
#[test]
fn a_negated_interface_is_not_covered_by_the_positive_one() {
    let exempt_then_dnat = |negate_first: bool| {
        let mut c = config(Behaviour::linux());
        let mut first = Match {
            in_iface: Some(LAN),
            ..Match::default()
        };
        first.not.in_iface = negate_first;
        let mut second = Match {
            proto: Some(Proto::Tcp),
            in_iface: Some(LAN),
            dst_ports: Some(PortRange::single(8080)),
            ..Match::default()
        };
        second.not.in_iface = true;
        for (name, matches, action) in [
            ("exempt", first, Action::Accept),
            (
                "publish",
                second,
                Action::Dnat {
                    to: HOST_A,
                    to_port: Some(80),
                },
            ),
        ] {
            c.rules.rules.push(Rule {
                name: name.into(),
                chain: Chain::Prerouting,
                matches,
                action,
            });
        }
        NatEngine::new(c).map(|_| ())
    };
    assert_eq!(exempt_then_dnat(false), Ok(()));
    assert_eq!(
        exempt_then_dnat(true),
        Err(ConfigError::Shadowed {
            rule: RuleId(1),
            by: RuleId(0)
        })
    );
}
