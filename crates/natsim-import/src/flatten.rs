//! Chains as read, and their flattening into the engine's two ordered NAT
//! chains and the two filter chains.
//!
//! A jump to a user chain inlines that chain's rules with the jump's
//! matches added; a `RETURN` with one match adds its negation to the rest
//! of its chain (`-A DOCKER -i docker0 -j RETURN` makes every later DOCKER
//! rule `! -i docker0`); an unconditional `RETURN` ends the chain. Two
//! matches on the same field are intersected; a contradiction (`-o docker0`
//! under `! -o docker0`) makes the rule unreachable, which is then left
//! out because it can never match, not because it is unsupported.

use crate::ipset::Sets;
use crate::{FilterAction, ImportError, Loc};
use natsim_nat::{Action, IfaceId, Match, Prefix};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Nat(Action),
    Filter(FilterAction),
    Jump(String),
    Return,
}

/// `-m set --match-set NAME src|dst`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetRef {
    pub name: String,
    pub src: bool,
    pub loc: Loc,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawRule {
    pub loc: Loc,
    pub text: String,
    /// A `--comment` (iptables) or `comment` (nft), else none.
    pub name: Option<String>,
    pub m: Match,
    pub sets: Vec<SetRef>,
    pub target: Target,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawChain {
    /// Base chains have one (iptables `:FORWARD DROP`).
    pub policy: Option<FilterAction>,
    pub rules: Vec<RawRule>,
    pub loc: Loc,
}

pub type RawTable = BTreeMap<String, RawChain>;

/// A flattened rule: matches and a terminal verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlatRule {
    pub loc: Loc,
    pub text: String,
    pub name: Option<String>,
    pub m: Match,
    pub target: Target,
}

fn merge_opt<T: PartialEq + Copy>(
    a: Option<T>,
    an: bool,
    b: Option<T>,
    bn: bool,
) -> Result<Option<(Option<T>, bool)>, &'static str> {
    Ok(Some(match (a, b) {
        (None, _) => (b, bn),
        (_, None) => (a, an),
        (Some(x), Some(y)) => match (x == y, an, bn) {
            (true, p, q) if p == q => (a, an),
            (true, _, _) => return Ok(None),
            (false, false, false) => return Ok(None),
            // One positive, one negated other value: the positive implies
            // the negation.
            (false, false, true) => (a, false),
            (false, true, false) => (b, false),
            (false, true, true) => return Err("two different negated values of one match"),
        },
    }))
}

fn merge_prefix(
    a: Option<Prefix>,
    an: bool,
    b: Option<Prefix>,
    bn: bool,
) -> Result<Option<(Option<Prefix>, bool)>, &'static str> {
    match (a, b) {
        (Some(x), Some(y)) if !an && !bn => {
            if x.len >= y.len && y.contains(x.addr) {
                Ok(Some((a, false)))
            } else if y.len >= x.len && x.contains(y.addr) {
                Ok(Some((b, false)))
            } else {
                Ok(None)
            }
        }
        (Some(x), Some(y)) if an && bn && x != y => {
            Err("two different negated addresses in one rule")
        }
        (Some(x), Some(y)) if an != bn => {
            let (pos, neg) = if an { (y, x) } else { (x, y) };
            if neg.len <= pos.len && neg.contains(pos.addr) {
                Ok(None)
            } else if !pos.contains(neg.addr) && !neg.contains(pos.addr) {
                Ok(Some((Some(pos), false)))
            } else {
                Err("an address and a negated address that overlap")
            }
        }
        _ => merge_opt(a, an, b, bn),
    }
}

/// The conjunction of two matches: `Ok(None)` if nothing can match both.
pub fn merge(a: &Match, b: &Match) -> Result<Option<Match>, &'static str> {
    let mut m = Match::default();
    macro_rules! field {
        ($f:ident, $merge:ident) => {
            match $merge(a.$f, a.not.$f, b.$f, b.not.$f)? {
                None => return Ok(None),
                Some((v, n)) => {
                    m.$f = v;
                    m.not.$f = n;
                }
            }
        };
    }
    field!(proto, merge_opt);
    field!(in_iface, merge_opt);
    field!(out_iface, merge_opt);
    field!(src, merge_prefix);
    field!(dst, merge_prefix);
    field!(dst_ports, merge_opt);
    field!(src_ports, merge_opt);
    match merge_opt(
        a.dst_local.then_some(()),
        a.not.dst_local,
        b.dst_local.then_some(()),
        b.not.dst_local,
    )? {
        None => return Ok(None),
        Some((v, n)) => {
            m.dst_local = v.is_some();
            m.not.dst_local = n;
        }
    }
    m.dst_iface_addr = match (a.dst_iface_addr, b.dst_iface_addr) {
        (Some(x), Some(y)) if x != y => return Ok(None),
        (x, y) => x.or(y),
    };
    m.ct_dnat = match (a.ct_dnat, b.ct_dnat) {
        (Some(x), Some(y)) if x != y => return Ok(None),
        (x, y) => x.or(y),
    };
    m.ct_state = match (a.ct_state, b.ct_state) {
        (Some(x), Some(y)) => {
            let both = natsim_nat::CtStates(x.0 & y.0);
            if both.0 == 0 {
                return Ok(None);
            }
            Some(both)
        }
        (x, y) => x.or(y),
    };
    Ok(Some(m))
}

