//! The DCE/RPC endpoint-mapper helper (MS-RPC over TCP 135).
//!
//! A streaming parser over each direction's bytes: the connection-oriented
//! PDU framer (16-byte common header, `frag_length`), then per PDU type:
//! * `bind` / `alter_context` (client): remembers which presentation
//!   contexts carry the EPM interface (e1af8308-…, v3.0);
//! * `request` (client): remembers call_id → opnum for EPM contexts;
//! * `response` (server): for `ept_lookup` (2) and `ept_map` (3), walks the
//!   NDR stub across fragments and finds each protocol tower; a tower whose
//!   floor 5 names the inside server gets floor 5 set to the address the
//!   client dialled and floor 4 set to a pinhole's external port.
//!
//! The rewrite never changes a length (4 bytes for 4, 2 for 2), so no
//! sequence adjustment is needed. Byte layouts: SPEC.md §5, DCE 1.1 RPC
//! ch. 12 (PDUs) and appendix L (towers).

use super::conn::{Out, Pinholes, Side};
use super::stream::Edit;
use super::{AlgEvent, AlgPass};
use crate::flow::Endpoint;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// EPM interface UUID e1af8308-5d1f-11c9-91a4-08002b14a0fa in wire order
/// (first three fields little-endian).
pub const EPM_UUID_WIRE: [u8; 16] = [
    0x08, 0x83, 0xaf, 0xe1, 0x1f, 0x5d, 0xc9, 0x11, 0x91, 0xa4, 0x08, 0x00, 0x2b, 0x14, 0xa0, 0xfa,
];

pub const PTYPE_REQUEST: u8 = 0;
pub const PTYPE_RESPONSE: u8 = 2;
pub const PTYPE_BIND: u8 = 11;
pub const PTYPE_ALTER_CONTEXT: u8 = 14;
pub const PFC_FIRST_FRAG: u8 = 0x01;
pub const PFC_LAST_FRAG: u8 = 0x02;
pub const OP_EPT_LOOKUP: u16 = 2;
pub const OP_EPT_MAP: u16 = 3;

/// Towers longer than this are not inspected (an ncacn_ip_tcp tower is 75).
pub const MAX_TOWER: u32 = 1024;
/// Most floors a tower may declare.
pub const MAX_FLOORS: u16 = 16;
/// Most towers or entries one response may declare.
const MAX_ITEMS: u32 = 4096;
/// Largest bind/request prefix collected.
const MAX_COLLECT: usize = 4096;
/// Most outstanding calls remembered.
const MAX_CALLS: usize = 64;

/// A protocol tower's TCP/IP endpoint, as read by [`parse_tower`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TowerEndpoint {
    pub floors: u16,
    /// Floor 4: TCP port (big-endian on the wire).
    pub port: Option<u16>,
    /// Floor 5: IPv4 address.
    pub addr: Option<Ipv4Addr>,
    /// The first floor's interface UUID (wire order), if present.
    pub interface: Option<[u8; 16]>,
}

/// Parses a whole tower (`twr_t` octets: floor count, then floors).
pub fn parse_tower(b: &[u8]) -> Result<TowerEndpoint, &'static str> {
    let rd16 = |at: usize| -> Result<u16, &'static str> {
        b.get(at..at + 2)
            .map(|s| u16::from_le_bytes([s[0], s[1]]))
            .ok_or("truncated tower")
    };
    let floors = rd16(0)?;
    if floors == 0 || floors > MAX_FLOORS {
        return Err("absurd floor count");
    }
    let mut at = 2;
    let mut t = TowerEndpoint {
        floors,
        port: None,
        addr: None,
        interface: None,
    };
    for i in 0..floors {
        let lhs_len = usize::from(rd16(at)?);
        let lhs = b.get(at + 2..at + 2 + lhs_len).ok_or("truncated tower")?;
        at += 2 + lhs_len;
        let rhs_len = usize::from(rd16(at)?);
        let rhs = b.get(at + 2..at + 2 + rhs_len).ok_or("truncated tower")?;
        at += 2 + rhs_len;
        match (lhs.first(), rhs.len()) {
            (Some(0x0d), _) if i == 0 && lhs.len() >= 17 => {
                let mut u = [0; 16];
                u.copy_from_slice(&lhs[1..17]);
                t.interface = Some(u);
            }
            (Some(0x07), 2) => t.port = Some(u16::from_be_bytes([rhs[0], rhs[1]])),
            (Some(0x09), 4) => t.addr = Some(Ipv4Addr::new(rhs[0], rhs[1], rhs[2], rhs[3])),
            _ => {}
        }
    }
    Ok(t)
}

