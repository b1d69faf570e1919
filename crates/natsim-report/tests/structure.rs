//! The SVG structure of every shipped scenario's ladders, read back with
//! an XML parser: one arrow per frame (an arrow standing for a group says
//! how many), a ✗ per dropped frame, and the page's size for the suite.

use natsim_report::{draw, ladder, Options};
use natsim_scenario::{collect, load_file, run_variant, VariantResult};
use quick_xml::events::Event;
use quick_xml::Reader;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run_all(path: &Path) -> Vec<VariantResult> {
    let mut out = Vec::new();
    for f in collect(path).unwrap() {
        let l = load_file(&f).unwrap_or_else(|e| panic!("{}: {e:?}", f.display()));
        for v in l.variants() {
            out.push(run_variant(&l, v, None, false).unwrap());
        }
    }
    out
}

#[derive(Default, Debug)]
struct Counted {
    arrows: usize,
    arrow_frames: usize,
    band_frames: usize,
    drop_marks: usize,
    drop_frames: usize,
    wires: usize,
    headers: Vec<String>,
}

fn attr(e: &quick_xml::events::BytesStart<'_>, name: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.as_ref() == name.as_bytes())
        .map(|a| String::from_utf8_lossy(&a.value).into_owned())
}

/// Walks the SVG as XML (it must parse) and counts what it draws.
fn count(svg: &str) -> Counted {
    let mut r = Reader::from_str(svg);
    let mut c = Counted::default();
    let mut in_head = false;
    let mut in_x = false;
    loop {
        match r.read_event().expect("the ladder SVG is well-formed XML") {
            Event::Start(e) | Event::Empty(e) => {
                let class = attr(&e, "class").unwrap_or_default();
                let classes: Vec<&str> = class.split(' ').collect();
                let frames = || {
                    attr(&e, "data-frames")
                        .and_then(|f| f.parse::<usize>().ok())
                        .unwrap_or(0)
                };
                if e.name().as_ref() == b"g" && classes.contains(&"arrow") {
                    c.arrows += 1;
                    c.arrow_frames += frames();
                } else if e.name().as_ref() == b"g" && classes.contains(&"band") {
                    c.band_frames += frames();
                } else if e.name().as_ref() == b"g" && classes.contains(&"drop") {
                    c.drop_frames += frames();
                } else if e.name().as_ref() == b"line" && classes.contains(&"wire") {
                    c.wires += 1;
                }
                in_head = e.name().as_ref() == b"text" && classes.contains(&"colhead");
                in_x = e.name().as_ref() == b"text" && classes.contains(&"x");
            }
            Event::Text(t) => {
                let s = t.decode().unwrap().trim().to_string();
                if in_head {
                    c.headers.push(s.clone());
                }
                if in_x && s == "✗" {
                    c.drop_marks += 1;
                }
            }
            Event::End(_) => {
                in_head = false;
                in_x = false;
            }
            Event::Eof => break,
            _ => {}
        }
    }
    c
}

/// What became of a frame, from the trace alone: anything but arriving
/// (or still travelling, or a fragment the NAT holds for its datagram) is
/// a drop the ladder must mark.
fn dropped(code: &str) -> bool {
    !matches!(
        code,
        "delivered" | "delivered-to-router" | "in-flight" | "held-by-nat"
    )
}

