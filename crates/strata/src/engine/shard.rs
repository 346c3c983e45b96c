//! One shard: a dense slab of entries, a hash table of slab indices, two FIFO queues threaded
//! through the slab, and a frequency sketch. Everything here runs under the shard's lock; the
//! only fields touched under a *read* lock are an entry's `meta` (access bits) and `deadline`
//! (moved by time-to-idle), both atomics.
//!
//! # Policy
//! New entries enter the **small** queue (10% of the shard). An entry read while in the small
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
use crate::sync::{AtomicU64, AtomicU8, Ordering};

/// "No index": the end of a queue.
const NIL: u32 = u32::MAX;
/// A deadline that never comes.
pub(crate) const NEVER: u64 = u64::MAX;

/// Access bits: how often an entry was read since the policy last looked at it (0 to 3).
const FREQ_MASK: u8 = 0b011;
/// Set when the entry is in the main queue, clear in the small queue.
const IN_MAIN: u8 = 0b100;

/// Entries removed under the lock, handed back so that they are dropped (or given to the
/// removal listener) after the lock is released.
pub(crate) type Removed<K, V> = SmallVec<[(K, V, RemovalCause); 2]>;

/// One cached entry. For `u64` keys and values this is 40 bytes.
pub(crate) struct Entry<K, V> {
    pub(crate) key: K,
    pub(crate) value: V,
    /// Nanoseconds on the cache's clock after which the entry is dead; [`NEVER`] if none.
    deadline: AtomicU64,
    weight: u32,
    prev: u32,
    next: u32,
    meta: AtomicU8,
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
        let meta = self.meta.load(Ordering::Relaxed);
        if meta & FREQ_MASK < FREQ_MASK {
            self.meta.store(meta + 1, Ordering::Relaxed);
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

    fn freq(&self) -> u8 {
        self.meta.load(Ordering::Relaxed) & FREQ_MASK
    }

    fn in_main(&self) -> bool {
        self.meta.load(Ordering::Relaxed) & IN_MAIN != 0
    }

    fn set_meta(&mut self, meta: u8) {
        *self.meta.get_mut() = meta;
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

/// Limits of one shard, fixed at build time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_len: usize,
    pub(crate) max_weight: u64,
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
pub(crate) enum Outcome<V> {
    /// The entry was stored.
    Stored,
    /// `insert_if_absent` found a live entry and left it alone.
    Present(V),
}

pub(crate) struct Shard<K, V> {
    table: HashTable<u32>,
    slab: Vec<Entry<K, V>>,
    /// The hard deadline of each slab entry, kept only for time-to-idle caches (where `deadline`
    /// moves with reads and must not pass the entry's TTL).
    hard: Vec<u64>,
    small: Queue,
    main: Queue,
    sketch: Sketch,
    limits: Limits,
    small_max_len: usize,
    small_max_weight: u64,
    weight: u64,
    /// Next slab slot the expiry sweep looks at.
    cursor: usize,
    /// Whether any entry was ever given a deadline (no sweeping otherwise).
    has_deadlines: bool,
    track_hard: bool,
    pub(crate) counters: WriteCounters,
}

impl<K, V> Shard<K, V>
where
    K: Eq,
    V: Clone,
{
    pub(crate) fn new(limits: Limits, track_hard: bool, preallocate: usize) -> Self {
        let sketch_capacity = if limits.max_len < usize::MAX {
            limits.max_len
        } else {
            preallocate.max(1024)
        };
        Self {
            table: HashTable::with_capacity(preallocate),
            slab: Vec::with_capacity(preallocate),
            hard: Vec::new(),
            small: Queue::EMPTY,
            main: Queue::EMPTY,
            sketch: Sketch::new(sketch_capacity),
            limits,
            small_max_len: (limits.max_len / 10).max(1),
            small_max_weight: (limits.max_weight / 10).max(1),
            weight: 0,
            cursor: 0,
            has_deadlines: false,
            track_hard,
            counters: WriteCounters::default(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.slab.len()
    }

    pub(crate) fn weight(&self) -> u64 {
        self.weight
    }

    /// Heap bytes held by the shard's own structures (not counting what keys and values own).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.slab.capacity() * std::mem::size_of::<Entry<K, V>>()
            + self.table.allocation_size()
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
        let slab = &self.slab;
        self.table
            .find(hash, |&i| slab[i as usize].key.borrow() == key)
            .map(|&i| i as usize)
    }

    /// The hard deadline of the entry at `idx`: its TTL, regardless of idle time.
    pub(crate) fn hard_deadline(&self, idx: usize) -> u64 {
        if self.track_hard {
            self.hard[idx]
        } else {
            self.slab[idx].deadline()
        }
    }

    /// Inserts or replaces. `weight` must already be within the shard's limit; `now` is read
    /// once by the caller. Entries pushed out are appended to `out`.
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
        now: u64,
        hasher: &impl Fn(&K) -> u64,
        out: &mut Removed<K, V>,
    ) -> Outcome<V> {
        self.has_deadlines |= deadline != NEVER;
        self.sweep(now, 2, hasher, out);
        if let Some(idx) = self.index_of(hash, &key) {
            let expired = self.slab[idx].is_expired(|| now);
            if if_absent && !expired {
                self.slab[idx].touch();
                return Outcome::Present(self.slab[idx].value.clone());
            }
            let old_weight = u64::from(self.slab[idx].weight);
            let entry = &mut self.slab[idx];
            let old = std::mem::replace(&mut entry.value, value);
            entry.weight = weight;
            *entry.deadline.get_mut() = deadline;
            entry.touch();
            let queue = if entry.in_main() {
                &mut self.main
            } else {
                &mut self.small
            };
            queue.weight = queue.weight - old_weight + u64::from(weight);
            self.weight = self.weight - old_weight + u64::from(weight);
            if self.track_hard {
                self.hard[idx] = hard;
            }
            if expired {
                self.counters.expirations += 1;
                self.counters.inserts += 1;
                out.push((key, old, RemovalCause::Expired));
            } else {
                self.counters.updates += 1;
                out.push((key, old, RemovalCause::Replaced));
            }
            // A heavier value may push the shard over its weight; the entry itself is spared
            // unless it is the only thing left.
            while self.weight > self.limits.max_weight && self.slab.len() > 1 {
                self.evict_one(now, hasher, out);
            }
            return Outcome::Stored;
        }

        while self.slab.len() >= self.limits.max_len
            || self.weight + u64::from(weight) > self.limits.max_weight
        {
            if self.slab.is_empty() {
                break;
            }
            self.evict_one(now, hasher, out);
        }
        self.sketch.increment(hash);
        self.reserve_one();
        let idx = self.slab.len() as u32;
        self.slab.push(Entry {
            key,
            value,
            deadline: AtomicU64::new(deadline),
            weight,
            prev: NIL,
            next: NIL,
            meta: AtomicU8::new(0),
        });
        if self.track_hard {
            self.hard.push(hard);
        }
        let slab = &self.slab;
        self.table
            .insert_unique(hash, idx, |&i| hasher(&slab[i as usize].key));
        self.push_tail(idx, false);
        self.weight += u64::from(weight);
        self.counters.inserts += 1;
        Outcome::Stored
    }

    /// Grows the slab by doubling, but never past the shard's entry limit, so a full cache
    /// holds no spare slots.
    fn reserve_one(&mut self) {
        if self.slab.len() == self.slab.capacity() {
            let len = self.slab.len();
            let target = (len * 2).clamp(16, self.limits.max_len.max(1));
            self.slab.reserve_exact(target.saturating_sub(len).max(1));
            if self.track_hard {
                self.hard
                    .reserve_exact(self.slab.capacity() - self.hard.len());
            }
        }
    }

    /// Removes `key` if present, returning its key and value.
    pub(crate) fn remove<Q>(
        &mut self,
        hash: u64,
        key: &Q,
        now: u64,
        hasher: &impl Fn(&K) -> u64,
        out: &mut Removed<K, V>,
    ) -> Option<(K, V)>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.sweep(now, 2, hasher, out);
        let idx = self.index_of(hash, key)?;
        let expired = self.slab[idx].is_expired(|| now);
        let entry = self.remove_at(idx, hasher);
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
        self.hard.clear();
        self.small = Queue::EMPTY;
        self.main = Queue::EMPTY;
        self.weight = 0;
        self.cursor = 0;
        self.sketch.clear();
        let taken = std::mem::take(&mut self.slab);
        self.counters.removals += taken.len() as u64;
        taken
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
        out: &mut Removed<K, V>,
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
        if !self.has_deadlines {
            return 0;
        }
        let mut removed = 0;
        let mut idx = 0;
        while idx < self.slab.len() {
            if self.slab[idx].is_expired(|| now) {
                let entry = self.remove_at(idx, hasher);
                self.counters.expirations += 1;
                out.push((entry.key, entry.value, RemovalCause::Expired));
                removed += 1;
            } else {
                idx += 1;
            }
        }
        self.cursor = 0;
        removed
    }

    fn expire(&mut self, idx: usize, hasher: &impl Fn(&K) -> u64, out: &mut Removed<K, V>) {
        let entry = self.remove_at(idx, hasher);
        self.counters.expirations += 1;
        out.push((entry.key, entry.value, RemovalCause::Expired));
    }

    fn evict(&mut self, idx: usize, hasher: &impl Fn(&K) -> u64, out: &mut Removed<K, V>) {
        let entry = self.remove_at(idx, hasher);
        self.counters.evictions += 1;
        out.push((entry.key, entry.value, RemovalCause::Evicted));
    }

    fn small_over(&self) -> bool {
        self.small.len > self.small_max_len || self.small.weight > self.small_max_weight
    }

    /// Frees at least one entry (the shard must not be empty).
    fn evict_one(&mut self, now: u64, hasher: &impl Fn(&K) -> u64, out: &mut Removed<K, V>) {
        loop {
            if self.small.len > 0 && (self.small_over() || self.main.len == 0) {
                let cand = self.small.head as usize;
                if self.slab[cand].is_expired(|| now) {
                    return self.expire(cand, hasher, out);
                }
                let freq = self.slab[cand].freq();
                if freq > 0 {
                    // Read while on probation: promote, remembering the reads.
                    let hash = hasher(&self.slab[cand].key);
                    for _ in 0..freq {
                        self.sketch.increment(hash);
                    }
                    self.move_to_main(cand);
                    continue;
                }
                if self.main.len == 0 {
                    return self.evict(cand, hasher, out);
                }
                let victim = self.main_victim(now, hasher);
                if self.slab[victim].is_expired(|| now) {
                    return self.expire(victim, hasher, out);
                }
                let cand_freq = self.sketch.frequency(hasher(&self.slab[cand].key));
                let victim_freq = self.sketch.frequency(hasher(&self.slab[victim].key));
                if cand_freq > victim_freq {
                    // Removing the victim moves the slab's last entry into its slot, and
                    // that entry may be the candidate.
                    let last = self.slab.len() - 1;
                    self.evict(victim, hasher, out);
                    self.move_to_main(if cand == last { victim } else { cand });
                    return;
                }
                return self.evict(cand, hasher, out);
            }
            let victim = self.main_victim(now, hasher);
            if self.slab[victim].is_expired(|| now) {
                return self.expire(victim, hasher, out);
            }
            return self.evict(victim, hasher, out);
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
            self.slab[head].set_meta(IN_MAIN | (freq - 1));
            self.push_tail(head as u32, true);
        }
    }

    fn move_to_main(&mut self, idx: usize) {
        self.unlink(idx);
        self.slab[idx].set_meta(IN_MAIN);
        self.push_tail(idx as u32, true);
    }

    fn queue_mut(&mut self, main: bool) -> &mut Queue {
        if main {
            &mut self.main
        } else {
            &mut self.small
        }
    }

    fn push_tail(&mut self, idx: u32, main: bool) {
        let weight = u64::from(self.slab[idx as usize].weight);
        let tail = self.queue_mut(main).tail;
        {
            let entry = &mut self.slab[idx as usize];
            entry.prev = tail;
            entry.next = NIL;
            let meta = *entry.meta.get_mut();
            entry.set_meta(if main {
                meta | IN_MAIN
            } else {
                meta & !IN_MAIN
            });
        }
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
        let (prev, next, main, weight) = {
            let e = &self.slab[idx];
            (e.prev, e.next, e.in_main(), u64::from(e.weight))
        };
        if prev == NIL {
            self.queue_mut(main).head = next;
        } else {
            self.slab[prev as usize].next = next;
        }
        if next == NIL {
            self.queue_mut(main).tail = prev;
        } else {
            self.slab[next as usize].prev = prev;
        }
        let queue = self.queue_mut(main);
        queue.len -= 1;
        queue.weight -= weight;
    }

    /// Takes the entry at `idx` out of the queue, the table and the slab. The slab's last
    /// entry moves into `idx` (so the slab stays dense) and its links and table slot follow.
    fn remove_at(&mut self, idx: usize, hasher: &impl Fn(&K) -> u64) -> Entry<K, V> {
        let hash = hasher(&self.slab[idx].key);
        self.unlink(idx);
        self.weight -= u64::from(self.slab[idx].weight);
        if let Ok(found) = self.table.find_entry(hash, |&i| i as usize == idx) {
            found.remove();
        }
        let last = self.slab.len() - 1;
        let entry = self.slab.swap_remove(idx);
        if self.track_hard {
            self.hard.swap_remove(idx);
        }
        if idx != last {
            self.relocated(last, idx, hasher);
        }
        entry
    }

    /// The entry that was at slab index `from` now lives at `to`: repoint its neighbours,
    /// its queue's ends and its table slot.
    fn relocated(&mut self, from: usize, to: usize, hasher: &impl Fn(&K) -> u64) {
        let (prev, next, main) = {
            let e = &self.slab[to];
            (e.prev, e.next, e.in_main())
        };
        if prev == NIL {
            self.queue_mut(main).head = to as u32;
        } else {
            self.slab[prev as usize].next = to as u32;
        }
        if next == NIL {
            self.queue_mut(main).tail = to as u32;
        } else {
            self.slab[next as usize].prev = to as u32;
        }
        let from = from as u32;
        // The table's slot for the moved entry is found by the moved key's hash; a missing
        // slot would mean the table and slab disagree, which no operation allows.
        let hash = hasher(&self.slab[to].key);
        if let Some(slot) = self.table.find_mut(hash, |&i| i == from) {
            *slot = to as u32;
        }
    }
}

#[cfg(all(test, not(feature = "shuttle")))]
mod tests {
    use super::*;

    #[test]
    fn a_u64_entry_with_its_ttl_is_40_bytes() {
        assert_eq!(std::mem::size_of::<Entry<u64, u64>>(), 40);
    }
}
