//! One step's action: the [`Action`] a `[[step]]` asks for, built from
//! exactly the fields that action takes (which fields apply is checked by
//! [`super::step`]), with hosts, routers and groups resolved to indexes.

use super::{Names, NodeRef};
use crate::diag::{Ctx, Problem};
use crate::model::*;
use crate::parse;
use crate::schema::{Step, S};
use hickory_proto::rr::RecordType;
use natsim_apps::exchange::AddressMode;
use natsim_apps::ftp::FtpMode;
use std::net::Ipv4Addr;

/// Every action, and the fields it takes besides `name`, `action`, `at`,
/// `background`, `duration`, `expect` and `note`.
pub const ACTIONS: &[(&str, &[&str])] = &[
    ("wait", &[]),
    ("ping", &["from", "to", "size", "ttl"]),
    (
        "tcp-connect",
        &["from", "to", "port", "source_port", "keep"],
    ),
    ("tcp-send", &["reuse", "payload"]),
    (
        "udp-send",
        &["from", "to", "port", "source_port", "payload", "ttl"],
    ),
    ("send-mail", &["from", "to", "sender", "subject", "until"]),
    ("dns-lookup", &["from", "to", "port", "query", "type"]),
    ("outlook-connect", &["from", "to", "address_mode"]),
    ("http-get", &["from", "to", "port", "path"]),
    ("ftp-get", &["from", "to", "port", "file", "mode"]),
    ("nat-type", &["from", "servers"]),
    ("nat-table", &["router"]),
];

/// `ping`'s `size`: echo data bytes, up to what a host can send in
/// fragments (its stack holds datagrams of up to 8 KiB).
fn ping_size(size: &Option<S<u32>>, cx: &Ctx<'_>) -> Result<u16, Problem> {
    let Some(s) = size else {
        return Ok(natsim_sim::probe::PING_DEFAULT_SIZE);
    };
    match u16::try_from(*s.get_ref()) {
        Ok(n) if n <= natsim_sim::probe::PING_MAX_SIZE => Ok(n),
        _ => Err(cx.at(
            s.span(),
            format!("ping size {} is too large", s.get_ref()),
            Some(&format!(
                "0 to {} bytes of echo data (a host's datagrams are at most 8 KiB)",
                natsim_sim::probe::PING_MAX_SIZE
            )),
        )),
    }
}

/// A request's IP TTL: 1–255 (0 is never sent: RFC 1122 §3.2.1.7).
fn ttl(t: &Option<S<u32>>, cx: &Ctx<'_>) -> Result<Option<u8>, Problem> {
    let Some(t) = t else { return Ok(None) };
    match u8::try_from(*t.get_ref()) {
        Ok(n) if n >= 1 => Ok(Some(n)),
        _ => Err(cx.at(
            t.span(),
            format!("TTL {} is not in 1–255", t.get_ref()),
            Some("1 reaches the first router, 2 the second, and so on"),
        )),
    }
}

/// `udp-send`'s `payload`, up to what a host sends in fragments.
fn udp_payload(payload: &Option<S<String>>, cx: &Ctx<'_>) -> Result<Vec<u8>, Problem> {
    let Some(p) = payload else {
        return Ok(b"natsim probe".to_vec());
    };
    let max = natsim_apps::echo::UDP_MAX_PAYLOAD;
    let n = p.get_ref().len();
    if n > max {
        return Err(cx.at(
            p.span(),
            format!("a {n}-byte payload is too large for udp-send"),
            Some(&format!(
                "at most {max} bytes (a host's datagrams are at most 8 KiB; above the MTU it fragments them)"
            )),
        ));
    }
    Ok(p.get_ref().clone().into_bytes())
}

pub(super) struct StepCx<'a> {
    pub names: &'a Names,
    pub hosts: &'a [HostSpec],
    pub routers: &'a [RouterSpec],
    pub cx: &'a Ctx<'a>,
}

