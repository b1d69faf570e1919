//! Frames in transit: a node's transmission onto a segment (serialisation
//! and latency, the learning switch, fault rules, held frames), and the
//! per-frame traces their legs are recorded in.

use super::*;

impl Sim {
    /// Adds a fault rule after the existing ones; returns its name (for
    /// [`Sim::remove_fault`] / [`Sim::release`]).
    pub fn add_fault(&mut self, rule: FaultRule) -> String {
        let name = rule.name.clone();
        self.faults.push(rule);
        name
    }

    /// Removes a rule; frames it held are delivered (as [`Sim::release`]).
    pub fn remove_fault(&mut self, name: &str) {
        self.release(name);
    }

    // ----- events -----------------------------------------------------------

    /// Puts a raw frame on the wire of `node`'s interface `iface`, as if its
    /// NIC had sent it (adversarial load, spoofed traffic, replays). The
    /// frame is traced like any other. Out-of-range nodes or interfaces
    /// are ignored.
    pub fn inject(&mut self, node: NodeId, iface: usize, frame: Vec<u8>) {
        if self.attach.get(node.0).is_none_or(|a| iface >= a.len()) {
            return;
        }
        let name = self.names[node.0].clone();
        let t = self.new_trace(&name, &frame, None);
        self.transmit(node.0, iface, frame, t);
    }

    pub(super) fn new_trace(
        &mut self,
        origin: &str,
        frame: &[u8],
        iface_out: Option<String>,
    ) -> Option<u64> {
        if !self.tracing || frame.len() < 14 || u16::from_be_bytes([frame[12], frame[13]]) != 0x0800
        {
            return None;
        }
        let id = self.traces.len() as u64;
        self.traces.push(FrameTrace {
            id,
            at: self.now,
            origin: origin.to_string(),
            summary: summarize(frame),
            hops: vec![Hop {
                at: self.now,
                node: origin.to_string(),
                iface_in: None,
                iface_out,
                steps: vec![Step::Sent],
            }],
            disposition: Disposition::InFlight,
            legs: Vec::new(),
            reply_to: None,
        });
        Some(id)
    }

    pub(super) fn set_reply_to(&mut self, trace: Option<u64>, cause: Option<u64>) {
        if let Some(t) = trace.and_then(|t| self.traces.get_mut(t as usize)) {
            t.reply_to = cause;
        }
    }

    pub(super) fn set_disposition(&mut self, trace: Option<u64>, d: Disposition) {
        if let Some(t) = trace.and_then(|t| self.traces.get_mut(t as usize)) {
            t.disposition = d;
        }
    }

