//! Each action in three parts: `start` it (adding its client app), ask
//! whether it is `done`, and `finish` it into an [`Actual`]. A step in the
//! background is started and finished later; others are run in between.

use super::inspect::{nat_table, nat_type};
use super::Actual;
use crate::build::Built;
use crate::expect::Outcome;
use crate::model::*;
use hickory_proto::rr::RecordType;
use natsim_apps::dns::{DnsLookup, LookupResult};
use natsim_apps::echo::{ClientOutcome, TcpClient, UdpClient};
use natsim_apps::exchange::{Outlook, OutlookOutcome, Server};
use natsim_apps::fate::{self, Fate};
use natsim_apps::ftp::{FtpClient, FtpOutcome};
use natsim_apps::http::{HttpClient, HttpOutcome};
use natsim_apps::ims::Ims;
use natsim_apps::mail::{MsgId, Mta};
use natsim_sim::probe::{icmp_error_text, Ping, ProbeOutcome};
use natsim_sim::tcp::ConnectError;
use natsim_sim::{AppId, NodeId, Sim};
use std::net::Ipv4Addr;
use std::time::Duration;

/// Connections kept open by `keep`, by [`ConnIx`].
pub struct Kept(pub Vec<Option<AppId>>);

/// A started action.
pub enum Running {
    /// Finished as it started (wait, nat-type, nat-table, a failed lookup).
    Done(Box<Actual>),
    Ping(AppId),
    Tcp(AppId),
    TcpSend(AppId),
    Udp(AppId),
    Mail {
        app: AppId,
        msg: MsgId,
        apps: Vec<AppId>,
        until: MailUntil,
    },
    Dns(AppId),
    Outlook(AppId),
    Http(AppId),
    Ftp(AppId),
    /// A `GROUP[*]` step: one per member, all started at once, and how
    /// many from the front are known done (an ended action stays ended, so
    /// `done` resumes there instead of rescanning every member per event).
    Each(Vec<(HostIx, Running)>, std::cell::Cell<usize>),
}

fn done_with(outcome: Outcome, text: String) -> Running {
    Running::Done(Box::new(Actual {
        outcome: Some(outcome),
        text,
        ..Actual::default()
    }))
}

/// Resolves a DNS name through the host's `dns` servers, in the simulated
/// network (the lookup's frames belong to the step).
fn resolve(
    sim: &mut Sim,
    host: NodeId,
    spec: &HostSpec,
    t: &Target,
    apps: &mut Vec<AppId>,
) -> Result<Ipv4Addr, String> {
    let name = match t {
        Target::Addr(a) => return Ok(*a),
        Target::Name(n) => n,
    };
    let Ok(id) = sim.add_app(
        host,
        Box::new(DnsLookup::new(name, RecordType::A, spec.dns.clone())),
    ) else {
        return Err(format!("cannot resolve {name}"));
    };
    apps.push(id);
    sim.run_until_pred(Duration::from_secs(30), |s| {
        s.app::<DnsLookup>(id).is_some_and(|l| l.result().is_some())
    });
    match sim.app::<DnsLookup>(id).and_then(|l| l.result().cloned()) {
        Some(LookupResult::Addresses { addrs, .. }) if !addrs.is_empty() => Ok(addrs[0]),
        Some(r) => Err(format!("cannot resolve {name}: {}", r.describe())),
        None => Err(format!("cannot resolve {name}: no answer")),
    }
}

