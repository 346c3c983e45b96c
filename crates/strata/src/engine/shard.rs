//! One shard: a dense slab of entries, a hash table of slab indices, the side columns some
//! caches keep, the policy's queues and sketch, and the shard's counters. This file is the
//! storage: finding, placing, replacing and removing entries, keeping the slab dense, and
//! reclaiming expired entries (a sweep walks the slab a few slots per write). Which entry
//! leaves to make room is asked of the policy (`policy.rs`); the queues it keeps are threaded
//! through the slab by `queue.rs`. Everything here runs under the shard's lock.

use hashbrown::HashTable;
use smallvec::SmallVec;

use super::climber::{Climber, Report};
use super::column::Column;
use super::entry::{Entry, NEVER, NIL};
use super::policy::{Policy, Victim};
use crate::listener::RemovalCause;

/// The most entries one shard holds: every index below the end-of-queue marker.
pub(crate) const MAX_SHARD_LEN: usize = NIL as usize;

/// Entries removed under the lock, handed back so that they are dropped (or given to the
/// removal listener) after the lock is released.
pub(crate) type Removed<K, V> = SmallVec<[(K, V, RemovalCause); 2]>;

/// How one shard is set up, fixed at build time (but for `max_weight`, see
/// [`Shard::set_max_weight`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShardSettings {
    /// At most this many entries (at most [`MAX_SHARD_LEN`]).
    pub(crate) max_len: usize,
    /// At most this much weight (`u64::MAX` when only entries are bounded).
    pub(crate) max_weight: u64,
    /// Entries carry weights from a weigher (otherwise each weighs 1).
    pub(crate) weighted: bool,
    /// Entries carry a hard deadline apart from the idle one (time-to-idle caches).
    pub(crate) idle: bool,
    /// Slots to reserve up front.
    pub(crate) preallocate: usize,
    /// The window's share of the shard to start with (the climber's, in its units).
    pub(crate) window: u32,
}

/// Counters kept under the write lock (reads are counted in atomics beside the lock).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct WriteCounters {
    pub(crate) inserts: u64,
    pub(crate) updates: u64,
    pub(crate) removals: u64,
    pub(crate) expirations: u64,
    pub(crate) evictions: u64,
}

/// An entry to store, with everything settled before the shard's lock was taken.
pub(crate) struct NewEntry<K, V> {
    /// The key's hash.
    pub(crate) hash: u64,
    pub(crate) key: K,
    pub(crate) value: V,
    /// Its weight from the weigher (ignored by an unweighted shard); within the shard's limit.
    pub(crate) weight: u32,
    /// When it expires: its effective deadline (sooner with time-to-idle), [`NEVER`] for none.
    pub(crate) deadline: u64,
    /// Its TTL's deadline, regardless of idle time.
    pub(crate) hard: u64,
}

/// What an insert does when the key already has a live entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IfPresent {
    /// Replace it.
    Replace,
    /// Leave it, and hand back a clone of its value.
    Keep,
}

/// What an insert did.
pub(crate) enum Insertion<K, V> {
    /// The entry was stored.
    Stored,
    /// With [`IfPresent::Keep`], a live entry was found and left alone: a clone of its value,
    /// and the caller's key and value to be dropped once the lock is released.
    Kept { existing: V, rejected: (K, V) },
}

/// The clock as a write reads it. `approx` is a reading taken before the lock, good enough for
/// sweeping and choosing victims (a stale time only reclaims later); whether the key's own
/// entry is still live is judged by `exact`, read under the lock, and only when that entry
/// has a deadline.
pub(crate) struct Readings<F> {
    pub(crate) approx: u64,
    pub(crate) exact: F,
}

