//! A router: Ethernet interfaces, ARP (with proxy ARP for NAT-owned
//! addresses), a longest-prefix routing table, TTL, ICMP errors, the NAT
//! engine between prerouting and postrouting, and optionally its own
//! smoltcp stack for services it runs (an NT-based firewall's endpoint
//! mapper, REDIRECT targets).

use crate::host::Host;
use crate::packet::{arp_frame, clamp_mss, echo_reply, ipv4_of, l3_of, set_ttl};
use crate::trace::{nat_step, Disposition, Step};
use natsim_nat::wire::reply;
use natsim_nat::{IfaceId, Instant, NatEngine, NatStep, Prefix, Proto, Role, Route, Verdict};
use smoltcp::wire::*;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

mod arp;
mod forward;
mod icmp;
mod input;
mod local;

#[derive(Clone, Debug)]
pub struct RouterIface {
    pub name: String,
    pub segment: usize,
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
    pub role: Role,
    pub mac: [u8; 6],
    /// IP MTU of the interface's link.
    pub mtu: usize,
}

/// TCP MSS clamping of forwarded SYNs, as iptables' TCPMSS target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MssClamp {
    /// `--clamp-mss-to-pmtu`: the smaller of the egress and ingress MTU,
    /// less 40 (xt_TCPMSS tcpmss_mangle_packet).
    Pmtu,
    /// `--set-mss N`: lower any larger MSS to N.
    To(u16),
}

#[derive(Debug)]
struct Pending {
    iface: usize,
    frames: Vec<(Vec<u8>, Option<u64>)>,
    tries: u8,
    next_try: Instant,
}

/// What the router decided about one frame, for the simulator to act on.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Frames to transmit: (interface, frame, trace id to continue or None).
    pub tx: Vec<(usize, Vec<u8>, Option<u64>)>,
    /// Steps for this hop of the frame's trace.
    pub steps: Vec<Step>,
    pub iface_out: Option<usize>,
    /// Final disposition if the frame ends here.
    pub disposition: Option<Disposition>,
    /// Frames from the router itself that start new traces.
    pub originated: Vec<(usize, Vec<u8>)>,
    /// Frames the router's own stack sent, to route as local traffic.
    pub local_out: Vec<Vec<u8>>,
    /// Record steps (off: the hot path builds no strings).
    pub tracing: bool,
    /// The frame as it arrived, kept (only for a DF packet that may not
    /// fit an egress MTU) so "fragmentation needed" quotes what the sender
    /// sent, not the NAT's translation: Linux quotes the DNATed packet and
    /// nf_nat translates the error's inner header back (RFC 5508 §4.2).
    pub arrived: Option<Vec<u8>>,
    /// Set when the NAT reassembled the frame (Linux's nf_defrag): the
    /// largest fragment's IP length, which the frame is cut to on the way
    /// out as ip_do_fragment does with `frag_max_size`.
    pub refragment: Option<usize>,
}

impl Outcome {
    pub fn new(tracing: bool) -> Outcome {
        Outcome {
            tracing,
            ..Outcome::default()
        }
    }
    /// Records a step; `step` only runs when tracing.
    #[inline]
    pub fn step(&mut self, step: impl FnOnce() -> Step) {
        if self.tracing {
            self.steps.push(step());
        }
    }
}

pub(crate) struct Router {
    pub name: String,
    pub ifaces: Vec<RouterIface>,
    /// Static routes: (destination, via).
    pub routes: Vec<(Prefix, Ipv4Addr)>,
    pub nat: Option<NatEngine>,
    /// NAT-owned address ranges (pools, one-to-one outside prefixes).
    pub owned: Vec<(u32, u32)>,
    arp: BTreeMap<Ipv4Addr, [u8; 6]>,
    pending: BTreeMap<Ipv4Addr, Pending>,
    pub local: Option<Host>,
    pub local_mac: [u8; 6],
    /// Services of the local stack that answer on the router's addresses
    /// ahead of any NAT rule (the OS owns the port).
    pub local_services: BTreeSet<(Proto, u16)>,
    /// NAT decisions not tied to a frame (expiries), for reports.
    pub nat_log: Vec<(Instant, String)>,
    /// IP ID of the next packet the router itself builds (ICMP errors).
    ip_id: u16,
    /// Linux's ICMP error rate limits, for the errors the router and its
    /// NAT send.
    icmp_limit: reply::IcmpRateLimit,
    pub mss_clamp: Option<MssClamp>,
    pub block_icmp: bool,
    /// Answer echo requests to the router's own addresses.
    pub answer_ping: bool,
    /// Answer TCP/UDP to closed ports of the router's own addresses (RST,
    /// port unreachable) instead of staying silent.
    pub reject_closed_ports: bool,
}

