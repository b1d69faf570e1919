//! Whether one rule's match covers another's: a later rule in the same
//! chain that an earlier one covers can never match.

use super::{IcmpType, Match, PortRange, Prefix, RuleSet};

impl RuleSet {
    /// The first earlier rule of rule `i`'s chain that matches everything
    /// rule `i` would, if any: rule `i` can never match.
    pub fn shadowed_by(&self, i: usize) -> Option<usize> {
        let r = self.rules.get(i)?;
        self.rules[..i]
            .iter()
            .position(|e| e.chain == r.chain && covers(&e.matches, &r.matches))
    }
}

/// Whether every packet `b` matches, `a` matches too. Conservative: a
/// negated field covers only the same negated field, and a positive one
/// never covers a negated one (`-i lan` does not cover `! -i lan`), so a
/// rule is never falsely called shadowed.
fn covers(a: &Match, b: &Match) -> bool {
    /// One field: `a`'s value (and negation) against `b`'s; `within`
    /// says whether a positive `x` holds every value of a positive `y`.
    fn field<T: PartialEq>(
        a: &Option<T>,
        an: bool,
        b: &Option<T>,
        bn: bool,
        within: impl Fn(&T, &T) -> bool,
    ) -> bool {
        match (a, b) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(x), Some(y)) => match (an, bn) {
                (false, false) => within(x, y),
                (true, true) => x == y,
                _ => false,
            },
        }
    }
    fn same<T: PartialEq>(x: &T, y: &T) -> bool {
        x == y
    }
    let (n, m) = (&a.not, &b.not);
    field(&a.proto, n.proto, &b.proto, m.proto, same)
        && field(&a.in_iface, n.in_iface, &b.in_iface, m.in_iface, same)
        && field(&a.out_iface, n.out_iface, &b.out_iface, m.out_iface, same)
        && field(&a.src, n.src, &b.src, m.src, |x: &Prefix, y: &Prefix| {
            x.len <= y.len && x.contains(y.addr)
        })
        && field(&a.dst, n.dst, &b.dst, m.dst, |x: &Prefix, y: &Prefix| {
            x.len <= y.len && x.contains(y.addr)
        })
        && field(
            &a.dst_ports,
            n.dst_ports,
            &b.dst_ports,
            m.dst_ports,
            |x: &PortRange, y: &PortRange| x.first <= y.first && y.last <= x.last,
        )
        && field(
            &a.src_ports,
            n.src_ports,
            &b.src_ports,
            m.src_ports,
            |x: &PortRange, y: &PortRange| x.first <= y.first && y.last <= x.last,
        )
        && field(
            &a.dst_local.then_some(()),
            n.dst_local,
            &b.dst_local.then_some(()),
            m.dst_local,
            same,
        )
        && field(
            &a.icmp_type,
            n.icmp_type,
            &b.icmp_type,
            m.icmp_type,
            |x: &IcmpType, y: &IcmpType| x.ty == y.ty && (x.code.is_none() || x.code == y.code),
        )
        && field(&a.tcp_flags, n.tcp_flags, &b.tcp_flags, m.tcp_flags, same)
        && (a.dst_iface_addr.is_none() || a.dst_iface_addr == b.dst_iface_addr)
        && (a.ct_dnat.is_none() || a.ct_dnat == b.ct_dnat)
        && (a.ct_state.is_none() || a.ct_state == b.ct_state)
}
