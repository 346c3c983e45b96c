//! The eviction policy: which entry leaves when a shard needs room.
//!
//! New entries enter the **small** queue (the window: 1% of the shard to start with, then as
//! the cache's climber decides, `climber.rs`). An entry read while in the small
//! queue moves to the **main** queue when it reaches the small queue's head (S3-FIFO, Yang et
//! al. 2023). An entry never read there is a *candidate*: it enters main only if the sketch
//! says it is asked for more often than main's next victim (TinyLFU admission); otherwise it
//! leaves. Main is a CLOCK: an entry with access bits left goes back to the tail with one bit
//! less, and one without is the victim. The sketch stands in for S3-FIFO's ghost queue and
//! costs a fraction of it. Expired entries are reclaimed first wherever the policy meets them.
//!
//! The policy decides and reorders; it never removes an entry itself (the shard does, given
//! the [`Victim`]), so every slab index stays valid while it runs. The queue mechanics it uses
//! are in `queue.rs`.

use super::climber::share_of;
use super::column::Column;
use super::entry::{Entry, MAX_FREQ};
use super::queue::Queues;
use super::sketch::Sketch;
use crate::listener::RemovalCause;

/// A shard that evicts keeps a sketch for at least this many keys (8 KiB), however few
/// entries it holds. The sketch must remember keys the cache has no room for, and a small
/// cache sees many keys for each entry it holds: with a sketch sized to its 64 or 128 entries,
/// the LIRS `loop` trace at 128 entries scored 0.01 where W-TinyLFU scores 0.10, and the
/// aging period (which follows the sketch's size) was shorter than one pass of the loop.
/// Measured floors are in docs/design.md. A shard that never evicts never pays for it.
const LEAST_SKETCH: usize = 1024;

/// The entry the policy chose to leave.
#[derive(Debug, Clone, Copy)]
pub(super) struct Victim {
    /// Its slab index.
    pub(super) idx: usize,
    /// Its key's hash.
    pub(super) hash: u64,
    /// Whether it leaves because it expired or to make room.
    pub(super) cause: RemovalCause,
}

impl Victim {
    /// The entry at `idx` as a victim: it leaves as expired if it is, or to make room.
    #[inline]
    fn of<K, V>(slab: &[Entry<K, V>], idx: usize, now: u64, hasher: &impl Fn(&K) -> u64) -> Self {
        let entry = &slab[idx];
        let cause = if entry.is_expired(|| now) {
            RemovalCause::Expired
        } else {
            RemovalCause::Evicted
        };
        Victim {
            idx,
            hash: hasher(&entry.key),
            cause,
        }
    }
}

/// One shard's policy state: the queues, the frequency sketch, and the queues' shares of the
/// shard's bounds.
pub(super) struct Policy {
    pub(super) queues: Queues,
    sketch: Sketch,
    /// The shard's bounds, which size the queues (kept in step by `Shard::set_max_weight`).
    max_len: usize,
    max_weight: u64,
    /// The small queue's share of the shard (the window), in units of 1/`climber::SCALE`:
    /// the cache's climber moves it (see `climber.rs`).
    window: u32,
    small_max_len: usize,
    small_max_weight: u64,
}

impl Policy {
    /// A policy for a shard of at most `max_len` entries and `max_weight` weight, with a
    /// sketch sized for `sketch_capacity` keys to start with and a window of `window`.
    pub(super) fn new(
        max_len: usize,
        max_weight: u64,
        sketch_capacity: usize,
        window: u32,
    ) -> Self {
        let mut policy = Self {
            queues: Queues::EMPTY,
            sketch: Sketch::new(sketch_capacity),
            max_len,
            max_weight,
            window,
            small_max_len: 1,
            small_max_weight: 1,
        };
        policy.size_small();
        policy
    }

    fn size_small(&mut self) {
        self.small_max_len = share_of(self.max_len as u64, self.window) as usize;
        self.small_max_weight = share_of(self.max_weight, self.window);
    }

    /// The shard's weight bound changed.
    pub(super) fn set_max_weight(&mut self, max_weight: u64) {
        self.max_weight = max_weight;
        self.size_small();
    }

    /// The climber moved the window. The queues follow as entries come and go: a smaller
    /// window hands its oldest entries to main (or to the duel) on the next evictions, a
    /// larger one fills as main gives up victims.
    #[inline]
    pub(super) fn set_window(&mut self, window: u32) {
        if window != self.window {
            self.window = window;
            self.size_small();
        }
    }

    /// The bounds the queues are sized for, for invariant checks.
    pub(super) fn bounds(&self) -> (usize, u64) {
        (self.max_len, self.max_weight)
    }

    /// The shard's running count of requests (lookups and writes), which ages the sketch.
    #[inline]
    pub(super) fn observe_requests(&mut self, requests: u64) {
        self.sketch.observe_requests(requests);
    }

