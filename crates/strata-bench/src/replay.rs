//! `replay`: single-threaded read-through replay of a trace.

use crate::caches::BenchCache;

/// Replays `keys` read-through (get; on miss insert key→key) and returns the
/// number of hits.
pub fn replay<C: BenchCache>(cache: &C, keys: &[u64]) -> u64 {
    let mut hits = 0u64;
    for &k in keys {
        if cache.get(&k).is_some() {
            hits += 1;
        } else {
            cache.insert(k, k);
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caches::{MokaCache, QuickCache, StrataCache};

    #[test]
    fn replay_counts_hits() {
        // Fits in cache: every key misses once, then hits.
        let keys: Vec<u64> = (0..10u64).chain(0..10).chain(0..10).collect();
        let qc = QuickCache::new(100).unwrap();
        assert_eq!(replay(&qc, &keys), 20);
        let moka = MokaCache::new(100);
        assert_eq!(replay(&moka, &keys), 20);
        let strata = StrataCache::new(100, None).unwrap();
        assert_eq!(replay(&strata, &keys), 20);
        let strata = StrataCache::new(100, Some(std::time::Duration::from_secs(3600))).unwrap();
        assert_eq!(replay(&strata, &keys), 20);
        assert!(StrataCache::new(0, None).is_err());
    }
}
