//! Generic probe apps: a telnet-style TCP connect, ping, a UDP request,
//! and a bulk TCP sender/receiver pair. The protocol models proper live in
//! natsim-apps.

use crate::app::{App, AppCx};
use crate::tcp::{ConnectError, ConnectState, Connector};
use natsim_nat::Instant;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::{icmp, tcp, udp};
use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr, IpAddress};
use std::net::Ipv4Addr;
use std::time::Duration;

/// Implements [`App::as_any`] and [`App::as_any_mut`] inside an `impl App`.
#[macro_export]
macro_rules! any_impls {
    () => {
        fn as_any(&self) -> &dyn ::std::any::Any {
            self
        }
        fn as_any_mut(&mut self) -> &mut dyn ::std::any::Any {
            self
        }
    };
}

/// The outcome of a probe.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum ProbeOutcome {
    Connected {
        after_ms: u64,
        local_port: u16,
    },
    Failed {
        error: ConnectError,
    },
    Replied {
        after_ms: u64,
        from: Ipv4Addr,
    },
    NoReply {
        after_ms: u64,
    },
    /// An ICMP error came back instead (e.g. port or host unreachable).
    IcmpError {
        from: Ipv4Addr,
        icmp_type: u8,
        code: u8,
    },
}

/// What Windows' ping and telnet print for an ICMP error (RFC 792 types
/// and codes; RFC 1812 code 13).
pub fn icmp_error_text(icmp_type: u8, code: u8) -> &'static str {
    match (icmp_type, code) {
        (11, 0) => "TTL expired in transit",
        (11, _) => "fragment reassembly time exceeded",
        (3, 0) => "destination net unreachable",
        (3, 1) => "destination host unreachable",
        (3, 2) => "destination protocol unreachable",
        (3, 3) => "destination port unreachable",
        (3, 4) => "packet needs to be fragmented but DF set",
        (3, 13) => "communication administratively prohibited",
        (3, _) => "destination unreachable",
        _ => "ICMP error",
    }
}

/// `telnet host port`: connect, report, close.
pub struct TcpProbe {
    pub target: (Ipv4Addr, u16),
    conn: Option<Connector>,
    pub outcome: Option<ProbeOutcome>,
}

impl TcpProbe {
    pub fn new(target: (Ipv4Addr, u16)) -> TcpProbe {
        TcpProbe {
            target,
            conn: None,
            outcome: None,
        }
    }
}

impl App for TcpProbe {
    fn poll(&mut self, cx: &mut AppCx<'_>) {
        if self.outcome.is_some() {
            return;
        }
        let conn = self.conn.get_or_insert_with(|| {
            let c = Connector::start(cx, self.target);
            cx.log.push(crate::app::AppEvent {
                at: cx.now,
                host: cx.host.name.clone(),
                app: "telnet",
                text: format!("connecting to {}:{}", self.target.0, self.target.1),
            });
            c
        });
        match conn.poll(cx).clone() {
            ConnectState::Connecting => {}
            ConnectState::Connected => {
                let after_ms = conn.elapsed(cx.now).as_millis() as u64;
                let local_port = conn.local_port;
                cx.sockets.get_mut::<tcp::Socket>(conn.handle).close();
                cx.log(
                    "telnet",
                    format!("connected to {}:{}", self.target.0, self.target.1),
                );
                self.outcome = Some(ProbeOutcome::Connected {
                    after_ms,
                    local_port,
                });
            }
            ConnectState::Failed(error) => {
                cx.log(
                    "telnet",
                    format!(
                        "could not open connection to {}:{}: {error}",
                        self.target.0, self.target.1
                    ),
                );
                self.outcome = Some(ProbeOutcome::Failed { error });
            }
        }
    }
    fn poll_at(&self) -> Option<Instant> {
        self.conn.as_ref().and_then(Connector::poll_at)
    }
    crate::any_impls!();
}

/// Echo data bytes of a `ping` that does not say (Windows' default).
pub const PING_DEFAULT_SIZE: u16 = 32;
/// The most echo data a host sends: its stack's 8 KiB fragmentation
/// buffer less the IP and ICMP headers.
pub const PING_MAX_SIZE: u16 = 8192 - 28;

/// `ping host`: echo requests once a second until one answers or `count`
/// went unanswered (each waits `timeout`).
pub struct Ping {
    pub target: Ipv4Addr,
    /// Echo data bytes (Windows' `ping -l`), filled as Windows fills them.
    pub size: u16,
    pub count: u16,
    pub timeout: Duration,
    /// IP TTL of the requests (None: the host profile's).
    pub ttl: Option<u8>,
    ident: u16,
    handle: Option<SocketHandle>,
    sent: u16,
    started: Option<Instant>,
    next_at: Option<Instant>,
    pub outcome: Option<ProbeOutcome>,
}

