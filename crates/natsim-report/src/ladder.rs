//! One step's ladder as data: columns (hosts and routers in topology
//! order) and a time-ordered list of items (arrows, drops, gaps, folded
//! bands). Everything comes from the step's traces: each [`Leg`](natsim_sim::trace::Leg) is one
//! frame on one wire, each NAT step is the engine's own record. The
//! drawing ([`crate::draw`]) lays this out; it decides nothing.
//! Retransmissions are grouped by `natsim explain`'s own rule
//! ([`retransmissions`]), so both say the same.

use crate::wire::{label, Label};
use natsim_nat::{Flow, Instant};
use natsim_scenario::explain::retransmissions;
use natsim_scenario::{StepResult, VariantResult};
use natsim_sim::{Disposition, FrameTrace, NodeInfo, Step};
use std::collections::BTreeSet;
use std::time::Duration;

/// Ladders with more arrows than this fold runs of bulk data.
pub const FOLD_ABOVE: usize = 200;
/// The shortest run of bulk arrows worth a band.
pub const FOLD_MIN_RUN: usize = 8;
/// A pause longer than this is drawn as a gap on the time axis.
pub const GAP: Duration = Duration::from_millis(900);

#[derive(Clone, Debug)]
pub struct Column {
    pub name: String,
    pub router: bool,
}

/// A drop drawn as ✗: at a node's column, or on the wire (lost, fault).
#[derive(Clone, Debug)]
pub struct Drop {
    pub reason: String,
    /// True when it happened on the wire rather than at the arrow's end.
    pub on_wire: bool,
    /// The dropping node's NAT narration (rule misses, the drop step).
    pub notes: Vec<String>,
}

/// One frame on one wire, or identical retransmissions of it.
#[derive(Clone, Debug)]
pub struct Arrow {
    pub from: usize,
    /// None: flooded, or dropped before the segment delivered it.
    pub to: Option<usize>,
    pub segment: String,
    pub label: Label,
    /// When each grouped copy went on the wire (one entry: no group).
    pub times: Vec<Instant>,
    /// The trace of the first copy and the leg's index in it.
    pub trace: u64,
    pub leg: usize,
    /// Every grouped copy's trace id.
    pub traces: Vec<u64>,
    /// The NAT's decision at the sending router (rule, mapping,
    /// before ⇒ after, ALG), as the engine narrated it.
    pub nat: Vec<String>,
    /// Set on the frame's last wire when it ended in a drop.
    pub drop: Option<Drop>,
    /// A router's own answer (RST, ICMP error) to another frame.
    pub reply_to: Option<u64>,
}

impl Arrow {
    pub fn at(&self) -> Instant {
        self.times[0]
    }
    pub fn last(&self) -> Instant {
        *self.times.last().unwrap_or(&Instant::ZERO)
    }
    /// How many frames (pcap entries) this arrow stands for.
    pub fn frames(&self) -> usize {
        self.times.len()
    }
    /// `SYN ×3 (0, 3, 9 s)`-style label for a group; the plain label else.
    pub fn text(&self) -> String {
        if self.times.len() == 1 {
            return self.label.text.clone();
        }
        let t0 = self.at();
        let offs: Vec<String> = self
            .times
            .iter()
            .map(|t| secs((*t - t0).as_secs_f64()))
            .collect();
        format!(
            "{} ×{} ({} s)",
            self.label.text,
            self.times.len(),
            offs.join(", ")
        )
    }
}

/// Seconds with no trailing zeros: 0, 3, 9.5, 0.25.
pub fn secs(s: f64) -> String {
    let t = format!("{s:.3}");
    let t = t.trim_end_matches('0').trim_end_matches('.');
    if t.is_empty() {
        "0".into()
    } else {
        t.to_string()
    }
}

/// A run of bulk data folded into one labelled band.
#[derive(Clone, Debug)]
pub struct Band {
    pub cols: (usize, usize),
    pub arrows: usize,
    pub frames: usize,
    pub bytes: usize,
    pub from: Instant,
    pub to: Instant,
}

