//! `memory`: live heap bytes per entry, measured with the counting allocator.

use std::time::Duration;

use crate::alloc;
use crate::caches::{BenchCache, Impl};
use crate::with_cache;

/// Measurement for one implementation.
#[derive(Debug, Clone, Copy)]
pub struct MemoryResult {
    /// Live bytes after building and filling the cache, minus live bytes before.
    pub bytes: i64,
    /// Entries the cache reports holding afterwards.
    pub entries: u64,
    /// Allocation calls made while building and filling.
    pub allocs: u64,
}

fn fill<C: BenchCache>(cache: &C, n: u64) {
    for i in 0..n {
        cache.insert(i, i);
    }
    cache.sync();
}

/// Builds a cache of capacity `n`, inserts `n` distinct `u64 -> u64` entries
/// and reports the live-heap growth. [`alloc::enable`] must have been called.
///
/// The measured window starts before the cache is constructed and ends while
/// it is still alive; the cache is dropped afterwards.
pub fn measure(which: Impl, n: u64) -> anyhow::Result<MemoryResult> {
    let ttl = Some(Duration::from_secs(3600));
    let before = alloc::live_bytes();
    let allocs_before = alloc::alloc_count();
    let (after, allocs_after, entries) = with_cache!(which, n, ttl, |cache| {
        fill(&cache, n);
        let after = alloc::live_bytes();
        let allocs_after = alloc::alloc_count();
        (after, allocs_after, cache.entries())
    });
    Ok(MemoryResult {
        bytes: (after - before) as i64,
        entries,
        allocs: allocs_after - allocs_before,
    })
}
