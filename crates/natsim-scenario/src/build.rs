//! From a typed [`Model`] to a running `Sim`: segments, routers with their
//! NAT engines, hosts with their applications. Nothing here parses text or
//! looks a name up: the model holds parsed values and indexes.

use crate::model::*;
use natsim_apps::dns::DnsServer as DnsApp;
use natsim_apps::echo::{EchoServer, Transport};
use natsim_apps::exchange::{exchange_registrations, Registration, RpcServer};
use natsim_apps::ftp::FtpServer as FtpApp;
use natsim_apps::http::HttpServer as HttpApp;
use natsim_apps::ims::Ims as ImsApp;
use natsim_apps::mail::Mta as MtaApp;
use natsim_apps::smtp::{Domains, SmtpServer as SmtpApp};
use natsim_nat::Proto;
use natsim_sim::probe::UdpEcho;
use natsim_sim::{App, AppId, HostConfig, NodeId, RouterConfig, SegmentId, Sim, SimError};

/// The built world, indexed like the model.
pub struct Built {
    pub sim: Sim,
    /// `hosts[i]` is the node of `model.hosts[i]`.
    pub hosts: Vec<NodeId>,
    pub routers: Vec<NodeId>,
    /// Each host's MTA or IMS app.
    pub mailers: Vec<Option<AppId>>,
    /// Every MTA, IMS and SMTP server app, for following a message.
    pub mail_apps: Vec<AppId>,
    /// The client apps the current step started: stopped when it ends.
    pub step_apps: Vec<AppId>,
    /// Every accept-and-echo service, for `seen-from`.
    pub listeners: Vec<(HostIx, Listener, AppId)>,
    pub segments: Vec<String>,
    /// The next source port for NAT-type probes (two per run).
    probe_port: u16,
}

impl Built {
    /// Two fresh source ports for a NAT-type probe: a second run on the
    /// same host must not meet the first run's mappings.
    pub fn next_probe_port(&mut self) -> u16 {
        let p = self.probe_port;
        self.probe_port = self.probe_port.wrapping_add(2).max(40000);
        p
    }
}

/// An NT-based firewall's own RPC services: nothing of Exchange's.
fn firewall_rpc() -> Vec<Registration> {
    vec![Registration {
        name: "firewall's own RPC service".into(),
        interface: natsim_apps::dcerpc::uuid("12345778-1234-abcd-ef00-0123456789ab"),
        major: 0,
        minor: 0,
        port: 1026,
    }]
}

fn ftp_files(
    files: &std::collections::BTreeMap<String, u32>,
) -> std::collections::BTreeMap<String, Vec<u8>> {
    files
        .iter()
        .map(|(n, size)| {
            (
                n.clone(),
                (0..*size)
                    .map(|i| b"natsim-ftp\n"[i as usize % 11])
                    .collect(),
            )
        })
        .collect()
}

