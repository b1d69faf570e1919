//! IP fragments through the engine (RFC 791, RFC 4787 REQ-14, Linux's
//! nf_defrag_ipv4): the invariant is that fragmenting commutes with
//! translation. Cutting a datagram and translating the pieces, in any
//! order, gives exactly the pieces of the translated datagram (translate
//! handling), or the translated datagram itself (reassemble handling).

mod common;
use common::*;
use natsim_nat::wire::fragment::split;
use natsim_nat::*;
use proptest::prelude::*;

fn with(fragments: FragmentHandling) -> NatEngine {
    let mut b = Behaviour::rfc_recommended();
    b.fragments = fragments;
    masq(b)
}

/// The frame with Don't Fragment cleared (etherparse sets it), as a host
/// that lets routers fragment sends it.
fn may_fragment(mut f: Vec<u8>) -> Vec<u8> {
    f[20] &= !0x40;
    f[24..26].copy_from_slice(&[0, 0]);
    let c = natsim_nat::checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + 3) as u8).collect()
}

/// Runs `frames` through `nat` in order; returns every frame that left
/// (verdict frames and released ones, in the order they came out) and the
/// verdicts of the frames themselves.
fn through(
    nat: &mut NatEngine,
    ingress: IfaceId,
    frames: Vec<Vec<u8>>,
) -> (Vec<Vec<u8>>, Vec<Verdict>) {
    let mut out = Vec::new();
    let mut verdicts = Vec::new();
    for mut f in frames {
        let v = nat.process(Instant::ZERO, ingress, &mut f, &routes, &mut ());
        if matches!(v, Verdict::Forward { .. } | Verdict::Local) {
            out.push(f);
        }
        verdicts.push(v);
        while let Some(r) = nat.take_released() {
            assert_eq!(r.ingress, ingress);
            assert!(
                matches!(r.verdict, Verdict::Forward { .. }),
                "{:?}",
                r.verdict
            );
            out.push(r.frame);
        }
    }
    (out, verdicts)
}

/// What the engine makes of the unfragmented datagram.
fn translated_whole(fragments: FragmentHandling, frame: &[u8]) -> Vec<u8> {
    let mut nat = with(fragments);
    let mut f = frame.to_vec();
    fwd(&mut nat, Instant::ZERO, LAN, &mut f);
    f
}

#[test]
fn in_order_fragments_translate_like_the_whole_datagram() {
    let whole = may_fragment(udp((HOST_A, 5000), (REMOTE, 53), &payload(3000)));
    let expect = split(&translated_whole(FragmentHandling::Translate, &whole), 1500).unwrap();
    let mut nat = with(FragmentHandling::Translate);
    let (out, verdicts) = through(&mut nat, LAN, split(&whole, 1500).unwrap());
    assert_eq!(verdicts.len(), 3);
    assert_eq!(out, expect);
    for f in &out {
        verify_checksums(f).unwrap();
    }
}

#[test]
fn fragments_before_their_first_are_held_and_released_behind_it() {
    let whole = may_fragment(udp((HOST_A, 5000), (REMOTE, 53), &payload(3000)));
    let expect = split(&translated_whole(FragmentHandling::Translate, &whole), 1500).unwrap();
    let mut pieces = split(&whole, 1500).unwrap();
    pieces.reverse();
    let mut nat = with(FragmentHandling::Translate);
    let mut steps = Vec::new();
    let (out, verdicts) = {
        let mut out = Vec::new();
        let mut vs = Vec::new();
        for mut f in pieces {
            vs.push(nat.process(Instant::ZERO, LAN, &mut f, &routes, &mut steps));
            if matches!(vs.last(), Some(Verdict::Forward { .. })) {
                out.push(f);
            }
            while let Some(r) = nat.take_released() {
                out.push(r.frame);
            }
        }
        (out, vs)
    };
    assert_eq!(verdicts[..2], [Verdict::Held, Verdict::Held]);
    assert!(matches!(verdicts[2], Verdict::Forward { .. }));
    // The first goes out first, then the held ones in offset order.
    assert_eq!(out, expect);
    assert!(steps.contains(&NatStep::Fragment {
        event: FragmentEvent::Released { count: 2 }
    }));
}

