//! Test harness for ALG-inspected TCP streams: byte fixtures of DCE/RPC
//! EPM PDUs and FTP lines, and a tiny two-sided TCP model that pushes a
//! byte stream through the engine in given segment sizes, retransmitting
//! from the last (NAT-mapped) acknowledgement as a real sender does.
#![allow(dead_code)]

use crate::common::*;
use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};
use natsim_nat::{IfaceId, NatEngine, NatStep, Verdict};
use std::net::Ipv4Addr;

pub const EPM_UUID: [u8; 16] = natsim_nat::alg::epm::EPM_UUID_WIRE;
/// NDR transfer syntax 8a885d04-1ceb-11c9-9fe8-08002b104860, wire order.
pub const NDR_UUID: [u8; 16] = [
    0x04, 0x5d, 0x88, 0x8a, 0xeb, 0x1c, 0xc9, 0x11, 0x9f, 0xe8, 0x08, 0x00, 0x2b, 0x10, 0x48, 0x60,
];
/// Exchange EMSMDB a4f1db00-ca47-1067-b31f-00dd010662da, wire order.
pub const EMSMDB_UUID: [u8; 16] = [
    0x00, 0xdb, 0xf1, 0xa4, 0x47, 0xca, 0x67, 0x10, 0xb3, 0x1f, 0x00, 0xdd, 0x01, 0x06, 0x62, 0xda,
];

fn pdu(ptype: u8, flags: u8, call_id: u32, body: &[u8]) -> Vec<u8> {
    let mut v = vec![5, 0, ptype, flags, 0x10, 0, 0, 0];
    v.extend_from_slice(&((16 + body.len()) as u16).to_le_bytes());
    v.extend_from_slice(&0u16.to_le_bytes());
    v.extend_from_slice(&call_id.to_le_bytes());
    v.extend_from_slice(body);
    v
}

pub fn bind(call_id: u32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&5840u16.to_le_bytes());
    b.extend_from_slice(&5840u16.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&[1, 0, 0, 0]); // one context
    b.extend_from_slice(&0u16.to_le_bytes()); // p_cont_id 0
    b.extend_from_slice(&[1, 0]); // one transfer syntax
    b.extend_from_slice(&EPM_UUID);
    b.extend_from_slice(&3u16.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&NDR_UUID);
    b.extend_from_slice(&2u32.to_le_bytes());
    pdu(11, 3, call_id, &b)
}

/// An ept_map request (opnum 3) on context 0; the stub content does not
/// matter to the ALG.
pub fn ept_map_request(call_id: u32) -> Vec<u8> {
    let stub = vec![0u8; 40];
    let mut b = Vec::new();
    b.extend_from_slice(&(stub.len() as u32).to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&3u16.to_le_bytes());
    b.extend_from_slice(&stub);
    pdu(0, 3, call_id, &b)
}

/// A 75-byte ncacn_ip_tcp tower for `iface` at `addr:port`.
pub fn tower(iface: [u8; 16], port: u16, addr: Ipv4Addr) -> Vec<u8> {
    let mut t = vec![5, 0];
    t.extend_from_slice(&19u16.to_le_bytes());
    t.push(0x0d);
    t.extend_from_slice(&iface);
    t.extend_from_slice(&0u16.to_le_bytes());
    t.extend_from_slice(&2u16.to_le_bytes());
    t.extend_from_slice(&81u16.to_le_bytes());
    t.extend_from_slice(&19u16.to_le_bytes());
    t.push(0x0d);
    t.extend_from_slice(&NDR_UUID);
    t.extend_from_slice(&2u16.to_le_bytes());
    t.extend_from_slice(&2u16.to_le_bytes());
    t.extend_from_slice(&0u16.to_le_bytes());
    t.extend_from_slice(&[1, 0, 0x0b, 2, 0, 0, 0]);
    t.extend_from_slice(&[1, 0, 0x07, 2, 0]);
    t.extend_from_slice(&port.to_be_bytes());
    t.extend_from_slice(&[1, 0, 0x09, 4, 0]);
    t.extend_from_slice(&addr.octets());
    assert_eq!(t.len(), 75);
    t
}

