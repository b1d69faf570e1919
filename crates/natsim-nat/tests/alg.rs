//! Application-level gateways end to end through the engine: the EPM ALG
//! (KB 291615's missing fix) and the FTP ALG, with byte fixtures.

mod alg_harness;
mod common;

use alg_harness::*;
use common::*;
use natsim_nat::{AlgEvent, AlgKind, DropReason, NatEngine, NatStep, PortRange, Proto, Verdict};
use std::net::Ipv4Addr;

const EXCHANGE: Ipv4Addr = HOST_A;

/// Reached the other side (a generated RST or a drop did not).
fn forwarded(v: Verdict) -> bool {
    matches!(v, Verdict::Forward { .. })
}

fn epm_router(alg: bool) -> NatEngine {
    epm_router_with(alg, natsim_nat::Behaviour::linux())
}

fn epm_router_with(alg: bool, b: natsim_nat::Behaviour) -> NatEngine {
    let mut c = config(b);
    c.rules.masquerade("masq", WAN, None);
    c.rules.forward(
        "epm",
        WAN,
        Proto::Tcp,
        PortRange::single(135),
        EXCHANGE,
        None,
    );
    if alg {
        c = c.alg(AlgKind::Epm);
    }
    NatEngine::new(c).unwrap()
}

fn outlook() -> End {
    End {
        addr: REMOTE,
        port: 40000,
        iface: WAN,
        isn: 7000,
    }
}

fn exchange(port: u16) -> End {
    End {
        addr: EXCHANGE,
        port,
        iface: LAN,
        isn: 90_000,
    }
}

/// Binds, asks ept_map and returns the response bytes the client got.
fn ept_map_exchange(nat: &mut NatEngine, cuts: &[usize], frag_stub: usize) -> (Conn, Vec<u8>) {
    let mut c = Conn::open(nat, outlook(), exchange(135), (WAN_ADDR, 135));
    let got = c.send(nat, 0, &[bind(1), ept_map_request(2)].concat(), &[1460]);
    assert_eq!(got.len(), bind(1).len() + ept_map_request(2).len());
    let stub = ept_map_stub(&[tower(EMSMDB_UUID, 1097, EXCHANGE)]);
    let resp = response(2, &stub, frag_stub);
    let got = c.send(nat, 1, &resp, cuts);
    assert_eq!(
        got.len(),
        resp.len(),
        "the client must get the whole response"
    );
    (c, got)
}

fn alg_events(steps: &[NatStep]) -> Vec<AlgEvent> {
    steps
        .iter()
        .filter_map(|s| match s {
            NatStep::Alg { event, .. } => Some(*event),
            _ => None,
        })
        .collect()
}

#[test]
fn without_an_alg_the_tower_names_the_private_address_and_the_follow_up_is_dropped() {
    let mut nat = epm_router(false);
    let (_, got) = ept_map_exchange(&mut nat, &[1460], 4096);
    let t = towers_in(&got);
    assert_eq!((t[0].addr, t[0].port), (Some(EXCHANGE), Some(1097)));
    let mut syn = segment((REMOTE, 40001), (WAN_ADDR, 1097), 1, 0, true, &[]);
    let (v, steps) = run(&mut nat, natsim_nat::Instant::ZERO, WAN, &mut syn);
    assert!(!forwarded(v));
    assert!(steps.contains(&NatStep::Replied {
        kind: natsim_nat::ReplyKind::TcpRst
    }));
    let _ = DropReason::NoMapping { proto: Proto::Tcp };
}

#[test]
fn epm_alg_rewrites_the_tower_and_opens_a_pinhole_for_the_dialled_client() {
    let mut nat = epm_router(true);
    let (c, got) = ept_map_exchange(&mut nat, &[1460], 4096);
    let t = towers_in(&got);
    assert_eq!(
        (t[0].addr, t[0].port),
        (Some(WAN_ADDR), Some(1097)),
        "floor 5 → external, port kept"
    );
    let ev = alg_events(&c.steps);
    assert!(ev.contains(&AlgEvent::TowerRewritten {
        from: natsim_nat::Endpoint::new(EXCHANGE, 1097),
        to: natsim_nat::Endpoint::new(WAN_ADDR, 1097),
    }));
    let text: Vec<String> = ev.iter().map(|e| e.to_string()).collect();
    assert!(
        text.iter().any(|t| t
            == "rewrote tower floor 5 192.168.1.10 → 203.0.113.1 and floor 4 port 1097 → 1097"),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|t| t.starts_with("opened pinhole tcp/1097 for 300s")),
        "{text:?}"
    );

    // The follow-up connection from the same client is forwarded to Exchange.
    let mut syn = segment((REMOTE, 40001), (WAN_ADDR, 1097), 1, 0, true, &[]);
    let (v, steps) = run(&mut nat, c.now, WAN, &mut syn);
    assert!(
        matches!(v, Verdict::Forward { iface: LAN, .. }),
        "{v:?} {steps:?}"
    );
    assert_eq!(seen(&syn).dst, (EXCHANGE, 1097));
    assert!(steps
        .iter()
        .any(|s| matches!(s, NatStep::PinholeUsed { .. })));
    // ... but not from anyone else.
    let mut syn = segment((REMOTE2, 40001), (WAN_ADDR, 1097), 1, 0, true, &[]);
    let (v, _) = run(&mut nat, c.now, WAN, &mut syn);
    assert!(!forwarded(v));
}

