//! One direction of an inspected TCP stream: offsets, the edit log, and
//! the sequence-number mapping it implies (Linux nf_nat_seqadj, kept as a
//! log rather than the last correction only, so retransmissions of any
//! recent edited segment are rewritten identically).
//!
//! Offsets are positions in the *original* byte stream (offset 0 is the
//! byte after the SYN); the receiver sees the *rewritten* stream. An edit
//! replaces `old_len` original bytes at `off` with `new`.

use std::collections::VecDeque;

/// Most edits remembered per direction; older ones are folded into a
/// constant shift (a retransmission that old is not re-edited).
const MAX_EDITS: usize = 256;

/// One payload edit, in original stream offsets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Edit {
    pub off: u64,
    pub old_len: u32,
    pub new: Vec<u8>,
}

impl Edit {
    fn end(&self) -> u64 {
        self.off + u64::from(self.old_len)
    }
    fn shift(&self) -> i64 {
        self.new.len() as i64 - i64::from(self.old_len)
    }
}

/// An edit overlapping a segment boundary that cannot be applied to part
/// of the bytes (its length changes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Straddle;

#[derive(Clone, Debug, Default)]
pub(crate) struct Stream {
    /// Sequence number of offset 0; `None` until the first segment.
    isn: Option<u32>,
    /// First offset the helper has not parsed.
    pub next: u64,
    edits: VecDeque<Edit>,
    /// Shift of the edits folded out of the log, all ending by `folded_end`.
    folded_shift: i64,
    folded_end: u64,
}

impl Stream {
    /// Records the stream start: the SYN's sequence number + 1, or the
    /// first segment's own when the connection was picked up mid-stream.
    pub fn start(&mut self, seq: u32, syn: bool) {
        if self.isn.is_none() {
            self.isn = Some(if syn { seq.wrapping_add(1) } else { seq });
        }
    }

    pub fn started(&self) -> bool {
        self.isn.is_some()
    }

    /// Original offset of `seq`, unwrapped around `next` (streams of any
    /// length; a sequence number more than 2 GiB away is meaningless).
    pub fn offset_of(&self, seq: u32) -> i64 {
        let isn = self.isn.unwrap_or(seq);
        let here = isn.wrapping_add(self.next as u32);
        self.next as i64 + i64::from(seq.wrapping_sub(here) as i32)
    }

    /// Total shift of the edits that end at or before `off`.
    fn shift_before(&self, off: u64) -> i64 {
        let mut d = if off >= self.folded_end {
            self.folded_shift
        } else {
            0
        };
        for e in &self.edits {
            if e.end() <= off {
                d += e.shift();
            } else {
                break;
            }
        }
        d
    }

    /// The rewritten sequence number of the byte at original offset `off`.
    pub fn map_seq(&self, off: i64) -> u32 {
        let isn = self.isn.unwrap_or(0);
        let shift = if off >= 0 {
            self.shift_before(off as u64)
        } else {
            0
        };
        isn.wrapping_add((off + shift) as u32)
    }

    /// Maps a sequence number the peer acknowledges (rewritten space) back
    /// to the original. An ACK inside replaced text acknowledges none of it.
    pub fn unmap_ack(&self, ack: u32) -> u32 {
        let Some(isn) = self.isn else { return ack };
        let total = self.folded_shift + self.edits.iter().map(Edit::shift).sum::<i64>();
        let reference = self.next as i64 + total;
        let y = reference + i64::from(ack.wrapping_sub(isn.wrapping_add(reference as u32)) as i32);
        let mut d = self.folded_shift;
        for e in &self.edits {
            let start = e.off as i64 + d;
            if y <= start {
                break;
            }
            if y < start + e.new.len() as i64 {
                return isn.wrapping_add(e.off as u32);
            }
            d += e.shift();
        }
        isn.wrapping_add((y - d) as u32)
    }

