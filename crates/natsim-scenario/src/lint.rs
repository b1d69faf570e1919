//! Load-time lint: configurations that parse but would fail or mislead at
//! run time. Each finding is located and carries a hint. Errors stop the
//! load; warnings are reported (and are errors under `--deny-warnings`).

use crate::diag::{Ctx, Problem};
use crate::model::*;
use crate::schema::{Scenario, S};
use natsim_nat::{Prefix, Role};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

pub fn lint(s: &Scenario, m: &Model, cx: &Ctx<'_>) -> Vec<Problem> {
    let mut out = Vec::new();
    addresses(s, m, cx, &mut out);
    gateways(s, m, cx, &mut out);
    routers(s, m, cx, &mut out);
    forwards(s, m, cx, &mut out);
    out
}

/// Forwards that partly overlap an earlier one (iptables' first match
/// takes the shared ports; a full overlap is the engine's "can never
/// match" error), and forwards on an inside interface.
fn forwards(s: &Scenario, m: &Model, cx: &Ctx<'_>, out: &mut Vec<Problem>) {
    for (r, spec) in s.routers.iter().zip(&m.routers) {
        let Some(nat) = &r.nat else { continue };
        let first_outside = spec.interfaces.iter().find(|i| i.role == Role::Outside);
        let on = |f: &crate::schema::Forward| match &f.interface {
            Some(n) => spec.interfaces.iter().find(|i| i.name == *n.get_ref()),
            None => first_outside,
        };
        let ranges: Vec<_> = nat
            .forwards
            .iter()
            .map(|f| crate::lower::nat::forward_ports(f, cx).ok())
            .collect();
        for (j, b) in nat.forwards.iter().enumerate() {
            if let (Some(i), Some(n)) = (on(b), &b.interface) {
                if i.role == Role::Inside {
                    out.push(cx.warn(
                        n.span(),
                        format!(
                            "a forward on `{}`, an inside interface, catches connections to {} (the router's inside address), not ones from outside",
                            i.name, i.addr
                        ),
                        Some("name an outside interface, or leave `interface` out for the first one"),
                    ));
                }
            }
            let Some(pb) = ranges[j] else { continue };
            for (k, a) in nat.forwards[..j].iter().enumerate() {
                let Some(pa) = ranges[k] else { continue };
                let same = a.proto.get_ref() == b.proto.get_ref()
                    && on(a).map(|i| &i.name) == on(b).map(|i| &i.name)
                    && a.from.as_ref().map(S::get_ref) == b.from.as_ref().map(S::get_ref);
                let (lo, hi) = (pa.first.max(pb.first), pa.last.min(pb.last));
                let covered = pa.first <= pb.first && pb.last <= pa.last;
                if same && lo <= hi && !covered {
                    let (line, _) = crate::diag::line_col(cx.src, a.port.span().start);
                    let shared = if lo == hi {
                        format!("port {lo} of this forward is also in the forward at line {line}, which comes first: it goes")
                    } else {
                        format!("ports {lo}-{hi} of this forward are also in the forward at line {line}, which comes first: they go")
                    };
                    out.push(cx.warn(
                        b.port.span(),
                        format!("{shared} to {}", a.to.get_ref()),
                        Some("make the ranges disjoint, or order them so the one that should win comes first"),
                    ));
                }
            }
        }
    }
}

/// Two nodes with one address; a host outside the subnet its segment's
/// routers serve.
fn addresses(s: &Scenario, m: &Model, cx: &Ctx<'_>, out: &mut Vec<Problem>) {
    let mut owners: BTreeMap<Ipv4Addr, String> = BTreeMap::new();
    for r in &m.routers {
        for i in &r.interfaces {
            if let Some(prev) = owners.insert(i.addr, format!("router `{}`", r.name)) {
                out.push(cx.at(
                    i.span.clone(),
                    format!("{} is already {prev}'s address", i.addr),
                    Some("every interface and host needs its own address"),
                ));
            }
        }
    }
    for (k, h) in m.hosts.iter().enumerate() {
        let span = host_addr_span(s, k).unwrap_or(h.span.clone());
        if let Some(prev) = owners.insert(h.addr, format!("`{}`", h.name)) {
            out.push(cx.at(
                span.clone(),
                format!("{} is already {prev}'s address", h.addr),
                Some("every interface and host needs its own address"),
            ));
        }
        let served: Vec<Prefix> = m
            .routers
            .iter()
            .flat_map(|r| &r.interfaces)
            .filter(|i| i.segment == h.segment)
            .map(|i| Prefix::new(i.addr, i.len))
            .collect();
        if !served.is_empty() && !served.iter().any(|p| p.contains(h.addr)) {
            let nets: Vec<String> = served.iter().map(|p| p.to_string()).collect();
            out.push(cx.warn(
                span,
                format!(
                    "host `{}` ({}) is outside every subnet its segment's routers serve ({})",
                    h.name,
                    h.addr,
                    nets.join(", ")
                ),
                Some("give the host an address in the segment's subnet"),
            ));
        }
    }
}

