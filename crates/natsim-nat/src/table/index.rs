//! The tuple index: which connection (and direction) a 5-tuple belongs to.
//!
//! Open addressing over 64-byte buckets, each one cache line holding ten
//! (16-bit tag, slot|dir) pairs and an overflow count, as in folly's F14
//! and the cuckoo-free tables of DPDK: a lookup reads one bucket, compares
//! tags, and reads the connection record only on a tag match, so a hit
//! usually costs two cache lines (bucket, record) and a miss one. A full
//! bucket spills into the next; its overflow count says how many entries
//! homed there live further on, so a lookup stops at the first bucket
//! whose count is zero and removal needs no tombstones.
//!
//! The index keeps no keys: the caller supplies the hash and a closure
//! that tells whether an entry's record holds the tuple.

const WAYS: usize = 10;
/// Grow when the index holds more than this many entries per bucket
/// (70% of the ways).
const MAX_LOAD: usize = 7;

#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Bucket {
    /// 0 marks a free way; tags of live entries are never 0.
    tags: [u16; WAYS],
    vals: [u32; WAYS],
    /// Entries whose home is this bucket but which live in a later one.
    overflow: u32,
}

const EMPTY: Bucket = Bucket {
    tags: [0; WAYS],
    vals: [0; WAYS],
    overflow: 0,
};

impl Bucket {
    /// Ways whose tag is `tag`, as a bit mask.
    #[inline]
    fn matches(&self, tag: u16) -> u32 {
        let mut m = 0;
        for (i, &t) in self.tags.iter().enumerate() {
            m |= u32::from(t == tag) << i;
        }
        m
    }
}

#[derive(Clone, Debug)]
pub(crate) struct TupleIndex {
    buckets: Vec<Bucket>,
    len: usize,
}

/// `n` empty buckets, advised onto huge pages before their first touch
/// (a page the kernel already backed with 4 KiB stays so).
fn empty_buckets(n: usize) -> Vec<Bucket> {
    let mut v = Vec::with_capacity(n);
    super::hint::huge_pages(&v);
    v.resize(n, EMPTY);
    v
}

#[inline]
fn tag_of(h: u64) -> u16 {
    ((h >> 48) as u16).max(1)
}

impl TupleIndex {
    pub fn with_capacity(entries: usize) -> TupleIndex {
        TupleIndex {
            buckets: empty_buckets(entries.div_ceil(MAX_LOAD).max(1)),
            len: 0,
        }
    }

    /// The home bucket of hash `h` (Lemire's multiply-shift range map, so
    /// the bucket count need not be a power of two).
    #[inline]
    fn home(&self, h: u64) -> usize {
        ((u64::from(h as u32) * self.buckets.len() as u64) >> 32) as usize
    }

    #[inline]
    fn next(&self, b: usize) -> usize {
        if b + 1 == self.buckets.len() {
            0
        } else {
            b + 1
        }
    }

    /// Asks the CPU to load the home bucket of `h`.
    #[inline]
    pub fn prefetch(&self, h: u64) {
        super::hint::prefetch(&self.buckets[self.home(h)]);
    }

    /// The first entry of the home bucket whose tag matches `h`, without
    /// checking its key (for prefetching its record).
    #[inline]
    pub fn candidate(&self, h: u64) -> Option<u32> {
        let b = &self.buckets[self.home(h)];
        let m = b.matches(tag_of(h));
        (m != 0).then(|| b.vals[m.trailing_zeros() as usize])
    }

    /// The entry with hash `h` for which `is` holds.
    #[inline]
    pub fn find(&self, h: u64, mut is: impl FnMut(u32) -> bool) -> Option<u32> {
        let tag = tag_of(h);
        let mut b = self.home(h);
        loop {
            let bucket = &self.buckets[b];
            let mut m = bucket.matches(tag);
            while m != 0 {
                let v = bucket.vals[m.trailing_zeros() as usize];
                if is(v) {
                    return Some(v);
                }
                m &= m - 1;
            }
            if bucket.overflow == 0 {
                return None;
            }
            b = self.next(b);
        }
    }

    /// Adds an entry (the caller knows it is not present). `hash_of`
    /// re-hashes existing entries when the index grows.
    pub fn insert(&mut self, h: u64, v: u32, hash_of: impl Fn(u32) -> u64) {
        if self.len + 1 > self.buckets.len() * MAX_LOAD {
            self.grow(&hash_of);
        }
        self.place(h, v);
        self.len += 1;
    }

    fn place(&mut self, h: u64, v: u32) {
        let tag = tag_of(h);
        let home = self.home(h);
        let mut b = home;
        loop {
            let bucket = &mut self.buckets[b];
            if let Some(w) = bucket.tags.iter().position(|&t| t == 0) {
                bucket.tags[w] = tag;
                bucket.vals[w] = v;
                break;
            }
            bucket.overflow += 1;
            b = self.next(b);
        }
    }

    fn grow(&mut self, hash_of: &impl Fn(u32) -> u64) {
        let n = self.buckets.len() * 2;
        let old = core::mem::replace(&mut self.buckets, empty_buckets(n));
        for bucket in &old {
            for w in 0..WAYS {
                if bucket.tags[w] != 0 {
                    let v = bucket.vals[w];
                    self.place(hash_of(v), v);
                }
            }
        }
    }

    /// Removes entry `v` with hash `h`, if present.
    pub fn remove(&mut self, h: u64, v: u32) -> bool {
        let tag = tag_of(h);
        let home = self.home(h);
        let mut b = home;
        loop {
            let bucket = &self.buckets[b];
            let found = (0..WAYS).find(|&w| bucket.tags[w] == tag && bucket.vals[w] == v);
            if let Some(w) = found {
                self.buckets[b].tags[w] = 0;
                // Entries homed at `home` that passed the buckets before
                // this one no longer do.
                let mut p = home;
                while p != b {
                    self.buckets[p].overflow -= 1;
                    p = self.next(p);
                }
                self.len -= 1;
                return true;
            }
            if bucket.overflow == 0 {
                return false;
            }
            b = self.next(b);
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.buckets.capacity() * core::mem::size_of::<Bucket>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A deliberately bad hash: few distinct homes, so spills, chains
    /// across the end of the table and removal inside chains all happen.
    fn h(v: u32) -> u64 {
        (u64::from(v % 7) << 48) | (u64::from(v % 5) * 0x3333_3333)
    }

    #[test]
    fn bucket_is_one_cache_line() {
        assert_eq!(core::mem::size_of::<Bucket>(), 64);
    }

    #[test]
    fn agrees_with_a_map_through_inserts_removes_and_growth() {
        let mut ix = TupleIndex::with_capacity(8);
        let mut model = BTreeMap::new();
        let mut x: u64 = 12345;
        for step in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = (x % 600) as u32;
            if model.remove(&v).is_some() {
                assert!(ix.remove(h(v), v));
            } else {
                ix.insert(h(v), v, h);
                model.insert(v, step);
            }
            let probe = (x >> 20) as u32 % 600;
            assert_eq!(
                ix.find(h(probe), |e| e == probe).is_some(),
                model.contains_key(&probe),
                "step {step}, value {probe}"
            );
        }
        assert_eq!(ix.len, model.len());
        for v in model.keys() {
            assert_eq!(ix.find(h(*v), |e| e == *v), Some(*v));
        }
    }
}