/// Connection-wide state shared by both directions.
#[derive(Clone, Debug, Default)]
pub(crate) struct EpmShared {
    contexts: BTreeSet<u16>,
    calls: BTreeMap<u32, u16>,
}

/// Where the current PDU's body bytes go.
#[derive(Clone, Debug)]
enum Body {
    /// bind / alter_context / request: collect a bounded prefix.
    Collect(Vec<u8>),
    /// A response whose first 8 body bytes are still being skipped.
    ResponsePrefix,
    /// A response's stub bytes go to the stub parser.
    Stub,
    /// Nothing to learn here.
    Skip,
}

#[derive(Clone, Debug)]
struct Pdu {
    ptype: u8,
    flags: u8,
    call_id: u32,
    /// Body bytes consumed so far (after the 16-byte header).
    pos: u32,
    body_len: u32,
    /// Body offset where the stub ends (auth trailer excluded).
    stub_end: u32,
    body: Body,
}

/// One direction's parser.
#[derive(Clone, Debug, Default)]
pub(crate) struct EpmDir {
    hdr: [u8; 16],
    hdr_have: u8,
    pdu: Option<Pdu>,
    stub: Option<Stub>,
    pub dead: bool,
    /// The parser as it was where the current tower began, and that
    /// stream offset: a trim rewinds to it.
    snapshot: Option<(u64, Box<EpmDir>)>,
}

/// NDR walker over an `ept_map` / `ept_lookup` response stub.
#[derive(Clone, Debug)]
struct Stub {
    lookup: bool,
    /// Stub offset (for NDR alignment).
    pos: u32,
    st: St,
    word: [u8; 4],
    word_have: u8,
    /// Items left in the current array.
    left: u32,
    /// Non-null tower pointers seen.
    towers: u32,
    tower: Option<Tower>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    Skip(u32, Next),
    Num,
    Max,
    Offset,
    Actual,
    Ref,
    EntRef,
    AnnOffset,
    AnnCount,
    TowerLen,
    TowerMax,
    TowerBytes,
    Status,
    Done,
}

/// What follows a fixed-size skip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    Num,
    EntRef,
    AfterAnnotation,
}

#[derive(Clone, Debug)]
struct Tower {
    len: u32,
    have: u32,
    bytes: Vec<u8>,
    /// Stream offset of each tower byte (fragment headers may interleave).
    offs: Vec<u64>,
}

impl Stub {
    fn new(lookup: bool) -> Stub {
        Stub {
            lookup,
            pos: 0,
            st: St::Skip(20, Next::Num),
            word: [0; 4],
            word_have: 0,
            left: 0,
            towers: 0,
            tower: None,
        }
    }

    fn aligned_word(&self) -> bool {
        matches!(
            self.st,
            St::Skip(16, Next::EntRef)
                | St::Num
                | St::Max
                | St::Offset
                | St::Actual
                | St::Ref
                | St::EntRef
                | St::AnnOffset
                | St::AnnCount
                | St::TowerLen
                | St::TowerMax
                | St::Status
        )
    }

    /// In the middle of a tower (a trim must cut before it).
    fn in_tower(&self) -> bool {
        self.tower.is_some()
    }

    /// The next byte begins a tower (its length word).
    fn tower_starts_here(&self) -> bool {
        self.st == St::TowerLen && self.word_have == 0 && self.pos.is_multiple_of(4)
    }

    fn after_towers_header(&mut self) {
        self.left = self.towers;
        self.st = if self.left == 0 {
            St::Status
        } else {
            St::TowerLen
        };
    }

