//! IP fragments through the engine, as the profile's [`FragmentHandling`]
//! says: dropped, translated one by one (RFC 4787 REQ-14), or reassembled
//! first (Linux's nf_defrag_ipv4). The queues themselves are
//! [`crate::defrag`].

use super::*;
use crate::config::FragmentHandling;
use crate::defrag::{Added, FragHeader, Released};
use crate::trace::FragmentEvent;

impl NatEngine {
    /// A fragment: `p` is its parse (a first fragment) or the parse error
    /// a later fragment gives ([`DropReason::Fragment`]).
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    pub(super) fn fragment<R: Routes + ?Sized, T: TraceSink>(
        &mut self,
        now: Instant,
        ingress: IfaceId,
        frame: &mut Vec<u8>,
        p: Result<Parsed, DropReason>,
        h: u64,
        routes: &R,
        trace: &mut T,
    ) -> Verdict {
        let proto = p.as_ref().map_or(Proto::Other(0), |p| p.flow.proto);
        let Some(fh) = FragHeader::read(frame, ingress) else {
            return self.drop(proto, DropReason::BadIpHeader, trace);
        };
        match self.cfg.behaviour.fragments {
            FragmentHandling::Drop => self.drop(proto, DropReason::Fragment, trace),
            FragmentHandling::Reassemble => {
                self.reassemble(now, ingress, frame, &fh, routes, trace)
            }
            FragmentHandling::Translate => match p {
                Ok(p) => self.first_fragment(now, ingress, frame, p, h, &fh, routes, trace),
                Err(_) => self.later_fragment(now, frame, &fh, proto, trace),
            },
        }
    }

    /// Linux: hold every fragment until the datagram is whole, then
    /// translate the whole datagram as any packet.
    fn reassemble<R: Routes + ?Sized, T: TraceSink>(
        &mut self,
        now: Instant,
        ingress: IfaceId,
        frame: &mut Vec<u8>,
        fh: &FragHeader,
        routes: &R,
        trace: &mut T,
    ) -> Verdict {
        let proto = Proto::from_ip_number(fh.key.proto);
        match self.frags.collect(now, fh, frame) {
            Err(reason) => self.drop(proto, reason, trace),
            Ok(Added::Held { held }) => self.held(fh, held, trace),
            Ok(Added::Complete {
                frame: whole,
                fragments,
                max_size,
            }) => {
                trace.step(NatStep::Fragment {
                    event: FragmentEvent::Reassembled {
                        fragments,
                        len: (whole.len() - fh.l3) as u16,
                    },
                });
                *frame = whole;
                self.refragment = Some(max_size);
                let p = Parsed::parse(frame);
                let h = p.as_ref().map_or(0, |p| self.table.hash_flow(&p.flow));
                self.process_whole(now, ingress, frame, p, h, routes, trace)
            }
        }
    }

    /// RFC 4787 REQ-14: translate the first fragment as any packet, keep
    /// its rewrite for the fragments behind it, and release those that
    /// arrived before it.
    #[allow(clippy::too_many_arguments)]
    fn first_fragment<R: Routes + ?Sized, T: TraceSink>(
        &mut self,
        now: Instant,
        ingress: IfaceId,
        frame: &mut Vec<u8>,
        p: Parsed,
        h: u64,
        fh: &FragHeader,
        routes: &R,
        trace: &mut T,
    ) -> Verdict {
        let v = self.process_whole(now, ingress, frame, Ok(p), h, routes, trace);
        let follow = match v {
            Verdict::Forward { .. } | Verdict::Local => v,
            // Answered or refused: the rest of the datagram goes nowhere.
            Verdict::Reply { .. } => Verdict::Drop(DropReason::Fragment),
            Verdict::Drop(_) | Verdict::Held => v,
        };
        let (src, dst) = if matches!(v, Verdict::Reply { .. }) {
            (p.flow.src.addr, p.flow.dst.addr)
        } else {
            frame::addrs(frame, p.l3)
        };
        self.frags.follow(now, fh.key, src, dst, follow);
        let waiting = self.frags.take(&fh.key);
        if !waiting.is_empty() {
            trace.step(NatStep::Fragment {
                event: FragmentEvent::Released {
                    count: waiting.len() as u16,
                },
            });
        }
        for mut f in waiting {
            let v = match follow {
                Verdict::Drop(reason) => {
                    let _ = self.drop(p.flow.proto, reason, trace);
                    continue;
                }
                v => v,
            };
            frame::set_addrs(&mut f, fh.l3, src, dst);
            self.stats.proto_mut(p.flow.proto).translated += 1;
            self.frags.release(Released {
                ingress,
                frame: f,
                verdict: v,
            });
        }
        v
    }

    /// A fragment behind the first: rewritten as the first was, or held
    /// until the first comes.
    fn later_fragment<T: TraceSink>(
        &mut self,
        now: Instant,
        frame: &mut [u8],
        fh: &FragHeader,
        proto: Proto,
        trace: &mut T,
    ) -> Verdict {
        let proto = match proto {
            Proto::Other(0) => Proto::from_ip_number(fh.key.proto),
            p => p,
        };
        match self.frags.followed(now, &fh.key) {
            Some(f) => match f.verdict {
                Verdict::Drop(reason) => self.drop(proto, reason, trace),
                v => {
                    frame::set_addrs(frame, fh.l3, f.src, f.dst);
                    self.stats.proto_mut(proto).translated += 1;
                    trace.step(NatStep::Fragment {
                        event: FragmentEvent::Followed {
                            offset: fh.offset as u16,
                        },
                    });
                    v
                }
            },
            None => match self.frags.hold(now, fh, frame) {
                Err(reason) => self.drop(proto, reason, trace),
                Ok(held) => self.held(fh, held, trace),
            },
        }
    }

    fn held<T: TraceSink>(&mut self, fh: &FragHeader, held: u16, trace: &mut T) -> Verdict {
        trace.step(NatStep::Fragment {
            event: FragmentEvent::Held {
                offset: fh.offset as u16,
                held,
            },
        });
        Verdict::Held
    }

    /// The next fragment the engine held and has now translated (RFC 4787
    /// REQ-14: a later fragment that arrived before its first). Send each
    /// as its verdict says, after the frame whose `process` released it.
    pub fn take_released(&mut self) -> Option<Released> {
        self.frags.take_released()
    }

    /// After a `process` that reassembled a datagram (the `reassemble`
    /// handling): the IP length of its largest fragment. The router cuts
    /// the datagram to this size or the egress MTU, whichever is smaller,
    /// as Linux's ip_do_fragment does with `frag_max_size`.
    pub fn take_refragment_size(&mut self) -> Option<u16> {
        self.refragment.take()
    }
}
