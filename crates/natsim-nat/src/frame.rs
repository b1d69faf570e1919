//! Locating and rewriting the headers of one Ethernet frame.
//!
//! [`Parsed::parse`] validates the Ethernet, optional 802.1Q, IPv4 and
//! transport headers with `etherparse` slices and records fixed offsets;
//! the rewrite functions then patch addresses, ports and checksums in place
//! (RFC 1624 incremental updates). Nothing here allocates.
//!
//! Contract: after `parse` succeeds, every offset it recorded is in bounds,
//! so the accessors and rewrites below do not panic.

use crate::checksum::Delta;
use crate::flow::{Endpoint, Flow, Proto};
use crate::verdict::{DropReason, Layer};
use etherparse::{Ipv4HeaderSlice, TcpHeaderSlice};
use std::net::Ipv4Addr;

pub(crate) const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_VLAN: u16 = 0x8100;
pub(crate) const ETH_LEN: usize = 14;

/// The flags byte of a TCP header (RFC 9293 §3.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: TcpFlags = TcpFlags(0x01);
    pub const SYN: TcpFlags = TcpFlags(0x02);
    pub const RST: TcpFlags = TcpFlags(0x04);
    pub const ACK: TcpFlags = TcpFlags(0x10);
    /// Whether every bit of `f` is set.
    pub const fn has(self, f: TcpFlags) -> bool {
        self.0 & f.0 == f.0
    }
}

impl core::ops::BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, o: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | o.0)
    }
}

/// What the transport header turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum L4 {
    Tcp {
        flags: TcpFlags,
    },
    Udp,
    /// ICMP query (echo and friends); `request` says which side the
    /// identifier belongs to. Type and code are kept for `--icmp-type`.
    IcmpQuery {
        request: bool,
        icmp_type: u8,
        code: u8,
    },
    /// ICMP error (destination unreachable, time exceeded, parameter problem).
    IcmpError,
    /// Another ICMP type.
    IcmpOther {
        icmp_type: u8,
    },
    /// Another IP protocol: no ports.
    Other,
}

/// Offsets and fields of a validated frame.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Parsed {
    /// Offset of the IPv4 header.
    pub l3: usize,
    /// Offset of the transport header.
    pub l4: usize,
    /// End of the IP packet (Ethernet padding excluded).
    pub end: usize,
    pub l4_kind: L4,
    pub flow: Flow,
    /// The first fragment of a fragmented datagram (More Fragments set,
    /// offset 0): its transport header is here, the rest of the datagram
    /// is not. A later fragment does not parse ([`DropReason::Fragment`]).
    pub first_fragment: bool,
}

/// Returns the IPv4 offset of an Ethernet II frame (after one optional
/// 802.1Q tag, which stays in place).
#[inline]
pub(crate) fn ipv4_offset(frame: &[u8]) -> Result<usize, DropReason> {
    if frame.len() < ETH_LEN {
        return Err(DropReason::Truncated {
            layer: Layer::Ethernet,
        });
    }
    let mut ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    let mut l3 = ETH_LEN;
    if ethertype == ETHERTYPE_VLAN {
        if frame.len() < ETH_LEN + 4 {
            return Err(DropReason::Truncated { layer: Layer::Vlan });
        }
        ethertype = u16::from_be_bytes([frame[16], frame[17]]);
        l3 += 4;
    }
    if ethertype != ETHERTYPE_IPV4 {
        return Err(DropReason::NotIpv4 { ethertype });
    }
    Ok(l3)
}

fn icmp_is_query_request(t: u8) -> Option<bool> {
    match t {
        8 | 13 | 15 | 17 => Some(true),
        0 | 14 | 16 | 18 => Some(false),
        _ => None,
    }
}

pub(crate) fn icmp_is_error(t: u8) -> bool {
    matches!(t, 3 | 11 | 12)
}