pub fn start(b: &mut Built, m: &Model, st: &StepSpec, kept: &mut Kept) -> Running {
    if !st.each.is_empty() {
        let members = st
            .each
            .iter()
            .map(|h| {
                let one = StepSpec {
                    action: st.action.from_host(*h),
                    each: Vec::new(),
                    ..st.clone()
                };
                (*h, start(b, m, &one, kept))
            })
            .collect();
        return Running::Each(members, std::cell::Cell::new(0));
    }
    let host = |h: &HostIx| (b.hosts[h.0], &m.hosts[h.0]);
    macro_rules! target {
        ($from:expr, $to:expr, $fail:expr) => {{
            let (node, spec) = host($from);
            match resolve(&mut b.sim, node, spec, $to, &mut b.step_apps) {
                Ok(a) => (node, a),
                Err(why) => return done_with($fail, why),
            }
        }};
    }
    macro_rules! app {
        ($node:expr, $app:expr, $kind:path) => {
            match b.sim.add_app($node, Box::new($app)) {
                Ok(id) => {
                    b.step_apps.push(id);
                    $kind(id)
                }
                Err(e) => return done_with(Outcome::Failed, e.to_string()),
            }
        };
    }
    match &st.action {
        Action::Wait => {
            b.sim.run_for(st.limit);
            done_with(Outcome::Waited, format!("waited until {}", b.sim.now()))
        }
        Action::Ping {
            from,
            to,
            size,
            ttl,
        } => {
            let (node, a) = target!(from, to, Outcome::Unreachable);
            app!(node, Ping::new(a).size(*size).ttl(*ttl), Running::Ping)
        }
        Action::TcpConnect {
            from,
            to,
            port,
            source_port,
            keep,
        } => {
            let (node, a) = target!(from, to, Outcome::Unreachable);
            let r = app!(
                node,
                TcpClient::new((a, *port), *source_port, keep.is_some()),
                Running::Tcp
            );
            if let (Some(k), Running::Tcp(id)) = (keep, &r) {
                // A kept connection outlives its step.
                kept.0[k.0] = Some(*id);
                b.step_apps.retain(|x| x != id);
            }
            r
        }
        Action::TcpSend { reuse, payload } => match kept.0[reuse.0] {
            None => done_with(Outcome::Failed, "the kept connection never opened".into()),
            Some(id) => {
                let now = b.sim.now();
                b.sim
                    .with_app::<TcpClient, _>(id, |c| c.send(payload, now, st.limit));
                Running::TcpSend(id)
            }
        },
        Action::UdpSend {
            from,
            to,
            port,
            source_port,
            payload,
            ttl,
        } => {
            let (node, a) = target!(from, to, Outcome::Unreachable);
            let mut c = UdpClient::new((a, *port), *source_port, payload, st.limit);
            c.ttl = *ttl;
            app!(node, c, Running::Udp)
        }
        Action::SendMail {
            from,
            mailer,
            until,
            to,
            sender,
            subject,
        } => {
            let Some(app) = b.mailers[from.0] else {
                return done_with(Outcome::Pending, "the host runs no mailer".into());
            };
            let now = b.sim.now();
            let msg = match mailer {
                Mailer::Ims => b
                    .sim
                    .with_app::<Ims, _>(app, |x| x.mta.submit(sender, to, subject, now)),
                Mailer::Mta => b
                    .sim
                    .with_app::<Mta, _>(app, |x| x.submit(sender, to, subject, now)),
            };
            Running::Mail {
                app,
                msg: msg.unwrap_or(0),
                apps: b.mail_apps.clone(),
                until: *until,
            }
        }
        Action::DnsLookup {
            from,
            server,
            port,
            query,
            rtype,
        } => {
            let (node, spec) = host(from);
            let servers = server.map_or_else(|| spec.dns.clone(), |s| vec![s]);
            app!(
                node,
                DnsLookup::new(query, *rtype, servers).on_port(*port),
                Running::Dns
            )
        }
        Action::OutlookConnect { from, to, mode } => {
            let node = b.hosts[from.0];
            let server = match to {
                Target::Addr(a) => Server::Addr(*a),
                Target::Name(n) => Server::Name(n.clone()),
            };
            app!(node, Outlook::new(server, *mode), Running::Outlook)
        }
        Action::HttpGet {
            from,
            to,
            port,
            path,
        } => {
            let (node, a) = target!(from, to, Outcome::Failed);
            app!(node, HttpClient::new((a, *port), path), Running::Http)
        }
        Action::FtpGet {
            from,
            to,
            port,
            file,
            mode,
        } => {
            let (node, a) = target!(from, to, Outcome::Failed);
            let mut client = FtpClient::new(a, file, *mode);
            // A server published on another port (a 2121 -> 21 forward).
            client.server.1 = *port;
            app!(node, client, Running::Ftp)
        }
        Action::NatType { from, servers } => {
            let mut apps = Vec::new();
            let a = nat_type(b, *from, servers, &mut apps);
            b.step_apps.extend(apps);
            Running::Done(Box::new(a))
        }
        Action::NatTable { router } => Running::Done(Box::new(nat_table(b, m, *router))),
    }
}

