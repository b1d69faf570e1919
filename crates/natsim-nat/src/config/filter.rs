//! The packet filter: netfilter's `filter` table INPUT (to the router) and
//! FORWARD (through it) chains, each an ordered rule list and a policy.
//!
//! Rules see a packet between destination and source NAT, as netfilter's
//! forward hook does: the destination already translated, the source not
//! yet. Every packet meets the filter, with the conntrack state of its
//! connection: NEW until a reply was seen, ESTABLISHED after. ICMP errors
//! of tracked connections (RELATED) are not filtered. An empty chain with
//! policy accept (the default) costs nothing.

use super::Match;

/// The destination-unreachable codes (RFC 792; 9, 10 and 13 from RFC 1812
/// §5.2.7.1) a REJECT may send: iptables' `--reject-with icmp-*`, nft's
/// `reject with icmp`/`icmpx` (nft_reject_inet maps icmpx `no-route` to
/// 0 and `admin-prohibited` to 13 for IPv4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Unreachable {
    Net = 0,
    Host = 1,
    Protocol = 2,
    Port = 3,
    NetProhibited = 9,
    HostProhibited = 10,
    AdminProhibited = 13,
}

impl Unreachable {
    /// The ICMP code (type 3).
    pub const fn code(self) -> u8 {
        self as u8
    }
    /// In words (RFC 792 and RFC 1812 §5.2.7.1 names).
    pub const fn describe(self) -> &'static str {
        match self {
            Unreachable::Net => "network unreachable",
            Unreachable::Host => "host unreachable",
            Unreachable::Protocol => "protocol unreachable",
            Unreachable::Port => "port unreachable",
            Unreachable::NetProhibited => "network administratively prohibited",
            Unreachable::HostProhibited => "host administratively prohibited",
            Unreachable::AdminProhibited => "communication administratively prohibited",
        }
    }
}

/// What a REJECT sends back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectWith {
    /// ICMP destination unreachable from the router, with this code
    /// (iptables REJECT's default is port unreachable; nf_send_unreach).
    Icmp(Unreachable),
    /// A TCP RST in the name of the destination (`--reject-with tcp-reset`;
    /// nf_reject_ipv4 `nf_send_reset`). Only for TCP.
    TcpReset,
}

/// A filter rule's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterAction {
    Accept,
    Drop,
    Reject(RejectWith),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterRule {
    pub name: String,
    pub matches: Match,
    pub action: FilterAction,
}

/// A base filter chain: rules in order, then the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterChain {
    /// Accept or drop (iptables and nft base chains allow no other).
    pub policy: FilterAction,
    pub rules: Vec<FilterRule>,
}

impl Default for FilterChain {
    fn default() -> Self {
        FilterChain {
            policy: FilterAction::Accept,
            rules: Vec::new(),
        }
    }
}

impl FilterChain {
    pub fn is_open(&self) -> bool {
        self.rules.is_empty() && self.policy == FilterAction::Accept
    }
}

/// Which filter chain a packet meets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FilterHook {
    Input,
    Forward,
    /// The raw table's PREROUTING: every received packet, before
    /// conntrack and NAT (Docker 28's direct-access DROP rules).
    Raw,
}

impl core::fmt::Display for FilterHook {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            FilterHook::Input => "input",
            FilterHook::Forward => "forward",
            FilterHook::Raw => "raw prerouting",
        })
    }
}

/// The filter table's INPUT and FORWARD chains.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub input: FilterChain,
    pub forward: FilterChain,
    /// Stateless: its rules match no conntrack state and do not REJECT.
    pub raw: FilterChain,
}

impl Filter {
    /// INPUT and FORWARD accept everything: no rules, accept policies
    /// (the raw chain is asked apart, before any lookup).
    pub fn is_open(&self) -> bool {
        self.input.is_open() && self.forward.is_open()
    }

    /// Every chain, for passes that treat them alike.
    pub fn chains_mut(&mut self) -> [&mut FilterChain; 3] {
        [&mut self.raw, &mut self.input, &mut self.forward]
    }

    pub fn chain(&self, hook: FilterHook) -> &FilterChain {
        match hook {
            FilterHook::Input => &self.input,
            FilterHook::Forward => &self.forward,
            FilterHook::Raw => &self.raw,
        }
    }
}
