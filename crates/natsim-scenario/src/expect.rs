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

fn quoted(s: &str) -> Option<String> {
    let s = s.trim();
    s.strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .map(String::from)
}

fn socket(s: &str) -> Result<SocketAddrV4, String> {
    crate::parse::socket_text(s).ok_or_else(|| format!("`{s}` is not ADDRESS:PORT"))
}

fn l4(s: &str) -> Result<L4, String> {
    match s {
        "tcp" => Ok(L4::Tcp),
        "udp" => Ok(L4::Udp),
        o => Err(format!("`{o}` is not `tcp` or `udp`")),
    }
}

/// Parses one expectation for `action`; `Err` explains what was expected.
pub fn parse(text: &str, action: &str) -> Result<Expect, String> {
    let t = text.trim();
    let (head, rest) = t.split_once(' ').unwrap_or((t, ""));
    let rest = rest.trim();
    let e = match (head, rest) {
        ("anything", "") => Expect::Anything,
        ("not", r) if !r.is_empty() => {
            let inner = parse(r, action)?;
            if matches!(inner, Expect::Not { .. } | Expect::Anything) {
                return Err("`not` before a plain expectation".into());
            }
            Expect::Not {
                inner: Box::new(inner),
            }
        }
        ("trace", r) if !r.is_empty() => {
            if let Some(q) = r.strip_prefix("containing ") {
                Expect::TraceContaining {
                    text: quoted(q).ok_or("a quoted text after `containing`")?,
                }
            } else {
                let disposition = DISPOSITIONS
                    .iter()
                    .find(|d| **d == r)
                    .ok_or_else(|| format!("a disposition: {}", DISPOSITIONS.join(", ")))?;
                Expect::Trace { disposition }
            }
        }
        ("trace-step", r) if !r.is_empty() => Expect::TraceStep {
            kind: r.to_string(),
        },
        ("timed-out", r) if r.starts_with("after") => {
            let d = r
                .trim_start_matches("after")
                .trim()
                .trim_start_matches('≈')
                .trim_start_matches('~');
            let secs = crate::parse::duration_text(d)
                .ok_or("a duration such as `21s` after `timed-out after`")?
                .as_secs_f64();
            Expect::TimedOutAfter { secs }
        }
        ("connected", r) if r.starts_with("via ") => Expect::ConnectedVia {
            endpoint: socket(&r[4..])?,
        },
        ("endpoint", r) if r.starts_with("returned ") => Expect::EndpointReturned {
            endpoint: socket(&r[9..])?,
        },
        ("failed", r) if r.starts_with("at ") => Expect::FailedAt {
            stage: r[3..].trim().to_string(),
        },
        ("seen-from", r) => Expect::SeenFrom { source: socket(r)? },
        ("icmp", r) => {
            let kind = ICMP_KINDS
                .iter()
                .find(|k| k.name == r)
                .copied()
                .ok_or_else(|| {
                    let names: Vec<_> = ICMP_KINDS.iter().map(|k| k.name).collect();
                    format!("an ICMP error name after `icmp`: {}", names.join(", "))
                })?;
            Expect::Icmp { kind }
        }
        ("answer", r) if !r.is_empty() => Expect::Answer {
            value: r.to_string(),
        },
        ("status", r) => {
            let code: u16 = r
                .parse()
                .map_err(|_| "an HTTP status code after `status`")?;
            if !(100..=599).contains(&code) {
                return Err(format!(
                    "HTTP status {code} cannot occur; status codes are 100–599 (RFC 9110 §15)"
                ));
            }
            Expect::Status { code }
        }
        ("mapping", r) if action == "nat-table" => {
            // `udp 192.168.1.10:40000 -> 203.0.113.1:40000`
            let (proto, rest) = r
                .split_once(' ')
                .ok_or("`mapping udp IN:PORT -> OUT:PORT`")?;
            let (inside, outside) = rest
                .split_once("->")
                .ok_or("`mapping udp IN:PORT -> OUT:PORT`")?;
            Expect::NatMapping {
                proto: l4(proto)?,
                inside: socket(inside)?,
                outside: socket(outside)?,
            }
        }
        ("no", r) if action == "nat-table" && r.starts_with("mapping ") => {
            let (proto, inside) = r[8..]
                .trim()
                .split_once(' ')
                .ok_or("`no mapping udp IN:PORT`")?;
            Expect::NoNatMapping {
                proto: l4(proto)?,
                inside: socket(inside)?,
            }
        }
        ("mapping", r) => Expect::Mapping {
            behaviour: Behaviour::by_word(r).ok_or(
                "a behaviour: endpoint-independent, address-dependent, address-and-port-dependent",
            )?,
        },
        ("filtering", r) => Expect::Filtering {
            behaviour: Behaviour::by_word(r).ok_or(
                "a behaviour: endpoint-independent, address-dependent, address-and-port-dependent",
            )?,
        },
        ("delivered", r) if r.starts_with("to mailbox ") => Expect::Mailbox {
            address: r["to mailbox ".len()..].trim().to_string(),
        },
        ("via", r) if !r.is_empty() => Expect::Via { hop: r.to_string() },
        (w, r) if r.starts_with("containing ") => {
            let outcome = Outcome::by_word(w)
                .ok_or_else(|| format!("an outcome such as {}", hint(action)))?;
            Expect::Containing {
                outcome,
                text: quoted(&r[11..]).ok_or("a quoted text after `containing`")?,
            }
        }
        (w, "") => Expect::Outcome {
            outcome: Outcome::by_word(w).ok_or_else(|| {
                format!(
                    "`{action}` never ends `{w}`; expected one of {}",
                    hint(action)
                )
            })?,
        },
        _ => return Err(format!("an expectation such as {}", hint(action))),
    };
    check(&e, action)?;
    Ok(e)
}

