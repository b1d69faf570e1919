//! Expectations: the small language of a step's `expect`, parsed once at
//! load time into [`Expect`].
//!
//! ```text
//! anything                                  (run the step for its effect; says so on purpose)
//! delivered | deferred | bounced            (send-mail)
//! deferred containing "text" | bounced containing "text" | ndr containing "text"
//! connected | refused | timed-out | timed-out after 21s     (tcp-connect)
//! seen-from 203.0.113.1:40000               (tcp-connect, udp-send: the source the server saw)
//! replied | no-reply | icmp port-unreachable               (ping, udp-send, tcp-send)
//! connected via 203.0.113.1:1025 | endpoint returned 192.168.1.10:1097
//! failed | failed at endpoint-connect | failed containing "text"
//! answer mail.example.com | nxdomain | nodata | dns-timeout   (dns-lookup)
//! status 200                               (http-get)
//! downloaded                               (ftp-get)
//! mapping endpoint-independent | filtering address-dependent   (nat-type)
//! mapping udp 192.168.1.10:40000 -> 203.0.113.1:40000          (nat-table)
//! no mapping udp 192.168.1.10:40000                            (nat-table)
//! listed containing "TIME_WAIT"            (nat-table: its text, ICMP ids and TCP states too)
//! trace dropped-by-nat-filter              (any frame of the step had this disposition)
//! trace-step alg | trace containing "pinhole"  (any NAT step of that kind / text)
//! not EXPECTATION                          (e.g. `not seen-from 203.0.113.1:40000`, `not delivered`)
//! ```
//!
//! `containing` compares case-insensitively.

use crate::l4::L4;
use serde::Serialize;
use std::net::SocketAddrV4;

/// How a step ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Delivered,
    HandedOff,
    Ndr,
    Deferred,
    Bounced,
    Pending,
    Connected,
    Connecting,
    Refused,
    TimedOut,
    Unreachable,
    Failed,
    Downloaded,
    Response,
    Replied,
    NoReply,
    IcmpError,
    Answered,
    NxDomain,
    NoData,
    ServFail,
    DnsTimeout,
    Classified,
    Listed,
    Waited,
    Sent,
    Reset,
}

impl Outcome {
    const ALL: &'static [Outcome] = &[
        Outcome::Delivered,
        Outcome::HandedOff,
        Outcome::Ndr,
        Outcome::Deferred,
        Outcome::Bounced,
        Outcome::Pending,
        Outcome::Connected,
        Outcome::Connecting,
        Outcome::Refused,
        Outcome::TimedOut,
        Outcome::Unreachable,
        Outcome::Failed,
        Outcome::Downloaded,
        Outcome::Response,
        Outcome::Replied,
        Outcome::NoReply,
        Outcome::IcmpError,
        Outcome::Answered,
        Outcome::NxDomain,
        Outcome::NoData,
        Outcome::ServFail,
        Outcome::DnsTimeout,
        Outcome::Classified,
        Outcome::Listed,
        Outcome::Waited,
        Outcome::Sent,
        Outcome::Reset,
    ];

    pub fn word(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::HandedOff => "handed-off",
            Outcome::Ndr => "ndr",
            Outcome::Deferred => "deferred",
            Outcome::Bounced => "bounced",
            Outcome::Pending => "pending",
            Outcome::Connected => "connected",
            Outcome::Connecting => "connecting",
            Outcome::Refused => "refused",
            Outcome::TimedOut => "timed-out",
            Outcome::Unreachable => "unreachable",
            Outcome::Failed => "failed",
            Outcome::Downloaded => "downloaded",
            Outcome::Response => "response",
            Outcome::Replied => "replied",
            Outcome::NoReply => "no-reply",
            Outcome::IcmpError => "icmp-error",
            Outcome::Answered => "answered",
            Outcome::NxDomain => "nxdomain",
            Outcome::NoData => "nodata",
            Outcome::ServFail => "servfail",
            Outcome::DnsTimeout => "dns-timeout",
            Outcome::Classified => "classified",
            Outcome::Listed => "listed",
            Outcome::Waited => "waited",
            Outcome::Sent => "sent",
            Outcome::Reset => "reset",
        }
    }

    fn by_word(w: &str) -> Option<Outcome> {
        Outcome::ALL.iter().copied().find(|o| o.word() == w)
    }
}

