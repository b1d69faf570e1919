//! A hint to the CPU that a cache line will be read soon. The one use of
//! `unsafe` in the crate: `process_batch` issues it for the index buckets
//! and connection records of a burst of frames before translating any of
//! them, so their DRAM misses overlap instead of following one another
//! (the DPDK / VPP pattern). The `established/engine_batch` benchmark at
//! 64k and 1M sessions is what justifies it.

/// Asks for the cache line holding `*p` to be loaded. No effect on
/// program state; a no-op on targets without a prefetch instruction.
#[inline(always)]
pub(crate) fn prefetch<T>(p: &T) {
    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    // SAFETY: PREFETCHT0 never faults and has no architectural effect, and
    // `p` comes from a live reference anyway; SSE is part of the x86_64
    // baseline, so the instruction exists on every x86_64 CPU.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
            (p as *const T).cast::<i8>(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::prefetch;

    #[test]
    fn prefetching_changes_nothing_it_touches() {
        let v: Vec<u64> = (0..1024).collect();
        for x in &v {
            prefetch(x);
        }
        prefetch(&v[1023]);
        assert_eq!(v.iter().sum::<u64>(), 1023 * 1024 / 2);
    }
}