#[test]
fn replies_in_fragments_reach_the_inside_host() {
    let mut nat = with(FragmentHandling::Translate);
    let mut q = udp((HOST_A, 5000), (REMOTE, 53), b"query");
    fwd(&mut nat, Instant::ZERO, LAN, &mut q);
    let port = flow_of(&q).src.port;
    let answer = may_fragment(udp((REMOTE, 53), (WAN_ADDR, port), &payload(4000)));
    let (out, _) = through(&mut nat, WAN, split(&answer, 1492).unwrap());
    assert_eq!(out.len(), 3);
    for f in &out {
        assert_eq!(&f[30..34], &HOST_A.octets());
        verify_checksums(f).unwrap();
    }
    assert_eq!(u16::from_be_bytes([out[0][36], out[0][37]]), 5000);
}

#[test]
fn linux_reassembles_and_asks_for_the_largest_fragment_size() {
    let whole = may_fragment(udp((HOST_A, 5000), (REMOTE, 53), &payload(3000)));
    let expect = translated_whole(FragmentHandling::Reassemble, &whole);
    let mut pieces = split(&whole, 1400).unwrap();
    pieces.swap(0, 2);
    let mut nat = with(FragmentHandling::Reassemble);
    let (out, verdicts) = through(&mut nat, LAN, pieces);
    assert_eq!(verdicts[..2], [Verdict::Held, Verdict::Held]);
    assert_eq!(out, [expect]);
    assert_eq!(nat.take_refragment_size(), Some(1396));
    assert_eq!(nat.take_refragment_size(), None);
    verify_checksums(&out[0]).unwrap();
}

#[test]
fn a_profile_that_drops_fragments_drops_every_one() {
    let whole = may_fragment(udp((HOST_A, 5000), (REMOTE, 53), &payload(3000)));
    let mut nat = with(FragmentHandling::Drop);
    let (out, verdicts) = through(&mut nat, LAN, split(&whole, 1500).unwrap());
    assert!(out.is_empty());
    assert!(verdicts
        .iter()
        .all(|v| *v == Verdict::Drop(DropReason::Fragment)));
}

#[test]
fn an_unsolicited_first_fragment_drops_the_rest_of_its_datagram() {
    let mut nat = with(FragmentHandling::Translate);
    let probe = may_fragment(udp((REMOTE, 53), (WAN_ADDR, 40000), &payload(3000)));
    let (out, verdicts) = through(&mut nat, WAN, split(&probe, 1500).unwrap());
    assert!(out.is_empty());
    assert!(verdicts[0].is_drop());
    assert!(verdicts.iter().all(|v| *v == verdicts[0]), "{verdicts:?}");
}

#[test]
fn a_lone_later_fragment_expires_after_30_seconds() {
    let whole = may_fragment(udp((HOST_A, 5000), (REMOTE, 53), &payload(3000)));
    let later = split(&whole, 1500).unwrap().pop().unwrap();
    for handling in [FragmentHandling::Translate, FragmentHandling::Reassemble] {
        let mut nat = with(handling);
        let (_, v) = through(&mut nat, LAN, vec![later.clone()]);
        assert_eq!(v, [Verdict::Held]);
        let deadline = Instant::ZERO + FRAGMENT_TIMEOUT;
        assert_eq!(nat.poll_at(), Some(deadline));
        let mut steps = Vec::new();
        nat.handle_timeout(deadline, &mut steps);
        assert_eq!(
            steps,
            [NatStep::Dropped {
                reason: DropReason::FragmentExpired
            }]
        );
        assert_eq!(nat.poll_at(), None);
    }
}

