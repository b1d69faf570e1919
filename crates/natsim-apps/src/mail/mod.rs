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

/// Advances one message; true if it made progress worth another look
/// before the next poll.
fn step(m: &mut Outgoing, cx: &mut AppCx<'_>, p: &Policy<'_>) -> bool {
    match &mut m.stage {
        Stage::Done | Stage::Loopback => false,
        Stage::Wait(t) => {
            if cx.now >= m.submitted + p.give_up {
                let reason = match &m.status {
                    DeliveryStatus::Deferred { reason, .. } => reason.clone(),
                    _ => String::new(),
                };
                expire(m, cx, p, &reason);
                true
            } else if cx.now >= *t {
                m.refused_by = None;
                m.stage = Stage::Route;
                true
            } else {
                false
            }
        }
        Stage::Route => {
            let to = match p.ims {
                Some(i) => match i.outbound(&m.to) {
                    Ok(a) => a,
                    Err(diag) => {
                        let reason = diag.replace("\n      ", " ");
                        bounce(m, cx, p, reason, Some(diag));
                        return false;
                    }
                },
                None => m.to.clone(),
            };
            let domain = to.rsplit('@').next().unwrap_or("").to_string();
            // "Forward all messages to host" takes every message,
            // literals included.
            if let Some(a) = p.smart {
                m.stage = connect(cx, p, vec![a]);
                return true;
            }
            if let Some(lit) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
                match lit.parse::<Ipv4Addr>() {
                    Ok(a) => m.stage = connect(cx, p, vec![a]),
                    Err(_) => bounce(
                        m,
                        cx,
                        p,
                        format!("5.1.3 bad address literal {domain}"),
                        None,
                    ),
                }
                return true;
            }
            m.stage = Stage::Mx(
                Lookup::with_profile(&domain, RecordType::MX, cx.host.dns.clone(), p.resolver),
                domain,
            );
            true
        }
        Stage::Mx(l, domain) => {
            let Some(r) = l.poll(cx).cloned() else {
                return false;
            };
            let domain = domain.clone();
            match r {
                LookupResult::Exchanges { mx, .. } => {
                    let names: Vec<String> = mx.into_iter().map(|(_, n)| n).collect();
                    let lookup = Lookup::with_profile(&names[0], RecordType::A, cx.host.dns.clone(), p.resolver);
                    m.stage = Stage::A { names, lookup, addrs: Vec::new(), implicit: false, domain };
                }
                LookupResult::NoData { .. } => {
                    // RFC 5321 §5.1: no MX, use the domain's A record.
                    let lookup = Lookup::with_profile(&domain, RecordType::A, cx.host.dns.clone(), p.resolver);
                    m.stage = Stage::A { names: vec![domain.clone()], lookup, addrs: Vec::new(), implicit: true, domain };
                }
                LookupResult::NxDomain { server } => bounce(m, cx, p, format!("5.1.2 host unknown: DNS server {server} says {domain} does not exist (NXDOMAIN)"), None),
                LookupResult::Refused { server } => defer(m, cx, p, format!("DNS server {server} refused to answer for {domain}")),
                LookupResult::ServFail { server } => defer(m, cx, p, format!("DNS server {server} failed (SERVFAIL) for {domain}")),
                LookupResult::Timeout => defer(m, cx, p, format!("no DNS server answered for {domain}")),
                LookupResult::Addresses { .. } => bounce(m, cx, p, "unexpected DNS answer".into(), None),
            }
            true
        }
        Stage::A {
            names,
            lookup,
            addrs,
            implicit,
            domain,
        } => {
            let Some(r) = lookup.poll(cx).cloned() else {
                return false;
            };
            if let LookupResult::Addresses { addrs: a, .. } = &r {
                addrs.extend(a);
            }
            names.remove(0);
            if let Some(next) = names.first() {
                *lookup =
                    Lookup::with_profile(next, RecordType::A, cx.host.dns.clone(), p.resolver);
                return true;
            }
            if addrs.is_empty() {
                let why = if *implicit {
                    format!("5.1.2 no MX or A record for {domain} ({})", r.describe())
                } else {
                    format!(
                        "5.1.2 the mail exchangers of {domain} have no address ({})",
                        r.describe()
                    )
                };
                bounce(m, cx, p, why, None);
            } else {
                let a = addrs.clone();
                m.stage = connect(cx, p, a);
            }
            true
        }
        Stage::Connect {
            targets,
            idx,
            conn,
            failures,
        } => match conn.poll(cx).clone() {
            ConnectState::Connecting => false,
            ConnectState::Connected => {
                let server = targets[*idx];
                cx.log("mta", format!("connected to {server}:25"));
                m.stage = Stage::Talk {
                    conn: LineConn::new(conn.handle),
                    server,
                    step: 0,
                    reply: Vec::new(),
                };
                true
            }
            ConnectState::Failed(e) => {
                let line = format!("connect to {}:25 {e}", targets[*idx]);
                cx.log("mta", line.clone());
                m.attempts.push(line.clone());
                failures.push(line);
                *idx += 1;
                if *idx < targets.len() {
                    *conn = Connector::start(cx, (targets[*idx], 25));
                } else {
                    let reason = failures.join("; ");
                    defer(m, cx, p, reason);
                }
                true
            }
        },
        Stage::Talk {
            conn,
            server,
            step,
            reply,
        } => {
            let server = *server;
            let lines = conn.pump(cx);
            let mut progressed = false;
            for line in lines {
                reply.push(line.clone());
                if line.len() > 3 && line.as_bytes()[3] == b'-' {
                    continue;
                }
                let code = line
                    .get(..3)
                    .and_then(|c| c.parse::<u16>().ok())
                    .unwrap_or(0);
                let text = reply.join(" / ");
                reply.clear();
                progressed = true;
                let ok = match *step {
                    0 => code == 220,
                    1 => code == 250,
                    2 => code == 250,
                    3 => code == 250 || code == 251,
                    4 => code == 354,
                    5 => code == 250,
                    _ => true,
                };
                if !ok {
                    m.attempts.push(format!("{server}: {text}"));
                    m.refused_by = Some((server, cx.now));
                    conn.quit("QUIT\r\n");
                    conn.pump(cx);
                    let h = conn.handle;
                    m.closing.push(std::mem::replace(conn, LineConn::new(h)));
                    if (400..500).contains(&code) {
                        defer(m, cx, p, format!("{server} answered {text}"));
                    } else {
                        bounce(
                            m,
                            cx,
                            p,
                            format!("{server} answered {text}"),
                            Some(text.clone()),
                        );
                    }
                    return false;
                }
                *step += 1;
                match *step {
                    1 => conn.send(&format!("EHLO {}\r\n", p.me)),
                    2 => conn.send(&format!("MAIL FROM:<{}>\r\n", m.from)),
                    3 => {
                        let to = p
                            .ims
                            .and_then(|i| i.outbound(&m.to).ok())
                            .unwrap_or_else(|| m.to.clone());
                        conn.send(&format!("RCPT TO:<{to}>\r\n"))
                    }
                    4 => conn.send("DATA\r\n"),
                    5 => conn.send(&dot_stuffed(&m.data)),
                    6 => {
                        conn.quit("QUIT\r\n");
                        cx.log("mta", format!("delivered message to {} via {server}", m.to));
                        m.attempts.push(format!("delivered via {server}: {text}"));
                        m.status = DeliveryStatus::Delivered {
                            server: server.to_string(),
                            reply: text,
                        };
                        conn.pump(cx);
                        let h = conn.handle;
                        m.closing.push(std::mem::replace(conn, LineConn::new(h)));
                        m.stage = Stage::Done;
                        return false;
                    }
                    _ => {}
                }
            }
            conn.pump(cx);
            if !progressed && conn.finished(cx) {
                defer(m, cx, p, format!("{server} closed the connection"));
                return true;
            }
            false
        }
    }
}

