//! The connection table: a slab of [`Conn`]s and the indexes over it.
//!
//! * `by_tuple` finds a connection from either direction's tuple.
//! * `by_internal` finds a live mapping from its internal endpoint (and,
//!   for address- or port-dependent mapping, the remote), so new
//!   connections reuse it (RFC 4787 §4.1).
//! * `by_external` finds a mapping from its external endpoint, for
//!   filtering decisions and to keep external endpoints unique.
//! * `by_remote_addr` (address-dependent filtering only) answers "has this
//!   mapping sent to address Z?".
//!
//! `by_tuple` is the bucketized, tagged [`index::TupleIndex`] (one cache
//! line per probe, built for the per-packet lookup); the mapping indexes
//! are `hashbrown::HashTable<u32>`. All hold only slab indexes; the keys
//! are read back from the slab. A mapping is not a separate object: it is the set of live
//! connections that share an (internal, external) pair, so it ends when the
//! last of them does. Expiry uses a hierarchical timing wheel of (deadline,
//! slot, generation) with lazy deletion ([`wheel`]): refreshing a
//! connection only writes its deadline, and expiry costs O(1) per
//! connection however many are pending. Hashing is seeded (foldhash) so the table is deterministic and
//! not predictable from outside.

use crate::config::MappingBehaviour;
use crate::flow::{Endpoint, Flow, Proto};
use crate::trace::{ConnId, TcpState};
use core::hash::BuildHasher;
use foldhash::fast::FixedState;
use hashbrown::HashTable;
use index::TupleIndex;
use std::collections::VecDeque;
use wheel::{Entry, Wheel};

mod hint;
mod index;
mod wheel;

/// A connection's flags (one byte in the slab).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ConnFlags(u8);

impl ConnFlags {
    pub const EMPTY: ConnFlags = ConnFlags(0);
    /// Slot holds a live connection.
    pub const LIVE: ConnFlags = ConnFlags(1);
    /// Created by a packet from inside (outbound origin).
    pub const OUTBOUND: ConnFlags = ConnFlags(2);
    /// A packet in the reply direction has been seen.
    pub const REPLIED: ConnFlags = ConnFlags(4);
    /// Holds a mapping (source NAT or filter-admitted inbound).
    pub const MAPPED: ConnFlags = ConnFlags(8);
    /// The mapping was admitted inbound by filtering (internal side is the
    /// reply's source).
    pub const ADMITTED: ConnFlags = ConnFlags(16);
    /// Indexed in `by_remote_addr`.
    pub const REMOTE_INDEXED: ConnFlags = ConnFlags(32);
    /// Indexed in `by_external`.
    pub const EXT_INDEXED: ConnFlags = ConnFlags(64);
    /// An application-level gateway inspects it.
    pub const ALG: ConnFlags = ConnFlags(128);

    /// Whether every flag of `f` is set.
    pub const fn has(self, f: ConnFlags) -> bool {
        self.0 & f.0 == f.0
    }
}

impl core::ops::BitOr for ConnFlags {
    type Output = ConnFlags;
    fn bitor(self, o: ConnFlags) -> ConnFlags {
        ConnFlags(self.0 | o.0)
    }
}

impl core::ops::BitOrAssign for ConnFlags {
    fn bitor_assign(&mut self, o: ConnFlags) {
        self.0 |= o.0;
    }
}

/// One tracked connection: 64 bytes, aligned so a record is one cache
/// line (unaligned, most records straddled two).
#[derive(Clone, Copy, Debug)]
#[repr(align(64))]
pub(crate) struct Conn {
    /// When it expires unless refreshed.
    pub expires: u64,
    /// When it was created (UDP's stream rule needs its age).
    pub born: u64,
    /// Earliest deadline queued for it in the timing wheel.
    pub queued: u64,
    pub gen: u32,
    /// Tuple of the first packet, as received.
    pub orig: Flow,
    /// Tuple a reply is expected to carry, as received.
    pub reply: Flow,
    /// Rule that created the translation (u16::MAX: none).
    pub rule: u16,
    pub tcp: TcpState,
    pub flags: ConnFlags,
    /// How much of the remote the mapping key includes.
    pub map_mode: MappingBehaviour,
}

