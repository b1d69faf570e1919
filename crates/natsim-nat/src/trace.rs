//! Trace steps: the engine's decisions as data.
//!
//! The engine reports every decision to a [`TraceSink`] supplied by the
//! caller. Steps are small `Copy` values (rules are named by [`RuleId`]) so
//! that recording costs no allocation; `()` is the sink that records nothing.
//! Reports and `natsim explain` render these steps; they never re-derive
//! what the engine did.

use crate::alg::{AlgEvent, AlgKind};
use crate::config::{IfaceId, RuleId};
use crate::flow::{Dir, Endpoint, Flow, PortRange, Prefix, Proto};
use crate::verdict::DropReason;

/// TCP connection-tracking states (a simplification of Linux conntrack's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TcpState {
    SynSent,
    SynRecv,
    Established,
    FinWait,
    CloseWait,
    LastAck,
    TimeWait,
    Close,
}

impl TcpState {
    pub fn name(self) -> &'static str {
        match self {
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::Established => "ESTABLISHED",
            TcpState::FinWait => "FIN_WAIT",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
        }
    }
}

/// Index of a tracked connection; stable while it lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u32);

/// Why a connection left the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EndReason {
    Expired,
    /// Removed to make room (embryonic/unreplied entries go first).
    Evicted,
    /// Its first packet was dropped after NAT, before it left: Linux frees
    /// such an unconfirmed entry (nf_conntrack_confirm never ran).
    Unconfirmed,
}

/// Which kind of answer the engine generated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReplyKind {
    TcpRst,
    /// ICMP destination unreachable with this code.
    IcmpUnreachable(crate::config::Unreachable),
}

/// The one criterion of a rule's match that a packet failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Miss {
    Proto {
        want: Proto,
    },
    InIface {
        want: IfaceId,
    },
    OutIface {
        want: IfaceId,
    },
    Src {
        want: Prefix,
    },
    Dst {
        want: Prefix,
    },
    /// The rule wants this interface's current address as destination.
    DstIfaceAddr {
        iface: IfaceId,
    },
    DstPort {
        want: PortRange,
    },
}

impl Miss {
    /// Why `flow` missed, in words.
    pub fn describe(&self, flow: &Flow) -> String {
        match self {
            Miss::Proto { want } => format!("the protocol is {}, not {want}", flow.proto),
            Miss::InIface { want } => format!("it did not arrive on {want}"),
            Miss::OutIface { want } => format!("it would not leave through {want}"),
            Miss::Src { want } => format!("the source {} is outside {want}", flow.src.addr),
            Miss::Dst { want } => format!("the destination {} is outside {want}", flow.dst.addr),
            Miss::DstIfaceAddr { iface } => {
                format!("the destination {} is not {iface}'s address", flow.dst.addr)
            }
            Miss::DstPort { want } if want.first == want.last => format!(
                "the destination port is {}, not {}",
                flow.dst.port, want.first
            ),
            Miss::DstPort { want } => format!(
                "the destination port {} is outside {}-{}",
                flow.dst.port, want.first, want.last
            ),
        }
    }
}

/// One decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NatStep {
    /// The frame was parsed; `flow` is its tuple as received.
    Received { iface: IfaceId, flow: Flow },
    /// The frame belongs to a tracked connection.
    ConnMatched { conn: ConnId, dir: Dir },
    /// A new connection entry was created.
    ConnCreated { conn: ConnId, flow: Flow },
    /// A rule matched on the connection's first packet.
    RuleMatched { rule: RuleId },
    /// A stateless one-to-one rule rewrote the packet.
    StaticRule { rule: RuleId },
    /// An external endpoint was bound to an internal one.
    MappingCreated {
        proto: Proto,
        internal: Endpoint,
        external: Endpoint,
    },
    /// An existing mapping was used for a new connection.
    MappingReused {
        proto: Proto,
        internal: Endpoint,
        external: Endpoint,
    },
    /// Inbound traffic to an external endpoint admitted by the mapping's
    /// filtering behaviour (no rule, no prior connection to this sender).
    FilterAdmitted { proto: Proto, external: Endpoint },
    /// Headers rewritten.
    Translated { before: Flow, after: Flow },
    /// An ICMP error's quoted packet was rewritten.
    IcmpInnerTranslated { before: Flow, after: Flow },
    /// The inside host addressed the external address; hairpinned.
    Hairpinned,
    TcpStateChanged {
        conn: ConnId,
        from: TcpState,
        to: TcpState,
    },
    /// A connection left the table (expired, evicted to make room, or
    /// discarded unconfirmed).
    ConnEnded {
        conn: ConnId,
        flow: Flow,
        reason: EndReason,
    },
    /// The engine answered in place of forwarding.
    Replied { kind: ReplyKind },
    /// The final decision was a drop.
    Dropped { reason: DropReason },
    /// Before an unsolicited packet is refused: a rule that failed on
    /// exactly one criterion (the rule that almost matched, and why not).
    NearMiss {
        rule: RuleId,
        miss: Miss,
        flow: Flow,
    },
    /// An application-level gateway acted on a connection's payload.
    Alg {
        conn: ConnId,
        kind: AlgKind,
        event: AlgEvent,
    },
    /// A new connection was admitted by an ALG's expectation (pinhole).
    PinholeUsed {
        kind: AlgKind,
        external: Endpoint,
        internal: Endpoint,
    },
    /// An expectation timed out unused (or after its last use).
    PinholeClosed { kind: AlgKind, external: Endpoint },
    /// The engine acted on an IP fragment.
    Fragment { event: FragmentEvent },
}

