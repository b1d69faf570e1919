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
