//! SMTP (RFC 5321): a server session state machine, a server app with a
//! recipient policy, and a client dialogue used by the MTA.

use crate::net::{LineConn, Listener};
use natsim_sim::{App, AppCx};

/// A received message.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
    /// Who connected (address as the server saw it).
    pub peer: String,
    /// The server's own address the connection arrived on (after any
    /// NAT on the way: where the message really landed).
    pub landed: String,
    pub message_id: Option<String>,
    /// `Received:` fields in `data`, this server's included.
    pub received: usize,
}

/// A transaction the server turned down with a 4xx or 5xx reply, kept so
/// that a bounce can name the server and the address it landed on.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Refusal {
    /// The client's EHLO/HELO name.
    pub helo: String,
    /// The envelope sender, if MAIL was accepted.
    pub from: String,
    /// The server's own address the connection arrived on.
    pub landed: String,
    /// The reply line, without CRLF.
    pub reply: String,
    /// When the server sent it.
    #[serde(skip)]
    pub at: natsim_nat::Instant,
}

/// Decides which recipients the server takes.
pub trait RcptPolicy {
    /// `Ok(())` to accept, or the full reply line to refuse with.
    fn rcpt(&self, addr: &str) -> Result<(), String>;
    /// Whether an accepted `addr` ends here, in a mailbox (true), or is
    /// only taken for onward relay, which this server does not model.
    fn final_for(&self, addr: &str) -> bool {
        let _ = addr;
        true
    }
}

/// Accepts every recipient (an open test sink).
#[derive(Clone, Debug, Default)]
pub struct AcceptAll;
impl RcptPolicy for AcceptAll {
    fn rcpt(&self, _: &str) -> Result<(), String> {
        Ok(())
    }
}

/// Accepts recipients in the listed domains (case-insensitive; `*` accepts
/// every domain, as an ISP's relay does for its customers).
#[derive(Clone, Debug, Default)]
pub struct Domains(pub Vec<String>);
impl RcptPolicy for Domains {
    fn rcpt(&self, addr: &str) -> Result<(), String> {
        let dom = addr.rsplit('@').next().unwrap_or("").to_ascii_lowercase();
        if self
            .0
            .iter()
            .any(|d| d == "*" || d.eq_ignore_ascii_case(&dom))
        {
            Ok(())
        } else {
            Err(format!("550 5.7.1 Unable to relay for {addr}"))
        }
    }
    fn final_for(&self, addr: &str) -> bool {
        let dom = addr.rsplit('@').next().unwrap_or("");
        self.0.iter().any(|d| d.eq_ignore_ascii_case(dom))
    }
}

/// Counts the `Received:` fields in a message's header block.
pub fn count_received(data: &str) -> usize {
    data.split("\r\n")
        .take_while(|l| !l.is_empty())
        .filter(|l| l.len() >= 9 && l.as_bytes()[..9].eq_ignore_ascii_case(b"received:"))
        .count()
}

/// The `Message-ID` of a message, if it has one.
pub fn message_id(data: &str) -> Option<String> {
    data.split("\r\n")
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("message-id")
                .then(|| v.trim().to_string())
        })
}

/// Strips `<...>` and an optional `FROM:`/`TO:` prefix.
pub fn path_arg(arg: &str) -> String {
    let a = arg.trim();
    let a = a.split_once(':').map_or(a, |(_, r)| r).trim();
    a.trim_start_matches('<')
        .split('>')
        .next()
        .unwrap_or("")
        .trim()
        .to_string()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Command,
    Data,
    Done,
}

/// One server-side conversation, sans-IO: lines in, reply lines out.
#[derive(Debug)]
pub struct Session {
    host: String,
    phase: Phase,
    helo: bool,
    /// The name the client gave in HELO/EHLO.
    helo_name: String,
    from: Option<String>,
    to: Vec<String>,
    data: String,
}

