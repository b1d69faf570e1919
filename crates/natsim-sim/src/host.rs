//! A host: a smoltcp interface over a [`SimDevice`], its sockets and apps,
//! and the TCP connect profile that shapes SYN retransmissions.
//!
//! smoltcp retransmits a SYN on its own RTO (1 s, doubling); the host's
//! [`TcpProfile`] replaces that schedule: the first SYN of a connection
//! passes, smoltcp's own retransmissions are swallowed, and the host sends
//! copies of that first SYN at the profile's times (Windows: 3 s and 9 s).
//! [`crate::tcp::Connector`] reports "timed out" at the profile's deadline.
//! The schedule is keyed by the SYN's (ports, destination, ISN), so the
//! copies are byte-identical retransmissions, as a real stack's are.
//!
//! smoltcp does not hand ICMP errors to TCP or UDP sockets. The host reads
//! every received destination-unreachable and time-exceeded message that
//! quotes one of its own TCP/UDP packets or echo requests (RFC 792 quotes
//! the IP header and 8 bytes: both ports, or the echo identifier) into
//! [`IcmpErrors`], which apps see in
//! [`AppCx::icmp_errors`]: a connect answered by "unreachable" fails at
//! once instead of timing out.

use crate::app::{App, AppCx, AppEvent, HostInfo, IcmpError, IcmpErrors, TcpProfile};
use crate::device::SimDevice;
use crate::neighbour::{arp_request, arp_request_target, arp_sender};
use natsim_nat::Instant;
use rand::SeedableRng;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::{tcp, Socket};
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, IpCidr, IpProtocol, Ipv4Packet, TcpPacket,
};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

pub(crate) fn smol_now(t: Instant) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros(t.total_micros() as i64)
}

pub(crate) fn from_smol(t: smoltcp::time::Instant) -> Instant {
    Instant::from_micros(t.total_micros().max(0) as u64)
}

/// A SYN the profile is retransmitting: (src port, dst, dst port, seq).
type SynKey = (u16, Ipv4Addr, u16, u32);

#[derive(Debug)]
struct SynState {
    first: Instant,
    frame: Vec<u8>,
    sent: usize,
}

pub(crate) struct Host {
    pub info: HostInfo,
    pub mac: [u8; 6],
    pub iface: Interface,
    pub device: SimDevice,
    pub sockets: SocketSet<'static>,
    pub apps: Vec<Box<dyn App>>,
    pub rng: rand_chacha::ChaCha8Rng,
    pub log: Vec<AppEvent>,
    pub tcp: TcpProfile,
    syns: BTreeMap<SynKey, SynState>,
    /// First-SYN time per connection still in SYN-SENT.
    first_syn: BTreeMap<(u16, Ipv4Addr, u16), Instant>,
    icmp_errors: IcmpErrors,
    /// Which app opened each socket, so a stopped app's sockets close.
    owner: BTreeMap<SocketHandle, usize>,
    /// Apps that were stopped: no longer polled.
    stopped: BTreeSet<usize>,
    /// Path MTUs learnt from ICMP "fragmentation needed" (RFC 1191).
    pmtu: BTreeMap<Ipv4Addr, u16>,
    /// Neighbours being resolved: (requests sent, next retry).
    arp: BTreeMap<Ipv4Addr, (u8, Instant)>,
    /// Neighbours resolved, kept in the stack's cache as an OS keeps them.
    neighbours: crate::neighbour::Neighbours,
}