impl Conn {
    pub fn has(&self, f: ConnFlags) -> bool {
        self.flags.has(f)
    }
    /// (internal, external) endpoints of the conn's mapping.
    pub fn mapping(&self) -> (Endpoint, Endpoint) {
        if self.has(ConnFlags::ADMITTED) {
            (self.reply.src, self.orig.dst)
        } else {
            (self.orig.src, self.reply.dst)
        }
    }
    /// Embryonic: no reply yet, or a TCP connection that never reached
    /// ESTABLISHED or already closed. A spoofed SYN flood against a
    /// forwarded port leaves exactly these behind: SYNs answered by a
    /// SYN-ACK nobody acknowledges, or by a RST (Linux's early_drop
    /// likewise takes only unassured entries).
    pub fn evictable(&self) -> bool {
        !self.flags.has(ConnFlags::REPLIED)
            || (self.orig.proto == Proto::Tcp
                && matches!(
                    self.tcp,
                    TcpState::SynSent | TcpState::SynRecv | TcpState::Close | TcpState::TimeWait
                ))
    }
    /// The remote endpoint of a mapped connection.
    pub fn remote(&self) -> Endpoint {
        if self.has(ConnFlags::ADMITTED) {
            self.orig.src
        } else {
            self.orig.dst
        }
    }
}

/// Whether wheel entry `e` is the one queued for the live record `c`.
fn is_current(c: &Conn, e: &Entry) -> bool {
    c.flags.has(ConnFlags::LIVE) && c.gen == e.gen && c.queued == e.when
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct FlowKey(u64, u64);

fn flow_key(f: &Flow) -> FlowKey {
    FlowKey(
        (u64::from(f.src.addr.to_bits()) << 32) | u64::from(f.dst.addr.to_bits()),
        (u64::from(f.src.port) << 32)
            | (u64::from(f.dst.port) << 16)
            | u64::from(f.proto.ip_number()),
    )
}

/// Key of a mapping seen from inside.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct InternalKey {
    pub proto: Proto,
    pub internal: Endpoint,
    pub remote: Endpoint,
    pub mode: MappingBehaviour,
}

/// Hashed as two packed words, as [`FlowKey`] is: the derived hash fed
/// the hasher field by field (addresses as length-prefixed byte slices),
/// which cost a new flow more than its probe.
impl core::hash::Hash for InternalKey {
    fn hash<H: core::hash::Hasher>(&self, h: &mut H) {
        h.write_u64(
            (u64::from(self.internal.addr.to_bits()) << 32) | u64::from(self.remote.addr.to_bits()),
        );
        h.write_u64(
            (u64::from(self.internal.port) << 32)
                | (u64::from(self.remote.port) << 16)
                | (u64::from(self.proto.ip_number()) << 8)
                | self.mode as u64,
        );
    }
}

/// The packed hash input of a mapping's external endpoint (and, for the
/// remote-address index, the remote's address).
fn external_key(proto: Proto, ext: Endpoint, remote: Option<std::net::Ipv4Addr>) -> FlowKey {
    FlowKey(
        (u64::from(ext.addr.to_bits()) << 32) | u64::from(remote.map_or(0, |a| a.to_bits())),
        (u64::from(ext.port) << 16)
            | (u64::from(proto.ip_number()) << 8)
            | u64::from(remote.is_some()),
    )
}

impl InternalKey {
    pub fn new(proto: Proto, internal: Endpoint, remote: Endpoint, mode: MappingBehaviour) -> Self {
        let remote = match mode {
            MappingBehaviour::EndpointIndependent => {
                Endpoint::new(std::net::Ipv4Addr::UNSPECIFIED, 0)
            }
            MappingBehaviour::AddressDependent => Endpoint::new(remote.addr, 0),
            MappingBehaviour::AddressAndPortDependent => remote,
        };
        InternalKey {
            proto,
            internal,
            remote,
            mode,
        }
    }
    fn of(c: &Conn) -> Self {
        let (internal, _) = c.mapping();
        InternalKey::new(c.orig.proto, internal, c.remote(), c.map_mode)
    }
}

pub(crate) struct Table {
    slots: Vec<Conn>,
    free: Vec<u32>,
    live: usize,
    capacity: usize,
    hasher: FixedState,
    by_tuple: TupleIndex,
    by_internal: HashTable<u32>,
    by_external: HashTable<u32>,
    by_remote_addr: HashTable<u32>,
    timers: Wheel,
    /// Embryonic connections, oldest first (eviction candidates).
    embryonic: VecDeque<(u32, u32)>,
}

