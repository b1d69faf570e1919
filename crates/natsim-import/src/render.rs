//! The `[[router]]` block `natsim import` prints: the interfaces the
//! ruleset names, left for the user to bind to segments and addresses, and
//! `rules = "FILE"` loading the same file; the imported rules and filter as
//! comments, so the reader sees what natsim understood.

use crate::{FilterAction, Imported, RejectWith, Unreachable};
use natsim_nat::{Action, Chain, Match, Prefix};

fn iface(imp: &Imported, id: natsim_nat::IfaceId) -> String {
    imp.ifaces
        .get(usize::from(id.0))
        .cloned()
        .unwrap_or_else(|| id.to_string())
}

fn pfx(p: Prefix) -> String {
    if p.len == 32 {
        p.addr.to_string()
    } else {
        format!("{}/{}", std::net::Ipv4Addr::from_bits(p.network()), p.len)
    }
}

/// One match in iptables-like words.
pub fn describe_match(imp: &Imported, m: &Match) -> String {
    describe_match_with(&|id| iface(imp, id), m)
}

/// [`describe_match`] with interfaces named by `iface`.
pub fn describe_match_with(iface: &dyn Fn(natsim_nat::IfaceId) -> String, m: &Match) -> String {
    let mut w = Vec::new();
    let not = |b: bool| if b { "! " } else { "" };
    if let Some(p) = m.proto {
        w.push(format!("{}-p {p}", not(m.not.proto)));
    }
    if let Some(i) = m.in_iface {
        w.push(format!("{}-i {}", not(m.not.in_iface), iface(i)));
    }
    if let Some(i) = m.out_iface {
        w.push(format!("{}-o {}", not(m.not.out_iface), iface(i)));
    }
    if let Some(p) = m.src {
        w.push(format!("{}-s {}", not(m.not.src), pfx(p)));
    }
    if let Some(p) = m.dst {
        w.push(format!("{}-d {}", not(m.not.dst), pfx(p)));
    }
    if let Some(i) = m.dst_iface_addr {
        w.push(format!("-d (the address of {})", iface(i)));
    }
    if m.dst_local {
        w.push(format!("{}--dst-type LOCAL", not(m.not.dst_local)));
    }
    if let Some(r) = m.dst_ports {
        w.push(format!("{}--dport {}", not(m.not.dst_ports), r));
    }
    if let Some(r) = m.src_ports {
        w.push(format!("{}--sport {}", not(m.not.src_ports), r));
    }
    if let Some(t) = m.icmp_type {
        w.push(format!("{}--icmp-type {t}", not(m.not.icmp_type)));
    }
    if let Some(t) = m.tcp_flags {
        w.push(format!(
            "{}--tcp-flags {} {}",
            not(m.not.tcp_flags),
            natsim_nat::TcpFlagsMatch::names(t.mask),
            natsim_nat::TcpFlagsMatch::names(t.comp)
        ));
    }
    if let Some(s) = m.ct_state {
        w.push(format!("--ctstate {}", s.names().join(",")));
    }
    if let Some(d) = m.ct_dnat {
        w.push(format!("{}ct status dnat", not(!d)));
    }
    if w.is_empty() {
        "(all)".into()
    } else {
        w.join(" ")
    }
}

fn flag(f: natsim_nat::PortFlag) -> String {
    f.word().map(|w| format!(" {w}")).unwrap_or_default()
}

/// A NAT rule's action in iptables-like words.
pub fn action(a: &Action) -> String {
    match a {
        Action::Accept => "ACCEPT (no NAT)".into(),
        Action::Dnat { to, to_port } => match to_port {
            Some(p) => format!("DNAT to {to}:{p}"),
            None => format!("DNAT to {to}"),
        },
        Action::Redirect { to_port } => format!(
            "REDIRECT{}",
            to_port.map(|p| format!(" to {p}")).unwrap_or_default()
        ),
        Action::Masquerade { random, .. } => format!("MASQUERADE{}", flag(*random)),
        Action::Snat(p) if p.first == p.last => format!("SNAT to {}{}", p.first, flag(p.random)),
        Action::Snat(p) => format!("SNAT to {}-{}{}", p.first, p.last, flag(p.random)),
        Action::Netmap { to } => format!("NETMAP to {}", pfx(*to)),
    }
}

