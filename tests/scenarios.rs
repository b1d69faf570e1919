//! Every shipped scenario, through the library: each variant must pass,
//! reruns must be identical, and the reports must be well-formed.

use natsim::scenario::{collect, explain::explain, load_file, report, run_variant, VariantResult};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run_file(path: &Path) -> Vec<VariantResult> {
    let l = load_file(path).unwrap_or_else(|ps| {
        panic!(
            "{}",
            ps.iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    l.variants()
        .into_iter()
        .map(|v| run_variant(&l, v, None, true).unwrap())
        .collect()
}

#[test]
fn every_shipped_scenario_and_variant_passes() {
    let files = collect(&root().join("scenarios")).unwrap();
    assert!(files.len() >= 8, "{files:?}");
    let mut failed = Vec::new();
    for f in &files {
        for r in run_file(f) {
            for s in r.steps.iter().filter(|s| !s.pass) {
                failed.push(format!(
                    "{}::{}::{}: {}",
                    f.display(),
                    r.variant,
                    s.name,
                    s.failures.join("; ")
                ));
            }
        }
    }
    assert!(failed.is_empty(), "failing steps:\n{}", failed.join("\n"));
}

/// What each article says happens, checked against what the run saw (the
/// step's outcome text, not the file's own `expect` lines, which a wrong
/// edit could weaken along with the result): (file, variant, step, the
/// outcome starts with, and contains).
const KB_CLAIMS: &[(&str, &str, &str, &str, &str)] = &[
    // Q193863: behind NAT the server sends but cannot receive; telnet to
    // it "fails with a time out", and so do pings.
    ("Q193863", "base", "outbound-mail", "delivered", ""),
    ("Q193863", "base", "inbound-mail", "deferred", "timed out"),
    ("Q193863", "base", "telnet-25", "timed out", ""),
    ("Q193863", "base", "ping", "request timed out", ""),
    // Option 1: no NAT, DNS at the server's own address: direct
    // communication from the Internet.
    (
        "Q193863",
        "option-1-no-nat",
        "inbound-mail",
        "delivered",
        "",
    ),
    ("Q193863", "option-1-no-nat", "telnet-25", "connected", ""),
    ("Q193863", "option-1-no-nat", "ping", "reply from", ""),
    // Option 2: DNS at the router's address (with SMTP forwarded to it).
    (
        "Q193863",
        "option-2-dns-and-forward",
        "inbound-mail",
        "delivered to mailbox",
        "via 203.0.113.1",
    ),
    // Q183801: [SMTPOUT:...] before SP1 gets the quoted NDR; SP1 with
    // OverrideProxyOut and an SMTPOUT address space delivers; without the
    // address space it cannot be routed.
    (
        "Q183801",
        "base",
        "send-smtpout",
        "ndr:",
        "(000D06B5) No proxy for",
    ),
    ("Q183801", "base", "send-plain-smtp", "delivered", ""),
    (
        "Q183801",
        "sp1-override-proxy-out",
        "send-smtpout",
        "delivered",
        "",
    ),
    (
        "Q183801",
        "sp1-registry-without-address-space",
        "send-smtpout",
        "ndr:",
        "No transport provider",
    ),
    // Q249100: user@host needs an A record; user@[IP] needs a routing
    // entry "accept as inbound" for the IP.
    ("Q249100", "base", "mail-to-host-name", "delivered", ""),
    (
        "Q249100",
        "base",
        "mail-to-ip-literal",
        "bounced",
        "Unable to relay",
    ),
    (
        "Q249100",
        "reroute-with-ip-routing-entry",
        "mail-to-ip-literal",
        "delivered",
        "",
    ),
    (
        "Q249100",
        "no-a-record",
        "mail-to-host-name",
        "bounced",
        "host unknown",
    ),
    // Q182339: the checklist holds; "Reroute incoming SMTP mail (required
    // for POP3 support)"; the SMTP address space; the ISP's DNS servers.
    ("Q182339", "base", "nslookup-mx", "mail.example.com", ""),
    ("Q182339", "base", "receive", "delivered", ""),
    (
        "Q182339",
        "base",
        "send",
        "handed off to sendmail.isp.example",
        "",
    ),
    (
        "Q182339",
        "step3-no-reroute-for-pop3",
        "pop3-client-sends",
        "bounced",
        "Unable to relay",
    ),
    (
        "Q182339",
        "step4-no-smtp-address-space",
        "send",
        "ndr:",
        "No transport provider",
    ),
    (
        "Q182339",
        "step6-wrong-dns-server-order",
        "send",
        "ndr:",
        "host unknown",
    ),
    // KB291615: Outlook cannot connect through NAT; a one-to-one pipe
    // works on a non-NT firewall but not on an NT one, whose own endpoint
    // mapper answers on 135; OWA needs only HTTP.
    (
        "KB291615",
        "base",
        "outlook-keeps-dialled-address",
        "failed",
        "",
    ),
    (
        "KB291615",
        "one-to-one-pipe",
        "outlook-keeps-dialled-address",
        "connected",
        "",
    ),
    (
        "KB291615",
        "one-to-one-on-nt-firewall",
        "outlook-keeps-dialled-address",
        "failed at ept_map",
        "",
    ),
    ("KB291615", "owa-over-http", "owa", "HTTP 200", ""),
    (
        "KB291615",
        "client-resolves-server-name",
        "outlook-takes-tower-address",
        "failed at resolve",
        "",
    ),
];

#[test]
fn the_kb_articles_outcomes_are_replayed() {
    let mut wrong = Vec::new();
    for kb in ["Q193863", "Q182339", "Q249100", "Q183801", "KB291615"] {
        let results = run_file(&root().join("scenarios/kb").join(format!("{kb}.toml")));
        assert!(results.len() > 1, "{kb}: a base and its workarounds");
        for r in &results {
            assert!(
                r.pass,
                "{kb}::{}: {:?}",
                r.variant,
                r.steps.iter().flat_map(|s| &s.failures).collect::<Vec<_>>()
            );
        }
        let claims: Vec<_> = KB_CLAIMS.iter().filter(|c| c.0 == kb).collect();
        assert!(claims.len() >= 3, "{kb}: too few claims checked");
        for (_, variant, step, starts, contains) in claims {
            let r = results
                .iter()
                .find(|r| r.variant == *variant)
                .unwrap_or_else(|| panic!("{kb}: no variant {variant}"));
            let s = r
                .steps
                .iter()
                .find(|s| s.name == *step)
                .unwrap_or_else(|| panic!("{kb}::{variant}: no step {step}"));
            if !(s.actual.starts_with(starts) && s.actual.contains(contains)) {
                wrong.push(format!(
                    "{kb}::{variant}::{step}: the article says `{starts}`..`{contains}`, the run saw `{}`",
                    s.actual
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn reruns_with_the_same_seed_are_identical() {
    for f in ["scenarios/kb/KB291615.toml", "scenarios/ftp.toml"] {
        let a = run_file(&root().join(f));
        let b = run_file(&root().join(f));
        let json = |r: &[VariantResult]| {
            report::json(
                &report::Suite::from_results(r.to_vec()),
                report::JsonLevel::Frames,
            )
        };
        assert_eq!(json(&a), json(&b), "{f}");
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.pcaps, y.pcaps, "{f} {}", x.variant);
        }
    }
}

fn golden(name: &str, actual: &str) {
    let path = root().join("tests/golden").join(name);
    if std::env::var_os("NATSIM_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "missing golden {} (run with NATSIM_BLESS=1)",
            path.display()
        )
    });
    assert!(want == actual, "{} differs from the run; rerun with NATSIM_BLESS=1 if the change is intended\n--- actual ---\n{actual}", path.display());
}

#[test]
fn explain_output_matches_its_golden() {
    let l = load_file(&root().join("scenarios/kb/Q193863.toml")).unwrap();
    let r = run_variant(&l, l.variant("base").unwrap(), None, false).unwrap();
    golden("Q193863-base.explain.txt", &explain(&r, None));
    let l = load_file(&root().join("scenarios/kb/KB291615.toml")).unwrap();
    let v = l.variant("ms-rpc-alg").unwrap();
    let r = run_variant(&l, v, None, false).unwrap();
    golden(
        "KB291615-ms-rpc-alg.step1.explain.txt",
        &explain(&r, Some(1)),
    );
}

/// Per step of every variant: the outcome, what became of its frames and
/// which NAT decisions were taken (sorted sets: retransmission counts and
/// timings are not the result). Ports the stacks chose are left out.
fn extract(results: &[VariantResult]) -> String {
    use std::collections::BTreeSet;
    let mut out = String::new();
    for r in results {
        for s in &r.steps {
            let traces: Vec<_> = r
                .traces
                .iter()
                .filter(|t| s.traces.contains(&t.id))
                .collect();
            let dispositions: BTreeSet<&str> =
                traces.iter().map(|t| t.disposition.code()).collect();
            let kinds: BTreeSet<&str> = traces
                .iter()
                .flat_map(|t| t.hops.iter().flat_map(|h| &h.steps))
                .filter_map(|st| match st {
                    natsim::sim::Step::Nat { kind, .. } => Some(*kind),
                    _ => None,
                })
                .collect();
            let join = |s: BTreeSet<&str>| {
                if s.is_empty() {
                    "-".to_string()
                } else {
                    s.into_iter().collect::<Vec<_>>().join(", ")
                }
            };
            out.push_str(&format!(
                "{} / {}\n  outcome: {}\n  frames: {}\n  nat: {}\n",
                r.variant,
                s.name,
                s.actual,
                join(dispositions),
                join(kinds)
            ));
        }
    }
    out
}

/// The reviewed extracts in tests/golden/*.steps.txt. They are written by
/// hand from the review notes in each file (lines starting with `#`), not
/// blessed from a run: a difference is a result to check, not to accept.
#[test]
fn step_extracts_match_their_reviewed_goldens() {
    for (scenario, golden) in [
        ("scenarios/hairpin.toml", "hairpin.steps.txt"),
        ("scenarios/kb/Q193863.toml", "Q193863.steps.txt"),
    ] {
        let actual = extract(&run_file(&root().join(scenario)));
        let path = root().join("tests/golden").join(golden);
        let text = std::fs::read_to_string(&path).unwrap();
        let want: String = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(
            want == actual,
            "{} differs from the run: review the difference against the scenario's lesson before changing the file\n--- actual ---\n{actual}",
            path.display()
        );
    }
}

#[test]
fn junit_output_is_well_formed_xml_with_one_testcase_per_step() {
    let l = load_file(&root().join("scenarios/kb/Q183801.toml")).unwrap();
    let r: Vec<_> = l
        .variants()
        .into_iter()
        .map(|v| run_variant(&l, v, None, false).unwrap())
        .collect();
    let xml = report::junit(&report::Suite::from_results(r.clone()));
    let mut reader = quick_xml::Reader::from_str(&xml);
    let (mut suites, mut cases, mut depth) = (0, 0, 0i32);
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Start(e)) => {
                depth += 1;
                match e.name().as_ref() {
                    b"testsuite" => suites += 1,
                    b"testcase" => {
                        cases += 1;
                        assert!(e
                            .attributes()
                            .any(|a| a.is_ok_and(|a| a.key.as_ref() == b"name")));
                    }
                    _ => {}
                }
            }
            Ok(quick_xml::events::Event::End(_)) => depth -= 1,
            Ok(quick_xml::events::Event::Eof) => break,
            Err(e) => panic!("invalid XML at {}: {e}", reader.buffer_position()),
            _ => {}
        }
    }
    assert_eq!(depth, 0);
    assert_eq!(suites, r.len());
    assert_eq!(cases, r.iter().map(|x| x.steps.len()).sum::<usize>());
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites"));
}

/// Each file in tests/bad-scenarios starts with `# error: LINE:COL: text`
/// (loading it must fail with a problem at that place containing the text)
/// or `# warning: LINE:COL: text` (it loads, with that warning).
/// Issue 8: cyclic routes over zero-latency links are bounded by TTL, not by
/// luck: the echo request circles until a router drops it, the sender hears
/// "TTL expired in transit", and the run ends.
#[test]
fn cyclic_routes_over_zero_latency_links_end_in_ttl_exceeded() {
    use natsim::scenario::load_str;
    let src = r#"
title = "cyclic routes"
[[segment]]
name = "lan"
latency = "0s"
[[segment]]
name = "mid"
latency = "0s"
[[router]]
name = "r1"
interfaces = [
  { name = "in0", segment = "lan", address = "10.0.0.254/24", role = "inside" },
  { name = "mid0", segment = "mid", address = "10.1.0.1/24", role = "outside" },
]
routes = [ { to = "0.0.0.0/0", via = "10.1.0.2" } ]
[[router]]
name = "r2"
interfaces = [ { name = "mid0", segment = "mid", address = "10.1.0.2/24", role = "inside" } ]
routes = [ { to = "0.0.0.0/0", via = "10.1.0.1" } ]
[[host]]
name = "a"
segment = "lan"
address = "10.0.0.1/24"
gateway = "10.0.0.254"
[[step]]
name = "ping into the loop"
action = "ping"
from = "a"
to = "198.51.100.1"
expect = ["icmp-error", "trace ttl-exceeded"]
"#;
    let l = load_str("cyclic.toml", src).unwrap();
    let r = run_variant(&l, l.variants()[0], None, false).unwrap();
    let step = &r.steps[0];
    assert!(step.pass, "{}: {:?}", step.actual, step.failures);
    assert!(
        step.actual.contains("TTL expired in transit"),
        "{}",
        step.actual
    );
    // TTL 128 from the (Windows, DefaultTTL 128) host: at most 128
    // forwarding hops and the one that drops it, then the error comes back.
    let hops: usize = r.traces.iter().map(|t| t.hops.len()).max().unwrap();
    assert!(hops <= 129, "{hops} hops");
}

/// Issue 7: the capture of the ALG variant dissects in tshark with the
/// rewritten address in the `epm` fields (skipped without tshark).
#[test]
fn tshark_sees_the_rewritten_tower_on_the_outside() {
    if std::process::Command::new("tshark")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("note: tshark not installed; skipping");
        return;
    }
    let l = load_file(&root().join("scenarios/kb/KB291615.toml")).unwrap();
    let v = l.variant("ms-rpc-alg").unwrap();
    let r = run_variant(&l, v, None, true).unwrap();
    let dir = std::env::temp_dir().join(format!("natsim-epm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fields = |seg: &str| -> Vec<String> {
        let bytes = &r.pcaps.iter().find(|(s, _)| s == seg).unwrap().1;
        let p = dir.join(format!("{seg}.pcap"));
        std::fs::write(&p, bytes).unwrap();
        let out = std::process::Command::new("tshark")
            .args([
                "-r",
                p.to_str().unwrap(),
                "-Y",
                "epm.proto.ip",
                "-T",
                "fields",
                "-e",
                "epm.proto.ip",
                "-e",
                "epm.proto.tcp_port",
            ])
            .output()
            .unwrap();
        // Requests carry a template tower (0.0.0.0:0); keep the answers.
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with("0.0.0.0"))
            .map(String::from)
            .collect()
    };
    // Inside, the server wrote its private address; outside, the client saw the public one.
    assert!(
        fields("corp-lan")
            .iter()
            .any(|l| l.starts_with("192.168.1.10")),
        "{:?}",
        fields("corp-lan")
    );
    let outside = fields("internet");
    assert!(
        !outside.is_empty() && outside.iter().all(|l| l.starts_with("203.0.113.1\t")),
        "{outside:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The scale benchmark's scenario (BENCHMARKS.md) stays loadable: ten
/// thousand group members and a server, one group step over all of them.
#[test]
fn the_ten_thousand_host_benchmark_scenario_loads() {
    let l = load_file(&root().join("benches/scenarios/ten-thousand-hosts.toml"))
        .unwrap_or_else(|ps| panic!("{}", ps[0]));
    let m = l.variants()[0].model;
    assert_eq!(m.hosts.len(), 10_001);
    assert_eq!(m.steps[0].each.len(), 10_000);
}
