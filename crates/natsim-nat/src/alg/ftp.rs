//! The FTP control-connection helper (RFC 959 PORT / 227, RFC 2428 EPRT /
//! 229), as Linux nf_nat_ftp does it.
//!
//! Only the side behind the NAT needs fixing: an inside client's PORT and
//! EPRT commands, and an inside server's 227 and 229 replies. The address
//! becomes the one the peer knows (the mapping's external address, or the
//! address it dialled), the port a pinhole's external port, and the text
//! usually changes length, which `stream` absorbs.
//!
//! Lines are inspected whole. A line that could be one of these verbs and
//! is cut by a segment boundary makes the driver trim the segment before
//! it, so the sender retransmits the whole line.

use super::helper::{Helper, Out, Pinholes, Side};
use super::stream::Edit;
use super::{AlgEvent, AlgPass, FtpVerb};
use crate::flow::Endpoint;
use std::net::Ipv4Addr;

/// Longest control line inspected (RFC 959 does not bound it; real ones
/// are short).
pub const MAX_LINE: usize = 512;

/// One direction's line assembler.
#[derive(Clone, Debug, Default)]
pub(crate) struct FtpDir {
    line: Vec<u8>,
    /// Stream offset of the line's first byte.
    start: u64,
    /// Past [`MAX_LINE`]: ignore until the next LF.
    skipping: bool,
}

fn verbs(server_to_client: bool) -> &'static [&'static [u8]] {
    if server_to_client {
        &[b"227", b"229"]
    } else {
        &[b"PORT ", b"EPRT "]
    }
}

/// `line` is a prefix of a rewritable verb, or starts with one.
fn candidate(line: &[u8], server_to_client: bool) -> bool {
    verbs(server_to_client).iter().any(|v| {
        let n = v.len().min(line.len());
        line[..n].eq_ignore_ascii_case(&v[..n])
    })
}

/// The FTP helper of one control connection.
#[derive(Clone, Debug, Default)]
pub(crate) struct FtpHelper {
    dirs: [FtpDir; 2],
}

impl Helper for FtpHelper {
    fn feed(
        &mut self,
        d: usize,
        side: &Side,
        off: u64,
        bytes: &[u8],
        holes: &mut dyn Pinholes,
        out: &mut Out,
    ) -> Result<(), &'static str> {
        self.dirs[d].feed(side, off, bytes, holes, out);
        Ok(())
    }
    fn hold(&self, d: usize, side: &Side) -> Option<u64> {
        self.dirs[d].pending(side.server_to_client)
    }
    fn rewind(&mut self, d: usize) {
        self.dirs[d].rewind();
    }
}

impl FtpDir {
    pub(crate) fn feed(
        &mut self,
        side: &Side,
        off: u64,
        bytes: &[u8],
        holes: &mut dyn Pinholes,
        out: &mut Out,
    ) {
        for (i, &b) in bytes.iter().enumerate() {
            if self.line.is_empty() && !self.skipping {
                self.start = off + i as u64;
            }
            if !self.skipping {
                if self.line.len() == MAX_LINE {
                    if candidate(&self.line, side.server_to_client) {
                        out.events.push(AlgEvent::Passed {
                            why: AlgPass::TooLarge,
                        });
                    }
                    self.line.clear();
                    self.skipping = true;
                } else {
                    self.line.push(b);
                }
            }
            if b == b'\n' {
                if !self.skipping {
                    let line = core::mem::take(&mut self.line);
                    self.line_done(&line, side, holes, out);
                }
                self.skipping = false;
            }
        }
    }

    /// Where a trim must cut, if the segment ended inside a line that may
    /// need rewriting.
    pub(crate) fn pending(&self, server_to_client: bool) -> Option<u64> {
        (!self.line.is_empty() && !self.skipping && candidate(&self.line, server_to_client))
            .then_some(self.start)
    }

    /// Forgets the partial line (the trim sends it again).
    pub(crate) fn rewind(&mut self) {
        self.line.clear();
    }