impl Host {
    pub fn new(
        info: HostInfo,
        mac: [u8; 6],
        mtu: usize,
        tcp: TcpProfile,
        seed: u64,
        now: Instant,
        extra: &[IpCidr],
    ) -> Host {
        let mut device = SimDevice::new(mtu);
        let mut config = Config::new(EthernetAddress(mac).into());
        config.random_seed = seed;
        let mut iface = Interface::new(config, &mut device, smol_now(now));
        iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::new(info.addr.into(), info.prefix_len));
            for c in extra {
                let _ = a.push(*c);
            }
        });
        if let Some(gw) = info.gateway {
            let _ = iface.routes_mut().add_default_ipv4_route(gw);
        }
        Host {
            info,
            mac,
            iface,
            device,
            sockets: SocketSet::new(Vec::new()),
            apps: Vec::new(),
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_a995),
            log: Vec::new(),
            tcp,
            syns: BTreeMap::new(),
            first_syn: BTreeMap::new(),
            icmp_errors: BTreeMap::new(),
            owner: BTreeMap::new(),
            stopped: BTreeSet::new(),
            pmtu: BTreeMap::new(),
            arp: BTreeMap::new(),
            neighbours: Default::default(),
        }
    }

    /// Runs the stack and the apps at `now`; returns frames to transmit.
    pub fn poll(&mut self, now: Instant) -> Vec<Vec<u8>> {
        let t = smol_now(now);
        if !self.icmp_errors.is_empty() {
            let keep = self.tcp.connect_timeout;
            self.icmp_errors.retain(|_, e| now < e.at + keep);
        }
        for f in &self.device.rx {
            self.neighbours.learn(f, self.info.addr, now);
            if !self.arp.is_empty() {
                if let Some(from) = arp_sender(f) {
                    self.arp.remove(&from);
                }
            }
            if let Some((key, err)) = icmp_error_of(self.info.addr, now, f) {
                // RFC 1191 §6.3: a host lowers its estimate of the path MTU
                // to the next-hop MTU of "fragmentation needed", never
                // below 68 (RFC 791).
                if (err.icmp_type, err.code) == (3, 4) {
                    let o = 14 + usize::from(f[14] & 0x0f) * 4;
                    let mtu = u16::from_be_bytes([f[o + 6], f[o + 7]]).max(68);
                    let e = self.pmtu.entry(key.2).or_insert(mtu);
                    *e = (*e).min(mtu);
                }
                self.icmp_errors.insert(key, err);
            }
        }
        for f in self.neighbours.refresh(now, self.mac, self.info.addr) {
            self.device.rx.push_front(f);
        }
        for _ in 0..4 {
            self.iface.poll(t, &mut self.device, &mut self.sockets);
            let before = self.device.tx.len();
            for (k, app) in self.apps.iter_mut().enumerate() {
                if self.stopped.contains(&k) {
                    continue;
                }
                let mut cx = AppCx {
                    now,
                    iface: &mut self.iface,
                    sockets: &mut self.sockets,
                    host: &self.info,
                    rng: &mut self.rng,
                    log: &mut self.log,
                    tcp: &self.tcp,
                    icmp_errors: &self.icmp_errors,
                    first_syn: &self.first_syn,
                };
                app.poll(&mut cx);
                adopt_sockets(&mut self.sockets, &mut self.owner, k, self.tcp.ttl);
            }
            self.iface.poll(t, &mut self.device, &mut self.sockets);
            if self.device.tx.len() == before && self.device.rx.is_empty() {
                break;
            }
        }
        let mut sent = std::mem::take(&mut self.device.tx);
        crate::icmp_fix::fix_fragmented_icmp(&mut sent);
        sent.retain(|f| self.shape(now, f));
        self.resolve(now, &mut sent);
        if self.tcp.ttl != 64 {
            for f in &mut sent {
                stack_ttl(f, self.tcp.ttl);
            }
        }
        if !self.tcp.df_on_datagrams || !self.tcp.df_on_echo_replies {
            for f in &mut sent {
                clear_df(f, !self.tcp.df_on_datagrams, !self.tcp.df_on_echo_replies);
            }
        }
        if !self.pmtu.is_empty() {
            sent = sent
                .into_iter()
                .flat_map(|f| resegment(f, &self.pmtu))
                .collect();
        }
        if self.syns.is_empty() && self.first_syn.is_empty() {
            return sent;
        }
        // The profile's own retransmissions that are due, for connections
        // still in SYN-SENT (a refused or aborted connect stops them).
        let mut connecting = std::collections::BTreeSet::new();
        for (_, sock) in self.sockets.iter() {
            if let smoltcp::socket::Socket::Tcp(t) = sock {
                if t.state() == smoltcp::socket::tcp::State::SynSent {
                    if let (Some(l), Some(r)) = (t.local_endpoint(), t.remote_endpoint()) {
                        let smoltcp::wire::IpAddress::Ipv4(ra) = r.addr;
                        connecting.insert((l.port, ra, r.port));
                    }
                }
            }
        }
        let profile = &self.tcp.syn_retransmits;
        let give_up = self.tcp.connect_timeout;
        self.syns
            .retain(|k, s| now < s.first + give_up && connecting.contains(&(k.0, k.1, k.2)));
        self.first_syn.retain(|k, _| connecting.contains(k));
        for s in self.syns.values_mut() {
            while s.sent < profile.len() && now >= s.first + profile[s.sent] {
                sent.push(s.frame.clone());
                s.sent += 1;
            }
        }
        sent
    }

    /// The SYN shaper: false drops smoltcp's own SYN retransmission.
    fn shape(&mut self, now: Instant, frame: &[u8]) -> bool {
        let Some((key, syn_only)) = tcp_key(frame) else {
            return true;
        };
        if syn_only {
            if self.syns.contains_key(&key) {
                return false;
            }
            self.first_syn.entry((key.0, key.1, key.2)).or_insert(now);
            self.syns.insert(
                key,
                SynState {
                    first: now,
                    frame: frame.to_vec(),
                    sent: 0,
                },
            );
        } else {
            // Any later segment of the connection ends its SYN schedule.
            if !self.syns.is_empty() {
                self.syns
                    .retain(|k, _| !(k.0 == key.0 && k.1 == key.1 && k.2 == key.2));
            }
        }
        true
    }

    /// ARP per neighbour, as an OS resolves it: smoltcp keeps one global
    /// 1 s rate limit for all its requests, so a second neighbour asked
    /// for within a second of the first waits (and so would its SYN). The
    /// host sends the requests instead: one for each neighbour smoltcp
    /// asks about or a connect waits on, retried a second apart up to 3
    /// times (Linux mcast_solicit = 3, retrans_time 1 s; Windows
    /// ArpRetryCount 3). smoltcp learns the answer from the reply.
    fn resolve(&mut self, now: Instant, sent: &mut Vec<Vec<u8>>) {
        let mut want = Vec::new();
        sent.retain(|f| match arp_request_target(f) {
            Some(t) => {
                want.push(t);
                false
            }
            None => true,
        });
        // smoltcp iterates every socket on each poll too; this pass is as
        // cheap and cannot miss a socket slot reused by another connect.
        {
            for (_, sock) in self.sockets.iter() {
                let Socket::Tcp(t) = sock else { continue };
                if t.state() != tcp::State::SynSent {
                    continue;
                }
                if let (Some(l), Some(r)) = (t.local_endpoint(), t.remote_endpoint()) {
                    let smoltcp::wire::IpAddress::Ipv4(ra) = r.addr;
                    if !self.first_syn.contains_key(&(l.port, ra, r.port)) {
                        // No route: the connect already failed with
                        // "network unreachable" (tcp::Connector).
                        want.extend(self.info.next_hop(ra));
                    }
                }
            }
        }
        for t in want {
            if let std::collections::btree_map::Entry::Vacant(e) = self.arp.entry(t) {
                e.insert((1, now + std::time::Duration::from_secs(1)));
                sent.push(arp_request(self.mac, self.info.addr, t));
            }
        }
        let due: Vec<Ipv4Addr> = self
            .arp
            .iter()
            .filter(|(_, (_, next))| *next <= now)
            .map(|(a, _)| *a)
            .collect();
        for a in due {
            let Some(e) = self.arp.get_mut(&a) else {
                continue;
            };
            if e.0 >= 3 {
                self.arp.remove(&a);
                continue;
            }
            *e = (e.0 + 1, now + std::time::Duration::from_secs(1));
            sent.push(arp_request(self.mac, self.info.addr, a));
        }
    }

    /// When the host next needs to run without input.
    pub fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        let mut at = self
            .iface
            .poll_at(smol_now(now), &self.sockets)
            .map(from_smol);
        let mut consider = |t: Instant| at = Some(at.map_or(t, |a: Instant| a.min(t)));
        for (_, next) in self.arp.values() {
            consider(*next);
        }
        for (k, app) in self.apps.iter().enumerate() {
            if self.stopped.contains(&k) {
                continue;
            }
            if let Some(t) = app.poll_at() {
                consider(t);
            }
        }
        for s in self.syns.values() {
            match self.tcp.syn_retransmits.get(s.sent) {
                Some(d) => consider(s.first + *d),
                None => consider(s.first + self.tcp.connect_timeout),
            }
        }
        // Never schedule in the past: the host has just run.
        at.map(|a| a.max(now))
    }
}

