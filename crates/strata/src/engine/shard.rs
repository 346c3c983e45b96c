//! One shard: a dense slab of entries, a hash table of slab indices, two FIFO queues threaded
//! through the slab, and a frequency sketch. Everything here runs under the shard's lock; the
//! only fields touched under a *read* lock are an entry's `link` (its access bits) and `deadline`
//! (moved by time-to-idle), both atomics.
//!
//! # Policy
//! New entries enter the **small** queue (1% of the shard). An entry read while in the small
//! queue moves to the **main** queue when it reaches the small queue's head (S3-FIFO, Yang et
//! al. 2023). An entry never read there is a *candidate*: it enters main only if the sketch
//! says it is asked for more often than main's next victim (TinyLFU admission); otherwise it
//! leaves. Main is a CLOCK: an entry with access bits left goes back to the tail with one bit
//! less, and one without is the victim. The sketch stands in for S3-FIFO's ghost queue and
//! costs a fraction of it. Expired entries are reclaimed first wherever the policy meets them,
//! and by a sweep that walks the slab a few slots per write.

use hashbrown::HashTable;
use smallvec::SmallVec;

use super::sketch::Sketch;
use crate::listener::RemovalCause;
use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// "No index": the end of a queue. Slab indices use the low 29 bits of a link word.
const NIL: u32 = (1 << 29) - 1;
/// The most entries one shard holds: every index below [`NIL`].
pub(crate) const MAX_SHARD_LEN: usize = NIL as usize;
/// A deadline that never comes.
pub(crate) const NEVER: u64 = u64::MAX;

/// The `link` word: the previous entry's index in the low 29 bits, then two access bits (how
/// often the entry was read since the policy last looked, 0 to 3), then the queue flag.
const PREV_MASK: u32 = NIL;
const FREQ_SHIFT: u32 = 29;
const FREQ_ONE: u32 = 1 << FREQ_SHIFT;
const FREQ_MASK: u32 = 0b11 << FREQ_SHIFT;
/// Set when the entry is in the main queue, clear in the small queue.
const IN_MAIN: u32 = 1 << 31;

/// Entries removed under the lock, handed back so that they are dropped (or given to the
/// removal listener) after the lock is released.
pub(crate) type Removed<K, V> = SmallVec<[(K, V, RemovalCause); 2]>;

/// One cached entry: key, value, deadline and two links. For `u64` keys and values this is
/// 32 bytes. Weights live in a side vector that only weighted caches allocate.
pub(crate) struct Entry<K, V> {
    pub(crate) key: K,
    pub(crate) value: V,
    /// Nanoseconds on the cache's clock after which the entry is dead; [`NEVER`] if none.
    deadline: AtomicU64,
    next: u32,
    /// Previous index, access bits and queue flag (see [`PREV_MASK`]). Readers under the read
    /// lock only bump the access bits; the other bits change under the write lock alone, so a
    /// reader's store writes back the same index it loaded.
    link: AtomicU32,
}

impl<K, V> Entry<K, V> {
    #[inline]
    pub(crate) fn is_expired(&self, now: impl FnOnce() -> u64) -> bool {
        let deadline = self.deadline.load(Ordering::Relaxed);
        deadline != NEVER && deadline <= now()
    }

    #[inline]
    pub(crate) fn deadline(&self) -> u64 {
        self.deadline.load(Ordering::Relaxed)
    }

    /// Records a read. Saturated bits are not written again, so a hot entry's cache line is
    /// not bounced between readers.
    #[inline]
    pub(crate) fn touch(&self) {
        let link = self.link.load(Ordering::Relaxed);
        if link & FREQ_MASK != FREQ_MASK {
            self.link.store(link + FREQ_ONE, Ordering::Relaxed);
        }
    }

    /// Pushes the idle deadline forward to `min(hard, now + tti)` (time-to-idle). Skipped when
    /// it would move less than a millisecond, to keep hot entries' lines quiet.
    #[inline]
    pub(crate) fn touch_idle(&self, hard: u64, now: u64, tti: u64) {
        let next = now.saturating_add(tti).min(hard);
        if next
            > self
                .deadline
                .load(Ordering::Relaxed)
                .saturating_add(1_000_000)
        {
            self.deadline.store(next, Ordering::Relaxed);
        }
    }

    fn freq(&self) -> u32 {
        (self.link.load(Ordering::Relaxed) & FREQ_MASK) >> FREQ_SHIFT
    }