fn hint(action: &str) -> String {
    let w = outcomes(action);
    if w.is_empty() {
        "`trace dropped-by-nat-filter`".into()
    } else {
        w.iter()
            .map(|w| format!("`{}`", w.word()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Rejects expectations the action can never meet.
fn check(e: &Expect, action: &str) -> Result<(), String> {
    let ok = match e {
        Expect::Anything | Expect::Not { .. } => true,
        Expect::Outcome { outcome } => {
            if !outcomes(action).contains(outcome) {
                return Err(format!(
                    "`{action}` never ends `{}`; expected one of {}",
                    outcome.word(),
                    hint(action)
                ));
            }
            true
        }
        Expect::Containing { outcome, .. } => match action {
            "send-mail" => matches!(outcome, Outcome::Deferred | Outcome::Bounced | Outcome::Ndr),
            "outlook-connect" => matches!(outcome, Outcome::Failed | Outcome::Connected),
            "ftp-get" | "http-get" | "tcp-connect" | "tcp-send" => *outcome == Outcome::Failed,
            _ => false,
        },
        Expect::TimedOutAfter { .. } => action == "tcp-connect",
        Expect::Mailbox { .. } | Expect::Via { .. } => action == "send-mail",
        Expect::ConnectedVia { .. } | Expect::EndpointReturned { .. } => {
            action == "outlook-connect"
        }
        Expect::FailedAt { .. } => matches!(action, "outlook-connect" | "ftp-get"),
        Expect::Answer { .. } => action == "dns-lookup",
        Expect::Status { .. } => action == "http-get",
        Expect::Mapping { .. } | Expect::Filtering { .. } => action == "nat-type",
        Expect::SeenFrom { .. } => matches!(action, "tcp-connect" | "udp-send"),
        Expect::Icmp { .. } => matches!(action, "ping" | "udp-send" | "tcp-connect"),
        Expect::NatMapping { .. } | Expect::NoNatMapping { .. } => action == "nat-table",
        Expect::Trace { .. } | Expect::TraceStep { .. } | Expect::TraceContaining { .. } => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "this expectation cannot apply to a `{action}` step; expected one of {}",
            hint(action)
        ))
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations_parse_and_impossible_ones_are_refused() {
        assert_eq!(
            parse("timed-out after ≈21s", "tcp-connect").unwrap(),
            Expect::TimedOutAfter { secs: 21.0 }
        );
        assert_eq!(
            parse("ndr containing \"No proxy for Recipient\"", "send-mail").unwrap(),
            Expect::Containing {
                outcome: Outcome::Ndr,
                text: "No proxy for Recipient".into()
            }
        );
        assert!(parse("delivered", "ping")
            .unwrap_err()
            .contains("never ends"));
        assert!(parse("status 200", "tcp-connect").is_err());
        assert!(parse("status 999", "http-get")
            .unwrap_err()
            .contains("cannot occur"));
        assert!(parse("trace dropped-by-nat", "ping").is_ok());
        assert!(parse("trace dropped-by-nowhere", "ping").is_err());
        assert!(parse("seen-from 203.0.113.1:40000", "udp-send").is_ok());
        assert!(parse("seen-from 203.0.113.1", "udp-send").is_err());
        assert!(parse("icmp port-unreachable", "udp-send").is_ok());
        assert!(parse("not seen-from 203.0.113.1:40000", "tcp-connect").is_ok());
        assert!(parse("not not delivered", "send-mail").is_err());
        assert_eq!(
            parse(
                "mapping udp 192.168.1.10:40000 -> 203.0.113.1:40000",
                "nat-table"
            )
            .unwrap(),
            Expect::NatMapping {
                proto: L4::Udp,
                inside: "192.168.1.10:40000".parse().unwrap(),
                outside: "203.0.113.1:40000".parse().unwrap()
            }
        );
        assert!(parse("no mapping udp 192.168.1.10:40000", "nat-table").is_ok());
    }

    #[test]
    fn contradictions_are_found() {
        let p = |s| parse(s, "http-get").unwrap();
        assert!(contradicts(&p("status 200"), &p("status 404")));
        assert!(!contradicts(&p("status 200"), &p("status 200")));
        let t = |s| parse(s, "tcp-connect").unwrap();
        assert!(contradicts(&t("connected"), &t("timed-out after 21s")));
        assert!(contradicts(&t("connected"), &t("not connected")));
        assert!(!contradicts(&t("connected"), &t("seen-from 203.0.113.1:1")));
    }
}
