//! The format's reference, generated from the types: the JSON Schema
//! (`natsim schema`, for editors) and `docs/scenarios.md` (every table,
//! field, type and default, and the per-profile defaults). A test fails
//! when the committed document is stale.

use crate::schema::Scenario;
use serde_json::Value;
use std::fmt::Write;

/// The JSON Schema of a scenario file (TOML read as JSON).
pub fn json_schema() -> Value {
    let s = schemars::schema_for!(Scenario);
    serde_json::to_value(s).unwrap_or(Value::Null)
}

fn type_of(v: &Value, defs: &serde_json::Map<String, Value>) -> String {
    if let Some(r) = v.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r);
        return match defs.get(name) {
            Some(d) if d.get("properties").is_none() => type_of(d, defs),
            _ => format!("[`{name}`](#{})", name.to_lowercase()),
        };
    }
    if let Some(any) = v
        .get("anyOf")
        .or_else(|| v.get("oneOf"))
        .and_then(Value::as_array)
    {
        let parts: Vec<String> = any
            .iter()
            .filter(|x| x.get("type").and_then(Value::as_str) != Some("null"))
            .map(|x| type_of(x, defs))
            .collect();
        return parts.join(" or ");
    }
    let t = match v.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "any".into(),
    };
    match t.as_str() {
        "array" => format!(
            "list of {}",
            v.get("items").map_or("any".into(), |i| type_of(i, defs))
        ),
        "object" => match v.get("additionalProperties") {
            Some(a) if a.is_object() => format!("table of {}", type_of(a, defs)),
            _ => "table".into(),
        },
        _ => t,
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

fn table(out: &mut String, title: &str, schema: &Value, defs: &serde_json::Map<String, Value>) {
    let _ = writeln!(out, "## `{title}`\n");
    if let Some(d) = schema.get("description").and_then(Value::as_str) {
        let _ = writeln!(out, "{}\n", one_line(d));
    }
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        let _ = writeln!(out, "{}\n", type_of(schema, defs));
        return;
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let _ = writeln!(out, "| field | type | required / default | meaning |");
    let _ = writeln!(out, "|---|---|---|---|");
    for (name, p) in props {
        let need = if required.contains(&name.as_str()) {
            "required".to_string()
        } else {
            match p.get("default") {
                Some(Value::Null) | None => "optional".to_string(),
                Some(d) => format!("default `{d}`"),
            }
        };
        let doc = p.get("description").and_then(Value::as_str).unwrap_or("");
        let _ = writeln!(
            out,
            "| `{name}` | {} | {need} | {} |",
            type_of(p, defs),
            one_line(doc)
        );
    }
    out.push('\n');
}

/// `docs/scenarios.md`.
pub fn markdown() -> String {
    let schema = json_schema();
    let empty = serde_json::Map::new();
    let defs = schema
        .get("$defs")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut out = String::from(
        "# The scenario format\n\n\
         Generated from the types by `natsim schema --markdown`; do not edit by hand \
         (a test fails when this file is stale). `natsim schema` prints the same \
         format as a JSON Schema for editors. Every table rejects unknown fields.\n\n",
    );
    out.push_str(VARIANTS);
    out.push_str(STEPS);
    out.push_str(&actions_table());
    out.push_str(EXPECTATIONS);
    table(&mut out, "Scenario (the file)", &schema, defs);
    for (name, d) in defs {
        if d.get("properties").is_some() {
            table(&mut out, name, d, defs);
        }
    }
    out.push_str("## NAT profiles: their defaults\n\n");
    out.push_str("| profile | TCP mapping / filtering | UDP mapping / filtering | ports | unsolicited | inbound filter | hairpin | TCP established | UDP unreplied / replied | ICMP |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for name in natsim_nat::Behaviour::PROFILE_NAMES {
        if let Some(b) = natsim_nat::Behaviour::by_name(name) {
            let _ = writeln!(
                out,
                "| `{name}` | {:?} / {:?} | {:?} / {:?} | {:?} | {:?} | {} | {:?} | {} s | {} s / {} s | {} s |",
                b.tcp.mapping,
                b.tcp.filtering,
                b.udp.mapping,
                b.udp.filtering,
                b.ports.strategy,
                b.unsolicited,
                b.filter_inbound,
                b.hairpin,
                b.timeouts.tcp_established.as_secs(),
                b.timeouts.udp_unreplied.as_secs(),
                b.timeouts.udp_replied.as_secs(),
                b.timeouts.icmp.as_secs(),
            );
        }
    }
    out.push_str("\n## Host TCP profiles\n\n");
    for (name, p) in [
        ("windows (default)", natsim_sim::TcpProfile::windows()),
        ("linux", natsim_sim::TcpProfile::linux()),
    ] {
        let _ = writeln!(out, "- `{name}`: `{p:?}`");
    }
    out.push('\n');
    out
}

const VARIANTS: &str = "## Variants as patches\n\n\
A `[[variant]]` changes what it names and nothing else. Paths walk tables by key and \
lists by their items' `name` (zones by `origin`, lists of strings by the string); the \
leading `router.`/`host.` may be left out when the node's name is unique; a name with \
dots goes in brackets (`host[mail.example.com]`).\n\n\
```toml\n\
[[variant]]\n\
name = \"forgot-vpn-forward\"\n\
remove = [\"edge.nat.forwards.vpn\"]               # drop one named item (or a node: \"web\")\n\
set = { \"edge.nat.hairpin\" = \"on\" }              # set one field\n\
add = { \"edge.nat.forwards\" = [{ name = \"ssh\", proto = \"tcp\", port = 22, to = \"192.168.1.5\" }] }\n\
expect = { vpn = \"icmp port-unreachable\" }       # replace a step's expectations\n\
# [[variant.router]] / [[variant.host]] / [[variant.step]] replace an item whole, or add it\n\
```\n\n\
A variant called `base`, and a patch that names nothing, are errors.\n\n";

const EXPECTATIONS: &str = "## Expectations\n\n\
All of a step's expectations must hold. `containing` compares case-insensitively; \
`not` negates any other expectation. Each is checked at load against the action: one \
the action can never meet, or two that contradict each other, are errors.\n\n\
```text\n\
anything                                   run the step for its effect, on purpose\n\
delivered | deferred | bounced | pending   send-mail\n\
deferred containing \"text\" | bounced containing \"text\" | ndr containing \"text\"\n\
connected | refused | timed-out | unreachable | timed-out after 21s       tcp-connect\n\
seen-from 203.0.113.1:40000                tcp-connect, udp-send: the source the listener saw\n\
replied | no-reply | icmp port-unreachable (any ICMP error name)        ping, udp-send\n\
replied | no-reply | reset                 tcp-send (on a kept connection)\n\
connected via ADDR:PORT | endpoint returned ADDR:PORT | failed at STAGE   outlook-connect\n\
answer NAME | nxdomain | nodata | refused | dns-timeout                 dns-lookup\n\
response | status 200 | failed containing \"text\"   http-get (a timeout is `failed containing \"timed out\"`)\n\
downloaded | failed at STAGE               ftp-get\n\
mapping endpoint-independent | filtering address-dependent             nat-type\n\
mapping udp 192.168.1.10:40000 -> 203.0.113.1:40000 | no mapping udp 192.168.1.10:40000   nat-table\n\
listed containing \"TIME_WAIT\"            nat-table: its text (ICMP queries by id, TCP states)\n\
trace DISPOSITION | trace-step KIND | trace containing \"text\"          any step's frames\n\
not EXPECTATION\n\
```\n\n\
ICMP names: net-unreachable, host-unreachable, protocol-unreachable, port-unreachable, \
fragmentation-needed, admin-prohibited, destination-unreachable, ttl-exceeded, time-exceeded.\n\n";

const STEPS: &str = "## Steps\n\n\
Every step needs `expect` (write `expect = \"anything\"` to run a step for its effect). \
A field the action does not take is an error.\n\n\
| action | fields | outcomes (each may be expected alone) |\n|---|---|---|\n";

/// The action table, generated from the loader's own list.
pub fn actions_table() -> String {
    let mut s = String::new();
    for (a, fields) in crate::lower::action::ACTIONS {
        let f = if fields.is_empty() {
            "`duration` (required)".to_string()
        } else {
            fields
                .iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let outcomes = crate::expect::outcomes(a)
            .iter()
            .map(|o| format!("`{}`", o.word()))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(s, "| `{a}` | {f} | {outcomes} |");
    }
    s.push_str("\nAll steps also take `name`, `action`, `at` (`+5s`), `background`, `duration` (the most time the step may take), `expect` and `note`.\n\n");
    s
}
