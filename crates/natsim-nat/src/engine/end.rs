//! A connection leaving the table: expired, evicted to make room, or
//! discarded unconfirmed.
//!
//! Linux creates a conntrack entry in PREROUTING (or OUTPUT) but confirms
//! it, putting it in the table, only when the packet leaves
//! (nf_conntrack_confirm at POSTROUTING or INPUT). A packet dropped in
//! between, by ip_forward's checks or a helper, frees its unconfirmed
//! entry, and nothing of it stays: no mapping, no port, no timer.

use super::*;

impl NatEngine {
    /// Forgets the connection the last [`process`](Self::process) call
    /// created, if it created one: for a router that drops that frame
    /// after NAT and before it leaves (not sent to its MAC, TTL, MTU), as
    /// the kernel frees an unconfirmed entry. Returns whether one went.
    pub fn discard_unconfirmed<T: TraceSink>(&mut self, trace: &mut T) -> bool {
        match self.created.take() {
            Some(id) => {
                self.end(id, EndReason::Unconfirmed, trace);
                true
            }
            None => false,
        }
    }

    /// Removes connection `id` with its ALG state, counts why, and says so.
    pub(super) fn end<T: TraceSink>(&mut self, id: ConnId, reason: EndReason, trace: &mut T) {
        let c = self.table.remove(id);
        if c.has(ConnFlags::ALG) {
            self.algs.remove(&id.0);
        }
        let n = self.stats.proto_mut(c.orig.proto);
        match reason {
            EndReason::Expired => n.expired += 1,
            EndReason::Evicted => n.evicted += 1,
            EndReason::Unconfirmed => n.unconfirmed += 1,
        }
        trace.step(NatStep::ConnEnded {
            conn: id,
            flow: c.orig,
            reason,
        });
    }
}
