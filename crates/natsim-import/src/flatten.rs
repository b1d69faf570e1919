//! Chains as read, and their flattening into the engine's two ordered NAT
//! chains and the two filter chains.
//!
//! A jump to a user chain inlines that chain's rules with the jump's
//! matches added. A `RETURN` with matches decides its packets on the spot:
//! the rest of each calling chain follows under its match, then the base
//! chain's end (nat: no translation; filter: the policy), so the rules
//! after it are left as written (`-A DOCKER -i docker0 -j RETURN` becomes
//! `-i docker0 -> ACCEPT (no NAT)` where the DOCKER chain was jumped to
//! last). An unconditional `RETURN` ends the chain. Two matches on the
//! same field are intersected; a contradiction (`-o docker0` under
//! `! -o docker0`) makes the rule unreachable, which is then left out
//! because it can never match, not because it is unsupported.

use crate::ipset::Sets;
use crate::{FilterAction, ImportError, Loc};
use natsim_nat::{Action, IcmpType, IfaceId, Match, Prefix, TcpFlagsMatch};
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
    /// Matches that hold if any one of each list does (`-m multiport
    /// --dports 80,443`): one rule per alternative, as for sets.
    pub any_of: Vec<Vec<Match>>,
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

/// [`merge_opt`] for ICMP types, where a type holds each of its codes.
fn merge_icmp(
    a: Option<IcmpType>,
    an: bool,
    b: Option<IcmpType>,
    bn: bool,
) -> Result<Option<(Option<IcmpType>, bool)>, &'static str> {
    match (a, b) {
        (Some(x), Some(y)) if x != y && x.ty == y.ty && (x.code.is_none() || y.code.is_none()) => {
            let (wide, narrow, wn, nn) = if x.code.is_none() {
                (x, y, an, bn)
            } else {
                (y, x, bn, an)
            };
            match (wn, nn) {
                (false, false) => Ok(Some((Some(narrow), false))),
                (true, false) => Ok(None),
                (true, true) => Ok(Some((Some(wide), true))),
                (false, true) => Err("an ICMP type and a negated code of it"),
            }
        }
        _ => merge_opt(a, an, b, bn),
    }
}

/// [`merge_opt`] for TCP flag matches: two positive masks hold together
/// when they agree on the flags both look at.
fn merge_flags(
    a: Option<TcpFlagsMatch>,
    an: bool,
    b: Option<TcpFlagsMatch>,
    bn: bool,
) -> Result<Option<(Option<TcpFlagsMatch>, bool)>, &'static str> {
    match (a, b, an, bn) {
        (Some(x), Some(y), false, false) if x != y => {
            let both = x.mask & y.mask;
            if x.comp & both != y.comp & both {
                return Ok(None);
            }
            Ok(Some((
                Some(TcpFlagsMatch {
                    mask: x.mask | y.mask,
                    comp: x.comp | y.comp,
                }),
                false,
            )))
        }
        _ => merge_opt(a, an, b, bn),
    }
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
    field!(icmp_type, merge_icmp);
    field!(tcp_flags, merge_flags);
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

struct Ctx<'a> {
    file: &'a str,
    table: &'a RawTable,
    sets: &'a Sets,
    /// What a packet that falls off the base chain gets: the nat table's
    /// implicit accept (no translation) or the filter base chain's policy.
    end: Target,
}

/// Where a packet that returns from a chain carries on: the rule after
/// the jump in the calling chain (innermost caller last).
#[derive(Clone, Copy)]
struct Resume<'a> {
    chain: &'a str,
    next: usize,
}

/// More flattened rules than this is an error, not a slow import: each
/// conditional RETURN copies the rest of its callers (see [`Ctx::returns`]).
const MAX_FLAT: usize = 20_000;

impl<'a> Ctx<'a> {
    fn err(&self, r: &RawRule, message: String, supported: &'static str) -> ImportError {
        ImportError {
            file: self.file.to_string(),
            loc: r.loc.clone(),
            text: r.text.clone(),
            message,
            supported,
        }
    }

    fn push(
        &self,
        r: &RawRule,
        rule: FlatRule,
        out: &mut Vec<FlatRule>,
    ) -> Result<(), ImportError> {
        if out.len() >= MAX_FLAT {
            return Err(self.err(
                r,
                format!("flattening makes more than {MAX_FLAT} rules"),
                "fewer conditional RETURNs in chains that many rules follow",
            ));
        }
        out.push(rule);
        Ok(())
    }

