//! Mail transfer: an RFC 5321 §5 sending MTA ("Internet mail host") and the
//! Exchange 5.5 Internet Mail Service (IMS) built on it.
//!
//! The MTA routes each message (address literal, smart host, or MX then the
//! implicit A record), connects with the host's TCP profile, speaks SMTP,
//! and reports `Delivered`, `Deferred` (with the reason; retried every
//! `retry_interval` until `give_up_after`) or `Bounced` (with the server's
//! text or an NDR). The IMS adds the knobs the KBs name: address spaces,
//! "Forward all messages to host", "Reroute incoming SMTP mail" with
//! routing entries, site addressing, the `OverrideProxyOut` / `SiteDomain`
//! registry values and the service-pack level.

use crate::dns::{Lookup, LookupResult};
use crate::net::LineConn;
use crate::smtp::{RcptPolicy, SmtpServer};
use hickory_proto::rr::RecordType;
use natsim_nat::Instant;
use natsim_sim::tcp::{ConnectState, Connector};
use natsim_sim::{App, AppCx};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

/// Where a message stands.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum DeliveryStatus {
    Pending,
    Delivered { server: String, reply: String },
    Deferred { reason: String, attempts: u32 },
    Bounced { reason: String, ndr: String },
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

/// An address space on the IMS (Type, Address, Cost).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressSpace {
    pub kind: String,
    pub address: String,
    pub cost: u8,
}

/// A "Reroute incoming SMTP mail" routing entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoutingEntry {
    /// A domain, or an address literal such as `192.0.2.10`.
    pub domain: String,
    pub accept_as_inbound: bool,
}

/// The Exchange 5.5 IMS configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImsConfig {
    pub org: String,
    pub site: String,
    pub server: String,
    pub service_pack: u8,
    pub address_spaces: Vec<AddressSpace>,
    /// "Forward all messages to host" (the ISP's mail server, by IP).
    pub smart_host: Option<Ipv4Addr>,
    /// "Reroute incoming SMTP mail (required for POP3 support)".
    pub reroute: bool,
    pub routing: Vec<RoutingEntry>,
    /// Site addressing: the default SMTP proxy domain.
    pub site_domain: String,
    /// Mailbox aliases (local parts) on this server.
    pub mailboxes: Vec<String>,
    /// Values under HKLM\SYSTEM\CurrentControlSet\Services\MSExchangeIMC\Parameters.
    pub registry: BTreeMap<String, String>,
}

impl ImsConfig {
    pub fn new(org: &str, site: &str, server: &str, site_domain: &str) -> ImsConfig {
        ImsConfig {
            org: org.into(),
            site: site.into(),
            server: server.into(),
            service_pack: 0,
            address_spaces: vec![AddressSpace {
                kind: "SMTP".into(),
                address: "*".into(),
                cost: 1,
            }],
            smart_host: None,
            reroute: false,
            routing: Vec::new(),
            site_domain: site_domain.to_ascii_lowercase(),
            mailboxes: Vec::new(),
            registry: BTreeMap::new(),
        }
    }

