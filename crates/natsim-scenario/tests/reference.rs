//! The generated reference stays true: docs/scenarios.md is what the types
//! generate, and every shipped scenario validates against the JSON Schema
//! `natsim schema` prints (checked by an independent validator).

use natsim_scenario::reference;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn docs_scenarios_md_is_not_stale() {
    let path = root().join("docs/scenarios.md");
    let want = reference::markdown();
    if std::env::var_os("NATSIM_BLESS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "docs/scenarios.md is stale: run `natsim schema --markdown > docs/scenarios.md`"
    );
}

#[test]
fn every_shipped_scenario_validates_against_the_json_schema() {
    let schema = reference::json_schema();
    let v = jsonschema::validator_for(&schema).expect("the schema itself is valid");
    let files = natsim_scenario::collect(&root().join("scenarios")).unwrap();
    assert!(files.len() >= 9);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let doc: toml::Value = toml::from_str(&text).unwrap();
        let json = serde_json::to_value(&doc).unwrap();
        let errors: Vec<String> = v
            .iter_errors(&json)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", f.display());
    }
}

#[test]
fn the_schema_rejects_what_the_loader_rejects() {
    // A typo'd field and a wrong type: the schema must not be so loose that
    // it accepts anything.
    let schema = reference::json_schema();
    let v = jsonschema::validator_for(&schema).unwrap();
    for bad in [
        "title = \"x\"\nsegmnt = []",
        "title = 7",
        "title = \"x\"\n[[host]]\nname = \"a\"\nsegment = \"s\"\naddress = \"1.2.3.4/24\"\nlisten = 5",
    ] {
        let doc: toml::Value = toml::from_str(bad).unwrap();
        let json = serde_json::to_value(&doc).unwrap();
        assert!(!v.is_valid(&json), "schema accepted: {bad}");
    }
}
