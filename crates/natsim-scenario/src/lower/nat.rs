//! A router's `[router.nat]` table as the engine's [`NatConfig`], with the
//! span of the item behind each rule so that engine errors point at it.

use crate::diag::{Ctx, Problem};
use crate::parse;
use crate::schema::*;
use natsim_nat::{
    AlgKind, Behaviour, ConfigError, FragmentHandling, Hairpin, IfaceId, NatConfig, PortRange,
    Proto, Role, RuleId, Unsolicited,
};
use std::ops::Range;

/// The largest `max_connections` (2^24): the table grows as it fills, so
/// this bounds memory (~120 bytes a connection), not what is allocated.
const MAX_CONNECTIONS: u32 = 1 << 24;

pub fn profile(name: &S<String>, cx: &Ctx<'_>) -> Result<Behaviour, Problem> {
    Behaviour::by_name(name.get_ref()).ok_or_else(|| {
        cx.at(
            name.span(),
            format!("unknown NAT profile `{}`", name.get_ref()),
            Some(&format!("one of {}", Behaviour::PROFILE_NAMES.join(", "))),
        )
    })
}

/// A router's lowered NAT: its configuration (behaviour, rules), per rule
/// the span of the item that produced it, and the warnings met on the way.
pub struct LoweredNat {
    pub cfg: NatConfig,
    pub spans: Vec<Range<usize>>,
    pub warnings: Vec<Problem>,
}

