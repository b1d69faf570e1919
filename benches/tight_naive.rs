//! The baseline: the NAT anyone would write in an afternoon. A hash map
//! with an Fx-style multiplicative hasher (rustc's FxHasher), keyed by the
//! 5-tuple, holding the new source; the packet is parsed straight off the
//! bytes, rewritten in place, and both checksums are updated incrementally
//! (RFC 1624 eqn. 3). It handles what the benchmark sends (untagged IPv4,
//! IHL 5, UDP) and refuses the rest.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

#[derive(Default, Clone, Copy)]
pub struct Fx(u64);

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// (source and destination address, source and destination port, protocol).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key(u64, u64);

#[derive(Default)]
pub struct TightNaive {
    /// 5-tuple → (new source address, new source port).
    map: HashMap<Key, (u32, u16), BuildHasherDefault<Fx>>,
}

#[inline]
fn key(f: &[u8]) -> Key {
    let addrs = u64::from_be_bytes(f[26..34].try_into().unwrap());
    let ports = u32::from_be_bytes(f[34..38].try_into().unwrap());
    Key(addrs, (u64::from(ports) << 8) | u64::from(f[23]))
}

/// ~HC + ~m + m' for the words of `old`/`new`, folded (RFC 1624 eqn. 3).
#[inline]
fn adjust(hc: u16, acc: u64) -> u16 {
    let mut s = u64::from(!hc) + acc;
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    !(((s & 0xffff) + (s >> 16)) as u16)
}

impl TightNaive {
    pub fn insert(&mut self, frame: &[u8], addr: u32, port: u16) {
        self.map.insert(key(frame), (addr, port));
    }

    /// Translates one outbound frame in place; false if it is not ours.
    #[inline]
    pub fn process(&self, f: &mut [u8]) -> bool {
        if f.len() < 42 || f[12..14] != [8, 0] || f[14] != 0x45 || f[23] != 17 {
            return false;
        }
        let Some(&(na, np)) = self.map.get(&key(f)) else {
            return false;
        };
        let oa = u32::from_be_bytes(f[26..30].try_into().unwrap());
        let op = u16::from_be_bytes([f[34], f[35]]);
        let d_addr = u64::from(!(oa >> 16) & 0xffff)
            + u64::from(!oa & 0xffff)
            + u64::from(na >> 16)
            + u64::from(na & 0xffff);
        f[26..30].copy_from_slice(&na.to_be_bytes());
        f[34..36].copy_from_slice(&np.to_be_bytes());
        let ip = adjust(u16::from_be_bytes([f[24], f[25]]), d_addr);
        f[24..26].copy_from_slice(&ip.to_be_bytes());
        let uc = u16::from_be_bytes([f[40], f[41]]);
        if uc != 0 {
            let d = d_addr + u64::from(!op) + u64::from(np);
            let c = match adjust(uc, d) {
                0 => 0xffff,
                c => c,
            };
            f[40..42].copy_from_slice(&c.to_be_bytes());
        }
        true
    }
}
