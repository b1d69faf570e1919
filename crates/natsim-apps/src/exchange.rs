//! The KB 291615 cast: an endpoint mapper on TCP 135, an Exchange server
//! whose RPC interfaces listen on dynamic (or registry-fixed) ports, and an
//! Outlook-like client that asks the EPM, then connects to the endpoint.
//!
//! An Exchange 5.5 client needs two interfaces: the information store
//! (EMSMDB) for mail and the directory service (NSPI) for the address book
//! and name resolution. Outlook maps and binds the store first, then the
//! directory, each through the endpoint mapper; it is connected only when
//! both are bound. The stages of the directory half are named
//! `directory-ept_map`, `directory-connect` and `directory-bind`.

use crate::dcerpc::{self, Context, Repr, Uuid};
use crate::dns::{Lookup, LookupResult};
use crate::net::Listener;
use hickory_proto::rr::RecordType;
use natsim_nat::Instant;
use natsim_sim::tcp::{ConnectState, Connector};
use natsim_sim::{App, AppCx};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::{Socket, State};
use std::net::Ipv4Addr;

/// An RPC interface registered with the endpoint mapper.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    pub name: String,
    pub interface: Uuid,
    pub major: u16,
    pub minor: u16,
    pub port: u16,
}

/// Exchange 5.5's RPC interfaces on `first_dynamic` and up, or on the
/// ports fixed by the registry (`TCP/IP port` under MSExchangeIS
/// \ParametersSystem for the store, under MSExchangeDS\Parameters for the
/// directory).
pub fn exchange_registrations(
    first_dynamic: u16,
    store_port: Option<u16>,
    directory_port: Option<u16>,
) -> Vec<Registration> {
    vec![
        Registration {
            name: "EMSMDB (information store)".into(),
            interface: dcerpc::EMSMDB,
            major: 0,
            minor: 81,
            port: store_port.unwrap_or(first_dynamic),
        },
        Registration {
            name: "NSPI (directory)".into(),
            interface: dcerpc::NSPI,
            major: 56,
            minor: 0,
            port: directory_port.unwrap_or(first_dynamic.saturating_add(1)),
        },
    ]
}

/// A connection-oriented RPC server conversation: buffers bytes, answers
/// binds and (for the EPM) ept_map requests.
struct RpcConn {
    handle: SocketHandle,
    rx: Vec<u8>,
    tx: Vec<u8>,
}

impl RpcConn {
    fn pump(&mut self, cx: &mut AppCx<'_>) -> Vec<Result<Repr, dcerpc::Error>> {
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
        if s.state() == State::CloseWait {
            s.close();
        }
        dcerpc::take_pdus(&mut self.rx)
    }
    fn local_addr(&self, cx: &mut AppCx<'_>) -> Ipv4Addr {
        match cx.sockets.get_mut::<Socket>(self.handle).local_endpoint() {
            Some(ep) => {
                let smoltcp::wire::IpAddress::Ipv4(a) = ep.addr;
                a
            }
            None => cx.host.addr,
        }
    }
}

/// Serves RPC on one port: answers binds for `interfaces` (any interface
/// if empty) and, when `epm` is set, `ept_map` from the registrations.
pub struct RpcServer {
    pub name: String,
    listener: Listener,
    conns: Vec<RpcConn>,
    pub interfaces: Vec<Uuid>,
    pub epm: Option<Vec<Registration>>,
    pub binds: u32,
    pub maps_answered: u32,
}

impl RpcServer {
    /// An endpoint mapper on TCP 135 knowing `registrations`.
    pub fn endpoint_mapper(registrations: Vec<Registration>) -> RpcServer {
        RpcServer {
            name: "epm".into(),
            listener: Listener::new(135),
            conns: Vec::new(),
            interfaces: vec![dcerpc::EPM],
            epm: Some(registrations),
            binds: 0,
            maps_answered: 0,
        }
    }
    /// A registered interface's listener.
    pub fn service(r: &Registration) -> RpcServer {
        RpcServer {
            name: r.name.clone(),
            listener: Listener::new(r.port),
            conns: Vec::new(),
            interfaces: vec![r.interface],
            epm: None,
            binds: 0,
            maps_answered: 0,
        }
    }
}

