//! Byte fixtures captured from Linux 6.18 (two network namespaces and a
//! veth pair; the router answering from its stack and from an nftables
//! `forward` chain with `reject` and `reject with tcp reset`): each test
//! feeds the kernel's input frame to the builder and expects the kernel's
//! answer byte for byte.

use super::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

const ROUTER_MAC: [u8; 6] = [0x82, 0xf3, 0x49, 0x9d, 0x5c, 0x43];
const ROUTER: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);

/// A raw SYN with TOS 0x2b to the router's closed port 7.
const SYN_TO_ROUTER: &str = "82f3499d5c43ce9382b466000800452b0028000700004006668a0a0900020a0900019c410007000003e800000000500203e8f7b50000";
/// A raw SYN with TOS 0x2b to 192.0.2.5:9, forwarded by the router.
const SYN_FORWARDED: &str = "82f3499d5c43ce9382b466000800452b0028000700004006ae8e0a090002c00002059c420009000003e800000000500203e83fb70000";
/// UDP with TOS 0x2b to the router's closed port 7.
const UDP_TO_ROUTER: &str = "82f3499d5c43ce9382b466000800452b002100094000401126840a0900020a0900019c430007000d0ba368656c6c6f";
/// UDP with TOS 0x10 to 192.0.2.5:9, after the router's TTL decrement.
const UDP_FORWARDED: &str = "82f3499d5c43ce9382b46600080045100022000940003f116fa20a090002c00002059c440009000e4977776f726c6421";

#[test]
fn the_stacks_rst_keeps_the_dscp() {
    let rst = tcp_reset(&hex(SYN_TO_ROUTER), ROUTER_MAC, ResetBy::Stack).unwrap();
    assert_eq!(rst, hex("ce9382b4660082f3499d5c4308004528002800004000400626940a0900010a09000200079c4100000000000003e950140000fb8a0000"));
}

/// Whether the TCP checksum of the untagged IPv4 segment in `f` is valid.
fn tcp_checksum_ok(f: &[u8]) -> bool {
    let src = Ipv4Addr::new(f[26], f[27], f[28], f[29]);
    let dst = Ipv4Addr::new(f[30], f[31], f[32], f[33]);
    let seg = &f[34..];
    !(sum(pseudo_header_sum(src, dst, 6, seg.len() as u16), seg) as u16) == 0
}

#[test]
fn a_netfilter_rst_has_tos_zero() {
    let rst = tcp_reset(&hex(SYN_FORWARDED), ROUTER_MAC, ResetBy::Netfilter).unwrap();
    // The capture holds nf_send_reset's CHECKSUM_PARTIAL seed (veth
    // offload) where the wire carries the full checksum, so compare the
    // rest byte for byte and check the checksum itself.
    let mut kernel = hex("ce9382b4660082f3499d5c430800450000280000400040066ec0c00002050a09000200099c4200000000000003e950140000cc2a0000");
    kernel[50..52].copy_from_slice(&rst[50..52]);
    assert_eq!(rst, kernel);
    assert!(tcp_checksum_ok(&rst));
    assert!(tcp_checksum_ok(
        &tcp_reset(&hex(SYN_TO_ROUTER), ROUTER_MAC, ResetBy::Stack).unwrap()
    ));
}

#[test]
fn port_unreachable_from_the_stack() {
    let e = icmp_error(
        &hex(UDP_TO_ROUTER),
        ROUTER,
        ROUTER_MAC,
        0xc4fe,
        IcmpError::PORT_UNREACHABLE,
    );
    assert_eq!(e.unwrap(), hex("ce9382b4660082f3499d5c43080045ca003dc4fe00004001a0e30a0900010a0900020303113000000000452b002100094000401126840a0900020a0900019c430007000d0ba368656c6c6f"));
}

#[test]
fn port_unreachable_from_a_reject_rule() {
    let e = icmp_error(
        &hex(UDP_FORWARDED),
        ROUTER,
        ROUTER_MAC,
        0xc4ff,
        IcmpError::PORT_UNREACHABLE,
    );
    assert_eq!(e.unwrap(), hex("ce9382b4660082f3499d5c43080045d0003ec4ff00004001a0db0a0900010a0900020303c92c0000000045100022000940003f116fa20a090002c00002059c440009000e4977776f726c6421"));
}