fn mac_of(f: &[u8], at: usize) -> [u8; 6] {
    let mut m = [0; 6];
    m.copy_from_slice(&f[at..at + 6]);
    m
}

impl Router {
    pub fn new(
        name: &str,
        ifaces: Vec<RouterIface>,
        routes: Vec<(Prefix, Ipv4Addr)>,
        nat: Option<NatEngine>,
        owned: Vec<(u32, u32)>,
        local_mac: [u8; 6],
    ) -> Router {
        Router {
            name: name.to_string(),
            ifaces,
            routes,
            nat,
            owned,
            arp: BTreeMap::new(),
            pending: BTreeMap::new(),
            local: None,
            local_mac,
            local_services: BTreeSet::new(),
            nat_log: Vec::new(),
            ip_id: u16::from_be_bytes([local_mac[4], local_mac[5]]) ^ 0x3a5c,
            icmp_limit: Default::default(),
            mss_clamp: None,
            block_icmp: false,
            answer_ping: true,
            reject_closed_ports: true,
        }
    }

    fn is_mine(ifaces: &[RouterIface], owned: &[(u32, u32)], a: Ipv4Addr) -> bool {
        ifaces.iter().any(|i| i.addr == a)
            || owned
                .iter()
                .any(|&(f, l)| f <= a.to_bits() && a.to_bits() <= l)
    }

    /// Longest-prefix match over connected networks and static routes.
    fn route_in(
        ifaces: &[RouterIface],
        routes: &[(Prefix, Ipv4Addr)],
        owned: &[(u32, u32)],
        dst: Ipv4Addr,
    ) -> Route {
        if Self::is_mine(ifaces, owned, dst) {
            return Route::Local;
        }
        let mut best: Option<(u8, Route)> = None;
        for (k, i) in ifaces.iter().enumerate() {
            let p = Prefix::new(i.addr, i.prefix_len);
            if p.contains(dst) && best.is_none_or(|(l, _)| i.prefix_len > l) {
                best = Some((
                    i.prefix_len,
                    Route::Forward {
                        iface: IfaceId(k as u16),
                        next_hop: dst,
                    },
                ));
            }
        }
        for (p, via) in routes {
            if p.contains(dst) && best.is_none_or(|(l, _)| p.len > l) {
                // The next hop must be on a connected network.
                if let Some(k) = ifaces
                    .iter()
                    .position(|i| Prefix::new(i.addr, i.prefix_len).contains(*via))
                {
                    best = Some((
                        p.len,
                        Route::Forward {
                            iface: IfaceId(k as u16),
                            next_hop: *via,
                        },
                    ));
                }
            }
        }
        best.map_or(Route::Unreachable, |(_, r)| r)
    }

    pub fn route(&self, dst: Ipv4Addr) -> Route {
        Self::route_in(&self.ifaces, &self.routes, &self.owned, dst)
    }

