//! IPv4 probe packets, built byte by byte, and a summary view of what
//! arrived. Checksums follow RFC 1071 (one's-complement sum) and RFC 793 /
//! RFC 768 (pseudo-header); the kernel validates them on every hop, so a
//! wrong one would show as a lost probe, not as a silent pass.

use std::net::Ipv4Addr;

pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const ICMP: u8 = 1;

pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

fn sum(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        acc += u32::from(*b) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

pub fn checksum(data: &[u8]) -> u16 {
    fold(sum(data, 0))
}

fn pseudo(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: usize) -> u32 {
    let mut p = [0u8; 12];
    p[0..4].copy_from_slice(&src.octets());
    p[4..8].copy_from_slice(&dst.octets());
    p[9] = proto;
    p[10..12].copy_from_slice(&(len as u16).to_be_bytes());
    sum(&p, 0)
}

/// The IPv4 header fields a probe chooses.
#[derive(Clone, Copy, Debug)]
pub struct Ip {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    /// Never 0: with `IP_HDRINCL` the kernel replaces a zero ID.
    pub id: u16,
    pub df: bool,
}

impl Ip {
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, id: u16) -> Ip {
        Ip {
            src,
            dst,
            ttl: 64,
            id: id.max(1),
            df: true,
        }
    }
}

pub fn ipv4(ip: Ip, proto: u8, l4: &[u8]) -> Vec<u8> {
    let total = 20 + l4.len();
    let mut h = vec![0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    h[4..6].copy_from_slice(&ip.id.to_be_bytes());
    if ip.df {
        h[6] = 0x40;
    }
    h[8] = ip.ttl;
    h[9] = proto;
    h[12..16].copy_from_slice(&ip.src.octets());
    h[16..20].copy_from_slice(&ip.dst.octets());
    let c = checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(l4);
    h
}

/// A TCP segment with a 20-byte header and window 64240.
pub fn tcp(ip: Ip, sport: u16, dport: u16, seq: u32, ack: u32, fl: u8, data: &[u8]) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = fl;
    t[14..16].copy_from_slice(&64240u16.to_be_bytes());
    t.extend_from_slice(data);
    let c = fold(sum(&t, pseudo(ip.src, ip.dst, TCP, t.len())));
    t[16..18].copy_from_slice(&c.to_be_bytes());
    ipv4(ip, TCP, &t)
}

pub fn udp(ip: Ip, sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let len = 8 + data.len();
    let mut u = vec![0u8; 8];
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    u[4..6].copy_from_slice(&(len as u16).to_be_bytes());
    u.extend_from_slice(data);
    let mut c = fold(sum(&u, pseudo(ip.src, ip.dst, UDP, len)));
    if c == 0 {
        c = 0xffff;
    }
    u[6..8].copy_from_slice(&c.to_be_bytes());
    ipv4(ip, UDP, &u)
}

/// An ICMP message: type, code, the 4 "rest of header" bytes and data.
pub fn icmp(ip: Ip, ty: u8, code: u8, rest: [u8; 4], data: &[u8]) -> Vec<u8> {
    let mut m = vec![ty, code, 0, 0];
    m.extend_from_slice(&rest);
    m.extend_from_slice(data);
    let c = checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    ipv4(ip, ICMP, &m)
}

pub fn echo(ip: Ip, request: bool, id: u16, seq: u16) -> Vec<u8> {
    let mut rest = [0u8; 4];
    rest[0..2].copy_from_slice(&id.to_be_bytes());
    rest[2..4].copy_from_slice(&seq.to_be_bytes());
    icmp(
        ip,
        if request { 8 } else { 0 },
        0,
        rest,
        b"natsim-verify-probe",
    )
}

/// An ICMP error quoting `quoted` (its IP header and first 8 bytes, as
/// RFC 792 asks).
pub fn icmp_error(ip: Ip, ty: u8, code: u8, quoted: &[u8]) -> Vec<u8> {
    let ihl = quoted.first().map_or(20, |b| usize::from(b & 0x0f) * 4);
    let n = quoted.len().min(ihl + 8);
    icmp(ip, ty, code, [0; 4], &quoted[..n])
}

