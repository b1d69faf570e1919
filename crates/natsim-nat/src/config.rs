//! Engine configuration: interfaces, ordered NAT rules and the behaviour
//! profile.
//!
//! # Rule evaluation (netfilter-like)
//! Rules live in two chains that mirror netfilter's `nat` table:
//!
//! * [`Chain::Prerouting`] runs on the first packet of a connection before
//!   the routing decision. Its actions change the destination:
//!   [`Action::Dnat`] (port forwarding), [`Action::Redirect`] (to the router
//!   itself), [`Action::Netmap`] (prefix ↔ prefix) or [`Action::Accept`]
//!   (exempt: stop here, no destination NAT).
//! * [`Chain::Postrouting`] runs on the first packet after routing, when the
//!   egress interface is known. Its actions change the source:
//!   [`Action::Masquerade`], [`Action::Snat`], [`Action::Netmap`] or
//!   [`Action::Accept`] (exempt).
//!
//! Within a chain the first matching rule wins, exactly as `iptables -t nat`.
//! Later packets of the connection never see the rules again: they follow
//! the connection's state. One-to-one NAT ([`RuleSet::one_to_one`]) is a pair of
//! `Netmap` rules, one in each chain, and is applied statelessly to every
//! protocol.

use crate::flow::{PortRange, Prefix, Proto};
use crate::time::Duration;
use core::fmt;
use std::net::Ipv4Addr;

/// A router interface, as numbered by the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IfaceId(pub u16);

impl IfaceId {
    /// Pseudo-interface for packets the router itself sends or receives
    /// (its local stack, REDIRECT targets).
    pub const LOCAL: IfaceId = IfaceId(u16::MAX);
}

impl fmt::Display for IfaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == IfaceId::LOCAL {
            f.write_str("local")
        } else {
            write!(f, "if{}", self.0)
        }
    }
}

/// Which side of the NAT an interface faces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// The private side (LAN).
    Inside,
    /// The public side (WAN): unsolicited-traffic policy applies here.
    Outside,
}

/// One interface of the router the engine serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub id: IfaceId,
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
    pub role: Role,
}

/// Index of a rule in [`RuleSet::rules`], used in verdicts and traces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuleId(pub u16);

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rule#{}", self.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Chain {
    Prerouting,
    Postrouting,
}

/// What a rule matches. Every `None` is a wildcard.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Match {
    /// `None` matches every protocol.
    pub proto: Option<Proto>,
    /// Ingress interface (prerouting).
    pub in_iface: Option<IfaceId>,
    /// Egress interface (postrouting).
    pub out_iface: Option<IfaceId>,
    pub src: Option<Prefix>,
    pub dst: Option<Prefix>,
    /// The destination is the current address of this interface
    /// (`-d <address of wan>`; follows a dial-up interface's address).
    /// Unlike `in_iface`, this also matches hairpinned packets from inside.
    pub dst_iface_addr: Option<IfaceId>,
    /// Destination ports; only meaningful with TCP or UDP.
    pub dst_ports: Option<PortRange>,
}

/// How a pool picks the external address for a new mapping (RFC 4787 REQ-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Pooling {
    /// One internal address always uses the same external address.
    #[default]
    Paired,
    /// Any pool address with a free port.
    Arbitrary,
}

/// The source translation target of [`Action::Snat`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnatPool {
    /// Inclusive address range.
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
    pub ports: PortRange,
    pub pooling: Pooling,
}

impl SnatPool {
    pub fn len(&self) -> u64 {
        let (a, b) = (self.first.to_bits(), self.last.to_bits());
        if b < a {
            0
        } else {
            u64::from(b - a) + 1
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        (self.first..=self.last).contains(&a)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Exempt: stop evaluating this chain and leave the packet untranslated.
    Accept,
    /// Destination NAT. `to_port: None` keeps the port; with a port range
    /// match, `to_port` is the first port of the target range (offset kept).
    Dnat { to: Ipv4Addr, to_port: Option<u16> },
    /// Destination NAT to the router itself (ingress interface address).
    Redirect { to_port: Option<u16> },
    /// Source NAT to the egress interface's address. `PortRange::ALL`
    /// means "no explicit range": the port keeps its class when the profile
    /// asks for it (RFC 4787 REQ-3).
    Masquerade { ports: PortRange },
    /// Source NAT to a pool of addresses and ports.
    Snat(SnatPool),
    /// Prefix-to-prefix mapping (NETMAP): host bits kept. Applied to the
    /// destination in prerouting and to the source in postrouting.
    Netmap { to: Prefix },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// A name for traces and reports (e.g. `forward-smtp`).
    pub name: String,
    pub chain: Chain,
    pub matches: Match,
    pub action: Action,
}

/// Mapping behaviour (RFC 4787 §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MappingBehaviour {
    EndpointIndependent,
    AddressDependent,
    AddressAndPortDependent,
}

/// Filtering behaviour (RFC 4787 §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FilteringBehaviour {
    EndpointIndependent,
    AddressDependent,
    AddressAndPortDependent,
}

