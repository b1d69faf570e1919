//! The `natsim` binary as a user sees it: exit codes, located errors, help
//! with examples, and no crash when its output pipe closes early.

use std::path::PathBuf;
use std::process::{Command, Stdio};

fn natsim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_natsim"))
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn scratch(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("natsim-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

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
        // 8 KB and feature scenarios, 3 imported rulesets (issue 17).
        11,
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