    fn in_main(&self) -> bool {
        self.link.load(Ordering::Relaxed) & IN_MAIN != 0
    }

    fn prev(&self) -> u32 {
        self.link.load(Ordering::Relaxed) & PREV_MASK
    }

    fn set_prev(&mut self, prev: u32) {
        let link = self.link.get_mut();
        *link = (*link & !PREV_MASK) | prev;
    }

    /// Sets the access bits and queue flag, keeping the link.
    fn set_state(&mut self, freq: u32, main: bool) {
        let link = self.link.get_mut();
        *link = (*link & PREV_MASK) | (freq << FREQ_SHIFT) | if main { IN_MAIN } else { 0 };
    }
}

#[derive(Debug, Clone, Copy)]
struct Queue {
    head: u32,
    tail: u32,
    len: usize,
    weight: u64,
}

impl Queue {
    const EMPTY: Queue = Queue {
        head: NIL,
        tail: NIL,
        len: 0,
        weight: 0,
    };
}

/// How one shard is set up, fixed at build time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShardConfig {
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

/// What an insert found.
pub(crate) enum Outcome<K, V> {
    /// The entry was stored.
    Stored,
    /// `insert_if_absent` found a live entry and left it alone: a clone of its value, and the
    /// caller's key and value to be dropped once the lock is released.
    Present { existing: V, rejected: (K, V) },
}

pub(crate) struct Shard<K, V> {
    table: HashTable<u32>,
    slab: Vec<Entry<K, V>>,
    /// Each slab entry's weight, kept only by weighted caches (every entry weighs 1 otherwise).
    weights: Vec<u32>,
    /// Each slab entry's hard deadline, kept only by time-to-idle caches (where `deadline`
    /// moves with reads and must not pass the entry's TTL).
    hard: Vec<u64>,
    small: Queue,
    main: Queue,
    sketch: Sketch,
    config: ShardConfig,
    small_max_len: usize,
    small_max_weight: u64,
    weight: u64,
    /// Next slab slot the expiry sweep looks at.
    cursor: usize,
    /// Whether any entry was ever given a deadline (no sweeping otherwise).
    has_deadlines: bool,
    /// How many slab entries have a deadline (expired ones not yet reclaimed included).
    timed: usize,
    pub(crate) counters: WriteCounters,
}

