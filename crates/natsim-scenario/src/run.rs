//! Running a scenario variant: build the world, run each step in virtual
//! time, and check its expectations against what happened (the step's
//! outcome and the traces of the frames it caused).

use crate::build::{build, Built};
use crate::diag::{Ctx, Problem};
use crate::expect::{self, Expect};
use crate::load::Loaded;
use crate::schema::*;
use hickory_proto::rr::RecordType;
use natsim_apps::dns::{DnsLookup, LookupResult};
use natsim_apps::exchange::{AddressMode, Outlook, OutlookOutcome, Server};
use natsim_apps::ftp::{FtpClient, FtpMode, FtpOutcome};
use natsim_apps::http::{HttpClient, HttpOutcome};
use natsim_apps::mail::{DeliveryStatus, Ims, Mta};
use natsim_nat::Instant;
use natsim_sim::probe::{Ping, ProbeOutcome, TcpProbe, UdpPeer};
use natsim_sim::tcp::ConnectError;
use natsim_sim::{AppEvent, FrameTrace, Sim};
use std::net::Ipv4Addr;
use std::time::Duration;

const ACTIONS: &[&str] = &[
    "ping",
    "tcp-connect",
    "send-mail",
    "dns-lookup",
    "outlook-connect",
    "http-get",
    "ftp-get",
    "nat-type",
    "wait",
];

/// The result of one step.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StepResult {
    pub name: String,
    pub action: String,
    pub expected: Vec<String>,
    pub actual: String,
    pub pass: bool,
    /// Why each failed expectation failed.
    pub failures: Vec<String>,
    pub started: Instant,
    pub ended: Instant,
    /// Ids of the frame traces this step caused.
    pub traces: Vec<u64>,
    pub log: Vec<AppEvent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The result of one variant (or the base scenario).
#[derive(Clone, Debug, serde::Serialize)]
pub struct VariantResult {
    pub file: String,
    pub title: String,
    pub source: Option<String>,
    pub variant: String,
    pub lesson: Option<String>,
    pub seed: u64,
    pub pass: bool,
    pub steps: Vec<StepResult>,
    pub traces: Vec<FrameTrace>,
    pub segments: Vec<String>,
    /// Hosts and routers in the order the file defines them.
    pub nodes: Vec<natsim_sim::NodeInfo>,
    #[serde(skip)]
    pub pcaps: Vec<(String, Vec<u8>)>,
}

/// What a step produced, for the expectations to look at.
#[derive(Debug, Default)]
struct Actual {
    word: String,
    text: String,
    detail: String,
    after_secs: Option<f64>,
    via: Option<String>,
    endpoint: Option<String>,
    stage: Option<String>,
    answers: Vec<String>,
    status: Option<u16>,
    mapping: Option<String>,
    filtering: Option<String>,
}

fn expects(st: &Step) -> Vec<S<String>> {
    match &st.expect {
        None => Vec::new(),
        Some(v) => match v.get_ref() {
            toml::Value::String(s) => vec![S::new(v.span(), s.clone())],
            toml::Value::Array(a) => a
                .iter()
                .map(|x| S::new(v.span(), x.as_str().unwrap_or("").to_string()))
                .collect(),
            _ => vec![S::new(v.span(), String::new())],
        },
    }
}

