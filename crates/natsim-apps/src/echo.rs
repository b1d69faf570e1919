//! Generic services and clients for any port: an accept-and-echo server
//! that records the source each request came from (what `seen-from`
//! checks), a TCP client that can hold its connection open for a later
//! send, and a UDP request/reply client.
//!
//! Buffers are small (these carry probes, not bulk data), so that ten
//! thousand hosts fit in memory.

use natsim_nat::Instant;
use natsim_sim::tcp::{ConnectError, ConnectState, Connector};
use natsim_sim::{App, AppCx};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::{tcp, udp};
use smoltcp::wire::IpAddress;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

const BUF: usize = 2048;

fn small_tcp_socket() -> tcp::Socket<'static> {
    tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; BUF]),
        tcp::SocketBuffer::new(vec![0; BUF]),
    )
}

/// The largest UDP payload a host sends or takes: its stack's 8 KiB
/// fragmentation buffer less the IP and UDP headers (real stacks go to
/// 65 507; the scenario loader refuses more than this).
pub const UDP_MAX_PAYLOAD: usize = natsim_sim::probe::PING_MAX_SIZE as usize;

/// A UDP socket that holds whole datagrams of up to [`UDP_MAX_PAYLOAD`]
/// bytes each way (smoltcp drops a datagram its buffer cannot hold, and
/// refuses to send one, without a word).
fn udp_socket() -> udp::Socket<'static> {
    udp::Socket::new(
        udp::PacketBuffer::new(
            vec![udp::PacketMetadata::EMPTY; 8],
            vec![0; UDP_MAX_PAYLOAD],
        ),
        udp::PacketBuffer::new(
            vec![udp::PacketMetadata::EMPTY; 8],
            vec![0; UDP_MAX_PAYLOAD],
        ),
    )
}

/// Which transport a service or client uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Udp,
}

/// Accepts on one port and echoes what arrives, recording each peer.
pub struct EchoServer {
    pub transport: Transport,
    pub port: u16,
    listening: Option<SocketHandle>,
    open: Vec<SocketHandle>,
    /// Every source seen, with when: a TCP connection or a UDP datagram.
    pub seen: Vec<(Instant, SocketAddrV4)>,
}

impl EchoServer {
    pub fn new(transport: Transport, port: u16) -> EchoServer {
        EchoServer {
            transport,
            port,
            listening: None,
            open: Vec::new(),
            seen: Vec::new(),
        }
    }

    fn poll_udp(&mut self, cx: &mut AppCx<'_>) {
        let port = self.port;
        let h = *self.listening.get_or_insert_with(|| {
            let mut s = udp_socket();
            let _ = s.bind(port);
            cx.sockets.add(s)
        });
        let s = cx.sockets.get_mut::<udp::Socket>(h);
        let mut buf = vec![0u8; UDP_MAX_PAYLOAD];
        while let Ok((n, meta)) = s.recv_slice(&mut buf) {
            let IpAddress::Ipv4(a) = meta.endpoint.addr;
            self.seen
                .push((cx.now, SocketAddrV4::new(a, meta.endpoint.port)));
            let _ = s.send_slice(&buf[..n], meta.endpoint);
        }
    }

    fn poll_tcp(&mut self, cx: &mut AppCx<'_>) {
        let port = self.port;
        let h = *self.listening.get_or_insert_with(|| {
            let mut s = small_tcp_socket();
            let _ = s.listen(port);
            cx.sockets.add(s)
        });
        // A listener that took a connection becomes an open connection, and
        // a fresh listener takes its place (one smoltcp socket per peer).
        let s = cx.sockets.get_mut::<tcp::Socket>(h);
        if s.state() != tcp::State::Listen {
            if let Some(ep) = s.remote_endpoint() {
                let IpAddress::Ipv4(a) = ep.addr;
                self.seen.push((cx.now, SocketAddrV4::new(a, ep.port)));
            }
            self.open.push(h);
            let mut fresh = small_tcp_socket();
            let _ = fresh.listen(port);
            self.listening = Some(cx.sockets.add(fresh));
        }
        self.open.retain(|&c| {
            let s = cx.sockets.get_mut::<tcp::Socket>(c);
            let mut buf = [0u8; BUF];
            while s.can_recv() && s.can_send() {
                match s.recv_slice(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let _ = s.send_slice(&buf[..n]);
                    }
                }
            }
            // The peer closed: close our side too (FIN), then forget it.
            if s.state() == tcp::State::CloseWait {
                s.close();
            }
            // Closed, or back in LISTEN: smoltcp returns a listener whose
            // handshake was reset to LISTEN, and the fresh listener already
            // holds the port; left open, it would take the next SYN
            // unrecorded.
            if matches!(s.state(), tcp::State::Closed | tcp::State::Listen) {
                cx.sockets.remove(c);
                return false;
            }
            true
        });
    }
}

