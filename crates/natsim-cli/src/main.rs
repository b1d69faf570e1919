//! `natsim`: run, check and explain NAT scenarios.
#![deny(unsafe_code)]

use clap::Parser;
use natsim_scenario::explain::{explain_steps, find_step};
use natsim_scenario::report::{self, Case, ErrorKind, JsonLevel, Shard, Suite};
use natsim_scenario::{run_variant, VariantResult};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod args;
mod guess;
mod verify;
use args::{Cli, Cmd};

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

// After the macros: textual scope.
mod input;
use input::{load, print_problems, read_given, source_of, write};

struct RunOpts {
    paths: Vec<PathBuf>,
    seed: Option<u64>,
    pcap: Option<PathBuf>,
    json: Option<PathBuf>,
    json_level: JsonLevel,
    junit: Option<PathBuf>,
    filter: Option<String>,
    shard: Option<Shard>,
    quiet: bool,
    deny_warnings: bool,
}

fn run(o: RunOpts) -> ExitCode {
    let given = read_given(&o.paths, o.deny_warnings);
    let mut suite = Suite {
        cases: Vec::new(),
        shard: o.shard,
    };
    let in_shard = |name: &str| o.shard.is_none_or(|s| s.owns(name));
    let mut work = Vec::new();
    let mut variants_seen = 0usize;
    let mut filtered_in = 0usize;
    for g in &given {
        if let Some(p) = &g.problem {
            // A path that is unusable is every shard's business.
            print_problems(std::slice::from_ref(p), "");
            suite.cases.push(Case::error(
                g.shown.clone(),
                g.shown.clone(),
                None,
                ErrorKind::Load,
                vec![p.clone()],
            ));
        }
        for (rel, loaded, wall) in &g.files {
            match loaded {
                Err(ps) => {
                    if in_shard(rel) {
                        let file = ps.first().map_or_else(|| rel.clone(), |p| p.file.clone());
                        print_problems(ps, &source_of(&file));
                        let mut c = Case::error(rel, file, None, ErrorKind::Load, ps.clone());
                        c.wall = Some(*wall);
                        suite.cases.push(c);
                    }
                }
                Ok(l) => {
                    for v in l.variants() {
                        variants_seen += 1;
                        let vname = v.name.to_string();
                        let full = format!("{}::{vname}", l.file);
                        if o.filter
                            .as_ref()
                            .is_some_and(|f| !full.contains(f.as_str()))
                        {
                            continue;
                        }
                        filtered_in += 1;
                        let key = format!("{rel}::{vname}");
                        if in_shard(&key) {
                            work.push((rel.clone(), l, v, vname));
                        }
                    }
                }
            }
        }
    }
    let mut nothing = None;
    if work.is_empty() {
        nothing = Some(if variants_seen == 0 {
            "nothing ran: no scenario loaded from the paths given".to_string()
        } else if filtered_in == 0 {
            format!(
                "nothing ran: --filter `{}` matches none of the {variants_seen} variants (it is matched against `file::variant`)",
                o.filter.as_deref().unwrap_or("")
            )
        } else {
            format!(
                "nothing ran: shard {} holds none of the {filtered_in} variants (shards go by an FNV-1a hash of `path::variant`); use fewer shards",
                o.shard.map_or_else(String::new, |s| s.to_string())
            )
        });
    }
    let total = work.len();
    // The progress line redraws itself; only a terminal shows that well.
    let progress = !o.quiet && std::io::stderr().is_terminal();
    for (k, (rel, l, v, vname)) in work.into_iter().enumerate() {
        if progress {
            err!("\r\x1b[2K[{}/{total}] {rel}::{vname}", k + 1);
            let _ = std::io::stderr().flush();
        }
        let t0 = std::time::Instant::now();
        let r = run_variant(l, v, o.seed, o.pcap.is_some());
        let wall = t0.elapsed();
        match r {
            Ok(r) => {
                if let Some(dir) = &o.pcap {
                    for (seg, bytes) in &r.pcaps {
                        let p = dir.join(r.pcap_file(seg));
                        if let Err(e) =
                            std::fs::create_dir_all(dir).and_then(|_| std::fs::write(&p, bytes))
                        {
                            errln!("\ncannot write {}: {e}", p.display());
                        }
                    }
                }
                let c = Case::ran(rel, r, Some(wall));
                if let report::Outcome::Error { problems, .. } = &c.outcome {
                    print_problems(problems, "");
                }
                suite.cases.push(c);
            }
            Err(p) => {
                print_problems(std::slice::from_ref(&p), &l.src);
                let mut c =
                    Case::error(rel, l.file.clone(), Some(vname), ErrorKind::Build, vec![p]);
                c.wall = Some(wall);
                suite.cases.push(c);
            }
        }
    }
    if progress && total > 0 {
        errln!("\r\x1b[2K");
    }
    if let Some(n) = &nothing {
        errln!("natsim: {n}");
    }
    out!("{}", report::table(&suite));
    let mut code = 0;
    if let Some(p) = &o.json {
        if let Err(e) = write(p, &report::json(&suite, o.json_level)) {
            errln!("cannot write {}: {e}", p.display());
            code = 2;
        }
    }
    if let Some(p) = &o.junit {
        if let Err(e) = write(p, &report::junit(&suite)) {
            errln!("cannot write {}: {e}", p.display());
            code = 2;
        }
    }
    let sum = suite.summary();
    if code == 0 && (sum.errors > 0 || nothing.is_some()) {
        code = 2;
    } else if code == 0 && sum.failed > 0 {
        code = 1;
    }
    ExitCode::from(code)
}