/// Validates one step against the scenario.
pub fn check_step(st: &Step, s: &Scenario, cx: &Ctx<'_>) -> Result<(), Problem> {
    let action = st.action.get_ref().as_str();
    if !ACTIONS.contains(&action) {
        return Err(cx.at(
            st.action.span(),
            format!("unknown action `{action}`"),
            Some(&format!("one of {}", ACTIONS.join(", "))),
        ));
    }
    if let Some(v) = &st.expect {
        match v.get_ref() {
            toml::Value::String(_) => {}
            toml::Value::Array(a) if a.iter().all(|x| x.is_str()) => {}
            _ => return Err(cx.at(v.span(), "expected a string or a list of strings", Some("e.g. expect = \"delivered\" or expect = [\"refused\", \"trace answered-by-nat\"]"))),
        }
    }
    for e in expects(st) {
        if let Err(why) = expect::parse(e.get_ref(), action) {
            return Err(cx.at(
                e.span(),
                format!("impossible expectation `{}`: {why}", e.get_ref()),
                None,
            ));
        }
    }
    if let Some(d) = &st.duration {
        if expect::parse_duration(d.get_ref()).is_none() {
            return Err(cx.at(
                d.span(),
                format!("`{}` is not a duration", d.get_ref()),
                Some("e.g. `30s`, `2h`; at most 30 days"),
            ));
        }
    }
    if action == "wait" {
        return match &st.duration {
            Some(_) => Ok(()),
            None => Err(cx.at(
                st.action.span(),
                "a `wait` step needs `duration`",
                Some("e.g. duration = \"2h\""),
            )),
        };
    }
    let from = st.from.as_ref().ok_or_else(|| {
        cx.at(
            st.action.span(),
            format!("a `{action}` step needs `from` (the host that acts)"),
            None,
        )
    })?;
    let Some(host) = s.hosts.iter().find(|h| h.name.get_ref() == from.get_ref()) else {
        let names: Vec<_> = s.hosts.iter().map(|h| h.name.get_ref().as_str()).collect();
        return Err(cx.at(
            from.span(),
            format!("there is no host `{}`", from.get_ref()),
            Some(&format!("hosts: {}", names.join(", "))),
        ));
    };
    let need_to = |what: &str| -> Result<&S<String>, Problem> {
        st.to.as_ref().ok_or_else(|| {
            cx.at(
                st.action.span(),
                format!("a `{action}` step needs `to` ({what})"),
                None,
            )
        })
    };
    let node_or_addr = |t: &S<String>| -> Result<(), Problem> {
        if t.get_ref().parse::<Ipv4Addr>().is_ok()
            || s.hosts.iter().any(|h| h.name.get_ref() == t.get_ref())
            || s.routers.iter().any(|r| r.name.get_ref() == t.get_ref())
        {
            Ok(())
        } else {
            Err(cx.at(
                t.span(),
                format!("`{}` is neither an IPv4 address nor a node", t.get_ref()),
                Some("use an address or the name of a host"),
            ))
        }
    };
    match action {
        "ping" | "http-get" | "ftp-get" => node_or_addr(need_to("an address or host")?)?,
        "tcp-connect" => {
            node_or_addr(need_to("an address or host")?)?;
            match &st.port {
                Some(p) if (1..=65535).contains(p.get_ref()) => {}
                Some(p) => {
                    return Err(cx.at(
                        p.span(),
                        format!("port {} is not in 1–65535", p.get_ref()),
                        None,
                    ))
                }
                None => {
                    return Err(cx.at(st.action.span(), "a `tcp-connect` step needs `port`", None))
                }
            }
        }
        "outlook-connect" => {
            let t = need_to("the Exchange server's address or DNS name")?;
            if t.get_ref().parse::<Ipv4Addr>().is_err() && !t.get_ref().contains('.') {
                node_or_addr(t)?;
            }
            if let Some(m) = &st.address_mode {
                if !matches!(m.get_ref().as_str(), "dialled-address" | "tower-address") {
                    return Err(cx.at(m.span(), format!("unknown address mode `{}`", m.get_ref()), Some("`dialled-address` (keep the address it dialled) or `tower-address` (take the tower's IP)")));
                }
            }
        }
        "send-mail" => {
            let t = need_to("a mail address")?;
            if !t.get_ref().contains('@') {
                return Err(cx.at(
                    t.span(),
                    format!("`{}` is not a mail address", t.get_ref()),
                    Some("user@domain, user@[192.0.2.1] or [TYPE:user@domain]"),
                ));
            }
            if host.mta.is_none() && host.ims.is_none() {
                return Err(cx.at(
                    from.span(),
                    format!(
                        "host `{}` runs no MTA or IMS to send mail with",
                        from.get_ref()
                    ),
                    Some("add [host.mta] or [host.ims] to it"),
                ));
            }
        }
        "dns-lookup" => {
            let n = st.query.as_ref().ok_or_else(|| {
                cx.at(
                    st.action.span(),
                    "a `dns-lookup` step needs `query` (the name to look up)",
                    None,
                )
            })?;
            if n.get_ref().is_empty() || n.get_ref().len() > 253 {
                return Err(cx.at(n.span(), "a DNS name must be 1–253 characters", None));
            }
            if let Some(t) = &st.rtype {
                if !matches!(t.get_ref().to_ascii_uppercase().as_str(), "A" | "MX") {
                    return Err(cx.at(
                        t.span(),
                        format!("record type `{}` is not served", t.get_ref()),
                        Some("`A` or `MX`"),
                    ));
                }
            }
        }
        "nat-type" => {
            if st.servers.len() != 2 {
                return Err(cx.at(
                    st.action.span(),
                    "a `nat-type` step needs two `servers` running udp_echo = [3478, 3479]",
                    None,
                ));
            }
            for sv in &st.servers {
                node_or_addr(sv)?;
            }
        }
        _ => {}
    }
    if let Some(m) = &st.mode {
        if ftp_mode(m.get_ref()).is_none() {
            return Err(cx.at(
                m.span(),
                format!("unknown FTP mode `{}`", m.get_ref()),
                Some("`active`, `eprt`, `passive` or `epsv`"),
            ));
        }
    }
    Ok(())
}

