//! Stub resolvers, one profile per client: which servers are asked, in
//! what order, how long each is waited for, and which answers move the
//! resolver on to the next server.
//!
//! * [`ResolverProfile::windows`] — the Windows DNS client used by the
//!   IMS and by Outlook: the first server alone for 1 s, again for 2 s,
//!   then every server at once for 2, 4 and 8 s (the single-adapter
//!   schedule of the Windows 2000 DNS client).
//! * [`ResolverProfile::nslookup`] — Windows `nslookup`: only its default
//!   server (the first in the search order, or the one named), `timeout=2`
//!   and `retry=1`, so two tries of 2 s; it never falls back to another
//!   server.
//! * [`ResolverProfile::bind`] — the BSD/glibc stub resolver of an Internet
//!   MTA (`resolv/res_send.c`): `RES_TIMEOUT` 5 s, `RES_DFLRETRY` 2 tries,
//!   servers in order within a try; from the second try on, the timeout is
//!   `(5 << try) / nscount`.
//!
//! In every profile an answer (addresses, NXDOMAIN, NODATA) is final: a
//! server that says the name does not exist is believed, so a wrong server
//! first in the order gives wrong answers (Q182339 step 6). SERVFAIL and
//! REFUSED move on to the next server, as res_send.c does; the server is
//! not asked again in this lookup.

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use natsim_nat::Instant;
use natsim_sim::{App, AppCx};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::udp;
use smoltcp::wire::IpAddress;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

/// A DNS name in our canonical form: lower case, no trailing dot.
pub(crate) fn norm(n: &str) -> String {
    n.trim_end_matches('.').to_ascii_lowercase()
}

/// What a lookup found.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum LookupResult {
    /// A records (addresses) or MX records (preference, exchange), sorted.
    Addresses {
        server: Ipv4Addr,
        addrs: Vec<Ipv4Addr>,
    },
    Exchanges {
        server: Ipv4Addr,
        mx: Vec<(u16, String)>,
    },
    NxDomain {
        server: Ipv4Addr,
    },
    /// The name exists but has no record of this type (RFC 2308 NODATA).
    NoData {
        server: Ipv4Addr,
    },
    /// Every server that answered refused (or failed); the last one named.
    Refused {
        server: Ipv4Addr,
    },
    ServFail {
        server: Ipv4Addr,
    },
    /// No server answered.
    Timeout,
}

impl LookupResult {
    pub fn describe(&self) -> String {
        match self {
            LookupResult::Addresses { addrs, .. } => addrs
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            LookupResult::Exchanges { mx, .. } => mx
                .iter()
                .map(|(p, e)| format!("{e} (preference {p})"))
                .collect::<Vec<_>>()
                .join(", "),
            LookupResult::NxDomain { server } => format!("NXDOMAIN from {server}"),
            LookupResult::NoData { server } => {
                format!("NODATA from {server}: the name exists but has no record of that type")
            }
            LookupResult::Refused { server } => format!("refused by {server}"),
            LookupResult::ServFail { server } => format!("SERVFAIL from {server}"),
            LookupResult::Timeout => "no DNS server answered".into(),
        }
    }
    /// An answer the resolver believes (as opposed to a server failure).
    fn is_final(&self) -> bool {
        !matches!(
            self,
            LookupResult::Refused { .. } | LookupResult::ServFail { .. }
        )
    }
}

/// Which servers a round of queries goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Targets {
    /// The server at this index of the search order.
    One(usize),
    /// Every server at once.
    All,
}

/// A client's resolver behaviour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolverProfile {
    pub name: &'static str,
    /// Rounds in order: whom to ask, and how long to wait for an answer.
    pub rounds: Vec<(Targets, Duration)>,
}

impl ResolverProfile {
    /// The Windows DNS client (IMS, Outlook).
    pub fn windows(_servers: usize) -> ResolverProfile {
        let s = Duration::from_secs;
        ResolverProfile {
            name: "windows",
            rounds: vec![
                (Targets::One(0), s(1)),
                (Targets::One(0), s(2)),
                (Targets::All, s(2)),
                (Targets::All, s(4)),
                (Targets::All, s(8)),
            ],
        }
    }
    /// Windows `nslookup` against its default server.
    pub fn nslookup(_servers: usize) -> ResolverProfile {
        let s = Duration::from_secs(2);
        ResolverProfile {
            name: "nslookup",
            rounds: vec![(Targets::One(0), s), (Targets::One(0), s)],
        }
    }
    /// The BSD/glibc stub resolver (res_send.c) with `servers` servers.
    pub fn bind(servers: usize) -> ResolverProfile {
        let n = servers.max(1) as u64;
        let mut rounds = Vec::new();
        for attempt in 0..2u32 {
            let secs = if attempt == 0 {
                5
            } else {
                ((5u64 << attempt) / n).max(1)
            };
            for k in 0..servers.max(1) {
                rounds.push((Targets::One(k), Duration::from_secs(secs)));
            }
        }
        ResolverProfile {
            name: "bind",
            rounds,
        }
    }
    /// The profile named `name` for `servers` servers.
    pub fn by_name(name: &str, servers: usize) -> Option<ResolverProfile> {
        match name {
            "windows" => Some(Self::windows(servers)),
            "nslookup" => Some(Self::nslookup(servers)),
            "bind" => Some(Self::bind(servers)),
            _ => None,
        }
    }
}

