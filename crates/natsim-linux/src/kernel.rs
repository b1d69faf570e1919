//! The kernel's side: the topology in network namespaces, the NAT as
//! nftables rules, raw sockets that send and capture probe packets.
//!
//! Each host namespace has one veth (`eth0`) into a bridge in the router
//! namespace; the bridge carries the router interface's name and address.
//! Hosts send with an `IPPROTO_RAW` socket (the IP header exactly as the
//! probe built it) and capture with an `AF_PACKET` socket, which sees a
//! frame before the host's own stack. An nft `input` chain with policy
//! drop keeps each host's stack from answering probes itself (a RST for a
//! SYN it never sent); ARP is not IP and is still answered.

use crate::netns::{CmdError, Lab};
use crate::nft;
use crate::packet::Summary;
use crate::topology::Topology;
use crate::world::{CtEntry, Seen, World};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long to wait for a first packet, and for quiet after the last one.
/// Forwarding inside one machine takes microseconds and ARP the first time
/// a few milliseconds; the margin is for a CI machine busy with other
/// tests, where a late packet would read as a disagreement.
const FIRST: Duration = Duration::from_millis(250);
const QUIET: Duration = Duration::from_millis(60);

#[derive(Debug)]
pub enum KernelError {
    Cmd(CmdError),
    Nft(nft::Unsupported),
    Socket(String),
    /// A timeout the conntrack sysctls cannot express.
    Timeout(String),
}

impl std::fmt::Display for KernelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cmd(e) => e.fmt(f),
            Self::Nft(e) => e.fmt(f),
            Self::Socket(e) => write!(f, "socket: {e}"),
            Self::Timeout(e) => write!(f, "timeouts: {e}"),
        }
    }
}

impl std::error::Error for KernelError {}

impl From<CmdError> for KernelError {
    fn from(e: CmdError) -> Self {
        KernelError::Cmd(e)
    }
}

fn mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub struct KernelWorld {
    lab: Lab,
    router_ns: String,
    senders: Vec<Socket>,
    rx: Receiver<(usize, Vec<u8>)>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// The JSON ruleset loaded into the router namespace.
    pub ruleset: String,
}

/// Creates sockets inside namespace `ns` (setns on a scratch thread; a
/// socket stays in the namespace it was created in).
fn sockets_in(ns: &str) -> Result<(Socket, Socket), KernelError> {
    let path = format!("/run/netns/{ns}");
    std::thread::scope(|s| {
        s.spawn(|| {
            let f = std::fs::File::open(&path)
                .map_err(|e| KernelError::Socket(format!("{path}: {e}")))?;
            use std::os::fd::AsFd;
            rustix::thread::move_into_link_name_space(
                f.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .map_err(|e| KernelError::Socket(format!("setns {ns}: {e}")))?;
            let send = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(255)))
                .map_err(|e| KernelError::Socket(format!("raw socket: {e}")))?;
            // ETH_P_ALL in network byte order.
            let cap = Socket::new(
                Domain::PACKET,
                Type::RAW,
                Some(Protocol::from(i32::from(0x0003u16.to_be()))),
            )
            .map_err(|e| KernelError::Socket(format!("packet socket: {e}")))?;
            cap.set_read_timeout(Some(Duration::from_millis(20)))
                .map_err(|e| KernelError::Socket(e.to_string()))?;
            Ok((send, cap))
        })
        .join()
        .unwrap_or_else(|_| Err(KernelError::Socket("namespace thread panicked".into())))
    })
}