    fn reg(&self, key: &str) -> Option<&str> {
        self.registry
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    fn routes_inbound(&self, domain: &str) -> bool {
        let bare = domain.trim_start_matches('[').trim_end_matches(']');
        self.reroute
            && self.routing.iter().any(|r| {
                r.accept_as_inbound
                    && (r.domain.eq_ignore_ascii_case(domain)
                        || r.domain.trim_start_matches('[').trim_end_matches(']') == bare)
            })
    }

    /// Whether mail for `domain` is for this site.
    pub fn is_local(&self, domain: &str) -> bool {
        if domain.starts_with('[') {
            return self.routes_inbound(domain);
        }
        domain.eq_ignore_ascii_case(&self.site_domain) || self.routes_inbound(domain)
    }

    /// Routes an outbound recipient as written by an Exchange user
    /// (`user@host` or `[TYPE:address]`): the SMTP address to deliver to,
    /// or the reason for an NDR.
    pub fn outbound(&self, recipient: &str) -> Result<String, String> {
        let (kind, addr) = match recipient
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .and_then(|r| r.split_once(':'))
        {
            Some((k, a)) => (k.to_string(), a.to_string()),
            None => ("SMTP".to_string(), recipient.to_string()),
        };
        let domain = addr.rsplit('@').next().unwrap_or("");
        let space = self
            .address_spaces
            .iter()
            .filter(|s| {
                s.kind.eq_ignore_ascii_case(&kind)
                    && (s.address == "*"
                        || domain
                            .to_ascii_lowercase()
                            .ends_with(&s.address.to_ascii_lowercase()))
            })
            .min_by_key(|s| s.cost);
        if space.is_none() {
            return Err("No transport provider available for delivery to this recipient".into());
        }
        if !kind.eq_ignore_ascii_case("SMTP") {
            // Q183801: only SMTP-type mail, unless SP1 and the registry
            // say which type to treat as SMTP and which domain to use.
            let fixed = self.service_pack >= 1
                && self
                    .reg("OverrideProxyOut")
                    .is_some_and(|v| v.eq_ignore_ascii_case(&kind))
                && self.reg("SiteDomain").is_some();
            if !fixed {
                return Err(format!(
                    "MSEXCH:IMS:{}:{}:{} 0 (000D06B5) No proxy for\n      Recipient",
                    self.org, self.site, self.server
                ));
            }
        }
        Ok(addr)
    }
}

/// The IMS's inbound policy.
impl RcptPolicy for ImsConfig {
    fn rcpt(&self, addr: &str) -> Result<(), String> {
        let (local, domain) = addr.rsplit_once('@').unwrap_or((addr, ""));
        if self.is_local(domain) {
            if self.mailboxes.is_empty()
                || self.mailboxes.iter().any(|m| m.eq_ignore_ascii_case(local))
            {
                return Ok(());
            }
            return Err(format!("550 5.1.1 {addr}... User unknown"));
        }
        if self.reroute {
            return Ok(()); // relayed for POP3 clients
        }
        Err(format!("550 5.7.1 Unable to relay for {addr}"))
    }
}

/// Formats virtual time as the NDR's `M/D/YY h:mm AM` (epoch 1/5/98 7:31 PM).
pub fn ndr_time(t: Instant) -> String {
    let start_min = 19 * 60 + 31;
    let total_min = start_min + t.total_micros() / 60_000_000;
    let (mut day, min) = (5 + total_min / 1440, total_min % 1440);
    let mut month = 1;
    let dim = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    while day > dim[(month - 1) % 12] as u64 {
        day -= dim[(month - 1) % 12] as u64;
        month += 1;
    }
    let (h, m) = (min / 60, min % 60);
    let (h12, ampm) = match h {
        0 => (12, "AM"),
        1..=11 => (h, "AM"),
        12 => (12, "PM"),
        _ => (h - 12, "PM"),
    };
    format!("{month}/{day}/98 {h12}:{m:02} {ampm}")
}

/// `Monday, January 05, 1998 8:01 PM` for the NDR's Sent header.
pub fn ndr_long_time(t: Instant) -> String {
    let short = ndr_time(t);
    let (date, clock) = short.split_once(' ').unwrap_or((&short, ""));
    let mut it = date.split('/').map(|x| x.parse::<usize>().unwrap_or(1));
    let (month, day) = (it.next().unwrap_or(1), it.next().unwrap_or(1));
    let months = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let days = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    let dim = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    // 1998-01-05 was a Monday.
    let ordinal: usize = dim[..month - 1].iter().sum::<usize>() + day;
    let weekday = days[(ordinal + 7 - 5) % 7];
    format!(
        "{weekday}, {} {day:02}, 1998 {clock}",
        months[(month - 1) % 12]
    )
}

/// A complete NDR as Outlook shows it (headers, then [`ndr_text`]).
pub fn ndr_message(
    sender: &str,
    subject: &str,
    sent: Instant,
    recipient: &str,
    at: Instant,
    diagnostic: &str,
) -> String {
    format!(
        "From: System Administrator\nSent: {}\nTo: '{sender}'\nSubject: Undeliverable: {subject}\n\n{}",
        ndr_long_time(at),
        ndr_text(subject, sent, recipient, at, diagnostic)
    )
}

/// The body of an Exchange non-delivery report, laid out as Q183801 shows.
pub fn ndr_text(
    subject: &str,
    sent: Instant,
    recipient: &str,
    at: Instant,
    diagnostic: &str,
) -> String {
    format!(
        "Your message did not reach some or all of the intended recipients.\n\n   Subject: {subject}\n   Sent: {}\n\nThe following recipient(s) could not be reached:\n\n  `{recipient}' on {}\n      Unable to deliver the message due to a communications failure\n      {diagnostic}\n",
        ndr_time(sent),
        ndr_time(at)
    )
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
    Wait(Instant),
    Done,
}

/// Message handle.
pub type MsgId = usize;

/// A sending MTA.
pub struct Mta {
    pub hostname: String,
    pub smart_host: Option<Ipv4Addr>,
    pub retry_interval: Duration,
    pub give_up_after: Duration,
    pub ims: Option<ImsConfig>,
    pub messages: Vec<Outgoing>,
}

impl Mta {
    pub fn new(hostname: &str) -> Mta {
        Mta {
            hostname: hostname.into(),
            smart_host: None,
            retry_interval: Duration::from_secs(30 * 60),
            give_up_after: Duration::from_secs(2 * 24 * 3600),
            ims: None,
            messages: Vec::new(),
        }
    }

