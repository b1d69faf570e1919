//! ICMP type and code names as the rule languages spell them.

use natsim_nat::IcmpType;

/// iptables' names (libxt_icmp's `icmp_codes`): a type with every code,
/// or one type/code pair. `any` is type 255, which xt_icmp matches for
/// every ICMP packet.
const IPTABLES: &[(&str, u8, Option<u8>)] = &[
    ("echo-reply", 0, None),
    ("pong", 0, None),
    ("destination-unreachable", 3, None),
    ("network-unreachable", 3, Some(0)),
    ("host-unreachable", 3, Some(1)),
    ("protocol-unreachable", 3, Some(2)),
    ("port-unreachable", 3, Some(3)),
    ("fragmentation-needed", 3, Some(4)),
    ("source-route-failed", 3, Some(5)),
    ("network-unknown", 3, Some(6)),
    ("host-unknown", 3, Some(7)),
    ("network-prohibited", 3, Some(9)),
    ("host-prohibited", 3, Some(10)),
    ("TOS-network-unreachable", 3, Some(11)),
    ("TOS-host-unreachable", 3, Some(12)),
    ("communication-prohibited", 3, Some(13)),
    ("host-precedence-violation", 3, Some(14)),
    ("precedence-cutoff", 3, Some(15)),
    ("source-quench", 4, None),
    ("redirect", 5, None),
    ("network-redirect", 5, Some(0)),
    ("host-redirect", 5, Some(1)),
    ("TOS-network-redirect", 5, Some(2)),
    ("TOS-host-redirect", 5, Some(3)),
    ("echo-request", 8, None),
    ("ping", 8, None),
    ("router-advertisement", 9, None),
    ("router-solicitation", 10, None),
    ("time-exceeded", 11, None),
    ("ttl-exceeded", 11, None),
    ("ttl-zero-during-transit", 11, Some(0)),
    ("ttl-zero-during-reassembly", 11, Some(1)),
    ("parameter-problem", 12, None),
    ("ip-header-bad", 12, Some(0)),
    ("required-option-missing", 12, Some(1)),
    ("timestamp-request", 13, None),
    ("timestamp-reply", 14, None),
    ("address-mask-request", 17, None),
    ("address-mask-reply", 18, None),
];

/// What an `--icmp-type` value names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Named {
    /// `any`: every ICMP packet.
    Any,
    One(IcmpType),
}

/// An iptables `--icmp-type` value: a name, `TYPE` or `TYPE/CODE`
/// (iptables-save writes numbers). None: not one.
pub fn iptables(v: &str) -> Option<Named> {
    if v == "any" {
        return Some(Named::Any);
    }
    if let Some(&(_, ty, code)) = IPTABLES.iter().find(|(n, ..)| n.eq_ignore_ascii_case(v)) {
        return Some(Named::One(IcmpType { ty, code }));
    }
    let (ty, code) = match v.split_once('/') {
        Some((t, c)) => (t, Some(c.parse::<u8>().ok()?)),
        None => (v, None),
    };
    match ty.parse::<u8>().ok()? {
        255 => Some(Named::Any),
        ty => Some(Named::One(IcmpType { ty, code })),
    }
}

/// `v` by its name in `names`, or as a number.
fn named(names: &[(&str, u8)], v: &str) -> Option<u8> {
    names
        .iter()
        .find(|(n, _)| *n == v)
        .map(|&(_, x)| x)
        .or_else(|| v.parse().ok())
}

/// nft's `icmp type` names (nftables `icmp_type_tbl`), or a number.
pub fn nft_type(v: &str) -> Option<u8> {
    const NAMES: &[(&str, u8)] = &[
        ("echo-reply", 0),
        ("destination-unreachable", 3),
        ("source-quench", 4),
        ("redirect", 5),
        ("echo-request", 8),
        ("router-advertisement", 9),
        ("router-solicitation", 10),
        ("time-exceeded", 11),
        ("parameter-problem", 12),
        ("timestamp-request", 13),
        ("timestamp-reply", 14),
        ("info-request", 15),
        ("info-reply", 16),
        ("address-mask-request", 17),
        ("address-mask-reply", 18),
    ];
    named(NAMES, v)
}

/// nft's `icmp code` names (nftables `icmp_code_tbl`), or a number.
pub fn nft_code(v: &str) -> Option<u8> {
    const NAMES: &[(&str, u8)] = &[
        ("net-unreachable", 0),
        ("host-unreachable", 1),
        ("prot-unreachable", 2),
        ("port-unreachable", 3),
        ("frag-needed", 4),
        ("net-prohibited", 9),
        ("host-prohibited", 10),
        ("admin-prohibited", 13),
    ];
    named(NAMES, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iptables_names_numbers_and_pairs() {
        let one = |ty, code| Some(Named::One(IcmpType { ty, code }));
        assert_eq!(iptables("echo-request"), one(8, None));
        assert_eq!(iptables("8"), one(8, None));
        assert_eq!(iptables("3/4"), one(3, Some(4)));
        assert_eq!(iptables("fragmentation-needed"), one(3, Some(4)));
        assert_eq!(iptables("any"), Some(Named::Any));
        assert_eq!(iptables("255"), Some(Named::Any));
        assert_eq!(iptables("echo"), None);
        assert_eq!(iptables("3/x"), None);
        assert_eq!(iptables("256"), None);
    }

    #[test]
    fn nft_names() {
        assert_eq!(nft_type("echo-request"), Some(8));
        assert_eq!(nft_type("13"), Some(13));
        assert_eq!(nft_code("frag-needed"), Some(4));
        assert_eq!(nft_type("ping"), None);
    }
}
