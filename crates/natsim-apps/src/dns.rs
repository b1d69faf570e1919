//! DNS: an authoritative server (UDP 53) with A and MX records per zone, and
//! a stub resolver. The wire format is hickory-proto's.
//!
//! The resolver tries servers in the configured order and accepts the first
//! answer it gets, NXDOMAIN included; only silence moves it to the next
//! server (so a wrong server order gives wrong answers, Q182339).

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, MX};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use natsim_nat::Instant;
use natsim_sim::{App, AppCx};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::udp;
use smoltcp::wire::IpAddress;
use std::net::Ipv4Addr;
use std::time::Duration;

/// A record the server holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ZoneRecord {
    A {
        name: String,
        addr: Ipv4Addr,
    },
    Mx {
        name: String,
        preference: u16,
        exchange: String,
    },
}

/// An authoritative zone.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Zone {
    pub origin: String,
    pub records: Vec<ZoneRecord>,
}

fn norm(n: &str) -> String {
    n.trim_end_matches('.').to_ascii_lowercase()
}

impl Zone {
    pub fn new(origin: &str) -> Zone {
        Zone {
            origin: norm(origin),
            records: Vec::new(),
        }
    }
    pub fn a(mut self, name: &str, addr: Ipv4Addr) -> Self {
        self.records.push(ZoneRecord::A {
            name: norm(name),
            addr,
        });
        self
    }
    pub fn mx(mut self, name: &str, preference: u16, exchange: &str) -> Self {
        self.records.push(ZoneRecord::Mx {
            name: norm(name),
            preference,
            exchange: norm(exchange),
        });
        self
    }
    fn contains(&self, name: &str) -> bool {
        name == self.origin || name.ends_with(&format!(".{}", self.origin))
    }
}

/// The server's answer to one query, as data.
pub fn answer(zones: &[Zone], request: &[u8]) -> Option<Vec<u8>> {
    let req = Message::from_vec(request).ok()?;
    if req.metadata.message_type != MessageType::Query {
        return None;
    }
    let mut resp = Message::response(req.metadata.id, OpCode::Query);
    resp.metadata.recursion_desired = req.metadata.recursion_desired;
    let Some(q) = req.queries.first().cloned() else {
        resp.metadata.response_code = ResponseCode::FormErr;
        return resp.to_vec().ok();
    };
    resp.add_query(q.clone());
    let qname = norm(&q.name().to_ascii());
    let Some(zone) = zones
        .iter()
        .filter(|z| z.contains(&qname))
        .max_by_key(|z| z.origin.len())
    else {
        resp.metadata.response_code = ResponseCode::Refused;
        return resp.to_vec().ok();
    };
    resp.metadata.authoritative = true;
    let mut exists = false;
    for r in &zone.records {
        match r {
            ZoneRecord::A { name, addr } if *name == qname => {
                exists = true;
                if q.query_type() == RecordType::A {
                    resp.add_answer(Record::from_rdata(
                        q.name().clone(),
                        3600,
                        RData::A(A(*addr)),
                    ));
                }
            }
            ZoneRecord::Mx {
                name,
                preference,
                exchange,
            } if *name == qname => {
                exists = true;
                if q.query_type() == RecordType::MX {
                    let ex = Name::from_ascii(format!("{exchange}.")).ok()?;
                    resp.add_answer(Record::from_rdata(
                        q.name().clone(),
                        3600,
                        RData::MX(MX::new(*preference, ex)),
                    ));
                }
            }
            _ => {}
        }
    }
    if !exists {
        resp.metadata.response_code = ResponseCode::NXDomain;
    }
    resp.to_vec().ok()
}

/// An authoritative DNS server app.
pub struct DnsServer {
    pub zones: Vec<Zone>,
    handle: Option<SocketHandle>,
    pub queries: u64,
}

impl DnsServer {
    pub fn new(zones: Vec<Zone>) -> DnsServer {
        DnsServer {
            zones,
            handle: None,
            queries: 0,
        }
    }
}

fn udp_socket(port: u16) -> udp::Socket<'static> {
    let rx = udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 16], vec![0; 16384]);
    let tx = udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 16], vec![0; 16384]);
    let mut s = udp::Socket::new(rx, tx);
    let _ = s.bind(port);
    s
}

impl App for DnsServer {
    fn poll(&mut self, cx: &mut AppCx<'_>) {
        let h = *self
            .handle
            .get_or_insert_with(|| cx.sockets.add(udp_socket(53)));
        let s = cx.sockets.get_mut::<udp::Socket>(h);
        while let Ok((data, meta)) = s.recv() {
            self.queries += 1;
            if let Some(reply) = answer(&self.zones, data) {
                let _ = s.send_slice(&reply, meta.endpoint);
            }
        }
    }
    natsim_sim::any_impls!();
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
    /// The name exists but has no record of this type.
    NoData {
        server: Ipv4Addr,
    },
    Refused {
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
            LookupResult::NoData { server } => format!("no records of that type (from {server})"),
            LookupResult::Refused { server } => format!("refused by {server}"),
            LookupResult::Timeout => "no DNS server answered".into(),
        }
    }
}

/// A stub resolver query, driven from an app's `poll`.
#[derive(Debug)]
pub struct Lookup {
    pub name: String,
    pub rtype: RecordType,
    servers: Vec<Ipv4Addr>,
    next_server: usize,
    id: u16,
    handle: Option<SocketHandle>,
    port: u16,
    deadline: Option<Instant>,
    pub result: Option<LookupResult>,
}

