//! The engine: connection tracking, rule evaluation and translation.
//!
//! [`NatEngine::process`] takes one frame and returns a [`Verdict`]:
//!
//! 1. Parse (bad input is a `Drop` verdict, never a panic).
//! 2. ICMP errors go to [`crate::icmp`] for outer + inner translation.
//! 3. A packet of a tracked connection is translated from the connection's
//!    state alone; its TCP state and timer are updated.
//! 4. A new flow runs the prerouting chain (DNAT, REDIRECT, NETMAP), then
//!    mapping admission (endpoint- or address-dependent filtering), then
//!    the caller's routing, then hairpin handling or the postrouting chain
//!    (masquerade, SNAT, NETMAP). Unsolicited traffic gets the profile's
//!    answer. Stateful translations create a connection entry.
//!
//! Determinism: the only randomness is a SplitMix64 generator seeded from
//! [`NatConfig::seed`]; hashing is seeded too; no clock is read.

use crate::alg::conn::{AlgConn, Env};
use crate::alg::expect::Expectations;
use crate::alg::AlgKind;
use crate::config::{
    Action, Chain, ConfigError, FilteringBehaviour, Hairpin, IfaceId, MappingBehaviour, Match,
    NatConfig, PortStrategy, Role, Rule, RuleId, SnatPool, UdpRefresh, Unsolicited,
};
use crate::flow::{Dir, Endpoint, Flow, PortRange, Prefix, Proto};
use crate::frame::{self, Parsed, L4};
use crate::stats::Stats;
use crate::table::{flag, map_mode, Conn, InternalKey, Table};
use crate::time::Instant;
use crate::trace::{ConnId, EndReason, NatStep, ReplyKind, TcpState, TraceSink};
use crate::verdict::{DropReason, Route, Routes, Verdict};
use crate::{reply, tcp};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

const NO_RULE: u16 = u16::MAX;

/// SplitMix64: a tiny seeded generator for port selection.
#[derive(Clone, Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// A tracked connection as reports see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    pub id: ConnId,
    /// The first packet's tuple, as received.
    pub original: Flow,
    /// The tuple replies carry, as received.
    pub reply: Flow,
    pub tcp_state: Option<TcpState>,
    pub expires: Instant,
    pub rule: Option<RuleId>,
    /// (internal, external) of the mapping the connection holds, if any.
    pub mapping: Option<(Endpoint, Endpoint)>,
}

/// Where source NAT may take its external address from.
#[derive(Clone, Copy)]
enum AddrChoice<'a> {
    One(Ipv4Addr),
    Pool(&'a SnatPool),
}

/// What a new flow's translation decided.
struct NewFlow {
    dst: Endpoint,
    src: Endpoint,
    rule: u16,
    /// Mapping endpoints (internal, external) and whether it was reused.
    mapping: Option<(Endpoint, Endpoint, bool)>,
    admitted: bool,
}

/// The NAT engine. See the crate docs for the model.
pub struct NatEngine {
    cfg: NatConfig,
    table: Table,
    rng: SplitMix64,
    cursor: u32,
    stats: Stats,
    pre: Vec<u16>,
    post: Vec<u16>,
    /// Address ranges that are the NAT's external addresses (outside
    /// interfaces, SNAT pools), as inclusive (first, last).
    external: Vec<(u32, u32)>,
    /// Addresses the router must answer ARP for (external + NETMAP targets).
    owned: Vec<Prefix>,
    local_services: Vec<(Proto, u16)>,
    /// The profile's timeouts in microseconds, for the hot path.
    timeouts_us: TimeoutsUs,
    /// ALG state by connection slot (connections flagged `ALG`).
    algs: BTreeMap<u32, AlgConn>,
    /// Pinholes the ALGs opened.
    expects: Expectations,
}

/// [`crate::Timeouts`] pre-converted to microseconds.
#[derive(Clone, Copy, Debug)]
struct TimeoutsUs {
    /// Indexed by `TcpState as usize`.
    tcp: [u64; 8],
    udp_unreplied: u64,
    udp_replied: u64,
    icmp: u64,
    generic: u64,
}

impl TimeoutsUs {
    fn new(t: &crate::config::Timeouts) -> Self {
        let us = |d: crate::time::Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        use TcpState::*;
        let mut tcp = [0; 8];
        for s in [
            SynSent,
            SynRecv,
            Established,
            FinWait,
            CloseWait,
            LastAck,
            TimeWait,
            Close,
        ] {
            tcp[s as usize] = us(tcp::timeout(t, s));
        }
        TimeoutsUs {
            tcp,
            udp_unreplied: us(t.udp_unreplied),
            udp_replied: us(t.udp_replied),
            icmp: us(t.icmp),
            generic: us(t.generic),
        }
    }
}

