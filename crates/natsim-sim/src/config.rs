//! What a host or router is built from: addresses, routes, NAT and the
//! router's own switches, as `Sim::host` and `Sim::router` take them.

use crate::app::TcpProfile;
use crate::ids::SegmentId;
use natsim_nat::{Behaviour, NatConfig, Prefix, Proto, Role};
use std::net::Ipv4Addr;

pub struct HostConfig {
    pub segment: SegmentId,
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub tcp: TcpProfile,
}

impl HostConfig {
    pub fn new(segment: SegmentId, addr: Ipv4Addr, prefix_len: u8) -> HostConfig {
        HostConfig {
            segment,
            addr,
            prefix_len,
            gateway: None,
            dns: Vec::new(),
            tcp: TcpProfile::windows(),
        }
    }
    pub fn gateway(mut self, gw: Ipv4Addr) -> Self {
        self.gateway = Some(gw);
        self
    }
    pub fn dns(mut self, server: Ipv4Addr) -> Self {
        self.dns.push(server);
        self
    }
    pub fn tcp(mut self, p: TcpProfile) -> Self {
        self.tcp = p;
        self
    }
}

pub(crate) type NatSetup = Box<dyn FnOnce(&mut NatConfig)>;

pub struct RouterConfig {
    pub(crate) ifaces: Vec<(String, SegmentId, Ipv4Addr, u8, Role)>,
    pub(crate) routes: Vec<(Prefix, Ipv4Addr)>,
    pub(crate) nat: Option<(Behaviour, NatSetup)>,
    pub(crate) local_stack: bool,
    pub(crate) local_services: Vec<(Proto, u16)>,
    pub(crate) mss_clamp: Option<crate::router::MssClamp>,
    pub(crate) block_icmp: bool,
    pub(crate) answer_ping: bool,
    pub(crate) reject_closed_ports: bool,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl RouterConfig {
    pub fn new() -> RouterConfig {
        RouterConfig {
            ifaces: Vec::new(),
            routes: Vec::new(),
            nat: None,
            local_stack: false,
            local_services: Vec::new(),
            mss_clamp: None,
            block_icmp: false,
            answer_ping: true,
            reject_closed_ports: true,
        }
    }
    /// Whether the router answers pings on its own addresses (default on).
    pub fn answer_ping(mut self, on: bool) -> Self {
        self.answer_ping = on;
        self
    }
    /// Whether TCP/UDP to a closed port of the router's own addresses gets
    /// RST / port unreachable (default on, as Linux) or silence.
    pub fn reject_closed_ports(mut self, on: bool) -> Self {
        self.reject_closed_ports = on;
        self
    }
    /// Clamps the MSS option of forwarded SYNs (iptables -j TCPMSS).
    pub fn mss_clamp(mut self, c: crate::router::MssClamp) -> Self {
        self.mss_clamp = Some(c);
        self
    }
    /// Drops every ICMP message it would forward (a firewall that
    /// filters ICMP, the classic PMTUD black hole of RFC 2923 §2.1).
    pub fn block_icmp(mut self, on: bool) -> Self {
        self.block_icmp = on;
        self
    }
    /// Adds an interface; its index is its `IfaceId` in NAT rules.
    pub fn interface(
        mut self,
        name: &str,
        seg: SegmentId,
        addr: Ipv4Addr,
        prefix_len: u8,
        role: Role,
    ) -> Self {
        self.ifaces
            .push((name.to_string(), seg, addr, prefix_len, role));
        self
    }
    pub fn route(mut self, dst: Prefix, via: Ipv4Addr) -> Self {
        self.routes.push((dst, via));
        self
    }
    /// Runs a NAT engine with `behaviour`; `setup` adds rules to a config
    /// whose interfaces are already filled in from this router's.
    pub fn nat(
        mut self,
        behaviour: Behaviour,
        setup: impl FnOnce(&mut NatConfig) + 'static,
    ) -> Self {
        self.nat = Some((behaviour, Box::new(setup)));
        self
    }
    /// Gives the router its own TCP/IP stack (apps via `Sim::add_app`).
    pub fn local_stack(mut self) -> Self {
        self.local_stack = true;
        self
    }
    /// A service of the local stack that owns its port on every router
    /// address, ahead of NAT rules (what an NT-based firewall's own RPC
    /// endpoint mapper does to TCP 135).
    pub fn local_service(mut self, proto: Proto, port: u16) -> Self {
        self.local_services.push((proto, port));
        self.local_stack = true;
        self
    }
}
