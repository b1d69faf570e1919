//! Hints to the CPU and the kernel about the table's memory: the one
//! module of the crate with `unsafe`. Neither hint changes program state.
//!
//! * [`prefetch`]: `process_batch` asks for the index buckets and records
//!   of frames a few places ahead, so their DRAM misses overlap instead of
//!   following one another (the DPDK / VPP pattern).
//! * [`huge_pages`]: the slab and the tuple index ask Linux for
//!   transparent huge pages (`madvise(MADV_HUGEPAGE)`; THP's common
//!   "madvise" mode gives them only on request). A 1M-session table spans
//!   ~80 MB, so with 4 KiB pages nearly every lookup also misses the TLB.
//!   Where the kernel has no THP, or elsewhere than Linux, nothing happens.
//!
//! The `established/engine_batch` benchmark at 64k and 1M sessions is
//! what justifies both (BENCHMARKS.md).

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

/// A huge page on x86_64 and aarch64 Linux (4 KiB base pages).
const HUGE_PAGE: usize = 2 << 20;

/// The whole huge pages inside `v`'s allocation, as (start, length);
/// `None` if it spans none.
fn huge_span<T>(v: &Vec<T>) -> Option<(usize, usize)> {
    let start = v.as_ptr() as usize;
    let end = start.checked_add(v.capacity().checked_mul(core::mem::size_of::<T>())?)?;
    let first = start.checked_next_multiple_of(HUGE_PAGE)?;
    let last = end / HUGE_PAGE * HUGE_PAGE;
    (last > first).then(|| (first, last - first))
}

/// Asks the kernel to back `v`'s allocation with huge pages where it
/// spans whole ones. Call again after the allocation moves (growth).
pub(crate) fn huge_pages<T>(v: &Vec<T>) {
    let Some((start, len)) = huge_span(v) else {
        return;
    };
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    // SAFETY: [start, start + len) lies inside the allocation `v` owns
    // (huge_span rounds inwards). MADV_HUGEPAGE only changes how the
    // kernel backs those pages, never their contents or validity, and on
    // failure (no THP, an old kernel) they stay as they were, so the
    // result is ignored.
    unsafe {
        let _ = libc::madvise(start as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (start, len);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetching_changes_nothing_it_touches() {
        let v: Vec<u64> = (0..1024).collect();
        for x in &v {
            prefetch(x);
        }
        prefetch(&v[1023]);
        assert_eq!(v.iter().sum::<u64>(), 1023 * 1024 / 2);
    }

    #[test]
    fn the_advised_span_is_whole_huge_pages_inside_the_allocation() {
        let small: Vec<u8> = Vec::with_capacity(4096);
        assert_eq!(huge_span(&small), None);
        let big: Vec<u64> = vec![7; 3 * HUGE_PAGE / 8];
        let (start, len) = huge_span(&big).unwrap();
        let (a, b) = (big.as_ptr() as usize, big.as_ptr() as usize + 3 * HUGE_PAGE);
        assert!(
            a <= start && start + len <= b,
            "{a:x}..{b:x} vs {start:x}+{len:x}"
        );
        assert_eq!(start % HUGE_PAGE, 0);
        assert_eq!(len % HUGE_PAGE, 0);
        assert!(len >= HUGE_PAGE);
        huge_pages(&big);
        assert!(big.iter().all(|&x| x == 7), "advice changed the contents");
    }
}