impl Host {
    /// Stops app `k` as its process exiting would: it is no longer
    /// polled, a connect still in SYN-SENT is dropped silently (RFC 9293
    /// §3.10.4; Linux tcp_close_state), listeners close, established
    /// connections close with FIN, UDP sockets unbind.
    pub fn stop_app(&mut self, k: usize) {
        if !self.stopped.insert(k) {
            return;
        }
        for (&h, _) in self.owner.iter().filter(|(_, &o)| o == k) {
            match self.sockets.get_mut::<Socket>(h) {
                Socket::Tcp(t) => match t.state() {
                    tcp::State::SynSent | tcp::State::Listen => crate::tcp::forget(t),
                    _ => t.close(),
                },
                Socket::Udp(u) => u.close(),
                _ => {}
            }
        }
    }
}

/// Records the owner of sockets app `k` just opened (and forgets removed
/// ones), and gives new TCP/UDP sockets the profile's TTL unless the app
/// chose one.
fn adopt_sockets(
    sockets: &mut SocketSet<'static>,
    owner: &mut BTreeMap<SocketHandle, usize>,
    k: usize,
    ttl: u8,
) {
    let mut seen = 0;
    for (h, s) in sockets.iter_mut() {
        seen += 1;
        owner.entry(h).or_insert(k);
        // Every socket, not only new handles: an app may remove a socket
        // and open another in the same slot within one poll.
        match s {
            Socket::Tcp(t) if t.hop_limit().is_none() => t.set_hop_limit(Some(ttl)),
            Socket::Udp(u) if u.hop_limit().is_none() => u.set_hop_limit(Some(ttl)),
            Socket::Icmp(i) if i.hop_limit().is_none() => i.set_hop_limit(Some(ttl)),
            _ => {}
        }
    }
    if seen != owner.len() {
        let live: BTreeSet<SocketHandle> = sockets.iter().map(|(h, _)| h).collect();
        owner.retain(|h, _| live.contains(h));
    }
}