impl Ping {
    pub fn new(target: Ipv4Addr) -> Ping {
        Ping {
            target,
            size: PING_DEFAULT_SIZE,
            count: 4,
            timeout: Duration::from_secs(1),
            ttl: None,
            ident: 0x4e53,
            handle: None,
            sent: 0,
            started: None,
            next_at: None,
            outcome: None,
        }
    }
}

impl Ping {
    /// Sends `n` bytes of echo data (at most [`PING_MAX_SIZE`]).
    pub fn size(mut self, n: u16) -> Ping {
        self.size = n.min(PING_MAX_SIZE);
        self
    }
    /// Sends the requests with IP TTL `ttl` (`ping -i` / `ping -t`).
    pub fn ttl(mut self, ttl: Option<u8>) -> Ping {
        self.ttl = ttl;
        self
    }
}

impl App for Ping {
    fn poll(&mut self, cx: &mut AppCx<'_>) {
        if self.outcome.is_some() {
            return;
        }
        let bytes = 2048.max(2 * (usize::from(self.size) + 8));
        let handle = *self.handle.get_or_insert_with(|| {
            let rx = icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 8], vec![0; bytes]);
            let tx = icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 8], vec![0; bytes]);
            let mut s = icmp::Socket::new(rx, tx);
            s.set_hop_limit(self.ttl);
            let _ = s.bind(icmp::Endpoint::Ident(0x4e53));
            cx.sockets.add(s)
        });
        if self.started.is_none() {
            if let Some(why) = cx.host.no_route(self.target) {
                cx.log("ping", why);
            }
        }
        let started = *self.started.get_or_insert(cx.now);
        let s = cx.sockets.get_mut::<icmp::Socket>(handle);
        while let Ok((data, from)) = s.recv() {
            let IpAddress::Ipv4(from) = from;
            let Ok(pkt) = Icmpv4Packet::new_checked(data) else {
                continue;
            };
            if let Ok(Icmpv4Repr::EchoReply { ident, .. }) =
                Icmpv4Repr::parse(&pkt, &Default::default())
            {
                if ident == self.ident {
                    let after_ms = cx.now.saturating_duration_since(started).as_millis() as u64;
                    self.outcome = Some(ProbeOutcome::Replied { after_ms, from });
                }
            }
        }
        // Errors quoting our echo request ("TTL expired in transit",
        // "Destination host unreachable") arrive through the host's ICMP
        // error table, not the echo socket.
        if self.outcome.is_none() {
            if let Some(e) = cx.icmp_error(1, self.ident, (self.target, 0), started) {
                self.outcome = Some(ProbeOutcome::IcmpError {
                    from: e.from,
                    icmp_type: e.icmp_type,
                    code: e.code,
                });
            }
        }
        if let Some(o) = &self.outcome {
            let text = match o {
                ProbeOutcome::Replied { from, after_ms } => {
                    format!("reply from {from} after {after_ms} ms")
                }
                ProbeOutcome::IcmpError {
                    from,
                    icmp_type,
                    code,
                } => format!("reply from {from}: {}", icmp_error_text(*icmp_type, *code)),
                other => format!("{other:?}"),
            };
            cx.log("ping", text);
            return;
        }
        if self.next_at.is_none_or(|t| cx.now >= t) {
            if self.sent == self.count {
                let after_ms = cx.now.saturating_duration_since(started).as_millis() as u64;
                cx.log(
                    "ping",
                    format!("{} requests to {} timed out", self.count, self.target),
                );
                self.outcome = Some(ProbeOutcome::NoReply { after_ms });
                return;
            }
            let s = cx.sockets.get_mut::<icmp::Socket>(handle);
            // Windows' ping fills its data with the alphabet up to `w`.
            let data: Vec<u8> = (b'a'..=b'w').cycle().take(usize::from(self.size)).collect();
            let repr = Icmpv4Repr::EchoRequest {
                ident: self.ident,
                seq_no: self.sent,
                data: &data,
            };
            if let Ok(buf) = s.send(repr.buffer_len(), IpAddress::Ipv4(self.target)) {
                let mut pkt = Icmpv4Packet::new_unchecked(buf);
                repr.emit(&mut pkt, &smoltcp::phy::ChecksumCapabilities::default());
                self.sent += 1;
                self.next_at = Some(cx.now + self.timeout);
            }
        }
    }
    fn poll_at(&self) -> Option<Instant> {
        if self.outcome.is_some() {
            None
        } else {
            self.next_at
        }
    }
    crate::any_impls!();
}

