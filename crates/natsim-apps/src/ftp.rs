//! FTP (RFC 959, RFC 2428): a server and a client with active (PORT /
//! EPRT) and passive (PASV / EPSV) data connections — the classic case for
//! an ALG, since the commands carry addresses.

use crate::net::{LineConn, Listener};
use natsim_nat::alg::ftp::parse_line;
use natsim_nat::Instant;
use natsim_sim::tcp::{ConnectState, Connector};
use natsim_sim::{App, AppCx};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::{Socket, State};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

/// The data connection of one transfer.
#[derive(Debug)]
enum Data {
    None,
    /// Active: the server connects to the client (from port 20).
    Active(Ipv4Addr, u16),
    /// Passive: the server listens.
    Passive(SocketHandle),
}

struct FtpSession {
    ctl: LineConn,
    data: Data,
    transfer: Option<(SocketHandle, Vec<u8>, usize, Option<Connector>)>,
}

/// An FTP server with in-memory files.
pub struct FtpServer {
    pub files: BTreeMap<String, Vec<u8>>,
    listener: Listener,
    sessions: Vec<FtpSession>,
    next_passive: u16,
    pub transfers: u32,
}

impl FtpServer {
    pub fn new(files: BTreeMap<String, Vec<u8>>) -> FtpServer {
        FtpServer {
            files,
            listener: Listener::new(21),
            sessions: Vec::new(),
            next_passive: 50000,
            transfers: 0,
        }
    }
}

fn addr_of(ep: Option<smoltcp::wire::IpEndpoint>) -> Option<(Ipv4Addr, u16)> {
    ep.map(|e| {
        let smoltcp::wire::IpAddress::Ipv4(a) = e.addr;
        (a, e.port)
    })
}

