//! `nft -j list ruleset` JSON, through the `nftables` crate's types.
//!
//! Chains of type `nat` hooked at prerouting/postrouting and of type
//! `filter` hooked at input/forward in `ip` or `inet` tables are read;
//! their rules' statements map to the same model as iptables-save's:
//! `meta l4proto`, `iifname`/`oifname`, `ip saddr`/`daddr`, `tcp|udp
//! dport|sport`, `fib daddr type local`, `ct state`, `ct status dnat`
//! (each `==` or `!=`), `counter` and `log` (ignored: they decide nothing),
//! and the verdicts `dnat`, `snat`, `masquerade`, `redirect`, `accept`,
//! `drop`, `reject`, `jump`, `return`. A rule that can never match IPv4
//! (`meta nfproto ipv6`, `ip6 …`, `icmpv6 …`) or has no verdict is left
//! out, and the import's notes count them. A JSON document has no lines to point at:
//! errors name the rule as `line` = its position in the `nftables` array
//! (1-based) and `col` = the statement's position in the rule.

use crate::flatten::{assemble, Ifaces, RawChain, RawTable};
use crate::ipset::Sets;
use crate::{FilterAction, ImportError, Imported, Loc};
use nftables::schema::{NfListObject, NfObject, Nftables};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use rule::{Read, Reader, Skip};

mod expr;
mod matches;
mod rule;

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
        limited: Default::default(),
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
                // A route chain re-routes what the router itself sends
                // (fw4's empty `mangle_output`): not applied, as OUTPUT.
                (Some(NfChainType::Route), Some(NfHook::Output)) => Some(("filter", "OUTPUT")),
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
    let mut skipped: Vec<Skip> = Vec::new();
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
                    Ok(Read::Rules(raws)) => {
                        if let Some(c) = slot.get_mut(&key) {
                            c.rules.extend(raws);
                            placed = true;
                        }
                    }
                    Ok(Read::Skip(why)) => {
                        if !placed {
                            skipped.push(why);
                        }
                        placed = true;
                        break;
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
    let mut notes = Vec::new();
    for (why, what) in [
        (Skip::Ipv6, "match only IPv6 packets; natsim models IPv4"),
        (
            Skip::NoVerdict,
            "only count or log (no verdict), which changes no packet's fate",
        ),
        (
            Skip::OverLimit,
            "match only above a rate (`limit rate over`), which natsim's traffic never exceeds",
        ),
    ] {
        let n = skipped.iter().filter(|s| **s == why).count();
        if n > 0 {
            notes.push(format!("{n} rule(s) left out: they {what}"));
        }
    }
    if !r.limited.is_empty() {
        notes.push(format!(
            "{} rule(s) with `limit rate` taken as under the limit: natsim does not model packet rates",
            r.limited.len()
        ));
    }
    let tables = crate::flatten::Tables {
        nat,
        filter,
        raw: RawTable::new(),
    };
    assemble(file, &tables, sets, r.ifaces, notes)
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