fn ftp_mode(s: &str) -> Option<FtpMode> {
    Some(match s {
        "active" | "port" => FtpMode::Active,
        "eprt" => FtpMode::ActiveExtended,
        "passive" | "pasv" => FtpMode::Passive,
        "epsv" => FtpMode::PassiveExtended,
        _ => return None,
    })
}

fn resolve(b: &Built, s: &Scenario, t: &str) -> Option<Ipv4Addr> {
    if let Ok(a) = t.parse() {
        return Some(a);
    }
    if let Some(h) = s.hosts.iter().find(|h| h.name.get_ref() == t) {
        return h.address.get_ref().split('/').next()?.parse().ok();
    }
    if let Some(r) = s.routers.iter().find(|r| r.name.get_ref() == t) {
        return r
            .interfaces
            .iter()
            .find(|i| i.role.as_ref().is_some_and(|x| x.get_ref() == "outside"))
            .or(r.interfaces.first())?
            .address
            .get_ref()
            .split('/')
            .next()?
            .parse()
            .ok();
    }
    let _ = b;
    None
}

/// Runs until `done` or `limit`.
fn run_until(sim: &mut Sim, limit: Duration, done: impl FnMut(&Sim) -> bool) {
    sim.run_until_pred(limit, done);
}

fn step_limit(st: &Step, default: u64) -> Duration {
    st.duration
        .as_ref()
        .and_then(|d| expect::parse_duration(d.get_ref()))
        .unwrap_or(Duration::from_secs(default))
}

