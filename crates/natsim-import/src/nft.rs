//! `nft -j list ruleset` JSON, through the `nftables` crate's types.
//!
//! Chains of type `nat` hooked at prerouting/postrouting and of type
//! `filter` hooked at input/forward in `ip` or `inet` tables are read;
//! their rules' statements map to the same model as iptables-save's:
//! `meta l4proto`, `iifname`/`oifname`, `ip saddr`/`daddr`, `tcp|udp
//! dport|sport`, `fib daddr type local`, `ct state`, `ct status dnat`
//! (each `==` or `!=`), `counter` (ignored: it decides nothing), and the
//! verdicts `dnat`, `snat`, `masquerade`, `redirect`, `accept`, `drop`,
//! `reject`, `jump`, `return`. A JSON document has no lines to point at:
//! errors name the rule as `line` = its position in the `nftables` array
//! (1-based) and `col` = the statement's position in the rule.

use crate::flatten::{assemble, Ifaces, RawChain, RawRule, RawTable, Target};
use crate::ipset::{parse_prefix, Sets};
use crate::{FilterAction, ImportError, Imported, Loc, RejectWith, Unreachable};
use natsim_nat::{Action, CtStates, Match, Pooling, PortFlag, PortRange, Prefix, Proto, SnatPool};
use nftables::expr::{Expression, MetaKey, NamedExpression, Payload};
use nftables::schema::{NfListObject, NfObject, Nftables};
use nftables::stmt::{NATFlag, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use std::net::Ipv4Addr;

const SUPPORTED: &str = "meta l4proto, iifname, oifname, ip saddr/daddr, tcp/udp dport/sport, fib daddr type local, ct state, ct status dnat (== or !=), counter; dnat, snat, masquerade, redirect, accept, drop, reject, jump, return";

fn text(e: &Expression<'_>) -> Option<String> {
    match e {
        Expression::String(s) => Some(s.to_string()),
        Expression::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn prefix(e: &Expression<'_>) -> Option<Prefix> {
    match e {
        Expression::String(s) => parse_prefix(s),
        Expression::Named(NamedExpression::Prefix(p)) => {
            let a: Ipv4Addr = text(&p.addr)?.parse().ok()?;
            Some(Prefix::new(
                a,
                u8::try_from(p.len).ok().filter(|l| *l <= 32)?,
            ))
        }
        _ => None,
    }
}

fn ports(e: &Expression<'_>) -> Option<PortRange> {
    match e {
        Expression::Number(n) => u16::try_from(*n).ok().map(PortRange::single),
        Expression::Range(r) => {
            let a = u16::try_from(match &r.range[0] {
                Expression::Number(n) => *n,
                _ => return None,
            })
            .ok()?;
            let b = u16::try_from(match &r.range[1] {
                Expression::Number(n) => *n,
                _ => return None,
            })
            .ok()?;
            (a <= b).then(|| PortRange::new(a, b))
        }
        _ => None,
    }
}

fn names(e: &Expression<'_>) -> Vec<String> {
    match e {
        Expression::List(l) => l.iter().filter_map(text).collect(),
        Expression::Named(NamedExpression::Set(items)) => items
            .iter()
            .filter_map(|i| match i {
                nftables::expr::SetItem::Element(x) => text(x),
                _ => None,
            })
            .collect(),
        e => text(e).into_iter().collect(),
    }
}

struct Reader<'a> {
    file: &'a str,
    ifaces: Ifaces,
}

impl Reader<'_> {
    fn err(&self, line: usize, col: usize, rule: String, message: String) -> ImportError {
        ImportError {
            file: self.file.into(),
            loc: Loc { line, col },
            text: rule,
            message,
            supported: SUPPORTED,
        }
    }

    fn rule(
        &mut self,
        line: usize,
        stmts: &[Statement<'_>],
        text_: String,
        comment: Option<String>,
        table: &str,
    ) -> Result<RawRule, ImportError> {
        let mut m = Match::default();
        let mut target = None;
        for (k, st) in stmts.iter().enumerate() {
            let col = k + 1;
            let bad = |r: &Reader<'_>, what: String| r.err(line, col, text_.clone(), what);
            match st {
                Statement::Counter(_) => {}
                Statement::Match(mt) => {
                    let neg = match mt.op {
                        Operator::EQ | Operator::IN => false,
                        Operator::NEQ => true,
                        _ => return Err(bad(self, format!("operator `{:?}`", mt.op))),
                    };
                    match &mt.left {
                        Expression::Named(NamedExpression::Meta(me)) => match me.key {
                            MetaKey::L4proto | MetaKey::Protocol => {
                                let v = text(&mt.right).unwrap_or_default();
                                m.proto = Some(match v.as_str() {
                                    "tcp" | "6" => Proto::Tcp,
                                    "udp" | "17" => Proto::Udp,
                                    "icmp" | "1" => Proto::Icmp,
                                    _ => return Err(bad(self, format!("protocol `{v}`"))),
                                });
                                m.not.proto = neg;
                            }
                            MetaKey::Iifname | MetaKey::Oifname => {
                                let v = text(&mt.right)
                                    .ok_or_else(|| bad(self, "an interface set".into()))?;
                                if v.ends_with('*') {
                                    return Err(bad(self, format!("interface wildcard `{v}`")));
                                }
                                let id = self.ifaces.id(&v, &Loc { line, col });
                                if me.key == MetaKey::Iifname {
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
                                ("ip", "saddr" | "daddr") => {
                                    let p = prefix(&mt.right)
                                        .ok_or_else(|| bad(self, "an address set or map".into()))?;
                                    if f.field == "saddr" {
                                        m.src = Some(p);
                                        m.not.src = neg;
                                    } else {
                                        m.dst = Some(p);
                                        m.not.dst = neg;
                                    }
                                }
                                (p @ ("tcp" | "udp"), fld @ ("dport" | "sport")) => {
                                    let r = ports(&mt.right)
                                        .ok_or_else(|| bad(self, "a port set".into()))?;
                                    let proto = if p == "tcp" { Proto::Tcp } else { Proto::Udp };
                                    if m.proto.is_some_and(|x| x != proto) {
                                        return Err(bad(self, "ports of another protocol".into()));
                                    }
                                    m.proto = Some(proto);
                                    if fld == "dport" {
                                        m.dst_ports = Some(r);
                                        m.not.dst_ports = neg;
                                    } else {
                                        m.src_ports = Some(r);
                                        m.not.src_ports = neg;
                                    }
                                }
                                (p, fld) => return Err(bad(self, format!("payload `{p} {fld}`"))),
                            }
                        }
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
                Statement::Accept(_) => target = Some(Target::Filter(FilterAction::Accept)),
                Statement::Drop(_) if table == "filter" => {
                    target = Some(Target::Filter(FilterAction::Drop))
                }
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
                Statement::Return(_) => target = Some(Target::Return),
                Statement::Jump(j) => target = Some(Target::Jump(j.target.to_string())),
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
                            ports(p)
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
                        Some(p) => ports(p).ok_or_else(|| bad(self, "snat port".into()))?,
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
                        Some(p) => ports(p).ok_or_else(|| bad(self, "masquerade port".into()))?,
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
                            ports(p)
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
        let target = target.ok_or_else(|| {
            self.err(
                line,
                1,
                text_.clone(),
                "a rule without a verdict (counting rules decide nothing)".into(),
            )
        })?;
        Ok(RawRule {
            loc: Loc { line, col: 1 },
            text: text_,
            name: comment,
            m,
            sets: Vec::new(),
            target,
        })
    }
}

pub fn import(file: &str, src: &str, sets: &Sets) -> Result<Imported, ImportError> {
    let _ = sets;
    let doc: Nftables<'_> = serde_json::from_str(src).map_err(|e| ImportError {
        file: file.into(),
        loc: json_loc(src, e.line(), e.column()),
        text: String::new(),
        message: format!("not nft JSON: {e}"),
        supported: "the output of `nft -j list ruleset`",
    })?;
    let mut r = Reader {
        file,
        ifaces: Ifaces::default(),
    };
    let mut nat = RawTable::new();
    let mut filter = RawTable::new();
    // Which (family, table) holds nat or filter base chains, and chains'
    // kinds by name.
    let mut kinds: Vec<(String, String, &'static str)> = Vec::new();
    // The filter base chains on each hook, by name, and the first of them
    // that holds a rule.
    let mut on_hook: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut with_rules: std::collections::BTreeMap<String, String> = Default::default();
    let objs: Vec<&NfListObject<'_>> = doc
        .objects
        .iter()
        .filter_map(|o| match o {
            NfObject::ListObject(l) => Some(l),
            NfObject::CmdObject(nftables::schema::NfCmd::Add(l)) => Some(l),
            _ => None,
        })
        .collect();
    for (k, o) in objs.iter().enumerate() {
        if let NfListObject::Chain(c) = o {
            if !matches!(c.family, NfFamily::IP | NfFamily::INet) {
                continue;
            }
            let kind = match (c._type, c.hook) {
                (Some(NfChainType::NAT), Some(NfHook::Prerouting)) => Some(("nat", "PREROUTING")),
                (Some(NfChainType::NAT), Some(NfHook::Postrouting)) => Some(("nat", "POSTROUTING")),
                (Some(NfChainType::NAT), Some(_)) => Some(("nat", "OUTPUT")),
                (Some(NfChainType::Filter), Some(NfHook::Input)) => Some(("filter", "INPUT")),
                (Some(NfChainType::Filter), Some(NfHook::Forward)) => Some(("filter", "FORWARD")),
                (Some(NfChainType::Filter), Some(_)) => Some(("filter", "OUTPUT")),
                (None, None) => None,
                _ => {
                    return Err(r.err(
                        k + 1,
                        1,
                        format!("chain {}", c.name),
                        "a chain type not modelled".into(),
                    ))
                }
            };
            let policy = match c.policy {
                Some(NfChainPolicy::Drop) => Some(FilterAction::Drop),
                Some(NfChainPolicy::Accept) => Some(FilterAction::Accept),
                None => None,
            };
            let (table, name) = match kind {
                Some((t, base)) => {
                    kinds.push((
                        c.table.to_string(),
                        c.name.to_string(),
                        if t == "nat" { "nat" } else { "filter" },
                    ));
                    (t, base.to_string())
                }
                None => {
                    kinds.push((c.table.to_string(), c.name.to_string(), "user"));
                    ("user", c.name.to_string())
                }
            };
            let chain = RawChain {
                policy,
                rules: Vec::new(),
                loc: Loc {
                    line: k + 1,
                    col: 1,
                },
            };
            match table {
                "nat" => {
                    nat.insert(name, chain);
                }
                "filter" => {
                    // Several base chains on one hook (fw4's empty mangle
                    // chains beside its filter ones): a packet passes only
                    // if each lets it, so a drop policy anywhere stays.
                    match filter.get_mut(&name) {
                        Some(prev) => {
                            if chain.policy == Some(FilterAction::Drop) {
                                prev.policy = chain.policy;
                            }
                        }
                        None => {
                            filter.insert(name.clone(), chain);
                        }
                    }
                    on_hook.entry(name).or_default().push(c.name.to_string());
                }
                _ => {
                    // A user chain serves whichever table jumps to it: keep
                    // it in both, keyed by its own name.
                    nat.insert(name.clone(), chain.clone());
                    filter.insert(name, chain);
                }
            }
        }
    }
    for (k, o) in objs.iter().enumerate() {
        if let NfListObject::Rule(rule) = o {
            if !matches!(rule.family, NfFamily::IP | NfFamily::INet) {
                continue;
            }
            let Some((_, _, kind)) = kinds
                .iter()
                .find(|(t, c, _)| *t == rule.table && *c == rule.chain)
            else {
                return Err(r.err(
                    k + 1,
                    1,
                    format!("rule in {}", rule.chain),
                    format!("chain `{}` is not defined", rule.chain),
                ));
            };
            let text_ = serde_json::to_string(&rule.expr).unwrap_or_default();
            let comment = rule.comment.as_ref().map(|c| c.to_string());
            let key = kinds_base(&objs, &rule.table, &rule.chain)
                .map(str::to_string)
                .unwrap_or_else(|| rule.chain.to_string());
            // Rules in two base chains of one hook would run as one list
            // here, where nftables runs each chain's verdict in turn.
            let modelled = key == "INPUT" || key == "FORWARD";
            if let Some(chains) = on_hook.get(&key).filter(|c| modelled && c.len() > 1) {
                let first = with_rules
                    .entry(key.clone())
                    .or_insert(rule.chain.to_string());
                if *first != rule.chain {
                    return Err(r.err(
                        k + 1,
                        1,
                        format!("rule in {}", rule.chain),
                        format!(
                            "rules in two base chains on one hook ({}): natsim models one chain per hook",
                            chains.join(", ")
                        ),
                    ));
                }
            }
            let mut first_err = None;
            let mut placed = false;
            for (table, slot) in [("nat", &mut nat), ("filter", &mut filter)] {
                if *kind != table && *kind != "user" {
                    continue;
                }
                // A user chain serves whichever table jumps to it: its rule
                // is kept in each table whose verdicts it uses.
                match r.rule(k + 1, &rule.expr, text_.clone(), comment.clone(), table) {
                    Ok(raw) => {
                        if let Some(c) = slot.get_mut(&key) {
                            c.rules.push(raw);
                            placed = true;
                        }
                    }
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
            if !placed {
                if let Some(e) = first_err {
                    return Err(e);
                }
            }
        }
    }
    assemble(file, &nat, &filter, sets, r.ifaces, Vec::new())
}

/// The netfilter name of a base chain (`PREROUTING`, ...), by its table and
/// chain name.
fn kinds_base(objs: &[&NfListObject<'_>], table: &str, chain: &str) -> Option<&'static str> {
    objs.iter().find_map(|o| match o {
        NfListObject::Chain(c) if c.table == table && c.name == chain => match (c._type, c.hook) {
            (Some(NfChainType::NAT), Some(NfHook::Prerouting)) => Some("PREROUTING"),
            (Some(NfChainType::NAT), Some(NfHook::Postrouting)) => Some("POSTROUTING"),
            (Some(NfChainType::NAT), Some(_)) => Some("OUTPUT"),
            (Some(NfChainType::Filter), Some(NfHook::Input)) => Some("INPUT"),
            (Some(NfChainType::Filter), Some(NfHook::Forward)) => Some("FORWARD"),
            (Some(NfChainType::Filter), Some(_)) => Some("OUTPUT"),
            _ => None,
        },
        _ => None,
    })
}

/// serde_json's error position as a 1-based location inside the text: it
/// counts columns from 0 at a line's start, and puts an error at EOF after
/// a final newline on a line past the last one.
fn json_loc(src: &str, line: usize, col: usize) -> Loc {
    let lines = src.lines().count().max(1);
    if line > lines {
        let last = src.lines().last().unwrap_or("");
        return Loc {
            line: lines,
            col: last.chars().count() + 1,
        };
    }
    Loc {
        line: line.max(1),
        col: col.max(1),
    }
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