/// A UDP request/response probe: sends `payload` from `local_port` and
/// waits `timeout` for any answer.
pub struct UdpProbe {
    pub target: (Ipv4Addr, u16),
    pub local_port: u16,
    pub payload: Vec<u8>,
    pub timeout: Duration,
    /// IP TTL of the request (None: smoltcp's default, 64).
    pub ttl: Option<u8>,
    handle: Option<SocketHandle>,
    deadline: Option<Instant>,
    started: Option<Instant>,
    pub answers: Vec<(Ipv4Addr, u16, Vec<u8>)>,
    pub outcome: Option<ProbeOutcome>,
}

impl UdpProbe {
    pub fn new(target: (Ipv4Addr, u16), local_port: u16, payload: &[u8]) -> UdpProbe {
        UdpProbe {
            target,
            local_port,
            payload: payload.to_vec(),
            timeout: Duration::from_secs(2),
            ttl: None,
            handle: None,
            deadline: None,
            started: None,
            answers: Vec::new(),
            outcome: None,
        }
    }
    /// Sends the request with this IP TTL (a traceroute-style probe).
    pub fn ttl(mut self, ttl: u8) -> UdpProbe {
        self.ttl = Some(ttl);
        self
    }
}

impl App for UdpProbe {
    fn poll(&mut self, cx: &mut AppCx<'_>) {
        if self.outcome.is_some() {
            return;
        }
        let handle = match self.handle {
            Some(h) => h,
            None => {
                let rx = udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 8], vec![0; 4096]);
                let tx = udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 8], vec![0; 4096]);
                let mut s = udp::Socket::new(rx, tx);
                let _ = s.bind(self.local_port);
                s.set_hop_limit(self.ttl);
                let _ = s.send_slice(&self.payload, (self.target.0, self.target.1));
                self.started = Some(cx.now);
                self.deadline = Some(cx.now + self.timeout);
                let h = cx.sockets.add(s);
                self.handle = Some(h);
                h
            }
        };
        let s = cx.sockets.get_mut::<udp::Socket>(handle);
        while let Ok((data, meta)) = s.recv() {
            let IpAddress::Ipv4(a) = meta.endpoint.addr;
            self.answers.push((a, meta.endpoint.port, data.to_vec()));
        }
        let started = self.started.unwrap_or(cx.now);
        let after_ms = cx.now.saturating_duration_since(started).as_millis() as u64;
        if let Some(&(from, _, _)) = self.answers.first() {
            self.outcome = Some(ProbeOutcome::Replied { after_ms, from });
        } else if let Some(e) = cx.icmp_error(17, self.local_port, self.target, started) {
            self.outcome = Some(ProbeOutcome::IcmpError {
                from: e.from,
                icmp_type: e.icmp_type,
                code: e.code,
            });
        } else if self.deadline.is_some_and(|d| cx.now >= d) {
            self.outcome = Some(ProbeOutcome::NoReply { after_ms });
        }
    }
    fn poll_at(&self) -> Option<Instant> {
        if self.outcome.is_some() {
            None
        } else {
            self.deadline
        }
    }
    crate::any_impls!();
}

/// Answers every UDP datagram on `port` with `prefix` + what it saw as the
/// sender ("I saw you as a.b.c.d:p"), like a STUN binding response.
pub struct UdpEcho {
    pub port: u16,
    handle: Option<SocketHandle>,
    pub seen: Vec<(Ipv4Addr, u16)>,
}

impl UdpEcho {
    pub fn new(port: u16) -> UdpEcho {
        UdpEcho {
            port,
            handle: None,
            seen: Vec::new(),
        }
    }
}

impl App for UdpEcho {
    fn poll(&mut self, cx: &mut AppCx<'_>) {
        let handle = *self.handle.get_or_insert_with(|| {
            let rx = udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 16], vec![0; 8192]);
            let tx = udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 16], vec![0; 8192]);
            let mut s = udp::Socket::new(rx, tx);
            let _ = s.bind(self.port);
            cx.sockets.add(s)
        });
        let s = cx.sockets.get_mut::<udp::Socket>(handle);
        while let Ok((_, meta)) = s.recv() {
            let IpAddress::Ipv4(a) = meta.endpoint.addr;
            self.seen.push((a, meta.endpoint.port));
            let reply = format!("seen {}:{}", a, meta.endpoint.port);
            let _ = s.send_slice(reply.as_bytes(), meta.endpoint);
        }
    }
    crate::any_impls!();
}

/// Accepts TCP connections on `port` and counts/hashes what arrives.
pub struct TcpSink {
    pub port: u16,
    handle: Option<SocketHandle>,
    pub received: Vec<u8>,
    pub peers: Vec<(Ipv4Addr, u16)>,
}