fn run_step(b: &mut Built, s: &Scenario, st: &Step) -> Actual {
    let action = st.action.get_ref().as_str();
    let from = st.from.as_ref().map(|f| b.nodes[f.get_ref()]);
    let target = st.to.as_ref().and_then(|t| resolve(b, s, t.get_ref()));
    let sim = &mut b.sim;
    let mut a = Actual::default();
    match action {
        "wait" => {
            sim.run_for(step_limit(st, 0));
            a.word = "waited".into();
            a.text = format!("waited until {}", sim.now());
        }
        "tcp-connect" => {
            let port = st.port.as_ref().map_or(0, |p| *p.get_ref() as u16);
            let id = sim
                .add_app(
                    from.unwrap_or(natsim_sim::NodeId(0)),
                    Box::new(TcpProbe::new((
                        target.unwrap_or(Ipv4Addr::UNSPECIFIED),
                        port,
                    ))),
                )
                .ok();
            if let Some(id) = id {
                run_until(sim, step_limit(st, 180), |s| {
                    s.app::<TcpProbe>(id).is_some_and(|p| p.outcome.is_some())
                });
                match sim.app::<TcpProbe>(id).and_then(|p| p.outcome.clone()) {
                    Some(ProbeOutcome::Connected { after_ms, .. }) => {
                        a.word = "connected".into();
                        a.after_secs = Some(after_ms as f64 / 1000.0);
                        a.text = format!("connected after {:.1} s", after_ms as f64 / 1000.0);
                    }
                    Some(ProbeOutcome::Failed {
                        error: ConnectError::TimedOut { after_ms },
                    }) => {
                        a.word = "timed-out".into();
                        a.after_secs = Some(after_ms as f64 / 1000.0);
                        a.text = format!("timed out after {:.1} s", after_ms as f64 / 1000.0);
                    }
                    Some(ProbeOutcome::Failed {
                        error: ConnectError::Refused,
                    }) => {
                        a.word = "refused".into();
                        a.text = "connection refused (RST)".into();
                    }
                    other => {
                        a.word = "unreachable".into();
                        a.text = format!("{other:?}");
                    }
                }
            }
        }
        "ping" => {
            if let Ok(id) = sim.add_app(
                from.unwrap_or(natsim_sim::NodeId(0)),
                Box::new(Ping::new(target.unwrap_or(Ipv4Addr::UNSPECIFIED))),
            ) {
                run_until(sim, step_limit(st, 30), |s| {
                    s.app::<Ping>(id).is_some_and(|p| p.outcome.is_some())
                });
                match sim.app::<Ping>(id).and_then(|p| p.outcome.clone()) {
                    Some(ProbeOutcome::Replied { from, after_ms }) => {
                        a.word = "replied".into();
                        a.text = format!("reply from {from} after {after_ms} ms");
                    }
                    Some(ProbeOutcome::IcmpError {
                        from,
                        icmp_type,
                        code,
                    }) => {
                        a.word = "icmp-error".into();
                        a.text = format!(
                            "reply from {from}: {} (ICMP type {icmp_type} code {code})",
                            natsim_sim::probe::icmp_error_text(icmp_type, code)
                        );
                    }
                    _ => {
                        a.word = "no-reply".into();
                        a.text = "request timed out (4 requests)".into();
                    }
                }
            }
        }
        "send-mail" => {
            let host = st
                .from
                .as_ref()
                .map(|f| f.get_ref().clone())
                .unwrap_or_default();
            let (app, is_ims) = b.mailers[&host];
            let to = st
                .to
                .as_ref()
                .map(|t| t.get_ref().clone())
                .unwrap_or_default();
            let sender = st
                .sender
                .clone()
                .unwrap_or_else(|| format!("postmaster@{host}"));
            let subject = st.subject.clone().unwrap_or_else(|| "Test Subject".into());
            let now = b.sim.now();
            let sim = &mut b.sim;
            let msg = if is_ims {
                sim.with_app::<Ims, _>(app, |m| m.mta.submit(&sender, &to, &subject, now))
            } else {
                sim.with_app::<Mta, _>(app, |m| m.submit(&sender, &to, &subject, now))
            };
            let msg = msg.unwrap_or(0);
            let status = |s: &Sim| -> Option<DeliveryStatus> {
                if is_ims {
                    s.app::<Ims>(app).and_then(|m| m.mta.status(msg).cloned())
                } else {
                    s.app::<Mta>(app).and_then(|m| m.status(msg).cloned())
                }
            };
            run_until(sim, step_limit(st, 600), |s| {
                status(s).is_some_and(|x| x.settled())
            });
            let st2 = status(sim).unwrap_or(DeliveryStatus::Pending);
            a.word = st2.code().into();
            match st2 {
                DeliveryStatus::Delivered { server, reply } => {
                    a.text = format!("delivered to {server}");
                    a.detail = reply;
                }
                DeliveryStatus::Deferred { reason, .. } => {
                    a.text = format!("deferred: {reason}");
                    a.detail = reason;
                }
                DeliveryStatus::Bounced { reason, ndr } => {
                    a.text = format!("bounced: {reason}");
                    a.detail = format!("{reason}\n{ndr}");
                }
                DeliveryStatus::Pending => a.text = "still pending".into(),
            }
        }
        "dns-lookup" => {
            let rtype = match st.rtype.as_ref().map(|t| t.get_ref().to_ascii_uppercase()) {
                Some(t) if t == "MX" => RecordType::MX,
                _ => RecordType::A,
            };
            let name = st
                .query
                .as_ref()
                .map(|n| n.get_ref().clone())
                .unwrap_or_default();
            let servers = target.into_iter().collect();
            if let Ok(id) = sim.add_app(
                from.unwrap_or(natsim_sim::NodeId(0)),
                Box::new(DnsLookup::new(&name, rtype, servers)),
            ) {
                run_until(sim, step_limit(st, 30), |s| {
                    s.app::<DnsLookup>(id).is_some_and(|l| l.result().is_some())
                });
                let r = sim
                    .app::<DnsLookup>(id)
                    .and_then(|l| l.result().cloned())
                    .unwrap_or(LookupResult::Timeout);
                a.text = r.describe();
                a.word = match &r {
                    LookupResult::Addresses { addrs, .. } => {
                        a.answers = addrs.iter().map(|x| x.to_string()).collect();
                        "answered"
                    }
                    LookupResult::Exchanges { mx, .. } => {
                        a.answers = mx.iter().map(|(_, e)| e.clone()).collect();
                        "answered"
                    }
                    LookupResult::NxDomain { .. } => "nxdomain",
                    LookupResult::NoData { .. } => "nodata",
                    LookupResult::Refused { .. } => "refused",
                    LookupResult::Timeout => "dns-timeout",
                }
                .into();
            }
        }
        "outlook-connect" => {
            let t = st
                .to
                .as_ref()
                .map(|t| t.get_ref().clone())
                .unwrap_or_default();
            let server = match target {
                Some(addr) => Server::Addr(addr),
                None => Server::Name(t),
            };
            let mode = match st.address_mode.as_ref().map(|m| m.get_ref().as_str()) {
                Some("tower-address") => AddressMode::TowerAddress,
                _ => AddressMode::DialledAddress,
            };
            if let Ok(id) = sim.add_app(
                from.unwrap_or(natsim_sim::NodeId(0)),
                Box::new(Outlook::new(server, mode)),
            ) {
                run_until(sim, step_limit(st, 180), |s| {
                    s.app::<Outlook>(id).is_some_and(|o| o.outcome.is_some())
                });
                match sim.app::<Outlook>(id).and_then(|o| o.outcome.clone()) {
                    Some(OutlookOutcome::Connected {
                        via,
                        endpoint_returned,
                    }) => {
                        a.word = "connected".into();
                        a.text =
                            format!("connected via {via} (endpoint returned {endpoint_returned})");
                        a.via = Some(via);
                        a.endpoint = Some(endpoint_returned);
                    }
                    Some(OutlookOutcome::Failed {
                        stage,
                        why,
                        endpoint_returned,
                    }) => {
                        a.word = "failed".into();
                        a.text = match &endpoint_returned {
                            Some(e) => format!("failed at {stage}: {why} (endpoint returned {e})"),
                            None => format!("failed at {stage}: {why}"),
                        };
                        a.detail = why;
                        a.stage = Some(stage);
                        a.endpoint = endpoint_returned;
                    }
                    None => {
                        a.word = "failed".into();
                        a.text = "no outcome within the step's time".into();
                    }
                }
            }
        }
        "http-get" => {
            let port = st.port.as_ref().map_or(80, |p| *p.get_ref() as u16);
            let path = st.path.clone().unwrap_or_else(|| "/".into());
            if let Ok(id) = sim.add_app(
                from.unwrap_or(natsim_sim::NodeId(0)),
                Box::new(HttpClient::new(
                    (target.unwrap_or(Ipv4Addr::UNSPECIFIED), port),
                    &path,
                )),
            ) {
                run_until(sim, step_limit(st, 120), |s| {
                    s.app::<HttpClient>(id).is_some_and(|c| c.outcome.is_some())
                });
                match sim.app::<HttpClient>(id).and_then(|c| c.outcome.clone()) {
                    Some(HttpOutcome::Response { status, body_len }) => {
                        a.word = "response".into();
                        a.status = Some(status);
                        a.text = format!("HTTP {status} ({body_len} bytes)");
                    }
                    Some(HttpOutcome::Failed { why }) => {
                        a.word = "failed".into();
                        a.text = why.clone();
                        a.detail = why;
                    }
                    None => a.word = "failed".into(),
                }
            }
        }
        "ftp-get" => {
            let mode = st
                .mode
                .as_ref()
                .and_then(|m| ftp_mode(m.get_ref()))
                .unwrap_or(FtpMode::Passive);
            let file = st.file.clone().unwrap_or_default();
            if let Ok(id) = sim.add_app(
                from.unwrap_or(natsim_sim::NodeId(0)),
                Box::new(FtpClient::new(
                    target.unwrap_or(Ipv4Addr::UNSPECIFIED),
                    &file,
                    mode,
                )),
            ) {
                run_until(sim, step_limit(st, 180), |s| {
                    s.app::<FtpClient>(id).is_some_and(|c| c.outcome.is_some())
                });
                match sim.app::<FtpClient>(id).and_then(|c| c.outcome.clone()) {
                    Some(FtpOutcome::Downloaded { bytes, data_from }) => {
                        a.word = "downloaded".into();
                        a.text =
                            format!("downloaded {bytes} bytes (data connection from {data_from})");
                    }
                    Some(FtpOutcome::Failed { stage, why }) => {
                        a.word = "failed".into();
                        a.text = format!("failed at {stage}: {why}");
                        a.detail = why;
                        a.stage = Some(stage);
                    }
                    None => a.word = "failed".into(),
                }
            }
        }
        "nat-type" => nat_type(b, s, st, &mut a),
        _ => {}
    }
    a
}

