//! The report of scenarios/kb/KB291615.toml in a real browser: headless
//! Chromium loads the page, a probe script measures what is on screen and
//! clicks an arrow, and the screenshot is checked where the probe says the
//! column headers are. Skips, with a note, where Chromium is absent
//! (`.ci/run` installs it with apt).

use natsim_report::Options;
use natsim_scenario::{load_file, run_variant};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const W: u32 = 1600;
const H: u32 = 1000;

fn chromium() -> Option<PathBuf> {
    for name in [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ] {
        if let Ok(o) = Command::new("which").arg(name).output() {
            if o.status.success() {
                let p = String::from_utf8_lossy(&o.stdout).trim().to_string();
                if !p.is_empty() {
                    return Some(PathBuf::from(p));
                }
            }
        }
    }
    None
}

/// Measures the first ladder's column headers (and, with `click`, finds
/// the EPM answer in the ms-rpc-alg variant and clicks it), leaving the
/// findings in `<html data-probe>`.
fn probe(click: bool) -> String {
    format!(
        r#"<script>(function(){{
var out = {{headers: [], epm: null, detail: null}};
var first = document.querySelector('svg.ladder');
first.querySelectorAll('text.colhead').forEach(function (t) {{
  var r = t.getBoundingClientRect();
  var hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
  out.headers.push({{name: t.textContent.trim(), x: r.left, y: r.top, w: r.width, h: r.height,
    onTop: !!hit && (hit === t || t.contains(hit) || hit.closest('svg') === first)}});
}});
if ({click}) {{
  var sec = document.querySelector('section.variant[data-variant="ms-rpc-alg"]');
  var outside = Array.prototype.find.call(sec.querySelectorAll('g.arrow'),
    function (g) {{ return g.textContent.indexOf('rewrote tower floor') >= 0; }});
  var inside = sec.querySelector('g.arrow[data-d="' + outside.dataset.d + '"][data-leg="0"]');
  out.epm = {{inside: inside.querySelector('text.lbl').textContent, insideSegment: inside.dataset.segment,
    outside: outside.querySelector('text.lbl').textContent, outsideSegment: outside.dataset.segment}};
  outside.dispatchEvent(new MouseEvent('click', {{bubbles: true}}));
  var d = document.getElementById('detail');
  out.detail = {{hidden: d.hidden, text: d.textContent}};
  outside.dispatchEvent(new MouseEvent('mouseover', {{bubbles: true}}));
  var tip = outside.querySelector(':scope > title');
  out.tooltip = tip ? tip.textContent : null;
}}
document.documentElement.setAttribute('data-probe', JSON.stringify(out));
}})();</script>"#
    )
}

