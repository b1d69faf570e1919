//! `natsim verify --linux` on every shipped router with the `linux`
//! profile: the kernel is the oracle. Needs root, `ip`, `nft` and
//! `conntrack`; without them the test says so and passes, except under CI
//! (`CI=true`, where .ci/run installs them), where a skip would hide a
//! missing install step and fails instead.

use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs verify; `None` when the machine cannot (exit 2 for missing tools).
fn verify(args: &[&str]) -> Option<(i32, String)> {
    let out = Command::new(env!("CARGO_BIN_EXE_natsim"))
        .arg("verify")
        .arg("--linux")
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = out.status.code().unwrap_or(-1);
    if code == 2 && text.contains("verify --linux needs") {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must be able to run verify: {text}"
        );
        eprintln!("skipped: {}", text.trim());
        return None;
    }
    Some((code, text))
}

fn assert_full_agreement(args: &[&str], at_least: usize) {
    let Some((code, text)) = verify(args) else {
        return;
    };
    let last = text.lines().last().unwrap_or_default().to_string();
    let (agreed, total) = last
        .strip_suffix(" probes agree")
        .and_then(|s| s.split_once('/'))
        .map(|(a, b)| (a.parse::<usize>().unwrap(), b.parse::<usize>().unwrap()))
        .unwrap_or_else(|| panic!("no `N/N probes agree` line:\n{text}"));
    assert!(total >= at_least, "only {total} probes:\n{text}");
    assert_eq!(agreed, total, "the kernel disagrees:\n{text}");
    assert_eq!(code, 0, "{text}");
}

#[test]
fn nat_types_linux_router_agrees_with_the_kernel() {
    assert_full_agreement(&["scenarios/nat-types.toml", "--variant", "linux"], 25);
}

/// `masquerade fully-random`: the kernel draws every port; natsim's draw
/// follows the same rule (not kept, no reuse, same class).
#[test]
fn a_fully_random_masquerade_agrees_with_the_kernel() {
    assert_full_agreement(
        &[
            "scenarios/nat-types.toml",
            "--variant",
            "linux-fully-random",
        ],
        25,
    );
}

#[test]
fn ftp_routers_masquerade_and_forward_agree_with_the_kernel() {
    // The base router (masquerade) and the variant forwarding TCP 21
    // (forward from outside, hairpin from inside); the ALG variant is
    // reported as not verified.
    assert_full_agreement(&["scenarios/ftp.toml"], 50);
}

#[test]
fn a_router_with_another_profile_is_refused_with_exit_2() {
    let Some((code, text)) = verify(&["scenarios/hairpin.toml"]) else {
        return;
    };
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("not verified (profile"), "{text}");
}

#[test]
fn imported_docker_home_and_office_routers_agree_with_the_kernel() {
    // Routers built from real rulesets (rules = "...", ipsets = "..."):
    // Docker's chains, a hairpin masquerade, 1:1 with a FORWARD filter.
    for s in ["docker-host", "home-router", "office-firewall"] {
        assert_full_agreement(&[&format!("scenarios/imported/{s}.toml")], 25);
    }
}