    /// Handles a frame that arrived on `iface`.
    pub fn receive(
        &mut self,
        now: Instant,
        iface: usize,
        mut frame: Vec<u8>,
        trace: Option<u64>,
        out: &mut Outcome,
    ) {
        if frame.len() < 14 {
            out.disposition = Some(Disposition::Dropped {
                node: self.name.clone(),
                reason: "runt frame".into(),
            });
            return;
        }
        let dst_mac = mac_of(&frame, 0);
        if dst_mac != self.ifaces[iface].mac && dst_mac[0] & 1 == 0 {
            return; // not for us (a flooded copy)
        }
        let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
        if ethertype == 0x0806 {
            self.arp_in(now, iface, &frame, out);
            return;
        }
        out.step(|| Step::Received);
        if let Some(why) = ipv4_of(&frame).and_then(|ip| self.martian_source(ip.src_addr())) {
            self.drop_frame(why, out);
            return;
        }
        // The router's own services win over NAT rules on its addresses.
        if let Some(port) = self.local_service_port(&frame) {
            out.step(|| Step::Local {
                text: format!("{} is served by {}'s own stack", port, self.name),
            });
            self.deliver_local(now, iface, frame, out);
            return;
        }
        // A transit packet expires before postrouting NAT sees it, as in
        // Linux's ip_forward: the error then quotes the packet as its
        // sender sent it, so the sender can match it to its socket.
        if let Some(ip) = ipv4_of(&frame) {
            if ip.hop_limit() <= 1 && !Self::is_mine(&self.ifaces, &self.owned, ip.dst_addr()) {
                self.ttl_exceeded(now, iface, &frame, out);
                return;
            }
            let transit = !Self::is_mine(&self.ifaces, &self.owned, ip.dst_addr());
            if transit && self.block_icmp && ip.next_header() == IpProtocol::Icmp {
                self.drop_frame("ICMP filtered".into(), out);
                return;
            }
            // A DF packet that may not fit some egress MTU: keep it as it
            // arrived, for the quote (rare: only big DF packets pay).
            let len = usize::from(ip.total_len());
            if self.nat.is_some()
                && ip.dont_frag()
                && len > 576
                && self.ifaces.iter().any(|i| len > i.mtu)
            {
                out.arrived = Some(frame.clone());
            }
            // Like the TTL, the MTU is checked in ip_forward before
            // postrouting NAT: the error quotes what the sender sent.
            if let Route::Forward { iface: e, .. } = self.route(ip.dst_addr()) {
                if self.frag_needed(now, iface, usize::from(e.0), &frame, None, out) {
                    return;
                }
            }
        }
        let verdict = match self.nat.as_mut() {
            Some(nat) => {
                let (ifaces, routes, owned) = (&self.ifaces, &self.routes, &self.owned);
                let rf = |d: Ipv4Addr| Self::route_in(ifaces, routes, owned, d);
                run_nat(nat, now, IfaceId(iface as u16), &mut frame, &rf, out)
            }
            None => match ipv4_of(&frame) {
                Some(ip) => match self.route(ip.dst_addr()) {
                    Route::Forward { iface, next_hop } => Verdict::Forward { iface, next_hop },
                    Route::Local => Verdict::Local,
                    Route::Unreachable => Verdict::Drop(natsim_nat::DropReason::NoRoute),
                },
                None => Verdict::Drop(natsim_nat::DropReason::BadIpHeader),
            },
        };
        self.act(now, iface, frame, verdict, trace, out);
        self.release_held(now, out);
    }

    /// Sends the fragments the NAT held and the last frame released (RFC
    /// 4787 REQ-14: later fragments that arrived before their first). They
    /// left their own traces when they were held, so they go out untraced.
    fn release_held(&mut self, now: Instant, out: &mut Outcome) {
        while let Some(r) = self.nat.as_mut().and_then(|n| n.take_released()) {
            let mut o = Outcome::new(false);
            let ingress = usize::from(r.ingress.0).min(self.ifaces.len().saturating_sub(1));
            self.act(now, ingress, r.frame, r.verdict, None, &mut o);
            out.tx.append(&mut o.tx);
            out.originated.append(&mut o.originated);
            out.local_out.append(&mut o.local_out);
        }
    }