/// The NDR stub of an ept_map response carrying `towers`.
pub fn ept_map_stub(towers: &[Vec<u8>]) -> Vec<u8> {
    let n = towers.len() as u32;
    let mut s = vec![0u8; 20];
    s.extend_from_slice(&n.to_le_bytes());
    s.extend_from_slice(&n.to_le_bytes());
    s.extend_from_slice(&0u32.to_le_bytes());
    s.extend_from_slice(&n.to_le_bytes());
    for i in 0..n {
        s.extend_from_slice(&(3 + i).to_le_bytes());
    }
    for t in towers {
        s.extend_from_slice(&(t.len() as u32).to_le_bytes());
        s.extend_from_slice(&(t.len() as u32).to_le_bytes());
        s.extend_from_slice(t);
        while !s.len().is_multiple_of(4) {
            s.push(0);
        }
    }
    s.extend_from_slice(&0u32.to_le_bytes());
    s
}

/// Response PDUs carrying `stub`, split into fragments of at most
/// `frag_stub` stub bytes each.
pub fn response(call_id: u32, stub: &[u8], frag_stub: usize) -> Vec<u8> {
    let chunks: Vec<&[u8]> = stub.chunks(frag_stub.max(1)).collect();
    let mut out = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        let mut flags = 0;
        if i == 0 {
            flags |= 1;
        }
        if i + 1 == chunks.len() {
            flags |= 2;
        }
        let mut b = Vec::new();
        b.extend_from_slice(&(stub.len() as u32).to_le_bytes());
        b.extend_from_slice(&[0, 0, 0, 0]);
        b.extend_from_slice(c);
        out.extend(pdu(2, flags, call_id, &b));
    }
    out
}

/// One end of a TCP connection as the harness models it.
#[derive(Clone, Copy, Debug)]
pub struct End {
    pub addr: Ipv4Addr,
    pub port: u16,
    /// Where this end's packets enter the router.
    pub iface: IfaceId,
    pub isn: u32,
}

/// A connection the engine has seen the handshake of.
pub struct Conn {
    pub client: End,
    pub server: End,
    /// Address/port the client dials (before DNAT).
    pub dialled: (Ipv4Addr, u16),
    /// What each side sees the other as (after translation), learnt from
    /// the handshake.
    pub client_sees: (Ipv4Addr, u16),
    pub server_sees: (Ipv4Addr, u16),
    /// Bytes sent so far by client / server (original numbering).
    pub sent: [u32; 2],
    /// Rewritten-space receive points of client / server.
    pub rcv_next: [u32; 2],
    pub steps: Vec<NatStep>,
    pub now: natsim_nat::Instant,
}

pub fn segment(
    from: (Ipv4Addr, u16),
    to: (Ipv4Addr, u16),
    seq: u32,
    ack: u32,
    syn: bool,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(MAC_HOST, MAC_ROUTER)
        .ipv4(from.0.octets(), to.0.octets(), 64)
        .tcp(from.1, to.1, seq, 65535);
    if syn {
        b = b.syn();
    }
    if ack != 0 || !syn {
        b = b.ack(ack);
    }
    let mut v = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut v, payload).unwrap();
    v
}

pub struct Seen {
    pub src: (Ipv4Addr, u16),
    pub dst: (Ipv4Addr, u16),
    pub seq: u32,
    pub ack: u32,
    pub payload: Vec<u8>,
}

pub fn seen(frame: &[u8]) -> Seen {
    verify_checksums(frame).unwrap();
    let s = SlicedPacket::from_ethernet(frame).unwrap();
    let Some(etherparse::NetSlice::Ipv4(ip)) = &s.net else {
        panic!("not ipv4")
    };
    let Some(TransportSlice::Tcp(t)) = &s.transport else {
        panic!("not tcp")
    };
    Seen {
        src: (ip.header().source_addr(), t.source_port()),
        dst: (ip.header().destination_addr(), t.destination_port()),
        seq: t.sequence_number(),
        ack: t.acknowledgment_number(),
        payload: t.payload().to_vec(),
    }
}

