//! The NAT's security properties, for random rule sets and random frame
//! sequences (proptest, 10 000 cases unless `PROPTEST_CASES` says).
//!
//! 1. An inside host receives a frame from outside only if the flow is
//!    admitted by a forward, a one-to-one rule, an ALG pinhole, or an
//!    existing mapping under the configured filtering behaviour (profiles
//!    with a stateful inbound filter; `linux` with NAT-only rules routes
//!    traffic addressed to inside hosts, as the kernel does, so for it the
//!    property covers frames to NAT-owned addresses only).
//! 2. No frame leaves on an interface other than its destination's route,
//!    and an answer goes back where the offending frame came from.
//! 3. No frame on the outside carries an inside source address (except the
//!    answers of a connection the outside opened straight to an inside
//!    address, which `linux` routes untranslated as the kernel does).

mod alg_harness;
mod common;

use alg_harness::{bind, ept_map_request, ept_map_stub, response, tower, Conn, End, EMSMDB_UUID};
use common::*;
use natsim_nat::*;
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

const ONE_IN: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 30);
const ONE_OUT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 30);

#[derive(Clone, Debug)]
struct Rules {
    profile: &'static str,
    forwards: Vec<(bool, u16, u8, u16)>,
    one_to_one: bool,
    epm: bool,
}

fn rules() -> impl Strategy<Value = Rules> {
    (
        prop::sample::select(Behaviour::PROFILE_NAMES.to_vec()),
        prop::collection::vec(
            (
                any::<bool>(),
                prop_oneof![Just(25u16), Just(80), 1u16..2000],
                0u8..3,
                1u16..2000,
            ),
            0..3,
        ),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(profile, forwards, one_to_one, epm)| Rules {
            profile,
            forwards,
            one_to_one,
            epm,
        })
}

#[derive(Clone, Debug)]
enum Op {
    Out {
        host: u8,
        sport: u16,
        remote: u8,
        rport: u16,
        udp: bool,
    },
    In {
        remote: u8,
        rport: u16,
        dst: u8,
        port: u16,
        udp: bool,
        syn: bool,
    },
    Epm {
        port: u16,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3, prop_oneof![Just(1000u16), 1u16..2000], 0u8..3, prop_oneof![Just(53u16), Just(80), 1u16..2000], any::<bool>())
            .prop_map(|(host, sport, remote, rport, udp)| Op::Out { host, sport, remote, rport, udp }),
        6 => (0u8..3, prop_oneof![Just(53u16), Just(80), 1u16..2000], 0u8..4, prop_oneof![Just(25u16), Just(80), Just(135), Just(1000), 1u16..2000], any::<bool>(), any::<bool>())
            .prop_map(|(remote, rport, dst, port, udp, syn)| Op::In { remote, rport, dst, port, udp, syn }),
        1 => (1025u16..1100).prop_map(|port| Op::Epm { port }),
    ]
}

fn host(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 1, 10 + i)
}
fn remote(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, 7 + i)
}
fn inside(a: Ipv4Addr) -> bool {
    Prefix::new(LAN_ADDR, 24).contains(a)
}

/// Routes with the one-to-one outside address on the WAN.
fn routes_1to1(dst: Ipv4Addr) -> Route {
    routes(dst)
}

/// An outbound translation the engine made: (proto, internal, remote, external).
type Seen = (Proto, Endpoint, Endpoint, Endpoint);