#[test]
fn pinhole_expires_after_its_timeout() {
    let mut nat = epm_router(true);
    let (c, _) = ept_map_exchange(&mut nat, &[1460], 4096);
    let later = c.now + std::time::Duration::from_secs(301);
    let mut trace = Vec::new();
    nat.handle_timeout(later, &mut trace);
    assert!(trace
        .iter()
        .any(|s| matches!(s, NatStep::PinholeClosed { .. })));
    let mut syn = segment((REMOTE, 40001), (WAN_ADDR, 1097), 1, 0, true, &[]);
    let (v, _) = run(&mut nat, later, WAN, &mut syn);
    assert!(!forwarded(v));
}

#[test]
fn a_busy_external_port_gets_the_pinhole_elsewhere() {
    // Without port overloading an external port belongs to one mapping.
    let mut nat = epm_router_with(true, natsim_nat::Behaviour::rfc_recommended());
    // An inside host already holds external port 1097 through masquerade.
    let mut f = tcp((HOST_B, 1097), (REMOTE2, 80), "S", b"");
    fwd(&mut nat, natsim_nat::Instant::ZERO, LAN, &mut f);
    assert_eq!(flow_of(&f).src, natsim_nat::Endpoint::new(WAN_ADDR, 1097));
    let (_, got) = ept_map_exchange(&mut nat, &[1460], 4096);
    let t = towers_in(&got);
    assert_eq!(t[0].addr, Some(WAN_ADDR));
    assert_ne!(t[0].port, Some(1097));
    let port = t[0].port.unwrap();
    let mut syn = segment((REMOTE, 40001), (WAN_ADDR, port), 1, 0, true, &[]);
    let (v, _) = run(&mut nat, natsim_nat::Instant::ZERO, WAN, &mut syn);
    assert!(matches!(v, Verdict::Forward { .. }));
    assert_eq!(seen(&syn).dst, (EXCHANGE, 1097));
}

#[test]
fn towers_split_across_segments_and_fragments_are_still_rewritten() {
    for cuts in [&[1usize][..], &[7], &[13, 5], &[100], &[60, 61]] {
        for frag in [4096, 40, 17] {
            let mut nat = epm_router(true);
            let (_, got) = ept_map_exchange(&mut nat, cuts, frag);
            let t = towers_in(&got);
            assert_eq!(
                (t[0].addr, t[0].port),
                (Some(WAN_ADDR), Some(1097)),
                "cuts {cuts:?} frag {frag}"
            );
        }
    }
}

#[test]
fn authenticated_responses_are_left_alone() {
    let mut nat = epm_router(true);
    let mut c = Conn::open(&mut nat, outlook(), exchange(135), (WAN_ADDR, 135));
    c.send(
        &mut nat,
        0,
        &[bind(1), ept_map_request(2)].concat(),
        &[1460],
    );
    let stub = ept_map_stub(&[tower(EMSMDB_UUID, 1097, EXCHANGE)]);
    let mut resp = response(2, &stub, 4096);
    // auth_length 16 plus an 8-byte sec_trailer and 16 bytes of verifier.
    resp.extend_from_slice(&[0u8; 24]);
    let len = resp.len() as u16;
    resp[8..10].copy_from_slice(&len.to_le_bytes());
    resp[10..12].copy_from_slice(&16u16.to_le_bytes());
    let got = c.send(&mut nat, 1, &resp, &[1460]);
    assert_eq!(got, resp);
    assert!(alg_events(&c.steps).contains(&AlgEvent::Passed {
        why: natsim_nat::AlgPass::Authenticated
    }));
}

