//! The machine-readable results of `natsim run`: JUnit XML (checked
//! against the JUnit 10 XSD), the JSON levels, trace legs naming pcap
//! frames, and shards that partition the suite.

mod common;
use common::*;
use std::process::Command;

/// The JUnit of a suite with a pass, a failure and a file that does not
/// load, checked against Jenkins xunit's junit-10.xsd with xmllint, and
/// for what the schema leaves optional but CI needs: stable classnames,
/// failure types, the load error as a test case with its diagnostics.
#[test]
fn junit_validates_against_junit_10_xsd_and_names_cases_stably() {
    let dir = mixed_suite("junit");
    let out = scratch_dir("junit-out").join("junit.xml");
    let (code, _, err) = run_ok(&[
        "run".as_ref(),
        "-q".as_ref(),
        dir.as_os_str(),
        "--junit".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(code, Some(2), "a file failed to load: {err}");
    let xml = std::fs::read_to_string(&out).unwrap();

    assert!(xml.contains("classname=\"sub/hairpin.toml.base\""), "{xml}");
    assert!(
        xml.contains("classname=\"sub/hairpin.toml.hairpin-on\""),
        "{xml}"
    );
    for line in xml.lines().filter(|l| l.contains("classname=")) {
        assert!(
            !line.contains(std::env::temp_dir().to_str().unwrap()),
            "{line}"
        );
    }
    assert!(
        xml.contains("<testsuite name=\"typo.toml\" tests=\"1\" failures=\"0\" errors=\"1\""),
        "{xml}"
    );
    assert!(xml.contains("<error type=\"load-error\""), "{xml}");
    assert!(
        xml.contains("typo.toml:4:1: error: unknown field `latencyy`"),
        "{xml}"
    );
    assert_eq!(xml.matches("<failure ").count(), 2, "{xml}");
    assert_eq!(
        xml.matches("<failure type=\"expectation\"").count(),
        2,
        "{xml}"
    );
    assert!(
        xml.contains("<property name=\"virtual-time\" value=\""),
        "{xml}"
    );
    assert!(
        xml.contains("<testsuites name=\"natsim\" tests=\"9\" failures=\"2\" errors=\"1\""),
        "{xml}"
    );

    let xsd = repo().join("crates/natsim-cli/tests/fixtures/junit-10.xsd");
    let xmllint = |file: &std::path::Path| {
        Command::new("xmllint")
            .args(["--noout", "--schema"])
            .arg(&xsd)
            .arg(file)
            .output()
    };
    match xmllint(&out) {
        Ok(o) => {
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            // The validator refuses what the schema forbids (a testsuite
            // without `errors`), so the pass above means something.
            let bad = out.with_file_name("bad.xml");
            std::fs::write(&bad, xml.replacen(" errors=\"1\" skipped", " skipped", 1)).unwrap();
            assert!(!xmllint(&bad).unwrap().status.success());
        }
        Err(_) if std::env::var_os("CI").is_none() => {
            eprintln!("note: xmllint (libxml2-utils) not installed; schema check skipped");
        }
        Err(e) => panic!("xmllint is needed in CI (.ci/run installs libxml2-utils): {e}"),
    }
}

#[test]
fn json_has_a_schema_version_a_summary_and_three_levels() {
    let dir = mixed_suite("json");
    let outdir = scratch_dir("json-out");
    let mut sizes = Vec::new();
    for level in ["summary", "steps", "frames"] {
        let p = outdir.join(format!("{level}.json"));
        let (code, _, err) = run_ok(&[
            "run".as_ref(),
            "-q".as_ref(),
            dir.as_os_str(),
            "--json".as_ref(),
            p.as_os_str(),
            "--json-level".as_ref(),
            level.as_ref(),
        ]);
        assert_eq!(code, Some(2), "{err}");
        let text = std::fs::read_to_string(&p).unwrap();
        sizes.push(text.len());
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["schema_version"], 1);
        assert_eq!(v["level"], level);
        let s = &v["summary"];
        assert_eq!(
            (&s["cases"], &s["passed"], &s["failed"], &s["errors"]),
            (&5.into(), &2.into(), &2.into(), &1.into()),
            "{s}"
        );
        assert_eq!(
            (&s["steps"], &s["steps_failed"]),
            (&8.into(), &2.into()),
            "{s}"
        );
        let cases = v["cases"].as_array().unwrap();
        let typo = cases.iter().find(|c| c["path"] == "typo.toml").unwrap();
        assert_eq!(typo["status"], "error");
        assert_eq!(typo["diagnostics"][0]["line"], 4);
        assert_eq!(typo["diagnostics"][0]["col"], 1);
        let base = cases
            .iter()
            .find(|c| c["name"] == "sub/hairpin.toml::base")
            .unwrap();
        let ran = &base["ran"];
        assert_eq!(ran["steps"].is_array(), level != "summary", "{level}");
        assert_eq!(ran["traces"].is_array(), level == "frames", "{level}");
        if level == "frames" {
            // Every trace names the wires it crossed and its frame there.
            let traces = ran["traces"].as_array().unwrap();
            assert!(!traces.is_empty());
            for t in traces {
                let legs = t["legs"].as_array().unwrap();
                assert!(!legs.is_empty(), "{t}");
                for l in legs {
                    assert!(
                        l["segment"].is_string() && l["pcap_frame"].as_u64() >= Some(1),
                        "{l}"
                    );
                }
            }
        }
    }
    assert!(sizes[0] < sizes[1] && sizes[1] < sizes[2], "{sizes:?}");
}

/// The joined pcap frame is the frame: with --pcap, the frame numbered in
/// a trace's first leg is, in tshark, the packet the trace summarises.
#[test]
fn a_trace_leg_names_its_frame_in_the_segment_pcap() {
    if Command::new("tshark").arg("--version").output().is_err() {
        eprintln!("note: tshark not installed; skipping");
        return;
    }
    let outdir = scratch_dir("pcap-join");
    let json = outdir.join("r.json");
    let (code, _, err) = run_ok(&[
        "run".as_ref(),
        "-q".as_ref(),
        repo().join("scenarios/hairpin.toml").as_os_str(),
        "--filter".as_ref(),
        "::base".as_ref(),
        "--pcap".as_ref(),
        outdir.as_os_str(),
        "--json".as_ref(),
        json.as_os_str(),
        "--json-level".as_ref(),
        "frames".as_ref(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let traces = v["cases"][0]["ran"]["traces"].as_array().unwrap();
    let t = traces
        .iter()
        .find(|t| {
            t["summary"]
                .as_str()
                .unwrap()
                .starts_with("tcp 203.0.113.7:")
        })
        .unwrap();
    let leg = &t["legs"][0];
    let pcap = outdir.join(format!(
        "hairpin--base--{}.pcap",
        leg["segment"].as_str().unwrap()
    ));
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&pcap)
        .args(["-Y", &format!("frame.number == {}", leg["pcap_frame"])])
        .args([
            "-T",
            "fields",
            "-e",
            "ip.src",
            "-e",
            "tcp.srcport",
            "-e",
            "ip.dst",
            "-e",
            "tcp.dstport",
        ])
        .output()
        .unwrap();
    let got = String::from_utf8_lossy(&out.stdout)
        .trim()
        .replace('\t', " ");
    // summary: `tcp SRC:SPORT -> DST:DPORT [flags]`
    let s = t["summary"].as_str().unwrap();
    let (src, rest) = s["tcp ".len()..].split_once(" -> ").unwrap();
    let dst = rest.split(' ').next().unwrap();
    let want = format!("{} {}", src.replace(':', " "), dst.replace(':', " "));
    assert_eq!(got, want, "{t}");
}

#[test]
fn shards_partition_the_suite_and_agree_between_runs() {
    let scen = repo().join("scenarios");
    let outdir = scratch_dir("shards");
    let names = |json: &std::path::Path| -> Vec<String> {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
        v["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    };
    let all_json = outdir.join("all.json");
    let (code, _, err) = run_ok(&[
        "run".as_ref(),
        "-q".as_ref(),
        scen.as_os_str(),
        "--json".as_ref(),
        all_json.as_os_str(),
        "--json-level".as_ref(),
        "summary".as_ref(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let mut all = names(&all_json);
    let mut union = Vec::new();
    for k in 1..=3 {
        let p = outdir.join(format!("shard{k}.json"));
        let shard = format!("{k}/3");
        let (code, _, err) = run_ok(&[
            "run".as_ref(),
            "-q".as_ref(),
            scen.as_os_str(),
            "--shard".as_ref(),
            shard.as_ref(),
            "--json".as_ref(),
            p.as_os_str(),
            "--json-level".as_ref(),
            "summary".as_ref(),
        ]);
        assert_eq!(code, Some(0), "{err}");
        let got = names(&p);
        assert!(
            !got.is_empty() && got.len() < all.len(),
            "shard {k}: {got:?}"
        );
        // Deterministic: the same shard again is the same share.
        let (_, _, _) = run_ok(&[
            "run".as_ref(),
            "-q".as_ref(),
            scen.as_os_str(),
            "--shard".as_ref(),
            shard.as_ref(),
            "--json".as_ref(),
            p.as_os_str(),
            "--json-level".as_ref(),
            "summary".as_ref(),
        ]);
        assert_eq!(names(&p), got);
        union.extend(got);
    }
    all.sort();
    union.sort();
    assert_eq!(union, all, "every variant in exactly one shard");
    let (code, _, err) = run_ok(&[
        "run".as_ref(),
        scen.as_os_str(),
        "--shard".as_ref(),
        "4/3".as_ref(),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("K/N"), "{err}");
}

#[test]
fn a_broken_file_is_reported_by_one_shard_and_an_empty_shard_is_not_a_pass() {
    let dir = mixed_suite("shard-errors");
    let out = scratch_dir("shard-errors-out");
    let mut reported = 0;
    for k in 1..=2 {
        let j = out.join(format!("junit-{k}.xml"));
        let shard = format!("{k}/2");
        let (_, _, err) = run_ok(&[
            "run".as_ref(),
            "-q".as_ref(),
            dir.as_os_str(),
            "--shard".as_ref(),
            shard.as_ref(),
            "--junit".as_ref(),
            j.as_os_str(),
        ]);
        let xml = std::fs::read_to_string(&j).unwrap();
        reported += xml.matches("<testsuite name=\"typo.toml\"").count();
        assert_eq!(
            err.matches("typo.toml:4:1: error:").count(),
            xml.matches("<testsuite name=\"typo.toml\"").count(),
            "{err}"
        );
    }
    assert_eq!(reported, 1, "merged shards report the broken file once");

    // Two variants over 8 shards: some shard holds neither.
    let hairpin = repo().join("scenarios/hairpin.toml");
    let empty: Vec<_> = (1..=8)
        .filter_map(|k| {
            let shard = format!("{k}/8");
            let (code, _, err) = run_ok(&[
                "run".as_ref(),
                hairpin.as_os_str(),
                "--shard".as_ref(),
                shard.as_ref(),
            ]);
            err.contains("holds none of the 2 variants")
                .then_some((k, code))
        })
        .collect();
    assert!(empty.len() >= 6, "{empty:?}");
    assert!(empty.iter().all(|(_, code)| *code == Some(2)), "{empty:?}");
}