fn check(paths: &[PathBuf], deny_warnings: bool) -> ExitCode {
    let mut bad = false;
    for g in read_given(paths, deny_warnings) {
        if let Some(p) = &g.problem {
            print_problems(std::slice::from_ref(p), "");
            bad = true;
        }
        for (_, l, _) in &g.files {
            match l {
                Ok(l) => outln!(
                    "{}: ok ({} variants, {} steps)",
                    l.file,
                    l.variants().len(),
                    l.base.steps.len()
                ),
                Err(ps) => {
                    let file = ps.first().map_or_else(String::new, |p| p.file.clone());
                    print_problems(ps, &source_of(&file));
                    bad = true;
                }
            }
        }
    }
    if bad {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

fn report_cmd(
    paths: Vec<PathBuf>,
    html: PathBuf,
    compare: Option<String>,
    seed: Option<u64>,
    filter: Option<String>,
) -> ExitCode {
    let compare = match compare.as_deref().map(|c| c.split_once(',')) {
        None => None,
        Some(Some((a, b))) if !a.is_empty() && !b.is_empty() => {
            Some((a.trim().to_string(), b.trim().to_string()))
        }
        Some(_) => {
            errln!("--compare takes two variant names separated by a comma, e.g. `base,option-2`");
            return ExitCode::from(2);
        }
    };
    let mut bad = false;
    let mut results: Vec<VariantResult> = Vec::new();
    for g in read_given(&paths, false) {
        if let Some(p) = &g.problem {
            print_problems(std::slice::from_ref(p), "");
            bad = true;
        }
        for (_, l, _) in &g.files {
            let l = match l {
                Ok(l) => l,
                Err(ps) => {
                    let file = ps.first().map_or_else(String::new, |p| p.file.clone());
                    print_problems(ps, &source_of(&file));
                    bad = true;
                    continue;
                }
            };
            for v in l.variants() {
                let name = format!("{}::{}", l.file, v.name);
                if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
                    continue;
                }
                match run_variant(l, v, seed, false) {
                    Ok(r) => results.push(r),
                    Err(p) => {
                        print_problems(std::slice::from_ref(&p), &l.src);
                        bad = true;
                    }
                }
            }
        }
    }
    if let Some((a, b)) = &compare {
        let names: Vec<&str> = results.iter().map(|r| r.variant.as_str()).collect();
        for n in [a, b] {
            if !names.iter().any(|v| v == n || v.starts_with(n.as_str())) {
                errln!(
                    "--compare: no variant `{n}` (variants: {})",
                    names.join(", ")
                );
                return ExitCode::from(2);
            }
        }
    }
    let page = natsim_report::html(&results, &natsim_report::Options { compare });
    if let Err(e) = write(&html, &page) {
        errln!("cannot write {}: {e}", html.display());
        return ExitCode::from(2);
    }
    outln!(
        "wrote {} ({} variants, {} bytes)",
        html.display(),
        results.len(),
        page.len()
    );
    if bad {
        ExitCode::from(2)
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
            json_level,
            junit,
            filter,
            shard,
            quiet,
            deny_warnings,
        } => run(RunOpts {
            paths,
            seed,
            pcap,
            json,
            json_level,
            junit,
            filter,
            shard,
            quiet,
            deny_warnings,
        }),
        Cmd::Check {
            paths,
            deny_warnings,
        } => check(&paths, deny_warnings),
        Cmd::Import {
            format,
            file,
            ipsets,
        } => import_cmd(&format, &file, ipsets.as_deref()),
        Cmd::Verify {
            linux: _,
            file: None,
            rules: Some(rules),
            ipsets,
            ..
        } => verify::run_rules(&rules, ipsets.as_deref(), &mut |s| out!("{s}")),
        Cmd::Verify {
            linux: _,
            file,
            variant,
            router,
            rules,
            ipsets,
        } => verify::run(
            file.as_deref().unwrap_or(Path::new("")),
            variant.as_deref(),
            router.as_deref(),
            rules.as_deref().map(|r| (r, ipsets.as_deref())),
            &mut |s| out!("{s}"),
        ),
        Cmd::Report {
            paths,
            html,
            compare,
            seed,
            filter,
        } => report_cmd(paths, html, compare, seed, filter),
        Cmd::Schema { markdown } => {
            if markdown {
                out!("{}", natsim_scenario::reference::markdown());
            } else {
                let schema = natsim_scenario::reference::json_schema();
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&schema).unwrap_or_default()
                );
            }
            ExitCode::SUCCESS
        }
        Cmd::Show { file, variant } => {
            let l = match load(&file, false) {
                Ok(l) => l,
                Err(ps) => {
                    print_problems(&ps, &source_of(&file.display().to_string()));
                    return ExitCode::from(2);
                }
            };
            let name = variant.as_deref().unwrap_or("base");
            let Some(v) = l.variant(name) else {
                let names: Vec<_> = l.variants().iter().map(|v| v.name).collect();
                errln!(
                    "{}: no variant `{name}` (variants: {})",
                    l.file,
                    names.join(", ")
                );
                return ExitCode::from(2);
            };
            match serde_json::to_string_pretty(v.model) {
                Ok(j) => {
                    outln!("{j}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    errln!("cannot render: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Cmd::Explain {
            file,
            variant,
            step,
            failed,
            seed,
        } => {
            let l = match load(&file, false) {
                Ok(l) => l,
                Err(ps) => {
                    print_problems(&ps, &source_of(&file.display().to_string()));
                    return ExitCode::from(2);
                }
            };
            let name = variant.as_deref().unwrap_or("base");
            let Some(v) = l.variant(name) else {
                let names: Vec<_> = l.variants().iter().map(|v| v.name).collect();
                errln!(
                    "{}: no variant `{name}` (variants: {})",
                    l.file,
                    names.join(", ")
                );
                return ExitCode::from(2);
            };
            match run_variant(&l, v, seed, false) {
                Ok(r) => {
                    let only = match step.as_deref().map(|s| find_step(&r, s)) {
                        None => None,
                        Some(Ok(n)) => Some(n),
                        Some(Err(why)) => {
                            errln!("{why}");
                            return ExitCode::from(2);
                        }
                    };
                    out!(
                        "{}",
                        explain_steps(&r, &|k, s| only.is_none_or(|n| n == k + 1)
                            && (!failed || !s.pass))
                    );
                    if r.pass {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                }
                Err(p) => {
                    print_problems(std::slice::from_ref(&p), &l.src);
                    ExitCode::from(2)
                }
            }
        }
    }
}
