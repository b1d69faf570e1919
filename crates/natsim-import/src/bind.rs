//! Binding an import's interface names to a router's interfaces.
//!
//! A name may be a wildcard: iptables' `eth+` and nft's `"eth*"` match
//! every interface whose name starts with `eth` (xt `ifname_compare`,
//! nft_meta's `iifname` with a trailing `*`). A rule naming a wildcard
//! becomes one rule per interface it covers, in the router's order; the
//! copies are disjoint, so first-match order is kept. A negated wildcard
//! becomes the interfaces it leaves (a packet always has one of them).

use crate::{Imported, UnboundIface};
use natsim_nat::{IfaceId, Match};

/// The stem of a wildcard interface name (`ppp+` or `ppp*`: `ppp`).
pub fn wildcard_stem(name: &str) -> Option<&str> {
    name.strip_suffix('+').or_else(|| name.strip_suffix('*'))
}

/// What one imported name stands for among the router's interfaces.
enum Bound {
    One(IfaceId),
    /// A wildcard's interfaces (perhaps none).
    Any(Vec<IfaceId>),
}

#[derive(Clone, Copy)]
enum Field {
    In,
    Out,
}

fn slot(m: &mut Match, f: Field) -> (&mut Option<IfaceId>, &mut bool) {
    match f {
        Field::In => (&mut m.in_iface, &mut m.not.in_iface),
        Field::Out => (&mut m.out_iface, &mut m.not.out_iface),
    }
}

/// `r` with field `f` bound: one rule, several, or none (it names no
/// interface the router has).
fn bind_field<R: Clone>(
    mut r: R,
    m: fn(&mut R) -> &mut Match,
    f: Field,
    map: &[Bound],
    all: usize,
) -> Vec<R> {
    let (s, neg) = slot(m(&mut r), f);
    let Some(id) = *s else { return vec![r] };
    let ids = match &map[usize::from(id.0)] {
        Bound::One(x) => {
            *s = Some(*x);
            return vec![r];
        }
        Bound::Any(xs) if !*neg => xs.clone(),
        // `! -i ppp+` with no ppp interface holds for every packet.
        Bound::Any(xs) if xs.is_empty() => {
            *s = None;
            *neg = false;
            return vec![r];
        }
        Bound::Any(xs) if xs.len() == 1 => {
            *s = Some(xs[0]);
            return vec![r];
        }
        Bound::Any(xs) => {
            *neg = false;
            (0..all as u16)
                .map(IfaceId)
                .filter(|x| !xs.contains(x))
                .collect()
        }
    };
    *neg = false;
    ids.into_iter()
        .map(|x| {
            let mut c = r.clone();
            *slot(m(&mut c), f).0 = Some(x);
            c
        })
        .collect()
}

/// Every rule of `rules` bound; counts in `none` those that name no
/// interface the router has (they can never match).
fn bind_rules<R: Clone>(
    rules: Vec<R>,
    m: fn(&mut R) -> &mut Match,
    map: &[Bound],
    all: usize,
    none: &mut usize,
) -> Result<Vec<R>, usize> {
    let mut out = Vec::new();
    for mut r in rules {
        // The destination-address interface is never a wildcard.
        if let Some(i) = m(&mut r).dst_iface_addr {
            match &map[usize::from(i.0)] {
                Bound::One(x) => m(&mut r).dst_iface_addr = Some(*x),
                Bound::Any(_) => return Err(usize::from(i.0)),
            }
        }
        let mut copies = vec![r];
        for f in [Field::In, Field::Out] {
            copies = copies
                .into_iter()
                .flat_map(|r| bind_field(r, m, f, map, all))
                .collect();
        }
        if copies.is_empty() {
            *none += 1;
        }
        out.extend(copies);
    }
    Ok(out)
}

impl Imported {
    /// Renumbers interfaces to the router's own: `router[k]` is the name
    /// of `IfaceId(k)`. Wildcards expand (see the module docs); an exact
    /// name the router lacks is an error.
    pub fn bind<S: AsRef<str>>(&mut self, router: &[S]) -> Result<(), UnboundIface> {
        let unbound = |k: usize| UnboundIface {
            name: self.ifaces[k].clone(),
            loc: self.iface_locs.get(k).cloned().unwrap_or_default(),
        };
        let mut map = Vec::new();
        for (k, n) in self.ifaces.iter().enumerate() {
            let ids = |keep: &dyn Fn(&str) -> bool| -> Vec<IfaceId> {
                (0..router.len())
                    .filter(|&i| keep(router[i].as_ref()))
                    .map(|i| IfaceId(i as u16))
                    .collect()
            };
            map.push(match wildcard_stem(n) {
                Some(stem) => Bound::Any(ids(&|x| x.starts_with(stem))),
                None => match ids(&|x| x == n).first() {
                    Some(&x) => Bound::One(x),
                    None => return Err(unbound(k)),
                },
            });
        }
        let all = router.len();
        let mut none = 0;
        let rules = std::mem::take(&mut self.rules.rules);
        self.rules.rules =
            bind_rules(rules, |r| &mut r.matches, &map, all, &mut none).map_err(unbound)?;
        for c in self.filter.chains_mut() {
            let rules = std::mem::take(&mut c.rules);
            c.rules =
                bind_rules(rules, |r| &mut r.matches, &map, all, &mut none).map_err(unbound)?;
        }
        if none > 0 {
            self.notes.push(format!(
                "{none} rule(s) left out: their interface wildcard names none of the router's interfaces"
            ));
        }
        // A wildcard's copy may repeat an earlier rule's interface
        // (`-o eth0` before `-o eth+`): the engine would refuse it, the
        // kernel never reaches it.
        let mut i = 0;
        while i < self.rules.rules.len() {
            match self.rules.shadowed_by(i) {
                Some(by) => {
                    let gone = self.rules.rules.remove(i);
                    self.notes.push(format!(
                        "left out: `{}` (an interface wildcard's copy) can never match: `{}` before it matches everything it would",
                        gone.name, self.rules.rules[by].name
                    ));
                }
                None => i += 1,
            }
        }
        Ok(())
    }
}