/// RFC 5780-style classification from inside: mapping by comparing the
/// endpoint each server sees; filtering by who may then send in.
fn nat_type(b: &mut Built, s: &Scenario, st: &Step, a: &mut Actual) {
    let from = b.nodes[st.from.as_ref().map(|f| f.get_ref().as_str()).unwrap_or("")];
    let s1 = resolve(b, s, st.servers[0].get_ref()).unwrap_or(Ipv4Addr::UNSPECIFIED);
    let s2 = resolve(b, s, st.servers[1].get_ref()).unwrap_or(Ipv4Addr::UNSPECIFIED);
    let n1 = b.nodes.get(st.servers[0].get_ref()).copied();
    let n2 = b.nodes.get(st.servers[1].get_ref()).copied();
    let sim = &mut b.sim;
    let seen = |sim: &Sim, id: natsim_sim::AppId, k: usize| -> Option<String> {
        let p = sim.app::<UdpPeer>(id)?;
        let d = &p.received.get(k)?.2;
        String::from_utf8_lossy(d)
            .strip_prefix("seen ")
            .map(String::from)
    };
    let Ok(pa) = sim.add_app(from, Box::new(UdpPeer::new(40000))) else {
        return;
    };
    let mut mapped = Vec::new();
    for (k, to) in [(s1, 3478), (s1, 3479), (s2, 3478)].into_iter().enumerate() {
        sim.with_app::<UdpPeer, _>(pa, |p| p.send(to, b"binding request"));
        sim.run_until_pred(Duration::from_secs(2), |sm| seen(sm, pa, k).is_some());
        mapped.push(seen(sim, pa, k).unwrap_or_else(|| "none".into()));
    }
    let mapping = if mapped[0] == mapped[2] {
        "endpoint-independent"
    } else if mapped[0] == mapped[1] {
        "address-dependent"
    } else {
        "address-and-port-dependent"
    };
    // Filtering: a fresh mapping, then unsolicited datagrams to it.
    let Ok(pb) = sim.add_app(from, Box::new(UdpPeer::new(40001))) else {
        return;
    };
    sim.with_app::<UdpPeer, _>(pb, |p| p.send((s1, 3478), b"binding request"));
    sim.run_until_pred(Duration::from_secs(2), |sm| seen(sm, pb, 0).is_some());
    let m = seen(sim, pb, 0).unwrap_or_default();
    let target: Option<(Ipv4Addr, u16)> = m
        .split_once(':')
        .and_then(|(x, p)| Some((x.parse().ok()?, p.parse().ok()?)));
    let mut from_other_port = false;
    let mut from_other_addr = false;
    if let (Some(t), Some(n1), Some(n2)) = (target, n1, n2) {
        for (node, flag) in [(n1, 0), (n2, 1)] {
            if let Ok(q) = sim.add_app(node, Box::new(UdpPeer::new(3480))) {
                sim.with_app::<UdpPeer, _>(q, |p| p.send(t, b"unsolicited"));
                let before = sim.app::<UdpPeer>(pb).map_or(0, |p| p.received.len());
                sim.run_for(Duration::from_secs(2));
                let got = sim.app::<UdpPeer>(pb).map_or(0, |p| p.received.len()) > before;
                if flag == 0 {
                    from_other_port = got;
                } else {
                    from_other_addr = got;
                }
            }
        }
    }
    let filtering = if from_other_addr {
        "endpoint-independent"
    } else if from_other_port {
        "address-dependent"
    } else {
        "address-and-port-dependent"
    };
    a.word = "classified".into();
    a.text = format!(
        "mapping {mapping}, filtering {filtering} (seen as {})",
        mapped.join(", ")
    );
    a.mapping = Some(mapping.into());
    a.filtering = Some(filtering.into());
}

