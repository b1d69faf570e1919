//! Steps: the `[[step]]` list becomes [`StepSpec`]s (names, start times,
//! limits, expectations, kept connections). A field the step's action
//! would ignore is an error that names what the action does take; the
//! action itself is built by [`super::action`].

use super::action::{action, StepCx, ACTIONS};
use super::{Names, Problems};
use crate::diag::Ctx;
use crate::expect;
use crate::model::*;
use crate::parse;
use crate::schema::{Scenario, Step, S};
use std::collections::BTreeSet;
use std::ops::Range;
use std::time::Duration;

/// The optional fields a step has, with where they are.
fn present(st: &Step) -> Vec<(&'static str, Range<usize>)> {
    let mut v = Vec::new();
    let mut f = |name: &'static str, span: Option<Range<usize>>| {
        if let Some(s) = span {
            v.push((name, s));
        }
    };
    f("from", st.from.as_ref().map(S::span));
    f("to", st.to.as_ref().map(S::span));
    f("port", st.port.as_ref().map(S::span));
    f("source_port", st.source_port.as_ref().map(S::span));
    f("payload", st.payload.as_ref().map(S::span));
    f("size", st.size.as_ref().map(S::span));
    f("ttl", st.ttl.as_ref().map(S::span));
    f("router", st.router.as_ref().map(S::span));
    f("keep", st.keep.as_ref().map(S::span));
    f("reuse", st.reuse.as_ref().map(S::span));
    f("sender", st.sender.as_ref().map(S::span));
    f("subject", st.subject.as_ref().map(S::span));
    f("until", st.until.as_ref().map(S::span));
    f("query", st.query.as_ref().map(S::span));
    f("type", st.rtype.as_ref().map(S::span));
    f("address_mode", st.address_mode.as_ref().map(S::span));
    f("mode", st.mode.as_ref().map(S::span));
    f("path", st.path.as_ref().map(S::span));
    f("file", st.file.as_ref().map(S::span));
    f("servers", st.servers.first().map(S::span));
    v
}

/// The most virtual time each action may take unless `duration` says.
fn default_limit(action: &str) -> Duration {
    Duration::from_secs(match action {
        "send-mail" => 600,
        "tcp-connect" | "outlook-connect" | "ftp-get" => 180,
        "http-get" => 120,
        "ping" | "dns-lookup" | "tcp-send" => 30,
        "udp-send" => 5,
        "nat-type" => 20,
        _ => 0,
    })
}

fn expects(st: &Step, action: &str, cx: &Ctx<'_>, p: &mut Problems) -> Vec<ExpectSpec> {
    let Some(v) = &st.expect else {
        p.0.push(cx.at(
            st.name.span(),
            format!("step `{}` has no `expect`", st.name.get_ref()),
            Some("say what must happen, e.g. expect = \"connected\"; write expect = \"anything\" to run a step for its effect alone"),
        ));
        return Vec::new();
    };
    let texts: Vec<String> = match v.get_ref() {
        toml::Value::String(s) => vec![s.clone()],
        toml::Value::Array(a) if a.iter().all(|x| x.is_str()) => a
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        _ => {
            p.0.push(cx.at(
                v.span(),
                "expected a string or a list of strings",
                Some("e.g. expect = \"delivered\" or expect = [\"refused\", \"trace answered-by-nat\"]"),
            ));
            return Vec::new();
        }
    };
    if texts.is_empty() || texts.iter().any(|t| t.trim().is_empty()) {
        p.0.push(cx.at(
            v.span(),
            "an empty expectation checks nothing",
            Some("say what must happen; write expect = \"anything\" to run a step for its effect alone"),
        ));
        return Vec::new();
    }
    if !super::action::ACTIONS.iter().any(|(a, _)| *a == action) {
        // The unknown action is reported already; what it can end in is
        // not known, so no expectation can be checked against it.
        return Vec::new();
    }
    let mut out = Vec::new();
    for t in texts {
        match expect::parse(&t, action) {
            Ok(e) => out.push(ExpectSpec {
                text: t,
                span: v.span(),
                expect: e,
            }),
            Err(why) => p.0.push(cx.at(
                v.span(),
                format!("impossible expectation `{t}`: {why}"),
                None,
            )),
        }
    }
    if out.len() > 1 {
        if let Some(a) = out.iter().find(|e| e.expect == expect::Expect::Anything) {
            p.0.push(cx.warn(
                a.span.clone(),
                "`anything` beside other expectations checks nothing more",
                Some("drop `anything`; the other expectations say what must happen"),
            ));
        }
    }
    for (i, a) in out.iter().enumerate() {
        for b in &out[i + 1..] {
            if expect::contradicts(&a.expect, &b.expect) {
                p.0.push(cx.at(
                    v.span(),
                    format!("`{}` and `{}` can never both hold", a.text, b.text),
                    Some("keep the one the step should meet"),
                ));
            }
        }
    }
    out
}

