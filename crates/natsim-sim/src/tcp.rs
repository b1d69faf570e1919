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
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::TimedOut { after_ms } => {
                write!(f, "timed out after {:.1} s", *after_ms as f64 / 1000.0)
            }
            ConnectError::Refused => f.write_str("connection refused"),
            ConnectError::Unreachable => f.write_str("unreachable"),
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

/// One outgoing connection attempt.
#[derive(Debug)]
pub struct Connector {
    pub handle: SocketHandle,
    pub remote: (Ipv4Addr, u16),
    pub local_port: u16,
    pub started: Instant,
    deadline: Instant,
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
        let res = sock.connect(cx.iface.context(), (remote.0, remote.1), local_port);
        let handle = cx.sockets.add(sock);
        let state = match res {
            Ok(()) => ConnectState::Connecting,
            Err(_) => ConnectState::Failed(ConnectError::Unreachable),
        };
        Connector {
            handle,
            remote,
            local_port,
            started: cx.now,
            deadline: cx.now + cx.tcp.connect_timeout,
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
            deadline: cx.now + cx.tcp.connect_timeout,
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
                s.abort();
                self.state = ConnectState::Failed(ConnectError::Unreachable);
            }
            State::SynSent if cx.now >= self.deadline => {
                // Give up quietly, as Windows does: no RST for a connection
                // that was never answered.
                s.close();
                let after = cx.now.saturating_duration_since(self.started);
                self.state = ConnectState::Failed(ConnectError::TimedOut {
                    after_ms: after.as_millis() as u64,
                });
            }
            _ => {}
        }
        &self.state
    }

    pub fn state(&self) -> &ConnectState {
        &self.state
    }

    /// When the attempt gives up (for the app's `poll_at`).
    pub fn poll_at(&self) -> Option<Instant> {
        (self.state == ConnectState::Connecting).then_some(self.deadline)
    }

    pub fn elapsed(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.started)
    }
}