impl fmt::Display for MappingBehaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::EndpointIndependent => "endpoint-independent",
            Self::AddressDependent => "address-dependent",
            Self::AddressAndPortDependent => "address-and-port-dependent",
        })
    }
}

impl fmt::Display for FilteringBehaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::EndpointIndependent => "endpoint-independent",
            Self::AddressDependent => "address-dependent",
            Self::AddressAndPortDependent => "address-and-port-dependent",
        })
    }
}

/// Mapping and filtering for one protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProtoBehaviour {
    pub mapping: MappingBehaviour,
    pub filtering: FilteringBehaviour,
}

/// Where the search for an external port starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortStrategy {
    /// Try the internal port first, then search upwards.
    Preserve,
    /// Hand out ports in order from a per-pool cursor.
    Sequential,
    /// Start at a seeded random point.
    Random,
    /// Try the internal port; on a clash start at a random point (Linux).
    PreserveThenRandom,
}

/// How external ports are chosen (RFC 4787 REQ-3, REQ-4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortAssignment {
    pub strategy: PortStrategy,
    /// Keep the port's parity (even stays even). RFC 4787 REQ-4.
    pub preserve_parity: bool,
    /// Keep ports below 1024 below 1024 and the rest above (RFC 4787
    /// REQ-3; Linux uses the classes 1-511, 600-1023, 1024-65535).
    pub preserve_range_class: bool,
    /// Allow two internal endpoints to share one external endpoint when
    /// their destinations differ ("port overloading", which RFC 4787 REQ-3
    /// forbids and Linux does). Only valid with address-and-port-dependent
    /// filtering.
    pub allow_overloading: bool,
    /// Ports tried before a new flow is dropped (Linux gives up after 128).
    pub max_attempts: u32,
}

/// What unsolicited inbound traffic (no connection, no rule, no mapping
/// that filtering admits) gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unsolicited {
    /// Silently dropped: the sender times out (the Q193863 router).
    Drop,
    /// TCP gets a RST, UDP gets ICMP port unreachable (Linux with NAT-only
    /// rules: the router's own stack answers).
    Reject,
}

/// Hairpinning: an inside host reaching another inside host through the
/// router's external address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hairpin {
    /// Dropped, as the KB-era routers behaved.
    Off,
    /// Destination translated but source untouched: the server answers the
    /// client directly and the connection fails (what Linux does without an
    /// extra SNAT rule).
    DnatOnly,
    /// RFC 4787 REQ-9 / RFC 5382 REQ-8: the source is also rewritten to the
    /// client's external mapping.
    On,
}

/// Which packets refresh a UDP mapping's timer (RFC 4787 REQ-6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpRefresh {
    OutboundOnly,
    Both,
}

/// Idle timeouts per state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp_syn_sent: Duration,
    pub tcp_syn_recv: Duration,
    pub tcp_established: Duration,
    pub tcp_fin_wait: Duration,
    pub tcp_close_wait: Duration,
    pub tcp_last_ack: Duration,
    pub tcp_time_wait: Duration,
    pub tcp_close: Duration,
    /// UDP before any reply was seen.
    pub udp_unreplied: Duration,
    /// UDP after a reply was seen.
    pub udp_replied: Duration,
    pub icmp: Duration,
    /// Other protocols (only under static rules, which keep no state).
    pub generic: Duration,
}

