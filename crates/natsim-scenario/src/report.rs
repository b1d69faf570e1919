//! Reports rendered from run results: the terminal table, JSON (results
//! with traces) and JUnit XML.

use crate::run::VariantResult;

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
pub fn table(results: &[VariantResult]) -> String {
    let mut rows: Vec<[String; 6]> = vec![[
        "scenario".into(),
        "variant".into(),
        "step".into(),
        "expected".into(),
        "actual".into(),
        "result".into(),
    ]];
    for r in results {
        let scen = r.source.clone().unwrap_or_else(|| r.title.clone());
        for (k, s) in r.steps.iter().enumerate() {
            rows.push([
                trunc(&scen, 18),
                trunc(&r.variant, 28),
                // The number `natsim explain --step N` takes.
                trunc(&format!("{}. {}", k + 1, s.name), 25),
                trunc(&s.expected.join("; "), 38),
                trunc(&s.actual, 60),
                if s.pass { "pass".into() } else { "FAIL".into() },
            ]);
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
    let steps: usize = results.iter().map(|r| r.steps.len()).sum();
    let failed: usize = results
        .iter()
        .flat_map(|r| &r.steps)
        .filter(|s| !s.pass)
        .count();
    out.push_str(&format!(
        "\n{} variants, {steps} steps, {} passed, {failed} failed\n",
        results.len(),
        steps - failed
    ));
    out
}

/// Full results with traces, as JSON.
pub fn json(results: &[VariantResult]) -> String {
    serde_json::to_string_pretty(results).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

fn xml_escape(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&apos;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// JUnit XML: one testsuite per scenario variant, one testcase per step.
pub fn junit(results: &[VariantResult]) -> String {
    let tests: usize = results.iter().map(|r| r.steps.len()).sum();
    let failures: usize = results
        .iter()
        .flat_map(|r| &r.steps)
        .filter(|s| !s.pass)
        .count();
    let mut x = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"natsim\" tests=\"{tests}\" failures=\"{failures}\">\n");
    for r in results {
        let f = r.steps.iter().filter(|s| !s.pass).count();
        let name = format!(
            "{} :: {}",
            r.source.clone().unwrap_or_else(|| r.title.clone()),
            r.variant
        );
        x.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{f}\" errors=\"0\">\n",
            xml_escape(&name),
            r.steps.len()
        ));
        for s in &r.steps {
            let secs = s.ended.saturating_duration_since(s.started).as_secs_f64();
            x.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{secs:.3}\">\n",
                xml_escape(&format!("{}.{}", r.file, r.variant)),
                xml_escape(&s.name)
            ));
            if !s.pass {
                x.push_str(&format!(
                    "      <failure message=\"{}\">{}</failure>\n",
                    xml_escape(&s.failures.join("; ")),
                    xml_escape(&s.actual)
                ));
            }
            x.push_str(&format!(
                "      <system-out>{}</system-out>\n",
                xml_escape(
                    &s.log
                        .iter()
                        .map(|l| format!("{} {} {}: {}", l.at, l.host, l.app, l.text))
                        .collect::<Vec<_>>()
                        .join("\n")
                )
            ));
            x.push_str("    </testcase>\n");
        }
        x.push_str("  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    x
}