impl App for EchoServer {
    fn poll(&mut self, cx: &mut AppCx<'_>) {
        match self.transport {
            Transport::Tcp => self.poll_tcp(cx),
            Transport::Udp => self.poll_udp(cx),
        }
    }
    natsim_sim::any_impls!();
}

/// How a client step ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientOutcome {
    Connected {
        after: Duration,
        local_port: u16,
    },
    ConnectFailed(ConnectError),
    Replied {
        from: SocketAddrV4,
        after: Duration,
    },
    NoReply {
        after: Duration,
    },
    /// The connection was reset (RST) while waiting for the reply.
    Reset,
    IcmpError {
        from: Ipv4Addr,
        icmp_type: u8,
        code: u8,
    },
}

/// A TCP client: connects (from `source_port` if given), then either
/// closes with FIN or, when `hold`, stays open for [`TcpClient::send`].
pub struct TcpClient {
    pub remote: (Ipv4Addr, u16),
    pub source_port: Option<u16>,
    pub hold: bool,
    conn: Option<Connector>,
    pending: Vec<u8>,
    sent_at: Option<Instant>,
    deadline: Option<Instant>,
    pub connect: Option<ClientOutcome>,
    /// The outcome of the latest send.
    pub reply: Option<ClientOutcome>,
}

impl TcpClient {
    pub fn new(remote: (Ipv4Addr, u16), source_port: Option<u16>, hold: bool) -> TcpClient {
        TcpClient {
            remote,
            source_port,
            hold,
            conn: None,
            pending: Vec::new(),
            sent_at: None,
            deadline: None,
            connect: None,
            reply: None,
        }
    }

    /// Sends `data` on the held connection and waits up to `wait` for the echo.
    pub fn send(&mut self, data: &[u8], now: Instant, wait: Duration) {
        self.pending = data.to_vec();
        self.sent_at = Some(now);
        self.deadline = Some(now + wait);
        self.reply = None;
    }

    pub fn local_port(&self) -> Option<u16> {
        self.conn.as_ref().map(|c| c.local_port)
    }
}

impl App for TcpClient {
    fn poll(&mut self, cx: &mut AppCx<'_>) {
        let (remote, sp) = (self.remote, self.source_port);
        let conn = self.conn.get_or_insert_with(|| {
            cx.log("telnet", format!("connecting to {}:{}", remote.0, remote.1));
            Connector::start_from(cx, remote, sp)
        });
        if self.connect.is_none() {
            match conn.poll(cx).clone() {
                ConnectState::Connecting => return,
                ConnectState::Failed(e) => {
                    cx.log(
                        "telnet",
                        format!(
                            "could not open connection to {}:{}: {e}",
                            remote.0, remote.1
                        ),
                    );
                    self.connect = Some(ClientOutcome::ConnectFailed(e));
                    return;
                }
                ConnectState::Connected => {
                    cx.log("telnet", format!("connected to {}:{}", remote.0, remote.1));
                    self.connect = Some(ClientOutcome::Connected {
                        after: conn.elapsed(cx.now),
                        local_port: conn.local_port,
                    });
                    if !self.hold {
                        cx.sockets.get_mut::<tcp::Socket>(conn.handle).close();
                        return;
                    }
                }
            }
        }
        let Some(sent_at) = self.sent_at else { return };
        if self.reply.is_some() {
            return;
        }
        let s = cx.sockets.get_mut::<tcp::Socket>(conn.handle);
        if !s.is_open() || s.state() == tcp::State::Closed {
            self.reply = Some(ClientOutcome::Reset);
            return;
        }
        if !self.pending.is_empty() && s.can_send() {
            if let Ok(n) = s.send_slice(&self.pending) {
                self.pending.drain(..n);
            }
        }
        let mut got = false;
        while s.can_recv() {
            let _ = s.recv(|b| {
                got |= !b.is_empty();
                (b.len(), ())
            });
        }
        if got {
            let IpAddress::Ipv4(a) = s
                .remote_endpoint()
                .map_or(IpAddress::Ipv4(remote.0), |e| e.addr);
            self.reply = Some(ClientOutcome::Replied {
                from: SocketAddrV4::new(a, remote.1),
                after: cx.now.saturating_duration_since(sent_at),
            });
        } else if self.deadline.is_some_and(|d| cx.now >= d) {
            self.reply = Some(ClientOutcome::NoReply {
                after: cx.now.saturating_duration_since(sent_at),
            });
        }
    }
    fn poll_at(&self) -> Option<Instant> {
        if self.connect.is_none() {
            self.conn.as_ref().and_then(Connector::poll_at)
        } else if self.reply.is_none() {
            self.deadline
        } else {
            None
        }
    }
    natsim_sim::any_impls!();
}

