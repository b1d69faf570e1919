//! Reading and validating a scenario file: syntax and types (the `toml`
//! crate, with spans), then meaning — names, references, addresses within
//! their subnets, NAT rules the engine accepts, expectations the step can
//! meet, and hard limits — for the base scenario and every variant.
//!
//! Hard limits (hostile files get a located error, never unbounded work):
//! file ≤ 1 MiB; ≤ 64 segments, 64 routers, 256 hosts, 16 interfaces per
//! router, 256 steps, 64 variants, 1024 DNS records, FTP files ≤ 16 MiB;
//! durations ≤ 30 days; MTU 576–9000; loss in [0, 1].

use crate::diag::{Ctx, Problem};
use crate::expect;
use crate::schema::*;
use natsim_nat::{
    AlgKind, Behaviour, ConfigError, Hairpin, IfaceId, NatConfig, NatEngine, PortRange, Prefix,
    Proto, Role, RuleId, Unsolicited,
};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::ops::Range;

pub const MAX_FILE: usize = 1 << 20;

/// A parsed, validated scenario file.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub file: String,
    pub src: String,
    pub scenario: Scenario,
}

impl Loaded {
    /// The base scenario (`None`) and each variant, in file order.
    pub fn variants(&self) -> Vec<Option<&Variant>> {
        std::iter::once(None)
            .chain(self.scenario.variants.iter().map(Some))
            .collect()
    }

    /// The scenario a variant describes: nodes replaced or added by name,
    /// nodes removed, steps and expectations replaced.
    pub fn effective(&self, v: Option<&Variant>) -> Scenario {
        let mut s = self.scenario.clone();
        s.variants.clear();
        let Some(v) = v else { return s };
        for r in &v.routers {
            match s
                .routers
                .iter_mut()
                .find(|x| x.name.get_ref() == r.name.get_ref())
            {
                Some(x) => *x = r.clone(),
                None => s.routers.push(r.clone()),
            }
        }
        for h in &v.hosts {
            match s
                .hosts
                .iter_mut()
                .find(|x| x.name.get_ref() == h.name.get_ref())
            {
                Some(x) => *x = h.clone(),
                None => s.hosts.push(h.clone()),
            }
        }
        let gone: BTreeSet<&str> = v.remove.iter().map(|n| n.get_ref().as_str()).collect();
        s.routers
            .retain(|r| !gone.contains(r.name.get_ref().as_str()));
        s.hosts
            .retain(|h| !gone.contains(h.name.get_ref().as_str()));
        for st in &v.steps {
            match s
                .steps
                .iter_mut()
                .find(|x| x.name.get_ref() == st.name.get_ref())
            {
                Some(x) => *x = st.clone(),
                None => s.steps.push(st.clone()),
            }
        }
        for (name, e) in &v.expect {
            if let Some(st) = s.steps.iter_mut().find(|x| x.name.get_ref() == name) {
                st.expect = Some(e.clone());
            }
        }
        if let Some(l) = &v.lesson {
            s.lesson = Some(l.clone());
        }
        s
    }
}

/// Reads `path` and validates it.
pub fn load_file(path: &std::path::Path) -> Result<Loaded, Vec<Problem>> {
    let file = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| vec![io_problem(&file, e)])?;
    if meta.len() as usize > MAX_FILE {
        return Err(vec![Ctx {
            file: &file,
            src: "",
        }
        .at(
            0..0,
            format!(
                "the file is {} bytes; scenarios may be at most {MAX_FILE} bytes",
                meta.len()
            ),
            Some("split it into several scenarios"),
        )]);
    }
    let bytes = std::fs::read(path).map_err(|e| vec![io_problem(&file, e)])?;
    let src = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let text = String::from_utf8_lossy(e.as_bytes()).to_string();
        vec![Ctx {
            file: &file,
            src: &text,
        }
        .at(
            at..at + 1,
            "the file is not valid UTF-8",
            Some("save it as UTF-8"),
        )]
    })?;
    load_str(&file, &src)
}

fn io_problem(file: &str, e: std::io::Error) -> Problem {
    Problem {
        file: file.into(),
        line: 0,
        col: 0,
        message: format!("cannot read: {e}"),
        hint: None,
        span: 0..0,
    }
}