    /// Consumes one stub byte at stream offset `off`.
    fn byte(
        &mut self,
        b: u8,
        off: u64,
        side: &Side,
        holes: &mut dyn Pinholes,
        out: &mut Out,
    ) -> Result<(), &'static str> {
        let pos = self.pos;
        self.pos = self.pos.wrapping_add(1);
        if self.aligned_word() && self.word_have == 0 && !pos.is_multiple_of(4) {
            return Ok(()); // NDR alignment padding
        }
        match self.st {
            St::Skip(n, next) => {
                self.st = if n > 1 {
                    St::Skip(n - 1, next)
                } else {
                    match next {
                        Next::Num => St::Num,
                        Next::EntRef => St::EntRef,
                        Next::AfterAnnotation => self.next_entry(),
                    }
                };
                return Ok(());
            }
            St::TowerBytes => {
                let t = self.tower.as_mut().ok_or("tower state")?;
                t.bytes.push(b);
                t.offs.push(off);
                t.have += 1;
                if t.have == t.len {
                    let t = self.tower.take().ok_or("tower state")?;
                    tower_done(&t, side, holes, out);
                    self.left -= 1;
                    self.st = if self.left == 0 {
                        St::Status
                    } else {
                        St::TowerLen
                    };
                }
                return Ok(());
            }
            St::Done => return Ok(()),
            _ => {}
        }
        if self.st == St::TowerLen && self.word_have == 0 {
            self.tower = Some(Tower {
                len: 0,
                have: 0,
                bytes: Vec::new(),
                offs: Vec::new(),
            });
        }
        self.word[usize::from(self.word_have)] = b;
        self.word_have += 1;
        if self.word_have < 4 {
            return Ok(());
        }
        self.word_have = 0;
        let w = u32::from_le_bytes(self.word);
        match self.st {
            St::Num => self.st = St::Max,
            St::Max => {
                if w > MAX_ITEMS {
                    return Err("absurd array size");
                }
                self.st = St::Offset;
            }
            St::Offset => {
                if w != 0 {
                    return Err("non-zero array offset");
                }
                self.st = St::Actual;
            }
            St::Actual => {
                if w > MAX_ITEMS {
                    return Err("absurd array size");
                }
                self.left = w;
                if self.lookup {
                    self.st = if w == 0 {
                        St::Status
                    } else {
                        St::Skip(16, Next::EntRef)
                    };
                } else if w == 0 {
                    self.st = St::Status;
                } else {
                    self.st = St::Ref;
                }
            }
            St::Ref => {
                if w != 0 {
                    self.towers += 1;
                }
                self.left -= 1;
                if self.left == 0 {
                    self.after_towers_header();
                }
            }
            St::EntRef => {
                if w != 0 {
                    self.towers += 1;
                }
                self.st = St::AnnOffset;
            }
            St::AnnOffset => self.st = St::AnnCount,
            St::AnnCount => {
                if w > 64 {
                    return Err("annotation longer than 64");
                }
                self.st = if w == 0 {
                    self.next_entry()
                } else {
                    St::Skip(w, Next::AfterAnnotation)
                };
            }
            St::TowerLen => {
                if w > MAX_TOWER {
                    return Err("tower too large");
                }
                if w < 2 {
                    return Err("truncated tower");
                }
                if let Some(t) = self.tower.as_mut() {
                    t.len = w;
                }
                self.st = St::TowerMax;
            }
            St::TowerMax => {
                let len = self.tower.as_ref().map_or(0, |t| t.len);
                if w != len {
                    return Err("tower length mismatch");
                }
                self.st = St::TowerBytes;
            }
            St::Status => self.st = St::Done,
            _ => {}
        }
        Ok(())
    }

    fn next_entry(&mut self) -> St {
        self.left -= 1;
        if self.left == 0 {
            self.after_towers_header();
            self.st
        } else {
            St::Skip(16, Next::EntRef)
        }
    }
}