pub fn build(m: &Model, seed: u64) -> Result<Built, SimError> {
    let mut sim = Sim::builder().seed(seed).build();
    let segs: Vec<SegmentId> = m
        .segments
        .iter()
        .map(|g| sim.segment(&g.name, g.link.clone()))
        .collect();
    let mut routers = Vec::new();
    for r in &m.routers {
        let mut rc = RouterConfig::new();
        for i in &r.interfaces {
            rc = rc.interface(&i.name, segs[i.segment.0], i.addr, i.len, i.role);
        }
        for rt in &r.routes {
            rc = rc.route(rt.to, rt.via);
        }
        if let Some(cfg) = &r.nat {
            let cfg = cfg.clone();
            rc = rc.nat(cfg.behaviour.clone(), move |c| {
                c.rules = cfg.rules;
                c.algs = cfg.algs;
                c.filter = cfg.filter;
                c.capacity = cfg.capacity;
            });
        }
        if r.own_epm {
            rc = rc.local_service(Proto::Tcp, 135);
        }
        if let Some(m) = r.mss_clamp {
            rc = rc.mss_clamp(m);
        }
        rc = rc
            .block_icmp(r.block_icmp)
            .answer_ping(r.answer_ping)
            .reject_closed_ports(r.reject_closed_ports);
        let id = sim.router(&r.name, rc)?;
        if r.own_epm {
            sim.add_app(id, Box::new(RpcServer::endpoint_mapper(firewall_rpc())))?;
        }
        routers.push(id);
    }
    let mut hosts = Vec::new();
    let mut mailers = Vec::new();
    let mut listeners = Vec::new();
    let mut mail_apps = Vec::new();
    for (k, h) in m.hosts.iter().enumerate() {
        let mut hc = HostConfig::new(segs[h.segment.0], h.addr, h.len).tcp(h.tcp.clone());
        if let Some(g) = h.gateway {
            hc = hc.gateway(g);
        }
        for d in &h.dns {
            hc = hc.dns(*d);
        }
        let id = sim.host(&h.name, hc)?;
        let mut mailer = None;
        for app in &h.apps {
            match app {
                AppSpec::Listen(l) => {
                    let t = match l.proto {
                        L4::Tcp => Transport::Tcp,
                        L4::Udp => Transport::Udp,
                    };
                    let a = sim.add_app(id, Box::new(EchoServer::new(t, l.port)))?;
                    listeners.push((HostIx(k), *l, a));
                }
                AppSpec::Mta(m) => {
                    let a = sim.add_app(id, mta_app(m))?;
                    mail_apps.push(a);
                    mailer = Some(a);
                }
                AppSpec::Ims(i) => {
                    let a = sim.add_app(id, ims_app(i))?;
                    mail_apps.push(a);
                    mailer = Some(a);
                }
                AppSpec::SmtpServer { .. } => {
                    if let Some(app) = service_app(app) {
                        mail_apps.push(sim.add_app(id, app)?);
                    }
                }
                AppSpec::ExchangeRpc {
                    first_dynamic_port,
                    store_port,
                    directory_port,
                } => {
                    let regs =
                        exchange_registrations(*first_dynamic_port, *store_port, *directory_port);
                    sim.add_app(id, Box::new(RpcServer::endpoint_mapper(regs.clone())))?;
                    for r in &regs {
                        sim.add_app(id, Box::new(RpcServer::service(r)))?;
                    }
                }
                other => {
                    if let Some(app) = service_app(other) {
                        sim.add_app(id, app)?;
                    }
                }
            }
        }
        hosts.push(id);
        mailers.push(mailer);
    }
    Ok(Built {
        sim,
        hosts,
        routers,
        mailers,
        listeners,
        mail_apps,
        step_apps: Vec::new(),
        segments: m.segments.iter().map(|g| g.name.clone()).collect(),
        probe_port: 40000,
    })
}

fn ims_app(i: &ImsSpec) -> Box<dyn App> {
    Box::new(ImsApp::new(&i.hostname, i.config.clone()))
}

fn mta_app(m: &MtaSpec) -> Box<dyn App> {
    let mut app = MtaApp::new(&m.hostname);
    app.smart_host = m.smart_host;
    if let Some(d) = m.retry_interval {
        app.retry_schedule = vec![d];
    }
    if let Some(d) = m.give_up_after {
        app.give_up_after = d;
    }
    Box::new(app)
}

/// A host's plain services (`None` for mail, listeners and Exchange RPC,
/// which `build` adds itself).
fn service_app(a: &AppSpec) -> Option<Box<dyn App>> {
    Some(match a {
        AppSpec::DnsServer { zones } => Box::new(DnsApp::new(zones.clone())),
        AppSpec::SmtpServer { hostname, domains } => {
            Box::new(SmtpApp::new(hostname, Box::new(Domains(domains.clone()))))
        }
        AppSpec::HttpServer { port, pages } => Box::new(HttpApp::new(*port, pages.clone())),
        AppSpec::FtpServer { files } => Box::new(FtpApp::new(ftp_files(files))),
        AppSpec::UdpEcho { port } => Box::new(UdpEcho::new(*port)),
        AppSpec::Listen(_) | AppSpec::Mta(_) | AppSpec::Ims(_) | AppSpec::ExchangeRpc { .. } => {
            return None
        }
    })
}
