//! `natsim verify --linux`: a scenario's `linux`-profile routers checked
//! against the kernel (see the natsim-linux crate).

use natsim_linux::{render, verify, IfaceSpec, RouterSpec, VerifyError};
use natsim_scenario::load_file;
use natsim_scenario::model;
use std::path::Path;
use std::process::ExitCode;

/// A scenario router as verify's router spec; `Err` says why it is not
/// checked (no NAT, another profile, an ALG).
pub fn router_spec(r: &model::RouterSpec) -> Result<RouterSpec, String> {
    let Some(cfg) = &r.nat else {
        return Err("no NAT".into());
    };
    if cfg.behaviour.name != "linux" {
        return Err(format!("profile `{}`", cfg.behaviour.name));
    }
    // The FTP ALG runs as the kernel's own helper (nf_conntrack_ftp); the
    // kernel has no endpoint-mapper helper to compare the EPM ALG with.
    if let Some(k) = cfg
        .algs
        .ports
        .values()
        .find(|k| **k != natsim_nat::AlgKind::Ftp)
    {
        return Err(format!(
            "the {} ALG has no kernel helper to compare with",
            k.name()
        ));
    }
    Ok(RouterSpec {
        name: r.name.clone(),
        ifaces: r
            .interfaces
            .iter()
            .map(|i| IfaceSpec {
                name: i.name.clone(),
                addr: i.addr,
                prefix_len: i.len,
                role: i.role,
            })
            .collect(),
        nat: cfg.clone(),
    })
}

/// `--rules FILE`: the user's own ruleset on this router's interfaces
/// (bound by name), after the scenario's own rules, in place of the
/// router's `rules = "..."` file if it has one (its `file_rules` last
/// rules and its filter).
fn with_rules(
    spec: &mut RouterSpec,
    file_rules: usize,
    path: &Path,
    ipsets: Option<&Path>,
) -> Result<(), String> {
    let keep = spec.nat.rules.rules.len().saturating_sub(file_rules);
    spec.nat.rules.rules.truncate(keep);
    let shown = path.display().to_string();
    let mut imp = read_rules(path, ipsets)?;
    let names: Vec<String> = spec.ifaces.iter().map(|i| i.name.clone()).collect();
    imp.bind(&names).map_err(|u| {
        format!(
            "{shown}:{}:{}: error: interface `{}` is not one of router `{}`'s interfaces",
            u.loc.line, u.loc.col, u.name, spec.name
        )
    })?;
    for rule in imp.rules.rules {
        spec.nat.rules.push(rule);
    }
    spec.nat.filter = imp.filter;
    Ok(())
}

/// A ruleset file (and its ipsets), imported; a located error otherwise.
fn read_rules(path: &Path, ipsets: Option<&Path>) -> Result<natsim_import::Imported, String> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: cannot read: {e}"))?;
    let sets = match ipsets {
        None => None,
        Some(p) => {
            let t = std::fs::read_to_string(p)
                .map_err(|e| format!("{}: cannot read: {e}", p.display()))?;
            Some((p.display().to_string(), t))
        }
    };
    natsim_import::import(
        &shown,
        &text,
        sets.as_ref().map(|(n, t)| (n.as_str(), t.as_str())),
    )
    .map_err(|e| {
        format!(
            "{}:{}:{}: error: {} (in `{}`)\n  hint: supported: {}",
            e.file, e.loc.line, e.loc.col, e.message, e.text, e.supported
        )
    })
}

