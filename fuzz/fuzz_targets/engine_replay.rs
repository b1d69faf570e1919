//! Captured traffic replayed through an engine with every kind of rule and
//! both ALGs, from a corpus seeded with the pcaps the simulator writes for
//! the shipped scenarios (`make-seeds.py`).
//!
//! Input: records of `[direction u8][length u16 BE][frame]` (direction bit
//! 0: arrived from the outside). Invariants: no panic; a forwarded frame
//! whose input checksums were valid still has valid ones; the same input
//! gives the same output twice.
#![no_main]

use libfuzzer_sys::fuzz_target;
use natsim_nat::{AlgKind, Behaviour, IfaceId, Instant, NatConfig, NatEngine, PortRange, Prefix, Proto, Role, Route, Verdict};
use std::net::Ipv4Addr;

const LAN: IfaceId = IfaceId(0);
const WAN: IfaceId = IfaceId(1);

fn routes(dst: Ipv4Addr) -> Route {
    if dst == Ipv4Addr::new(192, 168, 1, 1) || dst == Ipv4Addr::new(203, 0, 113, 1) {
        Route::Local
    } else if Prefix::new(Ipv4Addr::new(192, 168, 1, 0), 24).contains(dst) {
        Route::Forward { iface: LAN, next_hop: dst }
    } else {
        Route::Forward { iface: WAN, next_hop: dst }
    }
}

fn valid(f: &[u8]) -> bool {
    natsim_nat::checksum::verify_frame(f).is_ok()
}

/// An IPv4 fragment (untagged or 802.1Q): its transport checksum is not
/// checkable alone, and the datagram it completes may be invalid.
fn fragment(f: &[u8]) -> bool {
    let l3 = if f.get(12..14) == Some(&[0x81, 0x00]) { 18 } else { 14 };
    f.get(l3 - 2..l3) == Some(&[0x08, 0x00])
        && f.get(l3 + 6..l3 + 8).is_some_and(|b| u16::from_be_bytes([b[0], b[1]]) & 0x3fff != 0)
}

fn engine() -> NatEngine {
    let mut c = NatConfig::new(Behaviour::linux())
        .interface(LAN, Ipv4Addr::new(192, 168, 1, 1), 24, Role::Inside)
        .interface(WAN, Ipv4Addr::new(203, 0, 113, 1), 24, Role::Outside)
        .alg(AlgKind::Epm)
        .alg(AlgKind::Ftp);
    c.rules.forward("smtp", WAN, Proto::Tcp, PortRange::single(25), Ipv4Addr::new(192, 168, 1, 10), None);
    c.rules.forward("epm", WAN, Proto::Tcp, PortRange::single(135), Ipv4Addr::new(192, 168, 1, 10), None);
    c.rules.forward("ftp", WAN, Proto::Tcp, PortRange::single(21), Ipv4Addr::new(192, 168, 1, 30), None);
    c.rules.one_to_one("pipe", WAN, Prefix::host(Ipv4Addr::new(192, 168, 1, 40)), Prefix::host(Ipv4Addr::new(203, 0, 113, 40)));
    c.rules.masquerade("masq", WAN, None);
    NatEngine::new(c).expect("valid config")
}

fn replay(data: &[u8]) -> Vec<(Verdict, Vec<u8>)> {
    let mut nat = engine();
    let mut out = Vec::new();
    let mut at = 0;
    let mut now = Instant::ZERO;
    while at + 3 <= data.len() && out.len() < 256 {
        let dir = data[at];
        let len = usize::from(u16::from_be_bytes([data[at + 1], data[at + 2]]));
        at += 3;
        let end = (at + len).min(data.len());
        let mut frame = data[at..end].to_vec();
        at = end;
        now = now + std::time::Duration::from_millis(u64::from(dir >> 1));
        nat.handle_timeout(now, &mut ());
        let was_valid = valid(&frame) && !fragment(&frame);
        let input = frame.clone();
        let v = nat.process(now, if dir & 1 == 1 { WAN } else { LAN }, &mut frame, &routes, &mut ());
        if was_valid && matches!(v, Verdict::Forward { .. }) {
            assert!(valid(&frame), "a valid frame came out invalid:\n in: {input:02x?}\nout: {frame:02x?}");
        }
        out.push((v, frame));
    }
    out
}

fuzz_target!(|data: &[u8]| {
    assert_eq!(replay(data), replay(data));
});
