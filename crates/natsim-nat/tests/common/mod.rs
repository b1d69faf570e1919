//! Frame builders, an independent checksum verifier and a two-interface
//! router fixture shared by the engine's integration tests.
#![allow(dead_code)]

use etherparse::{IcmpEchoHeader, Icmpv4Type, PacketBuilder, SlicedPacket, TransportSlice};
use natsim_nat::*;
use std::net::Ipv4Addr;

pub const LAN: IfaceId = IfaceId(0);
pub const WAN: IfaceId = IfaceId(1);
pub const LAN_ADDR: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
pub const WAN_ADDR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
pub const WAN_GW: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 254);
pub const HOST_A: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
pub const HOST_B: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 20);
pub const REMOTE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
pub const REMOTE2: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 8);

pub const MAC_HOST: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
pub const MAC_ROUTER: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

/// The verdict for a frame forwarded out of the WAN via its gateway.
pub fn fwd_wan() -> Verdict {
    Verdict::Forward {
        iface: WAN,
        next_hop: WAN_GW,
    }
}

/// Routes: the LAN prefix on-link on LAN, the WAN prefix on-link on WAN,
/// everything else via the WAN gateway; the router's addresses are local.
pub fn routes(dst: Ipv4Addr) -> Route {
    if dst == LAN_ADDR || dst == WAN_ADDR {
        Route::Local
    } else if Prefix::new(LAN_ADDR, 24).contains(dst) {
        Route::Forward {
            iface: LAN,
            next_hop: dst,
        }
    } else if Prefix::new(WAN_ADDR, 24).contains(dst) {
        Route::Forward {
            iface: WAN,
            next_hop: dst,
        }
    } else {
        Route::Forward {
            iface: WAN,
            next_hop: WAN_GW,
        }
    }
}

pub fn config(b: Behaviour) -> NatConfig {
    NatConfig::new(b)
        .interface(LAN, LAN_ADDR, 24, Role::Inside)
        .interface(WAN, WAN_ADDR, 24, Role::Outside)
}

/// A masquerading router with the given profile.
pub fn masq(b: Behaviour) -> NatEngine {
    let mut c = config(b);
    c.rules.masquerade("masq", WAN, None);
    NatEngine::new(c).unwrap()
}

pub fn tcp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), flags: &str, payload: &[u8]) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(MAC_HOST, MAC_ROUTER)
        .ipv4(src.0.octets(), dst.0.octets(), 64)
        .tcp(src.1, dst.1, 1000, 8192);
    if flags.contains('S') {
        b = b.syn();
    }
    if flags.contains('A') {
        b = b.ack(5000);
    }
    if flags.contains('F') {
        b = b.fin();
    }
    if flags.contains('R') {
        b = b.rst();
    }
    let mut v = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut v, payload).unwrap();
    v
}

pub fn udp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_HOST, MAC_ROUTER)
        .ipv4(src.0.octets(), dst.0.octets(), 64)
        .udp(src.1, dst.1);
    let mut v = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut v, payload).unwrap();
    v
}

pub fn ping(src: Ipv4Addr, dst: Ipv4Addr, id: u16, request: bool) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_HOST, MAC_ROUTER).ipv4(src.octets(), dst.octets(), 64);
    let b = if request {
        b.icmpv4_echo_request(id, 1)
    } else {
        b.icmpv4_echo_reply(id, 1)
    };
    let payload = b"ping-payload";
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

/// An ICMP error of `icmp_type`/`code` from `from` to `to` quoting the IP
/// packet of `offending` (a full frame), truncated to `quote` bytes.
pub fn icmp_error(
    from: Ipv4Addr,
    to: Ipv4Addr,
    icmp_type: u8,
    code: u8,
    offending: &[u8],
    quote: usize,
) -> Vec<u8> {
    let ip = &offending[14..];
    let q = &ip[..quote.min(ip.len())];
    let t = match icmp_type {
        3 => Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::from_values(code, 0).unwrap(),
        ),
        11 => {
            Icmpv4Type::TimeExceeded(etherparse::icmpv4::TimeExceededCode::from_u8(code).unwrap())
        }
        _ => panic!("unsupported test ICMP type"),
    };
    let b = PacketBuilder::ethernet2(MAC_HOST, MAC_ROUTER)
        .ipv4(from.octets(), to.octets(), 64)
        .icmpv4(t);
    let mut v = Vec::new();
    b.write(&mut v, q).unwrap();
    v
}

/// (proto, src, dst) of a frame, ports being the ICMP id where relevant.
pub fn flow_of(frame: &[u8]) -> Flow {
    let s = SlicedPacket::from_ethernet(frame).expect("frame parses");
    let ip = match s.net {
        Some(etherparse::NetSlice::Ipv4(ip)) => ip,
        _ => panic!("not ipv4"),
    };
    let (src, dst) = (ip.header().source_addr(), ip.header().destination_addr());
    match s.transport {
        Some(TransportSlice::Tcp(t)) => Flow::new(
            Proto::Tcp,
            Endpoint::new(src, t.source_port()),
            Endpoint::new(dst, t.destination_port()),
        ),
        Some(TransportSlice::Udp(u)) => Flow::new(
            Proto::Udp,
            Endpoint::new(src, u.source_port()),
            Endpoint::new(dst, u.destination_port()),
        ),
        Some(TransportSlice::Icmpv4(i)) => {
            let (sp, dp) = match i.icmp_type() {
                Icmpv4Type::EchoRequest(IcmpEchoHeader { id, .. }) => (id, 0),
                Icmpv4Type::EchoReply(IcmpEchoHeader { id, .. }) => (0, id),
                _ => (0, 0),
            };
            Flow::new(Proto::Icmp, Endpoint::new(src, sp), Endpoint::new(dst, dp))
        }
        _ => Flow::new(
            Proto::Other(ip.header().protocol().0),
            Endpoint::new(src, 0),
            Endpoint::new(dst, 0),
        ),
    }
}

/// Full recomputation of every checksum in the frame over its raw bytes,
/// including a quoted packet's IP header: independent of the engine's
/// incremental (RFC 1624) updates.
pub fn verify_checksums(frame: &[u8]) -> Result<(), String> {
    natsim_nat::checksum::verify_frame(frame).map_err(|e| e.to_string())
}

/// Swaps MACs so a frame can be "sent back".
pub fn swap_macs(frame: &mut [u8]) {
    for i in 0..6 {
        frame.swap(i, i + 6);
    }
}

/// Runs one frame through the engine with a recording sink.
pub fn run(
    nat: &mut NatEngine,
    now: Instant,
    ingress: IfaceId,
    frame: &mut Vec<u8>,
) -> (Verdict, Vec<NatStep>) {
    let mut steps = Vec::new();
    let v = nat.process(now, ingress, frame, &routes, &mut steps);
    (v, steps)
}

/// Runs one frame and asserts it is forwarded (or delivered locally).
pub fn fwd(nat: &mut NatEngine, now: Instant, ingress: IfaceId, frame: &mut Vec<u8>) {
    let (v, steps) = run(nat, now, ingress, frame);
    assert!(
        matches!(v, Verdict::Forward { .. } | Verdict::Local),
        "expected the frame to pass, got {v:?}; steps: {steps:?}"
    );
}

/// Proptest cases: `PROPTEST_CASES` if set, else 10 000 (the bar
/// for release runs; the whole suite stays well under a minute).
pub fn proptest_cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}
