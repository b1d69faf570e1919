//! `natsim explain`: a narrated, frame-by-frame account for teaching,
//! rendered from the run's data — the steps' outcomes, each frame's hops
//! and the NAT's own trace steps. Nothing here re-derives a decision.

use crate::run::{StepResult, VariantResult};
use natsim_sim::{Disposition, FrameTrace, Step};
use std::fmt::Write;

/// A frame's fate in words.
pub fn disposition(d: &Disposition) -> String {
    match d {
        Disposition::InFlight => "still in flight when the run ended".into(),
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
        Disposition::HeldByNat { node } => {
            format!("held by {node}'s NAT until its datagram is complete (an IP fragment)")
        }
    }
}

/// A hop step in words (None: nothing worth saying).
pub fn step_line(s: &Step) -> Option<String> {
    Some(match s {
        Step::Nat { text, .. } => format!("NAT: {text}"),
        Step::Forwarded { next_hop } => format!("forwarded to {next_hop}"),
        Step::Local { text } => text.clone(),
        Step::Dropped { reason } => format!("dropped: {reason}"),
        Step::Fragmented { pieces, mtu } => Step::fragmented_text(*pieces, *mtu),
        Step::TtlDecremented { .. } | Step::Sent | Step::Received => return None,
    })
}

/// The TCP sequence and acknowledgment numbers of an Ethernet/IPv4/TCP
/// frame (RFC 9293 §3.1: bytes 4..12 of the header).
fn tcp_seq(f: &[u8]) -> Option<(u32, u32)> {
    if f.len() < 34 || f[12..14] != [0x08, 0x00] || f[23] != 6 {
        return None;
    }
    let off = 14 + usize::from(f[14] & 0x0f) * 4;
    let b = f.get(off + 4..off + 12)?;
    Some((
        u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
    ))
}

/// Whether `b` is `a` sent again: same sender, same TCP segment (summary
/// and sequence and acknowledgment numbers), same path over the same wires, same fate.
pub fn same_frame(a: &FrameTrace, b: &FrameTrace) -> bool {
    let path = |t: &FrameTrace| -> Vec<(String, String, Option<String>)> {
        t.legs
            .iter()
            .map(|l| (l.segment.clone(), l.from.clone(), l.to.clone()))
            .collect()
    };
    let seq = |t: &FrameTrace| t.legs.first().and_then(|l| tcp_seq(&l.bytes));
    a.origin == b.origin
        && a.summary == b.summary
        && a.disposition.code() == b.disposition.code()
        && seq(a).is_some()
        && seq(a) == seq(b)
        && path(a) == path(b)
}

/// A step's traces with identical retransmissions grouped: each group is
/// a frame and the copies its sender sent again, in order of first
/// sending (a retransmission repeats the sender's previous frame, whatever
/// others sent in between).
pub fn retransmissions<'a>(traces: &[&'a FrameTrace]) -> Vec<Vec<&'a FrameTrace>> {
    let mut out: Vec<Vec<&FrameTrace>> = Vec::new();
    let mut last: std::collections::BTreeMap<&str, usize> = Default::default();
    for t in traces {
        if let Some(&g) = last.get(t.origin.as_str()) {
            if same_frame(out[g][0], t) {
                out[g].push(t);
                continue;
            }
        }
        last.insert(t.origin.as_str(), out.len());
        out.push(vec![t]);
    }
    out
}

