//! `iptables-save` output: `*table`, `:CHAIN POLICY [p:b]`, `-A CHAIN
//! options...`, `COMMIT`.
//!
//! Read: tables `nat`, `filter` and `raw` (others must be empty); the
//! options of [`SUPPORTED_MATCHES`]; targets DNAT, SNAT, MASQUERADE,
//! REDIRECT, NETMAP, ACCEPT, DROP, REJECT, RETURN and user chains, with
//! `--to-destination`, `--to-source`, `--to-ports`, `--to`.

use crate::flatten::{assemble, Ifaces, RawChain, RawRule, RawTable, SetRef, Target};
use crate::ipset::{parse_prefix, Sets};
use crate::{FilterAction, ImportError, Imported, Loc, RejectWith, Unreachable};
use natsim_nat::{Action, CtStates, Match, Pooling, PortFlag, PortRange, Proto, SnatPool};
use std::net::Ipv4Addr;

mod inert;
mod l4;
mod target;
mod tokens;
mod values;

use tokens::tokens;
use values::{addr_ports, iprange_alternatives, ports, proto};

const SUPPORTED_MATCHES: &str = "-i, -o, -s, -d, -p tcp|udp|icmp (each with !), -m icmp --icmp-type T[/C], --syn, --tcp-flags MASK COMP, -m tcp|udp --dport/--sport N[:M], -m conntrack --ctstate, -m state --state, -m addrtype --dst-type LOCAL, -m set --match-set NAME src|dst, -m multiport --dports|--sports N[:M],..., -m iprange --src-range|--dst-range A-B, -m limit, -m comment --comment";
const SUPPORTED_TARGETS: &str = "-j DNAT --to-destination A[:P[-Q]], SNAT --to-source A[-B][:P-Q], MASQUERADE [--to-ports P[-Q]], REDIRECT [--to-ports P], NETMAP --to P/LEN, ACCEPT, DROP, REJECT, RETURN, or a user chain";

struct Parser<'a> {
    file: &'a str,
    ifaces: Ifaces,
    /// Lines whose `-m limit` is taken as never exceeded.
    limited: std::collections::BTreeSet<usize>,
}