    fn act(
        &mut self,
        now: Instant,
        ingress: usize,
        frame: Vec<u8>,
        verdict: Verdict,
        trace: Option<u64>,
        out: &mut Outcome,
    ) {
        match verdict {
            Verdict::Forward { iface, next_hop } => {
                let out_iface = usize::from(iface.0);
                self.forward(now, ingress, out_iface, next_hop, frame, true, trace, out);
            }
            Verdict::Local => {
                out.step(|| Step::Local {
                    text: "addressed to the router".into(),
                });
                self.deliver_local(now, ingress, frame, out);
            }
            Verdict::Reply { iface } => {
                // The NAT's ICMP errors come from the router's stack in
                // Linux, and share its rate limits.
                if let Some(why) = self.icmp_refused(now, &frame) {
                    self.drop_frame(format!("no ICMP error sent: {why}"), out);
                    return;
                }
                let answer = crate::trace::summarize(&frame);
                out.disposition = Some(Disposition::AnsweredByNat {
                    node: self.name.clone(),
                    answer,
                });
                out.originated.push((usize::from(iface.0), frame));
            }
            Verdict::Held => {
                // The NAT recorded a `fragment` step; the datagram goes on
                // with the frame that completes it.
                out.disposition = Some(Disposition::HeldByNat {
                    node: self.name.clone(),
                });
            }
            Verdict::Drop(reason) => {
                // The NAT already recorded its own drop step.
                if !matches!(
                    out.steps.last(),
                    Some(Step::Nat {
                        kind: "dropped",
                        ..
                    })
                ) {
                    out.step(|| Step::Dropped {
                        reason: reason.to_string(),
                    });
                }
                let node = self.name.clone();
                out.disposition = Some(match reason {
                    natsim_nat::DropReason::NoRoute => {
                        // Network unreachable (RFC 792 code 0).
                        let error = reply::IcmpError::unreachable(0);
                        self.icmp_error(now, ingress, &frame, error, out);
                        Disposition::NoRoute { node }
                    }
                    r if r.is_nat_filter() => Disposition::DroppedByNatFilter {
                        node,
                        reason: r.code().to_string(),
                    },
                    r => Disposition::DroppedByNat {
                        node,
                        reason: r.code().to_string(),
                    },
                });
            }
        }
    }

    /// Timers: NAT expiry, ARP retries, the local stack.
    pub fn wake(&mut self, now: Instant, out: &mut Outcome) -> Vec<(Vec<u8>, Option<u64>)> {
        if let Some(nat) = self.nat.as_mut() {
            let mut steps = Vec::new();
            nat.handle_timeout(now, &mut steps);
            for s in steps {
                self.nat_log
                    .push((now, s.describe(&|r| nat.rule_name(r).to_string())));
            }
        }
        let mut failed = Vec::new();
        let due: Vec<Ipv4Addr> = self
            .pending
            .iter()
            .filter(|(_, p)| p.next_try <= now)
            .map(|(a, _)| *a)
            .collect();
        for a in due {
            let Some(p) = self.pending.get_mut(&a) else {
                continue;
            };
            if p.tries >= 3 {
                if let Some(p) = self.pending.remove(&a) {
                    failed.extend(p.frames);
                }
                continue;
            }
            p.tries += 1;
            p.next_try = now + Duration::from_secs(1);
            let iface = p.iface;
            let req = self.arp_request(iface, a);
            out.originated.push((iface, req));
        }
        if let Some(local) = self.local.as_mut() {
            let sent = local.poll(now);
            self.handle_local_output(now, sent, out);
        }
        failed
    }

    pub fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        let mut at = self.nat.as_ref().and_then(|n| n.poll_at());
        for p in self.pending.values() {
            at = Some(at.map_or(p.next_try, |a| a.min(p.next_try)));
        }
        if let Some(l) = self.local.as_mut() {
            if let Some(t) = l.poll_at(now) {
                at = Some(at.map_or(t, |a| a.min(t)));
            }
        }
        at.map(|a| a.max(now))
    }

    /// Drops the frame in hand: a `Dropped` step and disposition saying why.
    pub(super) fn drop_frame(&self, reason: String, out: &mut Outcome) {
        out.step(|| Step::Dropped {
            reason: reason.clone(),
        });
        out.disposition = Some(Disposition::Dropped {
            node: self.name.clone(),
            reason,
        });
    }
}

