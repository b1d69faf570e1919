//! `process_batch` gives exactly what `process` gives, frame by frame:
//! verdicts, rewritten bytes, trace steps and counters, over mixed batches
//! (new flows, established flows, ICMP errors quoting both, garbage that
//! drops, FTP control connections the ALG inspects and rewrites, and IP
//! fragments held, released and reassembled).

mod common;
use common::*;
use natsim_nat::*;
use proptest::prelude::*;
use std::net::Ipv4Addr;

#[derive(Clone, Debug)]
enum Pkt {
    /// Inside host → remote (new the first time, established after).
    Out {
        host: u8,
        sport: u16,
        remote: u8,
        proto: u8,
    },
    /// Remote → the external address (a reply when the port was mapped).
    In { remote: u8, port: u16, proto: u8 },
    /// An ICMP error from a remote quoting an outbound packet.
    Error { host: u8, sport: u16, remote: u8 },
    /// An inside FTP client's segment to port 21 (SYN or a PORT command).
    Ftp { host: u8, syn: bool, seq: u32 },
    /// One fragment (`piece` of 3) of an inside host's 1400-byte UDP
    /// datagram cut at 600 bytes: held, released, reassembled or followed
    /// as the profile says.
    Frag { host: u8, id: u8, piece: u8 },
    /// Bytes that are no frame.
    Garbage(Vec<u8>),
}

fn pkt() -> impl Strategy<Value = Pkt> {
    let port = prop_oneof![Just(1000u16), Just(1001), Just(5000)];
    prop_oneof![
        (0u8..3, port.clone(), 0u8..2, 0u8..3).prop_map(|(host, sport, remote, proto)| Pkt::Out {
            host,
            sport,
            remote,
            proto
        }),
        (0u8..2, port.clone(), 0u8..2).prop_map(|(remote, port, proto)| Pkt::In {
            remote,
            port,
            proto
        }),
        (0u8..3, port, 0u8..2).prop_map(|(host, sport, remote)| Pkt::Error {
            host,
            sport,
            remote
        }),
        (
            0u8..2,
            any::<bool>(),
            prop_oneof![Just(101u32), Just(124), any::<u32>()]
        )
            .prop_map(|(host, syn, seq)| Pkt::Ftp { host, syn, seq }),
        (0u8..2, 0u8..2, 0u8..3).prop_map(|(host, id, piece)| Pkt::Frag { host, id, piece }),
        prop::collection::vec(any::<u8>(), 0..80).prop_map(Pkt::Garbage),
    ]
}

fn host(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 1, 10 + i)
}
fn remote(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, 7 + i)
}

fn frame(p: &Pkt) -> (IfaceId, Vec<u8>) {
    let out = |host: u8, sport: u16, remote_: u8, proto: u8| match proto {
        0 => udp(
            (host_addr(host), sport),
            (remote(remote_), 3478),
            b"datagram",
        ),
        1 => tcp((host_addr(host), sport), (remote(remote_), 80), "S", b""),
        _ => ping(host_addr(host), remote(remote_), sport, true),
    };
    fn host_addr(i: u8) -> Ipv4Addr {
        host(i)
    }
    match p {
        Pkt::Out {
            host,
            sport,
            remote,
            proto,
        } => (LAN, out(*host, *sport, *remote, *proto)),
        Pkt::In {
            remote: r,
            port,
            proto,
        } => (
            WAN,
            match proto {
                0 => udp((remote(*r), 3478), (WAN_ADDR, *port), b"answer"),
                _ => tcp((remote(*r), 80), (WAN_ADDR, *port), "SA", b""),
            },
        ),
        Pkt::Error {
            host,
            sport,
            remote: r,
        } => {
            // The remote quotes the packet as it saw it: from the NAT.
            let mut seen = out(*host, *sport, *r, 0);
            seen[26..30].copy_from_slice(&WAN_ADDR.octets());
            (WAN, icmp_error(remote(*r), WAN_ADDR, 3, 3, &seen, 28))
        }
        Pkt::Ftp { host: h, syn, seq } => {
            let payload: &[u8] = if *syn {
                b""
            } else {
                b"PORT 192,168,1,10,4,1\r\n"
            };
            let mut b = etherparse::PacketBuilder::ethernet2(MAC_HOST, MAC_ROUTER)
                .ipv4(host(*h).octets(), remote(0).octets(), 64)
                .tcp(3000, 21, *seq, 65535);
            b = if *syn { b.syn() } else { b.ack(5001) };
            let mut v = Vec::new();
            b.write(&mut v, payload).unwrap();
            (LAN, v)
        }
        Pkt::Frag { host: h, id, piece } => {
            let mut whole = udp((host(*h), 4000), (remote(0), 3478), &[7u8; 1400]);
            // Clear DF (etherparse sets it), set the IP ID, fix the checksum.
            whole[20] &= !0x40;
            whole[18..20].copy_from_slice(&u16::from(*id).to_be_bytes());
            whole[24..26].copy_from_slice(&[0, 0]);
            let c = natsim_nat::checksum::checksum(&whole[14..34]);
            whole[24..26].copy_from_slice(&c.to_be_bytes());
            let pieces = natsim_nat::wire::fragment::split(&whole, 600).unwrap();
            (LAN, pieces[usize::from(*piece)].clone())
        }
        Pkt::Garbage(bytes) => (LAN, bytes.clone()),
    }
}