/// Rewrites a finished tower if it names the inside server.
fn tower_done(t: &Tower, side: &Side, holes: &mut dyn Pinholes, out: &mut Out) {
    let tower = match parse_tower(&t.bytes) {
        Ok(x) => x,
        Err(what) => {
            out.events.push(AlgEvent::Passed {
                why: AlgPass::Malformed { what },
            });
            return;
        }
    };
    let (Some(port), Some(addr)) = (tower.port, tower.addr) else {
        return; // not ncacn_ip_tcp
    };
    if addr != side.inside {
        out.events.push(AlgEvent::Passed {
            why: AlgPass::NotInside { addr },
        });
        return;
    }
    let internal = Endpoint::new(addr, port);
    let Some(external) = holes.open(internal, out) else {
        out.events.push(AlgEvent::Passed {
            why: AlgPass::NoFreePort,
        });
        return;
    };
    // Locate the rhs bytes of floors 4 and 5 by walking the floors again.
    let mut at = 2usize;
    let floors = usize::from(tower.floors);
    for _ in 0..floors {
        let lhs_len = usize::from(u16::from_le_bytes([t.bytes[at], t.bytes[at + 1]]));
        let proto = t.bytes[at + 2];
        at += 2 + lhs_len;
        let rhs_len = usize::from(u16::from_le_bytes([t.bytes[at], t.bytes[at + 1]]));
        let rhs = at + 2;
        at = rhs + rhs_len;
        let new: Option<Vec<u8>> = match (proto, rhs_len) {
            (0x07, 2) if external.port != port => Some(external.port.to_be_bytes().to_vec()),
            (0x09, 4) => Some(external.addr.octets().to_vec()),
            _ => None,
        };
        if let Some(new) = new {
            edit_bytes(&t.offs[rhs..rhs + rhs_len], &new, out);
        }
    }
    out.events.push(AlgEvent::TowerRewritten {
        from: internal,
        to: external,
    });
}

/// Same-length edits at possibly non-contiguous offsets, one per run.
fn edit_bytes(offs: &[u64], new: &[u8], out: &mut Out) {
    let mut i = 0;
    while i < offs.len() {
        let mut j = i + 1;
        while j < offs.len() && offs[j] == offs[j - 1] + 1 {
            j += 1;
        }
        out.edits.push(Edit {
            off: offs[i],
            old_len: (j - i) as u32,
            new: new[i..j].to_vec(),
        });
        i = j;
    }
}

