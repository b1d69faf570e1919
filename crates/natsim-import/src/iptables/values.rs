//! Option values: ports, protocols, `--to-*` addresses, `-m iprange`.

use natsim_nat::{Match, PortRange, Proto};
use std::net::Ipv4Addr;

pub(super) fn ports(s: &str) -> Option<PortRange> {
    let (a, b) = s.split_once([':', '-']).unwrap_or((s, s));
    let (a, b) = (a.parse::<u16>().ok()?, b.parse::<u16>().ok()?);
    (a <= b).then(|| PortRange::new(a, b))
}

pub(super) fn proto(s: &str) -> Option<Proto> {
    Some(match s.to_ascii_lowercase().as_str() {
        "tcp" | "6" => Proto::Tcp,
        "udp" | "17" => Proto::Udp,
        "icmp" | "1" => Proto::Icmp,
        _ => return None,
    })
}

/// `A[-B][:P[-Q]]` of `--to-destination` / `--to-source`.
pub(super) fn addr_ports(s: &str) -> Option<(Ipv4Addr, Ipv4Addr, Option<PortRange>)> {
    let (a, p) = match s.split_once(':') {
        Some((a, p)) => (a, Some(ports(p)?)),
        None => (s, None),
    };
    let (first, last) = match a.split_once('-') {
        Some((x, y)) => (x.parse().ok()?, y.parse().ok()?),
        None => {
            let x: Ipv4Addr = a.parse().ok()?;
            (x, x)
        }
    };
    (first <= last).then_some((first, last, p))
}

/// `-m iprange`'s range (or, negated, what it leaves) as one
/// alternative per prefix.
pub(super) fn iprange_alternatives(
    (first, last): (Ipv4Addr, Ipv4Addr),
    neg: bool,
    src: bool,
) -> Vec<Match> {
    let ranges = if neg {
        let mut r = Vec::new();
        if first > Ipv4Addr::UNSPECIFIED {
            r.push((
                Ipv4Addr::UNSPECIFIED,
                Ipv4Addr::from_bits(first.to_bits() - 1),
            ));
        }
        if last < Ipv4Addr::BROADCAST {
            r.push((Ipv4Addr::from_bits(last.to_bits() + 1), Ipv4Addr::BROADCAST));
        }
        r
    } else {
        vec![(first, last)]
    };
    ranges
        .into_iter()
        .flat_map(|(a, b)| crate::ipset::range_prefixes(a, b))
        .map(|p| {
            let mut m = Match::default();
            if src {
                m.src = Some(p);
            } else {
                m.dst = Some(p);
            }
            m
        })
        .collect()
}