/// Reads the transport header at `buf[l4..end]` for protocol `proto`,
/// giving its kind and (src port, dst port). `quoted` relaxes the length
/// rules for the truncated packet inside an ICMP error: 8 bytes suffice.
#[inline]
pub(crate) fn transport(
    buf: &[u8],
    l4: usize,
    end: usize,
    proto: u8,
    quoted: bool,
) -> Result<(L4, u16, u16), DropReason> {
    let seg = buf.get(l4..end).unwrap_or(&[]);
    let port = |i: usize| u16::from_be_bytes([seg[i], seg[i + 1]]);
    match proto {
        6 => {
            if quoted {
                if seg.len() < 8 {
                    return Err(DropReason::Truncated {
                        layer: Layer::IcmpInner,
                    });
                }
                let flags = TcpFlags(seg.get(13).copied().unwrap_or(0));
                return Ok((L4::Tcp { flags }, port(0), port(2)));
            }
            let tcp = TcpHeaderSlice::from_slice(seg)
                .map_err(|_| DropReason::Truncated { layer: Layer::Tcp })?;
            let flags = TcpFlags(seg[13]);
            Ok((L4::Tcp { flags }, tcp.source_port(), tcp.destination_port()))
        }
        17 => {
            if seg.len() < 8 {
                return Err(DropReason::Truncated {
                    layer: if quoted { Layer::IcmpInner } else { Layer::Udp },
                });
            }
            Ok((L4::Udp, port(0), port(2)))
        }
        1 => {
            if seg.len() < 8 {
                return Err(DropReason::Truncated {
                    layer: if quoted {
                        Layer::IcmpInner
                    } else {
                        Layer::Icmp
                    },
                });
            }
            let t = seg[0];
            if let Some(request) = icmp_is_query_request(t) {
                let id = port(4);
                let kind = L4::IcmpQuery {
                    request,
                    icmp_type: t,
                    code: seg[1],
                };
                Ok(if request {
                    (kind, id, 0)
                } else {
                    (kind, 0, id)
                })
            } else if icmp_is_error(t) {
                Ok((L4::IcmpError, 0, 0))
            } else {
                Ok((L4::IcmpOther { icmp_type: t }, 0, 0))
            }
        }
        _ => Ok((L4::Other, 0, 0)),
    }
}

impl Parsed {
    /// Validates `frame` down to the transport header.
    #[inline]
    pub fn parse(frame: &[u8]) -> Result<Parsed, DropReason> {
        match Parsed::fast(frame) {
            Some(p) => Ok(p),
            None => Parsed::full(frame),
        }
    }

    /// The common case read straight off the bytes: untagged IPv4, IHL 5,
    /// not a fragment, UDP or TCP with a well-formed header. It accepts
    /// only what [`full`](Self::full) accepts, with the same result; for
    /// anything else it answers `None` and the full parser decides.
    #[inline(always)]
    pub fn fast(frame: &[u8]) -> Option<Parsed> {
        let h: &[u8; 34] = frame.get(..34)?.try_into().ok()?;
        if h[12..14] != [0x08, 0x00] || h[14] != 0x45 {
            return None;
        }
        let total = usize::from(u16::from_be_bytes([h[16], h[17]]));
        let frag = u16::from_be_bytes([h[20], h[21]]);
        // More-fragments bit or a fragment offset.
        if frag & 0x3fff != 0 || total < 20 {
            return None;
        }
        let end = ETH_LEN + total;
        let seg = frame.get(34..end)?;
        let (l4_kind, sport, dport) = match h[23] {
            17 if seg.len() >= 8 => (L4::Udp, get16(seg, 0), get16(seg, 2)),
            6 if seg.len() >= 20 => {
                let data = usize::from(seg[12] >> 4) * 4;
                if data < 20 || data > seg.len() {
                    return None;
                }
                (
                    L4::Tcp {
                        flags: TcpFlags(seg[13]),
                    },
                    get16(seg, 0),
                    get16(seg, 2),
                )
            }
            _ => return None,
        };
        Some(Parsed {
            l3: ETH_LEN,
            l4: ETH_LEN + 20,
            end,
            l4_kind,
            flow: Flow {
                proto: Proto::from_ip_number(h[23]),
                src: Endpoint::new(Ipv4Addr::from_bits(get32(h, 26)), sport),
                dst: Endpoint::new(Ipv4Addr::from_bits(get32(h, 30)), dport),
            },
            first_fragment: false,
        })
    }

