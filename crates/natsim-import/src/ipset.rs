//! `ipset save` files: `create NAME hash:net ...` and `add NAME MEMBER`.
//! Only IPv4 `hash:ip` and `hash:net` sets are read; others are refused
//! with their location.

use crate::{ImportError, Loc};
use natsim_nat::Prefix;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

pub type Sets = BTreeMap<String, Vec<Prefix>>;

fn err(file: &str, line: usize, col: usize, text: &str, message: String) -> ImportError {
    ImportError {
        file: file.into(),
        loc: Loc { line, col },
        text: text.into(),
        message,
        supported: "`create NAME hash:ip|hash:net [family inet] ...` and `add NAME ADDRESS[/LEN]`",
    }
}

pub fn parse_prefix(s: &str) -> Option<Prefix> {
    let (a, l) = match s.split_once('/') {
        Some((a, l)) => (a, l.parse::<u8>().ok().filter(|l| *l <= 32)?),
        None => (s, 32),
    };
    Some(Prefix::new(a.parse::<Ipv4Addr>().ok()?, l))
}

/// The fewest prefixes that cover exactly `first..=last` (as an
/// `-m iprange` range or an ipset range is written).
pub fn range_prefixes(first: Ipv4Addr, last: Ipv4Addr) -> Vec<Prefix> {
    let (mut a, b) = (u64::from(first.to_bits()), u64::from(last.to_bits()));
    let mut out = Vec::new();
    while a <= b {
        // The largest aligned block at `a` that stays within `b`.
        let mut len = 32 - a.trailing_zeros().min(32);
        while len < 32 && a + (1u64 << (32 - len)) - 1 > b {
            len += 1;
        }
        out.push(Prefix::new(Ipv4Addr::from_bits(a as u32), len as u8));
        a += 1u64 << (32 - len);
    }
    out
}

pub fn parse(file: &str, src: &str) -> Result<Sets, ImportError> {
    let mut sets = Sets::new();
    for (i, line) in src.lines().enumerate() {
        let n = i + 1;
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let w: Vec<&str> = t.split_whitespace().collect();
        let col = line.len() - line.trim_start().len() + 1;
        match w.as_slice() {
            ["create", name, kind, rest @ ..] => {
                if !matches!(*kind, "hash:ip" | "hash:net") {
                    return Err(err(
                        file,
                        n,
                        col,
                        t,
                        format!("set type `{kind}` is not modelled"),
                    ));
                }
                if let Some(k) = rest.iter().position(|x| *x == "family") {
                    if rest.get(k + 1) != Some(&"inet") {
                        return Err(err(
                            file,
                            n,
                            col,
                            t,
                            "only IPv4 (`family inet`) sets are modelled".into(),
                        ));
                    }
                }
                sets.insert(name.to_string(), Vec::new());
            }
            ["add", name, member, ..] => {
                let p = parse_prefix(member).ok_or_else(|| {
                    err(
                        file,
                        n,
                        col,
                        t,
                        format!("`{member}` is not an IPv4 address or prefix"),
                    )
                })?;
                sets.get_mut(*name)
                    .ok_or_else(|| {
                        err(
                            file,
                            n,
                            col,
                            t,
                            format!("set `{name}` is added to before its `create`"),
                        )
                    })?
                    .push(p);
            }
            _ => return Err(err(file, n, col, t, "not an `ipset save` line".into())),
        }
    }
    Ok(sets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_is_covered_by_the_fewest_prefixes() {
        let p = |s: &str| parse_prefix(s).unwrap();
        let a = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(
            range_prefixes(a("192.168.1.100"), a("192.168.1.200")),
            [
                p("192.168.1.100/30"),
                p("192.168.1.104/29"),
                p("192.168.1.112/28"),
                p("192.168.1.128/26"),
                p("192.168.1.192/29"),
                p("192.168.1.200/32")
            ]
        );
        assert_eq!(
            range_prefixes(a("0.0.0.0"), a("255.255.255.255")),
            [p("0.0.0.0/0")]
        );
        assert_eq!(
            range_prefixes(a("10.0.0.5"), a("10.0.0.5")),
            [p("10.0.0.5/32")]
        );
    }

    #[test]
    fn reads_the_lines_ipset_save_prints() {
        // As `ipset save` (v7) prints them.
        let s = parse(
            "sets",
            "create office hash:net family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x9a1c1b43\nadd office 198.51.100.0/24\nadd office 192.0.2.7\n",
        )
        .unwrap();
        assert_eq!(
            s["office"],
            vec![
                Prefix::new(Ipv4Addr::new(198, 51, 100, 0), 24),
                Prefix::host(Ipv4Addr::new(192, 0, 2, 7))
            ]
        );
    }

    #[test]
    fn other_set_types_are_refused_with_their_line() {
        let e = parse("sets", "create x bitmap:port range 0-1024\n").unwrap_err();
        assert_eq!((e.loc.line, e.loc.col), (1, 1));
        assert!(e.message.contains("bitmap:port"), "{e}");
    }
}
