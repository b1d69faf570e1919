//! `natsim`: run, check and explain NAT scenarios.
#![deny(unsafe_code)]

use clap::{Parser, Subcommand};
use natsim_scenario::{
    collect, explain::explain, load_file, report, run_variant, Loaded, Problem, VariantResult,
};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod verify;

// Output that never panics: a closed pipe (`natsim run | head`) must not
// turn a finished run into a crash, so write errors are ignored.
macro_rules! out {
    ($($t:tt)*) => {{ let _ = write!(std::io::stdout(), $($t)*); }};
}
macro_rules! outln {
    ($($t:tt)*) => {{ let _ = writeln!(std::io::stdout(), $($t)*); }};
}
macro_rules! err {
    ($($t:tt)*) => {{ let _ = write!(std::io::stderr(), $($t)*); }};
}
macro_rules! errln {
    ($($t:tt)*) => {{ let _ = writeln!(std::io::stderr(), $($t)*); }};
}

#[derive(Parser)]
#[command(name = "natsim", version, about = "Packet-level NAT router simulator: replay NAT failures and their workarounds", long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run every scenario and variant under the given files or folders.
    #[command(
        after_help = "Examples:\n  natsim run scenarios/\n  natsim run scenarios/kb/Q193863.toml --filter option-2 --pcap out/\n  natsim run scenarios/ --json results.json --junit junit.xml --seed 7"
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
        /// Write full results with traces as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Write JUnit XML for CI.
        #[arg(long)]
        junit: Option<PathBuf>,
        /// Only variants whose `file::variant` contains this text.
        #[arg(long)]
        filter: Option<String>,
        /// No progress line (it is only drawn when stderr is a terminal).
        #[arg(long, short)]
        quiet: bool,
    },
    /// Validate scenario files without running them.
    #[command(after_help = "Examples:\n  natsim check scenarios/\n  natsim check my-network.toml")]
    Check {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Narrate one scenario variant frame by frame, for teaching.
    #[command(
        after_help = "Examples:\n  natsim explain scenarios/kb/Q193863.toml\n  natsim explain scenarios/kb/KB291615.toml --variant ms-rpc-alg --step 1"
    )]
    Explain {
        file: PathBuf,
        /// Variant name (default: the base scenario).
        #[arg(long)]
        variant: Option<String>,
        /// Only this step (1-based).
        #[arg(long)]
        step: Option<usize>,
        /// Seed for the run (default: the file's `seed`, else 1).
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Check a router against the Linux kernel: the same topology in network
    /// namespaces, its NAT as nftables rules, the same probes through both.
    #[command(
        after_help = "Needs root, `ip`, `nft` and `conntrack` (exit 2 saying what is missing).\nPrints probe | kernel | natsim | agree and `N/N probes agree` last; exit 0 on full agreement, 1 otherwise.\n\nExamples:\n  sudo natsim verify --linux scenarios/nat-types.toml --variant linux\n  sudo natsim verify --linux scenarios/ftp.toml --router router\n  sudo natsim verify --linux scenarios/imported/docker-host.toml --rules my-docker-host.rules"
    )]
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
    Verify {
        /// Check against the Linux kernel (the only oracle so far).
        #[arg(long, required = true)]
        linux: bool,
        /// Scenario file.
        file: PathBuf,
        /// Only this variant (`base` for the base scenario).
        #[arg(long)]
        variant: Option<String>,
        /// Only this router.
        #[arg(long)]
        router: Option<String>,
        /// Load this ruleset (iptables-save or nft -j) into the router(s)
        /// instead of the file's `rules`: your own rules on the scenario's
        /// topology.
        #[arg(long)]
        rules: Option<PathBuf>,
    },
}

fn load_all(paths: &[PathBuf]) -> (Vec<Loaded>, Vec<(Vec<Problem>, String)>) {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for p in paths {
        let files = match collect(p) {
            Ok(f) => f,
            Err(e) => {
                bad.push((
                    vec![Problem {
                        file: p.display().to_string(),
                        line: 0,
                        col: 0,
                        message: format!("cannot read: {e}"),
                        hint: None,
                        span: 0..0,
                    }],
                    String::new(),
                ));
                continue;
            }
        };
        for f in files {
            match load_file(&f) {
                Ok(l) => ok.push(l),
                Err(ps) => {
                    let src = std::fs::read_to_string(&f).unwrap_or_default();
                    bad.push((ps, src));
                }
            }
        }
    }
    (ok, bad)
}

fn print_problems(bad: &[(Vec<Problem>, String)]) {
    for (ps, src) in bad {
        for p in ps {
            // One greppable line, then the snippet.
            errln!("{p}");
            if !src.is_empty() && p.line > 0 {
                errln!("{:?}", natsim_scenario::diag::report(p, src));
            }
        }
    }
}

fn write(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(d) = path.parent() {
        if !d.as_os_str().is_empty() {
            std::fs::create_dir_all(d)?;
        }
    }
    std::fs::write(path, text)
}

