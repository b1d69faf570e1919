//! Per-protocol counters.

use crate::flow::Proto;
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
    /// Drops by [`crate::DropReason::code`], in name order.
    pub drops_by_reason: BTreeMap<&'static str, u64>,
    /// Answers generated (RST / ICMP unreachable).
    pub replies: u64,
    /// Packets rewritten by stateless one-to-one rules.
    pub static_translated: u64,
}

impl Stats {
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
