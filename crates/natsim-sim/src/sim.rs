//! The world: virtual time, the event queue, nodes and segments.
//!
//! Events are ordered by (time, sequence number); each step jumps to the
//! earliest one: a frame arriving at a node, or a node's timer (a host's
//! `poll_at`, a router's NAT/ARP/local-stack deadline). Nothing ticks and
//! nothing reads the wall clock, so a two-hour idle period is a handful of
//! events. Every component's randomness is a ChaCha8 stream derived from
//! the simulation seed and the component's index: the same topology and
//! seed give the same captures and traces, byte for byte.

use crate::app::{App, HostInfo, TcpProfile};
pub use crate::config::{HostConfig, RouterConfig};
use crate::fault::{FaultRule, FaultVerdict, InFlight};
use crate::host::Host;
pub use crate::ids::{AppId, NodeId, SegmentId};
use crate::link::{LinkParams, Port, Segment};
use crate::router::{Outcome, Router, RouterIface};
use crate::trace::{summarize, Disposition, FrameTrace, Hop, Leg, Step};
use natsim_nat::{ConfigError, Instant, NatConfig, NatEngine};
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::Ipv4Addr;
use std::time::Duration;

/// A topology the simulator refuses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SimError {
    DuplicateName(String),
    UnknownSegment(usize),
    BadPrefix { node: String, len: u8 },
    Nat { router: String, error: ConfigError },
    NoLocalStack(String),
}

impl std::fmt::Display for SimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SimError::DuplicateName(n) => write!(f, "two nodes are named `{n}`"),
            SimError::UnknownSegment(s) => write!(f, "segment #{s} does not exist"),
            SimError::BadPrefix { node, len } => {
                write!(f, "{node}: prefix length /{len} is not in 0..=32")
            }
            SimError::Nat { router, error } => write!(f, "router {router}: {error}"),
            SimError::NoLocalStack(r) => write!(f, "router {r} has no local stack to run apps on"),
        }
    }
}

impl std::error::Error for SimError {}

pub(crate) enum Node {
    Host(Box<Host>),
    Router(Box<Router>),
}

/// A frame a fault rule is holding.
#[derive(Debug)]
struct Held {
    rule: String,
    latency: Duration,
    to: Port,
    frame: Vec<u8>,
    trace: Option<u64>,
}

#[derive(Debug)]
enum Ev {
    Arrive {
        node: usize,
        iface: usize,
        frame: Vec<u8>,
        trace: Option<u64>,
    },
    Wake {
        node: usize,
    },
}

/// Builds a [`Sim`].
#[derive(Debug, Default)]
pub struct SimBuilder {
    seed: u64,
    tracing: bool,
}

impl SimBuilder {
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// Record per-frame traces (on by default; benchmarks turn it off).
    pub fn tracing(mut self, on: bool) -> Self {
        self.tracing = on;
        self
    }
    pub fn build(self) -> Sim {
        Sim {
            now: Instant::ZERO,
            seed: self.seed,
            seq: 0,
            queue: BinaryHeap::new(),
            events: Vec::new(),
            free_events: Vec::new(),
            nodes: Vec::new(),
            names: Vec::new(),
            wake_at: Vec::new(),
            segments: Vec::new(),
            attach: Vec::new(),
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(self.seed ^ 0x6c69_6e6b),
            faults: Vec::new(),
            held: Vec::new(),
            traces: Vec::new(),
            tracing: self.tracing,
            capture: true,
            frames_delivered: 0,
            events_processed: 0,
            arp_asks: BTreeMap::new(),
        }
    }
}

/// A node as [`Sim::topology`] lists it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NodeInfo {
    pub name: String,
    pub router: bool,
    /// The segment of each interface, in interface order.
    pub segments: Vec<String>,
}

