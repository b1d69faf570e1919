//! Running a scenario variant: build the world from its [`Model`](crate::model::Model), run
//! each step in virtual time, and check its expectations against what
//! happened (the step's outcome and the traces of the frames it caused).
//!
//! A step starts `delay` after the previous one ended. A `background` step
//! is started and left running; it is finished (or given up on at its
//! time limit) when the scenario's other steps are done, and its traces
//! are every frame from its start to then.

mod act;
mod check;
mod inspect;

use crate::build::{build, Built};
use crate::diag::Problem;
use crate::expect::{Behaviour, Outcome};
use crate::load::{Loaded, VariantRef};
use crate::model::{HostIx, StepSpec, L4};
use natsim_apps::fate::MessageFate;
use natsim_nat::Instant;
use natsim_sim::{AppEvent, FrameTrace};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::SocketAddrV4;
use std::time::Duration;

/// After a step's outcome, frames still in flight (answers, RSTs) land.
const SETTLE: Duration = Duration::from_millis(200);

/// The result of one step.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StepResult {
    /// 1-based, in file order.
    pub number: usize,
    pub name: String,
    pub action: String,
    pub expected: Vec<String>,
    pub outcome: Option<Outcome>,
    pub actual: String,
    pub pass: bool,
    /// Why each failed expectation failed.
    pub failures: Vec<String>,
    pub started: Instant,
    pub ended: Instant,
    /// Ids of the frame traces this step caused.
    pub traces: Vec<u64>,
    pub log: Vec<AppEvent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// A send-mail step: where the message ended up, its path, and the
    /// NDR or bounce body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mail: Option<MessageFate>,
}

/// The result of one variant (or the base scenario).
#[derive(Clone, Debug, serde::Serialize)]
pub struct VariantResult {
    pub file: String,
    pub title: String,
    pub source: Option<String>,
    pub variant: String,
    pub lesson: Option<String>,
    pub seed: u64,
    pub pass: bool,
    pub steps: Vec<StepResult>,
    pub traces: Vec<FrameTrace>,
    pub segments: Vec<String>,
    /// Hosts and routers in the order the file defines them.
    pub nodes: Vec<natsim_sim::NodeInfo>,
    #[serde(skip)]
    pub pcaps: Vec<(String, Vec<u8>)>,
}

impl VariantResult {
    /// `STEM--VARIANT--`: with a segment's name and `.pcap`, the file
    /// `natsim run --pcap DIR` writes for that segment's capture.
    pub fn pcap_prefix(&self) -> String {
        let stem = std::path::Path::new(&self.file)
            .file_stem()
            .map_or("scenario".into(), |s| s.to_string_lossy().to_string());
        format!("{stem}--{}--", self.variant)
    }

    pub fn pcap_file(&self, segment: &str) -> String {
        format!("{}{segment}.pcap", self.pcap_prefix())
    }
}

/// A NAT table row as `nat-table` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatRow {
    pub proto: L4,
    pub inside: SocketAddrV4,
    pub outside: SocketAddrV4,
}

/// What a step produced, for the expectations to look at.
#[derive(Clone, Debug, Default)]
pub struct Actual {
    pub outcome: Option<Outcome>,
    pub text: String,
    pub detail: String,
    pub after_secs: Option<f64>,
    pub via: Option<String>,
    pub endpoint: Option<String>,
    pub stage: Option<String>,
    pub answers: Vec<String>,
    pub status: Option<u16>,
    pub mapping: Option<Behaviour>,
    pub filtering: Option<Behaviour>,
    pub icmp: Option<(u8, u8)>,
    /// Sources the scenario's listeners saw during the step.
    pub seen_from: Vec<SocketAddrV4>,
    pub nat: Vec<NatRow>,
    /// A send-mail step: where the message ended up.
    pub mail: Option<MessageFate>,
}

/// A step under way.
struct Open {
    index: usize,
    /// The client apps the step started: stopped when it ends.
    apps: Vec<natsim_sim::AppId>,
    running: act::Running,
    started: Instant,
    first_trace: u64,
    log_before: usize,
}

fn open(b: &mut Built, m: &crate::model::Model, index: usize, kept: &mut act::Kept) -> Open {
    let st = &m.steps[index];
    b.sim.run_for(st.delay);
    let first_trace = b.sim.traces().len() as u64;
    let log_before = b.sim.logs().len();
    let started = b.sim.now();
    let running = act::start(b, m, st, kept);
    Open {
        index,
        apps: std::mem::take(&mut b.step_apps),
        running,
        started,
        first_trace,
        log_before,
    }
}