/// smoltcp sets Don't Fragment on every unfragmented packet; a host whose
/// OS does not (Windows for UDP and echo requests: `datagrams`; Linux for
/// its echo replies: `echo_replies`) sends those without it, so a router on
/// a smaller link fragments them instead of refusing them.
fn clear_df(frame: &mut [u8], datagrams: bool, echo_replies: bool) {
    if frame.len() < 14 + 20 || frame[12..14] != [0x08, 0x00] || frame[20] & 0x40 == 0 {
        return;
    }
    let l4 = 14 + usize::from(frame[14] & 0x0f) * 4;
    let clear = match (frame[23], frame.get(l4)) {
        (17, _) | (1, Some(8)) => datagrams,
        (1, Some(0)) => echo_replies,
        _ => false,
    };
    if !clear {
        return;
    }
    let old = u16::from_be_bytes([frame[20], frame[21]]);
    frame[20] &= !0x40;
    let new = u16::from_be_bytes([frame[20], frame[21]]);
    let c = u16::from_be_bytes([frame[24], frame[25]]);
    let c = natsim_nat::checksum::update16(c, old, new);
    frame[24..26].copy_from_slice(&c.to_be_bytes());
}

/// smoltcp's interface answers pings and closed ports itself with TTL
/// 64; a host whose OS default differs (Windows: 128) sends those with
/// its own. Only ICMP echo replies and RSTs carry TTL 64 from the stack.
fn stack_ttl(frame: &mut [u8], ttl: u8) {
    if frame.len() < 14 + 20 || frame[12..14] != [0x08, 0x00] || frame[22] != 64 {
        return;
    }
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    let l4 = 14 + ihl;
    // A later fragment has no header to tell by; every socket carries the
    // profile's TTL, so one at 64 is the rest of an interface-made reply.
    let later_fragment = u16::from_be_bytes([frame[20], frame[21]]) & 0x1fff != 0;
    let interface_made = later_fragment
        || match frame[23] {
            1 => frame.get(l4) == Some(&0) || frame.get(l4) == Some(&3),
            6 => frame.get(l4 + 13).is_some_and(|f| f & 0x04 != 0),
            _ => false,
        };
    if !interface_made {
        return;
    }
    let old = u16::from_be_bytes([frame[22], frame[23]]);
    frame[22] = ttl;
    let new = u16::from_be_bytes([frame[22], frame[23]]);
    let c = u16::from_be_bytes([frame[24], frame[25]]);
    let c = natsim_nat::checksum::update16(c, old, new);
    frame[24..26].copy_from_slice(&c.to_be_bytes());
}