/// The simulated network.
pub struct Sim {
    now: Instant,
    seed: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    events: Vec<Option<Ev>>,
    free_events: Vec<usize>,
    nodes: Vec<Node>,
    names: Vec<String>,
    wake_at: Vec<Option<Instant>>,
    segments: Vec<Segment>,
    /// Per node: the segment of each interface.
    attach: Vec<Vec<usize>>,
    rng: rand_chacha::ChaCha8Rng,
    faults: Vec<FaultRule>,
    held: Vec<Held>,
    traces: Vec<FrameTrace>,
    tracing: bool,
    capture: bool,
    frames_delivered: u64,
    events_processed: u64,
    /// Hosts' ARP requests not yet answered: (node, target) → (first ask, asks).
    arp_asks: BTreeMap<(usize, [u8; 4]), (Instant, u32)>,
}

/// An ARP frame's operation, sender and target IPv4 addresses.
fn arp_fields(f: &[u8]) -> Option<(u16, [u8; 4], [u8; 4])> {
    if f.len() < 42 || f[12..14] != [0x08, 0x06] {
        return None;
    }
    let op = u16::from_be_bytes([f[20], f[21]]);
    let mut spa = [0; 4];
    spa.copy_from_slice(&f[28..32]);
    let mut tpa = [0; 4];
    tpa.copy_from_slice(&f[38..42]);
    Some((op, spa, tpa))
}

impl Sim {
    pub fn builder() -> SimBuilder {
        SimBuilder {
            seed: 0,
            tracing: true,
        }
    }

    pub fn now(&self) -> Instant {
        self.now
    }
    pub fn seed(&self) -> u64 {
        self.seed
    }
    /// Frames handed to a node so far (the benchmark's unit).
    pub fn frames_delivered(&self) -> u64 {
        self.frames_delivered
    }
    /// Events processed so far (arrivals and wake-ups, superseded wake-ups
    /// excluded): what a run costs, independent of virtual time.
    pub fn events_processed(&self) -> u64 {
        self.events_processed
    }
    /// Keep frames for pcaps (on by default).
    pub fn set_capture(&mut self, on: bool) {
        self.capture = on;
    }

    pub fn segment(&mut self, name: &str, params: LinkParams) -> SegmentId {
        self.segments.push(Segment::new(name, params));
        SegmentId(self.segments.len() - 1)
    }

    fn mac(node: usize, iface: usize) -> [u8; 6] {
        [0x02, 0x4e, 0x53, (node >> 8) as u8, node as u8, iface as u8]
    }

    fn component_seed(&self, node: usize) -> u64 {
        self.seed
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(node as u64 + 1)
    }

    fn check_name(&self, name: &str) -> Result<(), SimError> {
        if self.names.iter().any(|n| n == name) {
            return Err(SimError::DuplicateName(name.to_string()));
        }
        Ok(())
    }

    fn push_node(&mut self, name: &str, node: Node, segs: Vec<usize>) -> NodeId {
        let id = self.nodes.len();
        for (iface, &s) in segs.iter().enumerate() {
            self.segments[s].ports.push(Port { node: id, iface });
        }
        self.nodes.push(node);
        self.names.push(name.to_string());
        self.wake_at.push(None);
        self.attach.push(segs);
        self.schedule_wake(id, self.now);
        NodeId(id)
    }

    pub fn host(&mut self, name: &str, cfg: HostConfig) -> Result<NodeId, SimError> {
        self.check_name(name)?;
        if cfg.segment.0 >= self.segments.len() {
            return Err(SimError::UnknownSegment(cfg.segment.0));
        }
        if cfg.prefix_len > 32 {
            return Err(SimError::BadPrefix {
                node: name.into(),
                len: cfg.prefix_len,
            });
        }
        let id = self.nodes.len();
        let info = HostInfo {
            name: name.to_string(),
            addr: cfg.addr,
            prefix_len: cfg.prefix_len,
            gateway: cfg.gateway,
            dns: cfg.dns,
        };
        let mtu = self.segments[cfg.segment.0].params.mtu;
        let host = Host::new(
            info,
            Self::mac(id, 0),
            mtu,
            cfg.tcp,
            self.component_seed(id),
            self.now,
            &[],
        );
        Ok(self.push_node(name, Node::Host(Box::new(host)), vec![cfg.segment.0]))
    }