const DIR_BIT: u32 = 1;

impl Table {
    pub fn new(capacity: usize, seed: u64) -> Table {
        // Pre-size for small tables; large ones grow on demand.
        let pre = capacity.min(4096);
        Table {
            slots: Vec::with_capacity(pre),
            free: Vec::new(),
            live: 0,
            capacity,
            hasher: FixedState::with_seed(seed),
            by_tuple: TupleIndex::with_capacity(pre * 2),
            by_internal: HashTable::with_capacity(pre),
            by_external: HashTable::new(),
            by_remote_addr: HashTable::new(),
            timers: Wheel::default(),
            embryonic: VecDeque::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.live
    }
    pub fn is_full(&self) -> bool {
        self.live >= self.capacity
    }
    pub fn get(&self, id: ConnId) -> &Conn {
        &self.slots[id.0 as usize]
    }
    pub fn get_mut(&mut self, id: ConnId) -> &mut Conn {
        &mut self.slots[id.0 as usize]
    }

    /// The hash a tuple is indexed by.
    #[inline]
    pub fn hash_flow(&self, f: &Flow) -> u64 {
        self.hasher.hash_one(flow_key(f))
    }

    /// Finds the connection a packet with tuple `f` belongs to.
    #[inline]
    pub fn lookup(&self, f: &Flow) -> Option<(ConnId, crate::flow::Dir)> {
        self.lookup_hashed(self.hash_flow(f), f)
    }

    /// [`lookup`](Self::lookup) with the hash already computed.
    #[inline]
    pub fn lookup_hashed(&self, h: u64, f: &Flow) -> Option<(ConnId, crate::flow::Dir)> {
        let slots = &self.slots;
        self.by_tuple
            .find(h, |e| {
                let c = &slots[(e >> 1) as usize];
                let t = if e & DIR_BIT == 0 { &c.orig } else { &c.reply };
                t == f
            })
            .map(|e| {
                let dir = if e & DIR_BIT == 0 {
                    crate::flow::Dir::Original
                } else {
                    crate::flow::Dir::Reply
                };
                (ConnId(e >> 1), dir)
            })
    }

    /// Asks the CPU to load the index bucket of hash `h`.
    #[inline]
    pub fn prefetch_bucket(&self, h: u64) {
        self.by_tuple.prefetch(h);
    }

    /// Asks the CPU to load the record the bucket of `h` points at first
    /// (call after [`prefetch_bucket`](Self::prefetch_bucket) had time to land).
    #[inline]
    pub fn prefetch_conn(&self, h: u64) {
        if let Some(c) = self
            .by_tuple
            .candidate(h)
            .and_then(|e| self.slots.get((e >> 1) as usize))
        {
            hint::prefetch(c);
        }
    }

    pub fn contains_tuple(&self, f: &Flow) -> bool {
        self.lookup(f).is_some()
    }

    /// A live connection carrying the mapping for `key`.
    pub fn find_internal(&self, key: &InternalKey) -> Option<ConnId> {
        let h = self.hasher.hash_one(key);
        let slots = &self.slots;
        self.by_internal
            .find(h, |&i| InternalKey::of(&slots[i as usize]) == *key)
            .map(|&i| ConnId(i))
    }

    /// A live connection whose mapping's external endpoint is `ext`.
    pub fn find_external(&self, proto: Proto, ext: Endpoint) -> Option<ConnId> {
        let h = self.hasher.hash_one(external_key(proto, ext, None));
        let slots = &self.slots;
        self.by_external
            .find(h, |&i| {
                let c = &slots[i as usize];
                c.orig.proto == proto && c.mapping().1 == ext
            })
            .map(|&i| ConnId(i))
    }

    /// Whether the mapping with external endpoint `ext` has a connection
    /// with a remote at `addr` (address-dependent filtering).
    pub fn external_has_remote_addr(
        &self,
        proto: Proto,
        ext: Endpoint,
        addr: std::net::Ipv4Addr,
    ) -> bool {
        let h = self.hasher.hash_one(external_key(proto, ext, Some(addr)));
        let slots = &self.slots;
        self.by_remote_addr
            .find(h, |&i| {
                let c = &slots[i as usize];
                c.orig.proto == proto && c.mapping().1 == ext && c.remote().addr == addr
            })
            .is_some()
    }

    /// Inserts a connection; the caller has checked capacity and that
    /// neither tuple is present. `index_external`/`index_remote` say which
    /// mapping indexes it joins.
    pub fn insert(&mut self, mut conn: Conn, index_external: bool, index_remote: bool) -> ConnId {
        conn.flags |= ConnFlags::LIVE;
        if index_external && conn.has(ConnFlags::MAPPED) {
            conn.flags |= ConnFlags::EXT_INDEXED;
        }
        if index_remote && conn.has(ConnFlags::MAPPED) {
            conn.flags |= ConnFlags::REMOTE_INDEXED;
        }
        let idx = match self.free.pop() {
            Some(i) => {
                conn.gen = self.slots[i as usize].gen.wrapping_add(1);
                self.slots[i as usize] = conn;
                i
            }
            None => {
                conn.gen = 0;
                if self.slots.len() == self.slots.capacity() {
                    self.grow_slots();
                }
                self.slots.push(conn);
                (self.slots.len() - 1) as u32
            }
        };
        self.live += 1;
        let c = self.slots[idx as usize];
        let hasher = self.hasher.clone();
        let slots = &self.slots;
        let rehash_tuple = |e: u32| {
            let c = &slots[(e >> 1) as usize];
            let t = if e & DIR_BIT == 0 { &c.orig } else { &c.reply };
            hasher.hash_one(flow_key(t))
        };
        self.by_tuple
            .insert(hasher.hash_one(flow_key(&c.orig)), idx << 1, rehash_tuple);
        self.by_tuple.insert(
            hasher.hash_one(flow_key(&c.reply)),
            (idx << 1) | DIR_BIT,
            rehash_tuple,
        );
        if c.has(ConnFlags::MAPPED) {
            self.by_internal
                .insert_unique(hasher.hash_one(InternalKey::of(&c)), idx, |&i| {
                    hasher.hash_one(InternalKey::of(&slots[i as usize]))
                });
            if c.has(ConnFlags::EXT_INDEXED) {
                let ext_hash =
                    |c: &Conn| hasher.hash_one(external_key(c.orig.proto, c.mapping().1, None));
                self.by_external
                    .insert_unique(ext_hash(&c), idx, |&i| ext_hash(&slots[i as usize]));
            }
            if c.has(ConnFlags::REMOTE_INDEXED) {
                let rem_hash = |c: &Conn| {
                    hasher.hash_one(external_key(
                        c.orig.proto,
                        c.mapping().1,
                        Some(c.remote().addr),
                    ))
                };
                self.by_remote_addr
                    .insert_unique(rem_hash(&c), idx, |&i| rem_hash(&slots[i as usize]));
            }
        }
        self.timers.insert(Entry {
            when: c.expires,
            idx,
            gen: c.gen,
        });
        self.slots[idx as usize].queued = c.expires;
        self.compact_timers();
        if !c.has(ConnFlags::REPLIED) {
            self.embryonic.push_back((idx, c.gen));
            self.compact_embryonic();
        }
        ConnId(idx)
    }

    /// Doubles the slab, advising the new allocation onto huge pages
    /// before the copy first touches it: advised after `Vec`'s own growth,
    /// the copied part was already backed by 4 KiB pages, and at 1M
    /// sessions less than half the slab ended up on huge pages.
    fn grow_slots(&mut self) {
        let mut grown = Vec::with_capacity((self.slots.capacity() * 2).max(64));
        hint::huge_pages(&grown);
        grown.extend_from_slice(&self.slots);
        self.slots = grown;
    }

    /// Sets a new expiry; queues a timer only when it moved earlier.
    #[inline]
    pub fn set_expiry(&mut self, id: ConnId, expires: u64) {
        let c = &mut self.slots[id.0 as usize];
        c.expires = expires;
        if expires < c.queued {
            c.queued = expires;
            self.timers.insert(Entry {
                when: expires,
                idx: id.0,
                gen: c.gen,
            });
            self.compact_timers();
        }
    }

    /// Keeps the wheel bounded: entries of removed connections (a flood's
    /// evicted SYNs) would otherwise stay until their deadline. Sweeping
    /// costs O(n) once the wheel doubles past the table, so it is amortised
    /// O(1) per insertion.
    fn compact_timers(&mut self) {
        if self.timers.len() > 2 * self.capacity.max(64) {
            let slots = &self.slots;
            self.timers
                .retain(|e| is_current(&slots[e.idx as usize], e));
        }
    }

    /// Removes a connection and its index entries.
    pub fn remove(&mut self, id: ConnId) -> Conn {
        let idx = id.0;
        let c = self.slots[idx as usize];
        let hasher = self.hasher.clone();
        let remove_from = |t: &mut HashTable<u32>, h: u64, want: u32| {
            if let Ok(e) = t.find_entry(h, |&v| v == want) {
                e.remove();
            }
        };
        self.by_tuple
            .remove(hasher.hash_one(flow_key(&c.orig)), idx << 1);
        self.by_tuple
            .remove(hasher.hash_one(flow_key(&c.reply)), (idx << 1) | DIR_BIT);
        if c.has(ConnFlags::MAPPED) {
            remove_from(
                &mut self.by_internal,
                hasher.hash_one(InternalKey::of(&c)),
                idx,
            );
            if c.has(ConnFlags::EXT_INDEXED) {
                remove_from(
                    &mut self.by_external,
                    hasher.hash_one(external_key(c.orig.proto, c.mapping().1, None)),
                    idx,
                );
            }
            if c.has(ConnFlags::REMOTE_INDEXED) {
                remove_from(
                    &mut self.by_remote_addr,
                    hasher.hash_one(external_key(
                        c.orig.proto,
                        c.mapping().1,
                        Some(c.remote().addr),
                    )),
                    idx,
                );
            }
        }
        self.slots[idx as usize].flags = ConnFlags::EMPTY;
        self.free.push(idx);
        self.live -= 1;
        c
    }

    /// Earliest queued deadline (may be earlier than any real expiry, never later).
    pub fn next_deadline(&self) -> Option<u64> {
        self.timers.next_deadline()
    }

    /// Appends the connections that have expired by `now` to `out`, in
    /// order of expiry (then slot), and re-queues the ones refreshed since
    /// their deadline was queued. The caller removes them.
    pub fn expired(&mut self, now: u64, out: &mut Vec<ConnId>) {
        let slots = &mut self.slots;
        let mut due = Vec::new();
        self.timers.advance(now, |e| {
            let c = &mut slots[e.idx as usize];
            if !is_current(c, &e) {
                return None; // stale or duplicate entry
            }
            if c.expires <= now {
                due.push((c.expires, e.idx));
                return None;
            }
            c.queued = c.expires;
            Some(c.expires)
        });
        due.sort_unstable();
        out.extend(due.into_iter().map(|(_, idx)| ConnId(idx)));
    }

    /// The oldest embryonic connection (eviction victim; see [`Conn::evictable`]).
    pub fn oldest_embryonic(&mut self) -> Option<ConnId> {
        while let Some(&(idx, gen)) = self.embryonic.front() {
            let c = &self.slots[idx as usize];
            if c.flags.has(ConnFlags::LIVE) && c.gen == gen && c.evictable() {
                return Some(ConnId(idx));
            }
            self.embryonic.pop_front();
        }
        None
    }

    /// Keeps the embryonic queue bounded: entries of connections that got a
    /// reply or ended are dropped once the queue outgrows the table.
    fn compact_embryonic(&mut self) {
        if self.embryonic.len() > 2 * self.capacity.max(64) {
            let slots = &self.slots;
            self.embryonic.retain(|&(idx, gen)| {
                let c = &slots[idx as usize];
                c.flags.has(ConnFlags::LIVE) && c.gen == gen && c.evictable()
            });
        }
    }

    /// Live connections in slot order (deterministic).
    pub fn iter(&self) -> impl Iterator<Item = (ConnId, &Conn)> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, c)| c.flags.has(ConnFlags::LIVE))
            .map(|(i, c)| (ConnId(i as u32), c))
    }

    /// Bytes of heap memory the table holds (for the memory benchmark).
    pub fn heap_bytes(&self) -> usize {
        use core::mem::size_of;
        let idx = |t: &HashTable<u32>| t.capacity() * (size_of::<u32>() + 1);
        self.slots.capacity() * size_of::<Conn>()
            + self.free.capacity() * 4
            + self.by_tuple.heap_bytes()
            + idx(&self.by_internal)
            + idx(&self.by_external)
            + idx(&self.by_remote_addr)
            + self.timers.heap_bytes()
            + self.embryonic.capacity() * 8
    }
}