    /// `r`'s match under `cond`, one variant per member of each set it
    /// names (first match wins, so consecutive copies with the same verdict
    /// are equivalent); none if nothing can match both.
    fn variants(&self, r: &RawRule, cond: &Match) -> Result<Vec<Match>, ImportError> {
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
        for alternatives in &r.any_of {
            let mut next = Vec::new();
            for v in &variants {
                for alt in alternatives {
                    if let Some(x) =
                        merge(v, alt).map_err(|e| self.err(r, e.into(), SUPPORTED_COMBINE))?
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
                merge(cond, &v).map_err(|e| self.err(r, e.into(), SUPPORTED_COMBINE))?
            {
                matched.push(m);
            }
        }
        Ok(matched)
    }

    /// Flattens chain `name` from rule `start` for packets matching `cond`,
    /// called from `callers`.
    fn chain(
        &self,
        name: &'a str,
        start: usize,
        cond: &Match,
        callers: &[Resume<'a>],
        out: &mut Vec<FlatRule>,
    ) -> Result<(), ImportError> {
        let Some(chain) = self.table.get(name) else {
            return Ok(());
        };
        for (i, r) in chain.rules.iter().enumerate().skip(start) {
            if r.target == Target::Return && r.m == Match::default() && r.sets.is_empty() {
                return Ok(());
            }
            let matched = self.variants(r, cond)?;
            match &r.target {
                Target::Jump(c) => {
                    if callers.len() >= 16 {
                        return Err(self.err(
                            r,
                            format!("jumps nest deeper than 16 chains at `{c}`"),
                            "jump chains without loops",
                        ));
                    }
                    let Some((c, _)) = self.table.get_key_value(c) else {
                        return Err(self.err(r, format!("chain `{c}` is not defined"), "jumps to chains declared with `:NAME - [0:0]` (iptables) or a chain object (nft)"));
                    };
                    let mut inner = callers.to_vec();
                    inner.push(Resume {
                        chain: name,
                        next: i + 1,
                    });
                    for m in &matched {
                        self.chain(c, 0, m, &inner, out)?;
                    }
                }
                Target::Return => {
                    for m in &matched {
                        self.returns(r, m, callers, out)?;
                    }
                }
                t => {
                    for m in matched {
                        let rule = FlatRule {
                            loc: r.loc.clone(),
                            text: r.text.clone(),
                            name: r.name.clone(),
                            m,
                            target: t.clone(),
                        };
                        self.push(r, rule, out)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// A conditional RETURN (`r`, matching `m`): packets matching `m` are
    /// decided here, in full, by the rest of each caller and then the base
    /// chain's end, so the rules after the RETURN need no negation of `m`.
    /// Folding `! m` into them instead cannot say "neither docker0 nor
    /// br-x", which Docker's DOCKER chain needs with a second bridge.
    fn returns(
        &self,
        r: &RawRule,
        m: &Match,
        callers: &[Resume<'a>],
        out: &mut Vec<FlatRule>,
    ) -> Result<(), ImportError> {
        for k in (0..callers.len()).rev() {
            let at = callers[k];
            self.chain(at.chain, at.next, m, &callers[..k], out)?;
        }
        let end = FlatRule {
            loc: r.loc.clone(),
            text: r.text.clone(),
            name: r.name.clone(),
            m: m.clone(),
            target: self.end.clone(),
        };
        self.push(r, end, out)
    }
}

const SUPPORTED_COMBINE: &str =
    "one value per match, or one positive and one negated value, along a jump";

/// Flattens base chain `base` of `table`.
pub fn flatten(
    file: &str,
    table: &RawTable,
    base: &str,
    sets: &Sets,
) -> Result<Vec<FlatRule>, ImportError> {
    let end = match table.get(base).and_then(|c| c.policy) {
        Some(p) => Target::Filter(p),
        None => Target::Filter(FilterAction::Accept),
    };
    let cx = Ctx {
        file,
        table,
        sets,
        end,
    };
    let mut out = Vec::new();
    cx.chain(base, 0, &Match::default(), &[], &mut out)?;
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

/// The tables an import read: iptables' (or nft's equivalents).
pub struct Tables {
    pub nat: RawTable,
    pub filter: RawTable,
    /// The raw table (its PREROUTING runs before conntrack and NAT).
    pub raw: RawTable,
}

/// Assembles flattened chains into an [`crate::Imported`].
pub fn assemble(
    file: &str,
    tables: &Tables,
    sets: &Sets,
    ifaces: Ifaces,
    mut notes: Vec<String>,
) -> Result<crate::Imported, ImportError> {
    use natsim_nat::{Chain, Rule};
    let (nat, filter) = (&tables.nat, &tables.filter);
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
            let rule = Rule {
                name,
                chain,
                matches: f.m,
                action,
            };
            // A rule an earlier one covers never runs in the kernel
            // either (a rule added twice, firewalld's `jump` then
            // `return` on one match): left out, and said.
            imp.rules.rules.push(rule);
            if let Some(by) = imp.rules.shadowed_by(imp.rules.rules.len() - 1) {
                imp.rules.rules.pop();
                let by = imp.rules.rules[by].name.clone();
                notes.push(format!(
                    "{file}:{}: left out: `{}` can never match: `{by}` before it matches everything it would",
                    f.loc.line, f.text
                ));
                imp.covered.push(crate::Covered {
                    loc: f.loc.clone(),
                    text: f.text.clone(),
                    by,
                });
            }
        }
    }
    for (table, base, slot) in [
        (filter, "INPUT", 0),
        (filter, "FORWARD", 1),
        (&tables.raw, "PREROUTING", 2),
    ] {
        let Some(raw) = table.get(base) else {
            continue;
        };
        let mut chain = crate::FilterChain {
            policy: raw.policy.unwrap_or(FilterAction::Accept),
            rules: Vec::new(),
        };
        for f in flatten(file, table, base, sets)? {
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
        match slot {
            0 => imp.filter.input = chain,
            1 => imp.filter.forward = chain,
            _ => imp.filter.raw = chain,
        }
    }
    for (t, name) in [(nat, "nat"), (filter, "filter"), (&tables.raw, "raw")] {
        for (c, ch) in t {
            if !ch.rules.is_empty() && matches!(c.as_str(), "OUTPUT" | "INPUT") && name == "nat" {
                notes.push(format!(
                    "{name} {c}: {} rule(s) for traffic the router itself sends or receives; natsim's router originates none, so they are not applied",
                    ch.rules.len()
                ));
            }
            if !ch.rules.is_empty() && c == "OUTPUT" && name != "nat" {
                notes.push(format!(
                    "{name} OUTPUT: {} rule(s) for traffic the router itself sends; not applied",
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