impl App for FtpServer {
    fn poll(&mut self, cx: &mut AppCx<'_>) {
        while let Some(h) = self.listener.accept(cx) {
            let mut ctl = LineConn::new(h);
            ctl.send("220 natsim FTP server ready\r\n");
            self.sessions.push(FtpSession {
                ctl,
                data: Data::None,
                transfer: None,
            });
        }
        for s in &mut self.sessions {
            for line in s.ctl.pump(cx) {
                let (verb, arg) = line.split_once(' ').unwrap_or((&line, ""));
                let reply = match verb.to_ascii_uppercase().as_str() {
                    "USER" => "331 Password required\r\n".to_string(),
                    "PASS" => "230 User logged in\r\n".into(),
                    "SYST" => "215 UNIX Type: L8\r\n".into(),
                    "TYPE" => "200 Type set\r\n".into(),
                    "PWD" => "257 \"/\" is the current directory\r\n".into(),
                    "PORT" | "EPRT" => match parse_line(format!("{line}\r\n").as_bytes(), false) {
                        Some(a) => {
                            s.data = Data::Active(a.addr.unwrap_or(Ipv4Addr::UNSPECIFIED), a.port);
                            format!("200 {} command successful\r\n", verb.to_ascii_uppercase())
                        }
                        None => "501 Syntax error in parameters\r\n".into(),
                    },
                    "PASV" | "EPSV" => {
                        let port = self.next_passive;
                        self.next_passive = self.next_passive.wrapping_add(1).max(50000);
                        let mut sock = natsim_sim::tcp::new_socket();
                        let _ = sock.listen(port);
                        s.data = Data::Passive(cx.sockets.add(sock));
                        if verb.eq_ignore_ascii_case("PASV") {
                            let me = s.ctl.local(cx).map_or(cx.host.addr, |(a, _)| a).octets();
                            format!(
                                "227 Entering Passive Mode ({},{},{},{},{},{}).\r\n",
                                me[0],
                                me[1],
                                me[2],
                                me[3],
                                port >> 8,
                                port & 0xff
                            )
                        } else {
                            format!("229 Entering Extended Passive Mode (|||{port}|)\r\n")
                        }
                    }
                    "RETR" => match self.files.get(arg.trim()) {
                        None => "550 No such file\r\n".into(),
                        Some(content) => match std::mem::replace(&mut s.data, Data::None) {
                            Data::None => "425 Use PORT or PASV first\r\n".into(),
                            Data::Active(a, p) => {
                                let mut sock = natsim_sim::tcp::new_socket();
                                let _ = sock.connect(cx.iface.context(), (a, p), 20);
                                let h = cx.sockets.add(sock);
                                let started = Connector::adopt(cx, h, (a, p), 20);
                                s.transfer = Some((h, content.clone(), 0, Some(started)));
                                cx.log(
                                    "ftp-server",
                                    format!(
                                        "RETR {}: connecting to {a}:{p} from port 20",
                                        arg.trim()
                                    ),
                                );
                                "150 Opening BINARY mode data connection\r\n".into()
                            }
                            Data::Passive(h) => {
                                s.transfer = Some((h, content.clone(), 0, None));
                                "150 Opening BINARY mode data connection\r\n".into()
                            }
                        },
                    },
                    "QUIT" => {
                        s.ctl.closing = true;
                        "221 Goodbye\r\n".into()
                    }
                    _ => "502 Command not implemented\r\n".into(),
                };
                s.ctl.send(&reply);
            }
            // Move the file over the data connection.
            if let Some((h, data, sent, conn)) = &mut s.transfer {
                let mut failed = false;
                if let Some(c) = conn {
                    if let ConnectState::Failed(e) = c.poll(cx).clone() {
                        cx.log("ftp-server", format!("data connection failed: {e}"));
                        failed = true;
                    }
                }
                let sock = cx.sockets.get_mut::<Socket>(*h);
                if failed {
                    s.ctl.send("425 Can't open data connection\r\n");
                    s.transfer = None;
                } else if sock.may_send() {
                    while *sent < data.len() && sock.can_send() {
                        match sock.send_slice(&data[*sent..]) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => *sent += n,
                        }
                    }
                    if *sent == data.len() && sock.send_queue() == 0 {
                        sock.close();
                        s.ctl.send("226 Transfer complete\r\n");
                        self.transfers += 1;
                        s.transfer = None;
                    }
                }
            }
            s.ctl.pump(cx);
        }
    }
    fn poll_at(&self) -> Option<Instant> {
        self.sessions
            .iter()
            .filter_map(|s| s.transfer.as_ref()?.3.as_ref()?.poll_at())
            .min()
    }
    natsim_sim::any_impls!();
}

/// How the client asks for the data connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FtpMode {
    /// PORT: the server connects back.
    Active,
    /// EPRT (RFC 2428).
    ActiveExtended,
    /// PASV: the client connects to the address in the 227 reply.
    Passive,
    /// EPSV: the client connects to the control peer's address.
    PassiveExtended,
}

/// What a download got.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum FtpOutcome {
    Downloaded { bytes: usize, data_from: String },
    Failed { stage: String, why: String },
}

#[derive(Debug)]
enum Step {
    Connect(Connector),
    Login {
        step: u8,
    },
    Data {
        listen: Option<SocketHandle>,
    },
    DataConnect(Connector),
    Transfer {
        data: Option<SocketHandle>,
        listen: Option<SocketHandle>,
        got: Vec<u8>,
        done226: bool,
    },
    Done,
}

/// Downloads one file.
pub struct FtpClient {
    pub server: (Ipv4Addr, u16),
    pub file: String,
    pub mode: FtpMode,
    pub timeout: Duration,
    ctl: Option<LineConn>,
    step: Option<Step>,
    started: Option<Instant>,
    data_from: Option<(Ipv4Addr, u16)>,
    pub outcome: Option<FtpOutcome>,
}

impl FtpClient {
    pub fn new(server: Ipv4Addr, file: &str, mode: FtpMode) -> FtpClient {
        FtpClient {
            server: (server, 21),
            file: file.into(),
            mode,
            timeout: Duration::from_secs(60),
            ctl: None,
            step: None,
            started: None,
            data_from: None,
            outcome: None,
        }
    }
    fn fail(&mut self, cx: &mut AppCx<'_>, stage: &str, why: String) {
        cx.log("ftp-client", format!("{stage}: {why}"));
        // A client giving up still says goodbye on its control connection.
        if let Some(c) = self.ctl.as_mut() {
            c.quit("QUIT\r\n");
            c.pump(cx);
        }
        self.outcome = Some(FtpOutcome::Failed {
            stage: stage.into(),
            why,
        });
        self.step = Some(Step::Done);
    }
}