    /// A new entry at `idx`: counted in the sketch and put on probation in the small queue.
    #[inline]
    pub(super) fn admit<K, V>(
        &mut self,
        slab: &mut [Entry<K, V>],
        idx: usize,
        hash: u64,
        weight: u64,
    ) {
        self.sketch.increment(hash);
        self.queues.push_tail(slab, idx as u32, false, weight);
    }

    /// The sketch grows with the slab (to `capacity` keys), keeping its counts.
    pub(super) fn grow(&mut self, capacity: usize) {
        if self.sketch.capacity() < capacity {
            self.sketch.grow(capacity);
        }
    }

    /// Forgets every entry (the shard was emptied), and the sketch's history with them.
    pub(super) fn clear(&mut self) {
        self.queues = Queues::EMPTY;
        self.sketch.clear();
    }

    pub(super) fn heap_bytes(&self) -> usize {
        self.sketch.heap_bytes()
    }

    /// Parks `idx` at main's tail with every access bit set, the last place the policy looks:
    /// where an entry waits while room is made for its own heavier value.
    pub(super) fn park<K, V>(&mut self, slab: &mut [Entry<K, V>], idx: usize, weight: u64) {
        self.queues.move_to_main_tail(slab, idx, MAX_FREQ, weight);
    }

    fn main_has_room(&self) -> bool {
        self.queues.main.len + self.small_max_len < self.max_len
            && self.queues.main.weight + self.small_max_weight < self.max_weight
    }

    /// Small at (or past) its share: the next eviction takes a candidate from it.
    fn small_full(&self) -> bool {
        self.queues.small.len >= self.small_max_len
            || self.queues.small.weight >= self.small_max_weight
    }

    /// Runs the policy until it names the entry to leave. Promotions and CLOCK rotations
    /// happen on the way; nothing is removed. The shard must not be empty.
    pub(super) fn choose_victim<K, V>(
        &mut self,
        slab: &mut [Entry<K, V>],
        weights: &Column<u32>,
        now: u64,
        hasher: &impl Fn(&K) -> u64,
    ) -> Victim {
        let weight_of = |idx: usize| weights.get(idx).map_or(1, u64::from);
        if self.sketch.capacity() < LEAST_SKETCH {
            self.sketch.grow(LEAST_SKETCH);
        }
        loop {
            let small = self.queues.small;
            if small.len == 0 || !(self.small_full() || self.queues.main.len == 0) {
                let idx = self.main_victim(slab, weights, now, hasher);
                return Victim::of(slab, idx, now, hasher);
            }
            let cand = Victim::of(slab, small.head as usize, now, hasher);
            if cand.cause == RemovalCause::Expired {
                return cand;
            }
            let freq = slab[cand.idx].freq();
            if freq > 0 {
                // Read while on probation: promote, and let the sketch remember the reads.
                for _ in 0..freq {
                    self.sketch.increment(cand.hash);
                }
                self.queues
                    .move_to_main_tail(slab, cand.idx, 0, weight_of(cand.idx));
                continue;
            }
            if self.main_has_room() {
                // Main fills freely up to its share; only then must candidates compete.
                self.queues
                    .move_to_main_tail(slab, cand.idx, 0, weight_of(cand.idx));
                continue;
            }
            if self.queues.main.len == 0 {
                // A shard too small to have a main share: the small queue is the cache.
                return cand;
            }
            let idx = self.main_victim(slab, weights, now, hasher);
            let incumbent = Victim::of(slab, idx, now, hasher);
            if incumbent.cause == RemovalCause::Expired {
                return incumbent;
            }
            if self.sketch.frequency(cand.hash) <= self.sketch.frequency(incumbent.hash) {
                // Ties go to the incumbent: that is what keeps part of a loop cached.
                return cand;
            }
            self.queues
                .move_to_main_tail(slab, cand.idx, 0, weight_of(cand.idx));
            return incumbent;
        }
    }

    /// Runs main's CLOCK until its head has no access bits left (or is expired) and returns
    /// that head. Main must not be empty.
    fn main_victim<K, V>(
        &mut self,
        slab: &mut [Entry<K, V>],
        weights: &Column<u32>,
        now: u64,
        hasher: &impl Fn(&K) -> u64,
    ) -> usize {
        loop {
            let head = self.queues.main.head as usize;
            let entry = &slab[head];
            let freq = entry.freq();
            if freq == 0 || entry.is_expired(|| now) {
                return head;
            }
            // Each access the CLOCK consumes is remembered by the sketch.
            self.sketch.increment(hasher(&entry.key));
            let weight = weights.get(head).map_or(1, u64::from);
            self.queues.move_to_main_tail(slab, head, freq - 1, weight);
        }
    }
}
