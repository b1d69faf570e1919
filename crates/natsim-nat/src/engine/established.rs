//! The established path: a packet of a tracked connection is translated
//! from the connection's state alone; its TCP state and timer are updated.

use super::*;

impl NatEngine {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn tracked<R: Routes + ?Sized, T: TraceSink>(
        &mut self,
        now: Instant,
        ingress: IfaceId,
        frame: &mut Vec<u8>,
        p: &Parsed,
        id: ConnId,
        dir: Dir,
        routes: &R,
        trace: &mut T,
    ) -> Verdict {
        trace.step(NatStep::ConnMatched { conn: id, dir });
        let tus = &self.timeouts_us;
        let udp_refresh = self.cfg.behaviour.udp_refresh;
        let c = self.table.get_mut(id);
        let target = match dir {
            Dir::Original => c.reply.reversed(),
            Dir::Reply => c.orig.reversed(),
        };
        let mut refresh = true;
        let timeout = match p.l4_kind {
            L4::Tcp { flags } => {
                let from = c.tcp;
                let to = tcp::next(from, dir, flags);
                if to != from {
                    c.tcp = to;
                    trace.step(NatStep::TcpStateChanged { conn: id, from, to });
                }
                tus.tcp[to as usize]
            }
            L4::Udp => {
                let outbound = (dir == Dir::Original) == c.has(ConnFlags::OUTBOUND);
                if udp_refresh == UdpRefresh::OutboundOnly && !outbound {
                    refresh = false;
                }
                let replied = dir == Dir::Reply || c.has(ConnFlags::REPLIED);
                let age = now.total_micros().saturating_sub(c.born);
                // Zero: the first reply switches at once (see Timeouts).
                if replied && (age > tus.udp_stream_after || tus.udp_stream_after == 0) {
                    tus.udp_replied
                } else {
                    tus.udp_unreplied
                }
            }
            L4::IcmpQuery { .. } => tus.icmp,
            _ => tus.generic,
        };
        if dir == Dir::Reply && !c.has(ConnFlags::REPLIED) {
            // Later refreshes use the replied timeout; this packet itself
            // refreshes only if the refresh policy says so (RFC 4787 REQ-6).
            c.flags |= ConnFlags::REPLIED;
        }
        let alg = c.has(ConnFlags::ALG);
        // NEW until a reply was seen (this packet may be it), then
        // ESTABLISHED: nf_conntrack's ctinfo as the filter sees it.
        let state = if c.has(ConnFlags::REPLIED) {
            crate::config::CtStates::ESTABLISHED
        } else {
            crate::config::CtStates::NEW
        };
        let dnat_conn = c.orig.dst != c.reply.src;
        if !self.cfg.filter.is_open() && ingress != IfaceId::LOCAL {
            let (hook, egress) = match routes.route(target.dst.addr) {
                Route::Forward { iface, .. } => (crate::config::FilterHook::Forward, Some(iface)),
                _ => (crate::config::FilterHook::Input, None),
            };
            let seen = Flow::new(p.flow.proto, p.flow.src, target.dst);
            if let Some(v) = self.filter(
                frame, p, hook, &seen, ingress, egress, dnat_conn, state, trace,
            ) {
                return v;
            }
        }
        if refresh {
            self.table
                .set_expiry(id, now.total_micros().saturating_add(timeout));
        }
        if target != p.flow {
            frame::rewrite_parsed(frame, p, target);
            self.stats.proto_mut(p.flow.proto).translated += 1;
            trace.step(NatStep::Translated {
                before: p.flow,
                after: target,
            });
        }
        if alg {
            if let Err(reason) = self.alg_segment(now, id, dir, frame, p, trace) {
                return self.drop(p.flow.proto, reason, trace);
            }
        }
        self.route_verdict(p.flow.proto, target.dst.addr, routes, trace)
    }
}
