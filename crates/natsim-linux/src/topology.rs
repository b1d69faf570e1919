//! The router under test and the hosts verify places around it.
//!
//! Hosts are synthesised from the router's own configuration, so the same
//! topology can be built for a scenario router or an imported ruleset: two
//! clients on every inside interface, every DNAT and one-to-one target as a
//! server, and two remote hosts on every outside interface (RFC 5780's
//! tests need two remote addresses).

use natsim_nat::{Action, IfaceId, NatConfig, Prefix, Role};
use std::net::Ipv4Addr;

/// One router interface, with the name nft rules match on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfaceSpec {
    /// Linux interface name (at most 15 bytes).
    pub name: String,
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
    pub role: Role,
}

/// The router to check: its interfaces (index = [`IfaceId`]) and NAT.
#[derive(Clone, Debug)]
pub struct RouterSpec {
    pub name: String,
    pub ifaces: Vec<IfaceSpec>,
    pub nat: NatConfig,
}

/// What a synthesised host is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostKind {
    Client,
    Server,
    Remote,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostSpec {
    pub name: String,
    pub iface: usize,
    pub addr: Ipv4Addr,
    pub kind: HostKind,
    pub mac: [u8; 6],
}

#[derive(Clone, Debug)]
pub struct Topology {
    pub router: RouterSpec,
    pub hosts: Vec<HostSpec>,
    /// MAC of each router interface (index = interface).
    pub router_macs: Vec<[u8; 6]>,
}

/// Why a router cannot be verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopologyError {
    NoInsideInterface,
    NoOutsideInterface,
    BadIfaceName(String),
    NoFreeAddress { iface: String },
}

impl std::fmt::Display for TopologyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoInsideInterface => f.write_str("the router has no inside interface to probe from"),
            Self::NoOutsideInterface => f.write_str("the router has no outside interface to probe towards"),
            Self::BadIfaceName(n) if n == "lo" => f.write_str(
                "`lo` is the loopback interface every namespace has; name the router's interfaces otherwise",
            ),
            Self::BadIfaceName(n) => write!(
                f,
                "interface name `{n}` is not a Linux interface name (1-15 bytes, no `/`, space or `:`)"
            ),
            Self::NoFreeAddress { iface } => {
                write!(f, "no free host address on {iface}'s prefix for a probe host")
            }
        }
    }
}

impl std::error::Error for TopologyError {}

fn valid_ifname(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 15
        && n != "lo"
        && n.bytes()
            .all(|b| b.is_ascii_graphic() && !b"/:".contains(&b))
}

