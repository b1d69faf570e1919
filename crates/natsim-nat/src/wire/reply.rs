//! Answers the engine generates in place of forwarding: a TCP RST or an
//! ICMP port unreachable, as a Linux router's own stack sends for
//! unsolicited traffic to its address.
//!
//! The answer replaces the frame's contents (the buffer may grow); MAC
//! addresses are swapped and an 802.1Q tag is kept. This path is rare and
//! may allocate when the buffer is too small.

use crate::checksum::{checksum, pseudo_header_sum, sum};
use crate::frame::{Parsed, TcpFlags, ETH_LEN};
use std::net::Ipv4Addr;

/// Bytes of the offending datagram an ICMP error quotes at most (the
/// whole error then fits 576 bytes, RFC 1812 §4.3.2.3).
const MAX_QUOTE: usize = 576 - 20 - 8;

fn ipv4_header(buf: &mut Vec<u8>, src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload_len: usize) {
    let total = (20 + payload_len) as u16;
    let start = buf.len();
    buf.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0]);
    buf[start + 2..start + 4].copy_from_slice(&total.to_be_bytes());
    buf.extend_from_slice(&src.octets());
    buf.extend_from_slice(&dst.octets());
    let c = checksum(&buf[start..start + 20]);
    buf[start + 10..start + 12].copy_from_slice(&c.to_be_bytes());
}

/// Copies the link header with the MACs swapped (VLAN tag kept).
fn link_header(frame: &[u8], l3: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(&frame[6..12]);
    out.extend_from_slice(&frame[0..6]);
    out.extend_from_slice(&frame[12..l3]);
    debug_assert!(l3 >= ETH_LEN);
}

/// Builds a RST answering the TCP segment in `frame` (RFC 793 §3.4
/// "Reset Generation"). Returns false (and leaves `frame`) for a RST.
pub(crate) fn tcp_rst(frame: &mut Vec<u8>, p: &Parsed) -> bool {
    let seg = &frame[p.l4..p.end];
    let flags = TcpFlags(seg[13]);
    if flags.has(TcpFlags::RST) {
        return false;
    }
    let seq = u32::from_be_bytes([seg[4], seg[5], seg[6], seg[7]]);
    let ack = u32::from_be_bytes([seg[8], seg[9], seg[10], seg[11]]);
    let data_off = usize::from(seg[12] >> 4) * 4;
    let payload = seg.len().saturating_sub(data_off) as u32;
    let (rst_seq, rst_ack, rst_flags) = if flags.has(TcpFlags::ACK) {
        (ack, 0, TcpFlags::RST)
    } else {
        let mut len = payload;
        if flags.has(TcpFlags::SYN) {
            len += 1;
        }
        if flags.has(TcpFlags::FIN) {
            len += 1;
        }
        (0, seq.wrapping_add(len), TcpFlags::RST | TcpFlags::ACK)
    };
    let (src, dst) = (p.flow.dst, p.flow.src);
    let mut out = Vec::with_capacity(p.l3 + 40);
    link_header(frame, p.l3, &mut out);
    ipv4_header(&mut out, src.addr, dst.addr, 6, 20);
    let t = out.len();
    out.extend_from_slice(&src.port.to_be_bytes());
    out.extend_from_slice(&dst.port.to_be_bytes());
    out.extend_from_slice(&rst_seq.to_be_bytes());
    out.extend_from_slice(&rst_ack.to_be_bytes());
    out.extend_from_slice(&[0x50, rst_flags.0, 0, 0, 0, 0, 0, 0]);
    let c = !(sum(pseudo_header_sum(src.addr, dst.addr, 6, 20), &out[t..]) as u16);
    out[t + 16..t + 18].copy_from_slice(&c.to_be_bytes());
    *frame = out;
    true
}

/// Builds an ICMP destination unreachable (`code`, e.g. 3 = port
/// unreachable) quoting the packet in `frame`, sent from `from`.
pub(crate) fn icmp_unreachable(frame: &mut Vec<u8>, p: &Parsed, from: Ipv4Addr, code: u8) {
    let quote_len = (p.end - p.l3).min(MAX_QUOTE);
    let mut out = Vec::with_capacity(p.l3 + 28 + quote_len);
    link_header(frame, p.l3, &mut out);
    ipv4_header(&mut out, from, p.flow.src.addr, 1, 8 + quote_len);
    let t = out.len();
    out.extend_from_slice(&[3, code, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&frame[p.l3..p.l3 + quote_len]);
    let c = checksum(&out[t..]);
    out[t + 2..t + 4].copy_from_slice(&c.to_be_bytes());
    *frame = out;
}
