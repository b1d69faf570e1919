//! One nft rule's statements, read into the model's match and verdict.

use super::expr::{names, text};
use crate::flatten::{Ifaces, RawRule, Target};
use crate::{FilterAction, ImportError, Loc, RejectWith, Unreachable};
use natsim_nat::{
    Action, CtStates, IcmpType, Match, Pooling, PortFlag, PortRange, Proto, SnatPool,
};
use nftables::expr::{BinaryOperation, Expression, MetaKey, NamedExpression, Payload};
use nftables::stmt::{NATFlag, Operator, Statement};
use std::net::Ipv4Addr;

const SUPPORTED: &str = "meta l4proto, iifname, oifname, ip saddr/daddr, tcp/udp/th dport/sport (sets too), tcp flags, icmp type/code, limit rate, fib daddr type local, ct state, ct status dnat (== or !=), meta nfproto, counter, log; dnat, snat, masquerade, redirect, accept, drop, reject, jump, return";

pub(super) struct Reader<'a> {
    pub file: &'a str,
    pub ifaces: Ifaces,
    /// Rules (by line) whose `limit rate` is taken as never exceeded.
    pub limited: std::collections::BTreeSet<usize>,
}

impl Reader<'_> {
    pub fn err(&self, line: usize, col: usize, rule: String, message: String) -> ImportError {
        ImportError {
            file: self.file.into(),
            loc: Loc { line, col },
            text: rule,
            message,
            supported: SUPPORTED,
        }
    }

    pub fn rule(
        &mut self,
        line: usize,
        stmts: &[Statement<'_>],
        text_: String,
        comment: Option<String>,
        table: &str,
    ) -> Result<Read, ImportError> {
        let mut m = Match::default();
        let mut target = None;
        // `ct state vmap { established : accept, … }`: a verdict per state.
        let mut by_state: Vec<(Target, CtStates)> = Vec::new();
        // `icmp type { a, b }`: one of these.
        let mut any_of: Vec<Vec<Match>> = Vec::new();
        for (k, st) in stmts.iter().enumerate() {
            let col = k + 1;
            let bad = |r: &Reader<'_>, what: String| r.err(line, col, text_.clone(), what);
            match st {
                // Side effects only: the packet's fate is the same.
                Statement::Counter(_) | Statement::Log(_) => {}
                // natsim does not model packet rates: a limit is taken as
                // never exceeded (said in a note), so `limit rate over`
                // never matches.
                Statement::Limit(l) if l.inv == Some(true) => {
                    return Ok(Read::Skip(Skip::OverLimit))
                }
                Statement::Limit(_) => {
                    self.limited.insert(line);
                }
                Statement::Match(mt) => {
                    let neg = match mt.op {
                        Operator::EQ | Operator::IN => false,
                        Operator::NEQ => true,
                        _ => return Err(bad(self, format!("operator `{:?}`", mt.op))),
                    };
                    match &mt.left {
                        Expression::Named(NamedExpression::Meta(me)) => match me.key {
                            MetaKey::L4proto => {
                                if super::matches::proto(&mut m, &mut any_of, &mt.right, neg)
                                    .map_err(|w| bad(self, w))?
                                {
                                    return Ok(Read::Skip(Skip::Ipv6));
                                }
                            }
                            // The family (`meta nfproto ipv4`) or the
                            // ethertype (`meta protocol ip`).
                            MetaKey::Nfproto | MetaKey::Protocol => {
                                let v4 = names(&mt.right)
                                    .iter()
                                    .any(|v| v == "ipv4" || v == "ip" || v == "0x0800");
                                if v4 == neg {
                                    return Ok(Read::Skip(Skip::Ipv6));
                                }
                            }
                            // `iif lo` names the interface by index, resolved
                            // when the rule is loaded: the same interface.
                            MetaKey::Iifname | MetaKey::Oifname | MetaKey::Iif | MetaKey::Oif => {
                                let v = text(&mt.right)
                                    .ok_or_else(|| bad(self, "an interface set".into()))?;
                                // `"eth*"` is a wildcard, expanded at binding.
                                let id = self.ifaces.id(&v, &Loc { line, col });
                                if matches!(me.key, MetaKey::Iifname | MetaKey::Iif) {
                                    m.in_iface = Some(id);
                                    m.not.in_iface = neg;
                                } else {
                                    m.out_iface = Some(id);
                                    m.not.out_iface = neg;
                                }
                            }
                            k => return Err(bad(self, format!("meta key `{k:?}`"))),
                        },
                        Expression::Named(NamedExpression::Payload(Payload::PayloadField(f))) => {
                            match (f.protocol.as_ref(), f.field.as_ref()) {
                                // Only IPv6 packets have these headers.
                                ("ip6" | "icmpv6", _) => return Ok(Read::Skip(Skip::Ipv6)),
                                ("ip", "protocol") => {
                                    if super::matches::proto(&mut m, &mut any_of, &mt.right, neg)
                                        .map_err(|w| bad(self, w))?
                                    {
                                        return Ok(Read::Skip(Skip::Ipv6));
                                    }
                                }
                                ("ip", "saddr" | "daddr") => {
                                    let src = f.field == "saddr";
                                    super::matches::addrs(&mut m, &mut any_of, src, &mt.right, neg)
                                        .map_err(|w| bad(self, w))?;
                                }
                                (p @ ("tcp" | "udp" | "th"), fld @ ("dport" | "sport")) => {
                                    // `th`: the transport header of whichever
                                    // protocol the rule names.
                                    let proto = match p {
                                        "tcp" => Some(Proto::Tcp),
                                        "udp" => Some(Proto::Udp),
                                        _ => None,
                                    };
                                    super::matches::ports(
                                        &mut m,
                                        &mut any_of,
                                        proto,
                                        fld == "dport",
                                        &mt.right,
                                        neg,
                                    )
                                    .map_err(|w| bad(self, w))?;
                                }
                                ("tcp", "flags") => {
                                    super::matches::tcp_flags(&mut m, mt.op, None, &mt.right)
                                        .map_err(|w| bad(self, w))?;
                                }
                                ("icmp", fld @ ("type" | "code")) => {
                                    if m.proto.is_some_and(|x| x != Proto::Icmp) {
                                        return Err(bad(
                                            self,
                                            "icmp fields of another protocol".into(),
                                        ));
                                    }
                                    m.proto = Some(Proto::Icmp);
                                    self.icmp(&mut m, &mut any_of, fld == "type", &mt.right, neg)
                                        .map_err(|what| bad(self, what))?;
                                }
                                (p, fld) => return Err(bad(self, format!("payload `{p} {fld}`"))),
                            }
                        }
                        // `tcp flags & (syn | ack) == syn`
                        Expression::BinaryOperation(b) => match b.as_ref() {
                            BinaryOperation::AND(
                                Expression::Named(NamedExpression::Payload(Payload::PayloadField(
                                    f,
                                ))),
                                mask,
                            ) if f.protocol == "tcp" && f.field == "flags" => {
                                super::matches::tcp_flags(&mut m, mt.op, Some(mask), &mt.right)
                                    .map_err(|w| bad(self, w))?;
                            }
                            _ => return Err(bad(self, "this bitwise match".into())),
                        },
                        Expression::Named(NamedExpression::Fib(fib)) => {
                            let ok = fib.result == nftables::expr::FibResult::Type
                                && fib
                                    .flags
                                    .iter()
                                    .all(|f| *f == nftables::expr::FibFlag::Daddr)
                                && text(&mt.right).as_deref() == Some("local");
                            if !ok {
                                return Err(bad(
                                    self,
                                    "a fib lookup other than `fib daddr type local`".into(),
                                ));
                            }
                            m.dst_local = true;
                            m.not.dst_local = neg;
                        }
                        Expression::Named(NamedExpression::CT(ct)) => match ct.key.as_ref() {
                            "state" if !neg => {
                                let mut s = CtStates::default();
                                for n in names(&mt.right) {
                                    s = s.union(
                                        CtStates::parse(&n)
                                            .ok_or_else(|| bad(self, format!("ct state `{n}`")))?,
                                    );
                                }
                                m.ct_state = Some(s);
                            }
                            "status" if names(&mt.right) == ["dnat"] => m.ct_dnat = Some(!neg),
                            k => return Err(bad(self, format!("ct `{k}` match"))),
                        },
                        _ => return Err(bad(self, "this match expression".into())),
                    }
                }
                Statement::Accept(_) | Statement::Return(_) | Statement::Jump(_) => {
                    target = statement_target(st)
                }
                Statement::Drop(_) if table == "filter" => target = statement_target(st),
                Statement::Reject(r) if table == "filter" => {
                    use nftables::stmt::RejectType;
                    use nftables::types::RejectCode;
                    // `reject` alone is port unreachable. For IPv4,
                    // nft_reject_icmp_code maps icmpx `no-route` to net
                    // unreachable and `admin-prohibited` to code 13; ICMPv6
                    // codes do not apply to IPv4.
                    let with = match r.as_ref().map(|r| (r._type, r.expr)) {
                        Some((Some(RejectType::TCPReset), _)) => RejectWith::TcpReset,
                        None | Some((_, None)) => RejectWith::Icmp(Unreachable::Port),
                        Some((ty, Some(code))) => {
                            let icmpx = ty == Some(RejectType::ICMPX);
                            let u = match code {
                                RejectCode::PortUnreach => Some(Unreachable::Port),
                                RejectCode::HostUnreach => Some(Unreachable::Host),
                                RejectCode::AdminProhibited => Some(Unreachable::AdminProhibited),
                                RejectCode::NoRoute if icmpx => Some(Unreachable::Net),
                                RejectCode::NetUnreach if !icmpx => Some(Unreachable::Net),
                                RejectCode::ProtUnreach if !icmpx => Some(Unreachable::Protocol),
                                RejectCode::NetProhibited if !icmpx => {
                                    Some(Unreachable::NetProhibited)
                                }
                                RejectCode::HostProhibited if !icmpx => {
                                    Some(Unreachable::HostProhibited)
                                }
                                _ => None,
                            };
                            match (ty, u) {
                                (Some(RejectType::ICMP | RejectType::ICMPX) | None, Some(u)) => {
                                    RejectWith::Icmp(u)
                                }
                                _ => {
                                    let word = serde_json::to_value(code)
                                        .ok()
                                        .and_then(|v| v.as_str().map(String::from))
                                        .unwrap_or_else(|| format!("{code:?}"));
                                    return Err(bad(
                                        self,
                                        format!("`reject with {word}` ({ty:?}): not an IPv4 ICMP answer natsim models (icmp or icmpx unreachable codes, tcp reset)"),
                                    ));
                                }
                            }
                        }
                    };
                    target = Some(Target::Filter(FilterAction::Reject(with)));
                }
                Statement::VerdictMap(vm) => {
                    by_state = self.state_vmap(vm).map_err(|what| bad(self, what))?;
                    target = by_state.first().map(|(t, _)| t.clone());
                }
                Statement::DNAT(Some(n)) if table == "nat" && n.flags.is_none() => {
                    let to: Ipv4Addr = n
                        .addr
                        .as_ref()
                        .and_then(text)
                        .and_then(|a| a.parse().ok())
                        .ok_or_else(|| bad(self, "dnat without one address".into()))?;
                    let to_port = match &n.port {
                        None => None,
                        Some(p) => Some(
                            super::matches::port_range(p)
                                .filter(|r| r.first == r.last)
                                .ok_or_else(|| bad(self, "dnat to a port range".into()))?
                                .first,
                        ),
                    };
                    target = Some(Target::Nat(Action::Dnat { to, to_port }));
                }
                Statement::SNAT(Some(n)) if table == "nat" => {
                    let random = port_flag(&n.flags);
                    let (first, last) = match n.addr.as_ref() {
                        Some(Expression::Range(r)) => (text(&r.range[0]), text(&r.range[1])),
                        Some(e) => (text(e), text(e)),
                        None => (None, None),
                    };
                    let (first, last): (Ipv4Addr, Ipv4Addr) = match (
                        first.and_then(|a| a.parse().ok()),
                        last.and_then(|a| a.parse().ok()),
                    ) {
                        (Some(a), Some(b)) if a <= b => (a, b),
                        _ => return Err(bad(self, "snat without an address or range".into())),
                    };
                    let p = match &n.port {
                        None => PortRange::ALL,
                        Some(p) => super::matches::port_range(p)
                            .ok_or_else(|| bad(self, "snat port".into()))?,
                    };
                    target = Some(Target::Nat(Action::Snat(SnatPool {
                        first,
                        last,
                        ports: p,
                        // natsim's pools are paired, which `persistent` asks.
                        pooling: Pooling::Paired,
                        random,
                    })));
                }
                Statement::Masquerade(n)
                    if table == "nat" && n.as_ref().is_none_or(|n| n.addr.is_none()) =>
                {
                    let random = n
                        .as_ref()
                        .map_or(PortFlag::Profile, |n| port_flag(&n.flags));
                    let p = match n.as_ref().and_then(|n| n.port.as_ref()) {
                        None => PortRange::ALL,
                        Some(p) => super::matches::port_range(p)
                            .ok_or_else(|| bad(self, "masquerade port".into()))?,
                    };
                    target = Some(Target::Nat(Action::Masquerade { ports: p, random }));
                }
                Statement::Redirect(n)
                    if table == "nat"
                        && n.as_ref()
                            .is_none_or(|n| n.flags.is_none() && n.addr.is_none()) =>
                {
                    let to_port = match n.as_ref().and_then(|n| n.port.as_ref()) {
                        None => None,
                        Some(p) => Some(
                            super::matches::port_range(p)
                                .filter(|r| r.first == r.last)
                                .ok_or_else(|| bad(self, "redirect to a port range".into()))?
                                .first,
                        ),
                    };
                    target = Some(Target::Nat(Action::Redirect { to_port }));
                }
                other => {
                    let name = serde_json::to_string(other).unwrap_or_default();
                    let short: String = name.chars().take(60).collect();
                    return Err(bad(self, format!("statement `{short}`")));
                }
            }
            if target.is_some() && k + 1 != stmts.len() {
                return Err(bad(self, "statements after the verdict".into()));
            }
        }
        let Some(target) = target else {
            return Ok(Read::Skip(Skip::NoVerdict));
        };
        if by_state.is_empty() {
            by_state.push((target, CtStates::default()));
        }
        let mut rules = Vec::new();
        for (target, states) in by_state {
            let mut m = m.clone();
            if states != CtStates::default() {
                let both = m.ct_state.map_or(states, |s| CtStates(s.0 & states.0));
                if both == CtStates::default() {
                    continue;
                }
                m.ct_state = Some(both);
            }
            rules.push(RawRule {
                loc: Loc { line, col: 1 },
                text: text_.clone(),
                name: comment.clone(),
                m,
                sets: Vec::new(),
                any_of: any_of.clone(),
                target,
            });
        }
        Ok(Read::Rules(rules))
    }

    /// `icmp type` (a name, number or set) or `icmp code` into `m`.
    fn icmp(
        &self,
        m: &mut Match,
        any_of: &mut Vec<Vec<Match>>,
        is_type: bool,
        right: &Expression<'_>,
        neg: bool,
    ) -> Result<(), String> {
        let words = names(right);
        let parse = if is_type {
            crate::icmp_names::nft_type
        } else {
            crate::icmp_names::nft_code
        };
        let mut vals = Vec::new();
        for w in &words {
            vals.push(parse(w).ok_or(format!(
                "ICMP {} `{w}`",
                if is_type { "type" } else { "code" }
            ))?);
        }
        match (is_type, vals.as_slice(), neg) {
            (_, [], _) => Err("an empty ICMP set".into()),
            (true, [ty], _) => {
                m.icmp_type = Some(IcmpType {
                    ty: *ty,
                    code: None,
                });
                m.not.icmp_type = neg;
                Ok(())
            }
            (true, tys, false) => {
                let alts = tys
                    .iter()
                    .map(|&ty| Match {
                        icmp_type: Some(IcmpType { ty, code: None }),
                        ..Match::default()
                    })
                    .collect();
                any_of.push(alts);
                Ok(())
            }
            (true, _, true) => Err("a negated set of ICMP types".into()),
            (false, [code], false) => match &mut m.icmp_type {
                Some(t) if !m.not.icmp_type && t.code.is_none() => {
                    t.code = Some(*code);
                    Ok(())
                }
                _ => Err("`icmp code` without one `icmp type` before it".into()),
            },
            (false, _, _) => Err("a negated `icmp code` or a set of codes".into()),
        }
    }

    /// The verdicts of a `ct state vmap`, one per distinct verdict with
    /// the states that lead to it (the states are disjoint, so the order
    /// of the rules they become does not matter).
    fn state_vmap(
        &self,
        vm: &nftables::stmt::VerdictMap<'_>,
    ) -> Result<Vec<(Target, CtStates)>, String> {
        use nftables::expr::SetItem;
        let is_state =
            matches!(&vm.key, Expression::Named(NamedExpression::CT(ct)) if ct.key == "state");
        let Expression::Named(NamedExpression::Set(items)) = &vm.data else {
            return Err("a verdict map other than an inline set".into());
        };
        if !is_state {
            return Err("a verdict map on anything but `ct state`".into());
        }
        let mut out: Vec<(Target, CtStates)> = Vec::new();
        for item in items {
            let (key, t) = match item {
                SetItem::Mapping(k, Expression::Verdict(v)) => (k, verdict_target(v)),
                SetItem::MappingStatement(k, st) => (k, statement_target(st)),
                // How the crate reads `nft -j`'s `["established", {"accept": null}]`.
                SetItem::Element(Expression::List(pair)) => match pair.as_slice() {
                    [k, Expression::Verdict(v)] => (k, verdict_target(v)),
                    _ => return Err("a verdict map entry other than `state : verdict`".into()),
                },
                other => return Err(format!("the verdict map entry {other:?}")),
            };
            let t = t.ok_or("a verdict map entry other than `state : accept|drop|return|jump`")?;
            let name = text(key).unwrap_or_default();
            let state = CtStates::parse(&name).ok_or(format!("ct state `{name}`"))?;
            match out.iter_mut().find(|(o, _)| *o == t) {
                Some((_, s)) => *s = s.union(state),
                None => out.push((t, state)),
            }
        }
        Ok(out)
    }
}

