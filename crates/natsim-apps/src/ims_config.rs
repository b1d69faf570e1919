//! The Exchange 5.5 Internet Mail Service's configuration and the routing
//! decisions it implies, as data (no sockets here).
//!
//! Inbound (Q249100, Q182339):
//! * site addressing gives every mailbox its primary SMTP address
//!   `alias@<site domain>` (an IP site domain gives `alias@[a.b.c.d]`);
//!   proxy addresses add secondary ones;
//! * with "Reroute incoming SMTP mail" on, the Routing tab's list decides:
//!   a domain (or IP literal) with an entry marked "Should accept as
//!   inbound" is inbound; anything else is rerouted, i.e. relayed on like
//!   outbound mail. An empty list stands for the list Setup creates: the
//!   site addressing domain, inbound;
//! * with rerouting off the IMS takes mail only for the site addressing
//!   domain and the domains of proxy addresses (never for an IP literal,
//!   which needs the routing entry) and refuses to relay anything else;
//! * inbound mail is delivered to the mailbox whose primary or proxy
//!   address it names; inbound mail that names no one gets an NDR
//!   "Unknown Recipient".
//!
//! Outbound: address spaces pick the connector; only SMTP-type addresses
//! before SP1 (Q183801). Retries follow the Connections tab's retry
//! interval list until the message time-out (defaults below).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

/// The IMS's default retry intervals: .25, .5, 1 and 4 hours, the last
/// repeated (KB Q146669, "Connector Message Queues Retry Interval").
pub fn default_retry_schedule() -> Vec<Duration> {
    [15, 30, 60, 240]
        .into_iter()
        .map(|m| Duration::from_secs(m * 60))
        .collect()
}

/// The IMS's default message time-out for normal priority: 48 hours.
pub const DEFAULT_EXPIRE_AFTER: Duration = Duration::from_secs(48 * 3600);

/// Loop detection threshold: a message with more `Received:` fields than
/// this is not accepted for delivery (RFC 5321 §6.3: "at least 100").
pub const DEFAULT_MAX_HOPS: usize = 100;

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

/// What the IMS does with one recipient arriving over SMTP.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "decision", rename_all = "kebab-case")]
pub enum Inbound {
    /// Delivered to the mailbox `alias`, whose (primary or proxy)
    /// address is `address`.
    Mailbox { alias: String, address: String },
    /// Inbound for this site, but no mailbox has the address: NDR.
    UnknownRecipient { why: String },
    /// Rerouted: relayed on as outbound mail.
    Relay { why: String },
    /// Refused in the SMTP dialogue (the full reply line).
    Refuse { reply: String },
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
    /// Site addressing: the default SMTP address domain (a domain, or an
    /// IP address for `alias@[a.b.c.d]`).
    pub site_domain: String,
    /// Mailbox aliases on this server.
    pub mailboxes: Vec<String>,
    /// Secondary SMTP proxy addresses (`alias@domain`; `alias` must be a
    /// mailbox).
    pub proxy_addresses: Vec<String>,
    /// Values under HKLM\SYSTEM\CurrentControlSet\Services\MSExchangeIMC\Parameters.
    pub registry: BTreeMap<String, String>,
    /// Retry intervals after each failed attempt; the last repeats.
    pub retry_schedule: Vec<Duration>,
    /// Message time-out: after this long in the queue, an NDR.
    pub expire_after: Duration,
    /// More `Received:` fields than this: the message is looping.
    pub max_hops: usize,
}

/// `Domain` in canonical form: lower case; an IPv4 address, bracketed or
/// not, as the literal `[a.b.c.d]`.
pub fn canonical_domain(d: &str) -> String {
    let bare = d.trim().trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<Ipv4Addr>() {
        Ok(a) => format!("[{a}]"),
        Err(_) => d.trim().trim_end_matches('.').to_ascii_lowercase(),
    }
}