/// Why a router sent `t`, from the frame it answered (`reply_to`): that
/// frame's fate and the steps recorded for it.
pub fn why_answered(r: &VariantResult, t: &FrameTrace) -> Option<String> {
    let c = r.traces.get(t.reply_to? as usize)?;
    let nat_replied = c.hops.iter().any(|h| {
        h.steps.iter().any(|s| {
            matches!(
                s,
                Step::Nat {
                    kind: "replied",
                    ..
                }
            )
        })
    });
    Some(match &c.disposition {
        Disposition::AnsweredByNat { node, .. } if nat_replied => format!(
            "{node}'s NAT sent this in answer to frame #{}: its unsolicited policy is `reject` (the file's `unsolicited`, or the profile's default: `linux` rejects, as the kernel's own stack does), which answers traffic that no mapping or forward takes instead of dropping it silently",
            c.id
        ),
        Disposition::TtlExceeded { node } => format!(
            "{node} sent this because frame #{}'s TTL ran out there (RFC 1812 §5.3.1)",
            c.id
        ),
        Disposition::NoRoute { node } => {
            format!("{node} sent this because it has no route for frame #{}", c.id)
        }
        Disposition::HostUnreachable { node } => format!(
            "{node} sent this because nothing answered its ARP for frame #{}'s next hop",
            c.id
        ),
        Disposition::DeliveredToRouter { node } if t.origin.ends_with("(local stack)") => {
            let flags = t.summary.split_once('[').map_or("", |(_, f)| f);
            if t.summary.starts_with("tcp") && flags.split(']').next().unwrap_or("").contains('R') {
                format!(
                    "{node}'s own TCP/IP stack answered frame #{} with a RST: nothing listens on that port of the router (a closed port, RFC 9293 §3.10.7.1)",
                    c.id
                )
            } else {
                format!("{node}'s own TCP/IP stack answered frame #{}", c.id)
            }
        }
        Disposition::DeliveredToRouter { node } => {
            format!("{node} answered frame #{}, addressed to the router itself", c.id)
        }
        _ => format!("sent by {} in answer to frame #{}", t.origin, c.id),
    })
}

/// A step given as a 1-based number or a name; an unknown one is an
/// error listing the steps.
pub fn find_step(r: &VariantResult, spec: &str) -> Result<usize, String> {
    let by_num = spec
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=r.steps.len()).contains(n));
    if let Some(n) = by_num {
        return Ok(n);
    }
    if let Some(k) = r.steps.iter().position(|s| s.name == spec) {
        return Ok(k + 1);
    }
    let list: Vec<String> = r
        .steps
        .iter()
        .enumerate()
        .map(|(k, s)| format!("{} {}", k + 1, s.name))
        .collect();
    Err(format!(
        "no step `{spec}` in {} variant {} (steps: {})",
        r.file,
        r.variant,
        list.join(", ")
    ))
}

/// The narration of one variant; `only_step` limits it to one step (1-based).
pub fn explain(r: &VariantResult, only_step: Option<usize>) -> String {
    explain_steps(r, &|k, _| only_step.is_none_or(|n| n == k + 1))
}

/// The narration of the steps `keep(index, step)` selects (0-based index).
pub fn explain_steps(r: &VariantResult, keep: &dyn Fn(usize, &StepResult) -> bool) -> String {
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
        if !keep(k, s) {
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
        let traces: Vec<&FrameTrace> = s
            .traces
            .iter()
            .filter_map(|id| r.traces.get(*id as usize))
            .filter(|t| t.summary != "arp")
            .collect();
        for g in retransmissions(&traces) {
            let t = g[0];
            let _ = writeln!(
                o,
                "  frame #{} at {}: {} (from {})",
                t.id, t.at, t.summary, t.origin
            );
            if g.len() > 1 {
                let at: Vec<String> = g.iter().map(|t| t.at.to_string()).collect();
                let ids: Vec<String> = g.iter().map(|t| format!("#{}", t.id)).collect();
                let _ = writeln!(
                    o,
                    "    sent {} times, at {} ({}): identical retransmissions, each went the same way",
                    g.len(),
                    at.join(", "),
                    ids.join(", ")
                );
            }
            if let Some(why) = why_answered(r, t) {
                let _ = writeln!(o, "    why: {why}");
            }
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
            let fate = match (&t.disposition, t.hops.last()) {
                // Only a frame that never got past its sender is in flight;
                // one that reached a node is where it was last seen.
                (Disposition::InFlight, Some(h)) if t.hops.len() > 1 => {
                    format!("last seen at {}", h.node)
                }
                (d, _) => disposition(d),
            };
            let _ = writeln!(o, "    ⇒ {fate}");
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
        if let Some(m) = &s.mail {
            for h in &m.hops {
                let landed = if h.landed.is_empty() || h.landed == h.dialled {
                    String::new()
                } else {
                    format!(", landed on {}", h.landed)
                };
                let _ = writeln!(
                    o,
                    "  hop: {} → {} (dialled {}{landed})",
                    h.from,
                    if h.server.is_empty() { "?" } else { &h.server },
                    h.dialled
                );
            }
            if let Some(body) = &m.body {
                let _ = writeln!(o, "  returned to the sender:");
                for l in body.lines() {
                    let _ = writeln!(o, "    | {l}");
                }
            }
        }
        for f in &s.failures {
            let _ = writeln!(o, "  ! {f}");
        }
    }
    o
}