/// Sends one UDP datagram (from `source_port` if given) and waits for any
/// answer or an ICMP error.
pub struct UdpClient {
    pub remote: (Ipv4Addr, u16),
    pub source_port: Option<u16>,
    pub payload: Vec<u8>,
    pub wait: Duration,
    /// IP TTL of the datagram (None: the host profile's).
    pub ttl: Option<u8>,
    handle: Option<SocketHandle>,
    local_port: u16,
    started: Option<Instant>,
    pub outcome: Option<ClientOutcome>,
}

impl UdpClient {
    pub fn new(
        remote: (Ipv4Addr, u16),
        source_port: Option<u16>,
        payload: &[u8],
        wait: Duration,
    ) -> UdpClient {
        UdpClient {
            remote,
            source_port,
            payload: payload.to_vec(),
            wait,
            ttl: None,
            handle: None,
            local_port: 0,
            started: None,
            outcome: None,
        }
    }
}

impl App for UdpClient {
    fn poll(&mut self, cx: &mut AppCx<'_>) {
        if self.outcome.is_some() {
            return;
        }
        let h = match self.handle {
            Some(h) => h,
            None => {
                self.local_port = self.source_port.unwrap_or_else(|| cx.ephemeral_port());
                let mut s = udp_socket();
                s.set_hop_limit(self.ttl);
                let _ = s.bind(self.local_port);
                if let Err(e) = s.send_slice(&self.payload, self.remote) {
                    cx.log("udp", format!("{} bytes not sent: {e}", self.payload.len()));
                }
                if let Some(why) = cx.host.no_route(self.remote.0) {
                    cx.log("udp", why);
                }
                self.started = Some(cx.now);
                let h = cx.sockets.add(s);
                self.handle = Some(h);
                h
            }
        };
        let started = self.started.unwrap_or(cx.now);
        let after = cx.now.saturating_duration_since(started);
        let s = cx.sockets.get_mut::<udp::Socket>(h);
        if let Ok((_, meta)) = s.recv() {
            let IpAddress::Ipv4(a) = meta.endpoint.addr;
            self.outcome = Some(ClientOutcome::Replied {
                from: SocketAddrV4::new(a, meta.endpoint.port),
                after,
            });
        } else if let Some(e) = cx.icmp_error(17, self.local_port, self.remote, started) {
            self.outcome = Some(ClientOutcome::IcmpError {
                from: e.from,
                icmp_type: e.icmp_type,
                code: e.code,
            });
        } else if after >= self.wait {
            self.outcome = Some(ClientOutcome::NoReply { after });
        }
    }
    fn poll_at(&self) -> Option<Instant> {
        match (self.outcome.is_some(), self.started) {
            (false, Some(s)) => Some(s + self.wait),
            _ => None,
        }
    }
    natsim_sim::any_impls!();
}
