//! Cost of the EPM ALG per TCP 135 PDU, against the plain engine path.
//!
//! Run: `cargo bench --bench alg`. Both variants process the same frame: a
//! one-tower `ept_map` response (a 160-byte PDU) from the inside server, on
//! a connection whose handshake, bind and request the engine has already
//! seen. `plain` has no ALG (header translation only); `epm-alg` parses the
//! PDU, rewrites the tower, opens a pinhole and recomputes the checksum.

#[path = "../crates/natsim-nat/tests/alg_harness/mod.rs"]
mod alg_harness;
#[path = "../crates/natsim-nat/tests/common/mod.rs"]
mod common;

use alg_harness::*;
use common::*;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use natsim::nat::{AlgKind, Behaviour, NatEngine, PortRange, Proto};
use std::hint::black_box;

fn prepared(alg: bool) -> (NatEngine, Vec<u8>, natsim::nat::Instant) {
    let mut c = config(Behaviour::linux());
    c.rules.masquerade("masq", WAN, None);
    c.rules
        .forward("epm", WAN, Proto::Tcp, PortRange::single(135), HOST_A, None);
    if alg {
        c = c.alg(AlgKind::Epm);
    }
    let mut nat = NatEngine::new(c).unwrap();
    let client = End {
        addr: REMOTE,
        port: 40000,
        iface: WAN,
        isn: 11,
    };
    let server = End {
        addr: HOST_A,
        port: 135,
        iface: LAN,
        isn: 99,
    };
    let mut conn = Conn::open(&mut nat, client, server, (WAN_ADDR, 135));
    conn.send(
        &mut nat,
        0,
        &[bind(1), ept_map_request(2)].concat(),
        &[1460],
    );
    let resp = response(2, &ept_map_stub(&[tower(EMSMDB_UUID, 1097, HOST_A)]), 4096);
    let frame = segment(
        (HOST_A, 135),
        conn.server_sees,
        100,
        conn.rcv_next[1],
        false,
        &resp,
    );
    (nat, frame, conn.now)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("epm_response_pdu");
    g.throughput(Throughput::Elements(1));
    for (name, alg) in [("plain", false), ("epm-alg", true)] {
        g.bench_function(name, |b| {
            b.iter_batched(
                || prepared(alg),
                |(mut nat, mut frame, now)| {
                    let v = nat.process(now, LAN, &mut frame, &routes, &mut ());
                    black_box((v, frame, nat))
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
