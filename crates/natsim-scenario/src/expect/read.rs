//! Reading an expectation's text into an [`Expect`], and refusing the
//! ones its action can never meet.

use super::*;

fn quoted(s: &str) -> Option<String> {
    let s = s.trim();
    s.strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .map(String::from)
}

fn socket(s: &str) -> Result<SocketAddrV4, String> {
    crate::parse::socket_text(s).ok_or_else(|| format!("`{s}` is not ADDRESS:PORT"))
}

fn l4(s: &str) -> Result<L4, String> {
    match s {
        "tcp" => Ok(L4::Tcp),
        "udp" => Ok(L4::Udp),
        o => Err(format!("`{o}` is not `tcp` or `udp`")),
    }
}

/// Parses one expectation for `action`; `Err` explains what was expected.
pub fn parse(text: &str, action: &str) -> Result<Expect, String> {
    let t = text.trim();
    let (head, rest) = t.split_once(' ').unwrap_or((t, ""));
    let rest = rest.trim();
    let e = match (head, rest) {
        ("anything", "") => Expect::Anything,
        ("not", r) if !r.is_empty() => {
            let inner = parse(r, action)?;
            match inner {
                Expect::Anything => {
                    return Err("`anything` always holds, so `not anything` never can".into())
                }
                Expect::Not { .. } => {
                    return Err(format!("`not not` cancels out: write `{}`", &r[4..].trim()))
                }
                _ => {}
            }
            Expect::Not {
                inner: Box::new(inner),
            }
        }
        ("trace", r) if !r.is_empty() => {
            if let Some(q) = r.strip_prefix("containing ") {
                Expect::TraceContaining {
                    text: quoted(q).ok_or("a quoted text after `containing`")?,
                }
            } else {
                let disposition = DISPOSITIONS
                    .iter()
                    .find(|d| **d == r)
                    .ok_or_else(|| format!("a disposition: {}", DISPOSITIONS.join(", ")))?;
                Expect::Trace { disposition }
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
            let secs = crate::parse::duration_text(d)
                .ok_or("a duration such as `21s` after `timed-out after`")?
                .as_secs_f64();
            Expect::TimedOutAfter { secs }
        }
        ("connected", r) if r.starts_with("via ") => Expect::ConnectedVia {
            endpoint: socket(&r[4..])?,
        },
        ("endpoint", r) if r.starts_with("returned ") => Expect::EndpointReturned {
            endpoint: socket(&r[9..])?,
        },
        ("failed", r) if r.starts_with("at ") => Expect::FailedAt {
            stage: r[3..].trim().to_string(),
        },
        ("seen-from", r) => Expect::SeenFrom { source: socket(r)? },
        ("icmp", r) => {
            let kind = ICMP_KINDS
                .iter()
                .find(|k| k.name == r)
                .copied()
                .ok_or_else(|| {
                    let names: Vec<_> = ICMP_KINDS.iter().map(|k| k.name).collect();
                    format!("an ICMP error name after `icmp`: {}", names.join(", "))
                })?;
            Expect::Icmp { kind }
        }
        ("answer", r) if !r.is_empty() => Expect::Answer {
            value: r.to_string(),
        },
        ("status", r) => {
            let code: u16 = r
                .parse()
                .map_err(|_| "an HTTP status code after `status`")?;
            if !(100..=599).contains(&code) {
                return Err(format!(
                    "HTTP status {code} cannot occur; status codes are 100–599 (RFC 9110 §15)"
                ));
            }
            Expect::Status { code }
        }
        ("mapping", r) if action == "nat-table" => {
            // `udp 192.168.1.10:40000 -> 203.0.113.1:40000`
            let (proto, rest) = r
                .split_once(' ')
                .ok_or("`mapping udp IN:PORT -> OUT:PORT`")?;
            let (inside, outside) = rest
                .split_once("->")
                .ok_or("`mapping udp IN:PORT -> OUT:PORT`")?;
            Expect::NatMapping {
                proto: l4(proto)?,
                inside: socket(inside)?,
                outside: socket(outside)?,
            }
        }
        ("no", r) if action == "nat-table" && r.starts_with("mapping ") => {
            let (proto, inside) = r[8..]
                .trim()
                .split_once(' ')
                .ok_or("`no mapping udp IN:PORT`")?;
            Expect::NoNatMapping {
                proto: l4(proto)?,
                inside: socket(inside)?,
            }
        }
        ("mapping", r) => Expect::Mapping {
            behaviour: Behaviour::by_word(r).ok_or(
                "a behaviour: endpoint-independent, address-dependent, address-and-port-dependent",
            )?,
        },
        ("filtering", r) => Expect::Filtering {
            behaviour: Behaviour::by_word(r).ok_or(
                "a behaviour: endpoint-independent, address-dependent, address-and-port-dependent",
            )?,
        },
        ("delivered", r) if r.starts_with("to mailbox ") => Expect::Mailbox {
            address: r["to mailbox ".len()..].trim().to_string(),
        },
        ("via", r) if !r.is_empty() => Expect::Via { hop: r.to_string() },
        (w, r) if r.starts_with("containing ") => {
            let outcome = Outcome::by_word(w)
                .ok_or_else(|| format!("an outcome such as {}", hint(action)))?;
            Expect::Containing {
                outcome,
                text: quoted(&r[11..]).ok_or("a quoted text after `containing`")?,
            }
        }
        (w, "") => Expect::Outcome {
            outcome: Outcome::by_word(w).ok_or_else(|| {
                format!(
                    "`{action}` never ends `{w}`; expected one of {}",
                    hint(action)
                )
            })?,
        },
        _ => return Err(format!("an expectation such as {}", hint(action))),
    };
    check(&e, action)?;
    Ok(e)
}

fn hint(action: &str) -> String {
    let w = outcomes(action);
    if w.is_empty() {
        "`trace dropped-by-nat-filter`".into()
    } else {
        w.iter()
            .map(|w| format!("`{}`", w.word()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Rejects expectations the action can never meet.
fn check(e: &Expect, action: &str) -> Result<(), String> {
    let ok = match e {
        Expect::Anything | Expect::Not { .. } => true,
        Expect::Outcome { outcome } => {
            if !outcomes(action).contains(outcome) {
                return Err(format!(
                    "`{action}` never ends `{}`; expected one of {}",
                    outcome.word(),
                    hint(action)
                ));
            }
            true
        }
        Expect::Containing { outcome, .. } => match action {
            "send-mail" => matches!(outcome, Outcome::Deferred | Outcome::Bounced | Outcome::Ndr),
            "outlook-connect" => matches!(outcome, Outcome::Failed | Outcome::Connected),
            "ftp-get" | "http-get" | "tcp-connect" | "tcp-send" => *outcome == Outcome::Failed,
            // The table's text: ICMP entries, TCP states.
            "nat-table" => *outcome == Outcome::Listed,
            _ => false,
        },
        Expect::TimedOutAfter { .. } => action == "tcp-connect",
        Expect::Mailbox { .. } | Expect::Via { .. } => action == "send-mail",
        Expect::ConnectedVia { .. } | Expect::EndpointReturned { .. } => {
            action == "outlook-connect"
        }
        Expect::FailedAt { .. } => matches!(action, "outlook-connect" | "ftp-get"),
        Expect::Answer { .. } => action == "dns-lookup",
        Expect::Status { .. } => action == "http-get",
        Expect::Mapping { .. } | Expect::Filtering { .. } => action == "nat-type",
        Expect::SeenFrom { .. } => matches!(action, "tcp-connect" | "udp-send"),
        Expect::Icmp { .. } => matches!(action, "ping" | "udp-send" | "tcp-connect"),
        Expect::NatMapping { .. } | Expect::NoNatMapping { .. } => action == "nat-table",
        Expect::Trace { .. } | Expect::TraceStep { .. } | Expect::TraceContaining { .. } => true,
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
                outcome: Outcome::Ndr,
                text: "No proxy for Recipient".into()
            }
        );
        assert!(parse("delivered", "ping")
            .unwrap_err()
            .contains("never ends"));
        assert!(parse("status 200", "tcp-connect").is_err());
        assert!(parse("status 999", "http-get")
            .unwrap_err()
            .contains("cannot occur"));
        assert!(parse("trace dropped-by-nat", "ping").is_ok());
        assert!(parse("trace dropped-by-nowhere", "ping").is_err());
        assert!(parse("seen-from 203.0.113.1:40000", "udp-send").is_ok());
        assert!(parse("seen-from 203.0.113.1", "udp-send").is_err());
        assert!(parse("icmp port-unreachable", "udp-send").is_ok());
        assert!(parse("not seen-from 203.0.113.1:40000", "tcp-connect").is_ok());
        assert!(parse("not not delivered", "send-mail").is_err());
        assert_eq!(
            parse(
                "mapping udp 192.168.1.10:40000 -> 203.0.113.1:40000",
                "nat-table"
            )
            .unwrap(),
            Expect::NatMapping {
                proto: L4::Udp,
                inside: "192.168.1.10:40000".parse().unwrap(),
                outside: "203.0.113.1:40000".parse().unwrap()
            }
        );
        assert!(parse("no mapping udp 192.168.1.10:40000", "nat-table").is_ok());
    }

    #[test]
    fn contradictions_are_found() {
        let p = |s| parse(s, "http-get").unwrap();
        assert!(contradicts(&p("status 200"), &p("status 404")));
        assert!(!contradicts(&p("status 200"), &p("status 200")));
        let t = |s| parse(s, "tcp-connect").unwrap();
        assert!(contradicts(&t("connected"), &t("timed-out after 21s")));
        assert!(contradicts(&t("connected"), &t("not connected")));
        assert!(!contradicts(&t("connected"), &t("seen-from 203.0.113.1:1")));
    }
}