pub(crate) struct Shard<K, V> {
    table: HashTable<u32>,
    slab: Vec<Entry<K, V>>,
    /// Each slab entry's weight, kept only by weighted caches.
    weights: Column<u32>,
    /// Each slab entry's hard deadline, kept only by time-to-idle caches (where `deadline`
    /// moves with reads and must not pass the entry's TTL).
    hard: Column<u64>,
    policy: Policy,
    settings: ShardSettings,
    weight: u64,
    /// Next slab slot the expiry sweep looks at.
    cursor: usize,
    /// Whether any entry was ever given a deadline (no sweeping otherwise).
    has_deadlines: bool,
    /// How many slab entries have a deadline (expired ones not yet reclaimed included).
    timed: usize,
    pub(crate) counters: WriteCounters,
    /// What the shard last told the cache's climber: lookups, hits, entries, evictions.
    reported: (u64, u64, usize, u64),
}

/// A shard reports to the climber once it has served this many lookups since its last report.
const REPORT_EVERY: u64 = 64;

impl<K, V> Shard<K, V> {
    /// The entries, for disposal of a shard returned by [`take`](Self::take).
    pub(crate) fn into_entries(self) -> Vec<Entry<K, V>> {
        self.slab
    }
}

impl<K, V> Shard<K, V>
where
    K: Eq,
    V: Clone,
{
    pub(crate) fn new(settings: ShardSettings) -> Self {
        // The sketch starts at the preallocated size and grows with the slab (see
        // `reserve_one`), so an empty cache with a large bound holds no large sketch.
        Self {
            table: HashTable::with_capacity(settings.preallocate),
            slab: Vec::with_capacity(settings.preallocate),
            weights: Column::new(settings.weighted),
            hard: Column::new(settings.idle),
            policy: Policy::new(
                settings.max_len,
                settings.max_weight,
                settings.preallocate,
                settings.window,
            ),
            settings,
            weight: 0,
            cursor: 0,
            has_deadlines: false,
            timed: 0,
            counters: WriteCounters::default(),
            reported: (0, 0, 0, 0),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.slab.len()
    }

    /// How many entries have a deadline, expired ones not yet reclaimed included (Redis's
    /// `expires` count).
    pub(crate) fn timed_len(&self) -> usize {
        self.timed
    }

    /// Keeps `timed` in step when an entry's deadline goes from `old` to `new`.
    #[inline]
    fn retime(&mut self, old: u64, new: u64) {
        match (old == NEVER, new == NEVER) {
            (true, false) => self.timed += 1,
            (false, true) => self.timed -= 1,
            _ => {}
        }
    }

    /// Tells the policy how many lookups (`hits` + misses) the shard has served so far
    /// (writes count too, so a cache that is only written to still ages its sketch), reports
    /// to the cache's climber every [`REPORT_EVERY`] lookups, and takes up the climber's
    /// current window.
    #[inline]
    pub(crate) fn observe_lookups(&mut self, hits: u64, lookups: u64, climber: &Climber) {
        let writes = self.counters.inserts + self.counters.updates;
        self.policy.observe_requests(lookups.wrapping_add(writes));
        let (reported_lookups, reported_hits, reported_len, reported_evictions) = self.reported;
        if lookups.wrapping_sub(reported_lookups) >= REPORT_EVERY {
            climber.report(Report {
                lookups: lookups.wrapping_sub(reported_lookups),
                hits: hits.wrapping_sub(reported_hits),
                held: self.slab.len() as i64 - reported_len as i64,
                evictions: self.counters.evictions - reported_evictions,
            });
            self.reported = (lookups, hits, self.slab.len(), self.counters.evictions);
        }
        self.policy.set_window(climber.window());
    }

    pub(crate) fn weight(&self) -> u64 {
        self.weight
    }

    /// An entry's weight as the shard counts it: the weigher's, or 1 in an unweighted shard.
    #[inline]
    fn counted(&self, weight: u32) -> u64 {
        if self.settings.weighted {
            u64::from(weight)
        } else {
            1
        }
    }

    #[inline]
    fn weight_of(&self, idx: usize) -> u64 {
        self.weights.get(idx).map_or(1, u64::from)
    }

    /// Heap bytes held by the shard's own structures (not counting what keys and values own).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.slab.capacity() * std::mem::size_of::<Entry<K, V>>()
            + self.table.allocation_size()
            + self.weights.heap_bytes()
            + self.hard.heap_bytes()
            + self.policy.heap_bytes()
    }

    /// The slab index and entry for `key`, expired or not.
    #[inline]
    pub(crate) fn find<Q>(&self, hash: u64, key: &Q) -> Option<(usize, &Entry<K, V>)>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let slab = &self.slab;
        self.table
            .find(hash, |&i| slab[i as usize].key.borrow() == key)
            .map(|&i| (i as usize, &slab[i as usize]))
    }

    fn index_of<Q>(&self, hash: u64, key: &Q) -> Option<usize>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.find(hash, key).map(|(idx, _)| idx)
    }

    /// The hard deadline of the entry at `idx`: its TTL, regardless of idle time.
    pub(crate) fn hard_deadline(&self, idx: usize) -> u64 {
        self.hard
            .get(idx)
            .unwrap_or_else(|| self.slab[idx].deadline())
    }

    /// Gives the live entry for `key` a new TTL deadline (`hard`, [`NEVER`] for none) and a new
    /// effective deadline (`deadline`: `hard`, or sooner with time-to-idle). Returns whether a
    /// live entry was found.
    pub(crate) fn set_deadline<Q>(
        &mut self,
        hash: u64,
        key: &Q,
        deadline: u64,
        hard: u64,
        now: u64,
    ) -> bool
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let Some(idx) = self.index_of(hash, key) else {
            return false;
        };
        if self.slab[idx].is_expired(|| now) {
            return false;
        }
        self.hard.set(idx, hard);
        let before = self.slab[idx].deadline();
        self.retime(before, deadline);
        self.slab[idx].set_deadline(deadline);
        self.has_deadlines |= deadline != NEVER;
        true
    }

    /// Inserts, or with [`IfPresent::Keep`] leaves a live entry alone. `gone(value)` says that
    /// the key's unexpired entry counts as absent (the layer above judges it: a tag of it was
    /// invalidated, say). Entries pushed out are appended to `out`.
    ///
    /// User code that can unwind (the key's `Hash` and `Eq`, the value's `Clone`) runs only
    /// between complete steps (a sweep's reclaim, a CLOCK rotation, a promotion), never in the
    /// middle of one, so a panic leaves the shard consistent. The table grows before any step.
    pub(crate) fn insert(
        &mut self,
        new: NewEntry<K, V>,
        if_present: IfPresent,
        gone: impl FnOnce(&V) -> bool,
        clock: Readings<impl FnOnce() -> u64>,
        hasher: &impl Fn(&K) -> u64,
        out: &mut Removed<K, V>,
    ) -> Insertion<K, V> {
        // Room in the table first: growing it rehashes every key.
        let slab = &self.slab;
        self.table.reserve(1, |&i| hasher(&slab[i as usize].key));
        self.has_deadlines |= new.deadline != NEVER;
        let now = clock.approx;
        self.sweep(now, 2, hasher, out);
        let weight = self.counted(new.weight);
        let Some(idx) = self.index_of(new.hash, &new.key) else {
            self.place(new, weight, now, hasher, out);
            self.counters.inserts += 1;
            return Insertion::Stored;
        };
        let expired = self.slab[idx].is_expired(clock.exact);
        // Gone: unexpired, but the layer above says its value counts as absent.
        let gone = !expired && gone(&self.slab[idx].value);
        if if_present == IfPresent::Keep && !expired && !gone {
            let existing = self.slab[idx].value.clone();
            self.slab[idx].touch();
            return Insertion::Kept {
                existing,
                rejected: (new.key, new.value),
            };
        }
        let cause = if expired {
            self.counters.expirations += 1;
            self.counters.inserts += 1;
            RemovalCause::Expired
        } else if gone {
            self.counters.removals += 1;
            self.counters.inserts += 1;
            RemovalCause::Invalidated
        } else {
            self.counters.updates += 1;
            RemovalCause::Replaced
        };
        let mut idx = idx;
        if self.weight - self.weight_of(idx) + weight > self.settings.max_weight {
            // Heavier than the room left: other entries leave by the policy until the new
            // value fits, and the key keeps its slab slot, where a scan in progress will still
            // find it (see `scan`). Meanwhile it waits at main's tail with every access bit
            // set, the last place the policy looks.
            let own_weight = self.weight_of(idx);
            self.policy.park(&mut self.slab, idx, own_weight);
            while self.weight - self.weight_of(idx) + weight > self.settings.max_weight
                && self.slab.len() > 1
            {
                let victim = self.choose_victim(now, hasher);
                if victim.idx == idx {
                    // Only the key itself is left to take: its entry leaves, and the new
                    // value is admitted like a new key, read once.
                    let old = self.remove_at(idx, new.hash, hasher);
                    out.push((old.key, old.value, cause));
                    let idx = self.place(new, weight, now, hasher, out);
                    self.slab[idx].touch();
                    return Insertion::Stored;
                }
                let last = self.slab.len() - 1;
                let gone = self.remove_at(victim.idx, victim.hash, hasher);
                if idx == last {
                    // The slab's last entry fills the hole: that was the key's.
                    idx = victim.idx;
                }
                self.count_removal(victim.cause);
                out.push((gone.key, gone.value, victim.cause));
            }
        }
        if self.settings.weighted {
            let old_weight = self.weight_of(idx);
            self.weights.set(idx, weight as u32);
            let in_main = self.slab[idx].in_main();
            self.policy.queues.reweigh(in_main, old_weight, weight);
            self.weight = self.weight - old_weight + weight;
        }
        self.hard.set(idx, new.hard);
        let before = self.slab[idx].deadline();
        self.retime(before, new.deadline);
        let entry = &mut self.slab[idx];
        let old = std::mem::replace(&mut entry.value, new.value);
        entry.set_deadline(new.deadline);
        entry.touch();
        out.push((new.key, old, cause));
        Insertion::Stored
    }

    /// Stores an entry for a key the shard does not hold, weighing `weight` as the shard
    /// counts it, evicting to make room, and returns its slab index. The table must already
    /// have room for one more slot.
    fn place(
        &mut self,
        new: NewEntry<K, V>,
        weight: u64,
        now: u64,
        hasher: &impl Fn(&K) -> u64,
        out: &mut Removed<K, V>,
    ) -> usize {
        while self.weight + weight > self.settings.max_weight && !self.slab.is_empty() {
            self.evict_one(now, hasher, out);
        }
        let NewEntry {
            hash,
            key,
            value,
            deadline,
            hard,
            ..
        } = new;
        let fresh = Entry::new(key, value, deadline);
        let idx = if self.slab.len() >= self.settings.max_len && !self.slab.is_empty() {
            // Full by count (the steady state): the new entry takes the victim's slot, which
            // spares moving the slab's last entry into a hole.
            let victim = self.choose_victim(now, hasher);
            self.detach(victim.idx, victim.hash);
            let old = std::mem::replace(&mut self.slab[victim.idx], fresh);
            self.retime(old.deadline(), NEVER);
            self.count_removal(victim.cause);
            out.push((old.key, old.value, victim.cause));
            self.weights.set(victim.idx, weight as u32);
            self.hard.set(victim.idx, hard);
            victim.idx
        } else {
            self.reserve_one();
            self.slab.push(fresh);
            self.weights.push(weight as u32);
            self.hard.push(hard);
            self.slab.len() - 1
        };
        self.retime(NEVER, deadline);
        // The table has room (reserved by `insert`), so this does not rehash.
        let slab = &self.slab;
        self.table
            .insert_unique(hash, idx as u32, |&i| hasher(&slab[i as usize].key));
        self.policy.admit(&mut self.slab, idx, hash, weight);
        self.weight += weight;
        idx
    }

    /// Grows the slab by doubling, but never past the shard's entry limit, so a full cache
    /// holds no spare slots. The side columns and the sketch grow with the slab, keeping
    /// what they hold.
    fn reserve_one(&mut self) {
        if self.slab.len() < self.slab.capacity() {
            return;
        }
        let len = self.slab.len();
        // Not `clamp`: a shard's limit may be below the minimum growth step.
        let target = (len * 2).max(16).min(self.settings.max_len.max(1));
        self.slab.reserve_exact(target.saturating_sub(len).max(1));
        let capacity = self.slab.capacity();
        self.weights.reserve_to(capacity);
        self.hard.reserve_to(capacity);
        self.policy.grow(capacity);
    }

    /// Removes `key` if present, returning its key and value.
    pub(crate) fn remove<Q>(
        &mut self,
        hash: u64,
        key: &Q,
        clock: Readings<impl FnOnce() -> u64>,
        hasher: &impl Fn(&K) -> u64,
        out: &mut Removed<K, V>,
    ) -> Option<(K, V)>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.sweep(clock.approx, 2, hasher, out);
        let idx = self.index_of(hash, key)?;
        let expired = self.slab[idx].is_expired(clock.exact);
        let entry = self.remove_at(idx, hash, hasher);
        if expired {
            // An expired entry was already gone for readers: report it as expired.
            self.counters.expirations += 1;
            out.push((entry.key, entry.value, RemovalCause::Expired));
            return None;
        }
        self.counters.removals += 1;
        Some((entry.key, entry.value))
    }

    /// Removes every entry, handing them back in a vector to be dropped outside the lock.
    pub(crate) fn clear(&mut self) -> Vec<Entry<K, V>> {
        self.table.clear();
        self.weights.clear();
        self.hard.clear();
        self.policy.clear();
        self.weight = 0;
        self.cursor = 0;
        self.timed = 0;
        let taken = std::mem::take(&mut self.slab);
        self.counters.removals += taken.len() as u64;
        taken
    }

    /// Visits up to `budget` slab slots below index `below` (clamped to the slab), from the
    /// top down, removing every entry for which `doomed(key, value)` holds: they count as
    /// removals and go to `out` as [`RemovalCause::Invalidated`]. Expired entries met are
    /// reclaimed as expirations. Returns how many live entries were removed and where to go on
    /// from (0 when done). Going down, a removal fills the hole with the slab's last entry,
    /// which was visited already, so calls that go on from the returned index, even with
    /// other writes in between, visit every entry that stayed in the slab throughout.
    pub(crate) fn remove_where(
        &mut self,
        below: usize,
        budget: usize,
        now: u64,
        mut doomed: impl FnMut(&K, &V) -> bool,
        hasher: &impl Fn(&K) -> u64,
        out: &mut Vec<(K, V, RemovalCause)>,
    ) -> (usize, usize) {
        let mut removed = 0;
        let mut idx = below.min(self.slab.len());
        let stop = idx.saturating_sub(budget);
        while idx > stop {
            idx -= 1;
            let entry = &self.slab[idx];
            if entry.is_expired(|| now) {
                self.expire(idx, hasher, out);
            } else if doomed(&entry.key, &entry.value) {
                let hash = hasher(&entry.key);
                let entry = self.remove_at(idx, hash, hasher);
                self.counters.removals += 1;
                removed += 1;
                out.push((entry.key, entry.value, RemovalCause::Invalidated));
            }
        }
        self.cursor = self.cursor.min(self.slab.len());
        if idx == 0 {
            self.shrink_if_sparse(hasher);
        }
        (removed, idx)
    }

    /// Calls `visit` on each live entry among up to `budget` slab slots below index `below`
    /// (clamped to the slab), from the top down, and returns where to go on from (0 when
    /// done). The walk's guarantee is [`remove_where`](Self::remove_where)'s: the slab stays
    /// dense by moving its *last* entry into a hole, and that entry was visited already (or
    /// arrived after the walk began), so calls that go on from the returned index, with any
    /// writes in between, visit every entry that stayed in the shard throughout; entries
    /// moved down may be visited twice.
    pub(crate) fn scan(
        &self,
        below: usize,
        budget: usize,
        now: u64,
        mut visit: impl FnMut(&K, &V),
    ) -> usize {
        let mut idx = below.min(self.slab.len());
        let stop = idx.saturating_sub(budget);
        while idx > stop {
            idx -= 1;
            let entry = &self.slab[idx];
            if !entry.is_expired(|| now) {
                visit(&entry.key, &entry.value);
            }
        }
        idx
    }

    /// Sets a new weight bound (`CONFIG SET maxmemory`), evicting by the policy until the
    /// shard fits it.
    pub(crate) fn set_max_weight(
        &mut self,
        max_weight: u64,
        now: u64,
        hasher: &impl Fn(&K) -> u64,
        out: &mut Removed<K, V>,
    ) {
        self.settings.max_weight = max_weight;
        self.policy.set_max_weight(max_weight);
        while self.weight > self.settings.max_weight && !self.slab.is_empty() {
            self.evict_one(now, hasher, out);
        }
    }

    /// Whether `key` could be given a value of `weight` without evicting another entry (for
    /// a `noeviction` policy). `weight` must be as `insert` would count it.
    pub(crate) fn has_room<Q>(&self, hash: u64, key: &Q, weight: u32) -> bool
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let weight = self.counted(weight);
        match self.index_of(hash, key) {
            Some(idx) => self.weight - self.weight_of(idx) + weight <= self.settings.max_weight,
            None => {
                self.weight + weight <= self.settings.max_weight
                    && self.slab.len() < self.settings.max_len
            }
        }
    }

    /// Gives memory back after a bulk removal left the slab mostly empty: slab, side columns
    /// and table shrink to twice what is held. (The sketch keeps its size: its counts are
    /// history the policy still uses.)
    pub(crate) fn shrink_if_sparse(&mut self, hasher: &impl Fn(&K) -> u64) {
        let len = self.slab.len();
        if self.slab.capacity() <= 4 * len.max(self.settings.preallocate) {
            return;
        }
        let keep = (2 * len).max(self.settings.preallocate);
        self.slab.shrink_to(keep);
        self.weights.shrink_to(keep);
        self.hard.shrink_to(keep);
        let slab = &self.slab;
        self.table
            .shrink_to(keep, |&i| hasher(&slab[i as usize].key));
    }

    /// Swaps this shard for an empty one with the same settings and counters, in time
    /// independent of how many entries it holds; the full shard is returned so that its
    /// entries can be dropped elsewhere. They count as removals now.
    pub(crate) fn take(&mut self) -> Shard<K, V> {
        let mut fresh = Shard::new(self.settings);
        fresh.counters = self.counters;
        fresh.counters.removals += self.slab.len() as u64;
        // The climber's baselines carry over, so the next report says the entries left.
        fresh.reported = self.reported;
        std::mem::replace(self, fresh)
    }

    /// Keys of live entries, for snapshots.
    pub(crate) fn live_keys(&self, now: u64) -> Vec<K>
    where
        K: Clone,
    {
        self.slab
            .iter()
            .filter(|e| !e.is_expired(|| now))
            .map(|e| e.key.clone())
            .collect()
    }

    /// Looks at up to `budget` slab slots from the sweep cursor and reclaims expired entries.
    pub(crate) fn sweep(
        &mut self,
        now: u64,
        budget: usize,
        hasher: &impl Fn(&K) -> u64,
        out: &mut impl Extend<(K, V, RemovalCause)>,
    ) {
        if !self.has_deadlines {
            return;
        }
        for _ in 0..budget {
            if self.cursor >= self.slab.len() {
                self.cursor = 0;
                if self.slab.is_empty() {
                    return;
                }
            }
            let idx = self.cursor;
            if self.slab[idx].is_expired(|| now) {
                // The last entry moves into `idx`: look at the same slot again next.
                self.expire(idx, hasher, out);
            } else {
                self.cursor += 1;
            }
        }
    }

    /// Reclaims every expired entry of the shard; returns how many.
    pub(crate) fn sweep_all(
        &mut self,
        now: u64,
        hasher: &impl Fn(&K) -> u64,
        out: &mut Vec<(K, V, RemovalCause)>,
    ) -> usize {
        let before = self.counters.expirations;
        self.cursor = 0;
        let slots = self.slab.len();
        self.sweep(now, slots, hasher, out);
        self.cursor = 0;
        self.shrink_if_sparse(hasher);
        (self.counters.expirations - before) as usize
    }

    fn expire(
        &mut self,
        idx: usize,
        hasher: &impl Fn(&K) -> u64,
        out: &mut impl Extend<(K, V, RemovalCause)>,
    ) {
        let hash = hasher(&self.slab[idx].key);
        let entry = self.remove_at(idx, hash, hasher);
        self.counters.expirations += 1;
        out.extend([(entry.key, entry.value, RemovalCause::Expired)]);
    }

    /// Asks the policy for the entry to leave (the shard must not be empty).
    #[inline]
    fn choose_victim(&mut self, now: u64, hasher: &impl Fn(&K) -> u64) -> Victim {
        self.policy
            .choose_victim(&mut self.slab, &self.weights, now, hasher)
    }

    /// Frees at least one entry (the shard must not be empty).
    fn evict_one(&mut self, now: u64, hasher: &impl Fn(&K) -> u64, out: &mut Removed<K, V>) {
        let victim = self.choose_victim(now, hasher);
        let entry = self.remove_at(victim.idx, victim.hash, hasher);
        self.count_removal(victim.cause);
        out.push((entry.key, entry.value, victim.cause));
    }

    fn count_removal(&mut self, cause: RemovalCause) {
        match cause {
            RemovalCause::Expired => self.counters.expirations += 1,
            _ => self.counters.evictions += 1,
        }
    }

    /// Takes the entry at `idx` (whose key hashes to `hash`) out of its queue, the table and
    /// the slab. The slab's last entry moves into `idx` (so the slab stays dense) and its links
    /// and table slot follow.
    fn remove_at(&mut self, idx: usize, hash: u64, hasher: &impl Fn(&K) -> u64) -> Entry<K, V> {
        let last = self.slab.len() - 1;
        // Hash the entry that will move before anything changes (see `insert`).
        let moved_hash = (idx != last).then(|| hasher(&self.slab[last].key));
        self.detach(idx, hash);
        let entry = self.slab.swap_remove(idx);
        self.retime(entry.deadline(), NEVER);
        self.weights.swap_remove(idx);
        self.hard.swap_remove(idx);
        if let Some(moved_hash) = moved_hash {
            self.relocated(last, idx, moved_hash);
        }
        entry
    }

    /// Takes the entry at `idx` out of its queue, the weight total and the table, leaving its
    /// slab slot to be removed or refilled by the caller.
    fn detach(&mut self, idx: usize, hash: u64) {
        let weight = self.weight_of(idx);
        self.policy.queues.unlink(&mut self.slab, idx, weight);
        self.weight -= weight;
        if let Ok(found) = self.table.find_entry(hash, |&i| i as usize == idx) {
            found.remove();
        }
    }

    /// The entry that was at slab index `from` now lives at `to`: repoint its neighbours,
    /// its queue's ends and its table slot.
    fn relocated(&mut self, from: usize, to: usize, hash: u64) {
        self.policy.queues.relocated(&mut self.slab, to);
        // The moved entry's table slot is found by its key's hash; every slab entry has
        // exactly one slot, so the search always succeeds.
        let from = from as u32;
        if let Some(slot) = self.table.find_mut(hash, |&i| i == from) {
            *slot = to as u32;
        }
    }

    /// Checks every structural invariant of the shard and panics with the first one broken:
    /// the table and the slab agree, the queues hold every entry once with consistent links,
    /// lengths, weights and deadline counts add up, the bounds hold, and no entry's deadline
    /// passes its hard one. For tests (the model test calls it after every operation).
    pub(crate) fn check_invariants(&self, hasher: &impl Fn(&K) -> u64) {
        let len = self.slab.len();
        assert_eq!(self.table.len(), len, "table and slab sizes");
        for (idx, entry) in self.slab.iter().enumerate() {
            let found = self.table.find(hasher(&entry.key), |&i| i as usize == idx);
            assert!(found.is_some(), "slab entry {idx} is not in the table");
        }
        self.policy
            .queues
            .check(&self.slab, |idx| self.weight_of(idx));
        let weight: u64 = (0..len).map(|idx| self.weight_of(idx)).sum();
        assert_eq!(self.weight, weight, "the shard's weight");
        assert!(
            len <= self.settings.max_len,
            "{len} entries, max {}",
            self.settings.max_len
        );
        assert!(
            weight <= self.settings.max_weight,
            "weight {weight}, max {}",
            self.settings.max_weight
        );
        assert_eq!(
            self.policy.bounds(),
            (self.settings.max_len, self.settings.max_weight),
            "the policy's bounds"
        );
        for (column, kept, name) in [
            (self.weights.len(), self.weights.is_kept(), "weights"),
            (self.hard.len(), self.hard.is_kept(), "hard deadlines"),
        ] {
            assert_eq!(column, if kept { len } else { 0 }, "the {name} column");
        }
        let timed = self.slab.iter().filter(|e| e.deadline() != NEVER).count();
        assert_eq!(self.timed, timed, "entries with a deadline");
        assert!(
            self.has_deadlines || timed == 0,
            "deadlines, but no sweeping"
        );
        for idx in 0..len {
            let (deadline, hard) = (self.slab[idx].deadline(), self.hard_deadline(idx));
            assert!(
                deadline <= hard,
                "entry {idx}: deadline {deadline} after hard {hard}"
            );
        }
    }
}

