//! A hierarchical timing wheel (Varghese and Lauck, "Hashed and
//! Hierarchical Timing Wheels", 1987; the layout of tokio's time driver)
//! over microsecond deadlines: eight levels of 64 slots, level `l`
//! spanning 64^(l+1) µs, so 48 bits (~8.9 years) ahead of the present.
//!
//! An entry sits at the level of the highest 6-bit group in which its
//! deadline differs from `elapsed`, so every occupied slot lies strictly
//! after the present and the lowest occupied level holds the earliest
//! slot. Insertion is a push; finding the next slot is a bit scan per
//! level; a slot that comes due hands its entries back to the caller,
//! which either delivers them or re-inserts them nearer (cascading).
//! Each entry is touched at most once per level, so expiry is O(1)
//! amortised and independent of how many timers are pending.
//!
//! Deletion is lazy: the wheel never looks inside entries; the table
//! decides from the record whether an entry is stale.

const LEVELS: usize = 8;
const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;
/// The low bits of a deadline the levels cover; one further ahead waits
/// in the top level and is re-inserted when its slot comes due.
const HORIZON: u64 = (1 << (SLOT_BITS as usize * LEVELS)) - 1;

/// One pending deadline of connection slot `idx`, generation `gen`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub when: u64,
    pub idx: u32,
    pub gen: u32,
}

#[derive(Clone, Debug)]
pub(crate) struct Wheel {
    /// Every deadline up to here has been handed out.
    elapsed: u64,
    /// `SLOTS` slots per level; a level's slots are allocated when it is
    /// first used, so a small table does not pay for levels it never
    /// reaches (eight eager levels were 12 KiB, 12 bytes a session at 1k).
    levels: [Vec<Vec<Entry>>; LEVELS],
    /// Bit `s` of `occupied[l]`: slot `s` of level `l` is non-empty.
    occupied: [u64; LEVELS],
    /// Entries inserted at or before `elapsed` (time given out of order):
    /// due at the next advance.
    due: Vec<Entry>,
    len: usize,
}

impl Default for Wheel {
    fn default() -> Self {
        Wheel {
            elapsed: 0,
            levels: Default::default(),
            occupied: [0; LEVELS],
            due: Vec::new(),
            len: 0,
        }
    }
}

impl Wheel {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn insert(&mut self, e: Entry) {
        self.len += 1;
        // Beyond the horizon: the last instant of the present's window,
        // so the entry stays within the top level.
        let at = e.when.min(self.elapsed | HORIZON);
        if at <= self.elapsed {
            // Past (time given out of order), or the present is the
            // window's last instant: handed out at the next advance.
            self.due.push(e);
            return;
        }
        let level = level_of(self.elapsed, at);
        let slot = slot_of(at, level);
        self.occupied[level] |= 1 << slot;
        let slots = &mut self.levels[level];
        if slots.is_empty() {
            slots.resize_with(SLOTS, Vec::new);
        }
        slots[slot].push(e);
    }

    /// The earliest slot's start: never later than any entry's deadline.
    pub fn next_deadline(&self) -> Option<u64> {
        let due = self.due.iter().map(|e| e.when.min(self.elapsed)).min();
        due.into_iter()
            .chain(self.next_slot().map(|(_, _, d)| d))
            .min()
    }

    /// (level, slot, start) of the earliest non-empty slot.
    fn next_slot(&self) -> Option<(usize, usize, u64)> {
        for level in 0..LEVELS {
            let bits = self.occupied[level];
            if bits != 0 {
                // Occupied slots all lie after the present (module docs).
                let slot = bits.trailing_zeros() as usize;
                let span_bits = SLOT_BITS * (level as u32 + 1);
                let base = if span_bits >= 64 {
                    0
                } else {
                    self.elapsed & !((1u64 << span_bits) - 1)
                };
                let start = base | ((slot as u64) << (SLOT_BITS * level as u32));
                return Some((level, slot, start));
            }
        }
        None
    }

    /// Moves the present to `now`, handing every entry of every slot that
    /// starts by then to `visit`, earliest slot first. `visit` returns the
    /// deadline to re-insert the entry at (still pending, later than
    /// `now`), or `None` to let it go. Entries due by `now` are handed out
    /// whatever their slot.
    pub fn advance(&mut self, now: u64, mut visit: impl FnMut(Entry) -> Option<u64>) {
        // Re-inserted after the scan, so an entry still pending (time
        // given out of order) is not handed out twice in one advance.
        let mut later = Vec::new();
        for e in core::mem::take(&mut self.due) {
            self.len -= 1;
            if let Some(when) = visit(e) {
                later.push(Entry { when, ..e });
            }
        }
        while let Some((level, slot, start)) = self.next_slot() {
            if start > now {
                break;
            }
            self.elapsed = self.elapsed.max(start);
            self.occupied[level] &= !(1 << slot);
            let mut entries = core::mem::take(&mut self.levels[level][slot]);
            self.len -= entries.len();
            for e in entries.drain(..) {
                if let Some(when) = visit(e) {
                    let e = Entry { when, ..e };
                    if when > now {
                        // Lands in a later slot, or a lower level of
                        // this one (its start is `start` or after).
                        self.insert(e);
                    } else {
                        later.push(e);
                    }
                }
            }
            // Give the buffer back so slots keep their capacity.
            self.levels[level][slot] = entries;
        }
        self.elapsed = self.elapsed.max(now);
        for e in later {
            self.insert(e);
        }
    }