/// A stub resolver query, driven from an app's `poll`.
#[derive(Debug)]
pub struct Lookup {
    pub name: String,
    pub rtype: RecordType,
    servers: Vec<Ipv4Addr>,
    profile: Option<ResolverProfile>,
    profile_name: &'static str,
    round: usize,
    /// Servers that answered SERVFAIL or REFUSED: not asked again.
    failed: BTreeSet<Ipv4Addr>,
    last_failure: Option<LookupResult>,
    /// Servers of the current round not yet heard from.
    outstanding: BTreeSet<Ipv4Addr>,
    id: u16,
    handle: Option<SocketHandle>,
    port: u16,
    /// The servers' port (53; another with `nslookup -port=`).
    server_port: u16,
    deadline: Option<Instant>,
    /// (when, server) of every query sent, for reports.
    pub sent: Vec<(Instant, Ipv4Addr)>,
    pub result: Option<LookupResult>,
}

impl Lookup {
    /// A lookup with the BSD resolver (the default of a plain MTA).
    pub fn new(name: &str, rtype: RecordType, servers: Vec<Ipv4Addr>) -> Lookup {
        Lookup::with_profile(name, rtype, servers, "bind")
    }

    /// A lookup with the named profile (`windows`, `nslookup`, `bind`);
    /// the schedule is built once the server list is known.
    pub fn with_profile(
        name: &str,
        rtype: RecordType,
        servers: Vec<Ipv4Addr>,
        profile: &'static str,
    ) -> Lookup {
        Lookup {
            name: norm(name),
            rtype,
            servers,
            profile: None,
            profile_name: profile,
            round: 0,
            failed: BTreeSet::new(),
            last_failure: None,
            outstanding: BTreeSet::new(),
            id: 0,
            handle: None,
            port: 0,
            server_port: 53,
            deadline: None,
            sent: Vec::new(),
            result: None,
        }
    }

    pub fn servers(&self) -> &[Ipv4Addr] {
        &self.servers
    }

    pub(crate) fn set_servers(&mut self, servers: Vec<Ipv4Addr>) {
        if self.deadline.is_none() {
            self.servers = servers;
        }
    }

    pub fn poll_at(&self) -> Option<Instant> {
        if self.result.is_some() {
            None
        } else {
            self.deadline
        }
    }

    fn finish_unanswered(&mut self) {
        self.result = Some(self.last_failure.clone().unwrap_or(LookupResult::Timeout));
    }

    /// Sends the next round that has a server left to ask.
    fn send_round(&mut self, cx: &mut AppCx<'_>) {
        let profile = self
            .profile
            .get_or_insert_with(|| {
                ResolverProfile::by_name(self.profile_name, self.servers.len())
                    .unwrap_or_else(|| ResolverProfile::bind(self.servers.len()))
            })
            .clone();
        let Ok(name) = Name::from_ascii(format!("{}.", self.name)) else {
            self.result = Some(LookupResult::NxDomain {
                server: Ipv4Addr::UNSPECIFIED,
            });
            return;
        };
        while let Some(&(targets, wait)) = profile.rounds.get(self.round) {
            self.round += 1;
            let to: Vec<Ipv4Addr> = match targets {
                Targets::One(k) => self.servers.get(k).copied().into_iter().collect(),
                Targets::All => self.servers.clone(),
            }
            .into_iter()
            .filter(|s| !self.failed.contains(s))
            .collect();
            if to.is_empty() {
                continue;
            }
            let h = match self.handle {
                Some(h) => h,
                None => {
                    use rand::Rng;
                    self.port = cx.ephemeral_port();
                    self.id = cx.rng.gen();
                    let h = cx.sockets.add(udp_socket(self.port));
                    self.handle = Some(h);
                    h
                }
            };
            let mut m = Message::new(self.id, MessageType::Query, OpCode::Query);
            m.metadata.recursion_desired = true;
            m.add_query(Query::query(name.clone(), self.rtype));
            if let Ok(bytes) = m.to_vec() {
                self.outstanding = to.iter().copied().collect();
                for server in to {
                    let _ = cx
                        .sockets
                        .get_mut::<udp::Socket>(h)
                        .send_slice(&bytes, (server, self.server_port));
                    self.sent.push((cx.now, server));
                }
            }
            self.deadline = Some(cx.now + wait);
            return;
        }
        self.finish_unanswered();
    }

