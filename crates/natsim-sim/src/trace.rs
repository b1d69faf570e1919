//! Flow traces, Batfish-style: every frame's path as data.
//!
//! A [`FrameTrace`] starts when a host (or a router's own stack, or a
//! router generating an ICMP error) sends an IPv4 frame. Each node it
//! crosses adds a [`Hop`] with the interface in and out and the steps taken
//! there, NAT decisions included (rendered from the engine's `NatStep`
//! data by [`natsim_nat::NatStep::describe`]). The final
//! [`Disposition`] says what became of it. Reports and `natsim explain`
//! render these; they never re-derive what happened.

use natsim_nat::{Flow, Instant, NatEngine, NatStep};
use serde::Serialize;

/// What became of a frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "kebab-case")]
pub enum Disposition {
    /// Still travelling when the run ended (or flooded copies disagree).
    InFlight,
    /// Reached a host's network interface.
    Delivered {
        node: String,
    },
    /// Reached a router's own stack (its address, or a REDIRECT).
    DeliveredToRouter {
        node: String,
    },
    /// The NAT refused unsolicited traffic (no mapping, filtering).
    DroppedByNatFilter {
        node: String,
        reason: String,
    },
    /// The NAT answered instead (TCP RST / ICMP port unreachable).
    AnsweredByNat {
        node: String,
        answer: String,
    },
    /// Another NAT drop (table full, ports exhausted, malformed...).
    DroppedByNat {
        node: String,
        reason: String,
    },
    NoRoute {
        node: String,
    },
    TtlExceeded {
        node: String,
    },
    /// The next hop never answered ARP.
    HostUnreachable {
        node: String,
    },
    /// Lost on a link (seeded loss).
    Lost {
        segment: String,
    },
    /// Dropped by a fault rule.
    DroppedByFault {
        rule: String,
    },
    /// Dropped by a router for another reason.
    Dropped {
        node: String,
        reason: String,
    },
    /// An IP fragment the NAT holds until its datagram can be translated;
    /// the datagram goes on in the trace of the fragment that completes it.
    HeldByNat {
        node: String,
    },
}

impl Disposition {
    /// The kebab-case code expectations match on (`delivered`,
    /// `dropped-by-nat-filter`, `no-route`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            Disposition::InFlight => "in-flight",
            Disposition::Delivered { .. } => "delivered",
            Disposition::DeliveredToRouter { .. } => "delivered-to-router",
            Disposition::DroppedByNatFilter { .. } => "dropped-by-nat-filter",
            Disposition::AnsweredByNat { .. } => "answered-by-nat",
            Disposition::DroppedByNat { .. } => "dropped-by-nat",
            Disposition::NoRoute { .. } => "no-route",
            Disposition::TtlExceeded { .. } => "ttl-exceeded",
            Disposition::HostUnreachable { .. } => "host-unreachable",
            Disposition::Lost { .. } => "lost",
            Disposition::DroppedByFault { .. } => "dropped-by-fault",
            Disposition::Dropped { .. } => "dropped",
            Disposition::HeldByNat { .. } => "held-by-nat",
        }
    }
}

/// One thing that happened to a frame at a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum Step {
    Sent,
    Received,
    /// A NAT engine decision; `kind` is the step's name (`translated`,
    /// `mapping-created`, `alg`, `dropped`, ...), `text` its narration
    /// ([`natsim_nat::NatStep::describe`]). The structured fields carry
    /// what expectations check without parsing text: the flow before and
    /// after a rewrite, the rule that matched, the drop reason's code.
    Nat {
        kind: &'static str,
        text: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        before: Option<Flow>,
        #[serde(skip_serializing_if = "Option::is_none")]
        after: Option<Flow>,
        #[serde(skip_serializing_if = "Option::is_none")]
        rule: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'static str>,
    },
    Forwarded {
        next_hop: String,
    },
    TtlDecremented {
        ttl: u8,
    },
    /// Cut into `pieces` fragments of at most `mtu` bytes (RFC 791).
    Fragmented {
        pieces: usize,
        mtu: usize,
    },
    /// Handed to a service on the router itself.
    Local {
        text: String,
    },
    Dropped {
        reason: String,
    },
}

