//! Raw frames the tests inject, built byte by byte so that what the
//! router gets does not depend on the code under test.

use std::net::Ipv4Addr;

/// A UDP datagram in an Ethernet frame, UDP checksum 0 (none, RFC 768).
pub struct Udp {
    pub to_mac: [u8; 6],
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
    pub ttl: u8,
    pub df: bool,
    /// Bytes of payload.
    pub payload: usize,
}

impl Udp {
    pub fn new(to_mac: [u8; 6], src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> Udp {
        Udp {
            to_mac,
            src,
            dst,
            sport,
            dport,
            ttl: 64,
            df: false,
            payload: 4,
        }
    }

    pub fn frame(&self) -> Vec<u8> {
        let mut ip = vec![0u8; 28 + self.payload];
        let total = ip.len() as u16;
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip[4..6].copy_from_slice(&1u16.to_be_bytes());
        if self.df {
            ip[6] = 0x40;
        }
        ip[8] = self.ttl;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&self.src.octets());
        ip[16..20].copy_from_slice(&self.dst.octets());
        let sum = natsim_nat::checksum::checksum(&ip[..20]);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        ip[20..22].copy_from_slice(&self.sport.to_be_bytes());
        ip[22..24].copy_from_slice(&self.dport.to_be_bytes());
        ip[24..26].copy_from_slice(&((8 + self.payload) as u16).to_be_bytes());
        let mut f = self.to_mac.to_vec();
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x77]);
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&ip);
        f
    }
}
