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

mod behaviour;
mod cover;
mod error;
mod filter;

pub use behaviour::{
    Behaviour, FilteringBehaviour, FragmentHandling, Hairpin, MappingBehaviour, PortAssignment,
    PortClasses, PortStrategy, ProtoBehaviour, Timeouts, UdpRefresh, Unsolicited,
};
pub(crate) use error::validate;
pub use error::ConfigError;
pub use filter::{
    Filter, FilterAction, FilterChain, FilterHook, FilterRule, RejectWith, Unreachable,
};

use crate::flow::{PortRange, Prefix, Proto};
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
    /// Source ports; only meaningful with TCP or UDP.
    pub src_ports: Option<PortRange>,
    /// The destination is one of the router's own addresses (iptables
    /// `-m addrtype --dst-type LOCAL`, nft `fib daddr type local`).
    pub dst_local: bool,
    /// `ct status dnat`: the connection's destination was translated
    /// (`Some(true)`) or not (`Some(false)`). Meaningful in postrouting,
    /// where it makes hairpin source NAT an ordinary rule.
    pub ct_dnat: Option<bool>,
    /// Conntrack states the packet must be in (`ct state`, `-m conntrack
    /// --ctstate`). NAT chains see only a connection's first packet (NEW).
    pub ct_state: Option<CtStates>,
    /// An ICMP type (and code); only ICMP packets match, even negated
    /// (iptables requires `-p icmp` before `! --icmp-type`).
    pub icmp_type: Option<IcmpType>,
    /// TCP flags under a mask; only TCP packets match, even negated.
    pub tcp_flags: Option<TcpFlagsMatch>,
    /// Matches written with `!` (iptables `! -i eth0`, nft `!=`).
    pub not: Negated,
}

/// Which matches of a [`Match`] are negated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Negated {
    pub proto: bool,
    pub in_iface: bool,
    pub out_iface: bool,
    pub src: bool,
    pub dst: bool,
    pub dst_ports: bool,
    pub src_ports: bool,
    pub dst_local: bool,
    pub icmp_type: bool,
    pub tcp_flags: bool,
}

/// TCP flags under a mask: iptables `--tcp-flags MASK COMP` (`--syn` is
/// `SYN,RST,ACK,FIN SYN`), nft `tcp flags & MASK == COMP`; xt_tcpudp's
/// `tcp_mt` tests `(flags & mask) == comp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TcpFlagsMatch {
    pub mask: u8,
    pub comp: u8,
}

impl TcpFlagsMatch {
    /// `--syn`: SYN set, RST, ACK and FIN clear.
    pub const SYN: TcpFlagsMatch = TcpFlagsMatch {
        mask: 0x17,
        comp: 0x02,
    };
    /// Whether a segment with `flags` matches.
    pub fn hits(self, flags: u8) -> bool {
        flags & self.mask == self.comp
    }
    /// The flags by bit, low bit first, as iptables spells them.
    pub const NAMES: [&'static str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];

    /// The flag names of `bits` (iptables' spelling), `NONE` for none.
    pub fn names(bits: u8) -> String {
        let v: Vec<&str> = (0..8)
            .filter(|i| bits & (1 << i) != 0)
            .map(|i| Self::NAMES[i])
            .collect();
        if v.is_empty() {
            "NONE".into()
        } else {
            v.join(",")
        }
    }
}

/// An ICMP type and, if given, code: iptables `--icmp-type T[/C]` (xt_icmp
/// `icmp_type_code_match`), nft `icmp type` / `icmp code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IcmpType {
    pub ty: u8,
    pub code: Option<u8>,
}

impl IcmpType {
    /// Whether a packet of this type and code matches.
    pub fn hits(self, ty: u8, code: u8) -> bool {
        self.ty == ty && self.code.is_none_or(|c| c == code)
    }
}

impl core::fmt::Display for IcmpType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.code {
            Some(c) => write!(f, "{}/{c}", self.ty),
            None => write!(f, "{}", self.ty),
        }
    }
}

/// A set of conntrack states (nf_conntrack `ctinfo` as `ct state` sees it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CtStates(pub u8);

impl CtStates {
    pub const NEW: CtStates = CtStates(1);
    pub const ESTABLISHED: CtStates = CtStates(2);
    pub const RELATED: CtStates = CtStates(4);
    pub const INVALID: CtStates = CtStates(8);
    pub const UNTRACKED: CtStates = CtStates(16);

    pub const fn contains(self, o: CtStates) -> bool {
        self.0 & o.0 == o.0
    }
    pub const fn union(self, o: CtStates) -> CtStates {
        CtStates(self.0 | o.0)
    }
    /// `new`, `established`, ... as nft and iptables spell them (any case).
    pub fn parse(name: &str) -> Option<CtStates> {
        Some(match name.to_ascii_lowercase().as_str() {
            "new" => Self::NEW,
            "established" => Self::ESTABLISHED,
            "related" => Self::RELATED,
            "invalid" => Self::INVALID,
            "untracked" => Self::UNTRACKED,
            _ => return None,
        })
    }
    /// The names, in nft's order.
    pub fn names(self) -> Vec<&'static str> {
        [
            (Self::INVALID, "invalid"),
            (Self::ESTABLISHED, "established"),
            (Self::RELATED, "related"),
            (Self::NEW, "new"),
            (Self::UNTRACKED, "untracked"),
        ]
        .into_iter()
        .filter(|(s, _)| self.contains(*s))
        .map(|(_, n)| n)
        .collect()
    }
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

