//! The engine's NAT configuration as an nftables ruleset, built from the
//! `nftables` crate's JSON types and loaded with `nft -j -f -`.
//!
//! Each engine rule becomes one rule in chain `prerouting` (type nat, hook
//! prerouting, priority dstnat = -100) or `postrouting` (srcnat = 100) of
//! table `ip natsim`. First match wins in both, as in the engine: every
//! NAT statement is terminal in nftables.

use crate::topology::RouterSpec;
use natsim_nat::{
    Action, Chain, FilterAction, PortFlag, PortRange, Prefix, Proto, RejectWith, Rule, Unreachable,
};
use nftables::expr::{Expression, Meta, MetaKey, NamedExpression, Payload, PayloadField};
use nftables::schema::{self, NfCmd, NfListObject, NfObject, Nftables};
use nftables::stmt::{Match, NATFlag, Operator, Reject, RejectType, Statement, NAT};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook, RejectCode};
use std::borrow::Cow;

pub const TABLE: &str = "natsim";

/// A rule verify cannot express for the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsupported {
    pub rule: String,
    pub what: String,
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rule `{}`: {} has no nftables form here",
            self.rule, self.what
        )
    }
}

impl std::error::Error for Unsupported {}

fn s(v: impl Into<String>) -> Expression<'static> {
    Expression::String(Cow::Owned(v.into()))
}

fn field(proto: &'static str, f: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: proto.into(),
            field: f.into(),
        },
    )))
}

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn eq(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    cmp(left, right, false)
}

/// `left == right`, or `left != right` when `negated`.
fn cmp(left: Expression<'static>, right: Expression<'static>, negated: bool) -> Statement<'static> {
    Statement::Match(Match {
        left,
        right,
        op: if negated { Operator::NEQ } else { Operator::EQ },
    })
}

fn ct(key: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::CT(nftables::expr::CT {
        key: key.into(),
        family: None,
        dir: None,
    }))
}

fn prefix(p: Prefix) -> Expression<'static> {
    if p.len == 32 {
        s(p.addr.to_string())
    } else {
        Expression::Named(NamedExpression::Prefix(nftables::expr::Prefix {
            addr: Box::new(s(std::net::Ipv4Addr::from_bits(p.network()).to_string())),
            len: u32::from(p.len),
        }))
    }
}

fn ports(r: PortRange) -> Expression<'static> {
    if r.first == r.last {
        Expression::Number(u32::from(r.first))
    } else {
        Expression::Range(Box::new(nftables::expr::Range {
            range: [
                Expression::Number(u32::from(r.first)),
                Expression::Number(u32::from(r.last)),
            ],
        }))
    }
}

fn proto_name(p: Proto) -> Option<&'static str> {
    match p {
        Proto::Tcp => Some("tcp"),
        Proto::Udp => Some("udp"),
        Proto::Icmp => Some("icmp"),
        Proto::Other(_) => None,
    }
}

fn statements(spec: &RouterSpec, r: &Rule) -> Result<Vec<Statement<'static>>, Unsupported> {
    let mut out = matches(spec, &r.name, &r.matches)?;
    out.push(nat_statement(r)?);
    Ok(out)
}