/// What a step run from every member of a group cannot say: one kept
/// connection name for many connections, or one source the listener saw.
fn fan_out_applies(st: &Step, expect: &[ExpectSpec], cx: &Ctx<'_>, p: &mut Problems) {
    if let Some(k) = &st.keep {
        p.0.push(cx.at(
            k.span(),
            "`keep` holds one connection; a `GROUP[*]` step opens one per member",
            Some("keep a connection from one member, e.g. from = \"GROUP[0]\""),
        ));
    }
    for e in expect {
        let seen_from = |x: &expect::Expect| matches!(x, expect::Expect::SeenFrom { .. });
        let names_source = match &e.expect {
            expect::Expect::Not { inner } => seen_from(inner),
            x => seen_from(x),
        };
        if names_source {
            p.0.push(cx.at(
                e.span.clone(),
                format!(
                    "`{}` names one source; a `GROUP[*]` step has a source per member",
                    e.text
                ),
                Some("check one member's source in a step from = \"GROUP[k]\""),
            ));
        }
    }
}

/// A `send-mail` step with `until = "final"` and no `duration`: six days.
pub const MAIL_FINAL_LIMIT: Duration = Duration::from_secs(6 * 24 * 3600);

pub fn lower_steps(
    s: &Scenario,
    names: &Names,
    hosts: &[HostSpec],
    routers: &[RouterSpec],
    cx: &Ctx<'_>,
    p: &mut Problems,
) -> (Vec<StepSpec>, Vec<String>) {
    if s.steps.len() > 256 {
        p.0.push(cx.at(
            0..cx.src.len().min(1),
            format!("{} steps; at most 256 are allowed", s.steps.len()),
            Some("split the scenario into several files"),
        ));
        return (Vec::new(), Vec::new());
    }
    let sc = StepCx {
        names,
        hosts,
        routers,
        cx,
    };
    let mut seen = BTreeSet::new();
    let mut kept: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for st in &s.steps {
        if !seen.insert(st.name.get_ref().clone()) {
            p.0.push(cx.at(
                st.name.span(),
                format!("step `{}` is defined twice", st.name.get_ref()),
                Some("give each step its own name"),
            ));
        }
        let aname = st.action.get_ref().as_str();
        if let Some((_, takes)) = ACTIONS.iter().find(|(a, _)| *a == aname) {
            for (field, span) in present(st) {
                if !takes.contains(&field) {
                    let t = if takes.is_empty() {
                        "nothing else".to_string()
                    } else {
                        takes.join(", ")
                    };
                    p.0.push(cx.at(
                        span,
                        format!("`{field}` does not apply to a `{aname}` step"),
                        Some(&format!("a `{aname}` step takes: {t} (and name, action, at, background, duration, expect, note)")),
                    ));
                }
            }
        }
        let expect = expects(st, aname, cx, p);
        let delay = match &st.at {
            None => Some(Duration::ZERO),
            Some(a) => match a.get_ref().trim().strip_prefix('+') {
                Some(d) => p.ok(parse::duration(&S::new(a.span(), d.to_string()), cx)),
                None => {
                    p.0.push(cx.at(
                        a.span(),
                        format!("`{}` is not a start time", a.get_ref()),
                        Some("`+5s`: that long after the previous step ended"),
                    ));
                    None
                }
            },
        };
        let limit = match &st.duration {
            Some(d) => p.ok(parse::duration(d, cx)),
            // Following a message to its end outlasts every default queue
            // lifetime (sendmail's 5 d, the IMS's 48 h).
            None if st.until.as_ref().is_some_and(|u| u.get_ref() == "final") => {
                Some(MAIL_FINAL_LIMIT)
            }
            None => Some(default_limit(aname)),
        };
        let Some(mut act) = p.ok(action(st, &sc)) else {
            continue;
        };
        let each = match st.from.as_ref().and_then(|f| sc.members(f)) {
            Some(Ok(m)) => {
                fan_out_applies(st, &expect, cx, p);
                m.to_vec()
            }
            _ => Vec::new(),
        };
        match &mut act {
            Action::TcpConnect { keep, .. } => {
                if let Some(k) = &st.keep {
                    if kept.contains(k.get_ref()) {
                        p.0.push(cx.at(
                            k.span(),
                            format!("connection `{}` is kept twice", k.get_ref()),
                            Some("give each kept connection its own name"),
                        ));
                    } else {
                        *keep = Some(ConnIx(kept.len()));
                        kept.push(k.get_ref().clone());
                    }
                }
            }
            Action::TcpSend { reuse, .. } => {
                let r = st
                    .reuse
                    .as_ref()
                    .map_or(String::new(), |r| r.get_ref().clone());
                match kept.iter().position(|k| *k == r) {
                    Some(ix) => *reuse = ConnIx(ix),
                    None => {
                        let span = st.reuse.as_ref().map_or(st.name.span(), S::span);
                        p.0.push(cx.at(
                            span,
                            format!("no earlier step keeps a connection `{r}`"),
                            Some("a `tcp-connect` step with keep = \"NAME\" must come first"),
                        ));
                    }
                }
            }
            _ => {}
        }
        if let (Some(delay), Some(limit)) = (delay, limit) {
            out.push(StepSpec {
                name: st.name.get_ref().clone(),
                span: st.name.span(),
                delay,
                background: st.background.as_ref().is_some_and(|b| *b.get_ref()),
                limit,
                expect,
                note: st.note.as_ref().map(|n| n.get_ref().clone()),
                action: act,
                each,
            });
        }
    }
    (out, kept)
}