/// The DATA payload: lines beginning with `.` doubled, then `CRLF.CRLF`
/// (RFC 5321 §4.5.2).
fn dot_stuffed(data: &str) -> String {
    let mut out = String::with_capacity(data.len() + 8);
    for line in data.split_inclusive("\r\n") {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
    }
    if !out.ends_with("\r\n") {
        out.push_str("\r\n");
    }
    out.push_str(".\r\n");
    out
}

fn connect(cx: &mut AppCx<'_>, p: &Policy<'_>, targets: Vec<Ipv4Addr>) -> Stage {
    if p.ims.is_some() && targets[0] == cx.host.addr {
        cx.log(
            "mta",
            format!(
                "{} is this server's own address: delivering over loopback",
                targets[0]
            ),
        );
        return Stage::Loopback;
    }
    let conn = Connector::start(cx, (targets[0], 25));
    Stage::Connect {
        targets,
        idx: 0,
        conn,
        failures: Vec::new(),
    }
}

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
    fn dot_stuffing_doubles_leading_dots_and_terminates() {
        assert_eq!(
            dot_stuffed("Subject: x\r\n\r\n.hidden\r\nend\r\n"),
            "Subject: x\r\n\r\n..hidden\r\nend\r\n.\r\n"
        );
    }

    #[test]
    fn received_fields_are_counted_in_the_header_block_only() {
        let d = "Received: from a by b\r\nreceived: from c by d\r\nMessage-ID: <1@x>\r\n\r\nReceived: in the body\r\n";
        assert_eq!(count_received(d), 2);
        assert_eq!(message_id(d).as_deref(), Some("<1@x>"));
    }
}