impl StepCx<'_> {
    /// A step's `source_port` on host `h`, refused when one of the host's
    /// own services holds that port.
    fn free_source_port(
        &self,
        h: HostIx,
        proto: L4,
        v: &Option<S<u32>>,
    ) -> Result<Option<u16>, Problem> {
        let Some(v) = v else { return Ok(None) };
        let port = parse::port(v, self.cx)?;
        let host = &self.hosts[h.0];
        match host.apps.iter().find_map(|a| a.holds(proto, port)) {
            None => Ok(Some(port)),
            Some(service) => Err(self.cx.at(
                v.span(),
                format!(
                    "source port {port} is taken on `{}` by its own `{service}`: a real stack's bind fails (address in use), and its replies would go to the service",
                    host.name
                ),
                Some("pick another source_port, or move the service to another port"),
            )),
        }
    }

    /// `GROUP[*]`: every member of a host group, or an error naming the
    /// groups; None for anything else.
    pub fn members(&self, n: &S<String>) -> Option<Result<&[HostIx], Problem>> {
        let g = n.get_ref().strip_suffix("[*]")?;
        Some(match self.names.groups.get(g) {
            Some(m) if !m.is_empty() => Ok(m),
            _ => {
                Err(self.cx.at(
                    n.span(),
                    format!("there is no host group `{g}`"),
                    Some(&format!(
                    "`GROUP[*]` runs the step from every member of a [[host_group]]; groups: {}",
                    if self.names.groups.is_empty() {
                        "none".to_string()
                    } else {
                        self.names.groups.keys().cloned().collect::<Vec<_>>().join(", ")
                    }
                )),
                ))
            }
        })
    }

    /// The acting host (for `GROUP[*]`, the first member: the step is
    /// lowered once and run from each).
    fn host(&self, n: &S<String>) -> Result<HostIx, Problem> {
        if let Some(m) = self.members(n) {
            return m.map(|m| m[0]);
        }
        match self.names.nodes.get(n.get_ref()) {
            Some(NodeRef::Host(h)) => Ok(*h),
            Some(NodeRef::Router(_)) => Err(self.cx.at(
                n.span(),
                format!("`{}` is a router; a step acts from a host", n.get_ref()),
                None,
            )),
            None => Err(self.cx.at(
                n.span(),
                format!("there is no host `{}`", n.get_ref()),
                Some(&format!("hosts: {}", self.host_names())),
            )),
        }
    }

    fn host_names(&self) -> String {
        let mut v: Vec<&str> = self
            .hosts
            .iter()
            .map(|h| h.name.as_str())
            .take(20)
            .collect();
        if self.hosts.len() > 20 {
            v.push("…");
        }
        v.join(", ")
    }

    fn addr_of(&self, r: NodeRef) -> Option<Ipv4Addr> {
        match r {
            NodeRef::Host(h) => self.hosts.get(h.0).map(|h| h.addr),
            NodeRef::Router(r) => self.routers.get(r.0).and_then(RouterSpec::public_addr),
        }
    }

    /// An address, a node, or (where `names_ok`) a DNS name the acting host
    /// resolves through its `dns` servers.
    fn target(&self, t: &S<String>, from: HostIx, names_ok: bool) -> Result<Target, Problem> {
        let text = t.get_ref().trim();
        if let Ok(a) = text.parse::<Ipv4Addr>() {
            return Ok(Target::Addr(a));
        }
        if let Some(r) = self.names.nodes.get(text) {
            return self.addr_of(*r).map(Target::Addr).ok_or_else(|| {
                self.cx
                    .at(t.span(), format!("node `{text}` has no address"), None)
            });
        }
        if names_ok
            && text.contains('.')
            && text.len() <= 253
            && parse::dns_name_problem(text).is_none()
        {
            if self.hosts.get(from.0).is_some_and(|h| h.dns.is_empty()) {
                return Err(self.cx.at(
                    t.span(),
                    format!("`{text}` is a DNS name, but the acting host has no `dns` servers to resolve it"),
                    Some("give the host dns = [\"a.b.c.d\"], or use an address"),
                ));
            }
            return Ok(Target::Name(text.to_ascii_lowercase()));
        }
        let numeric = text
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()));
        if numeric {
            return Err(self.cx.at(
                t.span(),
                format!("`{text}` is not an IPv4 address"),
                Some("four numbers of 0–255, separated by dots; a DNS name never ends in digits only (RFC 3696 §2)"),
            ));
        }
        Err(self.cx.at(
            t.span(),
            format!("`{text}` is neither an IPv4 address nor a node"),
            Some(if names_ok {
                "use an address, the name of a host, or a DNS name (with a dot)"
            } else {
                "use an address or the name of a host"
            }),
        ))
    }
}

fn need<'a, T>(
    v: &'a Option<S<T>>,
    what: &str,
    st: &Step,
    cx: &Ctx<'_>,
) -> Result<&'a S<T>, Problem> {
    v.as_ref().ok_or_else(|| {
        cx.at(
            st.action.span(),
            format!("a `{}` step needs `{what}`", st.action.get_ref()),
            None,
        )
    })
}

