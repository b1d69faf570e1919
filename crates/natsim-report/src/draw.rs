//! A [`Ladder`] as an SVG document, built with the `svg` crate (it
//! escapes every text and attribute). Classes and `data-` attributes name
//! what each element stands for, so the page's script and the tests can
//! find arrows, drops and bands without parsing drawn text:
//! * `g.arrow[data-frames]`: one arrow, standing for that many frames;
//! * `g.drop[data-frames]`: a ✗ for that many dropped frames;
//! * `g.band[data-frames]`: folded bulk data; `g.gap`: a pause.

use crate::ladder::{secs, Arrow, Band, Item, Ladder};
use svg::node::element::{Definitions, Group, Line, Marker, Path, Rectangle, Text, Title};
use svg::Document;

const AXIS: f64 = 92.0;
const COL: f64 = 230.0;
const HEAD: f64 = 40.0;
const ROW: f64 = 30.0;
const NOTE: f64 = 12.0;
/// Width of one character of the 10 px monospace notes.
const CHAR_W: f64 = 6.1;
const GAP_H: f64 = 34.0;
const BAND_H: f64 = 40.0;

fn x(col: usize) -> f64 {
    AXIS + COL * col as f64 + COL / 2.0
}

fn text(x: f64, y: f64, class: &str, s: &str) -> Text {
    Text::new(s).set("x", x).set("y", y).set("class", class)
}

/// The arrowhead every ladder's wires end in, drawn once per page (a
/// marker per ladder was a fortieth of the page): `line.tip` uses it.
pub fn arrowhead() -> Document {
    let defs = Definitions::new().add(
        Marker::new()
            .set("id", "ah")
            .set("viewBox", "0 0 10 10")
            .set("refX", 10)
            .set("refY", 5)
            .set("markerWidth", 7)
            .set("markerHeight", 7)
            .set("orient", "auto-start-reverse")
            .add(Path::new().set("d", "M 0 0 L 10 5 L 0 10 z")),
    );
    Document::new()
        .set("width", 0)
        .set("height", 0)
        .set("class", "defs")
        .set("aria-hidden", "true")
        .add(defs)
}

/// `key` prefixes the arrows' detail ids.
pub fn ladder(l: &Ladder, key: &str) -> Document {
    let n = l.columns.len().max(1);
    let width = AXIS + COL * n as f64 + 10.0;
    let mut body = Group::new().set("class", "rows");
    let mut y = HEAD + 10.0;
    for it in &l.items {
        match it {
            Item::Arrow(a) => {
                let (g, h) = arrow(a, y, key, width);
                body = body.add(g);
                y += h;
            }
            Item::Gap(d) => {
                let zig = format!("M {} {} l 8 6 l -16 6 l 16 6 l -8 6", AXIS - 30.0, y + 4.0);
                let g = Group::new()
                    .set("class", "gap")
                    .add(Path::new().set("d", zig).set("class", "zig"))
                    .add(text(
                        AXIS - 40.0,
                        y + 20.0,
                        "gaplbl",
                        &format!("+{} s", secs(d.as_secs_f64())),
                    ))
                    .add(
                        Line::new()
                            .set("x1", AXIS)
                            .set("x2", width - 10.0)
                            .set("y1", y + GAP_H / 2.0)
                            .set("y2", y + GAP_H / 2.0)
                            .set("class", "gapline"),
                    );
                body = body.add(g);
                y += GAP_H;
            }
            Item::End { at, outcome } => {
                let room = width - AXIS - 20.0;
                let g = Group::new()
                    .set("class", "end")
                    .add(
                        Line::new()
                            .set("x1", AXIS)
                            .set("x2", width - 10.0)
                            .set("y1", y + 6.0)
                            .set("y2", y + 6.0)
                            .set("class", "endline"),
                    )
                    .add(text(AXIS - 6.0, y + 10.0, "time", &at.to_string()))
                    .add(clipped(
                        AXIS + 8.0,
                        y + 20.0,
                        "endlbl",
                        &format!("step ends: {outcome}"),
                        room,
                    ));
                body = body.add(g);
                y += ROW;
            }
            Item::Band(b) => {
                body = body.add(band(b, y));
                y += BAND_H;
            }
        }
    }
    let height = y + 10.0;
    let mut heads = Group::new().set("class", "heads");
    for (k, c) in l.columns.iter().enumerate() {
        let cls = if c.router {
            "colhead router"
        } else {
            "colhead"
        };
        heads = heads
            .add(
                Rectangle::new()
                    .set("x", x(k) - COL / 2.0 + 8.0)
                    .set("y", 6)
                    .set("width", COL - 16.0)
                    .set("height", 24)
                    .set("rx", 4)
                    .set("class", format!("{cls} box")),
            )
            .add(text(x(k), 23.0, cls, &c.name).set("data-col", k))
            .add(
                Line::new()
                    .set("x1", x(k))
                    .set("x2", x(k))
                    .set("y1", 30)
                    .set("y2", height)
                    .set("class", "life"),
            );
    }
    Document::new()
        .set("width", width)
        .set("height", height)
        .set("viewBox", (0.0, 0.0, width, height))
        .set("class", "ladder")
        .set("data-frames", l.frames)
        .add(heads)
        .add(body)
}