    /// Puts `frame` on the wire of `node`'s interface `iface`.
    pub(super) fn transmit(
        &mut self,
        node: usize,
        iface: usize,
        mut frame: Vec<u8>,
        trace: Option<u64>,
    ) {
        let seg_id = self.attach[node][iface];
        let from = self.segments[seg_id]
            .ports
            .iter()
            .position(|p| p.node == node && p.iface == iface);
        let Some(from) = from else { return };
        let seg = &mut self.segments[seg_id];
        let ser = seg.params.serialisation(frame.len());
        let start = seg
            .busy_until
            .get(&from)
            .copied()
            .unwrap_or(Instant::ZERO)
            .max(self.now);
        seg.busy_until.insert(from, start + ser);
        if self.capture {
            seg.capture.push((start, frame.clone()));
        }
        let pcap_frame = self.capture.then_some(seg.capture.len() as u64);
        if let Some(t) = trace.and_then(|t| self.traces.get_mut(t as usize)) {
            // Names are cloned only for a traced frame: per frame, the
            // clones were ~3% of a bulk transfer's wall time.
            t.legs.push(Leg {
                segment: seg.name.clone(),
                from: self.names[node].clone(),
                to: None,
                at: start,
                pcap_frame,
                bytes: frame.clone(),
            });
        }
        let seg = &mut self.segments[seg_id];
        if frame.len() > seg.params.mtu + 14 {
            let name = seg.name.clone();
            self.set_disposition(
                trace,
                Disposition::Dropped {
                    node: name,
                    reason: "frame larger than the segment MTU".into(),
                },
            );
            return;
        }
        let latency = seg.params.latency;
        let loss = seg.params.loss;
        let mut dests = seg.forward(from, &frame);
        // smoltcp answers, and learns from, only ARP aimed at its own
        // address (iface/interface/ipv4.rs `process_arp`: "Only process ARP
        // packets for us"): a broadcast request's copies for other hosts
        // change nothing, and not queueing them keeps a segment of N hosts
        // from costing N² events. Routers get every copy (a NAT router may
        // answer for addresses it owns).
        if let Some((1, _, tpa)) = arp_fields(&frame) {
            let ports = &self.segments[seg_id].ports;
            dests.retain(|&p| match &self.nodes[ports[p].node] {
                Node::Host(h) => h.info.addr.octets() == tpa,
                Node::Router(_) => true,
            });
        }
        let n = dests.len();
        if n == 1 {
            if let Some(leg) = trace
                .and_then(|t| self.traces.get_mut(t as usize))
                .and_then(|t| t.legs.last_mut())
            {
                leg.to = Some(self.names[self.segments[seg_id].ports[dests[0]].node].clone());
            }
        }
        for (k, p) in dests.into_iter().enumerate() {
            let to = self.segments[seg_id].ports[p];
            let mut delay = Duration::ZERO;
            // The first rule with an opinion decides (turmoil's order).
            let verdict = self.faults.iter().enumerate().find_map(|(i, rule)| {
                let v = (rule.rule)(&InFlight {
                    segment: &self.segments[seg_id].name,
                    from: &self.names[node],
                    to: &self.names[to.node],
                    frame: &frame,
                });
                (v != FaultVerdict::Pass).then_some((i, v))
            });
            match verdict {
                Some((i, FaultVerdict::Drop)) => {
                    if n == 1 {
                        let rule = self.faults[i].name.clone();
                        self.set_disposition(trace, Disposition::DroppedByFault { rule });
                    }
                    continue;
                }
                Some((i, FaultVerdict::Hold)) => {
                    let rule = self.faults[i].name.clone();
                    let f = if k + 1 == n {
                        std::mem::take(&mut frame)
                    } else {
                        frame.clone()
                    };
                    self.held.push(Held {
                        rule,
                        latency,
                        to,
                        frame: f,
                        trace,
                    });
                    continue;
                }
                Some((_, FaultVerdict::Deliver(d))) => delay = d,
                Some((_, FaultVerdict::Pass)) | None => {}
            }
            if loss > 0.0 && self.rng.gen_bool(loss.clamp(0.0, 1.0)) {
                if n == 1 {
                    let segment = self.segments[seg_id].name.clone();
                    self.set_disposition(trace, Disposition::Lost { segment });
                }
                continue;
            }
            // The last copy takes the buffer itself: no per-frame clone.
            let f = if k + 1 == n {
                std::mem::take(&mut frame)
            } else {
                frame.clone()
            };
            let at = start + ser + latency + delay;
            self.push_event(
                at,
                Ev::Arrive {
                    node: to.node,
                    iface: to.iface,
                    frame: f,
                    trace,
                },
            );
        }
    }

    /// Delivers the frames `rule` held, in the order it held them, and
    /// removes the rule. Returns how many frames were released.
    pub fn release(&mut self, rule: &str) -> usize {
        self.faults.retain(|f| f.name != rule);
        let (go, keep): (Vec<Held>, Vec<Held>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|h| h.rule == rule);
        self.held = keep;
        let n = go.len();
        for h in go {
            let at = self.now + h.latency;
            self.push_event(
                at,
                Ev::Arrive {
                    node: h.to.node,
                    iface: h.to.iface,
                    frame: h.frame,
                    trace: h.trace,
                },
            );
        }
        n
    }

    /// Frames held by fault rules, not yet released.
    pub fn held_frames(&self) -> usize {
        self.held.len()
    }
}