/// What the engine did with an IP fragment (see [`crate::FragmentHandling`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragmentEvent {
    /// Kept: waiting for its first fragment (translate) or for the rest of
    /// its datagram (reassemble). `offset` is in bytes; `held` counts the
    /// datagram's fragments now held.
    Held { offset: u16, held: u16 },
    /// `fragments` pieces made one datagram of `len` bytes, which is
    /// translated whole.
    Reassembled { fragments: u16, len: u16 },
    /// A later fragment rewritten as its first fragment was.
    Followed { offset: u16 },
    /// The first fragment released `count` fragments held before it.
    Released { count: u16 },
}

impl core::fmt::Display for FragmentEvent {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FragmentEvent::Held { offset, held } => write!(
                f,
                "fragment at offset {offset} held ({held} of its datagram held)"
            ),
            FragmentEvent::Reassembled { fragments, len } => write!(
                f,
                "{fragments} fragments reassembled into one {len}-byte datagram"
            ),
            FragmentEvent::Followed { offset } => write!(
                f,
                "fragment at offset {offset} translated as its first fragment was"
            ),
            FragmentEvent::Released { count } => {
                write!(f, "{count} held fragment(s) released behind the first")
            }
        }
    }
}

/// Receives the engine's steps.
pub trait TraceSink {
    fn step(&mut self, step: NatStep);
}

/// Records nothing (the benchmark and fuzz sink).
impl TraceSink for () {
    #[inline(always)]
    fn step(&mut self, _: NatStep) {}
}

/// Records everything, in order.
impl TraceSink for Vec<NatStep> {
    fn step(&mut self, step: NatStep) {
        self.push(step);
    }
}

impl NatStep {
    /// A one-line narration, naming rules through `rule_name` (e.g.
    /// [`crate::NatEngine::rule_name`]). Reports and `natsim explain` use
    /// this so that every renderer says the same thing.
    pub fn describe(&self, rule_name: &dyn Fn(RuleId) -> String) -> String {
        match self {
            NatStep::Received { iface, flow } => format!("received {flow} on {iface}"),
            NatStep::ConnMatched { conn, dir } => {
                let d = match dir {
                    Dir::Original => "original",
                    Dir::Reply => "reply",
                };
                format!("matched connection #{} ({d} direction)", conn.0)
            }
            NatStep::ConnCreated { conn, flow } => format!("new connection #{} for {flow}", conn.0),
            NatStep::RuleMatched { rule } => format!("rule `{}` matched", rule_name(*rule)),
            NatStep::StaticRule { rule } => {
                format!("one-to-one rule `{}` applied", rule_name(*rule))
            }
            NatStep::MappingCreated {
                proto,
                internal,
                external,
            } => format!("new {proto} mapping {internal} ⇄ {external}"),
            NatStep::MappingReused {
                proto,
                internal,
                external,
            } => format!("reused {proto} mapping {internal} ⇄ {external}"),
            NatStep::FilterAdmitted { proto, external } => {
                format!("{proto} to mapping {external} admitted by its filtering behaviour")
            }
            NatStep::Translated { before, after } => format!("translated {before}  ⇒  {after}"),
            NatStep::IcmpInnerTranslated { before, after } => {
                format!("ICMP error's quoted packet translated {before}  ⇒  {after}")
            }
            NatStep::Hairpinned => {
                "inside host addressed the external address (hairpin)".to_string()
            }
            NatStep::TcpStateChanged { conn, from, to } => {
                format!("connection #{} TCP {} → {}", conn.0, from.name(), to.name())
            }
            NatStep::ConnEnded { conn, flow, reason } => {
                let why = match reason {
                    EndReason::Expired => "expired",
                    EndReason::Evicted => "evicted to make room",
                    EndReason::Unconfirmed => {
                        "discarded: its first packet was dropped before it left"
                    }
                };
                format!("connection #{} ({flow}) {why}", conn.0)
            }
            NatStep::Replied { kind } => match kind {
                ReplyKind::TcpRst => "answered with a TCP RST".to_string(),
                ReplyKind::IcmpUnreachable(code) => {
                    format!("answered with ICMP {}", code.describe())
                }
            },
            NatStep::Dropped { reason } => format!("dropped: {reason}"),
            NatStep::NearMiss { rule, miss, flow } => format!(
                "near miss: rule `{}` almost matched, but {}",
                rule_name(*rule),
                miss.describe(flow)
            ),
            NatStep::Alg { conn, kind, event } => {
                format!("{kind} (connection #{}): {event}", conn.0)
            }
            NatStep::PinholeUsed {
                kind,
                external,
                internal,
            } => format!(
                "{kind} pinhole {external} admitted the connection, forwarded to {internal}"
            ),
            NatStep::PinholeClosed { kind, external } => {
                format!("{kind} pinhole {external} closed")
            }
            NatStep::Fragment { event } => event.to_string(),
        }
    }
}