impl NatEngine {
    /// Validates `cfg` and builds an engine.
    pub fn new(cfg: NatConfig) -> Result<NatEngine, ConfigError> {
        validate(&cfg)?;
        let mut pre = Vec::new();
        let mut post = Vec::new();
        for (i, r) in cfg.rules.rules.iter().enumerate() {
            match r.chain {
                Chain::Prerouting => pre.push(i as u16),
                Chain::Postrouting => post.push(i as u16),
            }
        }
        let mut external = Vec::new();
        let mut owned = Vec::new();
        for i in &cfg.interfaces {
            if i.role == Role::Outside {
                external.push((i.addr.to_bits(), i.addr.to_bits()));
                owned.push(Prefix::host(i.addr));
            }
        }
        for r in &cfg.rules.rules {
            match &r.action {
                Action::Snat(p) => {
                    external.push((p.first.to_bits(), p.last.to_bits()));
                    // Pools are proxy-ARPed address by address via `owns`.
                }
                Action::Netmap { .. } if r.chain == Chain::Prerouting => {
                    if let Some(d) = r.matches.dst {
                        owned.push(d);
                    }
                }
                _ => {}
            }
        }
        let table = Table::new(cfg.capacity, cfg.seed);
        Ok(NatEngine {
            rng: SplitMix64(cfg.seed ^ 0x6e61_7473_696d),
            cursor: 0,
            stats: Stats::default(),
            pre,
            post,
            external,
            owned,
            local_services: Vec::new(),
            timeouts_us: TimeoutsUs::new(&cfg.behaviour.timeouts),
            algs: BTreeMap::new(),
            expects: Expectations::default(),
            table,
            cfg,
        })
    }

    /// Declares that the router's own stack serves `proto`/`port` on its
    /// addresses (e.g. an NT-based firewall's endpoint mapper on TCP 135):
    /// such traffic is delivered [`Verdict::Local`] instead of being
    /// treated as unsolicited.
    pub fn add_local_service(&mut self, proto: Proto, port: u16) {
        if !self.local_services.contains(&(proto, port)) {
            self.local_services.push((proto, port));
        }
    }

    pub fn config(&self) -> &NatConfig {
        &self.cfg
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The rule's name, or `"?"` for an id out of range.
    pub fn rule_name(&self, id: RuleId) -> &str {
        self.cfg
            .rules
            .rules
            .get(usize::from(id.0))
            .map(|r| r.name.as_str())
            .unwrap_or("?")
    }

    /// Number of tracked connections.
    pub fn connection_count(&self) -> usize {
        self.table.len()
    }

    /// Heap bytes held by the connection table (for memory measurements).
    pub fn table_heap_bytes(&self) -> usize {
        self.table.heap_bytes()
    }

    /// Tracked connections in a deterministic order.
    pub fn connections(&self) -> impl Iterator<Item = ConnInfo> + '_ {
        self.table.iter().map(|(id, c)| ConnInfo {
            id,
            original: c.orig,
            reply: c.reply,
            tcp_state: (c.orig.proto == Proto::Tcp).then_some(c.tcp),
            expires: Instant::from_micros(c.expires),
            rule: (c.rule != NO_RULE).then_some(RuleId(c.rule)),
            mapping: c.has(flag::MAPPED).then(|| c.mapping()),
        })
    }

