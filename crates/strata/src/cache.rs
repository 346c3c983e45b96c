//! The thread-safe cache handle. This file is one type, [`Cache`] (a long one: most of its
//! length is the docs and examples of its methods), with the small types its methods take
//! and return ([`Inserted`], [`Compute`], [`Cleared`], [`Keys`]). The engine it drives is in
//! `engine/`; its builder is `builder.rs`.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::builder::CacheBuilder;
use crate::clock::{duration_to_nanos, Clock};
use crate::engine::{
    Climber, IfPresent, Insertion, NewEntry, Readings, Removed, Shard, ShardCell, ShardSettings,
    MAX_SHARD_LEN, NEVER,
};
use crate::error::InsertError;
use crate::listener::{Listener, RemovalCause};
use crate::stats::CacheStats;
use crate::sync::{AtomicU64, Ordering, RwLock};
use crate::weigher::Weigher;
use crate::DefaultHashBuilder;

/// Entries [`Cache::remove_where`] visits per hold of a shard's lock: at most about 0.15 ms
/// of work when it removes them all (0.2–0.7 µs a removal, docs/benchmarks.md).
const REMOVE_WHERE_SLICE: usize = 256;

/// What [`Cache::insert_if_absent`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted<V> {
    /// This caller's value was stored: the key had no live entry.
    Inserted,
    /// A live entry was already there; it is returned and was left unchanged.
    Existing(V),
}

/// What [`Cache::compute`] does with the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compute<V> {
    /// Leave it as it is.
    Keep,
    /// Remove its entry (counted as a removal).
    Remove,
    /// Store `value`, replacing any entry.
    Insert {
        /// The new value.
        value: V,
        /// Its TTL; the cache's default for `None`.
        ttl: Option<Duration>,
        /// Whether other entries may be evicted to make room; without, a value that does not
        /// fit is refused with [`InsertError::NoRoom`].
        evict: bool,
    },
    /// Keep the value, and expire the entry `ttl` from now (never for `None`, or for a
    /// TTL beyond about 584 years). Nothing happens if no live entry holds the key.
    Expire(Option<Duration>),
}

/// A concurrent cache bounded by entries and/or weight, with TTL, time-to-idle and exact
/// statistics. Cloning the handle is cheap and every clone sees the same cache.
///
/// ```
/// use strata::{Cache, Inserted};
/// use std::time::Duration;
///
/// let cache: Cache<String, String> = Cache::builder()
///     .max_entries(1_000)
///     .default_ttl(Duration::from_secs(120))
///     .build()
///     .unwrap();
///
/// cache.insert("user::42".into(), "Ada".into()).unwrap();
/// assert_eq!(cache.get("user::42").as_deref(), Some("Ada"));
///
/// // The first delivery of a webhook wins; a duplicate sees the first one's record.
/// assert_eq!(cache.insert_if_absent("hook::7".into(), "done".into()).unwrap(), Inserted::Inserted);
/// assert_eq!(
///     cache.insert_if_absent("hook::7".into(), "again".into()).unwrap(),
///     Inserted::Existing("done".into())
/// );
/// assert_eq!(cache.stats().hits, 1);
/// ```
pub struct Cache<K, V, S = DefaultHashBuilder> {
    inner: Arc<Inner<K, V, S>>,
}

impl<K, V, S> Clone for Cache<K, V, S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

/// Everything the builder decided, handed to [`Cache::from_settings`].
pub(crate) struct CacheSettings<K, V, S> {
    pub(crate) max_entries: Option<u64>,
    pub(crate) max_weight: Option<u64>,
    pub(crate) weigher: Option<Arc<dyn Weigher<K, V>>>,
    pub(crate) default_ttl: Option<Duration>,
    pub(crate) time_to_idle: Option<Duration>,
    pub(crate) shards: usize,
    pub(crate) clock: Clock,
    pub(crate) listener: Option<Arc<Listener<K, V>>>,
    pub(crate) hasher: S,
}

struct Inner<K, V, S> {
    shards: Box<[ShardCell<K, V>]>,
    /// Sizes every shard's window from the cache-wide hit ratio.
    climber: Climber,
    mask: usize,
    hasher: S,
    clock: Clock,
    /// Nanoseconds of the default TTL, or `NEVER`.
    default_ttl: u64,
    /// Nanoseconds of idle time allowed, or 0 for none.
    tti: u64,
    weigher: Option<Arc<dyn Weigher<K, V>>>,
    listener: Option<Arc<Listener<K, V>>>,
    max_entries: Option<u64>,
    /// The weight bound, `NO_BOUND` for none; changed by [`Cache::set_max_weight`].
    max_weight: AtomicU64,
    /// The heaviest entry a shard admits (the smallest shard's weight bound, at most u32::MAX).
    max_entry_weight: AtomicU64,
}

/// `Inner::max_weight` of a cache bounded by entries alone.
const NO_BOUND: u64 = u64::MAX;

