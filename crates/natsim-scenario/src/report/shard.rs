//! `--shard K/N`: a deterministic share of a suite for one CI job.
//!
//! A case belongs to shard `fnv1a64(name) * N / 2^64 + 1`, where `name` is its
//! stable `path::variant`. The hash is FNV-1a (64-bit, offset basis and
//! prime from the FNV reference, draft-eastlake-fnv), not std's
//! `RandomState`, which is seeded per process: every job of a matrix must
//! agree. A case's shard depends on its own name only, so adding a file
//! never moves the others between jobs.

use std::fmt;
use std::str::FromStr;

/// FNV-1a, 64 bits.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME))
}

/// Shard `index` of `count`, 1-based as CI systems number jobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// Whether the case named `name` (`path::variant`) is this shard's.
    pub fn owns(&self, name: &str) -> bool {
        // The high bits (Lemire's multiply-shift range reduction): FNV's
        // low bits mix the last bytes poorly, and names differ at the end.
        let h = u128::from(fnv1a64(name.as_bytes()));
        ((h * u128::from(self.count)) >> 64) as u32 == self.index - 1
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("`{s}` is not K/N with 1 <= K <= N (e.g. 2/4)");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u32 = k.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || count == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Test vectors from the FNV reference code's test suite
    /// (draft-eastlake-fnv, FNV-1a 64-bit).
    #[test]
    fn fnv1a64_matches_the_reference_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn every_name_is_in_exactly_one_shard() {
        for n in 1..=7u32 {
            for k in 0..200 {
                let name = format!("dir/file{k}.toml::variant-{}", k * 7);
                let owners = (1..=n)
                    .filter(|&i| Shard { index: i, count: n }.owns(&name))
                    .count();
                assert_eq!(owners, 1, "{name} in {owners} of {n} shards");
            }
        }
    }

    #[test]
    fn parses_k_of_n_and_refuses_the_rest() {
        assert_eq!("2/4".parse(), Ok(Shard { index: 2, count: 4 }));
        for bad in ["0/4", "5/4", "1/0", "2", "a/b", "-1/4", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
