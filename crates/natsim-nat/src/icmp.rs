//! ICMP error translation (RFC 5508 §4.2, RFC 5382 REQ-9).
//!
//! An error quotes a packet that crossed the NAT. The quoted packet is
//! looked up as if it travelled the other way; its addresses and ports are
//! restored (inner IP checksum and, where quoted, the inner transport
//! checksum fixed incrementally), the outer addresses are translated, and
//! the outer ICMP checksum is recomputed over the whole message. Errors
//! that quote no known connection are dropped, except those the router
//! itself generates (TTL exceeded for a packet it never translated).
//!
//! [`plan`] only reads: it answers with the rewrite to make or the reason
//! to drop; [`apply`] makes the rewrite. Counting and routing stay with
//! the engine.

use crate::config::{Action, Chain, Rule};
use crate::flow::{Dir, Endpoint, Flow, Proto};
use crate::frame::{self, Parsed, L4};
use crate::table::Table;
use crate::trace::{NatStep, TraceSink};
use crate::verdict::{DropReason, Layer};
use etherparse::Ipv4HeaderSlice;
use std::net::Ipv4Addr;

/// The quoted packet inside an ICMP error.
#[derive(Clone, Copy, Debug)]
struct Inner {
    l3: usize,
    l4: usize,
    /// Transport bytes quoted.
    avail: usize,
    kind: L4,
    flow: Flow,
}

/// How an ICMP error is to be rewritten.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ErrorRewrite {
    inner: Inner,
    /// The quoted tuple to restore.
    new_inner: Flow,
    new_src: Ipv4Addr,
    new_dst: Ipv4Addr,
}

/// What to do with an ICMP error.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Plan {
    Rewrite(ErrorRewrite),
    /// The router's own error about a packet it never translated: route it
    /// as it is.
    AsIs,
}

/// Where an error arrived, as the planner needs it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Arrival {
    /// On an outside interface.
    pub outside: bool,
    /// Sent by the router itself.
    pub local: bool,
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
            Endpoint::new(ip.source_addr(), sp),
            Endpoint::new(ip.destination_addr(), dp),
        ),
    })
}

/// Decides how the ICMP error in `buf` (parsed as `p`) is translated.
pub(crate) fn plan(
    table: &Table,
    rules: &[Rule],
    at: Arrival,
    buf: &[u8],
    p: &Parsed,
) -> Result<Plan, DropReason> {
    let inner = parse_inner(buf, p)?;
    let (outer_src, outer_dst) = (p.flow.src.addr, p.flow.dst.addr);
    let found = if let Some((id, dir)) = table.lookup(&inner.flow.reversed()) {
        let c = table.get(id);
        // `a`: the tuple as seen in the error's direction; `b`: the other.
        let (a, b) = match dir {
            Dir::Reply => (c.reply, c.orig),
            Dir::Original => (c.orig, c.reply),
        };
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
        Some((b, new_src, new_dst))
    } else {
        static_translation(rules, at.outside, &inner, outer_src, outer_dst)
    };
    match found {
        Some((new_inner, new_src, new_dst)) => Ok(Plan::Rewrite(ErrorRewrite {
            inner,
            new_inner,
            new_src,
            new_dst,
        })),
        None if at.local => Ok(Plan::AsIs),
        None => Err(DropReason::IcmpErrorNoMatch),
    }
}

/// Makes the rewrite `rw` in `buf`; returns the new outer destination.
pub(crate) fn apply<T: TraceSink>(
    buf: &mut [u8],
    p: &Parsed,
    rw: &ErrorRewrite,
    trace: &mut T,
) -> Ipv4Addr {
    let inner = &rw.inner;
    if rw.new_inner != inner.flow {
        frame::rewrite(
            buf,
            inner.l3,
            inner.l4,
            inner.avail,
            inner.kind,
            inner.flow,
            rw.new_inner,
        );
        trace.step(NatStep::IcmpInnerTranslated {
            before: inner.flow,
            after: rw.new_inner,
        });
    }
    if (rw.new_src, rw.new_dst) != (p.flow.src.addr, p.flow.dst.addr) {
        frame::set_addrs(buf, p.l3, rw.new_src, rw.new_dst);
        let mut after = p.flow;
        after.src.addr = rw.new_src;
        after.dst.addr = rw.new_dst;
        trace.step(NatStep::Translated {
            before: p.flow,
            after,
        });
    }
    frame::recompute_icmp(buf, p.l4, p.end);
    rw.new_dst
}

/// One-to-one rules are stateless, so their errors are too: an error
/// arriving outside for a NETMAP'd address maps its outer destination and
/// the quoted source back; one leaving maps the outer source and the quoted
/// destination.
fn static_translation(
    rules: &[Rule],
    outside: bool,
    inner: &Inner,
    outer_src: Ipv4Addr,
    outer_dst: Ipv4Addr,
) -> Option<(Flow, Ipv4Addr, Ipv4Addr)> {
    for r in rules {
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