#[test]
fn every_frame_is_one_arrow_and_every_drop_one_cross_in_the_shipped_suite() {
    let results = run_all(&root().join("scenarios"));
    let mut steps = 0;
    for r in &results {
        for s in &r.steps {
            let l = ladder::build(r, s);
            let svg = draw::ladder(&l, "t").to_string();
            let c = count(&svg);
            let traces: Vec<_> = s.traces.iter().map(|id| &r.traces[*id as usize]).collect();
            // Every frame on every wire: the pcap entries this step made.
            let legs: usize = traces.iter().map(|t| t.legs.len()).sum();
            let drops = traces
                .iter()
                .filter(|t| !t.legs.is_empty() && dropped(t.disposition.code()))
                .count();
            let at = format!("{} {} step {}", r.file, r.variant, s.name);
            assert_eq!(c.arrow_frames + c.band_frames, legs, "{at}: frames drawn");
            assert_eq!(c.wires, c.arrows, "{at}: each arrow is one wire line");
            assert_eq!(c.drop_frames, drops, "{at}: dropped frames marked");
            assert!(
                c.drop_marks <= drops && (drops == 0) == (c.drop_marks == 0),
                "{at}: ✗ marks"
            );
            // A column for each node that sent, received or passed on one
            // of the step's frames, once (the routers for a frameless step).
            let mut involved: std::collections::BTreeSet<&str> = traces
                .iter()
                .flat_map(|t| {
                    t.legs
                        .iter()
                        .flat_map(|l| std::iter::once(l.from.as_str()).chain(l.to.as_deref()))
                        .chain(t.hops.iter().map(|h| h.node.as_str()))
                })
                .filter(|n| r.nodes.iter().any(|x| x.name == *n))
                .collect();
            if involved.is_empty() {
                involved = r
                    .nodes
                    .iter()
                    .filter(|n| n.router)
                    .map(|n| n.name.as_str())
                    .collect();
            }
            let heads: std::collections::BTreeSet<&str> =
                c.headers.iter().map(|h| h.trim()).collect();
            assert_eq!(heads.len(), c.headers.len(), "{at}: a node has one column");
            assert_eq!(heads, involved, "{at}: one column per node involved");
            steps += 1;
        }
    }
    assert!(
        steps > 90,
        "the suite has about a hundred steps, saw {steps}"
    );
}

#[test]
fn a_blocked_syn_and_its_retransmissions_are_one_arrow_with_one_cross() {
    // KB 291615 base: masquerade alone, the SYN to 135 is dropped by the
    // NAT filter; the client's stack sends it again (RFC 6298 back-off).
    let results = run_all(&root().join("scenarios/kb/KB291615.toml"));
    let r = &results[0];
    let s = &r.steps[0];
    let l = ladder::build(r, s);
    let c = count(&draw::ladder(&l, "t").to_string());
    let syns = s
        .traces
        .iter()
        .map(|id| &r.traces[*id as usize])
        .filter(|t| t.summary.ends_with("[S]"))
        .count();
    assert!(syns >= 2, "the SYN is retransmitted");
    // smoltcp's SYN-SENT give-up is silent (its socket goes to CLOSED
    // without a RST; tcp.rs `timed_out`), so the group's ✗ is the only one.
    assert_eq!(c.drop_marks, 1, "the SYN group: one ✗");
    assert!(
        !s.traces
            .iter()
            .any(|id| r.traces[*id as usize].summary.contains("[R")),
        "no RST after unanswered SYNs"
    );
    let group = l
        .items
        .iter()
        .find_map(|i| match i {
            ladder::Item::Arrow(a) if a.label.kind == "SYN" => Some(a),
            _ => None,
        })
        .unwrap();
    assert_eq!(group.frames(), syns);
    assert!(
        group.text().contains(&format!("×{syns} (0, ")),
        "{}",
        group.text()
    );
    // No frame follows the group (the give-up puts nothing on the wire);
    // the 21 s timeout is a gap on the time axis before the step's end.
    let n = l.items.len();
    assert!(
        matches!(&l.items[n - 3], ladder::Item::Arrow(a) if a.label.kind == "SYN"),
        "{:?}",
        &l.items[n - 3]
    );
    assert!(
        matches!(l.items[n - 2], ladder::Item::Gap(d) if d.as_secs() >= 10),
        "{:?}",
        l.items[n - 2]
    );
    assert!(
        matches!(&l.items[n - 1], ladder::Item::End { outcome, .. } if outcome.contains("timed out")),
        "{:?}",
        l.items[n - 1]
    );
}