/// Runs the NAT engine on a frame, recording its steps (all but the
/// `Received` one, which the hop already says) only when tracing: with
/// tracing off the engine's `()` sink costs nothing.
fn run_nat(
    nat: &mut NatEngine,
    now: Instant,
    ingress: IfaceId,
    frame: &mut Vec<u8>,
    routes: &impl natsim_nat::Routes,
    out: &mut Outcome,
) -> Verdict {
    if !out.tracing {
        let v = nat.process(now, ingress, frame, routes, &mut ());
        out.refragment = nat.take_refragment_size().map(usize::from);
        return v;
    }
    let mut steps: Vec<NatStep> = Vec::new();
    let v = nat.process(now, ingress, frame, routes, &mut steps);
    for s in &steps {
        if !matches!(s, NatStep::Received { .. }) {
            out.steps.push(nat_step(s, nat));
        }
    }
    out.refragment = nat.take_refragment_size().map(usize::from);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, addr: [u8; 4], len: u8) -> RouterIface {
        RouterIface {
            name: name.into(),
            segment: 0,
            addr: Ipv4Addr::from(addr),
            prefix_len: len,
            role: Role::Inside,
            mac: [2, 0, 0, 0, 0, 1],
            mtu: 1500,
        }
    }

    fn router() -> Router {
        let p = |a: [u8; 4], l| Prefix::new(Ipv4Addr::from(a), l);
        Router::new(
            "r",
            vec![
                iface("lan", [192, 168, 1, 1], 24),
                iface("wan", [203, 0, 113, 1], 24),
            ],
            vec![
                (p([0, 0, 0, 0], 0), Ipv4Addr::new(203, 0, 113, 254)),
                (p([10, 0, 0, 0], 8), Ipv4Addr::new(192, 168, 1, 2)),
                (p([10, 1, 0, 0], 16), Ipv4Addr::new(203, 0, 113, 9)),
                // Unusable: its next hop is on no connected network.
                (p([172, 16, 0, 0], 12), Ipv4Addr::new(9, 9, 9, 9)),
            ],
            None,
            vec![(
                u32::from(Ipv4Addr::new(198, 51, 100, 0)),
                u32::from(Ipv4Addr::new(198, 51, 100, 3)),
            )],
            [2, 0, 0, 0, 0, 0xff],
        )
    }

    fn fwd(iface: u16, hop: [u8; 4]) -> Route {
        Route::Forward {
            iface: IfaceId(iface),
            next_hop: Ipv4Addr::from(hop),
        }
    }

    #[test]
    fn the_longest_matching_prefix_wins() {
        let r = router();
        assert_eq!(
            r.route(Ipv4Addr::new(10, 2, 3, 4)),
            fwd(0, [192, 168, 1, 2])
        );
        assert_eq!(
            r.route(Ipv4Addr::new(10, 1, 3, 4)),
            fwd(1, [203, 0, 113, 9])
        );
        assert_eq!(
            r.route(Ipv4Addr::new(8, 8, 8, 8)),
            fwd(1, [203, 0, 113, 254])
        );
        // Connected networks are delivered to the destination itself.
        assert_eq!(
            r.route(Ipv4Addr::new(192, 168, 1, 77)),
            fwd(0, [192, 168, 1, 77])
        );
    }

    #[test]
    fn own_and_nat_owned_addresses_are_local() {
        let r = router();
        assert_eq!(r.route(Ipv4Addr::new(203, 0, 113, 1)), Route::Local);
        assert_eq!(r.route(Ipv4Addr::new(198, 51, 100, 3)), Route::Local);
        assert_ne!(r.route(Ipv4Addr::new(198, 51, 100, 4)), Route::Local);
    }

    #[test]
    fn a_route_via_an_unconnected_next_hop_is_ignored() {
        let mut r = router();
        // Falls back to the default route...
        assert_eq!(
            r.route(Ipv4Addr::new(172, 16, 5, 5)),
            fwd(1, [203, 0, 113, 254])
        );
        // ...and without one there is no route at all.
        r.routes.retain(|(p, _)| p.len != 0);
        assert_eq!(r.route(Ipv4Addr::new(172, 16, 5, 5)), Route::Unreachable);
    }
}