impl Session {
    /// A session and its greeting.
    pub fn new(host: &str) -> (Session, String) {
        (
            Session {
                host: host.to_string(),
                phase: Phase::Command,
                helo: false,
                helo_name: String::new(),
                from: None,
                to: Vec::new(),
                data: String::new(),
            },
            format!("220 {host} ESMTP natsim ready\r\n"),
        )
    }

    pub fn done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// The client's HELO/EHLO name, and the envelope sender so far.
    pub fn client(&self) -> (&str, &str) {
        (&self.helo_name, self.from.as_deref().unwrap_or(""))
    }

    /// Handles one line; returns the reply and a finished message, if any.
    pub fn line(
        &mut self,
        line: &str,
        policy: &dyn RcptPolicy,
    ) -> (String, Option<(String, Vec<String>, String)>) {
        if self.phase == Phase::Data {
            if line == "." {
                self.phase = Phase::Command;
                let m = (
                    self.from.take().unwrap_or_default(),
                    std::mem::take(&mut self.to),
                    std::mem::take(&mut self.data),
                );
                return ("250 2.6.0 Queued mail for delivery\r\n".into(), Some(m));
            }
            let l = line.strip_prefix('.').unwrap_or(line);
            self.data.push_str(l);
            self.data.push_str("\r\n");
            return (String::new(), None);
        }
        let (verb, arg) = line.split_once(' ').unwrap_or((line, ""));
        let reply = match verb.to_ascii_uppercase().as_str() {
            "HELO" => {
                self.helo = true;
                self.helo_name = arg.trim().to_string();
                format!("250 {} Hello {}\r\n", self.host, arg.trim())
            }
            "EHLO" => {
                self.helo = true;
                self.helo_name = arg.trim().to_string();
                format!(
                    "250-{} Hello {}\r\n250-SIZE 10485760\r\n250 8BITMIME\r\n",
                    self.host,
                    arg.trim()
                )
            }
            "MAIL" if !self.helo => "503 5.5.2 Send hello first\r\n".into(),
            "MAIL" => {
                self.from = Some(path_arg(arg));
                self.to.clear();
                "250 2.1.0 Sender OK\r\n".into()
            }
            "RCPT" if self.from.is_none() => "503 5.5.1 Need MAIL first\r\n".into(),
            "RCPT" => {
                let to = path_arg(arg);
                match policy.rcpt(&to) {
                    Ok(()) => {
                        self.to.push(to);
                        "250 2.1.5 Recipient OK\r\n".into()
                    }
                    Err(r) => format!("{r}\r\n"),
                }
            }
            "DATA" if self.to.is_empty() => "503 5.5.1 Need RCPT first\r\n".into(),
            "DATA" => {
                self.phase = Phase::Data;
                "354 Start mail input; end with <CRLF>.<CRLF>\r\n".into()
            }
            "RSET" => {
                self.from = None;
                self.to.clear();
                "250 2.0.0 Reset\r\n".into()
            }
            "NOOP" => "250 2.0.0 OK\r\n".into(),
            "QUIT" => {
                self.phase = Phase::Done;
                format!("221 2.0.0 {} closing connection\r\n", self.host)
            }
            _ => "500 5.5.1 Command unrecognized\r\n".into(),
        };
        (reply, None)
    }
}

/// An SMTP server app on port 25.
pub struct SmtpServer {
    pub host_name: String,
    pub policy: Box<dyn RcptPolicy>,
    listener: Listener,
    sessions: Vec<(LineConn, Session, String, String)>,
    pub received: Vec<Mail>,
    pub refused: Vec<Refusal>,
}

impl SmtpServer {
    pub fn new(host_name: &str, policy: Box<dyn RcptPolicy>) -> SmtpServer {
        SmtpServer {
            host_name: host_name.to_string(),
            policy,
            listener: Listener::new(25),
            sessions: Vec::new(),
            received: Vec::new(),
            refused: Vec::new(),
        }
    }
}

