//! Simulator throughput: simulated frames per wall-second during a bulk TCP
//! transfer host → router (NAT) → host, and the wall time of a two-hour
//! idle period. Run: `cargo bench -p natsim-sim --bench sim`.
//!
//! The baseline in the same run is `engine-only`: the same number of frames
//! pushed straight through `NatEngine::process`, i.e. what the simulator
//! adds around the engine (smoltcp stacks, event queue, switch).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use natsim_nat::{Behaviour, IfaceId, PortRange, Proto, Role};
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
    let sink = sim.add_app(inside, Box::new(TcpSink::new(9000))).unwrap();
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
