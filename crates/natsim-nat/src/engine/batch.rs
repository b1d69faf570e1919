//! [`NatEngine::process_batch`]: many frames per call, with exactly the
//! results of [`NatEngine::process`] on the same frames in the same order.
//!
//! A table small enough to stay in cache gets `process` frame by frame.
//! A larger one sends frames through a three-stage software pipeline (the
//! DPDK / VPP pattern): a frame is parsed and hashed and its index bucket
//! prefetched; [`AHEAD`] frames later the record its bucket points at is
//! prefetched; [`AHEAD`] frames after that it is translated, in order, by
//! the same code `process` runs (the lookup itself is repeated there, now
//! from cache). The first two stages only read and only hint the cache,
//! so nothing a frame does can be seen differently by a later one:
//! batching changes the timing, not a verdict, a trace step or a counter.

use super::*;

/// Frames whose parses are held at once (on the stack).
const WINDOW: usize = 64;
/// The distance, in frames, between the pipeline's stages: far enough
/// that a DRAM miss lands in time, near enough that the line is still in
/// L1 when used, and few enough misses outstanding not to fill the
/// core's miss buffers. At 1M sessions 4, 8 and 12 measured alike
/// (within this VM's noise), and all beat the earlier groups of 16 (parse
/// all, then request all records, then translate) by ~15%.
const AHEAD: usize = 8;

/// The default of [`NatEngine::set_batch_prefetch_from`]: from about here
/// the table outgrows a core's L2 (8k records of 64 bytes plus their index
/// are ~1 MiB) and prefetching starts to pay. Below it the staged loop
/// measured slower than `process` frame by frame (`cargo bench --bench
/// engine`, 1k sessions).
pub(super) const PREFETCH_FROM: usize = 8192;

impl NatEngine {
    /// Tunes [`process_batch`](Self::process_batch): it stages frames with
    /// prefetching once the table holds `connections` or more (default
    /// 8192), and runs them through `process` one by one below that.
    /// Results are the same either way; 0 always stages.
    pub fn set_batch_prefetch_from(&mut self, connections: usize) {
        self.prefetch_from = connections;
    }

    /// Processes `frames` in order, as [`process`](Self::process) would one
    /// by one, and leaves one verdict per frame in `verdicts` (cleared
    /// first). Trace steps come in the same order too.
    pub fn process_batch<R: Routes + ?Sized, T: TraceSink>(
        &mut self,
        now: Instant,
        ingress: IfaceId,
        frames: &mut [Vec<u8>],
        verdicts: &mut Vec<Verdict>,
        routes: &R,
        trace: &mut T,
    ) {
        verdicts.clear();
        verdicts.reserve(frames.len());
        if self.table.len() < self.prefetch_from {
            // The table lives in cache: staging would only add work.
            for f in frames.iter_mut() {
                verdicts.push(self.process(now, ingress, f, routes, trace));
            }
            return;
        }
        for window in frames.chunks_mut(WINDOW) {
            let n = window.len();
            // Frames the fast parse takes; the rest get the full parse
            // when their turn comes, unprefetched.
            let mut parsed: [Option<Parsed>; WINDOW] = [None; WINDOW];
            let mut hashes = [0u64; WINDOW];
            // Frame i + 2·AHEAD is parsed and its bucket requested, the
            // record of frame i + AHEAD is requested from its (now loaded)
            // bucket, and frame i is translated: each line has AHEAD frames'
            // work to arrive, and at most ~2·AHEAD misses are outstanding.
            for i in 0..(2 * AHEAD + n) {
                if i < n {
                    parsed[i] = Parsed::fast(&window[i]);
                    if let Some(p) = &parsed[i] {
                        hashes[i] = self.table.hash_flow(&p.flow);
                        self.table.prefetch_bucket(hashes[i]);
                    }
                }
                if let Some(j) = i.checked_sub(AHEAD).filter(|&j| j < n) {
                    if parsed[j].is_some() {
                        self.table.prefetch_conn(hashes[j]);
                    }
                }
                if let Some(k) = i.checked_sub(2 * AHEAD).filter(|&k| k < n) {
                    let f = &mut window[k];
                    let v = match &parsed[k] {
                        Some(p) => self.process_flow(now, ingress, f, p, hashes[k], routes, trace),
                        None => self.process_full(now, ingress, f, routes, trace),
                    };
                    verdicts.push(v);
                }
            }
        }
    }
}
