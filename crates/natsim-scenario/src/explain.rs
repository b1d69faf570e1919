//! `natsim explain`: a narrated, frame-by-frame account for teaching,
//! rendered from the run's data — the steps' outcomes, each frame's hops
//! and the NAT's own trace steps. Nothing here re-derives a decision.

use crate::run::VariantResult;
use natsim_sim::{Disposition, Step};
use std::fmt::Write;

/// A frame's fate in words.
pub fn disposition(d: &Disposition) -> String {
    match d {
        Disposition::InFlight => "still in flight".into(),
        Disposition::Delivered { node } => format!("delivered to {node}"),
        Disposition::DeliveredToRouter { node } => format!("handed to {node}'s own stack"),
        Disposition::DroppedByNatFilter { node, reason } => {
            format!("DROPPED by {node}'s NAT filter ({reason})")
        }
        Disposition::AnsweredByNat { node, answer } => {
            format!("{node}'s NAT answered instead: {answer}")
        }
        Disposition::DroppedByNat { node, reason } => format!("DROPPED by {node}'s NAT ({reason})"),
        Disposition::NoRoute { node } => format!("DROPPED at {node}: no route"),
        Disposition::TtlExceeded { node } => format!("DROPPED at {node}: TTL exceeded"),
        Disposition::HostUnreachable { node } => {
            format!("DROPPED at {node}: next hop did not answer ARP")
        }
        Disposition::Lost { segment } => format!("lost on {segment}"),
        Disposition::DroppedByFault { rule } => format!("dropped by fault rule {rule}"),
        Disposition::Dropped { node, reason } => format!("dropped at {node}: {reason}"),
    }
}

/// A hop step in words (None: nothing worth saying).
pub fn step_line(s: &Step) -> Option<String> {
    Some(match s {
        Step::Nat { text, .. } => format!("NAT: {text}"),
        Step::Forwarded { next_hop } => format!("forwarded to {next_hop}"),
        Step::Local { text } => text.clone(),
        Step::Dropped { reason } => format!("dropped: {reason}"),
        Step::TtlDecremented { .. } | Step::Sent | Step::Received => return None,
    })
}

/// The narration of one variant; `only_step` limits it to one step (1-based).
pub fn explain(r: &VariantResult, only_step: Option<usize>) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{}", r.title);
    if let Some(s) = &r.source {
        let _ = writeln!(o, "source: {s}");
    }
    let _ = writeln!(o, "variant: {} (seed {})", r.variant, r.seed);
    if let Some(l) = &r.lesson {
        let _ = writeln!(o, "\nlesson: {}", l.trim());
    }
    for (k, s) in r.steps.iter().enumerate() {
        if only_step.is_some_and(|n| n != k + 1) {
            continue;
        }
        let _ = writeln!(
            o,
            "\n== step {}: {} ({}) at {} ==",
            k + 1,
            s.name,
            s.action,
            s.started
        );
        if let Some(n) = &s.note {
            let _ = writeln!(o, "{}", n.trim());
        }
        for l in &s.log {
            let _ = writeln!(o, "  [{}] {} {}: {}", l.at, l.host, l.app, l.text);
        }
        for id in &s.traces {
            let Some(t) = r.traces.get(*id as usize) else {
                continue;
            };
            if t.summary == "arp" {
                continue;
            }
            let _ = writeln!(
                o,
                "  frame #{} at {}: {} (from {})",
                t.id, t.at, t.summary, t.origin
            );
            for h in t.hops.iter().skip(1) {
                let via = match (&h.iface_in, &h.iface_out) {
                    (Some(i), Some(x)) => format!(" {i} → {x}"),
                    (Some(i), None) => format!(" in {i}"),
                    _ => String::new(),
                };
                let lines: Vec<String> = h.steps.iter().filter_map(step_line).collect();
                if lines.is_empty() {
                    let _ = writeln!(o, "    {}{via}", h.node);
                } else {
                    let _ = writeln!(o, "    {}{via}:", h.node);
                    for l in lines {
                        let _ = writeln!(o, "      - {l}");
                    }
                }
            }
            let _ = writeln!(o, "    ⇒ {}", disposition(&t.disposition));
        }
        let verdict = if s.pass {
            "as expected"
        } else {
            "NOT as expected"
        };
        let _ = writeln!(
            o,
            "  outcome: {} — {verdict} ({})",
            s.actual,
            s.expected.join("; ")
        );
        for f in &s.failures {
            let _ = writeln!(o, "  ! {f}");
        }
    }
    o
}
