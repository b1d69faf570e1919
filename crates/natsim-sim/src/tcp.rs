//! Opening TCP connections with the host's connect profile, so every app
//! fails a blocked connect the same way (Windows: "timed out" after 21 s).

use crate::app::AppCx;
use natsim_nat::Instant;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::{Socket, SocketBuffer, State};
use std::net::Ipv4Addr;
use std::time::Duration;

/// Why a connect failed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "error", rename_all = "kebab-case")]
pub enum ConnectError {
    /// No answer to any SYN by the profile's deadline.
    TimedOut { after_ms: u64 },
    /// The peer (or a NAT on its behalf) answered with RST.
    Refused,
    /// The socket could not be opened (bad address), or an ICMP
    /// destination unreachable answered a SYN (no route, host or port
    /// unreachable, administratively prohibited).
    Unreachable,
    /// The host has no route to the destination: connect() fails at once
    /// and nothing is sent (ENETUNREACH, WSAENETUNREACH).
    NetworkUnreachable,
    /// The next hop never answered ARP, so no SYN ever left
    /// (EHOSTUNREACH, WSAEHOSTUNREACH).
    HostUnreachable { after_ms: u64 },
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::TimedOut { after_ms } => {
                write!(f, "timed out after {:.1} s", *after_ms as f64 / 1000.0)
            }
            ConnectError::Refused => f.write_str("connection refused"),
            ConnectError::Unreachable => f.write_str("unreachable"),
            ConnectError::NetworkUnreachable => f.write_str("network unreachable (no route)"),
            ConnectError::HostUnreachable { after_ms } => write!(
                f,
                "host unreachable (no ARP answer after {:.1} s)",
                *after_ms as f64 / 1000.0
            ),
        }
    }
}

/// Where a connect stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectState {
    Connecting,
    Connected,
    Failed(ConnectError),
}

/// Socket buffer sizes for app connections.
pub const BUFFER: usize = 64 * 1024;

/// A new TCP socket with `BUFFER`-sized buffers.
pub fn new_socket() -> Socket<'static> {
    Socket::new(
        SocketBuffer::new(vec![0; BUFFER]),
        SocketBuffer::new(vec![0; BUFFER]),
    )
}

/// Drops a connection without a word on the wire: what a stack does
/// when it gives up in SYN-SENT ("delete the TCB", RFC 9293 §3.10.4;
/// Linux tcp_close_state: SYN-SENT -> CLOSE with no segment; tcp_done on
/// a hard ICMP error). smoltcp's own `close()` and `abort()` both leave
/// the socket CLOSED with its endpoints, so its next dispatch sends a
/// RST; a fresh socket in the same slot has no endpoints and sends none.
pub fn forget(s: &mut Socket<'static>) {
    *s = new_socket();
}

/// Whether `host` has a route to `dst`: its own subnet or a gateway.
pub fn has_route(host: &crate::app::HostInfo, dst: Ipv4Addr) -> bool {
    let on_link = natsim_nat::Prefix::new(host.addr, host.prefix_len).contains(dst);
    on_link || host.gateway.is_some() || dst == host.addr || dst.is_loopback()
}

/// One outgoing connection attempt.
#[derive(Debug)]
pub struct Connector {
    pub handle: SocketHandle,
    pub remote: (Ipv4Addr, u16),
    pub local_port: u16,
    pub started: Instant,
    /// When the first SYN left the host (the deadline runs from it).
    first_syn: Option<Instant>,
    connect_timeout: Duration,
    arp_timeout: Option<Duration>,
    state: ConnectState,
    was_established: bool,
}

impl Connector {
    /// Opens a socket and sends the first SYN.
    pub fn start(cx: &mut AppCx<'_>, remote: (Ipv4Addr, u16)) -> Connector {
        Connector::start_from(cx, remote, None)
    }

