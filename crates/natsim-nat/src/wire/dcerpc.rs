//! Connection-oriented DCE/RPC on the wire (DCE 1.1 RPC ch. 12, MS-RPCE
//! §2.2.2): the PDU common header and protocol towers (appendix L). One
//! codec for the EPM ALG and for the apps that speak the protocol, so the
//! two agree on the format by construction.

use std::net::Ipv4Addr;

/// EPM interface UUID e1af8308-5d1f-11c9-91a4-08002b14a0fa in wire order
/// (first three fields little-endian).
pub const EPM_UUID_WIRE: [u8; 16] = [
    0x08, 0x83, 0xaf, 0xe1, 0x1f, 0x5d, 0xc9, 0x11, 0x91, 0xa4, 0x08, 0x00, 0x2b, 0x14, 0xa0, 0xfa,
];

pub const PTYPE_REQUEST: u8 = 0;
pub const PTYPE_RESPONSE: u8 = 2;
pub const PTYPE_BIND: u8 = 11;
pub const PTYPE_ALTER_CONTEXT: u8 = 14;
pub const PFC_FIRST_FRAG: u8 = 0x01;
pub const PFC_LAST_FRAG: u8 = 0x02;
pub const OP_EPT_LOOKUP: u16 = 2;
pub const OP_EPT_MAP: u16 = 3;

/// Most floors a tower may declare.
pub const MAX_FLOORS: u16 = 16;

/// A protocol tower's TCP/IP endpoint, as read by [`parse_tower`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TowerEndpoint {
    pub floors: u16,
    /// Floor 4: TCP port (big-endian on the wire).
    pub port: Option<u16>,
    /// Floor 5: IPv4 address.
    pub addr: Option<Ipv4Addr>,
    /// The first floor's interface UUID (wire order), if present.
    pub interface: Option<[u8; 16]>,
}

/// Parses a whole tower (`twr_t` octets: floor count, then floors).
pub fn parse_tower(b: &[u8]) -> Result<TowerEndpoint, &'static str> {
    let rd16 = |at: usize| -> Result<u16, &'static str> {
        b.get(at..at + 2)
            .map(|s| u16::from_le_bytes([s[0], s[1]]))
            .ok_or("truncated tower")
    };
    let floors = rd16(0)?;
    if floors == 0 || floors > MAX_FLOORS {
        return Err("absurd floor count");
    }
    let mut at = 2;
    let mut t = TowerEndpoint {
        floors,
        port: None,
        addr: None,
        interface: None,
    };
    for i in 0..floors {
        let lhs_len = usize::from(rd16(at)?);
        let lhs = b.get(at + 2..at + 2 + lhs_len).ok_or("truncated tower")?;
        at += 2 + lhs_len;
        let rhs_len = usize::from(rd16(at)?);
        let rhs = b.get(at + 2..at + 2 + rhs_len).ok_or("truncated tower")?;
        at += 2 + rhs_len;
        match (lhs.first(), rhs.len()) {
            (Some(0x0d), _) if i == 0 && lhs.len() >= 17 => {
                let mut u = [0; 16];
                u.copy_from_slice(&lhs[1..17]);
                t.interface = Some(u);
            }
            (Some(0x07), 2) => t.port = Some(u16::from_be_bytes([rhs[0], rhs[1]])),
            (Some(0x09), 4) => t.addr = Some(Ipv4Addr::new(rhs[0], rhs[1], rhs[2], rhs[3])),
            _ => {}
        }
    }
    Ok(t)
}

/// Bytes of the common header every PDU starts with.
pub const HEADER_LEN: usize = 16;
/// Bytes of the `sec_trailer` that precedes `auth_length` bytes of
/// verifier at the end of an authenticated PDU (MS-RPCE §2.2.2.11).
pub const SEC_TRAILER_LEN: usize = 8;

/// The common header of a PDU, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub ptype: u8,
    pub flags: u8,
    pub frag_len: u16,
    pub auth_len: u16,
    pub call_id: u32,
}

impl Header {
    /// Reads and checks the 16-byte common header: version 5.0 or 5.1,
    /// little-endian data representation, a `frag_length` that covers the
    /// header, and an auth trailer (sec_trailer + verifier) that fits in the
    /// body.
    pub fn parse(h: &[u8]) -> Result<Header, &'static str> {
        let h = h.get(..HEADER_LEN).ok_or("truncated PDU header")?;
        if h[0] != 5 || h[1] > 1 {
            return Err("not DCE/RPC version 5");
        }
        if h[4] & 0xf0 != 0x10 {
            return Err("big-endian data representation");
        }
        let hd = Header {
            ptype: h[2],
            flags: h[3],
            frag_len: u16::from_le_bytes([h[8], h[9]]),
            auth_len: u16::from_le_bytes([h[10], h[11]]),
            call_id: u32::from_le_bytes([h[12], h[13], h[14], h[15]]),
        };
        if usize::from(hd.frag_len) < HEADER_LEN {
            return Err("frag_length shorter than the header");
        }
        if hd.trailer_len() > hd.body_len() {
            return Err("auth_length exceeds the PDU");
        }
        Ok(hd)
    }

    /// Bytes after the common header, up to `frag_length`.
    pub fn body_len(&self) -> u32 {
        u32::from(self.frag_len) - HEADER_LEN as u32
    }

    /// Bytes of the auth trailer at the end of the body (0 if none).
    pub fn trailer_len(&self) -> u32 {
        if self.auth_len > 0 {
            u32::from(self.auth_len) + SEC_TRAILER_LEN as u32
        } else {
            0
        }
    }

    /// Bytes of the body before the auth trailer (the PDU's own fields and stub).
    pub fn stub_len(&self) -> u32 {
        self.body_len() - self.trailer_len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(frag_len: u16, auth_len: u16) -> [u8; 16] {
        let mut h = [
            5,
            0,
            PTYPE_RESPONSE,
            3,
            0x10,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            7,
            0,
            0,
            0,
        ];
        h[8..10].copy_from_slice(&frag_len.to_le_bytes());
        h[10..12].copy_from_slice(&auth_len.to_le_bytes());
        h
    }

    #[test]
    fn the_auth_trailer_counts_its_eight_byte_sec_trailer() {
        // 16 header + 8 sec_trailer + 16 verifier = 40: fits exactly.
        let h = Header::parse(&header(40, 16)).unwrap();
        assert_eq!((h.body_len(), h.stub_len(), h.call_id), (24, 0, 7));
        // One byte short: the verifier alone would fit, the trailer does not.
        assert!(Header::parse(&header(39, 16)).is_err());
    }

    #[test]
    fn big_endian_and_other_versions_are_refused() {
        let mut h = header(16, 0);
        h[4] = 0x00;
        assert!(Header::parse(&h).is_err());
        let mut h = header(16, 0);
        h[0] = 4;
        assert!(Header::parse(&h).is_err());
        assert!(Header::parse(&header(15, 0)).is_err());
    }
}
