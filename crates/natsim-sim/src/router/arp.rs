//! ARP: resolving next hops (frames wait behind a request), answering
//! for the router's addresses and, on outside interfaces, proxy ARP for
//! the addresses the NAT owns.

use super::*;

impl Router {
    /// Puts one frame towards `next_hop`: at once if its MAC is known,
    /// else behind an ARP request.
    pub(super) fn send_to(
        &mut self,
        now: Instant,
        out_iface: usize,
        next_hop: Ipv4Addr,
        mut frame: Vec<u8>,
        trace: Option<u64>,
        out: &mut Outcome,
    ) {
        match self.arp.get(&next_hop) {
            Some(m) => {
                frame[0..6].copy_from_slice(m);
                out.tx.push((out_iface, frame, trace));
            }
            None => {
                let fresh = !self.pending.contains_key(&next_hop);
                let p = self.pending.entry(next_hop).or_insert(Pending {
                    iface: out_iface,
                    frames: Vec::new(),
                    tries: 0,
                    next_try: now,
                });
                p.frames.push((frame, trace));
                if fresh {
                    p.tries = 1;
                    p.next_try = now + Duration::from_secs(1);
                    let req = self.arp_request(out_iface, next_hop);
                    out.originated.push((out_iface, req));
                }
            }
        }
    }

    pub(super) fn arp_request(&self, iface: usize, target: Ipv4Addr) -> Vec<u8> {
        let i = &self.ifaces[iface];
        let repr = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: EthernetAddress(i.mac),
            source_protocol_addr: i.addr,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: target,
        };
        arp_frame(i.mac, [0xff; 6], &repr)
    }

    pub(super) fn arp_in(&mut self, now: Instant, iface: usize, frame: &[u8], out: &mut Outcome) {
        let Ok(pkt) = ArpPacket::new_checked(&frame[14..]) else {
            return;
        };
        let Ok(ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr,
            source_protocol_addr,
            target_protocol_addr,
            ..
        }) = ArpRepr::parse(&pkt)
        else {
            return;
        };
        let i = &self.ifaces[iface];
        if Prefix::new(i.addr, i.prefix_len).contains(source_protocol_addr) {
            self.arp
                .insert(source_protocol_addr, source_hardware_addr.0);
        }
        if operation == ArpOperation::Request {
            let proxy = i.role == Role::Outside
                && self.owned.iter().any(|&(f, l)| {
                    f <= target_protocol_addr.to_bits() && target_protocol_addr.to_bits() <= l
                });
            if target_protocol_addr == i.addr || proxy {
                let repr = ArpRepr::EthernetIpv4 {
                    operation: ArpOperation::Reply,
                    source_hardware_addr: EthernetAddress(i.mac),
                    source_protocol_addr: target_protocol_addr,
                    target_hardware_addr: source_hardware_addr,
                    target_protocol_addr: source_protocol_addr,
                };
                out.originated
                    .push((iface, arp_frame(i.mac, source_hardware_addr.0, &repr)));
            }
        }
        // Release frames waiting for this address.
        if let Some(p) = self.pending.remove(&source_protocol_addr) {
            for (mut f, trace) in p.frames {
                f[0..6].copy_from_slice(&source_hardware_addr.0);
                out.tx.push((p.iface, f, trace));
            }
        }
        let _ = now;
    }
}
