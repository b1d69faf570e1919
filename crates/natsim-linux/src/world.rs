//! The interface probes drive, and natsim's side of it.
//!
//! A probe sends IPv4 packets from a host and looks at what every host
//! received; it builds its next packet (an answer) from what arrived, so
//! the same probe code runs against the kernel ([`crate::kernel`]) and the
//! engine ([`EngineWorld`]) and each world answers its own translations.

use crate::packet::{self, Summary};
use crate::topology::{on_link, Topology};
use natsim_nat::{
    Action, Chain, Duration as NatDuration, IfaceId, Instant, NatEngine, NatStep, Prefix, Route,
    TcpState, Verdict,
};
use std::net::Ipv4Addr;
use std::time::Duration;

/// A packet a host received (its IPv4 bytes; MACs are not compared).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub host: usize,
    pub packet: Vec<u8>,
}

/// One connection-tracking entry, as `conntrack -L` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtEntry {
    /// `tcp`, `udp`, `icmp`.
    pub proto: String,
    /// (src, sport, dst, dport); ICMP: the id as both ports.
    pub orig: (Ipv4Addr, u16, Ipv4Addr, u16),
    pub reply: (Ipv4Addr, u16, Ipv4Addr, u16),
    /// TCP state in conntrack's spelling (`SYN_SENT`, `ESTABLISHED`, ...).
    pub state: Option<String>,
    /// Seconds until the entry expires.
    pub timeout: u64,
}

impl std::fmt::Display for CtEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (a, p, b, q) = self.orig;
        let (c, r, d, t) = self.reply;
        write!(f, "{} {}", self.proto, self.timeout)?;
        if let Some(s) = &self.state {
            write!(f, " {s}")?;
        }
        write!(f, " {a}:{p}>{b}:{q} | {c}:{r}>{d}:{t}")
    }
}

pub trait World {
    /// Sends `packet` from `host`; returns what every host received until
    /// the network went quiet.
    fn send(&mut self, host: usize, packet: Vec<u8>) -> Vec<Seen>;
    /// Lets time pass.
    fn sleep(&mut self, d: Duration);
    /// The router's connection table.
    fn table(&mut self) -> Result<Vec<CtEntry>, String>;
    /// Forgets all connection state (a fresh router) before a probe.
    fn reset(&mut self);
    /// What explains a disagreement: the natsim trace or `conntrack -L`.
    fn explain(&mut self) -> String;
}

/// natsim's side: the engine between the topology's interfaces, with the
/// forwarding a router adds around it (routing, TTL, ARP-free delivery).
pub struct EngineWorld<'t> {
    topo: &'t Topology,
    engine: NatEngine,
    now: Instant,
    trace: Vec<String>,
    /// Addresses the NAT owns besides the interfaces' (pools, one-to-one
    /// outside addresses): the router delivers them locally.
    owned: Vec<Prefix>,
}

/// The router's routing decision: its own and NAT-owned addresses are
/// local, on-link destinations go out of their interface.
fn route(topo: &Topology, owned: &[Prefix], dst: Ipv4Addr) -> Route {
    let r = &topo.router;
    if r.ifaces.iter().any(|i| i.addr == dst) || owned.iter().any(|p| p.contains(dst)) {
        return Route::Local;
    }
    match r.ifaces.iter().position(|i| on_link(i, dst)) {
        Some(k) => Route::Forward {
            iface: IfaceId(k as u16),
            next_hop: dst,
        },
        None => Route::Unreachable,
    }
}

/// NAT-owned addresses of a configuration.
pub fn owned_prefixes(cfg: &natsim_nat::NatConfig) -> Vec<Prefix> {
    let mut out = Vec::new();
    for r in &cfg.rules.rules {
        match (&r.action, r.chain) {
            (Action::Snat(p), _) => {
                let (a, b) = (p.first.to_bits(), p.last.to_bits());
                for x in a..=b.min(a.saturating_add(255)) {
                    out.push(Prefix::host(Ipv4Addr::from_bits(x)));
                }
            }
            (Action::Netmap { to }, Chain::Postrouting) => out.push(*to),
            (Action::Netmap { .. }, Chain::Prerouting) => out.extend(r.matches.dst),
            _ => {}
        }
    }
    out
}