/// Parses and validates `src` (named `file` in messages).
pub fn load_str(file: &str, src: &str) -> Result<Loaded, Vec<Problem>> {
    let cx = Ctx { file, src };
    if src.len() > MAX_FILE {
        return Err(vec![cx.at(
            0..0,
            format!(
                "the file is {} bytes; scenarios may be at most {MAX_FILE} bytes",
                src.len()
            ),
            None,
        )]);
    }
    let scenario: Scenario = toml::from_str(src).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let msg = e.message().trim().replace('\n', " ");
        let hint = if msg.contains("unknown field") {
            Some("check the spelling against the scenario format in the README")
        } else if msg.contains("missing field") {
            Some("add the field; every table lists its required fields in the README")
        } else if msg.contains("invalid type") {
            Some("check the value's type (string, integer, table, array)")
        } else {
            None
        };
        vec![cx.at(span, msg, hint)]
    })?;
    let loaded = Loaded {
        file: file.into(),
        src: src.into(),
        scenario,
    };
    let mut problems = Vec::new();
    limits(&cx, &loaded.scenario, &mut problems);
    if problems.is_empty() {
        let mut seen = BTreeSet::new();
        for v in loaded.variants() {
            if let Some(v) = v {
                if !seen.insert(v.name.get_ref().clone()) {
                    problems.push(cx.at(
                        v.name.span(),
                        format!("variant `{}` is defined twice", v.name.get_ref()),
                        Some("give each variant its own name"),
                    ));
                }
                for n in &v.remove {
                    let known = loaded
                        .scenario
                        .hosts
                        .iter()
                        .any(|h| h.name.get_ref() == n.get_ref())
                        || loaded
                            .scenario
                            .routers
                            .iter()
                            .any(|r| r.name.get_ref() == n.get_ref());
                    if !known {
                        problems.push(cx.at(
                            n.span(),
                            format!(
                                "`remove` names `{}`, which the scenario does not have",
                                n.get_ref()
                            ),
                            None,
                        ));
                    }
                }
                for (name, e) in &v.expect {
                    if !loaded
                        .scenario
                        .steps
                        .iter()
                        .chain(&v.steps)
                        .any(|s| s.name.get_ref() == name)
                    {
                        problems.push(cx.at(
                            e.span(),
                            format!("`expect` names step `{name}`, which does not exist"),
                            Some("use a step's `name`"),
                        ));
                    }
                }
            }
            let eff = loaded.effective(v);
            validate(&cx, &eff, &mut problems);
        }
        // The same problem found in the base and in a variant is one problem.
        let mut uniq = BTreeSet::new();
        problems.retain(|p| uniq.insert((p.span.start, p.message.clone())));
    }
    if problems.is_empty() {
        Ok(loaded)
    } else {
        problems.sort_by_key(|p| p.span.start);
        Err(problems)
    }
}

fn limits(cx: &Ctx<'_>, s: &Scenario, out: &mut Vec<Problem>) {
    let whole = 0..cx.src.len().min(1);
    let mut check = |n: usize, max: usize, what: &str| {
        if n > max {
            out.push(cx.at(
                whole.clone(),
                format!("{n} {what}; at most {max} are allowed"),
                Some("split the scenario into several files"),
            ));
        }
    };
    check(s.segments.len(), 64, "segments");
    check(s.routers.len(), 64, "routers");
    check(s.hosts.len(), 256, "hosts");
    check(s.steps.len(), 256, "steps");
    check(s.variants.len(), 64, "variants");
    for r in &s.routers {
        if r.interfaces.len() > 16 {
            out.push(cx.at(
                r.name.span(),
                format!(
                    "router `{}` has {} interfaces; at most 16",
                    r.name.get_ref(),
                    r.interfaces.len()
                ),
                None,
            ));
        }
    }
}

pub fn parse_addr(s: &S<String>, cx: &Ctx<'_>) -> Result<Ipv4Addr, Problem> {
    s.get_ref().trim().parse().map_err(|_| {
        cx.at(
            s.span(),
            format!("`{}` is not an IPv4 address", s.get_ref()),
            Some("write it as a.b.c.d"),
        )
    })
}

pub fn parse_cidr(s: &S<String>, cx: &Ctx<'_>) -> Result<(Ipv4Addr, u8), Problem> {
    let bad = || {
        cx.at(
            s.span(),
            format!("`{}` is not an address with a prefix length", s.get_ref()),
            Some("write it as a.b.c.d/len, e.g. 192.168.1.1/24"),
        )
    };
    let (a, l) = s.get_ref().split_once('/').ok_or_else(bad)?;
    let addr: Ipv4Addr = a.trim().parse().map_err(|_| bad())?;
    let len: u8 = l.trim().parse().map_err(|_| bad())?;
    if len > 32 {
        return Err(cx.at(
            s.span(),
            format!("prefix length /{len} is larger than 32"),
            None,
        ));
    }
    Ok((addr, len))
}

fn parse_prefix(s: &S<String>, cx: &Ctx<'_>) -> Result<Prefix, Problem> {
    if !s.get_ref().contains('/') {
        return parse_addr(s, cx).map(Prefix::host);
    }
    let (a, l) = parse_cidr(s, cx)?;
    Ok(Prefix::new(a, l))
}