fn matches(
    spec: &RouterSpec,
    rule_name: &str,
    m: &natsim_nat::Match,
) -> Result<Vec<Statement<'static>>, Unsupported> {
    let bad = |what: &str| Unsupported {
        rule: rule_name.to_string(),
        what: what.to_string(),
    };
    let iface_name = |i: natsim_nat::IfaceId| {
        spec.ifaces
            .get(usize::from(i.0))
            .map(|x| x.name.clone())
            .ok_or_else(|| bad("an interface the router does not have"))
    };
    let n = m.not;
    let mut out = Vec::new();
    if let Some(p) = m.proto {
        let name = proto_name(p).ok_or_else(|| bad("a protocol number match"))?;
        out.push(cmp(meta(MetaKey::L4proto), s(name), n.proto));
    }
    if let Some(i) = m.in_iface {
        out.push(cmp(meta(MetaKey::Iifname), s(iface_name(i)?), n.in_iface));
    }
    if let Some(i) = m.out_iface {
        out.push(cmp(meta(MetaKey::Oifname), s(iface_name(i)?), n.out_iface));
    }
    if let Some(p) = m.src {
        out.push(cmp(field("ip", "saddr"), prefix(p), n.src));
    }
    if let Some(p) = m.dst {
        out.push(cmp(field("ip", "daddr"), prefix(p), n.dst));
    }
    if m.dst_local {
        let fib = nftables::expr::Fib {
            result: nftables::expr::FibResult::Type,
            flags: [nftables::expr::FibFlag::Daddr].into_iter().collect(),
        };
        out.push(cmp(
            Expression::Named(NamedExpression::Fib(fib)),
            s("local"),
            n.dst_local,
        ));
    }
    if let Some(d) = m.ct_dnat {
        out.push(Statement::Match(Match {
            left: ct("status"),
            right: s("dnat"),
            op: if d { Operator::IN } else { Operator::NEQ },
        }));
    }
    if let Some(st) = m.ct_state {
        let names: Vec<Expression<'static>> = st.names().into_iter().map(s).collect();
        out.push(Statement::Match(Match {
            left: ct("state"),
            right: Expression::List(names),
            op: Operator::IN,
        }));
    }
    if let Some(i) = m.dst_iface_addr {
        let a = spec
            .ifaces
            .get(usize::from(i.0))
            .ok_or_else(|| bad("an interface the router does not have"))?
            .addr;
        out.push(eq(field("ip", "daddr"), s(a.to_string())));
    }
    if let Some(range) = m.dst_ports {
        let p = match m.proto {
            Some(Proto::Tcp) => "tcp",
            Some(Proto::Udp) => "udp",
            _ => return Err(bad("a port match without tcp or udp")),
        };
        out.push(cmp(field(p, "dport"), ports(range), n.dst_ports));
    }
    if let Some(range) = m.src_ports {
        let p = match m.proto {
            Some(Proto::Tcp) => "tcp",
            Some(Proto::Udp) => "udp",
            _ => return Err(bad("a port match without tcp or udp")),
        };
        out.push(cmp(field(p, "sport"), ports(range), n.src_ports));
    }
    if let Some(t) = m.tcp_flags {
        let flags = Expression::BinaryOperation(Box::new(nftables::expr::BinaryOperation::AND(
            field("tcp", "flags"),
            Expression::Number(u32::from(t.mask)),
        )));
        out.push(cmp(
            flags,
            Expression::Number(u32::from(t.comp)),
            n.tcp_flags,
        ));
    }
    if let Some(t) = m.icmp_type {
        let num = |v: u8| Expression::Number(u32::from(v));
        match (t.code, n.icmp_type) {
            (None, neg) => out.push(cmp(field("icmp", "type"), num(t.ty), neg)),
            (Some(c), false) => {
                out.push(eq(field("icmp", "type"), num(t.ty)));
                out.push(eq(field("icmp", "code"), num(c)));
            }
            (Some(_), true) => return Err(bad("a negated ICMP type/code pair")),
        }
    }
    Ok(out)
}