/// smoltcp keeps one MSS per socket and ignores ICMP, so the path MTU a
/// host learnt is applied here: a TCP segment too big for the path to
/// its destination goes out as several that fit, as the stack would send
/// after lowering its MSS (Linux tcp_v4_mtu_reduced). smoltcp's own
/// retransmission of a segment that met "fragmentation needed" is thus
/// the first to fit.
fn resegment(frame: Vec<u8>, pmtu: &BTreeMap<Ipv4Addr, u16>) -> Vec<Vec<u8>> {
    if frame.len() < 14 + 40 || frame[12..14] != [0x08, 0x00] || frame[23] != 6 {
        return vec![frame];
    }
    let dst = Ipv4Addr::new(frame[30], frame[31], frame[32], frame[33]);
    let Some(&mtu) = pmtu.get(&dst) else {
        return vec![frame];
    };
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
    let t = 14 + ihl;
    let doff = usize::from(frame[t + 12] >> 4) * 4;
    let end = (14 + total).min(frame.len());
    let data = t + doff;
    if total <= usize::from(mtu) || data >= end || usize::from(mtu) <= ihl + doff + 8 {
        return vec![frame];
    }
    let room = usize::from(mtu) - ihl - doff;
    let seq = u32::from_be_bytes([frame[t + 4], frame[t + 5], frame[t + 6], frame[t + 7]]);
    let id = u16::from_be_bytes([frame[18], frame[19]]);
    let src = Ipv4Addr::new(frame[26], frame[27], frame[28], frame[29]);
    let mut out = Vec::new();
    let mut off = 0;
    let payload = &frame[data..end];
    for (k, chunk) in payload.chunks(room).enumerate() {
        let last = off + chunk.len() == payload.len();
        let mut f = Vec::with_capacity(data + chunk.len());
        f.extend_from_slice(&frame[..data]);
        f.extend_from_slice(chunk);
        let len = (ihl + doff + chunk.len()) as u16;
        f[16..18].copy_from_slice(&len.to_be_bytes());
        f[18..20].copy_from_slice(&id.wrapping_add(k as u16).to_be_bytes());
        f[24..26].copy_from_slice(&[0, 0]);
        let c = natsim_nat::checksum::checksum(&f[14..t]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f[t + 4..t + 8].copy_from_slice(&seq.wrapping_add(off as u32).to_be_bytes());
        if !last {
            // FIN and PSH belong to the last piece.
            f[t + 13] &= !0x09;
        }
        f[t + 16..t + 18].copy_from_slice(&[0, 0]);
        let ph = natsim_nat::checksum::pseudo_header_sum(src, dst, 6, (f.len() - t) as u16);
        let c = !(natsim_nat::checksum::sum(ph, &f[t..]) as u16);
        f[t + 16..t + 18].copy_from_slice(&c.to_be_bytes());
        out.push(f);
        off += chunk.len();
    }
    out
}

/// (src port, dst addr, dst port, seq) of a TCP frame and whether it is a
/// bare SYN.
fn tcp_key(frame: &[u8]) -> Option<(SynKey, bool)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if ip.next_header() != IpProtocol::Tcp {
        return None;
    }
    let t = TcpPacket::new_checked(ip.payload()).ok()?;
    let syn_only = t.syn() && !t.ack();
    Some((
        (
            t.src_port(),
            ip.dst_addr(),
            t.dst_port(),
            if syn_only { t.seq_number().0 as u32 } else { 0 },
        ),
        syn_only,
    ))
}