/// `m` negated, when `m` is a single negatable match.
fn negate(m: &Match) -> Option<Match> {
    let mut n = m.clone();
    let mut count = 0;
    macro_rules! flip {
        ($f:ident) => {
            if m.$f.is_some() {
                count += 1;
                n.not.$f = !m.not.$f;
            }
        };
    }
    flip!(proto);
    flip!(in_iface);
    flip!(out_iface);
    flip!(src);
    flip!(dst);
    flip!(dst_ports);
    flip!(src_ports);
    if m.dst_local {
        count += 1;
        n.not.dst_local = !m.not.dst_local;
    }
    let others = m.dst_iface_addr.is_some() || m.ct_dnat.is_some() || m.ct_state.is_some();
    (count == 1 && !others).then_some(n)
}

struct Ctx<'a> {
    file: &'a str,
    table: &'a RawTable,
    sets: &'a Sets,
}

impl Ctx<'_> {
    fn err(&self, r: &RawRule, message: String, supported: &'static str) -> ImportError {
        ImportError {
            file: self.file.to_string(),
            loc: r.loc.clone(),
            text: r.text.clone(),
            message,
            supported,
        }
    }

    fn chain(
        &self,
        name: &str,
        cond: &Match,
        depth: usize,
        out: &mut Vec<FlatRule>,
    ) -> Result<(), ImportError> {
        let Some(chain) = self.table.get(name) else {
            return Ok(());
        };
        let mut cond = cond.clone();
        for r in &chain.rules {
            // Sets expand into one rule per member (first match wins, so
            // consecutive copies with the same verdict are equivalent).
            let mut variants = vec![r.m.clone()];
            for s in &r.sets {
                let members = self.sets.get(&s.name).ok_or_else(|| {
                    self.err(
                        r,
                        format!("ipset `{}` is not defined", s.name),
                        "sets from the `ipset save` file given with --ipsets (create NAME hash:net|hash:ip, add NAME PREFIX)",
                    )
                })?;
                let mut next = Vec::new();
                for v in &variants {
                    for p in members {
                        let mut m = Match::default();
                        if s.src {
                            m.src = Some(*p);
                        } else {
                            m.dst = Some(*p);
                        }
                        if let Some(x) =
                            merge(v, &m).map_err(|e| self.err(r, e.into(), SUPPORTED_COMBINE))?
                        {
                            next.push(x);
                        }
                    }
                }
                variants = next;
            }
            let mut matched = Vec::new();
            for v in variants {
                if let Some(m) =
                    merge(&cond, &v).map_err(|e| self.err(r, e.into(), SUPPORTED_COMBINE))?
                {
                    matched.push(m);
                }
            }
            match &r.target {
                Target::Jump(c) => {
                    if depth > 16 {
                        return Err(self.err(
                            r,
                            format!("jumps nest deeper than 16 chains at `{c}`"),
                            "jump chains without loops",
                        ));
                    }
                    if !self.table.contains_key(c) {
                        return Err(self.err(r, format!("chain `{c}` is not defined"), "jumps to chains declared with `:NAME - [0:0]` (iptables) or a chain object (nft)"));
                    }
                    for m in &matched {
                        self.chain(c, m, depth + 1, out)?;
                    }
                }
                Target::Return => {
                    if r.m == Match::default() && r.sets.is_empty() {
                        return Ok(());
                    }
                    if !r.sets.is_empty() {
                        return Err(self.err(r, "RETURN on a set match".into(), SUPPORTED_RETURN));
                    }
                    let neg = negate(&r.m).ok_or_else(|| {
                        self.err(
                            r,
                            "RETURN with more than one match".into(),
                            SUPPORTED_RETURN,
                        )
                    })?;
                    match merge(&cond, &neg)
                        .map_err(|e| self.err(r, e.into(), SUPPORTED_COMBINE))?
                    {
                        Some(c) => cond = c,
                        None => return Ok(()),
                    }
                }
                t => {
                    for m in matched {
                        out.push(FlatRule {
                            loc: r.loc.clone(),
                            text: r.text.clone(),
                            name: r.name.clone(),
                            m,
                            target: t.clone(),
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

const SUPPORTED_COMBINE: &str =
    "one value per match, or one positive and one negated value, along a jump";
const SUPPORTED_RETURN: &str =
    "RETURN without matches, or with a single match (-i, -o, -s, -d, -p, --dport, --sport, --dst-type)";

/// Flattens base chain `base` of `table`.
pub fn flatten(
    file: &str,
    table: &RawTable,
    base: &str,
    sets: &Sets,
) -> Result<Vec<FlatRule>, ImportError> {
    let cx = Ctx { file, table, sets };
    let mut out = Vec::new();
    cx.chain(base, &Match::default(), 0, &mut out)?;
    Ok(out)
}

/// An interface name table shared by the parsers.
#[derive(Default)]
pub struct Ifaces {
    pub names: Vec<String>,
    pub locs: Vec<Loc>,
}

impl Ifaces {
    pub fn id(&mut self, name: &str, loc: &Loc) -> IfaceId {
        match self.names.iter().position(|n| n == name) {
            Some(k) => IfaceId(k as u16),
            None => {
                self.names.push(name.to_string());
                self.locs.push(loc.clone());
                IfaceId((self.names.len() - 1) as u16)
            }
        }
    }
}

/// Assembles flattened chains into an [`crate::Imported`].
pub fn assemble(
    file: &str,
    nat: &RawTable,
    filter: &RawTable,
    sets: &Sets,
    ifaces: Ifaces,
    mut notes: Vec<String>,
) -> Result<crate::Imported, ImportError> {
    use natsim_nat::{Chain, Rule};
    let mut imp = crate::Imported::default();
    for (base, chain) in [
        ("PREROUTING", Chain::Prerouting),
        ("POSTROUTING", Chain::Postrouting),
    ] {
        for f in flatten(file, nat, base, sets)? {
            let action = match f.target {
                Target::Nat(a) => a,
                Target::Filter(FilterAction::Accept) => Action::Accept,
                _ => {
                    return Err(ImportError {
                        file: file.into(),
                        loc: f.loc,
                        text: f.text,
                        message: "a filter verdict in the nat table".into(),
                        supported: "DNAT, SNAT, MASQUERADE, REDIRECT, NETMAP, ACCEPT, RETURN and jumps in the nat table",
                    })
                }
            };
            let name = f
                .name
                .clone()
                .unwrap_or_else(|| format!("line {}", f.loc.line));
            imp.rules.push(Rule {
                name,
                chain,
                matches: f.m,
                action,
            });
        }
    }
    for (base, slot) in [("INPUT", 0), ("FORWARD", 1)] {
        let Some(raw) = filter.get(base) else {
            continue;
        };
        let mut chain = crate::FilterChain {
            policy: raw.policy.unwrap_or(FilterAction::Accept),
            rules: Vec::new(),
        };
        for f in flatten(file, filter, base, sets)? {
            let Target::Filter(action) = f.target else {
                return Err(ImportError {
                    file: file.into(),
                    loc: f.loc,
                    text: f.text,
                    message: "a NAT target in the filter table".into(),
                    supported: "ACCEPT, DROP, REJECT, RETURN and jumps in the filter table",
                });
            };
            let name = f
                .name
                .clone()
                .unwrap_or_else(|| format!("line {}", f.loc.line));
            chain.rules.push(crate::FilterRule {
                name,
                matches: f.m,
                action,
            });
        }
        if slot == 0 {
            imp.filter.input = chain;
        } else {
            imp.filter.forward = chain;
        }
    }
    for (t, name) in [(nat, "nat"), (filter, "filter")] {
        for (c, ch) in t {
            if !ch.rules.is_empty() && matches!(c.as_str(), "OUTPUT" | "INPUT") && name == "nat" {
                notes.push(format!(
                    "{name} {c}: {} rule(s) for traffic the router itself sends or receives; natsim's router originates none, so they are not applied",
                    ch.rules.len()
                ));
            }
            if !ch.rules.is_empty() && c == "OUTPUT" && name == "filter" {
                notes.push(format!(
                    "filter OUTPUT: {} rule(s) for traffic the router itself sends; not applied",
                    ch.rules.len()
                ));
            }
        }
    }
    imp.ifaces = ifaces.names;
    imp.iface_locs = ifaces.locs;
    imp.notes = notes;
    Ok(imp)
}
