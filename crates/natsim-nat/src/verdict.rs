//! What the engine decides for a frame, and the routing question it asks.

use crate::config::{FilteringBehaviour, IfaceId, RuleId};
use crate::flow::Proto;
use core::fmt;
use std::net::Ipv4Addr;

/// The answer of the caller's routing table for a destination address,
/// asked between prerouting and postrouting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Send out of `iface` towards `next_hop` (the destination itself when
    /// it is on-link).
    Forward { iface: IfaceId, next_hop: Ipv4Addr },
    /// The router itself owns the address.
    Local,
    /// No route.
    Unreachable,
}

/// The caller's routing table.
pub trait Routes {
    fn route(&self, dst: Ipv4Addr) -> Route;
}

impl<F: Fn(Ipv4Addr) -> Route> Routes for F {
    fn route(&self, dst: Ipv4Addr) -> Route {
        self(dst)
    }
}

/// The fate of one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Verdict {
    /// Send the (possibly rewritten) frame out of `iface` towards
    /// `next_hop`. The engine never touches MAC addresses or the TTL.
    Forward { iface: IfaceId, next_hop: Ipv4Addr },
    /// Deliver the (possibly rewritten) frame to the router's own stack.
    Local,
    /// The frame buffer now holds a generated answer (TCP RST or ICMP
    /// error) to send back out of `iface`, MAC addresses already swapped.
    Reply { iface: IfaceId },
    /// Discard the frame.
    Drop(DropReason),
    /// The engine kept a copy of this IP fragment until its datagram can
    /// be translated; the caller sends nothing now. It comes out later
    /// through [`crate::NatEngine::take_released`] or as part of a
    /// reassembled datagram, or expires.
    Held,
}

impl Verdict {
    pub fn is_drop(&self) -> bool {
        matches!(self, Verdict::Drop(_))
    }
}

/// Why a frame was discarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropReason {
    /// Shorter than its headers claim, or shorter than a header.
    Truncated { layer: Layer },
    /// Not IPv4 (ARP and the like are the router's business, not NAT's).
    NotIpv4 { ethertype: u16 },
    /// IPv4 header with version ≠ 4, IHL < 5 or total length < IHL.
    BadIpHeader,
    /// An IP fragment, and the profile drops fragments.
    Fragment,
    /// Fragments of one datagram overlap: the whole datagram is discarded
    /// (Linux's inet_frag_queue_insert, after RFC 5722 §4).
    FragmentOverlap,
    /// The fragments add up to more than 65535 bytes of IP datagram.
    FragmentTooBig,
    /// Holding this fragment would pass the memory for held fragments
    /// (Linux's ipfrag_high_thresh, 4 MiB).
    FragmentMemory,
    /// A held fragment's datagram was not completed (or its first
    /// fragment did not arrive) within 30 s (Linux's ipfrag_time).
    FragmentExpired,
    /// A fragmented segment on a connection whose payload an ALG rewrites:
    /// a part of a datagram cannot be rewritten safely.
    AlgFragment,
    /// Unsolicited traffic from outside that no connection, rule or mapping
    /// admits, sent to a NAT-owned address (no mapping there at all).
    NoMapping { proto: Proto },
    /// A mapping exists but its filtering behaviour refuses this remote.
    Filtered {
        proto: Proto,
        filtering: FilteringBehaviour,
    },
    /// Traffic from outside to an inside address with no state admitting it
    /// (stateful inbound filter on).
    InboundNotAllowed,
    /// An ICMP error quoting a packet of no known connection (RFC 5508).
    IcmpErrorNoMatch,
    /// An ICMP type the engine does not translate.
    IcmpUnsupported { icmp_type: u8 },
    /// The state table is full of established entries and none could be
    /// evicted.
    TableFull,
    /// No free external port in the rule's range or pool.
    PortsExhausted { rule: RuleId },
    /// An inside host reached the external address and hairpinning is off.
    HairpinDisabled,
    /// The routing table has no route to the (translated) destination.
    NoRoute,
    /// A TCP segment that no tracked connection state admits (e.g. an ACK
    /// for a connection the engine never saw, sent from outside).
    InvalidTcpState,
    /// The translated tuple is already used by another connection.
    TupleClash,
    /// An ALG-inspected segment beyond a gap, or one the ALG cut to
    /// nothing: the sender retransmits it in order (see [`crate::alg`]).
    AlgOutOfOrder,
    /// Malformed payload under the ALG's drop policy.
    AlgBlocked,
    /// An ALG rewrite would grow the packet past 65535 bytes of IP total
    /// length (RFC 791), which no header can say.
    AlgTooLong,
    /// A filter rule (`rule`: its index in the chain) or the chain's
    /// policy (`rule: None`) dropped or rejected it.
    FilterDenied {
        hook: crate::config::FilterHook,
        rule: Option<u16>,
    },
}