    pub fn router(&mut self, name: &str, cfg: RouterConfig) -> Result<NodeId, SimError> {
        self.check_name(name)?;
        let id = self.nodes.len();
        let mut ifaces = Vec::new();
        for (k, (iname, seg, addr, len, role)) in cfg.ifaces.iter().enumerate() {
            if seg.0 >= self.segments.len() {
                return Err(SimError::UnknownSegment(seg.0));
            }
            if *len > 32 {
                return Err(SimError::BadPrefix {
                    node: name.into(),
                    len: *len,
                });
            }
            ifaces.push(RouterIface {
                name: iname.clone(),
                segment: seg.0,
                addr: *addr,
                prefix_len: *len,
                role: *role,
                mac: Self::mac(id, k),
                mtu: self.segments[seg.0].params.mtu,
            });
        }
        let mut owned = Vec::new();
        let nat = match cfg.nat {
            Some((behaviour, setup)) => {
                let mut nc = NatConfig::new(behaviour);
                nc.seed = self.component_seed(id);
                for (k, i) in ifaces.iter().enumerate() {
                    nc = nc.interface(natsim_nat::IfaceId(k as u16), i.addr, i.prefix_len, i.role);
                }
                setup(&mut nc);
                let mut engine = NatEngine::new(nc).map_err(|error| SimError::Nat {
                    router: name.to_string(),
                    error,
                })?;
                for &(p, port) in &cfg.local_services {
                    engine.add_local_service(p, port);
                }
                // Proxy ARP answers for what the engine says it owns.
                owned.extend(engine.owned_ranges());
                Some(engine)
            }
            None => None,
        };
        let local_mac = Self::mac(id, 0xff);
        let mut router = Router::new(name, ifaces, cfg.routes, nat, owned, local_mac);
        router.local_services = cfg.local_services.iter().copied().collect();
        router.mss_clamp = cfg.mss_clamp;
        router.block_icmp = cfg.block_icmp;
        router.answer_ping = cfg.answer_ping;
        router.reject_closed_ports = cfg.reject_closed_ports;
        if cfg.local_stack {
            let first = router
                .ifaces
                .first()
                .map(|i| (i.addr, i.prefix_len))
                .unwrap_or((Ipv4Addr::LOCALHOST, 8));
            let mut extra: Vec<smoltcp::wire::IpCidr> = router
                .ifaces
                .iter()
                .skip(1)
                .map(|i| smoltcp::wire::IpCidr::new(i.addr.into(), i.prefix_len))
                .collect();
            for &(f, l) in &router.owned {
                for a in f..=l.min(f.saturating_add(15)) {
                    extra.push(smoltcp::wire::IpCidr::new(
                        Ipv4Addr::from_bits(a).into(),
                        32,
                    ));
                }
            }
            let gw = router
                .routes
                .iter()
                .find(|(p, _)| p.len == 0)
                .map(|(_, via)| *via);
            let info = HostInfo {
                name: format!("{name} (local stack)"),
                addr: first.0,
                prefix_len: first.1,
                gateway: gw,
                dns: Vec::new(),
            };
            router.local = Some(Host::new(
                info,
                local_mac,
                1500,
                TcpProfile::windows(),
                self.component_seed(id) ^ 0x10ca1,
                self.now,
                &extra,
            ));
        }
        let segs = router.ifaces.iter().map(|i| i.segment).collect();
        Ok(self.push_node(name, Node::Router(Box::new(router)), segs))
    }

    /// Starts an app on a host (or a router's local stack).
    pub fn add_app(&mut self, node: NodeId, app: Box<dyn App>) -> Result<AppId, SimError> {
        let host = match &mut self.nodes[node.0] {
            Node::Host(h) => h.as_mut(),
            Node::Router(r) => match r.local.as_mut() {
                Some(l) => l,
                None => return Err(SimError::NoLocalStack(self.names[node.0].clone())),
            },
        };
        host.apps.push(app);
        let id = AppId(node, host.apps.len() - 1);
        self.schedule_wake(node.0, self.now);
        Ok(id)
    }

    /// Stops an app the way its process exiting would (see
    /// `Host::stop_app`): a step's client gives up when its step ends, so
    /// none of its retries reach the next step. Its results stay readable.
    pub fn stop_app(&mut self, id: AppId) {
        if let Some(h) = self.host_of_mut(id.0) {
            h.stop_app(id.1);
            self.schedule_wake(id.0 .0, self.now);
        }
    }

