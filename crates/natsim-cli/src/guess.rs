//! `natsim verify --linux --rules FILE` without a scenario: the router's
//! interfaces, roles and addresses read off the ruleset itself, each with
//! the reason, so the user sees what was assumed before any probe runs.
//!
//! An interface is outside when source NAT leaves through it or a DNAT
//! comes in through it; every other named interface is inside. Addresses
//! come from the rules where they say something (a masqueraded source
//! prefix, a DNAT target, a DNAT destination or SNAT address), else from
//! the documentation ranges (RFC 5737 outside, RFC 1918 inside).

use natsim_import::Imported;
use natsim_linux::{IfaceSpec, RouterSpec};
use natsim_nat::{Action, Behaviour, Chain, IfaceId, NatConfig, Prefix, Role, Rule};
use std::net::Ipv4Addr;

/// One interface as guessed, and why.
pub struct Guessed {
    pub spec: IfaceSpec,
    pub why: String,
}

fn role_of(rules: &[Rule], k: usize) -> (Role, &'static str) {
    let id = Some(IfaceId(k as u16));
    let mut hairpin = false;
    for r in rules {
        let m = &r.matches;
        let leaves = m.out_iface == id && !m.not.out_iface;
        let enters = m.in_iface == id && !m.not.in_iface;
        match (&r.action, r.chain) {
            (Action::Masquerade { .. } | Action::Snat(_), Chain::Postrouting) if leaves => {
                if natsim_import::hairpin_rule(r) {
                    hairpin = true;
                } else if m.ct_dnat.is_none() {
                    return (Role::Outside, "source NAT leaves through it");
                }
            }
            (Action::Dnat { .. } | Action::Netmap { .. }, Chain::Prerouting) if enters => {
                if natsim_import::hairpin_rule(r) {
                    hairpin = true;
                } else {
                    return (Role::Outside, "a DNAT comes in through it");
                }
            }
            _ => {}
        }
    }
    if hairpin {
        return (
            Role::Inside,
            "only hairpin (reflection) NAT names it: clients inside reach a forward by the public address",
        );
    }
    (Role::Inside, "no source NAT leaves through it")
}

/// Whether a NAT rule names interface `k` as an inside one: source NAT
/// for traffic that comes in on it or leaves anywhere but it (`! -o
/// docker0`), a DNAT for traffic from anywhere but it, or hairpin NAT.
fn tied_inside(rules: &[Rule], k: usize) -> bool {
    let id = Some(IfaceId(k as u16));
    rules.iter().any(|r| {
        let m = &r.matches;
        let source_nat = matches!(r.action, Action::Masquerade { .. } | Action::Snat(_));
        let dnat = matches!(r.action, Action::Dnat { .. } | Action::Netmap { .. });
        (source_nat
            && ((m.in_iface == id && !m.not.in_iface) || (m.out_iface == id && m.not.out_iface)))
            || (dnat && m.in_iface == id && m.not.in_iface)
            || (natsim_import::hairpin_rule(r) && (m.in_iface == id || m.out_iface == id))
    })
}

/// The first usable host address of `p` that is not in `avoid`.
fn router_addr(p: Prefix, avoid: &[Ipv4Addr]) -> Option<Ipv4Addr> {
    let net = p.network();
    (1..p.size().saturating_sub(1))
        .map(|h| Ipv4Addr::from_bits(net + h as u32))
        .find(|a| !avoid.contains(a))
}

fn slash24(a: Ipv4Addr) -> Prefix {
    Prefix::new(Ipv4Addr::from_bits(a.to_bits() & 0xffff_ff00), 24)
}

/// The router `imp` describes (see [`router`]), and what was left out of
/// the ruleset to describe it.
pub fn router_with_notes(
    imp: &Imported,
) -> Result<(RouterSpec, Vec<Guessed>, Vec<String>), String> {
    let mut imp = imp.clone();
    // What the import itself left out or did not apply comes first.
    let mut notes = imp.notes.clone();
    let dropped = imp.without_loopback();
    if dropped > 0 {
        notes.push(format!(
            "{dropped} rule(s) on `lo` left out: they match only the router's traffic to itself, which no probe sends"
        ));
    }
    let (spec, guessed) = router(&imp)?;
    Ok((spec, guessed, notes))
}