/// Protocol layer of a parse error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Layer {
    Ethernet,
    Vlan,
    Ipv4,
    Tcp,
    Udp,
    Icmp,
    /// The packet quoted inside an ICMP error.
    IcmpInner,
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layer::Ethernet => "ethernet",
            Layer::Vlan => "802.1q",
            Layer::Ipv4 => "ipv4",
            Layer::Tcp => "tcp",
            Layer::Udp => "udp",
            Layer::Icmp => "icmp",
            Layer::IcmpInner => "icmp-quoted packet",
        })
    }
}

impl DropReason {
    /// Every reason's [`code`](Self::code), in [`index`](Self::index) order.
    pub const CODES: [&'static str; DropReason::COUNT] = [
        "truncated",
        "not-ipv4",
        "bad-ip-header",
        "fragment",
        "fragment-overlap",
        "fragment-too-big",
        "fragment-memory",
        "fragment-expired",
        "alg-fragment",
        "no-mapping",
        "filtered",
        "inbound-not-allowed",
        "icmp-error-no-match",
        "icmp-unsupported",
        "table-full",
        "ports-exhausted",
        "hairpin-disabled",
        "no-route",
        "invalid-tcp-state",
        "tuple-clash",
        "alg-out-of-order",
        "alg-blocked",
        "alg-too-long",
        "filter-denied",
    ];
    /// How many kinds of reason there are.
    pub const COUNT: usize = 24;

    /// A dense number for the kind of reason (what [`code`](Self::code)
    /// names), for counting in an array.
    pub const fn index(&self) -> usize {
        match self {
            DropReason::Truncated { .. } => 0,
            DropReason::NotIpv4 { .. } => 1,
            DropReason::BadIpHeader => 2,
            DropReason::Fragment => 3,
            DropReason::FragmentOverlap => 4,
            DropReason::FragmentTooBig => 5,
            DropReason::FragmentMemory => 6,
            DropReason::FragmentExpired => 7,
            DropReason::AlgFragment => 8,
            DropReason::NoMapping { .. } => 9,
            DropReason::Filtered { .. } => 10,
            DropReason::InboundNotAllowed => 11,
            DropReason::IcmpErrorNoMatch => 12,
            DropReason::IcmpUnsupported { .. } => 13,
            DropReason::TableFull => 14,
            DropReason::PortsExhausted { .. } => 15,
            DropReason::HairpinDisabled => 16,
            DropReason::NoRoute => 17,
            DropReason::InvalidTcpState => 18,
            DropReason::TupleClash => 19,
            DropReason::AlgOutOfOrder => 20,
            DropReason::AlgBlocked => 21,
            DropReason::AlgTooLong => 22,
            DropReason::FilterDenied { .. } => 23,
        }
    }

