//! natsim-sim: a deterministic discrete-event network of smoltcp hosts and
//! NAT routers.
//!
//! ## Map
//! * [`sim`]: the world — virtual time, the `(time, seq)` event queue, the
//!   builder API ([`Sim::builder`], [`Sim::segment`], [`Sim::router`],
//!   [`Sim::host`], [`Sim::add_app`]) and the run loops.
//! * [`link`]: L2 segments (learning switch) with latency, bandwidth, MTU,
//!   seeded loss; [`fault`]: `Pass | Deliver(delay) | Hold | Drop` rules
//!   (partition, delay, hold/[`Sim::release`], drop-by-predicate, each
//!   with a one-way variant).
//! * [`host`] + [`device`]: a smoltcp `Interface` over [`SimDevice`], with
//!   the host's TCP connect profile ([`TcpProfile`]: Windows-like 3 SYNs
//!   over 21 s by default) and the ICMP errors it received
//!   ([`IcmpErrors`], which smoltcp's sockets ignore) for apps to read.
//! * [`router`]: ARP (proxy ARP for NAT-owned addresses), longest-prefix
//!   routing, TTL, ICMP errors, the natsim-nat engine, an optional local
//!   stack for the router's own services.
//! * [`app`]: the [`App`] trait apps implement; [`tcp`]: the connect helper
//!   with the profile's timeout; [`probe`]: telnet, ping, UDP and bulk-TCP
//!   probes.
//! * [`trace`]: per-frame traces (hops, steps, disposition); [`pcap`]:
//!   captures with virtual timestamps.
//!
//! ## Contracts
//! Deterministic: same topology and seed ⇒ byte-identical captures and
//! traces. Nothing here reads the wall clock or OS randomness. Malformed
//! frames are dropped with a reason, never a panic.
#![deny(unsafe_code)]

pub mod app;
mod config;
pub mod device;
pub mod fault;
pub mod host;
mod icmp_fix;
mod ids;
pub mod link;
mod neighbour;
mod packet;
pub mod pcap;
pub mod probe;
pub mod router;
pub mod sim;
pub mod tcp;
pub mod trace;

pub use app::{App, AppCx, AppEvent, HostInfo, IcmpError, IcmpErrors, TcpProfile};
pub use device::SimDevice;
pub use fault::{FaultRule, FaultVerdict, InFlight};
pub use link::LinkParams;
pub use router::MssClamp;
pub use sim::{
    AppId, HostConfig, NodeId, NodeInfo, RouterConfig, SegmentId, Sim, SimBuilder, SimError,
};
pub use trace::{Disposition, FrameTrace, Hop, Leg, Step};
