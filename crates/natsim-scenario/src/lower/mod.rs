//! From the file's types ([`crate::schema`]) to the typed [`Model`]:
//! every string parsed, every name resolved to an index, every problem
//! located. Steps are lowered in [`step`], NAT tables in [`nat`].

pub mod action;
mod fields;
pub mod ims;
pub mod nat;
pub mod step;

use crate::diag::{Ctx, Problem};
use crate::model::*;
use crate::parse;
use crate::schema::{self, Host, HostGroup, Router, Scenario, S};
use fields::{mss_clamp, tcp_profile};
use natsim_apps::dns::Zone;
use natsim_nat::{NatEngine, Prefix, Role};
use natsim_sim::{LinkParams, TcpProfile};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// At most this many hosts, counting every member of every group.
pub const MAX_HOSTS: usize = 16_384;

/// Collects problems and keeps going, so one load reports them all.
#[derive(Default)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    pub fn ok<T>(&mut self, r: Result<T, Problem>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(p) => {
                self.0.push(p);
                None
            }
        }
    }
}

/// What a node name refers to.
#[derive(Clone, Copy, Debug)]
pub enum NodeRef {
    Host(HostIx),
    Router(RouterIx),
}

/// Names resolved during lowering.
pub struct Names {
    pub segments: BTreeMap<String, SegIx>,
    pub nodes: BTreeMap<String, NodeRef>,
    /// Each `[[host_group]]`'s members, for steps `from = "GROUP[*]"`.
    pub groups: BTreeMap<String, Vec<HostIx>>,
}

/// The model, with the warnings lowering found; `Err` holds every
/// problem when any is an error.
pub fn lower(s: &Scenario, cx: &Ctx<'_>) -> Result<(Model, Vec<Problem>), Vec<Problem>> {
    let mut p = Problems::default();
    let mut names = Names {
        segments: BTreeMap::new(),
        nodes: BTreeMap::new(),
        groups: BTreeMap::new(),
    };
    let mut segments = Vec::new();
    for g in &s.segments {
        if names.segments.contains_key(g.name.get_ref()) {
            p.0.push(cx.at(
                g.name.span(),
                format!("segment `{}` is defined twice", g.name.get_ref()),
                Some("give each segment its own name"),
            ));
            continue;
        }
        // A segment whose link is wrong still takes its name (with the
        // default link), so the nodes on it get no "no segment" error on
        // top of the real one; the load fails either way.
        let link = p.ok(link(g, cx)).unwrap_or_default();
        names
            .segments
            .insert(g.name.get_ref().clone(), SegIx(segments.len()));
        segments.push(SegmentSpec {
            name: g.name.get_ref().clone(),
            link,
        });
    }
    let mut routers = Vec::new();
    for r in &s.routers {
        if let Some(spec) = router(r, &names, cx, &mut p) {
            name_node(
                &mut names,
                &mut p,
                &r.name,
                NodeRef::Router(RouterIx(routers.len())),
                cx,
            );
            routers.push(spec);
        }
    }
    let mut hosts = Vec::new();
    for h in &s.hosts {
        // A host with errors still takes its name, as a stand-in, so the
        // steps that use it get no "no host" error on top of the real one.
        let spec = host(h, &names, cx, &mut p).unwrap_or_else(|| stand_in(h));
        name_node(
            &mut names,
            &mut p,
            &h.name,
            NodeRef::Host(HostIx(hosts.len())),
            cx,
        );
        hosts.push(spec);
    }
    let members: usize = s
        .host_groups
        .iter()
        .map(|g| *g.count.get_ref() as usize)
        .sum();
    if hosts.len() + members > MAX_HOSTS {
        p.0.push(cx.at(
            0..cx.src.len().min(1),
            format!(
                "{} hosts in all; at most {MAX_HOSTS} are allowed",
                hosts.len() + members
            ),
            Some("split the scenario into several files"),
        ));
        return Err(p.0);
    }
    for g in &s.host_groups {
        let first = hosts.len();
        for spec in group(g, &names, cx, &mut p) {
            let name = S::new(g.name.span(), spec.name.clone());
            name_node(
                &mut names,
                &mut p,
                &name,
                NodeRef::Host(HostIx(hosts.len())),
                cx,
            );
            hosts.push(spec);
        }
        names.groups.insert(
            g.name.get_ref().clone(),
            (first..hosts.len()).map(HostIx).collect(),
        );
    }
    let (steps, connections) = step::lower_steps(s, &names, &hosts, &routers, cx, &mut p);
    if p.0.iter().any(|x| !x.is_warning()) {
        return Err(p.0);
    }
    let model = Model {
        title: s.title.clone(),
        source: s.source.clone(),
        symptom: s.symptom.clone(),
        lesson: s.lesson.clone(),
        seed: s.seed,
        segments,
        routers,
        hosts,
        steps,
        connections,
    };
    Ok((model, p.0))
}

