//! The `natsim` binary as a user sees it: exit codes, located errors, help
//! with examples, and no crash when its output pipe closes early.

mod common;
use common::*;
use std::process::Stdio;

#[test]
fn run_exits_zero_and_prints_a_passing_table_when_expectations_hold() {
    let out = natsim()
        .arg("run")
        .arg(repo().join("scenarios/hairpin.toml"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.starts_with("scenario"), "{table}");
    assert!(
        table.contains("2 variants, 4 steps, 4 passed, 0 failed"),
        "{table}"
    );
}

#[test]
fn run_exits_one_when_an_expectation_fails() {
    let src = std::fs::read_to_string(repo().join("scenarios/hairpin.toml")).unwrap();
    let broken = src.replacen("expect = \"status 200\"", "expect = \"status 404\"", 1);
    assert_ne!(
        src, broken,
        "the hairpin scenario changed; update this test"
    );
    let p = scratch("hairpin-404.toml", &broken);
    let out = natsim().arg("run").arg("-q").arg(&p).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("FAIL") && table.contains("2 failed"),
        "{table}"
    );
}

#[test]
fn check_exits_two_with_file_line_col_and_hint_for_a_malformed_file() {
    let p = scratch(
        "typo.toml",
        "title = \"t\"\n[[segment]]\nname = \"lan\"\nlatencyy = \"1ms\"\n",
    );
    let out = natsim().arg("check").arg(&p).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("typo.toml:4:1:"), "{err}");
    assert!(err.contains("hint:") || err.contains("help:"), "{err}");
}

#[test]
fn check_accepts_every_shipped_scenario() {
    let out = natsim()
        .arg("check")
        .arg(repo().join("scenarios"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.lines().filter(|l| l.contains(": ok (")).count(),
        // 13 KB, feature and example scenarios, 3 imported rulesets.
        16,
        "{text}"
    );
}

#[test]
fn a_closed_output_pipe_does_not_crash_the_cli() {
    // Deeply nested input yields a long diagnostic on stderr; both streams
    // are closed before the child writes anything.
    let p = scratch(
        "deep.toml",
        &format!("title = {}{}\n", "[".repeat(5000), "]".repeat(5000)),
    );
    let child = natsim()
        .arg("check")
        .arg(&p)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = child;
    drop(child.stdout.take());
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(2), "a panic exits with 101");
}

#[test]
fn every_command_help_shows_examples() {
    for cmd in ["run", "check", "explain"] {
        let out = natsim().args([cmd, "--help"]).output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("Examples:\n  natsim "), "{cmd}: {text}");
    }
}

#[test]
fn explain_narrates_the_lesson_and_the_nat_decisions_of_one_step() {
    let out = natsim()
        .arg("explain")
        .arg(repo().join("scenarios/kb/Q193863.toml"))
        .args(["--variant", "option-2-dns-and-forward", "--step", "3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("lesson:"), "{text}");
    assert!(text.contains("== step 3: telnet-25"), "{text}");
    assert!(text.contains("NAT: rule `smtp-in` matched"), "{text}");
    assert!(!text.contains("== step 2"), "{text}");
}

#[test]
fn explain_names_the_variants_when_asked_for_an_unknown_one() {
    let out = natsim()
        .arg("explain")
        .arg(repo().join("scenarios/kb/Q193863.toml"))
        .args(["--variant", "option-3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no variant `option-3`") && err.contains("option-1-no-nat"),
        "{err}"
    );
}

#[test]
fn each_problem_is_reported_once_with_its_place() {
    // A name long enough that a wrapped heading would split it.
    let p = scratch(
        "once-with-a-name-long-enough-to-pass-eighty-columns.toml",
        TYPO,
    );
    let (code, _, err) = run_ok(&["check".as_ref(), p.as_os_str()]);
    assert_eq!(code, Some(2));
    assert_eq!(err.matches("unknown field `latencyy`").count(), 2, "{err}");
    // The message once in the heading and once as the snippet's label:
    // one report, one heading with file:line:col.
    assert_eq!(
        err.matches("once-with-a-name-long-enough-to-pass-eighty-columns.toml:4:1: error: unknown field `latencyy`").count(),
        1,
        "{err}"
    );
    assert!(err.contains("latencyy = \"1ms\""), "the snippet: {err}");
}

#[test]
fn a_missing_file_is_no_such_file_not_a_position() {
    let p = repo().join("scenarios/no-such-scenario.toml");
    for cmd in ["check", "run", "explain"] {
        let (code, _, err) = run_ok(&[cmd.as_ref(), p.as_os_str()]);
        assert_eq!(code, Some(2), "{cmd}: {err}");
        assert!(
            err.contains("no-such-scenario.toml: error: no such file"),
            "{cmd}: {err}"
        );
        assert!(!err.contains(":0:0"), "{cmd}: {err}");
        assert_eq!(err.matches("no such file").count(), 1, "{cmd}: {err}");
    }
}

#[test]
fn run_exits_two_when_nothing_ran() {
    let empty = scratch_dir("empty");
    let (code, _, err) = run_ok(&["run".as_ref(), empty.as_os_str()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("no scenario files (*.toml) in this folder"),
        "{err}"
    );
    assert!(err.contains("nothing ran"), "{err}");

    let hairpin = repo().join("scenarios/hairpin.toml");
    let (code, _, err) = run_ok(&[
        "run".as_ref(),
        hairpin.as_os_str(),
        "--filter".as_ref(),
        "no-such-variant".as_ref(),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--filter `no-such-variant` matches none of the 2 variants"),
        "{err}"
    );

    // A file with no steps loads (or is refused by the loader), but
    // either way nothing is checked, and that is not a pass.
    let src = std::fs::read_to_string(&hairpin).unwrap();
    let cut = src.find("[[step]]").unwrap();
    let nosteps = scratch("no-steps.toml", &src[..cut]);
    let junit = scratch_dir("nosteps-junit").join("j.xml");
    let (code, table, err) = run_ok(&[
        "run".as_ref(),
        nosteps.as_os_str(),
        "--junit".as_ref(),
        junit.as_os_str(),
    ]);
    assert_eq!(code, Some(2), "{table}{err}");
    assert!(err.contains("no-steps.toml"), "{err}");
    assert!(table.contains("ERROR"), "{table}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("<error type="), "{xml}");
}

/// `natsim show` is JSON a user can query: every rule, profile and
/// duration a plain value, no Rust debug dump inside a string.
#[test]
fn show_prints_queryable_json() {
    let out = natsim()
        .arg("show")
        .arg(repo().join("scenarios/office.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let nat = &v["routers"][0]["nat"];
    assert_eq!(nat["profile"], "linux");
    assert_eq!(nat["rules"][0]["chain"], "prerouting");
    assert!(nat["rules"][0]["match"]
        .as_str()
        .unwrap()
        .contains("--dport 80"));
    assert_eq!(nat["timeouts_s"]["udp_unreplied"], 30.0);
    assert_eq!(nat["mapping"]["udp"], "endpoint-independent");
    assert!(v["hosts"][0]["tcp"].is_string());
    assert!(v["steps"][0]["limit"].is_string());
    for debug in ["Some(", "NatConfig {", "TcpProfile {", "\"secs\""] {
        assert!(!text.contains(debug), "`{debug}` in:\n{text}");
    }
}