pub fn profile(name: &S<String>, cx: &Ctx<'_>) -> Result<Behaviour, Problem> {
    Behaviour::by_name(name.get_ref()).ok_or_else(|| {
        cx.at(
            name.span(),
            format!("unknown NAT profile `{}`", name.get_ref()),
            Some(&format!("one of {}", Behaviour::PROFILE_NAMES.join(", "))),
        )
    })
}

/// The NAT configuration of `r` (behaviour, rules) and, per rule, the span
/// of the item that produced it.
pub fn nat_config(
    r: &Router,
    nat: &Nat,
    cx: &Ctx<'_>,
) -> Result<(NatConfig, Vec<Range<usize>>), Problem> {
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
    let mut cfg = NatConfig::new(b);
    let mut first_outside = None;
    for (k, i) in r.interfaces.iter().enumerate() {
        let (addr, len) = parse_cidr(&i.address, cx)?;
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
        let ports = match f.port.get_ref() {
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
        };
        let to = parse_addr(&f.to, cx)?;
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
            cfg.rules.rules[usize::from(id.0)].matches.src = Some(parse_prefix(from, cx)?);
        }
        spans.push(f.proto.span());
    }
    for (k, o) in nat.one_to_one.iter().enumerate() {
        let inside = parse_prefix(&o.inside, cx)?;
        let outside = parse_prefix(&o.outside, cx)?;
        let out = iface(&o.interface, o.inside.span())?;
        let name = o
            .name
            .as_ref()
            .map_or_else(|| format!("one-to-one-{k}"), |n| n.get_ref().clone());
        cfg.rules.one_to_one(&name, out, inside, outside);
        spans.push(o.inside.span());
        spans.push(o.inside.span());
    }
    for m in &nat.masquerade {
        let out = iface(&Some(m.clone()), m.span())?;
        cfg.rules
            .masquerade(&format!("masquerade-{}", m.get_ref()), out, None);
        spans.push(m.span());
    }
    if let Some(rf) = &r.rules {
        let imported = crate::rules::load(r, rf, cx)?;
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
    Ok((cfg, spans))
}