/// What one rule reads as.
pub(super) enum Read {
    /// Usually one; a `ct state vmap` gives one per verdict.
    Rules(Vec<RawRule>),
    /// Left out: it can change no IPv4 packet's fate.
    Skip(Skip),
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Skip {
    /// It matches only IPv6 packets (`meta nfproto ipv6`, `ip6 …`,
    /// `icmpv6 …`, `meta l4proto ipv6-icmp`).
    Ipv6,
    /// It has no verdict: it only counts or logs.
    NoVerdict,
    /// `limit rate over`: it matches only above a rate.
    OverLimit,
}

/// A NAT statement's flags as the rule's port flag. `persistent` changes
/// nothing here: natsim's pools are always paired (one inside address,
/// one outside address).
fn port_flag(flags: &Option<std::collections::HashSet<NATFlag>>) -> PortFlag {
    let has = |f: NATFlag| flags.as_ref().is_some_and(|s| s.contains(&f));
    if has(NATFlag::FullyRandom) {
        PortFlag::FullyRandom
    } else if has(NATFlag::Random) {
        PortFlag::Random
    } else {
        PortFlag::Profile
    }
}

/// A verdict-map value as a target.
fn verdict_target(v: &nftables::expr::Verdict<'_>) -> Option<Target> {
    use nftables::expr::Verdict;
    Some(match v {
        Verdict::Accept => Target::Filter(FilterAction::Accept),
        Verdict::Drop => Target::Filter(FilterAction::Drop),
        Verdict::Return => Target::Return,
        Verdict::Jump(j) => Target::Jump(j.target.to_string()),
        _ => return None,
    })
}

/// A verdict statement (in a rule, or a verdict map's value) as a target.
fn statement_target(st: &Statement<'_>) -> Option<Target> {
    Some(match st {
        Statement::Accept(_) => Target::Filter(FilterAction::Accept),
        Statement::Drop(_) => Target::Filter(FilterAction::Drop),
        Statement::Return(_) => Target::Return,
        Statement::Jump(j) => Target::Jump(j.target.to_string()),
        _ => return None,
    })
}
