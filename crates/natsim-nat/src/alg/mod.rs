//! Application-level gateways (ALGs): protocols that carry addresses in
//! their payload, which plain header NAT leaves wrong.
//!
//! ## Model
//! * A helper is attached to a TCP connection when it is created, chosen
//!   by the rule that translated it ([`AlgConfig::rules`]) or by the
//!   server's well-known port ([`AlgConfig::ports`]: 135 for the DCE/RPC
//!   endpoint mapper, 21 for FTP). Only translated connections get one:
//!   an untranslated connection carries no address the ALG could fix.
//! * The helper sees each direction's payload bytes exactly once and in
//!   order (`stream`). It returns edits (stream offset, old length,
//!   replacement) and may open *pinholes* (`expect`): expectations that
//!   admit the related connection from the peer, with a timeout.
//! * Edits that change length shift later sequence numbers; `stream`
//!   keeps the edit log and maps SEQ, ACK and SACK both ways, so each TCP
//!   side sees a consistent byte stream (Linux nf_nat_seqadj).
//! * A unit the helper must see whole (an EPM tower, an FTP command line)
//!   that ends mid-segment is cut off at its start: the segment goes out
//!   trimmed and the sender retransmits the rest, now with the whole unit.
//!   A segment beyond a gap is dropped for the same reason: an inspected
//!   connection passes the NAT strictly in order. Both cost the sender a
//!   retransmission, never a corrupted stream.
//!
//! ## Hostile input
//! Malformed payloads (wrong lengths, truncated towers, absurd floor
//! counts) are handled by [`AlgPolicy`]: `PassThrough` (default) stops
//! inspecting that direction and forwards the bytes unmodified; `Drop`
//! drops the segment and every later one of that direction. Authenticated
//! DCE/RPC PDUs (auth_length > 0) are never modified: the rewrite would
//! break their signature. Each decision is an [`AlgEvent`] in the trace.

pub(crate) mod conn;
pub mod epm;
pub(crate) mod expect;
pub mod ftp;
pub(crate) mod helper;
pub(crate) mod segment;
pub(crate) mod stream;

use crate::flow::{Endpoint, Proto};
use crate::time::Duration;
use core::fmt;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// The helpers natsim ships.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlgKind {
    /// DCE/RPC endpoint mapper (MS-RPC, TCP 135): rewrites protocol
    /// towers in `ept_map`/`ept_lookup` responses.
    Epm,
    /// FTP control connection: PORT, EPRT, 227 and 229 (RFC 959, 2428).
    Ftp,
}

impl AlgKind {
    /// The server port the helper is bound to by default.
    pub const fn well_known_port(self) -> u16 {
        match self {
            AlgKind::Epm => 135,
            AlgKind::Ftp => 21,
        }
    }
    pub const fn name(self) -> &'static str {
        match self {
            AlgKind::Epm => "EPM ALG",
            AlgKind::Ftp => "FTP ALG",
        }
    }
    /// Parses `epm`, `msrpc`, `dcerpc` or `ftp`.
    pub fn by_name(s: &str) -> Option<AlgKind> {
        match s.to_ascii_lowercase().as_str() {
            "epm" | "msrpc" | "ms-rpc" | "dcerpc" => Some(AlgKind::Epm),
            "ftp" => Some(AlgKind::Ftp),
            _ => None,
        }
    }
}

impl fmt::Display for AlgKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a helper does with a payload it cannot parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum AlgPolicy {
    /// Stop inspecting that direction; forward bytes unmodified.
    #[default]
    PassThrough,
    /// Drop the offending segment and the rest of that direction.
    Drop,
}

/// Which helpers run, and their timeouts. Empty by default: like Linux
/// since 4.7, no helper is attached unless configured.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AlgConfig {
    /// Helper by server port (the translated destination port).
    pub ports: BTreeMap<u16, AlgKind>,
    /// Helper by the name of the rule that translated the connection.
    pub rules: BTreeMap<String, AlgKind>,
    /// How long an EPM pinhole stays open (reusable until then).
    pub epm_pinhole_timeout: Option<Duration>,
    /// How long an FTP data expectation waits (used once).
    pub ftp_expect_timeout: Option<Duration>,
    pub policy: AlgPolicy,
}

impl AlgConfig {
    /// Default EPM pinhole lifetime (commercial ALGs use 2–5 minutes).
    pub const EPM_PINHOLE: Duration = Duration::from_secs(300);
    /// nf_conntrack_ftp's expectation timeout.
    pub const FTP_EXPECT: Duration = Duration::from_secs(300);