    fn line_done(&self, line: &[u8], side: &Side, holes: &mut dyn Pinholes, out: &mut Out) {
        if !candidate(line, side.server_to_client) || line.len() < 4 {
            return;
        }
        let Some(found) = parse_line(line, side.server_to_client) else {
            out.events.push(AlgEvent::Passed {
                why: AlgPass::Malformed {
                    what: "unparsable FTP address",
                },
            });
            return;
        };
        let addr = found.addr.unwrap_or(side.inside);
        if addr != side.inside {
            out.events.push(AlgEvent::Passed {
                why: AlgPass::NotInside { addr },
            });
            return;
        }
        let internal = Endpoint::new(addr, found.port);
        let Some(external) = holes.open(internal, out) else {
            out.events.push(AlgEvent::Passed {
                why: AlgPass::NoFreePort,
            });
            return;
        };
        let new = found.render(external);
        let old = &line[found.span.0..found.span.1];
        if new.as_bytes() != old {
            let delta = new.len() as i32 - old.len() as i32;
            out.edits.push(Edit {
                off: self.start + found.span.0 as u64,
                old_len: old.len() as u32,
                new: new.into_bytes(),
            });
            out.events.push(AlgEvent::FtpRewritten {
                verb: found.verb,
                from: internal,
                to: external,
                delta,
            });
        }
    }
}

/// An address argument found in a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FtpAddress {
    pub verb: FtpVerb,
    /// `None` for 229, which carries only a port.
    pub addr: Option<Ipv4Addr>,
    pub port: u16,
    /// Byte range of the argument text in the line.
    pub span: (usize, usize),
    /// EPRT/229 delimiter.
    delim: u8,
}

impl FtpAddress {
    fn render(&self, to: Endpoint) -> String {
        let o = to.addr.octets();
        let d = char::from(self.delim);
        match self.verb {
            FtpVerb::Port | FtpVerb::Pasv227 => {
                format!(
                    "{},{},{},{},{},{}",
                    o[0],
                    o[1],
                    o[2],
                    o[3],
                    to.port >> 8,
                    to.port & 0xff
                )
            }
            FtpVerb::Eprt => format!("{d}1{d}{}{d}{}{d}", to.addr, to.port),
            FtpVerb::Epsv229 => format!("{d}{d}{d}{}{d}", to.port),
        }
    }
}

/// Finds the address argument of a PORT/EPRT command (client side) or a
/// 227/229 reply (server side).
pub fn parse_line(line: &[u8], server_to_client: bool) -> Option<FtpAddress> {
    let text = core::str::from_utf8(line).ok()?;
    let upper = text.to_ascii_uppercase();
    if server_to_client {
        if upper.starts_with("227") {
            // The six numbers may sit anywhere after the code (RFC 1123 §4.1.2.6).
            let first = text[3..].find(|c: char| c.is_ascii_digit())? + 3;
            let (addr, port, end) = six_numbers(&text[first..])?;
            return Some(FtpAddress {
                verb: FtpVerb::Pasv227,
                addr: Some(addr),
                port,
                span: (first, first + end),
                delim: b'|',
            });
        }
        if upper.starts_with("229") {
            let open = text.find('(')? + 1;
            let d = *line.get(open)?;
            let rest = &text[open..];
            let prefix = [d, d, d];
            if !rest.as_bytes().starts_with(&prefix) {
                return None;
            }
            let digits = &rest[3..];
            let n = digits.find(char::from(d))?;
            let port = digits[..n].parse().ok()?;
            return Some(FtpAddress {
                verb: FtpVerb::Epsv229,
                addr: None,
                port,
                span: (open, open + 3 + n + 1),
                delim: d,
            });
        }
        return None;
    }
    let args_at = 5;
    let args = text.get(args_at..)?.trim_end_matches(['\r', '\n']);
    if upper.starts_with("PORT ") {
        let (addr, port, end) = six_numbers(args)?;
        if end != args.len() {
            return None;
        }
        return Some(FtpAddress {
            verb: FtpVerb::Port,
            addr: Some(addr),
            port,
            span: (args_at, args_at + end),
            delim: b'|',
        });
    }
    if upper.starts_with("EPRT ") {
        let d = *args.as_bytes().first()?;
        let parts: Vec<&str> = args.split(char::from(d)).collect();
        // "", af, addr, port, ""
        if parts.len() != 5 || !parts[0].is_empty() || !parts[4].is_empty() || parts[1] != "1" {
            return None;
        }
        return Some(FtpAddress {
            verb: FtpVerb::Eprt,
            addr: Some(parts[2].parse().ok()?),
            port: parts[3].parse().ok()?,
            span: (args_at, args_at + args.len()),
            delim: d,
        });
    }
    None
}

