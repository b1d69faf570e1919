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

mod build;
mod capture;
mod deliver;
mod transit;

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

    /// The MAC address of `node`'s interface `iface`, for a frame handed
    /// to [`inject`](Self::inject) that must reach it as unicast (a Linux
    /// router forwards, and answers with ICMP errors, only frames sent to
    /// its own MAC); None out of range.
    pub fn mac(&self, node: NodeId, iface: usize) -> Option<[u8; 6]> {
        let attached = self.attach.get(node.0)?;
        (iface < attached.len()).then(|| Self::mac_of(node.0, iface))
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
}
