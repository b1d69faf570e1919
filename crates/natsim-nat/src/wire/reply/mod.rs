//! The answers a Linux router generates instead of forwarding: a TCP RST
//! and an ICMP error. The engine (a filter's `reject`, unsolicited traffic
//! to its own address) and the router around it (its stack's closed
//! ports, TTL expiry, "fragmentation needed", no route) build them here,
//! so both send the same bytes the kernel does.
//!
//! The header fields follow what the kernel writes, checked against
//! Linux 6.x in network namespaces (ICMP errors from the stack and from an
//! nftables `reject`; RSTs from `tcp_v4_send_reset` and from `reject with
//! tcp reset`): ICMP errors carry TOS precedence "internetwork control"
//! over the offending packet's TOS bits, DF clear and a running IP ID
//! (`__icmp_send`); RSTs carry DF, IP ID 0 and either the segment's
//! DSCP (the stack) or TOS 0 (`nf_reject_iphdr_put`). TTL is 64.
//!
//! Both take the whole received frame (an 802.1Q tag is kept) and return
//! the answer's frame, or `None` where the kernel sends nothing.

use crate::checksum::{checksum, pseudo_header_sum, sum};
use std::net::Ipv4Addr;

mod limit;
pub use limit::{IcmpRateLimit, Limited};

/// Bytes of the offending datagram an ICMP error quotes at most: the
/// whole error then fits 576 bytes (RFC 1812 §4.3.2.3; `__icmp_send`'s
/// `room`).
pub const MAX_QUOTE: usize = 576 - 20 - 8;

/// Default TTL of generated packets (`net.ipv4.ip_default_ttl`).
const TTL: u8 = 64;

/// The ICMP error to send: type, code and, for "fragmentation needed",
/// the next-hop MTU (RFC 1191 §4; zero otherwise).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpError {
    pub icmp_type: u8,
    pub code: u8,
    pub mtu: u16,
}

impl IcmpError {
    /// Destination unreachable (RFC 792 type 3) with `code`.
    pub const fn unreachable(code: u8) -> IcmpError {
        IcmpError {
            icmp_type: 3,
            code,
            mtu: 0,
        }
    }
    /// Port unreachable (type 3, code 3).
    pub const PORT_UNREACHABLE: IcmpError = IcmpError::unreachable(3);
    /// Time exceeded in transit (type 11, code 0).
    pub const TTL_EXCEEDED: IcmpError = IcmpError {
        icmp_type: 11,
        code: 0,
        mtu: 0,
    };
    /// Fragmentation needed and DF set (type 3, code 4), with the MTU.
    pub const fn frag_needed(mtu: u16) -> IcmpError {
        IcmpError {
            icmp_type: 3,
            code: 4,
            mtu,
        }
    }
}

/// Which kernel path sends a RST, for the one field they differ in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetBy {
    /// The TCP stack for a closed port (`tcp_v4_send_reset`): the
    /// segment's TOS with the ECN bits cleared.
    Stack,
    /// A netfilter `reject with tcp reset` (`nf_send_reset`): TOS 0.
    Netfilter,
}

/// The IPv4 header of a received frame, as far as an answer needs it.
struct Offending<'a> {
    frame: &'a [u8],
    l3: usize,
    ihl: usize,
    /// The datagram's bytes present in the frame (total length, capped
    /// by what arrived).
    len: usize,
}

