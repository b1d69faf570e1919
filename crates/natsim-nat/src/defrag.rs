//! IP fragments held by the engine: the queues a datagram's fragments wait
//! in, their reassembly, and the rewrite a first fragment leaves for the
//! fragments behind it. Pure data: the engine decides what to do with them.
//!
//! Limits follow Linux's defaults (net/ipv4/ip_fragment.c and
//! Documentation/networking/ip-sysctl.rst): a datagram not completed within
//! `ipfrag_time` (30 s) is discarded, and no more than `ipfrag_high_thresh`
//! (4 MiB) of fragments are held at once.

use crate::frame::ipv4_offset;
use crate::time::{Duration, Instant};
use crate::verdict::{DropReason, Verdict};
use crate::IfaceId;
use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;

/// How long a datagram's fragments are kept (Linux `ipfrag_time`).
pub const FRAGMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// The most fragment bytes held at once (Linux `ipfrag_high_thresh`).
pub const FRAGMENT_MEMORY: usize = 4 << 20;

/// Which datagram a fragment belongs to (RFC 791 §3.2: source,
/// destination, protocol and identification), per ingress interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct FragKey {
    pub ingress: u16,
    pub src: u32,
    pub dst: u32,
    pub proto: u8,
    pub id: u16,
}

/// The IPv4 header fields of a fragment.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FragHeader {
    pub l3: usize,
    pub hlen: usize,
    /// End of the IP packet in the frame.
    pub end: usize,
    pub key: FragKey,
    /// Offset of this fragment's data in the datagram, in bytes.
    pub offset: usize,
    pub more: bool,
}

impl FragHeader {
    /// Reads the header of the IPv4 packet in `frame`; `None` if it is not a
    /// well-formed IPv4 packet (the full parser gives the reason).
    pub fn read(frame: &[u8], ingress: IfaceId) -> Option<FragHeader> {
        let l3 = ipv4_offset(frame).ok()?;
        let h = frame.get(l3..l3 + 20)?;
        let hlen = usize::from(h[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
        if h[0] >> 4 != 4 || hlen < 20 || total < hlen || l3 + total > frame.len() {
            return None;
        }
        let flags = u16::from_be_bytes([h[6], h[7]]);
        let be32 = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        Some(FragHeader {
            l3,
            hlen,
            end: l3 + total,
            key: FragKey {
                ingress: ingress.0,
                src: be32(12),
                dst: be32(16),
                proto: h[9],
                id: u16::from_be_bytes([h[4], h[5]]),
            },
            offset: usize::from(flags & 0x1fff) * 8,
            more: flags & 0x2000 != 0,
        })
    }

    fn data_len(&self) -> usize {
        self.end - self.l3 - self.hlen
    }
}

/// One held fragment: the frame as it arrived.
#[derive(Debug)]
struct Piece {
    offset: usize,
    len: usize,
    more: bool,
    frame: Vec<u8>,
}

/// The fragments of one datagram held so far.
#[derive(Debug)]
struct Queue {
    /// By offset.
    pieces: BTreeMap<usize, Piece>,
    expires: Instant,
    bytes: usize,
}

/// How a first fragment was translated: what its followers get.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Follow {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub verdict: Verdict,
    expires: Instant,
}

/// A fragment the engine held and has now translated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Released {
    /// Where it arrived.
    pub ingress: IfaceId,
    /// The translated frame.
    pub frame: Vec<u8>,
    /// What to do with it, as for the first fragment.
    pub verdict: Verdict,
}

/// What adding a fragment to its queue gave.
#[derive(Debug)]
pub(crate) enum Added {
    /// Held; `held` fragments of the datagram are now waiting.
    Held { held: u16 },
    /// The datagram is complete: the whole frame, how many fragments made
    /// it, and the largest fragment's IP length (Linux's `frag_max_size`).
    Complete {
        frame: Vec<u8>,
        fragments: u16,
        max_size: u16,
    },
}

/// Every fragment the engine holds, and the first fragments' rewrites.
#[derive(Debug, Default)]
pub(crate) struct Fragments {
    queues: BTreeMap<FragKey, Queue>,
    follows: BTreeMap<FragKey, Follow>,
    bytes: usize,
    released: VecDeque<Released>,
}

impl Fragments {
    /// Holds `frame` and, if its datagram is now whole, takes the queue out
    /// and joins it.
    pub fn collect(
        &mut self,
        now: Instant,
        h: &FragHeader,
        frame: &[u8],
    ) -> Result<Added, DropReason> {
        let held = self.hold(now, h, frame)?;
        match self.queues.get(&h.key) {
            Some(q) if complete(q) => {
                let q = self.queues.remove(&h.key).expect("queue present");
                self.bytes -= q.bytes;
                Ok(join(q))
            }
            _ => Ok(Added::Held { held }),
        }
    }