impl App for SmtpServer {
    fn poll(&mut self, cx: &mut AppCx<'_>) {
        while let Some(h) = self.listener.accept(cx) {
            let mut conn = LineConn::new(h);
            let (s, greeting) = Session::new(&self.host_name);
            conn.send(&greeting);
            let peer = conn
                .remote(cx)
                .map(|(a, p)| format!("{a}:{p}"))
                .unwrap_or_default();
            let landed = conn
                .local(cx)
                .map(|(a, _)| a.to_string())
                .unwrap_or_default();
            cx.log("smtp-server", format!("connection from {peer}"));
            self.sessions.push((conn, s, peer, landed));
        }
        for (conn, s, peer, landed) in &mut self.sessions {
            for line in conn.pump(cx) {
                let (reply, mail) = s.line(&line, self.policy.as_ref());
                if reply.starts_with('5') || reply.starts_with('4') {
                    cx.log(
                        "smtp-server",
                        format!("{peer}: {} -> {}", line, reply.trim_end()),
                    );
                    let (helo, from) = s.client();
                    self.refused.push(Refusal {
                        helo: helo.to_string(),
                        from: from.to_string(),
                        landed: landed.clone(),
                        reply: reply.trim_end().to_string(),
                        at: cx.now,
                    });
                }
                conn.send(&reply);
                if let Some((from, to, data)) = mail {
                    cx.log(
                        "smtp-server",
                        format!("accepted mail from {from} for {}", to.join(", ")),
                    );
                    // RFC 5321 §4.4: the receiving server prepends its
                    // trace record.
                    let peer_ip = peer.split(':').next().unwrap_or("");
                    let data = format!(
                        "Received: from [{peer_ip}] by {} with ESMTP; {}\r\n{data}",
                        self.host_name, cx.now
                    );
                    self.received.push(Mail {
                        from,
                        to,
                        message_id: message_id(&data),
                        received: count_received(&data),
                        data,
                        peer: peer.clone(),
                        landed: landed.clone(),
                    });
                }
                if s.done() {
                    conn.closing = true;
                }
            }
            conn.pump(cx);
        }
        self.sessions.retain_mut(|(c, _, _, _)| {
            !c.finished(cx) || !matches!(c.state(cx), smoltcp::socket::tcp::State::Closed)
        });
    }
    natsim_sim::any_impls!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_dialogue_queues_the_message() {
        let (mut s, greet) = Session::new("mail.example.com");
        assert_eq!(greet, "220 mail.example.com ESMTP natsim ready\r\n");
        let p = Domains(vec!["example.com".into()]);
        assert!(s
            .line("EHLO client", &p)
            .0
            .starts_with("250-mail.example.com"));
        assert_eq!(
            s.line("MAIL FROM:<a@b.org>", &p).0,
            "250 2.1.0 Sender OK\r\n"
        );
        assert_eq!(
            s.line("RCPT TO:<x@other.org>", &p).0,
            "550 5.7.1 Unable to relay for x@other.org\r\n"
        );
        assert_eq!(
            s.line("RCPT TO:<user@example.com>", &p).0,
            "250 2.1.5 Recipient OK\r\n"
        );
        assert!(s.line("DATA", &p).0.starts_with("354"));
        assert_eq!(s.line("Subject: hi", &p).0, "");
        assert_eq!(s.line("..dot", &p).0, "");
        let (r, m) = s.line(".", &p);
        assert!(r.starts_with("250"));
        assert_eq!(
            m.unwrap(),
            (
                "a@b.org".into(),
                vec!["user@example.com".into()],
                "Subject: hi\r\n.dot\r\n".into()
            )
        );
        assert!(s.line("QUIT", &p).0.starts_with("221"));
        assert!(s.done());
    }

    #[test]
    fn commands_out_of_order_get_503() {
        let (mut s, _) = Session::new("h");
        assert!(s.line("MAIL FROM:<a@b>", &AcceptAll).0.starts_with("503"));
        s.line("HELO x", &AcceptAll);
        assert!(s.line("RCPT TO:<a@b>", &AcceptAll).0.starts_with("503"));
        assert!(s.line("FOO", &AcceptAll).0.starts_with("500"));
    }
}
