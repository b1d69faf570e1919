//! Where a message ended up: followed from the MTA it was submitted to,
//! through every MTA the world models, to a mailbox, a bounce or NDR, a
//! deferral (with its retry horizon), or an MTA whose onward delivery is
//! not modelled.
//!
//! Messages are matched across MTAs by `Message-ID` and by the number of
//! `Received:` fields (one more at each hop), so the passes of a looping
//! message are told apart. The result is data ([`MessageFate`]): the
//! runner renders it, expectations read it.

use crate::ims::{Action, Ims};
use crate::mail::{DeliveryStatus, MsgId, Mta, Outgoing};
use crate::smtp::{Mail, SmtpServer};
use natsim_nat::Instant;
use natsim_sim::{AppId, Sim};
use std::net::Ipv4Addr;

/// One SMTP transfer on the way.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Hop {
    /// The sending MTA's host name (as it says in EHLO).
    pub from: String,
    /// The address it connected to.
    pub dialled: String,
    /// The address the receiving server saw the connection arrive on
    /// (differs from `dialled` behind a NAT port forward).
    pub landed: String,
    /// The receiving server's host name.
    pub server: String,
}

/// How the message ended.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "fate", rename_all = "kebab-case")]
pub enum Fate {
    /// Still on its way (the step ended first).
    Pending,
    /// A mailbox took it.
    Delivered { mailbox: String },
    /// Accepted by an MTA that relays it on; the world models nothing
    /// beyond it.
    HandedOff { server: String },
    /// Returned to the sender by a non-Exchange MTA (a refusal in the
    /// SMTP dialogue or a DNS failure).
    Bounced { reason: String, by: String },
    /// An Exchange NDR.
    Ndr { diagnostic: String, by: String },
    /// Queued for retry at `at`.
    Deferred {
        reason: String,
        at: String,
        retry: String,
    },
}

/// The fate and the path.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MessageFate {
    #[serde(flatten)]
    pub fate: Fate,
    pub hops: Vec<Hop>,
    /// The NDR or bounce returned to the sender, in full.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

impl MessageFate {
    /// The outcome word: delivered, handed-off, bounced, ndr, deferred,
    /// pending.
    pub fn word(&self) -> &'static str {
        match self.fate {
            Fate::Pending => "pending",
            Fate::Delivered { .. } => "delivered",
            Fate::HandedOff { .. } => "handed-off",
            Fate::Bounced { .. } => "bounced",
            Fate::Ndr { .. } => "ndr",
            Fate::Deferred { .. } => "deferred",
        }
    }
    /// Settled: nothing will change before a retry timer fires.
    pub fn settled(&self) -> bool {
        !matches!(self.fate, Fate::Pending)
    }
    /// Final: delivered, handed off, bounced or NDR'd; no retry is left.
    pub fn is_final(&self) -> bool {
        !matches!(self.fate, Fate::Pending | Fate::Deferred { .. })
    }
    /// Every address on the way, in order (`dialled`, then `landed` where
    /// a NAT sent it elsewhere).
    pub fn path(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        for h in &self.hops {
            for a in [&h.dialled, &h.landed] {
                if !a.is_empty() && v.last() != Some(a) {
                    v.push(a.clone());
                }
            }
        }
        v
    }
    fn via(&self) -> String {
        let p = self.path();
        if p.is_empty() {
            String::new()
        } else {
            format!(" via {}", p.join(" → "))
        }
    }
    /// One line: `delivered to mailbox admin@example.com via 203.0.113.1 →
    /// 192.168.1.10`, `ndr: ...`, `deferred: ... (retrying ...)`.
    pub fn summary(&self) -> String {
        match &self.fate {
            Fate::Pending => format!("still pending{}", self.via()),
            Fate::Delivered { mailbox } => {
                format!("delivered to mailbox {mailbox}{}", self.via())
            }
            Fate::HandedOff { server } => format!(
                "handed off to {server}{} (it relays on; nothing beyond it is modelled)",
                self.via()
            ),
            Fate::Bounced { reason, by } => format!("bounced: {reason} (by {by}){}", self.via()),
            Fate::Ndr { diagnostic, by } => format!(
                "ndr: {} (by {by}){}",
                diagnostic.replace("\n      ", " "),
                self.via()
            ),
            Fate::Deferred { reason, at, retry } => {
                format!("deferred: {reason} (at {at}; {retry}){}", self.via())
            }
        }
    }
}

