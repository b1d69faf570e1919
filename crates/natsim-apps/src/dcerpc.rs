//! Connection-oriented DCE/RPC (DCE 1.1 ch. 12, MS-RPCE) over TCP, in
//! smoltcp's `wire` style: [`Packet`] is a checked view of the 16-byte
//! common header, [`Repr`] the owned PDU with `parse` and `emit`. Only the
//! PDUs the endpoint mapper dialogue needs: bind, bind_ack, request,
//! response, fault. Little-endian data representation only.
//!
//! Protocol towers are built here ([`tower`]) and parsed with the engine's
//! own parser ([`natsim_nat::alg::epm::parse_tower`]), so the ALG and the
//! apps agree on the format by construction.

pub use natsim_nat::wire::dcerpc::{
    parse_tower, Header, TowerEndpoint, PTYPE_BIND, PTYPE_REQUEST, PTYPE_RESPONSE,
};
use std::net::Ipv4Addr;

pub const PTYPE_FAULT: u8 = 3;
pub const PTYPE_BIND_ACK: u8 = 12;
pub const PFC_FIRST_LAST: u8 =
    natsim_nat::wire::dcerpc::PFC_FIRST_FRAG | natsim_nat::wire::dcerpc::PFC_LAST_FRAG;

/// A UUID in wire order (first three fields little-endian).
pub type Uuid = [u8; 16];

/// Parses `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` into wire order.
pub const fn uuid(s: &str) -> Uuid {
    const fn hex(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => 0,
        }
    }
    let b = s.as_bytes();
    let mut raw = [0u8; 16];
    let mut i = 0;
    let mut n = 0;
    while i < b.len() && n < 16 {
        if b[i] == b'-' {
            i += 1;
            continue;
        }
        raw[n] = hex(b[i]) << 4 | hex(b[i + 1]);
        n += 1;
        i += 2;
    }
    [
        raw[3], raw[2], raw[1], raw[0], raw[5], raw[4], raw[7], raw[6], raw[8], raw[9], raw[10],
        raw[11], raw[12], raw[13], raw[14], raw[15],
    ]
}

pub const EPM: Uuid = uuid("e1af8308-5d1f-11c9-91a4-08002b14a0fa");
pub const NDR: Uuid = uuid("8a885d04-1ceb-11c9-9fe8-08002b104860");
pub const EMSMDB: Uuid = uuid("a4f1db00-ca47-1067-b31f-00dd010662da");
pub const NSPI: Uuid = uuid("f5cc5a18-4264-101a-8c59-08002b2f8426");
pub const RFR: Uuid = uuid("1544f5e0-613c-11d1-93df-00c04fd7bd09");
/// ept_map status when the interface has no endpoint.
pub const EPT_S_NOT_REGISTERED: u32 = 0x16c9_a0d6;

/// Why bytes are not a PDU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Fewer bytes than the header or `frag_length` needs.
    Truncated,
    /// Not version 5.0/5.1, or big-endian, or lengths that contradict.
    Malformed,
}

/// A checked view of a PDU's common header.
#[derive(Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    pub const PTYPE: usize = 2;
    pub const FLAGS: usize = 3;
    pub const FRAG_LEN: core::ops::Range<usize> = 8..10;
    pub const AUTH_LEN: core::ops::Range<usize> = 10..12;
    pub const CALL_ID: core::ops::Range<usize> = 12..16;
    pub const HEADER_LEN: usize = 16;
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }
    /// Validates the header; after this no accessor panics.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let p = Packet { buffer };
        p.check_len()?;
        Ok(p)
    }
    pub fn check_len(&self) -> Result<(), Error> {
        let b = self.buffer.as_ref();
        if b.len() < field::HEADER_LEN {
            return Err(Error::Truncated);
        }
        // The engine's header check: one rule for the auth trailer's size.
        let h = Header::parse(b).map_err(|_| Error::Malformed)?;
        if b.len() < usize::from(h.frag_len) {
            return Err(Error::Truncated);
        }
        Ok(())
    }
    fn u16_at(&self, r: core::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[r];
        u16::from_le_bytes([b[0], b[1]])
    }
    pub fn ptype(&self) -> u8 {
        self.buffer.as_ref()[field::PTYPE]
    }
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }
    pub fn frag_len(&self) -> u16 {
        self.u16_at(field::FRAG_LEN)
    }
    pub fn auth_len(&self) -> u16 {
        self.u16_at(field::AUTH_LEN)
    }
    pub fn call_id(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::CALL_ID];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
    /// The bytes after the common header, up to `frag_length`.
    pub fn body(&self) -> &[u8] {
        &self.buffer.as_ref()[field::HEADER_LEN..usize::from(self.frag_len())]
    }
}

