//! [`NatEngine::process_batch`]: many frames per call, with exactly the
//! results of [`NatEngine::process`] on the same frames in the same order.
//!
//! A table small enough to stay in cache gets `process` frame by frame.
//! A larger one sends frames through in groups of [`LANES`]: first every frame of the
//! group is parsed and hashed and its index bucket prefetched; then the
//! record each bucket points at is prefetched; then the frames are
//! translated one by one, in order, by the same code `process` runs (the
//! lookup itself is repeated there, now from cache). The first two stages
//! only read and only hint the cache, so nothing a frame does can be seen
//! differently by a later one: batching changes the timing, not a verdict,
//! a trace step or a counter.

use super::*;

/// Frames in flight: enough to overlap the misses of a DRAM-bound table,
/// few enough that their lines stay in L1 until used.
const LANES: usize = 16;

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
        for group in frames.chunks_mut(LANES) {
            let mut parsed = [Err(DropReason::BadIpHeader); LANES];
            let mut hashes = [0u64; LANES];
            for (i, f) in group.iter().enumerate() {
                parsed[i] = Parsed::parse(f);
                if let Ok(p) = &parsed[i] {
                    hashes[i] = self.table.hash_flow(&p.flow);
                    self.table.prefetch_bucket(hashes[i]);
                }
            }
            for i in 0..group.len() {
                if parsed[i].is_ok() {
                    self.table.prefetch_conn(hashes[i]);
                }
            }
            for (i, f) in group.iter_mut().enumerate() {
                let v = self.process_parsed(now, ingress, f, parsed[i], hashes[i], routes, trace);
                verdicts.push(v);
            }
        }
    }
}