/// The NAT configuration of `r`.
pub fn nat_config(r: &Router, nat: &Nat, cx: &Ctx<'_>) -> Result<LoweredNat, Problem> {
    let mut warnings = Vec::new();
    let mut b = profile(&nat.profile, cx)?;
    if let Some(u) = &nat.unsolicited {
        b.unsolicited = match u.get_ref().as_str() {
            "drop" => Unsolicited::Drop,
            "reject" => Unsolicited::Reject,
            other => {
                return Err(cx.at(
                    u.span(),
                    format!("unknown answer to unsolicited traffic `{other}`"),
                    Some("`drop` (the client times out) or `reject` (RST / ICMP unreachable)"),
                ))
            }
        };
    }
    if let Some(h) = &nat.hairpin {
        b.hairpin = match h.get_ref().as_str() {
            "off" => Hairpin::Off,
            "dnat-only" => Hairpin::DnatOnly,
            "on" => Hairpin::On,
            other => {
                return Err(cx.at(
                    h.span(),
                    format!("unknown hairpin setting `{other}`"),
                    Some("`off`, `dnat-only` or `on`"),
                ))
            }
        };
    }
    if let Some(f) = &nat.fragments {
        b.fragments =
            match f.get_ref().as_str() {
                "drop" => FragmentHandling::Drop,
                "translate" => FragmentHandling::Translate,
                "reassemble" => FragmentHandling::Reassemble,
                other => return Err(cx.at(
                    f.span(),
                    format!("unknown fragment handling `{other}`"),
                    Some(
                        "`drop`, `translate` (each fragment as it passes) or `reassemble` (Linux)",
                    ),
                )),
            };
    }
    if let Some(t) = &nat.timeouts {
        timeouts(&mut b.timeouts, t, cx)?;
    }
    let mut cfg = NatConfig::new(b);
    if let Some(m) = &nat.max_connections {
        cfg.capacity = match *m.get_ref() {
            n @ 1..=MAX_CONNECTIONS => n as usize,
            n => {
                return Err(cx.at(
                    m.span(),
                    format!("{n} is not a connection table size"),
                    Some("from 1 to 16777216 (Linux's nf_conntrack_max; the default is 65536)"),
                ))
            }
        };
    }
    let mut first_outside = None;
    for (k, i) in r.interfaces.iter().enumerate() {
        let (addr, len) = parse::cidr(&i.address, cx)?;
        let role = match i.role.as_ref().map(|x| x.get_ref().as_str()) {
            None | Some("inside") => Role::Inside,
            Some("outside") => Role::Outside,
            Some(o) => {
                return Err(cx.at(
                    i.role.as_ref().map_or(0..0, |x| x.span()),
                    format!("unknown role `{o}`"),
                    Some("`inside` or `outside`"),
                ))
            }
        };
        if role == Role::Outside && first_outside.is_none() {
            first_outside = Some(k);
        }
        cfg = cfg.interface(IfaceId(k as u16), addr, len, role);
    }
    let iface = |n: &Option<S<String>>, what: Range<usize>| -> Result<IfaceId, Problem> {
        match n {
            Some(n) => r
                .interfaces
                .iter()
                .position(|i| i.name.get_ref() == n.get_ref())
                .map(|k| IfaceId(k as u16))
                .ok_or_else(|| {
                    cx.at(
                        n.span(),
                        format!(
                            "router `{}` has no interface `{}`",
                            r.name.get_ref(),
                            n.get_ref()
                        ),
                        None,
                    )
                }),
            None => first_outside.map(|k| IfaceId(k as u16)).ok_or_else(|| {
                cx.at(
                    what,
                    "no outside interface to apply this to",
                    Some("give one interface `role = \"outside\"`"),
                )
            }),
        }
    };
    let mut spans = Vec::new();
    for (k, f) in nat.forwards.iter().enumerate() {
        let proto = match f.proto.get_ref().as_str() {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            o => {
                return Err(cx.at(
                    f.proto.span(),
                    format!("cannot forward protocol `{o}`"),
                    Some("`tcp` or `udp`"),
                ))
            }
        };
        let ports = forward_ports(f, cx)?;
        let to = parse::addr(&f.to, cx)?;
        let to_port = match &f.to_port {
            Some(p) if (1..=65535).contains(p.get_ref()) => Some(*p.get_ref() as u16),
            Some(p) => {
                return Err(cx.at(
                    p.span(),
                    format!("port {} is not in 1–65535", p.get_ref()),
                    None,
                ))
            }
            None => None,
        };
        let out = iface(&f.interface, f.proto.span())?;
        let name = f
            .name
            .as_ref()
            .map_or_else(|| format!("forward-{k}"), |n| n.get_ref().clone());
        let id = cfg.rules.forward(&name, out, proto, ports, to, to_port);
        if let Some(from) = &f.from {
            cfg.rules.rules[usize::from(id.0)].matches.src = Some(parse::prefix(from, cx)?);
        }
        spans.push(f.proto.span());
    }
    for (k, o) in nat.one_to_one.iter().enumerate() {
        let inside = parse::prefix(&o.inside, cx)?;
        let outside = parse::prefix(&o.outside, cx)?;
        let out = iface(&o.interface, o.inside.span())?;
        let name = o
            .name
            .as_ref()
            .map_or_else(|| format!("one-to-one-{k}"), |n| n.get_ref().clone());
        cfg.rules.one_to_one(&name, out, inside, outside);
        spans.push(o.inside.span());
        spans.push(o.inside.span());
    }
    // `"wan0"`, or with nft's port flag: `"wan0 random"`, `"wan0 fully-random"`.
    for m in &nat.masquerade {
        let mut words = m.get_ref().split_whitespace();
        let name = words.next().unwrap_or("").to_string();
        let random = match (words.next(), words.next()) {
            (None, _) => natsim_nat::PortFlag::Profile,
            (Some("random"), None) => natsim_nat::PortFlag::Random,
            (Some("fully-random"), None) => natsim_nat::PortFlag::FullyRandom,
            _ => {
                return Err(cx.at(
                    m.span(),
                    format!("`{}` is not an interface with an optional port flag", m.get_ref()),
                    Some("`wan0`, `wan0 random` or `wan0 fully-random` (nft's masquerade flags: a random port even when the original is free)"),
                ))
            }
        };
        let out = iface(&Some(S::new(m.span(), name.clone())), m.span())?;
        let id = cfg
            .rules
            .masquerade(&format!("masquerade-{name}"), out, None);
        if let natsim_nat::Action::Masquerade { random: r, .. } =
            &mut cfg.rules.rules[usize::from(id.0)].action
        {
            *r = random;
        }
        spans.push(m.span());
    }
    // A ruleset file of the user's own (iptables-save or nft JSON): its NAT
    // rules follow those above, and its filter becomes the router's.
    if let Some(rf) = &r.rules {
        let imported = crate::rules::load(r, rf, cx)?;
        // A rule an earlier one covers was left out by the import (the
        // kernel never reaches it either): said at the file's own line.
        let file = crate::rules::resolve(cx, rf.get_ref())
            .display()
            .to_string();
        for c in &imported.covered {
            warnings.push(Problem {
                file: file.clone(),
                line: c.loc.line,
                col: c.loc.col,
                ..cx.warn(
                    rf.span(),
                    format!(
                        "this rule can never match and is left out: `{}` before it matches everything it would (in `{}`)",
                        c.by, c.text
                    ),
                    Some("delete it (a rule added twice, or covered by a jump before it)"),
                )
            });
        }
        for rule in imported.rules.rules {
            cfg.rules.push(rule);
            spans.push(rf.span());
        }
        cfg.filter = imported.filter;
    }
    for a in &nat.algs {
        match AlgKind::by_name(a.get_ref()) {
            Some(k) => cfg.algs.enable(k),
            None => {
                return Err(cx.at(
                    a.span(),
                    format!("unknown ALG `{}`", a.get_ref()),
                    Some("`epm` (MS-RPC endpoint mapper) or `ftp`"),
                ))
            }
        }
    }
    Ok(LoweredNat {
        cfg,
        spans,
        warnings,
    })
}