impl<'a> Offending<'a> {
    fn parse(frame: &'a [u8]) -> Option<Offending<'a>> {
        let l3 = crate::frame::ipv4_offset(frame).ok()?;
        let ip = frame.get(l3..l3 + 20)?;
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        if ip[0] >> 4 != 4 || ihl < 20 {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(frame.len() - l3);
        (len >= ihl).then_some(Offending {
            frame,
            l3,
            ihl,
            len,
        })
    }
    fn ip(&self) -> &[u8] {
        &self.frame[self.l3..self.l3 + self.len]
    }
    fn addr(&self, at: usize) -> Ipv4Addr {
        let b = &self.frame[self.l3 + at..self.l3 + at + 4];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }
    fn src(&self) -> Ipv4Addr {
        self.addr(12)
    }
    fn dst(&self) -> Ipv4Addr {
        self.addr(16)
    }
    fn tos(&self) -> u8 {
        self.frame[self.l3 + 1]
    }
    fn proto(&self) -> u8 {
        self.frame[self.l3 + 9]
    }
    fn first_fragment(&self) -> bool {
        u16::from_be_bytes([self.frame[self.l3 + 6], self.frame[self.l3 + 7]]) & 0x1fff == 0
    }
    fn payload(&self) -> &[u8] {
        &self.ip()[self.ihl..]
    }
    /// The answer's link header: to the sender, from `mac`, behind the
    /// same VLAN tag.
    fn link_header(&self, mac: [u8; 6], out: &mut Vec<u8>) {
        out.extend_from_slice(&self.frame[6..12]);
        out.extend_from_slice(&mac);
        out.extend_from_slice(&self.frame[12..self.l3]);
    }
}

/// ICMP types the kernel counts as errors (`icmp_pointers[].error`):
/// unreachable, source quench, redirect, time exceeded, parameter
/// problem. (The engine translates a narrower set; see RFC 5508.)
fn is_error_type(t: u8) -> bool {
    matches!(t, 3 | 4 | 5 | 11 | 12)
}

/// An address that names no single host (RFC 1812 §4.3.2.7, §5.3.7):
/// zero, loopback, limited broadcast, multicast or class E.
fn not_a_host(a: Ipv4Addr) -> bool {
    a.is_unspecified()
        || a.is_loopback()
        || a.is_broadcast()
        || a.is_multicast()
        || a.octets()[0] >= 240
}

fn ipv4_header(out: &mut Vec<u8>, h: (u8, u16, u16, u8), src: Ipv4Addr, dst: Ipv4Addr, len: usize) {
    let (tos, id, frag, proto) = h;
    let start = out.len();
    out.extend_from_slice(&[0x45, tos]);
    out.extend_from_slice(&((20 + len) as u16).to_be_bytes());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&frag.to_be_bytes());
    out.extend_from_slice(&[TTL, proto, 0, 0]);
    out.extend_from_slice(&src.octets());
    out.extend_from_slice(&dst.octets());
    let c = checksum(&out[start..start + 20]);
    out[start + 10..start + 12].copy_from_slice(&c.to_be_bytes());
}

/// The RST answering the TCP segment in `frame`, sent from `mac` (RFC
/// 9293 §3.10.7.1: with ACK set, <SEQ=SEG.ACK><CTL=RST>; otherwise
/// <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>). None for a RST, for what
/// is not a whole TCP segment, and for a sender that is no single host.
pub fn tcp_reset(frame: &[u8], mac: [u8; 6], by: ResetBy) -> Option<Vec<u8>> {
    let o = Offending::parse(frame)?;
    if o.proto() != 6 || !o.first_fragment() || not_a_host(o.src()) || not_a_host(o.dst()) {
        return None;
    }
    let seg = o.payload();
    let data_off = usize::from(*seg.get(12)? >> 4) * 4;
    if data_off < 20 || seg.len() < data_off {
        return None;
    }
    let flags = seg[13];
    let (syn, fin, rst, ack) = (
        flags & 0x02 != 0,
        flags & 0x01 != 0,
        flags & 0x04 != 0,
        flags & 0x10 != 0,
    );
    if rst {
        return None;
    }
    let word = |at: usize| u32::from_be_bytes([seg[at], seg[at + 1], seg[at + 2], seg[at + 3]]);
    let seg_len = (seg.len() - data_off) as u32 + u32::from(syn) + u32::from(fin);
    let (seq, ack_no, out_flags) = if ack {
        (word(8), 0, 0x04)
    } else {
        (0, word(4).wrapping_add(seg_len), 0x14)
    };
    let tos = match by {
        ResetBy::Stack => o.tos() & !0x03,
        ResetBy::Netfilter => 0,
    };
    let (src, dst) = (o.dst(), o.src());
    let mut out = Vec::with_capacity(o.l3 + 40);
    o.link_header(mac, &mut out);
    ipv4_header(&mut out, (tos, 0, 0x4000, 6), src, dst, 20);
    let t = out.len();
    out.extend_from_slice(&seg[2..4]);
    out.extend_from_slice(&seg[0..2]);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&ack_no.to_be_bytes());
    out.extend_from_slice(&[0x50, out_flags, 0, 0, 0, 0, 0, 0]);
    let c = !(sum(pseudo_header_sum(src, dst, 6, 20), &out[t..]) as u16);
    out[t + 16..t + 18].copy_from_slice(&c.to_be_bytes());
    Some(out)
}