#[test]
fn malformed_dcerpc_passes_unmodified_and_never_panics() {
    let mut nat = epm_router(true);
    let mut c = Conn::open(&mut nat, outlook(), exchange(135), (WAN_ADDR, 135));
    c.send(
        &mut nat,
        0,
        &[bind(1), ept_map_request(2)].concat(),
        &[1460],
    );
    let mut t = tower(EMSMDB_UUID, 1097, EXCHANGE);
    t[0] = 200; // absurd floor count
    let resp = response(2, &ept_map_stub(&[t]), 4096);
    let got = c.send(&mut nat, 1, &resp, &[1460]);
    assert_eq!(got, resp);
    assert!(alg_events(&c.steps)
        .iter()
        .any(|e| matches!(e, AlgEvent::Passed { .. })));
}

// ----- FTP -----------------------------------------------------------------

fn ftp_masq(alg: bool) -> NatEngine {
    let mut c = config(natsim_nat::Behaviour::linux());
    c.rules.masquerade("masq", WAN, None);
    c.rules
        .forward("ftp", WAN, Proto::Tcp, PortRange::single(21), HOST_B, None);
    if alg {
        c = c.alg(AlgKind::Ftp);
    }
    NatEngine::new(c).unwrap()
}

/// An inside FTP client (HOST_A:3000) and an outside server (REMOTE:21).
fn ftp_ends() -> (End, End) {
    let client = End {
        addr: HOST_A,
        port: 3000,
        iface: LAN,
        isn: 100,
    };
    let server = End {
        addr: REMOTE,
        port: 21,
        iface: WAN,
        isn: 5000,
    };
    (client, server)
}

#[test]
fn active_ftp_port_is_rewritten_with_sequence_adjustment() {
    let mut nat = ftp_masq(true);
    let (client, server) = ftp_ends();
    let mut c = Conn::open(&mut nat, client, server, (REMOTE, 21));
    let got = c.send(&mut nat, 1, b"220 ready\r\n", &[1460]);
    assert_eq!(got, b"220 ready\r\n");
    let got = c.send(&mut nat, 0, b"PORT 192,168,1,10,4,1\r\nLIST\r\n", &[1460]);
    assert_eq!(got, b"PORT 203,0,113,1,4,1\r\nLIST\r\n");
    // Later bytes in both directions stay consistent.
    let got = c.send(&mut nat, 0, b"QUIT\r\n", &[3]);
    assert_eq!(got, b"QUIT\r\n");
    let got = c.send(&mut nat, 1, b"221 bye\r\n", &[1460]);
    assert_eq!(got, b"221 bye\r\n");
    // The server's data connection from port 20 reaches the client.
    let mut syn = segment((REMOTE, 20), (WAN_ADDR, 1025), 1, 0, true, &[]);
    let (v, steps) = run(&mut nat, c.now, WAN, &mut syn);
    assert!(
        matches!(v, Verdict::Forward { iface: LAN, .. }),
        "{v:?} {steps:?}"
    );
    assert_eq!(seen(&syn).dst, (HOST_A, 1025));
    // One-shot: a second connection (another source port) is unsolicited.
    let mut syn = segment((REMOTE, 2020), (WAN_ADDR, 1025), 1, 0, true, &[]);
    let (v, _) = run(&mut nat, c.now, WAN, &mut syn);
    assert!(!forwarded(v));
}

#[test]
fn active_ftp_without_the_alg_leaks_the_private_address() {
    let mut nat = ftp_masq(false);
    let (client, server) = ftp_ends();
    let mut c = Conn::open(&mut nat, client, server, (REMOTE, 21));
    let got = c.send(&mut nat, 0, b"PORT 192,168,1,10,4,1\r\n", &[1460]);
    assert_eq!(got, b"PORT 192,168,1,10,4,1\r\n");
    let mut syn = segment((REMOTE, 20), (WAN_ADDR, 1025), 1, 0, true, &[]);
    let (v, _) = run(&mut nat, c.now, WAN, &mut syn);
    assert!(!forwarded(v));
}

