//! One namespace: a typed handle over its own engine.

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::flight::Flights;
use super::hot::{HotKey, HotKeys};
use super::load_stats::LoadCounters;
use super::put::{Current, Put, Update};
use super::shared::{Claim, ClaimError, SharedTier};
use super::slot::{Slot, SlotState};
use super::{Core, Invalidation};
use crate::config::NamespaceConfig;
use crate::engine::{IfPresent, NEVER};
use crate::key::Key;
use crate::{Cache, CacheStats, Compute, HeapSize, InsertError, Inserted, Pattern};

pub(crate) struct NsInner<V> {
    pub(crate) name: Arc<str>,
    pub(crate) cache: Cache<Key, Slot<V>>,
    pub(crate) core: Arc<Core>,
    pub(crate) hot: HotKeys,
    /// Its settings, with `max_bytes` set to its share of the budget.
    pub(crate) limits: NamespaceConfig,
    pub(crate) flights: Flights<V>,
    pub(crate) loads: LoadCounters,
    /// The shared second tier, once one is attached (see `shared.rs`).
    pub(crate) shared: OnceLock<Arc<dyn SharedTier<V>>>,
}

/// A namespace of a [`Store`](super::Store): its own engine, TTL, limits and statistics,
/// holding values of one type. Cloning the handle is cheap; every clone sees the same entries.
/// Every way of removing entries goes through the store's invalidation path, so the publisher
/// hook sees it.
///
/// ```
/// use strata::store::{Put, Store};
///
/// let store = Store::new();
/// let users = store.namespace::<String>("default").unwrap();
/// users.insert_with("user::42::profile", "Ada".to_string(), Put::new().tag("user:42")).unwrap();
/// assert_eq!(users.get("user::42::profile").as_deref(), Some("Ada"));
/// assert_eq!(store.invalidate_tag("user:42"), 1);
/// assert_eq!(users.get("user::42::profile"), None);
/// ```
pub struct Namespace<V> {
    pub(crate) inner: Arc<NsInner<V>>,
}

impl<V> Clone for Namespace<V> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<V> std::fmt::Debug for Namespace<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespace")
            .field("name", &self.inner.name)
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