    fn host_of(&self, node: NodeId) -> Option<&Host> {
        match self.nodes.get(node.0)? {
            Node::Host(h) => Some(h),
            Node::Router(r) => r.local.as_ref(),
        }
    }

    fn host_of_mut(&mut self, node: NodeId) -> Option<&mut Host> {
        match self.nodes.get_mut(node.0)? {
            Node::Host(h) => Some(h),
            Node::Router(r) => r.local.as_mut(),
        }
    }

    pub fn app<T: App>(&self, id: AppId) -> Option<&T> {
        self.host_of(id.0)?
            .apps
            .get(id.1)?
            .as_any()
            .downcast_ref::<T>()
    }

    /// Changes an app (e.g. gives it a command) and wakes its host.
    pub fn with_app<T: App, R>(&mut self, id: AppId, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        let r = f(self
            .host_of_mut(id.0)?
            .apps
            .get_mut(id.1)?
            .as_any_mut()
            .downcast_mut::<T>()?);
        self.schedule_wake(id.0 .0, self.now);
        Some(r)
    }

    pub fn node_id(&self, name: &str) -> Option<NodeId> {
        self.names.iter().position(|n| n == name).map(NodeId)
    }
    pub fn node_name(&self, id: NodeId) -> &str {
        &self.names[id.0]
    }
    /// The host's (or local stack's) app log.
    pub fn log(&self, node: NodeId) -> &[crate::app::AppEvent] {
        self.host_of(node).map_or(&[], |h| &h.log)
    }
    /// Every app log line, in time order (stable across nodes).
    pub fn logs(&self) -> Vec<crate::app::AppEvent> {
        let mut all: Vec<_> = (0..self.nodes.len())
            .flat_map(|n| self.log(NodeId(n)).to_vec())
            .collect();
        all.sort_by_key(|e| e.at);
        all
    }
    pub fn nat(&self, router: NodeId) -> Option<&NatEngine> {
        match self.nodes.get(router.0)? {
            Node::Router(r) => r.nat.as_ref(),
            Node::Host(_) => None,
        }
    }
    /// NAT events not tied to a frame (expiries), per router.
    pub fn nat_log(&self, router: NodeId) -> &[(Instant, String)] {
        match self.nodes.get(router.0) {
            Some(Node::Router(r)) => &r.nat_log,
            _ => &[],
        }
    }
    pub fn traces(&self) -> &[FrameTrace] {
        &self.traces
    }
    pub fn segment_names(&self) -> Vec<String> {
        self.segments.iter().map(|s| s.name.clone()).collect()
    }
    /// Every node in the order it was added, with the segments its
    /// interfaces are on (what a ladder diagram's columns are).
    pub fn topology(&self) -> Vec<NodeInfo> {
        (0..self.nodes.len())
            .map(|n| NodeInfo {
                name: self.names[n].clone(),
                router: matches!(self.nodes[n], Node::Router(_)),
                segments: self.attach[n]
                    .iter()
                    .map(|&s| self.segments[s].name.clone())
                    .collect(),
            })
            .collect()
    }

    /// Adds a fault rule after the existing ones; returns its name (for
    /// [`Sim::remove_fault`] / [`Sim::release`]).
    pub fn add_fault(&mut self, rule: FaultRule) -> String {
        let name = rule.name.clone();
        self.faults.push(rule);
        name
    }
    /// Removes a rule; frames it held are delivered (as [`Sim::release`]).
    pub fn remove_fault(&mut self, name: &str) {
        self.release(name);
    }

    // ----- events -----------------------------------------------------------