/// An ICMP destination-unreachable or time-exceeded frame addressed to
/// `me`, quoting a TCP or UDP packet `me` sent: the quoted flow's key and
/// the error. Cheap rejection first: this runs on every received frame.
fn icmp_error_of(
    me: Ipv4Addr,
    now: Instant,
    frame: &[u8],
) -> Option<((u8, u16, Ipv4Addr, u16), IcmpError)> {
    // Ethernet II, IPv4, protocol ICMP.
    if frame.len() < 14 + 20 + 8 + 20 + 4 || frame[12..14] != [0x08, 0x00] || frame[23] != 1 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(&frame[14..]).ok()?;
    if ip.dst_addr() != me {
        return None;
    }
    let icmp = ip.payload();
    let (icmp_type, code) = (*icmp.first()?, *icmp.get(1)?);
    // RFC 792: type 3 destination unreachable, type 11 time exceeded.
    if icmp_type != 3 && icmp_type != 11 {
        return None;
    }
    let quoted = icmp.get(8..)?;
    let ihl = usize::from(quoted.first()? & 0x0f) * 4;
    if ihl < 20 || quoted.len() < ihl + 4 {
        return None;
    }
    let proto = quoted[9];
    let src = Ipv4Addr::new(quoted[12], quoted[13], quoted[14], quoted[15]);
    if src != me {
        return None;
    }
    let dst = Ipv4Addr::new(quoted[16], quoted[17], quoted[18], quoted[19]);
    let (sport, dport) = match proto {
        6 | 17 => (
            u16::from_be_bytes([quoted[ihl], quoted[ihl + 1]]),
            u16::from_be_bytes([quoted[ihl + 2], quoted[ihl + 3]]),
        ),
        // A quoted echo request (RFC 792 type 8): keyed by its identifier,
        // since smoltcp hands ICMP errors to no echo socket.
        1 if quoted[ihl] == 8 && quoted.len() >= ihl + 6 => {
            (u16::from_be_bytes([quoted[ihl + 4], quoted[ihl + 5]]), 0)
        }
        _ => return None,
    };
    Some((
        (proto, sport, dst, dport),
        IcmpError {
            at: now,
            from: ip.src_addr(),
            icmp_type,
            code,
        },
    ))
}