/// `local@domain` in canonical form (local part case-insensitive, as
/// Exchange's proxy lookup is).
pub fn canonical_address(a: &str) -> String {
    match a.rsplit_once('@') {
        Some((l, d)) => format!("{}@{}", l.to_ascii_lowercase(), canonical_domain(d)),
        None => a.to_ascii_lowercase(),
    }
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
            site_domain: canonical_domain(site_domain),
            mailboxes: Vec::new(),
            proxy_addresses: Vec::new(),
            registry: BTreeMap::new(),
            retry_schedule: default_retry_schedule(),
            expire_after: DEFAULT_EXPIRE_AFTER,
            max_hops: DEFAULT_MAX_HOPS,
        }
    }

    /// Checks what the Administrator program would refuse: a proxy
    /// address for no mailbox, or without `@`.
    pub fn validate(&self) -> Result<(), String> {
        for p in &self.proxy_addresses {
            let Some((alias, _)) = p.rsplit_once('@') else {
                return Err(format!("proxy address `{p}` has no `@`"));
            };
            if !self.mailboxes.iter().any(|m| m.eq_ignore_ascii_case(alias)) {
                return Err(format!(
                    "proxy address `{p}` belongs to no mailbox (mailboxes: {})",
                    self.mailboxes.join(", ")
                ));
            }
        }
        Ok(())
    }

    fn reg(&self, key: &str) -> Option<&str> {
        self.registry
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// Every mailbox's SMTP addresses: (alias, address), primary first.
    pub fn user_addresses(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .mailboxes
            .iter()
            .map(|m| {
                (
                    m.clone(),
                    canonical_address(&format!("{m}@{}", self.site_domain)),
                )
            })
            .collect();
        for p in &self.proxy_addresses {
            let alias = p.rsplit_once('@').map_or(p.as_str(), |(a, _)| a);
            if let Some(m) = self
                .mailboxes
                .iter()
                .find(|m| m.eq_ignore_ascii_case(alias))
            {
                v.push((m.clone(), canonical_address(p)));
            }
        }
        v
    }

    /// The routing list in effect (an empty list is Setup's default).
    pub fn routing_list(&self) -> Vec<RoutingEntry> {
        if self.routing.is_empty() {
            vec![RoutingEntry {
                domain: self.site_domain.clone(),
                accept_as_inbound: true,
            }]
        } else {
            self.routing.clone()
        }
    }

    /// What happens to mail for `addr` arriving over SMTP.
    pub fn inbound(&self, addr: &str) -> Inbound {
        let canon = canonical_address(addr);
        let domain = canon.rsplit_once('@').map_or("", |(_, d)| d).to_string();
        let mailbox = self.user_addresses().into_iter().find(|(_, a)| *a == canon);
        let local_domain = if self.reroute {
            match self
                .routing_list()
                .iter()
                .find(|r| canonical_domain(&r.domain) == domain)
            {
                Some(r) if r.accept_as_inbound => Ok(()),
                Some(_) => Err(format!(
                    "the routing entry for {domain} is not marked \"Should accept as inbound\""
                )),
                None => Err(format!("no routing entry accepts {domain} as inbound")),
            }
        } else if !domain.starts_with('[')
            && (domain == self.site_domain
                || self
                    .proxy_addresses
                    .iter()
                    .any(|p| canonical_address(p).ends_with(&format!("@{domain}"))))
        {
            Ok(())
        } else {
            Err(String::new())
        };
        match (local_domain, mailbox) {
            (Ok(()), Some((alias, address))) => Inbound::Mailbox { alias, address },
            (Ok(()), None) => Inbound::UnknownRecipient {
                why: format!("no mailbox has the SMTP address {canon}"),
            },
            (Err(why), _) if self.reroute => Inbound::Relay {
                why: format!("rerouted: {why}"),
            },
            (Err(_), _) => Inbound::Refuse {
                reply: format!("550 5.7.1 Unable to relay for {addr}"),
            },
        }
    }

    /// `MSEXCH:IMS:<org>:<site>:<server> 0 ` (the NDR diagnostic prefix).
    pub fn diag_prefix(&self) -> String {
        format!("MSEXCH:IMS:{}:{}:{} 0", self.org, self.site, self.server)
    }

    /// The NDR diagnostic for an unknown recipient.
    pub fn unknown_recipient(&self) -> String {
        format!("{} (000C05A6) Unknown Recipient", self.diag_prefix())
    }

    /// Routes an outbound recipient as written by an Exchange user
    /// (`user@host` or `[TYPE:address]`): the SMTP address to deliver to,
    /// or the NDR diagnostic.
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
                    "{} (000D06B5) No proxy for\n      Recipient",
                    self.diag_prefix()
                ));
            }
        }
        Ok(addr)
    }

    /// The retry interval after `failures` failed attempts.
    pub fn retry_after(&self, failures: u32) -> Duration {
        retry_after(&self.retry_schedule, failures)
    }
}

/// The interval after `failures` failed attempts: the schedule's entry,
/// the last one repeating.
pub fn retry_after(schedule: &[Duration], failures: u32) -> Duration {
    let k = (failures.max(1) as usize - 1).min(schedule.len().saturating_sub(1));
    schedule
        .get(k)
        .copied()
        .unwrap_or(Duration::from_secs(30 * 60))
}

