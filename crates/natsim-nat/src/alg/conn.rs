//! Per-connection ALG state and the segment driver: stream bookkeeping,
//! feeding the helper, trimming, and rewriting the segment.

use super::epm::EpmHelper;
use super::expect::{Expectation, Expectations};
use super::ftp::FtpHelper;
use super::helper::{Helper, Out, Pinholes, Side};
use super::stream::{Straddle, Stream};
use super::{segment, AlgConfig, AlgEvent, AlgKind, AlgPass, AlgPolicy};
use crate::flow::{Dir, Endpoint, Flow, Proto};
use crate::frame::TcpFlags;
use crate::table::Table;
use crate::time::Instant;
use crate::trace::{ConnId, NatStep, TraceSink};
use crate::verdict::DropReason;
use std::net::Ipv4Addr;

/// Engine state the driver may touch.
pub(crate) struct Env<'a> {
    pub expects: &'a mut Expectations,
    pub table: &'a Table,
    pub local_services: &'a [(Proto, u16)],
    pub cfg: &'a AlgConfig,
    pub now: Instant,
}

struct Opener<'e, 'a> {
    env: &'e mut Env<'a>,
    kind: AlgKind,
    peer: Ipv4Addr,
    face: Ipv4Addr,
}

impl Pinholes for Opener<'_, '_> {
    fn open(&mut self, internal: Endpoint, out: &mut Out) -> Option<Endpoint> {
        let timeout = self.env.cfg.pinhole_timeout(self.kind);
        let expires = self.env.now + timeout;
        let e = Expectation {
            kind: self.kind,
            peer: self.peer,
            internal,
            expires,
            one_shot: self.kind == AlgKind::Ftp,
        };
        let existing = self.env.expects.existing(self.peer, internal, self.face);
        let external = match existing {
            Some(ext) => ext,
            None => {
                // Keep the inside port when it is free (what the client
                // would have used without NAT); otherwise search upwards.
                let free = |port: u16| {
                    let ext = Endpoint::new(self.face, port);
                    !self.env.expects.reserved(ext)
                        && self.env.table.find_external(Proto::Tcp, ext).is_none()
                        && !self.env.local_services.contains(&(Proto::Tcp, port))
                };
                let start = u32::from(internal.port.max(1024));
                let span = 65536 - 1024;
                let port = (0..span)
                    .map(|i| (1024 + (start - 1024 + i) % span) as u16)
                    .find(|&p| free(p))?;
                Endpoint::new(self.face, port)
            }
        };
        self.env.expects.insert(external, e);
        out.events.push(AlgEvent::PinholeOpened {
            proto: Proto::Tcp,
            peer: self.peer,
            external,
            internal,
            secs: u32::try_from(timeout.as_secs()).unwrap_or(u32::MAX),
        });
        Some(external)
    }
}

/// A helper attached to one connection.
#[derive(Debug)]
pub(crate) struct AlgConn {
    pub kind: AlgKind,
    /// Direction whose packets come from the inside host.
    inside_dir: Dir,
    inside: Ipv4Addr,
    /// The address the peer knows the inside host by.
    face: Ipv4Addr,
    peer: Ipv4Addr,
    streams: [Stream; 2],
    helper: Box<dyn Helper>,
    /// Inspection stopped (pass-through) per direction.
    dead: [bool; 2],
    /// Malformed under the drop policy, per direction.
    blocked: [bool; 2],
}

fn idx(d: Dir) -> usize {
    match d {
        Dir::Original => 0,
        Dir::Reply => 1,
    }
}

impl AlgConn {
    /// The helper for a connection first seen as `flow` and translated to
    /// `after`, or `None` when no address in its payload can need fixing.
    pub fn new(kind: AlgKind, flow: Flow, after: Flow, from_inside: bool) -> Option<AlgConn> {
        let (inside_dir, inside, face, peer) = if from_inside && after.src.addr != flow.src.addr {
            (Dir::Original, flow.src.addr, after.src.addr, flow.dst.addr)
        } else if !from_inside && after.dst.addr != flow.dst.addr {
            (Dir::Reply, after.dst.addr, flow.dst.addr, flow.src.addr)
        } else {
            return None;
        };
        let helper: Box<dyn Helper> = match kind {
            AlgKind::Epm => Box::<EpmHelper>::default(),
            AlgKind::Ftp => Box::<FtpHelper>::default(),
        };
        Some(AlgConn {
            kind,
            inside_dir,
            inside,
            face,
            peer,
            streams: Default::default(),
            helper,
            dead: [false; 2],
            blocked: [false; 2],
        })
    }

    /// Whether the helper reads this direction at all.
    fn inspects(&self, dir: Dir) -> bool {
        let from_inside = dir == self.inside_dir;
        match self.kind {
            // Requests (client → server) teach call ids → opnums; only the
            // inside server's answers need rewriting.
            AlgKind::Epm => dir == Dir::Original || from_inside,
            AlgKind::Ftp => from_inside,
        }
    }