    /// Advances the lookup; returns the result once known.
    pub fn poll(&mut self, cx: &mut AppCx<'_>) -> Option<&LookupResult> {
        if self.result.is_some() {
            return self.result.as_ref();
        }
        if self.deadline.is_none() {
            if self.servers.is_empty() {
                self.result = Some(LookupResult::Timeout);
                return self.result.as_ref();
            }
            self.send_round(cx);
            return self.result.as_ref();
        }
        if let Some(h) = self.handle {
            let mut failures = Vec::new();
            let s = cx.sockets.get_mut::<udp::Socket>(h);
            while let Ok((data, meta)) = s.recv() {
                let IpAddress::Ipv4(from) = meta.endpoint.addr;
                let Ok(m) = Message::from_vec(data) else {
                    continue;
                };
                // Only an answer from the address and port asked counts
                // (RFC 5452 §9.1).
                if m.metadata.id != self.id
                    || m.metadata.message_type != MessageType::Response
                    || !self.servers.contains(&from)
                    || meta.endpoint.port != self.server_port
                {
                    continue;
                }
                let r = interpret(&m, from, self.rtype);
                if r.is_final() {
                    self.result = Some(r);
                    break;
                }
                failures.push((from, r));
            }
            for (from, r) in failures {
                self.failed.insert(from);
                self.last_failure = Some(r);
            }
        }
        if self.result.is_none() {
            // Every server of this round failed outright: move on now,
            // not at the deadline (res_send.c's `goto next_ns`).
            self.outstanding.retain(|s| !self.failed.contains(s));
            if self.outstanding.is_empty() || self.deadline.is_some_and(|d| cx.now >= d) {
                self.send_round(cx);
            }
        }
        if self.result.is_some() {
            if let Some(h) = self.handle.take() {
                cx.sockets.remove(h);
            }
        }
        self.result.as_ref()
    }
}

fn udp_socket(port: u16) -> udp::Socket<'static> {
    let rx = udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 16], vec![0; 16384]);
    let tx = udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 16], vec![0; 16384]);
    let mut s = udp::Socket::new(rx, tx);
    let _ = s.bind(port);
    s
}

/// What a response means to a stub resolver.
pub(crate) fn interpret(m: &Message, server: Ipv4Addr, rtype: RecordType) -> LookupResult {
    match m.metadata.response_code {
        ResponseCode::NXDomain => return LookupResult::NxDomain { server },
        ResponseCode::NoError => {}
        ResponseCode::ServFail => return LookupResult::ServFail { server },
        _ => return LookupResult::Refused { server },
    }
    let mut addrs = Vec::new();
    let mut mx = Vec::new();
    for r in &m.answers {
        match &r.data {
            RData::A(a) if rtype == RecordType::A => addrs.push(a.0),
            RData::MX(x) if rtype == RecordType::MX => {
                mx.push((x.preference, norm(&x.exchange.to_ascii())))
            }
            _ => {}
        }
    }
    if rtype == RecordType::MX {
        if mx.is_empty() {
            return LookupResult::NoData { server };
        }
        mx.sort();
        LookupResult::Exchanges { server, mx }
    } else {
        if addrs.is_empty() {
            return LookupResult::NoData { server };
        }
        LookupResult::Addresses { server, addrs }
    }
}

/// `nslookup`: one lookup as an app, for scenario steps.
pub struct DnsLookup {
    pub lookup: Lookup,
    started: bool,
}

impl DnsLookup {
    /// `servers` empty: the host's search order (nslookup then uses only
    /// the first, its default server).
    pub fn new(name: &str, rtype: RecordType, servers: Vec<Ipv4Addr>) -> DnsLookup {
        DnsLookup {
            lookup: Lookup::with_profile(name, rtype, servers, "nslookup"),
            started: false,
        }
    }
    /// Asks the servers on `port` instead of 53 (`nslookup -port=`).
    pub fn on_port(mut self, port: u16) -> DnsLookup {
        self.lookup.server_port = port;
        self
    }
    pub fn result(&self) -> Option<&LookupResult> {
        self.lookup.result.as_ref()
    }
}

impl App for DnsLookup {
    fn poll(&mut self, cx: &mut AppCx<'_>) {
        if self.lookup.servers.is_empty() {
            self.lookup.set_servers(cx.host.dns.clone());
        }
        let first = !self.started;
        self.started = true;
        let had = self.lookup.result.is_some();
        if let Some(r) = self.lookup.poll(cx).cloned() {
            if !had || first {
                let text = format!(
                    "{} {:?}: {}",
                    self.lookup.name,
                    self.lookup.rtype,
                    r.describe()
                );
                cx.log("nslookup", text);
            }
        }
    }
    fn poll_at(&self) -> Option<Instant> {
        self.lookup.poll_at()
    }
    natsim_sim::any_impls!();
}