fn holds(e: &Expect, a: &Actual, traces: &[&FrameTrace]) -> Result<(), String> {
    let ok = match e {
        Expect::Outcome { word } => {
            a.word == *word || (word == "connected" && a.word == "response")
        }
        Expect::Containing { word, text } => {
            let w_ok = match word.as_str() {
                "ndr" => a.word == "bounced",
                w => a.word == w,
            };
            w_ok && (a.detail.contains(text.as_str()) || a.text.contains(text.as_str()))
        }
        Expect::TimedOutAfter { secs } => {
            a.word == "timed-out"
                && a.after_secs
                    .is_some_and(|x| (x - secs).abs() <= (secs * 0.05).max(1.0))
        }
        Expect::ConnectedVia { endpoint } => {
            a.word == "connected" && a.via.as_deref() == Some(endpoint)
        }
        Expect::EndpointReturned { endpoint } => a.endpoint.as_deref() == Some(endpoint),
        Expect::FailedAt { stage } => a.word == "failed" && a.stage.as_deref() == Some(stage),
        Expect::Answer { value } => a
            .answers
            .iter()
            .any(|x| x.eq_ignore_ascii_case(value.trim_end_matches('.'))),
        Expect::Status { code } => a.status == Some(*code),
        Expect::Mapping { behaviour } => a.mapping.as_deref() == Some(behaviour),
        Expect::Filtering { behaviour } => a.filtering.as_deref() == Some(behaviour),
        Expect::Trace { disposition } => traces.iter().any(|t| t.disposition.code() == disposition),
        Expect::TraceStep { kind } => traces.iter().any(|t| {
            t.hops
                .iter()
                .flat_map(|h| &h.steps)
                .any(|s| matches!(s, natsim_sim::Step::Nat { kind: k, .. } if k == kind))
        }),
        Expect::TraceContaining { text } => traces.iter().any(|t| {
            t.hops.iter().flat_map(|h| &h.steps).any(|s| match s {
                natsim_sim::Step::Nat { text: x, .. }
                | natsim_sim::Step::Local { text: x }
                | natsim_sim::Step::Dropped { reason: x } => x.contains(text.as_str()),
                _ => false,
            })
        }),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("expected `{e}`, got `{}`", a.text))
    }
}