    /// Queues a message; delivery starts at the next poll.
    pub fn submit(&mut self, from: &str, to: &str, subject: &str, now: Instant) -> MsgId {
        self.messages.push(Outgoing {
            from: from.into(),
            to: to.into(),
            subject: subject.into(),
            submitted: now,
            status: DeliveryStatus::Pending,
            attempts: Vec::new(),
            stage: Stage::Route,
            closing: Vec::new(),
        });
        self.messages.len() - 1
    }

    pub fn status(&self, id: MsgId) -> Option<&DeliveryStatus> {
        self.messages.get(id).map(|m| &m.status)
    }

    fn drive(&mut self, cx: &mut AppCx<'_>) {
        let smart = self
            .ims
            .as_ref()
            .and_then(|i| i.smart_host)
            .or(self.smart_host);
        for m in &mut self.messages {
            for c in &mut m.closing {
                c.pump(cx);
            }
            m.closing.retain(|c| !c.closed(cx));
            for _ in 0..8 {
                if !step(
                    m,
                    cx,
                    smart,
                    self.ims.as_ref(),
                    &self.hostname,
                    self.retry_interval,
                    self.give_up_after,
                ) {
                    break;
                }
            }
        }
    }
}

fn bounce(m: &mut Outgoing, cx: &mut AppCx<'_>, reason: String, diagnostic: Option<String>) {
    let diag = diagnostic.unwrap_or_else(|| reason.clone());
    let recipient =
        m.to.trim_start_matches('[')
            .trim_end_matches(']')
            .rsplit(':')
            .next()
            .unwrap_or(&m.to)
            .to_string();
    let ndr = ndr_message(&m.from, &m.subject, m.submitted, &recipient, cx.now, &diag);
    cx.log("mta", format!("bounced message to {}: {reason}", m.to));
    m.status = DeliveryStatus::Bounced { reason, ndr };
    m.stage = Stage::Done;
}

fn defer(m: &mut Outgoing, cx: &mut AppCx<'_>, reason: String, retry: Duration, give_up: Duration) {
    let attempts = m.attempts.len() as u32;
    if cx.now.saturating_duration_since(m.submitted) + retry > give_up {
        bounce(
            m,
            cx,
            format!("4.4.7 delivery time expired: {reason}"),
            None,
        );
        return;
    }
    cx.log(
        "mta",
        format!(
            "deferred message to {}: {reason}; retry in {} min",
            m.to,
            retry.as_secs() / 60
        ),
    );
    m.status = DeliveryStatus::Deferred { reason, attempts };
    m.stage = Stage::Wait(cx.now + retry);
}

/// One state transition; false when the message waits for the network.
#[allow(clippy::too_many_arguments)]
fn step(
    m: &mut Outgoing,
    cx: &mut AppCx<'_>,
    smart: Option<Ipv4Addr>,
    ims: Option<&ImsConfig>,
    me: &str,
    retry: Duration,
    give_up: Duration,
) -> bool {
    match &mut m.stage {
        Stage::Done => false,
        Stage::Wait(t) => {
            if cx.now >= *t {
                m.stage = Stage::Route;
                true
            } else {
                false
            }
        }
        Stage::Route => {
            let to = match ims {
                Some(i) => match i.outbound(&m.to) {
                    Ok(a) => a,
                    Err(diag) => {
                        let reason = diag.replace("\n      ", " ");
                        bounce(m, cx, reason, Some(diag));
                        return false;
                    }
                },
                None => m.to.clone(),
            };
            let domain = to.rsplit('@').next().unwrap_or("").to_string();
            if let Some(lit) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
                match lit.parse::<Ipv4Addr>() {
                    Ok(a) => m.stage = connect(cx, vec![a]),
                    Err(_) => bounce(m, cx, format!("5.1.3 bad address literal {domain}"), None),
                }
                return true;
            }
            if let Some(a) = smart {
                m.stage = connect(cx, vec![a]);
                return true;
            }
            m.stage = Stage::Mx(
                Lookup::new(&domain, RecordType::MX, cx.host.dns.clone()),
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
                    let lookup = Lookup::new(&names[0], RecordType::A, cx.host.dns.clone());
                    m.stage = Stage::A { names, lookup, addrs: Vec::new(), implicit: false, domain };
                }
                LookupResult::NoData { .. } => {
                    // RFC 5321 §5.1: no MX, use the domain's A record.
                    let lookup = Lookup::new(&domain, RecordType::A, cx.host.dns.clone());
                    m.stage = Stage::A { names: vec![domain.clone()], lookup, addrs: Vec::new(), implicit: true, domain };
                }
                LookupResult::NxDomain { server } => bounce(m, cx, format!("5.1.2 host unknown: DNS server {server} says {domain} does not exist (NXDOMAIN)"), None),
                LookupResult::Refused { server } => defer(m, cx, format!("DNS server {server} refused to answer for {domain}"), retry, give_up),
                LookupResult::Timeout => defer(m, cx, format!("no DNS server answered for {domain}"), retry, give_up),
                LookupResult::Addresses { .. } => bounce(m, cx, "unexpected DNS answer".into(), None),
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
                *lookup = Lookup::new(next, RecordType::A, cx.host.dns.clone());
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
                bounce(m, cx, why, None);
            } else {
                let a = addrs.clone();
                m.stage = connect(cx, a);
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
                    defer(m, cx, reason, retry, give_up);
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
                    conn.quit("QUIT\r\n");
                    conn.pump(cx);
                    let h = conn.handle;
                    m.closing.push(std::mem::replace(conn, LineConn::new(h)));
                    if (400..500).contains(&code) {
                        defer(m, cx, format!("{server} answered {text}"), retry, give_up);
                    } else {
                        bounce(
                            m,
                            cx,
                            format!("{server} answered {text}"),
                            Some(text.clone()),
                        );
                    }
                    return false;
                }
                *step += 1;
                match *step {
                    1 => conn.send(&format!("EHLO {me}\r\n")),
                    2 => conn.send(&format!("MAIL FROM:<{}>\r\n", m.from)),
                    3 => {
                        let to = ims.and_then(|i| i.outbound(&m.to).ok()).unwrap_or_else(|| m.to.clone());
                        conn.send(&format!("RCPT TO:<{to}>\r\n"))
                    }
                    4 => conn.send("DATA\r\n"),
                    5 => conn.send(&format!("From: <{}>\r\nTo: <{}>\r\nSubject: {}\r\n\r\nSent through natsim.\r\n.\r\n", m.from, m.to, m.subject)),
                    6 => {
                        conn.quit("QUIT\r\n");
                        cx.log("mta", format!("delivered message to {} via {server}", m.to));
                        m.attempts.push(format!("delivered via {server}: {text}"));
                        m.status = DeliveryStatus::Delivered { server: server.to_string(), reply: text };
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
                defer(
                    m,
                    cx,
                    format!("{server} closed the connection"),
                    retry,
                    give_up,
                );
                return true;
            }
            false
        }
    }
}

