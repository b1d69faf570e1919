//! Engine hot-path benchmarks (issue 16). One criterion run measures, on
//! identical 64-byte UDP frames of established flows visited in the same
//! random order:
//! * `engine`: `NatEngine::process`, one frame at a time;
//! * `engine_batch`: `NatEngine::process_batch` over the same frames;
//! * `tight_naive`: the afternoon NAT in `tight_naive.rs` (Fx-hashed
//!   5-tuple map, in-place rewrite, RFC 1624 incremental checksums);
//! * `floor`: the copy plus the incremental checksum update alone.
//!
//! Run: `cargo bench --bench engine`. The frames' pristine bytes lie
//! contiguously, in visiting order, as a NIC ring would hold them; every
//! variant copies each frame into a working buffer before translating it
//! (the engine rewrites in place), so all pay the same copy. Each criterion
//! iteration handles `BURST` frames; the reported throughput is frames per
//! second. The run also prints bytes per session (counted by a wrapping
//! global allocator) and measures new flows against a 90%-full table.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use etherparse::PacketBuilder;
use natsim::nat::*;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};

mod tight_naive;
use tight_naive::TightNaive;

/// Frames per criterion iteration (and per `process_batch` call).
const BURST: usize = 32;

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

/// Sends inside frame `f` out at `out_at` and its answer back at `back_at`,
/// so the flow is established.
fn establish(nat: &mut NatEngine, f: &[u8], out_at: Instant, back_at: Instant) {
    let mut out = f.to_vec();
    let v = nat.process(out_at, LAN, &mut out, &routes, &mut ());
    assert!(matches!(v, Verdict::Forward { .. }), "{v:?}");
    for k in 0..6 {
        out.swap(k, k + 6);
    }
    swap_ip_udp(&mut out);
    let v = nat.process(back_at, WAN, &mut out, &routes, &mut ());
    assert!(matches!(v, Verdict::Forward { .. }), "{v:?}");
}

