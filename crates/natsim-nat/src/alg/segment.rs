//! Rewriting a TCP segment's sequence space and payload in place: SEQ,
//! ACK, SACK blocks (RFC 2018), a new payload of any length, then the IPv4
//! total length and both checksums recomputed in full (payload edits touch
//! arbitrary bytes, so incremental updates would save nothing).

use crate::checksum;
use crate::frame::TcpFlags;

/// TCP fields the ALG driver reads.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TcpView {
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    /// Offset of the payload in the frame.
    pub payload: usize,
}

fn get32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Reads the TCP header at `l4`; `None` if the data offset is bad.
pub(crate) fn view(frame: &[u8], l4: usize, end: usize) -> Option<TcpView> {
    let hdr = usize::from(*frame.get(l4 + 12)? >> 4) * 4;
    if hdr < 20 || l4 + hdr > end {
        return None;
    }
    Some(TcpView {
        seq: get32(frame, l4 + 4),
        ack: get32(frame, l4 + 8),
        flags: TcpFlags(frame[l4 + 13]),
        payload: l4 + hdr,
    })
}

/// Applies new SEQ/ACK numbers, maps SACK edges with `sack`, replaces the
/// payload if given, and fixes lengths and checksums.
#[allow(clippy::too_many_arguments)]
pub(crate) fn rewrite(
    frame: &mut Vec<u8>,
    l3: usize,
    l4: usize,
    end: usize,
    v: &TcpView,
    seq: u32,
    ack: u32,
    sack: &dyn Fn(u32) -> u32,
    payload: Option<&[u8]>,
) {
    frame[l4 + 4..l4 + 8].copy_from_slice(&seq.to_be_bytes());
    frame[l4 + 8..l4 + 12].copy_from_slice(&ack.to_be_bytes());
    // Options: kind 0 ends, 1 pads, others carry a length.
    let mut at = l4 + 20;
    while at < v.payload {
        match frame[at] {
            0 => break,
            1 => at += 1,
            kind => {
                let Some(&len) = frame.get(at + 1) else { break };
                let len = usize::from(len);
                if len < 2 || at + len > v.payload {
                    break;
                }
                if kind == 5 {
                    let mut e = at + 2;
                    while e + 4 <= at + len {
                        let edge = sack(get32(frame, e));
                        frame[e..e + 4].copy_from_slice(&edge.to_be_bytes());
                        e += 4;
                    }
                }
                at += len;
            }
        }
    }
    let mut end = end;
    if let Some(p) = payload {
        frame.truncate(v.payload);
        frame.extend_from_slice(p);
        end = frame.len();
        let total = (end - l3) as u16;
        frame[l3 + 2..l3 + 4].copy_from_slice(&total.to_be_bytes());
        let ihl = usize::from(frame[l3] & 0x0f) * 4;
        frame[l3 + 10..l3 + 12].fill(0);
        let c = checksum::checksum(&frame[l3..l3 + ihl]);
        frame[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
        // Ethernet minimum frame (without FCS): 60 bytes.
        if frame.len() < 60 {
            frame.resize(60, 0);
        }
    }
    let src = std::net::Ipv4Addr::from_bits(get32(frame, l3 + 12));
    let dst = std::net::Ipv4Addr::from_bits(get32(frame, l3 + 16));
    frame[l4 + 16..l4 + 18].fill(0);
    let len = (end - l4) as u16;
    let sum = checksum::sum(
        checksum::pseudo_header_sum(src, dst, 6, len),
        &frame[l4..end],
    );
    let c = !(sum as u16);
    frame[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
}
