//! Engine hot-path benchmarks (issue: ≤ 20 ns/packet at 1k sessions,
//! ≤ 100 ns at 1M, ≥ 3× the naive baseline at 1M, ≤ 128 bytes/session).
//!
//! Run: `cargo bench --bench engine`. Every group measures, in the same run:
//! * `engine`: an established UDP flow's 64-byte frame through
//!   `NatEngine::process`, flows visited in random order;
//! * `floor`: copying the frame and fully recomputing its IPv4 and UDP
//!   checksums (the least any translator must do);
//! * `naive`: `std::collections::HashMap` keyed by the full 5-tuple, with an
//!   `etherparse::PacketHeaders` parse and re-serialisation per packet.
//!
//! Each measured packet is first copied from its pristine template into the
//! working buffer (the engine rewrites in place); all three variants pay
//! that copy. It also measures new-flow setup and prints bytes per session
//! (counted by a wrapping global allocator).

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use etherparse::{PacketBuilder, PacketHeaders, TransportHeader};
use natsim::nat::*;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator and only counts bytes; the
// benchmark needs it to report bytes per session.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(l.size(), Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        ALLOCATED.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        ALLOCATED.fetch_add(new, Ordering::Relaxed);
        ALLOCATED.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const LAN: IfaceId = IfaceId(0);
const WAN: IfaceId = IfaceId(1);
const WAN_ADDR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const GW: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 254);

fn routes(dst: Ipv4Addr) -> Route {
    if dst.octets()[0] == 10 {
        Route::Forward {
            iface: LAN,
            next_hop: dst,
        }
    } else {
        Route::Forward {
            iface: WAN,
            next_hop: GW,
        }
    }
}

fn engine(capacity: usize) -> NatEngine {
    let mut cfg = NatConfig::new(Behaviour::linux())
        .interface(LAN, Ipv4Addr::new(10, 0, 0, 1), 8, Role::Inside)
        .interface(WAN, WAN_ADDR, 24, Role::Outside);
    cfg.capacity = capacity;
    cfg.rules.masquerade("masq", WAN, None);
    NatEngine::new(cfg).unwrap()
}

/// A 64-byte UDP frame from inside session `i`.
fn frame(i: usize) -> Vec<u8> {
    let host = Ipv4Addr::from_bits(0x0a00_0000 | (1 + (i as u32 / 60_000)) << 8 | 2);
    let host = Ipv4Addr::from_bits(host.to_bits() | ((i as u32 % 250) << 16));
    let sport = 1024 + (i % 60_000) as u16;
    let remote = Ipv4Addr::new(198, 51, 100, 1 + (i % 200) as u8);
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1])
        .ipv4(host.octets(), remote.octets(), 64)
        .udp(sport, 3478);
    let payload = [0xabu8; 22]; // 14 + 20 + 8 + 22 = 64 bytes
    let mut v = Vec::with_capacity(64);
    b.write(&mut v, &payload).unwrap();
    v
}

/// An engine holding `n` established (replied) flows, their outbound
/// templates, and a random visiting order.
fn setup(n: usize) -> (NatEngine, Vec<Vec<u8>>, Vec<u32>) {
    let mut nat = engine(n + 1);
    let frames: Vec<Vec<u8>> = (0..n).map(frame).collect();
    let now = Instant::from_secs(1);
    for f in &frames {
        let mut out = f.clone();
        let v = nat.process(now, LAN, &mut out, &routes, &mut ());
        assert!(matches!(v, Verdict::Forward { .. }), "{v:?}");
        // the remote answers, so the flow is established
        let mut back = out.clone();
        for k in 0..6 {
            back.swap(k, k + 6);
        }
        swap_ip_udp(&mut back);
        let v = nat.process(now, WAN, &mut back, &routes, &mut ());
        assert!(matches!(v, Verdict::Forward { .. }), "{v:?}");
    }
    assert_eq!(nat.connection_count(), n);
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(7));
    (nat, frames, order)
}

/// Swaps source and destination addresses and ports of an IPv4/UDP frame
/// (checksums are unaffected by a swap).
fn swap_ip_udp(f: &mut [u8]) {
    for k in 0..4 {
        f.swap(26 + k, 30 + k);
    }
    for k in 0..2 {
        f.swap(34 + k, 36 + k);
    }
}

fn floor(buf: &mut [u8], template: &[u8]) {
    buf.copy_from_slice(template);
    buf[24] = 0;
    buf[25] = 0;
    let c = natsim::nat::checksum::checksum(&buf[14..34]);
    buf[24..26].copy_from_slice(&c.to_be_bytes());
    buf[40] = 0;
    buf[41] = 0;
    let src = Ipv4Addr::new(buf[26], buf[27], buf[28], buf[29]);
    let dst = Ipv4Addr::new(buf[30], buf[31], buf[32], buf[33]);
    let len = u16::from_be_bytes([buf[38], buf[39]]);
    let s = natsim::nat::checksum::sum(
        natsim::nat::checksum::pseudo_header_sum(src, dst, 17, len),
        &buf[34..34 + usize::from(len)],
    );
    let c = !(s as u16);
    buf[40..42].copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_be_bytes());
}

type Key = (u32, u32, u16, u16, u8);