impl Parser<'_> {
    fn err(
        &self,
        line: usize,
        col: usize,
        text: &str,
        message: String,
        supported: &'static str,
    ) -> ImportError {
        ImportError {
            file: self.file.into(),
            loc: Loc { line, col },
            text: text.trim().into(),
            message,
            supported,
        }
    }

    fn rule(
        &mut self,
        n: usize,
        line: &str,
        table: &str,
    ) -> Result<(String, RawRule), ImportError> {
        let toks = tokens(line)
            .map_err(|c| self.err(n, c, line, "unterminated quote".into(), SUPPORTED_MATCHES))?;
        let mut m = Match::default();
        let mut sets = Vec::new();
        let mut any_of: Vec<Vec<Match>> = Vec::new();
        let mut name = None;
        let mut chain = None;
        let mut target: Option<(String, usize)> = None;
        let mut topts: Vec<(String, Option<String>, usize)> = Vec::new();
        let mut negate = false;
        let mut i = 0;
        let file = self.file;
        let val = |i: usize, what: &str| -> Result<(&str, usize), ImportError> {
            toks.get(i + 1)
                .map(|t| (t.s.as_str(), t.col))
                .ok_or_else(|| ImportError {
                    file: file.into(),
                    loc: Loc {
                        line: n,
                        col: toks[i].col,
                    },
                    text: line.trim().into(),
                    message: format!("`{what}` needs a value"),
                    supported: SUPPORTED_MATCHES,
                })
        };
        while i < toks.len() {
            let t = &toks[i];
            let loc = Loc {
                line: n,
                col: t.col,
            };
            let neg = std::mem::take(&mut negate);
            let bad_neg = |p: &Parser<'_>| {
                p.err(
                    n,
                    t.col,
                    line,
                    format!("`!` cannot negate `{}`", t.s),
                    SUPPORTED_MATCHES,
                )
            };
            match t.s.as_str() {
                "!" => {
                    negate = true;
                    i += 1;
                    continue;
                }
                "-A" => {
                    chain = Some(val(i, "-A")?.0.to_string());
                    i += 2;
                }
                "-i" | "-o" => {
                    // `eth+` is a wildcard, expanded at binding (crate::bind).
                    let (v, c) = val(i, &t.s)?;
                    let id = self.ifaces.id(v, &Loc { line: n, col: c });
                    if t.s == "-i" {
                        m.in_iface = Some(id);
                        m.not.in_iface = neg;
                    } else {
                        m.out_iface = Some(id);
                        m.not.out_iface = neg;
                    }
                    i += 2;
                }
                "-s" | "-d" => {
                    let (v, c) = val(i, &t.s)?;
                    let p = parse_prefix(v).ok_or_else(|| {
                        self.err(
                            n,
                            c,
                            line,
                            format!("`{v}` is not an IPv4 address or prefix"),
                            SUPPORTED_MATCHES,
                        )
                    })?;
                    if t.s == "-s" {
                        m.src = Some(p);
                        m.not.src = neg;
                    } else {
                        m.dst = Some(p);
                        m.not.dst = neg;
                    }
                    i += 2;
                }
                "-p" => {
                    let (v, c) = val(i, "-p")?;
                    m.proto = Some(proto(v).ok_or_else(|| {
                        self.err(
                            n,
                            c,
                            line,
                            format!("protocol `{v}` is not modelled"),
                            "-p tcp, udp or icmp",
                        )
                    })?);
                    m.not.proto = neg;
                    i += 2;
                }
                "-m" => {
                    let (v, c) = val(i, "-m")?;
                    if !matches!(
                        v,
                        "tcp"
                            | "udp"
                            | "icmp"
                            | "conntrack"
                            | "state"
                            | "addrtype"
                            | "set"
                            | "comment"
                            | "multiport"
                            | "limit"
                            | "iprange"
                    ) {
                        return Err(self.err(
                            n,
                            c,
                            line,
                            format!("match module `{v}` is not modelled"),
                            SUPPORTED_MATCHES,
                        ));
                    }
                    if neg {
                        return Err(bad_neg(self));
                    }
                    i += 2;
                }
                "--dport" | "--sport" | "--destination-port" | "--source-port" => {
                    let (v, c) = val(i, &t.s)?;
                    let r = self.port_range(n, c, line, v)?;
                    self.needs_tcp_or_udp(&m, n, t.col, line)?;
                    if t.s.contains("dport") || t.s.contains("destination") {
                        m.dst_ports = Some(r);
                        m.not.dst_ports = neg;
                    } else {
                        m.src_ports = Some(r);
                        m.not.src_ports = neg;
                    }
                    i += 2;
                }
                "--icmp-type" => {
                    let (v, c) = val(i, "--icmp-type")?;
                    self.icmp_type(&mut m, (n, t.col, c), line, v, neg)?;
                    i += 2;
                }
                "--syn" => {
                    self.tcp_flags(&mut m, (n, t.col), line, "SYN,RST,ACK,FIN", "SYN", neg)?;
                    i += 1;
                }
                "--tcp-flags" => {
                    let (mask, _) = val(i, "--tcp-flags")?;
                    let (comp, _) = val(i + 1, "--tcp-flags")?;
                    self.tcp_flags(&mut m, (n, t.col), line, mask, comp, neg)?;
                    i += 3;
                }
                "--ctstate" | "--state" => {
                    let (v, c) = val(i, &t.s)?;
                    if neg {
                        return Err(bad_neg(self));
                    }
                    let mut st = CtStates::default();
                    for w in v.split(',') {
                        // conntrack's virtual state DNAT: the connection's
                        // destination was translated (nft `ct status dnat`).
                        if w == "DNAT" && t.s == "--ctstate" {
                            m.ct_dnat = Some(true);
                            continue;
                        }
                        st = st.union(CtStates::parse(w).ok_or_else(|| {
                            self.err(
                                n,
                                c,
                                line,
                                format!("conntrack state `{w}`"),
                                "NEW, ESTABLISHED, RELATED, INVALID, UNTRACKED, DNAT",
                            )
                        })?);
                    }
                    if st != CtStates::default() {
                        m.ct_state = Some(st);
                    }
                    i += 2;
                }
                "--dst-type" => {
                    let (v, c) = val(i, "--dst-type")?;
                    if v != "LOCAL" {
                        return Err(self.err(
                            n,
                            c,
                            line,
                            format!("address type `{v}`"),
                            "--dst-type LOCAL",
                        ));
                    }
                    m.dst_local = true;
                    m.not.dst_local = neg;
                    i += 2;
                }
                "--match-set" => {
                    let (v, c) = val(i, "--match-set")?;
                    let (dir, _) = toks
                        .get(i + 2)
                        .map(|t| (t.s.as_str(), t.col))
                        .unwrap_or(("", c));
                    if neg {
                        return Err(bad_neg(self));
                    }
                    if !matches!(dir, "src" | "dst") {
                        return Err(self.err(
                            n,
                            c,
                            line,
                            format!("set direction `{dir}`"),
                            "--match-set NAME src or --match-set NAME dst",
                        ));
                    }
                    sets.push(SetRef {
                        name: v.into(),
                        src: dir == "src",
                        loc: Loc { line: n, col: c },
                    });
                    i += 3;
                }
                "--dports" | "--sports" | "--destination-ports" | "--source-ports" => {
                    let (v, c) = val(i, &t.s)?;
                    if neg {
                        return Err(bad_neg(self));
                    }
                    self.needs_tcp_or_udp(&m, n, t.col, line)?;
                    let dst = t.s.contains("dport") || t.s.contains("destination");
                    let mut alts = Vec::new();
                    for p in v.split(',') {
                        let r = self.port_range(n, c, line, p)?;
                        let mut alt = Match::default();
                        if dst {
                            alt.dst_ports = Some(r);
                        } else {
                            alt.src_ports = Some(r);
                        }
                        alts.push(alt);
                    }
                    any_of.push(alts);
                    i += 2;
                }
                // natsim does not model packet rates: a limit is taken as
                // never exceeded (said in a note).
                "--limit" | "--limit-burst" => {
                    val(i, &t.s)?;
                    if neg {
                        return Err(bad_neg(self));
                    }
                    self.limited.insert(n);
                    i += 2;
                }
                "--src-range" | "--dst-range" => {
                    let (v, c) = val(i, &t.s)?;
                    let range = v
                        .split_once('-')
                        .and_then(|(a, b)| {
                            Some((a.parse::<Ipv4Addr>().ok()?, b.parse::<Ipv4Addr>().ok()?))
                        })
                        .filter(|(a, b)| a <= b)
                        .ok_or_else(|| {
                            self.err(
                                n,
                                c,
                                line,
                                format!("`{v}` is not an address range A-B"),
                                SUPPORTED_MATCHES,
                            )
                        })?;
                    let alts = iprange_alternatives(range, neg, t.s == "--src-range");
                    if alts.is_empty() {
                        return Err(self.err(
                            n,
                            c,
                            line,
                            format!("`! {} {v}` can never match", t.s),
                            "delete the rule",
                        ));
                    }
                    any_of.push(alts);
                    i += 2;
                }
                "--comment" => {
                    name = Some(val(i, "--comment")?.0.to_string());
                    i += 2;
                }
                "-j" => {
                    let (v, c) = val(i, "-j")?;
                    target = Some((v.to_string(), c));
                    i += 2;
                }
                s if s.starts_with("--") && target.is_some() => {
                    let v = toks
                        .get(i + 1)
                        .filter(|t| !t.s.starts_with("--"))
                        .map(|t| t.s.clone());
                    i += if v.is_some() { 2 } else { 1 };
                    topts.push((s.to_string(), v, t.col));
                }
                other => {
                    let _ = loc;
                    return Err(self.err(
                        n,
                        t.col,
                        line,
                        format!("`{other}` is not modelled"),
                        if target.is_some() {
                            SUPPORTED_TARGETS
                        } else {
                            SUPPORTED_MATCHES
                        },
                    ));
                }
            }
        }
        let chain = chain.ok_or_else(|| {
            self.err(
                n,
                1,
                line,
                "a rule line without -A CHAIN".into(),
                SUPPORTED_MATCHES,
            )
        })?;
        let (tname, tcol) = target.ok_or_else(|| {
            self.err(
                n,
                1,
                line,
                "a rule without -j (counting rules are not modelled)".into(),
                SUPPORTED_TARGETS,
            )
        })?;
        // (Raw OUTPUT is routed already; it is only noted, not applied.)
        if table == "raw"
            && chain != "OUTPUT"
            && (m.ct_state.is_some() || m.ct_dnat.is_some() || m.out_iface.is_some())
        {
            return Err(self.err(
                n,
                1,
                line,
                "a raw-table rule matching conntrack state or -o: the raw table runs before conntrack and routing".into(),
                SUPPORTED_MATCHES,
            ));
        }
        let t = self.target(n, line, table, (tname, tcol), &topts, &m)?;
        let text = line.trim().to_string();
        Ok((
            chain,
            RawRule {
                loc: Loc { line: n, col: 1 },
                text,
                name,
                m,
                sets,
                any_of,
                target: t,
            },
        ))
    }
}

