//! Reports rendered from a suite's outcome: the terminal table, JSON and
//! JUnit XML. A [`Suite`] holds one [`Case`] per variant that ran and one
//! per file or variant that could not run, so a broken file shows in CI
//! as an error instead of vanishing.
//!
//! Names are stable: a case is named by its path relative to the folder
//! given (`kb/Q193863.toml`) and its variant, never by where the checkout
//! lives, so shards and reruns of one suite agree.

mod json;
mod junit;
mod shard;
mod table;

pub use json::{json, JsonLevel, SCHEMA_VERSION};
pub use junit::junit;
pub use shard::{fnv1a64, Shard};
pub use table::table;

use crate::diag::Problem;
use crate::run::VariantResult;
use std::time::Duration;

/// What became of one variant, or of a file that could not run.
#[derive(Clone, Debug)]
pub enum Outcome {
    Ran(Box<VariantResult>),
    /// It could not run: load or build problems, or nothing to check.
    Error {
        kind: ErrorKind,
        problems: Vec<Problem>,
    },
}

/// Why a case could not run, as the `type` of its JUnit `<error>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The file (or path) could not be read or validated.
    Load,
    /// The file loaded but its network could not be built.
    Build,
    /// It ran no step: nothing was checked.
    NoSteps,
}

impl ErrorKind {
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::Load => "load-error",
            ErrorKind::Build => "build-error",
            ErrorKind::NoSteps => "no-steps",
        }
    }
}

/// One entry of a suite.
#[derive(Clone, Debug)]
pub struct Case {
    /// The path relative to the folder given, `/`-separated.
    pub path: String,
    /// The file as given on the command line.
    pub file: String,
    /// `base` or the variant's name; `None` when the file did not load.
    pub variant: Option<String>,
    /// Wall time it took, where measured (only JUnit shows it: it is the
    /// one thing that differs between two runs of the same seed).
    pub wall: Option<Duration>,
    pub outcome: Outcome,
}

impl Case {
    /// A variant that ran. A result with no steps checked nothing, so it
    /// becomes an error case.
    pub fn ran(path: impl Into<String>, r: VariantResult, wall: Option<Duration>) -> Case {
        let path = path.into();
        let file = r.file.clone();
        let variant = Some(r.variant.clone());
        let outcome = if r.steps.is_empty() {
            Outcome::Error {
                kind: ErrorKind::NoSteps,
                problems: vec![Problem {
                    severity: crate::diag::Severity::Error,
                    file: r.file.clone(),
                    line: 0,
                    col: 0,
                    message: format!(
                        "variant `{}` has no steps, so nothing was checked",
                        r.variant
                    ),
                    hint: Some("add a [[step]] with an `expect`".into()),
                    span: 0..0,
                }],
            }
        } else {
            Outcome::Ran(Box::new(r))
        };
        Case {
            path,
            file,
            variant,
            wall,
            outcome,
        }
    }

    /// A file or variant that could not run.
    pub fn error(
        path: impl Into<String>,
        file: impl Into<String>,
        variant: Option<String>,
        kind: ErrorKind,
        problems: Vec<Problem>,
    ) -> Case {
        Case {
            path: path.into(),
            file: file.into(),
            variant,
            wall: None,
            outcome: Outcome::Error { kind, problems },
        }
    }

    /// `path::variant`, or the path alone for a file that did not load.
    pub fn name(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}::{v}", self.path),
            None => self.path.clone(),
        }
    }

    pub fn result(&self) -> Option<&VariantResult> {
        match &self.outcome {
            Outcome::Ran(r) => Some(r),
            Outcome::Error { .. } => None,
        }
    }

    pub fn status(&self) -> Status {
        match &self.outcome {
            Outcome::Ran(r) if r.pass => Status::Pass,
            Outcome::Ran(_) => Status::Fail,
            Outcome::Error { .. } => Status::Error,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail,
    Error,
}

impl Status {
    pub fn code(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Error => "error",
        }
    }
}

/// Everything one `natsim run` produced, in run order.
#[derive(Clone, Debug, Default)]
pub struct Suite {
    pub cases: Vec<Case>,
    /// The share of the suite this run was (`--shard K/N`).
    pub shard: Option<Shard>,
}

/// Counts over a suite.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// Cases: variants that ran plus files or variants that could not.
    pub cases: usize,
    pub passed: usize,
    pub failed: usize,
    pub errors: usize,
    pub steps: usize,
    pub steps_passed: usize,
    pub steps_failed: usize,
    /// Virtual time simulated over every variant, in microseconds.
    pub virtual_micros: u64,
}

impl Suite {
    /// A suite of variants that ran, named by their file as given (for
    /// library users that have no folder to be relative to).
    pub fn from_results(results: impl IntoIterator<Item = VariantResult>) -> Suite {
        Suite {
            cases: results
                .into_iter()
                .map(|r| Case::ran(r.file.replace('\\', "/"), r, None))
                .collect(),
            shard: None,
        }
    }

    pub fn summary(&self) -> Summary {
        let mut s = Summary {
            cases: self.cases.len(),
            ..Summary::default()
        };
        for c in &self.cases {
            match c.status() {
                Status::Pass => s.passed += 1,
                Status::Fail => s.failed += 1,
                Status::Error => s.errors += 1,
            }
            if let Some(r) = c.result() {
                s.steps += r.steps.len();
                s.steps_failed += r.steps.iter().filter(|x| !x.pass).count();
                s.virtual_micros += virtual_micros(r);
            }
        }
        s.steps_passed = s.steps - s.steps_failed;
        s
    }
}

/// Virtual time from the start of the run to the end of the last step.
pub fn virtual_micros(r: &VariantResult) -> u64 {
    r.steps.last().map_or(0, |s| s.ended.total_micros())
}

/// Seconds with microsecond precision, as JUnit and the JSON print them.
pub(crate) fn secs(micros: u64) -> String {
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

/// A problem as one line (plus its hint): `file:line:col: error: ...`, or
/// `file: error: ...` when it has no place in the file.
pub fn problem_line(p: &Problem) -> String {
    let mut s = if p.line > 0 {
        format!("{}:{}:{}: error: {}", p.file, p.line, p.col, p.message)
    } else {
        format!("{}: error: {}", p.file, p.message)
    };
    if let Some(h) = &p.hint {
        s.push_str("\n  hint: ");
        s.push_str(h);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: usize) -> Problem {
        Problem {
            severity: crate::diag::Severity::Error,
            file: "a.toml".into(),
            line,
            col: if line > 0 { 2 } else { 0 },
            message: "no such file".into(),
            hint: None,
            span: 0..0,
        }
    }

    #[test]
    fn a_problem_without_a_place_has_no_zero_position() {
        assert_eq!(problem_line(&p(0)), "a.toml: error: no such file");
        assert_eq!(problem_line(&p(4)), "a.toml:4:2: error: no such file");
    }

    #[test]
    fn seconds_print_with_six_decimals_as_surefire_time_allows() {
        assert_eq!(secs(0), "0.000000");
        assert_eq!(secs(21_512_106), "21.512106");
    }
}
