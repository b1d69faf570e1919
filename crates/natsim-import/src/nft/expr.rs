//! Reading nft JSON expressions as values: text, prefixes, name lists.

use crate::ipset::parse_prefix;
use natsim_nat::Prefix;
use nftables::expr::{Expression, NamedExpression};
use std::net::Ipv4Addr;

pub(super) fn text(e: &Expression<'_>) -> Option<String> {
    match e {
        Expression::String(s) => Some(s.to_string()),
        Expression::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub(super) fn prefix(e: &Expression<'_>) -> Option<Prefix> {
    match e {
        Expression::String(s) => parse_prefix(s),
        Expression::Named(NamedExpression::Prefix(p)) => {
            let a: Ipv4Addr = text(&p.addr)?.parse().ok()?;
            Some(Prefix::new(
                a,
                u8::try_from(p.len).ok().filter(|l| *l <= 32)?,
            ))
        }
        _ => None,
    }
}

pub(super) fn names(e: &Expression<'_>) -> Vec<String> {
    match e {
        Expression::List(l) => l.iter().filter_map(text).collect(),
        Expression::Named(NamedExpression::Set(items)) => items
            .iter()
            .filter_map(|i| match i {
                nftables::expr::SetItem::Element(x) => text(x),
                _ => None,
            })
            .collect(),
        e => text(e).into_iter().collect(),
    }
}
