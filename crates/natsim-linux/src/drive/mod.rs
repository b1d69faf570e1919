//! Running one probe against a world: the packets each step sends, built
//! from what arrived at the previous one, and what every host received.
//! The plan and the comparison rules are in [`crate::probe`].

use crate::packet::{self, flags, Ip, Summary};
use crate::probe::{pname, CtClass, Kind, Probe, Record, Rule, StepRecord};
use crate::topology::{HostKind, Topology};
use crate::world::{Seen, World};
use natsim_nat::{Action, PortFlag};
use std::net::Ipv4Addr;
use std::time::Duration;

mod ct_class;

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
                Rule::RandomPort {
                    original: s.sport,
                    clash: false,
                }
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

/// The first packet of a probe flow: a SYN, a UDP request or an echo
/// request (`sport` is the echo id).
fn request(
    r: &mut Rec<'_>,
    proto: u8,
    client: usize,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
) -> Vec<u8> {
    let ip = r.ip(client, dst);
    match proto {
        packet::TCP => packet::tcp(ip, sport, dport, 1000, 0, flags::SYN, &[]),
        packet::UDP => packet::udp(ip, sport, dport, b"natsim probe"),
        _ => packet::echo(ip, true, sport, 1),
    }
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
    let pkt = request(r, proto, client, dst, sport, dport);
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
                Rule::RandomPort {
                    original: sport,
                    clash: true,
                },
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
            proto,
            client,
            to,
            port,
            server,
        } => {
            exchange(&mut r, proto, Rule::Exact, client, to, 33200, port, server);
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
        } => ct_class::run(&mut r, class, client, remote, sport),
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
    let pkt = request(r, proto, client, dst, sport, dport);
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