    /// Every frame: 802.1Q, options, all protocols, and the reasons to drop.
    pub fn full(frame: &[u8]) -> Result<Parsed, DropReason> {
        let l3 = ipv4_offset(frame)?;
        let ip = Ipv4HeaderSlice::from_slice(&frame[l3..]).map_err(|e| match e {
            etherparse::err::ipv4::HeaderSliceError::Len(_) => {
                DropReason::Truncated { layer: Layer::Ipv4 }
            }
            etherparse::err::ipv4::HeaderSliceError::Content(_) => DropReason::BadIpHeader,
        })?;
        let hlen = usize::from(ip.ihl()) * 4;
        let total = usize::from(ip.total_len());
        if total < hlen {
            return Err(DropReason::BadIpHeader);
        }
        let end = l3 + total;
        if end > frame.len() {
            return Err(DropReason::Truncated { layer: Layer::Ipv4 });
        }
        if u16::from(ip.fragments_offset()) != 0 {
            return Err(DropReason::Fragment);
        }
        let l4 = l3 + hlen;
        let proto_num = ip.protocol().0;
        let (l4_kind, sport, dport) = transport(frame, l4, end, proto_num, false)?;
        let flow = Flow {
            proto: Proto::from_ip_number(proto_num),
            src: Endpoint::new(ip.source_addr(), sport),
            dst: Endpoint::new(ip.destination_addr(), dport),
        };
        Ok(Parsed {
            l3,
            l4,
            end,
            l4_kind,
            flow,
            first_fragment: ip.more_fragments(),
        })
    }
}

fn get16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

fn get32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// Where the checksum of a transport header lives and how it behaves.
fn l4_checksum_offset(kind: L4) -> Option<(usize, bool)> {
    match kind {
        L4::Tcp { .. } => Some((16, false)),
        L4::Udp => Some((6, true)),
        L4::IcmpQuery { .. } => Some((2, false)),
        _ => None,
    }
}

/// Sets the IPv4 addresses of the header at `l3` from `old`'s to `new`'s,
/// updating the header checksum for each one that changed.
#[inline(always)]
fn rewrite_addrs(buf: &mut [u8], l3: usize, old: Flow, new: Flow) {
    let (os, od) = (old.src.addr.to_bits(), old.dst.addr.to_bits());
    let (ns, nd) = (new.src.addr.to_bits(), new.dst.addr.to_bits());
    let mut ip = Delta::default();
    if os != ns {
        put32(buf, l3 + 12, ns);
        ip.field32(os, ns);
    }
    if od != nd {
        put32(buf, l3 + 16, nd);
        ip.field32(od, nd);
    }
    if !ip.is_empty() {
        let c = get16(buf, l3 + 10);
        put16(buf, l3 + 10, ip.apply(c));
    }
}

/// Sets the TCP/UDP ports at `l4` from `old`'s to `new`'s and returns the
/// change to the transport checksum, pseudo-header addresses included
/// (they always count, changed or not).
#[inline(always)]
fn rewrite_ports(buf: &mut [u8], l4: usize, old: Flow, new: Flow) -> Delta {
    let mut d = Delta::default();
    d.field32(old.src.addr.to_bits(), new.src.addr.to_bits());
    d.field32(old.dst.addr.to_bits(), new.dst.addr.to_bits());
    if old.src.port != new.src.port {
        put16(buf, l4, new.src.port);
        d.field16(old.src.port, new.src.port);
    }
    if old.dst.port != new.dst.port {
        put16(buf, l4 + 2, new.dst.port);
        d.field16(old.dst.port, new.dst.port);
    }
    d
}

/// Applies `d` to the transport checksum at `at` (UDP's "none" stays).
#[inline(always)]
fn apply_l4(buf: &mut [u8], at: usize, udp: bool, d: Delta) {
    let c = get16(buf, at);
    put16(buf, at, if udp { d.apply_udp(c) } else { d.apply(c) });
}

