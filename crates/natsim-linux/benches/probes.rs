//! The verify probe set through natsim's engine alone, on the router of
//! scenarios/nat-types.toml's `linux` variant (masquerade) and of
//! scenarios/ftp.toml's forwarding variant: the baseline a kernel verify
//! run (`natsim verify --linux`, wall clock, in BENCHMARKS.md) compares
//! against. The same probes, the same comparison records.

use criterion::{criterion_group, criterion_main, Criterion};
use natsim_linux::{engine_only, IfaceSpec, RouterSpec, Topology};
use natsim_nat::*;
use std::net::Ipv4Addr;

fn router(forward: bool) -> Topology {
    let mut nat = NatConfig::new(Behaviour::linux())
        .interface(IfaceId(0), Ipv4Addr::new(192, 168, 1, 1), 24, Role::Inside)
        .interface(IfaceId(1), Ipv4Addr::new(203, 0, 113, 1), 24, Role::Outside);
    nat.rules.masquerade("masquerade-wan0", IfaceId(1), None);
    if forward {
        nat.rules.forward(
            "ftp",
            IfaceId(1),
            Proto::Tcp,
            PortRange::single(21),
            Ipv4Addr::new(192, 168, 1, 30),
            None,
        );
    }
    Topology::new(RouterSpec {
        name: "router".into(),
        ifaces: vec![
            IfaceSpec {
                name: "lan0".into(),
                addr: Ipv4Addr::new(192, 168, 1, 1),
                prefix_len: 24,
                role: Role::Inside,
            },
            IfaceSpec {
                name: "wan0".into(),
                addr: Ipv4Addr::new(203, 0, 113, 1),
                prefix_len: 24,
                role: Role::Outside,
            },
        ],
        nat,
    })
    .unwrap()
}

fn bench(c: &mut Criterion) {
    for (name, fw) in [
        ("probes_engine_only/masquerade", false),
        ("probes_engine_only/masquerade+forward", true),
    ] {
        let t = router(fw);
        c.bench_function(name, |b| b.iter(|| engine_only(&t).unwrap()));
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
