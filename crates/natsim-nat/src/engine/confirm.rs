//! A new connection whose first packet did not get through.
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
        let Some(id) = self.created.take() else {
            return false;
        };
        let c = self.table.remove(id);
        if c.has(ConnFlags::ALG) {
            self.algs.remove(&id.0);
        }
        self.stats.proto_mut(c.orig.proto).unconfirmed += 1;
        trace.step(NatStep::ConnEnded {
            conn: id,
            flow: c.orig,
            reason: EndReason::Unconfirmed,
        });
        true
    }
}
