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

use super::helper::{Helper, Out, Pinholes, Side};
use super::{AlgEvent, AlgPass};
use crate::wire::dcerpc::Header;
use stub::Stub;

mod stub;
pub use crate::wire::dcerpc::{
    parse_tower, TowerEndpoint, EPM_UUID_WIRE, MAX_FLOORS, OP_EPT_LOOKUP, OP_EPT_MAP,
    PFC_FIRST_FRAG, PFC_LAST_FRAG, PTYPE_ALTER_CONTEXT, PTYPE_BIND, PTYPE_REQUEST, PTYPE_RESPONSE,
};
use std::collections::{BTreeMap, BTreeSet};

/// Towers longer than this are not inspected (an ncacn_ip_tcp tower is 75).
pub const MAX_TOWER: u32 = 1024;
/// Most towers or entries one response may declare.
pub(super) const MAX_ITEMS: u32 = 4096;
/// Largest bind/request prefix collected.
const MAX_COLLECT: usize = 4096;
/// Most outstanding calls remembered.
const MAX_CALLS: usize = 64;

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

/// The EPM helper of one connection: what both directions share, and each
/// direction's parser.
#[derive(Clone, Debug, Default)]
pub(crate) struct EpmHelper {
    shared: EpmShared,
    dirs: Box<[EpmDir; 2]>,
}

impl Helper for EpmHelper {
    fn feed(
        &mut self,
        d: usize,
        side: &Side,
        off: u64,
        bytes: &[u8],
        holes: &mut dyn Pinholes,
        out: &mut Out,
    ) -> Result<(), &'static str> {
        self.dirs[d].feed(&mut self.shared, side, off, bytes, holes, out)
    }
    fn hold(&self, d: usize, _: &Side) -> Option<u64> {
        self.dirs[d].in_tower()
    }
    fn rewind(&mut self, d: usize) {
        self.dirs[d].rewind();
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
        let h = Header::parse(&self.hdr)?;
        let (ptype, flags, call_id, auth_len) = (h.ptype, h.flags, h.call_id, h.auth_len);
        let body_len = h.body_len();
        let trailer = body_len - h.stub_len();
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