/// Outcomes each action can end in.
pub fn outcomes(action: &str) -> &'static [Outcome] {
    use Outcome::*;
    match action {
        "send-mail" => &[Delivered, HandedOff, Bounced, Ndr, Deferred, Pending],
        "tcp-connect" => &[Connected, Connecting, Refused, TimedOut, Unreachable],
        "tcp-send" => &[Replied, NoReply, Reset, Failed],
        "udp-send" => &[Replied, NoReply, IcmpError, Unreachable],
        "outlook-connect" => &[Connected, Failed],
        "ftp-get" => &[Downloaded, Failed],
        "http-get" => &[Response, Connected, Failed],
        "ping" => &[Replied, NoReply, IcmpError, Unreachable],
        "dns-lookup" => &[Answered, NxDomain, NoData, Refused, ServFail, DnsTimeout],
        "nat-type" => &[Classified, Failed],
        "nat-table" => &[Listed],
        "wait" => &[Waited],
        _ => &[],
    }
}

/// An RFC 5780 mapping or filtering behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Behaviour {
    EndpointIndependent,
    AddressDependent,
    AddressAndPortDependent,
}

impl Behaviour {
    pub fn word(self) -> &'static str {
        match self {
            Behaviour::EndpointIndependent => "endpoint-independent",
            Behaviour::AddressDependent => "address-dependent",
            Behaviour::AddressAndPortDependent => "address-and-port-dependent",
        }
    }
    fn by_word(w: &str) -> Option<Behaviour> {
        [
            Behaviour::EndpointIndependent,
            Behaviour::AddressDependent,
            Behaviour::AddressAndPortDependent,
        ]
        .into_iter()
        .find(|b| b.word() == w)
    }
}

/// An ICMP error by name (RFC 792 types and codes; RFC 1812 code 13).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct IcmpKind {
    pub name: &'static str,
    pub icmp_type: u8,
    /// `None`: any code of the type.
    pub code: Option<u8>,
}

const ICMP_KINDS: &[IcmpKind] = &[
    IcmpKind {
        name: "net-unreachable",
        icmp_type: 3,
        code: Some(0),
    },
    IcmpKind {
        name: "host-unreachable",
        icmp_type: 3,
        code: Some(1),
    },
    IcmpKind {
        name: "protocol-unreachable",
        icmp_type: 3,
        code: Some(2),
    },
    IcmpKind {
        name: "port-unreachable",
        icmp_type: 3,
        code: Some(3),
    },
    IcmpKind {
        name: "fragmentation-needed",
        icmp_type: 3,
        code: Some(4),
    },
    IcmpKind {
        name: "admin-prohibited",
        icmp_type: 3,
        code: Some(13),
    },
    IcmpKind {
        name: "destination-unreachable",
        icmp_type: 3,
        code: None,
    },
    IcmpKind {
        name: "ttl-exceeded",
        icmp_type: 11,
        code: Some(0),
    },
    IcmpKind {
        name: "time-exceeded",
        icmp_type: 11,
        code: None,
    },
];

/// Frame dispositions a `trace` expectation may name (natsim-sim's codes).
const DISPOSITIONS: &[&str] = &[
    "in-flight",
    "delivered",
    "delivered-to-router",
    "dropped-by-nat-filter",
    "answered-by-nat",
    "dropped-by-nat",
    "no-route",
    "ttl-exceeded",
    "host-unreachable",
    "lost",
    "dropped-by-fault",
    "dropped",
    "held-by-nat",
];

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "expect", rename_all = "kebab-case")]
pub enum Expect {
    /// Holds always: the step runs for its effect (says so on purpose).
    Anything,
    Outcome {
        outcome: Outcome,
    },
    Not {
        inner: Box<Expect>,
    },
    /// `delivered to mailbox admin@example.com`: a mailbox took the message.
    Mailbox {
        address: String,
    },
    /// `via 203.0.113.1`: an address or host on the message's path.
    Via {
        hop: String,
    },
    Containing {
        outcome: Outcome,
        text: String,
    },
    TimedOutAfter {
        secs: f64,
    },
    ConnectedVia {
        endpoint: SocketAddrV4,
    },
    EndpointReturned {
        endpoint: SocketAddrV4,
    },
    FailedAt {
        stage: String,
    },
    Answer {
        value: String,
    },
    Status {
        code: u16,
    },
    Mapping {
        behaviour: Behaviour,
    },
    Filtering {
        behaviour: Behaviour,
    },
    SeenFrom {
        source: SocketAddrV4,
    },
    Icmp {
        kind: IcmpKind,
    },
    NatMapping {
        proto: L4,
        inside: SocketAddrV4,
        outside: SocketAddrV4,
    },
    NoNatMapping {
        proto: L4,
        inside: SocketAddrV4,
    },
    Trace {
        disposition: &'static str,
    },
    TraceStep {
        kind: String,
    },
    TraceContaining {
        text: String,
    },
}