/// A presentation context: (id, abstract syntax, version major, minor).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Context {
    pub id: u16,
    pub interface: Uuid,
    pub major: u16,
    pub minor: u16,
}

/// An owned PDU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Repr {
    Bind {
        call_id: u32,
        contexts: Vec<Context>,
    },
    BindAck {
        call_id: u32,
        secondary_addr: String,
        accepted: Vec<bool>,
    },
    Request {
        call_id: u32,
        context: u16,
        opnum: u16,
        stub: Vec<u8>,
    },
    Response {
        call_id: u32,
        context: u16,
        stub: Vec<u8>,
    },
    Fault {
        call_id: u32,
        status: u32,
    },
}

fn rd16(b: &[u8], at: usize) -> Result<u16, Error> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or(Error::Truncated)
}
fn rd32(b: &[u8], at: usize) -> Result<u32, Error> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(Error::Truncated)
}

impl Repr {
    /// Parses one PDU (unauthenticated PDUs; an auth trailer is skipped).
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr, Error> {
        let body = p.body();
        let trailer = if p.auth_len() > 0 {
            usize::from(p.auth_len()) + natsim_nat::wire::dcerpc::SEC_TRAILER_LEN
        } else {
            0
        };
        let body = &body[..body.len() - trailer.min(body.len())];
        let call_id = p.call_id();
        Ok(match p.ptype() {
            PTYPE_BIND => {
                let n = *body.get(8).ok_or(Error::Truncated)?;
                let mut at = 12;
                let mut contexts = Vec::new();
                for _ in 0..n {
                    let id = rd16(body, at)?;
                    let n_ts = usize::from(*body.get(at + 2).ok_or(Error::Truncated)?);
                    let mut interface = [0; 16];
                    interface.copy_from_slice(body.get(at + 4..at + 20).ok_or(Error::Truncated)?);
                    let major = rd16(body, at + 20)?;
                    let minor = rd16(body, at + 22)?;
                    contexts.push(Context {
                        id,
                        interface,
                        major,
                        minor,
                    });
                    at += 24 + 20 * n_ts;
                    if at > body.len() {
                        return Err(Error::Truncated);
                    }
                }
                Repr::Bind { call_id, contexts }
            }
            PTYPE_BIND_ACK => {
                let sec_len = usize::from(rd16(body, 8)?);
                let sec = body.get(10..10 + sec_len).ok_or(Error::Truncated)?;
                let secondary_addr = String::from_utf8_lossy(sec)
                    .trim_end_matches('\0')
                    .to_string();
                let mut at = (10 + sec_len).next_multiple_of(4);
                let n = *body.get(at).ok_or(Error::Truncated)?;
                at += 4;
                let mut accepted = Vec::new();
                for _ in 0..n {
                    accepted.push(rd16(body, at)? == 0);
                    at += 24;
                }
                Repr::BindAck {
                    call_id,
                    secondary_addr,
                    accepted,
                }
            }
            PTYPE_REQUEST => Repr::Request {
                call_id,
                context: rd16(body, 4)?,
                opnum: rd16(body, 6)?,
                stub: body
                    .get(if p.flags() & 0x80 != 0 { 24 } else { 8 }..)
                    .ok_or(Error::Truncated)?
                    .to_vec(),
            },
            PTYPE_RESPONSE => Repr::Response {
                call_id,
                context: rd16(body, 4)?,
                stub: body.get(8..).ok_or(Error::Truncated)?.to_vec(),
            },
            PTYPE_FAULT => Repr::Fault {
                call_id,
                status: rd32(body, 8)?,
            },
            _ => return Err(Error::Malformed),
        })
    }

