//! nft match expressions whose right side may be a set: protocols and
//! ports. A set becomes alternatives (one rule each, as `-m multiport`
//! does); a negated port set becomes the ranges it leaves.

use super::expr::{names, prefix, text};
use natsim_nat::{Match, PortRange, Prefix, Proto};
use nftables::expr::{Expression, NamedExpression, SetItem};

/// A port or `a-b` range.
pub(super) fn port_range(e: &Expression<'_>) -> Option<PortRange> {
    let num = |e: &Expression<'_>| match e {
        Expression::Number(n) => u16::try_from(*n).ok(),
        _ => None,
    };
    match e {
        Expression::Number(_) => num(e).map(PortRange::single),
        Expression::Range(r) => {
            let (a, b) = (num(&r.range[0])?, num(&r.range[1])?);
            (a <= b).then(|| PortRange::new(a, b))
        }
        _ => None,
    }
}

/// A port, a range, or an anonymous set of them.
fn port_set(e: &Expression<'_>) -> Option<Vec<PortRange>> {
    match e {
        Expression::Named(NamedExpression::Set(items)) => items
            .iter()
            .map(|i| match i {
                SetItem::Element(x) => port_range(x),
                _ => None,
            })
            .collect(),
        e => port_range(e).map(|r| vec![r]),
    }
}

/// The ranges of 0–65535 that none of `set` covers.
fn complement(mut set: Vec<PortRange>) -> Vec<PortRange> {
    set.sort_by_key(|r| r.first);
    let mut out = Vec::new();
    let mut next = 0u32;
    for r in set {
        if u32::from(r.first) > next {
            out.push(PortRange::new(next as u16, r.first - 1));
        }
        next = next.max(u32::from(r.last) + 1);
    }
    if next <= 65_535 {
        out.push(PortRange::new(next as u16, 65_535));
    }
    out
}

/// `tcp|udp|th dport|sport` into `m` (`proto`: None for `th`).
pub(super) fn ports(
    m: &mut Match,
    any_of: &mut Vec<Vec<Match>>,
    proto: Option<Proto>,
    dst: bool,
    right: &Expression<'_>,
    neg: bool,
) -> Result<(), String> {
    if let Some(p) = proto {
        if m.proto.is_some_and(|x| x != p) {
            return Err("ports of another protocol".into());
        }
        m.proto = Some(p);
    }
    let set = port_set(right).ok_or("a port set that is not numbers and ranges (a named set?)")?;
    let (set, neg) = match (set.len(), neg) {
        (0, _) => return Err("an empty port set".into()),
        (1, _) => (set, neg),
        (_, false) => (set, false),
        (_, true) => (complement(set), false),
    };
    let put = |m: &mut Match, r: PortRange| {
        if dst {
            m.dst_ports = Some(r);
            m.not.dst_ports = neg;
        } else {
            m.src_ports = Some(r);
            m.not.src_ports = neg;
        }
    };
    match set.as_slice() {
        [] => return Err("a negated port set that leaves no port".into()),
        [r] => put(m, *r),
        rs => any_of.push(
            rs.iter()
                .map(|&r| {
                    let mut alt = Match::default();
                    put(&mut alt, r);
                    alt
                })
                .collect(),
        ),
    }
    Ok(())
}

/// `meta l4proto` / `ip protocol` into `m`; `true`: the rule matches
/// only IPv6 packets. ICMPv6 never rides in IPv4: firewalld's
/// `{ icmp, ipv6-icmp }` is icmp here.
pub(super) fn proto(
    m: &mut Match,
    any_of: &mut Vec<Vec<Match>>,
    right: &Expression<'_>,
    neg: bool,
) -> Result<bool, String> {
    let mut v4 = Vec::new();
    for v in names(right) {
        match v.as_str() {
            "tcp" | "6" => v4.push(Proto::Tcp),
            "udp" | "17" => v4.push(Proto::Udp),
            "icmp" | "1" => v4.push(Proto::Icmp),
            "ipv6-icmp" | "icmpv6" | "58" => {}
            _ => return Err(format!("protocol `{v}`")),
        }
    }
    match (v4.as_slice(), neg) {
        ([], false) => return Ok(true),
        ([], true) => {}
        ([p], _) => {
            m.proto = Some(*p);
            m.not.proto = neg;
        }
        (ps, false) => any_of.push(
            ps.iter()
                .map(|&p| Match {
                    proto: Some(p),
                    ..Match::default()
                })
                .collect(),
        ),
        (_, true) => return Err("a negated set of several protocols".into()),
    }
    Ok(false)
}