/// The span of the `k`th plain host's address (groups come after them).
fn host_addr_span(s: &Scenario, k: usize) -> Option<std::ops::Range<usize>> {
    s.hosts.get(k).map(|h| h.address.span())
}

fn gateways(s: &Scenario, m: &Model, cx: &Ctx<'_>, out: &mut Vec<Problem>) {
    for (k, h) in m.hosts.iter().enumerate() {
        let Some(g) = h.gateway else { continue };
        let span = s
            .hosts
            .get(k)
            .and_then(|x| x.gateway.as_ref().map(S::span))
            .unwrap_or(h.span.clone());
        if g == h.addr {
            out.push(cx.at(
                span,
                format!("host `{}`'s gateway {g} is the host itself", h.name),
                Some("the gateway is the router's address on the host's network"),
            ));
            continue;
        }
        if !Prefix::new(h.addr, h.len).contains(g) {
            out.push(cx.at(
                span,
                format!(
                    "gateway {g} is outside host `{}`'s subnet {}/{}",
                    h.name, h.addr, h.len
                ),
                Some("a gateway must be on the host's own network"),
            ));
            continue;
        }
        let owned = m
            .routers
            .iter()
            .flat_map(|r| &r.interfaces)
            .any(|i| i.segment == h.segment && i.addr == g)
            || m.hosts
                .iter()
                .any(|o| o.segment == h.segment && o.addr == g);
        if !owned {
            // A warning: an unanswered ARP for the gateway is a case worth
            // teaching, not a file that cannot run.
            out.push(cx.warn(
                span,
                format!(
                    "no router or host on host `{}`'s segment has the gateway address {g}",
                    h.name
                ),
                Some("use the address of the router interface on the host's segment"),
            ));
        }
    }
}

fn routers(s: &Scenario, m: &Model, cx: &Ctx<'_>, out: &mut Vec<Problem>) {
    for (r, spec) in s.routers.iter().zip(&m.routers) {
        // Two different default routes.
        let defaults: Vec<&RouteSpec> = spec.routes.iter().filter(|x| x.to.len == 0).collect();
        if let [first, rest @ ..] = defaults.as_slice() {
            for d in rest.iter().filter(|d| d.via != first.via) {
                out.push(cx.at(
                    d.span.clone(),
                    format!(
                        "router `{}` has a second default route (via {}; the first is via {})",
                        spec.name, d.via, first.via
                    ),
                    Some("keep one default route; the engine cannot choose between them"),
                ));
            }
        }
        let Some(nat) = &r.nat else { continue };
        // Masquerade names an outside interface.
        for mq in &nat.masquerade {
            let name = mq.get_ref().split_whitespace().next().unwrap_or("");
            if let Some(i) = spec.interfaces.iter().find(|i| i.name == name) {
                if i.role == Role::Inside {
                    out.push(cx.warn(
                        mq.span(),
                        format!(
                            "masquerade on inside interface `{}` never runs: source NAT applies to traffic leaving an outside interface",
                            i.name
                        ),
                        Some("masquerade behind the outside interface; for hairpinning set nat.hairpin"),
                    ));
                }
            }
        }
        // Names are unique among forwards and one-to-one rules.
        let mut names: BTreeMap<&str, ()> = BTreeMap::new();
        let named = nat
            .forwards
            .iter()
            .filter_map(|f| f.name.as_ref())
            .chain(nat.one_to_one.iter().filter_map(|o| o.name.as_ref()));
        for n in named {
            if names.insert(n.get_ref(), ()).is_some() {
                out.push(cx.at(
                    n.span(),
                    format!(
                        "router `{}` has two rules named `{}`",
                        spec.name,
                        n.get_ref()
                    ),
                    Some("give each rule its own name: variants and traces refer to rules by name"),
                ));
            }
        }
        // Forwards go to a host on a connected subnet.
        let nets: Vec<Prefix> = spec
            .interfaces
            .iter()
            .map(|i| Prefix::new(i.addr, i.len))
            .collect();
        for f in &nat.forwards {
            let Ok(to) = f.to.get_ref().trim().parse::<Ipv4Addr>() else {
                continue;
            };
            if !nets.iter().any(|n| n.contains(to)) {
                out.push(cx.at(
                    f.to.span(),
                    format!(
                        "forward to {to}, which is outside every network router `{}` is connected to",
                        spec.name
                    ),
                    Some("forward to a host on one of the router's subnets"),
                ));
            } else if spec.interfaces.iter().any(|i| i.addr == to) {
                out.push(cx.warn(
                    f.to.span(),
                    format!(
                        "forward to {to}, router `{}`'s own address: the router itself gets the traffic, as with REDIRECT",
                        spec.name
                    ),
                    Some("forward to the inside host that serves it"),
                ));
            } else if !m.hosts.iter().any(|h| h.addr == to) {
                out.push(cx.warn(
                    f.to.span(),
                    format!("forward to {to}, which no host in the scenario has"),
                    Some("check the address, or add the host the forward serves"),
                ));
            }
        }
    }
}
