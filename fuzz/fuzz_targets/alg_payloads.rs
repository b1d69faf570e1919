//! EPM and FTP ALG payloads: arbitrary bytes in both directions of an
//! inspected connection, cut into arbitrary segments.
//!
//! Invariants: no panic; every forwarded segment keeps valid checksums;
//! payload bytes the ALG leaves alone arrive unchanged (a rewrite only ever
//! touches an EPM tower or an FTP address line, so a stream with neither
//! must pass byte for byte); an unrelated flow is translated exactly as by
//! an engine that never saw the inspected connection.
#![no_main]

use arbitrary::Arbitrary;
use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};
use libfuzzer_sys::fuzz_target;
use natsim_nat::{AlgKind, Behaviour, IfaceId, Instant, NatConfig, NatEngine, PortRange, Prefix, Proto, Role, Route, Verdict};
use std::net::Ipv4Addr;

const LAN: IfaceId = IfaceId(0);
const WAN: IfaceId = IfaceId(1);
const LAN_ADDR: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
const WAN_ADDR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

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
struct Input {
    ftp: bool,
    /// (from server?, bytes, segment size)
    chunks: Vec<(bool, Vec<u8>, u8)>,
}

fn engine(kind: AlgKind, port: u16) -> NatEngine {
    let mut c = NatConfig::new(Behaviour::linux())
        .interface(LAN, LAN_ADDR, 24, Role::Inside)
        .interface(WAN, WAN_ADDR, 24, Role::Outside)
        .alg(kind);
    c.rules.masquerade("masq", WAN, None);
    c.rules.forward("svc", WAN, Proto::Tcp, PortRange::single(port), SERVER, None);
    NatEngine::new(c).expect("valid config")
}

fn seg(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), seq: u32, ack: u32, syn: bool, payload: &[u8]) -> Vec<u8> {
    let mut t = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]).ipv4(src.0.octets(), dst.0.octets(), 64).tcp(src.1, dst.1, seq, 65535);
    if syn {
        t = t.syn();
    }
    if !syn || ack != 0 {
        t = t.ack(ack);
    }
    let mut v = Vec::new();
    t.write(&mut v, payload).expect("build");
    v
}

fn payload_if_valid(f: &[u8]) -> Vec<u8> {
    if let Err(e) = natsim_nat::checksum::verify_frame(f) {
        panic!("{e}");
    }
    let s = SlicedPacket::from_ethernet(f).expect("forwarded frame parses");
    let Some(TransportSlice::Tcp(t)) = &s.transport else { panic!("not tcp") };
    t.payload().to_vec()
}

fuzz_target!(|input: Input| {
    let (kind, port) = if input.ftp { (AlgKind::Ftp, 21) } else { (AlgKind::Epm, 135) };
    let mut nat = engine(kind, port);
    let mut control = engine(kind, port);
    let now = Instant::ZERO;
    let client = (CLIENT, 40000);
    let mut f = seg(client, (WAN_ADDR, port), 100, 0, true, &[]);
    assert!(matches!(nat.process(now, WAN, &mut f, &routes, &mut ()), Verdict::Forward { .. }));
    let mut f = seg((SERVER, port), client, 500, 101, true, &[]);
    assert!(matches!(nat.process(now, LAN, &mut f, &routes, &mut ()), Verdict::Forward { .. }));
    // Original-numbering send points of client and server.
    let mut next = [101u32, 501u32];
    // A stream with no byte that could start what the helper rewrites (a
    // DCE/RPC v5 header; a PORT/EPRT/227/229 line) must pass unchanged.
    let trigger = |b: u8| if input.ftp { matches!(b, b'P' | b'p' | b'E' | b'e' | b'2') } else { b == 5 };
    let mut clean = [true, true];
    for (from_server, bytes, size) in input.chunks.iter().take(16) {
        let side = usize::from(*from_server);
        let size = usize::from(*size).max(1);
        for chunk in bytes.chunks(size) {
            let (src, dst, iface) = if side == 1 { ((SERVER, port), client, LAN) } else { (client, (WAN_ADDR, port), WAN) };
            clean[side] &= !chunk.iter().copied().any(trigger);
            let mut f = seg(src, dst, next[side], next[1 - side], false, chunk);
            let v = nat.process(now, iface, &mut f, &routes, &mut ());
            if let Verdict::Forward { .. } = v {
                let got = payload_if_valid(&f);
                if clean[side] {
                    assert_eq!(&got, chunk, "bytes changed with nothing to rewrite");
                }
                next[side] = next[side].wrapping_add(chunk.len() as u32);
            }
        }
    }
    let mut a = seg((Ipv4Addr::new(192, 168, 1, 20), 5000), (Ipv4Addr::new(198, 51, 100, 8), 80), 1, 0, true, &[]);
    let mut b = a.clone();
    let va = nat.process(now, LAN, &mut a, &routes, &mut ());
    let vb = control.process(now, LAN, &mut b, &routes, &mut ());
    assert_eq!(va, vb);
    assert_eq!(a, b);
});
