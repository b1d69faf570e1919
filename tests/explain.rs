//! `natsim explain` answers what an engineer asks: small expected
//! extracts of its output for a near miss, a router's RST and a host's
//! unanswered ARP (scenarios in tests/explain/).

use natsim_scenario::explain::{explain, explain_steps, find_step};
use natsim_scenario::{load_file, run_variant, VariantResult};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn base(file: &str) -> VariantResult {
    let l = load_file(&root().join(file)).unwrap();
    run_variant(&l, l.variants()[0], None, false).unwrap()
}

fn has(out: &str, line: &str) {
    assert!(
        out.lines().any(|l| l.trim() == line),
        "missing line:\n  {line}\n--- explain ---\n{out}"
    );
}

#[test]
fn a_refused_syn_names_the_forward_that_almost_matched_and_why() {
    let out = explain(&base("tests/explain/router-rst.toml"), None);
    has(
        &out,
        "- NAT: near miss: rule `smtp-partner` almost matched, but the source 198.51.100.7 is outside 203.0.113.0/24",
    );
}

#[test]
fn a_nat_rst_says_the_reject_policy_sent_it() {
    let out = explain(&base("tests/explain/router-rst.toml"), None);
    has(
        &out,
        "frame #1 at 0.103017s: tcp 198.51.100.1:25 -> 198.51.100.7:50147 [AR] (from router)",
    );
    has(
        &out,
        "why: router's NAT sent this in answer to frame #0: its unsolicited policy is `reject` (the file's `unsolicited`, or the profile's default: `linux` rejects, as the kernel's own stack does), which answers traffic that no mapping or forward takes instead of dropping it silently",
    );
}

#[test]
fn a_host_whose_gateway_never_answers_arp_says_so() {
    let out = explain(&base("tests/explain/unanswered-arp.toml"), None);
    has(
        &out,
        "[1.100000s] pc arp: no answer to ARP who-has 192.168.1.254 (asked at 0.100000s, again at 1.100000s): nothing on lan answers for that address",
    );
    has(
        &out,
        "[21.100000s] pc telnet: could not open connection to 203.0.113.80:80: timed out after 21.0 s",
    );
}

#[test]
fn identical_syn_retransmissions_are_one_entry() {
    let r = base("scenarios/kb/Q193863.toml");
    let n = find_step(&r, "telnet-25").unwrap();
    let out = explain_steps(&r, &|k, _| k + 1 == n);
    // The Windows SYN schedule from the 22.12 s start: 0, 3 and 9 s later.
    has(
        &out,
        "sent 3 times, at 22.120395s, 25.120395s, 31.120395s (#29, #30, #31): identical retransmissions, each went the same way",
    );
    assert_eq!(out.matches("[S] (from internet-mta)").count(), 1, "{out}");
}

#[test]
fn steps_are_found_by_number_or_name_and_an_unknown_one_lists_them() {
    let r = base("scenarios/kb/Q193863.toml");
    assert_eq!(find_step(&r, "2"), Ok(2));
    assert_eq!(find_step(&r, "telnet-25"), Ok(3));
    let e = find_step(&r, "smtp").unwrap_err();
    assert!(
        e.contains("steps: 1 outbound-mail, 2 inbound-mail, 3 telnet-25, 4 ping"),
        "{e}"
    );
}

#[test]
fn failed_only_narrates_no_step_of_a_passing_variant() {
    let r = base("scenarios/kb/Q193863.toml");
    assert!(r.pass);
    let out = explain_steps(&r, &|_, s| !s.pass);
    assert!(!out.contains("== step"), "{out}");
}

/// A routing loop between two routers: the ICMP time-exceeded says where
/// the TTL ran out (RFC 1812 §5.3.1).
#[test]
fn a_time_exceeded_names_the_router_where_the_ttl_ran_out() {
    let out = explain(&base("tests/explain/ttl-and-no-route.toml"), None);
    has(
        &out,
        "why: bouncer sent this because frame #0's TTL ran out there (RFC 1812 §5.3.1)",
    );
}

/// A host with no gateway pinging off its subnet: smoltcp sends nothing,
/// so the host's log says why.
#[test]
fn a_host_with_no_route_says_so_where_it_happens() {
    let out = explain(&base("tests/explain/ttl-and-no-route.toml"), None);
    has(
        &out,
        "[0.634936s] island ping: no route to 198.51.100.7: it is outside 192.168.1.20/24 and the host has no gateway, so nothing is sent",
    );
    has(
        &out,
        "[5.034936s] island telnet: could not open connection to 198.51.100.7:80: network unreachable (no route)",
    );
}
