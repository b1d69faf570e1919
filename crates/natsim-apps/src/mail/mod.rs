//! Mail transfer: an RFC 5321 §5 sending MTA ("Internet mail host"), also
//! the outbound half of the Exchange IMS ([`crate::ims`]).
//!
//! The MTA routes each message (smart host, address literal, or MX then
//! the implicit A record), connects with the host's TCP profile, speaks
//! SMTP, and reports `Delivered` (to the next MTA: where the message goes
//! from there is [`crate::fate`]'s business), `Deferred` (with the reason;
//! retried on the retry schedule until `give_up_after`, then returned) or
//! `Bounced` (with the body returned to the sender: an Exchange NDR when
//! the MTA is an IMS, a Unix MTA's DSN otherwise).
//!
//! Every message carries a `Message-ID` and the `Received:` fields the
//! servers on its way added (RFC 5321 §4.4), so it can be followed from
//! MTA to MTA and a loop can be counted.

use crate::dns::{Lookup, LookupResult};
use crate::ims_config::{horizon_text, retry_after, schedule_text};
pub use crate::ims_config::{AddressSpace, ImsConfig, RoutingEntry};
use crate::ndr;
use crate::net::LineConn;
pub use crate::smtp::{count_received, message_id};
use hickory_proto::rr::RecordType;
use natsim_nat::Instant;
use natsim_sim::tcp::{ConnectState, Connector};
use natsim_sim::{App, AppCx};
use std::net::Ipv4Addr;
use std::time::Duration;

/// Where a message stands at this MTA.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum DeliveryStatus {
    Pending,
    /// Handed to the next MTA at `server` (the address dialled).
    Delivered {
        server: String,
        reply: String,
    },
    Deferred {
        reason: String,
        attempts: u32,
    },
    /// Returned to the sender with `ndr` (an Exchange NDR when
    /// `exchange_ndr`, else a DSN).
    Bounced {
        reason: String,
        ndr: String,
        exchange_ndr: bool,
    },
}

impl DeliveryStatus {
    pub fn code(&self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered { .. } => "delivered",
            DeliveryStatus::Deferred { .. } => "deferred",
            DeliveryStatus::Bounced { .. } => "bounced",
        }
    }
    /// True once nothing more will happen without a retry timer.
    pub fn settled(&self) -> bool {
        !matches!(self, DeliveryStatus::Pending)
    }
}

/// A message handed to the MTA.
#[derive(Debug)]
pub struct Outgoing {
    pub from: String,
    /// As addressed by the sender (may be `[TYPE:addr]`).
    pub to: String,
    pub subject: String,
    pub submitted: Instant,
    pub status: DeliveryStatus,
    /// One line per attempt, for reports.
    pub attempts: Vec<String>,
    pub message_id: String,
    /// The message as it goes on the wire after DATA (headers, blank
    /// line, body), before dot-stuffing.
    pub data: String,
    /// `Received:` fields already in `data`.
    pub received: usize,
    /// Failed attempts so far (for the retry schedule).
    pub failures: u32,
    /// The server that answered the last attempt with a 4xx or 5xx reply
    /// in the SMTP dialogue, and when (so the message's path includes it).
    pub refused_by: Option<(Ipv4Addr, Instant)>,
    stage: Stage,
    /// Sessions that sent QUIT, pumped until both sides have closed.
    closing: Vec<LineConn>,
}

#[derive(Debug)]
enum Stage {
    Route,
    Mx(Lookup, String),
    A {
        names: Vec<String>,
        lookup: Lookup,
        addrs: Vec<Ipv4Addr>,
        implicit: bool,
        domain: String,
    },
    Connect {
        targets: Vec<Ipv4Addr>,
        idx: usize,
        conn: Connector,
        failures: Vec<String>,
    },
    Talk {
        conn: LineConn,
        server: Ipv4Addr,
        step: u8,
        reply: Vec<String>,
    },
    /// Addressed to this host itself: the IMS takes it from its own queue
    /// (a host connecting to its own address reaches itself over loopback).
    Loopback,
    Wait(Instant),
    Done,
}

