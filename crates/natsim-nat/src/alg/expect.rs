//! Expectations ("pinholes"): a related connection an ALG announced.
//!
//! An expectation admits TCP from `peer` (any source port) to `external`
//! and forwards it to `internal`, until it expires. FTP expectations are
//! used once (nf_conntrack_ftp); EPM pinholes stay open for their whole
//! lifetime, because an RPC client may open several connections to the
//! endpoint it was given. Expectations are checked before the prerouting
//! chain, as in Linux, and reserve their external port against masquerade.

use super::AlgKind;
use crate::flow::Endpoint;
use crate::time::Instant;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// Most pending expectations; the oldest is dropped to make room (a flood
/// of announcements cannot grow memory without bound).
pub(crate) const MAX_EXPECTATIONS: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Expectation {
    pub kind: AlgKind,
    pub peer: Ipv4Addr,
    pub internal: Endpoint,
    pub expires: Instant,
    pub one_shot: bool,
}

/// Keyed by the external endpoint (TCP only).
#[derive(Clone, Debug, Default)]
pub(crate) struct Expectations {
    map: BTreeMap<Endpoint, Expectation>,
}

impl Expectations {
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn reserved(&self, external: Endpoint) -> bool {
        self.map.contains_key(&external)
    }

    /// The expectation for an existing announcement of the same internal
    /// endpoint to the same peer, so repeated answers reuse one port.
    pub fn existing(&self, peer: Ipv4Addr, internal: Endpoint, face: Ipv4Addr) -> Option<Endpoint> {
        self.map
            .iter()
            .find(|(ext, e)| ext.addr == face && e.peer == peer && e.internal == internal)
            .map(|(ext, _)| *ext)
    }

    pub fn insert(&mut self, external: Endpoint, e: Expectation) {
        if self.map.len() >= MAX_EXPECTATIONS && !self.map.contains_key(&external) {
            if let Some(oldest) = self
                .map
                .iter()
                .min_by_key(|(_, e)| e.expires)
                .map(|(k, _)| *k)
            {
                self.map.remove(&oldest);
            }
        }
        self.map.insert(external, e);
    }

    /// The expectation admitting `from` → `external` at `now`, consumed if
    /// one-shot.
    pub fn take(
        &mut self,
        from: Ipv4Addr,
        external: Endpoint,
        now: Instant,
    ) -> Option<Expectation> {
        let e = *self.map.get(&external)?;
        if e.peer != from || e.expires <= now {
            return None;
        }
        if e.one_shot {
            self.map.remove(&external);
        }
        Some(e)
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.map.values().map(|e| e.expires).min()
    }

    /// Removes expired expectations, returning them in key order.
    pub fn expire(&mut self, now: Instant) -> Vec<(Endpoint, Expectation)> {
        let gone: Vec<Endpoint> = self
            .map
            .iter()
            .filter(|(_, e)| e.expires <= now)
            .map(|(k, _)| *k)
            .collect();
        gone.into_iter()
            .filter_map(|k| self.map.remove(&k).map(|e| (k, e)))
            .collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Endpoint, &Expectation)> {
        self.map.iter()
    }
}
