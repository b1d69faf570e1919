//! Bad input gets a located error and loses nothing: every file in
//! tests/bad-scenarios names the error it must get in its first line, and
//! hostile files stay within the loader's hard limits.

use natsim::scenario::load_file;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn malformed_scenarios_get_located_errors() {
    let dir = root().join("tests/bad-scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 60,
        "only {} malformed scenarios",
        files.len()
    );
    for f in files {
        let src = std::fs::read_to_string(&f).unwrap_or_default();
        let first = src.lines().next().unwrap_or("");
        let (warning, want) = match (
            first.strip_prefix("# error: "),
            first.strip_prefix("# warning: "),
        ) {
            (Some(w), _) => (false, w),
            (_, Some(w)) => (true, w),
            _ => panic!(
                "{}: first line must be `# error: LINE:COL: text` or `# warning: LINE:COL: text`",
                f.display()
            ),
        };
        let (pos, text) = want.split_once(": ").unwrap();
        let (line, col) = pos.split_once(':').unwrap();
        let (line, col): (usize, usize) = (line.parse().unwrap(), col.parse().unwrap());
        let probs = match (load_file(&f), warning) {
            (Ok(l), true) => l.warnings,
            (Ok(_), false) => panic!("{} loaded without error", f.display()),
            (Err(p), true) => panic!("{}: want only a warning, got errors: {p:?}", f.display()),
            (Err(p), false) => p,
        };
        assert!(
            probs.iter().any(|p| p.line == line
                && p.col == col
                && p.is_warning() == warning
                && p.message.contains(text)
                && p.file.ends_with(f.file_name().unwrap().to_str().unwrap())),
            "{}: want {line}:{col} `{text}`, got:\n{}",
            f.display(),
            probs
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        );
        // `# only this problem`: the mistake must not cascade into errors
        // about the names it defines.
        if src.lines().nth(1) == Some("# only this problem") {
            assert_eq!(
                probs.len(),
                1,
                "{}: want only {line}:{col} `{text}`, got:\n{}",
                f.display(),
                probs
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
}

#[test]
fn hostile_scenarios_get_errors_within_hard_limits() {
    use natsim::scenario::load_str;
    // 20 001 hosts in groups: over the documented limit of 16 384.
    let s = "title = \"many\"\n[[segment]]\nname = \"lan\"\n\
        [[host_group]]\nname = \"a\"\ncount = 20000\nsegment = \"lan\"\naddress = \"10.0.0.1/8\"\n\
        [[host]]\nname = \"h\"\nsegment = \"lan\"\naddress = \"10.200.0.1/8\"\n";
    let e = load_str("many.toml", s).unwrap_err();
    assert!(
        e[0].message.contains("20001 hosts in all; at most 16384"),
        "{}",
        e[0]
    );
    // A million hosts cannot even be read: the file is over 1 MiB.
    let big = "#".repeat((1 << 20) + 1);
    let e = load_str("big.toml", &big).unwrap_err();
    assert!(e[0].message.contains("at most 1048576 bytes"), "{}", e[0]);
    // Deep nesting, absurd numbers, unicode, empty input: located errors, no panic.
    for (name, src) in [
        ("deep", format!("title = \"x\"\nseed = {}{}", "[".repeat(5000), "]".repeat(5000))),
        ("huge", "title = \"x\"\nseed = 1e400".to_string()),
        ("unicode", "title = \"ñandú 🦤\"\n[[segment]]\nname = \"🦤\"\nlatency = \"5µs\"\nmtu = 1500\nloss = -0.5".to_string()),
        ("empty", String::new()),
        ("zero-length-link", "title = \"x\"\n[[segment]]\nname = \"\"\nmtu = 0".to_string()),
    ] {
        let e = load_str(&format!("{name}.toml"), &src).unwrap_err();
        assert!(e.iter().all(|p| p.line >= 1 && p.col >= 1), "{name}: {e:?}");
    }
}

/// A `rules` file whose NAT rule an earlier one covers (wg-quick's PostUp
/// run twice) loads, with the rule left out and a warning naming the rules
/// file's line: the kernel never reaches the rule either.
#[test]
fn a_covered_rule_in_a_rules_file_is_a_warning_at_its_line() {
    let dir = std::env::temp_dir().join(format!("natsim-covered-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("dup.rules"),
        "*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -o eth0 -j MASQUERADE\n-A POSTROUTING -o eth0 -j MASQUERADE\nCOMMIT\n",
    )
    .unwrap();
    let scenario = dir.join("dup.toml");
    std::fs::write(
        &scenario,
        r#"title = "dup"
[[segment]]
name = "wan"
[[segment]]
name = "lan"
[[router]]
name = "gw"
interfaces = [
  { name = "eth0", segment = "wan", address = "203.0.113.1/24", role = "outside" },
  { name = "lan0", segment = "lan", address = "10.8.0.1/24", role = "inside" },
]
rules = "dup.rules"
[router.nat]
profile = "linux"
[[host]]
name = "peer"
segment = "lan"
address = "10.8.0.2/24"
gateway = "10.8.0.1"
[[host]]
name = "srv"
segment = "wan"
address = "203.0.113.80/24"
listen = ["tcp/80"]
[[step]]
name = "out"
action = "tcp-connect"
from = "peer"
to = "203.0.113.80"
port = 80
expect = "connected"
"#,
    )
    .unwrap();
    let l = load_file(&scenario).unwrap_or_else(|p| panic!("{p:?}"));
    let covered: Vec<_> = l
        .warnings
        .iter()
        .filter(|p| p.message.contains("can never match"))
        .collect();
    // Said once: the file is read once, at lowering.
    assert_eq!(covered.len(), 1, "{:?}", l.warnings);
    let w = covered[0];
    assert!(w.is_warning() && w.file.ends_with("dup.rules"), "{w:?}");
    assert_eq!((w.line, w.col), (4, 1), "{w:?}");
}