/// Message handle.
pub type MsgId = usize;

/// A sending MTA.
pub struct Mta {
    pub hostname: String,
    pub smart_host: Option<Ipv4Addr>,
    /// Wait after the 1st, 2nd, ... failed attempt; the last repeats.
    pub retry_schedule: Vec<Duration>,
    /// Returned to the sender once queued this long.
    pub give_up_after: Duration,
    /// Resolver profile (`bind` for a Unix MTA, `windows` for the IMS).
    pub resolver: &'static str,
    pub ims: Option<ImsConfig>,
    pub messages: Vec<Outgoing>,
}

impl Mta {
    /// A Unix MTA with sendmail's defaults: a queue run every 30 minutes,
    /// messages returned after 5 days (`Timeout.queuereturn=5d`).
    pub fn new(hostname: &str) -> Mta {
        Mta {
            hostname: hostname.into(),
            smart_host: None,
            retry_schedule: vec![Duration::from_secs(30 * 60)],
            give_up_after: Duration::from_secs(5 * 24 * 3600),
            resolver: "bind",
            ims: None,
            messages: Vec::new(),
        }
    }

    /// Queues a new message; delivery starts at the next poll.
    pub fn submit(&mut self, from: &str, to: &str, subject: &str, now: Instant) -> MsgId {
        let id = format!(
            "<{}.{}@{}>",
            self.messages.len() + 1,
            now.total_micros(),
            self.hostname
        );
        let data = format!(
            "Message-ID: {id}\r\nFrom: <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\r\nSent through natsim.\r\n"
        );
        self.relay(from, to, &data, now)
    }

    /// Queues a message received from another MTA, unchanged (its
    /// `Received:` fields included), for onward delivery to `to`.
    pub fn relay(&mut self, from: &str, to: &str, data: &str, now: Instant) -> MsgId {
        let subject = data
            .split("\r\n")
            .take_while(|l| !l.is_empty())
            .find_map(|l| l.strip_prefix("Subject: "))
            .unwrap_or("")
            .to_string();
        self.messages.push(Outgoing {
            from: from.into(),
            to: to.into(),
            subject,
            submitted: now,
            status: DeliveryStatus::Pending,
            attempts: Vec::new(),
            message_id: message_id(data).unwrap_or_default(),
            data: data.to_string(),
            received: count_received(data),
            failures: 0,
            stage: Stage::Route,
            closing: Vec::new(),
            refused_by: None,
        });
        self.messages.len() - 1
    }

    pub fn status(&self, id: MsgId) -> Option<&DeliveryStatus> {
        self.messages.get(id).map(|m| &m.status)
    }

    /// "retrying every .25, .5, 1, 4 h; gives up after 48 h".
    pub fn retry_text(&self) -> String {
        format!(
            "retrying after {}; gives up after {}",
            schedule_text(&self.retry_schedule),
            horizon_text(self.give_up_after)
        )
    }

    /// Messages addressed to this host itself, taken off the queue (the
    /// IMS feeds them to its own SMTP service).
    pub fn take_loopback(&mut self, now: Instant) -> Vec<MsgId> {
        let mut v = Vec::new();
        for (k, m) in self.messages.iter_mut().enumerate() {
            if matches!(m.stage, Stage::Loopback) {
                m.stage = Stage::Done;
                m.attempts.push(format!("{now}: delivered over loopback"));
                v.push(k);
            }
        }
        v
    }

    fn drive(&mut self, cx: &mut AppCx<'_>) {
        let smart = self
            .ims
            .as_ref()
            .and_then(|i| i.smart_host)
            .or(self.smart_host);
        let policy = Policy {
            smart,
            ims: self.ims.as_ref(),
            me: &self.hostname,
            retry: &self.retry_schedule,
            give_up: self.give_up_after,
            resolver: self.resolver,
        };
        for m in &mut self.messages {
            for c in &mut m.closing {
                c.pump(cx);
            }
            m.closing.retain(|c| !c.closed(cx));
            for _ in 0..8 {
                if !step(m, cx, &policy) {
                    break;
                }
            }
        }
    }
}