/// The router `imp` describes, with every interface it names (plus an
/// uplink or LAN it implies but does not name).
pub fn router(imp: &Imported) -> Result<(RouterSpec, Vec<Guessed>), String> {
    let rules = &imp.rules.rules;
    // A wildcard (`ppp+`, `"wg*"`) stands for one interface of its kind.
    let mut names: Vec<String> = Vec::new();
    for n in &imp.ifaces {
        names.push(match natsim_import::bind::wildcard_stem(n) {
            Some(stem) => {
                let stem = if stem.is_empty() { "eth" } else { stem };
                (0..)
                    .map(|i| format!("{stem}{i}"))
                    .find(|c| !imp.ifaces.contains(c) && !names.contains(c))
                    .unwrap_or_default()
            }
            None => n.clone(),
        });
    }
    let mut roles: Vec<(Role, String)> = (0..names.len())
        .map(|k| {
            let (r, why) = role_of(rules, k);
            let why = match natsim_import::bind::wildcard_stem(&imp.ifaces[k]) {
                Some(_) => format!("{why} (one interface `{}` matches)", imp.ifaces[k]),
                None => why.to_string(),
            };
            (r, why)
        })
        .collect();
    let free_name = |names: &[String], want: &[&str]| {
        want.iter()
            .map(|s| s.to_string())
            .find(|n| !names.contains(n))
            .unwrap_or_else(|| format!("if{}", names.len()))
    };
    // The uplink a `! -o` source NAT implies: the one named interface no
    // NAT rule ties to the inside (Docker's eth0, named only by a
    // DOCKER-USER filter rule), else a new one.
    let untied: Vec<usize> = (0..names.len())
        .filter(|&k| !tied_inside(rules, k))
        .collect();
    if !roles.iter().any(|(r, _)| *r == Role::Outside) && untied.len() == 1 {
        roles[untied[0]] = (
            Role::Outside,
            "the uplink the rules imply (`! -o`): the one interface no NAT rule ties to the inside"
                .into(),
        );
    }
    if !roles.iter().any(|(r, _)| *r == Role::Outside) {
        let n = free_name(&names, &["wan0", "eth0", "uplink0"]);
        names.push(n);
        roles.push((
            Role::Outside,
            "the uplink the rules imply (`! -o`) but do not name".into(),
        ));
    }
    if !roles.iter().any(|(r, _)| *r == Role::Inside) {
        let n = free_name(&names, &["lan0", "eth1", "inside0"]);
        names.push(n);
        roles.push((Role::Inside, "a LAN the rules do not name".into()));
    }
    let targets: Vec<Ipv4Addr> = rules
        .iter()
        .filter_map(|r| match &r.action {
            Action::Dnat { to, .. } => Some(*to),
            _ => None,
        })
        .collect();
    let inside: Vec<usize> = (0..names.len())
        .filter(|&k| roles[k].0 == Role::Inside)
        .collect();
    let mut prefixes: Vec<Option<(Prefix, String)>> = vec![None; names.len()];
    // A masqueraded or SNATed source prefix is an inside network: on the
    // interface it comes in on, or the one `! -o` excludes, or the first
    // inside interface still without one.
    for r in rules {
        let Some(src) = r.matches.src else { continue };
        if !matches!(r.action, Action::Masquerade { .. } | Action::Snat(_))
            || !(8..=30).contains(&src.len)
        {
            continue;
        }
        let named = r
            .matches
            .in_iface
            .filter(|_| !r.matches.not.in_iface)
            .or(r.matches.out_iface.filter(|_| r.matches.not.out_iface))
            // A hairpin SNAT leaves through the network it comes from.
            .or(r
                .matches
                .out_iface
                .filter(|_| natsim_import::hairpin_rule(r)))
            .map(|i| usize::from(i.0))
            .filter(|k| inside.contains(k));
        let k = named.or_else(|| inside.iter().copied().find(|&k| prefixes[k].is_none()));
        if let Some(k) = k {
            if prefixes[k].is_none() {
                prefixes[k] = Some((
                    Prefix::new(Ipv4Addr::from_bits(src.network()), src.len),
                    format!("source NAT of {src}"),
                ));
            }
        }
    }
    // A DNAT target outside every inside prefix so far: its /24.
    for t in &targets {
        if prefixes.iter().flatten().any(|(p, _)| p.contains(*t)) {
            continue;
        }
        if let Some(&k) = inside.iter().find(|&&k| prefixes[k].is_none()) {
            prefixes[k] = Some((slash24(*t), format!("DNAT target {t}")));
        }
    }
    let mut next_lan = 1u8;
    let mut next_wan = 1u8;
    let mut out = Vec::new();
    for (k, name) in names.iter().enumerate() {
        let role = roles[k].0;
        let mut own = None;
        let (prefix, from) = match (&prefixes[k], role) {
            (Some((p, why)), _) => (*p, why.clone()),
            (None, Role::Inside) => loop {
                let p = Prefix::new(Ipv4Addr::new(192, 168, next_lan, 0), 24);
                next_lan = next_lan.wrapping_add(1);
                if !prefixes.iter().flatten().any(|(q, _)| q.overlaps(p)) {
                    break (
                        p,
                        "a private /24 (RFC 1918): the rules name no network".into(),
                    );
                }
            },
            (None, Role::Outside) => {
                // The /24 of an address the rules translate to or from on
                // this side, else a documentation /24 (RFC 5737). A port
                // forward's destination is the address it is published
                // on, the router's own: the router takes it, so the
                // outside can reach it by ARP. (A hairpin SNAT's address
                // is the router's inside one; a hairpin DNAT's
                // destination is still the public one.)
                let hint = rules.iter().find_map(|r| match (&r.action, r.chain) {
                    (Action::Snat(p), _) if !natsim_import::hairpin_rule(r) => {
                        Some((p.first, false))
                    }
                    // (Docker publishes `-p 127.0.0.1:5432` as a DNAT
                    // from loopback: no uplink's address.)
                    (Action::Dnat { .. }, Chain::Prerouting) => r
                        .matches
                        .dst
                        .filter(|d| {
                            d.len == 32 && !d.addr.is_loopback() && !d.addr.is_unspecified()
                        })
                        .map(|d| (d.addr, r.matches.dst_ports.is_some())),
                    _ => None,
                });
                match hint {
                    Some((a, published)) if next_wan == 1 => {
                        next_wan += 1;
                        if published {
                            own = Some(a);
                            (
                                slash24(a),
                                format!("{a}, where the rules publish a port forward"),
                            )
                        } else {
                            (
                                slash24(a),
                                format!("the /24 of {a}, which the rules translate"),
                            )
                        }
                    }
                    _ => {
                        let p = Prefix::new(Ipv4Addr::new(203, 0, 113, 0), 24);
                        let p = Prefix::new(
                            Ipv4Addr::from_bits(p.network() + u32::from(next_wan - 1) * 256),
                            24,
                        );
                        next_wan += 1;
                        (p, "a documentation /24 (RFC 5737)".into())
                    }
                }
            }
        };
        let addr = own
            .or_else(|| router_addr(prefix, &targets))
            .ok_or_else(|| format!("no address for `{name}` in {prefix}"))?;
        out.push(Guessed {
            spec: IfaceSpec {
                name: name.clone(),
                addr,
                prefix_len: prefix.len,
                role,
            },
            why: format!("{}; address: {from}", roles[k].1),
        });
    }
    let mut nat = NatConfig::new(Behaviour::linux());
    for (k, g) in out.iter().enumerate() {
        nat = nat.interface(
            IfaceId(k as u16),
            g.spec.addr,
            g.spec.prefix_len,
            g.spec.role,
        );
    }
    let mut bound = imp.clone();
    bound
        .bind(&names)
        .map_err(|u| format!("interface `{}` could not be placed", u.name))?;
    nat.rules = bound.rules;
    nat.filter = bound.filter;
    let spec = RouterSpec {
        name: "rules".into(),
        ifaces: out.iter().map(|g| g.spec.clone()).collect(),
        nat,
    };
    Ok((spec, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guess(src: &str) -> Vec<(String, String, Role)> {
        let imp = natsim_import::import("t.rules", src, None).unwrap();
        let (_, g) = router(&imp).unwrap();
        g.into_iter()
            .map(|g| {
                (
                    g.spec.name,
                    format!("{}/{}", g.spec.addr, g.spec.prefix_len),
                    g.spec.role,
                )
            })
            .collect()
    }

    #[test]
    fn a_home_router_gets_its_lan_from_the_dnat_target_and_its_wan_from_the_dnat_address() {
        let g = guess("*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A PREROUTING -d 203.0.113.7/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 192.168.1.10:80\n-A POSTROUTING -o wan0 -j MASQUERADE\nCOMMIT\n");
        assert_eq!(
            g,
            [
                ("wan0".into(), "203.0.113.7/24".into(), Role::Outside),
                ("lan0".into(), "192.168.1.1/24".into(), Role::Inside),
            ]
        );
    }

    #[test]
    fn a_docker_host_gets_its_bridge_from_the_masqueraded_prefix_and_an_unnamed_uplink() {
        let g = guess("*nat\n:POSTROUTING ACCEPT [0:0]\n:PREROUTING ACCEPT [0:0]\n-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE\n-A PREROUTING ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80\nCOMMIT\n");
        assert_eq!(
            g,
            [
                ("docker0".into(), "172.17.0.1/16".into(), Role::Inside),
                ("wan0".into(), "203.0.113.1/24".into(), Role::Outside),
            ]
        );
    }

    /// Docker's uplink is named only by a DOCKER-USER filter rule: it is
    /// the uplink the `! -o docker0` masquerade implies, not an inside
    /// network beside a made-up wan0 (which left the rule's source
    /// restriction unprobed while verify said every probe agreed).
    #[test]
    fn a_docker_host_takes_the_one_untied_interface_as_its_uplink() {
        let g = guess("*nat\n:POSTROUTING ACCEPT [0:0]\n:PREROUTING ACCEPT [0:0]\n-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE\n-A PREROUTING ! -i docker0 -p tcp -m tcp --dport 5432 -j DNAT --to-destination 172.17.0.2:5432\nCOMMIT\n*filter\n:FORWARD DROP [0:0]\n:DOCKER-USER - [0:0]\n-A FORWARD -j DOCKER-USER\n-A FORWARD -o docker0 -j ACCEPT\n-A DOCKER-USER -i eth0 ! -s 198.51.100.0/24 -p tcp -m tcp --dport 5432 -j DROP\n-A DOCKER-USER -j RETURN\nCOMMIT\n");
        assert_eq!(
            g,
            [
                ("docker0".into(), "172.17.0.1/16".into(), Role::Inside),
                ("eth0".into(), "203.0.113.1/24".into(), Role::Outside),
            ]
        );
    }

    /// OpenWrt's fw3 writes a port forward as a WAN DNAT plus a
    /// "(reflection)" DNAT and SNAT on the LAN bridge, so clients inside
    /// reach it by the public address. Those make the LAN no uplink.
    #[test]
    fn openwrt_reflection_rules_leave_the_lan_inside() {
        let g = guess(concat!(
            "*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n",
            ":zone_lan_postrouting - [0:0]\n:zone_lan_prerouting - [0:0]\n",
            ":zone_wan_postrouting - [0:0]\n:zone_wan_prerouting - [0:0]\n",
            "-A PREROUTING -i br-lan -j zone_lan_prerouting\n",
            "-A PREROUTING -i eth0.2 -j zone_wan_prerouting\n",
            "-A POSTROUTING -o br-lan -j zone_lan_postrouting\n",
            "-A POSTROUTING -o eth0.2 -j zone_wan_postrouting\n",
            "-A zone_lan_postrouting -s 192.168.1.0/24 -d 192.168.1.100/32 -p tcp -m tcp --dport 22 -m comment --comment \"!fw3: ssh (reflection)\" -j SNAT --to-source 192.168.1.1\n",
            "-A zone_lan_prerouting -s 192.168.1.0/24 -d 198.51.100.7/32 -p tcp -m tcp --dport 2222 -m comment --comment \"!fw3: ssh (reflection)\" -j DNAT --to-destination 192.168.1.100:22\n",
            "-A zone_wan_postrouting -j MASQUERADE\n",
            "-A zone_wan_prerouting -p tcp -m tcp --dport 2222 -j DNAT --to-destination 192.168.1.100:22\n",
            "COMMIT\n"
        ));
        assert_eq!(
            g,
            [
                ("br-lan".into(), "192.168.1.1/24".into(), Role::Inside),
                ("eth0.2".into(), "198.51.100.7/24".into(), Role::Outside),
            ]
        );
    }

    /// UFW accepts everything on `lo`: that rule is the router talking to
    /// itself, not an interface to probe (verify refused `lo` outright).
    #[test]
    fn rules_on_loopback_are_left_out_and_lo_is_no_interface() {
        let imp = natsim_import::import(
            "t.rules",
            concat!(
                "*nat\n:POSTROUTING ACCEPT [0:0]\n",
                "-A POSTROUTING -s 10.10.0.0/24 -o enp1s0 -j MASQUERADE\nCOMMIT\n",
                "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n",
                "-A INPUT -i lo -j ACCEPT\n-A INPUT -i enp2s0 -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n"
            ),
            None,
        )
        .unwrap();
        let (spec, g, notes) = router_with_notes(&imp).unwrap();
        let names: Vec<&str> = g.iter().map(|g| g.spec.name.as_str()).collect();
        assert_eq!(names, ["enp1s0", "enp2s0"]);
        assert_eq!(spec.nat.filter.input.rules.len(), 1);
        assert!(
            notes[0].starts_with("1 rule(s) on `lo` left out"),
            "{notes:?}"
        );
    }

    /// Docker's `-p 127.0.0.1:5432:5432` is a DNAT from loopback; it names
    /// no uplink address.
    #[test]
    fn a_loopback_publish_is_no_uplink_address() {
        let g = guess("*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -s 172.18.0.0/16 ! -o br-x -j MASQUERADE\n-A PREROUTING -d 127.0.0.1/32 ! -i br-x -p tcp -m tcp --dport 5432 -j DNAT --to-destination 172.18.0.5:5432\nCOMMIT\n");
        assert!(g.iter().all(|(_, a, _)| !a.starts_with("127.")), "{g:?}");
    }
}