fn name_node(names: &mut Names, p: &mut Problems, n: &S<String>, r: NodeRef, cx: &Ctx<'_>) {
    if n.get_ref().is_empty() || names.nodes.contains_key(n.get_ref()) {
        p.0.push(cx.at(
            n.span(),
            format!("node name `{}` is empty or used twice", n.get_ref()),
            Some("every router and host needs its own name"),
        ));
    } else {
        names.nodes.insert(n.get_ref().clone(), r);
    }
}

fn link(g: &schema::Segment, cx: &Ctx<'_>) -> Result<LinkParams, Problem> {
    let mut l = LinkParams::default();
    if let Some(d) = &g.latency {
        l.latency = parse::duration(d, cx)?;
    }
    if let Some(b) = &g.bandwidth {
        l.bandwidth_bps = parse::bandwidth(b, cx)?;
    }
    if let Some(m) = &g.mtu {
        if !(576..=9000).contains(m.get_ref()) {
            return Err(cx.at(
                m.span(),
                format!("MTU {} is outside 576–9000", m.get_ref()),
                None,
            ));
        }
        l.mtu = *m.get_ref() as usize;
    }
    if let Some(x) = &g.loss {
        if !(0.0..=1.0).contains(x.get_ref()) {
            return Err(cx.at(
                x.span(),
                format!("loss {} is not a probability", x.get_ref()),
                Some("a number from 0 to 1"),
            ));
        }
        l.loss = *x.get_ref();
    }
    Ok(l)
}

pub fn segment(names: &Names, n: &S<String>, cx: &Ctx<'_>) -> Result<SegIx, Problem> {
    names.segments.get(n.get_ref()).copied().ok_or_else(|| {
        let known: Vec<_> = names.segments.keys().cloned().collect();
        cx.at(
            n.span(),
            format!("there is no segment `{}`", n.get_ref()),
            Some(&format!("defined segments: {}", known.join(", "))),
        )
    })
}

fn router(r: &Router, names: &Names, cx: &Ctx<'_>, p: &mut Problems) -> Option<RouterSpec> {
    let before = p.0.len();
    if r.interfaces.len() > 16 {
        p.0.push(cx.at(
            r.name.span(),
            format!(
                "router `{}` has {} interfaces; at most 16",
                r.name.get_ref(),
                r.interfaces.len()
            ),
            None,
        ));
    }
    let mut interfaces = Vec::new();
    for i in &r.interfaces {
        let seg = p.ok(segment(names, &i.segment, cx));
        let cidr = p.ok(parse::cidr(&i.address, cx));
        let role = match i.role.as_ref().map(|x| x.get_ref().as_str()) {
            None | Some("inside") => Some(Role::Inside),
            Some("outside") => Some(Role::Outside),
            Some(o) => {
                p.0.push(cx.at(
                    i.role.as_ref().map_or(0..0, |x| x.span()),
                    format!("unknown role `{o}`"),
                    Some("`inside` or `outside`"),
                ));
                None
            }
        };
        if let (Some(segment), Some((addr, len)), Some(role)) = (seg, cidr, role) {
            interfaces.push(IfaceSpec {
                name: i.name.get_ref().clone(),
                segment,
                addr,
                len,
                role,
                span: i.address.span(),
            });
        }
    }
    let mut routes = Vec::new();
    for rt in &r.routes {
        let to = p.ok(parse::prefix(&rt.to, cx));
        let via = p.ok(parse::addr(&rt.via, cx));
        if let (Some(to), Some(via)) = (to, via) {
            if !interfaces
                .iter()
                .any(|i| Prefix::new(i.addr, i.len).contains(via))
            {
                p.0.push(cx.at(
                    rt.via.span(),
                    format!(
                        "next hop {via} is not on any of router `{}`'s networks",
                        r.name.get_ref()
                    ),
                    Some("a next hop must be on a connected network"),
                ));
            }
            routes.push(RouteSpec {
                to,
                via,
                span: rt.to.span(),
            });
        }
    }
    let mut file_rules = 0;
    // Warnings about the rules file do not make the router fail to lower.
    let mut file_warnings = Vec::new();
    let nat = match &r.nat {
        None => None,
        Some(n) => match nat::nat_config(r, n, cx) {
            Ok(nat::LoweredNat {
                cfg,
                spans,
                warnings,
            }) => {
                file_warnings = warnings;
                match NatEngine::new(cfg.clone()) {
                    Ok(_) if r.rules.is_some() => {
                        // The file's rules are the last ones, each spanned by it.
                        let file = r.rules.as_ref().map(|f| f.span());
                        file_rules = spans
                            .iter()
                            .rev()
                            .take_while(|s| Some((*s).clone()) == file)
                            .count();
                        Some(cfg)
                    }
                    Ok(_) => Some(cfg),
                    Err(e) => {
                        p.0.push(nat::nat_error(&e, &spans, r, cx));
                        None
                    }
                }
            }
            Err(e) => {
                p.0.push(e);
                None
            }
        },
    };
    let mss_clamp = r.mss_clamp.as_ref().and_then(|m| p.ok(mss_clamp(m, cx)));
    let lowered = p.0.len() == before;
    p.0.extend(file_warnings);
    lowered.then(|| RouterSpec {
        name: r.name.get_ref().clone(),
        span: r.name.span(),
        interfaces,
        routes,
        nat,
        own_epm: r.own_epm,
        mss_clamp,
        block_icmp: r.block_icmp,
        answer_ping: r.answer_ping.unwrap_or(true),
        reject_closed_ports: r.reject_closed_ports.unwrap_or(true),
        file_rules,
    })
}