/// An engine holding `n` established (replied) flows, their outbound
/// templates, and a random visiting order.
fn setup(n: usize) -> (NatEngine, Vec<Vec<u8>>, Vec<u32>) {
    let mut nat = engine(n + 1);
    let frames: Vec<Vec<u8>> = (0..n).map(frame).collect();
    for f in &frames {
        establish(&mut nat, f, Instant::from_secs(1), Instant::from_secs(1));
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

/// The floor: copy, then the same incremental updates a translator makes
/// (new source address and port), with no lookup at all.
#[inline]
fn floor(buf: &mut [u8], template: &[u8]) {
    buf.copy_from_slice(template);
    let oa = u32::from_be_bytes(buf[26..30].try_into().unwrap());
    let op = u16::from_be_bytes([buf[34], buf[35]]);
    let (na, np) = (WAN_ADDR.to_bits(), 40_000u16);
    buf[26..30].copy_from_slice(&na.to_be_bytes());
    buf[34..36].copy_from_slice(&np.to_be_bytes());
    let ip = checksum::update32(u16::from_be_bytes([buf[24], buf[25]]), oa, na);
    buf[24..26].copy_from_slice(&ip.to_be_bytes());
    let uc = checksum::update16(
        checksum::update32(u16::from_be_bytes([buf[40], buf[41]]), oa, na),
        op,
        np,
    );
    buf[40..42].copy_from_slice(&uc.to_be_bytes());
}

/// Per-size state, built only when a benchmark of that size runs (so a
/// filtered run does not pay for the 1M-session setup).
struct Sized {
    nat: NatEngine,
    /// Pristine frames, 64 bytes each, contiguous, in visiting order.
    ring: Vec<u8>,
    naive: TightNaive,
}

impl Sized {
    fn frames(&self) -> usize {
        self.ring.len() / 64
    }
    fn frame(&self, k: usize) -> &[u8] {
        &self.ring[k * 64..k * 64 + 64]
    }
}

fn sized(n: usize, label: &str) -> Sized {
    let before = ALLOCATED.load(Ordering::Relaxed);
    let (mut nat, frames, order) = setup(n);
    let frames_bytes = frames.iter().map(|f| f.capacity()).sum::<usize>()
        + frames.capacity() * 24
        + order.capacity() * 4;
    let engine_bytes = ALLOCATED.load(Ordering::Relaxed) - before - frames_bytes;
    println!(
        "bytes/session at {label}: {:.1} (allocator), {:.1} (table's own count)",
        engine_bytes as f64 / n as f64,
        nat.table_heap_bytes() as f64 / n as f64
    );
    let mut ring = Vec::with_capacity(n * 64);
    let mut naive = TightNaive::default();
    let mut buf = Vec::new();
    for &i in &order {
        let f = &frames[i as usize];
        ring.extend_from_slice(f);
        // The naive map learns the engine's own answer for the flow.
        buf.clone_from(f);
        let v = nat.process(Instant::from_secs(1), LAN, &mut buf, &routes, &mut ());
        assert!(matches!(v, Verdict::Forward { .. }));
        let addr = u32::from_be_bytes(buf[26..30].try_into().unwrap());
        let port = u16::from_be_bytes([buf[34], buf[35]]);
        naive.insert(f, addr, port);
    }
    Sized { nat, ring, naive }
}

fn established(c: &mut Criterion) {
    let mut g = c.benchmark_group("established");
    g.throughput(Throughput::Elements(BURST as u64));
    for &(n, label) in &[(1_000usize, "1k"), (65_536, "64k"), (1_000_000, "1M")] {
        let mut state: Option<Sized> = None;
        let now = Instant::from_secs(2);
        let mut bufs: Vec<Vec<u8>> = (0..BURST).map(|_| vec![0u8; 64]).collect();
        let mut verdicts = Vec::with_capacity(BURST);
        g.bench_function(BenchmarkId::new("engine", label), |b| {
            let s = state.get_or_insert_with(|| sized(n, label));
            let mut k = 0usize;
            b.iter(|| {
                for buf in bufs.iter_mut() {
                    buf.copy_from_slice(s.frame(k));
                    k = if k + 1 == s.frames() { 0 } else { k + 1 };
                    let v = s.nat.process(now, LAN, buf, &routes, &mut ());
                    let _ = black_box(v);
                }
            })
        });
        g.bench_function(BenchmarkId::new("engine_batch", label), |b| {
            let s = state.get_or_insert_with(|| sized(n, label));
            let mut k = 0usize;
            b.iter(|| {
                for buf in bufs.iter_mut() {
                    buf.copy_from_slice(s.frame(k));
                    k = if k + 1 == s.frames() { 0 } else { k + 1 };
                }
                s.nat
                    .process_batch(now, LAN, &mut bufs, &mut verdicts, &routes, &mut ());
                black_box(&verdicts);
            })
        });
        g.bench_function(BenchmarkId::new("tight_naive", label), |b| {
            let s = state.get_or_insert_with(|| sized(n, label));
            let mut k = 0usize;
            b.iter(|| {
                for buf in bufs.iter_mut() {
                    buf.copy_from_slice(s.frame(k));
                    k = if k + 1 == s.frames() { 0 } else { k + 1 };
                    black_box(s.naive.process(buf));
                }
            })
        });
        g.bench_function(BenchmarkId::new("floor", label), |b| {
            let s = state.get_or_insert_with(|| sized(n, label));
            let mut k = 0usize;
            b.iter(|| {
                for buf in bufs.iter_mut() {
                    floor(buf, s.frame(k));
                    k = if k + 1 == s.frames() { 0 } else { k + 1 };
                    black_box(&buf);
                }
            })
        });
    }
    g.finish();
}

fn new_flows(c: &mut Criterion) {
    // A table 90% full of established flows that never time out here; each
    // iteration sets up BATCH new UDP flows, then expires them all.
    let mut g = c.benchmark_group("new_flow");
    const CAP: usize = 65_536;
    const BATCH: usize = 1000;
    g.throughput(Throughput::Elements(BATCH as u64));
    let mut cfg = NatConfig::new(Behaviour::linux())
        .interface(LAN, Ipv4Addr::new(10, 0, 0, 1), 8, Role::Inside)
        .interface(WAN, WAN_ADDR, 24, Role::Outside);
    cfg.capacity = CAP;
    cfg.behaviour.timeouts.udp_replied = Duration::from_secs(1 << 40);
    cfg.rules.masquerade("masq", WAN, None);
    let mut nat = NatEngine::new(cfg).unwrap();
    let full = CAP * 9 / 10;
    for i in 0..full {
        // Answered after Linux's 2 s, so the flow is a "stream" on the
        // (here endless) replied timeout (nf_conntrack_udp_packet).
        establish(
            &mut nat,
            &frame(i),
            Instant::from_secs(1),
            Instant::from_secs(4),
        );
    }
    let fresh: Vec<Vec<u8>> = (full..full + BATCH).map(frame).collect();
    let mut bufs = fresh.clone();
    let mut t = Instant::from_secs(10);
    g.bench_function("setup_and_expire_1000_flows_table_90pct", |b| {
        b.iter(|| {
            for (buf, f) in bufs.iter_mut().zip(&fresh) {
                buf.clone_from(f);
                let _ = black_box(nat.process(t, LAN, buf, &routes, &mut ()));
            }
            t += Duration::from_secs(31);
            nat.handle_timeout(t, &mut ());
            assert_eq!(nat.connection_count(), full, "at {t:?}");
        })
    });
    g.finish();
}

/// A TCP SYN from inside host `i` (a flood's embryonic connection).
fn syn(i: usize) -> Vec<u8> {
    let host = Ipv4Addr::from_bits(0x0a80_0000 | i as u32);
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1])
        .ipv4(host.octets(), [192, 0, 2, 80], 64)
        .tcp(1024 + (i % 60_000) as u16, 80, 1, 64_000)
        .syn();
    let mut v = Vec::with_capacity(64);
    b.write(&mut v, &[]).unwrap();
    v
}

