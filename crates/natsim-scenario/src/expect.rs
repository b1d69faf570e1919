//! Expectations: the small language of a step's `expect`.
//!
//! ```text
//! delivered | deferred | bounced            (send-mail)
//! deferred containing "text" | bounced containing "text" | ndr containing "text"
//! connected | refused | timed-out | timed-out after 21s     (tcp-connect)
//! connected via 203.0.113.1:1025 | endpoint returned 192.168.1.10:1097
//! failed | failed at endpoint-connect | failed containing "text"
//! replied | no-reply | icmp-error          (ping)
//! answer mail.example.com | nxdomain | nodata | dns-timeout   (dns-lookup)
//! status 200                               (http-get)
//! downloaded                               (ftp-get)
//! mapping endpoint-independent | filtering address-dependent   (nat-type)
//! trace dropped-by-nat-filter              (any frame of the step had this disposition)
//! trace-step alg | trace containing "pinhole"  (any NAT step of that kind / text)
//! ```

use std::time::Duration;

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "expect", rename_all = "kebab-case")]
pub enum Expect {
    Outcome { word: String },
    Containing { word: String, text: String },
    TimedOutAfter { secs: f64 },
    ConnectedVia { endpoint: String },
    EndpointReturned { endpoint: String },
    FailedAt { stage: String },
    Answer { value: String },
    Status { code: u16 },
    Mapping { behaviour: String },
    Filtering { behaviour: String },
    Trace { disposition: String },
    TraceStep { kind: String },
    TraceContaining { text: String },
}

/// Outcome words each action can produce.
pub fn words(action: &str) -> &'static [&'static str] {
    match action {
        "send-mail" => &["delivered", "deferred", "bounced", "pending"],
        "tcp-connect" => &[
            "connected",
            "refused",
            "timed-out",
            "unreachable",
            "connecting",
        ],
        "outlook-connect" | "ftp-get" | "http-get" => {
            &["connected", "failed", "downloaded", "response"]
        }
        "ping" => &["replied", "no-reply", "icmp-error"],
        "dns-lookup" => &["answered", "nxdomain", "nodata", "refused", "dns-timeout"],
        "nat-type" => &["classified", "failed"],
        "wait" => &["waited"],
        _ => &[],
    }
}

fn quoted(s: &str) -> Option<String> {
    let s = s.trim();
    s.strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .map(String::from)
}

pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (n, unit) = s.split_at(split);
    let n: f64 = n.parse().ok()?;
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let secs = match unit.trim() {
        "us" | "µs" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => return None,
    };
    if secs > 30.0 * 86400.0 {
        return None;
    }
    Some(Duration::from_secs_f64(secs))
}

/// Parses one expectation for `action`; `Err` explains what was expected.
pub fn parse(text: &str, action: &str) -> Result<Expect, String> {
    let t = text.trim();
    let (head, rest) = t.split_once(' ').unwrap_or((t, ""));
    let rest = rest.trim();
    let e = match (head, rest) {
        ("trace", r) if !r.is_empty() => {
            if let Some(q) = r.strip_prefix("containing ") {
                Expect::TraceContaining {
                    text: quoted(q).ok_or("a quoted text after `containing`")?,
                }
            } else {
                Expect::Trace {
                    disposition: r.to_string(),
                }
            }
        }
        ("trace-step", r) if !r.is_empty() => Expect::TraceStep {
            kind: r.to_string(),
        },
        ("timed-out", r) if r.starts_with("after") => {
            let d = r
                .trim_start_matches("after")
                .trim()
                .trim_start_matches('≈')
                .trim_start_matches('~');
            let secs = parse_duration(d)
                .ok_or("a duration such as `21s` after `timed-out after`")?
                .as_secs_f64();
            Expect::TimedOutAfter { secs }
        }
        ("connected", r) if r.starts_with("via ") => Expect::ConnectedVia {
            endpoint: r[4..].trim().to_string(),
        },
        ("endpoint", r) if r.starts_with("returned ") => Expect::EndpointReturned {
            endpoint: r[9..].trim().to_string(),
        },
        ("failed", r) if r.starts_with("at ") => Expect::FailedAt {
            stage: r[3..].trim().to_string(),
        },
        ("answer", r) if !r.is_empty() => Expect::Answer {
            value: r.to_string(),
        },
        ("status", r) => Expect::Status {
            code: r
                .parse()
                .map_err(|_| "an HTTP status code after `status`")?,
        },
        ("mapping", r) => Expect::Mapping {
            behaviour: r.to_string(),
        },
        ("filtering", r) => Expect::Filtering {
            behaviour: r.to_string(),
        },
        (w, r) if r.starts_with("containing ") => Expect::Containing {
            word: w.to_string(),
            text: quoted(&r[11..]).ok_or("a quoted text after `containing`")?,
        },
        (w, "") => Expect::Outcome {
            word: w.to_string(),
        },
        _ => return Err(format!("an expectation such as {}", hint(action))),
    };
    check(&e, action)?;
    Ok(e)
}