impl Step {
    /// The narration of a [`Step::Fragmented`] step, one wording for
    /// `explain` and for `trace containing` expectations.
    pub fn fragmented_text(pieces: usize, mtu: usize) -> String {
        format!("cut into {pieces} fragments for the MTU of {mtu}")
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Hop {
    pub at: Instant,
    pub node: String,
    pub iface_in: Option<String>,
    pub iface_out: Option<String>,
    pub steps: Vec<Step>,
}

/// One time the frame was put on a segment's wire: what a capture on that
/// segment holds (the frame number is its place in the segment's pcap).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Leg {
    pub segment: String,
    /// The node that transmitted it.
    pub from: String,
    /// The node the segment delivers it to (None: flooded to several).
    pub to: Option<String>,
    /// When the first bit went on the wire.
    pub at: Instant,
    /// 1-based frame number in the segment's pcap (None: capture off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pcap_frame: Option<u64>,
    /// The bytes as on this wire (after any rewrite before it). Not in
    /// the JSON: the pcap holds them.
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FrameTrace {
    pub id: u64,
    pub at: Instant,
    pub origin: String,
    /// The frame as first sent, e.g. `tcp 198.51.100.7:49152 -> 203.0.113.1:25 [S]`.
    pub summary: String,
    pub hops: Vec<Hop>,
    pub disposition: Disposition,
    /// Every wire the frame crossed, in order.
    pub legs: Vec<Leg>,
    /// The frame whose handling made a router send this one: a NAT's
    /// answer, an ICMP error, or its own stack's reply. Why it answered is
    /// that frame's disposition and steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<u64>,
}

/// A NAT engine step as a trace step, rules named through `nat`.
pub fn nat_step(s: &NatStep, nat: &NatEngine) -> Step {
    let (before, after) = match s {
        NatStep::Translated { before, after } | NatStep::IcmpInnerTranslated { before, after } => {
            (Some(*before), Some(*after))
        }
        _ => (None, None),
    };
    let rule = match s {
        NatStep::RuleMatched { rule }
        | NatStep::StaticRule { rule }
        | NatStep::NearMiss { rule, .. } => Some(nat.rule_name(*rule).to_string()),
        _ => None,
    };
    let reason = match s {
        NatStep::Dropped { reason } => Some(reason.code()),
        _ => None,
    };
    Step::Nat {
        kind: nat_step_kind(s),
        text: s.describe(&|r| nat.rule_name(r).to_string()),
        before,
        after,
        rule,
        reason,
    }
}

/// The name of a NAT step's variant, for expectations.
pub fn nat_step_kind(s: &natsim_nat::NatStep) -> &'static str {
    use natsim_nat::NatStep::*;
    match s {
        Received { .. } => "received",
        ConnMatched { .. } => "conn-matched",
        ConnCreated { .. } => "conn-created",
        RuleMatched { .. } => "rule-matched",
        StaticRule { .. } => "static-rule",
        MappingCreated { .. } => "mapping-created",
        MappingReused { .. } => "mapping-reused",
        FilterAdmitted { .. } => "filter-admitted",
        Translated { .. } => "translated",
        IcmpInnerTranslated { .. } => "icmp-inner-translated",
        Hairpinned => "hairpinned",
        TcpStateChanged { .. } => "tcp-state",
        ConnEnded { .. } => "conn-ended",
        Replied { .. } => "replied",
        Dropped { .. } => "dropped",
        NearMiss { .. } => "near-miss",
        Alg { .. } => "alg",
        PinholeUsed { .. } => "pinhole-used",
        PinholeClosed { .. } => "pinhole-closed",
        Fragment { .. } => "fragment",
    }
}

/// A one-line summary of an Ethernet frame (IPv4 TCP/UDP/ICMP, ARP).
pub fn summarize(frame: &[u8]) -> String {
    use smoltcp::wire::*;
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return format!("{} bytes (not Ethernet)", frame.len());
    };
    match eth.ethertype() {
        EthernetProtocol::Arp => "arp".to_string(),
        EthernetProtocol::Ipv4 => {
            let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
                return "malformed ipv4".into();
            };
            let (s, d) = (ip.src_addr(), ip.dst_addr());
            // A later fragment has no transport header: say what it is.
            if ip.frag_offset() != 0 {
                let more = if ip.more_frags() {
                    ", more follow"
                } else {
                    ", last"
                };
                return format!(
                    "{} {s} -> {d} fragment id {} at offset {}{more}",
                    ip.next_header().to_string().to_lowercase(),
                    ip.ident(),
                    ip.frag_offset()
                );
            }
            // A first fragment carries the transport header but not the
            // length it states: read the ports off the bytes.
            if ip.more_frags() {
                let p = ip.payload();
                let proto = ip.next_header().to_string().to_lowercase();
                let tail = format!("first fragment id {}, more follow", ip.ident());
                return match (ip.next_header(), p) {
                    (IpProtocol::Tcp | IpProtocol::Udp, [a, b, c, e, ..]) => format!(
                        "{proto} {s}:{} -> {d}:{} {tail}",
                        u16::from_be_bytes([*a, *b]),
                        u16::from_be_bytes([*c, *e])
                    ),
                    (IpProtocol::Icmp, [8, _, _, _, i, j, ..]) => format!(
                        "icmp {s} -> {d} echo request id {} {tail}",
                        u16::from_be_bytes([*i, *j])
                    ),
                    (IpProtocol::Icmp, [0, _, _, _, i, j, ..]) => format!(
                        "icmp {s} -> {d} echo reply id {} {tail}",
                        u16::from_be_bytes([*i, *j])
                    ),
                    _ => format!("{proto} {s} -> {d} {tail}"),
                };
            }
            match ip.next_header() {
                IpProtocol::Tcp => match TcpPacket::new_checked(ip.payload()) {
                    Ok(t) => {
                        let mut fl = String::new();
                        for (on, c) in [
                            (t.syn(), 'S'),
                            (t.ack(), 'A'),
                            (t.fin(), 'F'),
                            (t.rst(), 'R'),
                            (t.psh(), 'P'),
                        ] {
                            if on {
                                fl.push(c);
                            }
                        }
                        let n = t.payload().len();
                        let len = if n > 0 {
                            format!(" len {n}")
                        } else {
                            String::new()
                        };
                        format!(
                            "tcp {s}:{} -> {d}:{} [{fl}]{len}",
                            t.src_port(),
                            t.dst_port()
                        )
                    }
                    Err(_) => format!("tcp {s} -> {d} (truncated)"),
                },
                IpProtocol::Udp => match UdpPacket::new_checked(ip.payload()) {
                    Ok(u) => format!(
                        "udp {s}:{} -> {d}:{} len {}",
                        u.src_port(),
                        u.dst_port(),
                        u.payload().len()
                    ),
                    Err(_) => format!("udp {s} -> {d} (truncated)"),
                },
                IpProtocol::Icmp => match Icmpv4Packet::new_checked(ip.payload()) {
                    Ok(i) => {
                        let what = match (i.msg_type(), i.msg_code()) {
                            (Icmpv4Message::EchoRequest, _) => {
                                format!("echo request id {}", i.echo_ident())
                            }
                            (Icmpv4Message::EchoReply, _) => {
                                format!("echo reply id {}", i.echo_ident())
                            }
                            (Icmpv4Message::DstUnreachable, c) => {
                                format!("destination unreachable (code {c})")
                            }
                            (Icmpv4Message::TimeExceeded, _) => "time exceeded".to_string(),
                            (t, c) => format!("type {t} code {c}"),
                        };
                        format!("icmp {s} -> {d} {what}")
                    }
                    Err(_) => format!("icmp {s} -> {d} (truncated)"),
                },
                p => format!("ip/{p} {s} -> {d}"),
            }
        }
        t => format!("ethertype {t}"),
    }
}

#[cfg(test)]
mod tests {
    use super::summarize;

    /// A first UDP fragment: MF set, offset 0, and a UDP length (3008)
    /// longer than the fragment holds; its ports are still there.
    #[test]
    fn a_first_fragment_shows_its_ports() {
        let mut f = vec![0u8; 14 + 20 + 8 + 16];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let ip = &mut f[14..];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&44u16.to_be_bytes());
        ip[4..6].copy_from_slice(&7u16.to_be_bytes());
        ip[6] = 0x20; // more fragments
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
        ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
        let sum = natsim_nat::checksum::checksum(&ip[..20]);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        ip[20..22].copy_from_slice(&5000u16.to_be_bytes());
        ip[22..24].copy_from_slice(&53u16.to_be_bytes());
        ip[24..26].copy_from_slice(&3008u16.to_be_bytes());
        assert_eq!(
            summarize(&f),
            "udp 10.0.0.1:5000 -> 10.0.0.2:53 first fragment id 7, more follow"
        );
    }
}