impl App for FtpClient {
    fn poll(&mut self, cx: &mut AppCx<'_>) {
        if self.outcome.is_some() {
            // Read the 221 and close: the control connection ends with FIN.
            if let Some(c) = self.ctl.as_mut() {
                c.pump(cx);
            }
            return;
        }
        let started = *self.started.get_or_insert(cx.now);
        if cx.now >= started + self.timeout {
            self.fail(
                cx,
                "transfer",
                format!("no file after {} s", self.timeout.as_secs()),
            );
            return;
        }
        for _ in 0..4 {
            let step = self
                .step
                .take()
                .unwrap_or_else(|| Step::Connect(Connector::start(cx, self.server)));
            let lines = match &mut self.ctl {
                Some(c) => c.pump(cx),
                None => Vec::new(),
            };
            let next = match step {
                Step::Done => Step::Done,
                Step::Connect(mut c) => match c.poll(cx).clone() {
                    ConnectState::Connecting => Step::Connect(c),
                    ConnectState::Failed(e) => {
                        self.fail(
                            cx,
                            "control-connect",
                            format!("{}:{}: {e}", self.server.0, self.server.1),
                        );
                        return;
                    }
                    ConnectState::Connected => {
                        self.ctl = Some(LineConn::new(c.handle));
                        Step::Login { step: 0 }
                    }
                },
                Step::Login { mut step } => {
                    for l in &lines {
                        let code = &l[..l.len().min(3)];
                        let (expect, send) = match step {
                            0 => ("220", "USER anonymous\r\n".to_string()),
                            1 => ("331", "PASS natsim@\r\n".to_string()),
                            2 => ("230", "TYPE I\r\n".to_string()),
                            _ => ("200", String::new()),
                        };
                        if code != expect {
                            self.fail(cx, "login", l.clone());
                            return;
                        }
                        step += 1;
                        if let Some(c) = self.ctl.as_mut() {
                            c.send(&send);
                        }
                    }
                    if step == 4 {
                        // Ask for the data connection.
                        let (me, _) = self
                            .ctl
                            .as_ref()
                            .and_then(|c| c.local(cx))
                            .unwrap_or((cx.host.addr, 0));
                        let mut listen = None;
                        let cmd = match self.mode {
                            FtpMode::Active | FtpMode::ActiveExtended => {
                                let port = cx.ephemeral_port();
                                let mut s = natsim_sim::tcp::new_socket();
                                let _ = s.listen(port);
                                listen = Some(cx.sockets.add(s));
                                if self.mode == FtpMode::Active {
                                    let o = me.octets();
                                    format!(
                                        "PORT {},{},{},{},{},{}\r\n",
                                        o[0],
                                        o[1],
                                        o[2],
                                        o[3],
                                        port >> 8,
                                        port & 0xff
                                    )
                                } else {
                                    format!("EPRT |1|{me}|{port}|\r\n")
                                }
                            }
                            FtpMode::Passive => "PASV\r\n".into(),
                            FtpMode::PassiveExtended => "EPSV\r\n".into(),
                        };
                        if let Some(c) = self.ctl.as_mut() {
                            c.send(&cmd);
                        }
                        Step::Data { listen }
                    } else {
                        Step::Login { step }
                    }
                }
                Step::Data { listen } => {
                    let mut next = Step::Data { listen };
                    for l in &lines {
                        let code = &l[..l.len().min(3)];
                        match (code, self.mode) {
                            ("200", FtpMode::Active | FtpMode::ActiveExtended) => {
                                if let Some(c) = self.ctl.as_mut() {
                                    c.send(&format!("RETR {}\r\n", self.file));
                                }
                                next = Step::Transfer {
                                    data: None,
                                    listen,
                                    got: Vec::new(),
                                    done226: false,
                                };
                            }
                            ("227" | "229", _) => {
                                let Some(a) = parse_line(format!("{l}\r\n").as_bytes(), true)
                                else {
                                    self.fail(cx, "passive", format!("unparsable reply {l}"));
                                    return;
                                };
                                let addr = a.addr.unwrap_or(self.server.0);
                                cx.log(
                                    "ftp-client",
                                    format!("server said: data at {addr}:{}", a.port),
                                );
                                if let Some(c) = self.ctl.as_mut() {
                                    c.send(&format!("RETR {}\r\n", self.file));
                                }
                                next = Step::DataConnect(Connector::start(cx, (addr, a.port)));
                            }
                            _ => {
                                self.fail(cx, "data-setup", l.clone());
                                return;
                            }
                        }
                    }
                    next
                }
                Step::DataConnect(mut c) => {
                    for l in &lines {
                        if l.starts_with("425") || l.starts_with("550") {
                            self.fail(cx, "transfer", l.clone());
                            return;
                        }
                    }
                    match c.poll(cx).clone() {
                        ConnectState::Connecting => Step::DataConnect(c),
                        ConnectState::Failed(e) => {
                            self.fail(
                                cx,
                                "data-connect",
                                format!("{}:{}: {e}", c.remote.0, c.remote.1),
                            );
                            return;
                        }
                        ConnectState::Connected => {
                            self.data_from = Some(c.remote);
                            Step::Transfer {
                                data: Some(c.handle),
                                listen: None,
                                got: Vec::new(),
                                done226: false,
                            }
                        }
                    }
                }
                Step::Transfer {
                    mut data,
                    listen,
                    mut got,
                    mut done226,
                } => {
                    for l in &lines {
                        if l.starts_with("226") {
                            done226 = true;
                        } else if l.starts_with('4') || l.starts_with('5') {
                            self.fail(cx, "transfer", l.clone());
                            return;
                        }
                    }
                    if data.is_none() {
                        if let Some(h) = listen {
                            let s = cx.sockets.get_mut::<Socket>(h);
                            if !matches!(s.state(), State::Listen | State::SynReceived) {
                                self.data_from = addr_of(s.remote_endpoint());
                                data = Some(h);
                            }
                        }
                    }
                    let mut closed = false;
                    if let Some(h) = data {
                        let s = cx.sockets.get_mut::<Socket>(h);
                        while s.can_recv() {
                            let b = s.recv(|b| (b.len(), b.to_vec())).unwrap_or_default();
                            if b.is_empty() {
                                break;
                            }
                            got.extend_from_slice(&b);
                        }
                        if matches!(
                            s.state(),
                            State::CloseWait | State::Closed | State::TimeWait | State::LastAck
                        ) {
                            s.close();
                            closed = true;
                        }
                    }
                    if closed && done226 {
                        let from = self
                            .data_from
                            .map(|(a, p)| format!("{a}:{p}"))
                            .unwrap_or_default();
                        cx.log(
                            "ftp-client",
                            format!(
                                "downloaded {} ({} bytes) over a data connection from {from}",
                                self.file,
                                got.len()
                            ),
                        );
                        self.outcome = Some(FtpOutcome::Downloaded {
                            bytes: got.len(),
                            data_from: from,
                        });
                        if let Some(c) = self.ctl.as_mut() {
                            c.quit("QUIT\r\n");
                            c.pump(cx);
                        }
                        Step::Done
                    } else {
                        Step::Transfer {
                            data,
                            listen,
                            got,
                            done226,
                        }
                    }
                }
            };
            self.step = Some(next);
        }
    }
    fn poll_at(&self) -> Option<Instant> {
        if self.outcome.is_some() {
            return None;
        }
        let deadline = self.started.map(|s| s + self.timeout);
        let conn = match &self.step {
            Some(Step::Connect(c)) | Some(Step::DataConnect(c)) => c.poll_at(),
            _ => None,
        };
        match (deadline, conn) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
    natsim_sim::any_impls!();
}