fn handling() -> impl Strategy<Value = FragmentHandling> {
    prop_oneof![
        Just(FragmentHandling::Translate),
        Just(FragmentHandling::Reassemble)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(proptest_cases() / 10))]

    /// Fragmenting commutes with translation, in any arrival order, for
    /// UDP and ICMP echo, outbound and for the reply.
    #[test]
    fn fragmenting_commutes_with_translation(
        handling in handling(),
        len in 1usize..6000,
        mtu in 68usize..1500,
        order in any::<prop::sample::Index>(),
        echo in any::<bool>(),
        reply in any::<bool>(),
    ) {
        let data = payload(len);
        let mut nat = with(handling);
        let mut fresh = with(handling);
        let (whole, ingress) = if !reply {
            let f = if echo {
                echo_with(HOST_A, REMOTE, 77, true, &data)
            } else {
                may_fragment(udp((HOST_A, 5000), (REMOTE, 53), &data))
            };
            (f, LAN)
        } else {
            // Open the mapping on both engines first.
            let mut q = if echo {
                echo_with(HOST_A, REMOTE, 77, true, b"q")
            } else {
                udp((HOST_A, 5000), (REMOTE, 53), b"q")
            };
            let mut q2 = q.clone();
            fwd(&mut nat, Instant::ZERO, LAN, &mut q);
            fwd(&mut fresh, Instant::ZERO, LAN, &mut q2);
            prop_assert_eq!(&q, &q2);
            let port = flow_of(&q).src.port;
            let f = if echo {
                echo_with(REMOTE, WAN_ADDR, port, false, &data)
            } else {
                may_fragment(udp((REMOTE, 53), (WAN_ADDR, port), &data))
            };
            (f, WAN)
        };
        let mut expect_whole = whole.clone();
        let v = fresh.process(Instant::ZERO, ingress, &mut expect_whole, &routes, &mut ());
        prop_assert!(matches!(v, Verdict::Forward { .. }), "{:?}", v);
        let mut pieces = split(&whole, mtu).unwrap();
        let k = order.index(pieces.len());
        pieces.rotate_left(k);
        let (out, _) = through(&mut nat, ingress, pieces);
        for f in &out {
            prop_assert!(verify_checksums(f).is_ok());
        }
        match handling {
            FragmentHandling::Reassemble => prop_assert_eq!(out, vec![expect_whole]),
            _ => {
                let mut expect = split(&expect_whole, mtu).unwrap();
                let mut out = out;
                expect.sort();
                out.sort();
                prop_assert_eq!(out, expect);
            }
        }
    }
}

/// An ICMP echo with `data` as its payload.
fn echo_with(
    src: std::net::Ipv4Addr,
    dst: std::net::Ipv4Addr,
    id: u16,
    request: bool,
    data: &[u8],
) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(MAC_HOST, MAC_ROUTER).ipv4(
        src.octets(),
        dst.octets(),
        64,
    );
    let b = if request {
        b.icmpv4_echo_request(id, 1)
    } else {
        b.icmpv4_echo_reply(id, 1)
    };
    let mut v = Vec::new();
    b.write(&mut v, data).unwrap();
    may_fragment(v)
}

/// The first fragment of a connection's first packet, for a connection an
/// ALG would inspect, is refused (the helper must see whole segments) and
/// leaves no connection behind: Linux frees an entry whose packet a
/// helper dropped before nf_conntrack_confirm.
#[test]
fn an_alg_connection_whose_first_packet_is_refused_is_not_kept() {
    let mut b = Behaviour::linux();
    b.fragments = FragmentHandling::Translate;
    let mut c = config(b);
    c.rules.masquerade("masq", WAN, None);
    let c = c.alg(AlgKind::Ftp);
    let mut nat = NatEngine::new(c).unwrap();
    let syn = may_fragment(tcp((HOST_A, 3000), (REMOTE, 21), "S", &payload(2000)));
    let first = split(&syn, 1500).unwrap().swap_remove(0);
    let mut steps: Vec<NatStep> = Vec::new();
    let mut f = first;
    let v = nat.process(Instant::ZERO, LAN, &mut f, &routes, &mut steps);
    assert_eq!(v, Verdict::Drop(DropReason::AlgFragment));
    assert_eq!(nat.connection_count(), 0);
    assert_eq!(nat.stats().tcp.unconfirmed, 1);
    assert!(steps.iter().any(|s| matches!(
        s,
        NatStep::ConnEnded {
            reason: EndReason::Unconfirmed,
            ..
        }
    )));
}