/// A NAT statement with the rule's port flag (`random`, `fully-random`).
fn flagged(n: Option<NAT<'static>>, flag: PortFlag) -> Option<NAT<'static>> {
    let f = match flag {
        PortFlag::Profile => return n,
        PortFlag::Random => NATFlag::Random,
        PortFlag::FullyRandom => NATFlag::FullyRandom,
    };
    let mut n = n.unwrap_or(NAT {
        addr: None,
        family: None,
        port: None,
        flags: None,
    });
    n.flags = Some(std::iter::once(f).collect());
    Some(n)
}

fn nat_statement(r: &Rule) -> Result<Statement<'static>, Unsupported> {
    let bad = |what: &str| Unsupported {
        rule: r.name.clone(),
        what: what.to_string(),
    };
    let m = &r.matches;
    let nat = |addr: Option<Expression<'static>>, port: Option<Expression<'static>>| {
        Some(NAT {
            addr,
            family: None,
            port,
            flags: None,
        })
    };
    Ok(match &r.action {
        Action::Accept => Statement::Accept(None),
        Action::Dnat { to, to_port } => {
            let port = match (to_port, m.dst_ports) {
                (None, _) => None,
                (Some(tp), Some(range)) if range.first != range.last => {
                    // The engine keeps the offset within the range; the
                    // kernel does that only with NF_NAT_RANGE_PROTO_OFFSET,
                    // which nft's JSON has no key for.
                    let last = u32::from(*tp) + u32::from(range.last - range.first);
                    if *tp != range.first || last > 65535 {
                        return Err(bad("a DNAT that shifts a port range"));
                    }
                    Some(ports(range))
                }
                (Some(tp), _) => Some(Expression::Number(u32::from(*tp))),
            };
            Statement::DNAT(nat(Some(s(to.to_string())), port))
        }
        Action::Redirect { to_port } => {
            Statement::Redirect(nat(None, to_port.map(|p| Expression::Number(u32::from(p)))))
        }
        Action::Masquerade { ports: pr, random } => Statement::Masquerade(flagged(
            nat(None, (*pr != PortRange::ALL).then(|| ports(*pr))),
            *random,
        )),
        Action::Snat(pool) => {
            let addr = if pool.first == pool.last {
                s(pool.first.to_string())
            } else {
                Expression::Range(Box::new(nftables::expr::Range {
                    range: [s(pool.first.to_string()), s(pool.last.to_string())],
                }))
            };
            Statement::SNAT(flagged(
                nat(
                    Some(addr),
                    (pool.ports != PortRange::ALL).then(|| ports(pool.ports)),
                ),
                pool.random,
            ))
        }
        Action::Netmap { to } => {
            // One-to-one of single addresses is plain DNAT/SNAT; whole
            // prefixes need nft's `ip prefix to` form, not in the crate.
            if to.len != 32 {
                return Err(bad("a NETMAP of a prefix wider than /32"));
            }
            let a = Some(s(to.addr.to_string()));
            match r.chain {
                Chain::Prerouting => Statement::DNAT(nat(a, None)),
                Chain::Postrouting => Statement::SNAT(nat(a, None)),
            }
        }
    })
}

fn verdict(a: FilterAction) -> Statement<'static> {
    match a {
        FilterAction::Accept => Statement::Accept(None),
        FilterAction::Drop => Statement::Drop(None),
        FilterAction::Reject(RejectWith::TcpReset) => {
            Statement::Reject(Some(Reject::new(Some(RejectType::TCPReset), None)))
        }
        FilterAction::Reject(RejectWith::Icmp(code)) => {
            let code = match code {
                Unreachable::Net => RejectCode::NetUnreach,
                Unreachable::Host => RejectCode::HostUnreach,
                Unreachable::Protocol => RejectCode::ProtUnreach,
                Unreachable::Port => RejectCode::PortUnreach,
                Unreachable::NetProhibited => RejectCode::NetProhibited,
                Unreachable::HostProhibited => RejectCode::HostProhibited,
                Unreachable::AdminProhibited => RejectCode::AdminProhibited,
            };
            Statement::Reject(Some(Reject::new(Some(RejectType::ICMP), Some(code))))
        }
    }
}

