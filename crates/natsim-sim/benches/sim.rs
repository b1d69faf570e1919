//! Simulator throughput: simulated frames per wall-second during a bulk TCP
//! transfer host → router (NAT) → host, and the wall time of a two-hour
//! idle period. Run: `cargo bench -p natsim-sim --bench sim`.
//!
//! The baseline in the same run is `engine-only`: the same number of frames
//! pushed straight through `NatEngine::process`, i.e. what the simulator
//! adds around the engine (smoltcp stacks, event queue, switch).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use natsim_nat::{
    Behaviour, IfaceId, Instant, NatConfig, NatEngine, PortRange, Proto, Role, Route, Verdict,
};
use natsim_sim::probe::{TcpSender, TcpSink};
use natsim_sim::*;
use std::net::Ipv4Addr;
use std::time::Duration;

const BYTES: usize = 4 << 20;

fn world(tracing: bool) -> (Sim, AppId) {
    let mut sim = Sim::builder().seed(1).tracing(tracing).build();
    let fast = LinkParams {
        latency: Duration::from_micros(50),
        bandwidth_bps: 1_000_000_000,
        ..LinkParams::default()
    };
    let lan = sim.segment("lan", fast.clone());
    let wan = sim.segment("wan", fast);
    sim.router(
        "fw",
        RouterConfig::new()
            .interface("lan0", lan, Ipv4Addr::new(192, 168, 1, 1), 24, Role::Inside)
            .interface(
                "wan0",
                wan,
                Ipv4Addr::new(203, 0, 113, 1),
                24,
                Role::Outside,
            )
            .nat(Behaviour::linux(), |c| {
                c.rules.masquerade("masq", IfaceId(1), None);
                c.rules.forward(
                    "bulk",
                    IfaceId(1),
                    Proto::Tcp,
                    PortRange::single(9000),
                    Ipv4Addr::new(192, 168, 1, 10),
                    None,
                );
            }),
    )
    .unwrap();
    let inside = sim
        .host(
            "server",
            HostConfig::new(lan, Ipv4Addr::new(192, 168, 1, 10), 24)
                .gateway(Ipv4Addr::new(192, 168, 1, 1)),
        )
        .unwrap();
    let outside = sim
        .host(
            "client",
            HostConfig::new(wan, Ipv4Addr::new(203, 0, 113, 7), 24),
        )
        .unwrap();
    // Reserve the sink's buffer and touch its pages: measure the network,
    // not Vec doubling or the kernel zeroing 1024 fresh pages on first
    // write (a fifth of a transfer's wall time in `perf`).
    let mut receiver = TcpSink::new(9000);
    receiver.received.resize(BYTES, 0);
    receiver.received.clear();
    let sink = sim.add_app(inside, Box::new(receiver)).unwrap();
    sim.add_app(
        outside,
        Box::new(TcpSender::new(
            (Ipv4Addr::new(203, 0, 113, 1), 9000),
            vec![0x5a; BYTES],
        )),
    )
    .unwrap();
    sim.set_capture(false);
    (sim, sink)
}

fn bench(c: &mut Criterion) {
    // Frames one transfer takes, to report throughput in frames.
    let (mut probe, sink) = world(false);
    probe.run_until_pred(Duration::from_secs(600), |s| {
        s.app::<TcpSink>(sink)
            .is_some_and(|k| k.received.len() == BYTES)
    });
    let frames = probe.frames_delivered();
    eprintln!("one {BYTES}-byte transfer = {frames} frames delivered");

    let mut g = c.benchmark_group("bulk_tcp_through_nat");
    g.throughput(Throughput::Elements(frames));
    g.sample_size(10);
    g.bench_function("sim", |b| {
        b.iter_batched(
            || world(false),
            |(mut sim, sink)| {
                sim.run_until_pred(Duration::from_secs(600), |s| {
                    s.app::<TcpSink>(sink)
                        .is_some_and(|k| k.received.len() == BYTES)
                });
                sim
            },
            BatchSize::LargeInput,
        )
    });
    // Baseline: the same number of frames through the engine alone (a
    // full-size UDP datagram of one mapped flow, inside to outside; UDP so
    // that no TCP state machine needs a handshake first).
    let mut cfg = NatConfig::new(Behaviour::linux())
        .interface(IfaceId(0), Ipv4Addr::new(192, 168, 1, 1), 24, Role::Inside)
        .interface(IfaceId(1), Ipv4Addr::new(203, 0, 113, 1), 24, Role::Outside);
    cfg.rules.masquerade("masq", IfaceId(1), None);
    let mut nat = NatEngine::new(cfg).unwrap();
    let mut seg = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([192, 168, 1, 10], [203, 0, 113, 7], 64)
        .udp(49152, 9000)
        .write(&mut seg, &[0x5a; 1472])
        .unwrap();
    let routes = |d: Ipv4Addr| Route::Forward {
        iface: IfaceId(if d.octets()[0] == 192 { 0 } else { 1 }),
        next_hop: d,
    };
    let mut frame = seg.clone();
    let first = nat.process(Instant::ZERO, IfaceId(0), &mut frame, &routes, &mut ());
    assert!(matches!(first, Verdict::Forward { .. }), "{first:?}");
    g.bench_function("engine-only", |b| {
        b.iter(|| {
            for _ in 0..frames {
                frame.clear();
                frame.extend_from_slice(&seg);
                let v = nat.process(Instant::ZERO, IfaceId(0), &mut frame, &routes, &mut ());
                let _ = std::hint::black_box(v);
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("idle");
    g.bench_function("two_hours", |b| {
        b.iter_batched(
            || {
                let (mut sim, sink) = world(false);
                sim.run_until_pred(Duration::from_secs(600), |s| {
                    s.app::<TcpSink>(sink)
                        .is_some_and(|k| k.received.len() == BYTES)
                });
                sim
            },
            |mut sim| {
                sim.run_for(Duration::from_secs(7200));
                sim
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
