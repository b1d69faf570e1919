//! Internet checksums: RFC 1624 incremental updates and full computation.
//!
//! The hot path only ever *updates* checksums (RFC 1624 eqn. 3), which
//! costs a few additions per rewritten field whatever the packet length.
//! Full computation is used for generated packets, for ICMP errors whose
//! quoted packet changed, and by tests as the independent reference.

use std::net::Ipv4Addr;

/// One's-complement sum of `data` (odd trailing byte padded with zero),
/// folded to 16 bits, added to `initial`.
pub fn sum(initial: u32, data: &[u8]) -> u32 {
    let mut acc = u64::from(initial);
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u64::from(u16::from_be_bytes([*last, 0]));
    }
    fold(acc)
}

/// Folds a wide one's-complement accumulator into 16 bits.
pub fn fold(mut acc: u64) -> u32 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u32
}

/// The checksum (complement of the folded sum) of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    !(sum(0, data) as u16)
}

/// The IPv4 pseudo-header sum for TCP/UDP (RFC 793 §3.1, RFC 768).
pub fn pseudo_header_sum(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: u16) -> u32 {
    let s = src.octets();
    let d = dst.octets();
    let acc = u64::from(u16::from_be_bytes([s[0], s[1]]))
        + u64::from(u16::from_be_bytes([s[2], s[3]]))
        + u64::from(u16::from_be_bytes([d[0], d[1]]))
        + u64::from(u16::from_be_bytes([d[2], d[3]]))
        + u64::from(proto)
        + u64::from(len);
    fold(acc)
}

/// RFC 1624 eqn. 3: `HC' = ~(~HC + ~m + m')` for one 16-bit field.
#[inline]
pub fn update16(hc: u16, old: u16, new: u16) -> u16 {
    let acc = u32::from(!hc) + u32::from(!old) + u32::from(new);
    !(fold(u64::from(acc)) as u16)
}

/// RFC 1624 eqn. 3 for a 32-bit field (an address): two 16-bit words.
#[inline]
pub fn update32(hc: u16, old: u32, new: u32) -> u16 {
    let acc = u64::from(!hc)
        + u64::from(!(old >> 16) & 0xffff)
        + u64::from(!old & 0xffff)
        + u64::from(new >> 16)
        + u64::from(new & 0xffff);
    !(fold(acc) as u16)
}

/// A pending incremental change to one checksum: accumulates the
/// differences of several fields and applies them once.
#[derive(Clone, Copy, Debug, Default)]
pub struct Delta {
    acc: u64,
}

impl Delta {
    #[inline]
    pub fn field16(&mut self, old: u16, new: u16) {
        self.acc += u64::from(!old) + u64::from(new);
    }
    #[inline]
    pub fn field32(&mut self, old: u32, new: u32) {
        self.field16((old >> 16) as u16, (new >> 16) as u16);
        self.field16(old as u16, new as u16);
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.acc == 0
    }
    /// Applies the accumulated change to checksum `hc`.
    #[inline]
    pub fn apply(&self, hc: u16) -> u16 {
        !(fold(u64::from(!hc) + self.acc) as u16)
    }
    /// Applies to a UDP checksum: 0 means "none" over IPv4 and stays 0; a
    /// result of 0 is sent as 0xFFFF (RFC 768).
    #[inline]
    pub fn apply_udp(&self, hc: u16) -> u16 {
        if hc == 0 {
            return 0;
        }
        match self.apply(hc) {
            0 => 0xffff,
            v => v,
        }
    }
}

/// Why a frame's checksums do not verify (see [`verify_frame`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChecksumFault {
    /// Not an Ethernet II (optionally 802.1Q) frame carrying IPv4.
    NotIpv4,
    Ipv4Header,
    Tcp,
    Udp,
    Icmp,
    /// The IPv4 header quoted inside an ICMP error (RFC 792).
    QuotedIpv4Header,
}

impl std::fmt::Display for ChecksumFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::NotIpv4 => "not an IPv4 frame",
            Self::Ipv4Header => "IPv4 header checksum does not verify",
            Self::Tcp => "TCP checksum does not verify",
            Self::Udp => "UDP checksum does not verify",
            Self::Icmp => "ICMP checksum does not verify",
            Self::QuotedIpv4Header => "quoted IPv4 header checksum does not verify",
        })
    }
}

