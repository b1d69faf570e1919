//! Rules that change no packet's fate, found before any rule is parsed:
//! a logging target (LOG, NFLOG, ULOG: "non-terminating", iptables-
//! extensions(8), rule traversal continues), a rule with no target (it only counts), and a jump to a user chain
//! whose every rule is one of these or a RETURN. Their matches cannot
//! matter (`-m limit --limit 3/min -j LOG` is as harmless as `-j LOG`), so
//! they are left out unparsed, and the import says how many.

use super::tokens;
use std::collections::{BTreeMap, BTreeSet};

/// The user chains of each table that change nothing.
#[derive(Default)]
pub(super) struct Inert {
    chains: BTreeSet<(String, String)>,
}

const LOGGING: [&str; 3] = ["LOG", "NFLOG", "ULOG"];

/// The chain a `-A` line appends to and its target (`-j`/`--jump`), if
/// it has one; `None` if the line does not read as tokens.
pub(super) fn chain_and_target(line: &str) -> Option<(String, Option<String>)> {
    let toks = tokens(line).ok()?;
    let after = |keys: &[&str]| {
        toks.iter()
            .position(|t| keys.contains(&t.s.as_str()))
            .and_then(|k| toks.get(k + 1))
            .map(|t| t.s.clone())
    };
    Some((after(&["-A", "--append"])?, after(&["-j", "--jump"])))
}

/// Whether `target` leaves the packet as it was, given the inert chains
/// known so far.
fn harmless(table: &str, target: Option<&str>, known: &BTreeSet<(String, String)>) -> bool {
    match target {
        None | Some("RETURN") => true,
        Some(t) => LOGGING.contains(&t) || known.contains(&(table.to_string(), t.to_string())),
    }
}

impl Inert {
    /// Reads the user chains and their rules' targets from iptables-save
    /// text; lines that do not parse are left to the full parser.
    pub fn scan(src: &str) -> Inert {
        let mut table = String::new();
        let mut user: BTreeMap<(String, String), Vec<Option<String>>> = BTreeMap::new();
        let mut gotos = BTreeSet::new();
        for line in src.lines().map(str::trim) {
            if let Some(t) = line.strip_prefix('*') {
                table = t.to_string();
            } else if let Some(rest) = line.strip_prefix(':') {
                let w: Vec<&str> = rest.split_whitespace().collect();
                if let (Some(name), Some(&"-")) = (w.first(), w.get(1)) {
                    user.insert((table.clone(), name.to_string()), Vec::new());
                }
            } else if line.starts_with("-A") {
                if let Some((chain, target)) = chain_and_target(line) {
                    if line.contains(" -g ") || line.contains(" --goto ") {
                        gotos.insert((table.clone(), chain.clone()));
                    }
                    if let Some(rules) = user.get_mut(&(table.clone(), chain)) {
                        rules.push(target);
                    }
                }
            }
        }
        // Least fixpoint: a chain joins once all its rules are harmless
        // with the chains found so far (a loop never joins).
        let mut chains = BTreeSet::new();
        loop {
            let before = chains.len();
            for ((table, name), rules) in &user {
                let key = (table.clone(), name.clone());
                if !chains.contains(&key)
                    && !gotos.contains(&key)
                    && rules.iter().all(|t| harmless(table, t.as_deref(), &chains))
                {
                    chains.insert(key);
                }
            }
            if chains.len() == before {
                break;
            }
        }
        Inert { chains }
    }

    /// Whether a rule of `chain` in `table` with `target` can be left out:
    /// it changes no packet's fate, or its chain as a whole changes none.
    pub fn skips(&self, table: &str, chain: &str, target: Option<&str>) -> bool {
        let rule_harmless = match target {
            None => true,
            Some(t) => {
                LOGGING.contains(&t) || self.chains.contains(&(table.to_string(), t.to_string()))
            }
        };
        rule_harmless
            || self
                .chains
                .contains(&(table.to_string(), chain.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_that_only_logs_and_returns_is_inert_and_so_are_jumps_to_it() {
        let src = "*filter\n:INPUT DROP [0:0]\n:ufw-logging-deny - [0:0]\n:ufw-deny - [0:0]\n:real - [0:0]\n\
            -A INPUT -m limit --limit 3/min -j ufw-logging-deny\n\
            -A INPUT -j real\n\
            -A ufw-logging-deny -m conntrack --ctstate INVALID -m limit --limit 3/min -j RETURN\n\
            -A ufw-logging-deny -m limit --limit 3/min -j LOG --log-prefix \"[UFW BLOCK] \"\n\
            -A ufw-deny -j ufw-logging-deny\n\
            -A real -j ufw-logging-deny\n\
            -A real -p tcp --dport 22 -j ACCEPT\nCOMMIT\n";
        let i = Inert::scan(src);
        assert!(i.skips("filter", "INPUT", Some("ufw-logging-deny")));
        assert!(
            i.skips("filter", "INPUT", Some("ufw-deny")),
            "inert by the fixpoint"
        );
        assert!(i.skips("filter", "INPUT", Some("LOG")));
        assert!(!i.skips("filter", "INPUT", Some("real")), "real accepts");
        assert!(!i.skips("filter", "real", Some("ACCEPT")));
        assert!(
            !i.skips("nat", "INPUT", Some("ufw-deny")),
            "another table's chain"
        );
    }
}