fn check(r: &Rules, ops: &[Op]) -> Result<(), TestCaseError> {
    let b = Behaviour::by_name(r.profile).unwrap();
    let mut cfg = config(b.clone());
    for (i, &(udp, port, h, to)) in r.forwards.iter().enumerate() {
        let proto = if udp { Proto::Udp } else { Proto::Tcp };
        cfg.rules.forward(
            &format!("fwd{i}"),
            WAN,
            proto,
            PortRange::single(port),
            host(h),
            Some(to),
        );
    }
    if r.one_to_one {
        cfg.rules
            .one_to_one("pipe", WAN, Prefix::host(ONE_IN), Prefix::host(ONE_OUT));
    }
    if r.epm {
        cfg.rules
            .forward("epm", WAN, Proto::Tcp, PortRange::single(135), HOST_A, None);
        cfg = cfg.alg(AlgKind::Epm);
    }
    cfg.rules.masquerade("masq", WAN, None);
    let mut nat = match NatEngine::new(cfg.clone()) {
        Ok(n) => n,
        Err(ConfigError::Shadowed { .. }) => return Ok(()), // rejected at load: nothing to check
        Err(e) => return Err(TestCaseError::fail(format!("config refused: {e}"))),
    };
    let forwards: Vec<(Proto, u16, Endpoint)> = cfg
        .rules
        .rules
        .iter()
        .filter_map(
            |rule| match (&rule.action, rule.matches.proto, rule.matches.dst_ports) {
                (Action::Dnat { to, to_port }, Some(p), Some(ports)) => Some((
                    p,
                    ports.first,
                    Endpoint::new(*to, to_port.unwrap_or(ports.first)),
                )),
                _ => None,
            },
        )
        .collect();
    let now = Instant::from_secs(1);
    let mut seen: Vec<Seen> = Vec::new();
    let mut admitted: BTreeSet<(Proto, Endpoint, Endpoint)> = BTreeSet::new();
    let mut direct: BTreeSet<(Proto, Endpoint, Endpoint)> = BTreeSet::new();
    for (k, op) in ops.iter().enumerate() {
        match *op {
            Op::Out {
                host: h,
                sport,
                remote: rm,
                rport,
                udp,
            } => {
                let (src, dst) = ((host(h), sport), (remote(rm), rport));
                let mut f = if udp {
                    common::udp(src, dst, b"x")
                } else {
                    tcp(src, dst, "S", b"")
                };
                let (v, _) = run(&mut nat, now, LAN, &mut f);
                if let Verdict::Forward { iface, next_hop } = v {
                    prop_assert_eq!(iface, WAN, "outbound left on the wrong interface");
                    prop_assert_eq!(next_hop, WAN_GW);
                    let fl = flow_of(&f);
                    if direct.contains(&(fl.proto, fl.dst, fl.src)) {
                        continue;
                    }
                    prop_assert!(!inside(fl.src.addr), "inside address leaked: {:?}", fl);
                    prop_assert!(fl.src.addr == WAN_ADDR || fl.src.addr == ONE_OUT);
                    seen.push((fl.proto, Endpoint::new(src.0, src.1), fl.dst, fl.src));
                }
            }
            Op::Epm { port } => {
                if !r.epm {
                    continue;
                }
                let client = End {
                    addr: remote(0),
                    port: 40000 + k as u16,
                    iface: WAN,
                    isn: 1,
                };
                let server = End {
                    addr: HOST_A,
                    port: 135,
                    iface: LAN,
                    isn: 2,
                };
                // Only when the 135 forward is the one that applies.
                if forwards
                    .iter()
                    .any(|&(p, fp, _)| p == Proto::Tcp && fp == 135)
                    && r.forwards.iter().all(|f| f.0 || f.1 != 135)
                {
                    let mut c = Conn::open(&mut nat, client, server, (WAN_ADDR, 135));
                    c.send(
                        &mut nat,
                        0,
                        &[bind(1), ept_map_request(2)].concat(),
                        &[1460],
                    );
                    c.send(
                        &mut nat,
                        1,
                        &response(2, &ept_map_stub(&[tower(EMSMDB_UUID, port, HOST_A)]), 4096),
                        &[1460],
                    );
                }
            }
            Op::In {
                remote: rm,
                rport,
                dst,
                port,
                udp,
                syn,
            } => {
                let d = match dst {
                    0 => WAN_ADDR,
                    1 => ONE_OUT,
                    2 => host(0),
                    _ => seen
                        .get(usize::from(port) % seen.len().max(1))
                        .map_or(WAN_ADDR, |s| s.3.addr),
                };
                let port = if dst == 3 {
                    seen.get(usize::from(port) % seen.len().max(1))
                        .map_or(port, |s| s.3.port)
                } else {
                    port
                };
                let src = Endpoint::new(remote(rm), rport);
                let dste = Endpoint::new(d, port);
                let mut f = if udp {
                    common::udp((src.addr, src.port), (d, port), b"x")
                } else {
                    tcp(
                        (src.addr, src.port),
                        (d, port),
                        if syn { "S" } else { "A" },
                        b"",
                    )
                };
                let proto = if udp { Proto::Udp } else { Proto::Tcp };
                let holes: Vec<_> = nat.pinholes().collect();
                let (v, steps) = run(&mut nat, now, WAN, &mut f);
                match v {
                    Verdict::Reply { iface } => {
                        prop_assert_eq!(iface, WAN, "answer sent the wrong way")
                    }
                    Verdict::Forward { iface, next_hop } => {
                        let out = flow_of(&f);
                        prop_assert_eq!(
                            routes_1to1(out.dst.addr),
                            Route::Forward { iface, next_hop },
                            "wrong interface"
                        );
                        if iface != LAN {
                            continue;
                        }
                        if !b.filter_inbound && inside(d) {
                            direct.insert((proto, src, dste));
                            continue;
                        }
                        let to = out.dst;
                        let key = (proto, src, dste);
                        let by_forward = d == WAN_ADDR
                            && forwards
                                .iter()
                                .any(|&(p, fp, t)| p == proto && fp == port && t == to);
                        let by_1to1 =
                            r.one_to_one && d == ONE_OUT && to == Endpoint::new(ONE_IN, port);
                        let by_pinhole = proto == Proto::Tcp
                            && holes
                                .iter()
                                .any(|h| h.1 == src.addr && h.2 == dste && h.3 == to);
                        let filtering = b.for_proto(proto).filtering;
                        let by_mapping = seen.iter().any(|&(p, int, rem, ext)| {
                            p == proto
                                && ext == dste
                                && int == to
                                && match filtering {
                                    FilteringBehaviour::EndpointIndependent => true,
                                    FilteringBehaviour::AddressDependent => seen.iter().any(|s| {
                                        s.0 == proto && s.3 == ext && s.2.addr == src.addr
                                    }),
                                    FilteringBehaviour::AddressAndPortDependent => rem == src,
                                }
                        });
                        let ok = by_forward
                            || by_1to1
                            || by_pinhole
                            || by_mapping
                            || admitted.contains(&key);
                        prop_assert!(
                            ok,
                            "unsolicited {:?} {} -> {} reached {} ({:?}); steps {:?}",
                            proto,
                            src,
                            dste,
                            to,
                            r,
                            steps
                        );
                        admitted.insert(key);
                    }
                    // Whole frames only here: nothing is held.
                    Verdict::Held => prop_assert!(false, "a whole frame was held"),
                    Verdict::Local | Verdict::Drop(_) => {}
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: proptest_cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn only_admitted_flows_reach_inside_and_nothing_leaks(r in rules(), ops in prop::collection::vec(op(), 1..24)) {
        check(&r, &ops)?;
    }
}