    /// The PDU on the wire (single fragment).
    pub fn emit(&self) -> Vec<u8> {
        let (ptype, call_id, body) = match self {
            Repr::Bind { call_id, contexts } => {
                let mut b = Vec::new();
                b.extend_from_slice(&5840u16.to_le_bytes());
                b.extend_from_slice(&5840u16.to_le_bytes());
                b.extend_from_slice(&0u32.to_le_bytes());
                b.extend_from_slice(&[contexts.len() as u8, 0, 0, 0]);
                for c in contexts {
                    b.extend_from_slice(&c.id.to_le_bytes());
                    b.extend_from_slice(&[1, 0]);
                    b.extend_from_slice(&c.interface);
                    b.extend_from_slice(&c.major.to_le_bytes());
                    b.extend_from_slice(&c.minor.to_le_bytes());
                    b.extend_from_slice(&NDR);
                    b.extend_from_slice(&2u32.to_le_bytes());
                }
                (PTYPE_BIND, *call_id, b)
            }
            Repr::BindAck {
                call_id,
                secondary_addr,
                accepted,
            } => {
                let mut b = Vec::new();
                b.extend_from_slice(&5840u16.to_le_bytes());
                b.extend_from_slice(&5840u16.to_le_bytes());
                b.extend_from_slice(&0x1234_5678u32.to_le_bytes());
                let mut sec = secondary_addr.as_bytes().to_vec();
                sec.push(0);
                b.extend_from_slice(&(sec.len() as u16).to_le_bytes());
                b.extend_from_slice(&sec);
                while !b.len().is_multiple_of(4) {
                    b.push(0);
                }
                b.extend_from_slice(&[accepted.len() as u8, 0, 0, 0]);
                for &ok in accepted {
                    b.extend_from_slice(&(if ok { 0u16 } else { 2 }).to_le_bytes());
                    b.extend_from_slice(&(if ok { 0u16 } else { 1 }).to_le_bytes());
                    if ok {
                        b.extend_from_slice(&NDR);
                        b.extend_from_slice(&2u32.to_le_bytes());
                    } else {
                        b.extend_from_slice(&[0; 20]);
                    }
                }
                (PTYPE_BIND_ACK, *call_id, b)
            }
            Repr::Request {
                call_id,
                context,
                opnum,
                stub,
            } => {
                let mut b = Vec::new();
                b.extend_from_slice(&(stub.len() as u32).to_le_bytes());
                b.extend_from_slice(&context.to_le_bytes());
                b.extend_from_slice(&opnum.to_le_bytes());
                b.extend_from_slice(stub);
                (PTYPE_REQUEST, *call_id, b)
            }
            Repr::Response {
                call_id,
                context,
                stub,
            } => {
                let mut b = Vec::new();
                b.extend_from_slice(&(stub.len() as u32).to_le_bytes());
                b.extend_from_slice(&context.to_le_bytes());
                b.extend_from_slice(&[0, 0]);
                b.extend_from_slice(stub);
                (PTYPE_RESPONSE, *call_id, b)
            }
            Repr::Fault { call_id, status } => {
                let mut b = vec![0u8; 8];
                b.extend_from_slice(&status.to_le_bytes());
                b.extend_from_slice(&[0; 4]);
                (PTYPE_FAULT, *call_id, b)
            }
        };
        let mut v = vec![5, 0, ptype, PFC_FIRST_LAST, 0x10, 0, 0, 0];
        v.extend_from_slice(&((16 + body.len()) as u16).to_le_bytes());
        v.extend_from_slice(&0u16.to_le_bytes());
        v.extend_from_slice(&call_id.to_le_bytes());
        v.extend_from_slice(&body);
        v
    }
}