/// Parses `h1,h2,h3,h4,p1,p2` at the start of `s`; returns the address,
/// the port and the length consumed.
fn six_numbers(s: &str) -> Option<(Ipv4Addr, u16, usize)> {
    let mut nums = [0u8; 6];
    let mut at = 0;
    let b = s.as_bytes();
    for (k, n) in nums.iter_mut().enumerate() {
        let start = at;
        while at < b.len() && b[at].is_ascii_digit() && at - start < 3 {
            at += 1;
        }
        *n = s.get(start..at)?.parse().ok()?;
        if k < 5 {
            if b.get(at) != Some(&b',') {
                return None;
            }
            at += 1;
        }
    }
    let addr = Ipv4Addr::new(nums[0], nums[1], nums[2], nums[3]);
    Some((addr, u16::from(nums[4]) << 8 | u16::from(nums[5]), at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_command_is_found_with_its_span() {
        let a = parse_line(b"PORT 192,168,1,10,4,1\r\n", false).unwrap();
        assert_eq!(a.addr, Some(Ipv4Addr::new(192, 168, 1, 10)));
        assert_eq!(a.port, 1025);
        assert_eq!(a.span, (5, 21));
    }

    #[test]
    fn pasv_reply_numbers_are_found_inside_parentheses() {
        let l = b"227 Entering Passive Mode (192,168,1,10,195,80).\r\n";
        let a = parse_line(l, true).unwrap();
        assert_eq!(a.port, 50000);
        assert_eq!(&l[a.span.0..a.span.1], b"192,168,1,10,195,80");
        let r = a.render(Endpoint::new(Ipv4Addr::new(203, 0, 113, 1), 50001));
        assert_eq!(r, "203,0,113,1,195,81");
    }

    #[test]
    fn eprt_and_epsv_round_trip() {
        let a = parse_line(b"EPRT |1|192.168.1.10|6000|\r\n", false).unwrap();
        assert_eq!(
            (a.addr, a.port),
            (Some(Ipv4Addr::new(192, 168, 1, 10)), 6000)
        );
        assert_eq!(
            a.render(Endpoint::new(Ipv4Addr::new(203, 0, 113, 1), 6001)),
            "|1|203.0.113.1|6001|"
        );
        let e = parse_line(b"229 Entering Extended Passive Mode (|||6446|)\r\n", true).unwrap();
        assert_eq!((e.addr, e.port), (None, 6446));
        assert_eq!(
            e.render(Endpoint::new(Ipv4Addr::UNSPECIFIED, 7000)),
            "|||7000|"
        );
    }

    #[test]
    fn garbage_is_not_an_address() {
        for l in [
            &b"PORT 1,2,3\r\n"[..],
            b"PORT 999,1,1,1,1,1\r\n",
            b"EPRT |2|::1|5|\r\n",
            b"229 (||x|)\r\n",
            b"227 no numbers\r\n",
            b"PORT \xff\xfe\r\n",
        ] {
            assert!(parse_line(l, l.starts_with(b"22")).is_none(), "{l:?}");
        }
    }
}