    /// Drops every entry `keep` rejects (stale entries of removed
    /// records), keeping the wheel proportional to the live records.
    pub fn retain(&mut self, mut keep: impl FnMut(&Entry) -> bool) {
        let mut len = 0;
        for (level, slots) in self.levels.iter_mut().enumerate() {
            for (slot, s) in slots.iter_mut().enumerate() {
                s.retain(&mut keep);
                if s.is_empty() {
                    self.occupied[level] &= !(1 << slot);
                    s.shrink_to_fit();
                }
                len += s.len();
            }
        }
        self.due.retain(&mut keep);
        self.len = len + self.due.len();
    }

    pub fn heap_bytes(&self) -> usize {
        let entry = core::mem::size_of::<Entry>();
        let headers = core::mem::size_of::<Vec<Entry>>();
        let levels = self.levels.iter().map(|slots| {
            slots.capacity() * headers + slots.iter().map(|s| s.capacity() * entry).sum::<usize>()
        });
        levels.sum::<usize>() + self.due.capacity() * entry
    }
}

/// The level at which deadline `when` (> `elapsed`) is placed.
#[inline]
fn level_of(elapsed: u64, when: u64) -> usize {
    let differing = 63 - ((elapsed ^ when) | (SLOTS as u64 - 1)).leading_zeros();
    (differing / SLOT_BITS) as usize
}

#[inline]
fn slot_of(when: u64, level: usize) -> usize {
    ((when >> (SLOT_BITS * level as u32)) as usize) & (SLOTS - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn e(when: u64, idx: u32) -> Entry {
        Entry { when, idx, gen: 0 }
    }

    #[test]
    fn levels_split_the_deadline_in_six_bit_groups() {
        assert_eq!(level_of(0, 1), 0);
        assert_eq!(level_of(0, 63), 0);
        assert_eq!(level_of(0, 64), 1);
        assert_eq!(level_of(0, 4095), 1);
        assert_eq!(level_of(0, 4096), 2);
        assert_eq!(level_of(100, 127), 0);
        assert_eq!(level_of(0, HORIZON), LEVELS - 1);
    }

    #[test]
    fn a_deadline_is_handed_out_at_its_time_not_before() {
        let mut w = Wheel::default();
        w.insert(e(30_000_000, 1));
        assert!(w.next_deadline().unwrap() <= 30_000_000);
        let mut got = Vec::new();
        // Slot starts come due early; the visitor re-inserts until due.
        let mut visit = |x: Entry, now: u64| {
            if x.when <= now {
                got.push((now, x.idx));
                None
            } else {
                Some(x.when)
            }
        };
        while let Some(d) = w.next_deadline() {
            assert!(d <= 30_000_000, "deadline {d} is late");
            w.advance(d, |x| visit(x, d));
        }
        assert_eq!(got, vec![(30_000_000, 1)]);
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn deadlines_beyond_the_horizon_wait_in_the_top_level() {
        let mut w = Wheel::default();
        w.insert(e(u64::MAX, 7));
        let d = w.next_deadline().unwrap();
        assert!(d <= HORIZON);
        let mut seen = 0;
        w.advance(d, |x| {
            seen += 1;
            Some(x.when)
        });
        assert_eq!((seen, w.len()), (1, 1));
        assert!(w.next_deadline().unwrap() > d);
    }

    proptest! {
        /// Against a model: every entry is handed out by the first advance
        /// at or after its deadline, never by an earlier one, and
        /// `next_deadline` is never later than the earliest pending one.
        #[test]
        fn agrees_with_a_sorted_model(
            ops in proptest::collection::vec((0u64..3, 0u64..200_000_000), 1..300)
        ) {
            let mut w = Wheel::default();
            let mut model: BTreeMap<(u64, u32), ()> = BTreeMap::new();
            let mut now = 0u64;
            for (i, (op, x)) in ops.into_iter().enumerate() {
                if op == 0 {
                    now += x % 40_000_000;
                    let mut out = Vec::new();
                    w.advance(now, |en| {
                        if en.when <= now { out.push((en.when, en.idx)); None } else { Some(en.when) }
                    });
                    out.sort();
                    let want: Vec<(u64, u32)> = model.range(..(now + 1, 0)).map(|(k, _)| *k).collect();
                    for k in &want { model.remove(k); }
                    prop_assert_eq!(out, want);
                } else {
                    let when = now + 1 + x;
                    w.insert(e(when, i as u32));
                    model.insert((when, i as u32), ());
                }
                prop_assert_eq!(w.len(), model.len());
                if let Some(((first, _), _)) = model.iter().next() {
                    let d = w.next_deadline().unwrap();
                    prop_assert!(d <= *first && d > now, "{} vs {} at {}", d, first, now);
                }
            }
        }
    }
}
