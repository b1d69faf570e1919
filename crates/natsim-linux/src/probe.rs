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

use crate::packet::{self, flags, Ip, Summary};
use crate::topology::{HostKind, Topology};
use crate::world::{CtEntry, Seen, World};
use natsim_nat::{Action, Chain, PortFlag, Proto};
use std::net::Ipv4Addr;
use std::time::Duration;

/// How two records of a step are compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Forwarded packets: every byte of the IPv4 packet (TTL, IP ID,
    /// checksums, translated addresses and ports).
    Exact,
    /// A source port the kernel picks at random: on a clash, or always
    /// under a `random`/`fully-random` rule (nf_nat_l4proto_unique_tuple):
    /// equal bytes except that port and the checksums covering it; both
    /// checksums valid; both ports differ from the original one and stay
    /// in its class (1-511, 512-1023, 1024-65535; an ICMP id has no
    /// classes).
    RandomPort { clash: u16 },
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

fn pname(p: u8) -> &'static str {
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
            (Action::Dnat { .. }, Chain::Prerouting) => {
                let proto = match r.matches.proto {
                    Some(Proto::Udp) => packet::UDP,
                    _ => packet::TCP,
                };
                let port = r.matches.dst_ports.map_or(80, |p| p.first);
                let to = match (r.matches.dst_iface_addr, r.matches.dst) {
                    (Some(i), _) => t.router_addr(usize::from(i.0)),
                    (None, Some(d)) if d.len == 32 => d.addr,
                    _ => wan,
                };
                p(
                    format!("forward `{}` from outside", r.name),
                    Kind::Forward {
                        proto,
                        remote: r1,
                        to,
                        port,
                        server,
                    },
                );
                if proto == packet::TCP {
                    p(
                        format!("hairpin `{}` from inside", r.name),
                        Kind::Hairpin {
                            client: a,
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

/// Records steps of one probe run.
struct Rec<'w> {
    w: &'w mut dyn World,
    t: &'w Topology,
    steps: Vec<StepRecord>,
    ip_id: u16,
    /// A source-NAT rule carries `random` or `fully-random`: an inside
    /// client's port to an outside host is random even when it is free.
    random_snat: bool,
}

impl Rec<'_> {
    fn ip(&mut self, from: usize, dst: Ipv4Addr) -> Ip {
        self.ip_id = self.ip_id.wrapping_add(0x0101).max(1);
        Ip::new(self.t.hosts[from].addr, dst, self.ip_id)
    }

    fn send(&mut self, label: String, rule: Rule, from: usize, pkt: Vec<u8>) -> Vec<Seen> {
        // Under a random-port rule the kernel draws the port (or ICMP id)
        // of an inside client's packet to an outside host even when the
        // original is free; both worlds must follow that rule instead.
        let rule = match Summary::parse(&pkt) {
            Some(s)
                if self.random_snat
                    && rule == Rule::Exact
                    && self.t.hosts[from].kind == HostKind::Client
                    && self
                        .t
                        .hosts
                        .iter()
                        .any(|h| h.addr == s.dst && h.kind == HostKind::Remote) =>
            {
                Rule::RandomPort { clash: s.sport }
            }
            // What the router generates for a packet to a mapping names
            // that mapping's port, each world's own draw.
            Some(s)
                if self.random_snat
                    && rule == Rule::Generated
                    && self.t.hosts[from].kind == HostKind::Remote
                    && self.t.router.ifaces.iter().any(|i| i.addr == s.dst) =>
            {
                Rule::GeneratedRandomPort
            }
            _ => rule,
        };
        let seen = self.w.send(from, pkt);
        self.steps.push(StepRecord {
            label,
            rule,
            record: Record::Packets(seen.clone()),
        });
        seen
    }

    fn table(&mut self, label: &str) {
        let t = self.w.table().unwrap_or_default();
        self.steps.push(StepRecord {
            label: label.into(),
            rule: if self.random_snat {
                Rule::TableRandomPort
            } else {
                Rule::Table
            },
            record: Record::Table(t),
        });
    }

    fn addr(&self, h: usize) -> Ipv4Addr {
        self.t.hosts[h].addr
    }
}

fn first_at(seen: &[Seen], host: usize) -> Option<Summary> {
    seen.iter()
        .find(|s| s.host == host)
        .and_then(|s| Summary::parse(&s.packet))
}

fn packet_at(seen: &[Seen], host: usize) -> Option<Vec<u8>> {
    seen.iter()
        .find(|s| s.host == host)
        .map(|s| s.packet.clone())
}

/// A request from `client` to `dst:dport`, and `replier`'s answer to
/// whatever arrived there. Returns what arrived at the replier.
#[allow(clippy::too_many_arguments)]
fn exchange(
    r: &mut Rec<'_>,
    proto: u8,
    rule: Rule,
    client: usize,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    replier: usize,
) -> Option<Summary> {
    let ip = r.ip(client, dst);
    let pkt = match proto {
        packet::TCP => packet::tcp(ip, sport, dport, 1000, 0, flags::SYN, &[]),
        packet::UDP => packet::udp(ip, sport, dport, b"natsim probe"),
        _ => packet::echo(ip, true, sport, 1),
    };
    let what = match proto {
        packet::TCP => "SYN",
        packet::UDP => "request",
        _ => "echo request",
    };

    let seen = r.send(
        format!("{what} {}:{sport} > {dst}:{dport}", r.t.hosts[client].name),
        rule,
        client,
        pkt,
    );
    let got = first_at(&seen, replier)?;
    let ip = r.ip(replier, got.src);
    let ans = match proto {
        packet::TCP => packet::tcp(
            ip,
            got.dport,
            got.sport,
            5000,
            got.seq.wrapping_add(1),
            flags::SYN | flags::ACK,
            &[],
        ),
        packet::UDP => packet::udp(ip, got.dport, got.sport, b"natsim answer"),
        _ => packet::echo(ip, false, got.sport, 1),
    };
    let label = format!("answer from {}", r.t.hosts[replier].name);
    r.send(label, rule, replier, ans);
    Some(got)
}

/// The FTP probe's steps: handshake, PORT, the server's ACK, the data SYN.
fn ftp_active(r: &mut Rec<'_>, client: usize, remote: usize, sport: u16, data_port: u16) {
    let dst = r.addr(remote);
    let Some(syn) = exchange(r, packet::TCP, Rule::Exact, client, dst, sport, 21, remote) else {
        return;
    };
    let (mut c_seq, s_seq) = (1001u32, 5001u32);
    let ip = r.ip(client, dst);
    let ack = packet::tcp(ip, sport, 21, c_seq, s_seq, flags::ACK, &[]);
    r.send("handshake ACK".into(), Rule::Exact, client, ack);
    // nf_conntrack_ftp parses a segment only where an earlier one ended a
    // line (find_nl_seq), so a command precedes PORT, as in any session.
    let user = b"USER natsim\r\n";
    let ip = r.ip(client, dst);
    let pkt = packet::tcp(ip, sport, 21, c_seq, s_seq, flags::PSH | flags::ACK, user);
    r.send("USER natsim".into(), Rule::Exact, client, pkt);
    c_seq = c_seq.wrapping_add(user.len() as u32);
    let ip = r.ip(remote, syn.src);
    let ack = packet::tcp(
        ip,
        21,
        syn.sport,
        s_seq,
        syn.seq.wrapping_add(1).wrapping_add(user.len() as u32),
        flags::ACK,
        &[],
    );
    r.send("server's ACK of USER".into(), Rule::Exact, remote, ack);
    let a = r.addr(client).octets();
    let cmd = format!(
        "PORT {},{},{},{},{},{}\r\n",
        a[0],
        a[1],
        a[2],
        a[3],
        data_port >> 8,
        data_port & 0xff
    );
    let ip = r.ip(client, dst);
    let pkt = packet::tcp(
        ip,
        sport,
        21,
        c_seq,
        s_seq,
        flags::PSH | flags::ACK,
        cmd.as_bytes(),
    );
    let seen = r.send(
        format!("{} (PORT)", cmd.trim_end()),
        Rule::Exact,
        client,
        pkt,
    );
    let Some(got) = packet_at(&seen, remote) else {
        return;
    };
    let ihl = usize::from(got[0] & 0x0f) * 4;
    let doff = usize::from(got.get(ihl + 12).map_or(5, |b| b >> 4)) * 4;
    let payload = got.get(ihl + doff..).unwrap_or_default().to_vec();
    // The server acknowledges what it received, in its own sequence space.
    let ip = r.ip(remote, syn.src);
    let ack = packet::tcp(
        ip,
        21,
        syn.sport,
        s_seq,
        syn.seq
            .wrapping_add(1)
            .wrapping_add(user.len() as u32)
            .wrapping_add(payload.len() as u32),
        flags::ACK,
        &[],
    );
    r.send("server's ACK of the PORT".into(), Rule::Exact, remote, ack);
    // The data connection to the address and port the server was told.
    let text = String::from_utf8_lossy(&payload);
    let nums: Vec<u32> = text
        .trim_end()
        .strip_prefix("PORT ")
        .unwrap_or("")
        .split(',')
        .filter_map(|n| n.parse().ok())
        .collect();
    if let [a, b, c, d, hi, lo] = nums[..] {
        let to = Ipv4Addr::new(a as u8, b as u8, c as u8, d as u8);
        let port = (hi * 256 + lo) as u16;
        let ip = r.ip(remote, to);
        let syn = packet::tcp(ip, 20, port, 9000, 0, flags::SYN, &[]);
        r.send(
            format!("data SYN from port 20 to {to}:{port}"),
            Rule::Exact,
            remote,
            syn,
        );
    }
}

/// Runs `probe` against `w` (after a reset) and returns its records.
pub fn run(probe: &Probe, t: &Topology, w: &mut dyn World) -> Vec<StepRecord> {
    w.reset();
    let random_snat = t
        .router
        .nat
        .rules
        .rules
        .iter()
        .any(|rule| match &rule.action {
            Action::Masquerade { random, .. } => *random != PortFlag::Profile,
            Action::Snat(p) => p.random != PortFlag::Profile,
            _ => false,
        });
    let mut r = Rec {
        w,
        t,
        steps: Vec::new(),
        ip_id: 0x1200,
        random_snat,
    };
    match probe.kind {
        Kind::TcpConnect {
            client,
            remote,
            sport,
        } => {
            let dst = r.addr(remote);
            if exchange(
                &mut r,
                packet::TCP,
                Rule::Exact,
                client,
                dst,
                sport,
                80,
                remote,
            )
            .is_some()
            {
                let ip = r.ip(client, dst);
                let ack = packet::tcp(ip, sport, 80, 1001, 5001, flags::ACK, &[]);
                r.send("ACK".into(), Rule::Exact, client, ack);
            }
        }
        Kind::Udp {
            client,
            remote,
            sport,
            dport,
        } => {
            let dst = r.addr(remote);
            exchange(
                &mut r,
                packet::UDP,
                Rule::Exact,
                client,
                dst,
                sport,
                dport,
                remote,
            );
        }
        Kind::Echo { client, remote, id } => {
            let dst = r.addr(remote);
            exchange(
                &mut r,
                packet::ICMP,
                Rule::Exact,
                client,
                dst,
                id,
                id,
                remote,
            );
        }
        Kind::Clash {
            proto,
            a,
            b,
            remote,
            sport,
        } => {
            let dst = r.addr(remote);
            exchange(&mut r, proto, Rule::Exact, a, dst, sport, 80, remote);
            exchange(
                &mut r,
                proto,
                Rule::RandomPort { clash: sport },
                b,
                dst,
                sport,
                80,
                remote,
            );
        }
        Kind::FtpActive {
            client,
            remote,
            sport,
            data_port,
        } => ftp_active(&mut r, client, remote, sport, data_port),
        Kind::Overload {
            a,
            b,
            r1,
            r2,
            sport,
        } => {
            let (d1, d2) = (r.addr(r1), r.addr(r2));
            exchange(&mut r, packet::UDP, Rule::Exact, a, d1, sport, 3478, r1);
            exchange(&mut r, packet::UDP, Rule::Exact, b, d2, sport, 3478, r2);
        }
        Kind::Unsolicited {
            proto,
            remote,
            to,
            port,
        } => {
            let ip = r.ip(remote, to);
            let pkt = match proto {
                packet::TCP => packet::tcp(ip, 33000, port, 77, 0, flags::SYN, &[]),
                packet::UDP => packet::udp(ip, 33000, port, b"hello?"),
                _ => packet::echo(ip, true, port, 1),
            };
            r.send(
                format!("{} to {to}:{port}", pname(proto)),
                Rule::Generated,
                remote,
                pkt,
            );
        }
        Kind::RoutedInbound { remote, client } => {
            let dst = r.addr(client);
            let ip = r.ip(remote, dst);
            r.send(
                format!("SYN to {dst}:22"),
                Rule::Exact,
                remote,
                packet::tcp(ip, 33001, 22, 9, 0, flags::SYN, &[]),
            );
        }
        Kind::Mapping5780 {
            client,
            r1,
            r2,
            sport,
        } => {
            // RFC 5780 §4.3: the same internal endpoint to (Y1,P1), (Y1,P2)
            // and (Y2,P1); the mapped ports show the mapping behaviour.
            let (d1, d2) = (r.addr(r1), r.addr(r2));
            for (dst, dport) in [(d1, 3478), (d1, 3479), (d2, 3478)] {
                let ip = r.ip(client, dst);
                r.send(
                    format!("to {dst}:{dport}"),
                    Rule::Exact,
                    client,
                    packet::udp(ip, sport, dport, b"binding"),
                );
            }
        }
        Kind::Filtering5780 {
            proto,
            client,
            r1,
            r2,
            sport,
        } => {
            // RFC 5780 §4.4: after a binding to (Y1,P1), packets to the
            // mapped endpoint from (Y2,P1) and (Y1,P2).
            let d1 = r.addr(r1);
            let Some(got) = first_request(&mut r, proto, client, d1, sport, 3478, r1) else {
                return r.steps;
            };
            for (from, from_port) in [(r2, 3478u16), (r1, 3479u16)] {
                let ip = r.ip(from, got.src);
                let pkt = if proto == packet::TCP {
                    packet::tcp(ip, from_port, got.sport, 42, 0, flags::SYN, &[])
                } else {
                    packet::udp(ip, from_port, got.sport, b"unsolicited")
                };
                let label = format!("from {}:{from_port} to the mapping", r.t.hosts[from].name);
                r.send(label, Rule::Generated, from, pkt);
            }
        }
        Kind::IcmpError {
            proto,
            client,
            remote,
            hop,
            sport,
        } => {
            let dst = r.addr(remote);
            let Some(_) = first_request(&mut r, proto, client, dst, sport, 9, remote) else {
                return r.steps;
            };
            let Some(Record::Packets(seen)) = r.steps.last().map(|s| s.record.clone()) else {
                return r.steps;
            };
            let Some(quoted) = packet_at(&seen, remote) else {
                return r.steps;
            };
            let Some(got) = Summary::parse(&quoted) else {
                return r.steps;
            };
            // UDP: the remote's port unreachable; TCP and ICMP: a time
            // exceeded from another outside router on the path.
            let (from, ty, code) = match proto {
                packet::UDP => (remote, 3, 3),
                _ => (hop, 11, 0),
            };
            let ip = r.ip(from, got.src);
            let err = packet::icmp_error(ip, ty, code, &quoted);
            r.send(
                format!("icmp {ty}/{code} quoting it"),
                Rule::Exact,
                from,
                err,
            );
        }
        Kind::Forward {
            proto,
            remote,
            to,
            port,
            server,
        } => {
            exchange(&mut r, proto, Rule::Exact, remote, to, 33100, port, server);
        }
        Kind::Hairpin {
            client,
            to,
            port,
            server,
        } => {
            exchange(
                &mut r,
                packet::TCP,
                Rule::Exact,
                client,
                to,
                33200,
                port,
                server,
            );
        }
        Kind::OneToOneOut { server, remote } => {
            let dst = r.addr(remote);
            exchange(
                &mut r,
                packet::TCP,
                Rule::Exact,
                server,
                dst,
                33300,
                80,
                remote,
            );
        }
        Kind::CtClass {
            class,
            client,
            remote,
            sport,
        } => {
            let dst = r.addr(remote);
            match class {
                CtClass::TcpSynSent => {
                    first_request(&mut r, packet::TCP, client, dst, sport, 80, remote);
                }
                CtClass::TcpEstablished | CtClass::TcpClose => {
                    exchange(
                        &mut r,
                        packet::TCP,
                        Rule::Exact,
                        client,
                        dst,
                        sport,
                        80,
                        remote,
                    );
                    let ip = r.ip(client, dst);
                    let fl = if class == CtClass::TcpClose {
                        flags::RST | flags::ACK
                    } else {
                        flags::ACK
                    };
                    r.send(
                        "ACK".into(),
                        Rule::Exact,
                        client,
                        packet::tcp(ip, sport, 80, 1001, 5001, fl, &[]),
                    );
                }
                CtClass::UdpUnreplied => {
                    first_request(&mut r, packet::UDP, client, dst, sport, 3478, remote);
                }
                CtClass::UdpReplied => {
                    exchange(
                        &mut r,
                        packet::UDP,
                        Rule::Exact,
                        client,
                        dst,
                        sport,
                        3478,
                        remote,
                    );
                }
                CtClass::UdpStream => {
                    exchange(
                        &mut r,
                        packet::UDP,
                        Rule::Exact,
                        client,
                        dst,
                        sport,
                        3478,
                        remote,
                    );
                    // nf_conntrack_udp_packet: stream_ts = creation + 2 s.
                    r.w.sleep(Duration::from_millis(2200));
                    let ip = r.ip(client, dst);
                    r.send(
                        "request after 2.2 s".into(),
                        Rule::Exact,
                        client,
                        packet::udp(ip, sport, 3478, b"again"),
                    );
                }
                CtClass::Icmp => {
                    exchange(
                        &mut r,
                        packet::ICMP,
                        Rule::Exact,
                        client,
                        dst,
                        sport,
                        sport,
                        remote,
                    );
                }
            }
            r.table("conntrack table");
        }
    }
    r.steps
}

/// A first packet only (no answer); what arrived at `at`.
fn first_request(
    r: &mut Rec<'_>,
    proto: u8,
    client: usize,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    at: usize,
) -> Option<Summary> {
    let ip = r.ip(client, dst);
    let pkt = match proto {
        packet::TCP => packet::tcp(ip, sport, dport, 1000, 0, flags::SYN, &[]),
        packet::UDP => packet::udp(ip, sport, dport, b"natsim probe"),
        _ => packet::echo(ip, true, sport, 1),
    };
    let seen = r.send(
        format!(
            "{} {}:{sport} > {dst}:{dport}",
            pname(proto),
            r.t.hosts[client].name
        ),
        Rule::Exact,
        client,
        pkt,
    );
    first_at(&seen, at)
}