    /// As [`Connector::start`], from `local_port` if given (a client that
    /// binds its source port), else from an ephemeral port.
    pub fn start_from(
        cx: &mut AppCx<'_>,
        remote: (Ipv4Addr, u16),
        local_port: Option<u16>,
    ) -> Connector {
        let local_port = local_port.unwrap_or_else(|| cx.ephemeral_port());
        let mut sock = new_socket();
        let state = if !has_route(cx.host, remote.0) {
            // connect() fails before anything is sent.
            ConnectState::Failed(ConnectError::NetworkUnreachable)
        } else {
            match sock.connect(cx.iface.context(), (remote.0, remote.1), local_port) {
                Ok(()) => ConnectState::Connecting,
                Err(_) => ConnectState::Failed(ConnectError::Unreachable),
            }
        };
        let handle = cx.sockets.add(sock);
        Connector {
            handle,
            remote,
            local_port,
            started: cx.now,
            first_syn: None,
            connect_timeout: cx.tcp.connect_timeout,
            arp_timeout: cx.tcp.arp_timeout,
            state,
            was_established: false,
        }
    }

    /// Tracks a socket the app connected itself (e.g. from a fixed local
    /// port, as an FTP server's active data connection from port 20).
    pub fn adopt(
        cx: &mut AppCx<'_>,
        handle: SocketHandle,
        remote: (Ipv4Addr, u16),
        local_port: u16,
    ) -> Connector {
        Connector {
            handle,
            remote,
            local_port,
            started: cx.now,
            first_syn: None,
            connect_timeout: cx.tcp.connect_timeout,
            arp_timeout: cx.tcp.arp_timeout,
            state: ConnectState::Connecting,
            was_established: false,
        }
    }

    /// Advances the attempt; call from the app's `poll`.
    pub fn poll(&mut self, cx: &mut AppCx<'_>) -> &ConnectState {
        if self.state != ConnectState::Connecting {
            return &self.state;
        }
        let icmp_unreachable = cx
            .icmp_error(6, self.local_port, self.remote, self.started)
            .is_some_and(|e| e.icmp_type == 3);
        if self.first_syn.is_none() {
            self.first_syn = cx
                .first_syn
                .get(&(self.local_port, self.remote.0, self.remote.1))
                .copied();
        }
        let s = cx.sockets.get_mut::<Socket>(self.handle);
        match s.state() {
            State::Established | State::CloseWait => {
                self.was_established = true;
                self.state = ConnectState::Connected;
            }
            State::Closed | State::TimeWait if !self.was_established => {
                self.state = ConnectState::Failed(ConnectError::Refused);
            }
            State::SynSent if icmp_unreachable => {
                forget(s);
                self.state = ConnectState::Failed(ConnectError::Unreachable);
            }
            State::SynSent if cx.now >= self.deadline() => {
                // Give up quietly: no RST for a connection that was never
                // answered (RFC 9293 §3.10.4, as Windows and Linux do).
                forget(s);
                self.state = ConnectState::Failed(match self.first_syn {
                    Some(t) => ConnectError::TimedOut {
                        after_ms: cx.now.saturating_duration_since(t).as_millis() as u64,
                    },
                    None if self.arp_timeout.is_some() => ConnectError::HostUnreachable {
                        after_ms: self.elapsed(cx.now).as_millis() as u64,
                    },
                    None => ConnectError::TimedOut {
                        after_ms: self.elapsed(cx.now).as_millis() as u64,
                    },
                });
            }
            _ => {}
        }
        &self.state
    }

    pub fn state(&self) -> &ConnectState {
        &self.state
    }

    /// When the attempt gives up: the profile's timeout after the first
    /// SYN, or if no SYN could leave yet (ARP), its ARP timeout, or
    /// without one the connect timeout from the call.
    fn deadline(&self) -> Instant {
        match (self.first_syn, self.arp_timeout) {
            (Some(t), _) => t + self.connect_timeout,
            (None, Some(arp)) => self.started + arp,
            (None, None) => self.started + self.connect_timeout,
        }
    }

    /// When the attempt gives up (for the app's `poll_at`).
    pub fn poll_at(&self) -> Option<Instant> {
        (self.state == ConnectState::Connecting).then(|| self.deadline())
    }

    pub fn elapsed(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.started)
    }
}