fn nat_error(e: &ConfigError, spans: &[Range<usize>], r: &Router, cx: &Ctx<'_>) -> Problem {
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

/// Every semantic check; problems are appended.
pub fn validate(cx: &Ctx<'_>, s: &Scenario, out: &mut Vec<Problem>) {
    let mut push = |r: Result<(), Problem>| {
        if let Err(p) = r {
            out.push(p);
        }
    };
    // Segments.
    let mut segs = BTreeSet::new();
    for g in &s.segments {
        if !segs.insert(g.name.get_ref().clone()) {
            push(Err(cx.at(
                g.name.span(),
                format!("segment `{}` is defined twice", g.name.get_ref()),
                None,
            )));
        }
        if let Some(l) = &g.latency {
            if expect::parse_duration(l.get_ref()).is_none() {
                push(Err(cx.at(
                    l.span(),
                    format!("`{}` is not a duration", l.get_ref()),
                    Some("e.g. `1ms`, `20ms`; at most 30 days"),
                )));
            }
        }
        if let Some(b) = &g.bandwidth {
            if crate::build::parse_bandwidth(b.get_ref()).is_none() {
                push(Err(cx.at(
                    b.span(),
                    format!("`{}` is not a bandwidth", b.get_ref()),
                    Some("e.g. `100Mbps`, `64kbps`"),
                )));
            }
        }
        if let Some(m) = &g.mtu {
            if !(576..=9000).contains(m.get_ref()) {
                push(Err(cx.at(
                    m.span(),
                    format!("MTU {} is outside 576–9000", m.get_ref()),
                    None,
                )));
            }
        }
        if let Some(l) = &g.loss {
            if !(0.0..=1.0).contains(l.get_ref()) {
                push(Err(cx.at(
                    l.span(),
                    format!("loss {} is not a probability", l.get_ref()),
                    Some("a number from 0 to 1"),
                )));
            }
        }
    }
    let seg_ref = |n: &S<String>| -> Result<(), Problem> {
        if segs.contains(n.get_ref()) {
            Ok(())
        } else {
            let known: Vec<_> = segs.iter().cloned().collect();
            Err(cx.at(
                n.span(),
                format!("there is no segment `{}`", n.get_ref()),
                Some(&format!("defined segments: {}", known.join(", "))),
            ))
        }
    };
    // Node names.
    let mut names = BTreeSet::new();
    for n in s
        .routers
        .iter()
        .map(|r| &r.name)
        .chain(s.hosts.iter().map(|h| &h.name))
    {
        if n.get_ref().is_empty() || !names.insert(n.get_ref().clone()) {
            push(Err(cx.at(
                n.span(),
                format!("node name `{}` is empty or used twice", n.get_ref()),
                Some("every router and host needs its own name"),
            )));
        }
    }
    // Routers.
    for r in &s.routers {
        let mut nets = Vec::new();
        for i in &r.interfaces {
            push(seg_ref(&i.segment));
            match parse_cidr(&i.address, cx) {
                Ok((a, l)) => nets.push(Prefix::new(a, l)),
                Err(p) => push(Err(p)),
            }
        }
        for rt in &r.routes {
            push(parse_prefix(&rt.to, cx).map(|_| ()));
            match parse_addr(&rt.via, cx) {
                Ok(v) if !nets.iter().any(|n| n.contains(v)) => push(Err(cx.at(
                    rt.via.span(),
                    format!(
                        "next hop {v} is not on any of router `{}`'s networks",
                        r.name.get_ref()
                    ),
                    Some("a next hop must be on a connected network"),
                ))),
                Ok(_) => {}
                Err(p) => push(Err(p)),
            }
        }
        if let Some(nat) = &r.nat {
            match nat_config(r, nat, cx) {
                Ok((cfg, spans)) => {
                    if let Err(e) = NatEngine::new(cfg) {
                        push(Err(nat_error(&e, &spans, r, cx)));
                    }
                }
                Err(p) => push(Err(p)),
            }
        }
    }
    // Hosts.
    for h in &s.hosts {
        push(seg_ref(&h.segment));
        let net = match parse_cidr(&h.address, cx) {
            Ok((a, l)) => Some(Prefix::new(a, l)),
            Err(p) => {
                push(Err(p));
                None
            }
        };
        if let Some(g) = &h.gateway {
            match parse_addr(g, cx) {
                Ok(ga) if net.is_some_and(|n| !n.contains(ga)) => push(Err(cx.at(
                    g.span(),
                    format!(
                        "gateway {ga} is outside host `{}`'s subnet {}",
                        h.name.get_ref(),
                        h.address.get_ref()
                    ),
                    Some("a gateway must be on the host's own network"),
                ))),
                Ok(_) => {}
                Err(p) => push(Err(p)),
            }
        }
        for d in &h.dns {
            push(parse_addr(d, cx).map(|_| ()));
        }
        if let Some(t) = &h.tcp_profile {
            if natsim_sim::TcpProfile::by_name(t.get_ref()).is_none() {
                push(Err(cx.at(
                    t.span(),
                    format!("unknown TCP profile `{}`", t.get_ref()),
                    Some("`windows` or `linux`"),
                )));
            }
        }
        if let Some(d) = &h.dns_server {
            let n: usize = d.zones.iter().map(|z| z.records.len()).sum();
            if n > 1024 {
                push(Err(cx.at(
                    h.name.span(),
                    format!("{n} DNS records; at most 1024"),
                    None,
                )));
            }
            for z in &d.zones {
                for rec in &z.records {
                    push(crate::build::parse_record(rec, cx).map(|_| ()));
                }
            }
        }
        if let Some(m) = &h.mta {
            for d in [&m.retry_interval, &m.give_up_after].into_iter().flatten() {
                if expect::parse_duration(d.get_ref()).is_none() {
                    push(Err(cx.at(
                        d.span(),
                        format!("`{}` is not a duration", d.get_ref()),
                        Some("e.g. `30m`, `2d`"),
                    )));
                }
            }
            if let Some(a) = &m.smart_host {
                push(parse_addr(a, cx).map(|_| ()));
            }
        }
        if let Some(i) = &h.ims {
            for sp in &i.address_spaces {
                push(crate::build::parse_space(sp, cx).map(|_| ()));
            }
            if let Some(a) = &i.forward_all_to {
                push(parse_addr(a, cx).map(|_| ()));
            }
        }
        if let Some(f) = &h.ftp_server {
            for size in f.files.values() {
                if *size.get_ref() > 16 << 20 {
                    push(Err(cx.at(
                        size.span(),
                        format!("{} bytes; FTP files may be at most 16 MiB", size.get_ref()),
                        None,
                    )));
                }
            }
        }
        for p in h
            .udp_echo
            .iter()
            .chain(h.http_server.as_ref().and_then(|x| x.port.as_ref()))
        {
            if !(1..=65535).contains(p.get_ref()) {
                push(Err(cx.at(
                    p.span(),
                    format!("port {} is not in 1–65535", p.get_ref()),
                    None,
                )));
            }
        }
    }
    // Steps.
    let mut step_names = BTreeSet::new();
    for st in &s.steps {
        if !step_names.insert(st.name.get_ref().clone()) {
            push(Err(cx.at(
                st.name.span(),
                format!("step `{}` is defined twice", st.name.get_ref()),
                None,
            )));
        }
        push(crate::run::check_step(st, s, cx));
    }
}