/// What a packet is, for tables and for building answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    pub proto: u8,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    pub id: u16,
    /// Ports (TCP/UDP), or ICMP id in both for echo.
    pub sport: u16,
    pub dport: u16,
    pub tcp_flags: u8,
    pub seq: u32,
    pub icmp_type: u8,
    pub icmp_code: u8,
}

impl Summary {
    pub fn parse(p: &[u8]) -> Option<Summary> {
        if p.len() < 20 || p[0] >> 4 != 4 {
            return None;
        }
        let ihl = usize::from(p[0] & 0x0f) * 4;
        let l4 = p.get(ihl..)?;
        let a = |o: usize| Ipv4Addr::new(p[o], p[o + 1], p[o + 2], p[o + 3]);
        let be16 = |b: &[u8], o: usize| b.get(o..o + 2).map(|x| u16::from_be_bytes([x[0], x[1]]));
        let mut s = Summary {
            proto: p[9],
            src: a(12),
            dst: a(16),
            ttl: p[8],
            id: u16::from_be_bytes([p[4], p[5]]),
            sport: 0,
            dport: 0,
            tcp_flags: 0,
            seq: 0,
            icmp_type: 0,
            icmp_code: 0,
        };
        match s.proto {
            TCP | UDP => {
                s.sport = be16(l4, 0)?;
                s.dport = be16(l4, 2)?;
                if s.proto == TCP {
                    s.tcp_flags = *l4.get(13)?;
                    let q = l4.get(4..8)?;
                    s.seq = u32::from_be_bytes([q[0], q[1], q[2], q[3]]);
                }
            }
            ICMP => {
                s.icmp_type = *l4.first()?;
                s.icmp_code = *l4.get(1)?;
                if matches!(s.icmp_type, 0 | 8) {
                    s.sport = be16(l4, 4)?;
                    s.dport = s.sport;
                }
            }
            _ => {}
        }
        Some(s)
    }

    /// The quoted packet of an ICMP error.
    pub fn quoted(p: &[u8]) -> Option<&[u8]> {
        let ihl = usize::from(p.first()? & 0x0f) * 4;
        (p.get(9) == Some(&ICMP) && matches!(p.get(ihl), Some(3 | 11 | 12)))
            .then(|| p.get(ihl + 8..))
            .flatten()
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.proto {
            TCP => {
                let mut fl = String::new();
                for (b, c) in [
                    (flags::SYN, 'S'),
                    (flags::ACK, 'A'),
                    (flags::FIN, 'F'),
                    (flags::RST, 'R'),
                    (flags::PSH, 'P'),
                ] {
                    if self.tcp_flags & b != 0 {
                        fl.push(c);
                    }
                }
                write!(
                    f,
                    "tcp {}:{} > {}:{} [{fl}]",
                    self.src, self.sport, self.dst, self.dport
                )
            }
            UDP => write!(
                f,
                "udp {}:{} > {}:{}",
                self.src, self.sport, self.dst, self.dport
            ),
            ICMP => match self.icmp_type {
                0 | 8 => write!(
                    f,
                    "icmp echo-{} {} > {} id {}",
                    if self.icmp_type == 8 { "req" } else { "reply" },
                    self.src,
                    self.dst,
                    self.sport
                ),
                t => write!(
                    f,
                    "icmp {}/{} {} > {}",
                    t, self.icmp_code, self.src, self.dst
                ),
            },
            p => write!(f, "proto {p} {} > {}", self.src, self.dst),
        }
    }
}

