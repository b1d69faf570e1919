//! What a ladder arrow says about the frame on one wire: protocol, flags
//! and ports read from the leg's own bytes (so a NAT rewrite shows as a
//! different label on each side of the router). Reading header fields is
//! rendering, not deciding: verdicts come from the trace.

use etherparse::{NetSlice, SlicedPacket, TransportSlice};

/// A frame's label and the fields grouping needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    /// `SYN 203.0.113.50:49455 → 203.0.113.1:135`, `UDP … len 33`, `ICMP …`.
    pub text: String,
    /// The short name (`SYN`, `PSH/ACK`, `UDP`, `ICMP`).
    pub kind: String,
    /// TCP sequence number (retransmissions repeat it).
    pub seq: Option<u32>,
    /// TCP payload length.
    pub payload: usize,
    /// A TCP segment of an established exchange (ACK or PSH/ACK only):
    /// what folds into a bulk band.
    pub bulk: bool,
}

fn tcp_kind(syn: bool, ack: bool, fin: bool, rst: bool, psh: bool) -> String {
    let mut parts = Vec::new();
    for (on, name) in [
        (syn, "SYN"),
        (fin, "FIN"),
        (rst, "RST"),
        (psh, "PSH"),
        (ack, "ACK"),
    ] {
        if on {
            parts.push(name);
        }
    }
    if parts.is_empty() {
        "TCP".into()
    } else {
        parts.join("/")
    }
}

/// Labels an Ethernet frame; anything not TCP/UDP over IPv4 gets the
/// simulator's own one-line summary.
pub fn label(bytes: &[u8]) -> Label {
    let fallback = || Label {
        text: natsim_sim::trace::summarize(bytes),
        kind: natsim_sim::trace::summarize(bytes)
            .split_whitespace()
            .next()
            .unwrap_or("frame")
            .to_uppercase(),
        seq: None,
        payload: 0,
        bulk: false,
    };
    let Ok(p) = SlicedPacket::from_ethernet(bytes) else {
        return fallback();
    };
    let Some(NetSlice::Ipv4(ip)) = &p.net else {
        return fallback();
    };
    let (src, dst) = (ip.header().source_addr(), ip.header().destination_addr());
    match &p.transport {
        Some(TransportSlice::Tcp(t)) => {
            let kind = tcp_kind(t.syn(), t.ack(), t.fin(), t.rst(), t.psh());
            let n = t.payload().len();
            let len = if n > 0 {
                format!(" len {n}")
            } else {
                String::new()
            };
            Label {
                text: format!(
                    "{kind} {src}:{} → {dst}:{}{len}",
                    t.source_port(),
                    t.destination_port()
                ),
                bulk: t.ack() && !(t.syn() || t.fin() || t.rst()),
                kind,
                seq: Some(t.sequence_number()),
                payload: n,
            }
        }
        Some(TransportSlice::Udp(u)) => Label {
            text: format!(
                "UDP {src}:{} → {dst}:{} len {}",
                u.source_port(),
                u.destination_port(),
                u.payload().len()
            ),
            kind: "UDP".into(),
            seq: None,
            payload: u.payload().len(),
            bulk: false,
        },
        Some(TransportSlice::Icmpv4(_)) => {
            let s = natsim_sim::trace::summarize(bytes);
            // `icmp A -> B what`: keep the words, draw the arrow.
            let what = s.splitn(5, ' ').nth(4).unwrap_or("").to_string();
            Label {
                text: format!("ICMP {src} → {dst} {what}"),
                kind: "ICMP".into(),
                seq: None,
                payload: 0,
                bulk: false,
            }
        }
        _ => fallback(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SYN built by etherparse's own writer, not by our code.
    fn syn() -> Vec<u8> {
        let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([203, 0, 113, 25], [192, 168, 1, 10], 64)
            .tcp(52189, 25, 1000, 64240)
            .syn();
        let mut v = Vec::new();
        b.write(&mut v, &[]).unwrap();
        v
    }

    #[test]
    fn a_syn_is_labelled_with_flag_and_both_endpoints() {
        let l = label(&syn());
        assert_eq!(l.text, "SYN 203.0.113.25:52189 → 192.168.1.10:25");
        assert_eq!(l.seq, Some(1000));
        assert!(!l.bulk, "a SYN opens a connection; it is never bulk data");
    }

    #[test]
    fn a_truncated_frame_falls_back_to_the_summary() {
        let l = label(&[0u8; 5]);
        assert!(l.text.contains("not Ethernet"));
    }
}