/// Rewrites the IPv4 addresses and transport ports/identifier of the packet
/// whose IP header is at `l3` and transport header at `l4` so that its tuple
/// becomes `new`. `avail` is how many transport bytes are present (the
/// quoted packet of an ICMP error may stop before the checksum field, which
/// is then left alone). Checksums are updated incrementally.
#[inline]
pub(crate) fn rewrite(
    buf: &mut [u8],
    l3: usize,
    l4: usize,
    avail: usize,
    kind: L4,
    old: Flow,
    new: Flow,
) {
    rewrite_addrs(buf, l3, old, new);
    let l4d = match kind {
        L4::Tcp { .. } | L4::Udp => rewrite_ports(buf, l4, old, new),
        L4::IcmpQuery { request, .. } => {
            let (o, n) = if request {
                (old.src.port, new.src.port)
            } else {
                (old.dst.port, new.dst.port)
            };
            let mut d = Delta::default();
            if o != n {
                put16(buf, l4 + 4, n);
                d.field16(o, n);
            }
            d
        }
        _ => Delta::default(),
    };
    if let Some((off, udp)) = l4_checksum_offset(kind) {
        let moved = old.src.addr != new.src.addr || old.dst.addr != new.dst.addr;
        if avail >= off + 2 && (moved || !l4d.is_empty()) {
            apply_l4(buf, l4 + off, udp, l4d);
        }
    }
}

/// [`rewrite`] for the shape [`Parsed::fast`] accepts (untagged, IHL 5,
/// a whole TCP or UDP header): the same bytes, with the offsets fixed so
/// that one length check covers every access. False, and nothing written,
/// for another shape.
#[inline]
pub(crate) fn rewrite_plain(buf: &mut [u8], p: &Parsed, new: Flow) -> bool {
    const L3: usize = ETH_LEN;
    const L4: usize = ETH_LEN + 20;
    let (sum_at, udp) = match p.l4_kind {
        L4::Tcp { .. } => (L4 + 16, false),
        L4::Udp => (L4 + 6, true),
        _ => return false,
    };
    if p.l3 != L3 || p.l4 != L4 || p.end < sum_at + 2 || buf.len() < sum_at + 2 {
        return false;
    }
    rewrite_addrs(buf, L3, p.flow, new);
    let l4d = rewrite_ports(buf, L4, p.flow, new);
    apply_l4(buf, sum_at, udp, l4d);
    true
}

/// Rewrites the parsed packet's tuple `p.flow` into `new`: by fixed
/// offsets for the common shape, else by [`rewrite`].
#[inline]
pub(crate) fn rewrite_parsed(buf: &mut [u8], p: &Parsed, new: Flow) {
    if !rewrite_plain(buf, p, new) {
        rewrite(buf, p.l3, p.l4, p.end - p.l4, p.l4_kind, p.flow, new);
    }
}

/// Reads the IPv4 source and destination of the header at `l3`.
pub(crate) fn addrs(buf: &[u8], l3: usize) -> (Ipv4Addr, Ipv4Addr) {
    (
        Ipv4Addr::from_bits(get32(buf, l3 + 12)),
        Ipv4Addr::from_bits(get32(buf, l3 + 16)),
    )
}

/// Sets the IPv4 source/destination of the header at `l3`, fixing its
/// checksum but no transport checksum (for ICMP errors' outer header).
pub(crate) fn set_addrs(buf: &mut [u8], l3: usize, src: Ipv4Addr, dst: Ipv4Addr) {
    let (os, od) = addrs(buf, l3);
    let mut d = Delta::default();
    d.field32(os.to_bits(), src.to_bits());
    d.field32(od.to_bits(), dst.to_bits());
    put32(buf, l3 + 12, src.to_bits());
    put32(buf, l3 + 16, dst.to_bits());
    let c = get16(buf, l3 + 10);
    put16(buf, l3 + 10, d.apply(c));
}

/// Decreases the TTL of the IPv4 header at `l3` by one (never below
/// zero), fixing its checksum (RFC 1624).
pub(crate) fn decrement_ttl(buf: &mut [u8], l3: usize) {
    let Some(&ttl) = buf.get(l3 + 8) else { return };
    if ttl == 0 {
        return;
    }
    let old = get16(buf, l3 + 8);
    buf[l3 + 8] = ttl - 1;
    let new = get16(buf, l3 + 8);
    let mut d = Delta::default();
    d.field16(old, new);
    let c = get16(buf, l3 + 10);
    put16(buf, l3 + 10, d.apply(c));
}

