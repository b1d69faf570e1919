//! The JSON report: `schema_version`, a summary block, then one entry per
//! case at the chosen level of detail. No wall time: the same seed gives
//! byte-identical JSON.

use super::{virtual_micros, Case, Outcome, Suite, Summary};
use crate::run::StepResult;
use natsim_sim::FrameTrace;
use serde::Serialize;

/// Bumped whenever a field changes meaning or goes away (adding one does
/// not bump it).
pub const SCHEMA_VERSION: u32 = 1;

/// How much each case carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JsonLevel {
    /// Status and counts per case.
    Summary,
    /// Plus every step: expected, actual, failures, log, trace ids.
    #[default]
    Steps,
    /// Plus every frame trace, each with the segment and pcap frame number
    /// of every wire it crossed.
    Frames,
}

impl std::str::FromStr for JsonLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<JsonLevel, String> {
        match s {
            "summary" => Ok(JsonLevel::Summary),
            "steps" => Ok(JsonLevel::Steps),
            "frames" => Ok(JsonLevel::Frames),
            _ => Err(format!("`{s}` is not summary, steps or frames")),
        }
    }
}

impl JsonLevel {
    fn code(self) -> &'static str {
        match self {
            JsonLevel::Summary => "summary",
            JsonLevel::Steps => "steps",
            JsonLevel::Frames => "frames",
        }
    }
}

#[derive(Serialize)]
struct Doc<'a> {
    schema_version: u32,
    level: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    shard: Option<String>,
    summary: Summary,
    cases: Vec<CaseJson<'a>>,
}

#[derive(Serialize)]
struct Diagnostic<'a> {
    file: &'a str,
    line: Option<usize>,
    col: Option<usize>,
    message: &'a str,
    hint: Option<&'a str>,
}

#[derive(Serialize)]
struct CaseJson<'a> {
    /// `path::variant`: the stable name (also the JUnit suite's).
    name: String,
    path: &'a str,
    file: &'a str,
    variant: Option<&'a str>,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    diagnostics: Vec<Diagnostic<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ran: Option<RanJson<'a>>,
}

#[derive(Serialize)]
struct RanJson<'a> {
    title: &'a str,
    source: Option<&'a str>,
    seed: u64,
    steps_total: usize,
    steps_failed: usize,
    /// Virtual time the variant simulated, in microseconds.
    virtual_micros: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    lesson: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    steps: Option<&'a [StepResult]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    segments: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    traces: Option<&'a [FrameTrace]>,
}

fn case_json(c: &Case, level: JsonLevel) -> CaseJson<'_> {
    let mut j = CaseJson {
        name: c.name(),
        path: &c.path,
        file: &c.file,
        variant: c.variant.as_deref(),
        status: c.status().code(),
        error_type: None,
        diagnostics: Vec::new(),
        ran: None,
    };
    match &c.outcome {
        Outcome::Error { kind, problems } => {
            j.error_type = Some(kind.code());
            j.diagnostics = problems
                .iter()
                .map(|p| Diagnostic {
                    file: &p.file,
                    line: (p.line > 0).then_some(p.line),
                    col: (p.line > 0).then_some(p.col),
                    message: &p.message,
                    hint: p.hint.as_deref(),
                })
                .collect();
        }
        Outcome::Ran(r) => {
            let frames = level == JsonLevel::Frames;
            j.ran = Some(RanJson {
                title: &r.title,
                source: r.source.as_deref(),
                seed: r.seed,
                steps_total: r.steps.len(),
                steps_failed: r.steps.iter().filter(|s| !s.pass).count(),
                virtual_micros: virtual_micros(r),
                lesson: (level != JsonLevel::Summary)
                    .then_some(r.lesson.as_deref())
                    .flatten(),
                steps: (level != JsonLevel::Summary).then_some(&r.steps[..]),
                segments: frames.then_some(&r.segments[..]),
                traces: frames.then_some(&r.traces[..]),
            });
        }
    }
    j
}

/// The suite as JSON at `level`.
pub fn json(suite: &Suite, level: JsonLevel) -> String {
    let doc = Doc {
        schema_version: SCHEMA_VERSION,
        level: level.code(),
        shard: suite.shard.map(|s| s.to_string()),
        summary: suite.summary(),
        cases: suite.cases.iter().map(|c| case_json(c, level)).collect(),
    };
    let mut s =
        serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}
