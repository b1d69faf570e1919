//! Frames the router builds or rewrites in place: 802.1Q-aware IPv4
//! offsets, TTL and MSS rewrites, echo replies, ARP. (ICMP errors and
//! RSTs come from `natsim_nat::wire::reply`, shared with the engine.)

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::*;
use std::net::Ipv4Addr;

/// Where the IPv4 header starts: after the Ethernet header and one
/// optional 802.1Q tag (which stays in place through the router).
pub(crate) fn l3_of(f: &[u8]) -> usize {
    if f.len() >= 18 && f[12..14] == [0x81, 0x00] {
        18
    } else {
        14
    }
}

/// The IPv4 packet of a frame, tagged or not.
pub(crate) fn ipv4_of(f: &[u8]) -> Option<Ipv4Packet<&[u8]>> {
    Ipv4Packet::new_checked(f.get(l3_of(f)..)?).ok()
}

/// Sets the TTL of the IPv4 packet at `l3` with an RFC 1624 checksum
/// update (TTL is the high byte of the TTL/protocol word).
pub(crate) fn set_ttl(frame: &mut [u8], l3: usize, ttl: u8) {
    let old = u16::from_be_bytes([frame[l3 + 8], frame[l3 + 9]]);
    frame[l3 + 8] = ttl;
    let new = u16::from_be_bytes([frame[l3 + 8], frame[l3 + 9]]);
    let c = u16::from_be_bytes([frame[l3 + 10], frame[l3 + 11]]);
    let c = natsim_nat::checksum::update16(c, old, new);
    frame[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
}

/// Lowers the MSS option of a TCP SYN at `l3` to `mss` if it is larger,
/// recomputing the TCP checksum; returns the old MSS if it changed.
pub(crate) fn clamp_mss(frame: &mut [u8], l3: usize, mss: u16) -> Option<u16> {
    if frame.get(l3 + 9) != Some(&6) {
        return None;
    }
    let ihl = usize::from(frame[l3] & 0x0f) * 4;
    let t = l3 + ihl;
    let doff = usize::from(*frame.get(t + 12)? >> 4) * 4;
    if frame.get(t + 13)? & 0x02 == 0 || doff < 20 || frame.len() < t + doff {
        return None;
    }
    let mut k = t + 20;
    while k < t + doff {
        match frame[k] {
            0 => break,
            1 => k += 1,
            2 if k + 4 <= t + doff && frame[k + 1] == 4 => {
                let old = u16::from_be_bytes([frame[k + 2], frame[k + 3]]);
                if old <= mss {
                    return None;
                }
                frame[k + 2..k + 4].copy_from_slice(&mss.to_be_bytes());
                // Only SYNs get here: recompute the checksum outright.
                let total = usize::from(u16::from_be_bytes([frame[l3 + 2], frame[l3 + 3]]));
                let end = (l3 + total).min(frame.len());
                frame[t + 16..t + 18].copy_from_slice(&[0, 0]);
                let src = Ipv4Addr::new(
                    frame[l3 + 12],
                    frame[l3 + 13],
                    frame[l3 + 14],
                    frame[l3 + 15],
                );
                let dst = Ipv4Addr::new(
                    frame[l3 + 16],
                    frame[l3 + 17],
                    frame[l3 + 18],
                    frame[l3 + 19],
                );
                let ph = natsim_nat::checksum::pseudo_header_sum(src, dst, 6, (end - t) as u16);
                let c = !(natsim_nat::checksum::sum(ph, &frame[t..end]) as u16);
                frame[t + 16..t + 18].copy_from_slice(&c.to_be_bytes());
                return Some(old);
            }
            _ => {
                let len = usize::from(*frame.get(k + 1)?);
                if len < 2 {
                    return None;
                }
                k += len;
            }
        }
    }
    None
}

pub(crate) fn arp_frame(src: [u8; 6], dst: [u8; 6], repr: &ArpRepr) -> Vec<u8> {
    let mut buf = vec![0u8; 14 + repr.buffer_len()];
    buf[0..6].copy_from_slice(&dst);
    buf[6..12].copy_from_slice(&src);
    buf[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    let mut pkt = ArpPacket::new_unchecked(&mut buf[14..]);
    repr.emit(&mut pkt);
    buf
}

/// An echo reply for an echo request frame, addressed back to its sender.
pub(crate) fn echo_reply(frame: &[u8]) -> Option<Vec<u8>> {
    let ip = Ipv4Packet::new_checked(frame.get(14..)?).ok()?;
    if ip.next_header() != IpProtocol::Icmp {
        return None;
    }
    let icmp = Icmpv4Packet::new_checked(ip.payload()).ok()?;
    let Icmpv4Repr::EchoRequest {
        ident,
        seq_no,
        data,
    } = Icmpv4Repr::parse(&icmp, &ChecksumCapabilities::default()).ok()?
    else {
        return None;
    };
    let reply = Icmpv4Repr::EchoReply {
        ident,
        seq_no,
        data,
    };
    let ip_repr = Ipv4Repr {
        src_addr: ip.dst_addr(),
        dst_addr: ip.src_addr(),
        next_header: IpProtocol::Icmp,
        payload_len: reply.buffer_len(),
        hop_limit: 64,
    };
    let mut buf = vec![0u8; 14 + ip_repr.buffer_len() + reply.buffer_len()];
    buf[0..6].copy_from_slice(&frame[6..12]);
    buf[6..12].copy_from_slice(&frame[0..6]);
    buf[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let caps = ChecksumCapabilities::default();
    let mut ipp = Ipv4Packet::new_unchecked(&mut buf[14..]);
    ip_repr.emit(&mut ipp, &caps);
    let mut ic = Icmpv4Packet::new_unchecked(ipp.payload_mut());
    reply.emit(&mut ic, &caps);
    Some(buf)
}