impl<V> Namespace<V>
where
    V: Clone + HeapSize + Send + Sync + 'static,
{
    pub(crate) fn build(
        name: &str,
        limits: NamespaceConfig,
        core: Arc<Core>,
    ) -> Result<Self, crate::BuildError> {
        let mut builder = Cache::<Key, Slot<V>>::builder().clock(core.clock.clone());
        if let Some(bytes) = limits.max_bytes {
            builder = builder.max_bytes(bytes);
        }
        if let Some(n) = limits.max_entries {
            builder = builder.max_entries(n);
        }
        if let Some(ttl) = limits.ttl {
            // The engine keeps entries through the stale window; `fresh_until` says when
            // their TTL proper ends.
            builder = builder.default_ttl(ttl.saturating_add(limits.max_stale.unwrap_or_default()));
        }
        if let Some(tti) = limits.time_to_idle {
            builder = builder.time_to_idle(tti);
        }
        Ok(Self {
            inner: Arc::new(NsInner {
                name: name.into(),
                cache: builder.build()?,
                core,
                hot: HotKeys::default(),
                limits,
                flights: Flights::new(),
                loads: LoadCounters::default(),
                shared: OnceLock::new(),
            }),
        })
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Puts a shared second tier under the namespace (see [`SharedTier`] for what changes).
    /// Returns false, changing nothing, if it already has one.
    pub fn share(&self, tier: Arc<dyn SharedTier<V>>) -> bool {
        self.inner.shared.set(tier).is_ok()
    }

    /// Whether a shared tier is attached.
    pub fn is_shared(&self) -> bool {
        self.inner.shared.get().is_some()
    }

    /// The settings it runs with; `max_bytes` is its share of the store's budget.
    pub fn limits(&self) -> &NamespaceConfig {
        &self.inner.limits
    }

    /// The value for `key`, if a live entry holds one (not expired, no tag invalidated).
    /// Counts a hit or a miss.
    #[inline]
    pub fn get(&self, key: impl AsRef<[u8]>) -> Option<V> {
        self.get_with(key, V::clone)
    }

    /// Reads the value for `key` in place, without cloning it: `read` runs on it (under the
    /// engine shard's read lock, so keep it quick) if a live entry holds one. Counts a hit or
    /// a miss. `strata serve` writes replies straight from the cache with it.
    ///
    /// ```
    /// use strata::store::Store;
    /// let store = Store::new();
    /// let ns = store.namespace::<Vec<u8>>("default").unwrap();
    /// ns.insert("k", b"value".to_vec()).unwrap();
    /// assert_eq!(ns.get_with("k", |v| v.len()), Some(5));
    /// assert_eq!(ns.get_with("nope", |v| v.len()), None);
    /// ```
    #[inline]
    pub fn get_with<R>(&self, key: impl AsRef<[u8]>, read: impl FnOnce(&V) -> R) -> Option<R> {
        self.read(key.as_ref(), |slot, state| match (state, &slot.value) {
            (SlotState::Fresh, Some(value)) => Some(read(value)),
            _ => None,
        })
    }

    /// The one read path: under the engine shard's read lock, `judge` sees the key's slot and
    /// its state and says what the caller gets (`None` is a miss). Counts a hit or a miss, and
    /// samples hits for the hot-key estimates. Every counted read of the store comes through
    /// here: [`get_with`](Self::get_with), and the loads' [`hit`](Self::hit).
    #[inline]
    pub(super) fn read<R>(
        &self,
        key: &[u8],
        judge: impl FnOnce(&Slot<V>, SlotState) -> Option<R>,
    ) -> Option<R> {
        let inner = &*self.inner;
        let found = inner
            .cache
            .get_with(key, |slot| judge(slot, inner.state(slot)));
        if found.is_some() && HotKeys::should_sample() {
            inner.hot.record(key);
        }
        found
    }

    /// Reads the value for `key` in place, like [`get_with`](Self::get_with), but counts
    /// nothing and does not count as a read (for the shared tier, which writes out what this
    /// instance holds).
    pub fn peek_with<R>(&self, key: impl AsRef<[u8]>, read: impl FnOnce(&V) -> R) -> Option<R> {
        self.peek(key.as_ref(), |slot| slot.value.as_ref().map(read))
            .flatten()
    }

    /// Whether a live entry holds `key`. Counts nothing.
    pub fn contains_key(&self, key: impl AsRef<[u8]>) -> bool {
        self.peek(key.as_ref(), |_| ()).is_some()
    }

    /// Runs `see` on the slot of `key` if it is [fresh](SlotState::Fresh), under the engine
    /// shard's read lock. Counts nothing and does not count as a read.
    fn peek<R>(&self, key: &[u8], see: impl FnOnce(&Slot<V>) -> R) -> Option<R> {
        let inner = &*self.inner;
        inner.cache.peek_with(key, |slot| {
            (inner.state(slot) == SlotState::Fresh).then(|| see(slot))
        })
    }

    /// How long `key` has left: `None` when no live entry holds it, `Some(None)` when it never
    /// expires. Counts nothing.
    pub fn ttl(&self, key: impl AsRef<[u8]>) -> Option<Option<Duration>> {
        let key = key.as_ref();
        let fresh_until = self.peek(key, |slot| slot.fresh_until.load(Ordering::Relaxed))?;
        if self.inner.limits.max_stale.is_none() {
            // The engine's deadline is the TTL (and sees time-to-idle too).
            return self.inner.cache.ttl(key);
        }
        if fresh_until == NEVER {
            return Some(None);
        }
        let now = self.inner.core.clock.now_nanos();
        Some(Some(Duration::from_nanos(fresh_until.saturating_sub(now))))
    }

    /// Makes `key` expire `ttl` from now, or never with `None`; returns whether a live entry
    /// held it.
    pub fn set_ttl(&self, key: impl AsRef<[u8]>, ttl: Option<Duration>) -> bool {
        let key = key.as_ref();
        let fresh_until = self.fresh_until(ttl);
        let found = self
            .peek(key, |slot| {
                slot.fresh_until.store(fresh_until, Ordering::Relaxed)
            })
            .is_some();
        found && self.inner.cache.set_ttl(key, self.engine_ttl(ttl))
    }

    /// When an entry given `ttl` (or the namespace's, for `None` from a plain insert) stops
    /// being fresh, on the namespace's clock.
    fn fresh_until(&self, ttl: Option<Duration>) -> u64 {
        match ttl.or(self.inner.limits.ttl) {
            Some(ttl) => self
                .inner
                .core
                .clock
                .now_nanos()
                .saturating_add(u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX))
                .min(NEVER - 1),
            None => NEVER,
        }
    }

    /// The engine's TTL for an entry whose own TTL is `ttl`: longer by the stale window.
    fn engine_ttl(&self, ttl: Option<Duration>) -> Option<Duration> {
        ttl.map(|t| t.saturating_add(self.inner.limits.max_stale.unwrap_or_default()))
    }

    /// Stores `value` under `key` with the namespace's TTL and no tags.
    pub fn insert(&self, key: impl Into<Key>, value: V) -> Result<(), InsertError> {
        self.insert_with(key, value, Put::new())
    }

    /// Stores `value` under `key` with a TTL and tags of its own.
    pub fn insert_with(&self, key: impl Into<Key>, value: V, put: Put) -> Result<(), InsertError> {
        let key = key.into();
        // A load of the key in the air read the origin before this value: it must not
        // replace it when it lands.
        self.inner.flights.invalidate(key.as_bytes());
        match self.inner.shared.get() {
            None => self.store(key, value, put, IfPresent::Replace).map(|_| ()),
            Some(tier) => {
                self.store(key.clone(), value, put, IfPresent::Replace)?;
                tier.inserted(&key);
                Ok(())
            }
        }
    }

    /// Stores `value` only if no live entry holds `key`; of concurrent callers exactly one
    /// wins, the others get the winner's value (see [`Cache::insert_if_absent`]). An entry
    /// whose tag was invalidated counts as absent.
    pub fn insert_if_absent(
        &self,
        key: impl Into<Key>,
        value: V,
    ) -> Result<Inserted<V>, InsertError> {
        self.insert_if_absent_with(key, value, Put::new())
    }

    /// [`insert_if_absent`](Self::insert_if_absent) with a TTL and tags of its own.
    pub fn insert_if_absent_with(
        &self,
        key: impl Into<Key>,
        value: V,
        put: Put,
    ) -> Result<Inserted<V>, InsertError> {
        let key = key.into();
        self.inner.flights.invalidate(key.as_bytes());
        Ok(
            match self.store(key.clone(), value, put, IfPresent::Keep)? {
                None => {
                    if let Some(tier) = self.inner.shared.get() {
                        tier.inserted(&key);
                    }
                    Inserted::Inserted
                }
                Some(existing) => Inserted::Existing(existing),
            },
        )
    }

    /// [`insert_if_absent_with`](Self::insert_if_absent_with) decided for every instance: in
    /// a shared namespace, the shared tier stores `value` only if no instance's value is
    /// there (one round trip to Redis), so of callers on different instances exactly one
    /// wins, and the others get the winner's value. A live entry here answers at once. Not
    /// shared, it is `insert_if_absent_with`. For what must happen once across a fleet (a
    /// webhook delivered twice, a lock); `Err(ClaimError::Undecided)` when the tier cannot
    /// decide (Redis away): the caller chooses whether to go on without it.
    pub async fn claim(
        &self,
        key: impl Into<Key>,
        value: V,
        put: Put,
    ) -> Result<Inserted<V>, ClaimError> {
        let key = key.into();
        let Some(tier) = self.inner.shared.get().cloned() else {
            return Ok(self.insert_if_absent_with(key, value, put)?);
        };
        if let Some(existing) = self.peek_with(key.as_bytes(), V::clone) {
            return Ok(Inserted::Existing(existing));
        }
        let ttl = if put.never {
            None
        } else {
            put.ttl.or(self.inner.limits.ttl)
        };
        match tier.claim(&key, &value, ttl).await {
            Claim::Won => {
                // Held here from now on, as the tier holds it; a load of the key in the air
                // read it before.
                self.inner.flights.invalidate(key.as_bytes());
                self.store(key, value, put, IfPresent::Replace)?;
                Ok(Inserted::Inserted)
            }
            Claim::Lost(existing) => Ok(Inserted::Existing(existing)),
            Claim::Undecided => Err(ClaimError::Undecided),
        }
    }

    /// Inserts here only (not in the shared tier); an entry whose tag was invalidated counts
    /// as absent, judged under the shard's lock together with the insert.
    pub(super) fn store(
        &self,
        key: Key,
        value: V,
        put: Put,
        if_present: IfPresent,
    ) -> Result<Option<V>, InsertError> {
        if put.reads_current() {
            return self.update(key, |current| match current {
                Some(current) if if_present == IfPresent::Keep => {
                    (Update::Keep, Some(current.value.clone()))
                }
                _ => (Update::Put(value, put), None),
            });
        }
        let slot = self.slot(value, &put);
        let ttl = if put.never {
            Some(Duration::MAX)
        } else {
            self.engine_ttl(put.ttl)
        };
        let inner = &*self.inner;
        let existing = inner
            .cache
            .insert_unless(key, slot, ttl, if_present, |old| !inner.is_fresh(old))?;
        // `insert_unless` hands back only a fresh entry, which holds a value.
        Ok(existing.and_then(|slot| slot.value))
    }

    /// Records the origin's "not found" for `key`: a negative entry for the namespace's
    /// `negative_ttl`, or without one just the removal of whatever entry the key had (so the
    /// fail-safe cannot serve a value the origin no longer has). Not published: each
    /// instance learns it from the origin.
    pub(crate) fn store_not_found(&self, key: Key) {
        let Some(ttl) = self.inner.limits.negative_ttl else {
            self.inner.cache.remove(key.as_bytes());
            return;
        };
        let slot = Slot {
            value: None,
            tags: None,
            fresh_until: AtomicU64::new(self.fresh_until(Some(ttl))),
        };
        // A negative entry weighs its key alone, so it is refused only by a namespace too
        // small to hold the key, and then there is nothing to remember it in.
        let _ = self.inner.cache.insert_unless(
            key,
            slot,
            self.engine_ttl(Some(ttl)),
            IfPresent::Replace,
            |_| true,
        );
    }

    fn slot(&self, value: V, put: &Put) -> Slot<V> {
        Slot {
            value: Some(value),
            tags: self.inner.core.tags.stamp(&put.tags),
            fresh_until: AtomicU64::new(if put.never {
                NEVER
            } else {
                self.fresh_until(put.ttl)
            }),
        }
    }

    /// The engine's TTL for an entry fresh until `fresh_until`: through the stale window.
    fn engine_ttl_until(&self, fresh_until: u64) -> Option<Duration> {
        if fresh_until == NEVER {
            return Some(Duration::MAX);
        }
        let left = fresh_until.saturating_sub(self.inner.core.clock.now_nanos());
        // At least a nanosecond: the deadline is near, not gone (the engine refuses zero).
        self.engine_ttl(Some(Duration::from_nanos(left.max(1))))
    }

    /// Reads and writes `key` atomically: `f` sees its live entry (if any) and says what to
    /// do; no other write to the key comes between. For read-modify-write commands (`INCR`,
    /// `APPEND`, `SET ... GET`, `GETDEL`). `f` runs under the engine shard's lock: keep it
    /// quick, and do not touch the store from it. Counts no hit or miss. A removal is
    /// published like [`remove`](Self::remove)'s; a changed value or TTL is told to the shared
    /// tier like an [`insert`](Self::insert).
    ///
    /// ```
    /// use strata::store::{Put, Store, Update};
    /// let store = Store::new();
    /// let counters = store.namespace::<i64>("default").unwrap();
    /// let incr = |current: Option<strata::store::Current<'_, i64>>| {
    ///     let next = current.map_or(0, |c| *c.value) + 1;
    ///     (Update::Put(next, Put::new().keep_ttl().keep_tags()), next)
    /// };
    /// assert_eq!(counters.update("visits", incr), Ok(1));
    /// assert_eq!(counters.update("visits", incr), Ok(2));
    /// ```
    pub fn update<R>(
        &self,
        key: impl Into<Key>,
        f: impl FnOnce(Option<Current<'_, V>>) -> (Update<V>, R),
    ) -> Result<R, InsertError> {
        let inner = &*self.inner;
        let key = key.into();
        // As for an insert: a load of the key in the air read the origin before this change.
        inner.flights.invalidate(key.as_bytes());
        // Kept for the shared tier, which hears of a changed value or TTL after the change.
        let shared = inner.shared.get().map(|tier| (tier, key.clone()));
        let mut removed = false;
        let mut changed = false;
        let (answer, key) = inner.cache.compute_unless(
            key,
            |slot| !inner.is_fresh(slot),
            |slot| {
                let current = slot.and_then(|slot| {
                    Some(Current {
                        value: slot.value.as_ref()?,
                        fresh_until: slot.fresh_until.load(Ordering::Relaxed),
                    })
                });
                let (what, answer) = f(current);
                let what = match what {
                    Update::Keep => Compute::Keep,
                    Update::Remove => {
                        removed = true;
                        Compute::Remove
                    }
                    Update::Expire(ttl) => match slot {
                        Some(old) => {
                            changed = true;
                            let fresh_until = match ttl {
                                Some(ttl) => self.fresh_until(Some(ttl)),
                                None => NEVER,
                            };
                            // Under the shard's write lock: no reader sees half a change.
                            old.fresh_until.store(fresh_until, Ordering::Relaxed);
                            Compute::Expire(self.engine_ttl_until(fresh_until))
                        }
                        None => Compute::Keep,
                    },
                    Update::Put(value, put) => {
                        changed = true;
                        let mut fresh = self.slot(value, &put);
                        if let Some(old) = slot {
                            if put.keep_ttl {
                                fresh.fresh_until =
                                    AtomicU64::new(old.fresh_until.load(Ordering::Relaxed));
                            }
                            if put.keep_tags {
                                fresh.tags = old.tags.clone();
                            }
                        }
                        let ttl = self.engine_ttl_until(fresh.fresh_until.load(Ordering::Relaxed));
                        Compute::Insert {
                            value: fresh,
                            ttl,
                            evict: put.evict,
                        }
                    }
                };
                (what, answer)
            },
        )?;
        if let Some(key) = key.filter(|_| removed) {
            // After the removal (not under the engine's lock): a load of the key in the air
            // is marked so that it does not land what it read before.
            inner.flights.invalidate(key.as_bytes());
            inner.core.publish(&Invalidation::Key {
                namespace: Some(self.name().to_owned()),
                key,
            });
        } else if let Some((tier, key)) = shared.filter(|_| changed) {
            tier.inserted(&key);
        }
        Ok(answer)
    }

    /// How precise the namespace's TTLs are: its clock's resolution (4 ms with the coarse
    /// system clock on Linux, nothing for a [`MockClock`](crate::MockClock)). Deadlines closer
    /// together than this cannot be told apart.
    pub fn ttl_resolution(&self) -> Duration {
        Duration::from_nanos(self.inner.core.clock.resolution_nanos())
    }

    /// How long an entry fresh until `fresh_until` (see [`Current`]) has left: `None` for
    /// never.
    pub fn remaining(&self, fresh_until: u64) -> Option<Duration> {
        (fresh_until != NEVER).then(|| {
            Duration::from_nanos(fresh_until.saturating_sub(self.inner.core.clock.now_nanos()))
        })
    }

    /// One step of a resumable walk over the namespace's live entries (see
    /// [`Cache::scan`]): `visit` sees each live entry among about `count` slots from
    /// `cursor` (0 to start); returns the cursor to go on from, 0 at the end. An entry
    /// present for the whole walk is visited at least once. Counts nothing.
    pub fn scan(
        &self,
        cursor: u64,
        count: usize,
        mut visit: impl FnMut(&Key, Current<'_, V>),
    ) -> u64 {
        let inner = &*self.inner;
        inner.cache.scan(cursor, count, |key, slot| {
            if let Some(value) = slot.value.as_ref().filter(|_| inner.is_fresh(slot)) {
                let fresh_until = slot.fresh_until.load(Ordering::Relaxed);
                visit(key, Current { value, fresh_until });
            }
        })
    }

    /// Removes `key` (and tells the publisher); returns its value if a live entry held it.
    pub fn remove(&self, key: impl AsRef<[u8]>) -> Option<V> {
        let key = key.as_ref();
        let removed = self.inner.take(key);
        self.inner.core.publish(&Invalidation::Key {
            namespace: Some(self.name().to_owned()),
            key: Key::from(key),
        });
        removed.and_then(|slot| self.inner.is_fresh(&slot).then_some(slot.value)?)
    }

    /// Removes every key starting with `prefix`; returns how many live entries went.
    pub fn invalidate_prefix(&self, prefix: impl AsRef<[u8]>) -> u64 {
        let prefix = prefix.as_ref();
        let n = self.inner.remove_prefix(prefix);
        self.inner.core.publish(&Invalidation::Prefix {
            namespace: Some(self.name().to_owned()),
            prefix: Key::from(prefix),
        });
        n
    }

    /// Removes every key matching the glob `pattern` (Redis `MATCH` syntax); returns how many
    /// live entries went.
    pub fn invalidate_pattern(&self, pattern: impl AsRef<[u8]>) -> u64 {
        let pattern = pattern.as_ref();
        let n = self.inner.remove_pattern(&Pattern::new(pattern));
        self.inner.core.publish(&Invalidation::Pattern {
            namespace: Some(self.name().to_owned()),
            pattern: Key::from(pattern),
        });
        n
    }

    /// Empties the namespace at once: readers miss from now on, and the entries are freed
    /// in the background. Returns how many entries it held (expired ones included).
    pub fn clear(&self) -> u64 {
        let n = self.inner.clear_now();
        self.inner.core.publish(&Invalidation::Clear {
            namespace: Some(self.name().to_owned()),
        });
        n
    }

    /// Entries held, including expired or invalidated ones not yet reclaimed.
    pub fn len(&self) -> usize {
        self.inner.cache.len()
    }

    /// Whether the namespace holds no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries with a TTL (see [`Cache::expiring_len`]), in O(shards).
    pub fn expiring_len(&self) -> usize {
        self.inner.cache.expiring_len()
    }

    /// The namespace's counters.
    pub fn stats(&self) -> CacheStats {
        self.inner.cache.stats()
    }

    /// The approximate `n` hottest keys (see [`HotKey`]).
    pub fn hot_keys(&self, n: usize) -> Vec<HotKey> {
        self.inner.hot.top(n)
    }
}

/// What the store does with a namespace without knowing its value type.
pub(crate) trait AnyNamespace: Send + Sync {
    fn remove_key(&self, key: &[u8]) -> u64;
    fn remove_prefix(&self, prefix: &[u8]) -> u64;
    fn remove_pattern(&self, pattern: &Pattern) -> u64;
    fn clear_now(&self) -> u64;
    fn expire_all(&self) -> u64;
    fn purge_dead(&self) -> u64;
    fn reclaim_expired(&self) -> usize;
    fn stats(&self) -> CacheStats;
    fn load_stats(&self) -> super::LoadStats;
    fn hot_keys(&self, n: usize) -> Vec<HotKey>;
    fn engine_heap_bytes(&self) -> usize;
    fn set_max_bytes(&self, bytes: u64) -> bool;
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

impl<V> NsInner<V> {
    /// What `slot` is to a reader now (see [`SlotState`]). The clock is read only in a
    /// namespace with a stale window (elsewhere the engine drops entries at their TTL), and
    /// the way the engine reads it, so an entry is never called fresh after its TTL.
    #[inline]
    pub(crate) fn state(&self, slot: &Slot<V>) -> SlotState {
        let now = self.limits.max_stale.map(|_| self.core.clock.upper_nanos());
        slot.state(&self.core.tags, now)
    }

    /// Whether `slot` holds a value that counts ([`SlotState::Fresh`]): what writes replace
    /// rather than treat as absent, and what removals count.
    #[inline]
    pub(crate) fn is_fresh(&self, slot: &Slot<V>) -> bool {
        self.state(slot) == SlotState::Fresh
    }
}

impl<V> NsInner<V>
where
    V: Clone + HeapSize + Send + Sync + 'static,
{
    /// Removes `key`'s entry, first marking a load of it in the air so that the load does
    /// not bring back what it read before this removal.
    pub(crate) fn take(&self, key: &[u8]) -> Option<Slot<V>> {
        self.flights.invalidate(key);
        self.cache.remove(key)
    }
}

impl<V> AnyNamespace for NsInner<V>
where
    V: Clone + HeapSize + Send + Sync + 'static,
{
    // Each removal marks the loads in the air that it covers first (see `Flights::invalidate`).
    fn remove_key(&self, key: &[u8]) -> u64 {
        self.take(key)
            .map_or(0, |slot| u64::from(self.is_fresh(&slot)))
    }

    fn remove_prefix(&self, prefix: &[u8]) -> u64 {
        self.flights.invalidate_where(|key| key.starts_with(prefix));
        self.cache
            .remove_where(|key, slot| key.as_bytes().starts_with(prefix) && self.is_fresh(slot))
            as u64
    }

    fn remove_pattern(&self, pattern: &Pattern) -> u64 {
        let literal = pattern.literal_prefix();
        self.flights
            .invalidate_where(|key| key.starts_with(literal) && pattern.matches(key));
        self.cache.remove_where(|key, slot| {
            let key = key.as_bytes();
            key.starts_with(literal) && pattern.matches(key) && self.is_fresh(slot)
        }) as u64
    }

    fn clear_now(&self) -> u64 {
        self.flights.invalidate_where(|_| true);
        let cleared = self.cache.clear_deferred();
        self.hot.reset();
        let n = cleared.len() as u64;
        self.core.janitor.dispose(Box::new(cleared));
        n
    }

    fn expire_all(&self) -> u64 {
        if self.limits.max_stale.is_none() {
            // Nothing can be kept past its TTL here, so nothing is kept.
            return self.clear_now();
        }
        self.flights.invalidate_where(|_| true);
        let now = self.core.clock.now_nanos();
        let (mut held, mut cursor) = (0, 0);
        loop {
            cursor = self.cache.scan(cursor, 1024, |_, slot| {
                slot.fresh_until.fetch_min(now, Ordering::Relaxed);
                held += 1;
            });
            if cursor == 0 {
                return held;
            }
        }
    }

    fn purge_dead(&self) -> u64 {
        self.cache
            .remove_where(|_, slot| slot.state(&self.core.tags, None) == SlotState::Invalidated)
            as u64
    }

    fn reclaim_expired(&self) -> usize {
        self.cache.run_pending_tasks()
    }

    fn stats(&self) -> CacheStats {
        self.cache.stats()
    }

    fn load_stats(&self) -> super::LoadStats {
        self.loads.snapshot()
    }

    fn hot_keys(&self, n: usize) -> Vec<HotKey> {
        self.hot.top(n)
    }

    fn engine_heap_bytes(&self) -> usize {
        self.cache.engine_heap_bytes()
    }

    fn set_max_bytes(&self, bytes: u64) -> bool {
        self.cache.set_max_weight(bytes)
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}