#[derive(Clone, Debug)]
pub enum Item {
    Arrow(Box<Arrow>),
    Gap(Duration),
    Band(Band),
    /// The step's end and its outcome: a connect that gave up silently
    /// still shows when it gave up, after the gap since its last frame.
    End {
        at: Instant,
        outcome: String,
    },
}

#[derive(Clone, Debug)]
pub struct Ladder {
    pub columns: Vec<Column>,
    pub items: Vec<Item>,
    /// Frames (legs) the step caused; equals the arrows' and bands' sum.
    pub frames: usize,
}

/// Hosts and routers in topology order: segment by segment, a segment's
/// hosts before the routers that lead on to the next segment. Only the
/// nodes `shown` names get a column.
pub fn columns(nodes: &[NodeInfo], segments: &[String], shown: &BTreeSet<&str>) -> Vec<Column> {
    let mut order: Vec<&NodeInfo> = Vec::new();
    for seg in segments {
        let here = nodes.iter().filter(|n| n.segments.contains(seg));
        let (routers, hosts): (Vec<_>, Vec<_>) = here.partition(|n| n.router);
        order.extend(hosts.into_iter().chain(routers));
    }
    order.extend(nodes);
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    order
        .into_iter()
        .filter(|n| shown.contains(n.name.as_str()) && placed.insert(n.name.as_str()))
        .map(|n| Column {
            name: n.name.clone(),
            router: n.router,
        })
        .collect()
}

