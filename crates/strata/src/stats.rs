//! Statistics. Every counter is exact: hits and misses are atomics striped one per shard,
//! written on the cache line the reader already holds for the shard's lock; everything else
//! is counted under the shard's write lock. Nothing is sampled.

/// A snapshot of a cache's counters, summed over its shards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Lookups that found a live entry.
    pub hits: u64,
    /// Lookups that found nothing (or only an expired entry).
    pub misses: u64,
    /// Entries added for a key that had none.
    pub inserts: u64,
    /// Values replaced for a key that already had a live entry.
    pub updates: u64,
    /// Entries taken out by `remove` or `clear`.
    pub removals: u64,
    /// Entries reclaimed because their TTL or idle time ran out.
    pub expirations: u64,
    /// Entries pushed out by the policy to respect a bound.
    pub evictions: u64,
    /// Entries held now (some may have expired and not yet been reclaimed).
    pub entries: u64,
    /// Sum of the weights of the entries held now.
    pub weighted_size: u64,
}

impl CacheStats {
    /// `hits / (hits + misses)`, or 0 before the first lookup.
    pub fn hit_ratio(&self) -> f64 {
        let lookups = self.hits + self.misses;
        if lookups == 0 {
            0.0
        } else {
            self.hits as f64 / lookups as f64
        }
    }
}

impl std::ops::AddAssign for CacheStats {
    /// Sums counters, for totals over several caches.
    fn add_assign(&mut self, other: Self) {
        self.hits += other.hits;
        self.misses += other.misses;
        self.inserts += other.inserts;
        self.updates += other.updates;
        self.removals += other.removals;
        self.expirations += other.expirations;
        self.evictions += other.evictions;
        self.entries += other.entries;
        self.weighted_size += other.weighted_size;
    }
}
