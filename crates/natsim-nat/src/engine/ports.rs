//! Port allocation: finding (or reusing) the external endpoint of a new
//! mapping (RFC 4787 REQ-1..4; Linux get_unique_tuple).

use super::*;

/// SplitMix64: a tiny seeded generator for port selection.
#[derive(Clone, Debug)]
pub(super) struct SplitMix64(pub(super) u64);

impl SplitMix64 {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
/// Where source NAT may take its external address from.
#[derive(Clone, Copy)]
pub(super) enum AddrChoice<'a> {
    One(Ipv4Addr),
    Pool(&'a SnatPool),
}

/// The external endpoint [`NatEngine::allocate`] chose.
#[derive(Clone, Copy)]
pub(super) struct Allocated {
    pub ext: Endpoint,
    /// A live mapping of the internal endpoint was reused.
    pub reused: bool,
    /// The reply tuple (remote → `ext`) was looked up and is free, so the
    /// caller need not look again.
    pub reply_free: bool,
}

impl NatEngine {
    /// Finds (or reuses) the external endpoint for `internal` talking to
    /// `remote` (RFC 4787 REQ-1..4; Linux get_unique_tuple).
    pub(super) fn allocate(
        &mut self,
        proto: Proto,
        internal: Endpoint,
        remote: Endpoint,
        choice: AddrChoice<'_>,
        (range, random): (PortRange, PortFlag),
        rule: RuleId,
    ) -> Result<Allocated, DropReason> {
        let b = &self.cfg.behaviour;
        let mode = b.for_proto(proto).mapping;
        let overloading = b.ports.allow_overloading;
        let in_choice = |a: Ipv4Addr| match choice {
            AddrChoice::One(x) => x == a,
            AddrChoice::Pool(p) => p.contains(a),
        };
        // Reuse the live mapping of this internal endpoint if it fits; a
        // random-port rule never does (get_unique_tuple skips both the
        // original tuple and find_appropriate_src under RANDOM_ALL).
        let key = InternalKey::new(proto, internal, remote, mode);
        let reuse = random == PortFlag::Profile;
        if let Some(c) = self.table.find_internal(&key).filter(|_| reuse) {
            let (_, ext) = self.table.get(c).mapping();
            let reply = Flow::new(proto, remote, ext);
            if in_choice(ext.addr) && !self.table.contains_tuple(&reply) {
                return Ok(Allocated {
                    ext,
                    reused: true,
                    reply_free: true,
                });
            }
        }
        let addrs: (u32, u64) = match choice {
            AddrChoice::One(a) => (a.to_bits(), 1),
            AddrChoice::Pool(p) => (p.first.to_bits(), p.len()),
        };
        let pooling_paired =
            matches!(choice, AddrChoice::Pool(p) if p.pooling == crate::config::Pooling::Paired);
        let start_addr = if addrs.1 > 1 {
            // Paired pooling (REQ-2): one internal address, one external
            // address; a deterministic spread of internal addresses.
            let h = u64::from(internal.addr.to_bits()).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
            h % addrs.1
        } else {
            0
        };
        let addr_tries = if pooling_paired { 1 } else { addrs.1 };
        let range = self.effective_range(proto, internal.port, range);
        for k in 0..addr_tries {
            let addr =
                Ipv4Addr::from_bits(addrs.0.wrapping_add(((start_addr + k) % addrs.1) as u32));
            if let Some(port) = self.find_port(
                proto,
                internal.port,
                remote,
                addr,
                (range, random),
                overloading,
            ) {
                return Ok(Allocated {
                    ext: Endpoint::new(addr, port),
                    reused: false,
                    // With overloading, `port_free` looked the reply up.
                    reply_free: overloading,
                });
            }
        }
        Err(DropReason::PortsExhausted { rule })
    }

    fn effective_range(&self, proto: Proto, port: u16, range: PortRange) -> PortRange {
        if proto == Proto::Icmp {
            return PortRange::ALL; // identifiers have no classes
        }
        let b = &self.cfg.behaviour;
        if range != PortRange::ALL || !b.ports.preserve_range_class {
            return range;
        }
        // A typed field, not the profile's name: a renamed copy of the
        // linux profile keeps Linux's classes.
        let linux = b.ports.classes == crate::config::PortClasses::Linux;
        match port {
            0..=511 if linux => PortRange::new(1, 511),
            512..=1023 if linux => PortRange::new(600, 1023),
            0..=1023 => PortRange::new(1, 1023),
            _ => PortRange::EPHEMERAL,
        }
    }

    fn port_free(&self, proto: Proto, remote: Endpoint, ext: Endpoint, overloading: bool) -> bool {
        if proto == Proto::Tcp && !self.expects.is_empty() && self.expects.reserved(ext) {
            return false;
        }
        if overloading {
            !self.table.contains_tuple(&Flow::new(proto, remote, ext))
        } else {
            self.table.find_external(proto, ext).is_none()
        }
    }

    fn find_port(
        &mut self,
        proto: Proto,
        orig: u16,
        remote: Endpoint,
        addr: Ipv4Addr,
        (range, random): (PortRange, PortFlag),
        overloading: bool,
    ) -> Option<u16> {
        let len = range.len();
        if len == 0 {
            return None;
        }
        let ports = self.cfg.behaviour.ports;
        // A rule's random flag overrides the profile: no attempt to keep
        // the port, a random start (both flags draw from the seeded RNG).
        let strategy = match random {
            PortFlag::Profile => ports.strategy,
            PortFlag::Random | PortFlag::FullyRandom => PortStrategy::Random,
        };
        let try_preserve = matches!(
            strategy,
            PortStrategy::Preserve | PortStrategy::PreserveThenRandom
        );
        if try_preserve
            && range.contains(orig)
            && self.port_free(proto, remote, Endpoint::new(addr, orig), overloading)
        {
            return Some(orig);
        }
        let parity = ports.preserve_parity && len >= 2;
        let step: u32 = if parity { 2 } else { 1 };
        let start: u32 = match strategy {
            PortStrategy::Preserve => u32::from(orig).saturating_sub(u32::from(range.first)) + step,
            PortStrategy::Sequential => {
                let s = self.cursor;
                self.cursor = self.cursor.wrapping_add(step);
                s
            }
            PortStrategy::Random | PortStrategy::PreserveThenRandom => {
                (self.rng.next() % u64::from(len)) as u32
            }
        };
        let slots = if parity { len.div_ceil(2) } else { len };
        let attempts = slots.min(ports.max_attempts);
        for i in 0..attempts {
            let mut off = (start + i * step) % len;
            if parity && (u32::from(range.first) + off) % 2 != u32::from(orig) % 2 {
                off = (off + 1) % len;
            }
            let port = (u32::from(range.first) + off) as u16;
            if self.port_free(proto, remote, Endpoint::new(addr, port), overloading) {
                return Some(port);
            }
        }
        None
    }
}
