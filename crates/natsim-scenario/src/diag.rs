//! Located errors: file, line, column, what was expected, and a hint.

use std::ops::Range;

/// How bad a problem is: an error stops the file from loading; a warning
/// is reported and, with `--deny-warnings`, counts as an error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    #[default]
    Error,
    Warning,
}

/// One problem in a scenario file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub severity: Severity,
    pub message: String,
    pub hint: Option<String>,
    #[serde(skip)]
    pub span: Range<usize>,
}

impl Problem {
    /// A problem about the file as a whole (it cannot be read, say).
    pub fn whole_file(file: &str, message: impl Into<String>) -> Problem {
        Problem {
            file: file.into(),
            line: 0,
            col: 0,
            severity: Severity::Error,
            message: message.into(),
            hint: None,
            span: 0..0,
        }
    }
    pub fn is_warning(&self) -> bool {
        self.severity == Severity::Warning
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        if self.line == 0 {
            write!(f, "{}: {what}: {}", self.file, self.message)?;
        } else {
            write!(
                f,
                "{}:{}:{}: {what}: {}",
                self.file, self.line, self.col, self.message
            )?;
        }
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}

/// 1-based line and column (in characters) of byte offset `at`.
pub fn line_col(src: &str, at: usize) -> (usize, usize) {
    let at = at.min(src.len());
    let mut line = 1;
    let mut col = 1;
    for (i, c) in src.char_indices() {
        if i >= at {
            break;
        }
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    (line, col)
}

/// Builds problems against one source text.
#[derive(Clone, Copy, Debug)]
pub struct Ctx<'a> {
    pub file: &'a str,
    pub src: &'a str,
}

impl Ctx<'_> {
    pub fn at(
        &self,
        span: Range<usize>,
        message: impl Into<String>,
        hint: Option<&str>,
    ) -> Problem {
        let (line, col) = line_col(self.src, span.start);
        Problem {
            file: self.file.to_string(),
            line,
            col,
            severity: Severity::Error,
            message: message.into(),
            hint: hint.map(String::from),
            span,
        }
    }

    pub fn warn(
        &self,
        span: Range<usize>,
        message: impl Into<String>,
        hint: Option<&str>,
    ) -> Problem {
        Problem {
            severity: Severity::Warning,
            ..self.at(span, message, hint)
        }
    }
}

/// A miette report with the source snippet, for the CLI.
pub fn report(p: &Problem, src: &str) -> miette::Report {
    let label = miette::LabeledSpan::at(p.span.clone(), p.message.clone());
    let mut d =
        miette::MietteDiagnostic::new(format!("{}:{}:{}: {}", p.file, p.line, p.col, p.message))
            .with_labels(vec![label]);
    if let Some(h) = &p.hint {
        d = d.with_help(h.clone());
    }
    miette::Report::new(d)
        .with_source_code(miette::NamedSource::new(p.file.clone(), src.to_string()))
}