impl KernelWorld {
    pub fn new(topo: &Topology) -> Result<KernelWorld, KernelError> {
        let ruleset = nft::ruleset_json(&topo.router).map_err(KernelError::Nft)?;
        let mut lab = Lab::new();
        let r = lab.namespace("r")?;
        lab.sysctl(&r, "net.ipv4.ip_forward", "1")?;
        lab.sysctl(&r, "net.ipv4.conf.all.rp_filter", "0")?;
        lab.sysctl(&r, "net.ipv4.conf.default.rp_filter", "0")?;
        // Each probe is its own experiment (conntrack is flushed between
        // them, and natsim's side starts each afresh), but the kernel's
        // per-destination ICMP buckets (inet_peer) outlive a flush. A
        // hairpin's ICMP redirect, which NAT then drops
        // (nf_nat_icmp_reply_translation), still empties its client's
        // bucket (ip_rt_send_redirect), so the next probe's port
        // unreachable to that client went unsent if it came within a
        // second. natsim's limiter is checked on its own (wire/reply/limit).
        lab.sysctl(&r, "net.ipv4.icmp_ratelimit", "0")?;
        // The router's own timeouts.
        let timeouts = crate::sysctl::conntrack_timeouts(&topo.router.nat.behaviour.timeouts)
            .map_err(KernelError::Timeout)?;
        for (key, secs) in timeouts {
            lab.sysctl(&r, key, &secs.to_string())?;
        }
        // bridge-nf is off unless br_netfilter is loaded; make sure
        // bridged frames never meet the router's ip rules.
        let _ = lab.sysctl(&r, "net.bridge.bridge-nf-call-iptables", "0");
        for (k, i) in topo.router.ifaces.iter().enumerate() {
            lab.ip(
                &r,
                &[
                    "link",
                    "add",
                    &i.name,
                    "address",
                    &mac(&topo.router_macs[k]),
                    "type",
                    "bridge",
                ],
            )?;
            lab.ip(
                &r,
                &[
                    "addr",
                    "add",
                    &format!("{}/{}", i.addr, i.prefix_len),
                    "dev",
                    &i.name,
                ],
            )?;
            lab.ip(&r, &["link", "set", &i.name, "up"])?;
        }
        // NAT-owned addresses (pools, one-to-one) are extra /32s on the
        // outside interface, so the kernel answers ARP for them.
        let out = topo.first_outside();
        for a in crate::world::local_addresses(&topo.router.nat) {
            let _ = lab.ip(
                &r,
                &[
                    "addr",
                    "add",
                    &format!("{a}/32"),
                    "dev",
                    &topo.router.ifaces[out].name,
                ],
            );
        }
        lab.exec(&r, "nft", &["-j", "-f", "-"], Some(&ruleset))?;
        let host_filter = r#"{"nftables":[{"add":{"table":{"family":"ip","name":"host"}}},{"add":{"chain":{"family":"ip","table":"host","name":"input","type":"filter","hook":"input","prio":0,"policy":"drop"}}}]}"#;
        let (tx, rx) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        let mut senders = Vec::new();
        let mut threads = Vec::new();
        for (n, h) in topo.hosts.iter().enumerate() {
            let ns = lab.namespace(&format!("h{n}"))?;
            let port = format!("p{n}");
            lab.ip(
                &r,
                &[
                    "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns,
                ],
            )?;
            lab.ip(
                &r,
                &[
                    "link",
                    "set",
                    &port,
                    "master",
                    &topo.router.ifaces[h.iface].name,
                    "up",
                ],
            )?;
            lab.ip(&ns, &["link", "set", "eth0", "address", &mac(&h.mac)])?;
            let iface = &topo.router.ifaces[h.iface];
            lab.ip(
                &ns,
                &[
                    "addr",
                    "add",
                    &format!("{}/{}", h.addr, iface.prefix_len),
                    "dev",
                    "eth0",
                ],
            )?;
            lab.ip(&ns, &["link", "set", "eth0", "up"])?;
            lab.ip(
                &ns,
                &["route", "add", "default", "via", &iface.addr.to_string()],
            )?;
            lab.exec(&ns, "nft", &["-j", "-f", "-"], Some(host_filter))?;
            let (send, cap) = sockets_in(&ns)?;
            senders.push(send);
            let tx = tx.clone();
            let stop = stop.clone();
            let own = h.mac;
            threads.push(std::thread::spawn(move || {
                let mut cap = cap;
                let mut buf = vec![0u8; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    let Ok(len) = cap.read(&mut buf) else {
                        continue;
                    };
                    let f = &buf[..len];
                    // Unicast IPv4 frames this host received (not its own
                    // sends, not IGMP reports to multicast groups).
                    if len < 34 || f[12..14] != [0x08, 0x00] || f[6..12] == own || f[0] & 1 == 1 {
                        continue;
                    }
                    let ip = &f[14..];
                    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(ip.len());
                    let mut ip = ip[..total].to_vec();
                    crate::packet::complete_partial_checksum(&mut ip);
                    if tx.send((n, ip)).is_err() {
                        break;
                    }
                }
            }));
        }
        let mut w = KernelWorld {
            lab,
            router_ns: r,
            senders,
            rx,
            stop,
            threads,
            ruleset,
        };
        // Settle: links up, bridges forwarding.
        std::thread::sleep(Duration::from_millis(50));
        w.drain();
        Ok(w)
    }

    fn drain(&mut self) {
        while self.rx.try_recv().is_ok() {}
    }

    /// `conntrack -L` in the router namespace, as printed.
    pub fn conntrack_text(&self) -> String {
        match self.lab.exec(&self.router_ns, "conntrack", &["-L"], None) {
            Ok(s) => s,
            Err(e) => e.to_string(),
        }
    }
}

impl Drop for KernelWorld {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        // `lab` then deletes the namespaces.
    }
}

