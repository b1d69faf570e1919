//! Cutting an IPv4 packet into fragments that fit an MTU (RFC 791 §3.2,
//! "An Example Fragmentation Procedure"), for routers and for tests.

/// Why a packet could not be fragmented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragmentError {
    /// Not an Ethernet frame holding a whole IPv4 header.
    NotIpv4,
    /// Don't Fragment is set: the sender wants "fragmentation needed".
    DontFragment,
    /// The MTU leaves no room for 8 bytes of data after the header.
    MtuTooSmall,
}

/// Splits the IPv4 packet in the Ethernet frame `frame` (untagged or with
/// one 802.1Q tag) into frames whose IP packets are at most `mtu` bytes.
/// A packet that fits comes back whole. Every fragment keeps the
/// Ethernet header, identification, TTL and protocol; the first keeps
/// every option, later ones only options whose copied flag is set
/// (RFC 791 §3.1); offsets add to the packet's own offset and only the
/// last piece inherits its More Fragments bit, so a fragment can be
/// fragmented again. Header checksums are recomputed.
pub fn split(frame: &[u8], mtu: usize) -> Result<Vec<Vec<u8>>, FragmentError> {
    let l3 = crate::frame::ipv4_offset(frame).map_err(|_| FragmentError::NotIpv4)?;
    let ip = frame.get(l3..l3 + 20).ok_or(FragmentError::NotIpv4)?;
    let hlen = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if ip[0] >> 4 != 4 || hlen < 20 || total < hlen || frame.len() < l3 + total {
        return Err(FragmentError::NotIpv4);
    }
    if total <= mtu {
        return Ok(vec![frame[..l3 + total].to_vec()]);
    }
    let flags = u16::from_be_bytes([ip[6], ip[7]]);
    if flags & 0x4000 != 0 {
        return Err(FragmentError::DontFragment);
    }
    let header = &frame[l3..l3 + hlen];
    let later = copied_options(header);
    let data = &frame[l3 + hlen..l3 + total];
    let base = usize::from(flags & 0x1fff) * 8;
    let more_at_end = flags & 0x2000 != 0;
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let h: &[u8] = if at == 0 { header } else { &later };
        let room = mtu.saturating_sub(h.len()) / 8 * 8;
        if room == 0 {
            return Err(FragmentError::MtuTooSmall);
        }
        let n = room.min(data.len() - at);
        let last = at + n == data.len();
        let mut f = Vec::with_capacity(l3 + h.len() + n);
        f.extend_from_slice(&frame[..l3]);
        f.extend_from_slice(h);
        f.extend_from_slice(&data[at..at + n]);
        let ip = &mut f[l3..l3 + h.len()];
        ip[0] = 0x40 | (h.len() / 4) as u8;
        ip[2..4].copy_from_slice(&((h.len() + n) as u16).to_be_bytes());
        let more = !last || more_at_end;
        let off = ((base + at) / 8) as u16 | if more { 0x2000 } else { 0 };
        // The reserved bit stays as it was; DF is clear here.
        let off = off | (flags & 0x8000);
        ip[6..8].copy_from_slice(&off.to_be_bytes());
        ip[10..12].copy_from_slice(&[0, 0]);
        let c = crate::checksum::checksum(ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        out.push(f);
        at += n;
    }
    Ok(out)
}

/// The header later fragments carry: the fixed 20 bytes and the options
/// whose copied flag (the type's high bit) is set, padded to 32 bits.
fn copied_options(header: &[u8]) -> Vec<u8> {
    let mut h = header[..20].to_vec();
    let opts = &header[20..];
    let mut i = 0;
    while i < opts.len() {
        let t = opts[i];
        match t {
            0 => break,
            1 => i += 1,
            _ => {
                let len = usize::from(*opts.get(i + 1).unwrap_or(&0));
                if len < 2 || i + len > opts.len() {
                    break;
                }
                if t & 0x80 != 0 {
                    h.extend_from_slice(&opts[i..i + len]);
                }
                i += len;
            }
        }
    }
    while !h.len().is_multiple_of(4) {
        h.push(0);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(data_len: usize, flags: u16, options: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        let hlen = 20 + options.len();
        let mut ip = vec![0u8; 20];
        ip[0] = 0x40 | (hlen / 4) as u8;
        ip[2..4].copy_from_slice(&((hlen + data_len) as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
        ip[6..8].copy_from_slice(&flags.to_be_bytes());
        ip[8] = 64;
        ip[9] = 17;
        ip.extend_from_slice(options);
        let c = crate::checksum::checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend((0..data_len).map(|i| i as u8));
        f
    }

    fn fields(f: &[u8]) -> (usize, usize, bool) {
        let ip = &f[14..];
        let flags = u16::from_be_bytes([ip[6], ip[7]]);
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        (total, usize::from(flags & 0x1fff) * 8, flags & 0x2000 != 0)
    }

    #[test]
    fn a_3000_byte_ping_over_1492_makes_three_fragments() {
        // 20 + 2980 bytes: 1472 + 1472 + 36 of data at 1492.
        let f = packet(2980, 0, &[]);
        let parts = split(&f, 1492).unwrap();
        let got: Vec<_> = parts.iter().map(|p| fields(p)).collect();
        assert_eq!(
            got,
            [(1492, 0, true), (1492, 1472, true), (56, 2944, false)]
        );
        let mut data = Vec::new();
        for p in &parts {
            assert_eq!(crate::checksum::checksum(&p[14..34]), 0);
            assert_eq!(&p[18..20], &[0x12, 0x34]);
            data.extend_from_slice(&p[34..]);
        }
        assert_eq!(data, f[34..]);
    }

    #[test]
    fn a_fragment_is_fragmented_again_keeping_its_offset_and_more_bit() {
        // Offset 1480, MF set, 1480 bytes, cut to 1000: 976 + 504 bytes.
        let f = packet(1480, 0x2000 | 185, &[]);
        let got: Vec<_> = split(&f, 1000).unwrap().iter().map(|p| fields(p)).collect();
        assert_eq!(got, [(996, 1480, true), (524, 2456, true)]);
    }

    #[test]
    fn only_copied_options_follow_the_first_fragment() {
        // Record route (7, not copied) and a copied option (0x94, router alert).
        let opts = [7, 7, 4, 0, 0, 0, 0, 0x94, 4, 0, 0, 0];
        let f = packet(100, 0, &opts);
        let parts = split(&f, 80).unwrap();
        assert_eq!(parts[0][14] & 0x0f, 8);
        assert_eq!(parts[1][14] & 0x0f, 6);
        assert_eq!(&parts[1][34..38], &[0x94, 4, 0, 0]);
    }

    #[test]
    fn dont_fragment_and_tiny_mtus_are_errors_not_panics() {
        assert_eq!(
            split(&packet(2000, 0x4000, &[]), 1500),
            Err(FragmentError::DontFragment)
        );
        assert_eq!(
            split(&packet(2000, 0, &[]), 27),
            Err(FragmentError::MtuTooSmall)
        );
        assert_eq!(split(&[0u8; 10], 1500), Err(FragmentError::NotIpv4));
        assert_eq!(split(&packet(100, 0x4000, &[]), 1500).unwrap().len(), 1);
    }
}
