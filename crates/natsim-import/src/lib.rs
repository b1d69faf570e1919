//! # natsim-import: your own ruleset as natsim rules
//!
//! Reads `iptables-save` output ([`iptables`]), `nft -j list ruleset`
//! JSON ([`nft`]) and `ipset save` files ([`ipset`]) into the engine's
//! rule model: the `nat` table's PREROUTING and POSTROUTING chains become
//! [`natsim_nat::RuleSet`] rules, the `filter` table's INPUT and FORWARD
//! chains a [`Filter`]. User chains (`-j CHAIN`, `RETURN`; Docker's
//! `DOCKER`, `DOCKER-USER`, `DOCKER-ISOLATION-*`) are inlined by
//! [`flatten`]. Interfaces are kept by name ([`Imported::ifaces`]); a
//! scenario binds them to its router's interfaces with [`Imported::bind`].
//!
//! Nothing is dropped silently: a match or target the model does not have
//! is an [`ImportError`] naming `file:line:col`, the rule's text and what
//! is supported. Rules that cannot apply to a router's forwarded traffic
//! (the nat table's OUTPUT and INPUT chains, for traffic the router itself
//! sends or receives) are listed in [`Imported::notes`].
#![deny(unsafe_code)]

pub mod bind;
pub mod flatten;
pub mod icmp_names;
pub mod ipset;
pub mod iptables;
pub mod nft;
pub mod render;

use natsim_nat::{IfaceId, Match, Rule, RuleSet};
use std::collections::BTreeMap;

/// Where something is in the input: 1-based line and column.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Loc {
    pub line: usize,
    pub col: usize,
}

/// An input the importer refuses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportError {
    pub file: String,
    pub loc: Loc,
    /// The rule (or line) as written.
    pub text: String,
    pub message: String,
    /// What is supported instead.
    pub supported: &'static str,
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}\n  rule: {}\n  supported: {}",
            self.file, self.loc.line, self.loc.col, self.message, self.text, self.supported
        )
    }
}

impl std::error::Error for ImportError {}

pub use natsim_nat::{Filter, FilterAction, FilterChain, FilterRule, RejectWith, Unreachable};

/// An imported ruleset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Imported {
    /// Interface names in order of first use; `IfaceId(k)` in the rules is
    /// `ifaces[k]`.
    pub ifaces: Vec<String>,
    /// Where each interface was first named.
    pub iface_locs: Vec<Loc>,
    pub rules: RuleSet,
    pub filter: Filter,
    /// Rules read but not applicable to forwarded traffic, and why.
    pub notes: Vec<String>,
    /// How many rules each kind of input gave (for the summary line).
    pub counts: BTreeMap<&'static str, usize>,
    /// NAT rules left out because an earlier rule covers them (each also
    /// in `notes`): a scenario warns about them, as about its own.
    pub covered: Vec<Covered>,
}

/// A NAT rule that can never match: `by`, before it, matches everything
/// it would.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Covered {
    pub loc: Loc,
    pub text: String,
    pub by: String,
}

/// An imported interface name the router does not have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnboundIface {
    pub name: String,
    pub loc: Loc,
}

fn remap_match(m: &mut Match, map: &[IfaceId]) {
    for i in [&mut m.in_iface, &mut m.out_iface, &mut m.dst_iface_addr]
        .into_iter()
        .flatten()
    {
        *i = map[usize::from(i.0)];
    }
}

impl Imported {
    /// Leaves out what concerns the loopback interface `lo`: rules that
    /// match only `-i lo` / `-o lo` (the router's own traffic to itself,
    /// which no forwarded or probe packet is), and `! -i lo`-style
    /// negations, which every such packet passes. Returns how many rules
    /// went. `lo` leaves [`ifaces`](Self::ifaces) too.
    pub fn without_loopback(&mut self) -> usize {
        let Some(k) = self.ifaces.iter().position(|n| n == "lo") else {
            return 0;
        };
        let lo = Some(IfaceId(k as u16));
        let only_lo = |m: &Match| {
            (m.in_iface == lo && !m.not.in_iface) || (m.out_iface == lo && !m.not.out_iface)
        };
        let clear = |m: &mut Match| {
            if m.in_iface == lo {
                m.in_iface = None;
                m.not.in_iface = false;
            }
            if m.out_iface == lo {
                m.out_iface = None;
                m.not.out_iface = false;
            }
        };
        let before = self.rules.rules.len()
            + self.filter.raw.rules.len()
            + self.filter.input.rules.len()
            + self.filter.forward.rules.len();
        self.rules.rules.retain(|r| !only_lo(&r.matches));
        self.rules
            .rules
            .iter_mut()
            .for_each(|r| clear(&mut r.matches));
        for c in self.filter.chains_mut() {
            c.rules.retain(|r| !only_lo(&r.matches));
            c.rules.iter_mut().for_each(|r| clear(&mut r.matches));
        }
        // Renumber the interfaces after `lo` (no rule names `lo` now).
        let map: Vec<IfaceId> = (0..self.ifaces.len())
            .map(|i| IfaceId(if i > k { i - 1 } else { i } as u16))
            .collect();
        self.rules
            .rules
            .iter_mut()
            .for_each(|r| remap_match(&mut r.matches, &map));
        for c in self.filter.chains_mut() {
            c.rules
                .iter_mut()
                .for_each(|r| remap_match(&mut r.matches, &map));
        }
        self.ifaces.remove(k);
        if k < self.iface_locs.len() {
            self.iface_locs.remove(k);
        }
        before
            - (self.rules.rules.len()
                + self.filter.raw.rules.len()
                + self.filter.input.rules.len()
                + self.filter.forward.rules.len())
    }

    pub fn nat_rules(&self) -> &[Rule] {
        &self.rules.rules
    }
}

/// Reads a rules file by its content: nft JSON (starts with `{`) or
/// iptables-save text. `sets` is an `ipset save` file's content, if any.
pub fn import(file: &str, src: &str, sets: Option<(&str, &str)>) -> Result<Imported, ImportError> {
    let sets = match sets {
        Some((f, s)) => ipset::parse(f, s)?,
        None => ipset::Sets::default(),
    };
    if src.trim_start().starts_with('{') {
        nft::import(file, src, &sets)
    } else {
        iptables::import(file, src, &sets)
    }
}

/// A hairpin ("reflection") rule: it translates traffic from an inside
/// network back into that network (OpenWrt's `(reflection)` rules, an
/// admin's hairpin SNAT), so the interface it names is an inside one.
pub fn hairpin_rule(r: &natsim_nat::Rule) -> bool {
    use natsim_nat::{Action, Chain};
    let m = &r.matches;
    let Some(src) = m.src else { return false };
    match (&r.action, r.chain) {
        (Action::Dnat { to, .. }, Chain::Prerouting) => src.contains(*to),
        (Action::Snat(_) | Action::Masquerade { .. }, Chain::Postrouting) => {
            m.dst.is_some_and(|d| src.contains(d.addr))
        }
        _ => false,
    }
}