impl EpmDir {
    /// Feeds in-order bytes starting at stream offset `off`.
    pub(crate) fn feed(
        &mut self,
        shared: &mut EpmShared,
        side: &Side,
        off: u64,
        bytes: &[u8],
        holes: &mut dyn Pinholes,
        out: &mut Out,
    ) -> Result<(), &'static str> {
        for (i, &b) in bytes.iter().enumerate() {
            if self.dead {
                return Ok(());
            }
            self.byte(shared, side, b, off + i as u64, holes, out)?;
        }
        Ok(())
    }

    /// Where a trim must cut, if the segment ended inside a tower.
    pub(crate) fn in_tower(&self) -> Option<u64> {
        if self.stub.as_ref().is_some_and(Stub::in_tower) {
            self.snapshot.as_ref().map(|(at, _)| *at)
        } else {
            None
        }
    }

    /// Rewinds to the start of the current tower (after a trim there).
    pub(crate) fn rewind(&mut self) {
        if let Some((_, snap)) = self.snapshot.take() {
            *self = *snap;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn byte(
        &mut self,
        shared: &mut EpmShared,
        side: &Side,
        b: u8,
        off: u64,
        holes: &mut dyn Pinholes,
        out: &mut Out,
    ) -> Result<(), &'static str> {
        let tower_begins = self
            .pdu
            .as_ref()
            .is_some_and(|p| matches!(p.body, Body::Stub) && p.pos < p.stub_end)
            && self.stub.as_ref().is_some_and(Stub::tower_starts_here);
        if tower_begins {
            let mut snap = self.clone();
            snap.snapshot = None;
            self.snapshot = Some((off, Box::new(snap)));
        }
        let Some(pdu) = self.pdu.as_mut() else {
            self.hdr[usize::from(self.hdr_have)] = b;
            self.hdr_have += 1;
            if self.hdr_have == 16 {
                self.hdr_have = 0;
                self.start_pdu(shared, side, out)?;
            }
            return Ok(());
        };
        let pos = pdu.pos;
        pdu.pos += 1;
        match &mut pdu.body {
            Body::Collect(v) => {
                if v.len() < MAX_COLLECT {
                    v.push(b);
                }
            }
            Body::ResponsePrefix => {
                if pdu.pos == 8 {
                    pdu.body = Body::Stub;
                }
            }
            Body::Stub => {
                if pos < pdu.stub_end {
                    if let Some(stub) = self.stub.as_mut() {
                        stub.byte(b, off, side, holes, out)?;
                    }
                }
            }
            Body::Skip => {}
        }
        if pdu.pos == pdu.body_len {
            let pdu = self.pdu.take().ok_or("pdu state")?;
            self.end_pdu(shared, pdu);
        }
        Ok(())
    }

    fn start_pdu(
        &mut self,
        shared: &mut EpmShared,
        side: &Side,
        out: &mut Out,
    ) -> Result<(), &'static str> {
        let h = &self.hdr;
        if h[0] != 5 || h[1] > 1 {
            return Err("not DCE/RPC version 5");
        }
        if h[4] & 0xf0 != 0x10 {
            return Err("big-endian data representation");
        }
        let frag_len = u32::from(u16::from_le_bytes([h[8], h[9]]));
        let auth_len = u32::from(u16::from_le_bytes([h[10], h[11]]));
        if frag_len < 16 {
            return Err("frag_length shorter than the header");
        }
        let body_len = frag_len - 16;
        let trailer = if auth_len > 0 { auth_len + 8 } else { 0 };
        if trailer > body_len {
            return Err("auth_length exceeds the PDU");
        }
        let (ptype, flags) = (h[2], h[3]);
        let call_id = u32::from_le_bytes([h[12], h[13], h[14], h[15]]);
        let body = match ptype {
            PTYPE_BIND | PTYPE_ALTER_CONTEXT | PTYPE_REQUEST if !side.server_to_client => {
                Body::Collect(Vec::new())
            }
            PTYPE_RESPONSE if side.server_to_client => {
                if flags & PFC_FIRST_FRAG != 0 {
                    self.stub = match shared.calls.get(&call_id) {
                        Some(&OP_EPT_MAP) => Some(Stub::new(false)),
                        Some(&OP_EPT_LOOKUP) => Some(Stub::new(true)),
                        _ => None,
                    };
                }
                if auth_len > 0 && self.stub.is_some() {
                    self.stub = None;
                    out.events.push(AlgEvent::Passed {
                        why: AlgPass::Authenticated,
                    });
                }
                if self.stub.is_some() {
                    Body::ResponsePrefix
                } else {
                    Body::Skip
                }
            }
            _ => Body::Skip,
        };
        let pdu = Pdu {
            ptype,
            flags,
            call_id,
            pos: 0,
            body_len,
            stub_end: body_len - trailer,
            body,
        };
        if body_len == 0 {
            self.end_pdu(shared, pdu);
        } else {
            self.pdu = Some(pdu);
        }
        Ok(())
    }

    fn end_pdu(&mut self, shared: &mut EpmShared, pdu: Pdu) {
        match (pdu.ptype, pdu.body) {
            (PTYPE_BIND | PTYPE_ALTER_CONTEXT, Body::Collect(v)) => learn_contexts(shared, &v),
            (PTYPE_REQUEST, Body::Collect(v))
                if pdu.flags & PFC_FIRST_FRAG != 0 && v.len() >= 8 =>
            {
                let ctx = u16::from_le_bytes([v[4], v[5]]);
                let opnum = u16::from_le_bytes([v[6], v[7]]);
                if shared.contexts.contains(&ctx) {
                    if shared.calls.len() >= MAX_CALLS {
                        shared.calls.pop_first();
                    }
                    shared.calls.insert(pdu.call_id, opnum);
                }
            }
            (PTYPE_RESPONSE, _) if pdu.flags & PFC_LAST_FRAG != 0 => {
                shared.calls.remove(&pdu.call_id);
                self.stub = None;
            }
            _ => {}
        }
    }
}

/// Records the presentation contexts of a bind body that name the EPM.
fn learn_contexts(shared: &mut EpmShared, v: &[u8]) {
    // max_xmit(2) max_recv(2) assoc_group(4) n_ctx(1) reserved(3)
    let Some(&n) = v.get(8) else { return };
    let mut at = 12;
    for _ in 0..n {
        let Some(e) = v.get(at..at + 24) else { return };
        let ctx = u16::from_le_bytes([e[0], e[1]]);
        let n_ts = usize::from(e[2]);
        if e[4..20] == EPM_UUID_WIRE {
            shared.contexts.insert(ctx);
        }
        at += 24 + 20 * n_ts;
    }
}