impl TcpSink {
    pub fn new(port: u16) -> TcpSink {
        TcpSink {
            port,
            handle: None,
            received: Vec::new(),
            peers: Vec::new(),
        }
    }
}

impl App for TcpSink {
    fn poll(&mut self, cx: &mut AppCx<'_>) {
        let handle = *self.handle.get_or_insert_with(|| {
            let mut s = crate::tcp::new_socket();
            let _ = s.listen(self.port);
            cx.sockets.add(s)
        });
        let s = cx.sockets.get_mut::<tcp::Socket>(handle);
        if let Some(ep) = s.remote_endpoint() {
            let IpAddress::Ipv4(a) = ep.addr;
            if self.peers.last() != Some(&(a, ep.port)) {
                self.peers.push((a, ep.port));
            }
        }
        while s.can_recv() {
            let _ = s.recv(|buf| {
                self.received.extend_from_slice(buf);
                (buf.len(), ())
            });
        }
        if !s.is_open() || s.state() == tcp::State::CloseWait {
            s.close();
            if s.state() == tcp::State::Closed {
                s.abort();
                let _ = s.listen(self.port);
            }
        }
    }
    crate::any_impls!();
}

/// Connects and sends `data`, then closes.
pub struct TcpSender {
    pub target: (Ipv4Addr, u16),
    pub data: Vec<u8>,
    sent: usize,
    conn: Option<Connector>,
    pub outcome: Option<ProbeOutcome>,
    pub finished: Option<Instant>,
}

impl TcpSender {
    pub fn new(target: (Ipv4Addr, u16), data: Vec<u8>) -> TcpSender {
        TcpSender {
            target,
            data,
            sent: 0,
            conn: None,
            outcome: None,
            finished: None,
        }
    }
}

impl App for TcpSender {
    fn poll(&mut self, cx: &mut AppCx<'_>) {
        let conn = self
            .conn
            .get_or_insert_with(|| Connector::start(cx, self.target));
        match conn.poll(cx).clone() {
            ConnectState::Connecting => {}
            ConnectState::Failed(error) => {
                if self.outcome.is_none() {
                    self.outcome = Some(ProbeOutcome::Failed { error });
                }
            }
            ConnectState::Connected => {
                if self.outcome.is_none() {
                    self.outcome = Some(ProbeOutcome::Connected {
                        after_ms: conn.elapsed(cx.now).as_millis() as u64,
                        local_port: conn.local_port,
                    });
                }
                let s = cx.sockets.get_mut::<tcp::Socket>(conn.handle);
                while self.sent < self.data.len() && s.can_send() {
                    match s.send_slice(&self.data[self.sent..]) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => self.sent += n,
                    }
                }
                if self.sent == self.data.len() && self.finished.is_none() && s.send_queue() == 0 {
                    s.close();
                    self.finished = Some(cx.now);
                }
            }
        }
    }
    fn poll_at(&self) -> Option<Instant> {
        self.conn.as_ref().and_then(Connector::poll_at)
    }
    crate::any_impls!();
}

/// A UDP endpoint that sends what it is told to and records everything it
/// receives (no automatic replies): the client side of RFC 5780-style
/// NAT behaviour tests.
pub struct UdpPeer {
    pub port: u16,
    handle: Option<SocketHandle>,
    queue: Vec<((Ipv4Addr, u16), Vec<u8>)>,
    pub received: Vec<(Ipv4Addr, u16, Vec<u8>)>,
}

impl UdpPeer {
    pub fn new(port: u16) -> UdpPeer {
        UdpPeer {
            port,
            handle: None,
            queue: Vec::new(),
            received: Vec::new(),
        }
    }
    /// Queues a datagram (sent at the next poll).
    pub fn send(&mut self, to: (Ipv4Addr, u16), payload: &[u8]) {
        self.queue.push((to, payload.to_vec()));
    }
}

impl App for UdpPeer {
    fn poll(&mut self, cx: &mut AppCx<'_>) {
        let handle = *self.handle.get_or_insert_with(|| {
            let rx = udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 16], vec![0; 8192]);
            let tx = udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 16], vec![0; 8192]);
            let mut s = udp::Socket::new(rx, tx);
            let _ = s.bind(self.port);
            cx.sockets.add(s)
        });
        let s = cx.sockets.get_mut::<udp::Socket>(handle);
        for (to, p) in self.queue.drain(..) {
            let _ = s.send_slice(&p, to);
        }
        while let Ok((data, meta)) = s.recv() {
            let IpAddress::Ipv4(a) = meta.endpoint.addr;
            self.received.push((a, meta.endpoint.port, data.to_vec()));
        }
    }
    crate::any_impls!();
}
