//! Configuring a cache.

use std::hash::BuildHasher;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::cache::{Cache, CacheSettings};
use crate::clock::Clock;
use crate::error::BuildError;
use crate::listener::{Listener, RemovalCause};
use crate::weigher::{DefaultWeigher, HeapSize, Weigher};
use crate::DefaultHashBuilder;

/// Builds a [`Cache`]. A cache needs at least one bound: a number of entries, a total weight,
/// or both.
///
/// ```
/// use strata::Cache;
/// use std::time::Duration;
///
/// let sessions: Cache<String, Vec<u8>> = Cache::builder()
///     .max_entries(10_000)
///     .max_bytes(64 << 20)            // and at most 64 MiB, weighed by the default weigher
///     .default_ttl(Duration::from_secs(30 * 60))
///     .time_to_idle(Duration::from_secs(5 * 60))
///     .build()
///     .unwrap();
/// sessions.insert("s-1".into(), b"payload".to_vec()).unwrap();
/// ```
#[must_use = "a builder does nothing until build() is called"]
pub struct CacheBuilder<K, V, S = DefaultHashBuilder> {
    max_entries: Option<u64>,
    max_weight: Option<u64>,
    weigher: Option<Arc<dyn Weigher<K, V>>>,
    default_ttl: Option<Duration>,
    time_to_idle: Option<Duration>,
    shards: Option<usize>,
    /// The weight bound is in bytes (set by `max_bytes`).
    in_bytes: bool,
    clock: Clock,
    listener: Option<Arc<Listener<K, V>>>,
    reaper: Option<Duration>,
    hasher: S,
    _types: PhantomData<fn(K, V)>,
}

impl<K, V> Default for CacheBuilder<K, V, DefaultHashBuilder> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> CacheBuilder<K, V, DefaultHashBuilder> {
    /// A builder with no bound set yet, the system clock and the default hasher.
    pub fn new() -> Self {
        Self {
            max_entries: None,
            max_weight: None,
            weigher: None,
            default_ttl: None,
            time_to_idle: None,
            shards: None,
            in_bytes: false,
            clock: Clock::system(),
            listener: None,
            reaper: None,
            hasher: DefaultHashBuilder::default(),
            _types: PhantomData,
        }
    }
}

impl<K, V, S> CacheBuilder<K, V, S> {
    /// At most `n` entries.
    pub fn max_entries(mut self, n: u64) -> Self {
        self.max_entries = Some(n);
        self
    }

    /// At most `total` weight, as the [`weigher`](Self::weigher) measures it.
    pub fn max_weight(mut self, total: u64) -> Self {
        self.max_weight = Some(total);
        self
    }

    /// Says what each entry weighs for [`max_weight`](Self::max_weight). Runs once per insert,
    /// before any lock is taken.
    pub fn weigher(mut self, weigher: impl Weigher<K, V>) -> Self {
        self.weigher = Some(Arc::new(weigher));
        // Its units are its own (`max_bytes` sets this back after calling here).
        self.in_bytes = false;
        self
    }

    /// At most `bytes` of memory, weighing each entry with the [`DefaultWeigher`]: heap bytes
    /// of key and value plus the engine's own cost per entry.
    pub fn max_bytes(self, bytes: u64) -> Self
    where
        K: HeapSize + 'static,
        V: HeapSize + 'static,
    {
        let mut builder = self.max_weight(bytes).weigher(DefaultWeigher);
        builder.in_bytes = true;
        builder
    }