/// `frame` with an 802.1Q tag (VLAN 7) after the MACs.
fn tagged(frame: &[u8]) -> Vec<u8> {
    let mut f = frame[..12].to_vec();
    f.extend_from_slice(&[0x81, 0x00, 0x00, 0x07]);
    f.extend_from_slice(&frame[12..]);
    f
}

#[test]
fn answers_keep_the_vlan_tag() {
    let untagged = tcp_reset(&hex(SYN_TO_ROUTER), ROUTER_MAC, ResetBy::Stack).unwrap();
    let rst = tcp_reset(&tagged(&hex(SYN_TO_ROUTER)), ROUTER_MAC, ResetBy::Stack).unwrap();
    assert_eq!(rst, tagged(&untagged));
    let e = icmp_error(
        &tagged(&hex(UDP_TO_ROUTER)),
        ROUTER,
        ROUTER_MAC,
        1,
        IcmpError::PORT_UNREACHABLE,
    )
    .unwrap();
    assert_eq!(&e[12..16], &[0x81, 0x00, 0x00, 0x07]);
    assert_eq!(checksum(&e[18..38]), 0);
    assert_eq!(checksum(&e[38..]), 0);
}

#[test]
fn a_rst_gets_no_rst() {
    let mut f = hex(SYN_TO_ROUTER);
    f[47] = 0x04;
    assert_eq!(tcp_reset(&f, ROUTER_MAC, ResetBy::Stack), None);
}

#[test]
fn an_ack_is_answered_at_its_ack_number() {
    let mut f = hex(SYN_TO_ROUTER);
    f[47] = 0x10;
    f[42..46].copy_from_slice(&0xdead_beefu32.to_be_bytes());
    let rst = tcp_reset(&f, ROUTER_MAC, ResetBy::Stack).unwrap();
    assert_eq!(&rst[38..42], &0xdead_beefu32.to_be_bytes());
    assert_eq!(&rst[42..46], &[0; 4]);
    assert_eq!(rst[47], 0x04);
}

#[test]
fn no_error_where_the_kernel_sends_none() {
    let err = |f: &[u8]| icmp_error(f, ROUTER, ROUTER_MAC, 1, IcmpError::PORT_UNREACHABLE);
    let udp = hex(UDP_TO_ROUTER);
    assert!(err(&udp).is_some());
    // A link-layer broadcast.
    let mut f = udp.clone();
    f[0..6].copy_from_slice(&[0xff; 6]);
    assert_eq!(err(&f), None);
    // To a broadcast or multicast address, from no single host.
    for (at, addr) in [
        (30, [255, 255, 255, 255]),
        (30, [224, 0, 0, 9]),
        (26, [0, 0, 0, 0]),
        (26, [127, 0, 0, 1]),
        (26, [240, 0, 0, 1]),
    ] {
        let mut f = udp.clone();
        f[at..at + 4].copy_from_slice(&addr);
        assert_eq!(err(&f), None, "{addr:?} at {at}");
    }
    // A non-first fragment.
    let mut f = udp.clone();
    f[20] = 0x00;
    f[21] = 0x10;
    assert_eq!(err(&f), None);
    // An ICMP error about an ICMP error.
    let first = err(&udp).unwrap();
    assert_eq!(err(&first), None);
    // Not IPv4, or cut short.
    assert_eq!(err(&udp[..30]), None);
    let mut f = udp.clone();
    f[12] = 0x86;
    assert_eq!(err(&f), None);
}

#[test]
fn an_echo_request_gets_an_error() {
    let mut f = hex(UDP_TO_ROUTER);
    f[23] = 1;
    f[34] = 8;
    assert!(icmp_error(&f, ROUTER, ROUTER_MAC, 1, IcmpError::TTL_EXCEEDED).is_some());
}

