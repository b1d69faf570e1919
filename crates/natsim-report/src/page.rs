//! The HTML page around the ladders: table of contents, one section per
//! scenario and variant, each step's ladder with its outcome beside it,
//! comparisons, the click-for-detail panel, and the JSON it reads.
//! Text is escaped by [`esc`]; the SVG comes from [`crate::draw`].

use crate::ladder;
use natsim_scenario::{StepResult, VariantResult};
use std::fmt::Write;

/// HTML-escapes text for element content and quoted attributes.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

pub const CSS: &str = r#"
:root { --ok: #1a7f37; --bad: #c9252d; --nat: #0a58a8; --ink: #1f2328; --mute: #656d76; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); background: #fff; }
header.top { padding: 10px 20px; border-bottom: 1px solid #d0d7de; background: #f6f8fa; }
header.top h1 { margin: 0; font-size: 20px; }
header.top p { margin: 2px 0 0; color: var(--mute); }
.layout { display: flex; align-items: flex-start; }
nav#toc { position: sticky; top: 0; width: 250px; flex: none; max-height: 100vh; overflow: auto; padding: 10px 12px; border-right: 1px solid #d0d7de; font-size: 13px; }
nav#toc ul { list-style: none; margin: 0; padding-left: 10px; }
nav#toc > ul { padding-left: 0; }
nav#toc a { color: var(--ink); text-decoration: none; }
nav#toc a:hover { text-decoration: underline; }
main { flex: 1; min-width: 0; padding: 0 20px 40px; }
section.file > h2 { margin: 22px 0 4px; font-size: 19px; border-bottom: 2px solid #d0d7de; }
section.variant > h3 { margin: 18px 0 4px; font-size: 16px; }
p.lesson, p.symptom { margin: 4px 0; max-width: 70em; white-space: pre-line; }
p.symptom { color: var(--mute); }
.step { margin: 10px 0 18px; }
.step h4 { margin: 6px 0; font-size: 14px; }
.steprow { display: flex; gap: 16px; align-items: flex-start; }
.ladder-wrap { overflow-x: auto; flex: 0 1 auto; border: 1px solid #eaeef2; border-radius: 6px; }
aside.outcome { flex: 0 0 300px; font-size: 13px; border-left: 4px solid #d0d7de; padding: 4px 10px; }
aside.outcome.pass { border-left-color: var(--ok); }
aside.outcome.fail { border-left-color: var(--bad); }
.badge { display: inline-block; padding: 0 6px; border-radius: 8px; color: #fff; font-size: 12px; font-weight: 600; }
.badge.pass { background: var(--ok); }
.badge.fail { background: var(--bad); }
aside.outcome ul { margin: 2px 0; padding-left: 18px; }
aside.outcome .lesson { color: var(--mute); white-space: pre-line; }
.compare { border: 2px solid #9a6dd7; border-radius: 8px; padding: 4px 12px; margin: 14px 0; }
.compare .pair { display: flex; gap: 14px; align-items: flex-start; }
.compare .side { flex: 1 1 50%; min-width: 0; }
.compare .steprow { flex-direction: column; }
.compare .ladder-wrap { max-width: 100%; }
.compare aside.outcome { flex: none; max-width: 60em; }
svg.ladder { display: block; font: 11px ui-monospace, "DejaVu Sans Mono", monospace; }
svg .colhead { font-weight: 700; font-size: 12px; fill: var(--ink); }
svg rect.box { fill: #eef4fb; stroke: #8fb3de; }
svg rect.box.router { fill: #fff3e0; stroke: #e0a050; }
svg .life { stroke: #c8cdd3; stroke-dasharray: 4 4; }
svg .wire { stroke: #333; stroke-width: 1.4; }
svg marker path { fill: #333; }
svg line.tip { marker-end: url(#ah); }
svg.defs { position: absolute; }
svg .answer .wire { stroke: #b35900; stroke-dasharray: 6 3; }
svg .answer .lbl { fill: #b35900; }
svg .hit { stroke: transparent; stroke-width: 14; pointer-events: stroke; cursor: pointer; }
svg .arrow:hover .wire, svg .arrow:focus .wire { stroke: var(--nat); stroke-width: 2.5; }
svg .arrow:focus { outline: none; }
svg .lbl { fill: var(--ink); }
svg .time { fill: var(--mute); font-size: 10px; }
svg .natline { fill: var(--nat); font-size: 10px; }
svg .drop .x { fill: var(--bad); font-size: 18px; font-weight: 700; }
svg .drop .why { fill: var(--bad); font-weight: 600; }
svg .gap .zig { fill: none; stroke: var(--mute); }
svg .gap .gapline { stroke: #e0e4e8; stroke-dasharray: 2 6; }
svg .gaplbl { fill: var(--mute); font-size: 10px; text-anchor: end; }
svg .band rect { fill: #eef0fb; stroke: #9aa3d6; }
svg .bandlbl { fill: #3b4aa0; }
svg .end .endline { stroke: var(--mute); stroke-width: 1; stroke-dasharray: 1 3; }
svg .end .endlbl { fill: var(--mute); font-style: italic; }
svg text.colhead, svg .lbl, svg .natline, svg .x, svg .bandlbl { text-anchor: middle; }
svg .time, svg text.end { text-anchor: end; }
svg text.start { text-anchor: start; }
#detail { position: fixed; right: 0; top: 0; bottom: 0; width: 520px; max-width: 90vw; overflow: auto; background: #fff; border-left: 2px solid #8fb3de; box-shadow: -4px 0 12px rgba(0,0,0,.12); padding: 10px 14px; font-size: 13px; }
#detail[hidden] { display: none; }
#detail pre.hex { font: 11px ui-monospace, monospace; background: #f6f8fa; padding: 6px; overflow-x: auto; }
#detail section.leg.cur { border-left: 3px solid var(--nat); padding-left: 6px; }
#detail button { float: right; font-size: 16px; }
"#;

pub const JS: &str = r#"
(function () {
  var data = JSON.parse(document.getElementById('natsim-data').textContent);
  var panel = document.getElementById('detail');
  var body = document.getElementById('detail-body');
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  // Offsets every 16 bytes, as tshark -x prints them (without its ASCII column).
  function hexdump(bin, more, frame) {
    var lines = [];
    for (var i = 0; i < bin.length; i += 16) {
      var line = ('000' + i.toString(16)).slice(-4) + ' ';
      for (var j = i; j < Math.min(i + 16, bin.length); j++) {
        line += ' ' + ('0' + bin.charCodeAt(j).toString(16)).slice(-2);
      }
      lines.push(line);
    }
    if (more > 0) {
      lines.push('\u2026 ' + more + ' more bytes in the pcap' +
        (frame !== null && frame !== undefined ? ' (pcap frame ' + frame + ')' : ''));
    }
    return lines.join('\n');
  }
  function show(key, leg) {
    var d = data[key];
    if (!d) return;
    body.replaceChildren();
    body.append(el('h3', null, 'frame #' + d.id + ': ' + d.summary));
    body.append(el('p', null, 'sent by ' + d.origin + ' at ' + d.at +
      (d.reply_to !== null && d.reply_to !== undefined ? ' (in answer to frame #' + d.reply_to + ')' : '')));
    var ol = el('ol', 'hops');
    // Layouts as detail.rs writes them.
    d.hops.forEach(function (hop) {
      var h = {node: hop[0], at: hop[1], via: hop[2], steps: hop[3]};
      var li = el('li', null, h.node + (h.via ? ' (' + h.via + ')' : '') + ' at ' + h.at);
      if (h.steps.length) {
        var ul = el('ul');
        h.steps.forEach(function (s) { ul.append(el('li', null, s)); });
        li.append(ul);
      }
      ol.append(li);
    });
    body.append(ol);
    body.append(el('p', 'fate', '\u21d2 ' + d.fate));
    // The key is `v<variant>-<trace>`; the variant's section names its pcaps.
    var pcap = document.getElementById(key.split('-')[0]).dataset.pcap;
    d.legs.forEach(function (g, i) {
      var l = {segment: g[0], from: g[1], to: g[2], at: g[3], frame: g[4], b64: g[5], more: g[6]};
      var s = el('section', i === leg ? 'leg cur' : 'leg');
      var bin = atob(l.b64);
      s.append(el('h4', null, 'on ' + l.segment + ': ' + l.from + ' \u2192 ' + (l.to || '?') + ' at ' + l.at));
      s.append(el('p', null, l.frame !== null && l.frame !== undefined
        ? 'frame ' + l.frame + ' of ' + pcap + l.segment + '.pcap (' + (bin.length + l.more) +
          ' bytes; natsim run --pcap DIR writes it)'
        : 'not captured'));
      s.append(el('pre', 'hex', hexdump(bin, l.more, l.frame)));
      body.append(s);
    });
    panel.hidden = false;
  }
  // Hovering shows the frame's whole trace as a tooltip, built on first
  // hover from the same data the click panel shows (the page carries it once).
  document.addEventListener('mouseover', function (e) {
    var a = e.target.closest && e.target.closest('.arrow');
    if (!a || a.querySelector(':scope > title')) return;
    var d = data[a.dataset.d];
    if (!d) return;
    var lines = ['frame #' + d.id + ': ' + d.summary + ' on ' + a.dataset.segment];
    d.hops.forEach(function (hop) {
      lines.push('  ' + hop[0] + (hop[2] ? ' (' + hop[2] + ')' : '') + ' at ' + hop[1]);
      hop[3].forEach(function (s) { lines.push('    ' + s); });
    });
    lines.push('\u21d2 ' + d.fate + ' \u2014 click for bytes and pcap frame');
    var t = document.createElementNS('http://www.w3.org/2000/svg', 'title');
    t.textContent = lines.join('\n');
    a.prepend(t);
  });
  document.addEventListener('click', function (e) {
    var a = e.target.closest && e.target.closest('.arrow');
    if (a) show(a.dataset.d, Number(a.dataset.leg));
  });
  document.addEventListener('keydown', function (e) {
    var a = document.activeElement;
    if (e.key === 'Enter' && a && a.classList && a.classList.contains('arrow')) show(a.dataset.d, Number(a.dataset.leg));
    if (e.key === 'Escape') panel.hidden = true;
  });
  document.getElementById('detail-close').addEventListener('click', function () { panel.hidden = true; });
  document.documentElement.setAttribute('data-js-ready', '1');
})();
"#;

/// A TOML multi-line string as one paragraph (blank lines kept).
pub fn para(s: &str) -> String {
    s.trim()
        .split("\n\n")
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// The outcome box beside a ladder.
pub fn outcome(s: &StepResult, lesson: Option<&str>) -> String {
    let cls = if s.pass { "pass" } else { "fail" };
    let mut o = String::new();
    let _ = write!(
        o,
        "<aside class=\"outcome {cls}\"><p><span class=\"badge {cls}\">{}</span></p>",
        if s.pass { "PASS" } else { "FAIL" }
    );
    let _ = write!(o, "<p><b>expected</b></p><ul>");
    for e in &s.expected {
        let _ = write!(o, "<li><code>{}</code></li>", esc(e));
    }
    if s.expected.is_empty() {
        o.push_str("<li>(nothing)</li>");
    }
    let _ = write!(o, "</ul><p><b>actual</b>: {}</p>", esc(&s.actual));
    if !s.failures.is_empty() {
        o.push_str("<ul class=\"failures\">");
        for f in &s.failures {
            let _ = write!(o, "<li>{}</li>", esc(f));
        }
        o.push_str("</ul>");
    }
    if let Some(n) = &s.note {
        let _ = write!(o, "<p class=\"note\">{}</p>", esc(&para(n)));
    }
    if let Some(l) = lesson {
        let _ = write!(
            o,
            "<p class=\"lesson\"><b>lesson</b>: {}</p>",
            esc(&para(l))
        );
    }
    o.push_str("</aside>");
    o
}

/// A step's ladder and outcome.
/// Also the traces its arrows open on a click (frames folded into a band
/// have no arrow, so the page carries no detail for them).
pub fn step(r: &VariantResult, k: usize, key: &str, anchor: Option<&str>) -> (String, Vec<u64>) {
    let s = &r.steps[k];
    let l = ladder::build(r, s);
    let clickable = l
        .items
        .iter()
        .filter_map(|i| match i {
            ladder::Item::Arrow(a) => Some(a.trace),
            _ => None,
        })
        .collect();
    let svg = crate::draw::ladder(&l, key).to_string();
    let id = anchor
        .map(|a| format!(" id=\"{}\"", esc(a)))
        .unwrap_or_default();
    let html = format!(
        "<div class=\"step\"{id} data-step=\"{}\"><h4>{}. {} <small>({}, from {})</small></h4><div class=\"steprow\"><div class=\"ladder-wrap\">{svg}</div>{}</div></div>",
        esc(&s.name),
        k + 1,
        esc(&s.name),
        esc(&s.action),
        s.started,
        outcome(s, r.lesson.as_deref()),
    );
    (html, clickable)
}
