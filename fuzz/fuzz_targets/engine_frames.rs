//! Engine frame input, both directions, after setup frames.
//!
//! Invariants beyond "no panic":
//! * a forwarded frame whose input checksums were valid has valid ones;
//! * with a stateful, address-and-port-dependent profile and only a
//!   masquerade rule, nothing from outside reaches the inside unless it is
//!   the exact reverse of a tuple the NAT sent out (ICMP errors aside,
//!   which must quote such a tuple);
//! * the same input gives the same outputs (determinism).
#![no_main]

use arbitrary::Arbitrary;
use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use libfuzzer_sys::fuzz_target;
use natsim_nat::{Behaviour, IfaceId, Instant, NatConfig, NatEngine, Prefix, Role, Route, Verdict};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

const LAN: IfaceId = IfaceId(0);
const WAN: IfaceId = IfaceId(1);
const LAN_ADDR: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
const WAN_ADDR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);

fn routes(dst: Ipv4Addr) -> Route {
    if dst == LAN_ADDR || dst == WAN_ADDR {
        Route::Local
    } else if Prefix::new(LAN_ADDR, 24).contains(dst) {
        Route::Forward { iface: LAN, next_hop: dst }
    } else {
        Route::Forward { iface: WAN, next_hop: Ipv4Addr::new(203, 0, 113, 254) }
    }
}

#[derive(Arbitrary, Debug)]
enum Input {
    /// A well-formed frame built from fields (reaches deep paths).
    Built { from_wan: bool, proto: u8, src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, flags: u8, payload: Vec<u8> },
    /// Raw bytes (optionally spliced over a built frame's header).
    Raw { from_wan: bool, bytes: Vec<u8> },
    /// Advance virtual time.
    Wait { secs: u16 },
}

fn build(proto: u8, src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]).ipv4(src, dst, 64);
    let mut v = Vec::new();
    let payload = &payload[..payload.len().min(1400)];
    let r = match proto % 4 {
        0 => {
            let mut t = b.tcp(sport, dport, u32::from(sport) * 7, 1000);
            if flags & 1 != 0 { t = t.syn(); }
            if flags & 2 != 0 { t = t.ack(u32::from(dport)); }
            if flags & 4 != 0 { t = t.fin(); }
            if flags & 8 != 0 { t = t.rst(); }
            t.write(&mut v, payload)
        }
        1 => b.udp(sport, dport).write(&mut v, payload),
        2 => b.icmpv4_echo_request(sport, dport).write(&mut v, payload),
        _ => b.icmpv4_echo_reply(sport, dport).write(&mut v, payload),
    };
    r.map(|_| v).unwrap_or_default()
}

type Tuple = (u8, Ipv4Addr, u16, Ipv4Addr, u16);

/// (proto, src, sport, dst, dport), checksums not checked.
fn tuple(f: &[u8]) -> Option<Tuple> {
    let s = SlicedPacket::from_ethernet(f).ok()?;
    let Some(NetSlice::Ipv4(ip)) = &s.net else { return None };
    let (src, dst) = (ip.header().source_addr(), ip.header().destination_addr());
    match &s.transport {
        Some(TransportSlice::Tcp(t)) => Some((6, src, t.source_port(), dst, t.destination_port())),
        Some(TransportSlice::Udp(u)) => Some((17, src, u.source_port(), dst, u.destination_port())),
        _ => None,
    }
}

/// (proto, src, sport, dst, dport) of a frame with valid checksums, else None.
fn tuple_if_valid(f: &[u8]) -> Option<Tuple> {
    let s = SlicedPacket::from_ethernet(f).ok()?;
    let Some(NetSlice::Ipv4(ip)) = &s.net else { return None };
    natsim_nat::checksum::verify_frame(f).ok()?;
    let (src, dst) = (ip.header().source_addr(), ip.header().destination_addr());
    match &s.transport {
        Some(TransportSlice::Tcp(t)) => {
            Some((6, src, t.source_port(), dst, t.destination_port()))
        }
        Some(TransportSlice::Udp(u)) => {
            Some((17, src, u.source_port(), dst, u.destination_port()))
        }
        Some(TransportSlice::Icmpv4(_)) => Some((1, src, 0, dst, 0)),
        _ => None,
    }
}

fn engine() -> NatEngine {
    let mut c = NatConfig::new(Behaviour::symmetric())
        .interface(LAN, LAN_ADDR, 24, Role::Inside)
        .interface(WAN, WAN_ADDR, 24, Role::Outside);
    c.capacity = 64; // small, so eviction paths run
    c.rules.masquerade("masq", WAN, None);
    NatEngine::new(c).expect("valid config")
}

fn replay(inputs: &[Input]) -> Vec<(Verdict, Vec<u8>)> {
    let mut nat = engine();
    let mut now = Instant::ZERO;
    let mut sent_out: BTreeSet<Tuple> = BTreeSet::new();
    let mut outputs = Vec::new();
    for input in inputs.iter().take(64) {
        let (from_wan, mut frame) = match input {
            Input::Built { from_wan, proto, src, sport, dst, dport, flags, payload } => {
                let (src, dst) = if *from_wan { (*src, WAN_ADDR.octets()) } else { ([192, 168, 1, src[3] | 2], *dst) };
                (*from_wan, build(*proto, src, *sport, dst, *dport, *flags, payload))
            }
            Input::Raw { from_wan, bytes } => (*from_wan, bytes.clone()),
            Input::Wait { secs } => {
                now = now + std::time::Duration::from_secs(u64::from(*secs));
                nat.handle_timeout(now, &mut ());
                continue;
            }
        };
        let valid_in = tuple_if_valid(&frame).is_some();
        let t_in = tuple(&frame);
        let ingress = if from_wan { WAN } else { LAN };
        let v = nat.process(now, ingress, &mut frame, &routes, &mut ());
        if let Verdict::Forward { iface, .. } = v {
            let out = tuple_if_valid(&frame);
            if valid_in {
                assert!(out.is_some(), "valid frame came out with bad checksums: {v:?} {frame:02x?}");
            }
            if let Some(t) = out {
                if iface == WAN && !from_wan {
                    assert!(!Prefix::new(LAN_ADDR, 24).contains(t.1) || t.0 == 1, "inside address leaked: {t:?}");
                    sent_out.insert(t);
                }
                if let (true, true, Some(i)) = (iface == LAN, from_wan, t_in) {
                    // Only exact replies of what the NAT sent out.
                    let rev = (i.0, i.3, i.4, i.1, i.2);
                    assert!(sent_out.contains(&rev), "unsolicited {i:?} reached inside as {t:?}");
                }
            }
        }
        outputs.push((v, frame));
    }
    outputs
}

fuzz_target!(|inputs: Vec<Input>| {
    let a = replay(&inputs);
    let b = replay(&inputs);
    assert_eq!(a, b, "same input, different output");
});