#[test]
fn the_epm_answer_carries_the_private_address_inside_and_the_public_one_outside() {
    let results = run_all(&root().join("scenarios/kb/KB291615.toml"));
    let r = results.iter().find(|r| r.variant == "ms-rpc-alg").unwrap();
    // The endpoint mapper's answer: the frame the ALG rewrote.
    let t = r
        .traces
        .iter()
        .find(|t| {
            t.hops.iter().any(|h| {
                h.steps.iter().any(|s| {
                    matches!(s, natsim_sim::Step::Nat { text, .. } if text.contains("rewrote tower floor"))
                })
            })
        })
        .expect("the ALG rewrote a tower");
    assert_eq!(t.legs.len(), 2);
    let payload = |b: &[u8]| b[14 + 20 + 20..].to_vec();
    let has = |b: &[u8], a: [u8; 4]| b.windows(4).any(|w| w == a);
    let (inside, outside) = (&t.legs[0], &t.legs[1]);
    assert_eq!(inside.segment, "corp-lan");
    assert_eq!(outside.segment, "internet");
    assert!(has(&payload(&inside.bytes), [192, 168, 1, 10]));
    assert!(has(&payload(&outside.bytes), [203, 0, 113, 1]));
    assert!(!has(&payload(&outside.bytes), [192, 168, 1, 10]));
    // And the arrows say so.
    let s = r.steps.iter().find(|s| s.traces.contains(&t.id)).unwrap();
    let l = ladder::build(r, s);
    let arrows: Vec<_> = l
        .items
        .iter()
        .filter_map(|i| match i {
            ladder::Item::Arrow(a) if a.trace == t.id => Some(a),
            _ => None,
        })
        .collect();
    assert!(arrows[0]
        .label
        .text
        .starts_with("PSH/ACK 192.168.1.10:135 → "));
    assert!(arrows[1]
        .label
        .text
        .starts_with("PSH/ACK 203.0.113.1:135 → "));
    assert!(arrows[1]
        .nat
        .iter()
        .any(|n| n.contains("rewrote tower floor 5 192.168.1.10 → 203.0.113.1")));
}

#[test]
fn more_than_two_hundred_frames_fold_into_bulk_bands() {
    let results = run_all(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bulk-ftp.toml"));
    let r = &results[0];
    assert!(r.pass, "{:?}", r.steps[0].failures);
    let s = &r.steps[0];
    let l = ladder::build(r, s);
    assert!(l.frames > ladder::FOLD_ABOVE, "{} frames", l.frames);
    let bands: Vec<_> = l
        .items
        .iter()
        .filter_map(|i| match i {
            ladder::Item::Band(b) => Some(b),
            _ => None,
        })
        .collect();
    assert!(!bands.is_empty());
    let arrows = l
        .items
        .iter()
        .filter(|i| matches!(i, ladder::Item::Arrow(_)))
        .count();
    assert!(
        arrows + bands.len() < 120,
        "folded to {arrows} arrows and {} bands",
        bands.len()
    );
    // The handshake and the FTP control replies stay as arrows.
    assert!(l
        .items
        .iter()
        .any(|i| matches!(i, ladder::Item::Arrow(a) if a.label.kind == "SYN")));
    let c = count(&draw::ladder(&l, "t").to_string());
    assert_eq!(c.arrow_frames + c.band_frames, l.frames);
}

#[test]
fn the_report_of_the_whole_suite_is_one_file_under_five_megabytes() {
    let results = run_all(&root().join("scenarios"));
    let html = natsim_report::html(
        &results,
        &Options {
            compare: Some(("base".into(), "option-2".into())),
        },
    );
    assert!(html.len() < 5 * 1024 * 1024, "{} bytes", html.len());
    // Self-contained: nothing is fetched.
    for bad in ["src=\"http", "href=\"http", "@import", "url(http", "fetch("] {
        assert!(!html.contains(bad), "the page must not load `{bad}`");
    }
    // `option-2` names the first variant starting with it in Q193863.
    assert_eq!(html.matches("class=\"compare\"").count(), 1);
    assert!(html.contains("base vs option-2-dns-and-forward"));
    // A table of contents entry per variant.
    assert_eq!(html.matches("<li><a href=\"#v").count(), results.len());
}
