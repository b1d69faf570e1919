//! Socket plumbing shared by the protocol models: a listener that always
//! keeps one socket listening (smoltcp sockets serve one connection each),
//! and a line-oriented connection buffer for text protocols.

use natsim_sim::AppCx;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::{Socket, State};
use smoltcp::wire::IpAddress;
use std::net::Ipv4Addr;

/// Accepts any number of connections on a port, as a listen backlog does:
/// a socket that took a SYN is set aside at once and a fresh one listens,
/// so SYNs arriving together are each answered, not refused.
#[derive(Debug, Default)]
pub struct Listener {
    pub port: u16,
    listening: Option<SocketHandle>,
    /// Sockets in SYN-RECEIVED, waiting for the handshake's ACK.
    pending: Vec<SocketHandle>,
}

impl Listener {
    pub fn new(port: u16) -> Listener {
        Listener {
            port,
            listening: None,
            pending: Vec::new(),
        }
    }

    fn listen(&mut self, cx: &mut AppCx<'_>) -> SocketHandle {
        let mut s = natsim_sim::tcp::new_socket();
        let _ = s.listen(self.port);
        let h = cx.sockets.add(s);
        self.listening = Some(h);
        h
    }

    /// Returns a newly connected socket, if one arrived.
    pub fn accept(&mut self, cx: &mut AppCx<'_>) -> Option<SocketHandle> {
        let h = match self.listening {
            Some(h) => h,
            None => self.listen(cx),
        };
        if cx.sockets.get_mut::<Socket>(h).state() != State::Listen {
            self.pending.push(h);
            self.listen(cx);
        }
        let mut got = None;
        let mut k = 0;
        while k < self.pending.len() {
            let p = self.pending[k];
            match cx.sockets.get_mut::<Socket>(p).state() {
                State::SynReceived => k += 1,
                // smoltcp puts a listener whose handshake was reset back in
                // LISTEN; another socket listens already.
                State::Listen | State::Closed => {
                    cx.sockets.remove(p);
                    self.pending.remove(k);
                }
                _ if got.is_none() => {
                    got = Some(p);
                    self.pending.remove(k);
                }
                _ => k += 1,
            }
        }
        got
    }
}

/// A text-protocol connection: CRLF lines in, bytes out.
///
/// Closing follows what SMTP and FTP implementations do (RFC 5321
/// §4.1.1.10, RFC 959 QUIT): a server sets `closing` with its last reply
/// and closes (FIN) as soon as that reply is handed to TCP; a client sends
/// its last command with [`LineConn::quit`] and closes once the reply to
/// it is read. Either side closes when the peer has closed and nothing is
/// left to send. The app keeps pumping until [`LineConn::closed`].
#[derive(Debug)]
pub struct LineConn {
    pub handle: SocketHandle,
    rx: Vec<u8>,
    tx: Vec<u8>,
    pub closing: bool,
    /// The client's final command went out; close on its reply.
    quit_sent: bool,
}

impl LineConn {
    pub fn new(handle: SocketHandle) -> LineConn {
        LineConn {
            handle,
            rx: Vec::new(),
            tx: Vec::new(),
            closing: false,
            quit_sent: false,
        }
    }

    /// Sends a client's last command (QUIT); the connection closes with a
    /// FIN once its reply has been read (or the server closed first).
    pub fn quit(&mut self, text: &str) {
        self.send(text);
        self.quit_sent = true;
    }

    pub fn send(&mut self, text: &str) {
        self.tx.extend_from_slice(text.as_bytes());
    }

    pub fn send_bytes(&mut self, b: &[u8]) {
        self.tx.extend_from_slice(b);
    }

    /// Moves bytes both ways; returns complete lines received (without CRLF).
    pub fn pump(&mut self, cx: &mut AppCx<'_>) -> Vec<String> {
        let s = cx.sockets.get_mut::<Socket>(self.handle);
        while s.can_recv() {
            let got = s.recv(|b| (b.len(), b.to_vec())).unwrap_or_default();
            if got.is_empty() {
                break;
            }
            self.rx.extend_from_slice(&got);
        }
        if !self.tx.is_empty() && s.can_send() {
            if let Ok(n) = s.send_slice(&self.tx) {
                self.tx.drain(..n);
            }
        }
        let mut lines = Vec::new();
        while let Some(i) = self.rx.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.rx.drain(..=i).collect();
            let text = String::from_utf8_lossy(&line)
                .trim_end_matches(['\r', '\n'])
                .to_string();
            lines.push(text);
        }
        // A final reply line (not "250-" continuation) answers the QUIT.
        if self.quit_sent && lines.iter().any(|l| l.as_bytes().get(3) != Some(&b'-')) {
            self.closing = true;
        }
        let peer_closed = s.state() == State::CloseWait;
        // close() keeps what is queued and sends the FIN after it.
        if self.tx.is_empty() && (self.closing || peer_closed) {
            s.close();
        }
        lines
    }

    /// Both sides have closed (or the connection is gone): nothing more
    /// will happen on it.
    pub fn closed(&self, cx: &mut AppCx<'_>) -> bool {
        matches!(self.state(cx), State::Closed | State::TimeWait)
    }

    /// Raw received bytes not yet consumed as lines.
    pub fn take_raw(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.rx)
    }

    pub fn state(&self, cx: &mut AppCx<'_>) -> State {
        cx.sockets.get_mut::<Socket>(self.handle).state()
    }

    pub fn remote(&self, cx: &mut AppCx<'_>) -> Option<(Ipv4Addr, u16)> {
        let ep = cx
            .sockets
            .get_mut::<Socket>(self.handle)
            .remote_endpoint()?;
        let IpAddress::Ipv4(a) = ep.addr;
        Some((a, ep.port))
    }

    pub fn local(&self, cx: &mut AppCx<'_>) -> Option<(Ipv4Addr, u16)> {
        let ep = cx.sockets.get_mut::<Socket>(self.handle).local_endpoint()?;
        let IpAddress::Ipv4(a) = ep.addr;
        Some((a, ep.port))
    }

    /// The peer closed or the connection is gone.
    pub fn finished(&self, cx: &mut AppCx<'_>) -> bool {
        matches!(
            self.state(cx),
            State::Closed | State::TimeWait | State::CloseWait | State::LastAck | State::Closing
        )
    }
}
