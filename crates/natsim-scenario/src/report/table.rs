//! The terminal table: one row per step, one per case that could not run,
//! and a closing count.

use super::{Outcome, Suite};

fn trunc(s: &str, n: usize) -> String {
    let one = s.replace('\n', " ");
    if one.chars().count() <= n {
        one
    } else {
        let mut t: String = one.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// `scenario / variant / step / expected / actual / result` rows.
pub fn table(suite: &Suite) -> String {
    let mut rows: Vec<[String; 6]> = vec![[
        "scenario".into(),
        "variant".into(),
        "step".into(),
        "expected".into(),
        "actual".into(),
        "result".into(),
    ]];
    for c in &suite.cases {
        match &c.outcome {
            Outcome::Ran(r) => {
                let scen = r.source.clone().unwrap_or_else(|| c.path.clone());
                for s in &r.steps {
                    rows.push([
                        trunc(&scen, 18),
                        trunc(&r.variant, 28),
                        trunc(&format!("{}. {}", s.number, s.name), 25),
                        trunc(&s.expected.join("; "), 38),
                        trunc(&s.actual, 60),
                        if s.pass { "pass".into() } else { "FAIL".into() },
                    ]);
                }
            }
            Outcome::Error { kind, problems } => rows.push([
                trunc(&c.path, 18),
                trunc(c.variant.as_deref().unwrap_or("-"), 28),
                "-".into(),
                "-".into(),
                trunc(
                    &format!(
                        "{}: {}",
                        kind.code(),
                        problems.first().map_or("", |p| p.message.as_str())
                    ),
                    60,
                ),
                "ERROR".into(),
            ]),
        }
    }
    let mut w = [0usize; 6];
    for row in &rows {
        for (k, c) in row.iter().enumerate() {
            w[k] = w[k].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(k, c)| format!("{c:<width$}", width = w[k]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
        if i == 0 {
            out.push_str(
                &w.iter()
                    .map(|n| "-".repeat(*n))
                    .collect::<Vec<_>>()
                    .join("  "),
            );
            out.push('\n');
        }
    }
    let s = suite.summary();
    let ran = s.passed + s.failed;
    out.push_str(&format!(
        "\n{ran} variants, {} steps, {} passed, {} failed",
        s.steps, s.steps_passed, s.steps_failed
    ));
    if s.errors > 0 {
        out.push_str(&format!(", {} could not run", s.errors));
    }
    out.push('\n');
    out
}
