//! natsim-report: `natsim report PATH... --html OUT.html`, one
//! self-contained HTML page (inline SVG, CSS and a little JavaScript; no
//! network fetches) with a ladder diagram for every step of every
//! scenario variant.
//!
//! ## Map
//! * [`wire`]: an arrow's label read from the frame's bytes on that wire;
//! * [`ladder`]: a step's ladder as data (columns, arrows, retransmission
//!   groups, drops, gaps, folded bulk bands);
//! * [`draw`]: a ladder as SVG (the `svg` crate);
//! * [`detail`]: the per-frame trace shown on click, as JSON;
//! * [`page`]: the HTML around them.
//!
//! Everything drawn comes from the runner's [`VariantResult`]s: the traces
//! hold the hops, NAT steps, wire legs (pcap frame numbers, bytes) and
//! dispositions; nothing here re-derives a decision. Deterministic: the
//! same results give the same bytes.
#![deny(unsafe_code)]

pub mod detail;
pub mod draw;
pub mod ladder;
pub mod page;
pub mod wire;

use natsim_scenario::VariantResult;
use page::esc;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// What to put on the page besides every variant.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Two variant names (or prefixes: the first variant starting with it) to show side by side, step
    /// by step, for every file that has both: `("base", "option-2")`.
    pub compare: Option<(String, String)>,
}

/// The variant of `rs` called `name`, else the first (in file order)
/// whose name starts with it: `option-2` picks `option-2-dns-and-forward`.
pub fn find_variant<'a>(rs: &[&'a VariantResult], name: &str) -> Option<&'a VariantResult> {
    rs.iter()
        .find(|r| r.variant == name)
        .or_else(|| rs.iter().find(|r| r.variant.starts_with(name)))
        .copied()
}

/// Results grouped by file, in their order.
fn by_file(results: &[VariantResult]) -> Vec<Vec<(usize, &VariantResult)>> {
    let mut out: Vec<Vec<(usize, &VariantResult)>> = Vec::new();
    for (k, r) in results.iter().enumerate() {
        match out.last_mut() {
            Some(g) if g[0].1.file == r.file => g.push((k, r)),
            _ => out.push(vec![(k, r)]),
        }
    }
    out
}

fn compare_section(a: &VariantResult, ka: usize, b: &VariantResult, kb: usize, f: usize) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<section class=\"compare\" id=\"f{f}-compare\"><h3>{} vs {}</h3>",
        esc(&a.variant),
        esc(&b.variant)
    );
    for (i, sa) in a.steps.iter().enumerate() {
        let Some(j) = b.steps.iter().position(|sb| sb.name == sa.name) else {
            continue;
        };
        let _ = write!(
            o,
            "<div class=\"pair\" data-step=\"{}\"><div class=\"side\"><p><b>{}</b></p>{}</div><div class=\"side\"><p><b>{}</b></p>{}</div></div>",
            esc(&sa.name),
            esc(&a.variant),
            page::step(a, i, &format!("v{ka}"), None).0,
            esc(&b.variant),
            page::step(b, j, &format!("v{kb}"), None).0,
        );
    }
    o.push_str("</section>");
    o
}

/// The whole report page.
pub fn html(results: &[VariantResult], opt: &Options) -> String {
    let files = by_file(results);
    let mut toc = String::from("<nav id=\"toc\"><b>Contents</b><ul>");
    let mut main = String::new();
    let mut data: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let steps: usize = results.iter().map(|r| r.steps.len()).sum();
    let passed: usize = results
        .iter()
        .map(|r| r.steps.iter().filter(|s| s.pass).count())
        .sum();
    for (f, group) in files.iter().enumerate() {
        let first = group[0].1;
        let _ = write!(
            toc,
            "<li><a href=\"#f{f}\">{}</a><ul>",
            esc(first.source.as_deref().unwrap_or(&first.title))
        );
        let _ = write!(
            main,
            "<section class=\"file\" id=\"f{f}\"><h2>{}</h2><p class=\"symptom\">{}</p>",
            esc(&first.title),
            esc(&first.file)
        );
        if let Some((a, b)) = &opt.compare {
            let rs: Vec<&VariantResult> = group.iter().map(|(_, r)| *r).collect();
            if let (Some(ra), Some(rb)) = (find_variant(&rs, a), find_variant(&rs, b)) {
                let ka = group
                    .iter()
                    .find(|(_, r)| std::ptr::eq(*r, ra))
                    .map_or(0, |g| g.0);
                let kb = group
                    .iter()
                    .find(|(_, r)| std::ptr::eq(*r, rb))
                    .map_or(0, |g| g.0);
                let _ = write!(
                    toc,
                    "<li><a href=\"#f{f}-compare\">⇆ {} vs {}</a></li>",
                    esc(&ra.variant),
                    esc(&rb.variant)
                );
                main.push_str(&compare_section(ra, ka, rb, kb, f));
            }
        }
        for (k, r) in group {
            let mark = if r.pass { "✓" } else { "✗" };
            let _ = write!(
                toc,
                "<li><a href=\"#v{k}\">{mark} {}</a></li>",
                esc(&r.variant)
            );
            let _ = write!(
                main,
                "<section class=\"variant\" id=\"v{k}\" data-variant=\"{}\" data-pcap=\"{}\"><h3>{} <span class=\"badge {}\">{}</span> <small>seed {}</small></h3>",
                esc(&r.variant),
                esc(&r.pcap_prefix()),
                esc(&r.variant),
                if r.pass { "pass" } else { "fail" },
                if r.pass { "PASS" } else { "FAIL" },
                r.seed
            );
            if let Some(l) = &r.lesson {
                let _ = write!(main, "<p class=\"lesson\">{}</p>", esc(&page::para(l)));
            }
            let mut clickable = BTreeSet::new();
            for i in 0..r.steps.len() {
                let anchor = format!("v{k}s{}", i + 1);
                let (html, ids) = page::step(r, i, &format!("v{k}"), Some(&anchor));
                main.push_str(&html);
                clickable.extend(ids);
            }
            for id in clickable {
                if let Some(t) = r.traces.get(id as usize) {
                    data.insert(format!("v{k}-{id}"), detail::trace(t));
                }
            }
            main.push_str("</section>");
        }
        toc.push_str("</ul></li>");
        main.push_str("</section>");
    }
    toc.push_str("</ul></nav>");
    // Inside <script>, `</` could end the element early.
    let json = serde_json::to_string(&data)
        .unwrap_or_else(|_| "{}".into())
        .replace("</", "<\\/");
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\" data-js-errors=\"0\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>natsim report</title>\
<script>window.addEventListener('error',function(e){{var h=document.documentElement;h.setAttribute('data-js-errors',String(Number(h.getAttribute('data-js-errors'))+1));h.setAttribute('data-js-error',String(e.message));}});</script>\
<style>{}</style></head><body>\
<header class=\"top\"><h1>natsim report</h1><p>{} variants of {} scenario files, {} steps, {} as expected. Click an arrow for its full trace, bytes and pcap frame number.</p></header>\
{}<div class=\"layout\">{toc}<main>{main}</main></div>\
<aside id=\"detail\" hidden><button id=\"detail-close\" type=\"button\" aria-label=\"close\">×</button><div id=\"detail-body\"></div></aside>\
<script type=\"application/json\" id=\"natsim-data\">{json}</script><script>{}</script></body></html>\n",
        page::CSS,
        results.len(),
        files.len(),
        steps,
        passed,
        draw::arrowhead(),
        page::JS
    );
    o
}