/// A filter verdict in iptables words.
pub fn verdict(a: FilterAction) -> &'static str {
    match a {
        FilterAction::Accept => "ACCEPT",
        FilterAction::Drop => "DROP",
        FilterAction::Reject(RejectWith::TcpReset) => "REJECT (tcp-reset)",
        FilterAction::Reject(RejectWith::Icmp(Unreachable::Port)) => "REJECT (port unreachable)",
        FilterAction::Reject(RejectWith::Icmp(Unreachable::Net)) => "REJECT (net unreachable)",
        FilterAction::Reject(RejectWith::Icmp(Unreachable::Host)) => "REJECT (host unreachable)",
        FilterAction::Reject(RejectWith::Icmp(Unreachable::Protocol)) => {
            "REJECT (protocol unreachable)"
        }
        FilterAction::Reject(RejectWith::Icmp(Unreachable::NetProhibited)) => {
            "REJECT (net prohibited)"
        }
        FilterAction::Reject(RejectWith::Icmp(Unreachable::HostProhibited)) => {
            "REJECT (host prohibited)"
        }
        FilterAction::Reject(RejectWith::Icmp(Unreachable::AdminProhibited)) => {
            "REJECT (admin prohibited)"
        }
    }
}

/// The block for a ruleset read from `rules_path`.
pub fn router_block(imp: &Imported, rules_path: &str, ipsets: Option<&str>) -> String {
    let mut o = String::new();
    o.push_str("[[router]]\nname = \"imported\"\n");
    o.push_str(
        "# Bind each interface to a segment; give it its address and role.\ninterfaces = [\n",
    );
    for (k, n) in imp.ifaces.iter().enumerate() {
        // Source NAT out of an interface marks it as the outside.
        // (A hairpin SNAT back into the LAN, OpenWrt's "reflection",
        // says nothing of the kind.)
        let outside = imp.rules.rules.iter().any(|r| {
            matches!(r.action, Action::Masquerade { .. } | Action::Snat(_))
                && r.matches.out_iface == Some(natsim_nat::IfaceId(k as u16))
                && !r.matches.not.out_iface
                && r.matches.ct_dnat.is_none()
                && !crate::hairpin_rule(r)
        });
        let role = if outside { "outside" } else { "inside" };
        if let Some(stem) = crate::bind::wildcard_stem(n) {
            o.push_str(&format!(
                "  # `{n}` matches every interface whose name starts with `{stem}`: name yours so\n"
            ));
        }
        let n = match crate::bind::wildcard_stem(n) {
            Some(stem) => format!("{}0", if stem.is_empty() { "eth" } else { stem }),
            None => n.clone(),
        };
        o.push_str(&format!(
            "  {{ name = \"{n}\", segment = \"SEGMENT\", address = \"ADDRESS/LEN\", role = \"{role}\" }},\n"
        ));
    }
    o.push_str(
        "  # and the interfaces the ruleset does not name (e.g. the uplink of `! -o` rules)\n]\n",
    );
    o.push_str(&format!("rules = \"{rules_path}\"\n"));
    if let Some(s) = ipsets {
        o.push_str(&format!("ipsets = \"{s}\"\n"));
    }
    o.push_str("[router.nat]\nprofile = \"linux\"\n");
    o.push_str(&format!(
        "# NAT rules ({}), first match wins in each chain:\n",
        imp.rules.rules.len()
    ));
    for r in &imp.rules.rules {
        let c = match r.chain {
            Chain::Prerouting => "prerouting",
            Chain::Postrouting => "postrouting",
        };
        o.push_str(&format!(
            "#   {c:<11} {} -> {}   [{}]\n",
            describe_match(imp, &r.matches),
            action(&r.action),
            r.name
        ));
    }
    for (name, chain) in [
        ("raw prerouting", &imp.filter.raw),
        ("filter input", &imp.filter.input),
        ("filter forward", &imp.filter.forward),
    ] {
        if name == "raw prerouting" && chain.is_open() {
            continue;
        }
        o.push_str(&format!(
            "# {name}: policy {}, {} rule(s)\n",
            verdict(chain.policy),
            chain.rules.len()
        ));
        for r in &chain.rules {
            o.push_str(&format!(
                "#   {} -> {}   [{}]\n",
                describe_match(imp, &r.matches),
                verdict(r.action),
                r.name
            ));
        }
    }
    for n in &imp.notes {
        o.push_str(&format!("# note: {n}\n"));
    }
    o
}