/// Runs one variant (`None`: the base scenario).
pub fn run_variant(
    l: &Loaded,
    v: Option<&Variant>,
    seed_override: Option<u64>,
    keep_pcaps: bool,
) -> Result<VariantResult, Problem> {
    let cx = Ctx {
        file: &l.file,
        src: &l.src,
    };
    let s = l.effective(v);
    let seed = seed_override.or(s.seed).unwrap_or(1);
    let mut b = build(&s, seed, &cx)?;
    // Let ARP and listeners settle before the first step.
    b.sim.run_for(Duration::from_millis(100));
    let mut steps = Vec::new();
    let mut pass = true;
    for st in &s.steps {
        let first_trace = b.sim.traces().len() as u64;
        let log_before = b.sim.logs().len();
        let started = b.sim.now();
        let actual = run_step(&mut b, &s, st);
        // Let in-flight frames of the step land (answers, RSTs).
        b.sim.run_for(Duration::from_millis(200));
        let ended = b.sim.now();
        let traces: Vec<&FrameTrace> = b
            .sim
            .traces()
            .iter()
            .filter(|t| t.id >= first_trace)
            .collect();
        let mut failures = Vec::new();
        let exps = expects(st);
        for e in &exps {
            match expect::parse(e.get_ref(), st.action.get_ref()) {
                Ok(e) => {
                    if let Err(why) = holds(&e, &actual, &traces) {
                        failures.push(why);
                    }
                }
                Err(why) => failures.push(why),
            }
        }
        pass &= failures.is_empty();
        let log = b.sim.logs().into_iter().skip(log_before).collect();
        steps.push(StepResult {
            name: st.name.get_ref().clone(),
            action: st.action.get_ref().clone(),
            expected: exps.iter().map(|e| e.get_ref().clone()).collect(),
            actual: actual.text,
            pass: failures.is_empty(),
            failures,
            started,
            ended,
            traces: traces.iter().map(|t| t.id).collect(),
            log,
            note: st.note.clone(),
        });
    }
    let pcaps = if keep_pcaps {
        (0..b.segments.len())
            .map(|k| {
                (
                    b.segments[k].clone(),
                    b.sim.pcap_bytes(natsim_sim::SegmentId(k)),
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(VariantResult {
        file: l.file.clone(),
        title: s.title.clone(),
        source: s.source.clone(),
        variant: v.map_or("base".to_string(), |v| v.name.get_ref().clone()),
        lesson: s.lesson.clone(),
        seed,
        pass,
        steps,
        traces: b.sim.traces().to_vec(),
        segments: b.segments.clone(),
        nodes: b.sim.topology(),
        pcaps,
    })
}
