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
    Action, Chain, ConfigError, FilteringBehaviour, Hairpin, IfaceId, NatConfig, PortFlag,
    PortStrategy, Role, Rule, RuleId, SnatPool, UdpRefresh, Unsolicited,
};
use crate::flow::{Dir, Endpoint, Flow, PortRange, Prefix, Proto};
use crate::frame::{self, Parsed, L4};
use crate::stats::Stats;
use crate::table::{Conn, ConnFlags, InternalKey, Table};
use crate::time::Instant;
use crate::trace::{ConnId, EndReason, NatStep, ReplyKind, TcpState, TraceSink};
use crate::verdict::{DropReason, Route, Routes, Verdict};
use crate::wire::reply;
use crate::{icmp, tcp};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

const NO_RULE: u16 = u16::MAX;

mod batch;
mod end;
mod established;
mod filter;
mod fragment;
mod icmp_path;
mod new_flow;
mod ports;

use ports::SplitMix64;

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
    /// The ALG each rule binds, by rule id.
    rule_algs: Vec<Option<AlgKind>>,
    /// The profile's timeouts in microseconds, for the hot path.
    timeouts_us: TimeoutsUs,
    /// ALG state by connection slot (connections flagged `ALG`).
    algs: BTreeMap<u32, AlgConn>,
    /// Pinholes the ALGs opened.
    expects: Expectations,
    /// IP fragments held, and first fragments' rewrites.
    frags: crate::defrag::Fragments,
    /// Set by a `process` that reassembled a datagram: its largest
    /// fragment (see [`NatEngine::take_refragment_size`]).
    refragment: Option<u16>,
    /// See [`NatEngine::set_batch_prefetch_from`].
    prefetch_from: usize,
    /// The connection the current `process` call created, until the next
    /// call (see [`NatEngine::discard_unconfirmed`]).
    created: Option<ConnId>,
    /// IP ID of the next ICMP error the engine sends (Linux numbers its
    /// errors from a running counter; DF is clear on them).
    icmp_id: u16,
}

/// What the engine answers in place of forwarding (see `NatEngine::answer`).
#[derive(Clone, Copy, Debug)]
enum Answer {
    /// A RST, as the kernel path `ResetBy` names builds it.
    Rst(reply::ResetBy),
    /// ICMP destination unreachable with `code`, sent from `from`.
    Unreachable {
        from: Ipv4Addr,
        code: crate::config::Unreachable,
    },
}