/// The NAT-owned addresses the kernel's router gets as extra /32s on its
/// outside interface, so it answers ARP for them as natsim's router does:
/// the single addresses among [`owned_prefixes`].
pub fn local_addresses(cfg: &natsim_nat::NatConfig) -> Vec<Ipv4Addr> {
    owned_prefixes(cfg)
        .into_iter()
        .filter(|p| p.len == 32)
        .map(|p| p.addr)
        .filter(|a| !cfg.interfaces.iter().any(|i| i.addr == *a))
        .collect()
}

impl<'t> EngineWorld<'t> {
    pub fn new(topo: &'t Topology) -> Result<EngineWorld<'t>, natsim_nat::ConfigError> {
        Ok(EngineWorld {
            topo,
            engine: NatEngine::new(topo.router.nat.clone())?,
            // Not zero: some timers treat 0 as "never".
            now: Instant::from_micros(1_000_000),
            trace: Vec::new(),
            owned: owned_prefixes(&topo.router.nat),
        })
    }

    /// Whether the router's stack holds `addr` (and so answers ARP for it
    /// on any interface, as Linux does with `arp_ignore` 0): an interface
    /// address or one [`local_addresses`] adds.
    fn router_holds(&self, addr: Ipv4Addr) -> bool {
        let r = &self.topo.router;
        r.ifaces.iter().any(|i| i.addr == addr) || local_addresses(&r.nat).contains(&addr)
    }

    fn host_at(&self, iface: usize, addr: Ipv4Addr) -> Option<usize> {
        self.topo
            .hosts
            .iter()
            .position(|h| h.iface == iface && h.addr == addr)
    }

    fn router_in(&mut self, iface: usize, ip: Vec<u8>, seen: &mut Vec<Seen>, depth: u8) {
        if depth > 4 {
            return;
        }
        let mut frame = Vec::with_capacity(14 + ip.len());
        frame.extend_from_slice(&self.topo.router_macs[iface]);
        frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 0xff]);
        frame.extend_from_slice(&[0x08, 0x00]);
        frame.extend_from_slice(&ip);
        let topo = self.topo;
        let owned = &self.owned;
        let routes = |d: Ipv4Addr| route(topo, owned, d);
        let mut steps: Vec<NatStep> = Vec::new();
        let verdict = self.engine.process(
            self.now,
            IfaceId(iface as u16),
            &mut frame,
            &routes,
            &mut steps,
        );
        let eng = &self.engine;
        let names = |id| eng.rule_name(id).to_string();
        for s in &steps {
            self.trace.push(format!("  {}", s.describe(&names)));
        }
        match verdict {
            Verdict::Forward {
                iface: out,
                next_hop,
            } => {
                let mut ip = frame.split_off(14);
                if ip[8] <= 1 {
                    return;
                }
                ip[8] -= 1;
                ip[10] = 0;
                ip[11] = 0;
                let ihl = usize::from(ip[0] & 0x0f) * 4;
                let c = packet::checksum(&ip[..ihl]);
                ip[10..12].copy_from_slice(&c.to_be_bytes());
                if let Some(h) = self.host_at(usize::from(out.0), next_hop) {
                    seen.push(Seen {
                        host: h,
                        packet: ip,
                    });
                }
            }
            Verdict::Reply { iface: out } => {
                let ip = frame.split_off(14);
                if let Some(s) = Summary::parse(&ip) {
                    if let Some(h) = self.host_at(usize::from(out.0), s.dst) {
                        seen.push(Seen {
                            host: h,
                            packet: ip,
                        });
                    }
                }
            }
            Verdict::Local => {
                // No local stack: the router answers pings to its
                // addresses, as natsim-sim's router does.
                let ip = frame.split_off(14);
                if let Some(s) = Summary::parse(&ip) {
                    if s.proto == packet::ICMP && s.icmp_type == 8 {
                        let ihl = usize::from(ip[0] & 0x0f) * 4;
                        let data = ip.get(ihl + 8..).unwrap_or(&[]).to_vec();
                        let mut rest = [0u8; 4];
                        rest.copy_from_slice(&ip[ihl + 4..ihl + 8]);
                        let reply =
                            packet::icmp(packet::Ip::new(s.dst, s.src, s.id), 0, 0, rest, &data);
                        self.deliver(iface, reply, seen);
                    }
                }
            }
            // The probes send whole packets: a held fragment is a drop here.
            Verdict::Drop(_) | Verdict::Held => {}
        }
    }

    /// A packet put on segment `iface`: to the host that has its
    /// destination, else to the router.
    fn deliver(&mut self, iface: usize, ip: Vec<u8>, seen: &mut Vec<Seen>) {
        if let Some(s) = Summary::parse(&ip) {
            if let Some(h) = self.host_at(iface, s.dst) {
                seen.push(Seen {
                    host: h,
                    packet: ip,
                });
            }
        }
    }
}