/// A forward's `port`: one port or a range `first-last`.
pub(crate) fn forward_ports(f: &Forward, cx: &Ctx<'_>) -> Result<PortRange, Problem> {
    Ok(match f.port.get_ref() {
        toml::Value::Integer(p) if (1..=65535).contains(p) => PortRange::single(*p as u16),
        toml::Value::String(s) => {
            let parsed = s.split_once('-').and_then(|(a, b)| {
                Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?))
            });
            match parsed {
                Some((a, b)) if a >= 1 && a <= b => PortRange::new(a, b),
                _ => {
                    return Err(cx.at(
                        f.port.span(),
                        format!("`{s}` is not a port range"),
                        Some("a port 1–65535 or a range such as \"5000-5010\""),
                    ))
                }
            }
        }
        _ => {
            return Err(cx.at(
                f.port.span(),
                "expected a port 1–65535 or a range such as \"5000-5010\"",
                None,
            ))
        }
    })
}

pub fn nat_error(e: &ConfigError, spans: &[Range<usize>], r: &Router, cx: &Ctx<'_>) -> Problem {
    let at = |id: &RuleId| {
        spans
            .get(usize::from(id.0))
            .cloned()
            .unwrap_or(r.name.span())
    };
    match e {
        ConfigError::Shadowed { rule, by } => {
            let (bl, bc) = crate::diag::line_col(cx.src, at(by).start);
            cx.at(at(rule), format!("this rule can never match: the rule at line {bl}, column {bc} comes first and matches everything it would"), Some("remove one, or narrow the earlier rule (ports, source prefix)"))
        }
        ConfigError::UnknownInterface { rule, .. }
        | ConfigError::ActionNotAllowedInChain { rule }
        | ConfigError::EmptyPortRange { rule }
        | ConfigError::NetmapLengthMismatch { rule }
        | ConfigError::DnatRangeOverflow { rule }
        | ConfigError::PortsNeedTcpOrUdp { rule }
        | ConfigError::IcmpTypeNeedsIcmp { rule }
        | ConfigError::TcpFlagsNeedTcp { rule }
        | ConfigError::EmptyPool { rule }
        | ConfigError::PoolTooLarge { rule } => cx.at(
            at(rule),
            format!("router `{}`: {e}", r.name.get_ref()),
            None,
        ),
        _ => cx.at(
            r.name.span(),
            format!("router `{}`: {e}", r.name.get_ref()),
            None,
        ),
    }
}

/// Replaces the profile's timeouts with the ones `t` names. A zero idle
/// timeout would end every connection at its first packet, so only
/// `udp_stream_after` may be `0s`.
fn timeouts(into: &mut natsim_nat::Timeouts, t: &NatTimeouts, cx: &Ctx<'_>) -> Result<(), Problem> {
    let fields = [
        (&t.tcp_established, &mut into.tcp_established, false),
        (&t.tcp_syn_sent, &mut into.tcp_syn_sent, false),
        (&t.tcp_syn_recv, &mut into.tcp_syn_recv, false),
        (&t.tcp_fin_wait, &mut into.tcp_fin_wait, false),
        (&t.tcp_close_wait, &mut into.tcp_close_wait, false),
        (&t.tcp_last_ack, &mut into.tcp_last_ack, false),
        (&t.tcp_time_wait, &mut into.tcp_time_wait, false),
        (&t.tcp_close, &mut into.tcp_close, false),
        (&t.udp_unreplied, &mut into.udp_unreplied, false),
        (&t.udp_replied, &mut into.udp_replied, false),
        (&t.udp_stream_after, &mut into.udp_stream_after, true),
        (&t.icmp, &mut into.icmp, false),
    ];
    for (text, slot, zero_ok) in fields {
        let Some(text) = text else { continue };
        let d = parse::duration(text, cx)?;
        if d.is_zero() && !zero_ok {
            return Err(cx.at(
                text.span(),
                "an idle timeout of zero would end every connection at its first packet",
                Some("give a duration such as `30s` or `1h`"),
            ));
        }
        *slot = d;
    }
    Ok(())
}