#[test]
fn the_quote_stops_at_576_bytes_in_all() {
    let mut f = hex(UDP_TO_ROUTER);
    f.truncate(14 + 28);
    f.extend(core::iter::repeat_n(0x5a, 1400));
    let total = (f.len() - 14) as u16;
    f[16..18].copy_from_slice(&total.to_be_bytes());
    let e = icmp_error(&f, ROUTER, ROUTER_MAC, 1, IcmpError::frag_needed(1280)).unwrap();
    assert_eq!(e.len() - 14, 576);
    assert_eq!(&e[14 + 2..14 + 4], &576u16.to_be_bytes());
    assert_eq!(&e[34 + 6..34 + 8], &1280u16.to_be_bytes());
    assert_eq!(checksum(&e[34..]), 0);
}

#[test]
fn an_error_reads_back_as_built() {
    let e = icmp_error(
        &hex(UDP_TO_ROUTER),
        ROUTER,
        ROUTER_MAC,
        7,
        IcmpError::frag_needed(1400),
    )
    .unwrap();
    let to = Ipv4Addr::new(10, 9, 0, 2);
    assert_eq!(icmp_error_in(&e), Some((to, IcmpError::frag_needed(1400))));
    assert_eq!(
        icmp_error_in(&tagged(&e)),
        Some((to, IcmpError::frag_needed(1400)))
    );
    assert_eq!(icmp_error_in(&hex(UDP_TO_ROUTER)), None);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// An Ethernet frame holding an IPv4 datagram with a valid header and
    /// hostile fields: any protocol, TOS, flags and fragment offset, any
    /// addresses, a total length that may disagree with what arrived, an
    /// optional VLAN tag, and any payload (a TCP header often enough for
    /// the RST path to be taken).
    pub(super) fn frame() -> impl Strategy<Value = Vec<u8>> {
        (
            any::<bool>(),
            // Mostly unicast, as a router's MAC would be.
            prop_oneof![3 => Just(ROUTER_MAC), 1 => any::<[u8; 6]>()],
            prop_oneof![3 => Just(6u8), 2 => Just(17), 2 => Just(1), 1 => any::<u8>()],
            any::<u8>(),
            prop_oneof![3 => Just(0u16), 3 => Just(0x4000), 1 => any::<u16>()],
            any::<[u32; 2]>(),
            proptest::collection::vec(any::<u8>(), 0..1500),
            prop_oneof![Just(0i32), -40..40i32],
        )
            .prop_map(|(vlan, dst_mac, proto, tos, frag, addrs, payload, skew)| {
                let mut f = dst_mac.to_vec();
                f.extend_from_slice(&[2, 0, 0, 0, 0, 9]);
                if vlan {
                    f.extend_from_slice(&[0x81, 0x00, 0x00, 0x07]);
                }
                f.extend_from_slice(&[0x08, 0x00]);
                let l3 = f.len();
                let total = (20 + payload.len() as i32 + skew).clamp(0, 0xffff) as u16;
                f.extend_from_slice(&[0x45, tos]);
                f.extend_from_slice(&total.to_be_bytes());
                f.extend_from_slice(&[0x12, 0x34]);
                f.extend_from_slice(&frag.to_be_bytes());
                f.extend_from_slice(&[64, proto, 0, 0]);
                f.extend_from_slice(&addrs[0].to_be_bytes());
                f.extend_from_slice(&addrs[1].to_be_bytes());
                let c = checksum(&f[l3..l3 + 20]);
                f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
                f.extend_from_slice(&payload);
                f
            })
    }

    fn l3(f: &[u8]) -> usize {
        if f[12..14] == [0x81, 0x00] {
            18
        } else {
            14
        }
    }

    proptest! {
        /// Whatever arrives, an error is either not sent or a well-formed
        /// answer to the sender: valid checksums, at most 576 bytes, the
        /// offending datagram quoted from its first byte, DF clear, and
        /// never about an ICMP error or a non-first fragment.
        #[test]
        fn an_icmp_error_is_well_formed_or_absent(f in frame(), id in any::<u16>()) {
            let Some(e) = icmp_error(&f, ROUTER, ROUTER_MAC, id, IcmpError::PORT_UNREACHABLE) else {
                return Ok(());
            };
            let (i, o) = (l3(&f), l3(&e));
            prop_assert_eq!(i, o, "the VLAN tag is kept");
            prop_assert_eq!(&e[0..6], &f[6..12]);
            prop_assert_eq!(checksum(&e[o..o + 20]), 0);
            prop_assert_eq!(checksum(&e[o + 20..]), 0);
            let total = usize::from(u16::from_be_bytes([e[o + 2], e[o + 3]]));
            prop_assert_eq!(total, e.len() - o);
            prop_assert!(total <= 576);
            prop_assert_eq!(e[o + 6] & 0x40, 0, "DF clear");
            prop_assert_eq!(&e[o + 16..o + 20], &f[i + 12..i + 16], "to the sender");
            let quoted = &e[o + 28..];
            prop_assert_eq!(quoted, &f[i..i + quoted.len()]);
            prop_assert_eq!(u16::from_be_bytes([f[i + 6], f[i + 7]]) & 0x1fff, 0);
            prop_assert_eq!(f[0] & 1, 0, "not about a link-layer broadcast");
            if f[i + 9] == 1 {
                prop_assert!(!matches!(f[i + 20], 3 | 4 | 5 | 11 | 12));
            }
            prop_assert_eq!(icmp_error_in(&e), Some((Ipv4Addr::new(f[i + 12], f[i + 13], f[i + 14], f[i + 15]), IcmpError::PORT_UNREACHABLE)));
        }

        /// A RST is either not sent or answers the segment as RFC 9293
        /// §3.10.7.1 says, with valid checksums and the ports swapped.
        #[test]
        fn a_rst_is_well_formed_or_absent(f in frame(), netfilter in any::<bool>()) {
            let by = if netfilter { ResetBy::Netfilter } else { ResetBy::Stack };
            let Some(r) = tcp_reset(&f, ROUTER_MAC, by) else {
                return Ok(());
            };
            let (i, o) = (l3(&f), l3(&r));
            prop_assert_eq!(i, o);
            prop_assert_eq!(r.len(), o + 40);
            prop_assert_eq!(checksum(&r[o..o + 20]), 0);
            let src = Ipv4Addr::new(r[o + 12], r[o + 13], r[o + 14], r[o + 15]);
            let dst = Ipv4Addr::new(r[o + 16], r[o + 17], r[o + 18], r[o + 19]);
            prop_assert_eq!(!(sum(pseudo_header_sum(src, dst, 6, 20), &r[o + 20..]) as u16), 0);
            prop_assert_eq!(f[i + 9], 6);
            let seg = &f[i + 20..];
            prop_assert_eq!(&r[o + 20..o + 22], &seg[2..4]);
            prop_assert_eq!(&r[o + 22..o + 24], &seg[0..2]);
            prop_assert_eq!(seg[13] & 0x04, 0, "no RST for a RST");
            let word = |b: &[u8], at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
            if seg[13] & 0x10 != 0 {
                prop_assert_eq!(r[o + 33], 0x04);
                prop_assert_eq!(word(&r, o + 24), word(seg, 8));
            } else {
                prop_assert_eq!(r[o + 33], 0x14);
                prop_assert_eq!(word(&r, o + 24), 0);
                // SEG.SEQ + SEG.LEN, the length from the IP header (capped
                // by what arrived), SYN and FIN counting one each.
                let total = usize::from(u16::from_be_bytes([f[i + 2], f[i + 3]])).min(f.len() - i);
                let data = total - 20 - usize::from(seg[12] >> 4) * 4;
                let len = data as u32 + u32::from(seg[13] & 0x02 != 0) + u32::from(seg[13] & 0x01 != 0);
                prop_assert_eq!(word(&r, o + 28), word(seg, 4).wrapping_add(len));
            }
            let tos = if netfilter { 0 } else { f[i + 1] & !3 };
            prop_assert_eq!(r[o + 1], tos);
        }
    }
}

/// The generator reaches the builders' output, not only their refusals.
#[test]
fn the_frame_generator_reaches_both_builders() {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = properties::frame();
    let (mut errors, mut resets) = (0, 0);
    for _ in 0..1000 {
        let f = strategy.new_tree(&mut runner).unwrap().current();
        errors += usize::from(
            icmp_error(&f, ROUTER, ROUTER_MAC, 1, IcmpError::PORT_UNREACHABLE).is_some(),
        );
        resets += usize::from(tcp_reset(&f, ROUTER_MAC, ResetBy::Stack).is_some());
    }
    assert!(errors >= 100, "{errors} errors built of 1000");
    assert!(resets >= 50, "{resets} RSTs built of 1000");
}
