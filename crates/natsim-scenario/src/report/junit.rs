//! JUnit XML in the shape of Jenkins xunit's `junit-10.xsd`: one
//! `<testsuite>` per case (a variant, or a file that could not run), one
//! `<testcase>` per step.
//!
//! * classnames are `path.variant` with the path relative to the folder
//!   given, so they do not move with the checkout; Jenkins splits at the
//!   last dot into "package" (the file) and "class" (the variant);
//! * the suite's `time` is wall seconds (the schema has no properties on
//!   a test case, so the virtual time is the suite's `virtual-time`
//!   property, and each step's virtual start and end open its
//!   `<system-out>`);
//! * a failed step has `<failure type="expectation">`; a file that did not
//!   load, a variant that did not build and one without steps each become
//!   one test case with `<error type=...>` and the diagnostics.

use super::{problem_line, secs, virtual_micros, Case, ErrorKind, Outcome, Suite};

/// Text as XML 1.0 character data or attribute value. Characters XML 1.0
/// cannot carry (most C0 controls) are dropped; newlines and tabs are kept,
/// and in attributes written as references so parsers do not fold them
/// into spaces (XML 1.0 §3.3.3).
fn esc(s: &str, attr: bool) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' if attr => o.push_str("&quot;"),
            '\n' if attr => o.push_str("&#10;"),
            '\t' if attr => o.push_str("&#9;"),
            '\n' | '\t' => o.push(c),
            c if c.is_control() => {}
            '\u{FFFE}' | '\u{FFFF}' => {}
            c => o.push(c),
        }
    }
    o
}

fn a(s: &str) -> String {
    esc(s, true)
}

fn t(s: &str) -> String {
    esc(s, false)
}

fn classname(c: &Case) -> String {
    match &c.variant {
        Some(v) => format!("{}.{v}", c.path),
        None => c.path.clone(),
    }
}

fn wall(c: &Case) -> String {
    c.wall.map_or_else(
        || "0.000000".to_string(),
        |d| secs(d.as_micros().min(u128::from(u64::MAX)) as u64),
    )
}

fn property(x: &mut String, name: &str, value: &str) {
    x.push_str(&format!(
        "      <property name=\"{}\" value=\"{}\"/>\n",
        a(name),
        a(value)
    ));
}

fn suite_xml(x: &mut String, c: &Case) {
    match &c.outcome {
        Outcome::Error { kind, problems } => {
            x.push_str(&format!(
                "  <testsuite name=\"{}\" tests=\"1\" failures=\"0\" errors=\"1\" skipped=\"0\" time=\"{}\" file=\"{}\">\n",
                a(&c.name()),
                wall(c),
                a(&c.file)
            ));
            let what = match kind {
                ErrorKind::Load => "load",
                ErrorKind::Build => "build",
                ErrorKind::NoSteps => "steps",
            };
            let text: Vec<String> = problems.iter().map(problem_line).collect();
            let message = match problems.as_slice() {
                [one] => one.message.clone(),
                many => format!("{} problems", many.len()),
            };
            x.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{what}\" time=\"{}\">\n      <error type=\"{}\" message=\"{}\">{}</error>\n    </testcase>\n",
                a(&classname(c)),
                wall(c),
                kind.code(),
                a(&message),
                t(&text.join("\n"))
            ));
            x.push_str("  </testsuite>\n");
        }
        Outcome::Ran(r) => {
            let failed = r.steps.iter().filter(|s| !s.pass).count();
            x.push_str(&format!(
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failed}\" errors=\"0\" skipped=\"0\" time=\"{}\" file=\"{}\">\n    <properties>\n",
                a(&c.name()),
                r.steps.len(),
                wall(c),
                a(&c.file)
            ));
            property(x, "seed", &r.seed.to_string());
            property(x, "virtual-time", &secs(virtual_micros(r)));
            property(x, "title", &r.title);
            if let Some(s) = &r.source {
                property(x, "source", s);
            }
            x.push_str("    </properties>\n");
            for s in &r.steps {
                // No per-step wall clock exists (the runner is sans-IO):
                // the step's share is in its suite's `time`.
                x.push_str(&format!(
                    "    <testcase classname=\"{}\" name=\"{}\">\n",
                    a(&classname(c)),
                    a(&s.name)
                ));
                if !s.pass {
                    x.push_str(&format!(
                        "      <failure type=\"expectation\" message=\"{}\">{}</failure>\n",
                        a(&s.failures.join("; ")),
                        t(&format!(
                            "expected: {}\nactual: {}\n{}",
                            s.expected.join("; "),
                            s.actual,
                            s.failures.join("\n")
                        ))
                    ));
                }
                let mut out = format!(
                    "virtual time {}s to {}s: {} -> {}\n",
                    secs(s.started.total_micros()),
                    secs(s.ended.total_micros()),
                    s.action,
                    s.actual
                );
                for l in &s.log {
                    out.push_str(&format!("{} {} {}: {}\n", l.at, l.host, l.app, l.text));
                }
                x.push_str(&format!("      <system-out>{}</system-out>\n", t(&out)));
                x.push_str("    </testcase>\n");
            }
            x.push_str("  </testsuite>\n");
        }
    }
}

/// The suite as JUnit XML.
pub fn junit(suite: &Suite) -> String {
    let sum = suite.summary();
    let tests: usize = sum.steps + sum.errors;
    let total_wall: u64 = suite
        .cases
        .iter()
        .filter_map(|c| c.wall)
        .map(|d| d.as_micros().min(u128::from(u64::MAX)) as u64)
        .fold(0u64, u64::saturating_add);
    let name = match suite.shard {
        Some(s) => format!("natsim (shard {s})"),
        None => "natsim".to_string(),
    };
    let mut x = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"{}\" tests=\"{tests}\" failures=\"{}\" errors=\"{}\" time=\"{}\">\n",
        a(&name),
        sum.steps_failed,
        sum.errors,
        secs(total_wall)
    );
    for c in &suite.cases {
        suite_xml(&mut x, c);
    }
    x.push_str("</testsuites>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Problem;

    #[test]
    fn text_drops_what_xml_1_0_cannot_carry_and_attributes_keep_newlines() {
        // XML 1.0 §2.2: of the C0 controls only tab, LF and CR are characters.
        assert_eq!(t("a\u{1}b\u{1b}[0mc\td\ne"), "ab[0mc\td\ne");
        assert_eq!(t("<a & \"b\">"), "&lt;a &amp; \"b\"&gt;");
        assert_eq!(a("x=\"1\"\ny\tz"), "x=&quot;1&quot;&#10;y&#9;z");
    }

    #[test]
    fn a_file_that_did_not_load_is_one_error_case_with_its_diagnostics() {
        let p = Problem {
            severity: crate::diag::Severity::Error,
            file: "dir/bad.toml".into(),
            line: 3,
            col: 7,
            message: "unknown field `x`".into(),
            hint: Some("check the spelling".into()),
            span: 0..0,
        };
        let suite = Suite {
            cases: vec![Case::error(
                "bad.toml",
                "dir/bad.toml",
                None,
                ErrorKind::Load,
                vec![p],
            )],
            shard: None,
        };
        let x = junit(&suite);
        assert!(
            x.contains("<testsuites name=\"natsim\" tests=\"1\" failures=\"0\" errors=\"1\""),
            "{x}"
        );
        assert!(
            x.contains("<testcase classname=\"bad.toml\" name=\"load\""),
            "{x}"
        );
        assert!(x.contains("<error type=\"load-error\" message=\"unknown field `x`\">dir/bad.toml:3:7: error: unknown field `x`\n  hint: check the spelling</error>"), "{x}");
    }
}