/// The small queue's share of a shard: 1% of its entries (and of its weight), as in
/// W-TinyLFU. Measured against 10% (S3-FIFO's share) in docs/design.md: larger windows help
/// only when popularity shifts quickly, and cost hits on every skewed and looping trace.
const SMALL_SHARE_PERCENT: u64 = 1;

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
    pub(crate) fn new(config: ShardConfig) -> Self {
        // The sketch starts at the preallocated size and grows with the slab (see
        // `reserve_one`), so an empty cache with a large bound holds no large sketch.
        let sketch_capacity = config.preallocate;
        let small_max_len = (config.max_len as u64 * SMALL_SHARE_PERCENT / 100).max(1);
        Self {
            table: HashTable::with_capacity(config.preallocate),
            slab: Vec::with_capacity(config.preallocate),
            weights: Vec::new(),
            hard: Vec::new(),
            small: Queue::EMPTY,
            main: Queue::EMPTY,
            sketch: Sketch::new(sketch_capacity),
            config,
            small_max_len: small_max_len as usize,
            small_max_weight: (config.max_weight / 100 * SMALL_SHARE_PERCENT).max(1),
            weight: 0,
            cursor: 0,
            has_deadlines: false,
            timed: 0,
            counters: WriteCounters::default(),
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

    /// Tells the policy how many lookups (hits + misses) the shard has served so far; writes
    /// count too, so a cache that is only written to still ages its sketch.
    #[inline]
    pub(crate) fn observe_lookups(&mut self, lookups: u64) {
        let writes = self.counters.inserts + self.counters.updates;
        self.sketch.observe_requests(lookups.wrapping_add(writes));
    }

    pub(crate) fn weight(&self) -> u64 {
        self.weight
    }

    /// An entry's weight as the shard counts it: the weigher's, or 1 in an unweighted shard.
    #[inline]
    fn counted(&self, weight: u32) -> u64 {
        if self.config.weighted {
            u64::from(weight)
        } else {
            1
        }
    }

    #[inline]
    fn weight_of(&self, idx: usize) -> u64 {
        if self.config.weighted {
            u64::from(self.weights[idx])
        } else {
            1
        }
    }

    /// Heap bytes held by the shard's own structures (not counting what keys and values own).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.slab.capacity() * std::mem::size_of::<Entry<K, V>>()
            + self.table.allocation_size()
            + self.weights.capacity() * 4
            + self.hard.capacity() * 8
            + self.sketch.heap_bytes()
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
        if self.config.idle {
            self.hard[idx]
        } else {
            self.slab[idx].deadline()
        }
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
        if self.config.idle {
            self.hard[idx] = hard;
        }
        let before = self.slab[idx].deadline();
        self.retime(before, deadline);
        *self.slab[idx].deadline.get_mut() = deadline;
        self.has_deadlines |= deadline != NEVER;
        true
    }

    /// Inserts or replaces. `weight` must already be within the shard's limit. `now` is a
    /// reading taken before the lock, good enough for sweeping and choosing victims (a stale
    /// time only reclaims later); whether the key's own entry is still live is judged by
    /// `fresh_now`, read under the lock, and only when the entry has a deadline. Entries pushed
    /// out are appended to `out`.
    ///
    /// User code that can unwind (the key's `Hash` and `Eq`, the value's `Clone`) runs only
    /// between complete steps (a sweep's reclaim, a CLOCK rotation, a promotion), never in the
    /// middle of one, so a panic leaves the shard consistent. The table grows before any step.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn insert(
        &mut self,
        hash: u64,
        key: K,
        value: V,
        weight: u32,
        deadline: u64,
        hard: u64,
        if_absent: bool,
        gone: impl FnOnce(&V) -> bool,
        now: u64,
        fresh_now: impl FnOnce() -> u64,
        hasher: &impl Fn(&K) -> u64,
        out: &mut Removed<K, V>,
    ) -> Outcome<K, V> {
        // Room in the table first: growing it rehashes every key.
        let slab = &self.slab;
        self.table.reserve(1, |&i| hasher(&slab[i as usize].key));
        self.has_deadlines |= deadline != NEVER;
        self.sweep(now, 2, hasher, out);
        let weight = self.counted(weight);
        let Some(idx) = self.index_of(hash, &key) else {
            self.place(hash, key, value, weight, deadline, hard, now, hasher, out);
            self.counters.inserts += 1;
            return Outcome::Stored;
        };
        let expired = self.slab[idx].is_expired(fresh_now);
        // Gone: unexpired, but the layer above says its value counts as absent.
        let gone = !expired && gone(&self.slab[idx].value);
        if if_absent && !expired && !gone {
            let existing = self.slab[idx].value.clone();
            self.slab[idx].touch();
            return Outcome::Present {
                existing,
                rejected: (key, value),
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
        if self.weight - self.weight_of(idx) + weight > self.config.max_weight {
            // Heavier than the room left: other entries leave by the policy until the new
            // value fits, and the key keeps its slab slot, where a scan in progress will still
            // find it (see `scan`). Meanwhile it waits at main's tail with every access bit
            // set, the last place the policy looks.
            self.unlink(idx);
            self.slab[idx].set_state(FREQ_MASK >> FREQ_SHIFT, true);
            self.push_tail(idx as u32, true);
            while self.weight - self.weight_of(idx) + weight > self.config.max_weight
                && self.slab.len() > 1
            {
                let (victim, victim_hash, left) = self.choose_victim(now, hasher);
                if victim == idx {
                    // Only the key itself is left to take: its entry leaves, and the new
                    // value is admitted like a new key, read once.
                    let old = self.remove_at(idx, hash, hasher);
                    out.push((old.key, old.value, cause));
                    let idx =
                        self.place(hash, key, value, weight, deadline, hard, now, hasher, out);
                    self.slab[idx].touch();
                    return Outcome::Stored;
                }
                let last = self.slab.len() - 1;
                let gone = self.remove_at(victim, victim_hash, hasher);
                if idx == last {
                    // The slab's last entry fills the hole: that was the key's.
                    idx = victim;
                }
                self.count_removal(left);
                out.push((gone.key, gone.value, left));
            }
        }
        let old_weight = self.weight_of(idx);
        if self.config.weighted {
            self.weights[idx] = weight as u32;
            let queue = if self.slab[idx].in_main() {
                &mut self.main
            } else {
                &mut self.small
            };
            queue.weight = queue.weight - old_weight + weight;
            self.weight = self.weight - old_weight + weight;
        }
        if self.config.idle {
            self.hard[idx] = hard;
        }
        let before = self.slab[idx].deadline();
        self.retime(before, deadline);
        let entry = &mut self.slab[idx];
        let old = std::mem::replace(&mut entry.value, value);
        *entry.deadline.get_mut() = deadline;
        entry.touch();
        out.push((key, old, cause));
        Outcome::Stored
    }

    /// Stores an entry for a key the shard does not hold, evicting to make room, and returns
    /// its slab index. The table must already have room for one more slot.
    #[allow(clippy::too_many_arguments)]
    fn place(
        &mut self,
        hash: u64,
        key: K,
        value: V,
        weight: u64,
        deadline: u64,
        hard: u64,
        now: u64,
        hasher: &impl Fn(&K) -> u64,
        out: &mut Removed<K, V>,
    ) -> usize {
        while self.weight + weight > self.config.max_weight && !self.slab.is_empty() {
            self.evict_one(now, hasher, out);
        }
        let fresh = Entry {
            key,
            value,
            deadline: AtomicU64::new(deadline),
            next: NIL,
            link: AtomicU32::new(NIL),
        };
        let idx = if self.slab.len() >= self.config.max_len && !self.slab.is_empty() {
            // Full by count (the steady state): the new entry takes the victim's slot, which
            // spares moving the slab's last entry into a hole.
            let (victim, victim_hash, cause) = self.choose_victim(now, hasher);
            self.detach(victim, victim_hash);
            let old = std::mem::replace(&mut self.slab[victim], fresh);
            self.retime(old.deadline(), NEVER);
            self.count_removal(cause);
            out.push((old.key, old.value, cause));
            if self.config.weighted {
                self.weights[victim] = weight as u32;
            }
            if self.config.idle {
                self.hard[victim] = hard;
            }
            victim
        } else {
            self.reserve_one();
            self.slab.push(fresh);
            if self.config.weighted {
                self.weights.push(weight as u32);
            }
            if self.config.idle {
                self.hard.push(hard);
            }
            self.slab.len() - 1
        };
        self.retime(NEVER, deadline);
        self.sketch.increment(hash);
        // The table has room (reserved by `insert`), so this does not rehash.
        let slab = &self.slab;
        self.table
            .insert_unique(hash, idx as u32, |&i| hasher(&slab[i as usize].key));
        self.push_tail(idx as u32, false);
        self.weight += weight;
        idx
    }

    /// Grows the slab by doubling, but never past the shard's entry limit, so a full cache
    /// holds no spare slots. The sketch grows with the slab, keeping its counts.
    fn reserve_one(&mut self) {
        if self.slab.len() < self.slab.capacity() {
            return;
        }
        let len = self.slab.len();
        // Not `clamp`: a shard's limit may be below the minimum growth step.
        let target = (len * 2).max(16).min(self.config.max_len.max(1));
        self.slab.reserve_exact(target.saturating_sub(len).max(1));
        let capacity = self.slab.capacity();
        if self.config.weighted {
            self.weights.reserve_exact(capacity - self.weights.len());
        }
        if self.config.idle {
            self.hard.reserve_exact(capacity - self.hard.len());
        }
        if self.sketch.capacity() < capacity {
            self.sketch.grow(capacity);
        }
    }

    /// Removes `key` if present, returning its key and value.
    pub(crate) fn remove<Q>(
        &mut self,
        hash: u64,
        key: &Q,
        now: u64,
        fresh_now: impl FnOnce() -> u64,
        hasher: &impl Fn(&K) -> u64,
        out: &mut Removed<K, V>,
    ) -> Option<(K, V)>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.sweep(now, 2, hasher, out);
        let idx = self.index_of(hash, key)?;
        let expired = self.slab[idx].is_expired(fresh_now);
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
        self.small = Queue::EMPTY;
        self.main = Queue::EMPTY;
        self.weight = 0;
        self.cursor = 0;
        self.timed = 0;
        self.sketch.clear();
        let taken = std::mem::take(&mut self.slab);
        self.counters.removals += taken.len() as u64;
        taken
    }

    /// Visits up to `budget` slab slots below index `below` (clamped to the slab), from the
    /// top down, removing every entry for which `doomed(key, value)` holds: they count as
    /// removals and go to `out` with `cause`. Expired entries met are reclaimed as
    /// expirations. Returns how many live entries were removed and where to go on from (0
    /// when done). Going down, a removal fills the hole with the slab's last entry, which was
    /// visited already, so calls that go on from the returned index, even with other writes
    /// in between, visit every entry that stayed in the slab throughout.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn remove_where(
        &mut self,
        below: usize,
        budget: usize,
        now: u64,
        cause: RemovalCause,
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
                out.push((entry.key, entry.value, cause));
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
        self.config.max_weight = max_weight;
        self.small_max_weight = (max_weight / 100 * SMALL_SHARE_PERCENT).max(1);
        while self.weight > self.config.max_weight && !self.slab.is_empty() {
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
            Some(idx) => self.weight - self.weight_of(idx) + weight <= self.config.max_weight,
            None => {
                self.weight + weight <= self.config.max_weight
                    && self.slab.len() < self.config.max_len
            }
        }
    }

    /// Gives memory back after a bulk removal left the slab mostly empty: slab, side vectors
    /// and table shrink to twice what is held. (The sketch keeps its size: its counts are
    /// history the policy still uses.)
    pub(crate) fn shrink_if_sparse(&mut self, hasher: &impl Fn(&K) -> u64) {
        let len = self.slab.len();
        if self.slab.capacity() <= 4 * len.max(self.config.preallocate) {
            return;
        }
        let keep = (2 * len).max(self.config.preallocate);
        self.slab.shrink_to(keep);
        self.weights.shrink_to(keep);
        self.hard.shrink_to(keep);
        let slab = &self.slab;
        self.table
            .shrink_to(keep, |&i| hasher(&slab[i as usize].key));
    }

    /// Swaps this shard for an empty one with the same configuration and counters, in time
    /// independent of how many entries it holds; the full shard is returned so that its
    /// entries can be dropped elsewhere. They count as removals now.
    pub(crate) fn take(&mut self) -> Shard<K, V> {
        let mut fresh = Shard::new(self.config);
        fresh.counters = self.counters;
        fresh.counters.removals += self.slab.len() as u64;
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

    fn main_has_room(&self) -> bool {
        self.main.len + self.small_max_len < self.config.max_len
            && self.main.weight + self.small_max_weight < self.config.max_weight
    }

    /// Small at (or past) its share: the next eviction takes a candidate from it.
    fn small_full(&self) -> bool {
        self.small.len >= self.small_max_len || self.small.weight >= self.small_max_weight
    }

    /// Frees at least one entry (the shard must not be empty).
    fn evict_one(&mut self, now: u64, hasher: &impl Fn(&K) -> u64, out: &mut Removed<K, V>) {
        let (idx, hash, cause) = self.choose_victim(now, hasher);
        let entry = self.remove_at(idx, hash, hasher);
        self.count_removal(cause);
        out.push((entry.key, entry.value, cause));
    }

    fn count_removal(&mut self, cause: RemovalCause) {
        match cause {
            RemovalCause::Expired => self.counters.expirations += 1,
            _ => self.counters.evictions += 1,
        }
    }

    /// Runs the policy until it names the entry to leave: its index, its key's hash, and
    /// whether it leaves because it expired or to make room. Promotions and CLOCK rotations
    /// happen on the way; nothing is removed, so every index stays valid for the caller.
    fn choose_victim(
        &mut self,
        now: u64,
        hasher: &impl Fn(&K) -> u64,
    ) -> (usize, u64, RemovalCause) {
        loop {
            if self.small.len == 0 || !(self.small_full() || self.main.len == 0) {
                let victim = self.main_victim(now, hasher);
                let entry = &self.slab[victim];
                let cause = if entry.is_expired(|| now) {
                    RemovalCause::Expired
                } else {
                    RemovalCause::Evicted
                };
                return (victim, hasher(&entry.key), cause);
            }
            let cand = self.small.head as usize;
            let cand_hash = hasher(&self.slab[cand].key);
            if self.slab[cand].is_expired(|| now) {
                return (cand, cand_hash, RemovalCause::Expired);
            }
            let freq = self.slab[cand].freq();
            if freq > 0 {
                // Read while on probation: promote, and let the sketch remember the reads.
                for _ in 0..freq {
                    self.sketch.increment(cand_hash);
                }
                self.move_to_main(cand);
                continue;
            }
            if self.main_has_room() {
                // Main fills freely up to its share; only then must candidates compete.
                self.move_to_main(cand);
                continue;
            }
            if self.main.len == 0 {
                // A shard too small to have a main share: the small queue is the cache.
                return (cand, cand_hash, RemovalCause::Evicted);
            }
            let victim = self.main_victim(now, hasher);
            let victim_hash = hasher(&self.slab[victim].key);
            if self.slab[victim].is_expired(|| now) {
                return (victim, victim_hash, RemovalCause::Expired);
            }
            if self.sketch.frequency(cand_hash) <= self.sketch.frequency(victim_hash) {
                // Ties go to the incumbent: that is what keeps part of a loop cached.
                return (cand, cand_hash, RemovalCause::Evicted);
            }
            self.move_to_main(cand);
            return (victim, victim_hash, RemovalCause::Evicted);
        }
    }

    /// Runs main's CLOCK until its head has no access bits left (or is expired) and returns
    /// that head. Main must not be empty.
    fn main_victim(&mut self, now: u64, hasher: &impl Fn(&K) -> u64) -> usize {
        loop {
            let head = self.main.head as usize;
            let entry = &self.slab[head];
            let freq = entry.freq();
            if freq == 0 || entry.is_expired(|| now) {
                return head;
            }
            // Each access the CLOCK consumes is remembered by the sketch.
            let hash = hasher(&entry.key);
            self.sketch.increment(hash);
            self.unlink(head);
            self.slab[head].set_state(freq - 1, true);
            self.push_tail(head as u32, true);
        }
    }

    fn move_to_main(&mut self, idx: usize) {
        self.unlink(idx);
        self.slab[idx].set_state(0, true);
        self.push_tail(idx as u32, true);
    }

    fn queue_mut(&mut self, main: bool) -> &mut Queue {
        if main {
            &mut self.main
        } else {
            &mut self.small
        }
    }

    /// Appends `idx` to a queue. Its access bits are kept; its queue flag is set to match.
    fn push_tail(&mut self, idx: u32, main: bool) {
        let weight = self.weight_of(idx as usize);
        let tail = self.queue_mut(main).tail;
        let entry = &mut self.slab[idx as usize];
        entry.set_prev(tail);
        entry.next = NIL;
        let freq = entry.freq();
        entry.set_state(freq, main);
        if tail == NIL {
            self.queue_mut(main).head = idx;
        } else {
            self.slab[tail as usize].next = idx;
        }
        let queue = self.queue_mut(main);
        queue.tail = idx;
        queue.len += 1;
        queue.weight += weight;
    }

    fn unlink(&mut self, idx: usize) {
        let weight = self.weight_of(idx);
        let (prev, next, main) = {
            let e = &self.slab[idx];
            (e.prev(), e.next, e.in_main())
        };
        if prev == NIL {
            self.queue_mut(main).head = next;
        } else {
            self.slab[prev as usize].next = next;
        }
        if next == NIL {
            self.queue_mut(main).tail = prev;
        } else {
            self.slab[next as usize].set_prev(prev);
        }
        let queue = self.queue_mut(main);
        queue.len -= 1;
        queue.weight -= weight;
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
        if self.config.weighted {
            self.weights.swap_remove(idx);
        }
        if self.config.idle {
            self.hard.swap_remove(idx);
        }
        if let Some(moved_hash) = moved_hash {
            self.relocated(last, idx, moved_hash);
        }
        entry
    }

    /// Takes the entry at `idx` out of its queue, the weight total and the table, leaving its
    /// slab slot to be removed or refilled by the caller.
    fn detach(&mut self, idx: usize, hash: u64) {
        self.unlink(idx);
        self.weight -= self.weight_of(idx);
        if let Ok(found) = self.table.find_entry(hash, |&i| i as usize == idx) {
            found.remove();
        }
    }

    /// The entry that was at slab index `from` now lives at `to`: repoint its neighbours,
    /// its queue's ends and its table slot.
    fn relocated(&mut self, from: usize, to: usize, hash: u64) {
        let (prev, next, main) = {
            let e = &self.slab[to];
            (e.prev(), e.next, e.in_main())
        };
        if prev == NIL {
            self.queue_mut(main).head = to as u32;
        } else {
            self.slab[prev as usize].next = to as u32;
        }
        if next == NIL {
            self.queue_mut(main).tail = to as u32;
        } else {
            self.slab[next as usize].set_prev(to as u32);
        }
        // The moved entry's table slot is found by its key's hash; every slab entry has
        // exactly one slot, so the search always succeeds.
        let from = from as u32;
        if let Some(slot) = self.table.find_mut(hash, |&i| i == from) {
            *slot = to as u32;
        }
    }
}

#[cfg(all(test, not(feature = "shuttle")))]
mod tests {
    use super::*;

    #[test]
    fn a_u64_entry_with_its_ttl_is_32_bytes() {
        assert_eq!(std::mem::size_of::<Entry<u64, u64>>(), 32);
    }
}