fn listeners(list: &[S<String>], cx: &Ctx<'_>, p: &mut Problems) -> Vec<AppSpec> {
    let mut out = Vec::new();
    for l in list {
        let parsed = l.get_ref().split_once('/').and_then(|(proto, port)| {
            let proto = match proto.trim() {
                "tcp" => L4::Tcp,
                "udp" => L4::Udp,
                _ => return None,
            };
            let port: u16 = port.trim().parse().ok().filter(|p| *p > 0)?;
            Some(Listener { proto, port })
        });
        match parsed {
            Some(x) => out.push(AppSpec::Listen(x)),
            None => p.0.push(cx.at(
                l.span(),
                format!("`{}` is not a service to listen on", l.get_ref()),
                Some("`tcp/PORT` or `udp/PORT`, e.g. \"tcp/8443\", \"udp/1194\""),
            )),
        }
    }
    out
}

fn host(h: &Host, names: &Names, cx: &Ctx<'_>, p: &mut Problems) -> Option<HostSpec> {
    let before = p.0.len();
    let segment = p.ok(segment(names, &h.segment, cx));
    let cidr = p.ok(parse::cidr(&h.address, cx));
    let gateway = h.gateway.as_ref().and_then(|g| p.ok(parse::addr(g, cx)));
    let dns: Vec<Ipv4Addr> = h
        .dns
        .iter()
        .filter_map(|d| p.ok(parse::addr(d, cx)))
        .collect();
    let tcp = p.ok(tcp_profile(&h.tcp_profile, cx));
    let mut apps = Vec::new();
    if let Some(d) = &h.dns_server {
        let n: usize = d.zones.iter().map(|z| z.records.len()).sum();
        if n > 1024 {
            p.0.push(cx.at(
                h.name.span(),
                format!("{n} DNS records; at most 1024"),
                None,
            ));
        }
        let mut zones = Vec::new();
        for z in &d.zones {
            let mut zone = Zone::new(z.origin.get_ref());
            for r in &z.records {
                if let Some(next) = p.ok(record(zone.clone(), r, cx)) {
                    zone = next;
                }
            }
            zones.push(zone);
        }
        apps.push(AppSpec::DnsServer { zones });
    }
    if let Some(sm) = &h.smtp_server {
        apps.push(AppSpec::SmtpServer {
            hostname: sm.hostname.get_ref().clone(),
            domains: sm.domains.iter().map(|d| d.get_ref().clone()).collect(),
        });
    }
    if let Some(m) = &h.mta {
        apps.push(AppSpec::Mta(MtaSpec {
            hostname: m.hostname.get_ref().clone(),
            smart_host: m.smart_host.as_ref().and_then(|a| p.ok(parse::addr(a, cx))),
            retry_interval: m
                .retry_interval
                .as_ref()
                .and_then(|d| p.ok(parse::duration(d, cx))),
            give_up_after: m
                .give_up_after
                .as_ref()
                .and_then(|d| p.ok(parse::duration(d, cx))),
        }));
    }
    if let Some(i) = &h.ims {
        if let Some(config) = p.ok(ims::ims_config(i, cx)) {
            apps.push(AppSpec::Ims(Box::new(ImsSpec {
                hostname: i.hostname.get_ref().clone(),
                config,
            })));
        }
    }
    if let Some(x) = &h.exchange_rpc {
        let port = |v: &Option<S<u32>>, p: &mut Problems| {
            v.as_ref().and_then(|v| p.ok(parse::port(v, cx)))
        };
        apps.push(AppSpec::ExchangeRpc {
            first_dynamic_port: port(&x.first_dynamic_port, p).unwrap_or(1025),
            store_port: port(&x.store_port, p),
            directory_port: port(&x.directory_port, p),
        });
    }
    if let Some(w) = &h.http_server {
        apps.push(AppSpec::HttpServer {
            port: w
                .port
                .as_ref()
                .and_then(|v| p.ok(parse::port(v, cx)))
                .unwrap_or(80),
            pages: w.pages.clone(),
        });
    }
    if let Some(f) = &h.ftp_server {
        for size in f.files.values() {
            if *size.get_ref() > 16 << 20 {
                p.0.push(cx.at(
                    size.span(),
                    format!("{} bytes; FTP files may be at most 16 MiB", size.get_ref()),
                    None,
                ));
            }
        }
        apps.push(AppSpec::FtpServer {
            files: f
                .files
                .iter()
                .map(|(n, s)| (n.clone(), *s.get_ref()))
                .collect(),
        });
    }
    for u in &h.udp_echo {
        if let Some(port) = p.ok(parse::port(u, cx)) {
            apps.push(AppSpec::UdpEcho { port });
        }
    }
    apps.extend(listeners(&h.listen, cx, p));
    let (segment, (addr, len), tcp) = (segment?, cidr?, tcp?);
    (p.0.len() == before).then(|| HostSpec {
        name: h.name.get_ref().clone(),
        span: h.name.span(),
        segment,
        addr,
        len,
        gateway,
        dns,
        tcp,
        apps,
    })
}