impl World for EngineWorld<'_> {
    fn send(&mut self, host: usize, packet: Vec<u8>) -> Vec<Seen> {
        let mut seen = Vec::new();
        let h = &self.topo.hosts[host];
        let iface = h.iface;
        let Some(s) = Summary::parse(&packet) else {
            return seen;
        };
        self.trace
            .push(format!("[{}] {} from {}", self.now, s, h.name));
        let spec = &self.topo.router.ifaces[iface];
        // An on-link destination is reached by ARP: the host that has it,
        // else the router if it holds the address, else nobody (the
        // kernel's hosts send nothing when their ARP goes unanswered).
        let direct = on_link(spec, s.dst) && !self.router_holds(s.dst);
        if !direct {
            self.router_in(iface, packet, &mut seen, 0);
        } else if self.host_at(iface, s.dst).is_some() {
            self.deliver(iface, packet, &mut seen);
        } else {
            self.trace.push(format!(
                "  no ARP answer for {}: nobody on the segment holds it",
                s.dst
            ));
        }
        seen
    }

    fn sleep(&mut self, d: Duration) {
        self.now += NatDuration::from_micros(d.as_micros() as u64);
        let mut steps: Vec<NatStep> = Vec::new();
        self.engine.handle_timeout(self.now, &mut steps);
    }

    fn table(&mut self) -> Result<Vec<CtEntry>, String> {
        let mut out = Vec::new();
        for c in self.engine.connections() {
            let proto = match c.original.proto {
                natsim_nat::Proto::Tcp => "tcp",
                natsim_nat::Proto::Udp => "udp",
                natsim_nat::Proto::Icmp => "icmp",
                natsim_nat::Proto::Other(_) => continue,
            };
            // ICMP: conntrack prints the echo id on both sides.
            let icmp = c.original.proto == natsim_nat::Proto::Icmp;
            let t = |f: natsim_nat::Flow| {
                if icmp {
                    let id = f.src.port.max(f.dst.port);
                    (f.src.addr, id, f.dst.addr, id)
                } else {
                    (f.src.addr, f.src.port, f.dst.addr, f.dst.port)
                }
            };
            let left = c.expires.saturating_duration_since(self.now);
            out.push(CtEntry {
                proto: proto.to_string(),
                orig: t(c.original),
                reply: t(c.reply),
                state: c.tcp_state.map(|s| conntrack_state(s).to_string()),
                timeout: left.as_micros() as u64 / 1_000_000,
            });
        }
        Ok(out)
    }

    fn reset(&mut self) {
        if let Ok(e) = NatEngine::new(self.topo.router.nat.clone()) {
            self.engine = e;
        }
        self.trace.clear();
    }

    fn explain(&mut self) -> String {
        self.trace.join("\n")
    }
}

/// conntrack's name for a TCP state (nf_conntrack_proto_tcp.c
/// `tcp_conntrack_names`).
pub fn conntrack_state(s: TcpState) -> &'static str {
    match s {
        TcpState::SynSent => "SYN_SENT",
        TcpState::SynRecv => "SYN_RECV",
        TcpState::Established => "ESTABLISHED",
        TcpState::FinWait => "FIN_WAIT",
        TcpState::CloseWait => "CLOSE_WAIT",
        TcpState::LastAck => "LAST_ACK",
        TcpState::TimeWait => "TIME_WAIT",
        TcpState::Close => "CLOSE",
    }
}