fn naive_table(frames: &[Vec<u8>]) -> HashMap<Key, (u32, u16)> {
    let mut m = HashMap::new();
    for (i, f) in frames.iter().enumerate() {
        let h = PacketHeaders::from_ethernet_slice(f).unwrap();
        let Some(etherparse::NetHeaders::Ipv4(ip, _)) = &h.net else {
            unreachable!()
        };
        let Some(TransportHeader::Udp(u)) = &h.transport else {
            unreachable!()
        };
        let key = (
            u32::from_be_bytes(ip.source),
            u32::from_be_bytes(ip.destination),
            u.source_port,
            u.destination_port,
            17,
        );
        m.insert(key, (WAN_ADDR.to_bits(), 1024 + (i % 60000) as u16));
    }
    m
}

fn naive(map: &HashMap<Key, (u32, u16)>, out: &mut Vec<u8>, template: &[u8]) {
    let h = PacketHeaders::from_ethernet_slice(template).unwrap();
    let payload = h.payload.slice().to_vec();
    let (
        Some(link),
        Some(etherparse::NetHeaders::Ipv4(mut ip, ext)),
        Some(TransportHeader::Udp(mut u)),
    ) = (h.link, h.net, h.transport)
    else {
        unreachable!()
    };
    let key = (
        u32::from_be_bytes(ip.source),
        u32::from_be_bytes(ip.destination),
        u.source_port,
        u.destination_port,
        17,
    );
    let &(addr, port) = map.get(&key).unwrap();
    ip.source = addr.to_be_bytes();
    ip.header_checksum = ip.calc_header_checksum();
    u.source_port = port;
    u.checksum = u.calc_checksum_ipv4(&ip, &payload).unwrap();
    out.clear();
    link.write(out).unwrap();
    ip.write(out).unwrap();
    let _ = ext;
    u.write(out).unwrap();
    out.extend_from_slice(&payload);
}

/// Per-size state, built only when a benchmark of that size runs (so a
/// filtered run does not pay for the 1M-session setup).
struct Sized {
    nat: NatEngine,
    frames: Vec<Vec<u8>>,
    order: Vec<u32>,
    map: HashMap<Key, (u32, u16)>,
}

fn sized(n: usize, label: &str) -> Sized {
    let before = ALLOCATED.load(Ordering::Relaxed);
    let (nat, frames, order) = setup(n);
    let frames_bytes = frames.iter().map(|f| f.capacity()).sum::<usize>()
        + frames.capacity() * 24
        + order.capacity() * 4;
    let engine_bytes = ALLOCATED.load(Ordering::Relaxed) - before - frames_bytes;
    println!(
        "bytes/session at {label}: {:.1} (allocator), {:.1} (table's own count)",
        engine_bytes as f64 / n as f64,
        nat.table_heap_bytes() as f64 / n as f64
    );
    let map = naive_table(&frames);
    Sized {
        nat,
        frames,
        order,
        map,
    }
}

fn established(c: &mut Criterion) {
    let mut g = c.benchmark_group("established");
    g.throughput(Throughput::Elements(1));
    for &(n, label) in &[(1_000usize, "1k"), (65_536, "64k"), (1_000_000, "1M")] {
        let mut state: Option<Sized> = None;
        let now = Instant::from_secs(2);
        let mut buf = vec![0u8; 64];
        g.bench_function(BenchmarkId::new("engine", label), |b| {
            let s = state.get_or_insert_with(|| sized(n, label));
            let mut i = 0usize;
            b.iter(|| {
                let t = &s.frames[s.order[i] as usize];
                i = if i + 1 == s.order.len() { 0 } else { i + 1 };
                buf.copy_from_slice(t);
                let mut v = std::mem::take(&mut buf);
                let verdict = s.nat.process(now, LAN, &mut v, &routes, &mut ());
                buf = v;
                black_box(verdict)
            })
        });
        g.bench_function(BenchmarkId::new("floor", label), |b| {
            let s = state.get_or_insert_with(|| sized(n, label));
            let mut i = 0usize;
            b.iter(|| {
                let t = &s.frames[s.order[i] as usize];
                i = if i + 1 == s.order.len() { 0 } else { i + 1 };
                floor(&mut buf, t);
                black_box(&buf);
            })
        });
        let mut out = Vec::with_capacity(64);
        g.bench_function(BenchmarkId::new("naive", label), |b| {
            let s = state.get_or_insert_with(|| sized(n, label));
            let mut i = 0usize;
            b.iter(|| {
                let t = &s.frames[s.order[i] as usize];
                i = if i + 1 == s.order.len() { 0 } else { i + 1 };
                naive(&s.map, &mut out, t);
                black_box(&out);
            })
        });
    }
    g.finish();
}

fn new_flows(c: &mut Criterion) {
    let mut g = c.benchmark_group("new_flow");
    const BATCH: usize = 1000;
    g.throughput(Throughput::Elements(BATCH as u64));
    let frames: Vec<Vec<u8>> = (0..BATCH).map(frame).collect();
    g.bench_function("setup_1000_flows", |b| {
        b.iter_batched(
            || (engine(BATCH * 2), frames.clone()),
            |(mut nat, mut fs)| {
                for f in &mut fs {
                    let _ = black_box(nat.process(Instant::ZERO, LAN, f, &routes, &mut ()));
                }
                nat
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, established, new_flows);
criterion_main!(benches);