/// What `step` needs of the MTA besides the message.
struct Policy<'a> {
    smart: Option<Ipv4Addr>,
    ims: Option<&'a ImsConfig>,
    me: &'a str,
    retry: &'a [Duration],
    give_up: Duration,
    resolver: &'static str,
}

fn bare_recipient(to: &str) -> String {
    to.trim_start_matches('[')
        .trim_end_matches(']')
        .rsplit(':')
        .next()
        .unwrap_or(to)
        .to_string()
}

fn bounce(
    m: &mut Outgoing,
    cx: &mut AppCx<'_>,
    p: &Policy<'_>,
    reason: String,
    diagnostic: Option<String>,
) {
    let diag = diagnostic.unwrap_or_else(|| reason.clone());
    let recipient = bare_recipient(&m.to);
    let (body, exchange_ndr) = match p.ims {
        Some(_) => (
            ndr::ndr_message(&m.from, &m.subject, m.submitted, &recipient, cx.now, &diag),
            true,
        ),
        None => (
            ndr::dsn_text(p.me, &m.from, &m.subject, &recipient, &reason),
            false,
        ),
    };
    cx.log("mta", format!("returned message to {}: {reason}", m.to));
    m.status = DeliveryStatus::Bounced {
        reason,
        ndr: body,
        exchange_ndr,
    };
    m.stage = Stage::Done;
}

/// A failed attempt: queued for the next retry, or, once the message has
/// been queued for the whole time-out, returned to its sender. The queue
/// times out at the horizon itself, not at the retry after it.
fn defer(m: &mut Outgoing, cx: &mut AppCx<'_>, p: &Policy<'_>, reason: String) {
    m.failures += 1;
    let expiry = m.submitted + p.give_up;
    if cx.now >= expiry {
        expire(m, cx, p, &reason);
        return;
    }
    let retry = retry_after(p.retry, m.failures);
    let wake = (cx.now + retry).min(expiry);
    let next = if wake == expiry {
        format!(
            "returned at the {} time-out unless delivered first",
            horizon_text(p.give_up)
        )
    } else {
        format!("retry in {} min", retry.as_secs() / 60)
    };
    cx.log(
        "mta",
        format!("deferred message to {}: {reason}; {next}", m.to),
    );
    m.status = DeliveryStatus::Deferred {
        reason,
        attempts: m.failures,
    };
    m.stage = Stage::Wait(wake);
}

fn expire(m: &mut Outgoing, cx: &mut AppCx<'_>, p: &Policy<'_>, reason: &str) {
    let expired = format!(
        "4.4.7 delivery time expired after {} in the queue: {reason}",
        horizon_text(p.give_up)
    );
    let diag = p.ims.map(|i| format!("{} {expired}", i.diag_prefix()));
    bounce(m, cx, p, expired, diag);
}

mod session;
use session::step;

impl App for Mta {
    fn poll(&mut self, cx: &mut AppCx<'_>) {
        self.drive(cx);
    }
    fn poll_at(&self) -> Option<Instant> {
        self.messages
            .iter()
            .filter_map(|m| match &m.stage {
                Stage::Wait(t) => Some(*t),
                Stage::Mx(l, _) => l.poll_at(),
                Stage::A { lookup, .. } => lookup.poll_at(),
                Stage::Connect { conn, .. } => conn.poll_at(),
                _ => None,
            })
            .min()
    }
    natsim_sim::any_impls!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_fields_are_counted_in_the_header_block_only() {
        let d = "Received: from a by b\r\nreceived: from c by d\r\nMessage-ID: <1@x>\r\n\r\nReceived: in the body\r\n";
        assert_eq!(count_received(d), 2);
        assert_eq!(message_id(d).as_deref(), Some("<1@x>"));
    }
}
