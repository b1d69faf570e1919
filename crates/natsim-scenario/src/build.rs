//! From a validated scenario to a running `Sim`: segments, routers with
//! their NAT engines, hosts with their applications.

use crate::diag::{Ctx, Problem};
use crate::expect::parse_duration;
use crate::load::{nat_config, parse_addr, parse_cidr};
use crate::schema::*;
use natsim_apps::dns::{DnsServer as DnsApp, Zone as DnsZone};
use natsim_apps::exchange::{exchange_registrations, RpcServer};
use natsim_apps::ftp::FtpServer as FtpApp;
use natsim_apps::http::HttpServer as HttpApp;
use natsim_apps::mail::{
    AddressSpace, Ims as ImsApp, ImsConfig, Mta as MtaApp, RoutingEntry as ImsRoute,
};
use natsim_apps::smtp::{Domains, SmtpServer as SmtpApp};
use natsim_nat::{Prefix, Proto, Role};
use natsim_sim::probe::UdpEcho;
use natsim_sim::{AppId, HostConfig, LinkParams, NodeId, RouterConfig, Sim, TcpProfile};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

pub fn parse_bandwidth(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (n, unit) = s.split_at(split);
    let n: f64 = n.parse().ok()?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "bps" => 1.0,
        "kbps" => 1e3,
        "mbps" => 1e6,
        "gbps" => 1e9,
        _ => return None,
    };
    let v = n * mult;
    (v.is_finite() && (1.0..=1e12).contains(&v)).then_some(v as u64)
}

/// A DNS record line: `A name address` or `MX name preference exchange`.
pub fn parse_record(
    r: &S<String>,
    cx: &Ctx<'_>,
) -> Result<(String, String, Option<u16>, String), Problem> {
    let parts: Vec<&str> = r.get_ref().split_whitespace().collect();
    let bad = |m: &str| {
        cx.at(
            r.span(),
            m.to_string(),
            Some("`A mail.example.com 203.0.113.1` or `MX example.com 10 mail.example.com`"),
        )
    };
    match parts.as_slice() {
        [t, name, addr] if t.eq_ignore_ascii_case("A") => {
            addr.parse::<Ipv4Addr>()
                .map_err(|_| bad(&format!("`{addr}` is not an IPv4 address")))?;
            Ok(("A".into(), name.to_string(), None, addr.to_string()))
        }
        [t, name, pref, ex] if t.eq_ignore_ascii_case("MX") => {
            let p: u16 = pref
                .parse()
                .map_err(|_| bad(&format!("MX preference `{pref}` is not a number 0–65535")))?;
            Ok(("MX".into(), name.to_string(), Some(p), ex.to_string()))
        }
        _ => Err(bad(&format!(
            "`{}` is not a record this server holds",
            r.get_ref()
        ))),
    }
}

/// An IMS address space `TYPE ADDRESS COST`.
pub fn parse_space(s: &S<String>, cx: &Ctx<'_>) -> Result<AddressSpace, Problem> {
    let parts: Vec<&str> = s.get_ref().split_whitespace().collect();
    match parts.as_slice() {
        [kind, address, cost] => Ok(AddressSpace {
            kind: kind.to_string(),
            address: address.to_string(),
            cost: cost.parse().map_err(|_| {
                cx.at(
                    s.span(),
                    format!("cost `{cost}` is not a number 1–100"),
                    None,
                )
            })?,
        }),
        _ => Err(cx.at(
            s.span(),
            format!("`{}` is not an address space", s.get_ref()),
            Some("`TYPE ADDRESS COST`, e.g. `SMTP * 1`"),
        )),
    }
}

/// The built world and where its pieces are.
pub struct Built {
    pub sim: Sim,
    pub nodes: BTreeMap<String, NodeId>,
    /// Host name → its MTA or IMS app.
    pub mailers: BTreeMap<String, (AppId, bool)>,
    pub segments: Vec<String>,
}

