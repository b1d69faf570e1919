//! The new-flow chain: prerouting rules, mapping admission, routing, the
//! unsolicited-traffic policy, hairpin handling or postrouting, then a new
//! connection entry.

use super::ports::AddrChoice;
use super::*;
use crate::trace::Miss;
use crate::Match;

/// How many criteria a rule's [`Match`] has (see `criterion`).
const CRITERIA: usize = 7;

/// What a new flow's translation decided.
struct NewFlow {
    dst: Endpoint,
    src: Endpoint,
    rule: u16,
    /// Mapping endpoints (internal, external) and whether it was reused.
    mapping: Option<(Endpoint, Endpoint, bool)>,
    admitted: bool,
    /// Allocation found the reply tuple free (see [`super::ports::Allocated`]).
    reply_free: bool,
}
enum OwnedChoice {
    One(Ipv4Addr),
    Pool(SnatPool),
}

impl NatEngine {
    /// Criterion `k` of `r`'s match (0..CRITERIA), or why it fails for `f`.
    /// [`Self::rule_matches`] and [`Self::near_misses`] share it, so a
    /// near miss is reported by the matcher itself.
    #[inline]
    fn criterion(
        &self,
        k: usize,
        r: &Rule,
        f: &Flow,
        ingress: IfaceId,
        egress: Option<IfaceId>,
    ) -> Option<Miss> {
        let m: &Match = &r.matches;
        match k {
            0 => m
                .proto
                .filter(|&p| p != f.proto)
                .map(|want| Miss::Proto { want }),
            1 => m
                .in_iface
                .filter(|&i| i != ingress)
                .map(|want| Miss::InIface { want }),
            2 => m
                .out_iface
                .filter(|&o| egress != Some(o))
                .map(|want| Miss::OutIface { want }),
            3 => m
                .src
                .filter(|p| !p.contains(f.src.addr))
                .map(|want| Miss::Src { want }),
            4 => m
                .dst
                .filter(|p| !p.contains(f.dst.addr))
                .map(|want| Miss::Dst { want }),
            5 => m
                .dst_iface_addr
                .filter(|&i| self.iface_addr(i) != Some(f.dst.addr))
                .map(|iface| Miss::DstIfaceAddr { iface }),
            _ => m
                .dst_ports
                .filter(|ports| {
                    !matches!(f.proto, Proto::Tcp | Proto::Udp) || !ports.contains(f.dst.port)
                })
                .map(|want| Miss::DstPort { want }),
        }
    }

    /// Whether NAT rule `r` matches a connection's first packet `f` (NEW),
    /// seen after destination NAT in postrouting (`dnat`: translated).
    fn rule_matches(
        &self,
        r: &Rule,
        f: &Flow,
        l4: L4,
        ingress: IfaceId,
        egress: Option<IfaceId>,
        dnat: bool,
    ) -> bool {
        self.match_ok(
            &r.matches,
            f,
            l4,
            ingress,
            egress,
            dnat,
            crate::config::CtStates::NEW,
        )
    }

    /// Before refusing an unsolicited packet: every prerouting rule that
    /// failed on exactly one criterion, and that criterion (cold path).
    fn near_misses<T: TraceSink>(&self, f: &Flow, ingress: IfaceId, trace: &mut T) {
        for &ri in &self.pre {
            let r = &self.cfg.rules.rules[usize::from(ri)];
            let mut misses = (0..CRITERIA).filter_map(|k| self.criterion(k, r, f, ingress, None));
            if let (Some(miss), None) = (misses.next(), misses.next()) {
                trace.step(NatStep::NearMiss {
                    rule: RuleId(ri),
                    miss,
                    flow: *f,
                });
            }
        }
    }