impl Topology {
    pub fn new(router: RouterSpec) -> Result<Topology, TopologyError> {
        for i in &router.ifaces {
            if !valid_ifname(&i.name) {
                return Err(TopologyError::BadIfaceName(i.name.clone()));
            }
        }
        if !router.ifaces.iter().any(|i| i.role == Role::Inside) {
            return Err(TopologyError::NoInsideInterface);
        }
        if !router.ifaces.iter().any(|i| i.role == Role::Outside) {
            return Err(TopologyError::NoOutsideInterface);
        }
        let mut taken: Vec<Ipv4Addr> = router.ifaces.iter().map(|i| i.addr).collect();
        let mut reserved: Vec<(u32, u32)> = Vec::new();
        let mut servers: Vec<Ipv4Addr> = Vec::new();
        for r in &router.nat.rules.rules {
            match &r.action {
                Action::Snat(p) => reserved.push((p.first.to_bits(), p.last.to_bits())),
                Action::Dnat { to, .. } => servers.push(*to),
                Action::Netmap { to } => {
                    // Prerouting NETMAP targets are inside hosts; postrouting
                    // targets are outside addresses the router owns.
                    if r.chain == natsim_nat::Chain::Prerouting {
                        servers.push(to.addr);
                    } else {
                        reserved.push(range(*to));
                    }
                }
                _ => {}
            }
            if r.chain == natsim_nat::Chain::Prerouting {
                if let Some(d) = r.matches.dst {
                    reserved.push(range(d));
                }
            }
        }
        let mut hosts = Vec::new();
        let mut n = 0u8;
        let mut push = |hosts: &mut Vec<HostSpec>, name: String, iface: usize, addr, kind| {
            n += 1;
            hosts.push(HostSpec {
                name,
                iface,
                addr,
                kind,
                mac: [0x02, 0x4e, 0x53, 0x00, 0x01, n],
            });
        };
        servers.sort();
        servers.dedup();
        for s in &servers {
            if let Some(k) = router.ifaces.iter().position(|i| on_link(i, *s)) {
                taken.push(*s);
                let idx = hosts.len();
                push(&mut hosts, format!("server{idx}"), k, *s, HostKind::Server);
            }
        }
        for (k, i) in router.ifaces.iter().enumerate() {
            let (kind, names) = match i.role {
                Role::Inside => (HostKind::Client, ["client1", "client2"]),
                Role::Outside => (HostKind::Remote, ["remote1", "remote2"]),
            };
            for base in names {
                let addr = free_addr(i, &taken, &reserved).ok_or_else(|| {
                    TopologyError::NoFreeAddress {
                        iface: i.name.clone(),
                    }
                })?;
                taken.push(addr);
                let name = if k == first_of(&router, i.role) {
                    base.to_string()
                } else {
                    format!("{base}-{}", i.name)
                };
                push(&mut hosts, name, k, addr, kind);
            }
        }
        let router_macs = (0..router.ifaces.len())
            .map(|k| [0x02, 0x4e, 0x53, 0x00, 0x00, k as u8 + 1])
            .collect();
        Ok(Topology {
            router,
            hosts,
            router_macs,
        })
    }

    pub fn host(&self, name: &str) -> Option<usize> {
        self.hosts.iter().position(|h| h.name == name)
    }

    pub fn hosts_of(&self, kind: HostKind) -> Vec<usize> {
        (0..self.hosts.len())
            .filter(|&h| self.hosts[h].kind == kind)
            .collect()
    }

    /// The outside interface a host's traffic leaves by (the first one).
    pub fn first_outside(&self) -> usize {
        first_of(&self.router, Role::Outside)
    }

    /// The router's address on interface `k`.
    pub fn router_addr(&self, k: usize) -> Ipv4Addr {
        self.router.ifaces[k].addr
    }

    pub fn iface_id(k: usize) -> IfaceId {
        IfaceId(k as u16)
    }
}

fn first_of(r: &RouterSpec, role: Role) -> usize {
    r.ifaces.iter().position(|i| i.role == role).unwrap_or(0)
}

fn range(p: Prefix) -> (u32, u32) {
    let mask = if p.len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(p.len))
    };
    let base = p.addr.to_bits() & mask;
    (base, base | !mask)
}

pub fn on_link(i: &IfaceSpec, a: Ipv4Addr) -> bool {
    Prefix::new(i.addr, i.prefix_len).contains(a)
}

/// The highest free host addresses of the interface's prefix, counting
/// down from the top (away from the low addresses routers and DHCP pools
/// usually hold).
fn free_addr(i: &IfaceSpec, taken: &[Ipv4Addr], reserved: &[(u32, u32)]) -> Option<Ipv4Addr> {
    let (net, bcast) = range(Prefix::new(i.addr, i.prefix_len));
    if bcast.saturating_sub(net) < 2 {
        return None;
    }
    let mut a = bcast - 1;
    // Keep the search short: a /30 has two host addresses.
    for _ in 0..1024 {
        if a <= net {
            return None;
        }
        let cand = Ipv4Addr::from_bits(a);
        let busy = taken.contains(&cand) || reserved.iter().any(|&(f, l)| f <= a && a <= l);
        // .254 is the conventional gateway of outside segments in the
        // shipped scenarios; leave it free.
        if !busy && a & 0xff != 0xfe {
            return Some(cand);
        }
        a -= 1;
    }
    None
}