/// The nodes a step's frames touch (sent, received or passed through);
/// with none, the routers, so a frameless step still shows the network.
fn touched<'a>(r: &'a VariantResult, traces: &[&'a FrameTrace]) -> BTreeSet<&'a str> {
    let mut names: BTreeSet<&str> = BTreeSet::new();
    for t in traces {
        for l in &t.legs {
            names.insert(&l.from);
            if let Some(to) = &l.to {
                names.insert(to);
            }
        }
        for h in &t.hops {
            names.insert(&h.node);
        }
    }
    if names.is_empty() {
        names.extend(r.nodes.iter().filter(|n| n.router).map(|n| n.name.as_str()));
    }
    names
}

/// Why the frame ended, if it was a drop (the ✗ text), and whether on
/// the wire.
pub fn drop_of(d: &Disposition) -> Option<(String, Option<&str>, bool)> {
    Some(match d {
        Disposition::DroppedByNatFilter { node, reason }
        | Disposition::DroppedByNat { node, reason }
        | Disposition::Dropped { node, reason } => (reason.clone(), Some(node.as_str()), false),
        Disposition::AnsweredByNat { node, .. } => {
            ("answered by the NAT".into(), Some(node.as_str()), false)
        }
        Disposition::NoRoute { node } => ("no route".into(), Some(node.as_str()), false),
        Disposition::TtlExceeded { node } => ("TTL exceeded".into(), Some(node.as_str()), false),
        Disposition::HostUnreachable { node } => (
            "next hop did not answer ARP".into(),
            Some(node.as_str()),
            false,
        ),
        Disposition::Lost { segment } => (format!("lost on {segment}"), None, true),
        Disposition::DroppedByFault { rule } => (format!("fault rule {rule}"), None, true),
        // A held fragment is not a drop: its datagram goes on later.
        Disposition::InFlight
        | Disposition::Delivered { .. }
        | Disposition::DeliveredToRouter { .. }
        | Disposition::HeldByNat { .. } => return None,
    })
}

/// A rewrite as the endpoints it changed: `dst 203.0.113.1:135 ⇒ 192.168.1.10:135`.
fn rewrite(before: &Flow, after: &Flow) -> String {
    let mut parts = Vec::new();
    if before.src != after.src {
        parts.push(format!("src {} ⇒ {}", before.src, after.src));
    }
    if before.dst != after.dst {
        parts.push(format!("dst {} ⇒ {}", before.dst, after.dst));
    }
    if parts.is_empty() {
        parts.push("unchanged".into());
    }
    parts.join(", ")
}

/// The NAT narration of the hop at `node` (the engine's own steps).
fn nat_lines(t: &FrameTrace, node: &str) -> Vec<String> {
    let Some(h) = t.hops.iter().find(|h| h.node == node) else {
        return Vec::new();
    };
    h.steps
        .iter()
        .filter_map(|s| match s {
            Step::Nat {
                kind,
                text,
                before,
                after,
                ..
            } => match (*kind, before, after) {
                ("translated", Some(b), Some(a)) => Some(format!("NAT {}", rewrite(b, a))),
                ("icmp-inner-translated", Some(b), Some(a)) => {
                    Some(format!("quoted packet {}", rewrite(b, a)))
                }
                (
                    "rule-matched" | "static-rule" | "mapping-created" | "mapping-reused" | "alg"
                    | "pinhole-used" | "filter-admitted" | "hairpinned" | "replied" | "dropped"
                    | "near-miss",
                    _,
                    _,
                ) => Some(text.clone()),
                _ => None,
            },
            Step::Dropped { reason } => Some(format!("dropped: {reason}")),
            _ => None,
        })
        .collect()
}

fn col_of(columns: &[Column], node: &str) -> Option<usize> {
    // A router's own stack sends from the router's column.
    let node = node.strip_suffix(" (local stack)").unwrap_or(node);
    columns.iter().position(|c| c.name == node)
}

/// The ladder of one step.
pub fn build(r: &VariantResult, s: &StepResult) -> Ladder {
    let traces: Vec<&FrameTrace> = s
        .traces
        .iter()
        .filter_map(|id| r.traces.get(*id as usize))
        .collect();
    // A column per node the step involves: a group of a thousand desks
    // would otherwise be a thousand columns on every ladder.
    let columns = columns(&r.nodes, &r.segments, &touched(r, &traces));
    let mut arrows = Vec::new();
    let mut frames = 0;
    for g in retransmissions(&traces) {
        let t = g[0];
        frames += g.iter().map(|t| t.legs.len()).sum::<usize>();
        let fate = drop_of(&t.disposition);
        let n = t.legs.len();
        for (k, leg) in t.legs.iter().enumerate() {
            let Some(from) = col_of(&columns, &leg.from) else {
                continue;
            };
            let drop = match &fate {
                Some((reason, node, on_wire)) if k + 1 == n => Some(Drop {
                    reason: reason.clone(),
                    on_wire: *on_wire,
                    notes: node.map(|nd| nat_lines(t, nd)).unwrap_or_default(),
                }),
                _ => None,
            };
            arrows.push(Arrow {
                from,
                to: leg.to.as_deref().and_then(|n| col_of(&columns, n)),
                segment: leg.segment.clone(),
                label: label(&leg.bytes),
                times: g
                    .iter()
                    .filter_map(|t| t.legs.get(k))
                    .map(|l| l.at)
                    .collect(),
                trace: t.id,
                leg: k,
                traces: g.iter().map(|t| t.id).collect(),
                nat: nat_lines(t, &leg.from),
                drop,
                reply_to: t.reply_to,
            });
        }
    }
    arrows.sort_by_key(|a| (a.at(), a.trace, a.leg));
    let folded = if arrows.len() > FOLD_ABOVE {
        fold_long(fold(arrows))
    } else {
        arrows
            .into_iter()
            .map(|a| Item::Arrow(Box::new(a)))
            .collect()
    };
    let mut items = folded;
    items.push(Item::End {
        at: s.ended,
        outcome: s.actual.clone(),
    });
    Ladder {
        columns,
        items: with_gaps(items),
        frames,
    }
}

/// Ladders still longer than this after folding bulk data (a mail loop
/// repeats whole SMTP sessions) keep their start and end; the middle's
/// repeated exchanges become one band. Drops are never folded.
const KEEP_HEAD: usize = 300;
const KEEP_TAIL: usize = 100;

fn fold_long(items: Vec<Item>) -> Vec<Item> {
    if items.len() <= KEEP_HEAD + KEEP_TAIL + 200 {
        return items;
    }
    let n = items.len();
    let mut out = Vec::new();
    let mut run: Vec<Arrow> = Vec::new();
    let flush = |run: &mut Vec<Arrow>, out: &mut Vec<Item>| {
        if run.is_empty() {
            return;
        }
        let lo = run
            .iter()
            .map(|a| a.from.min(a.to.unwrap_or(a.from)))
            .min()
            .unwrap_or(0);
        let hi = run
            .iter()
            .map(|a| a.from.max(a.to.unwrap_or(a.from)))
            .max()
            .unwrap_or(0);
        out.push(Item::Band(Band {
            cols: (lo, hi),
            arrows: run.len(),
            frames: run.iter().map(Arrow::frames).sum(),
            bytes: run.iter().map(|a| a.label.payload * a.frames()).sum(),
            from: run[0].at(),
            to: run.iter().map(Arrow::last).max().unwrap_or(run[0].at()),
        }));
        run.clear();
    };
    for (k, it) in items.into_iter().enumerate() {
        match it {
            Item::Arrow(a) if k >= KEEP_HEAD && k < n - KEEP_TAIL && a.drop.is_none() => {
                run.push(*a)
            }
            other => {
                flush(&mut run, &mut out);
                out.push(other);
            }
        }
    }
    flush(&mut run, &mut out);
    out
}

/// Runs of at least [`FOLD_MIN_RUN`] bulk arrows between the same two
/// columns pairs become one band.
fn fold(arrows: Vec<Arrow>) -> Vec<Item> {
    let mut out = Vec::new();
    let mut run: Vec<Arrow> = Vec::new();
    let flush = |run: &mut Vec<Arrow>, out: &mut Vec<Item>| {
        if run.len() >= FOLD_MIN_RUN {
            let lo = run
                .iter()
                .map(|a| a.from.min(a.to.unwrap_or(a.from)))
                .min()
                .unwrap_or(0);
            let hi = run
                .iter()
                .map(|a| a.from.max(a.to.unwrap_or(a.from)))
                .max()
                .unwrap_or(0);
            out.push(Item::Band(Band {
                cols: (lo, hi),
                arrows: run.len(),
                frames: run.iter().map(Arrow::frames).sum(),
                bytes: run.iter().map(|a| a.label.payload * a.frames()).sum(),
                from: run[0].at(),
                to: run.iter().map(Arrow::last).max().unwrap_or(run[0].at()),
            }));
            run.clear();
        } else {
            out.extend(run.drain(..).map(|a| Item::Arrow(Box::new(a))));
        }
    };
    for a in arrows {
        // Routine translations repeat on every segment; anything else the
        // NAT says (a rule, an ALG, a new mapping) keeps the arrow.
        let routine = a.nat.iter().all(|n| n.starts_with("NAT "));
        let bulk = a.label.bulk && a.drop.is_none() && routine && a.frames() == 1;
        if !bulk {
            flush(&mut run, &mut out);
            out.push(Item::Arrow(Box::new(a)));
        } else {
            run.push(a);
        }
    }
    flush(&mut run, &mut out);
    out
}

fn with_gaps(items: Vec<Item>) -> Vec<Item> {
    let mut out = Vec::with_capacity(items.len());
    let mut prev: Option<Instant> = None;
    for it in items {
        let (start, end) = match &it {
            Item::Arrow(a) => (a.at(), a.last()),
            Item::Band(b) => (b.from, b.to),
            Item::End { at, .. } => (*at, *at),
            Item::Gap(_) => continue,
        };
        if let Some(p) = prev {
            let d = start.saturating_duration_since(p);
            if d > GAP {
                out.push(Item::Gap(d));
            }
        }
        prev = Some(prev.map_or(end, |p| p.max(end)));
        out.push(it);
    }
    out
}