    /// A packet whose tuple the table does not hold (the caller looked).
    // Out of line: inlined, it made the established path's caller 14 KB
    // long, with the spills that come with it.
    #[inline(never)]
    pub(super) fn new_flow<R: Routes + ?Sized, T: TraceSink>(
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
            if !self.rule_matches(r, &flow, p.l4_kind, ingress, None, false) {
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

        // The filter table: INPUT for the router, FORWARD through it.
        if !self.cfg.filter.is_open() && ingress != IfaceId::LOCAL {
            let hook = match egress {
                None => crate::config::FilterHook::Input,
                Some(_) => crate::config::FilterHook::Forward,
            };
            let seen = Flow::new(proto, flow.src, dst);
            let new = crate::config::CtStates::NEW;
            if let Some(v) = self.filter(frame, p, hook, &seen, ingress, egress, dnat, new, trace) {
                return v;
            }
        }
        let behaviour = &self.cfg.behaviour;

        // Unsolicited: addressed to a NAT-owned address and not translated.
        if !dnat && self.is_external(flow.dst.addr) && !from_inside && ingress != IfaceId::LOCAL {
            let local_ok = route == Route::Local
                && (self.local_services.contains(&(proto, flow.dst.port))
                    // An echo request to one of the router's own interface
                    // addresses is the router's to answer (icmp_echo), not
                    // unsolicited traffic for the NAT to filter.
                    || (proto == Proto::Icmp
                        && matches!(p.l4_kind, L4::IcmpQuery { request: true, .. })
                        && (behaviour.unsolicited == Unsolicited::Reject
                            || self.cfg.interfaces.iter().any(|i| i.addr == flow.dst.addr))));
            if !local_ok {
                let reason = match refused {
                    Some(filtering) => DropReason::Filtered { proto, filtering },
                    None => DropReason::NoMapping { proto },
                };
                self.near_misses(&flow, ingress, trace);
                return self.unsolicited(frame, p, ingress, reason, trace);
            }
        }
        // From inside to one of the router's own addresses, on a port
        // its stack does not serve: Linux's stack answers (RST or port
        // unreachable), as it does from outside.
        if from_inside
            && !dnat
            && route == Route::Local
            && behaviour.unsolicited == Unsolicited::Reject
            && matches!(proto, Proto::Tcp | Proto::Udp)
            && !self.local_services.contains(&(proto, flow.dst.port))
        {
            return self.unsolicited(frame, p, ingress, DropReason::NoMapping { proto }, trace);
        }
        if from_outside
            && !dnat
            && behaviour.filter_inbound
            && egress.is_some_and(|e| self.role(e) == Some(Role::Inside))
        {
            self.near_misses(&flow, ingress, trace);
            return self.unsolicited(frame, p, ingress, DropReason::InboundNotAllowed, trace);
        }

        // Postrouting, or hairpin handling.
        let mut src = flow.src;
        let mut mapping = None;
        let mut reply_free = false;
        let egress_inside = egress.is_some_and(|e| self.role(e) == Some(Role::Inside));
        // DNAT-only hairpinning is no special case: postrouting rules run
        // as for any other flow, so a `ct status dnat` masquerade on the
        // inside interface gives the server the router's inside address,
        // as Linux does; without one the source stays the client's.
        let hairpinned = dnat && from_inside && egress_inside && !static_rule;
        // The step is recorded only when the packet is hairpinned: with
        // hairpinning off it is dropped, and the drop says why.
        if hairpinned && behaviour.hairpin != Hairpin::Off {
            trace.step(NatStep::Hairpinned);
        }
        if hairpinned && behaviour.hairpin != Hairpin::DnatOnly {
            match behaviour.hairpin {
                Hairpin::Off => return self.drop(proto, DropReason::HairpinDisabled, trace),
                Hairpin::DnatOnly | Hairpin::On => {
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
                        (range, PortFlag::Profile),
                        RuleId(hr),
                    ) {
                        Ok(a) => {
                            src = a.ext;
                            mapping = Some((flow.src, a.ext, a.reused));
                            reply_free = a.reply_free;
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
                if !self.rule_matches(r, &after_dnat, p.l4_kind, ingress, Some(e), dnat) {
                    continue;
                }
                trace.step(NatStep::RuleMatched { rule: RuleId(ri) });
                let choice = match &r.action {
                    Action::Masquerade { ports, random } => self
                        .iface_addr(e)
                        .map(|a| (AddrChoice::One(a), *ports, *random)),
                    Action::Snat(pool) => Some((AddrChoice::Pool(pool), pool.ports, pool.random)),
                    Action::Netmap { to } => {
                        src.addr = to.netmap(src.addr);
                        rule = ri;
                        static_rule = true;
                        None
                    }
                    _ => None,
                };
                if let Some((choice, ports, random)) = choice {
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
                                (ports, random),
                                RuleId(ri),
                            ),
                            OwnedChoice::Pool(p) => self.allocate(
                                proto,
                                flow.src,
                                dst,
                                AddrChoice::Pool(p),
                                (ports, random),
                                RuleId(ri),
                            ),
                        };
                        match res {
                            Ok(a) => {
                                src = a.ext;
                                mapping = Some((flow.src, a.ext, a.reused));
                                reply_free = a.reply_free;
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
                frame::rewrite_parsed(frame, p, after);
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
                reply_free,
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
        // `flow` itself is not tracked: new_flow runs only after the
        // caller's lookup of it missed, and nothing since changed the table.
        debug_assert!(!self.table.contains_tuple(&flow));
        if !nf.reply_free && self.table.contains_tuple(&reply) {
            return self.drop(proto, DropReason::TupleClash, trace);
        }
        if self.table.is_full() {
            match self.table.oldest_embryonic() {
                Some(victim) => self.end(victim, EndReason::Evicted, trace),
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
        let mut flags = ConnFlags::EMPTY;
        if self.role(ingress) != Some(Role::Outside) {
            flags |= ConnFlags::OUTBOUND;
        }
        if nf.mapping.is_some() {
            flags |= ConnFlags::MAPPED;
        }
        if nf.admitted {
            flags |= ConnFlags::MAPPED | ConnFlags::ADMITTED;
        }
        let conn = Conn {
            expires: (now + timeout).total_micros(),
            born: now.total_micros(),
            queued: 0,
            gen: 0,
            orig: flow,
            reply,
            rule: nf.rule,
            tcp: state,
            flags,
            map_mode: pb.mapping,
        };
        let index_external = !b.ports.allow_overloading;
        let index_remote = pb.filtering == FilteringBehaviour::AddressDependent;
        let id = self.table.insert(conn, index_external, index_remote);
        self.created = Some(id);
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
            frame::rewrite_parsed(frame, p, after);
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
                self.table.get_mut(id).flags |= ConnFlags::ALG;
                trace.step(NatStep::Alg {
                    conn: id,
                    kind,
                    event: crate::alg::AlgEvent::Attached,
                });
                if let Err(reason) = self.alg_segment(now, id, Dir::Original, frame, p, trace) {
                    // A helper's drop comes before confirmation, too.
                    self.discard_unconfirmed(trace);
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
            // The stack's answers: tcp_v4_send_reset, and __udp4_lib_rcv's
            // port unreachable from the address the packet was sent to.
            let answer = match p.l4_kind {
                L4::Tcp { .. } => Some(Answer::Rst(reply::ResetBy::Stack)),
                L4::Udp => Some(Answer::Unreachable {
                    from: p.flow.dst.addr,
                    code: crate::config::Unreachable::Port,
                }),
                _ => None,
            };
            let kind = answer.and_then(|a| self.answer(frame, a));
            if let Some(kind) = kind {
                self.stats.replies += 1;
                self.stats.count_drop(reason);
                trace.step(NatStep::Replied { kind });
                return Verdict::Reply { iface: ingress };
            }
        }
        self.drop(proto, reason, trace)
    }
}
