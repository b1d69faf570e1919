//! ICMP error translation (RFC 5508 §4.2, RFC 5382 REQ-9; SPEC.md §3).
//!
//! An error quotes a packet that crossed the NAT. The quoted packet is
//! looked up as if it travelled the other way; its addresses and ports are
//! restored (inner IP checksum and, where quoted, the inner transport
//! checksum fixed incrementally), the outer addresses are translated, and
//! the outer ICMP checksum is recomputed over the whole message. Errors
//! that quote no known connection are dropped, except those the router
//! itself generates (TTL exceeded for a packet it never translated).

use crate::config::{Action, Chain, IfaceId, Role};
use crate::engine::NatEngine;
use crate::flow::{Dir, Flow, Proto};
use crate::frame::{self, Parsed, L4};
use crate::trace::{NatStep, TraceSink};
use crate::verdict::{DropReason, Layer, Routes, Verdict};
use etherparse::Ipv4HeaderSlice;
use std::net::Ipv4Addr;

/// The quoted packet inside an ICMP error.
struct Inner {
    l3: usize,
    l4: usize,
    /// Transport bytes quoted.
    avail: usize,
    kind: L4,
    flow: Flow,
}

fn parse_inner(buf: &[u8], p: &Parsed) -> Result<Inner, DropReason> {
    let l3 = p.l4 + 8;
    let trunc = DropReason::Truncated {
        layer: Layer::IcmpInner,
    };
    let quoted = buf.get(l3..p.end).ok_or(trunc)?;
    let ip = Ipv4HeaderSlice::from_slice(quoted).map_err(|_| trunc)?;
    let l4 = l3 + usize::from(ip.ihl()) * 4;
    if l4 > p.end {
        return Err(trunc);
    }
    let proto = ip.protocol().0;
    let (kind, sp, dp) = frame::transport(buf, l4, p.end, proto, true)?;
    if matches!(kind, L4::IcmpError | L4::IcmpOther { .. }) {
        // Never translate an error about an error (RFC 1122 §3.2.2).
        return Err(DropReason::IcmpErrorNoMatch);
    }
    Ok(Inner {
        l3,
        l4,
        avail: p.end - l4,
        kind,
        flow: Flow::new(
            Proto::from_ip_number(proto),
            crate::flow::Endpoint::new(ip.source_addr(), sp),
            crate::flow::Endpoint::new(ip.destination_addr(), dp),
        ),
    })
}

pub(crate) fn translate_error<R: Routes + ?Sized, T: TraceSink>(
    nat: &mut NatEngine,
    ingress: IfaceId,
    frame: &mut [u8],
    p: &Parsed,
    routes: &R,
    trace: &mut T,
) -> Verdict {
    let inner = match parse_inner(frame, p) {
        Ok(i) => i,
        Err(r) => return nat.drop(Proto::Icmp, r, trace),
    };
    let (outer_src, outer_dst) = (p.flow.src.addr, p.flow.dst.addr);
    // (inner tuple to restore, outer src, outer dst)
    let found = if let Some((id, dir)) = nat.table().lookup(&inner.flow.reversed()) {
        let c = nat.table().get(id);
        // `a`: the tuple as seen in the error's direction; `b`: the other.
        let (a, b) = match dir {
            Dir::Reply => (c.reply, c.orig),
            Dir::Original => (c.orig, c.reply),
        };
        let new_inner = b;
        let new_src = if outer_src == a.src.addr {
            b.dst.addr
        } else {
            outer_src
        };
        let new_dst = if outer_dst == a.dst.addr {
            b.src.addr
        } else {
            outer_dst
        };
        Some((new_inner, new_src, new_dst))
    } else {
        static_translation(nat, ingress, &inner, outer_src, outer_dst)
    };
    let Some((new_inner, new_src, new_dst)) = found else {
        if ingress == IfaceId::LOCAL {
            // The router's own error about a packet it never translated.
            return nat.route(Proto::Icmp, outer_dst, routes, trace);
        }
        return nat.drop(Proto::Icmp, DropReason::IcmpErrorNoMatch, trace);
    };
    if new_inner != inner.flow {
        frame::rewrite(
            frame,
            inner.l3,
            inner.l4,
            inner.avail,
            inner.kind,
            inner.flow,
            new_inner,
        );
        trace.step(NatStep::IcmpInnerTranslated {
            before: inner.flow,
            after: new_inner,
        });
    }
    if (new_src, new_dst) != (outer_src, outer_dst) {
        frame::set_addrs(frame, p.l3, new_src, new_dst);
        let mut after = p.flow;
        after.src.addr = new_src;
        after.dst.addr = new_dst;
        trace.step(NatStep::Translated {
            before: p.flow,
            after,
        });
    }
    frame::recompute_icmp(frame, p.l4, p.end);
    nat.count_translated(Proto::Icmp);
    nat.route(Proto::Icmp, new_dst, routes, trace)
}

/// One-to-one rules are stateless, so their errors are too: an error
/// arriving outside for a NETMAP'd address maps its outer destination and
/// the quoted source back; one leaving maps the outer source and the quoted
/// destination.
fn static_translation(
    nat: &NatEngine,
    ingress: IfaceId,
    inner: &Inner,
    outer_src: Ipv4Addr,
    outer_dst: Ipv4Addr,
) -> Option<(Flow, Ipv4Addr, Ipv4Addr)> {
    let outside = nat.role_of(ingress) == Some(Role::Outside);
    for (_, r) in nat.static_rules() {
        let Action::Netmap { to } = r.action else {
            continue;
        };
        match r.chain {
            Chain::Prerouting
                if outside
                    && r.matches.dst.is_some_and(|d| {
                        d.contains(outer_dst) && d.contains(inner.flow.src.addr)
                    }) =>
            {
                let mut f = inner.flow;
                f.src.addr = to.netmap(f.src.addr);
                return Some((f, outer_src, to.netmap(outer_dst)));
            }
            Chain::Postrouting
                if !outside
                    && r.matches.src.is_some_and(|s| {
                        s.contains(outer_src) && s.contains(inner.flow.dst.addr)
                    }) =>
            {
                let mut f = inner.flow;
                f.dst.addr = to.netmap(f.dst.addr);
                return Some((f, to.netmap(outer_src), outer_dst));
            }
            _ => {}
        }
    }
    None
}