/// Recomputes the ICMP checksum over `buf[l4..end]`.
pub(crate) fn recompute_icmp(buf: &mut [u8], l4: usize, end: usize) {
    put16(buf, l4 + 2, 0);
    let c = crate::checksum::checksum(&buf[l4..end]);
    put16(buf, l4 + 2, c);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_with_ethertype(t: u16) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[12..14].copy_from_slice(&t.to_be_bytes());
        f
    }

    #[test]
    fn arp_is_not_ipv4() {
        assert_eq!(
            Parsed::parse(&frame_with_ethertype(0x0806)).unwrap_err(),
            DropReason::NotIpv4 { ethertype: 0x0806 }
        );
    }

    #[test]
    fn every_truncation_of_an_ethernet_header_is_a_verdict() {
        for n in 0..14 {
            assert_eq!(
                Parsed::parse(&vec![0u8; n]).unwrap_err(),
                DropReason::Truncated {
                    layer: Layer::Ethernet
                }
            );
        }
    }

    fn built(tcp: bool, flow: Flow, cksum: u16, payload: &[u8]) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ethernet2([2; 6], [4; 6]).ipv4(
            flow.src.addr.octets(),
            flow.dst.addr.octets(),
            64,
        );
        let mut v = Vec::new();
        if tcp {
            b.tcp(flow.src.port, flow.dst.port, 7, 1024)
                .write(&mut v, payload)
                .unwrap();
        } else {
            b.udp(flow.src.port, flow.dst.port)
                .write(&mut v, payload)
                .unwrap();
        }
        // Any checksum value, including UDP's 0 ("none") and 0xFFFF.
        let at = if tcp { 14 + 20 + 16 } else { 14 + 20 + 6 };
        v[at..at + 2].copy_from_slice(&cksum.to_be_bytes());
        v
    }

    use proptest::prelude::*;

    proptest! {
        /// The fixed-offset rewrite writes exactly the bytes the general
        /// one writes, for any old and new tuple and any checksum.
        #[test]
        fn plain_rewrite_equals_the_general_one(
            tcp in any::<bool>(),
            a in any::<[u32; 4]>(),
            ports in any::<[u16; 4]>(),
            keep in any::<[bool; 4]>(),
            cksum in prop_oneof![Just(0u16), Just(0xffff), any::<u16>()],
            payload in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let ep = |a: u32, p: u16| Endpoint::new(Ipv4Addr::from_bits(a), p);
            let proto = if tcp { Proto::Tcp } else { Proto::Udp };
            let old = Flow { proto, src: ep(a[0], ports[0]), dst: ep(a[1], ports[1]) };
            let addr = |k: bool, o: u32, n: u32| if k { o } else { n };
            let port = |k: bool, o: u16, n: u16| if k { o } else { n };
            let new = Flow {
                proto,
                src: ep(addr(keep[0], a[0], a[2]), port(keep[1], ports[0], ports[2])),
                dst: ep(addr(keep[2], a[1], a[3]), port(keep[3], ports[1], ports[3])),
            };
            let frame = built(tcp, old, cksum, &payload);
            let p = Parsed::parse(&frame).unwrap();
            let mut general = frame.clone();
            rewrite(&mut general, p.l3, p.l4, p.end - p.l4, p.l4_kind, old, new);
            let mut plain = frame.clone();
            prop_assert!(rewrite_plain(&mut plain, &p, new));
            prop_assert_eq!(plain, general);
        }
    }

    #[test]
    fn plain_rewrite_refuses_another_shape() {
        let flow = Flow {
            proto: Proto::Udp,
            src: Endpoint::new(Ipv4Addr::new(10, 0, 0, 2), 1000),
            dst: Endpoint::new(Ipv4Addr::new(192, 0, 2, 1), 53),
        };
        let mut f = built(false, flow, 1, &[]);
        let mut p = Parsed::parse(&f).unwrap();
        p.l4_kind = L4::IcmpQuery {
            request: true,
            icmp_type: 8,
            code: 0,
        };
        let before = f.clone();
        assert!(!rewrite_plain(&mut f, &p, flow));
        p.l4_kind = L4::Udp;
        p.l3 = ETH_LEN + 4; // as if 802.1Q-tagged
        assert!(!rewrite_plain(&mut f, &p, flow));
        assert_eq!(f, before);
    }

    #[test]
    fn bad_ihl_is_a_bad_header() {
        let mut f = frame_with_ethertype(0x0800);
        f[14] = 0x44; // IHL 4 < 5
        assert_eq!(Parsed::parse(&f).unwrap_err(), DropReason::BadIpHeader);
    }
}