/// Completes a TCP or UDP checksum the kernel left for offload: a packet
/// built with `CHECKSUM_PARTIAL` (nf_reject_ipv4's `nf_send_reset` does
/// this) crosses a veth with only the pseudo-header sum in its checksum
/// field, which a NIC would complete on a real wire. Returns whether it
/// changed anything.
pub fn complete_partial_checksum(p: &mut [u8]) -> bool {
    if checksums_ok(p) {
        return false;
    }
    let Some(s) = Summary::parse(p) else {
        return false;
    };
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([p[2], p[3]])).min(p.len());
    let at = match s.proto {
        TCP => ihl + 16,
        UDP => ihl + 6,
        _ => return false,
    };
    if total < at + 2 {
        return false;
    }
    let l4len = total - ihl;
    let partial = !fold(pseudo(s.src, s.dst, s.proto, l4len));
    if u16::from_be_bytes([p[at], p[at + 1]]) != partial {
        return false;
    }
    p[at] = 0;
    p[at + 1] = 0;
    let c = fold(sum(&p[ihl..total], pseudo(s.src, s.dst, s.proto, l4len)));
    p[at..at + 2].copy_from_slice(&c.to_be_bytes());
    true
}

/// Whether the IPv4 header checksum and the TCP/UDP/ICMP checksum of `p`
/// are correct.
pub fn checksums_ok(p: &[u8]) -> bool {
    let Some(s) = Summary::parse(p) else {
        return false;
    };
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([p[2], p[3]])).min(p.len());
    if checksum(&p[..ihl]) != 0 || total < ihl {
        return false;
    }
    let l4 = &p[ihl..total];
    match s.proto {
        TCP => fold(sum(l4, pseudo(s.src, s.dst, TCP, l4.len()))) == 0,
        UDP => {
            l4.get(6..8) == Some(&[0, 0]) || fold(sum(l4, pseudo(s.src, s.dst, UDP, l4.len()))) == 0
        }
        ICMP => checksum(l4) == 0,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_packets_carry_valid_checksums() {
        let ip = Ip::new(
            Ipv4Addr::new(192, 168, 1, 10),
            Ipv4Addr::new(203, 0, 113, 9),
            7,
        );
        for p in [
            tcp(ip, 40000, 80, 1, 0, flags::SYN, &[]),
            udp(ip, 40000, 53, b"abc"),
            echo(ip, true, 9, 1),
        ] {
            assert!(checksums_ok(&p), "{:?}", Summary::parse(&p));
        }
    }

    #[test]
    fn a_flipped_bit_breaks_the_checksum() {
        let ip = Ip::new(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2), 7);
        let mut p = udp(ip, 1, 2, b"x");
        p[28] ^= 1;
        assert!(!checksums_ok(&p));
    }

    #[test]
    fn a_partial_offload_checksum_is_completed_and_nothing_else_is() {
        let ip = Ip::new(
            Ipv4Addr::new(192, 168, 10, 253),
            Ipv4Addr::new(203, 0, 113, 253),
            7,
        );
        let good = tcp(ip, 22, 33001, 0, 78, flags::RST | flags::ACK, &[]);
        // What nf_send_reset leaves for offload: the folded pseudo-header
        // sum, not complemented.
        let mut partial = good.clone();
        let p = !fold(pseudo(ip.src, ip.dst, TCP, 20));
        partial[36..38].copy_from_slice(&p.to_be_bytes());
        assert!(complete_partial_checksum(&mut partial));
        assert_eq!(partial, good);
        let mut broken = good.clone();
        broken[36] ^= 0x55;
        assert!(
            !complete_partial_checksum(&mut broken),
            "a wrong checksum stays wrong"
        );
    }

    #[test]
    fn summary_reads_what_was_built() {
        // 192.168.1.10:40000 -> 203.0.113.9:80 SYN, as tshark would show it.
        let ip = Ip::new(
            Ipv4Addr::new(192, 168, 1, 10),
            Ipv4Addr::new(203, 0, 113, 9),
            7,
        );
        let s = Summary::parse(&tcp(ip, 40000, 80, 5, 0, flags::SYN, &[])).unwrap();
        assert_eq!(s.to_string(), "tcp 192.168.1.10:40000 > 203.0.113.9:80 [S]");
        assert_eq!((s.id, s.ttl, s.seq), (7, 64, 5));
    }
}
