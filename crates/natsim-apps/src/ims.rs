//! The Exchange 5.5 Internet Mail Service as an app: an SMTP server whose
//! recipient policy is [`ImsConfig::inbound`], the mailboxes of this
//! server, and the outbound [`Mta`] that also relays rerouted mail.
//!
//! Each recipient of each message taken in gets a [`Disposition`]: put in
//! a mailbox, relayed (the id of the copy in the outbound queue), or an
//! NDR. A message carrying more `Received:` fields than `max_hops` is
//! looping (RFC 5321 §6.3) and gets an NDR instead, as Exchange reports
//! "the hop count exceeded the maximum" (KB Q260247, event 4098).

use crate::ims_config::{ImsConfig, Inbound};
use crate::mail::{DeliveryStatus, MsgId, Mta};
use crate::ndr;
use crate::smtp::{count_received, Mail, RcptPolicy, SmtpServer};
use natsim_nat::Instant;
use natsim_sim::{App, AppCx};

/// The IMS's inbound policy, in the SMTP dialogue.
impl RcptPolicy for ImsConfig {
    fn rcpt(&self, addr: &str) -> Result<(), String> {
        match self.inbound(addr) {
            Inbound::Refuse { reply } => Err(reply),
            _ => Ok(()),
        }
    }
}

/// What the IMS did with one recipient of a message it took in.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    Mailbox { alias: String, address: String },
    Relayed { msg: MsgId, why: String },
    Ndr { diagnostic: String, body: String },
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Disposition {
    pub message_id: Option<String>,
    /// `Received:` fields the message had on arrival (this server's
    /// included): tells apart the passes of a looping message.
    pub received: usize,
    pub recipient: String,
    pub at: Instant,
    pub action: Action,
}

/// The Exchange IMS.
pub struct Ims {
    pub server: SmtpServer,
    pub mta: Mta,
    /// Messages delivered to local mailboxes.
    pub mailbox: Vec<Mail>,
    pub dispositions: Vec<Disposition>,
    cfg: ImsConfig,
    seen: usize,
}

impl Ims {
    pub fn new(hostname: &str, cfg: ImsConfig) -> Ims {
        let mut mta = Mta::new(hostname);
        mta.ims = Some(cfg.clone());
        mta.retry_schedule = cfg.retry_schedule.clone();
        mta.give_up_after = cfg.expire_after;
        mta.resolver = "windows";
        Ims {
            server: SmtpServer::new(hostname, Box::new(cfg.clone())),
            mta,
            mailbox: Vec::new(),
            dispositions: Vec::new(),
            cfg,
            seen: 0,
        }
    }
    pub fn config(&self) -> &ImsConfig {
        &self.cfg
    }
    /// The disposition of `message_id` on the pass where it arrived with
    /// `received` trace fields.
    pub fn disposition(&self, message_id: &str, received: usize) -> Option<&Disposition> {
        self.dispositions
            .iter()
            .find(|d| d.message_id.as_deref() == Some(message_id) && d.received == received)
    }

    /// Feeds messages the MTA addressed to this host back in, as the
    /// server's own SMTP service would take them over loopback.
    fn loopback(&mut self, cx: &mut AppCx<'_>) {
        for id in self.mta.take_loopback(cx.now) {
            let m = &mut self.mta.messages[id];
            let me = cx.host.addr.to_string();
            m.status = DeliveryStatus::Delivered {
                server: me.clone(),
                reply: "250 (loopback)".into(),
            };
            let data = format!(
                "Received: from [{me}] by {} with ESMTP; {}\r\n{}",
                self.server.host_name, cx.now, m.data
            );
            let to = self.cfg.outbound(&m.to).unwrap_or_else(|_| m.to.clone());
            self.server.received.push(Mail {
                from: m.from.clone(),
                to: vec![to],
                message_id: m.message_id.clone().into(),
                received: count_received(&data),
                data,
                peer: format!("{me}:25"),
                landed: me,
            });
        }
    }

    fn ndr(&self, mail: &Mail, to: &str, at: Instant, headline: &str, diag: &str) -> Action {
        let subject = mail
            .data
            .split("\r\n")
            .find_map(|l| l.strip_prefix("Subject: "))
            .unwrap_or("");
        Action::Ndr {
            diagnostic: diag.to_string(),
            body: ndr::ndr_message_with(&mail.from, subject, at, to, at, headline, diag),
        }
    }

    fn take_in(&mut self, cx: &mut AppCx<'_>, mail: Mail) {
        let mut local = mail.clone();
        local.to.clear();
        for to in &mail.to {
            let action = if mail.received > self.cfg.max_hops {
                let diag = format!(
                    "{} the hop count exceeded the maximum ({} Received fields, more than {})",
                    self.cfg.diag_prefix(),
                    mail.received,
                    self.cfg.max_hops
                );
                cx.log(
                    "ims",
                    format!("event 4098: the message for {to} could not be delivered because the hop count exceeded the maximum; check that messages are not looping"),
                );
                self.ndr(
                    &mail,
                    to,
                    cx.now,
                    "The message loops: it was not delivered because the hop count exceeded the maximum",
                    &diag,
                )
            } else {
                match self.cfg.inbound(to) {
                    Inbound::Mailbox { alias, address } => {
                        local.to.push(to.clone());
                        cx.log("ims", format!("delivered to mailbox {alias} ({address})"));
                        Action::Mailbox { alias, address }
                    }
                    Inbound::UnknownRecipient { why } => {
                        cx.log("ims", format!("{to}: {why}; NDR"));
                        self.ndr(
                            &mail,
                            to,
                            cx.now,
                            "The recipient name is not recognized",
                            &self.cfg.unknown_recipient(),
                        )
                    }
                    Inbound::Relay { why } => {
                        let msg = self.mta.relay(&mail.from, to, &mail.data, cx.now);
                        cx.log("ims", format!("relaying mail for {to} ({why})"));
                        Action::Relayed { msg, why }
                    }
                    Inbound::Refuse { reply } => {
                        self.ndr(&mail, to, cx.now, ndr::COMMUNICATIONS_FAILURE, &reply)
                    }
                }
            };
            self.dispositions.push(Disposition {
                message_id: mail.message_id.clone(),
                received: mail.received,
                recipient: to.clone(),
                at: cx.now,
                action,
            });
        }
        if !local.to.is_empty() {
            self.mailbox.push(local);
        }
    }
}

impl App for Ims {
    fn poll(&mut self, cx: &mut AppCx<'_>) {
        // A loop over loopback never touches the network: bound the
        // passes per poll (each pass adds a Received field, so the loop
        // ends at max_hops anyway).
        for _ in 0..=self.cfg.max_hops + 1 {
            self.server.poll(cx);
            self.loopback(cx);
            let mut any = false;
            while self.seen < self.server.received.len() {
                let mail = self.server.received[self.seen].clone();
                self.seen += 1;
                self.take_in(cx, mail);
                any = true;
            }
            self.mta.poll(cx);
            if !any {
                break;
            }
        }
    }
    fn poll_at(&self) -> Option<Instant> {
        self.mta.poll_at()
    }
    natsim_sim::any_impls!();
}