/// An insert as settled before the shard's lock is taken (or, for [`Cache::compute`], before
/// the insert is decided).
struct Write<K, V> {
    hash: u64,
    key: K,
    value: V,
    weight: u32,
    /// The entry's own TTL; the cache's default for `None`.
    ttl: Option<Duration>,
    /// The clock's reading deadlines count from.
    now: u64,
}

/// Shard `i`'s part of a bound `total` split over `n` shards: the remainder goes to the
/// first shards, so the parts add up to `total` exactly.
fn shard_share(total: u64, n: usize, i: usize) -> u64 {
    total / n as u64 + u64::from((i as u64) < total % n as u64)
}

/// The heaviest entry a cache of weight bound `total` over `n` shards admits: what the
/// smallest shard holds, at most `u32::MAX` (weights are kept as `u32`).
fn heaviest_entry(total: u64, n: usize) -> u64 {
    (total / n as u64).min(u64::from(u32::MAX))
}

impl<K, V, S> Inner<K, V, S> {
    /// An entry's deadlines for a TTL of `ttl` nanoseconds (`NEVER` for none) starting at
    /// `now`: the effective one (sooner with time-to-idle) and the hard one (the TTL's). A TTL
    /// too long to represent counts as none.
    #[inline]
    fn deadlines(&self, now: u64, ttl: u64) -> (u64, u64) {
        let hard = if ttl == NEVER {
            NEVER
        } else {
            now.saturating_add(ttl).min(NEVER - 1)
        };
        let deadline = if self.tti == 0 {
            hard
        } else {
            hard.min(now.saturating_add(self.tti))
        };
        (deadline, hard)
    }
}

impl<K, V> Cache<K, V, DefaultHashBuilder>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A cache of at most `max_entries` entries, with no TTL.
    ///
    /// # Panics
    /// If `max_entries` is 0; use [`Cache::builder`] to get an error instead.
    pub fn new(max_entries: u64) -> Self {
        match Self::builder().max_entries(max_entries).build() {
            Ok(cache) => cache,
            Err(e) => panic!("Cache::new({max_entries}): {e}"),
        }
    }

    /// Starts configuring a cache.
    pub fn builder() -> CacheBuilder<K, V> {
        CacheBuilder::new()
    }
}