#[cfg(all(test, not(feature = "shuttle")))]
mod tests {
    use super::*;

    fn hasher(key: &u64) -> u64 {
        key.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    /// A weighted shard of eight entries, four of them with a deadline.
    fn filled() -> Shard<u64, u64> {
        let mut shard = Shard::new(ShardSettings {
            max_len: 64,
            max_weight: 1_000,
            weighted: true,
            idle: false,
            preallocate: 4,
            window: Climber::new().window(),
        });
        let mut out = Removed::new();
        for key in 0..8u64 {
            let new = NewEntry {
                hash: hasher(&key),
                key,
                value: key,
                weight: 3,
                deadline: if key % 2 == 0 { NEVER } else { 1_000 + key },
                hard: if key % 2 == 0 { NEVER } else { 1_000 + key },
            };
            let clock = Readings {
                approx: 0,
                exact: || 0,
            };
            shard.insert(new, IfPresent::Replace, |_| false, clock, &hasher, &mut out);
        }
        shard
    }

    #[test]
    fn a_sound_shard_passes_its_checks() {
        filled().check_invariants(&hasher);
    }

    #[test]
    #[should_panic(expected = "the shard's weight")]
    fn a_wrong_weight_total_is_caught() {
        let mut shard = filled();
        shard.weight += 1;
        shard.check_invariants(&hasher);
    }

    #[test]
    #[should_panic(expected = "entries with a deadline")]
    fn a_wrong_deadline_count_is_caught() {
        let mut shard = filled();
        shard.timed -= 1;
        shard.check_invariants(&hasher);
    }

    #[test]
    #[should_panic(expected = "previous link")]
    fn a_broken_queue_link_is_caught() {
        let mut shard = filled();
        shard.slab[3].set_prev(5);
        shard.check_invariants(&hasher);
    }
}
