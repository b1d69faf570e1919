//! Whether an expectation holds for what a step produced: its [`Actual`]
//! outcome and the traces of the frames it caused.

use super::Actual;
use crate::expect::{Expect, Outcome};
use natsim_apps::fate::Fate;
use natsim_sim::FrameTrace;

fn lower(s: &str) -> String {
    s.to_lowercase()
}

fn trace_texts<'a>(traces: &'a [&FrameTrace]) -> impl Iterator<Item = &'a natsim_sim::Step> {
    traces
        .iter()
        .flat_map(|t| t.hops.iter().flat_map(|h| &h.steps))
}

fn is(e: &Expect, a: &Actual, traces: &[&FrameTrace]) -> bool {
    let outcome = |o: Outcome| {
        a.outcome
            .is_some_and(|got| got == o || crate::expect::outcome_implies(got, o))
    };
    match e {
        Expect::Anything => true,
        Expect::Outcome { outcome: o } => outcome(*o),
        Expect::Mailbox { address } => a.mail.as_ref().is_some_and(|m| {
            matches!(&m.fate, Fate::Delivered { mailbox } if mailbox.eq_ignore_ascii_case(address))
        }),
        Expect::Via { hop } => a.mail.as_ref().is_some_and(|m| {
            m.path().iter().any(|p| p == hop)
                || m.hops.iter().any(|h| {
                    h.server.eq_ignore_ascii_case(hop) || h.from.eq_ignore_ascii_case(hop)
                })
        }),
        Expect::Not { inner } => !is(inner, a, traces),
        Expect::Containing { outcome: o, text } => {
            let t = lower(text);
            outcome(*o) && (lower(&a.detail).contains(&t) || lower(&a.text).contains(&t))
        }
        Expect::TimedOutAfter { secs } => {
            outcome(Outcome::TimedOut)
                && a.after_secs
                    .is_some_and(|x| (x - secs).abs() <= (secs * 0.05).max(1.0))
        }
        Expect::ConnectedVia { endpoint } => {
            outcome(Outcome::Connected) && a.via.as_deref() == Some(endpoint.to_string().as_str())
        }
        Expect::EndpointReturned { endpoint } => {
            a.endpoint.as_deref() == Some(endpoint.to_string().as_str())
        }
        Expect::FailedAt { stage } => outcome(Outcome::Failed) && a.stage.as_deref() == Some(stage),
        Expect::Answer { value } => a
            .answers
            .iter()
            .any(|x| x.eq_ignore_ascii_case(value.trim_end_matches('.'))),
        Expect::Status { code } => a.status == Some(*code),
        Expect::Mapping { behaviour } => a.mapping == Some(*behaviour),
        Expect::Filtering { behaviour } => a.filtering == Some(*behaviour),
        Expect::SeenFrom { source } => a.seen_from.contains(source),
        Expect::Icmp { kind } => a
            .icmp
            .is_some_and(|(t, c)| t == kind.icmp_type && kind.code.is_none_or(|k| k == c)),
        Expect::NatMapping {
            proto,
            inside,
            outside,
        } => a
            .nat
            .iter()
            .any(|r| r.proto == *proto && r.inside == *inside && r.outside == *outside),
        Expect::NoNatMapping { proto, inside } => !a
            .nat
            .iter()
            .any(|r| r.proto == *proto && r.inside == *inside),
        Expect::Trace { disposition } => {
            traces.iter().any(|t| t.disposition.code() == *disposition)
        }
        Expect::TraceStep { kind } => trace_texts(traces)
            .any(|s| matches!(s, natsim_sim::Step::Nat { kind: k, .. } if k == kind)),
        Expect::TraceContaining { text } => {
            let t = lower(text);
            trace_texts(traces).any(|s| match s {
                natsim_sim::Step::Nat { text: x, .. }
                | natsim_sim::Step::Local { text: x }
                | natsim_sim::Step::Dropped { reason: x } => lower(x).contains(&t),
                natsim_sim::Step::Fragmented { pieces, mtu } => {
                    lower(&natsim_sim::Step::fragmented_text(*pieces, *mtu)).contains(&t)
                }
                _ => false,
            })
        }
    }
}

/// `Err` says why the expectation failed, with what happened instead.
pub fn holds(e: &Expect, a: &Actual, traces: &[&FrameTrace]) -> Result<(), String> {
    if is(e, a, traces) {
        return Ok(());
    }
    let got = match e {
        Expect::SeenFrom { .. } | Expect::Not { .. } if !a.seen_from.is_empty() => {
            let s: Vec<String> = a.seen_from.iter().map(|x| x.to_string()).collect();
            format!("{} (the server saw {})", a.text, s.join(", "))
        }
        Expect::SeenFrom { .. } => format!("{} (no server saw the request)", a.text),
        Expect::Containing { .. } | Expect::TraceContaining { .. } => {
            format!("{} (text compared case-insensitively)", a.text)
        }
        _ => a.text.clone(),
    };
    Err(format!("expected `{e}`, got `{got}`"))
}
