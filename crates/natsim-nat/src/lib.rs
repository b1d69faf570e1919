//! # natsim-nat: a sans-IO NAT engine for raw Ethernet frames
//!
//! The engine is a state machine. A router hands it each IPv4 frame with
//! the time and the interface it arrived on; it answers with a [`Verdict`]
//! and reports every decision as [`NatStep`]s to a [`TraceSink`]. It has no
//! clock, no OS randomness and no I/O: [`NatEngine::poll_at`] says when
//! [`NatEngine::handle_timeout`] should run. The same configuration, seed
//! and inputs give the same outputs, byte for byte.
//!
//! ```
//! use natsim_nat::*;
//! use std::net::Ipv4Addr;
//!
//! let lan = IfaceId(0);
//! let wan = IfaceId(1);
//! let mut cfg = NatConfig::new(Behaviour::linux())
//!     .interface(lan, Ipv4Addr::new(192, 168, 1, 1), 24, Role::Inside)
//!     .interface(wan, Ipv4Addr::new(203, 0, 113, 1), 24, Role::Outside);
//! cfg.rules.masquerade("masq", wan, None);
//! cfg.rules.forward("smtp", wan, Proto::Tcp, PortRange::single(25),
//!                   Ipv4Addr::new(192, 168, 1, 10), None);
//! let nat = NatEngine::new(cfg).unwrap();
//! assert!(nat.owns(Ipv4Addr::new(203, 0, 113, 1)));
//! ```
//!
//! ## Rules
//! Rules sit in two ordered chains that mirror netfilter's `nat` table (see
//! [`config`] for the evaluation order): *prerouting* (DNAT/port forward,
//! REDIRECT, NETMAP, exemptions) on a connection's first packet before
//! routing, and *postrouting* (masquerade, SNAT to a pool, NETMAP,
//! exemptions) after routing. First match wins in each chain. Later packets
//! of the connection follow its state. One-to-one NAT is a NETMAP pair
//! applied statelessly to every protocol. Rule sets are checked when the
//! engine is built ([`ConfigError`]): unknown interfaces, actions in the
//! wrong chain, empty ranges and pools, and rules shadowed by an earlier
//! rule are refused.
//!
//! ## Profiles
//! A [`Behaviour`] holds what NAT implementations differ on: mapping and
//! filtering behaviour per protocol (RFC 4787 §4–5), port assignment
//! (preservation, parity, range classes, pooling, overloading), what
//! unsolicited traffic gets (silent drop or RST / ICMP port unreachable),
//! whether outside traffic to inside addresses is filtered, hairpinning
//! (off, DNAT-only as Linux, or RFC 4787 REQ-9), UDP refresh direction and
//! the idle timeouts. Named profiles: `linux`, `rfc-recommended`,
//! `full-cone`, `restricted-cone`, `port-restricted-cone`, `symmetric`
//! ([`Behaviour::by_name`]).
//!
//! Order for a new flow: prerouting rules, then admission through an
//! existing mapping by its filtering behaviour, then routing, then the
//! unsolicited-traffic policy, then hairpin handling or postrouting.
//! Explicit forwards therefore win over mappings on the same external port.
//!
//! ## Verdicts and trace steps
//! [`Verdict::Forward`] (rewritten in place), [`Verdict::Local`] (for the
//! router's own stack), [`Verdict::Reply`] (the buffer now holds a RST or
//! ICMP error to send back) or [`Verdict::Drop`] with a [`DropReason`].
//! [`NatStep`]s say which rule matched, which mapping was created or
//! reused, the flow before and after, state changes and drop reasons.
//! Recording them allocates nothing unless the sink does (`()` records
//! nothing; `Vec<NatStep>` records everything).
//!
//! ## State and timeouts
//! Connections are tracked in a bounded table ([`NatConfig::capacity`]).
//! When it is full, the oldest embryonic connection is evicted: one that
//! has seen no reply, or a TCP connection that never reached ESTABLISHED
//! (a SYN answered by a SYN-ACK nobody acknowledges) or has already closed
//! (RST, TIME_WAIT). Established and replied entries are never evicted; if
//! nothing is evictable the new flow is dropped with
//! [`DropReason::TableFull`]. Evictions are counted per protocol and
//! traced ([`EndReason::Evicted`]). TCP state follows a simplified conntrack
//! machine with per-state timeouts (RFC 5382 REQ-5 in the RFC profiles,
//! nf_conntrack's in `linux`).
//!
//! ## Application-level gateways
//! Off by default (as in Linux). [`NatConfig::alg`] binds a helper to its
//! well-known port; [`AlgConfig::rules`] binds one to a rule by name. The
//! EPM helper rewrites DCE/RPC protocol towers in `ept_map`/`ept_lookup`
//! answers (the server's inside address becomes the one the client dialled)
//! and opens a pinhole for the endpoint; the FTP helper rewrites PORT,
//! EPRT, 227 and 229 with sequence adjustment. Pinholes are checked before
//! the prerouting chain. Each action is a [`NatStep::Alg`] step. See
//! [`alg`] for the stream model and the policy for malformed payloads.
//!
//! ## Checksums and bad input
//! IPv4, TCP, UDP and ICMP checksums are updated incrementally (RFC 1624
//! eqn. 3; a zero UDP checksum stays zero, a computed zero goes out as
//! 0xFFFF). Checksums are not verified: a packet with a bad checksum keeps a
//! bad checksum. Truncated frames, non-IPv4, bad IHL and garbage are drop
//! verdicts, never panics.
//!
//! ## Fragments
//! What happens to IP fragments is the profile's [`FragmentHandling`]:
//! dropped; translated one by one, holding those that arrive before their
//! first fragment (RFC 4787 REQ-14); or reassembled first, as Linux's
//! nf_defrag_ipv4 does. A held fragment is a [`Verdict::Held`]; fragments a
//! first fragment released come out of [`NatEngine::take_released`].
#![deny(unsafe_code)]
#![warn(missing_debug_implementations)]

pub mod alg;
pub mod checksum;
pub mod config;
mod defrag;
mod engine;
pub mod flow;
mod frame;
mod icmp;
mod stats;
mod table;
mod tcp;
pub mod time;
pub mod trace;
pub mod verdict;
pub mod wire;

pub use alg::{AlgConfig, AlgEvent, AlgKind, AlgPass, AlgPolicy, FtpVerb};
pub use config::{
    Action, Behaviour, Chain, ConfigError, CtStates, Filter, FilterAction, FilterChain, FilterHook,
    FilterRule, FilteringBehaviour, FragmentHandling, Hairpin, IcmpType, IfaceId, Interface,
    MappingBehaviour, Match, NatConfig, Negated, Pooling, PortAssignment, PortClasses, PortFlag,
    PortStrategy, ProtoBehaviour, RejectWith, Role, Rule, RuleId, RuleSet, SnatPool, TcpFlagsMatch,
    Timeouts, UdpRefresh, Unreachable, Unsolicited,
};
pub use defrag::{Released, FRAGMENT_MEMORY, FRAGMENT_TIMEOUT};
pub use engine::{ConnInfo, NatEngine};
pub use flow::{Dir, Endpoint, Flow, PortRange, Prefix, Proto};
pub use stats::{ProtoCounters, Stats};
pub use time::{Duration, Instant};
pub use trace::{ConnId, EndReason, FragmentEvent, Miss, NatStep, ReplyKind, TcpState, TraceSink};
pub use verdict::{DropReason, Layer, Route, Routes, Verdict};
