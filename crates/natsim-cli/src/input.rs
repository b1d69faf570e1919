//! What the user gave: paths read into loaded scenario files (a missing
//! path or an empty folder is a problem with no place), and problems
//! printed against their source.

use natsim_scenario::report;
use natsim_scenario::{collect, load_file, Loaded, Problem};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One path given on the command line, read: its scenario files, each
/// loaded or not, named relative to it.
pub(crate) struct Given {
    /// (path relative to the one given, the file loaded, wall time it took)
    pub files: Vec<(String, Result<Loaded, Vec<Problem>>, Duration)>,
    /// The path itself is unusable (missing, unreadable, empty folder).
    pub problem: Option<Problem>,
    pub shown: String,
}

pub(crate) fn no_place(file: &str, message: impl Into<String>, hint: Option<&str>) -> Problem {
    Problem {
        hint: hint.map(String::from),
        ..Problem::whole_file(file, message)
    }
}

/// `f` relative to the folder `root` given (or its file name when a file
/// was given), `/`-separated: the same on every machine and checkout.
pub(crate) fn relative(root: &Path, f: &Path) -> String {
    let r = if root.is_dir() {
        f.strip_prefix(root).unwrap_or(f)
    } else {
        f.file_name().map_or(f, Path::new)
    };
    r.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Reads a file; a missing one is "no such file", not a located error.
/// Lint warnings are printed here; with `deny_warnings` they fail the load.
pub(crate) fn load(f: &Path, deny_warnings: bool) -> Result<Loaded, Vec<Problem>> {
    let shown = f.display().to_string();
    if !f.exists() {
        return Err(vec![no_place(&shown, "no such file", None)]);
    }
    let l = load_file(f)?;
    if deny_warnings && !l.warnings.is_empty() {
        return Err(l.warnings);
    }
    print_problems(&l.warnings, &l.src);
    Ok(l)
}

pub(crate) fn read_given(paths: &[PathBuf], deny_warnings: bool) -> Vec<Given> {
    paths
        .iter()
        .map(|p| {
            let shown = p.display().to_string();
            let mut g = Given {
                files: Vec::new(),
                problem: None,
                shown: shown.clone(),
            };
            if !p.exists() {
                g.problem = Some(no_place(&shown, "no such file or folder", None));
                return g;
            }
            match collect(p) {
                Err(e) => g.problem = Some(no_place(&shown, format!("cannot read: {e}"), None)),
                Ok(files) if files.is_empty() => {
                    g.problem = Some(no_place(
                        &shown,
                        "no scenario files (*.toml) in this folder",
                        None,
                    ))
                }
                Ok(files) => {
                    g.files = files
                        .iter()
                        .map(|f| {
                            let t0 = std::time::Instant::now();
                            let l = load(f, deny_warnings);
                            (relative(p, f), l, t0.elapsed())
                        })
                        .collect()
                }
            }
            g
        })
        .collect()
}

/// One report per problem: `file:line:col: error: message` with the
/// source snippet and hint under it, or one line when it has no place.
pub(crate) fn render_problem(p: &Problem, src: &str) -> String {
    if src.is_empty() || p.line == 0 {
        return report::problem_line(p);
    }
    let label = miette::LabeledSpan::at(p.span.clone(), p.message.clone());
    let what = if p.is_warning() { "warning" } else { "error" };
    let mut d = miette::MietteDiagnostic::new(format!(
        "{}:{}:{}: {what}: {}",
        p.file, p.line, p.col, p.message
    ))
    .with_labels(vec![label]);
    if let Some(h) = &p.hint {
        d = d.with_help(h.clone());
    }
    let r = miette::Report::new(d)
        .with_source_code(miette::NamedSource::new(p.file.clone(), src.to_string()));
    let theme = if std::io::stderr().is_terminal() {
        miette::GraphicalTheme::unicode()
    } else {
        miette::GraphicalTheme::unicode_nocolor()
    };
    let mut out = String::new();
    // No wrapping: the heading stays one greppable line whatever the path.
    let handler = miette::GraphicalReportHandler::new_themed(theme).with_wrap_lines(false);
    match handler.render_report(&mut out, r.as_ref()) {
        Ok(()) => out.trim_end().to_string(),
        Err(_) => report::problem_line(p),
    }
}

pub(crate) fn print_problems(ps: &[Problem], src: &str) {
    for p in ps {
        errln!("{}", render_problem(p, src));
    }
}

/// Source text to show problems against (empty if unreadable).
pub(crate) fn source_of(file: &str) -> String {
    std::fs::read_to_string(file).unwrap_or_default()
}

pub(crate) fn write(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(d) = path.parent() {
        if !d.as_os_str().is_empty() {
            std::fs::create_dir_all(d)?;
        }
    }
    std::fs::write(path, text)
}
