//! A repair for smoltcp 0.14's fragmented ICMP: `dispatch_ip` emits a
//! packet too big for the MTU into its fragmentation buffer with the
//! payload slice running to the buffer's end, so `Icmpv4Packet::
//! fill_checksum` also sums whatever an earlier, longer datagram left
//! there. The first fragment's ICMP checksum is then wrong (tshark: "Bad
//! checksum") whenever a datagram follows a longer one. Here the checksum
//! is recomputed over the datagram the fragments carry, as the stack meant.

use std::collections::BTreeMap;

/// (source, destination, identification) of an untagged IPv4 ICMP frame.
type Key = (u32, u32, u16);

/// Fixes the ICMP checksum in the first fragment of every fragmented ICMP
/// datagram whose fragments are all in `frames` (smoltcp sends them in one
/// poll). Frames of other kinds are left alone.
pub(crate) fn fix_fragmented_icmp(frames: &mut [Vec<u8>]) {
    let mut groups: BTreeMap<Key, Vec<usize>> = BTreeMap::new();
    for (i, f) in frames.iter().enumerate() {
        if let Some(k) = fragment_key(f) {
            groups.entry(k).or_default().push(i);
        }
    }
    for idx in groups.values() {
        let mut parts: Vec<(usize, usize)> = idx.iter().map(|&i| (offset(&frames[i]), i)).collect();
        parts.sort();
        let mut next = 0;
        let mut data = Vec::new();
        let mut complete = false;
        for &(off, i) in &parts {
            let f = &frames[i];
            let (start, end) = payload(f);
            if off != next {
                break;
            }
            data.extend_from_slice(&f[start..end]);
            next = off + (end - start);
            if !more(f) {
                complete = true;
                break;
            }
        }
        if !complete || parts[0].0 != 0 || data.len() < 4 {
            continue;
        }
        data[2..4].copy_from_slice(&[0, 0]);
        let c = natsim_nat::checksum::checksum(&data);
        let first = &mut frames[parts[0].1];
        let (start, _) = payload(first);
        first[start + 2..start + 4].copy_from_slice(&c.to_be_bytes());
    }
}

fn fragment_key(f: &[u8]) -> Option<Key> {
    if f.len() < 34 || f[12..14] != [0x08, 0x00] || f[23] != 1 {
        return None;
    }
    let flags = u16::from_be_bytes([f[20], f[21]]);
    if flags & 0x3fff == 0 {
        return None;
    }
    let be32 = |i: usize| u32::from_be_bytes([f[i], f[i + 1], f[i + 2], f[i + 3]]);
    Some((be32(26), be32(30), u16::from_be_bytes([f[18], f[19]])))
}

fn offset(f: &[u8]) -> usize {
    usize::from(u16::from_be_bytes([f[20], f[21]]) & 0x1fff) * 8
}

fn more(f: &[u8]) -> bool {
    f[20] & 0x20 != 0
}

/// The IP payload's range in the frame.
fn payload(f: &[u8]) -> (usize, usize) {
    let hlen = usize::from(f[14] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([f[16], f[17]]));
    let end = (14 + total).min(f.len());
    ((14 + hlen).min(end), end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_checksum_is_replaced_by_the_datagrams_own() {
        // An echo reply of 2000 data bytes, cut at 1500, its checksum spoilt.
        let mut icmp = vec![0u8, 0, 0, 0, 0x4e, 0x53, 0, 1];
        icmp.extend((0..2000).map(|i| i as u8));
        let good = natsim_nat::checksum::checksum(&icmp);
        icmp[2..4].copy_from_slice(&0x1234u16.to_be_bytes());
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        let mut ip = vec![
            0x45, 0, 0, 0, 0xa0, 0x52, 0, 0, 64, 1, 0, 0, 192, 168, 1, 20, 192, 168, 1, 21,
        ];
        ip[2..4].copy_from_slice(&((20 + icmp.len()) as u16).to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&icmp);
        let mut frames = natsim_nat::wire::fragment::split(&f, 1500).unwrap();
        frames.reverse();
        fix_fragmented_icmp(&mut frames);
        let first = frames.iter().find(|f| offset(f) == 0).unwrap();
        assert_eq!(u16::from_be_bytes([first[36], first[37]]), good);
    }
}