impl Conn {
    /// Runs the three-way handshake through the engine.
    pub fn open(nat: &mut NatEngine, client: End, server: End, dialled: (Ipv4Addr, u16)) -> Conn {
        let mut steps = Vec::new();
        let now = natsim_nat::Instant::ZERO;
        let mut f = segment(
            (client.addr, client.port),
            dialled,
            client.isn,
            0,
            true,
            &[],
        );
        let v = nat.process(now, client.iface, &mut f, &routes, &mut steps);
        assert!(matches!(v, Verdict::Forward { .. }), "SYN: {v:?} {steps:?}");
        let s = seen(&f);
        let server_sees = s.src;
        assert_eq!(s.dst, (server.addr, server.port), "SYN went elsewhere");
        let mut f = segment(
            (server.addr, server.port),
            server_sees,
            server.isn,
            client.isn.wrapping_add(1),
            true,
            &[],
        );
        let v = nat.process(now, server.iface, &mut f, &routes, &mut steps);
        assert!(
            matches!(v, Verdict::Forward { .. }),
            "SYN-ACK: {v:?} {steps:?}"
        );
        let s = seen(&f);
        assert_eq!(s.src, dialled);
        Conn {
            client,
            server,
            dialled,
            client_sees: dialled,
            server_sees,
            sent: [0, 0],
            rcv_next: [server.isn.wrapping_add(1), client.isn.wrapping_add(1)],
            steps,
            now,
        }
    }

    /// Sends `data` from the client (side 0) or server (side 1) in
    /// segments of the sizes in `cuts` (cycled), retransmitting from the
    /// acknowledged point until everything is acknowledged. Returns what
    /// the receiver got, in order.
    pub fn send(
        &mut self,
        nat: &mut NatEngine,
        side: usize,
        data: &[u8],
        cuts: &[usize],
    ) -> Vec<u8> {
        let (me, peer) = if side == 0 {
            (self.client, self.server)
        } else {
            (self.server, self.client)
        };
        let me_ep = (me.addr, me.port);
        let to = if side == 0 {
            self.dialled
        } else {
            self.server_sees
        };
        let base = me.isn.wrapping_add(1).wrapping_add(self.sent[side]);
        let mut una = 0usize;
        let mut got = Vec::new();
        let mut cut = 0usize;
        let mut rounds = 0;
        while una < data.len() {
            rounds += 1;
            assert!(rounds < 10_000, "no progress sending {} bytes", data.len());
            // One flight: everything from una, cut into segments.
            let mut at = una;
            while at < data.len() {
                // First transmissions follow `cuts`; retransmissions coalesce
                // up to the MSS, as real senders do.
                let size = if rounds == 1 {
                    cuts[cut % cuts.len()]
                } else {
                    1460
                };
                let n = size.max(1).min(data.len() - at);
                cut += 1;
                let seq = base.wrapping_add(at as u32);
                let peer_seq_ack = self.rcv_next[side];
                let mut f = segment(me_ep, to, seq, peer_seq_ack, false, &data[at..at + n]);
                let v = nat.process(self.now, me.iface, &mut f, &routes, &mut self.steps);
                if let Verdict::Forward { .. } = v {
                    let s = seen(&f);
                    assert_eq!(s.dst.0, peer.addr);
                    if s.seq == self.rcv_next[1 - side] {
                        got.extend_from_slice(&s.payload);
                        self.rcv_next[1 - side] = s.seq.wrapping_add(s.payload.len() as u32);
                    }
                } else {
                    assert!(v.is_drop(), "{v:?}");
                }
                at += n;
            }
            // The receiver acknowledges what it has; the NAT maps it back.
            let peer_ep = (peer.addr, peer.port);
            let peer_to = if side == 0 {
                self.server_sees
            } else {
                self.dialled
            };
            let peer_seq = peer.isn.wrapping_add(1).wrapping_add(self.sent[1 - side]);
            let mut a = segment(
                peer_ep,
                peer_to,
                peer_seq,
                self.rcv_next[1 - side],
                false,
                &[],
            );
            let v = nat.process(self.now, peer.iface, &mut a, &routes, &mut self.steps);
            assert!(matches!(v, Verdict::Forward { .. }), "ACK: {v:?}");
            let s = seen(&a);
            let acked = s.ack.wrapping_sub(base) as usize;
            assert!(
                acked <= data.len(),
                "ack beyond data: {acked} > {}",
                data.len()
            );
            una = una.max(acked);
        }
        self.sent[side] = self.sent[side].wrapping_add(data.len() as u32);
        got
    }
}