fn engine(b: Behaviour) -> NatEngine {
    let mut c = config(b);
    c.capacity = 8; // small, so evictions and table-full drops happen too
    c.rules.masquerade("masq", WAN, None);
    NatEngine::new(c.alg(AlgKind::Ftp)).unwrap()
}

/// Verdicts, frames, steps, counters, and the fragments released.
type Outcome = (
    Vec<Verdict>,
    Vec<Vec<u8>>,
    Vec<NatStep>,
    Stats,
    Vec<Released>,
);

/// The same frames in batches: runs of one ingress, cut at `cuts`, each
/// batch at the time of its first frame; the one-by-one run is given the
/// same times.
fn batched(b: &Behaviour, pkts: &[(IfaceId, Vec<u8>)], cuts: &[bool]) -> (Outcome, Vec<u64>) {
    let mut nat = engine(b.clone());
    // Staged with prefetch however small the table: that path is the one
    // that could differ from `process`.
    nat.set_batch_prefetch_from(0);
    let mut steps = Vec::new();
    let mut verdicts = Vec::new();
    let mut frames = Vec::new();
    let mut times = Vec::new();
    let mut released = Vec::new();
    let mut i = 0;
    while i < pkts.len() {
        let mut j = i + 1;
        while j < pkts.len() && pkts[j].0 == pkts[i].0 && !cuts[j] {
            j += 1;
        }
        let now = Instant::from_millis(i as u64 * 10);
        let mut batch: Vec<Vec<u8>> = pkts[i..j].iter().map(|p| p.1.clone()).collect();
        let mut vs = Vec::new();
        nat.process_batch(now, pkts[i].0, &mut batch, &mut vs, &routes, &mut steps);
        assert_eq!(vs.len(), batch.len());
        verdicts.extend(vs);
        frames.extend(batch);
        released.extend(std::iter::from_fn(|| nat.take_released()));
        times.extend(std::iter::repeat_n(i as u64 * 10, j - i));
        i = j;
    }
    (
        (verdicts, frames, steps, nat.stats().clone(), released),
        times,
    )
}

fn one_by_one_at(b: &Behaviour, pkts: &[(IfaceId, Vec<u8>)], times: &[u64]) -> Outcome {
    let mut nat = engine(b.clone());
    let mut steps = Vec::new();
    let mut verdicts = Vec::new();
    let mut frames = Vec::new();
    let mut released = Vec::new();
    for ((ingress, f), t) in pkts.iter().zip(times) {
        let mut f = f.clone();
        verdicts.push(nat.process(
            Instant::from_millis(*t),
            *ingress,
            &mut f,
            &routes,
            &mut steps,
        ));
        frames.push(f);
        released.extend(std::iter::from_fn(|| nat.take_released()));
    }
    (verdicts, frames, steps, nat.stats().clone(), released)
}

/// Every part of the two outcomes is equal, each named when it is not.
fn same(got: &Outcome, want: &Outcome) -> Result<(), TestCaseError> {
    prop_assert_eq!(&got.0, &want.0, "verdicts");
    prop_assert_eq!(&got.1, &want.1, "frames");
    prop_assert_eq!(&got.2, &want.2, "trace steps");
    prop_assert_eq!(&got.3, &want.3, "counters");
    prop_assert_eq!(&got.4, &want.4, "released fragments");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: proptest_cases() / 4, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn a_batch_gives_exactly_what_one_frame_at_a_time_gives(
        profile in prop::sample::select(Behaviour::PROFILE_NAMES.to_vec()),
        pkts in prop::collection::vec(pkt(), 1..60),
        cuts in prop::collection::vec(any::<bool>(), 60),
    ) {
        let b = Behaviour::by_name(profile).unwrap();
        let frames: Vec<(IfaceId, Vec<u8>)> = pkts.iter().map(frame).collect();
        let (got, times) = batched(&b, &frames, &cuts);
        let want = one_by_one_at(&b, &frames, &times);
        same(&got, &want)?;
    }

    /// Batches longer than the pipeline's window and its stage distances
    /// (`engine/batch.rs`), so its prologue, steady state, drain and
    /// window boundaries are all crossed: every frame is given to one
    /// ingress in one call.
    #[test]
    fn a_long_batch_gives_exactly_what_one_frame_at_a_time_gives(
        profile in prop::sample::select(Behaviour::PROFILE_NAMES.to_vec()),
        pkts in prop::collection::vec(pkt(), 1..200),
        inside in any::<bool>(),
    ) {
        let b = Behaviour::by_name(profile).unwrap();
        let ingress = if inside { LAN } else { WAN };
        let frames: Vec<(IfaceId, Vec<u8>)> =
            pkts.iter().map(|p| (ingress, frame(p).1)).collect();
        let (got, times) = batched(&b, &frames, &[false; 200]);
        let want = one_by_one_at(&b, &frames, &times);
        same(&got, &want)?;
    }
}