impl Timeouts {
    /// Linux nf_conntrack defaults (SPEC.md §4).
    pub const LINUX: Timeouts = Timeouts {
        tcp_syn_sent: Duration::from_secs(120),
        tcp_syn_recv: Duration::from_secs(60),
        tcp_established: Duration::from_secs(432_000),
        tcp_fin_wait: Duration::from_secs(120),
        tcp_close_wait: Duration::from_secs(60),
        tcp_last_ack: Duration::from_secs(30),
        tcp_time_wait: Duration::from_secs(120),
        tcp_close: Duration::from_secs(10),
        udp_unreplied: Duration::from_secs(30),
        udp_replied: Duration::from_secs(120),
        icmp: Duration::from_secs(30),
        generic: Duration::from_secs(600),
    };
    /// RFC 5382 REQ-5 (established ≥ 2 h 4 min, transitory ≥ 4 min),
    /// RFC 4787 REQ-5 (UDP ≥ 2 min, 5 min recommended), RFC 5508 (ICMP ≥ 60 s).
    pub const RFC: Timeouts = Timeouts {
        tcp_syn_sent: Duration::from_secs(240),
        tcp_syn_recv: Duration::from_secs(240),
        tcp_established: Duration::from_secs(7_440),
        tcp_fin_wait: Duration::from_secs(240),
        tcp_close_wait: Duration::from_secs(240),
        tcp_last_ack: Duration::from_secs(240),
        tcp_time_wait: Duration::from_secs(240),
        tcp_close: Duration::from_secs(240),
        udp_unreplied: Duration::from_secs(300),
        udp_replied: Duration::from_secs(300),
        icmp: Duration::from_secs(60),
        generic: Duration::from_secs(600),
    };
}

/// Everything that differs between NAT implementations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Behaviour {
    /// Profile name for reports (`linux`, `full-cone`, ...).
    pub name: &'static str,
    pub tcp: ProtoBehaviour,
    pub udp: ProtoBehaviour,
    pub icmp: ProtoBehaviour,
    pub ports: PortAssignment,
    pub unsolicited: Unsolicited,
    /// Drop traffic from outside interfaces to inside addresses that no
    /// connection, rule or mapping admits (a stateful firewall). When
    /// false, such traffic is simply routed (Linux with NAT-only rules).
    pub filter_inbound: bool,
    pub hairpin: Hairpin,
    pub udp_refresh: UdpRefresh,
    pub timeouts: Timeouts,
}

impl Behaviour {
    fn classic(
        name: &'static str,
        mapping: MappingBehaviour,
        filtering: FilteringBehaviour,
    ) -> Behaviour {
        let pb = ProtoBehaviour { mapping, filtering };
        Behaviour {
            name,
            tcp: pb,
            udp: pb,
            icmp: pb,
            ports: PortAssignment {
                strategy: PortStrategy::Preserve,
                preserve_parity: false,
                preserve_range_class: true,
                allow_overloading: false,
                max_attempts: u32::MAX,
            },
            unsolicited: Unsolicited::Drop,
            filter_inbound: true,
            hairpin: Hairpin::Off,
            udp_refresh: UdpRefresh::OutboundOnly,
            timeouts: Timeouts::RFC,
        }
    }

    /// What a Linux 6.x router with nftables masquerade/dnat does.
    pub fn linux() -> Behaviour {
        let pb = ProtoBehaviour {
            // find_appropriate_src reuses the mapping of the same inside
            // endpoint, so mapping looks endpoint-independent.
            mapping: MappingBehaviour::EndpointIndependent,
            filtering: FilteringBehaviour::AddressAndPortDependent,
        };
        Behaviour {
            name: "linux",
            tcp: pb,
            udp: pb,
            icmp: pb,
            ports: PortAssignment {
                strategy: PortStrategy::PreserveThenRandom,
                preserve_parity: false,
                preserve_range_class: true,
                allow_overloading: true,
                max_attempts: 128,
            },
            unsolicited: Unsolicited::Reject,
            filter_inbound: false,
            hairpin: Hairpin::DnatOnly,
            udp_refresh: UdpRefresh::Both,
            timeouts: Timeouts::LINUX,
        }
    }

    /// The RFC 4787/5382/5508 recommendations: endpoint-independent mapping,
    /// address-dependent filtering (REQ-8's choice when security matters),
    /// port preservation with parity, paired pooling, hairpinning, RFC
    /// timeouts, and silent drop of unsolicited SYNs (RFC 5382 REQ-4a).
    pub fn rfc_recommended() -> Behaviour {
        let mut b = Behaviour::classic(
            "rfc-recommended",
            MappingBehaviour::EndpointIndependent,
            FilteringBehaviour::AddressDependent,
        );
        b.ports.preserve_parity = true;
        b.hairpin = Hairpin::On;
        b
    }

    pub fn full_cone() -> Behaviour {
        Behaviour::classic(
            "full-cone",
            MappingBehaviour::EndpointIndependent,
            FilteringBehaviour::EndpointIndependent,
        )
    }