pub fn import(file: &str, src: &str, sets: &Sets) -> Result<Imported, ImportError> {
    let mut p = Parser {
        file,
        ifaces: Ifaces::default(),
        limited: Default::default(),
    };
    let mut nat = RawTable::new();
    let mut filter = RawTable::new();
    let mut raw = RawTable::new();
    let mut table: Option<String> = None;
    let mut notes = Vec::new();
    let inert = inert::Inert::scan(src);
    let mut skipped = 0usize;
    for (i, line) in src.lines().enumerate() {
        let n = i + 1;
        let t = line.trim();
        let col = line.len() - line.trim_start().len() + 1;
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if let Some(name) = t.strip_prefix('*') {
            table = Some(name.to_string());
            continue;
        }
        if t == "COMMIT" {
            table = None;
            continue;
        }
        let Some(tb) = table.clone() else {
            return Err(p.err(
                n,
                col,
                t,
                "a line outside a `*table` ... `COMMIT` block".into(),
                "iptables-save output",
            ));
        };
        let slot = match tb.as_str() {
            "nat" => Some(&mut nat),
            "filter" => Some(&mut filter),
            "raw" => Some(&mut raw),
            _ => None,
        };
        if let Some(rest) = t.strip_prefix(':') {
            let w: Vec<&str> = rest.split_whitespace().collect();
            let (Some(name), Some(pol)) = (w.first(), w.get(1)) else {
                return Err(p.err(
                    n,
                    col,
                    t,
                    "a chain line without a policy".into(),
                    ":CHAIN POLICY [packets:bytes]",
                ));
            };
            let policy = match *pol {
                "ACCEPT" => Some(FilterAction::Accept),
                "DROP" => Some(FilterAction::Drop),
                "-" => None,
                o => {
                    return Err(p.err(
                        n,
                        col,
                        t,
                        format!("policy `{o}`"),
                        "ACCEPT, DROP or - (user chain)",
                    ))
                }
            };
            if let Some(s) = slot {
                s.insert(
                    name.to_string(),
                    RawChain {
                        policy,
                        rules: Vec::new(),
                        loc: Loc { line: n, col },
                    },
                );
            }
            continue;
        }
        if !t.starts_with("-A") {
            return Err(p.err(
                n,
                col,
                t,
                "not an iptables-save line".into(),
                "*table, :CHAIN POLICY [p:b], -A CHAIN ..., COMMIT",
            ));
        }
        let Some(s) = slot else {
            return Err(p.err(
                n,
                col,
                t,
                format!("rules in table `{tb}` are not modelled"),
                "the nat, filter and raw tables",
            ));
        };
        let harmless =
            inert::chain_and_target(t).filter(|(chain, goes)| inert.skips(&tb, chain, goes));
        let (chain, rule) = match harmless {
            Some((chain, _)) => (chain, None),
            None => {
                let (chain, rule) = p.rule(n, line, &tb)?;
                (chain, Some(rule))
            }
        };
        let Some(c) = s.get_mut(&chain) else {
            return Err(p.err(
                n,
                col,
                t,
                format!("chain `{chain}` was not declared"),
                ":CHAIN lines before the rules, as iptables-save prints",
            ));
        };
        match rule {
            Some(rule) => c.rules.push(rule),
            None => skipped += 1,
        }
    }
    if let Some(tb) = table {
        notes.push(format!("table `{tb}` has no COMMIT line"));
    }
    if skipped > 0 {
        notes.push(format!(
            "{skipped} rule(s) left out: they only log (LOG, NFLOG, ULOG) or count, or jump to chains that do no more, which changes no packet's fate"
        ));
    }
    if !p.limited.is_empty() {
        notes.push(format!(
            "{} rule(s) with `-m limit` taken as under the limit: natsim does not model packet rates",
            p.limited.len()
        ));
    }
    let tables = crate::flatten::Tables { nat, filter, raw };
    assemble(file, &tables, sets, p.ifaces, notes)
}
