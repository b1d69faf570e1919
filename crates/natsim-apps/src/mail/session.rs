//! One message's way out: waiting for its retry, routing it, connecting,
//! and the SMTP exchange with the next MTA (RFC 5321 §3, §4.5.2).

use super::*;

/// Advances one message; true if it made progress worth another look
/// before the next poll.
pub(super) fn step(m: &mut Outgoing, cx: &mut AppCx<'_>, p: &Policy<'_>) -> bool {
    match &mut m.stage {
        Stage::Done | Stage::Loopback => false,
        Stage::Wait(t) => {
            if cx.now >= m.submitted + p.give_up {
                let reason = match &m.status {
                    DeliveryStatus::Deferred { reason, .. } => reason.clone(),
                    _ => String::new(),
                };
                expire(m, cx, p, &reason);
                true
            } else if cx.now >= *t {
                m.refused_by = None;
                m.stage = Stage::Route;
                true
            } else {
                false
            }
        }
        Stage::Route => {
            let to = match p.ims {
                Some(i) => match i.outbound(&m.to) {
                    Ok(a) => a,
                    Err(diag) => {
                        let reason = diag.replace("\n      ", " ");
                        bounce(m, cx, p, reason, Some(diag));
                        return false;
                    }
                },
                None => m.to.clone(),
            };
            let domain = to.rsplit('@').next().unwrap_or("").to_string();
            // "Forward all messages to host" takes every message,
            // literals included.
            if let Some(a) = p.smart {
                m.stage = connect(cx, p, vec![a]);
                return true;
            }
            if let Some(lit) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
                match lit.parse::<Ipv4Addr>() {
                    Ok(a) => m.stage = connect(cx, p, vec![a]),
                    Err(_) => bounce(
                        m,
                        cx,
                        p,
                        format!("5.1.3 bad address literal {domain}"),
                        None,
                    ),
                }
                return true;
            }
            m.stage = Stage::Mx(
                Lookup::with_profile(&domain, RecordType::MX, cx.host.dns.clone(), p.resolver),
                domain,
            );
            true
        }
        Stage::Mx(l, domain) => {
            let Some(r) = l.poll(cx).cloned() else {
                return false;
            };
            let domain = domain.clone();
            match r {
                LookupResult::Exchanges { mx, .. } => {
                    let names: Vec<String> = mx.into_iter().map(|(_, n)| n).collect();
                    let lookup = Lookup::with_profile(&names[0], RecordType::A, cx.host.dns.clone(), p.resolver);
                    m.stage = Stage::A { names, lookup, addrs: Vec::new(), implicit: false, domain };
                }
                LookupResult::NoData { .. } => {
                    // RFC 5321 §5.1: no MX, use the domain's A record.
                    let lookup = Lookup::with_profile(&domain, RecordType::A, cx.host.dns.clone(), p.resolver);
                    m.stage = Stage::A { names: vec![domain.clone()], lookup, addrs: Vec::new(), implicit: true, domain };
                }
                LookupResult::NxDomain { server } => bounce(m, cx, p, format!("5.1.2 host unknown: DNS server {server} says {domain} does not exist (NXDOMAIN)"), None),
                LookupResult::Refused { server } => defer(m, cx, p, format!("DNS server {server} refused to answer for {domain}")),
                LookupResult::ServFail { server } => defer(m, cx, p, format!("DNS server {server} failed (SERVFAIL) for {domain}")),
                LookupResult::Timeout => defer(m, cx, p, format!("no DNS server answered for {domain}")),
                LookupResult::Addresses { .. } => bounce(m, cx, p, "unexpected DNS answer".into(), None),
            }
            true
        }
        Stage::A {
            names,
            lookup,
            addrs,
            implicit,
            domain,
        } => {
            let Some(r) = lookup.poll(cx).cloned() else {
                return false;
            };
            if let LookupResult::Addresses { addrs: a, .. } = &r {
                addrs.extend(a);
            }
            names.remove(0);
            if let Some(next) = names.first() {
                *lookup =
                    Lookup::with_profile(next, RecordType::A, cx.host.dns.clone(), p.resolver);
                return true;
            }
            if addrs.is_empty() {
                let why = if *implicit {
                    format!("5.1.2 no MX or A record for {domain} ({})", r.describe())
                } else {
                    format!(
                        "5.1.2 the mail exchangers of {domain} have no address ({})",
                        r.describe()
                    )
                };
                bounce(m, cx, p, why, None);
            } else {
                let a = addrs.clone();
                m.stage = connect(cx, p, a);
            }
            true
        }
        Stage::Connect {
            targets,
            idx,
            conn,
            failures,
        } => match conn.poll(cx).clone() {
            ConnectState::Connecting => false,
            ConnectState::Connected => {
                let server = targets[*idx];
                cx.log("mta", format!("connected to {server}:25"));
                m.stage = Stage::Talk {
                    conn: LineConn::new(conn.handle),
                    server,
                    step: 0,
                    reply: Vec::new(),
                };
                true
            }
            ConnectState::Failed(e) => {
                let line = format!("connect to {}:25 {e}", targets[*idx]);
                cx.log("mta", line.clone());
                m.attempts.push(line.clone());
                failures.push(line);
                *idx += 1;
                if *idx < targets.len() {
                    *conn = Connector::start(cx, (targets[*idx], 25));
                } else {
                    let reason = failures.join("; ");
                    defer(m, cx, p, reason);
                }
                true
            }
        },
        Stage::Talk {
            conn,
            server,
            step,
            reply,
        } => {
            let server = *server;
            let lines = conn.pump(cx);
            let mut progressed = false;
            for line in lines {
                reply.push(line.clone());
                if line.len() > 3 && line.as_bytes()[3] == b'-' {
                    continue;
                }
                let code = line
                    .get(..3)
                    .and_then(|c| c.parse::<u16>().ok())
                    .unwrap_or(0);
                let text = reply.join(" / ");
                reply.clear();
                progressed = true;
                let ok = match *step {
                    0 => code == 220,
                    1 => code == 250,
                    2 => code == 250,
                    3 => code == 250 || code == 251,
                    4 => code == 354,
                    5 => code == 250,
                    _ => true,
                };
                if !ok {
                    m.attempts.push(format!("{server}: {text}"));
                    m.refused_by = Some((server, cx.now));
                    conn.quit("QUIT\r\n");
                    conn.pump(cx);
                    let h = conn.handle;
                    m.closing.push(std::mem::replace(conn, LineConn::new(h)));
                    if (400..500).contains(&code) {
                        defer(m, cx, p, format!("{server} answered {text}"));
                    } else {
                        bounce(
                            m,
                            cx,
                            p,
                            format!("{server} answered {text}"),
                            Some(text.clone()),
                        );
                    }
                    return false;
                }
                *step += 1;
                match *step {
                    1 => conn.send(&format!("EHLO {}\r\n", p.me)),
                    2 => conn.send(&format!("MAIL FROM:<{}>\r\n", m.from)),
                    3 => {
                        let to = p
                            .ims
                            .and_then(|i| i.outbound(&m.to).ok())
                            .unwrap_or_else(|| m.to.clone());
                        conn.send(&format!("RCPT TO:<{to}>\r\n"))
                    }
                    4 => conn.send("DATA\r\n"),
                    5 => conn.send(&dot_stuffed(&m.data)),
                    6 => {
                        conn.quit("QUIT\r\n");
                        cx.log("mta", format!("delivered message to {} via {server}", m.to));
                        m.attempts.push(format!("delivered via {server}: {text}"));
                        m.status = DeliveryStatus::Delivered {
                            server: server.to_string(),
                            reply: text,
                        };
                        conn.pump(cx);
                        let h = conn.handle;
                        m.closing.push(std::mem::replace(conn, LineConn::new(h)));
                        m.stage = Stage::Done;
                        return false;
                    }
                    _ => {}
                }
            }
            conn.pump(cx);
            if !progressed && conn.finished(cx) {
                defer(m, cx, p, format!("{server} closed the connection"));
                return true;
            }
            false
        }
    }
}

/// The DATA payload: lines beginning with `.` doubled, then `CRLF.CRLF`
/// (RFC 5321 §4.5.2).
fn dot_stuffed(data: &str) -> String {
    let mut out = String::with_capacity(data.len() + 8);
    for line in data.split_inclusive("\r\n") {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
    }
    if !out.ends_with("\r\n") {
        out.push_str("\r\n");
    }
    out.push_str(".\r\n");
    out
}

fn connect(cx: &mut AppCx<'_>, p: &Policy<'_>, targets: Vec<Ipv4Addr>) -> Stage {
    if p.ims.is_some() && targets[0] == cx.host.addr {
        cx.log(
            "mta",
            format!(
                "{} is this server's own address: delivering over loopback",
                targets[0]
            ),
        );
        return Stage::Loopback;
    }
    let conn = Connector::start(cx, (targets[0], 25));
    Stage::Connect {
        targets,
        idx: 0,
        conn,
        failures: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_doubles_leading_dots_and_terminates() {
        assert_eq!(
            dot_stuffed("Subject: x\r\n\r\n.hidden\r\nend\r\n"),
            "Subject: x\r\n\r\n..hidden\r\nend\r\n.\r\n"
        );
    }
}
