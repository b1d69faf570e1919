//! A frame or a timer reaching a node: a host's stack and apps run, a
//! router's outcome is carried out, and the node's next wake-up is
//! rescheduled.

use super::*;

impl Sim {
    pub(super) fn arrive(&mut self, node: usize, iface: usize, frame: Vec<u8>, trace: Option<u64>) {
        self.frames_delivered += 1;
        let now = self.now;
        match &mut self.nodes[node] {
            Node::Host(h) => {
                if frame.len() < 14 || (frame[0..6] != h.mac && frame[0] & 1 == 0) {
                    return; // a flooded copy for someone else
                }
                if let Some((2, spa, _)) = arp_fields(&frame) {
                    self.arp_asks.remove(&(node, spa));
                }
                h.device.rx.push_back(frame);
                if let Some(t) = trace.and_then(|t| self.traces.get_mut(t as usize)) {
                    let name = self.names[node].clone();
                    t.hops.push(Hop {
                        at: now,
                        node: name.clone(),
                        iface_in: Some("eth0".into()),
                        iface_out: None,
                        steps: vec![Step::Received],
                    });
                    t.disposition = Disposition::Delivered { node: name };
                }
                self.run_host(node);
            }
            Node::Router(r) => {
                let mut out = Outcome::new(self.tracing);
                r.receive(now, iface, frame, trace, &mut out);
                self.router_outcome(node, Some(iface), trace, out);
            }
        }
    }

    pub(super) fn router_outcome(
        &mut self,
        node: usize,
        iface_in: Option<usize>,
        trace: Option<u64>,
        out: Outcome,
    ) {
        let Node::Router(r) = &self.nodes[node] else {
            return;
        };
        if !out.steps.is_empty() {
            if let Some(t) = trace.and_then(|t| self.traces.get_mut(t as usize)) {
                let name =
                    |i: Option<usize>| i.and_then(|i| r.ifaces.get(i)).map(|i| i.name.clone());
                t.hops.push(Hop {
                    at: self.now,
                    node: self.names[node].clone(),
                    iface_in: name(iface_in),
                    iface_out: name(out.iface_out),
                    steps: out.steps,
                });
            }
        }
        if let Some(d) = out.disposition {
            self.set_disposition(trace, d);
        }
        for (iface, frame, t) in out.tx {
            self.transmit(node, iface, frame, t);
        }
        for (iface, frame) in out.originated {
            let t = if self.tracing {
                let iname = match &self.nodes[node] {
                    Node::Router(r) => r.ifaces.get(iface).map(|i| i.name.clone()),
                    Node::Host(_) => None,
                };
                let name = self.names[node].clone();
                let t = self.new_trace(&name, &frame, iname);
                self.set_reply_to(t, trace);
                t
            } else {
                None
            };
            if iface < self.attach[node].len() {
                self.transmit(node, iface, frame, t);
            }
        }
        for frame in out.local_out {
            let t = if self.tracing {
                let name = format!("{} (local stack)", self.names[node]);
                let t = self.new_trace(&name, &frame, None);
                self.set_reply_to(t, trace);
                t
            } else {
                None
            };
            let mut o = Outcome::new(self.tracing);
            if let Node::Router(r) = &mut self.nodes[node] {
                r.local_frame(self.now, frame, t, &mut o);
            }
            self.router_outcome(node, None, t, o);
        }
        self.reschedule(node);
    }

    pub(super) fn run_host(&mut self, node: usize) {
        let now = self.now;
        let Node::Host(h) = &mut self.nodes[node] else {
            return;
        };
        let out = h.poll(now);
        for f in &out {
            // A host asking again for an address nobody answered for: say
            // so in its log, where `explain` shows it (the frame it wanted
            // to send never reaches the wire, so no trace can).
            if let Some((1, _, tpa)) = arp_fields(f) {
                let e = self.arp_asks.entry((node, tpa)).or_insert((now, 0));
                e.1 += 1;
                if e.1 == 2 {
                    let first = e.0;
                    let seg = &self.segments[self.attach[node][0]].name;
                    let text = format!(
                        "no answer to ARP who-has {} (asked at {first}, again at {now}): nothing on {seg} answers for that address",
                        std::net::Ipv4Addr::from(tpa)
                    );
                    let host = self.names[node].clone();
                    if let Node::Host(h) = &mut self.nodes[node] {
                        h.log.push(crate::app::AppEvent {
                            at: now,
                            host,
                            app: "arp",
                            text,
                        });
                    }
                }
            }
        }
        for f in out {
            let t = if self.tracing {
                let name = self.names[node].clone();
                self.new_trace(&name, &f, Some("eth0".into()))
            } else {
                None
            };
            self.transmit(node, 0, f, t);
        }
        self.reschedule(node);
    }

    pub(super) fn wake(&mut self, node: usize) {
        let now = self.now;
        match &mut self.nodes[node] {
            Node::Host(_) => self.run_host(node),
            Node::Router(r) => {
                let mut out = Outcome::new(self.tracing);
                let failed = r.wake(now, &mut out);
                self.router_outcome(node, None, None, out);
                // Each ICMP host unreachable is the answer to its frame.
                for (frame, trace) in failed {
                    let Node::Router(r) = &mut self.nodes[node] else {
                        return;
                    };
                    let mut o = Outcome::new(self.tracing);
                    r.unreachable(now, &frame, 0, &mut o);
                    let node_name = r.name.clone();
                    self.set_disposition(trace, Disposition::HostUnreachable { node: node_name });
                    self.router_outcome(node, None, trace, o);
                }
            }
        }
    }

    pub(super) fn reschedule(&mut self, node: usize) {
        let now = self.now;
        let at = match &mut self.nodes[node] {
            Node::Host(h) => h.poll_at(now),
            Node::Router(r) => r.poll_at(now),
        };
        if let Some(at) = at {
            // A deadline equal to now would spin: the node has just run.
            let at = if at <= now {
                now + Duration::from_micros(1)
            } else {
                at
            };
            self.schedule_wake(node, at);
        }
    }

    // ----- captures ---------------------------------------------------------
}