/// natsim's hairpin modes other than the kernel's own (`dnat-only`: DNAT
/// alone, the server answers the client directly) as the rules a Linux
/// admin would add: `on` (RFC 4787 REQ-9) SNATs a connection DNATed from
/// an inside interface back out of it to the address the client targeted;
/// `off` drops it in a forward chain ahead of the filter.
fn hairpin(spec: &RouterSpec) -> Vec<NfListObject<'static>> {
    let mode = spec.nat.behaviour.hairpin;
    if mode == natsim_nat::Hairpin::DnatOnly {
        return Vec::new();
    }
    let inside: Vec<&str> = spec
        .ifaces
        .iter()
        .filter(|i| i.role == natsim_nat::Role::Inside)
        .map(|i| i.name.as_str())
        .collect();
    let rule = |chain: &str, expr: Vec<Statement<'static>>, comment: &str| {
        NfListObject::Rule(schema::Rule {
            family: NfFamily::IP,
            table: TABLE.into(),
            chain: chain.to_string().into(),
            expr: Cow::Owned(expr),
            comment: Some(comment.to_string().into()),
            ..schema::Rule::default()
        })
    };
    let from_inside_to = |i: &str| {
        vec![
            eq(meta(MetaKey::Iifname), s(i)),
            eq(meta(MetaKey::Oifname), s(i)),
            Statement::Match(Match {
                left: ct("status"),
                right: s("dnat"),
                op: Operator::IN,
            }),
        ]
    };
    let mut out = Vec::new();
    if mode == natsim_nat::Hairpin::Off {
        out.push(NfListObject::Chain(schema::Chain {
            family: NfFamily::IP,
            table: TABLE.into(),
            name: "hairpin".into(),
            _type: Some(NfChainType::Filter),
            hook: Some(NfHook::Forward),
            prio: Some(-1),
            policy: Some(NfChainPolicy::Accept),
            ..schema::Chain::default()
        }));
        for i in &inside {
            let mut e = from_inside_to(i);
            e.push(Statement::Drop(None));
            out.push(rule("hairpin", e, "hairpin off"));
        }
        return out;
    }
    // The addresses DNAT rules answer on: a /32 destination, or the
    // address of the interface named by `dst_iface_addr`.
    let mut targets: Vec<std::net::Ipv4Addr> = Vec::new();
    for r in &spec.nat.rules.rules {
        if !matches!(r.action, Action::Dnat { .. }) {
            continue;
        }
        let m = &r.matches;
        let a = match (m.dst, m.dst_iface_addr) {
            (Some(d), _) if d.len == 32 && !m.not.dst => Some(d.addr),
            (_, Some(i)) => spec.ifaces.get(usize::from(i.0)).map(|x| x.addr),
            _ => None,
        };
        if let Some(a) = a.filter(|a| !targets.contains(a)) {
            targets.push(a);
        }
    }
    for i in &inside {
        for &x in &targets {
            let mut e = from_inside_to(i);
            e.push(eq(
                Expression::Named(NamedExpression::CT(nftables::expr::CT {
                    key: "daddr".into(),
                    family: Some(nftables::expr::CTFamily::IP),
                    dir: Some(nftables::expr::CTDir::Original),
                })),
                s(x.to_string()),
            ));
            e.push(Statement::SNAT(Some(NAT {
                addr: Some(s(x.to_string())),
                family: None,
                port: None,
                flags: None,
            })));
            out.push(rule("postrouting", e, "hairpin on (RFC 4787 REQ-9)"));
        }
    }
    out
}