/// `s` in `t`, cut to `room` pixels; the whole line is its tooltip only
/// when it was cut.
fn clipped(x: f64, y: f64, class: &str, s: &str, room: f64) -> Text {
    let shown = fit(s, room);
    let t = text(x, y, class, &shown);
    if shown != s {
        t.add(Title::new(s))
    } else {
        t
    }
}

/// Monospace text cut to `room` pixels, with an ellipsis.
fn fit(s: &str, room: f64) -> String {
    let max = (room / CHAR_W).max(8.0) as usize;
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max - 1).collect();
    t.push('…');
    t
}

fn arrow(a: &Arrow, y: f64, key: &str, width: f64) -> (Group, f64) {
    let ly = y + 16.0;
    let x1 = x(a.from);
    let on_wire = a.drop.as_ref().is_some_and(|d| d.on_wire);
    let x2 = match a.to {
        Some(t) if !on_wire => x(t),
        Some(t) => (x1 + x(t)) / 2.0,
        None => x1 + if a.from == 0 { COL / 2.0 } else { -COL / 2.0 },
    };
    let right = x2 >= x1;
    let cls = if a.reply_to.is_some() {
        "arrow answer"
    } else {
        "arrow"
    };
    let mut g = Group::new()
        .set("class", cls)
        .set("data-d", format!("{key}-{}", a.trace))
        .set("data-leg", a.leg)
        .set("data-frames", a.frames())
        .set("data-segment", a.segment.as_str())
        .set("tabindex", 0)
        .add(text(AXIS - 6.0, ly + 4.0, "time", &format!("{}", a.at())))
        // A wide invisible stroke: an easy target for hover and click.
        .add(
            Line::new()
                .set("x1", x1)
                .set("x2", x2)
                .set("y1", ly)
                .set("y2", ly)
                .set("class", "hit"),
        );
    let tipped = a.drop.is_none() || on_wire;
    let line = Line::new()
        .set("x1", x1)
        .set("x2", x2)
        .set("y1", ly)
        .set("y2", ly)
        .set("class", if tipped { "wire tip" } else { "wire" });
    g = g
        .add(line)
        .add(text((x1 + x2) / 2.0, ly - 4.0, "lbl", &a.text()));
    let mut h = ROW;
    // The NAT's decision sits under the arrow that leaves the router;
    // what does not fit is in the tooltip and the click-for-detail panel.
    if !a.nat.is_empty() {
        let mid = (x1 + x2) / 2.0;
        let room = 2.0 * mid.min(width - mid) - 8.0;
        let mut ng = Group::new().set("class", "nat");
        for (k, line) in a.nat.iter().enumerate() {
            ng = ng.add(clipped(
                mid,
                ly + 13.0 + NOTE * k as f64,
                "natline",
                line,
                room,
            ));
        }
        g = g.add(ng);
        h += NOTE * a.nat.len() as f64;
    }
    if let Some(d) = &a.drop {
        let (dx, anchor, tx) = if right || on_wire {
            (x2, "start", x2 + 10.0)
        } else {
            (x2, "end", x2 - 10.0)
        };
        let mut dg = Group::new()
            .set("class", "drop")
            .set("data-frames", a.frames())
            .add(text(dx, ly + 5.0, "x", "✗"))
            .add(text(tx, ly + 4.0, &format!("why {anchor}"), &d.reason));
        let base = a.nat.len() as f64;
        for (k, n) in d.notes.iter().enumerate() {
            let room = if anchor == "start" { width - tx } else { tx } - 4.0;
            let y = ly + 13.0 + NOTE * (base + k as f64);
            dg = dg.add(clipped(tx, y, &format!("natline {anchor}"), n, room));
        }
        h += NOTE * d.notes.len() as f64;
        g = g.add(dg);
    }
    (g, h)
}

fn band(b: &Band, y: f64) -> Group {
    let x1 = x(b.cols.0) - 20.0;
    let x2 = x(b.cols.1) + 20.0;
    Group::new()
        .set("class", "band")
        .set("data-frames", b.frames)
        .add(Title::new(format!(
            "{} frames folded: {} to {}",
            b.frames, b.from, b.to
        )))
        .add(
            Rectangle::new()
                .set("x", x1)
                .set("y", y + 4.0)
                .set("width", x2 - x1)
                .set("height", BAND_H - 8.0)
                .set("rx", 6),
        )
        .add(text(
            (x1 + x2) / 2.0,
            y + BAND_H / 2.0 + 4.0,
            "bandlbl",
            &format!(
                "bulk data: {} frames, {} payload bytes, {} – {}",
                b.frames, b.bytes, b.from, b.to
            ),
        ))
        .add(text(AXIS - 6.0, y + 20.0, "time", &b.from.to_string()))
}
