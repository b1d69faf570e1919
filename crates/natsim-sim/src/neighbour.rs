//! A host's ARP: the frames it reads and builds, and what its OS
//! remembers of its neighbours' MAC addresses.
//!
//! smoltcp (0.14, `iface/neighbor.rs`) forgets a neighbour 60 s after the
//! last ARP packet that taught it, IP traffic does not refresh the entry,
//! and a packet the interface builds itself while the entry is missing (an
//! echo reply, a port unreachable, a RST for a closed port) is dropped
//! ("Failed to send response"). Linux keeps a learnt entry in STALE and
//! goes on sending to it at once (its garbage collector removes unused
//! entries only above `gc_thresh1`, 128 of them), and Windows likewise
//! sends to a stale entry while it probes. So a host remembers what ARP
//! taught it and, before smoltcp's entry can expire, hands the stack that
//! neighbour's ARP reply again. The reply is put straight into the
//! host's receive queue, on no link, so no capture shows it.

use natsim_nat::Instant;
use smoltcp::wire::{ArpOperation, ArpRepr, EthernetAddress};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

/// Well inside smoltcp's 60 s entry lifetime.
const REFRESH_AFTER: Duration = Duration::from_secs(50);

#[derive(Debug, Default)]
pub(crate) struct Neighbours {
    /// Address → (MAC, when smoltcp last learnt it).
    known: BTreeMap<Ipv4Addr, ([u8; 6], Instant)>,
}

impl Neighbours {
    /// Learns from an ARP request or reply addressed to `me`, as smoltcp
    /// fills its cache from both.
    pub fn learn(&mut self, frame: &[u8], me: Ipv4Addr, now: Instant) {
        if frame.len() < 42 || frame[12..14] != [0x08, 0x06] || frame[38..42] != me.octets() {
            return;
        }
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&frame[22..28]);
        let from = Ipv4Addr::new(frame[28], frame[29], frame[30], frame[31]);
        self.known.insert(from, (mac, now));
    }

    /// The ARP replies that keep the stack's entries from expiring, to
    /// hand it before it runs at `now`.
    pub fn refresh(&mut self, now: Instant, my_mac: [u8; 6], me: Ipv4Addr) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for (ip, (mac, learnt)) in &mut self.known {
            if now >= *learnt + REFRESH_AFTER {
                out.push(arp_reply(*mac, *ip, my_mac, me));
                *learnt = now;
            }
        }
        out
    }
}

/// The target of an ARP request frame.
pub(crate) fn arp_request_target(f: &[u8]) -> Option<Ipv4Addr> {
    (f.len() >= 42 && f[12..14] == [0x08, 0x06] && f[20..22] == [0, 1])
        .then(|| Ipv4Addr::new(f[38], f[39], f[40], f[41]))
}

/// The sender of an ARP frame (a reply, or a request smoltcp also
/// learns the sender from).
pub(crate) fn arp_sender(f: &[u8]) -> Option<Ipv4Addr> {
    (f.len() >= 42 && f[12..14] == [0x08, 0x06]).then(|| Ipv4Addr::new(f[28], f[29], f[30], f[31]))
}

/// An ARP request (RFC 826) for `target` from `mac`/`ip`.
pub(crate) fn arp_request(mac: [u8; 6], ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.octets());
    f
}

/// An ARP reply (RFC 826) from `mac`/`ip` to `to_mac`/`to`.
fn arp_reply(mac: [u8; 6], ip: Ipv4Addr, to_mac: [u8; 6], to: Ipv4Addr) -> Vec<u8> {
    let repr = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Reply,
        source_hardware_addr: EthernetAddress(mac),
        source_protocol_addr: ip,
        target_hardware_addr: EthernetAddress(to_mac),
        target_protocol_addr: to,
    };
    crate::packet::arp_frame(mac, to_mac, &repr)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
    const GW: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
    const MY_MAC: [u8; 6] = [2, 0, 0, 0, 0, 10];
    const GW_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

    #[test]
    fn a_learnt_neighbour_is_handed_back_before_the_stack_forgets_it() {
        let mut n = Neighbours::default();
        n.learn(
            &arp_reply(GW_MAC, GW, MY_MAC, ME),
            ME,
            Instant::from_secs(1),
        );
        assert!(n.refresh(Instant::from_secs(50), MY_MAC, ME).is_empty());
        let again = n.refresh(Instant::from_secs(51), MY_MAC, ME);
        assert_eq!(again, vec![arp_reply(GW_MAC, GW, MY_MAC, ME)]);
        assert!(n.refresh(Instant::from_secs(52), MY_MAC, ME).is_empty());
    }

    #[test]
    fn arp_for_someone_else_teaches_nothing() {
        let mut n = Neighbours::default();
        let other = Ipv4Addr::new(192, 168, 1, 20);
        n.learn(&arp_reply(GW_MAC, GW, MY_MAC, other), ME, Instant::ZERO);
        assert!(n.refresh(Instant::from_secs(3600), MY_MAC, ME).is_empty());
    }
}