    /// Whether the router must answer ARP for `addr` on behalf of the NAT:
    /// outside interface addresses, SNAT pool addresses and the outside
    /// prefixes of one-to-one rules.
    pub fn owns(&self, addr: Ipv4Addr) -> bool {
        let a = addr.to_bits();
        self.external.iter().any(|&(f, l)| f <= a && a <= l)
            || self.owned.iter().any(|p| p.contains(addr))
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    /// Never later than the next expiry; it may be earlier (a refreshed
    /// connection's old deadline), in which case the call simply re-arms.
    /// Changed by `process` (new connections, state changes) and
    /// `handle_timeout`.
    pub fn poll_at(&self) -> Option<Instant> {
        let conns = self.table.next_deadline().map(Instant::from_micros);
        match (conns, self.expects.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Open ALG pinholes as (kind, peer, external, internal, expires).
    pub fn pinholes(
        &self,
    ) -> impl Iterator<Item = (AlgKind, Ipv4Addr, Endpoint, Endpoint, Instant)> + '_ {
        self.expects
            .iter()
            .map(|(ext, e)| (e.kind, e.peer, *ext, e.internal, e.expires))
    }

    /// Expires every connection whose idle timeout has passed by `now`.
    pub fn handle_timeout<T: TraceSink>(&mut self, now: Instant, trace: &mut T) {
        for (external, e) in self.expects.expire(now) {
            trace.step(NatStep::PinholeClosed {
                kind: e.kind,
                external,
            });
        }
        while let Some(id) = self.table.pop_expired(now.total_micros()) {
            let c = self.table.remove(id);
            if c.has(flag::ALG) {
                self.algs.remove(&id.0);
            }
            self.stats.proto_mut(c.orig.proto).expired += 1;
            trace.step(NatStep::ConnEnded {
                conn: id,
                flow: c.orig,
                reason: EndReason::Expired,
            });
        }
    }

    /// Processes one frame that arrived on `ingress` (or was sent by the
    /// router itself, [`IfaceId::LOCAL`]). The frame is rewritten in place;
    /// for [`Verdict::Reply`] it is replaced by the answer.
    pub fn process<R: Routes + ?Sized, T: TraceSink>(
        &mut self,
        now: Instant,
        ingress: IfaceId,
        frame: &mut Vec<u8>,
        routes: &R,
        trace: &mut T,
    ) -> Verdict {
        let p = match Parsed::parse(frame) {
            Ok(p) => p,
            Err(reason) => return self.drop(Proto::Other(0), reason, trace),
        };
        trace.step(NatStep::Received {
            iface: ingress,
            flow: p.flow,
        });
        match p.l4_kind {
            L4::IcmpError => {
                return crate::icmp::translate_error(self, ingress, frame, &p, routes, trace)
            }
            L4::IcmpOther { icmp_type } => {
                // Not a query, not an error: only the router itself may
                // want it (RFC 5508 leaves the rest to configuration).
                return match routes.route(p.flow.dst.addr) {
                    Route::Local => Verdict::Local,
                    _ => self.drop(
                        Proto::Icmp,
                        DropReason::IcmpUnsupported { icmp_type },
                        trace,
                    ),
                };
            }
            _ => {}
        }
        if let Some((id, dir)) = self.table.lookup(&p.flow) {
            return self.tracked(now, frame, &p, id, dir, routes, trace);
        }
        self.new_flow(now, ingress, frame, &p, routes, trace)
    }

    // ----- tracked connections -------------------------------------------

    #[allow(clippy::too_many_arguments)]
    fn tracked<R: Routes + ?Sized, T: TraceSink>(
        &mut self,
        now: Instant,
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
                let outbound = (dir == Dir::Original) == c.has(flag::OUTBOUND);
                if udp_refresh == UdpRefresh::OutboundOnly && !outbound {
                    refresh = false;
                }
                if dir == Dir::Reply || c.has(flag::REPLIED) {
                    tus.udp_replied
                } else {
                    tus.udp_unreplied
                }
            }
            L4::IcmpQuery { .. } => tus.icmp,
            _ => tus.generic,
        };
        if dir == Dir::Reply && !c.has(flag::REPLIED) {
            // Later refreshes use the replied timeout; this packet itself
            // refreshes only if the refresh policy says so (RFC 4787 REQ-6).
            c.flags |= flag::REPLIED;
        }
        let alg = c.has(flag::ALG);
        if refresh {
            self.table
                .set_expiry(id, now.total_micros().saturating_add(timeout));
        }
        if target != p.flow {
            frame::rewrite(frame, p.l3, p.l4, p.end - p.l4, p.l4_kind, p.flow, target);
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

    fn route_verdict<R: Routes + ?Sized, T: TraceSink>(
        &mut self,
        proto: Proto,
        dst: Ipv4Addr,
        routes: &R,
        trace: &mut T,
    ) -> Verdict {
        match routes.route(dst) {
            Route::Forward { iface, next_hop } => Verdict::Forward { iface, next_hop },
            Route::Local => Verdict::Local,
            Route::Unreachable => self.drop(proto, DropReason::NoRoute, trace),
        }
    }

    pub(crate) fn drop<T: TraceSink>(
        &mut self,
        proto: Proto,
        reason: DropReason,
        trace: &mut T,
    ) -> Verdict {
        self.stats.proto_mut(proto).dropped += 1;
        *self.stats.drops_by_reason.entry(reason.code()).or_insert(0) += 1;
        trace.step(NatStep::Dropped { reason });
        Verdict::Drop(reason)
    }

    // ----- new flows ------------------------------------------------------

    fn role(&self, id: IfaceId) -> Option<Role> {
        self.cfg.iface(id).map(|i| i.role)
    }

    fn iface_addr(&self, id: IfaceId) -> Option<Ipv4Addr> {
        self.cfg.iface(id).map(|i| i.addr)
    }

    pub(crate) fn is_external(&self, a: Ipv4Addr) -> bool {
        let a = a.to_bits();
        self.external.iter().any(|&(f, l)| f <= a && a <= l)
    }

    fn rule_matches(&self, r: &Rule, f: &Flow, ingress: IfaceId, egress: Option<IfaceId>) -> bool {
        let m: &Match = &r.matches;
        if m.proto.is_some_and(|p| p != f.proto) {
            return false;
        }
        if m.in_iface.is_some_and(|i| i != ingress) {
            return false;
        }
        if let Some(o) = m.out_iface {
            if egress != Some(o) {
                return false;
            }
        }
        if m.src.is_some_and(|p| !p.contains(f.src.addr)) {
            return false;
        }
        if m.dst.is_some_and(|p| !p.contains(f.dst.addr)) {
            return false;
        }
        if let Some(i) = m.dst_iface_addr {
            if self.iface_addr(i) != Some(f.dst.addr) {
                return false;
            }
        }
        if let Some(ports) = m.dst_ports {
            if !matches!(f.proto, Proto::Tcp | Proto::Udp) || !ports.contains(f.dst.port) {
                return false;
            }
        }
        true
    }

    fn new_flow<R: Routes + ?Sized, T: TraceSink>(
        &mut self,
        now: Instant,
        ingress: IfaceId,
        frame: &mut Vec<u8>,
        p: &Parsed,
        routes: &R,
        trace: &mut T,
    ) -> Verdict {
        let flow = p.flow;
        let proto = flow.proto;
        let behaviour = &self.cfg.behaviour;
        let from_outside = self.role(ingress) == Some(Role::Outside);
        let from_inside = self.role(ingress) == Some(Role::Inside);

        // Prerouting: first matching rule decides the destination.
        let mut dst = flow.dst;
        let mut rule = NO_RULE;
        let mut static_rule = false;
        let mut pre_matched = false;
        if proto == Proto::Tcp
            && !self.expects.is_empty()
            && !from_inside
            && ingress != IfaceId::LOCAL
        {
            if let Some(e) = self.expects.take(flow.src.addr, flow.dst, now) {
                // An ALG announced this connection: forward it as announced
                // (Linux: expectations are matched before the nat table).
                trace.step(NatStep::PinholeUsed {
                    kind: e.kind,
                    external: flow.dst,
                    internal: e.internal,
                });
                dst = e.internal;
                pre_matched = true;
            }
        }
        for k in 0..self.pre.len() {
            if pre_matched {
                break;
            }
            let ri = self.pre[k];
            let r = &self.cfg.rules.rules[usize::from(ri)];
            if !self.rule_matches(r, &flow, ingress, None) {
                continue;
            }
            pre_matched = true;
            trace.step(NatStep::RuleMatched { rule: RuleId(ri) });
            match &r.action {
                Action::Dnat { to, to_port } => {
                    let port = match (to_port, r.matches.dst_ports) {
                        (Some(tp), Some(range)) => tp.saturating_add(flow.dst.port - range.first),
                        (Some(tp), None) => *tp,
                        (None, _) => flow.dst.port,
                    };
                    dst = Endpoint::new(
                        *to,
                        if proto.has_ports() && proto != Proto::Icmp {
                            port
                        } else {
                            flow.dst.port
                        },
                    );
                    rule = ri;
                }
                Action::Redirect { to_port } => {
                    let addr = self.iface_addr(ingress).unwrap_or(flow.dst.addr);
                    dst = Endpoint::new(addr, to_port.unwrap_or(flow.dst.port));
                    rule = ri;
                }
                Action::Netmap { to } => {
                    dst.addr = to.netmap(dst.addr);
                    rule = ri;
                    static_rule = true;
                }
                _ => {}
            }
            break;
        }

        // Mapping admission: traffic to an external endpoint that no rule
        // translated may enter through an existing mapping if the filtering
        // behaviour allows (RFC 4787 §5). With port overloading external
        // endpoints are not unique, so only exact replies (tracked above) pass.
        let mut admitted: Option<Endpoint> = None;
        let mut refused: Option<FilteringBehaviour> = None;
        if !pre_matched
            && matches!(proto, Proto::Tcp | Proto::Udp)
            && !behaviour.ports.allow_overloading
            && self.is_external(flow.dst.addr)
        {
            if let Some(m) = self.table.find_external(proto, flow.dst) {
                let (internal, external) = self.table.get(m).mapping();
                let filtering = behaviour.for_proto(proto).filtering;
                let ok = match filtering {
                    FilteringBehaviour::EndpointIndependent => true,
                    FilteringBehaviour::AddressDependent => {
                        self.table
                            .external_has_remote_addr(proto, external, flow.src.addr)
                    }
                    FilteringBehaviour::AddressAndPortDependent => false,
                };
                if ok {
                    trace.step(NatStep::FilterAdmitted { proto, external });
                    admitted = Some(internal);
                    dst = internal;
                } else {
                    refused = Some(filtering);
                }
            }
        }
        let dnat = dst != flow.dst;

        // Routing decision on the translated destination.
        let route = routes.route(dst.addr);
        let egress = match route {
            Route::Forward { iface, .. } => Some(iface),
            Route::Local => None,
            Route::Unreachable => return self.drop(proto, DropReason::NoRoute, trace),
        };

        // Unsolicited: addressed to a NAT-owned address and not translated.
        if !dnat && self.is_external(flow.dst.addr) && !from_inside && ingress != IfaceId::LOCAL {
            let local_ok = route == Route::Local
                && (self.local_services.contains(&(proto, flow.dst.port))
                    // An echo request to one of the router's own interface
                    // addresses is the router's to answer (icmp_echo), not
                    // unsolicited traffic for the NAT to filter.
                    || (proto == Proto::Icmp
                        && matches!(p.l4_kind, L4::IcmpQuery { request: true })
                        && (behaviour.unsolicited == Unsolicited::Reject
                            || self.cfg.interfaces.iter().any(|i| i.addr == flow.dst.addr))));
            if !local_ok {
                let reason = match refused {
                    Some(filtering) => DropReason::Filtered { proto, filtering },
                    None => DropReason::NoMapping { proto },
                };
                return self.unsolicited(frame, p, ingress, reason, trace);
            }
        }
        if from_outside
            && !dnat
            && behaviour.filter_inbound
            && egress.is_some_and(|e| self.role(e) == Some(Role::Inside))
        {
            return self.unsolicited(frame, p, ingress, DropReason::InboundNotAllowed, trace);
        }

        // Postrouting, or hairpin handling.
        let mut src = flow.src;
        let mut mapping = None;
        let egress_inside = egress.is_some_and(|e| self.role(e) == Some(Role::Inside));
        if dnat && from_inside && egress_inside && !static_rule {
            // The step is recorded only when the packet is hairpinned:
            // with hairpinning off it is dropped, and the drop says why.
            match behaviour.hairpin {
                Hairpin::Off => return self.drop(proto, DropReason::HairpinDisabled, trace),
                Hairpin::DnatOnly => trace.step(NatStep::Hairpinned),
                Hairpin::On => {
                    trace.step(NatStep::Hairpinned);
                    // RFC 4787 REQ-9a: the source becomes the client's
                    // external mapping on the address it targeted.
                    let via = flow.dst.addr;
                    let range = PortRange::ALL;
                    let hr = if rule == NO_RULE { 0 } else { rule };
                    match self.allocate(
                        proto,
                        flow.src,
                        dst,
                        AddrChoice::One(via),
                        range,
                        RuleId(hr),
                    ) {
                        Ok((ext, reused)) => {
                            src = ext;
                            mapping = Some((flow.src, ext, reused));
                        }
                        Err(reason) => return self.drop(proto, reason, trace),
                    }
                }
            }
        } else if let Some(e) = egress {
            let after_dnat = Flow::new(proto, flow.src, dst);
            for k in 0..self.post.len() {
                let ri = self.post[k];
                let r = &self.cfg.rules.rules[usize::from(ri)];
                if !self.rule_matches(r, &after_dnat, ingress, Some(e)) {
                    continue;
                }
                trace.step(NatStep::RuleMatched { rule: RuleId(ri) });
                let choice = match &r.action {
                    Action::Masquerade { ports } => {
                        self.iface_addr(e).map(|a| (AddrChoice::One(a), *ports))
                    }
                    Action::Snat(pool) => Some((AddrChoice::Pool(pool), pool.ports)),
                    Action::Netmap { to } => {
                        src.addr = to.netmap(src.addr);
                        rule = ri;
                        static_rule = true;
                        None
                    }
                    _ => None,
                };
                if let Some((choice, ports)) = choice {
                    if proto.has_ports() {
                        // The pool is cloned out of the config (to release
                        // the borrow) only on this new-flow path.
                        let choice = match choice {
                            AddrChoice::Pool(p) => OwnedChoice::Pool(p.clone()),
                            AddrChoice::One(a) => OwnedChoice::One(a),
                        };
                        let res = match &choice {
                            OwnedChoice::One(a) => self.allocate(
                                proto,
                                flow.src,
                                dst,
                                AddrChoice::One(*a),
                                ports,
                                RuleId(ri),
                            ),
                            OwnedChoice::Pool(p) => self.allocate(
                                proto,
                                flow.src,
                                dst,
                                AddrChoice::Pool(p),
                                ports,
                                RuleId(ri),
                            ),
                        };
                        match res {
                            Ok((ext, reused)) => {
                                src = ext;
                                mapping = Some((flow.src, ext, reused));
                                rule = ri;
                            }
                            Err(reason) => return self.drop(proto, reason, trace),
                        }
                    }
                }
                break;
            }
        }

        let after = Flow::new(proto, src, dst);

        // Stateless paths: one-to-one rules (unless an ALG must follow the
        // connection), and protocols without ports.
        let alg_static = static_rule && self.alg_for(proto, rule, dst.port).is_some();
        if (static_rule && !alg_static) || !proto.has_ports() {
            if after != flow {
                frame::rewrite(frame, p.l3, p.l4, p.end - p.l4, p.l4_kind, flow, after);
                self.stats.static_translated += 1;
                trace.step(NatStep::StaticRule { rule: RuleId(rule) });
                trace.step(NatStep::Translated {
                    before: flow,
                    after,
                });
            }
            return self.route_verdict(proto, after.dst.addr, routes, trace);
        }

        self.track_new(
            now,
            ingress,
            frame,
            p,
            NewFlow {
                dst,
                src,
                rule,
                mapping,
                admitted: admitted.is_some(),
            },
            route,
            trace,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn track_new<T: TraceSink>(
        &mut self,
        now: Instant,
        ingress: IfaceId,
        frame: &mut Vec<u8>,
        p: &Parsed,
        nf: NewFlow,
        route: Route,
        trace: &mut T,
    ) -> Verdict {
        let flow = p.flow;
        let proto = flow.proto;
        let after = Flow::new(proto, nf.src, nf.dst);
        let reply = after.reversed();
        if self.table.contains_tuple(&reply) || (reply != flow && self.table.contains_tuple(&flow))
        {
            return self.drop(proto, DropReason::TupleClash, trace);
        }
        if self.table.is_full() {
            match self.table.oldest_embryonic() {
                Some(victim) => {
                    let c = self.table.remove(victim);
                    if c.has(flag::ALG) {
                        self.algs.remove(&victim.0);
                    }
                    self.stats.proto_mut(c.orig.proto).evicted += 1;
                    trace.step(NatStep::ConnEnded {
                        conn: victim,
                        flow: c.orig,
                        reason: EndReason::Evicted,
                    });
                }
                None => return self.drop(proto, DropReason::TableFull, trace),
            }
        }
        let b = &self.cfg.behaviour;
        let pb = b.for_proto(proto);
        let (state, timeout) = match p.l4_kind {
            L4::Tcp { flags } => {
                let s = tcp::initial(flags);
                (s, tcp::timeout(&b.timeouts, s))
            }
            L4::Udp => (TcpState::Close, b.timeouts.udp_unreplied),
            L4::IcmpQuery { .. } => (TcpState::Close, b.timeouts.icmp),
            _ => (TcpState::Close, b.timeouts.generic),
        };
        let mut flags = 0;
        if self.role(ingress) != Some(Role::Outside) {
            flags |= flag::OUTBOUND;
        }
        if nf.mapping.is_some() {
            flags |= flag::MAPPED;
        }
        if nf.admitted {
            flags |= flag::MAPPED | flag::ADMITTED;
        }
        let conn = Conn {
            expires: (now + timeout).total_micros(),
            queued: 0,
            gen: 0,
            orig: flow,
            reply,
            rule: nf.rule,
            tcp: state,
            flags,
            map_mode: mode_of(pb.mapping),
        };
        let index_external = !b.ports.allow_overloading;
        let index_remote = pb.filtering == FilteringBehaviour::AddressDependent;
        let id = self.table.insert(conn, index_external, index_remote);
        self.stats.proto_mut(proto).created += 1;
        trace.step(NatStep::ConnCreated { conn: id, flow });
        if let Some((internal, external, reused)) = nf.mapping {
            trace.step(if reused {
                NatStep::MappingReused {
                    proto,
                    internal,
                    external,
                }
            } else {
                NatStep::MappingCreated {
                    proto,
                    internal,
                    external,
                }
            });
        }
        if after != flow {
            frame::rewrite(frame, p.l3, p.l4, p.end - p.l4, p.l4_kind, flow, after);
            self.stats.proto_mut(proto).translated += 1;
            trace.step(NatStep::Translated {
                before: flow,
                after,
            });
        }
        if !self.algs.is_empty() {
            self.algs.remove(&id.0); // a previous tenant of the slot
        }
        if let Some(kind) = self.alg_for(proto, nf.rule, nf.dst.port) {
            let from_inside = self.role(ingress) != Some(Role::Outside);
            if let Some(a) = AlgConn::new(kind, flow, after, from_inside) {
                self.algs.insert(id.0, a);
                self.table.get_mut(id).flags |= flag::ALG;
                trace.step(NatStep::Alg {
                    conn: id,
                    kind,
                    event: crate::alg::AlgEvent::Attached,
                });
                if let Err(reason) = self.alg_segment(now, id, Dir::Original, frame, p, trace) {
                    return self.drop(proto, reason, trace);
                }
            }
        }
        match route {
            Route::Forward { iface, next_hop } => Verdict::Forward { iface, next_hop },
            Route::Local => Verdict::Local,
            Route::Unreachable => self.drop(proto, DropReason::NoRoute, trace),
        }
    }

    /// Applies the profile's answer to unsolicited traffic.
    fn unsolicited<T: TraceSink>(
        &mut self,
        frame: &mut Vec<u8>,
        p: &Parsed,
        ingress: IfaceId,
        reason: DropReason,
        trace: &mut T,
    ) -> Verdict {
        let proto = p.flow.proto;
        if self.cfg.behaviour.unsolicited == Unsolicited::Reject && ingress != IfaceId::LOCAL {
            let kind = match p.l4_kind {
                L4::Tcp { .. } => reply::tcp_rst(frame, p).then_some(ReplyKind::TcpRst),
                L4::Udp => {
                    reply::icmp_unreachable(frame, p, p.flow.dst.addr, 3);
                    Some(ReplyKind::IcmpPortUnreachable)
                }
                _ => None,
            };
            if let Some(kind) = kind {
                self.stats.replies += 1;
                *self.stats.drops_by_reason.entry(reason.code()).or_insert(0) += 1;
                trace.step(NatStep::Replied { kind });
                return Verdict::Reply { iface: ingress };
            }
        }
        self.drop(proto, reason, trace)
    }

    // ----- port allocation -------------------------------------------------

    /// Finds (or reuses) the external endpoint for `internal` talking to
    /// `remote` (RFC 4787 REQ-1..4; Linux get_unique_tuple).
    fn allocate(
        &mut self,
        proto: Proto,
        internal: Endpoint,
        remote: Endpoint,
        choice: AddrChoice<'_>,
        range: PortRange,
        rule: RuleId,
    ) -> Result<(Endpoint, bool), DropReason> {
        let b = &self.cfg.behaviour;
        let mode = mode_of(b.for_proto(proto).mapping);
        let overloading = b.ports.allow_overloading;
        let in_choice = |a: Ipv4Addr| match choice {
            AddrChoice::One(x) => x == a,
            AddrChoice::Pool(p) => p.contains(a),
        };
        // Reuse the live mapping of this internal endpoint if it fits.
        let key = InternalKey::new(proto, internal, remote, mode);
        if let Some(c) = self.table.find_internal(&key) {
            let (_, ext) = self.table.get(c).mapping();
            let reply = Flow::new(proto, remote, ext);
            if in_choice(ext.addr) && !self.table.contains_tuple(&reply) {
                return Ok((ext, true));
            }
        }
        let addrs: (u32, u64) = match choice {
            AddrChoice::One(a) => (a.to_bits(), 1),
            AddrChoice::Pool(p) => (p.first.to_bits(), p.len()),
        };
        let pooling_paired =
            matches!(choice, AddrChoice::Pool(p) if p.pooling == crate::config::Pooling::Paired);
        let start_addr = if addrs.1 > 1 {
            // Paired pooling (REQ-2): one internal address, one external
            // address; a deterministic spread of internal addresses.
            let h = u64::from(internal.addr.to_bits()).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
            h % addrs.1
        } else {
            0
        };
        let addr_tries = if pooling_paired { 1 } else { addrs.1 };
        let range = self.effective_range(proto, internal.port, range);
        for k in 0..addr_tries {
            let addr =
                Ipv4Addr::from_bits(addrs.0.wrapping_add(((start_addr + k) % addrs.1) as u32));
            if let Some(port) =
                self.find_port(proto, internal.port, remote, addr, range, overloading)
            {
                return Ok((Endpoint::new(addr, port), false));
            }
        }
        Err(DropReason::PortsExhausted { rule })
    }

    fn effective_range(&self, proto: Proto, port: u16, range: PortRange) -> PortRange {
        if proto == Proto::Icmp {
            return PortRange::ALL; // identifiers have no classes
        }
        let b = &self.cfg.behaviour;
        if range != PortRange::ALL || !b.ports.preserve_range_class {
            return range;
        }
        let linux = b.name == "linux";
        match port {
            0..=511 if linux => PortRange::new(1, 511),
            512..=1023 if linux => PortRange::new(600, 1023),
            0..=1023 => PortRange::new(1, 1023),
            _ => PortRange::EPHEMERAL,
        }
    }

    fn port_free(&self, proto: Proto, remote: Endpoint, ext: Endpoint, overloading: bool) -> bool {
        if proto == Proto::Tcp && !self.expects.is_empty() && self.expects.reserved(ext) {
            return false;
        }
        if overloading {
            !self.table.contains_tuple(&Flow::new(proto, remote, ext))
        } else {
            self.table.find_external(proto, ext).is_none()
        }
    }

    fn find_port(
        &mut self,
        proto: Proto,
        orig: u16,
        remote: Endpoint,
        addr: Ipv4Addr,
        range: PortRange,
        overloading: bool,
    ) -> Option<u16> {
        let len = range.len();
        if len == 0 {
            return None;
        }
        let ports = self.cfg.behaviour.ports;
        let strategy = ports.strategy;
        let try_preserve = matches!(
            strategy,
            PortStrategy::Preserve | PortStrategy::PreserveThenRandom
        );
        if try_preserve
            && range.contains(orig)
            && self.port_free(proto, remote, Endpoint::new(addr, orig), overloading)
        {
            return Some(orig);
        }
        let parity = ports.preserve_parity && len >= 2;
        let step: u32 = if parity { 2 } else { 1 };
        let start: u32 = match strategy {
            PortStrategy::Preserve => u32::from(orig).saturating_sub(u32::from(range.first)) + step,
            PortStrategy::Sequential => {
                let s = self.cursor;
                self.cursor = self.cursor.wrapping_add(step);
                s
            }
            PortStrategy::Random | PortStrategy::PreserveThenRandom => {
                (self.rng.next() % u64::from(len)) as u32
            }
        };
        let slots = if parity { len.div_ceil(2) } else { len };
        let attempts = slots.min(ports.max_attempts);
        for i in 0..attempts {
            let mut off = (start + i * step) % len;
            if parity && (u32::from(range.first) + off) % 2 != u32::from(orig) % 2 {
                off = (off + 1) % len;
            }
            let port = (u32::from(range.first) + off) as u16;
            if self.port_free(proto, remote, Endpoint::new(addr, port), overloading) {
                return Some(port);
            }
        }
        None
    }

    // ----- application-level gateways ---------------------------------------

    /// The ALG a new TCP connection gets: by the rule that translated it,
    /// else by its (translated) destination port.
    fn alg_for(&self, proto: Proto, rule: u16, port: u16) -> Option<AlgKind> {
        let algs = &self.cfg.algs;
        if proto != Proto::Tcp || algs.is_empty() {
            return None;
        }
        if rule != NO_RULE && !algs.rules.is_empty() {
            let name = &self.cfg.rules.rules[usize::from(rule)].name;
            let base = name.split(" (").next().unwrap_or(name);
            if let Some(k) = algs.rules.get(name).or_else(|| algs.rules.get(base)) {
                return Some(*k);
            }
        }
        algs.ports.get(&port).copied()
    }

    fn alg_segment<T: TraceSink>(
        &mut self,
        now: Instant,
        id: ConnId,
        dir: Dir,
        frame: &mut Vec<u8>,
        p: &Parsed,
        trace: &mut T,
    ) -> Result<(), DropReason> {
        let Some(a) = self.algs.get_mut(&id.0) else {
            return Ok(());
        };
        let mut env = Env {
            expects: &mut self.expects,
            table: &self.table,
            local_services: &self.local_services,
            cfg: &self.cfg.algs,
            now,
        };
        a.segment(&mut env, id, dir, frame, p.l3, p.l4, p.end, trace)
    }

    // ----- helpers for the ICMP error path ---------------------------------

    pub(crate) fn table(&self) -> &Table {
        &self.table
    }

    pub(crate) fn static_rules(&self) -> impl Iterator<Item = (RuleId, &Rule)> {
        self.cfg
            .rules
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| matches!(r.action, Action::Netmap { .. }))
            .map(|(i, r)| (RuleId(i as u16), r))
    }

    pub(crate) fn role_of(&self, id: IfaceId) -> Option<Role> {
        self.role(id)
    }

    pub(crate) fn count_translated(&mut self, proto: Proto) {
        self.stats.proto_mut(proto).translated += 1;
    }

    pub(crate) fn route<R: Routes + ?Sized, T: TraceSink>(
        &mut self,
        proto: Proto,
        dst: Ipv4Addr,
        routes: &R,
        trace: &mut T,
    ) -> Verdict {
        self.route_verdict(proto, dst, routes, trace)
    }
}

impl core::fmt::Debug for NatEngine {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NatEngine")
            .field("profile", &self.cfg.behaviour.name)
            .field("rules", &self.cfg.rules.rules.len())
            .field("connections", &self.table.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

enum OwnedChoice {
    One(Ipv4Addr),
    Pool(SnatPool),
}

fn mode_of(m: MappingBehaviour) -> u8 {
    match m {
        MappingBehaviour::EndpointIndependent => map_mode::EIM,
        MappingBehaviour::AddressDependent => map_mode::ADM,
        MappingBehaviour::AddressAndPortDependent => map_mode::APDM,
    }
}

fn covers(a: &Match, b: &Match) -> bool {
    fn opt<T: PartialEq>(a: &Option<T>, b: &Option<T>) -> bool {
        a.is_none() || a == b
    }
    fn prefix(a: &Option<Prefix>, b: &Option<Prefix>) -> bool {
        match (a, b) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(x), Some(y)) => x.len <= y.len && x.contains(y.addr),
        }
    }
    let ports = match (a.dst_ports, b.dst_ports) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(x), Some(y)) => x.first <= y.first && y.last <= x.last,
    };
    opt(&a.proto, &b.proto)
        && opt(&a.in_iface, &b.in_iface)
        && opt(&a.out_iface, &b.out_iface)
        && opt(&a.dst_iface_addr, &b.dst_iface_addr)
        && prefix(&a.src, &b.src)
        && prefix(&a.dst, &b.dst)
        && ports
}

fn validate(cfg: &NatConfig) -> Result<(), ConfigError> {
    if cfg.capacity == 0 {
        return Err(ConfigError::ZeroCapacity);
    }
    for name in cfg.algs.rules.keys() {
        let known = cfg
            .rules
            .rules
            .iter()
            .any(|r| r.name == *name || r.name.split(" (").next() == Some(name));
        if !known {
            return Err(ConfigError::UnknownAlgRule(name.clone()));
        }
    }
    if cfg.rules.rules.len() >= usize::from(u16::MAX) {
        return Err(ConfigError::TooManyRules);
    }
    for (i, a) in cfg.interfaces.iter().enumerate() {
        if a.prefix_len > 32 {
            return Err(ConfigError::BadPrefixLength {
                iface: a.id,
                len: a.prefix_len,
            });
        }
        if cfg.interfaces[..i].iter().any(|b| b.id == a.id) {
            return Err(ConfigError::DuplicateInterface(a.id));
        }
    }
    let b = &cfg.behaviour;
    if b.ports.allow_overloading
        && [b.tcp, b.udp, b.icmp]
            .iter()
            .any(|p| p.filtering != FilteringBehaviour::AddressAndPortDependent)
    {
        return Err(ConfigError::OverloadingNeedsApdf);
    }
    for (i, r) in cfg.rules.rules.iter().enumerate() {
        let id = RuleId(i as u16);
        let m = &r.matches;
        for iface in [m.in_iface, m.out_iface, m.dst_iface_addr]
            .into_iter()
            .flatten()
        {
            if cfg.iface(iface).is_none() {
                return Err(ConfigError::UnknownInterface { rule: id, iface });
            }
        }
        let allowed = matches!(
            (&r.action, r.chain),
            (Action::Accept | Action::Netmap { .. }, _)
                | (
                    Action::Dnat { .. } | Action::Redirect { .. },
                    Chain::Prerouting
                )
                | (
                    Action::Masquerade { .. } | Action::Snat(_),
                    Chain::Postrouting
                )
        );
        if !allowed {
            return Err(ConfigError::ActionNotAllowedInChain { rule: id });
        }
        if let Some(ports) = m.dst_ports {
            if ports.is_empty() {
                return Err(ConfigError::EmptyPortRange { rule: id });
            }
            if !matches!(m.proto, Some(Proto::Tcp | Proto::Udp)) {
                return Err(ConfigError::PortsNeedTcpOrUdp { rule: id });
            }
        }
        match &r.action {
            Action::Masquerade { ports } if ports.is_empty() => {
                return Err(ConfigError::EmptyPortRange { rule: id })
            }
            Action::Snat(p) => {
                if p.is_empty() {
                    return Err(ConfigError::EmptyPool { rule: id });
                }
                if p.len() > 65_536 {
                    return Err(ConfigError::PoolTooLarge { rule: id });
                }
                if p.ports.is_empty() {
                    return Err(ConfigError::EmptyPortRange { rule: id });
                }
            }
            Action::Dnat {
                to_port: Some(tp), ..
            } => {
                if let Some(range) = m.dst_ports {
                    if u32::from(*tp) + (range.len() - 1) > 65_535 {
                        return Err(ConfigError::DnatRangeOverflow { rule: id });
                    }
                }
            }
            Action::Netmap { to } => {
                let matched = match r.chain {
                    Chain::Prerouting => m.dst,
                    Chain::Postrouting => m.src,
                };
                if matched.is_some_and(|p| p.len != to.len) {
                    return Err(ConfigError::NetmapLengthMismatch { rule: id });
                }
            }
            _ => {}
        }
        for (j, earlier) in cfg.rules.rules[..i].iter().enumerate() {
            if earlier.chain == r.chain && covers(&earlier.matches, m) {
                return Err(ConfigError::Shadowed {
                    rule: id,
                    by: RuleId(j as u16),
                });
            }
        }
    }
    Ok(())
}