impl World for KernelWorld {
    fn send(&mut self, host: usize, packet: Vec<u8>) -> Vec<Seen> {
        self.drain();
        let Some(s) = Summary::parse(&packet) else {
            return Vec::new();
        };
        let to = SockAddr::from(SocketAddrV4::new(s.dst, 0));
        if self.senders[host].send_to(&packet, &to).is_err() {
            return Vec::new();
        }
        let mut seen = Vec::new();
        let mut deadline = Instant::now() + FIRST;
        while let Ok((h, p)) = self
            .rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            seen.push(Seen { host: h, packet: p });
            deadline = Instant::now() + QUIET;
        }
        seen
    }

    fn sleep(&mut self, d: Duration) {
        std::thread::sleep(d);
    }

    fn table(&mut self) -> Result<Vec<CtEntry>, String> {
        let text = self
            .lab
            .exec(&self.router_ns, "conntrack", &["-L"], None)
            .map_err(|e| e.to_string())?;
        Ok(text
            .lines()
            .filter_map(parse_conntrack_line)
            .filter(|e| matches!(e.proto.as_str(), "tcp" | "udp" | "icmp"))
            .collect())
    }

    fn reset(&mut self) {
        let _ = self.lab.exec(&self.router_ns, "conntrack", &["-F"], None);
        self.drain();
    }

    fn explain(&mut self) -> String {
        self.conntrack_text()
    }
}

/// One line of `conntrack -L`, e.g.
/// `udp 17 29 src=192.168.1.10 dst=203.0.113.9 sport=40000 dport=3478 [UNREPLIED] src=203.0.113.9 dst=203.0.113.1 sport=3478 dport=40000 mark=0 use=1`.
pub fn parse_conntrack_line(line: &str) -> Option<CtEntry> {
    let mut it = line.split_whitespace();
    let proto = it.next()?.to_string();
    let _num = it.next()?;
    let timeout: u64 = it.next()?.parse().ok()?;
    let mut state = None;
    let mut tuples: Vec<Vec<(String, String)>> = Vec::new();
    for tok in it {
        if let Some((k, v)) = tok.split_once('=') {
            if k == "src" {
                tuples.push(Vec::new());
            }
            if let Some(t) = tuples.last_mut() {
                t.push((k.to_string(), v.to_string()));
            }
        } else if !tok.starts_with('[') && tuples.is_empty() {
            state = Some(tok.to_string());
        }
    }
    let get =
        |t: &Vec<(String, String)>, k: &str| t.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
    let tuple = |t: &Vec<(String, String)>| -> Option<(Ipv4Addr, u16, Ipv4Addr, u16)> {
        let src: Ipv4Addr = get(t, "src")?.parse().ok()?;
        let dst: Ipv4Addr = get(t, "dst")?.parse().ok()?;
        let (sp, dp) = match (get(t, "sport"), get(t, "dport"), get(t, "id")) {
            (Some(a), Some(b), _) => (a.parse().ok()?, b.parse().ok()?),
            (_, _, Some(id)) => {
                let id: u16 = id.parse().ok()?;
                (id, id)
            }
            _ => (0, 0),
        };
        Some((src, sp, dst, dp))
    };
    Some(CtEntry {
        proto,
        orig: tuple(tuples.first()?)?,
        reply: tuple(tuples.get(1)?)?,
        state,
        timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conntrack_lines_parse() {
        // Lines as conntrack v1.4.7 prints them.
        let u = parse_conntrack_line("udp      17 29 src=192.168.1.10 dst=203.0.113.9 sport=40000 dport=3478 [UNREPLIED] src=203.0.113.9 dst=203.0.113.1 sport=3478 dport=40000 mark=0 use=1").unwrap();
        assert_eq!(u.timeout, 29);
        assert_eq!(u.state, None);
        assert_eq!(u.reply.2, Ipv4Addr::new(203, 0, 113, 1));
        let t = parse_conntrack_line("tcp      6 431999 ESTABLISHED src=192.168.1.10 dst=203.0.113.9 sport=40000 dport=80 src=203.0.113.9 dst=203.0.113.1 sport=80 dport=40000 [ASSURED] mark=0 use=1").unwrap();
        assert_eq!(t.state.as_deref(), Some("ESTABLISHED"));
        let i = parse_conntrack_line("icmp     1 29 src=192.168.1.10 dst=203.0.113.9 type=8 code=0 id=77 src=203.0.113.9 dst=203.0.113.1 type=0 code=0 id=77 mark=0 use=1").unwrap();
        assert_eq!((i.orig.1, i.reply.3), (77, 77));
        assert!(parse_conntrack_line(
            "conntrack v1.4.7 (conntrack-tools): 0 flow entries have been shown."
        )
        .is_none());
    }
}