    /// A TTL for entries inserted without one of their own.
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = Some(ttl);
        self
    }

    /// Entries not read for this long expire, even before their TTL.
    pub fn time_to_idle(mut self, tti: Duration) -> Self {
        self.time_to_idle = Some(tti);
        self
    }

    /// The number of shards (a power of two, at most each bound). By default sixteen per
    /// core, fewer for small caches so that each shard keeps at least 64 entries. The
    /// heaviest entry a cache admits is the weight bound divided by this number.
    pub fn shards(mut self, n: usize) -> Self {
        self.shards = Some(n);
        self
    }

    /// The clock deadlines are measured on; [`MockClock`](crate::MockClock) in tests.
    pub fn clock(mut self, clock: impl Into<Clock>) -> Self {
        self.clock = clock.into();
        self
    }

    /// Called for every entry that leaves the cache, with the reason.
    pub fn removal_listener(
        mut self,
        listener: impl Fn(K, V, RemovalCause) + Send + Sync + 'static,
    ) -> Self {
        self.listener = Some(Arc::new(listener));
        self
    }

    /// Starts a background thread that reclaims expired entries every `interval`, so memory
    /// comes back even when no one writes. Without it, expired entries are reclaimed by writes
    /// (a few slots per write) and by [`Cache::run_pending_tasks`]. The thread ends soon after
    /// the last handle to the cache is dropped. The interval is on the cache's clock: with a
    /// [`MockClock`](crate::MockClock), the reaper runs when the clock is advanced past it
    /// (and a reaper whose cache is gone ends at the next advance).
    pub fn reaper(mut self, interval: Duration) -> Self {
        self.reaper = Some(interval);
        self
    }

    /// Uses `hasher` for keys (all shards share it).
    pub fn hasher<S2>(self, hasher: S2) -> CacheBuilder<K, V, S2> {
        CacheBuilder {
            max_entries: self.max_entries,
            max_weight: self.max_weight,
            weigher: self.weigher,
            default_ttl: self.default_ttl,
            time_to_idle: self.time_to_idle,
            shards: self.shards,
            in_bytes: self.in_bytes,
            clock: self.clock,
            listener: self.listener,
            reaper: self.reaper,
            hasher,
            _types: PhantomData,
        }
    }

    /// Checks the configuration and builds the cache.
    pub fn build(self) -> Result<Cache<K, V, S>, BuildError>
    where
        K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
        S: BuildHasher + Clone + Send + Sync + 'static,
    {
        if self.max_entries.is_none() && self.max_weight.is_none() {
            return Err(BuildError::Unbounded);
        }
        if self.max_entries == Some(0) {
            return Err(BuildError::ZeroCapacity {
                field: "max_entries",
            });
        }
        if self.max_weight == Some(0) {
            return Err(BuildError::ZeroCapacity {
                field: "max_weight",
            });
        }
        if self.max_weight.is_some() && self.weigher.is_none() {
            return Err(BuildError::MissingWeigher);
        }
        if self.default_ttl == Some(Duration::ZERO) {
            return Err(BuildError::ZeroDuration {
                field: "default_ttl",
            });
        }
        if self.time_to_idle == Some(Duration::ZERO) {
            return Err(BuildError::ZeroDuration {
                field: "time_to_idle",
            });
        }
        if self.reaper == Some(Duration::ZERO) {
            return Err(BuildError::ZeroDuration { field: "reaper" });
        }
        let shards = match self.shards {
            Some(n) if !n.is_power_of_two() || n > 1 << 16 => {
                return Err(BuildError::BadShardCount(n))
            }
            Some(n) => n,
            None => default_shards(self.max_entries, self.max_weight, self.in_bytes),
        };
        for bound in [self.max_entries, self.max_weight].into_iter().flatten() {
            if bound < shards as u64 {
                return Err(BuildError::TooManyShards { shards, bound });
            }
        }
        let cache = Cache::from_settings(CacheSettings {
            max_entries: self.max_entries,
            max_weight: self.max_weight,
            weigher: self.weigher,
            default_ttl: self.default_ttl,
            time_to_idle: self.time_to_idle,
            shards,
            clock: self.clock,
            listener: self.listener,
            hasher: self.hasher,
        });
        if let Some(interval) = self.reaper {
            cache.spawn_reaper(interval);
        }
        Ok(cache)
    }
}

/// Sixteen shards per core: with fewer, readers of a shard often wait on a writer there (the
/// miss path holds the write lock through eviction), which measured 0.6x the throughput of 16
/// per core at 2 threads (docs/benchmarks.md). Never a shard of fewer than 64 entries or 64
/// units of weight, where per-shard eviction would stray from a global policy and the
/// heaviest admissible entry would shrink; with a bound in bytes, never a shard of less than
/// [`MIN_SHARD_BYTES`], so that an entry of up to that size (or the whole bound, if smaller)
/// is admitted whatever the machine's core count.
fn default_shards(max_entries: Option<u64>, max_weight: Option<u64>, in_bytes: bool) -> usize {
    let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
    let mut shards = (cores * 16).next_power_of_two().min(256);
    let least_weight = if in_bytes { MIN_SHARD_BYTES } else { 64 };
    for (bound, least) in [(max_entries, 64), (max_weight, least_weight)] {
        let Some(bound) = bound else { continue };
        while shards > 1 && bound / (shards as u64) < least {
            shards /= 2;
        }
    }
    shards
}

/// The smallest share of a byte bound a shard gets by default, which is also the heaviest
/// entry a cache of at least this many bytes is sure to admit.
pub const MIN_SHARD_BYTES: u64 = 1 << 20;
