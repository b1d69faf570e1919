//! natsim-scenario: the TOML scenario format, its validation with located
//! errors, the runner, expectations and reports.
//!
//! ## Map
//! * [`schema`]: the file format (serde, `deny_unknown_fields`, spans);
//!   [`patch`]: variants as patches over the file's tree;
//! * [`load`]: reading a file → for the base and each variant, [`lower`]
//!   (parse and resolve into the typed [`model`]) and [`lint`];
//!   [`parse`] holds the leaf parsers, [`expect`] the expectation language;
//! * [`build`]: model → `natsim_sim::Sim` with apps;
//! * [`run`]: steps in virtual time, checked expectations;
//! * [`report`]: table, JSON, JUnit; [`explain`]: the narration.
//!
//! Dependencies point one way: `load` → `lower`/`lint`/`patch` →
//! `model`/`parse`/`expect`; `run` → `build` → `model`. Nothing past
//! `load` parses a string or looks a node up by name.
//!
//! Deterministic: the same file and seed give the same results, traces and
//! captures. No input makes it panic.
#![deny(unsafe_code)]

pub mod build;
pub mod diag;
pub mod expect;
pub mod explain;
pub mod l4;
pub mod lint;
pub mod load;
pub mod lower;
pub mod model;
mod nat_json;
pub mod parse;
pub mod patch;
pub mod reference;
pub mod report;
pub mod rules;
pub mod run;
pub mod schema;

pub use diag::{Problem, Severity};
pub use load::{load_file, load_str, Loaded, VariantRef};
pub use run::{run_variant, StepResult, VariantResult};

/// Scenario files under `path` (a file, or a folder searched recursively
/// for `*.toml`), sorted.
pub fn collect(path: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    if path.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.path());
        for e in entries {
            let p = e.path();
            if p.is_dir() {
                out.extend(collect(&p)?);
            } else if p.extension().is_some_and(|x| x == "toml") {
                out.push(p);
            }
        }
    } else {
        out.push(path.to_path_buf());
    }
    Ok(out)
}