fn refresh_under_flood(c: &mut Criterion) {
    // 1000 established flows refreshed by their next packets, in a table
    // filled to 90% by other connections: first ordinary answered flows,
    // then a SYN flood's embryonic connections (never answered). The
    // tables are the same size, so the two differ only in what the flood
    // leaves pending: a refresh must cost the same (issue 16).
    let mut g = c.benchmark_group("refresh");
    g.throughput(Throughput::Elements(BURST as u64));
    const CAP: usize = 65_536;
    const OTHERS: usize = CAP * 9 / 10 - 1000;
    let frames: Vec<Vec<u8>> = (0..1000).map(frame).collect();
    let mut order: Vec<u32> = (0..1000).collect();
    order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(7));
    for flood in [false, true] {
        let mut nat = engine(CAP);
        let t1 = Instant::from_secs(1);
        for f in &frames {
            establish(&mut nat, f, t1, t1);
        }
        for i in 0..OTHERS {
            if flood {
                let mut f = syn(i);
                let v = nat.process(t1, LAN, &mut f, &routes, &mut ());
                assert!(matches!(v, Verdict::Forward { .. }), "{v:?}");
            } else {
                establish(&mut nat, &frame(1000 + i), t1, t1);
            }
        }
        assert_eq!(nat.connection_count(), 1000 + OTHERS);
        let mut bufs: Vec<Vec<u8>> = (0..BURST).map(|_| vec![0u8; 64]).collect();
        let mut k = 0usize;
        let mut t = Instant::from_secs(2);
        let label = if flood {
            "others_syn_flood_90pct"
        } else {
            "others_established_90pct"
        };
        g.bench_function(BenchmarkId::new("engine", label), |b| {
            b.iter(|| {
                t += Duration::from_micros(1);
                for buf in bufs.iter_mut() {
                    buf.copy_from_slice(&frames[order[k] as usize]);
                    k = if k + 1 == order.len() { 0 } else { k + 1 };
                    let _ = black_box(nat.process(t, LAN, buf, &routes, &mut ()));
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, established, new_flows, refresh_under_flood);
criterion_main!(benches);