impl App for RpcServer {
    fn poll(&mut self, cx: &mut AppCx<'_>) {
        while let Some(h) = self.listener.accept(cx) {
            self.conns.push(RpcConn {
                handle: h,
                rx: Vec::new(),
                tx: Vec::new(),
            });
        }
        for c in &mut self.conns {
            for pdu in c.pump(cx) {
                let reply = match pdu {
                    Ok(Repr::Bind { call_id, contexts }) => {
                        self.binds += 1;
                        let accepted = contexts
                            .iter()
                            .map(|k| {
                                self.interfaces.is_empty() || self.interfaces.contains(&k.interface)
                            })
                            .collect();
                        Some(Repr::BindAck {
                            call_id,
                            secondary_addr: self.listener.port.to_string(),
                            accepted,
                        })
                    }
                    Ok(Repr::Request {
                        call_id,
                        context,
                        opnum: 3,
                        stub,
                    }) if self.epm.is_some() => {
                        let want = dcerpc::ept_map_requested_interface(&stub);
                        let addr = c.local_addr(cx);
                        let towers: Vec<Vec<u8>> = self
                            .epm
                            .iter()
                            .flatten()
                            .filter(|r| Some(r.interface) == want)
                            .map(|r| dcerpc::tower(r.interface, r.major, r.minor, r.port, addr))
                            .collect();
                        self.maps_answered += 1;
                        let what = match towers.first().and_then(|t| dcerpc::parse_tower(t).ok()) {
                            Some(t) => format!("{}:{}", addr, t.port.unwrap_or(0)),
                            None => "EPT_S_NOT_REGISTERED".into(),
                        };
                        cx.log("epm", format!("ept_map answered {what}"));
                        Some(Repr::Response {
                            call_id,
                            context,
                            stub: dcerpc::ept_map_response(&towers),
                        })
                    }
                    Ok(Repr::Request { call_id, .. }) => Some(Repr::Fault {
                        call_id,
                        status: 0x1c01_0002,
                    }), // nca_op_rng_error
                    _ => None,
                };
                if let Some(r) = reply {
                    c.tx.extend_from_slice(&r.emit());
                }
            }
            c.pump(cx);
        }
    }
    natsim_sim::any_impls!();
}

/// Which address Outlook uses for the endpoint the EPM returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AddressMode {
    /// The address it dialled, with the tower's port (RPC runtime filling
    /// only the endpoint of a partially bound handle; Samba, impacket).
    DialledAddress,
    /// The tower's IPv4 floor too.
    TowerAddress,
}

/// How the client names the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Server {
    Addr(Ipv4Addr),
    Name(String),
}

/// What Outlook reports.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum OutlookOutcome {
    /// Both bound: `via` and `endpoint_returned` are the store's,
    /// `directory_via` the directory's.
    Connected {
        via: String,
        endpoint_returned: String,
        directory_via: String,
    },
    Failed {
        stage: String,
        why: String,
        endpoint_returned: Option<String>,
    },
}

#[derive(Debug)]
enum Phase {
    Resolve(Box<Lookup>),
    Epm(Connector),
    EpmTalk {
        handle: SocketHandle,
        rx: Vec<u8>,
        step: u8,
    },
    Endpoint(Connector),
    EndpointTalk {
        handle: SocketHandle,
        rx: Vec<u8>,
    },
    Done,
}

/// The interfaces Outlook binds, in order: (interface, version, what it
/// is, stage-name prefix).
const TARGETS: [(dcerpc::Uuid, u16, u16, &str, &str); 2] = [
    (dcerpc::EMSMDB, 0, 81, "the Exchange store (EMSMDB)", ""),
    (
        dcerpc::NSPI,
        56,
        0,
        "the Exchange directory (NSPI)",
        "directory-",
    ),
];

/// An Outlook-like MAPI client.
pub struct Outlook {
    pub server: Server,
    pub mode: AddressMode,
    /// Index into [`TARGETS`] being bound.
    target: usize,
    store: Option<(String, String)>,
    dialled: Option<Ipv4Addr>,
    endpoint: Option<(Ipv4Addr, u16)>,
    via: Option<(Ipv4Addr, u16)>,
    phase: Option<Phase>,
    pub outcome: Option<OutlookOutcome>,
}

impl Outlook {
    pub fn new(server: Server, mode: AddressMode) -> Outlook {
        Outlook {
            server,
            mode,
            target: 0,
            store: None,
            dialled: None,
            endpoint: None,
            via: None,
            phase: None,
            outcome: None,
        }
    }

    fn fail(&mut self, cx: &mut AppCx<'_>, stage: &str, why: String) {
        // The directory half's stages carry its prefix (except the EPM
        // connect, which is the same port 135 for both).
        let stage = match (stage, TARGETS[self.target].4) {
            ("endpoint-connect", p) if !p.is_empty() => "directory-connect".to_string(),
            ("endpoint-bind", p) if !p.is_empty() => "directory-bind".to_string(),
            (s, p) if s != "epm-connect" && s != "resolve" => format!("{p}{s}"),
            (s, _) => s.to_string(),
        };
        let why = if self.target > 0 {
            format!(
                "the store is bound, but {} is not: {why}",
                TARGETS[self.target].3
            )
        } else {
            why
        };
        cx.log("outlook", format!("failed at {stage}: {why}"));
        // `endpoint_returned` stays the store's, as the EPM gave it.
        let endpoint = match &self.store {
            Some((_, ep)) => Some(ep.clone()),
            None => self.endpoint.map(|(a, p)| format!("{a}:{p}")),
        };
        self.outcome = Some(OutlookOutcome::Failed {
            stage,
            why,
            endpoint_returned: endpoint,
        });
        self.phase = Some(Phase::Done);
    }
}

