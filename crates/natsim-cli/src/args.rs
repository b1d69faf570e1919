//! The command line: `natsim`'s subcommands and their flags, as clap
//! parses them (the help text users see comes from these doc comments).

use clap::{Parser, Subcommand};
use natsim_scenario::report::{JsonLevel, Shard};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "natsim", version, about = "Packet-level NAT router simulator: replay NAT failures and their workarounds", long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub(crate) enum Cmd {
    /// Run every scenario and variant under the given files or folders.
    #[command(
        after_help = "Examples:\n  natsim run scenarios/\n  natsim run scenarios/kb/Q193863.toml --filter option-2 --pcap out/\n  natsim run scenarios/ --json results.json --junit junit.xml --seed 7\n  natsim run scenarios/ --shard 2/4 --junit junit-2.xml\n\nExit status: 0 every step passed; 1 a step failed; 2 a file or variant could not run, nothing ran, or a report could not be written."
    )]
    Run {
        /// Scenario files or folders (searched for *.toml).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Seed for every run (default: each file's `seed`, else 1).
        #[arg(long)]
        seed: Option<u64>,
        /// Write a pcap per segment per variant into this folder.
        #[arg(long)]
        pcap: Option<PathBuf>,
        /// Write results as JSON (schema_version, a summary, then each variant).
        #[arg(long)]
        json: Option<PathBuf>,
        /// How much the JSON holds: `summary` (status per variant), `steps`
        /// (every step's expectations, outcome and log) or `frames` (plus
        /// every frame trace with its segment and pcap frame number).
        #[arg(long, value_name = "summary|steps|frames", default_value = "steps")]
        json_level: JsonLevel,
        /// Write JUnit XML for CI.
        #[arg(long)]
        junit: Option<PathBuf>,
        /// Only variants whose `file::variant` contains this text.
        #[arg(long)]
        filter: Option<String>,
        /// Run shard K of N (1-based): the variants whose FNV-1a hash of
        /// `path::variant` (path relative to the folder given) falls in the
        /// K-th of N equal ranges.
        #[arg(long, value_name = "K/N")]
        shard: Option<Shard>,
        /// No progress line (it is only drawn when stderr is a terminal).
        #[arg(long, short)]
        quiet: bool,
        /// Treat lint warnings as errors: a file with warnings does not run.
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Draw every step of every scenario variant as a ladder diagram: one
    /// self-contained HTML file (no network fetches).
    #[command(
        after_help = "Examples:\n  natsim report scenarios/ --html report.html\n  natsim report scenarios/kb/Q193863.toml --html q.html --compare base,option-2"
    )]
    Report {
        /// Scenario files or folders (searched for *.toml).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The HTML file to write.
        #[arg(long, required = true)]
        html: PathBuf,
        /// Two variants side by side, step by step: `base,option-2` (a
        /// name, or a prefix: the first variant starting with it).
        #[arg(long, value_name = "A,B")]
        compare: Option<String>,
        /// Seed for every run (default: each file's `seed`, else 1).
        #[arg(long)]
        seed: Option<u64>,
        /// Only variants whose `file::variant` contains this text.
        #[arg(long)]
        filter: Option<String>,
    },
    /// Validate scenario files without running them.
    #[command(after_help = "Examples:\n  natsim check scenarios/\n  natsim check my-network.toml")]
    Check {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Treat lint warnings as errors.
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Print the scenario format as a JSON Schema (for editors), or as the
    /// Markdown reference that docs/scenarios.md holds.
    #[command(
        after_help = "Examples:\n  natsim schema > natsim.schema.json\n  natsim schema --markdown > docs/scenarios.md"
    )]
    Schema {
        #[arg(long)]
        markdown: bool,
    },
    /// Print the effective configuration of a scenario or variant, every
    /// default filled in and every name resolved (JSON).
    #[command(
        after_help = "Examples:\n  natsim show scenarios/office.toml\n  natsim show scenarios/office.toml --variant hairpin-off"
    )]
    Show {
        file: PathBuf,
        /// Variant name (default: the base scenario).
        #[arg(long)]
        variant: Option<String>,
    },
    /// Narrate one scenario variant frame by frame, for teaching.
    #[command(
        after_help = "Examples:\n  natsim explain scenarios/kb/Q193863.toml\n  natsim explain scenarios/kb/KB291615.toml --variant ms-rpc-alg --step 1\n  natsim explain scenarios/kb/Q193863.toml --step telnet-25\n  natsim explain scenarios/ftp.toml --variant ftp-alg-on --failed"
    )]
    Explain {
        file: PathBuf,
        /// Variant name (default: `base`, the scenario without variant).
        #[arg(long)]
        variant: Option<String>,
        /// Only this step: its number (as in the `run` table) or its name.
        #[arg(long)]
        step: Option<String>,
        /// Only the steps that did not go as expected.
        #[arg(long)]
        failed: bool,
        /// Seed for the run (default: the file's `seed`, else 1).
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Read a real ruleset and print a `[[router]]` block that loads it.
    #[command(
        after_help = "Examples:\n  iptables-save > host.rules && natsim import iptables-save host.rules\n  nft -j list ruleset > host.json && natsim import nft host.json\n  natsim import iptables-save office.rules --ipsets office.ipset"
    )]
    Import {
        /// `iptables-save` or `nft` (`nft -j list ruleset` JSON).
        #[arg(value_parser = ["iptables-save", "nft"])]
        format: String,
        file: PathBuf,
        /// An `ipset save` file for `-m set` matches.
        #[arg(long)]
        ipsets: Option<PathBuf>,
    },
    /// Check a router against the Linux kernel: the same topology in network
    /// namespaces, its NAT as nftables rules, the same probes through both.
    #[command(
        after_help = "Needs root, `ip`, `nft` and `conntrack` (exit 2 saying what is missing).\nPrints probe | kernel | natsim | agree and `N/N probes agree` last; exit 0 on full agreement, 1 otherwise.\n\nExamples:\n  sudo natsim verify --linux scenarios/nat-types.toml --variant linux\n  sudo natsim verify --linux scenarios/ftp.toml --router router\n  sudo natsim verify --linux --rules my.rules              (the router read off your ruleset)\n  sudo natsim verify --linux scenarios/imported/docker-host.toml --rules my-docker-host.rules"
    )]
    Verify {
        /// Check against the Linux kernel (the only oracle so far).
        #[arg(long, required = true)]
        linux: bool,
        /// Scenario file. Without one, `--rules` alone: the router's
        /// interfaces and addresses are read off the ruleset (and printed).
        #[arg(required_unless_present = "rules")]
        file: Option<PathBuf>,
        /// Only this variant (`base` for the base scenario).
        #[arg(long, requires = "file")]
        variant: Option<String>,
        /// Only this router.
        #[arg(long, requires = "file")]
        router: Option<String>,
        /// A ruleset (iptables-save or nft -j): with a scenario, loaded into
        /// its router(s) after their own rules; alone, the router to check.
        #[arg(long)]
        rules: Option<PathBuf>,
        /// An `ipset save` file for the ruleset's `-m set` matches (with
        /// `--rules` alone).
        #[arg(long, requires = "rules")]
        ipsets: Option<PathBuf>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// A doc comment attached to the wrong variant (as `verify`'s once was,
    /// above `import`) leaves one command without a description and gives
    /// another the wrong one.
    #[test]
    fn every_subcommand_says_what_it_does() {
        let cli = Cli::command();
        cli.clone().debug_assert();
        for sub in cli.get_subcommands() {
            let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
            assert!(
                !about.trim().is_empty(),
                "`{}` has no description",
                sub.get_name()
            );
        }
        let about = |name: &str| {
            let sub = cli.find_subcommand(name).unwrap();
            sub.get_about().unwrap().to_string()
        };
        assert!(about("import").contains("ruleset"), "{}", about("import"));
        assert!(
            about("verify").contains("Linux kernel"),
            "{}",
            about("verify")
        );
    }
}