fn run_chromium(bin: &Path, dir: &Path, page: &Path, extra: &[String]) -> (String, String) {
    let profile = tempdir(dir, "profile");
    let mut args: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
        "--force-device-scale-factor=1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    args.push(format!("--window-size={W},{H}"));
    args.extend(extra.iter().cloned());
    args.push(format!("file://{}", page.display()));
    let o = Command::new(bin)
        .args(&args)
        .output()
        .expect("chromium runs");
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn tempdir(base: &Path, name: &str) -> PathBuf {
    let d = base.join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn unescape_attr(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

fn html_attr(dom: &str, name: &str) -> Option<String> {
    let start = dom.find(&format!("{name}=\""))? + name.len() + 2;
    let end = start + dom[start..].find('"')?;
    Some(unescape_attr(&dom[start..end]))
}

#[test]
fn kb291615_report_renders_in_chromium_with_headers_the_epm_rewrite_and_no_errors() {
    let Some(bin) = chromium() else {
        eprintln!(
            "note: chromium not found; skipping the browser test (.ci/run installs it with apt)"
        );
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let l = load_file(&root.join("scenarios/kb/KB291615.toml")).unwrap();
    let results: Vec<_> = l
        .variants()
        .into_iter()
        .map(|v| run_variant(&l, v, None, false).unwrap())
        .collect();
    let html = natsim_report::html(&results, &Options::default());
    let dir = tempdir(
        &std::env::temp_dir(),
        &format!("natsim-report-browser-{}", std::process::id()),
    );
    let with = |click: bool| html.replace("</body>", &format!("{}</body>", probe(click)));
    let dump_page = dir.join("dump.html");
    let shot_page = dir.join("shot.html");
    std::fs::write(&dump_page, with(true)).unwrap();
    std::fs::write(&shot_page, with(false)).unwrap();

    // 1. The DOM after the scripts ran.
    let (dom, log) = run_chromium(&bin, &dir, &dump_page, &["--dump-dom".into()]);
    assert!(!dom.is_empty(), "chromium printed no DOM; its log:\n{log}");
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:#?}");
    assert_eq!(html_attr(&dom, "data-js-errors").as_deref(), Some("0"));
    assert_eq!(
        html_attr(&dom, "data-js-ready").as_deref(),
        Some("1"),
        "the page script ran to its end"
    );
    let probe: Value =
        serde_json::from_str(&html_attr(&dom, "data-probe").expect("probe ran")).unwrap();
    let epm = &probe["epm"];
    // Inside the firewall the endpoint mapper answers from its private
    // address; outside, the same frame carries the public one.
    assert_eq!(epm["insideSegment"], "corp-lan");
    assert!(
        epm["inside"]
            .as_str()
            .unwrap()
            .contains("192.168.1.10:135 →"),
        "{epm}"
    );
    assert_eq!(epm["outsideSegment"], "internet");
    assert!(
        epm["outside"]
            .as_str()
            .unwrap()
            .contains("203.0.113.1:135 →"),
        "{epm}"
    );
    // Hovering gives the whole trace: the NAT's rewrite at the firewall.
    let tip = probe["tooltip"].as_str().expect("a tooltip on hover");
    assert!(tip.contains("firewall"), "{tip}");
    assert!(tip.contains("rewrote tower floor"), "{tip}");
    let detail = &probe["detail"];
    assert_eq!(detail["hidden"], false, "a click opens the detail panel");
    let text = detail["text"].as_str().unwrap();
    assert!(
        text.contains("KB291615--ms-rpc-alg--internet.pcap"),
        "{text}"
    );
    assert!(
        text.contains("rewrote tower floor 5 192.168.1.10 → 203.0.113.1"),
        "{text}"
    );
    // The outside leg's bytes carry 203.0.113.1 (cb 00 71 01) in hex.
    assert!(text.contains("cb 00 71 01"), "hex of the rewritten frame");

    // 2. The screenshot, checked where the probe found the headers.
    let png = dir.join("shot.png");
    let (_, log) = run_chromium(
        &bin,
        &dir,
        &shot_page,
        &[format!("--screenshot={}", png.display())],
    );
    let (dom2, _) = run_chromium(&bin, &dir, &shot_page, &["--dump-dom".into()]);
    let heads: Value = serde_json::from_str(&html_attr(&dom2, "data-probe").unwrap()).unwrap();
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&png).unwrap_or_else(|e| panic!("no screenshot ({e}); log:\n{log}")),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let px = |x: u32, y: u32| -> u32 {
        let i = ((y * info.width + x) as usize) * channels;
        (buf[i] as u32 + buf[i + 1] as u32 + buf[i + 2] as u32) / 3
    };
    let names: Vec<&str> = heads["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    // The first ladder's step: the nodes its frames touch.
    let (r0, s0) = (&results[0], &results[0].steps[0]);
    let want: Vec<String> = s0
        .traces
        .iter()
        .map(|id| &r0.traces[*id as usize])
        .flat_map(|t| {
            t.legs
                .iter()
                .flat_map(|l| std::iter::once(l.from.clone()).chain(l.to.clone()))
                .chain(t.hops.iter().map(|h| h.node.clone()))
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert!(want.len() >= 2, "{want:?}");
    let mut got: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    got.sort();
    assert_eq!(got, want, "one header per node the step involves");
    for h in heads["headers"].as_array().unwrap() {
        let (x, y, w, hh) = (
            h["x"].as_f64().unwrap(),
            h["y"].as_f64().unwrap(),
            h["w"].as_f64().unwrap(),
            h["h"].as_f64().unwrap(),
        );
        assert!(h["onTop"].as_bool().unwrap(), "{h} is covered by something");
        assert!(w > 10.0 && x >= 0.0 && y >= 0.0, "{h}");
        assert!(
            x + w <= info.width as f64 && y + hh <= info.height as f64,
            "{h} off screen"
        );
        // Text glyphs: dark pixels on the light header box.
        let mut dark = 0;
        for yy in y as u32..(y + hh) as u32 {
            for xx in x as u32..(x + w) as u32 {
                if px(xx, yy) < 110 {
                    dark += 1;
                }
            }
        }
        assert!(
            dark > 20,
            "header {} shows no text in the screenshot ({dark} dark pixels)",
            h["name"]
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