#[test]
fn passive_ftp_227_from_an_inside_server_is_rewritten() {
    let mut nat = ftp_masq(true);
    let client = End {
        addr: REMOTE,
        port: 5555,
        iface: WAN,
        isn: 1,
    };
    let server = End {
        addr: HOST_B,
        port: 21,
        iface: LAN,
        isn: 77,
    };
    let mut c = Conn::open(&mut nat, client, server, (WAN_ADDR, 21));
    c.send(&mut nat, 0, b"PASV\r\n", &[1460]);
    let got = c.send(
        &mut nat,
        1,
        b"227 Entering Passive Mode (192,168,1,20,195,80).\r\n",
        &[10],
    );
    assert_eq!(
        got,
        b"227 Entering Passive Mode (203,0,113,1,195,80).\r\n".to_vec()
    );
    let mut syn = segment((REMOTE, 5556), (WAN_ADDR, 50000), 1, 0, true, &[]);
    let (v, _) = run(&mut nat, c.now, WAN, &mut syn);
    assert!(matches!(v, Verdict::Forward { iface: LAN, .. }));
    assert_eq!(seen(&syn).dst, (HOST_B, 50000));
    // EPSV keeps the address out of the text; only the pinhole matters.
    let got = c.send(
        &mut nat,
        1,
        b"229 Entering Extended Passive Mode (|||50001|)\r\n",
        &[1460],
    );
    assert_eq!(
        got,
        b"229 Entering Extended Passive Mode (|||50001|)\r\n".to_vec()
    );
    let mut syn = segment((REMOTE, 5557), (WAN_ADDR, 50001), 1, 0, true, &[]);
    let (v, _) = run(&mut nat, c.now, WAN, &mut syn);
    assert!(matches!(v, Verdict::Forward { iface: LAN, .. }));
}

#[test]
fn eprt_split_across_segments_is_rewritten_whole() {
    let mut nat = ftp_masq(true);
    let client = End {
        addr: HOST_A,
        port: 3000,
        iface: LAN,
        isn: u32::MAX - 3, // sequence numbers wrap mid-stream
    };
    let server = End {
        addr: REMOTE,
        port: 21,
        iface: WAN,
        isn: 5000,
    };
    let mut c = Conn::open(&mut nat, client, server, (REMOTE, 21));
    let got = c.send(
        &mut nat,
        0,
        b"NOOP\r\nEPRT |1|192.168.1.10|6000|\r\nNOOP\r\n",
        &[9, 4],
    );
    assert_eq!(
        got,
        b"NOOP\r\nEPRT |1|203.0.113.1|6000|\r\nNOOP\r\n".to_vec()
    );
}

#[test]
fn ept_lookup_responses_have_their_towers_rewritten_too() {
    let mut nat = epm_router(true);
    let mut c = Conn::open(&mut nat, outlook(), exchange(135), (WAN_ADDR, 135));
    c.send(
        &mut nat,
        0,
        &[bind(1), ept_lookup_request(7)].concat(),
        &[1460],
    );
    let entries = vec![
        (tower(EMSMDB_UUID, 1100, EXCHANGE), "Exchange store"),
        (tower(EMSMDB_UUID, 1101, EXCHANGE), ""),
    ];
    let stub = ept_lookup_stub(&entries);
    let resp = response(7, &stub, 4096);
    let got = c.send(&mut nat, 1, &resp, &[33]);
    // Both towers now name the external address; the annotations survive.
    let text = alg_events(&c.steps)
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>();
    assert_eq!(
        text.iter()
            .filter(|t| t.starts_with("rewrote tower floor 5 192.168.1.10 → 203.0.113.1"))
            .count(),
        2,
        "{text:?}"
    );
    assert_ne!(got, resp);
    let inside = |b: &[u8]| b.windows(4).filter(|w| *w == EXCHANGE.octets()).count();
    assert_eq!(inside(&got), 0, "no private address left in the answer");
    assert!(got.windows(14).any(|w| w == b"Exchange store"));
}

#[test]
fn malformed_dcerpc_under_the_drop_policy_is_dropped_and_says_so() {
    let mut cfg = config(natsim_nat::Behaviour::linux()).alg(AlgKind::Epm);
    cfg.algs.policy = natsim_nat::AlgPolicy::Drop;
    cfg.rules.forward(
        "epm",
        WAN,
        Proto::Tcp,
        PortRange::single(135),
        EXCHANGE,
        None,
    );
    let mut nat = NatEngine::new(cfg).unwrap();
    let mut c = Conn::open(&mut nat, outlook(), exchange(135), (WAN_ADDR, 135));
    c.send(
        &mut nat,
        0,
        &[bind(1), ept_map_request(2)].concat(),
        &[1460],
    );
    // Version 4 is not DCE/RPC v5: malformed.
    let mut bad = response(
        2,
        &ept_map_stub(&[tower(EMSMDB_UUID, 1097, EXCHANGE)]),
        4096,
    );
    bad[0] = 4;
    let mut f = segment(
        (EXCHANGE, 135),
        c.server_sees,
        exchange(135).isn + 1,
        c.rcv_next[1],
        false,
        &bad,
    );
    let (v, steps) = run(&mut nat, c.now, LAN, &mut f);
    assert_eq!(v, Verdict::Drop(DropReason::AlgBlocked));
    assert!(alg_events(&steps).contains(&AlgEvent::Blocked));
}

