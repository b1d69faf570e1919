//! A sans-IO driver in the style of quinn's `Pair`: an inside host, the
//! engine and an outside host exchange frames while virtual time jumps to
//! the earliest deadline (a host's next send or the engine's `poll_at`).

mod common;
use common::*;
use natsim_nat::*;
use std::collections::VecDeque;

/// A scripted endpoint: frames to send at given times.
struct Script {
    sends: VecDeque<(Instant, Vec<u8>)>,
    received: Vec<(Instant, Vec<u8>)>,
}

struct Pair {
    now: Instant,
    nat: NatEngine,
    inside: Script,
    outside: Script,
    log: Vec<(Instant, NatStep)>,
}

impl Pair {
    fn next_deadline(&self) -> Option<Instant> {
        [
            self.inside.sends.front().map(|s| s.0),
            self.outside.sends.front().map(|s| s.0),
            self.nat.poll_at(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// One event; false when nothing is left to do.
    fn step(&mut self) -> bool {
        let Some(t) = self.next_deadline() else {
            return false;
        };
        assert!(t >= self.now, "time never goes backwards");
        self.now = t;
        let mut steps = Vec::new();
        self.nat.handle_timeout(t, &mut steps);
        for (side, ingress) in [(0, LAN), (1, WAN)] {
            let script = if side == 0 {
                &mut self.inside
            } else {
                &mut self.outside
            };
            if script.sends.front().is_some_and(|s| s.0 == t) {
                let (_, mut frame) = script.sends.pop_front().unwrap();
                let v = self
                    .nat
                    .process(t, ingress, &mut frame, &routes, &mut steps);
                if let Verdict::Forward { iface, .. } = v {
                    let to = if iface == LAN {
                        &mut self.inside
                    } else {
                        &mut self.outside
                    };
                    to.received.push((t, frame));
                }
            }
        }
        self.log.extend(steps.into_iter().map(|s| (t, s)));
        true
    }

    /// Runs to quiescence, failing on livelock (too many steps).
    fn drive_bounded(&mut self, max_steps: usize) {
        for _ in 0..max_steps {
            if !self.step() {
                return;
            }
        }
        panic!("no quiescence after {max_steps} steps");
    }
}

#[test]
fn an_idle_udp_mapping_expires_exactly_at_its_timeout() {
    let mut nat = masq(Behaviour::linux());
    // Learn the external port the mapping will use.
    let mut probe = udp((HOST_A, 5000), (REMOTE, 3478), b"hello");
    let _ = nat.process(Instant::ZERO, LAN, &mut probe, &routes, &mut ());
    let ext = flow_of(&probe).src;
    let timeout = Behaviour::linux().timeouts.udp_unreplied; // 30 s, no reply seen
                                                             // A fresh engine with the same configuration picks the same port.
    let nat = masq(Behaviour::linux());
    let t_out = Instant::ZERO + timeout;
    let just_before = Instant::from_micros(t_out.total_micros() - 1);
    let mut pair = Pair {
        now: Instant::ZERO,
        nat,
        inside: Script {
            sends: VecDeque::from([(Instant::ZERO, udp((HOST_A, 5000), (REMOTE, 3478), b"hello"))]),
            received: vec![],
        },
        outside: Script {
            // The remote writes back 1 µs before and exactly at the expiry.
            sends: VecDeque::from([
                (
                    Instant::from_secs(10),
                    udp((REMOTE, 9), (ext.addr, ext.port), b"other port"),
                ),
                (
                    t_out,
                    udp((REMOTE, 3478), (ext.addr, ext.port), b"too late"),
                ),
            ]),
            received: vec![],
        },
        log: vec![],
    };
    pair.drive_bounded(100);
    assert_eq!(
        pair.outside.received.len(),
        1,
        "the first datagram went out"
    );
    assert!(pair.inside.received.is_empty(), "nothing got back in");
    let ended: Vec<_> = pair
        .log
        .iter()
        .filter(|(_, s)| {
            matches!(
                s,
                NatStep::ConnEnded {
                    reason: EndReason::Expired,
                    ..
                }
            )
        })
        .collect();
    assert_eq!(ended.len(), 1);
    assert_eq!(
        ended[0].0, t_out,
        "expired at exactly 30 s, not a tick later"
    );
    assert!(pair
        .log
        .iter()
        .all(|(t, s)| !matches!(s, NatStep::ConnEnded { .. }) || *t > just_before));
    // the reply arriving at the expiry instant met no mapping (Linux
    // answers it with port unreachable instead of forwarding it)
    assert!(pair.log.iter().any(|(t, s)| *t == t_out
        && matches!(
            s,
            NatStep::Replied {
                kind: ReplyKind::IcmpUnreachable(natsim_nat::Unreachable::Port)
            }
        )));
}

#[test]
fn a_reply_keeps_the_mapping_alive_and_outbound_refresh_extends_it() {
    let mut b = Behaviour::full_cone();
    b.udp_refresh = UdpRefresh::OutboundOnly;
    let timeout = b.timeouts.udp_unreplied;
    let mut nat = masq(b);
    let mut first = udp((HOST_A, 5000), (REMOTE, 3478), b"1");
    let _ = nat.process(Instant::ZERO, LAN, &mut first, &routes, &mut ());
    let ext = flow_of(&first).src;
    let mid = Instant::ZERO + timeout / 2;
    let mut pair = Pair {
        now: Instant::ZERO,
        nat,
        inside: Script {
            sends: VecDeque::from([(mid, udp((HOST_A, 5000), (REMOTE, 3478), b"2"))]),
            received: vec![],
        },
        outside: Script {
            // inbound traffic does not refresh (REQ-6 "outbound refresh")
            sends: VecDeque::from([
                (
                    mid + timeout / 4,
                    udp((REMOTE, 3478), (ext.addr, ext.port), b"a"),
                ),
                (
                    mid + (timeout - Duration::from_secs(1)),
                    udp((REMOTE, 3478), (ext.addr, ext.port), b"b"),
                ),
            ]),
            received: vec![],
        },
        log: vec![],
    };
    pair.drive_bounded(100);
    assert_eq!(
        pair.inside.received.len(),
        2,
        "both answers arrive within the refreshed timeout"
    );
    let expired_at = pair
        .log
        .iter()
        .find(|(_, s)| matches!(s, NatStep::ConnEnded { .. }))
        .map(|(t, _)| *t)
        .unwrap();
    assert_eq!(
        expired_at,
        mid + timeout,
        "expiry counts from the last outbound packet"
    );
}

/// Linux keeps a replied UDP flow on the 30 s timeout until a packet
/// arrives more than 2 s after its creation (nf_conntrack_proto_udp.c,
/// `nf_conntrack_udp_packet`: `stream_ts`); `natsim verify --linux`
/// measures the same on the kernel (`conntrack timeout: udp replied, first
/// 2 s` shows 29-30 s, `udp stream (active after 2 s)` 119-120 s).
#[test]
fn a_replied_udp_flow_becomes_a_stream_only_after_two_seconds() {
    let b = Behaviour::linux();
    let mut nat = masq(b.clone());
    let mut out = udp((HOST_A, 5000), (REMOTE, 53), b"query");
    let _ = nat.process(Instant::ZERO, LAN, &mut out, &routes, &mut ());
    let ext = flow_of(&out).src;
    let expiry = |nat: &NatEngine| nat.connections().next().unwrap().expires;
    let t1 = Instant::from_millis(50);
    let mut reply = udp((REMOTE, 53), (ext.addr, ext.port), b"answer");
    let _ = nat.process(t1, WAN, &mut reply, &routes, &mut ());
    assert_eq!(
        expiry(&nat),
        t1 + b.timeouts.udp_unreplied,
        "a reply within 2 s keeps 30 s"
    );
    let t2 = Instant::from_millis(2_100);
    let mut again = udp((HOST_A, 5000), (REMOTE, 53), b"query 2");
    let _ = nat.process(t2, LAN, &mut again, &routes, &mut ());
    assert_eq!(
        expiry(&nat),
        t2 + b.timeouts.udp_replied,
        "active after 2 s: 120 s"
    );
}
