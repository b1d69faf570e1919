//! Shared L2 segments (a learning switch) with latency, bandwidth, MTU and
//! seeded loss. A point-to-point link is a segment with two ports.

use std::collections::BTreeMap;
use std::time::Duration;

/// Physical properties of a segment.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkParams {
    /// One-way propagation delay.
    pub latency: Duration,
    /// Bits per second; 0 means unlimited (no serialisation delay).
    pub bandwidth_bps: u64,
    /// IP MTU (bytes of Ethernet payload).
    pub mtu: usize,
    /// Probability in [0, 1] that a frame is lost (seeded).
    pub loss: f64,
}

impl Default for LinkParams {
    fn default() -> Self {
        LinkParams {
            latency: Duration::from_millis(1),
            bandwidth_bps: 100_000_000,
            mtu: 1500,
            loss: 0.0,
        }
    }
}

impl LinkParams {
    /// Time a frame of `len` bytes occupies the wire.
    pub fn serialisation(&self, len: usize) -> Duration {
        if self.bandwidth_bps == 0 {
            return Duration::ZERO;
        }
        // Preamble + SFD + FCS + inter-frame gap: 24 bytes on the wire.
        let bits = (len as u64 + 24) * 8;
        Duration::from_nanos(bits.saturating_mul(1_000_000_000) / self.bandwidth_bps)
    }
}

/// Where a segment port leads: a node's interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port {
    pub node: usize,
    pub iface: usize,
}

#[derive(Debug)]
pub(crate) struct Segment {
    pub name: String,
    pub params: LinkParams,
    pub ports: Vec<Port>,
    /// Learnt MAC → port index.
    pub macs: BTreeMap<[u8; 6], usize>,
    /// When the wire is next free (bandwidth serialisation), per sender port.
    pub busy_until: BTreeMap<usize, natsim_nat::Instant>,
    /// Captured frames: (time, bytes).
    pub capture: Vec<(natsim_nat::Instant, Vec<u8>)>,
}

impl Segment {
    pub fn new(name: &str, params: LinkParams) -> Segment {
        Segment {
            name: name.to_string(),
            params,
            ports: Vec::new(),
            macs: BTreeMap::new(),
            busy_until: BTreeMap::new(),
            capture: Vec::new(),
        }
    }

    /// Learns the sender's MAC and returns the ports a frame goes to.
    pub fn forward(&mut self, from: usize, frame: &[u8]) -> Vec<usize> {
        if frame.len() < 14 {
            return Vec::new();
        }
        let mut dst = [0; 6];
        dst.copy_from_slice(&frame[0..6]);
        let mut src = [0; 6];
        src.copy_from_slice(&frame[6..12]);
        if src[0] & 1 == 0 {
            self.macs.insert(src, from);
        }
        match self.macs.get(&dst) {
            Some(&p) if dst[0] & 1 == 0 => {
                if p == from {
                    Vec::new()
                } else {
                    vec![p]
                }
            }
            _ => (0..self.ports.len()).filter(|&p| p != from).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[0..6].copy_from_slice(&dst);
        f[6..12].copy_from_slice(&src);
        f
    }

    const A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
    const B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];
    const BCAST: [u8; 6] = [0xff; 6];

    fn segment(ports: usize) -> Segment {
        let mut s = Segment::new("s", LinkParams::default());
        for node in 0..ports {
            s.ports.push(Port { node, iface: 0 });
        }
        s
    }

    #[test]
    fn the_switch_floods_until_it_learns_then_forwards_to_one_port() {
        let mut s = segment(3);
        // B is unknown: flooded everywhere but back to the sender.
        assert_eq!(s.forward(0, &frame(B, A)), vec![1, 2]);
        // B answers from port 1: A was learnt, so one port.
        assert_eq!(s.forward(1, &frame(A, B)), vec![0]);
        assert_eq!(s.forward(0, &frame(B, A)), vec![1]);
        // Broadcasts always flood.
        assert_eq!(s.forward(0, &frame(BCAST, A)), vec![1, 2]);
    }

    #[test]
    fn a_frame_for_the_senders_own_port_goes_nowhere_and_runts_are_dropped() {
        let mut s = segment(2);
        s.forward(0, &frame(BCAST, A));
        assert!(s.forward(0, &frame(A, B)).is_empty());
        assert!(s.forward(0, &[0u8; 10]).is_empty());
    }

    #[test]
    fn serialisation_counts_framing_overhead_and_zero_bandwidth_is_instant() {
        let p = LinkParams {
            bandwidth_bps: 100_000_000,
            ..LinkParams::default()
        };
        // (1514 + 24) bytes * 8 bits / 100 Mbit/s = 123.04 µs.
        assert_eq!(p.serialisation(1514), Duration::from_nanos(123_040));
        let unlimited = LinkParams {
            bandwidth_bps: 0,
            ..LinkParams::default()
        };
        assert_eq!(unlimited.serialisation(1514), Duration::ZERO);
    }
}
