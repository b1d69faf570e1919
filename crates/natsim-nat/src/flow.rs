//! Flows: the 5-tuples the engine matches, tracks and rewrites.

use core::fmt;
use std::net::Ipv4Addr;

/// Transport protocols the engine tracks. Other IP protocols are carried
/// only by one-to-one (static) rules, which need no ports.
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Tcp,
    Udp,
    /// ICMP queries (echo): the identifier plays the part of a port (RFC 5508).
    Icmp,
    /// Any other IP protocol number.
    Other(u8),
}

impl Proto {
    pub const fn from_ip_number(n: u8) -> Proto {
        match n {
            6 => Proto::Tcp,
            17 => Proto::Udp,
            1 => Proto::Icmp,
            other => Proto::Other(other),
        }
    }
    pub const fn ip_number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::Icmp => 1,
            Proto::Other(n) => n,
        }
    }
    pub const fn has_ports(self) -> bool {
        matches!(self, Proto::Tcp | Proto::Udp | Proto::Icmp)
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Proto::Tcp => f.write_str("tcp"),
            Proto::Udp => f.write_str("udp"),
            Proto::Icmp => f.write_str("icmp"),
            Proto::Other(n) => write!(f, "ip/{n}"),
        }
    }
}

/// An address and port. For ICMP queries the port is the echo identifier
/// on the querying side and 0 on the answering side.
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    pub addr: Ipv4Addr,
    pub port: u16,
}

impl Endpoint {
    pub const fn new(addr: Ipv4Addr, port: u16) -> Self {
        Endpoint { addr, port }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.addr, self.port)
    }
}

/// A unidirectional 5-tuple as it appears in one packet's headers.
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Flow {
    pub proto: Proto,
    pub src: Endpoint,
    pub dst: Endpoint,
}

impl Flow {
    pub const fn new(proto: Proto, src: Endpoint, dst: Endpoint) -> Self {
        Flow { proto, src, dst }
    }
    /// The same flow seen from the other end.
    pub const fn reversed(self) -> Flow {
        Flow {
            proto: self.proto,
            src: self.dst,
            dst: self.src,
        }
    }
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} -> {}", self.proto, self.src, self.dst)
    }
}

/// Which way a packet travels relative to the connection that carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dir {
    /// The direction of the packet that created the connection.
    Original,
    /// The answering direction.
    Reply,
}

impl Dir {
    pub const fn flip(self) -> Dir {
        match self {
            Dir::Original => Dir::Reply,
            Dir::Reply => Dir::Original,
        }
    }
}

/// An IPv4 prefix such as `192.168.1.0/24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Prefix {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl Prefix {
    /// Builds a prefix; host bits of `addr` are kept (they matter to NETMAP
    /// only through the mask). Lengths above 32 are clamped to 32.
    pub const fn new(addr: Ipv4Addr, len: u8) -> Self {
        Prefix {
            addr,
            len: if len > 32 { 32 } else { len },
        }
    }
    pub const fn host(addr: Ipv4Addr) -> Self {
        Prefix { addr, len: 32 }
    }
    pub const ANY: Prefix = Prefix {
        addr: Ipv4Addr::UNSPECIFIED,
        len: 0,
    };
    pub const fn mask(self) -> u32 {
        if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - self.len as u32)
        }
    }
    pub const fn network(self) -> u32 {
        self.addr.to_bits() & self.mask()
    }
    pub const fn contains(self, a: Ipv4Addr) -> bool {
        a.to_bits() & self.mask() == self.network()
    }
    /// Number of addresses covered (2^(32-len)), as u64 so /0 fits.
    pub const fn size(self) -> u64 {
        1u64 << (32 - self.len as u32)
    }
    pub const fn overlaps(self, other: Prefix) -> bool {
        let m = if self.len < other.len {
            self.mask()
        } else {
            other.mask()
        };
        self.addr.to_bits() & m == other.addr.to_bits() & m
    }
    /// NETMAP: keep the host bits of `a`, take the network bits from `self`.
    pub const fn netmap(self, a: Ipv4Addr) -> Ipv4Addr {
        Ipv4Addr::from_bits((a.to_bits() & !self.mask()) | self.network())
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// An inclusive port range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub const ALL: PortRange = PortRange {
        first: 0,
        last: 65535,
    };
    /// The range masquerade uses when none is given (as Linux: 1024-65535
    /// for sources at or above 1024).
    pub const EPHEMERAL: PortRange = PortRange {
        first: 1024,
        last: 65535,
    };
    pub const fn single(p: u16) -> Self {
        PortRange { first: p, last: p }
    }
    pub const fn new(first: u16, last: u16) -> Self {
        PortRange { first, last }
    }
    pub const fn contains(self, p: u16) -> bool {
        self.first <= p && p <= self.last
    }
    pub const fn len(self) -> u32 {
        if self.last < self.first {
            0
        } else {
            self.last as u32 - self.first as u32 + 1
        }
    }
    pub const fn is_empty(self) -> bool {
        self.len() == 0
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netmap_keeps_host_bits() {
        let p = Prefix::new(Ipv4Addr::new(203, 0, 113, 0), 24);
        assert_eq!(
            p.netmap(Ipv4Addr::new(192, 168, 1, 10)),
            Ipv4Addr::new(203, 0, 113, 10)
        );
    }

    #[test]
    fn zero_length_prefix_contains_everything() {
        assert!(Prefix::ANY.contains(Ipv4Addr::new(8, 8, 8, 8)));
        assert_eq!(Prefix::ANY.size(), 1 << 32);
    }

    #[test]
    fn overlapping_prefixes_are_detected_both_ways() {
        let a = Prefix::new(Ipv4Addr::new(10, 0, 0, 0), 8);
        let b = Prefix::new(Ipv4Addr::new(10, 1, 0, 0), 16);
        let c = Prefix::new(Ipv4Addr::new(11, 0, 0, 0), 8);
        assert!(a.overlaps(b) && b.overlaps(a));
        assert!(!a.overlaps(c));
    }
}