/// `natsim verify --linux --rules FILE`: the router the ruleset describes,
/// its interfaces and addresses read off the rules and printed first.
pub fn run_rules(path: &Path, ipsets: Option<&Path>, print: &mut dyn FnMut(&str)) -> ExitCode {
    let imp = match read_rules(path, ipsets) {
        Ok(i) => i,
        Err(e) => {
            print(&format!("{e}\n"));
            return ExitCode::from(2);
        }
    };
    let (spec, guessed, notes) = match crate::guess::router_with_notes(&imp) {
        Ok(x) => x,
        Err(e) => {
            print(&format!("{}: {e}\n", path.display()));
            return ExitCode::from(2);
        }
    };
    print(&format!(
        "{}: no scenario given; the router as the rules describe it (a scenario file sets these exactly):\n",
        path.display()
    ));
    let width = guessed
        .iter()
        .map(|g| g.spec.name.len())
        .max()
        .unwrap_or(0)
        .max(10);
    for g in &guessed {
        let role = match g.spec.role {
            natsim_nat::Role::Inside => "inside",
            natsim_nat::Role::Outside => "outside",
        };
        print(&format!(
            "  {:<width$} {:>18}  {role:<7}  {}\n",
            g.spec.name,
            format!("{}/{}", g.spec.addr, g.spec.prefix_len),
            g.why
        ));
    }
    for n in &notes {
        print(&format!("  note: {n}\n"));
    }
    print("\n");
    run_specs(vec![(format!("{} router", path.display()), spec)], print)
}

pub fn run(
    file: &Path,
    variant: Option<&str>,
    router: Option<&str>,
    rules: Option<(&Path, Option<&Path>)>,
    print: &mut dyn FnMut(&str),
) -> ExitCode {
    let l = match load_file(file) {
        Ok(l) => l,
        Err(ps) => {
            for p in ps {
                print(&format!("{p}\n"));
            }
            return ExitCode::from(2);
        }
    };
    let variants: Vec<_> = l
        .variants()
        .into_iter()
        .filter(|v| variant.is_none_or(|n| v.name == n))
        .collect();
    if variants.is_empty() {
        let names: Vec<_> = l.variants().iter().map(|v| v.name).collect();
        print(&format!(
            "{}: no variant `{}` (variants: {})\n",
            l.file,
            variant.unwrap_or(""),
            names.join(", ")
        ));
        return ExitCode::from(2);
    }
    let mut specs: Vec<(String, RouterSpec)> = Vec::new();
    let mut seen = Vec::new();
    for v in variants {
        let vname = v.name;
        for r in &v.model.routers {
            if router.is_some_and(|n| n != r.name) {
                continue;
            }
            match router_spec(r) {
                Err(why) => print(&format!(
                    "{} {vname} router {}: not verified ({why})\n",
                    l.file, r.name
                )),
                Ok(mut spec) => {
                    if let Some((path, ipsets)) = rules {
                        if let Err(e) = with_rules(&mut spec, r.file_rules, path, ipsets) {
                            print(&format!("{e}\n"));
                            return ExitCode::from(2);
                        }
                    }
                    // Variants often repeat the base router unchanged.
                    // The whole config: rules alone would fold an ALG or
                    // filter variant into the base.
                    let key = format!("{:?}{:?}", spec.ifaces, spec.nat);
                    if !seen.contains(&key) {
                        seen.push(key);
                        specs.push((format!("{} {vname} router {}", l.file, spec.name), spec));
                    }
                }
            }
        }
    }
    if specs.is_empty() {
        print("no router with the `linux` profile to verify\n");
        return ExitCode::from(2);
    }
    run_specs(specs, print)
}

pub fn run_specs(specs: Vec<(String, RouterSpec)>, print: &mut dyn FnMut(&str)) -> ExitCode {
    let (mut agreed, mut total) = (0, 0);
    for (title, spec) in specs {
        match verify(spec) {
            Ok(rep) => {
                print(&format!("== {title} ==\n"));
                let table = render(&rep.results, 160);
                // The overall line comes last; drop the per-router one.
                let body = table.trim_end().rsplit_once('\n').map_or("", |(b, _)| b);
                print(&format!(
                    "{body}\n{}/{} probes agree for {title}\n\n",
                    rep.agreed(),
                    rep.results.len()
                ));
                agreed += rep.agreed();
                total += rep.results.len();
            }
            Err(e @ VerifyError::Missing(_)) => {
                print(&format!("natsim verify: {e}\n"));
                return ExitCode::from(2);
            }
            Err(e) => {
                print(&format!("natsim verify: {title}: {e}\n"));
                return ExitCode::from(2);
            }
        }
    }
    print(&format!("{agreed}/{total} probes agree\n"));
    if agreed == total {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
