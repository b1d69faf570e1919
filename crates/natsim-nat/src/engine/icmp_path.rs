//! ICMP that is not a query: errors, planned by [`crate::icmp`] and
//! counted and routed here, and the other types, which only the router
//! itself may want.

use super::*;

impl NatEngine {
    /// An ICMP message that is neither a query nor an error: only the
    /// router itself may want it (RFC 5508 leaves the rest to
    /// configuration).
    pub(super) fn icmp_other<R: Routes + ?Sized, T: TraceSink>(
        &mut self,
        icmp_type: u8,
        dst: Ipv4Addr,
        routes: &R,
        trace: &mut T,
    ) -> Verdict {
        match routes.route(dst) {
            Route::Local => Verdict::Local,
            _ => self.drop(
                Proto::Icmp,
                DropReason::IcmpUnsupported { icmp_type },
                trace,
            ),
        }
    }

    /// An ICMP error: planned by [`icmp::plan`], counted and routed here.
    #[inline(never)]
    pub(super) fn icmp_error<R: Routes + ?Sized, T: TraceSink>(
        &mut self,
        ingress: IfaceId,
        frame: &mut [u8],
        p: &Parsed,
        routes: &R,
        trace: &mut T,
    ) -> Verdict {
        let at = icmp::Arrival {
            outside: self.role(ingress) == Some(Role::Outside),
            local: ingress == IfaceId::LOCAL,
        };
        match icmp::plan(&self.table, &self.cfg.rules.rules, at, frame, p) {
            Err(reason) => self.drop(Proto::Icmp, reason, trace),
            Ok(icmp::Plan::AsIs) => self.route_verdict(Proto::Icmp, p.flow.dst.addr, routes, trace),
            Ok(icmp::Plan::Rewrite(rw)) => {
                let dst = icmp::apply(frame, p, &rw, trace);
                self.stats.icmp.translated += 1;
                self.route_verdict(Proto::Icmp, dst, routes, trace)
            }
        }
    }
}