mod read;
pub use read::parse;

/// Whether `a` and `b` can never both hold (`status 200` and `status 404`,
/// `connected` and `timed-out after 21s`, `x` and `not x`).
pub fn contradicts(a: &Expect, b: &Expect) -> bool {
    use Expect::*;
    let outcome_of = |e: &Expect| match e {
        Outcome { outcome } | Containing { outcome, .. } => Some(*outcome),
        TimedOutAfter { .. } => Some(crate::expect::Outcome::TimedOut),
        ConnectedVia { .. } => Some(crate::expect::Outcome::Connected),
        _ => None,
    };
    match (a, b) {
        (Not { inner }, x) | (x, Not { inner }) if **inner == *x => true,
        (Status { code: x }, Status { code: y }) => x != y,
        (Mapping { behaviour: x }, Mapping { behaviour: y })
        | (Filtering { behaviour: x }, Filtering { behaviour: y }) => x != y,
        (SeenFrom { source: x }, SeenFrom { source: y }) => x != y,
        (
            NatMapping { proto, inside, .. },
            NoNatMapping {
                proto: p2,
                inside: i2,
            },
        )
        | (
            NoNatMapping {
                proto: p2,
                inside: i2,
            },
            NatMapping { proto, inside, .. },
        ) => proto == p2 && inside == i2,
        _ => match (outcome_of(a), outcome_of(b)) {
            (Some(x), Some(y)) => x != y && !outcome_implies(x, y) && !outcome_implies(y, x),
            _ => false,
        },
    }
}

/// `a` holding means `b` holds too: an Exchange NDR is a bounce, an HTTP
/// response means the connection was made.
pub fn outcome_implies(a: Outcome, b: Outcome) -> bool {
    matches!(
        (a, b),
        (Outcome::Ndr, Outcome::Bounced) | (Outcome::Response, Outcome::Connected)
    )
}

impl std::fmt::Display for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expect::Anything => f.write_str("anything"),
            Expect::Outcome { outcome } => f.write_str(outcome.word()),
            Expect::Mailbox { address } => write!(f, "delivered to mailbox {address}"),
            Expect::Via { hop } => write!(f, "via {hop}"),
            Expect::Not { inner } => write!(f, "not {inner}"),
            Expect::Containing { outcome, text } => {
                write!(f, "{} containing \"{text}\"", outcome.word())
            }
            Expect::TimedOutAfter { secs } => write!(f, "timed-out after ≈{secs}s"),
            Expect::ConnectedVia { endpoint } => write!(f, "connected via {endpoint}"),
            Expect::EndpointReturned { endpoint } => write!(f, "endpoint returned {endpoint}"),
            Expect::FailedAt { stage } => write!(f, "failed at {stage}"),
            Expect::Answer { value } => write!(f, "answer {value}"),
            Expect::Status { code } => write!(f, "status {code}"),
            Expect::Mapping { behaviour } => write!(f, "mapping {}", behaviour.word()),
            Expect::Filtering { behaviour } => write!(f, "filtering {}", behaviour.word()),
            Expect::SeenFrom { source } => write!(f, "seen-from {source}"),
            Expect::Icmp { kind } => write!(f, "icmp {}", kind.name),
            Expect::NatMapping {
                proto,
                inside,
                outside,
            } => write!(f, "mapping {proto} {inside} -> {outside}"),
            Expect::NoNatMapping { proto, inside } => write!(f, "no mapping {proto} {inside}"),
            Expect::Trace { disposition } => write!(f, "trace {disposition}"),
            Expect::TraceStep { kind } => write!(f, "trace-step {kind}"),
            Expect::TraceContaining { text } => write!(f, "trace containing \"{text}\""),
        }
    }
}
