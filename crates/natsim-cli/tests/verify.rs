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

/// Full agreement with at least `at_least` probes; the output, if verify ran.
fn assert_full_agreement(args: &[&str], at_least: usize) -> Option<String> {
    let (code, text) = verify(args)?;
    let last = text.lines().last().unwrap_or_default().to_string();
    let (agreed, total) = last
        .strip_suffix(" probes agree")
        .and_then(|s| s.split_once('/'))
        .map(|(a, b)| (a.parse::<usize>().unwrap(), b.parse::<usize>().unwrap()))
        .unwrap_or_else(|| panic!("no `N/N probes agree` line:\n{text}"));
    assert!(total >= at_least, "only {total} probes:\n{text}");
    assert_eq!(agreed, total, "the kernel disagrees:\n{text}");
    assert_eq!(code, 0, "{text}");
    Some(text)
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
    // The base router (masquerade), the variant forwarding TCP 21 (forward
    // from outside, hairpin from inside), and both with the FTP ALG, which
    // the kernel runs as its own helper (nf_conntrack_ftp/nf_nat_ftp): the
    // rewritten PORT, the shifted sequence numbers and the admitted data
    // connection agree byte for byte.
    let Some(text) = assert_full_agreement(&["scenarios/ftp.toml"], 110) else {
        return;
    };
    assert!(text.contains("ftp-alg-on router router"), "{text}");
    assert!(text.contains("ftp PORT through the helper"), "{text}");
}

/// The office edge router in every variant, hairpin `on` and `off`
/// included: the kernel gets those modes as the rules an admin would add
/// (an SNAT back out of the inside interface; a drop in forward).
#[test]
fn office_edge_routers_with_each_hairpin_mode_agree_with_the_kernel() {
    let Some(text) = assert_full_agreement(&["scenarios/office.toml"], 100) else {
        return;
    };
    assert!(text.contains("hairpin-off router edge"), "{text}");
}

/// The PMTU black hole's NAT router (its other routers have no NAT).
#[test]
fn pmtu_blackhole_router_agrees_with_the_kernel() {
    assert_full_agreement(&["scenarios/pmtu-blackhole.toml"], 25);
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

/// `--rules` alone: the router is read off the ruleset (interfaces, roles,
/// addresses, printed with their reasons) and checked against the kernel.
#[test]
fn a_ruleset_alone_is_checked_on_the_router_it_describes() {
    for (rules, sets, ifaces) in [
        (
            "docker-host.rules",
            None,
            &["docker0         172.17.0.1/16  inside"][..],
        ),
        (
            "home-router.rules",
            None,
            &["wan0           203.0.113.1/24  outside"][..],
        ),
        (
            "office-1to1.rules",
            Some("office.ipset"),
            &["lan0          192.168.10.1/24  inside"][..],
        ),
        // Docker with a compose bridge beside docker0: each bridge's
        // `-i BRIDGE -j RETURN` in the nat DOCKER chain exempts it, and the
        // published ports are probed from both bridges.
        (
            "../../crates/natsim-import/tests/fixtures/docker-two-bridges.rules",
            None,
            &[
                // The name column is as wide as the longest name.
                "  br-5c1f8e2a9b3d      172.18.0.1/16  inside",
                "  docker0              172.17.0.1/16  inside",
                "note: 2 rule(s) left out: they only log",
                "hairpin `line 47` from inside (client1-dock",
            ][..],
        ),
        // A hand-written router that logs its drops (LOG, NFLOG under
        // `-m limit`): those rules change no packet's fate and are left out.
        (
            "../../crates/natsim-cli/tests/fixtures/logging-router.rules",
            None,
            &[
                "lan0          192.168.20.1/24  inside",
                "5 rule(s) left out: they only log",
            ][..],
        ),
        // ICMP types by number, name and code, one negated: pings leave
        // and reach the router, every other ICMP from the LAN is dropped
        // (the negation decides the echo probes), errors pass as RELATED.
        // The uplink is `ppp+`: the guessed router names it ppp0.
        (
            "../../crates/natsim-cli/tests/fixtures/pppoe-icmp.rules",
            None,
            &[
                "ppp0           203.0.113.1/24  outside",
                "one interface `ppp+` matches",
                "lan0           192.168.1.1/24  inside",
                "unsolicited icmp to router",
            ][..],
        ),
        // A home router as `nft -j` (nftables 1.0.6) printed it: `iif lo`,
        // port and protocol sets (`meta l4proto { tcp, udp } th dport`),
        // `tcp flags syn`, a rate-limited ping (taken as under its limit)
        // and a DNAT of a port set.
        (
            "../../crates/natsim-cli/tests/fixtures/nft-home.json",
            None,
            &[
                "ppp0           203.0.113.1/24  outside",
                "taken as under the limit",
            ][..],
        ),
        // Docker 28's raw-table rules: a container's own address is
        // dropped from outside before conntrack, the published port still
        // reaches it (without them, Docker's FORWARD rule lets it in).
        (
            "../../crates/natsim-cli/tests/fixtures/docker28-raw.rules",
            None,
            &["forward `line 42`: its server's own address   silence"][..],
        ),
        // OpenWrt fw3's zone chains, with a forward's "(reflection)" DNAT
        // and SNAT on br-lan: the LAN stays inside, and the uplink takes
        // the address the forward is published on.
        (
            "../../crates/natsim-cli/tests/fixtures/openwrt-fw3.rules",
            None,
            &[
                "br-lan         192.168.1.1/24  inside",
                "eth0.2        198.51.100.7/24  outside",
            ][..],
        ),
        // firewalld's zone chains (nft -j), with REJECT in input and
        // forward: the errors come from the targeted address and quote
        // the forwarded packet's TTL after ip_forward's decrement, with
        // firewalld's own code (`icmpx admin-prohibited`: 3/13).
        (
            "../../crates/natsim-cli/tests/fixtures/firewalld-v4.json",
            None,
            &[
                "eth1          192.168.50.1/24  inside",
                "eth0           203.0.113.1/24  outside",
                "icmp 3/13 203.0.113.1 > 203.0.113.253",
            ][..],
        ),
    ] {
        let r = format!("scenarios/imported/{rules}");
        let mut args = vec!["--rules", r.as_str()];
        let s = sets.map(|s| format!("scenarios/imported/{s}"));
        if let Some(s) = &s {
            args.extend(["--ipsets", s.as_str()]);
        }
        let Some(text) = assert_full_agreement(&args, 25) else {
            return;
        };
        for iface in ifaces {
            assert!(text.contains(iface), "{text}");
        }
        assert!(text.contains("no scenario given"), "{text}");
    }
}

#[test]
fn a_bad_ruleset_alone_is_a_located_error_with_exit_2() {
    let dir = std::env::temp_dir().join(format!("natsim-verify-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bad.rules");
    std::fs::write(
        &f,
        "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp -m recent --rcheck -j DNAT --to-destination 10.0.0.2\nCOMMIT\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_natsim"))
        .args(["verify", "--linux", "--rules"])
        .arg(&f)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("bad.rules:3:25: error: match module `recent`"),
        "{text}"
    );
}