    /// Holds `frame` (whose header is `h`) in its datagram's queue and says
    /// how many fragments the queue holds. An exact duplicate is ignored; a
    /// partial overlap discards the whole datagram (as Linux does since
    /// 4.19, after RFC 5722 §4).
    pub fn hold(&mut self, now: Instant, h: &FragHeader, frame: &[u8]) -> Result<u16, DropReason> {
        let len = h.data_len();
        if h.offset + len > 65535 - h.hlen {
            self.discard(&h.key);
            return Err(DropReason::FragmentTooBig);
        }
        if self.bytes + frame.len() > FRAGMENT_MEMORY {
            return Err(DropReason::FragmentMemory);
        }
        let q = self.queues.entry(h.key).or_insert_with(|| Queue {
            pieces: BTreeMap::new(),
            expires: now + FRAGMENT_TIMEOUT,
            bytes: 0,
        });
        let overlaps = |p: &Piece| p.offset < h.offset + len && h.offset < p.offset + p.len;
        if let Some(p) = q.pieces.get(&h.offset) {
            if p.len == len && p.more == h.more {
                return Ok(q.pieces.len() as u16);
            }
        }
        // A last fragment must end the datagram; nothing may lie beyond it.
        let beyond_last = q.pieces.values().any(|p| {
            (!p.more && h.offset + len > p.offset + p.len)
                || (!h.more && p.offset + p.len > h.offset + len)
        });
        if q.pieces.values().any(overlaps) || beyond_last {
            self.discard(&h.key);
            return Err(DropReason::FragmentOverlap);
        }
        q.pieces.insert(
            h.offset,
            Piece {
                offset: h.offset,
                len,
                more: h.more,
                frame: frame[..h.end].to_vec(),
            },
        );
        q.bytes += h.end;
        self.bytes += h.end;
        Ok(q.pieces.len() as u16)
    }

    /// The fragments held for `key`, in offset order, taken out.
    pub fn take(&mut self, key: &FragKey) -> Vec<Vec<u8>> {
        match self.queues.remove(key) {
            Some(q) => {
                self.bytes -= q.bytes;
                q.pieces.into_values().map(|p| p.frame).collect()
            }
            None => Vec::new(),
        }
    }

    fn discard(&mut self, key: &FragKey) {
        if let Some(q) = self.queues.remove(key) {
            self.bytes -= q.bytes;
        }
    }

    /// Records how `key`'s first fragment was translated.
    pub fn follow(&mut self, now: Instant, key: FragKey, src: Ipv4Addr, dst: Ipv4Addr, v: Verdict) {
        let expires = now + FRAGMENT_TIMEOUT;
        self.follows.insert(
            key,
            Follow {
                src,
                dst,
                verdict: v,
                expires,
            },
        );
    }

    /// The rewrite `key`'s first fragment left, if it has not expired.
    pub fn followed(&self, now: Instant, key: &FragKey) -> Option<Follow> {
        self.follows.get(key).filter(|f| f.expires > now).copied()
    }

    pub fn release(&mut self, r: Released) {
        self.released.push_back(r);
    }

    pub fn take_released(&mut self) -> Option<Released> {
        self.released.pop_front()
    }

    /// The earliest expiry of anything held.
    pub fn next_deadline(&self) -> Option<Instant> {
        let q = self.queues.values().map(|q| q.expires);
        let f = self.follows.values().map(|f| f.expires);
        q.chain(f).min()
    }

    /// Forgets everything expired at `now`; returns how many queues of
    /// fragments were discarded unfinished.
    pub fn expire(&mut self, now: Instant) -> usize {
        self.follows.retain(|_, f| f.expires > now);
        let before = self.queues.len();
        let mut freed = 0;
        self.queues.retain(|_, q| {
            let keep = q.expires > now;
            if !keep {
                freed += q.bytes;
            }
            keep
        });
        self.bytes -= freed;
        before - self.queues.len()
    }
}

/// Whether the pieces cover the datagram from 0 to a last fragment.
fn complete(q: &Queue) -> bool {
    let mut next = 0;
    for p in q.pieces.values() {
        if p.offset != next {
            return false;
        }
        next = p.offset + p.len;
        if !p.more {
            return true;
        }
    }
    false
}