/// Renders a schedule as the Connections tab shows it (hours).
pub fn schedule_text(schedule: &[Duration]) -> String {
    schedule
        .iter()
        .map(|d| {
            let h = format!("{}", d.as_secs_f64() / 3600.0);
            match h.strip_prefix("0.") {
                Some(frac) => format!(".{frac}"),
                None => h,
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
        + " h"
}

/// A duration as `48 h`, `30 min` or `5 d`.
pub fn horizon_text(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(86400) && s >= 4 * 86400 {
        format!("{} d", s / 86400)
    } else if s.is_multiple_of(3600) {
        format!("{} h", s / 3600)
    } else {
        format!("{} min", s / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q249100() -> ImsConfig {
        let mut c = ImsConfig::new("Microsoft", "SITE", "SERVER", "server.example.com");
        c.mailboxes = vec!["user".into()];
        c
    }

    #[test]
    fn site_addressing_decides_the_addresses_primary_and_proxy() {
        let mut c = q249100();
        assert_eq!(
            c.inbound("User@Server.Example.com"),
            Inbound::Mailbox {
                alias: "user".into(),
                address: "user@server.example.com".into()
            }
        );
        // Not a user's address in a local domain: NDR, not delivery.
        assert!(matches!(
            c.inbound("nobody@server.example.com"),
            Inbound::UnknownRecipient { .. }
        ));
        c.site_domain = canonical_domain("198.51.100.10");
        assert!(matches!(
            c.inbound("user@server.example.com"),
            Inbound::Refuse { .. }
        ));
        c.proxy_addresses = vec!["user@server.example.com".into()];
        assert!(matches!(
            c.inbound("user@server.example.com"),
            Inbound::Mailbox { .. }
        ));
    }

    #[test]
    fn literal_addresses_need_reroute_and_an_inbound_routing_entry() {
        let mut c = q249100();
        c.site_domain = canonical_domain("198.51.100.10");
        // Without reroute a literal is never this site's, even when it is
        // the user's primary address.
        assert!(matches!(
            c.inbound("user@[198.51.100.10]"),
            Inbound::Refuse { .. }
        ));
        c.reroute = true;
        c.routing = vec![RoutingEntry {
            domain: "server.example.com".into(),
            accept_as_inbound: true,
        }];
        // Reroute on, no entry for the literal: relayed like outbound mail.
        assert!(matches!(
            c.inbound("user@[198.51.100.10]"),
            Inbound::Relay { .. }
        ));
        c.routing.push(RoutingEntry {
            domain: "198.51.100.10".into(),
            accept_as_inbound: false,
        });
        match c.inbound("user@[198.51.100.10]") {
            Inbound::Relay { why } => assert!(why.contains("not marked"), "{why}"),
            other => panic!("{other:?}"),
        }
        c.routing[1].accept_as_inbound = true;
        assert!(matches!(
            c.inbound("user@[198.51.100.10]"),
            Inbound::Mailbox { .. }
        ));
    }

    #[test]
    fn an_empty_routing_list_is_setups_default_the_site_domain_inbound() {
        let mut c = ImsConfig::new("Microsoft", "SITE", "SERVER", "example.com");
        c.mailboxes = vec!["admin".into()];
        c.reroute = true;
        assert!(matches!(
            c.inbound("admin@example.com"),
            Inbound::Mailbox { .. }
        ));
        assert!(matches!(
            c.inbound("bob@partner.example"),
            Inbound::Relay { .. }
        ));
        c.reroute = false;
        assert!(matches!(
            c.inbound("bob@partner.example"),
            Inbound::Refuse { .. }
        ));
    }

    #[test]
    fn proxies_must_belong_to_a_mailbox() {
        let mut c = q249100();
        c.proxy_addresses = vec!["ghost@[198.51.100.10]".into()];
        assert!(c.validate().unwrap_err().contains("no mailbox"));
    }

    #[test]
    fn the_retry_schedule_repeats_its_last_interval() {
        let s = default_retry_schedule();
        assert_eq!(retry_after(&s, 1), Duration::from_secs(15 * 60));
        assert_eq!(retry_after(&s, 4), Duration::from_secs(4 * 3600));
        assert_eq!(retry_after(&s, 40), Duration::from_secs(4 * 3600));
        assert_eq!(schedule_text(&s), ".25, .5, 1, 4 h");
        assert_eq!(horizon_text(DEFAULT_EXPIRE_AFTER), "48 h");
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
}