pub(super) fn action(st: &Step, sc: &StepCx<'_>) -> Result<Action, Problem> {
    let cx = sc.cx;
    let name = st.action.get_ref().as_str();
    let from = || -> Result<HostIx, Problem> { sc.host(need(&st.from, "from", st, cx)?) };
    let port_or =
        |d: u16| -> Result<u16, Problem> { st.port.as_ref().map_or(Ok(d), |p| parse::port(p, cx)) };
    let text =
        |v: &Option<S<String>>, d: &str| v.as_ref().map_or(d.to_string(), |x| x.get_ref().clone());
    Ok(match name {
        "wait" => {
            need(&st.duration, "duration", st, cx)?;
            Action::Wait
        }
        "ping" => {
            let f = from()?;
            Action::Ping {
                from: f,
                to: sc.target(need(&st.to, "to", st, cx)?, f, true)?,
                size: ping_size(&st.size, cx)?,
                ttl: ttl(&st.ttl, cx)?,
            }
        }
        "tcp-connect" => {
            let f = from()?;
            Action::TcpConnect {
                from: f,
                to: sc.target(need(&st.to, "to", st, cx)?, f, true)?,
                port: parse::port(need(&st.port, "port", st, cx)?, cx)?,
                source_port: sc.free_source_port(f, L4::Tcp, &st.source_port)?,
                keep: None,
            }
        }
        "tcp-send" => Action::TcpSend {
            reuse: {
                need(&st.reuse, "reuse", st, cx)?;
                ConnIx(usize::MAX)
            },
            payload: text(&st.payload, "natsim probe").into_bytes(),
        },
        "udp-send" => {
            let f = from()?;
            Action::UdpSend {
                from: f,
                to: sc.target(need(&st.to, "to", st, cx)?, f, true)?,
                port: parse::port(need(&st.port, "port", st, cx)?, cx)?,
                source_port: sc.free_source_port(f, L4::Udp, &st.source_port)?,
                payload: udp_payload(&st.payload, cx)?,
                ttl: ttl(&st.ttl, cx)?,
            }
        }
        "send-mail" => {
            let fs = need(&st.from, "from", st, cx)?;
            let f = sc.host(fs)?;
            let to = need(&st.to, "to (a mail address)", st, cx)?;
            if !to.get_ref().contains('@') {
                return Err(cx.at(
                    to.span(),
                    format!("`{}` is not a mail address", to.get_ref()),
                    Some("user@domain, user@[192.0.2.1] or [TYPE:user@domain]"),
                ));
            }
            let mailer = sc.hosts[f.0].mailer().ok_or_else(|| {
                cx.at(
                    fs.span(),
                    format!(
                        "host `{}` runs no MTA or IMS to send mail with",
                        fs.get_ref()
                    ),
                    Some("add [host.mta] or [host.ims] to it"),
                )
            })?;
            let until = match st.until.as_ref() {
                None => MailUntil::Settled,
                Some(u) => match u.get_ref().as_str() {
                    "settled" => MailUntil::Settled,
                    "final" => MailUntil::Final,
                    other => {
                        return Err(cx.at(
                            u.span(),
                            format!("`until = \"{other}\"` is not a point a mail step can end at"),
                            Some("`settled` (the first resting state, a deferral included) or `final` (through every retry to delivery, a bounce or the queue's expiry)"),
                        ))
                    }
                },
            };
            // RFC 5321 §4.5.1: every mail domain has a postmaster.
            let mail_domain = sc
                .hosts
                .get(f.0)
                .and_then(HostSpec::mail_domain)
                .unwrap_or(fs.get_ref())
                .to_string();
            Action::SendMail {
                from: f,
                mailer,
                until,
                to: to.get_ref().clone(),
                sender: text(&st.sender, &format!("postmaster@{}", mail_domain)),
                subject: text(&st.subject, "Test Subject"),
            }
        }
        "dns-lookup" => {
            let f = from()?;
            let q = need(&st.query, "query (the name to look up)", st, cx)?;
            if q.get_ref().is_empty() || q.get_ref().len() > 253 {
                return Err(cx.at(q.span(), "a DNS name must be 1–253 characters", None));
            }
            if let Some(why) = parse::dns_name_problem(q.get_ref()) {
                let words: Vec<&str> = q.get_ref().split_whitespace().collect();
                let hint = match words.as_slice() {
                    [name, t] if ["A", "MX"].contains(&t.to_ascii_uppercase().as_str()) => format!(
                        "the record type goes in its own field: query = \"{name}\", type = \"{}\"",
                        t.to_ascii_uppercase()
                    ),
                    _ => "labels of letters, digits, `-` and `_`, separated by dots".to_string(),
                };
                return Err(cx.at(
                    q.span(),
                    format!("`{}` is not a DNS name: {why}", q.get_ref()),
                    Some(&hint),
                ));
            }
            let rtype = match st.rtype.as_ref().map(|t| t.get_ref().to_ascii_uppercase()) {
                None => RecordType::A,
                Some(t) if t == "A" => RecordType::A,
                Some(t) if t == "MX" => RecordType::MX,
                Some(other) => {
                    let t = st.rtype.as_ref().map_or(0..0, S::span);
                    return Err(cx.at(
                        t,
                        format!("record type `{other}` is not served"),
                        Some("`A` or `MX`"),
                    ));
                }
            };
            let server = match &st.to {
                None => None,
                Some(t) => match sc.target(t, f, false)? {
                    Target::Addr(a) => Some(a),
                    Target::Name(_) => None,
                },
            };
            if server.is_none() && sc.hosts[f.0].dns.is_empty() {
                return Err(cx.at(
                    st.action.span(),
                    "a `dns-lookup` step needs `to` (the server to ask) or a host with `dns` servers",
                    None,
                ));
            }
            Action::DnsLookup {
                from: f,
                server,
                port: port_or(53)?,
                query: q.get_ref().clone(),
                rtype,
            }
        }
        "outlook-connect" => {
            let f = from()?;
            let t = need(
                &st.to,
                "to (the Exchange server's address or DNS name)",
                st,
                cx,
            )?;
            let to = match sc.target(t, f, false) {
                Ok(x) => x,
                // Outlook resolves a DNS name itself, through its resolver.
                Err(_) if t.get_ref().contains('.') => Target::Name(t.get_ref().clone()),
                Err(e) => return Err(e),
            };
            let mode = match st.address_mode.as_ref().map(|m| (m, m.get_ref().as_str())) {
                None | Some((_, "dialled-address")) => AddressMode::DialledAddress,
                Some((_, "tower-address")) => AddressMode::TowerAddress,
                Some((m, o)) => {
                    return Err(cx.at(m.span(), format!("unknown address mode `{o}`"), Some("`dialled-address` (keep the address it dialled) or `tower-address` (take the tower's IP)")))
                }
            };
            Action::OutlookConnect { from: f, to, mode }
        }
        "http-get" => {
            let f = from()?;
            Action::HttpGet {
                from: f,
                to: sc.target(need(&st.to, "to", st, cx)?, f, true)?,
                port: port_or(80)?,
                path: text(&st.path, "/"),
            }
        }
        "ftp-get" => {
            let f = from()?;
            let mode = match st.mode.as_ref() {
                None => FtpMode::Passive,
                Some(m) => match m.get_ref().as_str() {
                    "active" | "port" => FtpMode::Active,
                    "eprt" => FtpMode::ActiveExtended,
                    "passive" | "pasv" => FtpMode::Passive,
                    "epsv" => FtpMode::PassiveExtended,
                    o => {
                        return Err(cx.at(
                            m.span(),
                            format!("unknown FTP mode `{o}`"),
                            Some("`active`, `eprt`, `passive` or `epsv`"),
                        ))
                    }
                },
            };
            Action::FtpGet {
                from: f,
                to: sc.target(need(&st.to, "to", st, cx)?, f, true)?,
                port: port_or(21)?,
                file: text(&st.file, ""),
                mode,
            }
        }
        "nat-type" => {
            let f = from()?;
            if st.servers.len() != 2 {
                return Err(cx.at(
                    st.action.span(),
                    "a `nat-type` step needs two `servers` running udp_echo = [3478, 3479]",
                    None,
                ));
            }
            let mut out = [(Ipv4Addr::UNSPECIFIED, None), (Ipv4Addr::UNSPECIFIED, None)];
            for (k, sv) in st.servers.iter().enumerate() {
                let Target::Addr(a) = sc.target(sv, f, false)? else {
                    return Err(cx.at(sv.span(), "a server must be an address or a host", None));
                };
                let host = match sc.names.nodes.get(sv.get_ref()) {
                    Some(NodeRef::Host(h)) => Some(*h),
                    _ => sc.hosts.iter().position(|h| h.addr == a).map(HostIx),
                };
                out[k] = (a, host);
            }
            Action::NatType {
                from: f,
                servers: out,
            }
        }
        "nat-table" => {
            let r = need(&st.router, "router", st, cx)?;
            match sc.names.nodes.get(r.get_ref()) {
                Some(NodeRef::Router(ix)) if sc.routers[ix.0].nat.is_some() => {
                    Action::NatTable { router: *ix }
                }
                Some(NodeRef::Router(_)) => {
                    return Err(cx.at(
                        r.span(),
                        format!("router `{}` has no NAT", r.get_ref()),
                        None,
                    ))
                }
                _ => {
                    return Err(cx.at(
                        r.span(),
                        format!("there is no router `{}`", r.get_ref()),
                        None,
                    ))
                }
            }
        }
        other => {
            let names: Vec<_> = ACTIONS.iter().map(|(a, _)| *a).collect();
            return Err(cx.at(
                st.action.span(),
                format!("unknown action `{other}`"),
                Some(&format!("one of {}", names.join(", "))),
            ));
        }
    })
}