/// The ruleset for `spec`'s NAT rules.
pub fn ruleset(spec: &RouterSpec) -> Result<Nftables<'static>, Unsupported> {
    let mut objs: Vec<NfObject<'static>> = Vec::new();
    let add = |o: NfListObject<'static>| NfObject::CmdObject(NfCmd::Add(o));
    objs.push(add(NfListObject::Table(schema::Table {
        family: NfFamily::IP,
        name: TABLE.into(),
        handle: None,
    })));
    for (name, hook, prio) in [
        ("prerouting", NfHook::Prerouting, -100),
        ("postrouting", NfHook::Postrouting, 100),
    ] {
        objs.push(add(NfListObject::Chain(schema::Chain {
            family: NfFamily::IP,
            table: TABLE.into(),
            name: name.into(),
            _type: Some(NfChainType::NAT),
            hook: Some(hook),
            prio: Some(prio),
            policy: Some(NfChainPolicy::Accept),
            ..schema::Chain::default()
        })));
    }
    // The FTP ALG as the kernel's helper (nf_conntrack_ftp, nf_nat_ftp):
    // assigned after DNAT, on the server port the engine's ALG watches.
    let algs = &spec.nat.algs;
    if !algs.rules.is_empty() {
        return Err(Unsupported {
            rule: "algs".into(),
            what: "an ALG bound to a rule by name".into(),
        });
    }
    for (&port, &kind) in &algs.ports {
        if kind != natsim_nat::AlgKind::Ftp {
            return Err(Unsupported {
                rule: "algs".into(),
                what: format!("the {} ALG (the kernel has no such helper)", kind.name()),
            });
        }
        objs.push(add(NfListObject::CTHelper(schema::CTHelper {
            family: NfFamily::IP,
            table: TABLE.into(),
            name: format!("ftp-{port}").into(),
            handle: None,
            _type: "ftp".into(),
            protocol: Some("tcp".into()),
            l3proto: Some("ip".into()),
        })));
        objs.push(add(NfListObject::Chain(schema::Chain {
            family: NfFamily::IP,
            table: TABLE.into(),
            name: format!("helper-{port}").into(),
            _type: Some(NfChainType::Filter),
            hook: Some(NfHook::Prerouting),
            prio: Some(0),
            policy: Some(NfChainPolicy::Accept),
            ..schema::Chain::default()
        })));
        objs.push(add(NfListObject::Rule(schema::Rule {
            family: NfFamily::IP,
            table: TABLE.into(),
            chain: format!("helper-{port}").into(),
            expr: Cow::Owned(vec![
                eq(field("tcp", "dport"), Expression::Number(u32::from(port))),
                Statement::CTHelper(format!("ftp-{port}").into()),
            ]),
            comment: Some("ftp helper".into()),
            ..schema::Rule::default()
        })));
    }
    let f = &spec.nat.filter;
    // The raw chain at priority raw (-300): before conntrack (-200) and
    // destination NAT (-100), as iptables' raw table.
    for (name, hook, prio, chain) in [
        ("raw", NfHook::Prerouting, -300, &f.raw),
        ("input", NfHook::Input, 0, &f.input),
        ("forward", NfHook::Forward, 0, &f.forward),
    ] {
        if chain.is_open() {
            continue;
        }
        objs.push(add(NfListObject::Chain(schema::Chain {
            family: NfFamily::IP,
            table: TABLE.into(),
            name: name.into(),
            _type: Some(NfChainType::Filter),
            hook: Some(hook),
            prio: Some(prio),
            policy: Some(match chain.policy {
                FilterAction::Drop => NfChainPolicy::Drop,
                _ => NfChainPolicy::Accept,
            }),
            ..schema::Chain::default()
        })));
        for r in &chain.rules {
            let mut expr = matches(spec, &r.name, &r.matches)?;
            expr.push(verdict(r.action));
            objs.push(add(NfListObject::Rule(schema::Rule {
                family: NfFamily::IP,
                table: TABLE.into(),
                chain: name.into(),
                expr: Cow::Owned(expr),
                comment: Some(Cow::Owned(r.name.clone())),
                ..schema::Rule::default()
            })));
        }
    }
    objs.extend(hairpin(spec).into_iter().map(add));
    for r in &spec.nat.rules.rules {
        let chain = match r.chain {
            Chain::Prerouting => "prerouting",
            Chain::Postrouting => "postrouting",
        };
        objs.push(add(NfListObject::Rule(schema::Rule {
            family: NfFamily::IP,
            table: TABLE.into(),
            chain: chain.into(),
            expr: Cow::Owned(statements(spec, r)?),
            comment: Some(Cow::Owned(r.name.clone())),
            ..schema::Rule::default()
        })));
    }
    Ok(Nftables {
        objects: Cow::Owned(objs),
    })
}

/// `ruleset` as the JSON text `nft -j -f` reads.
pub fn ruleset_json(spec: &RouterSpec) -> Result<String, Unsupported> {
    let r = ruleset(spec)?;
    Ok(serde_json::to_string_pretty(&r).unwrap_or_default())
}
