//! The errors a cache can return. Nothing a caller passes in makes the engine panic: every
//! refusal is one of these.

use thiserror::Error;

/// Why [`CacheBuilder::build`](crate::CacheBuilder::build) refused a configuration.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Neither `max_entries` nor `max_weight`/`max_bytes` was set: a cache must be bounded.
    #[error("a cache needs a bound: set max_entries, max_weight or max_bytes")]
    Unbounded,
    /// A bound of zero would hold nothing.
    #[error("{field} must be at least 1, got 0")]
    ZeroCapacity {
        /// The builder field that was zero.
        field: &'static str,
    },
    /// A TTL or idle time of zero would expire every entry at once.
    #[error("{field} must be longer than zero")]
    ZeroDuration {
        /// The builder field that was zero.
        field: &'static str,
    },
    /// `max_weight` was set but no weigher says what an entry weighs.
    #[error("max_weight needs a weigher (or use max_bytes for the default byte weigher)")]
    MissingWeigher,
    /// The shard count must be a power of two between 1 and 65536.
    #[error("shards must be a power of two between 1 and 65536, got {0}")]
    BadShardCount(usize),
    /// More shards than the bound has units: some shard would hold nothing.
    #[error("{shards} shards need a bound of at least {shards}, got {bound}; use fewer shards")]
    TooManyShards {
        /// The shard count asked for.
        shards: usize,
        /// The entry or weight bound that is smaller.
        bound: u64,
    },
}

/// Why an insert was refused. The cache is unchanged when an insert fails.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum InsertError {
    /// The entry weighs more than one shard may hold, so it could never be cached.
    #[error("entry weighs {weight}, more than the {limit} one shard of this cache can hold")]
    TooLarge {
        /// What the weigher said the entry weighs.
        weight: u64,
        /// The largest weight an entry may have in this cache.
        limit: u64,
    },
    /// A TTL of zero: the entry would be expired before anyone could read it.
    #[error("a TTL must be longer than zero")]
    ZeroTtl,
    /// The weigher panicked; the entry was not inserted.
    #[error("the weigher panicked; the entry was not inserted")]
    WeigherPanicked,
    /// The entry would fit only by evicting another, and the write asked not to evict
    /// (Redis's `noeviction` policy).
    #[error("no room for the entry without evicting another")]
    NoRoom,
}