/// The ICMP error about the datagram in `frame`, sent from `from` and
/// `mac` with IP ID `ip_id`, quoting up to [`MAX_QUOTE`] bytes of it.
/// None where `__icmp_send` and RFC 1812 §4.3.2.7 send nothing: about an
/// ICMP error, a non-first fragment, a link-layer broadcast or multicast,
/// a datagram to a broadcast or multicast address, or from an address
/// that names no single host.
pub fn icmp_error(
    frame: &[u8],
    from: Ipv4Addr,
    mac: [u8; 6],
    ip_id: u16,
    error: IcmpError,
) -> Option<Vec<u8>> {
    let mut rest = [0u8; 4];
    rest[2..].copy_from_slice(&error.mtu.to_be_bytes());
    icmp_message(frame, from, mac, ip_id, (error.icmp_type, error.code, rest))
}

/// An ICMP redirect for host (RFC 792 type 5 code 1) about `frame`:
/// "send to `gateway`", built as `__icmp_send` builds every error (the
/// same quote, TOS, TTL and refusals as [`icmp_error`]).
pub fn icmp_redirect(
    frame: &[u8],
    from: Ipv4Addr,
    mac: [u8; 6],
    ip_id: u16,
    gateway: Ipv4Addr,
) -> Option<Vec<u8>> {
    icmp_message(frame, from, mac, ip_id, (5, 1, gateway.octets()))
}

/// An ICMP error message of (type, code, the header's second word).
fn icmp_message(
    frame: &[u8],
    from: Ipv4Addr,
    mac: [u8; 6],
    ip_id: u16,
    (icmp_type, code, rest): (u8, u8, [u8; 4]),
) -> Option<Vec<u8>> {
    let o = Offending::parse(frame)?;
    if frame[0] & 1 != 0 || !o.first_fragment() || not_a_host(o.src()) {
        return None;
    }
    if o.dst().is_broadcast() || o.dst().is_multicast() {
        return None;
    }
    if o.proto() == 1 {
        // ICMP errors (and types the kernel does not know) get none.
        let t = *o.payload().first()?;
        if is_error_type(t) || t > 18 {
            return None;
        }
    }
    let quoted = &o.ip()[..o.len.min(MAX_QUOTE)];
    let mut out = Vec::with_capacity(o.l3 + 28 + quoted.len());
    o.link_header(mac, &mut out);
    let tos = (o.tos() & 0x1e) | 0xc0;
    ipv4_header(
        &mut out,
        (tos, ip_id, 0, 1),
        from,
        o.src(),
        8 + quoted.len(),
    );
    let t = out.len();
    out.extend_from_slice(&[icmp_type, code, 0, 0]);
    out.extend_from_slice(&rest);
    out.extend_from_slice(quoted);
    let c = checksum(&out[t..]);
    out[t + 2..t + 4].copy_from_slice(&c.to_be_bytes());
    Some(out)
}

/// The destination and kind of the ICMP error in `frame`, if it holds
/// one (as [`icmp_error`] builds them): what a rate limit needs to know.
pub fn icmp_error_in(frame: &[u8]) -> Option<(Ipv4Addr, IcmpError)> {
    let o = Offending::parse(frame)?;
    let icmp = o.payload();
    if o.proto() != 1 || icmp.len() < 8 || !is_error_type(icmp[0]) {
        return None;
    }
    let mtu = u16::from_be_bytes([icmp[6], icmp[7]]);
    let error = IcmpError {
        icmp_type: icmp[0],
        code: icmp[1],
        mtu: if icmp[0] == 3 && icmp[1] == 4 { mtu } else { 0 },
    };
    Some((o.dst(), error))
}

#[cfg(test)]
mod tests;
