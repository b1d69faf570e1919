//! A rule's target (`-j`): DNAT, SNAT, MASQUERADE, REDIRECT and NETMAP in
//! the nat table; ACCEPT, DROP and REJECT in the filter table; RETURN and
//! a jump to a user chain in either. Its options (`--to-destination`,
//! `--to-source`, `--to-ports`, `--to`, `--random`, `--random-fully`,
//! `--persistent`, `--reject-with`) are read here, and an option the
//! target does not use is an error, not ignored.

use super::*;

impl Parser<'_> {
    /// The target of rule line `n` (`tname` at column `tcol`) and its
    /// options: each one used, or the rule is refused.
    pub(super) fn target(
        &self,
        n: usize,
        line: &str,
        table: &str,
        (tname, tcol): (String, usize),
        topts: &[(String, Option<String>, usize)],
        m: &Match,
    ) -> Result<Target, ImportError> {
        let opt = |k: &str| topts.iter().find(|(o, _, _)| o == k);
        let mut used = Vec::new();
        let mut want = |k: &'static str| {
            used.push(k);
            opt(k).map(|(_, v, c)| (v.clone().unwrap_or_default(), *c))
        };
        let bad_val = |p: &Parser<'_>, v: &str, c: usize, what: &'static str| {
            p.err(
                n,
                c,
                line,
                format!("`{v}` is not {what}"),
                SUPPORTED_TARGETS,
            )
        };
        let nat_table = table == "nat";
        let t = match (tname.as_str(), nat_table) {
            ("DNAT", true) => {
                let (v, c) = want("--to-destination").ok_or_else(|| {
                    self.err(
                        n,
                        tcol,
                        line,
                        "DNAT without --to-destination".into(),
                        SUPPORTED_TARGETS,
                    )
                })?;
                let (a, b, p) = addr_ports(&v).ok_or_else(|| bad_val(self, &v, c, "A[:P[-Q]]"))?;
                if a != b {
                    return Err(self.err(
                        n,
                        c,
                        line,
                        "DNAT to an address range".into(),
                        "DNAT to one address",
                    ));
                }
                let to_port = match (p, m.dst_ports) {
                    (None, _) => None,
                    (Some(r), Some(d))
                        if r.first != r.last && r.len() == d.len() && r.first == d.first =>
                    {
                        Some(r.first)
                    }
                    (Some(r), _) if r.first == r.last => Some(r.first),
                    (Some(_), _) => {
                        return Err(self.err(
                            n,
                            c,
                            line,
                            "DNAT to a port range that is not the matched range".into(),
                            "DNAT to one port, or to the very range --dport matched",
                        ))
                    }
                };
                Target::Nat(Action::Dnat { to: a, to_port })
            }
            ("SNAT", true) => {
                let (v, c) = want("--to-source").ok_or_else(|| {
                    self.err(
                        n,
                        tcol,
                        line,
                        "SNAT without --to-source".into(),
                        SUPPORTED_TARGETS,
                    )
                })?;
                let (first, last, p) =
                    addr_ports(&v).ok_or_else(|| bad_val(self, &v, c, "A[-B][:P-Q]"))?;
                Target::Nat(Action::Snat(SnatPool {
                    first,
                    last,
                    ports: p.unwrap_or(PortRange::ALL),
                    pooling: {
                        // natsim's pools are paired (one inside address,
                        // one outside address), which is --persistent.
                        let _ = want("--persistent");
                        Pooling::Paired
                    },
                    random: port_flag(&mut want),
                }))
            }
            ("MASQUERADE", true) => {
                let ports_ = match want("--to-ports") {
                    Some((v, c)) => {
                        ports(&v).ok_or_else(|| bad_val(self, &v, c, "a port range P[-Q]"))?
                    }
                    None => PortRange::ALL,
                };
                Target::Nat(Action::Masquerade {
                    ports: ports_,
                    random: port_flag(&mut want),
                })
            }
            ("REDIRECT", true) => {
                let to_port = match want("--to-ports") {
                    Some((v, c)) => {
                        let r = ports(&v).ok_or_else(|| bad_val(self, &v, c, "a port"))?;
                        if r.first != r.last {
                            return Err(self.err(
                                n,
                                c,
                                line,
                                "REDIRECT to a port range".into(),
                                "REDIRECT --to-ports P",
                            ));
                        }
                        Some(r.first)
                    }
                    None => None,
                };
                Target::Nat(Action::Redirect { to_port })
            }
            ("NETMAP", true) => {
                let (v, c) = want("--to").ok_or_else(|| {
                    self.err(
                        n,
                        tcol,
                        line,
                        "NETMAP without --to".into(),
                        SUPPORTED_TARGETS,
                    )
                })?;
                Target::Nat(Action::Netmap {
                    to: parse_prefix(&v).ok_or_else(|| bad_val(self, &v, c, "a prefix"))?,
                })
            }
            ("ACCEPT", _) => Target::Filter(FilterAction::Accept),
            ("DROP", false) => Target::Filter(FilterAction::Drop),
            ("REJECT", false) if table == "filter" => {
                let with = match want("--reject-with") {
                    None => RejectWith::Icmp(Unreachable::Port),
                    Some((v, c)) => match v.as_str() {
                        // The names and aliases of libxt_REJECT (iptables-save
                        // prints the first of each).
                        "icmp-net-unreachable" | "net-unreach" => RejectWith::Icmp(Unreachable::Net),
                        "icmp-host-unreachable" | "host-unreach" => {
                            RejectWith::Icmp(Unreachable::Host)
                        }
                        "icmp-proto-unreachable" | "proto-unreach" => {
                            RejectWith::Icmp(Unreachable::Protocol)
                        }
                        "icmp-port-unreachable" | "port-unreach" => {
                            RejectWith::Icmp(Unreachable::Port)
                        }
                        "icmp-net-prohibited" | "net-prohib" => {
                            RejectWith::Icmp(Unreachable::NetProhibited)
                        }
                        "icmp-host-prohibited" | "host-prohib" => {
                            RejectWith::Icmp(Unreachable::HostProhibited)
                        }
                        "icmp-admin-prohibited" | "admin-prohib" => {
                            RejectWith::Icmp(Unreachable::AdminProhibited)
                        }
                        "tcp-reset" if m.proto == Some(Proto::Tcp) && !m.not.proto => {
                            RejectWith::TcpReset
                        }
                        _ => return Err(self.err(
                            n,
                            c,
                            line,
                            format!("REJECT with `{v}`"),
                            "REJECT [--reject-with icmp-port-unreachable|icmp-host-unreachable|icmp-net-unreachable|icmp-proto-unreachable|icmp-net-prohibited|icmp-host-prohibited|icmp-admin-prohibited|tcp-reset (with -p tcp)]",
                        )),
                    },
                };
                Target::Filter(FilterAction::Reject(with))
            }
            ("RETURN", _) => Target::Return,
            (c, _)
                if c.chars().all(|x| {
                    x.is_ascii_uppercase() || x.is_ascii_digit() || x == '-' || x == '_'
                }) && !matches!(
                    c,
                    "DNAT"
                        | "SNAT"
                        | "MASQUERADE"
                        | "REDIRECT"
                        | "NETMAP"
                        | "DROP"
                        | "REJECT"
                        | "LOG"
                        | "MARK"
                        | "CONNMARK"
                        | "TPROXY"
                        | "NOTRACK"
                        | "CT"
                        | "TCPMSS"
                ) =>
            {
                Target::Jump(c.to_string())
            }
            (c, _) if c.chars().any(|x| x.is_ascii_lowercase()) => Target::Jump(c.to_string()),
            (c, _) => {
                return Err(self.err(
                    n,
                    tcol,
                    line,
                    format!("target `{c}` is not modelled in the {table} table"),
                    SUPPORTED_TARGETS,
                ))
            }
        };
        for (o, _, c) in topts {
            if !used.contains(&o.as_str()) {
                return Err(self.err(
                    n,
                    *c,
                    line,
                    format!("target option `{o}` is not modelled"),
                    SUPPORTED_TARGETS,
                ));
            }
        }
        Ok(t)
    }
}

/// `--random-fully` or `--random` on SNAT/MASQUERADE (both given: the
/// kernel's flags are a set, and fully-random decides the offset).
fn port_flag(want: &mut impl FnMut(&'static str) -> Option<(String, usize)>) -> PortFlag {
    let fully = want("--random-fully").is_some();
    let random = want("--random").is_some();
    match (fully, random) {
        (true, _) => PortFlag::FullyRandom,
        (false, true) => PortFlag::Random,
        (false, false) => PortFlag::Profile,
    }
}