pub fn build(s: &Scenario, seed: u64, cx: &Ctx<'_>) -> Result<Built, Problem> {
    let mut sim = Sim::builder().seed(seed).build();
    let mut segs = BTreeMap::new();
    for g in &s.segments {
        let mut p = LinkParams::default();
        if let Some(l) = g.latency.as_ref().and_then(|l| parse_duration(l.get_ref())) {
            p.latency = l;
        }
        if let Some(b) = g
            .bandwidth
            .as_ref()
            .and_then(|b| parse_bandwidth(b.get_ref()))
        {
            p.bandwidth_bps = b;
        }
        if let Some(m) = &g.mtu {
            p.mtu = *m.get_ref() as usize;
        }
        if let Some(l) = &g.loss {
            p.loss = *l.get_ref();
        }
        segs.insert(g.name.get_ref().clone(), sim.segment(g.name.get_ref(), p));
    }
    let mut nodes = BTreeMap::new();
    let sim_err =
        |span: std::ops::Range<usize>, e: natsim_sim::SimError| cx.at(span, e.to_string(), None);
    for r in &s.routers {
        let mut rc = RouterConfig::new();
        for i in &r.interfaces {
            let (a, l) = parse_cidr(&i.address, cx)?;
            let role = if i.role.as_ref().is_some_and(|x| x.get_ref() == "outside") {
                Role::Outside
            } else {
                Role::Inside
            };
            rc = rc.interface(i.name.get_ref(), segs[i.segment.get_ref()], a, l, role);
        }
        for rt in &r.routes {
            let to = if rt.to.get_ref().contains('/') {
                let (a, l) = parse_cidr(&rt.to, cx)?;
                Prefix::new(a, l)
            } else {
                Prefix::host(parse_addr(&rt.to, cx)?)
            };
            rc = rc.route(to, parse_addr(&rt.via, cx)?);
        }
        if let Some(nat) = &r.nat {
            let (cfg, _) = nat_config(r, nat, cx)?;
            let b = cfg.behaviour.clone();
            rc = rc.nat(b, move |c| {
                c.rules = cfg.rules;
                c.algs = cfg.algs;
                c.filter = cfg.filter;
            });
        }
        if r.own_epm {
            rc = rc.local_service(Proto::Tcp, 135);
        }
        let id = sim
            .router(r.name.get_ref(), rc)
            .map_err(|e| sim_err(r.name.span(), e))?;
        if r.own_epm {
            // An NT-based firewall's own RPC services: nothing of Exchange's.
            let own = vec![natsim_apps::exchange::Registration {
                name: "firewall's own RPC service".into(),
                interface: natsim_apps::dcerpc::uuid("12345778-1234-abcd-ef00-0123456789ab"),
                major: 0,
                minor: 0,
                port: 1026,
            }];
            sim.add_app(id, Box::new(RpcServer::endpoint_mapper(own)))
                .map_err(|e| sim_err(r.name.span(), e))?;
        }
        nodes.insert(r.name.get_ref().clone(), id);
    }
    let mut mailers = BTreeMap::new();
    for h in &s.hosts {
        let (a, l) = parse_cidr(&h.address, cx)?;
        let mut hc = HostConfig::new(segs[h.segment.get_ref()], a, l);
        if let Some(g) = &h.gateway {
            hc = hc.gateway(parse_addr(g, cx)?);
        }
        for d in &h.dns {
            hc = hc.dns(parse_addr(d, cx)?);
        }
        if let Some(t) = h
            .tcp_profile
            .as_ref()
            .and_then(|t| TcpProfile::by_name(t.get_ref()))
        {
            hc = hc.tcp(t);
        }
        let id = sim
            .host(h.name.get_ref(), hc)
            .map_err(|e| sim_err(h.name.span(), e))?;
        let add = |sim: &mut Sim, app: Box<dyn natsim_sim::App>| {
            sim.add_app(id, app).map_err(|e| sim_err(h.name.span(), e))
        };
        if let Some(d) = &h.dns_server {
            let mut zones = Vec::new();
            for z in &d.zones {
                let mut zone = DnsZone::new(z.origin.get_ref());
                for r in &z.records {
                    let (t, name, pref, value) = parse_record(r, cx)?;
                    zone = if t == "A" {
                        zone.a(&name, value.parse().unwrap_or(Ipv4Addr::UNSPECIFIED))
                    } else {
                        zone.mx(&name, pref.unwrap_or(0), &value)
                    };
                }
                zones.push(zone);
            }
            add(&mut sim, Box::new(DnsApp::new(zones)))?;
        }
        if let Some(sm) = &h.smtp_server {
            let domains = sm.domains.iter().map(|d| d.get_ref().clone()).collect();
            add(
                &mut sim,
                Box::new(SmtpApp::new(
                    sm.hostname.get_ref(),
                    Box::new(Domains(domains)),
                )),
            )?;
        }
        if let Some(m) = &h.mta {
            let mut app = MtaApp::new(m.hostname.get_ref());
            if let Some(a) = &m.smart_host {
                app.smart_host = Some(parse_addr(a, cx)?);
            }
            if let Some(d) = m
                .retry_interval
                .as_ref()
                .and_then(|d| parse_duration(d.get_ref()))
            {
                app.retry_interval = d;
            }
            if let Some(d) = m
                .give_up_after
                .as_ref()
                .and_then(|d| parse_duration(d.get_ref()))
            {
                app.give_up_after = d;
            }
            let app_id = add(&mut sim, Box::new(app))?;
            mailers.insert(h.name.get_ref().clone(), (app_id, false));
        }
        if let Some(i) = &h.ims {
            let mut cfg =
                ImsConfig::new(&i.organization, &i.site, &i.server, i.site_domain.get_ref());
            cfg.service_pack = i.service_pack.as_ref().map_or(0, |v| *v.get_ref() as u8);
            cfg.address_spaces = i
                .address_spaces
                .iter()
                .map(|sp| parse_space(sp, cx))
                .collect::<Result<_, _>>()?;
            cfg.smart_host = match &i.forward_all_to {
                Some(a) => Some(parse_addr(a, cx)?),
                None => None,
            };
            cfg.reroute = i.reroute;
            cfg.routing = i
                .routing
                .iter()
                .map(|r| ImsRoute {
                    domain: r.domain.get_ref().clone(),
                    accept_as_inbound: r.accept_as_inbound,
                })
                .collect();
            cfg.mailboxes = i.mailboxes.clone();
            cfg.registry = i.registry.clone();
            let mut app = ImsApp::new(i.hostname.get_ref(), cfg);
            if let Some(d) = i
                .retry_interval
                .as_ref()
                .and_then(|d| parse_duration(d.get_ref()))
            {
                app.mta.retry_interval = d;
            }
            let app_id = add(&mut sim, Box::new(app))?;
            mailers.insert(h.name.get_ref().clone(), (app_id, true));
        }
        if let Some(x) = &h.exchange_rpc {
            let first = x
                .first_dynamic_port
                .as_ref()
                .map_or(1025, |p| *p.get_ref() as u16);
            let regs = exchange_registrations(
                first,
                x.store_port.as_ref().map(|p| *p.get_ref() as u16),
                x.directory_port.as_ref().map(|p| *p.get_ref() as u16),
            );
            add(&mut sim, Box::new(RpcServer::endpoint_mapper(regs.clone())))?;
            for r in &regs {
                add(&mut sim, Box::new(RpcServer::service(r)))?;
            }
        }
        if let Some(w) = &h.http_server {
            let port = w.port.as_ref().map_or(80, |p| *p.get_ref() as u16);
            add(&mut sim, Box::new(HttpApp::new(port, w.pages.clone())))?;
        }
        if let Some(f) = &h.ftp_server {
            let files = f
                .files
                .iter()
                .map(|(n, size)| {
                    (
                        n.clone(),
                        (0..*size.get_ref())
                            .map(|i| b"natsim-ftp\n"[i as usize % 11])
                            .collect(),
                    )
                })
                .collect();
            add(&mut sim, Box::new(FtpApp::new(files)))?;
        }
        for p in &h.udp_echo {
            add(&mut sim, Box::new(UdpEcho::new(*p.get_ref() as u16)))?;
        }
        nodes.insert(h.name.get_ref().clone(), id);
    }
    Ok(Built {
        sim,
        nodes,
        mailers,
        segments: s
            .segments
            .iter()
            .map(|g| g.name.get_ref().clone())
            .collect(),
    })
}