    /// Handles one segment of the connection travelling in `dir`, already
    /// header-translated. `Err` means drop it.
    #[allow(clippy::too_many_arguments)]
    pub fn segment<T: TraceSink>(
        &mut self,
        env: &mut Env<'_>,
        conn: ConnId,
        dir: Dir,
        frame: &mut Vec<u8>,
        l3: usize,
        l4: usize,
        end: usize,
        trace: &mut T,
    ) -> Result<(), DropReason> {
        let kind = self.kind;
        let emit = |trace: &mut T, event| trace.step(NatStep::Alg { conn, kind, event });
        let Some(v) = segment::view(frame, l4, end) else {
            return Ok(());
        };
        let (d, o) = (idx(dir), 1 - idx(dir));
        let syn = v.flags.has(TcpFlags::SYN);
        self.streams[d].start(v.seq, syn);
        let data_seq = if syn { v.seq.wrapping_add(1) } else { v.seq };
        let x = self.streams[d].offset_of(data_seq);
        let len = end - v.payload;
        let mut new_payload: Option<Vec<u8>> = None;

        if len > 0 {
            if self.blocked[d] {
                emit(trace, AlgEvent::Blocked);
                return Err(DropReason::AlgBlocked);
            }
            let next = self.streams[d].next;
            if x < 0 || x as u64 > next {
                emit(trace, AlgEvent::OutOfOrder);
                return Err(DropReason::AlgOutOfOrder);
            }
            let x = x as u64;
            let seg_end = x + len as u64;
            let mut keep_end = seg_end;
            if seg_end > next {
                let fresh = (next - x) as usize;
                let mut out = Out::default();
                let mut hold = None;
                if self.inspects(dir) && !self.dead[d] {
                    let side = Side {
                        server_to_client: dir == Dir::Reply,
                        inside: self.inside,
                    };
                    let mut holes = Opener {
                        env,
                        kind,
                        peer: self.peer,
                        face: self.face,
                    };
                    let bytes = &frame[v.payload + fresh..end];
                    let res = self
                        .helper
                        .feed(d, &side, next, bytes, &mut holes, &mut out);
                    hold = self.helper.hold(d, &side);
                    if hold.is_some() {
                        self.helper.rewind(d);
                    }
                    if let Err(what) = res {
                        hold = None;
                        if env.cfg.policy == AlgPolicy::Drop {
                            self.blocked[d] = true;
                            for e in out.events.drain(..) {
                                emit(trace, e);
                            }
                            emit(trace, AlgEvent::Blocked);
                            return Err(DropReason::AlgBlocked);
                        }
                        self.dead[d] = true;
                        out.events.push(AlgEvent::Passed {
                            why: AlgPass::Malformed { what },
                        });
                    }
                }
                let mut new_next = seg_end;
                if let Some(h) = hold.filter(|&h| h < seg_end) {
                    if h - x > 1024 || h < next {
                        // The unit began in bytes already forwarded.
                        self.dead[d] = true;
                        out.events.push(AlgEvent::Passed {
                            why: AlgPass::Split,
                        });
                    } else {
                        new_next = h;
                        keep_end = h;
                        out.edits.retain(|e| e.off < h);
                    }
                }
                self.streams[d].next = new_next;
                self.streams[d].log(out.edits);
                for e in out.events {
                    emit(trace, e);
                }
                if keep_end == x {
                    emit(trace, AlgEvent::Trimmed { kept: 0 });
                    return Err(DropReason::AlgOutOfOrder);
                }
                if keep_end < seg_end {
                    emit(
                        trace,
                        AlgEvent::Trimmed {
                            kept: (keep_end - x) as u32,
                        },
                    );
                }
            }
            if keep_end < seg_end || self.streams[d].touches(x, keep_end) {
                let kept = &frame[v.payload..v.payload + (keep_end - x) as usize];
                match self.streams[d].apply(x, kept) {
                    Ok(p) => new_payload = Some(p),
                    Err(Straddle) => {
                        emit(trace, AlgEvent::OutOfOrder);
                        return Err(DropReason::AlgOutOfOrder);
                    }
                }
            }
        }

        let seq = self.streams[d].map_seq(self.streams[d].offset_of(v.seq));
        let other = &self.streams[o];
        let ack = if v.flags.has(TcpFlags::ACK) && other.started() {
            other.unmap_ack(v.ack)
        } else {
            v.ack
        };
        if seq != v.seq || ack != v.ack || new_payload.is_some() {
            let sack = |edge: u32| {
                if other.started() {
                    other.unmap_ack(edge)
                } else {
                    edge
                }
            };
            segment::rewrite(
                frame,
                l3,
                l4,
                end,
                &v,
                seq,
                ack,
                &sack,
                new_payload.as_deref(),
            );
        }
        Ok(())
    }
}
