//! `natsim verify --linux`: a scenario's `linux`-profile routers checked
//! against the kernel (see the natsim-linux crate).

use natsim_linux::{render, verify, IfaceSpec, RouterSpec, VerifyError};
use natsim_nat::Role;
use natsim_scenario::diag::Ctx;
use natsim_scenario::load::{nat_config, parse_cidr};
use natsim_scenario::schema::Router;
use natsim_scenario::{load_file, Problem};
use std::path::Path;
use std::process::ExitCode;

/// A scenario router as verify's router spec; `Err` says why it is not
/// checked (no NAT, another profile, an ALG).
pub fn router_spec(r: &Router, cx: &Ctx<'_>) -> Result<Result<RouterSpec, String>, Problem> {
    let Some(nat) = &r.nat else {
        return Ok(Err("no NAT".into()));
    };
    if nat.profile.get_ref() != "linux" {
        return Ok(Err(format!("profile `{}`", nat.profile.get_ref())));
    }
    if !nat.algs.is_empty() {
        // The kernel's helpers (nf_conntrack_ftp) are a separate question.
        return Ok(Err("ALGs are not verified against the kernel yet".into()));
    }
    let (cfg, _) = nat_config(r, nat, cx)?;
    let mut ifaces = Vec::new();
    for i in &r.interfaces {
        let (addr, prefix_len) = parse_cidr(&i.address, cx)?;
        let role = match i.role.as_ref().map(|x| x.get_ref().as_str()) {
            Some("outside") => Role::Outside,
            _ => Role::Inside,
        };
        ifaces.push(IfaceSpec {
            name: i.name.get_ref().clone(),
            addr,
            prefix_len,
            role,
        });
    }
    Ok(Ok(RouterSpec {
        name: r.name.get_ref().clone(),
        ifaces,
        nat: cfg,
    }))
}

pub fn run(
    file: &Path,
    variant: Option<&str>,
    router: Option<&str>,
    rules: Option<&Path>,
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
    let cx = Ctx {
        file: &l.file,
        src: &l.src,
    };
    let variants: Vec<_> = l
        .variants()
        .into_iter()
        .filter(|v| variant.is_none_or(|n| v.map_or("base", |v| v.name.get_ref().as_str()) == n))
        .collect();
    if variants.is_empty() {
        print(&format!(
            "{}: no variant `{}`\n",
            l.file,
            variant.unwrap_or("")
        ));
        return ExitCode::from(2);
    }
    let mut specs: Vec<(String, RouterSpec)> = Vec::new();
    let mut seen = Vec::new();
    for v in variants {
        let s = l.effective(v);
        let vname = v.map_or("base", |v| v.name.get_ref().as_str());
        for r in &s.routers {
            if router.is_some_and(|n| n != r.name.get_ref()) {
                continue;
            }
            // --rules: the user's own ruleset on this router's interfaces.
            let mut r = r.clone();
            if let Some(path) = rules {
                let abs = std::env::current_dir()
                    .map(|d| d.join(path))
                    .unwrap_or(path.to_path_buf());
                r.rules = Some(toml::Spanned::new(0..0, abs.display().to_string()));
            }
            let r = &r;
            match router_spec(r, &cx) {
                Err(p) => {
                    print(&format!("{p}\n"));
                    return ExitCode::from(2);
                }
                Ok(Err(why)) => print(&format!(
                    "{} {vname} router {}: not verified ({why})\n",
                    l.file,
                    r.name.get_ref()
                )),
                Ok(Ok(spec)) => {
                    // Variants often repeat the base router unchanged.
                    let key = format!("{:?}{:?}", spec.ifaces, spec.nat.rules);
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