/// Joins a complete queue: the first fragment's Ethernet and IP header
/// with every fragment's data, More Fragments cleared, length and header
/// checksum set (RFC 791 §3.2, "reassembly").
fn join(q: Queue) -> Added {
    let fragments = q.pieces.len() as u16;
    let mut pieces = q.pieces.into_values();
    let first = pieces.next().expect("a complete queue has a first piece");
    let h = FragHeader::read(&first.frame, IfaceId(0)).expect("held frames were read before");
    let mut max_size = h.end - h.l3;
    let mut frame = first.frame;
    for p in pieces {
        let ph = FragHeader::read(&p.frame, IfaceId(0)).expect("held frames were read before");
        max_size = max_size.max(ph.end - ph.l3);
        frame.extend_from_slice(&p.frame[ph.l3 + ph.hlen..ph.end]);
    }
    let total = (frame.len() - h.l3) as u16;
    let ip = &mut frame[h.l3..h.l3 + h.hlen];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    // Keep the reserved and DF bits; clear MF and the offset.
    ip[6] &= 0xc0;
    ip[7] = 0;
    ip[10..12].copy_from_slice(&[0, 0]);
    let c = crate::checksum::checksum(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    Added::Complete {
        frame,
        fragments,
        max_size: max_size as u16,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet frame holding one IPv4 fragment of `data` bytes.
    pub(crate) fn fragment(id: u16, offset: usize, more: bool, data: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let total = (20 + data.len()) as u16;
        let flags = ((offset / 8) as u16) | if more { 0x2000 } else { 0 };
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 2, 203, 0, 113, 9,
        ];
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip[4..6].copy_from_slice(&id.to_be_bytes());
        ip[6..8].copy_from_slice(&flags.to_be_bytes());
        let c = crate::checksum::checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(data);
        f
    }

    fn add(fr: &mut Fragments, f: &[u8], at: u64) -> Result<Added, DropReason> {
        let h = FragHeader::read(f, IfaceId(0)).unwrap();
        fr.collect(Instant::from_micros(at), &h, f)
    }

    #[test]
    fn out_of_order_pieces_join_with_a_valid_header() {
        let data: Vec<u8> = (0..40u8).collect();
        let mut fr = Fragments::default();
        assert!(matches!(
            add(&mut fr, &fragment(7, 16, true, &data[16..32]), 0),
            Ok(Added::Held { held: 1 })
        ));
        assert!(matches!(
            add(&mut fr, &fragment(7, 32, false, &data[32..]), 0),
            Ok(Added::Held { held: 2 })
        ));
        let Ok(Added::Complete {
            frame,
            fragments,
            max_size,
        }) = add(&mut fr, &fragment(7, 0, true, &data[..16]), 0)
        else {
            panic!("not complete");
        };
        assert_eq!((fragments, max_size), (3, 36));
        assert_eq!(&frame[34..], &data[..]);
        assert_eq!(u16::from_be_bytes([frame[16], frame[17]]), 60);
        assert_eq!(frame[20] & 0x3f, 0);
        assert_eq!(crate::checksum::checksum(&frame[14..34]), 0);
        assert_eq!(fr.bytes, 0);
    }

    #[test]
    fn an_overlap_discards_the_datagram_and_a_duplicate_does_not() {
        let data = [0u8; 32];
        let mut fr = Fragments::default();
        add(&mut fr, &fragment(1, 0, true, &data[..16]), 0).unwrap();
        assert!(matches!(
            add(&mut fr, &fragment(1, 0, true, &data[..16]), 0),
            Ok(Added::Held { held: 1 })
        ));
        assert_eq!(
            add(&mut fr, &fragment(1, 8, false, &data[..16]), 0).unwrap_err(),
            DropReason::FragmentOverlap
        );
        assert_eq!(fr.bytes, 0);
        assert!(fr.queues.is_empty());
    }

    #[test]
    fn datagrams_past_65535_bytes_are_refused() {
        let mut fr = Fragments::default();
        assert_eq!(
            add(&mut fr, &fragment(2, 65528, false, &[0; 16]), 0).unwrap_err(),
            DropReason::FragmentTooBig
        );
    }

    #[test]
    fn unfinished_datagrams_expire_after_the_timeout() {
        let mut fr = Fragments::default();
        add(&mut fr, &fragment(3, 8, false, &[0; 8]), 0).unwrap();
        assert_eq!(fr.next_deadline(), Some(Instant::from_micros(30_000_000)));
        assert_eq!(fr.expire(Instant::from_micros(29_999_999)), 0);
        assert_eq!(fr.expire(Instant::from_micros(30_000_000)), 1);
        assert_eq!((fr.bytes, fr.next_deadline()), (0, None));
    }

    #[test]
    fn held_memory_is_bounded() {
        let mut fr = Fragments::default();
        let big = vec![0u8; 1400];
        let mut refused = None;
        for id in 0..4000u16 {
            if let Err(e) = add(&mut fr, &fragment(id, 8, true, &big), 0) {
                refused = Some((id, e));
                break;
            }
        }
        let (id, e) = refused.expect("memory never ran out");
        assert_eq!(e, DropReason::FragmentMemory);
        assert!(fr.bytes <= FRAGMENT_MEMORY && usize::from(id) * 1434 <= FRAGMENT_MEMORY);
    }
}