pub fn done(r: &Running, sim: &Sim) -> bool {
    match r {
        Running::Done(_) => true,
        Running::Each(v, ended) => {
            let mut k = ended.get();
            while k < v.len() && done(&v[k].1, sim) {
                k += 1;
            }
            ended.set(k);
            k == v.len()
        }
        Running::Ping(id) => sim.app::<Ping>(*id).is_none_or(|p| p.outcome.is_some()),
        Running::Tcp(id) => sim
            .app::<TcpClient>(*id)
            .is_none_or(|c| c.connect.is_some()),
        Running::TcpSend(id) => sim.app::<TcpClient>(*id).is_none_or(|c| c.reply.is_some()),
        Running::Udp(id) => sim
            .app::<UdpClient>(*id)
            .is_none_or(|c| c.outcome.is_some()),
        Running::Mail {
            app,
            msg,
            apps,
            until,
        } => {
            let f = fate::follow(sim, apps, *app, *msg);
            match until {
                MailUntil::Settled => f.settled(),
                MailUntil::Final => f.is_final(),
            }
        }
        Running::Dns(id) => sim
            .app::<DnsLookup>(*id)
            .is_none_or(|l| l.result().is_some()),
        Running::Outlook(id) => sim.app::<Outlook>(*id).is_none_or(|o| o.outcome.is_some()),
        Running::Http(id) => sim
            .app::<HttpClient>(*id)
            .is_none_or(|c| c.outcome.is_some()),
        Running::Ftp(id) => sim
            .app::<FtpClient>(*id)
            .is_none_or(|c| c.outcome.is_some()),
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn connect_failed(a: &mut Actual, e: &ConnectError) {
    match e {
        ConnectError::TimedOut { after_ms } => {
            a.outcome = Some(Outcome::TimedOut);
            a.after_secs = Some(*after_ms as f64 / 1000.0);
            a.text = format!("timed out after {:.1} s", *after_ms as f64 / 1000.0);
        }
        ConnectError::Refused => {
            a.outcome = Some(Outcome::Refused);
            a.text = "connection refused (RST)".into();
        }
        other => {
            a.outcome = Some(Outcome::Unreachable);
            a.text = other.to_string();
        }
    }
}

fn icmp(a: &mut Actual, from: Ipv4Addr, t: u8, c: u8) {
    a.outcome = Some(Outcome::IcmpError);
    a.icmp = Some((t, c));
    a.text = format!(
        "reply from {from}: {} (ICMP type {t} code {c})",
        icmp_error_text(t, c)
    );
}

/// Each member's [`Actual`] for a `GROUP[*]` step, or the step's one.
pub fn finish_all(r: Running, b: &mut Built, limit: Duration) -> Vec<(Option<HostIx>, Actual)> {
    match r {
        Running::Each(v, _) => v
            .into_iter()
            .map(|(h, r)| (Some(h), finish(r, b, limit)))
            .collect(),
        r => vec![(None, finish(r, b, limit))],
    }
}

fn finish(r: Running, b: &mut Built, limit: Duration) -> Actual {
    let sim = &b.sim;
    let mut a = Actual::default();
    match r {
        Running::Done(x) => return *x,
        // finish_all takes a group apart; a group inside a group is not built.
        Running::Each(v, _) => {
            return v
                .into_iter()
                .next()
                .map_or_else(Actual::default, |(_, r)| finish(r, b, limit))
        }
        Running::Ping(id) => match sim.app::<Ping>(id).and_then(|p| p.outcome.clone()) {
            Some(ProbeOutcome::Replied { from, after_ms }) => {
                a.outcome = Some(Outcome::Replied);
                a.text = format!("reply from {from} after {after_ms} ms");
            }
            Some(ProbeOutcome::IcmpError {
                from,
                icmp_type,
                code,
            }) => icmp(&mut a, from, icmp_type, code),
            _ => {
                a.outcome = Some(Outcome::NoReply);
                a.text = "request timed out (4 requests)".into();
            }
        },
        Running::Tcp(id) => match sim.app::<TcpClient>(id).and_then(|c| c.connect.clone()) {
            Some(ClientOutcome::Connected { after, .. }) => {
                a.outcome = Some(Outcome::Connected);
                a.after_secs = Some(secs(after));
                a.text = format!("connected after {:.1} s", secs(after));
            }
            Some(ClientOutcome::ConnectFailed(e)) => connect_failed(&mut a, &e),
            _ => {
                a.outcome = Some(Outcome::Connecting);
                a.text = format!(
                    "still connecting (SYN-SENT) when the step's {:.0} s ended; abandoned",
                    secs(limit)
                );
            }
        },
        Running::TcpSend(id) => match sim.app::<TcpClient>(id).and_then(|c| c.reply.clone()) {
            Some(ClientOutcome::Replied { from, after }) => {
                a.outcome = Some(Outcome::Replied);
                a.text = format!("echo from {from} after {} ms", after.as_millis());
            }
            Some(ClientOutcome::Reset) => {
                a.outcome = Some(Outcome::Reset);
                a.text = "the connection was reset (RST)".into();
            }
            _ => {
                a.outcome = Some(Outcome::NoReply);
                a.text = format!("no reply within {:.0} s", secs(limit));
            }
        },
        Running::Udp(id) => match sim.app::<UdpClient>(id).and_then(|c| c.outcome.clone()) {
            Some(ClientOutcome::Replied { from, after }) => {
                a.outcome = Some(Outcome::Replied);
                a.text = format!("reply from {from} after {} ms", after.as_millis());
            }
            Some(ClientOutcome::IcmpError {
                from,
                icmp_type,
                code,
            }) => icmp(&mut a, from, icmp_type, code),
            _ => {
                a.outcome = Some(Outcome::NoReply);
                a.text = format!("no reply within {:.0} s", secs(limit));
            }
        },
        Running::Mail { app, msg, apps, .. } => {
            let f = fate::follow(sim, &apps, app, msg);
            a.outcome = Some(match &f.fate {
                Fate::Pending => Outcome::Pending,
                Fate::Delivered { .. } => Outcome::Delivered,
                Fate::HandedOff { .. } => Outcome::HandedOff,
                Fate::Bounced { .. } => Outcome::Bounced,
                Fate::Ndr { .. } => Outcome::Ndr,
                Fate::Deferred { .. } => Outcome::Deferred,
            });
            a.text = f.summary();
            if matches!(f.fate, Fate::Pending) {
                a.text = format!("{} when the step's {:.0} s ran out", a.text, secs(limit));
            }
            a.detail = match &f.body {
                Some(body) => format!("{}\n{body}", a.text),
                None => a.text.clone(),
            };
            a.mail = Some(f);
        }
        Running::Dns(id) => {
            let r = sim
                .app::<DnsLookup>(id)
                .and_then(|l| l.result().cloned())
                .unwrap_or(LookupResult::Timeout);
            a.text = r.describe();
            a.outcome = Some(match &r {
                LookupResult::Addresses { addrs, .. } => {
                    a.answers = addrs.iter().map(|x| x.to_string()).collect();
                    Outcome::Answered
                }
                LookupResult::Exchanges { mx, .. } => {
                    a.answers = mx.iter().map(|(_, e)| e.clone()).collect();
                    Outcome::Answered
                }
                LookupResult::NxDomain { .. } => Outcome::NxDomain,
                LookupResult::NoData { .. } => Outcome::NoData,
                LookupResult::Refused { .. } => Outcome::Refused,
                LookupResult::ServFail { .. } => Outcome::ServFail,
                LookupResult::Timeout => Outcome::DnsTimeout,
            });
        }
        Running::Outlook(id) => match sim.app::<Outlook>(id).and_then(|o| o.outcome.clone()) {
            Some(OutlookOutcome::Connected {
                via,
                endpoint_returned,
                directory_via,
            }) => {
                a.outcome = Some(Outcome::Connected);
                a.text = format!("connected via {via} (endpoint returned {endpoint_returned}; directory via {directory_via})");
                a.via = Some(via);
                a.endpoint = Some(endpoint_returned);
            }
            Some(OutlookOutcome::Failed {
                stage,
                why,
                endpoint_returned,
            }) => {
                a.outcome = Some(Outcome::Failed);
                a.text = match &endpoint_returned {
                    Some(e) => format!("failed at {stage}: {why} (endpoint returned {e})"),
                    None => format!("failed at {stage}: {why}"),
                };
                a.detail = why;
                a.stage = Some(stage);
                a.endpoint = endpoint_returned;
            }
            None => {
                a.outcome = Some(Outcome::Failed);
                a.text = format!("no outcome within the step's {:.0} s", secs(limit));
            }
        },
        Running::Http(id) => match sim.app::<HttpClient>(id).and_then(|c| c.outcome.clone()) {
            Some(HttpOutcome::Response { status, body_len }) => {
                a.outcome = Some(Outcome::Response);
                a.status = Some(status);
                a.text = format!("HTTP {status} ({body_len} bytes)");
            }
            Some(HttpOutcome::Failed { why }) => {
                a.outcome = Some(Outcome::Failed);
                a.text = why.clone();
                a.detail = why;
            }
            None => {
                a.outcome = Some(Outcome::Failed);
                a.text = format!("no response within the step's {:.0} s", secs(limit));
            }
        },
        Running::Ftp(id) => match sim.app::<FtpClient>(id).and_then(|c| c.outcome.clone()) {
            Some(FtpOutcome::Downloaded { bytes, data_from }) => {
                a.outcome = Some(Outcome::Downloaded);
                a.text = format!("downloaded {bytes} bytes (data connection from {data_from})");
            }
            Some(FtpOutcome::Failed { stage, why }) => {
                a.outcome = Some(Outcome::Failed);
                a.text = format!("failed at {stage}: {why}");
                a.detail = why;
                a.stage = Some(stage);
            }
            None => {
                a.outcome = Some(Outcome::Failed);
                a.text = format!("no outcome within the step's {:.0} s", secs(limit));
            }
        },
    }
    a
}
