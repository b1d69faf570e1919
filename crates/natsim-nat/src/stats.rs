//! Per-protocol counters.

use crate::flow::Proto;
use crate::verdict::DropReason;
use std::collections::BTreeMap;

/// Counters for one protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProtoCounters {
    /// Connections created.
    pub created: u64,
    /// Connections that timed out.
    pub expired: u64,
    /// Connections evicted to make room.
    pub evicted: u64,
    /// Connections discarded because their first packet was dropped
    /// after NAT, before it left (never confirmed, in conntrack's terms).
    pub unconfirmed: u64,
    /// Packets whose headers were rewritten.
    pub translated: u64,
    /// Packets dropped.
    pub dropped: u64,
}

/// Engine counters. Drops are also counted by reason code.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub tcp: ProtoCounters,
    pub udp: ProtoCounters,
    pub icmp: ProtoCounters,
    pub other: ProtoCounters,
    /// Drops (and answered refusals) by [`DropReason::index`]: an array,
    /// so a flood costs one add per packet, not a walk of a string-keyed
    /// tree.
    pub drops: [u64; DropReason::COUNT],
    /// Answers generated (RST / ICMP unreachable).
    pub replies: u64,
    /// Packets rewritten by stateless one-to-one rules.
    pub static_translated: u64,
}

impl Stats {
    /// Counts one refusal for `reason`.
    #[inline]
    pub(crate) fn count_drop(&mut self, reason: DropReason) {
        self.drops[reason.index()] += 1;
    }
    /// Drops by [`DropReason::code`], in name order; reasons never seen
    /// are left out.
    pub fn drops_by_reason(&self) -> BTreeMap<&'static str, u64> {
        DropReason::CODES
            .iter()
            .zip(self.drops)
            .filter(|(_, n)| *n > 0)
            .map(|(c, n)| (*c, n))
            .collect()
    }
    pub fn proto_mut(&mut self, p: Proto) -> &mut ProtoCounters {
        match p {
            Proto::Tcp => &mut self.tcp,
            Proto::Udp => &mut self.udp,
            Proto::Icmp => &mut self.icmp,
            Proto::Other(_) => &mut self.other,
        }
    }
    pub fn proto(&self, p: Proto) -> &ProtoCounters {
        match p {
            Proto::Tcp => &self.tcp,
            Proto::Udp => &self.udp,
            Proto::Icmp => &self.icmp,
            Proto::Other(_) => &self.other,
        }
    }
}