    /// Binds `kind` to its well-known port.
    pub fn enable(&mut self, kind: AlgKind) {
        self.ports.insert(kind.well_known_port(), kind);
    }
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty() && self.rules.is_empty()
    }
    pub(crate) fn pinhole_timeout(&self, kind: AlgKind) -> Duration {
        match kind {
            AlgKind::Epm => self.epm_pinhole_timeout.unwrap_or(Self::EPM_PINHOLE),
            AlgKind::Ftp => self.ftp_expect_timeout.unwrap_or(Self::FTP_EXPECT),
        }
    }
}

/// Why a helper left bytes alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlgPass {
    /// The payload broke the protocol's framing; inspection stopped.
    Malformed { what: &'static str },
    /// An authenticated or sealed DCE/RPC PDU.
    Authenticated,
    /// The address in the payload is not the inside host's, so the peer
    /// can reach it as it is.
    NotInside { addr: Ipv4Addr },
    /// No external port was free for the pinhole.
    NoFreePort,
    /// A unit larger than the helper inspects (towers > 1 KiB, lines > 512 B).
    TooLarge,
    /// A field split across segments that could not be held back.
    Split,
}

impl fmt::Display for AlgPass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AlgPass::Malformed { what } => {
                write!(f, "malformed payload ({what}); passed unmodified")
            }
            AlgPass::Authenticated => f.write_str("authenticated PDU; left unmodified"),
            AlgPass::NotInside { addr } => {
                write!(
                    f,
                    "payload names {addr}, not the inside host; left unmodified"
                )
            }
            AlgPass::NoFreePort => {
                f.write_str("no free external port for a pinhole; left unmodified")
            }
            AlgPass::TooLarge => f.write_str("unit too large to inspect; passed unmodified"),
            AlgPass::Split => f.write_str("field split across segments; passed unmodified"),
        }
    }
}

/// The FTP command or reply a rewrite concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FtpVerb {
    Port,
    Eprt,
    /// 227 Entering Passive Mode.
    Pasv227,
    /// 229 Entering Extended Passive Mode.
    Epsv229,
}

impl fmt::Display for FtpVerb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FtpVerb::Port => "PORT",
            FtpVerb::Eprt => "EPRT",
            FtpVerb::Pasv227 => "227",
            FtpVerb::Epsv229 => "229",
        })
    }
}

/// One thing a helper did, as trace data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlgEvent {
    /// The helper was attached to a new connection.
    Attached,
    /// A protocol tower's floors 4 (TCP port) and 5 (IPv4) were rewritten.
    TowerRewritten { from: Endpoint, to: Endpoint },
    /// An FTP command or reply was rewritten; `delta` is the length change.
    FtpRewritten {
        verb: FtpVerb,
        from: Endpoint,
        to: Endpoint,
        delta: i32,
    },
    /// An expectation now admits `peer` → `external`, forwarded to `internal`.
    PinholeOpened {
        proto: Proto,
        peer: Ipv4Addr,
        external: Endpoint,
        internal: Endpoint,
        secs: u32,
    },
    /// Bytes were left alone, and why.
    Passed { why: AlgPass },
    /// A segment was cut before an incomplete unit (`kept` bytes went out).
    Trimmed { kept: u32 },
    /// A segment beyond a gap (or after a trim) was dropped.
    OutOfOrder,
    /// Malformed input under [`AlgPolicy::Drop`].
    Blocked,
    /// The rewrite would grow the IP packet to `total` bytes, past the
    /// 65535 its total-length field can carry; the segment was dropped.
    TooLong { total: u32 },
}

impl fmt::Display for AlgEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AlgEvent::Attached => f.write_str("attached"),
            AlgEvent::TowerRewritten { from, to } => write!(
                f,
                "rewrote tower floor 5 {} → {} and floor 4 port {} → {}",
                from.addr, to.addr, from.port, to.port
            ),
            AlgEvent::FtpRewritten { verb, from, to, delta } => {
                write!(f, "rewrote {verb} {from} → {to} (length {delta:+})")
            }
            AlgEvent::PinholeOpened {
                proto,
                peer,
                external,
                internal,
                secs,
            } => write!(
                f,
                "opened pinhole {proto}/{} for {secs}s: {peer} → {external} forwarded to {internal}",
                external.port
            ),
            AlgEvent::Passed { why } => write!(f, "{why}"),
            AlgEvent::Trimmed { kept } => write!(
                f,
                "cut a segment after {kept} bytes, before an incomplete unit; the sender retransmits the rest"
            ),
            AlgEvent::OutOfOrder => f.write_str("dropped an out-of-order segment (inspected streams pass in order)"),
            AlgEvent::Blocked => f.write_str("malformed payload; dropped (policy drop)"),
            AlgEvent::TooLong { total } => write!(
                f,
                "the rewrite would make a {total}-byte IP packet (at most 65535); dropped"
            ),
        }
    }
}