impl<K, V, S> Cache<K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    pub(crate) fn from_settings(settings: CacheSettings<K, V, S>) -> Self {
        let n = settings.shards;
        let split = |total: u64, i: usize| shard_share(total, n, i);
        let len_cap = MAX_SHARD_LEN as u64;
        let climber = Climber::new();
        let shards: Box<[ShardCell<K, V>]> = (0..n)
            .map(|i| {
                let max_len = settings
                    .max_entries
                    .map_or(len_cap, |e| split(e, i).min(len_cap));
                let shard = ShardSettings {
                    max_len: max_len as usize,
                    max_weight: settings.max_weight.map_or(u64::MAX, |w| split(w, i)),
                    weighted: settings.weigher.is_some(),
                    idle: settings.time_to_idle.is_some(),
                    // Small: an empty cache (a namespace not used yet) should hold little
                    // beyond its bounds; the slab doubles as it fills.
                    preallocate: (max_len as usize).min(64),
                    window: climber.window(),
                };
                ShardCell {
                    hits: AtomicU64::new(0),
                    misses: AtomicU64::new(0),
                    lock: RwLock::new(Shard::new(shard)),
                }
            })
            .collect();
        let max_entry_weight = settings
            .max_weight
            .map_or(u64::from(u32::MAX), |w| heaviest_entry(w, n));
        Self {
            inner: Arc::new(Inner {
                shards,
                climber,
                mask: n - 1,
                hasher: settings.hasher,
                clock: settings.clock,
                default_ttl: settings.default_ttl.map_or(NEVER, duration_to_nanos),
                tti: settings.time_to_idle.map_or(0, duration_to_nanos),
                weigher: settings.weigher,
                listener: settings.listener,
                max_entries: settings.max_entries,
                max_weight: AtomicU64::new(settings.max_weight.unwrap_or(NO_BOUND)),
                max_entry_weight: AtomicU64::new(max_entry_weight),
            }),
        }
    }

    #[inline]
    fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.inner.hasher.hash_one(key)
    }

    /// Shards are chosen by bits 32..48 of the hash: the hash table inside a shard uses the
    /// low bits for the bucket and the top seven as tags, so these stay independent of both.
    #[inline]
    fn shard(&self, hash: u64) -> &ShardCell<K, V> {
        &self.inner.shards[(hash >> 32) as usize & self.inner.mask]
    }

    /// The value for `key`, if a live entry holds one. Counts a hit or a miss.
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get_with(key, |v| Some(v.clone()))
    }

    /// Looks `key` up and hands its live value, by reference under the shard's read lock, to
    /// `read`, which returns what the caller gets; `None` from `read` means the value is not
    /// good for this reader (a tag of it was invalidated, say) and counts as a miss. Keep
    /// `read` short: writers to the shard wait for it.
    ///
    /// ```
    /// use strata::Cache;
    /// let cache: Cache<&str, String> = Cache::new(10);
    /// cache.insert("greeting", "hello".into()).unwrap();
    /// // Read a part of the value without cloning all of it.
    /// assert_eq!(cache.get_with("greeting", |v| Some(v.len())), Some(5));
    /// assert_eq!(cache.get_with("greeting", |_| None::<usize>), None);
    /// assert_eq!((cache.stats().hits, cache.stats().misses), (1, 1));
    /// ```
    #[inline]
    pub fn get_with<Q, R>(&self, key: &Q, read: impl FnOnce(&V) -> Option<R>) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let cell = self.shard(hash);
        let shard = cell.lock.read();
        if let Some((idx, entry)) = shard.find(hash, key) {
            let deadline = entry.deadline();
            let live = if deadline == NEVER {
                true
            } else {
                let clock = &self.inner.clock;
                let now = clock.now_nanos();
                let live = deadline > now.saturating_add(clock.resolution_nanos());
                if live && self.inner.tti != 0 {
                    entry.touch_idle(shard.hard_deadline(idx), now, self.inner.tti);
                }
                live
            };
            if live {
                if let Some(out) = read(&entry.value) {
                    entry.touch();
                    cell.hits.fetch_add(1, Ordering::Relaxed);
                    return Some(out);
                }
            }
        }
        cell.misses.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// Hands the live value for `key` to `read` under the shard's read lock, like
    /// [`get_with`](Self::get_with), but counts nothing and does not count as a read.
    pub fn peek_with<Q, R>(&self, key: &Q, read: impl FnOnce(&V) -> Option<R>) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let shard = self.shard(hash).lock.read();
        let (_, entry) = shard.find(hash, key)?;
        if entry.is_expired(|| self.inner.clock.upper_nanos()) {
            return None;
        }
        read(&entry.value)
    }

    /// Whether a live entry exists for `key`. Counts nothing and does not count as a read.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.peek_with(key, |_| Some(())).is_some()
    }

    /// How long `key` has left: `None` when no live entry holds it, `Some(None)` when it never
    /// expires. With time-to-idle, the sooner of the TTL and the idle deadline. Counts nothing
    /// and does not count as a read. On the coarse system clock the answer may be short by up
    /// to the clock's resolution, never long.
    ///
    /// ```
    /// use strata::{Cache, MockClock};
    /// use std::time::Duration;
    ///
    /// let clock = MockClock::new();
    /// let cache: Cache<&str, u32> = Cache::builder().max_entries(10).clock(clock.clone()).build().unwrap();
    /// cache.insert_with_ttl("session", 1, Duration::from_secs(30)).unwrap();
    /// clock.advance(Duration::from_secs(10));
    /// assert_eq!(cache.ttl("session"), Some(Some(Duration::from_secs(20))));
    /// assert!(cache.set_ttl("session", None));            // like Redis PERSIST
    /// assert_eq!(cache.ttl("session"), Some(None));
    /// assert_eq!(cache.ttl("absent"), None);
    /// ```
    pub fn ttl<Q>(&self, key: &Q) -> Option<Option<Duration>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let shard = self.shard(hash).lock.read();
        let (_, entry) = shard.find(hash, key)?;
        let deadline = entry.deadline();
        if deadline == NEVER {
            return Some(None);
        }
        let now = self.inner.clock.upper_nanos();
        (deadline > now).then(|| Some(Duration::from_nanos(deadline - now)))
    }

    /// Makes the live entry for `key` expire `ttl` from now, or never with `None` (like Redis's
    /// `EXPIRE` and `PERSIST`); a zero `ttl` expires it at once. With time-to-idle this counts
    /// as a read of the entry. Returns whether a live entry was found; nothing changes if not.
    pub fn set_ttl<Q>(&self, key: &Q, ttl: Option<Duration>) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let inner = &*self.inner;
        let (deadline, hard) = inner.deadlines(
            inner.clock.now_nanos(),
            ttl.map_or(NEVER, duration_to_nanos),
        );
        let mut shard = self.shard(hash).lock.write();
        shard.set_deadline(hash, key, deadline, hard, inner.clock.upper_nanos())
    }

    /// Stores `value` under `key` with the cache's default TTL, replacing any previous value.
    pub fn insert(&self, key: K, value: V) -> Result<(), InsertError> {
        self.insert_inner(key, value, None, IfPresent::Replace, |_| false)
            .map(|_| ())
    }

    /// Stores `value` under `key`, expiring after `ttl` whatever the cache's default.
    /// A TTL beyond about 584 years counts as none.
    pub fn insert_with_ttl(&self, key: K, value: V, ttl: Duration) -> Result<(), InsertError> {
        if ttl.is_zero() {
            return Err(InsertError::ZeroTtl);
        }
        self.insert_inner(key, value, Some(ttl), IfPresent::Replace, |_| false)
            .map(|_| ())
    }

    /// Stores `value` only if `key` has no live entry. Atomic with respect to every other
    /// operation on the key: of many concurrent callers, exactly one gets
    /// [`Inserted::Inserted`] and the others get the winner's value, as long as the winner's
    /// entry stays in the cache (an eviction, expiry or removal in between lets the next
    /// caller win again). The existing value is cloned under the shard's lock; the caller's
    /// rejected key and value are dropped after it is released.
    pub fn insert_if_absent(&self, key: K, value: V) -> Result<Inserted<V>, InsertError> {
        match self.insert_inner(key, value, None, IfPresent::Keep, |_| false)? {
            None => Ok(Inserted::Inserted),
            Some(v) => Ok(Inserted::Existing(v)),
        }
    }

    /// [`insert_if_absent`](Self::insert_if_absent) with a TTL of its own.
    pub fn insert_if_absent_with_ttl(
        &self,
        key: K,
        value: V,
        ttl: Duration,
    ) -> Result<Inserted<V>, InsertError> {
        if ttl.is_zero() {
            return Err(InsertError::ZeroTtl);
        }
        match self.insert_inner(key, value, Some(ttl), IfPresent::Keep, |_| false)? {
            None => Ok(Inserted::Inserted),
            Some(v) => Ok(Inserted::Existing(v)),
        }
    }

    fn weigh(&self, key: &K, value: &V) -> Result<u32, InsertError> {
        let Some(weigher) = &self.inner.weigher else {
            return Ok(1);
        };
        let weight = catch_unwind(AssertUnwindSafe(|| weigher.weigh(key, value)))
            .map_err(|_| InsertError::WeigherPanicked)?;
        let limit = self.inner.max_entry_weight.load(Ordering::Relaxed);
        if weight > limit {
            return Err(InsertError::TooLarge { weight, limit });
        }
        // `limit` is at most u32::MAX, so this cannot truncate.
        Ok(weight as u32)
    }

    /// The inserts of the layers above the engine: `gone(value)` says that an unexpired
    /// entry's value counts as absent (its tag was invalidated, say). Judged under the
    /// shard's lock, so it is atomic with the insert: a gone entry is replaced, counted as
    /// an insert and a removal (cause [`RemovalCause::Invalidated`]), and never kept by
    /// [`IfPresent::Keep`].
    pub(crate) fn insert_unless(
        &self,
        key: K,
        value: V,
        ttl: Option<Duration>,
        if_present: IfPresent,
        gone: impl FnOnce(&V) -> bool,
    ) -> Result<Option<V>, InsertError> {
        if ttl.is_some_and(|t| t.is_zero()) {
            return Err(InsertError::ZeroTtl);
        }
        self.insert_inner(key, value, ttl, if_present, gone)
    }

    /// Inserts (or, with [`IfPresent::Keep`], leaves a live entry alone and returns its
    /// value).
    fn insert_inner(
        &self,
        key: K,
        value: V,
        ttl: Option<Duration>,
        if_present: IfPresent,
        gone: impl FnOnce(&V) -> bool,
    ) -> Result<Option<V>, InsertError> {
        let weight = self.weigh(&key, &value)?;
        let hash = self.hash(&key);
        let mut out = Removed::new();
        // Deadlines count from this reading (taken outside the lock, to keep the critical
        // section short). Whether the key's existing entry is still live is judged by a second
        // reading under the lock, since this one may be stale by the time the lock is ours.
        let now = self.inner.clock.now_nanos();
        let cell = self.shard(hash);
        let mut shard = cell.lock.write();
        let write = Write {
            hash,
            key,
            value,
            weight,
            ttl,
            now,
        };
        let insertion = self.insert_locked(cell, &mut shard, write, if_present, gone, &mut out);
        // Release the lock before dropping what left or calling the listener.
        drop(shard);
        self.dispose(out);
        Ok(match insertion {
            Insertion::Stored => None,
            Insertion::Kept { existing, rejected } => {
                drop(rejected);
                Some(existing)
            }
        })
    }

    /// The insert proper, under the shard's write lock (`shard` is `cell`'s): what
    /// [`insert_inner`](Self::insert_inner) and [`compute`](Self::compute) share. `write.ttl`
    /// is the entry's, `None` for the cache's default.
    fn insert_locked(
        &self,
        cell: &ShardCell<K, V>,
        shard: &mut Shard<K, V>,
        write: Write<K, V>,
        if_present: IfPresent,
        gone: impl FnOnce(&V) -> bool,
        out: &mut Removed<K, V>,
    ) -> Insertion<K, V> {
        let inner = &*self.inner;
        let hasher = |k: &K| inner.hasher.hash_one(k);
        let ttl = write.ttl.map_or(inner.default_ttl, duration_to_nanos);
        let (deadline, hard) = inner.deadlines(write.now, ttl);
        let hits = cell.hits.load(Ordering::Relaxed);
        shard.observe_lookups(
            hits,
            hits + cell.misses.load(Ordering::Relaxed),
            &inner.climber,
        );
        let new = NewEntry {
            hash: write.hash,
            key: write.key,
            value: write.value,
            weight: write.weight,
            deadline,
            hard,
        };
        let clock = Readings {
            approx: write.now.saturating_add(inner.clock.resolution_nanos()),
            exact: || inner.clock.upper_nanos(),
        };
        shard.insert(new, if_present, gone, clock, &hasher, out)
    }

    /// Removes `key`, returning its value if a live entry held one.
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.remove_if(key, |_| true)
    }

    /// Removes `key` if a live entry holds it and `doomed` says so of its value, atomically:
    /// no other write to the key comes between the test and the removal. Returns the value
    /// removed.
    ///
    /// ```
    /// use strata::Cache;
    /// let cache: Cache<&str, u32> = Cache::new(10);
    /// cache.insert("lock", 7).unwrap();
    /// assert_eq!(cache.remove_if("lock", |&owner| owner == 8), None);
    /// assert_eq!(cache.remove_if("lock", |&owner| owner == 7), Some(7));
    /// ```
    pub fn remove_if<Q>(&self, key: &Q, doomed: impl FnOnce(&V) -> bool) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let inner = &*self.inner;
        let hasher = |k: &K| inner.hasher.hash_one(k);
        let mut out = Removed::new();
        let now = inner.clock.upper_nanos();
        let mut shard = self.shard(hash).lock.write();
        let (_, entry) = shard.find(hash, key)?;
        // An expired entry goes on to be reclaimed (and reported) as expired.
        if !entry.is_expired(|| inner.clock.upper_nanos()) && !doomed(&entry.value) {
            return None;
        }
        let clock = Readings {
            approx: now,
            exact: || inner.clock.upper_nanos(),
        };
        let removed = shard.remove(hash, key, clock, &hasher, &mut out);
        drop(shard);
        self.dispose(out);
        let (key, value) = removed?;
        if let Some(listener) = &inner.listener {
            listener(key, value.clone(), RemovalCause::Removed);
        }
        Some(value)
    }

    /// Reads and writes `key` atomically: `f` sees the live value (if any) and says what to
    /// do with the key, and no other write to the key comes between. For read-modify-write
    /// operations such as counters and appends. `f` runs under the shard's write lock, so it
    /// should be quick and must not touch the cache. Counts no hit or miss. An insert is
    /// refused (and nothing changes) when the value is too heavy, when a TTL is zero, or with
    /// [`Compute::Insert`]'s `evict: false` when it would need to evict another entry.
    ///
    /// ```
    /// use strata::{Cache, Compute};
    /// let cache: Cache<&str, u64> = Cache::new(10);
    /// let bump = |n: Option<&u64>| {
    ///     let next = n.copied().unwrap_or(0) + 1;
    ///     (Compute::Insert { value: next, ttl: None, evict: true }, next)
    /// };
    /// assert_eq!(cache.compute("hits", bump), Ok(1));
    /// assert_eq!(cache.compute("hits", bump), Ok(2));
    /// assert_eq!(cache.compute("hits", |_| (Compute::Remove, ())), Ok(()));
    /// assert_eq!(cache.get("hits"), None);
    /// ```
    pub fn compute<R>(
        &self,
        key: K,
        f: impl FnOnce(Option<&V>) -> (Compute<V>, R),
    ) -> Result<R, InsertError> {
        self.compute_unless(key, |_| false, f)
            .map(|(answer, _)| answer)
    }

    /// [`compute`](Self::compute) for the layers above: `gone(value)` says that an unexpired
    /// entry counts as absent (see [`insert_unless`](Self::insert_unless)). The key comes back
    /// unless it went into the cache, for a caller that still needs it (to publish a removal).
    pub(crate) fn compute_unless<R>(
        &self,
        key: K,
        gone: impl Fn(&V) -> bool,
        f: impl FnOnce(Option<&V>) -> (Compute<V>, R),
    ) -> Result<(R, Option<K>), InsertError> {
        let hash = self.hash(&key);
        let inner = &*self.inner;
        let hasher = |k: &K| inner.hasher.hash_one(k);
        let mut out = Removed::new();
        let now = inner.clock.now_nanos();
        let upper = now.saturating_add(inner.clock.resolution_nanos());
        let cell = self.shard(hash);
        let mut shard = cell.lock.write();
        let current = shard
            .find(hash, &key)
            .map(|(_, entry)| entry)
            .filter(|e| !e.is_expired(|| inner.clock.upper_nanos()) && !gone(&e.value))
            .map(|e| &e.value);
        let (what, answer) = f(current);
        let kept = match what {
            Compute::Keep => Some(key),
            Compute::Remove => {
                let clock = Readings {
                    approx: upper,
                    exact: || inner.clock.upper_nanos(),
                };
                let removed = shard.remove(hash, &key, clock, &hasher, &mut out);
                if let Some((key, value)) = removed {
                    out.push((key, value, RemovalCause::Removed));
                }
                Some(key)
            }
            Compute::Expire(ttl) => {
                let ttl = ttl.map_or(NEVER, duration_to_nanos);
                let (deadline, hard) = inner.deadlines(now, ttl);
                shard.set_deadline(hash, &key, deadline, hard, inner.clock.upper_nanos());
                Some(key)
            }
            Compute::Insert { value, ttl, evict } => {
                if ttl.is_some_and(|t| t.is_zero()) {
                    return Err(InsertError::ZeroTtl);
                }
                let weight = self.weigh(&key, &value)?;
                if !evict && !shard.has_room(hash, &key, weight) {
                    return Err(InsertError::NoRoom);
                }
                let write = Write {
                    hash,
                    key,
                    value,
                    weight,
                    ttl,
                    now,
                };
                let replace = IfPresent::Replace;
                self.insert_locked(cell, &mut shard, write, replace, gone, &mut out);
                None
            }
        };
        drop(shard);
        self.dispose(out);
        Ok((answer, kept))
    }

    /// One step of a walk over the live entries that can be resumed later, like Redis's
    /// `SCAN`: looks at about `count` slots from `cursor` (0 to start), calls `visit` on
    /// each live entry there, and returns the cursor to go on from, 0 when the walk is done.
    /// An entry present for the whole walk is visited at least once, whatever is written in
    /// between; entries may be visited more than once. Cursors are below 2^48. Each step holds
    /// one shard's read lock.
    ///
    /// ```
    /// use strata::Cache;
    /// let cache: Cache<u32, u32> = Cache::new(1_000);
    /// for i in 0..100 { cache.insert(i, i).unwrap(); }
    /// let (mut seen, mut cursor) = (Vec::new(), 0);
    /// loop {
    ///     cursor = cache.scan(cursor, 10, |k, _| seen.push(*k));
    ///     if cursor == 0 { break; }
    /// }
    /// seen.sort();
    /// assert_eq!(seen, (0..100).collect::<Vec<_>>());
    /// ```
    pub fn scan(&self, cursor: u64, count: usize, mut visit: impl FnMut(&K, &V)) -> u64 {
        let shards = self.inner.shards.len() as u64;
        let mut shard_idx = cursor >> 32;
        // Within a shard: 0 = from the top, otherwise the slab index to go on below.
        let mut below = match cursor & u64::from(u32::MAX) {
            0 => usize::MAX,
            b => b as usize,
        };
        let now = self.inner.clock.upper_nanos();
        let mut budget = count.max(1);
        while shard_idx < shards {
            let shard = self.inner.shards[shard_idx as usize].lock.read();
            let start = below.min(shard.len());
            let next = shard.scan(start, budget, now, &mut visit);
            drop(shard);
            budget = budget.saturating_sub(start - next);
            if next > 0 {
                return shard_idx << 32 | next as u64;
            }
            shard_idx += 1;
            below = usize::MAX;
            if budget == 0 {
                break;
            }
        }
        if shard_idx >= shards {
            0
        } else {
            shard_idx << 32
        }
    }

    /// Changes the weight bound (Redis's `CONFIG SET maxmemory`), evicting by the policy
    /// until the cache fits it. Only for caches built with a weight bound; returns whether
    /// the bound was changed. A bound smaller than the number of shards counts as that
    /// number (each shard holds at least one unit).
    pub fn set_max_weight(&self, max_weight: u64) -> bool {
        if self.max_weight().is_none() {
            return false;
        }
        let inner = &*self.inner;
        let n = inner.shards.len() as u64;
        // `NO_BOUND` means "no weight bound": the largest bound is one below it.
        let max_weight = max_weight.clamp(n, NO_BOUND - 1);
        inner.max_weight.store(max_weight, Ordering::Relaxed);
        inner
            .max_entry_weight
            .store(heaviest_entry(max_weight, n as usize), Ordering::Relaxed);
        let hasher = |k: &K| inner.hasher.hash_one(k);
        let now = inner.clock.now_nanos();
        for (i, cell) in inner.shards.iter().enumerate() {
            let share = shard_share(max_weight, n as usize, i);
            let mut out = Removed::new();
            cell.lock
                .write()
                .set_max_weight(share, now, &hasher, &mut out);
            self.dispose(out);
        }
        true
    }

    /// Removes every entry. Each shard is emptied under its lock and its entries are dropped
    /// (or given to the listener) after the lock is released.
    pub fn clear(&self) {
        for cell in self.inner.shards.iter() {
            let taken = cell.lock.write().clear();
            if let Some(listener) = &self.inner.listener {
                for entry in taken {
                    listener(entry.key, entry.value, RemovalCause::Cleared);
                }
            }
        }
    }

    /// Removes every live entry for which `doomed(key, value)` holds, one shard at a time under
    /// its write lock, and returns how many. They count as removals and reach the listener as
    /// [`RemovalCause::Invalidated`]; expired entries met on the way are reclaimed too. This
    /// visits every entry, holding each shard's lock for a slice of 256 at a
    /// time: visiting costs a few nanoseconds an entry, removing 0.2–0.7 µs
    /// (docs/benchmarks.md). Entries inserted meanwhile may or may not be visited.
    ///
    /// ```
    /// use strata::Cache;
    /// let cache: Cache<String, u32> = Cache::new(100);
    /// for id in 0..10 {
    ///     cache.insert(format!("user::{id}"), id).unwrap();
    /// }
    /// assert_eq!(cache.remove_where(|key, _| key.ends_with('7')), 1);
    /// assert_eq!(cache.remove_where(|_, &v| v >= 5), 4);
    /// assert_eq!(cache.len(), 5);
    /// ```
    pub fn remove_where(&self, mut doomed: impl FnMut(&K, &V) -> bool) -> usize {
        let inner = &*self.inner;
        let hasher = |k: &K| inner.hasher.hash_one(k);
        let mut removed = 0;
        for cell in inner.shards.iter() {
            // In slices, releasing the lock between them, so readers and writers of the shard
            // wait for one slice at most. The slab is visited from its end down: removing
            // moves the last entry into the hole, and the last entry was already visited, so
            // every entry present from start to end is visited (see `Shard::remove_where`).
            let mut next = usize::MAX;
            while next > 0 {
                let mut out = Vec::new();
                let mut shard = cell.lock.write();
                let now = inner.clock.upper_nanos();
                let (n, rest) = shard.remove_where(
                    next,
                    REMOVE_WHERE_SLICE,
                    now,
                    &mut doomed,
                    &hasher,
                    &mut out,
                );
                drop(shard);
                self.dispose(out);
                removed += n;
                next = rest;
            }
        }
        removed
    }

    /// Empties the cache in time independent of its size: each shard is swapped for an empty
    /// one under its lock, and the full ones are returned. Readers miss from the moment each
    /// shard is swapped. Dropping the returned value frees the entries (and tells the
    /// listener, as [`RemovalCause::Cleared`]), so it can be sent to another thread to keep
    /// that work off the caller.
    pub fn clear_deferred(&self) -> Cleared<K, V> {
        let shards: Vec<_> = self
            .inner
            .shards
            .iter()
            .filter_map(|cell| {
                let mut shard = cell.lock.write();
                // An empty shard stays: swapping it would only allocate.
                (shard.len() > 0).then(|| shard.take())
            })
            .collect();
        Cleared {
            len: shards.iter().map(Shard::len).sum(),
            shards,
            listener: self.inner.listener.clone(),
        }
    }

    /// Reclaims every expired entry now, in every shard, and returns how many there were.
    /// Writes already reclaim a few slots each and [`CacheBuilder::reaper`] runs this
    /// periodically; call it to reclaim at a moment of your choosing.
    pub fn run_pending_tasks(&self) -> usize {
        let inner = &*self.inner;
        let hasher = |k: &K| inner.hasher.hash_one(k);
        let mut reclaimed = 0;
        for cell in inner.shards.iter() {
            let mut out = Vec::new();
            let mut shard = cell.lock.write();
            let now = inner.clock.upper_nanos();
            reclaimed += shard.sweep_all(now, &hasher, &mut out);
            drop(shard);
            self.dispose(out);
        }
        reclaimed
    }

    fn dispose(&self, removed: impl IntoIterator<Item = (K, V, RemovalCause)>) {
        match &self.inner.listener {
            Some(listener) => removed
                .into_iter()
                .for_each(|(k, v, cause)| listener(k, v, cause)),
            None => drop(removed),
        }
    }

    /// Entries held, including expired ones not reclaimed yet (see
    /// [`run_pending_tasks`](Self::run_pending_tasks)).
    pub fn len(&self) -> usize {
        self.inner.shards.iter().map(|c| c.lock.read().len()).sum()
    }

    /// Entries with a deadline (a TTL, or time-to-idle), counted as [`len`](Self::len)
    /// counts: expired ones not reclaimed yet included. Redis's `expires`, in O(shards).
    pub fn expiring_len(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|c| c.lock.read().timed_len())
            .sum()
    }

    /// Whether the cache holds no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The sum of the weights of the entries held (their count, without a weigher).
    pub fn weighted_size(&self) -> u64 {
        self.inner
            .shards
            .iter()
            .map(|c| c.lock.read().weight())
            .sum()
    }

    /// The entry bound, if one was set.
    pub fn max_entries(&self) -> Option<u64> {
        self.inner.max_entries
    }

    /// The weight bound, if one was set.
    pub fn max_weight(&self) -> Option<u64> {
        let w = self.inner.max_weight.load(Ordering::Relaxed);
        (w != NO_BOUND).then_some(w)
    }

    /// The keys of live entries, one shard at a time: each shard's keys are copied under its
    /// read lock when the iterator reaches it, so the snapshot of each shard is consistent and
    /// no lock is held between calls to `next`.
    pub fn keys(&self) -> Keys<'_, K, V, S> {
        Keys {
            cache: self,
            next_shard: 0,
            batch: Vec::new().into_iter(),
        }
    }

    /// Counters summed over all shards.
    pub fn stats(&self) -> CacheStats {
        let mut stats = CacheStats::default();
        for cell in self.inner.shards.iter() {
            stats.hits += cell.hits.load(Ordering::Relaxed);
            stats.misses += cell.misses.load(Ordering::Relaxed);
            let shard = cell.lock.read();
            let c = shard.counters;
            stats.inserts += c.inserts;
            stats.updates += c.updates;
            stats.removals += c.removals;
            stats.expirations += c.expirations;
            stats.evictions += c.evictions;
            stats.entries += shard.len() as u64;
            stats.weighted_size += shard.weight();
        }
        stats
    }

    /// Bytes held by the engine's own structures (slots holding keys and values, tables,
    /// sketches), not counting heap that keys and values own.
    pub fn engine_heap_bytes(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|c| c.lock.read().heap_bytes())
            .sum::<usize>()
            + std::mem::size_of_val(&*self.inner.shards)
    }

    /// Checks the engine's structural invariants in every shard (the hash table and the slab
    /// agree, the queues hold every entry once with consistent links, lengths, weights and
    /// deadline counts add up, the bounds hold) and panics with the first one broken. It walks
    /// every entry under each shard's read lock: for tests, which call it after every
    /// operation (`tests/model.rs`), not for production.
    #[doc(hidden)]
    pub fn check_invariants(&self) {
        let inner = &*self.inner;
        let hasher = |k: &K| inner.hasher.hash_one(k);
        for cell in inner.shards.iter() {
            cell.lock.read().check_invariants(&hasher);
        }
    }

    pub(crate) fn spawn_reaper(&self, interval: Duration) {
        let weak: Weak<Inner<K, V, S>> = Arc::downgrade(&self.inner);
        // The first pass is due `interval` after the cache was built, on its clock (a mock
        // clock moved before the thread starts still wakes it).
        let clock = self.inner.clock.clone();
        let interval = duration_to_nanos(interval);
        let mut due = clock.now_nanos().saturating_add(interval);
        let spawned = std::thread::Builder::new()
            .name("strata-reaper".into())
            .spawn(move || loop {
                clock.sleep_until(due);
                due = clock.now_nanos().saturating_add(interval);
                let Some(inner) = weak.upgrade() else { return };
                Cache { inner }.run_pending_tasks();
            });
        // Without a thread, writes and run_pending_tasks still reclaim expired entries.
        drop(spawned);
    }
}