/// What a host that failed to load stands for while the rest is checked
/// (never run: the load fails).
fn stand_in(h: &Host) -> HostSpec {
    HostSpec {
        name: h.name.get_ref().clone(),
        span: h.name.span(),
        segment: SegIx(0),
        addr: Ipv4Addr::UNSPECIFIED,
        len: 0,
        gateway: None,
        dns: Vec::new(),
        tcp: TcpProfile::windows(),
        apps: Vec::new(),
    }
}

fn group(g: &HostGroup, names: &Names, cx: &Ctx<'_>, p: &mut Problems) -> Vec<HostSpec> {
    let before = p.0.len();
    let segment = p.ok(segment(names, &g.segment, cx));
    let cidr = p.ok(parse::cidr(&g.address, cx));
    let gateway = g.gateway.as_ref().and_then(|x| p.ok(parse::addr(x, cx)));
    let dns: Vec<Ipv4Addr> = g
        .dns
        .iter()
        .filter_map(|d| p.ok(parse::addr(d, cx)))
        .collect();
    let tcp = p.ok(tcp_profile(&g.tcp_profile, cx));
    let apps = listeners(&g.listen, cx, p);
    let count = *g.count.get_ref();
    if count == 0 {
        p.0.push(cx.at(
            g.count.span(),
            "a host group needs `count` of at least 1",
            None,
        ));
    }
    let (Some(segment), Some((first, len)), Some(tcp)) = (segment, cidr, tcp) else {
        return Vec::new();
    };
    let net = Prefix::new(first, len);
    let last = u32::from(first).checked_add(count.saturating_sub(1));
    if last.is_none_or(|l| !net.contains(Ipv4Addr::from(l))) {
        p.0.push(cx.at(
            g.address.span(),
            format!("{count} hosts counting up from {first} do not fit in /{len}"),
            Some("start lower or use a shorter prefix"),
        ));
    }
    if p.0.len() != before {
        return Vec::new();
    }
    (0..count)
        .map(|k| HostSpec {
            name: format!("{}[{k}]", g.name.get_ref()),
            span: g.name.span(),
            segment,
            addr: Ipv4Addr::from(u32::from(first) + k),
            len,
            gateway,
            dns: dns.clone(),
            tcp: tcp.clone(),
            apps: apps.clone(),
        })
        .collect()
}

/// A DNS record line: `A name address` or `MX name preference exchange`.
fn record(zone: Zone, r: &S<String>, cx: &Ctx<'_>) -> Result<Zone, Problem> {
    let parts: Vec<&str> = r.get_ref().split_whitespace().collect();
    let bad = |m: String| {
        cx.at(
            r.span(),
            m,
            Some("`A mail.example.com 203.0.113.1` or `MX example.com 10 mail.example.com`"),
        )
    };
    match parts.as_slice() {
        [t, name, addr] if t.eq_ignore_ascii_case("A") => {
            let a: Ipv4Addr = addr
                .parse()
                .map_err(|_| bad(format!("`{addr}` is not an IPv4 address")))?;
            Ok(zone.a(name, a))
        }
        [t, name, pref, ex] if t.eq_ignore_ascii_case("MX") => {
            let pr: u16 = pref
                .parse()
                .map_err(|_| bad(format!("MX preference `{pref}` is not a number 0–65535")))?;
            Ok(zone.mx(name, pr, ex))
        }
        _ => Err(bad(format!(
            "`{}` is not a record this server holds",
            r.get_ref()
        ))),
    }
}