    /// A stable kebab-case identifier for reports and expectations
    /// (`dropped-by-nat-filter`, `no-mapping`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            DropReason::Truncated { .. } => "truncated",
            DropReason::NotIpv4 { .. } => "not-ipv4",
            DropReason::BadIpHeader => "bad-ip-header",
            DropReason::Fragment => "fragment",
            DropReason::FragmentOverlap => "fragment-overlap",
            DropReason::FragmentTooBig => "fragment-too-big",
            DropReason::FragmentMemory => "fragment-memory",
            DropReason::FragmentExpired => "fragment-expired",
            DropReason::AlgFragment => "alg-fragment",
            DropReason::NoMapping { .. } => "no-mapping",
            DropReason::Filtered { .. } => "filtered",
            DropReason::InboundNotAllowed => "inbound-not-allowed",
            DropReason::IcmpErrorNoMatch => "icmp-error-no-match",
            DropReason::IcmpUnsupported { .. } => "icmp-unsupported",
            DropReason::TableFull => "table-full",
            DropReason::PortsExhausted { .. } => "ports-exhausted",
            DropReason::HairpinDisabled => "hairpin-disabled",
            DropReason::NoRoute => "no-route",
            DropReason::InvalidTcpState => "invalid-tcp-state",
            DropReason::TupleClash => "tuple-clash",
            DropReason::AlgOutOfOrder => "alg-out-of-order",
            DropReason::AlgBlocked => "alg-blocked",
            DropReason::AlgTooLong => "alg-too-long",
            DropReason::FilterDenied { .. } => "filter-denied",
        }
    }

    /// True for the reasons that mean "the NAT's filter refused unsolicited
    /// traffic" (the Batfish-style disposition `dropped-by-nat-filter`).
    pub fn is_nat_filter(&self) -> bool {
        matches!(
            self,
            DropReason::NoMapping { .. }
                | DropReason::Filtered { .. }
                | DropReason::InboundNotAllowed
                | DropReason::HairpinDisabled
                | DropReason::InvalidTcpState
        )
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropReason::Truncated { layer } => write!(f, "truncated {layer} header"),
            DropReason::NotIpv4 { ethertype } => write!(f, "not IPv4 (ethertype 0x{ethertype:04x})"),
            DropReason::BadIpHeader => f.write_str("malformed IPv4 header"),
            DropReason::Fragment => f.write_str("IP fragment (this NAT drops fragments)"),
            DropReason::FragmentOverlap => {
                f.write_str("overlapping IP fragments: the whole datagram is discarded")
            }
            DropReason::FragmentTooBig => {
                f.write_str("IP fragments add up to more than 65535 bytes")
            }
            DropReason::FragmentMemory => f.write_str("no memory left to hold IP fragments"),
            DropReason::FragmentExpired => {
                f.write_str("IP fragments not completed within 30 s (reassembly timeout)")
            }
            DropReason::AlgFragment => {
                f.write_str("a fragmented segment on a connection an ALG rewrites")
            }
            DropReason::NoMapping { proto } => {
                write!(f, "unsolicited {proto}: no mapping, connection or forward for this destination")
            }
            DropReason::Filtered { proto, filtering } => write!(
                f,
                "unsolicited {proto}: a mapping exists but {filtering} filtering refuses this sender"
            ),
            DropReason::InboundNotAllowed => {
                f.write_str("unsolicited traffic from outside to an inside address")
            }
            DropReason::IcmpErrorNoMatch => {
                f.write_str("ICMP error quoting a packet of no known connection")
            }
            DropReason::IcmpUnsupported { icmp_type } => {
                write!(f, "ICMP type {icmp_type} is not translated")
            }
            DropReason::TableFull => f.write_str("connection table full, nothing evictable"),
            DropReason::PortsExhausted { rule } => {
                write!(f, "no free external port left for {rule}")
            }
            DropReason::HairpinDisabled => {
                f.write_str("hairpinning is off: inside host addressed the external address")
            }
            DropReason::NoRoute => f.write_str("no route to destination"),
            DropReason::InvalidTcpState => {
                f.write_str("TCP segment outside any tracked connection")
            }
            DropReason::TupleClash => {
                f.write_str("the translated tuple is already in use by another connection")
            }
            DropReason::AlgOutOfOrder => f.write_str(
                "the ALG passes an inspected stream in order only; the sender will retransmit",
            ),
            DropReason::AlgBlocked => f.write_str("malformed application payload (ALG policy: drop)"),
            DropReason::AlgTooLong => {
                f.write_str("the ALG rewrite would grow the packet past 65535 bytes")
            }
            DropReason::FilterDenied { hook, rule: Some(k) } => {
                write!(f, "denied by {hook} filter rule {}", k + 1)
            }
            DropReason::FilterDenied { hook, rule: None } => {
                write!(f, "denied by the {hook} filter's policy")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_and_codes_agree_for_every_reason() {
        let all = [
            DropReason::Truncated { layer: Layer::Tcp },
            DropReason::NotIpv4 { ethertype: 0x0806 },
            DropReason::BadIpHeader,
            DropReason::Fragment,
            DropReason::FragmentOverlap,
            DropReason::FragmentTooBig,
            DropReason::FragmentMemory,
            DropReason::FragmentExpired,
            DropReason::AlgFragment,
            DropReason::NoMapping { proto: Proto::Udp },
            DropReason::Filtered {
                proto: Proto::Udp,
                filtering: FilteringBehaviour::AddressDependent,
            },
            DropReason::InboundNotAllowed,
            DropReason::IcmpErrorNoMatch,
            DropReason::IcmpUnsupported { icmp_type: 5 },
            DropReason::TableFull,
            DropReason::PortsExhausted { rule: RuleId(0) },
            DropReason::HairpinDisabled,
            DropReason::NoRoute,
            DropReason::InvalidTcpState,
            DropReason::TupleClash,
            DropReason::AlgOutOfOrder,
            DropReason::AlgBlocked,
            DropReason::AlgTooLong,
            DropReason::FilterDenied {
                hook: crate::config::FilterHook::Forward,
                rule: None,
            },
        ];
        assert_eq!(all.len(), DropReason::COUNT);
        for (i, r) in all.iter().enumerate() {
            assert_eq!(r.index(), i);
            assert_eq!(DropReason::CODES[i], r.code());
        }
    }
}