/// `FILE --rules R`: R takes the place of the router's own `rules` file
/// (its forwards are gone), not a place after it.
#[test]
fn rules_given_with_a_scenario_replace_the_routers_own_rules_file() {
    let dir = std::env::temp_dir().join(format!("natsim-verify-swap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("masquerade-only.rules");
    std::fs::write(
        &f,
        "*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -o wan0 -j MASQUERADE\nCOMMIT\n",
    )
    .unwrap();
    let f = f.display().to_string();
    let Some(text) = assert_full_agreement(
        &["scenarios/imported/home-router.toml", "--rules", f.as_str()],
        25,
    ) else {
        return;
    };
    assert!(!text.contains("forward `web server`"), "{text}");
}

/// `[router.nat.timeouts]` on a linux router: verify gives the kernel the
/// same timeouts (its per-namespace conntrack sysctls), so the timeout
/// probes compare natsim's use of them with the kernel's; with the
/// sysctls left at their defaults five of those probes disagree.
#[test]
fn a_router_with_its_own_timeouts_agrees_with_the_kernel_given_them() {
    let Some(text) = assert_full_agreement(
        &["crates/natsim-cli/tests/fixtures/custom-timeouts.toml"],
        30,
    ) else {
        return;
    };
    assert!(
        text.contains("conntrack timeout: tcp established"),
        "{text}"
    );
}

/// A timeout the kernel's sysctls cannot hold (they count whole seconds)
/// is refused before anything is built, naming the field.
#[test]
fn a_timeout_the_kernel_cannot_hold_is_refused() {
    let dir = std::env::temp_dir().join(format!("natsim-verify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = std::fs::read_to_string(
        repo().join("crates/natsim-cli/tests/fixtures/custom-timeouts.toml"),
    )
    .unwrap()
    .replace("tcp_established = \"1h\"", "tcp_established = \"1.5s\"");
    let file = dir.join("half-seconds.toml");
    std::fs::write(&file, src).unwrap();
    let Some((code, text)) = verify(&[file.to_str().unwrap()]) else {
        return;
    };
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("tcp_established = 1.5s"), "{text}");
}