/// Splits complete PDUs off the front of a byte stream.
pub fn take_pdus(buf: &mut Vec<u8>) -> Vec<Result<Repr, Error>> {
    let mut out = Vec::new();
    loop {
        match Packet::new_checked(&buf[..]) {
            Ok(p) => {
                let len = usize::from(p.frag_len());
                out.push(Repr::parse(&p));
                buf.drain(..len);
            }
            Err(Error::Truncated) => break,
            Err(e) => {
                out.push(Err(e));
                buf.clear();
                break;
            }
        }
    }
    out
}

/// An ncacn_ip_tcp protocol tower (75 bytes) for `interface` at `addr:port`.
pub fn tower(interface: Uuid, major: u16, minor: u16, port: u16, addr: Ipv4Addr) -> Vec<u8> {
    let mut t = vec![5, 0];
    for (id, ver, rhs) in [(interface, major, minor), (NDR, 2, 0)] {
        t.extend_from_slice(&19u16.to_le_bytes());
        t.push(0x0d);
        t.extend_from_slice(&id);
        t.extend_from_slice(&ver.to_le_bytes());
        t.extend_from_slice(&2u16.to_le_bytes());
        t.extend_from_slice(&rhs.to_le_bytes());
    }
    t.extend_from_slice(&[1, 0, 0x0b, 2, 0, 0, 0]);
    t.extend_from_slice(&[1, 0, 0x07, 2, 0]);
    t.extend_from_slice(&port.to_be_bytes());
    t.extend_from_slice(&[1, 0, 0x09, 4, 0]);
    t.extend_from_slice(&addr.octets());
    t
}

fn pad4(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(4) {
        v.push(0);
    }
}

/// The `ept_map` request stub asking for `interface`.
pub fn ept_map_request(interface: Uuid, major: u16, minor: u16) -> Vec<u8> {
    let t = tower(interface, major, minor, 0, Ipv4Addr::UNSPECIFIED);
    let mut s = Vec::new();
    s.extend_from_slice(&1u32.to_le_bytes()); // object: referent
    s.extend_from_slice(&[0; 16]); // nil object UUID
    s.extend_from_slice(&2u32.to_le_bytes()); // map_tower: referent
    s.extend_from_slice(&(t.len() as u32).to_le_bytes());
    s.extend_from_slice(&(t.len() as u32).to_le_bytes());
    s.extend_from_slice(&t);
    pad4(&mut s);
    s.extend_from_slice(&[0; 20]); // entry_handle
    s.extend_from_slice(&4u32.to_le_bytes()); // max_towers
    s
}

/// The interface an `ept_map` request asks for (its tower's floor 1).
pub fn ept_map_requested_interface(stub: &[u8]) -> Option<Uuid> {
    let mut at = 0;
    let obj = rd32(stub, at).ok()?;
    at += 4;
    if obj != 0 {
        at += 16;
    }
    let tref = rd32(stub, at).ok()?;
    if tref == 0 {
        return None;
    }
    let len = rd32(stub, at + 4).ok()? as usize;
    let t = stub.get(at + 12..at + 12 + len)?;
    parse_tower(t).ok()?.interface
}

/// The `ept_map` response stub with `towers` (status 0), or none and
/// `EPT_S_NOT_REGISTERED`.
pub fn ept_map_response(towers: &[Vec<u8>]) -> Vec<u8> {
    let n = towers.len() as u32;
    let mut s = vec![0u8; 20];
    s.extend_from_slice(&n.to_le_bytes());
    s.extend_from_slice(&4u32.to_le_bytes()); // max_count = max_towers
    s.extend_from_slice(&0u32.to_le_bytes());
    s.extend_from_slice(&n.to_le_bytes());
    for i in 0..n {
        s.extend_from_slice(&(3 + i).to_le_bytes());
    }
    for t in towers {
        s.extend_from_slice(&(t.len() as u32).to_le_bytes());
        s.extend_from_slice(&(t.len() as u32).to_le_bytes());
        s.extend_from_slice(t);
        pad4(&mut s);
    }
    let status = if towers.is_empty() {
        EPT_S_NOT_REGISTERED
    } else {
        0
    };
    s.extend_from_slice(&status.to_le_bytes());
    s
}