/// The `engine_replay` fuzz finding, at the engine: a PORT line that shrinks
/// in a packet with the IPv4 reserved flag bit and TCP's reserved bits set.
/// The engine rewrites only what it must, so both stay as sent, and the
/// checksums it recomputes for the new length verify over the raw bytes.
#[test]
fn reserved_header_bits_survive_an_alg_resize() {
    let mut nat = ftp_masq(true);
    let (client, server) = ftp_ends();
    let c = Conn::open(&mut nat, client, server, (REMOTE, 21));
    let line = b"PORT 192,168,1,10,240,39\r\n";
    let mut f = segment((HOST_A, 3000), (REMOTE, 21), 101, 5001, false, line);
    f[14 + 6] |= 0x80; // IPv4 flags: reserved ("evil") bit
    f[14 + 20 + 12] |= 0x0e; // TCP: the three reserved bits
    f[24..26].fill(0);
    let ip_sum = natsim_nat::checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&ip_sum.to_be_bytes());
    f[14 + 20 + 16..14 + 20 + 18].fill(0);
    let len = u16::try_from(f.len() - 34).unwrap();
    let sum = natsim_nat::checksum::sum(
        natsim_nat::checksum::pseudo_header_sum(HOST_A, REMOTE, 6, len),
        &f[34..],
    );
    f[50..52].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    verify_checksums(&f).unwrap();
    let (v, steps) = run(&mut nat, c.now, LAN, &mut f);
    assert!(forwarded(v), "{v:?} {steps:?}");
    verify_checksums(&f).unwrap();
    assert_eq!(f[14 + 6] & 0x80, 0x80, "reserved flag bit kept");
    assert_eq!(f[14 + 20 + 12] & 0x0e, 0x0e, "TCP reserved bits kept");
    assert_eq!(seen(&f).payload, b"PORT 203,0,113,1,240,39\r\n");
}

/// A PORT rewrite that grows the line (192,168,1,10 becomes the 13-digit
/// 203,0,113,100) in a segment already at the IPv4 maximum: the total
/// length field (16 bits, RFC 791) cannot say the result, so the segment
/// is refused with its own verdict and trace step instead of wrapping. One
/// byte less fits exactly and goes out at 65535 bytes with valid checksums.
#[test]
fn alg_growth_past_the_ipv4_maximum_is_refused_not_wrapped() {
    let pool = Ipv4Addr::new(203, 0, 113, 100);
    for (filler_tail, fits) in [(&b""[..], false), (&b"ABC\r\n"[..], true)] {
        let mut c = config(natsim_nat::Behaviour::linux());
        c.rules.push(natsim_nat::Rule {
            name: "snat".into(),
            chain: natsim_nat::Chain::Postrouting,
            matches: natsim_nat::Match {
                out_iface: Some(WAN),
                ..Default::default()
            },
            action: natsim_nat::Action::Snat(natsim_nat::SnatPool {
                first: pool,
                last: pool,
                ports: PortRange::ALL,
                pooling: natsim_nat::Pooling::Paired,
                random: natsim_nat::PortFlag::Profile,
            }),
        });
        let mut nat = NatEngine::new(c.alg(AlgKind::Ftp)).unwrap();
        let (client, server) = ftp_ends();
        let conn = Conn::open(&mut nat, client, server, (REMOTE, 21));
        let line = b"PORT 192,168,1,10,4,1\r\n";
        let noops = if fits { 10_911 } else { 10_912 };
        let mut payload = b"NOOP\r\n".repeat(noops);
        payload.extend_from_slice(filler_tail);
        payload.extend_from_slice(line);
        let ip_total = 20 + 20 + payload.len();
        assert_eq!(ip_total, if fits { 65_534 } else { 65_535 });
        let mut f = segment((HOST_A, 3000), (REMOTE, 21), 101, 5001, false, &payload);
        let (v, steps) = run(&mut nat, conn.now, LAN, &mut f);
        if fits {
            assert!(forwarded(v), "{v:?}");
            assert_eq!(u16::from_be_bytes([f[16], f[17]]), 65_535);
            verify_checksums(&f).unwrap();
            assert!(f.ends_with(b"PORT 203,0,113,100,4,1\r\n"));
        } else {
            assert_eq!(v, Verdict::Drop(DropReason::AlgTooLong));
            assert!(alg_events(&steps).contains(&AlgEvent::TooLong { total: 65_536 }));
        }
    }
}
