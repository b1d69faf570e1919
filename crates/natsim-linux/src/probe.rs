//! The probe set: what is sent, what is recorded, and the rule by which
//! the kernel's and natsim's records are compared.
//!
//! Every probe runs on a fresh connection table, once against each world.
//! A probe answers what arrived (a SYN-ACK to the port the SYN came from),
//! so each world answers its own translation.
//!
//! Connection tables are compared in the `conntrack timeout` probes only.
//! The kernel also keeps an UNREPLIED (or CLOSE) entry for unsolicited
//! traffic its own stack answers; natsim's table does not model those
//! (they hold no translation and admit nothing later that the engine
//! would refuse), so the unsolicited probes compare packets, not tables.

use crate::packet;
use crate::topology::{HostKind, Topology};
use crate::world::{CtEntry, Seen};
use natsim_nat::{Action, Chain, PortRange, Proto};
use std::net::Ipv4Addr;

/// How two records of a step are compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Forwarded packets: every byte of the IPv4 packet (TTL, IP ID,
    /// checksums, translated addresses and ports).
    Exact,
    /// A source port the kernel picks at random: on a clash, or always
    /// under a `random`/`fully-random` rule (nf_nat_l4proto_unique_tuple):
    /// equal bytes except that port and the checksums covering it; both
    /// checksums valid; both ports stay in the original's class (1-511,
    /// 512-1023, 1024-65535; an ICMP id has no classes), and differ from
    /// it on a clash. A `random` rule may draw the original port itself
    /// (get_unique_tuple skips only the keep-it shortcut), so there it is
    /// allowed.
    RandomPort { original: u16, clash: bool },
    /// Packets the router itself generates (RST, ICMP errors, echo
    /// replies): equal bytes except the IPv4 TOS, ID, DF and TTL, which
    /// come from the sending stack; both checksums valid.
    Generated,
    /// As `Generated`, for what the router answers at a mapping whose
    /// port is random: the ports (an ICMP error's quoted ones too) and the
    /// checksums over them are each world's own.
    GeneratedRandomPort,
    /// Connection-table entries: same tuples and TCP state, timeouts
    /// within 2 s (conntrack prints whole seconds, counting down).
    Table,
    /// As `Table`, but a translated reply tuple's mapped port is each
    /// world's random draw (a `random`/`fully-random` rule).
    TableRandomPort,
}

impl Rule {
    pub fn doc(self) -> &'static str {
        match self {
            Rule::Exact => "bytes",
            Rule::RandomPort { .. } => "bytes; random port in class",
            Rule::Generated => "bytes but TOS/ID/DF/TTL",
            Rule::GeneratedRandomPort => "bytes but TOS/ID/DF/TTL and the random port",
            Rule::Table => "tuples, state, timeout ±2s",
            Rule::TableRandomPort => "tuples but the random port, state, timeout ±2s",
        }
    }
}

/// What one step of a probe recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Packets(Vec<Seen>),
    Table(Vec<CtEntry>),
}

#[derive(Clone, Debug)]
pub struct StepRecord {
    pub label: String,
    pub rule: Rule,
    pub record: Record,
}