/// The towers and status of an `ept_map` response stub.
pub fn ept_map_response_towers(stub: &[u8]) -> Result<(Vec<TowerEndpoint>, u32), Error> {
    let n = rd32(stub, 20)? as usize;
    let actual = rd32(stub, 32)? as usize;
    if n > 64 || actual > 64 {
        return Err(Error::Malformed);
    }
    let mut at = 36;
    let refs = (0..actual)
        .map(|i| rd32(stub, at + 4 * i))
        .collect::<Result<Vec<_>, _>>()?;
    at += 4 * actual;
    let mut towers = Vec::new();
    for r in refs {
        if r == 0 {
            continue;
        }
        let len = rd32(stub, at)? as usize;
        let t = stub.get(at + 8..at + 8 + len).ok_or(Error::Truncated)?;
        towers.push(parse_tower(t).map_err(|_| Error::Malformed)?);
        at = (at + 8 + len).next_multiple_of(4);
    }
    let status = rd32(stub, at)?;
    Ok((towers, status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_in_wire_order() {
        assert_eq!(&EPM[..4], &[0x08, 0x83, 0xaf, 0xe1]);
        assert_eq!(EPM, natsim_nat::wire::dcerpc::EPM_UUID_WIRE);
    }

    #[test]
    fn bind_round_trips_and_matches_its_fixture() {
        let b = Repr::Bind {
            call_id: 1,
            contexts: vec![Context {
                id: 0,
                interface: EPM,
                major: 3,
                minor: 0,
            }],
        };
        let bytes = b.emit();
        assert_eq!(
            &bytes[..16],
            &[5, 0, 11, 3, 0x10, 0, 0, 0, 72, 0, 0, 0, 1, 0, 0, 0]
        );
        assert_eq!(
            Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap(),
            b
        );
    }

    #[test]
    fn ept_map_round_trip_carries_the_endpoint() {
        let req = ept_map_request(EMSMDB, 0, 81);
        assert_eq!(ept_map_requested_interface(&req), Some(EMSMDB));
        let resp = ept_map_response(&[tower(EMSMDB, 0, 81, 1097, Ipv4Addr::new(192, 168, 1, 10))]);
        let (t, status) = ept_map_response_towers(&resp).unwrap();
        assert_eq!(status, 0);
        assert_eq!(
            (t[0].addr, t[0].port),
            (Some(Ipv4Addr::new(192, 168, 1, 10)), Some(1097))
        );
        let (t, status) = ept_map_response_towers(&ept_map_response(&[])).unwrap();
        assert!(t.is_empty());
        assert_eq!(status, EPT_S_NOT_REGISTERED);
    }

    #[test]
    fn fault_pdu_matches_its_fixture() {
        let bytes = Repr::Fault {
            call_id: 2,
            status: 0x1c01_0002,
        }
        .emit();
        assert_eq!(
            bytes,
            [
                5, 0, 3, 3, 0x10, 0, 0, 0, 32, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02,
                0, 0x01, 0x1c, 0, 0, 0, 0
            ]
        );
        assert_eq!(
            Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap(),
            Repr::Fault {
                call_id: 2,
                status: 0x1c01_0002
            }
        );
    }

    #[test]
    fn truncated_and_hostile_pdus_are_errors() {
        let mut bytes = Repr::Fault {
            call_id: 9,
            status: 5,
        }
        .emit();
        for n in 0..bytes.len() {
            assert!(Packet::new_checked(&bytes[..n]).is_err());
        }
        bytes[8] = 200; // frag_length beyond the buffer
        assert_eq!(
            Packet::new_checked(&bytes[..]).unwrap_err(),
            Error::Truncated
        );
        bytes[0] = 4;
        assert_eq!(
            Packet::new_checked(&bytes[..]).unwrap_err(),
            Error::Malformed
        );
    }
}