    pub fn restricted_cone() -> Behaviour {
        Behaviour::classic(
            "restricted-cone",
            MappingBehaviour::EndpointIndependent,
            FilteringBehaviour::AddressDependent,
        )
    }

    pub fn port_restricted_cone() -> Behaviour {
        Behaviour::classic(
            "port-restricted-cone",
            MappingBehaviour::EndpointIndependent,
            FilteringBehaviour::AddressAndPortDependent,
        )
    }

    pub fn symmetric() -> Behaviour {
        let mut b = Behaviour::classic(
            "symmetric",
            MappingBehaviour::AddressAndPortDependent,
            FilteringBehaviour::AddressAndPortDependent,
        );
        b.ports.strategy = PortStrategy::Sequential;
        b
    }

    /// Every named profile, for `--help` texts and scenario validation.
    pub const PROFILE_NAMES: [&'static str; 6] = [
        "linux",
        "rfc-recommended",
        "full-cone",
        "restricted-cone",
        "port-restricted-cone",
        "symmetric",
    ];

    /// Looks a profile up by name.
    pub fn by_name(name: &str) -> Option<Behaviour> {
        Some(match name {
            "linux" => Behaviour::linux(),
            "rfc-recommended" => Behaviour::rfc_recommended(),
            "full-cone" => Behaviour::full_cone(),
            "restricted-cone" => Behaviour::restricted_cone(),
            "port-restricted-cone" => Behaviour::port_restricted_cone(),
            "symmetric" => Behaviour::symmetric(),
            _ => return None,
        })
    }

    pub fn for_proto(&self, p: Proto) -> ProtoBehaviour {
        match p {
            Proto::Tcp => self.tcp,
            Proto::Udp => self.udp,
            _ => self.icmp,
        }
    }
}

/// The ordered rules of both chains.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
}

impl RuleSet {
    pub fn new() -> Self {
        RuleSet::default()
    }

    /// Appends a rule and returns its id.
    pub fn push(&mut self, rule: Rule) -> RuleId {
        self.rules.push(rule);
        RuleId(u16::try_from(self.rules.len() - 1).unwrap_or(u16::MAX))
    }

    /// `iptables -t nat -A POSTROUTING -o <out> -j MASQUERADE`.
    pub fn masquerade(&mut self, name: &str, out: IfaceId, src: Option<Prefix>) -> RuleId {
        self.push(Rule {
            name: name.into(),
            chain: Chain::Postrouting,
            matches: Match {
                out_iface: Some(out),
                src,
                ..Match::default()
            },
            action: Action::Masquerade {
                ports: PortRange::ALL,
            },
        })
    }

    /// Port forward: `proto` traffic for `ports` on the address of
    /// `in_iface` goes to `to:to_port` (offset kept within a range). It
    /// matches on the destination address, not the ingress interface, so
    /// hairpinned traffic from inside meets the same rule (see [`Hairpin`]).
    pub fn forward(
        &mut self,
        name: &str,
        in_iface: IfaceId,
        proto: Proto,
        ports: PortRange,
        to: Ipv4Addr,
        to_port: Option<u16>,
    ) -> RuleId {
        self.push(Rule {
            name: name.into(),
            chain: Chain::Prerouting,
            matches: Match {
                proto: Some(proto),
                dst_iface_addr: Some(in_iface),
                dst_ports: Some(ports),
                ..Match::default()
            },
            action: Action::Dnat { to, to_port },
        })
    }

    /// One-to-one NAT between `inside` and `outside` prefixes (equal
    /// lengths) on `outside_iface`: two NETMAP rules. Returns (pre, post).
    pub fn one_to_one(
        &mut self,
        name: &str,
        outside_iface: IfaceId,
        inside: Prefix,
        outside: Prefix,
    ) -> (RuleId, RuleId) {
        let pre = self.push(Rule {
            name: format!("{name} (in)"),
            chain: Chain::Prerouting,
            matches: Match {
                in_iface: Some(outside_iface),
                dst: Some(outside),
                ..Match::default()
            },
            action: Action::Netmap { to: inside },
        });
        let post = self.push(Rule {
            name: format!("{name} (out)"),
            chain: Chain::Postrouting,
            matches: Match {
                out_iface: Some(outside_iface),
                src: Some(inside),
                ..Match::default()
            },
            action: Action::Netmap { to: outside },
        });
        (pre, post)
    }
}

