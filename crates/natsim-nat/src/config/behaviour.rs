//! Behaviour profiles: what NAT implementations differ on (RFC 4787,
//! RFC 5382, Linux nf_conntrack defaults).

use crate::flow::Proto;
use crate::time::Duration;
use core::fmt;

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

/// The port classes a translation stays within.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortClasses {
    /// 1-1023 and 1024-65535 (RFC 4787 REQ-3).
    WellKnownAndEphemeral,
    /// 1-511, 600-1023 and 1024-65535: Linux's nf_nat_l4proto_unique_tuple
    /// (a port below 512 stays below 512; 512-1023 maps into 600-1023).
    Linux,
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
    /// Which classes `preserve_range_class` keeps.
    pub classes: PortClasses,
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

/// What the NAT does with IP fragments (RFC 791 §2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragmentHandling {
    /// Every fragment is dropped (RFC 4787 §11 "Received Fragment Drop"):
    /// the cheap NATs that break large UDP answers.
    Drop,
    /// Each fragment is translated as it passes; one that arrives before
    /// its first fragment is held until the first has been translated
    /// (RFC 4787 REQ-14, "Received Fragment Out of Order").
    Translate,
    /// The datagram is reassembled before translation and the router
    /// refragments it on the way out (Linux: nf_defrag_ipv4 runs before
    /// conntrack, and ip_do_fragment cuts to the largest fragment seen).
    Reassemble,
}

impl fmt::Display for FragmentHandling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Drop => "drop",
            Self::Translate => "translate",
            Self::Reassemble => "reassemble",
        })
    }
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
    /// UDP after a reply was seen, once the flow is older than
    /// `udp_stream_after` (a "stream").
    pub udp_replied: Duration,
    /// How old a replied UDP flow must be before a packet moves it to
    /// `udp_replied`; until then it keeps `udp_unreplied`. Linux 6.x
    /// (nf_conntrack_proto_udp.c, `nf_conntrack_udp_packet`): `stream_ts`
    /// is creation + 2 s, so a one-shot DNS exchange stays on the 30 s
    /// timeout. Zero: the first reply switches at once.
    pub udp_stream_after: Duration,
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
        udp_stream_after: Duration::from_secs(2),
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
        udp_stream_after: Duration::ZERO,
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
    pub fragments: FragmentHandling,
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
                classes: PortClasses::WellKnownAndEphemeral,
                allow_overloading: false,
                max_attempts: u32::MAX,
            },
            unsolicited: Unsolicited::Drop,
            filter_inbound: true,
            hairpin: Hairpin::Off,
            udp_refresh: UdpRefresh::OutboundOnly,
            timeouts: Timeouts::RFC,
            fragments: FragmentHandling::Translate,
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
                classes: PortClasses::Linux,
                allow_overloading: true,
                max_attempts: 128,
            },
            unsolicited: Unsolicited::Reject,
            filter_inbound: false,
            hairpin: Hairpin::DnatOnly,
            udp_refresh: UdpRefresh::Both,
            timeouts: Timeouts::LINUX,
            fragments: FragmentHandling::Reassemble,
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