fn send_pdu(cx: &mut AppCx<'_>, h: SocketHandle, r: &Repr) {
    let _ = cx.sockets.get_mut::<Socket>(h).send_slice(&r.emit());
}

fn recv_pdus(
    cx: &mut AppCx<'_>,
    h: SocketHandle,
    rx: &mut Vec<u8>,
) -> Vec<Result<Repr, dcerpc::Error>> {
    let s = cx.sockets.get_mut::<Socket>(h);
    while s.can_recv() {
        let got = s.recv(|b| (b.len(), b.to_vec())).unwrap_or_default();
        if got.is_empty() {
            break;
        }
        rx.extend_from_slice(&got);
    }
    dcerpc::take_pdus(rx)
}

impl App for Outlook {
    fn poll(&mut self, cx: &mut AppCx<'_>) {
        for _ in 0..6 {
            let phase = match self.phase.take() {
                Some(p) => p,
                None => match &self.server {
                    Server::Addr(a) => {
                        self.dialled = Some(*a);
                        cx.log(
                            "outlook",
                            format!("connecting to the endpoint mapper at {a}:135"),
                        );
                        Phase::Epm(Connector::start(cx, (*a, 135)))
                    }
                    Server::Name(n) => Phase::Resolve(Box::new(Lookup::with_profile(
                        n,
                        RecordType::A,
                        cx.host.dns.clone(),
                        "windows",
                    ))),
                },
            };
            let next = match phase {
                Phase::Done => {
                    self.phase = Some(Phase::Done);
                    return;
                }
                Phase::Resolve(mut l) => match l.poll(cx).cloned() {
                    None => Phase::Resolve(l),
                    Some(LookupResult::Addresses { addrs, .. }) => {
                        self.dialled = Some(addrs[0]);
                        cx.log(
                            "outlook",
                            format!(
                                "{:?} resolves to {}; connecting to its endpoint mapper",
                                self.server, addrs[0]
                            ),
                        );
                        Phase::Epm(Connector::start(cx, (addrs[0], 135)))
                    }
                    Some(r) => {
                        let name = match &self.server {
                            Server::Name(n) => n.clone(),
                            Server::Addr(a) => a.to_string(),
                        };
                        self.fail(cx, "resolve", format!("{name}: {}", r.describe()));
                        return;
                    }
                },
                Phase::Epm(mut c) => match c.poll(cx).clone() {
                    ConnectState::Connecting => Phase::Epm(c),
                    ConnectState::Failed(e) => {
                        let a = self.dialled.unwrap_or(Ipv4Addr::UNSPECIFIED);
                        self.fail(cx, "epm-connect", format!("endpoint mapper {a}:135: {e}"));
                        return;
                    }
                    ConnectState::Connected => {
                        let bind = Repr::Bind {
                            call_id: 1,
                            contexts: vec![Context {
                                id: 0,
                                interface: dcerpc::EPM,
                                major: 3,
                                minor: 0,
                            }],
                        };
                        send_pdu(cx, c.handle, &bind);
                        Phase::EpmTalk {
                            handle: c.handle,
                            rx: Vec::new(),
                            step: 0,
                        }
                    }
                },
                Phase::EpmTalk {
                    handle,
                    mut rx,
                    mut step,
                } => {
                    let mut next = None;
                    for pdu in recv_pdus(cx, handle, &mut rx) {
                        match (step, pdu) {
                            (0, Ok(Repr::BindAck { accepted, .. }))
                                if accepted.first() == Some(&true) =>
                            {
                                let req = Repr::Request {
                                    call_id: 2,
                                    context: 0,
                                    opnum: 3,
                                    stub: {
                                        let (i, ma, mi, _, _) = TARGETS[self.target];
                                        dcerpc::ept_map_request(i, ma, mi)
                                    },
                                };
                                send_pdu(cx, handle, &req);
                                step = 1;
                            }
                            (1, Ok(Repr::Response { stub, .. })) => {
                                let dialled = self.dialled.unwrap_or(Ipv4Addr::UNSPECIFIED);
                                match dcerpc::ept_map_response_towers(&stub) {
                                    Ok((towers, 0)) if !towers.is_empty() => {
                                        let t = towers[0];
                                        let (ta, tp) =
                                            (t.addr.unwrap_or(dialled), t.port.unwrap_or(0));
                                        self.endpoint = Some((ta, tp));
                                        cx.sockets.get_mut::<Socket>(handle).close();
                                        let target = match self.mode {
                                            AddressMode::DialledAddress => (dialled, tp),
                                            AddressMode::TowerAddress => (ta, tp),
                                        };
                                        cx.log("outlook", format!("endpoint mapper returned {ta}:{tp}; connecting to {}:{}", target.0, target.1));
                                        next = Some(Phase::Endpoint(Connector::start(cx, target)));
                                    }
                                    Ok((_, status)) => {
                                        let what = TARGETS[self.target].3;
                                        self.fail(cx, "ept_map", format!("the endpoint mapper at {dialled} has no endpoint for {what} (status 0x{status:08x}, EPT_S_NOT_REGISTERED)"));
                                        return;
                                    }
                                    Err(e) => {
                                        self.fail(
                                            cx,
                                            "ept_map",
                                            format!("unreadable ept_map answer ({e:?})"),
                                        );
                                        return;
                                    }
                                }
                            }
                            (_, Ok(Repr::Fault { status, .. })) => {
                                self.fail(cx, "ept_map", format!("RPC fault 0x{status:08x}"));
                                return;
                            }
                            (_, other) => {
                                self.fail(cx, "ept_map", format!("unexpected answer {other:?}"));
                                return;
                            }
                        }
                    }
                    match next {
                        Some(p) => p,
                        None => {
                            if cx.sockets.get_mut::<Socket>(handle).state() == State::Closed {
                                self.fail(
                                    cx,
                                    "ept_map",
                                    "the endpoint mapper closed the connection".into(),
                                );
                                return;
                            }
                            self.phase = Some(Phase::EpmTalk { handle, rx, step });
                            return;
                        }
                    }
                }
                Phase::Endpoint(mut c) => match c.poll(cx).clone() {
                    ConnectState::Connecting => Phase::Endpoint(c),
                    ConnectState::Failed(e) => {
                        let (a, p) = c.remote;
                        let what = TARGETS[self.target].3;
                        self.fail(cx, "endpoint-connect", format!("{what} at {a}:{p}: {e}"));
                        return;
                    }
                    ConnectState::Connected => {
                        let bind = Repr::Bind {
                            call_id: 3,
                            contexts: vec![{
                                let (interface, major, minor, _, _) = TARGETS[self.target];
                                Context {
                                    id: 0,
                                    interface,
                                    major,
                                    minor,
                                }
                            }],
                        };
                        send_pdu(cx, c.handle, &bind);
                        self.via = Some(c.remote);
                        Phase::EndpointTalk {
                            handle: c.handle,
                            rx: Vec::new(),
                        }
                    }
                },
                Phase::EndpointTalk { handle, mut rx } => {
                    if let Some(pdu) = recv_pdus(cx, handle, &mut rx).into_iter().next() {
                        match pdu {
                            Ok(Repr::BindAck { accepted, .. })
                                if accepted.first() == Some(&true) =>
                            {
                                let via = self
                                    .via
                                    .map(|(a, p)| format!("{a}:{p}"))
                                    .unwrap_or_default();
                                let ep = self
                                    .endpoint
                                    .map(|(a, p)| format!("{a}:{p}"))
                                    .unwrap_or_default();
                                cx.sockets.get_mut::<Socket>(handle).close();
                                let what = TARGETS[self.target].3;
                                cx.log("outlook", format!("bound {what} via {via}"));
                                if self.target == 0 {
                                    // Now the directory, through the EPM again.
                                    self.store = Some((via, ep));
                                    self.target = 1;
                                    self.endpoint = None;
                                    self.via = None;
                                    let a = self.dialled.unwrap_or(Ipv4Addr::UNSPECIFIED);
                                    self.phase = Some(Phase::Epm(Connector::start(cx, (a, 135))));
                                    continue;
                                }
                                let (store_via, store_ep) = self.store.clone().unwrap_or_default();
                                self.outcome = Some(OutlookOutcome::Connected {
                                    via: store_via,
                                    endpoint_returned: store_ep,
                                    directory_via: via,
                                });
                                self.phase = Some(Phase::Done);
                                return;
                            }
                            other => {
                                self.fail(
                                    cx,
                                    "endpoint-bind",
                                    format!("the endpoint refused the store interface ({other:?})"),
                                );
                                return;
                            }
                        }
                    }
                    Phase::EndpointTalk { handle, rx }
                }
            };
            self.phase = Some(next);
        }
    }
    fn poll_at(&self) -> Option<Instant> {
        match &self.phase {
            Some(Phase::Resolve(l)) => l.poll_at(),
            Some(Phase::Epm(c)) | Some(Phase::Endpoint(c)) => c.poll_at(),
            _ => None,
        }
    }
    natsim_sim::any_impls!();
}