/// Everything the engine needs at construction.
#[derive(Clone, Debug)]
pub struct NatConfig {
    pub interfaces: Vec<Interface>,
    pub rules: RuleSet,
    pub behaviour: Behaviour,
    /// Maximum tracked connections (bounded state table).
    pub capacity: usize,
    /// Seed for random port selection and hashing.
    pub seed: u64,
    /// Application-level gateways (none by default, as in Linux ≥ 4.7).
    pub algs: crate::alg::AlgConfig,
}

impl NatConfig {
    pub fn new(behaviour: Behaviour) -> Self {
        NatConfig {
            interfaces: Vec::new(),
            rules: RuleSet::new(),
            behaviour,
            capacity: 65_536,
            seed: 0,
            algs: crate::alg::AlgConfig::default(),
        }
    }

    /// Turns on an ALG on its well-known port (EPM: TCP 135, FTP: TCP 21).
    pub fn alg(mut self, kind: crate::alg::AlgKind) -> Self {
        self.algs.enable(kind);
        self
    }

    pub fn interface(mut self, id: IfaceId, addr: Ipv4Addr, prefix_len: u8, role: Role) -> Self {
        self.interfaces.push(Interface {
            id,
            addr,
            prefix_len,
            role,
        });
        self
    }

    pub fn iface(&self, id: IfaceId) -> Option<&Interface> {
        self.interfaces.iter().find(|i| i.id == id)
    }
}

/// A configuration the engine refuses, with the rule it concerns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    DuplicateInterface(IfaceId),
    BadPrefixLength {
        iface: IfaceId,
        len: u8,
    },
    UnknownInterface {
        rule: RuleId,
        iface: IfaceId,
    },
    /// An action that does not belong in its chain (e.g. DNAT in postrouting).
    ActionNotAllowedInChain {
        rule: RuleId,
    },
    EmptyPortRange {
        rule: RuleId,
    },
    EmptyPool {
        rule: RuleId,
    },
    /// NETMAP prefixes must have the same length.
    NetmapLengthMismatch {
        rule: RuleId,
    },
    /// Destination ports without TCP or UDP.
    PortsNeedTcpOrUdp {
        rule: RuleId,
    },
    /// A DNAT port range that would run past 65535.
    DnatRangeOverflow {
        rule: RuleId,
    },
    /// A rule is never reached because an earlier one matches everything it does.
    Shadowed {
        rule: RuleId,
        by: RuleId,
    },
    /// Port overloading needs address-and-port-dependent filtering.
    OverloadingNeedsApdf,
    ZeroCapacity,
    TooManyRules,
    /// A pool larger than the engine supports (65536 addresses).
    PoolTooLarge {
        rule: RuleId,
    },
    /// An ALG is bound to a rule name no rule has.
    UnknownAlgRule(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DuplicateInterface(i) => write!(f, "interface {i} is defined twice"),
            Self::BadPrefixLength { iface, len } => {
                write!(f, "interface {iface} has prefix length /{len}; expected 0..=32")
            }
            Self::UnknownInterface { rule, iface } => {
                write!(f, "{rule} names interface {iface}, which the router does not have")
            }
            Self::ActionNotAllowedInChain { rule } => write!(
                f,
                "{rule}: destination actions (dnat, redirect) belong in prerouting and source actions (masquerade, snat) in postrouting"
            ),
            Self::EmptyPortRange { rule } => write!(f, "{rule} has an empty port range"),
            Self::EmptyPool { rule } => write!(f, "{rule} has an empty address pool"),
            Self::NetmapLengthMismatch { rule } => {
                write!(f, "{rule}: one-to-one prefixes must have the same length")
            }
            Self::PortsNeedTcpOrUdp { rule } => {
                write!(f, "{rule} matches ports but not protocol tcp or udp")
            }
            Self::DnatRangeOverflow { rule } => {
                write!(f, "{rule}: the translated port range runs past 65535")
            }
            Self::Shadowed { rule, by } => {
                write!(f, "{rule} can never match: {by} before it matches everything it would")
            }
            Self::OverloadingNeedsApdf => f.write_str(
                "port overloading is only safe with address-and-port-dependent filtering",
            ),
            Self::ZeroCapacity => f.write_str("the state table capacity must be at least 1"),
            Self::TooManyRules => f.write_str("at most 65535 rules are supported"),
            Self::PoolTooLarge { rule } => {
                write!(f, "{rule}: an address pool may hold at most 65536 addresses")
            }
            Self::UnknownAlgRule(name) => {
                write!(f, "an ALG is bound to rule `{name}`, but no rule has that name")
            }
        }
    }
}

impl std::error::Error for ConfigError {}