/// Verifies every checksum of an Ethernet/IPv4 frame by full recomputation
/// over its raw bytes: the IPv4 header, then TCP/UDP (with the pseudo-header;
/// a UDP checksum of 0 means none, RFC 768) or ICMP, and the IPv4 header an
/// ICMP error quotes. The reference the tests and fuzz targets hold the
/// engine to, so it sums with etherparse's `Sum16BitWords`, not with the
/// [`sum`] the engine itself uses. Raw bytes matter: a header model that
/// drops reserved bits (IPv4 flag bit 0, TCP's reserved bits) would verify a
/// frame whose real checksum is wrong. A fragment's transport checksum
/// covers the whole datagram, so only its IPv4 header is verified.
pub fn verify_frame(frame: &[u8]) -> Result<(), ChecksumFault> {
    use etherparse::checksum::Sum16BitWords;
    use etherparse::{NetSlice, SlicedPacket};
    // Summed over data that includes its checksum, a valid one leaves 0.
    let verifies = |bytes: &[u8]| Sum16BitWords::new().add_slice(bytes).ones_complement() == 0;
    let s = SlicedPacket::from_ethernet(frame).map_err(|_| ChecksumFault::NotIpv4)?;
    let Some(NetSlice::Ipv4(ip)) = &s.net else {
        return Err(ChecksumFault::NotIpv4);
    };
    let hdr = ip.header();
    if !verifies(hdr.slice()) {
        return Err(ChecksumFault::Ipv4Header);
    }
    if ip.is_payload_fragmented() {
        return Ok(());
    }
    let body = ip.payload().payload;
    let transport_ok = |proto: u8| {
        let Ok(len) = u16::try_from(body.len()) else {
            return false;
        };
        let mut pseudo = Sum16BitWords::new();
        pseudo = pseudo.add_4bytes(hdr.source());
        pseudo = pseudo.add_4bytes(hdr.destination());
        pseudo
            .add_2bytes([0, proto])
            .add_2bytes(len.to_be_bytes())
            .add_slice(body)
            .ones_complement()
            == 0
    };
    match hdr.protocol().0 {
        6 if !transport_ok(6) => Err(ChecksumFault::Tcp),
        17 if body.len() >= 8 && body[6..8] != [0, 0] && !transport_ok(17) => {
            Err(ChecksumFault::Udp)
        }
        1 => {
            if !verifies(body) {
                return Err(ChecksumFault::Icmp);
            }
            // Destination unreachable, time exceeded, parameter problem.
            if matches!(body.first(), Some(3 | 11 | 12)) && body.len() >= 28 {
                let quoted = &body[8..];
                let ihl = usize::from(quoted[0] & 0x0f) * 4;
                if ihl >= 20 && quoted.len() >= ihl && !verifies(&quoted[..ihl]) {
                    return Err(ChecksumFault::QuotedIpv4Header);
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071 §3 example bytes: sum 0xddf2.
    #[test]
    fn sum_matches_rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum(0, &data), 0xddf2);
    }

    #[test]
    fn update_matches_full_recomputation_for_an_ip_header() {
        let mut hdr = [
            0x45, 0x00, 0x00, 0x3c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, 0xac, 0x10,
            0x0a, 0x63, 0xac, 0x10, 0x0a, 0x0c,
        ];
        let c = checksum(&hdr);
        hdr[10..12].copy_from_slice(&c.to_be_bytes());
        let old = u32::from_be_bytes([hdr[12], hdr[13], hdr[14], hdr[15]]);
        let new = u32::from_be_bytes([203, 0, 113, 1]);
        hdr[12..16].copy_from_slice(&new.to_be_bytes());
        let inc = update32(c, old, new);
        hdr[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(inc, checksum(&hdr));
    }

    /// RFC 1624 §3's motivating case: eqn. 3 never yields 0xFFFF... unless
    /// the full computation does; compare on the corner values.
    #[test]
    fn update_agrees_with_full_computation_at_the_zero_corner() {
        // Words summing to 0xffff give checksum 0x0000.
        let mut data = [0xff, 0xfe, 0x00, 0x01, 0x00, 0x00];
        let c = checksum(&data);
        assert_eq!(c, 0x0000);
        data[4..6].copy_from_slice(&c.to_be_bytes());
        // change word 0 from 0xfffe to 0x0000 and back
        let c2 = update16(c, 0xfffe, 0x0000);
        data[0..2].copy_from_slice(&[0, 0]);
        data[4..6].copy_from_slice(&[0, 0]);
        assert_eq!(c2, checksum(&data));
    }

    #[test]
    fn udp_zero_checksum_means_none_and_stays_zero() {
        let mut d = Delta::default();
        d.field32(0x0a000001, 0xcb007101);
        assert_eq!(d.apply_udp(0), 0);
    }

    /// Found by the `engine_replay` fuzz target: etherparse's header model
    /// drops the reserved flag bit, so a checker built on it accepted this
    /// header (real checksum wrong) and rejected the engine's correct one.
    #[test]
    fn verify_frame_counts_the_reserved_flag_bit() {
        let mut frame = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        frame.extend_from_slice(&[
            0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 17, 0, 0, 192, 168, 1, 20, 203, 0, 113, 21,
        ]);
        frame.extend_from_slice(&[0x30, 0x39, 0, 53, 0, 8, 0, 0]);
        let c = checksum(&frame[14..34]);
        frame[24..26].copy_from_slice(&c.to_be_bytes());
        assert_eq!(verify_frame(&frame), Ok(()));
        frame[20] = 0xc0; // reserved bit set, checksum not updated
        assert_eq!(verify_frame(&frame), Err(ChecksumFault::Ipv4Header));
        let c = checksum(&{
            let mut h = frame[14..34].to_vec();
            h[10..12].copy_from_slice(&[0, 0]);
            h
        });
        frame[24..26].copy_from_slice(&c.to_be_bytes());
        assert_eq!(verify_frame(&frame), Ok(()));
    }
}