/// How a source-NAT rule picks its external port: the profile's strategy,
/// or a random one even when the original port is free (nft `random` /
/// `fully-random`, iptables `--random` / `--random-fully`: Linux's
/// get_unique_tuple skips the "keep the port if unique" step for both, and
/// nf_nat_l4proto_unique_tuple starts its search at a random offset within
/// the port's class).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PortFlag {
    #[default]
    Profile,
    /// `random`: the offset is a keyed hash of the tuple.
    Random,
    /// `fully-random`: the offset is a fresh random number.
    FullyRandom,
}

impl PortFlag {
    /// The nft/iptables spelling (`random`, `fully-random`), if any.
    pub fn word(self) -> Option<&'static str> {
        match self {
            PortFlag::Profile => None,
            PortFlag::Random => Some("random"),
            PortFlag::FullyRandom => Some("fully-random"),
        }
    }
}

/// The source translation target of [`Action::Snat`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnatPool {
    /// Inclusive address range.
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
    pub ports: PortRange,
    pub pooling: Pooling,
    pub random: PortFlag,
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
    Masquerade { ports: PortRange, random: PortFlag },
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

impl Rule {
    /// The names an ALG binding may give this rule by: its own, then the
    /// name it was built under when one name made two rules
    /// ([`RuleSet::one_to_one`] adds ` (in)` and ` (out)`).
    pub(crate) fn binding_names(&self) -> impl Iterator<Item = &str> {
        let base = [" (in)", " (out)"]
            .iter()
            .find_map(|s| self.name.strip_suffix(s));
        core::iter::once(self.name.as_str()).chain(base)
    }
}

impl NatConfig {
    /// The helper each rule binds, by rule id (see
    /// [`Rule::binding_names`]). Resolved once, so a new flow never
    /// compares names.
    pub(crate) fn rule_algs(&self) -> Vec<Option<crate::alg::AlgKind>> {
        self.rules
            .rules
            .iter()
            .map(|r| {
                r.binding_names()
                    .find_map(|n| self.algs.rules.get(n))
                    .copied()
            })
            .collect()
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
                random: PortFlag::Profile,
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
    /// The filter table (open by default: NAT rules only).
    pub filter: Filter,
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
            filter: Filter::default(),
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

#[cfg(test)]
mod alg_binding_tests {
    use super::*;
    use crate::alg::AlgKind;
    use crate::flow::{PortRange, Prefix, Proto};

    fn cfg() -> NatConfig {
        let mut cfg = NatConfig::new(Behaviour::linux())
            .interface(
                IfaceId(0),
                std::net::Ipv4Addr::new(10, 0, 0, 1),
                24,
                Role::Inside,
            )
            .interface(
                IfaceId(1),
                std::net::Ipv4Addr::new(198, 51, 100, 1),
                24,
                Role::Outside,
            );
        let inside = Prefix::new(std::net::Ipv4Addr::new(10, 0, 0, 0), 24);
        let outside = Prefix::new(std::net::Ipv4Addr::new(203, 0, 113, 0), 24);
        cfg.rules.one_to_one("dmz", IfaceId(1), inside, outside);
        let to = std::net::Ipv4Addr::new(10, 0, 0, 9);
        cfg.rules.forward(
            "web (primary)",
            IfaceId(1),
            Proto::Tcp,
            PortRange::ALL,
            to,
            None,
        );
        cfg
    }

    #[test]
    fn a_binding_names_a_rule_or_the_pair_it_was_built_as() {
        let mut cfg = cfg();
        cfg.algs.rules.insert("dmz".into(), AlgKind::Epm);
        cfg.algs.rules.insert("web (primary)".into(), AlgKind::Ftp);
        let by = cfg.rule_algs();
        assert_eq!(
            by,
            [Some(AlgKind::Epm), Some(AlgKind::Epm), Some(AlgKind::Ftp)]
        );
        assert_eq!(crate::config::validate(&cfg), Ok(()));
    }

    #[test]
    fn a_binding_to_a_prefix_of_a_name_binds_nothing_and_is_refused() {
        // "web" is not a rule: "web (primary)" is a name of its own, not
        // one of a pair.
        let mut cfg = cfg();
        cfg.algs.rules.insert("web".into(), AlgKind::Ftp);
        assert_eq!(cfg.rule_algs(), [None, None, None]);
        assert_eq!(
            crate::config::validate(&cfg),
            Err(crate::config::ConfigError::UnknownAlgRule("web".into()))
        );
    }
}