    fn push_event(&mut self, at: Instant, ev: Ev) {
        let slot = match self.free_events.pop() {
            Some(i) => {
                self.events[i] = Some(ev);
                i
            }
            None => {
                self.events.push(Some(ev));
                self.events.len() - 1
            }
        };
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, slot)));
    }

    fn schedule_wake(&mut self, node: usize, at: Instant) {
        let at = at.max(self.now);
        if self.wake_at[node].is_some_and(|w| w <= at) {
            return;
        }
        self.wake_at[node] = Some(at);
        self.push_event(at, Ev::Wake { node });
    }

    /// Processes the next event; false when there is none.
    pub fn step(&mut self) -> bool {
        let Some(Reverse((at, _, slot))) = self.queue.pop() else {
            return false;
        };
        let Some(ev) = self.events[slot].take() else {
            return true;
        };
        self.free_events.push(slot);
        self.now = self.now.max(at);
        match ev {
            Ev::Arrive {
                node,
                iface,
                frame,
                trace,
            } => {
                self.events_processed += 1;
                self.arrive(node, iface, frame, trace)
            }
            Ev::Wake { node } => {
                if self.wake_at[node] != Some(at) {
                    return true; // superseded by an earlier wake
                }
                self.events_processed += 1;
                self.wake_at[node] = None;
                self.wake(node);
            }
        }
        true
    }

    fn next_event_at(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse((t, _, _))| *t)
    }

    /// Runs every event up to and including `t`; the clock ends at `t`.
    pub fn run_until(&mut self, t: Instant) {
        while self.next_event_at().is_some_and(|n| n <= t) {
            self.step();
        }
        self.now = self.now.max(t);
    }

    pub fn run_for(&mut self, d: Duration) {
        let t = self.now + d;
        self.run_until(t);
    }

    /// Runs until nothing is pending or `limit` of virtual time has passed.
    /// Returns true if the network went idle.
    pub fn run_until_idle_or(&mut self, limit: Duration) -> bool {
        let end = self.now + limit;
        loop {
            match self.next_event_at() {
                None => return true,
                Some(t) if t > end => {
                    self.now = end;
                    return false;
                }
                Some(_) => {
                    self.step();
                }
            }
        }
    }

    /// Runs until `done(self)` holds or `limit` passes; true if it held.
    pub fn run_until_pred(&mut self, limit: Duration, mut done: impl FnMut(&Sim) -> bool) -> bool {
        let end = self.now + limit;
        loop {
            if done(self) {
                return true;
            }
            match self.next_event_at() {
                Some(t) if t <= end => {
                    self.step();
                }
                _ => {
                    self.now = self.now.max(end);
                    return done(self);
                }
            }
        }
    }

    // ----- frames -----------------------------------------------------------

    /// Puts a raw frame on the wire of `node`'s interface `iface`, as if its
    /// NIC had sent it (adversarial load, spoofed traffic, replays). The
    /// frame is traced like any other. Out-of-range nodes or interfaces
    /// are ignored.
    pub fn inject(&mut self, node: NodeId, iface: usize, frame: Vec<u8>) {
        if self.attach.get(node.0).is_none_or(|a| iface >= a.len()) {
            return;
        }
        let name = self.names[node.0].clone();
        let t = self.new_trace(&name, &frame, None);
        self.transmit(node.0, iface, frame, t);
    }

    fn new_trace(&mut self, origin: &str, frame: &[u8], iface_out: Option<String>) -> Option<u64> {
        if !self.tracing || frame.len() < 14 || u16::from_be_bytes([frame[12], frame[13]]) != 0x0800
        {
            return None;
        }
        let id = self.traces.len() as u64;
        self.traces.push(FrameTrace {
            id,
            at: self.now,
            origin: origin.to_string(),
            summary: summarize(frame),
            hops: vec![Hop {
                at: self.now,
                node: origin.to_string(),
                iface_in: None,
                iface_out,
                steps: vec![Step::Sent],
            }],
            disposition: Disposition::InFlight,
            legs: Vec::new(),
            reply_to: None,
        });
        Some(id)
    }

    fn set_reply_to(&mut self, trace: Option<u64>, cause: Option<u64>) {
        if let Some(t) = trace.and_then(|t| self.traces.get_mut(t as usize)) {
            t.reply_to = cause;
        }
    }

    fn set_disposition(&mut self, trace: Option<u64>, d: Disposition) {
        if let Some(t) = trace.and_then(|t| self.traces.get_mut(t as usize)) {
            t.disposition = d;
        }
    }

    /// Puts `frame` on the wire of `node`'s interface `iface`.
    fn transmit(&mut self, node: usize, iface: usize, mut frame: Vec<u8>, trace: Option<u64>) {
        let seg_id = self.attach[node][iface];
        let from = self.segments[seg_id]
            .ports
            .iter()
            .position(|p| p.node == node && p.iface == iface);
        let Some(from) = from else { return };
        let seg = &mut self.segments[seg_id];
        let ser = seg.params.serialisation(frame.len());
        let start = seg
            .busy_until
            .get(&from)
            .copied()
            .unwrap_or(Instant::ZERO)
            .max(self.now);
        seg.busy_until.insert(from, start + ser);
        if self.capture {
            seg.capture.push((start, frame.clone()));
        }
        let pcap_frame = self.capture.then_some(seg.capture.len() as u64);
        if let Some(t) = trace.and_then(|t| self.traces.get_mut(t as usize)) {
            // Names are cloned only for a traced frame: per frame, the
            // clones were ~3% of a bulk transfer's wall time.
            t.legs.push(Leg {
                segment: seg.name.clone(),
                from: self.names[node].clone(),
                to: None,
                at: start,
                pcap_frame,
                bytes: frame.clone(),
            });
        }
        let seg = &mut self.segments[seg_id];
        if frame.len() > seg.params.mtu + 14 {
            let name = seg.name.clone();
            self.set_disposition(
                trace,
                Disposition::Dropped {
                    node: name,
                    reason: "frame larger than the segment MTU".into(),
                },
            );
            return;
        }
        let latency = seg.params.latency;
        let loss = seg.params.loss;
        let mut dests = seg.forward(from, &frame);
        // smoltcp answers, and learns from, only ARP aimed at its own
        // address (iface/interface/ipv4.rs `process_arp`: "Only process ARP
        // packets for us"): a broadcast request's copies for other hosts
        // change nothing, and not queueing them keeps a segment of N hosts
        // from costing N² events. Routers get every copy (a NAT router may
        // answer for addresses it owns).
        if let Some((1, _, tpa)) = arp_fields(&frame) {
            let ports = &self.segments[seg_id].ports;
            dests.retain(|&p| match &self.nodes[ports[p].node] {
                Node::Host(h) => h.info.addr.octets() == tpa,
                Node::Router(_) => true,
            });
        }
        let n = dests.len();
        if n == 1 {
            if let Some(leg) = trace
                .and_then(|t| self.traces.get_mut(t as usize))
                .and_then(|t| t.legs.last_mut())
            {
                leg.to = Some(self.names[self.segments[seg_id].ports[dests[0]].node].clone());
            }
        }
        for (k, p) in dests.into_iter().enumerate() {
            let to = self.segments[seg_id].ports[p];
            let mut delay = Duration::ZERO;
            // The first rule with an opinion decides (turmoil's order).
            let verdict = self.faults.iter().enumerate().find_map(|(i, rule)| {
                let v = (rule.rule)(&InFlight {
                    segment: &self.segments[seg_id].name,
                    from: &self.names[node],
                    to: &self.names[to.node],
                    frame: &frame,
                });
                (v != FaultVerdict::Pass).then_some((i, v))
            });
            match verdict {
                Some((i, FaultVerdict::Drop)) => {
                    if n == 1 {
                        let rule = self.faults[i].name.clone();
                        self.set_disposition(trace, Disposition::DroppedByFault { rule });
                    }
                    continue;
                }
                Some((i, FaultVerdict::Hold)) => {
                    let rule = self.faults[i].name.clone();
                    let f = if k + 1 == n {
                        std::mem::take(&mut frame)
                    } else {
                        frame.clone()
                    };
                    self.held.push(Held {
                        rule,
                        latency,
                        to,
                        frame: f,
                        trace,
                    });
                    continue;
                }
                Some((_, FaultVerdict::Deliver(d))) => delay = d,
                Some((_, FaultVerdict::Pass)) | None => {}
            }
            if loss > 0.0 && self.rng.gen_bool(loss.clamp(0.0, 1.0)) {
                if n == 1 {
                    let segment = self.segments[seg_id].name.clone();
                    self.set_disposition(trace, Disposition::Lost { segment });
                }
                continue;
            }
            // The last copy takes the buffer itself: no per-frame clone.
            let f = if k + 1 == n {
                std::mem::take(&mut frame)
            } else {
                frame.clone()
            };
            let at = start + ser + latency + delay;
            self.push_event(
                at,
                Ev::Arrive {
                    node: to.node,
                    iface: to.iface,
                    frame: f,
                    trace,
                },
            );
        }
    }

    /// Delivers the frames `rule` held, in the order it held them, and
    /// removes the rule. Returns how many frames were released.
    pub fn release(&mut self, rule: &str) -> usize {
        self.faults.retain(|f| f.name != rule);
        let (go, keep): (Vec<Held>, Vec<Held>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|h| h.rule == rule);
        self.held = keep;
        let n = go.len();
        for h in go {
            let at = self.now + h.latency;
            self.push_event(
                at,
                Ev::Arrive {
                    node: h.to.node,
                    iface: h.to.iface,
                    frame: h.frame,
                    trace: h.trace,
                },
            );
        }
        n
    }

    /// Frames held by fault rules, not yet released.
    pub fn held_frames(&self) -> usize {
        self.held.len()
    }

    fn arrive(&mut self, node: usize, iface: usize, frame: Vec<u8>, trace: Option<u64>) {
        self.frames_delivered += 1;
        let now = self.now;
        match &mut self.nodes[node] {
            Node::Host(h) => {
                if frame.len() < 14 || (frame[0..6] != h.mac && frame[0] & 1 == 0) {
                    return; // a flooded copy for someone else
                }
                if let Some((2, spa, _)) = arp_fields(&frame) {
                    self.arp_asks.remove(&(node, spa));
                }
                h.device.rx.push_back(frame);
                if let Some(t) = trace.and_then(|t| self.traces.get_mut(t as usize)) {
                    let name = self.names[node].clone();
                    t.hops.push(Hop {
                        at: now,
                        node: name.clone(),
                        iface_in: Some("eth0".into()),
                        iface_out: None,
                        steps: vec![Step::Received],
                    });
                    t.disposition = Disposition::Delivered { node: name };
                }
                self.run_host(node);
            }
            Node::Router(r) => {
                let mut out = Outcome::new(self.tracing);
                r.receive(now, iface, frame, trace, &mut out);
                self.router_outcome(node, Some(iface), trace, out);
            }
        }
    }

    fn router_outcome(
        &mut self,
        node: usize,
        iface_in: Option<usize>,
        trace: Option<u64>,
        out: Outcome,
    ) {
        let Node::Router(r) = &self.nodes[node] else {
            return;
        };
        if !out.steps.is_empty() {
            if let Some(t) = trace.and_then(|t| self.traces.get_mut(t as usize)) {
                let name =
                    |i: Option<usize>| i.and_then(|i| r.ifaces.get(i)).map(|i| i.name.clone());
                t.hops.push(Hop {
                    at: self.now,
                    node: self.names[node].clone(),
                    iface_in: name(iface_in),
                    iface_out: name(out.iface_out),
                    steps: out.steps,
                });
            }
        }
        if let Some(d) = out.disposition {
            self.set_disposition(trace, d);
        }
        for (iface, frame, t) in out.tx {
            self.transmit(node, iface, frame, t);
        }
        for (iface, frame) in out.originated {
            let t = if self.tracing {
                let iname = match &self.nodes[node] {
                    Node::Router(r) => r.ifaces.get(iface).map(|i| i.name.clone()),
                    Node::Host(_) => None,
                };
                let name = self.names[node].clone();
                let t = self.new_trace(&name, &frame, iname);
                self.set_reply_to(t, trace);
                t
            } else {
                None
            };
            if iface < self.attach[node].len() {
                self.transmit(node, iface, frame, t);
            }
        }
        for frame in out.local_out {
            let t = if self.tracing {
                let name = format!("{} (local stack)", self.names[node]);
                let t = self.new_trace(&name, &frame, None);
                self.set_reply_to(t, trace);
                t
            } else {
                None
            };
            let mut o = Outcome::new(self.tracing);
            if let Node::Router(r) = &mut self.nodes[node] {
                r.local_frame(self.now, frame, t, &mut o);
            }
            self.router_outcome(node, None, t, o);
        }
        self.reschedule(node);
    }

    fn run_host(&mut self, node: usize) {
        let now = self.now;
        let Node::Host(h) = &mut self.nodes[node] else {
            return;
        };
        let out = h.poll(now);
        for f in &out {
            // A host asking again for an address nobody answered for: say
            // so in its log, where `explain` shows it (the frame it wanted
            // to send never reaches the wire, so no trace can).
            if let Some((1, _, tpa)) = arp_fields(f) {
                let e = self.arp_asks.entry((node, tpa)).or_insert((now, 0));
                e.1 += 1;
                if e.1 == 2 {
                    let first = e.0;
                    let seg = &self.segments[self.attach[node][0]].name;
                    let text = format!(
                        "no answer to ARP who-has {} (asked at {first}, again at {now}): nothing on {seg} answers for that address",
                        std::net::Ipv4Addr::from(tpa)
                    );
                    let host = self.names[node].clone();
                    if let Node::Host(h) = &mut self.nodes[node] {
                        h.log.push(crate::app::AppEvent {
                            at: now,
                            host,
                            app: "arp",
                            text,
                        });
                    }
                }
            }
        }
        for f in out {
            let t = if self.tracing {
                let name = self.names[node].clone();
                self.new_trace(&name, &f, Some("eth0".into()))
            } else {
                None
            };
            self.transmit(node, 0, f, t);
        }
        self.reschedule(node);
    }

    fn wake(&mut self, node: usize) {
        let now = self.now;
        match &mut self.nodes[node] {
            Node::Host(_) => self.run_host(node),
            Node::Router(r) => {
                let mut out = Outcome::new(self.tracing);
                let failed = r.wake(now, &mut out);
                self.router_outcome(node, None, None, out);
                // Each ICMP host unreachable is the answer to its frame.
                for (frame, trace) in failed {
                    let Node::Router(r) = &mut self.nodes[node] else {
                        return;
                    };
                    let mut o = Outcome::new(self.tracing);
                    r.unreachable(&frame, 0, &mut o);
                    let node_name = r.name.clone();
                    self.set_disposition(trace, Disposition::HostUnreachable { node: node_name });
                    self.router_outcome(node, None, trace, o);
                }
            }
        }
    }

    fn reschedule(&mut self, node: usize) {
        let now = self.now;
        let at = match &mut self.nodes[node] {
            Node::Host(h) => h.poll_at(now),
            Node::Router(r) => r.poll_at(now),
        };
        if let Some(at) = at {
            // A deadline equal to now would spin: the node has just run.
            let at = if at <= now {
                now + Duration::from_micros(1)
            } else {
                at
            };
            self.schedule_wake(node, at);
        }
    }

    // ----- captures ---------------------------------------------------------

    /// The frames captured on a segment: (time, bytes).
    pub fn capture(&self, seg: SegmentId) -> &[(Instant, Vec<u8>)] {
        &self.segments[seg.0].capture
    }

    /// Writes one pcap per segment as `dir/<prefix><segment>.pcap`, with
    /// virtual timestamps. Returns the paths.
    pub fn write_pcaps(
        &self,
        dir: &std::path::Path,
        prefix: &str,
    ) -> std::io::Result<Vec<std::path::PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let mut paths = Vec::new();
        for s in &self.segments {
            let safe: String = s
                .name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let path = dir.join(format!("{prefix}{safe}.pcap"));
            let file = std::fs::File::create(&path)?;
            crate::pcap::write(std::io::BufWriter::new(file), &s.capture)?;
            paths.push(path);
        }
        Ok(paths)
    }

    /// A segment's capture as pcap bytes.
    pub fn pcap_bytes(&self, seg: SegmentId) -> Vec<u8> {
        let mut v = Vec::new();
        let _ = crate::pcap::write(&mut v, &self.segments[seg.0].capture);
        v
    }
}
