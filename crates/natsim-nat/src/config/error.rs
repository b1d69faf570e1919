//! Configurations the engine refuses, and the checks that find them.

use super::*;
use core::fmt;

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
    /// A raw PREROUTING rule that matches conntrack state or an egress
    /// interface, which no packet has before conntrack and routing.
    RawRuleNeedsState {
        rule: u16,
    },
    /// A raw PREROUTING rule with REJECT (a filter-table target).
    RawRuleRejects {
        rule: u16,
    },
    /// An ICMP type match without protocol ICMP.
    IcmpTypeNeedsIcmp {
        rule: RuleId,
    },
    /// A TCP flags match without protocol TCP.
    TcpFlagsNeedTcp {
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
            Self::RawRuleNeedsState { rule } => write!(
                f,
                "raw prerouting rule {}: conntrack state and -o are unknown before conntrack and routing",
                rule + 1
            ),
            Self::RawRuleRejects { rule } => write!(
                f,
                "raw prerouting rule {}: REJECT is a filter-table target",
                rule + 1
            ),
            Self::IcmpTypeNeedsIcmp { rule } => {
                write!(f, "{rule} matches an ICMP type but not protocol icmp")
            }
            Self::TcpFlagsNeedTcp { rule } => {
                write!(f, "{rule} matches TCP flags but not protocol tcp")
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

/// Checks a configuration before an engine is built from it.
pub(crate) fn validate(cfg: &NatConfig) -> Result<(), ConfigError> {
    if cfg.capacity == 0 {
        return Err(ConfigError::ZeroCapacity);
    }
    for name in cfg.algs.rules.keys() {
        let known = cfg
            .rules
            .rules
            .iter()
            .any(|r| r.binding_names().any(|n| n == name));
        if !known {
            return Err(ConfigError::UnknownAlgRule(name.clone()));
        }
    }
    if cfg.rules.rules.len() >= usize::from(u16::MAX) {
        return Err(ConfigError::TooManyRules);
    }
    // The raw table runs before conntrack, and REJECT is a filter-table
    // target (xt_REJECT's table is "filter").
    for (k, r) in cfg.filter.raw.rules.iter().enumerate() {
        let m = &r.matches;
        if m.ct_state.is_some() || m.ct_dnat.is_some() || m.out_iface.is_some() {
            return Err(ConfigError::RawRuleNeedsState { rule: k as u16 });
        }
        if matches!(r.action, super::FilterAction::Reject(_)) {
            return Err(ConfigError::RawRuleRejects { rule: k as u16 });
        }
    }
    for (i, a) in cfg.interfaces.iter().enumerate() {
        if a.prefix_len > 32 {
            return Err(ConfigError::BadPrefixLength {
                iface: a.id,
                len: a.prefix_len,
            });
        }
        if cfg.interfaces[..i].iter().any(|b| b.id == a.id) {
            return Err(ConfigError::DuplicateInterface(a.id));
        }
    }
    let b = &cfg.behaviour;
    if b.ports.allow_overloading
        && [b.tcp, b.udp, b.icmp]
            .iter()
            .any(|p| p.filtering != FilteringBehaviour::AddressAndPortDependent)
    {
        return Err(ConfigError::OverloadingNeedsApdf);
    }
    for (i, r) in cfg.rules.rules.iter().enumerate() {
        let id = RuleId(i as u16);
        let m = &r.matches;
        for iface in [m.in_iface, m.out_iface, m.dst_iface_addr]
            .into_iter()
            .flatten()
        {
            if cfg.iface(iface).is_none() {
                return Err(ConfigError::UnknownInterface { rule: id, iface });
            }
        }
        let allowed = matches!(
            (&r.action, r.chain),
            (Action::Accept | Action::Netmap { .. }, _)
                | (
                    Action::Dnat { .. } | Action::Redirect { .. },
                    Chain::Prerouting
                )
                | (
                    Action::Masquerade { .. } | Action::Snat(_),
                    Chain::Postrouting
                )
        );
        if !allowed {
            return Err(ConfigError::ActionNotAllowedInChain { rule: id });
        }
        if let Some(ports) = m.dst_ports {
            if ports.is_empty() {
                return Err(ConfigError::EmptyPortRange { rule: id });
            }
            if !matches!(m.proto, Some(Proto::Tcp | Proto::Udp)) {
                return Err(ConfigError::PortsNeedTcpOrUdp { rule: id });
            }
        }
        if m.icmp_type.is_some() && (m.proto != Some(Proto::Icmp) || m.not.proto) {
            return Err(ConfigError::IcmpTypeNeedsIcmp { rule: id });
        }
        if m.tcp_flags.is_some() && (m.proto != Some(Proto::Tcp) || m.not.proto) {
            return Err(ConfigError::TcpFlagsNeedTcp { rule: id });
        }
        match &r.action {
            Action::Masquerade { ports, .. } if ports.is_empty() => {
                return Err(ConfigError::EmptyPortRange { rule: id })
            }
            Action::Snat(p) => {
                if p.is_empty() {
                    return Err(ConfigError::EmptyPool { rule: id });
                }
                if p.len() > 65_536 {
                    return Err(ConfigError::PoolTooLarge { rule: id });
                }
                if p.ports.is_empty() {
                    return Err(ConfigError::EmptyPortRange { rule: id });
                }
            }
            Action::Dnat {
                to_port: Some(tp), ..
            } => {
                if let Some(range) = m.dst_ports {
                    if u32::from(*tp) + (range.len() - 1) > 65_535 {
                        return Err(ConfigError::DnatRangeOverflow { rule: id });
                    }
                }
            }
            Action::Netmap { to } => {
                let matched = match r.chain {
                    Chain::Prerouting => m.dst,
                    Chain::Postrouting => m.src,
                };
                if matched.is_some_and(|p| p.len != to.len) {
                    return Err(ConfigError::NetmapLengthMismatch { rule: id });
                }
            }
            _ => {}
        }
        if let Some(j) = cfg.rules.shadowed_by(i) {
            return Err(ConfigError::Shadowed {
                rule: id,
                by: RuleId(j as u16),
            });
        }
    }
    Ok(())
}
