//! `[[router]] rules = "file"`: a real ruleset loaded through natsim-import
//! and bound to the router's interfaces by name. Errors inside the rules
//! file name that file's line and column.

use crate::diag::{Ctx, Problem};
use crate::schema::{Router, S};
use natsim_import::{import, Imported};
use std::path::{Path, PathBuf};

/// `name` relative to the scenario file's folder.
pub fn resolve(cx: &Ctx<'_>, name: &str) -> PathBuf {
    let base = Path::new(cx.file).parent().unwrap_or(Path::new(""));
    base.join(name)
}

fn read(cx: &Ctx<'_>, field: &S<String>) -> Result<(String, String), Problem> {
    let path = resolve(cx, field.get_ref());
    let text = std::fs::read_to_string(&path).map_err(|e| {
        cx.at(
            field.span(),
            format!("cannot read `{}`: {e}", path.display()),
            Some("a path relative to this scenario file"),
        )
    })?;
    Ok((path.display().to_string(), text))
}

pub fn load(r: &Router, rules: &S<String>, cx: &Ctx<'_>) -> Result<Imported, Problem> {
    let (file, text) = read(cx, rules)?;
    let sets = match &r.ipsets {
        Some(f) => Some(read(cx, f)?),
        None => None,
    };
    let mut imp = import(
        &file,
        &text,
        sets.as_ref().map(|(f, s)| (f.as_str(), s.as_str())),
    )
    .map_err(|e| Problem {
        severity: crate::diag::Severity::Error,
        file: e.file.clone(),
        line: e.loc.line,
        col: e.loc.col,
        message: format!("{} (in `{}`)", e.message, e.text),
        hint: Some(format!("supported: {}", e.supported)),
        span: 0..0,
    })?;
    let names: Vec<&str> = r
        .interfaces
        .iter()
        .map(|i| i.name.get_ref().as_str())
        .collect();
    imp.bind(&names).map_err(|u| Problem {
        severity: crate::diag::Severity::Error,
        file: file.clone(),
        line: u.loc.line,
        col: u.loc.col,
        message: format!(
            "interface `{}` is not one of router `{}`'s interfaces",
            u.name,
            r.name.get_ref()
        ),
        hint: Some("name the router's interfaces as the ruleset does".into()),
        span: 0..0,
    })?;
    Ok(imp)
}
