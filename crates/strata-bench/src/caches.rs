//! A small common interface over the benchmarked cache implementations.

use std::time::Duration;

use anyhow::anyhow;

/// Hasher shared by all implementations: foldhash with a fixed seed.
pub type BenchHasher = foldhash::fast::FixedState;

/// The shared hasher instance.
pub fn hasher() -> BenchHasher {
    foldhash::fast::FixedState::with_seed(0x5354_5241_5441_2d42) // "STRATA-B"
}

/// Cache implementations under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Impl {
    /// strata::Cache
    #[value(name = "strata")]
    Strata,
    /// moka::sync::Cache
    #[value(name = "moka")]
    Moka,
    /// quick_cache::sync::Cache
    #[value(name = "quick_cache", alias = "quick-cache", alias = "quickcache")]
    QuickCache,
}

impl Impl {
    pub fn name(self) -> &'static str {
        match self {
            Impl::Strata => "strata",
            Impl::Moka => "moka",
            Impl::QuickCache => "quick_cache",
        }
    }
}

/// Minimal `u64 -> u64` cache interface (unit weight).
pub trait BenchCache: Send + Sync {
    fn get(&self, key: &u64) -> Option<u64>;
    fn insert(&self, key: u64, value: u64);
    /// Flush any deferred maintenance (moka); no-op elsewhere.
    fn sync(&self) {}
    /// Number of entries (after `sync`).
    fn entries(&self) -> u64;
}

/// strata, entry-count bounded, optional TTL on every entry.
pub struct StrataCache(strata::Cache<u64, u64, BenchHasher>);

impl StrataCache {
    pub fn new(capacity: u64, ttl: Option<Duration>) -> anyhow::Result<Self> {
        let mut builder = strata::Cache::<u64, u64>::builder().max_entries(capacity);
        if let Some(ttl) = ttl {
            builder = builder.default_ttl(ttl);
        }
        let cache = builder
            .hasher(hasher())
            .build()
            .map_err(|e| anyhow!("cannot build strata cache (capacity {capacity}): {e}"))?;
        Ok(Self(cache))
    }
}

impl BenchCache for StrataCache {
    #[inline]
    fn get(&self, key: &u64) -> Option<u64> {
        self.0.get(key)
    }
    #[inline]
    fn insert(&self, key: u64, value: u64) {
        // Rejected inserts just count as "not cached".
        let _ = self.0.insert(key, value);
    }
    fn entries(&self) -> u64 {
        self.0.len() as u64
    }
}

/// moka::sync::Cache with `max_capacity` entries (unit weight).
pub struct MokaCache(moka::sync::Cache<u64, u64, BenchHasher>);

impl MokaCache {
    pub fn new(capacity: u64) -> Self {
        Self(
            moka::sync::Cache::builder()
                .max_capacity(capacity)
                .build_with_hasher(hasher()),
        )
    }
}

impl BenchCache for MokaCache {
    #[inline]
    fn get(&self, key: &u64) -> Option<u64> {
        self.0.get(key)
    }
    #[inline]
    fn insert(&self, key: u64, value: u64) {
        self.0.insert(key, value);
    }
    fn sync(&self) {
        self.0.run_pending_tasks();
    }
    fn entries(&self) -> u64 {
        self.0.entry_count()
    }
}

type QcInner = quick_cache::sync::Cache<
    u64,
    u64,
    quick_cache::UnitWeighter,
    BenchHasher,
    quick_cache::sync::DefaultLifecycle<u64, u64>,
>;

/// quick_cache::sync::Cache holding `capacity` unit-weight items.
pub struct QuickCache(QcInner);

impl QuickCache {
    pub fn new(capacity: u64) -> anyhow::Result<Self> {
        let items = usize::try_from(capacity).map_err(|_| anyhow!("capacity too large"))?;
        Ok(Self(QcInner::with(
            items,
            capacity,
            quick_cache::UnitWeighter,
            hasher(),
            Default::default(),
        )))
    }
}

impl BenchCache for QuickCache {
    #[inline]
    fn get(&self, key: &u64) -> Option<u64> {
        self.0.get(key)
    }
    #[inline]
    fn insert(&self, key: u64, value: u64) {
        self.0.insert(key, value);
    }
    fn entries(&self) -> u64 {
        self.0.len() as u64
    }
}

/// Calls `$body` with `$cache` bound to a freshly built cache of the given
/// implementation, monomorphised per implementation (no dynamic dispatch on
/// the hot path).
#[macro_export]
macro_rules! with_cache {
    ($which:expr, $capacity:expr, $ttl:expr, |$cache:ident| $body:expr) => {{
        match $which {
            $crate::caches::Impl::Strata => {
                let $cache = $crate::caches::StrataCache::new($capacity, $ttl)?;
                $body
            }
            $crate::caches::Impl::Moka => {
                let $cache = $crate::caches::MokaCache::new($capacity);
                $body
            }
            $crate::caches::Impl::QuickCache => {
                let $cache = $crate::caches::QuickCache::new($capacity)?;
                $body
            }
        }
    }};
}