fn connect(cx: &mut AppCx<'_>, targets: Vec<Ipv4Addr>) -> Stage {
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

/// The Exchange IMS: an SMTP server with the IMS's inbound policy, local
/// mailboxes, and the outbound MTA (also relaying for POP3 clients when
/// rerouting is on).
pub struct Ims {
    pub server: SmtpServer,
    pub mta: Mta,
    /// Messages delivered to local mailboxes.
    pub mailbox: Vec<crate::smtp::Mail>,
    seen: usize,
}

impl Ims {
    pub fn new(hostname: &str, cfg: ImsConfig) -> Ims {
        let mut mta = Mta::new(hostname);
        mta.ims = Some(cfg.clone());
        Ims {
            server: SmtpServer::new(hostname, Box::new(cfg)),
            mta,
            mailbox: Vec::new(),
            seen: 0,
        }
    }
    pub fn config(&self) -> &ImsConfig {
        self.mta.ims.as_ref().expect("an IMS always has its config")
    }
}

impl App for Ims {
    fn poll(&mut self, cx: &mut AppCx<'_>) {
        self.server.poll(cx);
        while self.seen < self.server.received.len() {
            let mail = self.server.received[self.seen].clone();
            self.seen += 1;
            let mut local = mail.clone();
            local.to.clear();
            for to in &mail.to {
                let domain = to.rsplit('@').next().unwrap_or("");
                if self.config().is_local(domain) {
                    local.to.push(to.clone());
                } else {
                    let subject = mail
                        .data
                        .lines()
                        .find_map(|l| l.strip_prefix("Subject: "))
                        .unwrap_or("")
                        .to_string();
                    self.mta.submit(&mail.from, to, &subject, cx.now);
                    cx.log("ims", format!("relaying mail for {to} (reroute on)"));
                }
            }
            if !local.to.is_empty() {
                cx.log(
                    "ims",
                    format!("delivered to mailbox: {}", local.to.join(", ")),
                );
                self.mailbox.push(local);
            }
        }
        self.mta.poll(cx);
    }
    fn poll_at(&self) -> Option<Instant> {
        self.mta.poll_at()
    }
    natsim_sim::any_impls!();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The NDR of KB Q183801, byte for byte (recipient and times are the
    /// article's).
    #[test]
    fn q183801_ndr_text_is_reproduced_byte_for_byte() {
        let mut ims = ImsConfig::new("Microsoft", "SITE", "SERVER", "domain.com");
        // The IMS is configured to send SMTPOUT mail (it has the address
        // space) but, before SP1, cannot.
        ims.address_spaces.push(AddressSpace {
            kind: "SMTPOUT".into(),
            address: "*".into(),
            cost: 1,
        });
        let diag = ims
            .outbound("[SMTPOUT:user@internal.domain.com]")
            .unwrap_err();
        let sent = Instant::ZERO;
        let at = Instant::from_secs(30 * 60);
        let text = ndr_text("Test Subject", sent, "user@domain.com", at, &diag);
        let kb = "Your message did not reach some or all of the intended recipients.\n\n   Subject: Test Subject\n   Sent: 1/5/98 7:31 PM\n\nThe following recipient(s) could not be reached:\n\n  `user@domain.com' on 1/5/98 8:01 PM\n      Unable to deliver the message due to a communications failure\n      MSEXCH:IMS:Microsoft:SITE:SERVER 0 (000D06B5) No proxy for\n      Recipient\n";
        assert_eq!(text, kb);
        let full = ndr_message(
            "user@domain.com",
            "Test Subject",
            sent,
            "user@domain.com",
            at,
            &diag,
        );
        assert!(full.starts_with("From: System Administrator\nSent: Monday, January 05, 1998 8:01 PM\nTo: 'user@domain.com'\nSubject: Undeliverable: Test Subject\n\n"));
    }

    #[test]
    fn sp1_with_registry_and_address_space_routes_smtpout_as_smtp() {
        let mut ims = ImsConfig::new("Microsoft", "SITE", "SERVER", "domain.com");
        assert!(ims.outbound("[SMTPOUT:user@internal.domain.com]").is_err());
        ims.service_pack = 1;
        ims.registry
            .insert("OverrideProxyOut".into(), "SMTPOUT".into());
        ims.registry
            .insert("SiteDomain".into(), "domain.com".into());
        // Still no SMTPOUT address space: no transport.
        assert_eq!(
            ims.outbound("[SMTPOUT:user@internal.domain.com]")
                .unwrap_err(),
            "No transport provider available for delivery to this recipient"
        );
        ims.address_spaces.push(AddressSpace {
            kind: "SMTPOUT".into(),
            address: "*".into(),
            cost: 1,
        });
        assert_eq!(
            ims.outbound("[SMTPOUT:user@internal.domain.com]").unwrap(),
            "user@internal.domain.com"
        );
    }

    #[test]
    fn literal_addresses_need_reroute_and_a_routing_entry() {
        let mut ims = ImsConfig::new("Microsoft", "SITE", "SERVER", "domain.com");
        assert!(ims.rcpt("user@[192.0.2.10]").is_err());
        ims.reroute = true;
        ims.routing.push(RoutingEntry {
            domain: "192.0.2.10".into(),
            accept_as_inbound: true,
        });
        assert!(ims.rcpt("user@[192.0.2.10]").is_ok());
        assert!(ims.rcpt("user@domain.com").is_ok());
    }

    #[test]
    fn ndr_time_rolls_over_days() {
        assert_eq!(ndr_time(Instant::ZERO), "1/5/98 7:31 PM");
        assert_eq!(ndr_time(Instant::from_secs(5 * 3600)), "1/6/98 12:31 AM");
        assert_eq!(ndr_time(Instant::from_secs(30 * 86400)), "2/4/98 7:31 PM");
    }
}