#[allow(clippy::too_many_arguments)]
fn run(
    paths: Vec<PathBuf>,
    seed: Option<u64>,
    pcap: Option<PathBuf>,
    json: Option<PathBuf>,
    junit: Option<PathBuf>,
    filter: Option<String>,
    quiet: bool,
) -> ExitCode {
    let (loaded, bad) = load_all(&paths);
    print_problems(&bad);
    let mut work = Vec::new();
    for l in &loaded {
        for v in l.variants() {
            let name = format!("{}::{}", l.file, v.map_or("base", |v| v.name.get_ref()));
            if filter.as_ref().is_none_or(|f| name.contains(f.as_str())) {
                work.push((l, v, name));
            }
        }
    }
    let mut results: Vec<VariantResult> = Vec::new();
    let total = work.len();
    // The progress line redraws itself; only a terminal shows that well.
    let progress = !quiet && std::io::stderr().is_terminal();
    for (k, (l, v, name)) in work.into_iter().enumerate() {
        if progress {
            err!("\r\x1b[2K[{}/{total}] {name}", k + 1);
            let _ = std::io::stderr().flush();
        }
        match run_variant(l, v, seed, pcap.is_some()) {
            Ok(r) => {
                if let Some(dir) = &pcap {
                    let stem = Path::new(&r.file)
                        .file_stem()
                        .map_or("scenario".into(), |s| s.to_string_lossy().to_string());
                    for (seg, bytes) in &r.pcaps {
                        let p = dir.join(format!("{stem}--{}--{seg}.pcap", r.variant));
                        if let Err(e) =
                            std::fs::create_dir_all(dir).and_then(|_| std::fs::write(&p, bytes))
                        {
                            errln!("\ncannot write {}: {e}", p.display());
                        }
                    }
                }
                results.push(r);
            }
            Err(p) => print_problems(&[(vec![p], l.src.clone())]),
        }
    }
    if progress && total > 0 {
        errln!("\r\x1b[2K");
    }
    out!("{}", report::table(&results));
    if let Some(p) = json {
        if let Err(e) = write(&p, &report::json(&results)) {
            errln!("cannot write {}: {e}", p.display());
            return ExitCode::from(2);
        }
    }
    if let Some(p) = junit {
        if let Err(e) = write(&p, &report::junit(&results)) {
            errln!("cannot write {}: {e}", p.display());
            return ExitCode::from(2);
        }
    }
    let failed = results.iter().any(|r| !r.pass);
    if !bad.is_empty() {
        ExitCode::from(2)
    } else if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn import_cmd(format: &str, file: &Path, ipsets: Option<&Path>) -> ExitCode {
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| format!("{}: cannot read: {e}", p.display()))
    };
    let (src, sets) = match (read(file), ipsets.map(read).transpose()) {
        (Ok(s), Ok(i)) => (s, i),
        (Err(e), _) | (_, Err(e)) => {
            errln!("{e}");
            return ExitCode::from(2);
        }
    };
    let name = file.display().to_string();
    let set_name = ipsets.map(|p| p.display().to_string());
    let sets = set_name.as_deref().zip(sets.as_deref());
    let looks_json = src.trim_start().starts_with('{');
    if (format == "nft") != looks_json {
        errln!("{name}: this does not look like {format} output");
        return ExitCode::from(2);
    }
    match natsim_import::import(&name, &src, sets) {
        Ok(imp) => {
            out!(
                "{}",
                natsim_import::render::router_block(&imp, &name, set_name.as_deref())
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            errln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Run {
            paths,
            seed,
            pcap,
            json,
            junit,
            filter,
            quiet,
        } => run(paths, seed, pcap, json, junit, filter, quiet),
        Cmd::Import {
            format,
            file,
            ipsets,
        } => import_cmd(&format, &file, ipsets.as_deref()),
        Cmd::Verify {
            linux: _,
            file,
            variant,
            router,
            rules,
        } => verify::run(
            &file,
            variant.as_deref(),
            router.as_deref(),
            rules.as_deref(),
            &mut |s| out!("{s}"),
        ),
        Cmd::Check { paths } => {
            let (ok, bad) = load_all(&paths);
            print_problems(&bad);
            for l in &ok {
                outln!(
                    "{}: ok ({} variants, {} steps)",
                    l.file,
                    l.scenario.variants.len() + 1,
                    l.scenario.steps.len()
                );
            }
            if bad.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            }
        }
        Cmd::Explain {
            file,
            variant,
            step,
            seed,
        } => {
            let l = match load_file(&file) {
                Ok(l) => l,
                Err(ps) => {
                    let src = std::fs::read_to_string(&file).unwrap_or_default();
                    print_problems(&[(ps, src)]);
                    return ExitCode::from(2);
                }
            };
            let v = match &variant {
                None => None,
                Some(name) => match l
                    .scenario
                    .variants
                    .iter()
                    .find(|v| v.name.get_ref() == name)
                {
                    Some(v) => Some(v),
                    None => {
                        let names: Vec<_> = l
                            .scenario
                            .variants
                            .iter()
                            .map(|v| v.name.get_ref().as_str())
                            .collect();
                        errln!(
                            "{}: no variant `{name}` (variants: {})",
                            l.file,
                            names.join(", ")
                        );
                        return ExitCode::from(2);
                    }
                },
            };
            match run_variant(&l, v, seed, false) {
                Ok(r) => {
                    out!("{}", explain(&r, step));
                    if r.pass {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                }
                Err(p) => {
                    print_problems(&[(vec![p], l.src.clone())]);
                    ExitCode::from(2)
                }
            }
        }
    }
}