/// nft's TCP flag names (`tcp_flag_type`), a list of them or a number.
fn tcp_flag_bits(e: &Expression<'_>) -> Option<u8> {
    const NAMES: [&str; 8] = ["fin", "syn", "rst", "psh", "ack", "urg", "ecn", "cwr"];
    let one = |w: &str| {
        NAMES
            .iter()
            .position(|n| *n == w)
            .map(|i| 1u8 << i)
            .or_else(|| w.parse().ok())
    };
    match e {
        Expression::Number(n) => u8::try_from(*n).ok(),
        Expression::String(s) => one(s),
        Expression::List(l) => l
            .iter()
            .try_fold(0u8, |acc, x| Some(acc | tcp_flag_bits(x)?)),
        _ => None,
    }
}

/// `tcp flags` into `m`: `in` one flag (`tcp flags syn`: it is set),
/// `==`/`!=` exactly, or under a mask (`tcp flags & (syn|ack) == syn`,
/// `mask` Some).
pub(super) fn tcp_flags(
    m: &mut Match,
    op: nftables::stmt::Operator,
    mask: Option<&Expression<'_>>,
    right: &Expression<'_>,
) -> Result<(), String> {
    use nftables::stmt::Operator;
    if m.proto.is_some_and(|x| x != Proto::Tcp) {
        return Err("tcp flags of another protocol".into());
    }
    m.proto = Some(Proto::Tcp);
    let bits = |e| tcp_flag_bits(e).ok_or("TCP flags other than names or a number");
    let comp = bits(right)?;
    let (mask, neg) = match (mask, op) {
        (None, Operator::IN) if comp.count_ones() == 1 => (comp, false),
        (None, Operator::IN) => return Err("`tcp flags` in a set of several flags".into()),
        (None, Operator::EQ) => (0xff, false),
        (None, Operator::NEQ) => (0xff, true),
        (Some(k), Operator::EQ) => (bits(k)?, false),
        (Some(k), Operator::NEQ) => (bits(k)?, true),
        (_, op) => return Err(format!("`tcp flags` with operator `{op:?}`")),
    };
    m.tcp_flags = Some(natsim_nat::TcpFlagsMatch {
        mask,
        comp: comp & mask,
    });
    m.not.tcp_flags = neg;
    Ok(())
}

/// `ip saddr|daddr` into `m`: an address or prefix, a range `a-b`, or a
/// set of these (one rule per prefix; a negated range, what it leaves).
pub(super) fn addrs(
    m: &mut Match,
    any_of: &mut Vec<Vec<Match>>,
    src: bool,
    right: &Expression<'_>,
    neg: bool,
) -> Result<(), String> {
    use std::net::Ipv4Addr;
    let range = |e: &Expression<'_>| -> Option<Vec<Prefix>> {
        match e {
            Expression::Range(r) => {
                let a: Ipv4Addr = text(&r.range[0])?.parse().ok()?;
                let b: Ipv4Addr = text(&r.range[1])?.parse().ok()?;
                (a <= b).then(|| crate::ipset::range_prefixes(a, b))
            }
            e => prefix(e).map(|p| vec![p]),
        }
    };
    let set: Option<Vec<Prefix>> = match right {
        Expression::Named(NamedExpression::Set(items)) => items
            .iter()
            .map(|i| match i {
                SetItem::Element(x) => range(x),
                _ => None,
            })
            .collect::<Option<Vec<Vec<Prefix>>>>()
            .map(|v| v.concat()),
        e => range(e),
    };
    let set =
        set.ok_or("an address set other than addresses, prefixes and ranges (a named set?)")?;
    let put = |m: &mut Match, p: Prefix, neg: bool| {
        if src {
            m.src = Some(p);
            m.not.src = neg;
        } else {
            m.dst = Some(p);
            m.not.dst = neg;
        }
    };
    match (set.as_slice(), neg) {
        ([], _) => Err("an empty address set".into()),
        ([p], _) => {
            put(m, *p, neg);
            Ok(())
        }
        (ps, false) => {
            any_of.push(
                ps.iter()
                    .map(|&p| {
                        let mut alt = Match::default();
                        put(&mut alt, p, false);
                        alt
                    })
                    .collect(),
            );
            Ok(())
        }
        (_, true) => Err("a negated set of several prefixes".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complement_leaves_the_gaps() {
        let r = PortRange::new;
        assert_eq!(
            complement(vec![r(80, 80), r(22, 22)]),
            [r(0, 21), r(23, 79), r(81, 65_535)]
        );
        assert_eq!(complement(vec![r(0, 10), r(5, 65_535)]), []);
        assert_eq!(complement(vec![r(1, 65_535)]), [r(0, 0)]);
    }
}