fn hint(action: &str) -> String {
    let w = words(action);
    if w.is_empty() {
        "`trace dropped-by-nat-filter`".into()
    } else {
        w.iter()
            .map(|w| format!("`{w}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

const DISPOSITIONS: &[&str] = &[
    "in-flight",
    "delivered",
    "delivered-to-router",
    "dropped-by-nat-filter",
    "answered-by-nat",
    "dropped-by-nat",
    "no-route",
    "ttl-exceeded",
    "host-unreachable",
    "lost",
    "dropped-by-fault",
    "dropped",
];

const BEHAVIOURS: &[&str] = &[
    "endpoint-independent",
    "address-dependent",
    "address-and-port-dependent",
];

/// Rejects expectations the action can never meet.
fn check(e: &Expect, action: &str) -> Result<(), String> {
    let ok = match e {
        Expect::Outcome { word } => {
            let w = words(action);
            if !w.contains(&word.as_str()) {
                return Err(format!(
                    "`{action}` never ends `{word}`; expected one of {}",
                    hint(action)
                ));
            }
            true
        }
        Expect::Containing { word, .. } => match action {
            "send-mail" => matches!(word.as_str(), "deferred" | "bounced" | "ndr"),
            "outlook-connect" | "ftp-get" | "http-get" | "tcp-connect" => word == "failed",
            _ => false,
        },
        Expect::TimedOutAfter { .. } => action == "tcp-connect",
        Expect::ConnectedVia { .. } | Expect::EndpointReturned { .. } => {
            action == "outlook-connect"
        }
        Expect::FailedAt { .. } => matches!(action, "outlook-connect" | "ftp-get"),
        Expect::Answer { .. } => action == "dns-lookup",
        Expect::Status { .. } => action == "http-get",
        Expect::Mapping { behaviour } | Expect::Filtering { behaviour } => {
            if !BEHAVIOURS.contains(&behaviour.as_str()) {
                return Err(format!("a behaviour: {}", BEHAVIOURS.join(", ")));
            }
            action == "nat-type"
        }
        Expect::Trace { disposition } => {
            if !DISPOSITIONS.contains(&disposition.as_str()) {
                return Err(format!("a disposition: {}", DISPOSITIONS.join(", ")));
            }
            true
        }
        Expect::TraceStep { .. } | Expect::TraceContaining { .. } => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "this expectation cannot apply to a `{action}` step; expected one of {}",
            hint(action)
        ))
    }
}

impl std::fmt::Display for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expect::Outcome { word } => f.write_str(word),
            Expect::Containing { word, text } => write!(f, "{word} containing \"{text}\""),
            Expect::TimedOutAfter { secs } => write!(f, "timed-out after ≈{secs}s"),
            Expect::ConnectedVia { endpoint } => write!(f, "connected via {endpoint}"),
            Expect::EndpointReturned { endpoint } => write!(f, "endpoint returned {endpoint}"),
            Expect::FailedAt { stage } => write!(f, "failed at {stage}"),
            Expect::Answer { value } => write!(f, "answer {value}"),
            Expect::Status { code } => write!(f, "status {code}"),
            Expect::Mapping { behaviour } => write!(f, "mapping {behaviour}"),
            Expect::Filtering { behaviour } => write!(f, "filtering {behaviour}"),
            Expect::Trace { disposition } => write!(f, "trace {disposition}"),
            Expect::TraceStep { kind } => write!(f, "trace-step {kind}"),
            Expect::TraceContaining { text } => write!(f, "trace containing \"{text}\""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations_parse_and_impossible_ones_are_refused() {
        assert_eq!(
            parse("timed-out after ≈21s", "tcp-connect").unwrap(),
            Expect::TimedOutAfter { secs: 21.0 }
        );
        assert_eq!(
            parse("ndr containing \"No proxy for Recipient\"", "send-mail").unwrap(),
            Expect::Containing {
                word: "ndr".into(),
                text: "No proxy for Recipient".into()
            }
        );
        assert!(parse("delivered", "ping")
            .unwrap_err()
            .contains("never ends"));
        assert!(parse("status 200", "tcp-connect").is_err());
        assert!(parse("trace dropped-by-nat", "ping").is_ok());
        assert!(parse("trace dropped-by-nowhere", "ping").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("31d"), None);
        assert_eq!(parse_duration("5 parsecs"), None);
    }
}