fn close(b: &mut Built, m: &crate::model::Model, st: &StepSpec, o: Open) -> StepResult {
    let deadline = o.started + st.limit;
    let left = deadline.saturating_duration_since(b.sim.now());
    let running = o.running;
    b.sim.run_until_pred(left, |s| act::done(&running, s));
    let mut actuals = act::finish_all(running, b, st.limit);
    // In-flight frames land (answers, the 221 and FINs); then the step's
    // clients end as a program does: a connect still in SYN-SENT is
    // dropped silently (RFC 9293 §3.10.4), open connections close with
    // FIN. Nothing of this step reaches the next one.
    b.sim.run_for(SETTLE);
    if !o.apps.is_empty() {
        for id in &o.apps {
            b.sim.stop_app(*id);
        }
        b.sim.run_for(SETTLE);
    }
    let ended = b.sim.now();
    let seen_from: Vec<SocketAddrV4> = b
        .listeners
        .iter()
        .filter_map(|(_, _, id)| b.sim.app::<natsim_apps::echo::EchoServer>(*id))
        .flat_map(|e| e.seen.iter())
        .filter(|(at, _)| *at >= o.started && *at <= ended)
        .map(|(_, src)| *src)
        .collect();
    let traces: Vec<&FrameTrace> = b
        .sim
        .traces()
        .iter()
        .filter(|t| t.id >= o.first_trace)
        .collect();
    // A group step cannot expect a source (load refuses it): only a
    // single step's actual carries what the listeners saw.
    if let ([(None, actual)], true) = (actuals.as_mut_slice(), st.each.is_empty()) {
        actual.seen_from = seen_from;
    }
    let mut failing = Vec::new();
    for (member, actual) in &mut actuals {
        if actual.text.is_empty() {
            actual.text = match actual.outcome {
                Some(x) => x.word().to_string(),
                None => "ended without an outcome".into(),
            };
        }
        let failures: Vec<String> = st
            .expect
            .iter()
            .filter_map(|e| check::holds(&e.expect, actual, &traces).err())
            .collect();
        if !failures.is_empty() {
            failing.push((*member, failures));
        }
    }
    let (outcome, text, failures, mail) = if st.each.is_empty() {
        let a = actuals.pop().map(|(_, a)| a).unwrap_or_default();
        let f = failing.pop().map(|(_, f)| f).unwrap_or_default();
        (a.outcome, a.text, f, a.mail)
    } else {
        group_summary(m, &actuals, failing)
    };
    StepResult {
        number: o.index + 1,
        name: st.name.clone(),
        action: st.action.name().to_string(),
        expected: st.expect.iter().map(|e| e.text.clone()).collect(),
        outcome,
        actual: text,
        pass: failures.is_empty(),
        failures,
        started: o.started,
        ended,
        traces: traces.iter().map(|t| t.id).collect(),
        log: b.sim.logs().into_iter().skip(o.log_before).collect(),
        note: st.note.clone(),
        mail,
    }
}

/// Members' failures listed in a group step's result; the rest are counted.
const MEMBER_FAILURES_SHOWN: usize = 10;

type Summary = (Option<Outcome>, String, Vec<String>, Option<MessageFate>);

/// One result for a `GROUP[*]` step: how many members ended each way
/// (`10000 members: 10000 connected`), the first failing members'
/// failures by name, and the outcome all shared (else the first failure's).
fn group_summary(
    m: &crate::model::Model,
    actuals: &[(Option<HostIx>, Actual)],
    failing: Vec<(Option<HostIx>, Vec<String>)>,
) -> Summary {
    let name = |h: Option<HostIx>| h.map_or("?", |h| m.hosts[h.0].name.as_str());
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, a) in actuals {
        *counts
            .entry(a.outcome.map_or("no outcome", |o| o.word()))
            .or_default() += 1;
    }
    let mut text = format!(
        "{} members: {}",
        actuals.len(),
        counts
            .iter()
            .map(|(w, n)| format!("{n} {w}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some((h, _)) = failing.first() {
        if let Some((_, a)) = actuals.iter().find(|(x, _)| x == h) {
            let _ = write!(text, " (first failing: {}: {})", name(*h), a.text);
        }
    }
    let outcome = match actuals.first() {
        Some((_, a)) if actuals.iter().all(|(_, x)| x.outcome == a.outcome) => a.outcome,
        _ => failing
            .first()
            .and_then(|(h, _)| actuals.iter().find(|(x, _)| x == h))
            .and_then(|(_, a)| a.outcome),
    };
    let more = failing.len().saturating_sub(MEMBER_FAILURES_SHOWN);
    let mut failures: Vec<String> = failing
        .iter()
        .take(MEMBER_FAILURES_SHOWN)
        .flat_map(|(h, fs)| fs.iter().map(move |f| format!("{}: {f}", name(*h))))
        .collect();
    if more > 0 {
        failures.push(format!("and {more} more members failed"));
    }
    let mail = actuals.first().and_then(|(_, a)| a.mail.clone());
    (outcome, text, failures, mail)
}

/// Runs one variant of a loaded file.
pub fn run_variant(
    l: &Loaded,
    v: VariantRef<'_>,
    seed_override: Option<u64>,
    keep_pcaps: bool,
) -> Result<VariantResult, Problem> {
    let m = v.model;
    let seed = seed_override.or(m.seed).unwrap_or(1);
    let mut b = build(m, seed).map_err(|e| Problem::whole_file(&l.file, e.to_string()))?;
    // Let ARP and listeners settle before the first step.
    b.sim.run_for(Duration::from_millis(100));
    let mut kept = act::Kept(vec![None; m.connections.len()]);
    let mut results: Vec<Option<StepResult>> = vec![None; m.steps.len()];
    let mut background = Vec::new();
    for (k, (st, slot)) in m.steps.iter().zip(results.iter_mut()).enumerate() {
        let o = open(&mut b, m, k, &mut kept);
        if st.background {
            background.push(o);
        } else {
            *slot = Some(close(&mut b, m, st, o));
        }
    }
    for o in background {
        let k = o.index;
        results[k] = Some(close(&mut b, m, &m.steps[k], o));
    }
    let steps: Vec<StepResult> = results.into_iter().flatten().collect();
    let pcaps = if keep_pcaps {
        (0..b.segments.len())
            .map(|k| {
                (
                    b.segments[k].clone(),
                    b.sim.pcap_bytes(natsim_sim::SegmentId(k)),
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(VariantResult {
        file: l.file.clone(),
        title: m.title.clone(),
        source: m.source.clone(),
        variant: v.name.to_string(),
        lesson: m.lesson.clone(),
        seed,
        pass: steps.iter().all(|s| s.pass),
        steps,
        traces: b.sim.traces().to_vec(),
        segments: b.segments.clone(),
        nodes: b.sim.topology(),
        pcaps,
    })
}
