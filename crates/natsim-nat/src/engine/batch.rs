//! [`NatEngine::process_batch`]: many frames per call, with exactly the
//! results of [`NatEngine::process`] on the same frames in the same order.

use super::*;

impl NatEngine {
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
        for f in frames.iter_mut() {
            verdicts.push(self.process(now, ingress, f, routes, trace));
        }
    }
}