#[derive(Clone, Debug)]
pub enum Kind {
    TcpConnect {
        client: usize,
        remote: usize,
        sport: u16,
    },
    Udp {
        client: usize,
        remote: usize,
        sport: u16,
        dport: u16,
    },
    Echo {
        client: usize,
        remote: usize,
        id: u16,
    },
    Clash {
        proto: u8,
        a: usize,
        b: usize,
        remote: usize,
        sport: u16,
    },
    Overload {
        a: usize,
        b: usize,
        r1: usize,
        r2: usize,
        sport: u16,
    },
    /// Active FTP through the FTP helper: the PORT command rewritten (and
    /// the TCP sequence shifted by the length change), the ACK shifted
    /// back, and the server's data connection let in to the client.
    FtpActive {
        client: usize,
        remote: usize,
        sport: u16,
        data_port: u16,
    },
    Unsolicited {
        proto: u8,
        remote: usize,
        to: Ipv4Addr,
        port: u16,
    },
    RoutedInbound {
        remote: usize,
        client: usize,
    },
    Mapping5780 {
        client: usize,
        r1: usize,
        r2: usize,
        sport: u16,
    },
    Filtering5780 {
        proto: u8,
        client: usize,
        r1: usize,
        r2: usize,
        sport: u16,
    },
    IcmpError {
        proto: u8,
        client: usize,
        remote: usize,
        hop: usize,
        sport: u16,
    },
    Forward {
        proto: u8,
        remote: usize,
        to: Ipv4Addr,
        port: u16,
        server: usize,
    },
    Hairpin {
        proto: u8,
        client: usize,
        to: Ipv4Addr,
        port: u16,
        server: usize,
    },
    OneToOneOut {
        server: usize,
        remote: usize,
    },
    CtClass {
        class: CtClass,
        client: usize,
        remote: usize,
        sport: u16,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtClass {
    TcpSynSent,
    TcpEstablished,
    TcpClose,
    UdpUnreplied,
    UdpReplied,
    UdpStream,
    Icmp,
}

#[derive(Clone, Debug)]
pub struct Probe {
    pub name: String,
    pub kind: Kind,
}

pub(crate) fn pname(p: u8) -> &'static str {
    match p {
        packet::TCP => "tcp",
        packet::UDP => "udp",
        _ => "icmp",
    }
}

/// The probe set for a topology.
pub fn probes(t: &Topology) -> Vec<Probe> {
    let clients = t.hosts_of(HostKind::Client);
    let remotes = t.hosts_of(HostKind::Remote);
    let mut out = Vec::new();
    let (Some(&r1), Some(&r2)) = (remotes.first(), remotes.get(1)) else {
        return out;
    };
    let mut p = |name: String, kind| out.push(Probe { name, kind });
    let hn = |h: usize| t.hosts[h].name.clone();
    let mut port = 41000u16;
    let mut next = || {
        port += 1;
        port
    };
    for &c in &clients {
        p(
            format!("tcp-connect {}", hn(c)),
            Kind::TcpConnect {
                client: c,
                remote: r1,
                sport: next(),
            },
        );
        p(
            format!("udp {}", hn(c)),
            Kind::Udp {
                client: c,
                remote: r1,
                sport: next(),
                dport: 3478,
            },
        );
        p(
            format!("icmp-echo {}", hn(c)),
            Kind::Echo {
                client: c,
                remote: r1,
                id: next(),
            },
        );
    }
    let (a, b) = (clients[0], clients[1]);
    // The first client of each inside interface, `a` first.
    let mut per_iface: Vec<usize> = Vec::new();
    for &c in &clients {
        if per_iface
            .iter()
            .all(|&o| t.hosts[o].iface != t.hosts[c].iface)
        {
            per_iface.push(c);
        }
    }
    p(
        "udp low port 500 (class 1-511)".into(),
        Kind::Udp {
            client: a,
            remote: r1,
            sport: 500,
            dport: 500,
        },
    );
    p(
        "udp port 1023 (class 512-1023)".into(),
        Kind::Udp {
            client: a,
            remote: r1,
            sport: 1023,
            dport: 53,
        },
    );
    for proto in [packet::TCP, packet::UDP] {
        p(
            format!("{} port clash, same remote", pname(proto)),
            Kind::Clash {
                proto,
                a,
                b,
                remote: r1,
                sport: next(),
            },
        );
    }
    p(
        "udp same port, two remotes".into(),
        Kind::Overload {
            a,
            b,
            r1,
            r2,
            sport: next(),
        },
    );
    if t.router.nat.algs.ports.get(&21) == Some(&natsim_nat::AlgKind::Ftp) {
        p(
            "ftp PORT through the helper".into(),
            Kind::FtpActive {
                client: a,
                remote: r1,
                sport: next(),
                data_port: next(),
            },
        );
    }
    let wan = t.router_addr(t.first_outside());
    for proto in [packet::TCP, packet::UDP, packet::ICMP] {
        p(
            format!("unsolicited {} to router", pname(proto)),
            Kind::Unsolicited {
                proto,
                remote: r1,
                to: wan,
                port: 47001,
            },
        );
    }
    p(
        "outside to an inside address".into(),
        Kind::RoutedInbound {
            remote: r1,
            client: a,
        },
    );
    p(
        "RFC 5780 mapping (udp)".into(),
        Kind::Mapping5780 {
            client: a,
            r1,
            r2,
            sport: next(),
        },
    );
    for proto in [packet::UDP, packet::TCP] {
        p(
            format!("RFC 5780 filtering ({})", pname(proto)),
            Kind::Filtering5780 {
                proto,
                client: a,
                r1,
                r2,
                sport: next(),
            },
        );
    }
    for proto in [packet::UDP, packet::TCP, packet::ICMP] {
        p(
            format!("icmp error for a {} flow", pname(proto)),
            Kind::IcmpError {
                proto,
                client: a,
                remote: r1,
                hop: r2,
                sport: next(),
            },
        );
    }
    // Every forward and one-to-one path, from outside and from inside.
    for r in &t.router.nat.rules.rules {
        let Some(server) = target_host(t, r) else {
            continue;
        };
        match (&r.action, r.chain) {
            // A forward published on loopback (Docker's `-p 127.0.0.1:…`)
            // serves the router itself: no probe host can reach it.
            (Action::Dnat { .. }, Chain::Prerouting)
                if r.matches.dst.is_some_and(|d| d.addr.is_loopback()) => {}
            (Action::Dnat { .. }, Chain::Prerouting) => {
                let proto = match r.matches.proto {
                    Some(Proto::Udp) => packet::UDP,
                    _ => packet::TCP,
                };
                let to = match (r.matches.dst_iface_addr, r.matches.dst) {
                    (Some(i), _) => t.router_addr(usize::from(i.0)),
                    (None, Some(d)) if d.len == 32 => d.addr,
                    _ => wan,
                };
                // A range forward keeps the offset: its last port too.
                let range = r.matches.dst_ports.unwrap_or(PortRange::single(80));
                let ports = if range.last > range.first {
                    vec![range.first, range.last]
                } else {
                    vec![range.first]
                };
                for &port in &ports {
                    let at = if port == range.first {
                        String::new()
                    } else {
                        format!(" (port {port}, the range's last)")
                    };
                    p(
                        format!("forward `{}` from outside{at}", r.name),
                        Kind::Forward {
                            proto,
                            remote: r1,
                            to,
                            port,
                            server,
                        },
                    );
                }
                // The server by its own address, around the forward: what
                // FORWARD and raw rules make of it (Docker 28 drops it in
                // raw PREROUTING; before, its FORWARD rule let it in).
                if let Action::Dnat {
                    to: inside,
                    to_port,
                } = r.action
                {
                    p(
                        format!("forward `{}`: its server's own address", r.name),
                        Kind::Forward {
                            proto,
                            remote: r1,
                            to: inside,
                            port: to_port.unwrap_or(range.first),
                            server,
                        },
                    );
                }
                let port = range.first;
                // From every inside network: a rule may exempt one of
                // them (Docker's `-i docker0 -j RETURN`).
                for &client in &per_iface {
                    let from = if client == a {
                        String::new()
                    } else {
                        format!(" ({})", hn(client))
                    };
                    let kind = if proto == packet::TCP { "" } else { " (udp)" };
                    p(
                        format!("hairpin `{}` from inside{from}{kind}", r.name),
                        Kind::Hairpin {
                            proto,
                            client,
                            to,
                            port,
                            server,
                        },
                    );
                }
            }
            (Action::Netmap { .. }, Chain::Prerouting) => {
                let Some(d) = r.matches.dst else { continue };
                p(
                    format!("one-to-one `{}` from outside", r.name),
                    Kind::Forward {
                        proto: packet::TCP,
                        remote: r1,
                        to: d.addr,
                        port: 443,
                        server,
                    },
                );
                p(
                    format!("one-to-one `{}` from inside", r.name),
                    Kind::OneToOneOut { server, remote: r1 },
                );
            }
            _ => {}
        }
    }
    for (class, name) in [
        (CtClass::TcpSynSent, "tcp syn-sent"),
        (CtClass::TcpEstablished, "tcp established"),
        (CtClass::TcpClose, "tcp reset (close)"),
        (CtClass::UdpUnreplied, "udp unreplied"),
        (CtClass::UdpReplied, "udp replied, first 2 s"),
        (CtClass::UdpStream, "udp stream (active after 2 s)"),
        (CtClass::Icmp, "icmp"),
    ] {
        p(
            format!("conntrack timeout: {name}"),
            Kind::CtClass {
                class,
                client: a,
                remote: r1,
                sport: next(),
            },
        );
    }
    out
}

fn target_host(t: &Topology, r: &natsim_nat::Rule) -> Option<usize> {
    let addr = match &r.action {
        Action::Dnat { to, .. } => *to,
        Action::Netmap { to } => to.addr,
        _ => return None,
    };
    t.hosts
        .iter()
        .position(|h| h.addr == addr && h.kind == HostKind::Server)
}