/// How long the resolver waits for each server.
pub const PER_SERVER_TIMEOUT: Duration = Duration::from_secs(2);

impl Lookup {
    pub fn new(name: &str, rtype: RecordType, servers: Vec<Ipv4Addr>) -> Lookup {
        Lookup {
            name: norm(name),
            rtype,
            servers,
            next_server: 0,
            id: 0,
            handle: None,
            port: 0,
            deadline: None,
            result: None,
        }
    }

    pub fn poll_at(&self) -> Option<Instant> {
        if self.result.is_some() {
            None
        } else {
            self.deadline
        }
    }

    fn send_next(&mut self, cx: &mut AppCx<'_>) {
        let Some(&server) = self.servers.get(self.next_server) else {
            self.result = Some(LookupResult::Timeout);
            return;
        };
        self.next_server += 1;
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
        let Ok(name) = Name::from_ascii(format!("{}.", self.name)) else {
            self.result = Some(LookupResult::NxDomain { server });
            return;
        };
        let mut m = Message::new(self.id, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(name, self.rtype));
        if let Ok(bytes) = m.to_vec() {
            let _ = cx
                .sockets
                .get_mut::<udp::Socket>(h)
                .send_slice(&bytes, (server, 53));
        }
        self.deadline = Some(cx.now + PER_SERVER_TIMEOUT);
    }

    /// Advances the lookup; returns the result once known.
    pub fn poll(&mut self, cx: &mut AppCx<'_>) -> Option<&LookupResult> {
        if self.result.is_some() {
            return self.result.as_ref();
        }
        if self.deadline.is_none() {
            self.send_next(cx);
            return self.result.as_ref();
        }
        if let Some(h) = self.handle {
            let s = cx.sockets.get_mut::<udp::Socket>(h);
            while let Ok((data, meta)) = s.recv() {
                let IpAddress::Ipv4(from) = meta.endpoint.addr;
                let Ok(m) = Message::from_vec(data) else {
                    continue;
                };
                if m.metadata.id != self.id || m.metadata.message_type != MessageType::Response {
                    continue;
                }
                self.result = Some(interpret(&m, from, self.rtype));
                break;
            }
        }
        if self.result.is_none() && self.deadline.is_some_and(|d| cx.now >= d) {
            self.send_next(cx);
        }
        if self.result.is_some() {
            if let Some(h) = self.handle.take() {
                cx.sockets.remove(h);
            }
        }
        self.result.as_ref()
    }
}

fn interpret(m: &Message, server: Ipv4Addr, rtype: RecordType) -> LookupResult {
    match m.metadata.response_code {
        ResponseCode::NXDomain => return LookupResult::NxDomain { server },
        ResponseCode::NoError => {}
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
    pub fn new(name: &str, rtype: RecordType, servers: Vec<Ipv4Addr>) -> DnsLookup {
        DnsLookup {
            lookup: Lookup::new(name, rtype, servers),
            started: false,
        }
    }
    pub fn result(&self) -> Option<&LookupResult> {
        self.lookup.result.as_ref()
    }
}

impl App for DnsLookup {
    fn poll(&mut self, cx: &mut AppCx<'_>) {
        if self.lookup.servers.is_empty() {
            self.lookup.servers = cx.host.dns.clone();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, t: RecordType) -> Vec<u8> {
        let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        m.to_vec().unwrap()
    }

    fn zones() -> Vec<Zone> {
        vec![Zone::new("example.com")
            .a("mail.example.com", Ipv4Addr::new(203, 0, 113, 1))
            .mx("example.com", 10, "mail.example.com")]
    }

    #[test]
    fn mx_answer_is_authoritative_and_carries_the_exchange() {
        let r =
            Message::from_vec(&answer(&zones(), &query("example.com.", RecordType::MX)).unwrap())
                .unwrap();
        assert!(r.metadata.authoritative);
        assert_eq!(
            interpret(&r, Ipv4Addr::LOCALHOST, RecordType::MX),
            LookupResult::Exchanges {
                server: Ipv4Addr::LOCALHOST,
                mx: vec![(10, "mail.example.com".into())]
            }
        );
    }

    #[test]
    fn nxdomain_and_nodata_are_told_apart() {
        let r = Message::from_vec(
            &answer(&zones(), &query("nope.example.com.", RecordType::A)).unwrap(),
        )
        .unwrap();
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
        let r = Message::from_vec(
            &answer(&zones(), &query("mail.example.com.", RecordType::MX)).unwrap(),
        )
        .unwrap();
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert!(r.answers.is_empty());
        let r = Message::from_vec(&answer(&zones(), &query("other.org.", RecordType::A)).unwrap())
            .unwrap();
        assert_eq!(r.metadata.response_code, ResponseCode::Refused);
    }

    #[test]
    fn the_answer_bytes_match_a_fixture() {
        let a = answer(&zones(), &query("mail.example.com.", RecordType::A)).unwrap();
        // id, flags (QR AA RD=0, NOERROR), 1 question, 1 answer.
        assert_eq!(&a[..12], &[0x12, 0x34, 0x84, 0x00, 0, 1, 0, 1, 0, 0, 0, 0]);
        // The answer ends with the A record's address.
        assert_eq!(&a[a.len() - 4..], &[203, 0, 113, 1]);
    }

    #[test]
    fn garbage_queries_get_no_answer_and_no_panic() {
        for g in [&b""[..], b"\x00", &[0xff; 40]] {
            let _ = answer(&zones(), g);
        }
    }
}
