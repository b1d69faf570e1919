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

/// Where a rule sends a packet, as far as this scan needs to know.
#[derive(Clone, PartialEq, Eq)]
pub(super) enum Goes {
    /// No `-j`: the rule only counts.
    On,
    /// `-j NAME` (a target or a user chain).
    Jump(String),
    /// `-g NAME`: never returns here, so never harmless.
    Goto,
}

/// The chain a `-A` line appends to and where the rule sends a packet;
/// `None` if the line does not read as tokens.
pub(super) fn chain_and_target(line: &str) -> Option<(String, Goes)> {
    let toks = tokens(line).ok()?;
    let after = |keys: &[&str]| {
        toks.iter()
            .position(|t| keys.contains(&t.s.as_str()))
            .and_then(|k| toks.get(k + 1))
            .map(|t| t.s.clone())
    };
    let goes = match (after(&["-j", "--jump"]), after(&["-g", "--goto"])) {
        (_, Some(_)) => Goes::Goto,
        (Some(t), None) => Goes::Jump(t),
        (None, None) => Goes::On,
    };
    Some((after(&["-A", "--append"])?, goes))
}

/// Whether a rule that `goes` so leaves the packet as it was, given the
/// inert chains `known` so far; a RETURN counts only inside a chain
/// being judged whole (`returns`).
fn harmless(table: &str, goes: &Goes, returns: bool, known: &BTreeSet<(String, String)>) -> bool {
    match goes {
        Goes::On => true,
        Goes::Goto => false,
        Goes::Jump(t) if t == "RETURN" => returns,
        Goes::Jump(t) => {
            LOGGING.contains(&t.as_str()) || known.contains(&(table.to_string(), t.clone()))
        }
    }
}

impl Inert {
    /// Reads the user chains and their rules' targets from iptables-save
    /// text; lines that do not parse are left to the full parser.
    pub fn scan(src: &str) -> Inert {
        let mut table = String::new();
        let mut user: BTreeMap<(String, String), Vec<Goes>> = BTreeMap::new();
        for line in src.lines().map(str::trim) {
            if let Some(t) = line.strip_prefix('*') {
                table = t.to_string();
            } else if let Some(rest) = line.strip_prefix(':') {
                let w: Vec<&str> = rest.split_whitespace().collect();
                if let (Some(name), Some(&"-")) = (w.first(), w.get(1)) {
                    user.insert((table.clone(), name.to_string()), Vec::new());
                }
            } else if line.starts_with("-A") {
                if let Some((chain, goes)) = chain_and_target(line) {
                    if let Some(rules) = user.get_mut(&(table.clone(), chain)) {
                        rules.push(goes);
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
                if !chains.contains(&key) && rules.iter().all(|g| harmless(table, g, true, &chains))
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

    /// Whether a rule of `chain` in `table` that `goes` so can be left
    /// out: it changes no packet's fate, or its chain as a whole changes
    /// none.
    pub fn skips(&self, table: &str, chain: &str, goes: &Goes) -> bool {
        harmless(table, goes, false, &self.chains)
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
        let jump = |t: &str| Goes::Jump(t.into());
        assert!(i.skips("filter", "INPUT", &jump("ufw-logging-deny")));
        assert!(
            i.skips("filter", "INPUT", &jump("ufw-deny")),
            "inert by the fixpoint"
        );
        assert!(i.skips("filter", "INPUT", &jump("LOG")));
        assert!(!i.skips("filter", "INPUT", &jump("real")), "real accepts");
        assert!(!i.skips("filter", "real", &jump("ACCEPT")));
        assert!(
            !i.skips("nat", "INPUT", &jump("ufw-deny")),
            "another table's chain"
        );
    }
}