    /// Adds edits found in newly parsed bytes (offsets ascending, after
    /// every logged edit).
    pub fn log(&mut self, edits: impl IntoIterator<Item = Edit>) {
        for e in edits {
            self.edits.push_back(e);
            if self.edits.len() > MAX_EDITS {
                if let Some(old) = self.edits.pop_front() {
                    self.folded_shift += old.shift();
                    self.folded_end = old.end();
                }
            }
        }
    }

    /// Whether any edit touches original range `[from, to)`.
    pub fn touches(&self, from: u64, to: u64) -> bool {
        self.edits.iter().any(|e| e.off < to && e.end() > from)
    }

    /// Rewrites `payload`, which holds original bytes `[off, off+len)`,
    /// applying every logged edit inside it.
    pub fn apply(&self, off: u64, payload: &[u8]) -> Result<Vec<u8>, Straddle> {
        let end = off + payload.len() as u64;
        let mut out = Vec::with_capacity(payload.len() + 16);
        let mut at = off;
        for e in self.edits.iter().filter(|e| e.off < end && e.end() > off) {
            let inside = e.off >= off && e.end() <= end;
            if !inside && e.new.len() != e.old_len as usize {
                return Err(Straddle);
            }
            let from = e.off.max(off);
            out.extend_from_slice(&payload[(at - off) as usize..(from - off) as usize]);
            if inside {
                out.extend_from_slice(&e.new);
            } else {
                // Same length: copy the part of the replacement in range.
                let lo = (from - e.off) as usize;
                let hi = (e.end().min(end) - e.off) as usize;
                out.extend_from_slice(&e.new[lo..hi]);
            }
            at = e.end().min(end);
        }
        out.extend_from_slice(&payload[(at - off) as usize..]);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream_with(edits: Vec<Edit>) -> Stream {
        let mut s = Stream::default();
        s.start(999, true);
        s.next = 100;
        s.log(edits);
        s
    }

    #[test]
    fn growing_edit_shifts_later_sequence_numbers_only() {
        let s = stream_with(vec![Edit {
            off: 10,
            old_len: 4,
            new: b"abcdefg".to_vec(),
        }]);
        assert_eq!(s.map_seq(0), 1000);
        assert_eq!(s.map_seq(10), 1010);
        assert_eq!(s.map_seq(14), 1017);
        assert_eq!(s.map_seq(50), 1053);
    }

    #[test]
    fn acks_map_back_and_never_acknowledge_half_a_replacement() {
        let s = stream_with(vec![Edit {
            off: 10,
            old_len: 4,
            new: b"abcdefg".to_vec(),
        }]);
        assert_eq!(s.unmap_ack(1010), 1010);
        assert_eq!(s.unmap_ack(1012), 1010);
        assert_eq!(s.unmap_ack(1017), 1014);
        assert_eq!(s.unmap_ack(1103), 1100);
    }

    #[test]
    fn retransmission_is_rewritten_identically() {
        let s = stream_with(vec![Edit {
            off: 2,
            old_len: 2,
            new: b"XYZ".to_vec(),
        }]);
        assert_eq!(s.apply(0, b"abcdef").unwrap(), b"abXYZef");
        assert_eq!(s.apply(4, b"ef").unwrap(), b"ef");
        assert_eq!(s.apply(3, b"def"), Err(Straddle));
    }

    #[test]
    fn same_length_edit_applies_to_part_of_it() {
        let s = stream_with(vec![Edit {
            off: 2,
            old_len: 4,
            new: b"WXYZ".to_vec(),
        }]);
        assert_eq!(s.apply(0, b"abcd").unwrap(), b"abWX");
        assert_eq!(s.apply(4, b"efgh").unwrap(), b"YZgh");
    }

    #[test]
    fn offsets_unwrap_across_sequence_wraparound() {
        let mut s = Stream::default();
        s.start(u32::MAX - 5, false);
        s.next = 10;
        assert_eq!(s.offset_of(4), 10);
        assert_eq!(s.offset_of(u32::MAX), 5);
    }
}
