//! Forwarding a datagram out of an interface: the checks and rewrites of
//! Linux's ip_forward (PACKET_HOST only, TTL, MTU, TCPMSS) and
//! fragmentation to the egress MTU.

use super::*;

impl Router {
    /// TTL (`transit`: a forwarded packet, not one the router's own
    /// stack made), MAC rewrite and ARP resolution towards `next_hop`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn forward(
        &mut self,
        now: Instant,
        ingress: usize,
        out_iface: usize,
        next_hop: Ipv4Addr,
        mut frame: Vec<u8>,
        transit: bool,
        trace: Option<u64>,
        out: &mut Outcome,
    ) {
        let l3 = l3_of(&frame);
        if frame.len() < l3 + 20 {
            out.disposition = Some(Disposition::Dropped {
                node: self.name.clone(),
                reason: "runt frame".into(),
            });
            return;
        }
        // ip_forward's order: a frame not sent to this host's MAC, TTL
        // expiry, then the MTU, then the decrement.
        if transit && frame[0] & 1 != 0 {
            // ip_forward forwards PACKET_HOST frames only: one sent to a
            // link-layer broadcast or multicast address is dropped.
            let reason = "not forwarded: sent to a link-layer broadcast or multicast address";
            self.drop_frame(reason.into(), out);
            self.discard_unconfirmed(out);
            return;
        }
        let ttl = frame[l3 + 8];
        if transit && ttl <= 1 {
            self.ttl_exceeded(now, ingress, &frame, out);
            self.discard_unconfirmed(out);
            return;
        }
        let arrived = out.arrived.take();
        if self.frag_needed(now, ingress, out_iface, &frame, arrived.as_deref(), out) {
            // A datagram the router made itself meets the MTU after
            // POSTROUTING, where its connection was already confirmed.
            if transit {
                self.discard_unconfirmed(out);
            }
            return;
        }
        if transit {
            set_ttl(&mut frame, l3, ttl - 1);
            out.step(|| Step::TtlDecremented { ttl: ttl - 1 });
            if out_iface == ingress {
                self.redirect(now, ingress, next_hop, &frame, out);
            }
        }
        if let Some(c) = self.mss_clamp {
            let mss = match c {
                MssClamp::Pmtu => (self.ifaces[out_iface].mtu.min(self.ifaces[ingress].mtu) as u16)
                    .saturating_sub(40),
                MssClamp::To(n) => n,
            };
            if let Some(old) = clamp_mss(&mut frame, l3, mss) {
                out.step(|| Step::Local {
                    text: format!("TCPMSS: MSS {old} clamped to {mss}"),
                });
            }
        }
        let mac = self.ifaces[out_iface].mac;
        frame[6..12].copy_from_slice(&mac);
        out.iface_out = Some(out_iface);
        out.step(|| Step::Forwarded {
            next_hop: format!("{next_hop} via {}", self.ifaces[out_iface].name),
        });
        for piece in self.fragments_for(out_iface, frame, out) {
            self.send_to(now, out_iface, next_hop, piece, trace, out);
        }
    }

    /// The frame in hand was dropped after NAT and before it left: the NAT
    /// forgets the connection it created for it, as Linux frees an entry
    /// nf_conntrack_confirm never saw.
    fn discard_unconfirmed(&mut self, out: &mut Outcome) {
        let Some(nat) = self.nat.as_mut() else {
            return;
        };
        if !out.tracing {
            nat.discard_unconfirmed(&mut ());
            return;
        }
        let mut steps: Vec<NatStep> = Vec::new();
        nat.discard_unconfirmed(&mut steps);
        for s in &steps {
            out.steps.push(nat_step(s, nat));
        }
    }

    /// The frame cut to the egress MTU (RFC 791 §3.2; DF packets were
    /// refused before), or to the largest fragment of a datagram the NAT
    /// reassembled, as Linux's ip_do_fragment does.
    fn fragments_for(&self, egress: usize, frame: Vec<u8>, out: &mut Outcome) -> Vec<Vec<u8>> {
        let mtu = self.ifaces[egress].mtu;
        let limit = out.refragment.take().map_or(mtu, |m| m.min(mtu));
        // forward() checked the frame holds an IPv4 header at l3.
        let l3 = l3_of(&frame);
        let total = usize::from(u16::from_be_bytes([frame[l3 + 2], frame[l3 + 3]]));
        if total <= limit {
            return vec![frame];
        }
        match natsim_nat::wire::fragment::split(&frame, limit) {
            Ok(pieces) => {
                out.step(|| Step::Fragmented {
                    pieces: pieces.len(),
                    mtu: limit,
                });
                pieces
            }
            // DF was dealt with by frag_needed; an MTU under 28 cannot
            // carry a fragment: the packet goes out as it is.
            Err(_) => vec![frame],
        }
    }
}
