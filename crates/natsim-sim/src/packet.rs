//! Frames the router builds or rewrites in place: 802.1Q-aware IPv4
//! offsets, TTL and MSS rewrites, ICMP errors, RSTs, echo replies, ARP.

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

/// An ICMP error about `frame` back to its sender from `src` (`mac`),
/// built as Linux's icmp_send does: the original quoted up to 576 bytes
/// in all (RFC 1812 §4.3.2.3), TOS precedence "internetwork control"
/// (0xc0) over the original's TOS bits, DF clear, the router's own IP ID;
/// never about an ICMP error or a non-first fragment (RFC 1812 §4.3.2.7).
/// `mtu` fills the next-hop MTU field of "fragmentation needed" (RFC 1191).
pub(crate) fn icmp_error(
    frame: &[u8],
    src: Ipv4Addr,
    mac: [u8; 6],
    id: u16,
    (icmp_type, code, mtu): (u8, u8, u16),
) -> Option<Vec<u8>> {
    let l3 = l3_of(frame);
    let ip = ipv4_of(frame)?;
    if ip.frag_offset() != 0 {
        return None;
    }
    let ihl = usize::from(ip.header_len());
    if ip.next_header() == IpProtocol::Icmp {
        let t = ip.payload().first().copied().unwrap_or(0);
        if !matches!(t, 0 | 8 | 13 | 14 | 15 | 16 | 17 | 18) {
            return None;
        }
    }
    let total = usize::from(ip.total_len()).min(frame.len() - l3);
    if total < ihl {
        return None;
    }
    let quoted = &frame[l3..l3 + total.min(576 - 20 - 8)];
    let len = 20 + 8 + quoted.len();
    let mut buf = Vec::with_capacity(l3 + len);
    buf.extend_from_slice(&frame[6..12]);
    buf.extend_from_slice(&mac);
    // Ethertype IPv4, behind the same VLAN tag the packet came with.
    buf.extend_from_slice(&frame[12..l3]);
    let tos = (frame[l3 + 1] & 0x1e) | 0xc0;
    let mut hdr = [0u8; 20];
    hdr[0] = 0x45;
    hdr[1] = tos;
    hdr[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    hdr[4..6].copy_from_slice(&id.to_be_bytes());
    hdr[8] = 64;
    hdr[9] = 1;
    hdr[12..16].copy_from_slice(&src.octets());
    hdr[16..20].copy_from_slice(&ip.src_addr().octets());
    let c = natsim_nat::checksum::checksum(&hdr);
    hdr[10..12].copy_from_slice(&c.to_be_bytes());
    buf.extend_from_slice(&hdr);
    let at = buf.len();
    buf.extend_from_slice(&[icmp_type, code, 0, 0, 0, 0]);
    buf.extend_from_slice(&mtu.to_be_bytes());
    buf.extend_from_slice(quoted);
    let c = natsim_nat::checksum::checksum(&buf[at..]);
    buf[at + 2..at + 4].copy_from_slice(&c.to_be_bytes());
    Some(buf)
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

/// The RST a closed port answers with (RFC 9293 §3.10.7.1: if the
/// segment has ACK, <SEQ=SEG.ACK><CTL=RST>, else <SEQ=0><ACK=SEG.SEQ+
/// SEG.LEN><CTL=RST,ACK>); none for a RST (untagged frames only).
pub(crate) fn closed_port_rst(frame: &[u8]) -> Option<Vec<u8>> {
    let ip = Ipv4Packet::new_checked(frame.get(14..)?).ok()?;
    let t = TcpPacket::new_checked(ip.payload()).ok()?;
    if t.rst() {
        return None;
    }
    let seg_len = t.payload().len() as u32 + u32::from(t.syn()) + u32::from(t.fin());
    let (seq, ack) = if t.ack() {
        (t.ack_number().0 as u32, None)
    } else {
        (0, Some((t.seq_number().0 as u32).wrapping_add(seg_len)))
    };
    let mut tcp = [0u8; 20];
    tcp[0..2].copy_from_slice(&t.dst_port().to_be_bytes());
    tcp[2..4].copy_from_slice(&t.src_port().to_be_bytes());
    tcp[4..8].copy_from_slice(&seq.to_be_bytes());
    tcp[8..12].copy_from_slice(&ack.unwrap_or(0).to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = if ack.is_some() { 0x14 } else { 0x04 };
    let (src, dst) = (ip.dst_addr(), ip.src_addr());
    let ph = natsim_nat::checksum::pseudo_header_sum(src, dst, 6, 20);
    let c = !(natsim_nat::checksum::sum(ph, &tcp) as u16);
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    let mut hdr = [0u8; 20];
    hdr[0] = 0x45;
    hdr[2..4].copy_from_slice(&40u16.to_be_bytes());
    // ip_send_unicast_reply: DF, IP ID 0.
    hdr[6] = 0x40;
    hdr[8] = 64;
    hdr[9] = 6;
    hdr[12..16].copy_from_slice(&src.octets());
    hdr[16..20].copy_from_slice(&dst.octets());
    let c = natsim_nat::checksum::checksum(&hdr);
    hdr[10..12].copy_from_slice(&c.to_be_bytes());
    let mut buf = Vec::with_capacity(54);
    buf.extend_from_slice(&frame[6..12]);
    buf.extend_from_slice(&frame[0..6]);
    buf.extend_from_slice(&[0x08, 0x00]);
    buf.extend_from_slice(&hdr);
    buf.extend_from_slice(&tcp);
    Some(buf)
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