/// The entries of a cache emptied by [`Cache::clear_deferred`], freed (and given to the
/// removal listener) when this is dropped.
#[must_use = "dropping this at once frees the entries on this thread; send it elsewhere to defer that"]
pub struct Cleared<K, V> {
    len: usize,
    shards: Vec<Shard<K, V>>,
    listener: Option<Arc<Listener<K, V>>>,
}

impl<K, V> Cleared<K, V> {
    /// How many entries are waiting to be freed.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is waiting to be freed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K, V> Drop for Cleared<K, V> {
    fn drop(&mut self) {
        let Some(listener) = &self.listener else {
            return;
        };
        for shard in std::mem::take(&mut self.shards) {
            for entry in shard.into_entries() {
                listener(entry.key, entry.value, RemovalCause::Cleared);
            }
        }
    }
}

impl<K, V> fmt::Debug for Cleared<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cleared").field("len", &self.len()).finish()
    }
}

/// Iterator over a snapshot of a cache's keys; see [`Cache::keys`].
pub struct Keys<'a, K, V, S> {
    cache: &'a Cache<K, V, S>,
    next_shard: usize,
    batch: std::vec::IntoIter<K>,
}

impl<K, V, S> Iterator for Keys<'_, K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    type Item = K;

    fn next(&mut self) -> Option<K> {
        loop {
            if let Some(key) = self.batch.next() {
                return Some(key);
            }
            let cell = self.cache.inner.shards.get(self.next_shard)?;
            self.next_shard += 1;
            let shard = cell.lock.read();
            let now = self.cache.inner.clock.upper_nanos();
            self.batch = shard.live_keys(now).into_iter();
        }
    }
}

impl<K, V, S> fmt::Debug for Cache<K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("max_entries", &self.inner.max_entries)
            .field("max_weight", &self.max_weight())
            .field("shards", &self.inner.shards.len())
            .field("stats", &self.stats())
            .finish()
    }
}
