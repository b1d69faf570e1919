//! Minimal HTTP/1.1 (Outlook Web Access is a page on the Exchange host):
//! a server with fixed pages and a client doing one GET. Requests and
//! responses are parsed with `httparse`.

use crate::net::Listener;
use natsim_nat::Instant;
use natsim_sim::tcp::{ConnectState, Connector};
use natsim_sim::{App, AppCx};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::{Socket, State};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// Serves `pages` (path → body) on a port; 404 otherwise.
pub struct HttpServer {
    pub port: u16,
    pub pages: BTreeMap<String, String>,
    listener: Listener,
    conns: Vec<(SocketHandle, Vec<u8>, bool)>,
    pub requests: Vec<String>,
}

impl HttpServer {
    pub fn new(port: u16, pages: BTreeMap<String, String>) -> HttpServer {
        HttpServer {
            port,
            pages,
            listener: Listener::new(port),
            conns: Vec::new(),
            requests: Vec::new(),
        }
    }
}

/// The response to one request head, or `None` while it is incomplete.
pub fn respond(pages: &BTreeMap<String, String>, head: &[u8]) -> Option<(String, Vec<u8>)> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {
            let path = req.path.unwrap_or("/").to_string();
            let (status, body) = match (req.method, pages.get(&path)) {
                (Some("GET"), Some(b)) => ("200 OK", b.clone()),
                (Some("GET"), None) => ("404 Not Found", "not found\n".to_string()),
                _ => ("405 Method Not Allowed", String::new()),
            };
            let resp = format!("HTTP/1.1 {status}\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            Some((
                format!("{} {path} -> {status}", req.method.unwrap_or("?")),
                resp.into_bytes(),
            ))
        }
        Ok(httparse::Status::Partial) => None,
        Err(_) => Some((
            "bad request".into(),
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
        )),
    }
}

impl App for HttpServer {
    fn poll(&mut self, cx: &mut AppCx<'_>) {
        while let Some(h) = self.listener.accept(cx) {
            self.conns.push((h, Vec::new(), false));
        }
        for (h, buf, answered) in &mut self.conns {
            let s = cx.sockets.get_mut::<Socket>(*h);
            while s.can_recv() {
                let got = s.recv(|b| (b.len(), b.to_vec())).unwrap_or_default();
                if got.is_empty() {
                    break;
                }
                buf.extend_from_slice(&got);
            }
            if !*answered {
                if let Some((line, resp)) = respond(&self.pages, buf) {
                    let _ = s.send_slice(&resp);
                    s.close();
                    *answered = true;
                    cx.log("http-server", line.clone());
                    self.requests.push(line);
                }
            }
        }
    }
    natsim_sim::any_impls!();
}

/// What a GET got.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum HttpOutcome {
    Response { status: u16, body_len: usize },
    Failed { why: String },
}

/// One GET request.
pub struct HttpClient {
    pub target: (Ipv4Addr, u16),
    pub path: String,
    conn: Option<Connector>,
    sent: bool,
    buf: Vec<u8>,
    pub outcome: Option<HttpOutcome>,
}

impl HttpClient {
    pub fn new(target: (Ipv4Addr, u16), path: &str) -> HttpClient {
        HttpClient {
            target,
            path: path.into(),
            conn: None,
            sent: false,
            buf: Vec::new(),
            outcome: None,
        }
    }
}

impl App for HttpClient {
    fn poll(&mut self, cx: &mut AppCx<'_>) {
        if self.outcome.is_some() {
            return;
        }
        let conn = self
            .conn
            .get_or_insert_with(|| Connector::start(cx, self.target));
        match conn.poll(cx).clone() {
            ConnectState::Connecting => {}
            ConnectState::Failed(e) => {
                cx.log(
                    "http-client",
                    format!(
                        "GET http://{}:{}{}: {e}",
                        self.target.0, self.target.1, self.path
                    ),
                );
                self.outcome = Some(HttpOutcome::Failed { why: e.to_string() });
            }
            ConnectState::Connected => {
                let s = cx.sockets.get_mut::<Socket>(conn.handle);
                if !self.sent {
                    let req = format!("GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: natsim\r\nConnection: close\r\n\r\n", self.path, self.target.0);
                    let _ = s.send_slice(req.as_bytes());
                    self.sent = true;
                }
                while s.can_recv() {
                    let got = s.recv(|b| (b.len(), b.to_vec())).unwrap_or_default();
                    if got.is_empty() {
                        break;
                    }
                    self.buf.extend_from_slice(&got);
                }
                let closed = matches!(
                    s.state(),
                    State::CloseWait | State::Closed | State::TimeWait | State::LastAck
                );
                let mut headers = [httparse::EMPTY_HEADER; 32];
                let mut resp = httparse::Response::new(&mut headers);
                if let Ok(httparse::Status::Complete(n)) = resp.parse(&self.buf) {
                    let status = resp.code.unwrap_or(0);
                    let len = resp
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                        .and_then(|h| {
                            std::str::from_utf8(h.value)
                                .ok()?
                                .trim()
                                .parse::<usize>()
                                .ok()
                        });
                    let have = self.buf.len() - n;
                    if closed || len.is_some_and(|l| have >= l) {
                        s.close();
                        self.outcome = Some(HttpOutcome::Response {
                            status,
                            body_len: have,
                        });
                        cx.log(
                            "http-client",
                            format!(
                                "GET http://{}:{}{} -> {status}",
                                self.target.0, self.target.1, self.path
                            ),
                        );
                    }
                } else if closed {
                    self.outcome = Some(HttpOutcome::Failed {
                        why: "connection closed before a response".into(),
                    });
                }
            }
        }
    }
    fn poll_at(&self) -> Option<Instant> {
        self.conn.as_ref().and_then(Connector::poll_at)
    }
    natsim_sim::any_impls!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pages() -> BTreeMap<String, String> {
        BTreeMap::from([("/exchange".to_string(), "<html>OWA</html>".to_string())])
    }

    #[test]
    fn a_get_for_a_page_gets_200_with_its_length() {
        let (line, resp) = respond(
            &pages(),
            b"GET /exchange HTTP/1.1\r\nHost: 203.0.113.1\r\n\r\n",
        )
        .unwrap();
        assert_eq!(line, "GET /exchange -> 200 OK");
        assert_eq!(resp, b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 16\r\nConnection: close\r\n\r\n<html>OWA</html>");
    }

    #[test]
    fn partial_heads_wait_and_garbage_gets_400() {
        assert!(respond(&pages(), b"GET /exchange HTTP/1.1\r\nHost: x").is_none());
        let (_, resp) = respond(&pages(), b"\x00\x01 nonsense\r\n\r\n").unwrap();
        assert!(resp.starts_with(b"HTTP/1.1 400 Bad Request"));
        let (_, resp) = respond(&pages(), b"GET /nope HTTP/1.1\r\n\r\n").unwrap();
        assert!(resp.starts_with(b"HTTP/1.1 404 Not Found"));
    }
}