/// Where the world's mail apps are.
enum MailApp<'a> {
    Mta(&'a Mta),
    Ims(&'a Ims),
    Server(&'a SmtpServer),
}

fn mail_app(sim: &Sim, id: AppId) -> Option<MailApp<'_>> {
    if let Some(m) = sim.app::<Mta>(id) {
        return Some(MailApp::Mta(m));
    }
    if let Some(i) = sim.app::<Ims>(id) {
        return Some(MailApp::Ims(i));
    }
    sim.app::<SmtpServer>(id).map(MailApp::Server)
}

fn outgoing(sim: &Sim, id: AppId, msg: MsgId) -> Option<(&Outgoing, &Mta)> {
    let mta = match mail_app(sim, id)? {
        MailApp::Mta(m) => m,
        MailApp::Ims(i) => &i.mta,
        MailApp::Server(_) => return None,
    };
    Some((mta.messages.get(msg)?, mta))
}

/// The hop to a server that turned the message down in the SMTP
/// dialogue; the server's own record says where it landed.
fn refusing_hop(
    sim: &Sim,
    apps: &[AppId],
    mta: &Mta,
    out: &Outgoing,
    (refuser, heard): (Ipv4Addr, Instant),
) -> Hop {
    // The server's record of that refusal: the same client name and
    // envelope sender, the latest one sent before the MTA heard it.
    let refusal = apps
        .iter()
        .filter_map(|&a| {
            let server = match mail_app(sim, a)? {
                MailApp::Ims(i) => &i.server,
                MailApp::Server(s) => s,
                MailApp::Mta(_) => return None,
            };
            let r = server
                .refused
                .iter()
                .filter(|r| r.helo == mta.hostname && r.from == out.from && r.at <= heard)
                .max_by_key(|r| r.at)?;
            Some((r.at, server.host_name.clone(), r.landed.clone()))
        })
        .max_by_key(|(at, _, _)| *at);
    let (server, landed) = refusal.map(|(_, s, l)| (s, l)).unwrap_or_default();
    Hop {
        from: mta.hostname.clone(),
        dialled: refuser.to_string(),
        landed,
        server,
    }
}

/// The message `msg` submitted to the MTA (or IMS) `origin`, followed
/// through the mail apps `apps` (MTAs, IMSs, SMTP servers).
pub fn follow(sim: &Sim, apps: &[AppId], origin: AppId, msg: MsgId) -> MessageFate {
    let mut hops = Vec::new();
    let (mut at, mut id) = (origin, msg);
    // Each pass adds a Received field, and an IMS stops a message past
    // its hop limit, so the chain is finite; the bound guards the walk.
    for _ in 0..1000 {
        let Some((out, mta)) = outgoing(sim, at, id) else {
            break;
        };
        if !matches!(out.status, DeliveryStatus::Delivered { .. }) {
            if let Some(refuser) = out.refused_by {
                hops.push(refusing_hop(sim, apps, mta, out, refuser));
            }
        }
        let (server, _) = match &out.status {
            DeliveryStatus::Pending => {
                return MessageFate {
                    fate: Fate::Pending,
                    hops,
                    body: None,
                }
            }
            DeliveryStatus::Deferred { reason, .. } => {
                return MessageFate {
                    fate: Fate::Deferred {
                        reason: reason.clone(),
                        at: mta.hostname.clone(),
                        retry: mta.retry_text(),
                    },
                    hops,
                    body: None,
                }
            }
            DeliveryStatus::Bounced {
                reason,
                ndr,
                exchange_ndr,
            } => {
                let by = mta.hostname.clone();
                let fate = if *exchange_ndr {
                    Fate::Ndr {
                        diagnostic: reason.clone(),
                        by,
                    }
                } else {
                    Fate::Bounced {
                        reason: reason.clone(),
                        by,
                    }
                };
                return MessageFate {
                    fate,
                    hops,
                    body: Some(ndr.clone()),
                };
            }
            DeliveryStatus::Delivered { server, reply } => (server.clone(), reply.clone()),
        };
        // Find the server that took this pass of the message.
        let want = out.received + 1;
        let found = apps.iter().find_map(|&a| {
            let (received, ims): (&[Mail], Option<&Ims>) = match mail_app(sim, a)? {
                MailApp::Ims(i) => (&i.server.received, Some(i)),
                MailApp::Server(s) => (&s.received, None),
                MailApp::Mta(_) => return None,
            };
            let mail = received.iter().find(|m| {
                m.message_id.as_deref() == Some(out.message_id.as_str()) && m.received == want
            })?;
            Some((a, mail, ims, mail_app(sim, a)?))
        });
        let Some((app, mail, ims, kind)) = found else {
            hops.push(Hop {
                from: mta.hostname.clone(),
                dialled: server.clone(),
                landed: String::new(),
                server: String::new(),
            });
            return MessageFate {
                fate: Fate::HandedOff { server },
                hops,
                body: None,
            };
        };
        let server_name = match &kind {
            MailApp::Ims(i) => i.server.host_name.clone(),
            MailApp::Server(s) => s.host_name.clone(),
            MailApp::Mta(m) => m.hostname.clone(),
        };
        hops.push(Hop {
            from: mta.hostname.clone(),
            dialled: server,
            landed: mail.landed.clone(),
            server: server_name.clone(),
        });
        let recipient = mail.to.first().cloned().unwrap_or_default();
        match (ims, kind) {
            (Some(i), _) => {
                let Some(d) = i.disposition(&out.message_id, want) else {
                    return MessageFate {
                        fate: Fate::Pending,
                        hops,
                        body: None,
                    };
                };
                match &d.action {
                    Action::Mailbox { address, .. } => {
                        return MessageFate {
                            fate: Fate::Delivered {
                                mailbox: address.clone(),
                            },
                            hops,
                            body: None,
                        }
                    }
                    Action::Ndr { diagnostic, body } => {
                        return MessageFate {
                            fate: Fate::Ndr {
                                diagnostic: diagnostic.clone(),
                                by: server_name,
                            },
                            hops,
                            body: Some(body.clone()),
                        }
                    }
                    Action::Relayed { msg, .. } => {
                        at = app;
                        id = *msg;
                    }
                }
            }
            (None, MailApp::Server(s)) => {
                let fate = if s.policy.final_for(&recipient) {
                    Fate::Delivered { mailbox: recipient }
                } else {
                    Fate::HandedOff {
                        server: server_name,
                    }
                };
                return MessageFate {
                    fate,
                    hops,
                    body: None,
                };
            }
            (None, _) => break,
        }
    }
    MessageFate {
        fate: Fate::Pending,
        hops,
        body: None,
    }
}