/// The NDR stub of an ept_lookup response: entries (object UUID, tower
/// pointer, annotation) and then the deferred towers.
pub fn ept_lookup_stub(entries: &[(Vec<u8>, &str)]) -> Vec<u8> {
    let n = entries.len() as u32;
    let mut s = vec![0u8; 20];
    s.extend_from_slice(&n.to_le_bytes());
    s.extend_from_slice(&n.to_le_bytes());
    s.extend_from_slice(&0u32.to_le_bytes());
    s.extend_from_slice(&n.to_le_bytes());
    for (i, (_, ann)) in entries.iter().enumerate() {
        s.extend_from_slice(&[0x11; 16]);
        s.extend_from_slice(&(10 + i as u32).to_le_bytes());
        let mut a = ann.as_bytes().to_vec();
        a.push(0);
        s.extend_from_slice(&0u32.to_le_bytes());
        s.extend_from_slice(&(a.len() as u32).to_le_bytes());
        s.extend_from_slice(&a);
        while !s.len().is_multiple_of(4) {
            s.push(0);
        }
    }
    for (t, _) in entries {
        s.extend_from_slice(&(t.len() as u32).to_le_bytes());
        s.extend_from_slice(&(t.len() as u32).to_le_bytes());
        s.extend_from_slice(t);
        while !s.len().is_multiple_of(4) {
            s.push(0);
        }
    }
    s.extend_from_slice(&0u32.to_le_bytes());
    s
}

/// An ept_lookup request (opnum 2).
pub fn ept_lookup_request(call_id: u32) -> Vec<u8> {
    let stub = vec![0u8; 48];
    let mut b = Vec::new();
    b.extend_from_slice(&(stub.len() as u32).to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&stub);
    pdu(0, 3, call_id, &b)
}

/// The stub of a (possibly multi-fragment) response: fragments' stubs joined.
pub fn reassemble(resp: &[u8]) -> Vec<u8> {
    let mut stub = Vec::new();
    let mut at = 0;
    while at + 16 <= resp.len() {
        let len = usize::from(u16::from_le_bytes([resp[at + 8], resp[at + 9]]));
        stub.extend_from_slice(&resp[at + 24..at + len]);
        at += len;
    }
    stub
}

/// The towers of an ept_map response stub, re-parsed.
pub fn stub_towers(stub: &[u8]) -> Vec<natsim_nat::alg::epm::TowerEndpoint> {
    let n = u32::from_le_bytes(stub[20..24].try_into().unwrap()) as usize;
    let mut p = 36 + 4 * n;
    let mut out = Vec::new();
    for _ in 0..n {
        let len = u32::from_le_bytes(stub[p..p + 4].try_into().unwrap()) as usize;
        out.push(natsim_nat::alg::epm::parse_tower(&stub[p + 8..p + 8 + len]).unwrap());
        p = (p + 8 + len).next_multiple_of(4);
    }
    out
}

/// The towers in a single- or multi-fragment ept_map response, re-parsed.
pub fn towers_in(resp: &[u8]) -> Vec<natsim_nat::alg::epm::TowerEndpoint> {
    stub_towers(&reassemble(resp))
}