/// [`crate::Timeouts`] pre-converted to microseconds.
#[derive(Clone, Copy, Debug)]
struct TimeoutsUs {
    /// Indexed by `TcpState as usize`.
    tcp: [u64; 8],
    udp_unreplied: u64,
    udp_replied: u64,
    udp_stream_after: u64,
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
            udp_stream_after: us(t.udp_stream_after),
            icmp: us(t.icmp),
            generic: us(t.generic),
        }
    }
}
impl NatEngine {
    /// Validates `cfg` and builds an engine.
    pub fn new(cfg: NatConfig) -> Result<NatEngine, ConfigError> {
        crate::config::validate(&cfg)?;
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
            rule_algs: cfg.rule_algs(),
            timeouts_us: TimeoutsUs::new(&cfg.behaviour.timeouts),
            algs: BTreeMap::new(),
            expects: Expectations::default(),
            frags: crate::defrag::Fragments::default(),
            refragment: None,
            prefetch_from: batch::PREFETCH_FROM,
            created: None,
            icmp_id: (cfg.seed ^ (cfg.seed >> 16) ^ 0x4e53) as u16,
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
            mapping: c.has(ConnFlags::MAPPED).then(|| c.mapping()),
        })
    }

    /// For a packet NAT just let out (`frame`, as rewritten): the tuple it
    /// arrived with, and whether its connection is translated (Linux's
    /// `IPS_NAT_MASK`, for which the kernel drops an ICMP redirect about
    /// it). None for a packet of no tracked connection. Its reversed tuple
    /// is the other direction's as received, so one lookup finds it.
    pub fn arrival_of(&self, frame: &[u8]) -> Option<(Flow, bool)> {
        let p = Parsed::fast(frame).or_else(|| Parsed::full(frame).ok())?;
        let (id, other) = self.table.lookup(&p.flow.reversed())?;
        let c = self.table.get(id);
        let arrived = match other {
            Dir::Reply => c.orig,
            Dir::Original => c.reply,
        };
        Some((arrived, c.orig != c.reply.reversed()))
    }

    /// Whether the router must answer ARP for `addr` on behalf of the NAT:
    /// outside interface addresses, SNAT pool addresses and the outside
    /// prefixes of one-to-one rules.
    pub fn owns(&self, addr: Ipv4Addr) -> bool {
        let a = addr.to_bits();
        self.owned_ranges().any(|(f, l)| f <= a && a <= l)
    }

    /// What [`owns`](Self::owns) answers yes to, as inclusive address
    /// ranges (first, last): for a router that must answer ARP without
    /// holding the engine.
    pub fn owned_ranges(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        let prefixes = self.owned.iter().map(|p| {
            let first = p.network();
            (first, first + (p.size() - 1) as u32)
        });
        self.external.iter().copied().chain(prefixes)
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    /// Never later than the next expiry; it may be earlier (a refreshed
    /// connection's old deadline), in which case the call simply re-arms.
    /// Changed by `process` (new connections, state changes) and
    /// `handle_timeout`.
    pub fn poll_at(&self) -> Option<Instant> {
        let conns = self.table.next_deadline().map(Instant::from_micros);
        [
            conns,
            self.expects.next_deadline(),
            self.frags.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Open ALG pinholes as (kind, peer, external, internal, expires).
    pub fn pinholes(
        &self,
    ) -> impl Iterator<Item = (AlgKind, Ipv4Addr, Endpoint, Endpoint, Instant)> + '_ {
        self.expects
            .iter()
            .map(|(ext, e)| (e.kind, e.peer, *ext, e.internal, e.expires))
    }

    /// Expires every connection whose idle timeout has passed by `now`, and
    /// held fragments older than the reassembly timeout.
    pub fn handle_timeout<T: TraceSink>(&mut self, now: Instant, trace: &mut T) {
        for _ in 0..self.frags.expire(now) {
            self.stats.count_drop(DropReason::FragmentExpired);
            trace.step(NatStep::Dropped {
                reason: DropReason::FragmentExpired,
            });
        }
        for (external, e) in self.expects.expire(now) {
            trace.step(NatStep::PinholeClosed {
                kind: e.kind,
                external,
            });
        }
        let mut expired = Vec::new();
        self.table.expired(now.total_micros(), &mut expired);
        for id in expired {
            self.end(id, EndReason::Expired, trace);
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
        match Parsed::fast(frame) {
            Some(p) => {
                let h = self.table.hash_flow(&p.flow);
                self.process_flow(now, ingress, frame, &p, h, routes, trace)
            }
            None => self.process_full(now, ingress, frame, routes, trace),
        }
    }

    /// `process` for a frame [`Parsed::fast`] refused: the full parse, then
    /// fragments to their path and the rest to [`process_whole`](Self::process_whole).
    #[inline(never)]
    fn process_full<R: Routes + ?Sized, T: TraceSink>(
        &mut self,
        now: Instant,
        ingress: IfaceId,
        frame: &mut Vec<u8>,
        routes: &R,
        trace: &mut T,
    ) -> Verdict {
        self.created = None;
        let p = Parsed::full(frame);
        let h = p.as_ref().map_or(0, |p| self.table.hash_flow(&p.flow));
        match p {
            Ok(Parsed {
                first_fragment: true,
                ..
            })
            | Err(DropReason::Fragment) => self.fragment(now, ingress, frame, p, h, routes, trace),
            p => self.process_whole(now, ingress, frame, p, h, routes, trace),
        }
    }

    /// `process` for a packet that is not a fragment, or the first one.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn process_whole<R: Routes + ?Sized, T: TraceSink>(
        &mut self,
        now: Instant,
        ingress: IfaceId,
        frame: &mut Vec<u8>,
        p: Result<Parsed, DropReason>,
        h: u64,
        routes: &R,
        trace: &mut T,
    ) -> Verdict {
        let p = match p {
            Ok(p) => p,
            Err(reason) => return self.drop(Proto::Other(0), reason, trace),
        };
        let received = NatStep::Received {
            iface: ingress,
            flow: p.flow,
        };
        if matches!(p.l4_kind, L4::IcmpError | L4::IcmpOther { .. })
            && !self.cfg.filter.raw.is_open()
            && ingress != IfaceId::LOCAL
        {
            trace.step(received);
            if let Some(v) = self.raw_filter(frame, &p, ingress, trace) {
                return v;
            }
            return match p.l4_kind {
                L4::IcmpOther { icmp_type } => {
                    self.icmp_other(icmp_type, p.flow.dst.addr, routes, trace)
                }
                _ => self.icmp_error(ingress, frame, &p, routes, trace),
            };
        }
        match p.l4_kind {
            L4::IcmpError => {
                trace.step(received);
                self.icmp_error(ingress, frame, &p, routes, trace)
            }
            L4::IcmpOther { icmp_type } => {
                trace.step(received);
                self.icmp_other(icmp_type, p.flow.dst.addr, routes, trace)
            }
            _ => self.process_flow(now, ingress, frame, &p, h, routes, trace),
        }
    }

    /// A received packet with a tuple to look up (TCP, UDP, ICMP query,
    /// another protocol), whole; `h` is its tuple's table hash. Its
    /// connection's, or a new flow. A frame the fast parse took comes
    /// straight here, with no fragment or ICMP dispatch.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn process_flow<R: Routes + ?Sized, T: TraceSink>(
        &mut self,
        now: Instant,
        ingress: IfaceId,
        frame: &mut Vec<u8>,
        p: &Parsed,
        h: u64,
        routes: &R,
        trace: &mut T,
    ) -> Verdict {
        self.created = None;
        trace.step(NatStep::Received {
            iface: ingress,
            flow: p.flow,
        });
        if !self.cfg.filter.raw.is_open() && ingress != IfaceId::LOCAL {
            if let Some(v) = self.raw_filter(frame, p, ingress, trace) {
                return v;
            }
        }
        if let Some((id, dir)) = self.table.lookup_hashed(h, &p.flow) {
            return self.tracked(now, ingress, frame, p, id, dir, routes, trace);
        }
        self.new_flow(now, ingress, frame, p, routes, trace)
    }

    /// Replaces `frame` with `answer`, built the way the kernel builds it
    /// ([`reply`]), and says which it sent; None, leaving `frame`, where the
    /// kernel sends nothing (a RST for a RST, an error about an error, ...).
    fn answer(&mut self, frame: &mut Vec<u8>, answer: Answer) -> Option<ReplyKind> {
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&frame[0..6]);
        let (built, kind) = match answer {
            Answer::Rst(by) => (reply::tcp_reset(frame, mac, by), ReplyKind::TcpRst),
            Answer::Unreachable { from, code } => {
                let e = reply::IcmpError::unreachable(code.code());
                let built = reply::icmp_error(frame, from, mac, self.icmp_id, e);
                if built.is_some() {
                    self.icmp_id = self.icmp_id.wrapping_add(1);
                }
                (built, ReplyKind::IcmpUnreachable(code))
            }
        };
        *frame = built?;
        Some(kind)
    }

    pub(super) fn route_verdict<R: Routes + ?Sized, T: TraceSink>(
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
        self.stats.count_drop(reason);
        trace.step(NatStep::Dropped { reason });
        Verdict::Drop(reason)
    }

    pub(super) fn role(&self, id: IfaceId) -> Option<Role> {
        self.cfg.iface(id).map(|i| i.role)
    }

    fn iface_addr(&self, id: IfaceId) -> Option<Ipv4Addr> {
        self.cfg.iface(id).map(|i| i.addr)
    }

    pub(crate) fn is_external(&self, a: Ipv4Addr) -> bool {
        let a = a.to_bits();
        self.external.iter().any(|&(f, l)| f <= a && a <= l)
    }
    // ----- application-level gateways ---------------------------------------

    /// The ALG a new TCP connection gets: by the rule that translated it,
    /// else by its (translated) destination port.
    fn alg_for(&self, proto: Proto, rule: u16, port: u16) -> Option<AlgKind> {
        if proto != Proto::Tcp {
            return None;
        }
        let by_rule = self.rule_algs.get(usize::from(rule)).copied().flatten();
        by_rule.or_else(|| self.cfg.algs.ports.get(&port).copied())
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
        if p.first_fragment {
            return Err(DropReason::AlgFragment);
        }
        let mut env = Env {
            expects: &mut self.expects,
            table: &self.table,
            local_services: &self.local_services,
            cfg: &self.cfg.algs,
            now,
        };
        a.segment(&mut env, id, dir, frame, p.l3, p.l4, p.end, trace)
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
