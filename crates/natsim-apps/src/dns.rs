//! DNS: an authoritative server (UDP 53) with A and MX records per zone.
//! The wire format is hickory-proto's; the semantics are ours:
//!
//! * every zone has an SOA at its apex (synthesised, RFC 1035 §3.3.13), so
//!   the apex always exists;
//! * a name that exists (it owns records, is the apex, or has names below
//!   it: an empty non-terminal, RFC 8020) but has no record of the asked
//!   type gets NOERROR, an empty answer and the SOA in the authority
//!   section: NODATA (RFC 2308 §2.2);
//! * a name that does not exist gets NXDOMAIN with the SOA in authority
//!   (RFC 2308 §2.1);
//! * a name outside every zone the server holds gets REFUSED: the server
//!   is authoritative only and models no delegation or recursion (the
//!   BIND default for a non-recursive server without the zone).
//!
//! The resolvers (per client) live in [`crate::resolver`]; their types are
//! re-exported here.

use crate::resolver::norm;
pub use crate::resolver::{DnsLookup, Lookup, LookupResult, ResolverProfile};
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, MX, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use natsim_sim::{App, AppCx};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::udp;
use std::net::Ipv4Addr;

/// TTL of every record we serve, and the SOA's MINIMUM (so the negative
/// TTL of RFC 2308 §5, min(SOA TTL, MINIMUM), is the same hour).
pub const TTL: u32 = 3600;

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
    fn owner(r: &ZoneRecord) -> &str {
        match r {
            ZoneRecord::A { name, .. } | ZoneRecord::Mx { name, .. } => name,
        }
    }
    /// Whether `name` exists in the zone: the apex, an owner of records,
    /// or an empty non-terminal above one (RFC 8020 §2).
    pub fn exists(&self, name: &str) -> bool {
        let below = format!(".{name}");
        name == self.origin
            || self
                .records
                .iter()
                .map(Zone::owner)
                .any(|o| o == name || o.ends_with(&below))
    }
    /// The zone's SOA record (synthesised: `ns.<origin>`,
    /// `hostmaster.<origin>`, serial 1, refresh 3600, retry 600, expire
    /// 604800, minimum 3600).
    pub fn soa(&self) -> Option<Record> {
        let apex = Name::from_ascii(format!("{}.", self.origin)).ok()?;
        let mname = Name::from_ascii(format!("ns.{}.", self.origin)).ok()?;
        let rname = Name::from_ascii(format!("hostmaster.{}.", self.origin)).ok()?;
        Some(Record::from_rdata(
            apex,
            TTL,
            RData::SOA(SOA::new(mname, rname, 1, 3600, 600, 604_800, TTL)),
        ))
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
    let qtype = q.query_type();
    for r in &zone.records {
        match r {
            ZoneRecord::A { name, addr } if *name == qname && qtype == RecordType::A => {
                resp.add_answer(Record::from_rdata(
                    q.name().clone(),
                    TTL,
                    RData::A(A(*addr)),
                ));
            }
            ZoneRecord::Mx {
                name,
                preference,
                exchange,
            } if *name == qname && qtype == RecordType::MX => {
                let ex = Name::from_ascii(format!("{exchange}.")).ok()?;
                resp.add_answer(Record::from_rdata(
                    q.name().clone(),
                    TTL,
                    RData::MX(MX::new(*preference, ex)),
                ));
            }
            _ => {}
        }
    }
    let soa = zone.soa()?;
    if qtype == RecordType::SOA && qname == zone.origin {
        resp.add_answer(soa);
    } else if resp.answers.is_empty() {
        // RFC 2308 §3: negative answers carry the SOA in authority.
        if !zone.exists(&qname) {
            resp.metadata.response_code = ResponseCode::NXDomain;
        }
        resp.add_authority(soa);
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

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;

    fn query(name: &str, t: RecordType) -> Vec<u8> {
        let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        m.to_vec().unwrap()
    }

    fn zones() -> Vec<Zone> {
        vec![Zone::new("example.com")
            .a("mail.example.com", Ipv4Addr::new(203, 0, 113, 1))
            .a("host.lab.example.com", Ipv4Addr::new(203, 0, 113, 2))
            .mx("example.com", 10, "mail.example.com")]
    }

    fn ask(zs: &[Zone], name: &str, t: RecordType) -> Message {
        Message::from_vec(&answer(zs, &query(name, t)).unwrap()).unwrap()
    }

    #[test]
    fn mx_answer_is_authoritative_and_carries_the_exchange() {
        let r = ask(&zones(), "example.com.", RecordType::MX);
        assert!(r.metadata.authoritative);
        assert_eq!(r.answers.len(), 1);
        assert!(
            matches!(&r.answers[0].data, RData::MX(m) if m.preference == 10 && m.exchange.to_ascii() == "mail.example.com.")
        );
        assert!(r.authorities.is_empty());
    }

    /// RFC 2308 §2.2 NODATA: NOERROR, no answer, the zone's SOA in the
    /// authority section. The zone apex always exists (it owns the SOA), so
    /// an apex without MX is NODATA, never NXDOMAIN.
    #[test]
    fn the_apex_without_mx_is_nodata_with_the_soa_in_authority() {
        let z =
            vec![Zone::new("example.com").a("server.example.com", Ipv4Addr::new(198, 51, 100, 10))];
        let r = ask(&z, "example.com.", RecordType::MX);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert!(r.answers.is_empty());
        assert_eq!(r.authorities.len(), 1);
        assert_eq!(r.authorities[0].record_type(), RecordType::SOA);
        assert_eq!(r.authorities[0].name.to_ascii(), "example.com.");
    }

    #[test]
    fn nxdomain_nodata_empty_non_terminals_and_refused_are_told_apart() {
        let r = ask(&zones(), "nope.example.com.", RecordType::A);
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(r.authorities[0].record_type(), RecordType::SOA);
        let r = ask(&zones(), "mail.example.com.", RecordType::MX);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert!(r.answers.is_empty());
        // lab.example.com owns nothing but has a name below it (RFC 8020).
        let r = ask(&zones(), "lab.example.com.", RecordType::A);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert!(r.answers.is_empty());
        let r = ask(&zones(), "other.org.", RecordType::A);
        assert_eq!(r.metadata.response_code, ResponseCode::Refused);
        assert!(!r.metadata.authoritative);
        assert!(r.authorities.is_empty());
        let r = ask(&zones(), "example.com.", RecordType::SOA);
        assert_eq!(r.answers[0].record_type(), RecordType::SOA);
    }

    #[test]
    fn the_answer_bytes_match_a_fixture() {
        let a = answer(&zones(), &query("mail.example.com.", RecordType::A)).unwrap();
        // id, flags (QR AA RD=0, NOERROR), 1 question, 1 answer.
        assert_eq!(&a[..12], &[0x12, 0x34, 0x84, 0x00, 0, 1, 0, 1, 0, 0, 0, 0]);
        // The answer ends with the A record's address.
        assert_eq!(&a[a.len() - 4..], &[203, 0, 113, 1]);
    }

    /// The NODATA answer for `example.com MX` in a zone without MX, byte
    /// for byte (RFC 1035 §4.1 layout; the SOA RDATA of §3.3.13).
    #[test]
    fn the_nodata_answer_bytes_match_a_fixture() {
        let z = vec![Zone::new("example.com")];
        let a = answer(&z, &query("example.com.", RecordType::MX)).unwrap();
        let mut want: Vec<u8> = vec![
            0x12, 0x34, // id
            0x84, 0x00, // QR, opcode 0, AA; RCODE 0 (NOERROR)
            0, 1, 0, 0, 0, 1, 0, 0, // QD 1, AN 0, NS 1, AR 0
            7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 3, b'c', b'o', b'm', 0, // qname
            0, 15, 0, 1, // MX, IN
            0xc0, 12, // owner: pointer to the qname
            0, 6, 0, 1, // SOA, IN
            0, 0, 0x0e, 0x10, // TTL 3600
        ];
        let rdata: Vec<u8> = [
            &[2, b'n', b's', 0xc0, 12][..], // ns.example.com.
            &[
                10, b'h', b'o', b's', b't', b'm', b'a', b's', b't', b'e', b'r', 0xc0, 12,
            ], // hostmaster.example.com.
            &[0, 0, 0, 1],                  // serial
            &[0, 0, 0x0e, 0x10],            // refresh 3600
            &[0, 0, 0x02, 0x58],            // retry 600
            &[0, 0x09, 0x3a, 0x80],         // expire 604800
            &[0, 0, 0x0e, 0x10],            // minimum 3600
        ]
        .concat();
        want.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        want.extend_from_slice(&rdata);
        assert_eq!(a, want);
    }

    #[test]
    fn garbage_queries_get_no_answer_and_no_panic() {
        for g in [&b""[..], b"\x00", &[0xff; 40]] {
            let _ = answer(&zones(), g);
        }
    }
}
