//! One cached entry: key, value, deadline, and the link word that threads it through a queue
//! and carries its access bits. The only fields touched under a shard's *read* lock are the
//! link's access bits (a read records itself) and the deadline (time-to-idle moves it), both
//! atomics; everything else changes under the write lock.

use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// "No index": the end of a queue. Slab indices use the low 29 bits of a link word.
pub(super) const NIL: u32 = (1 << 29) - 1;
/// A deadline that never comes.
pub(crate) const NEVER: u64 = u64::MAX;

/// The `link` word: the previous entry's index in the low 29 bits, then two access bits (how
/// often the entry was read since the policy last looked, 0 to [`MAX_FREQ`]), then the queue
/// flag.
const PREV_MASK: u32 = NIL;
const FREQ_SHIFT: u32 = 29;
const FREQ_ONE: u32 = 1 << FREQ_SHIFT;
const FREQ_MASK: u32 = 0b11 << FREQ_SHIFT;
/// Set when the entry is in the main queue, clear in the small queue.
const IN_MAIN: u32 = 1 << 31;
/// The most reads the access bits count.
pub(super) const MAX_FREQ: u32 = FREQ_MASK >> FREQ_SHIFT;

/// One cached entry: key, value, deadline and two links. For `u64` keys and values this is
/// 32 bytes. Weights and hard deadlines live in side columns that only the caches needing
/// them keep (see `shard.rs`).
pub(crate) struct Entry<K, V> {
    pub(crate) key: K,
    pub(crate) value: V,
    /// Nanoseconds on the cache's clock after which the entry is dead; [`NEVER`] if none.
    deadline: AtomicU64,
    /// The next entry's index in its queue, [`NIL`] at the tail.
    pub(super) next: u32,
    /// Previous index, access bits and queue flag (see [`PREV_MASK`]). Readers under the read
    /// lock only bump the access bits; the other bits change under the write lock alone, so a
    /// reader's store writes back the same index it loaded.
    link: AtomicU32,
}

impl<K, V> Entry<K, V> {
    /// A new entry, in no queue yet, never read.
    pub(super) fn new(key: K, value: V, deadline: u64) -> Self {
        Self {
            key,
            value,
            deadline: AtomicU64::new(deadline),
            next: NIL,
            link: AtomicU32::new(NIL),
        }
    }

    #[inline]
    pub(crate) fn is_expired(&self, now: impl FnOnce() -> u64) -> bool {
        let deadline = self.deadline.load(Ordering::Relaxed);
        deadline != NEVER && deadline <= now()
    }

    #[inline]
    pub(crate) fn deadline(&self) -> u64 {
        self.deadline.load(Ordering::Relaxed)
    }

    /// Sets the deadline under the write lock.
    #[inline]
    pub(super) fn set_deadline(&mut self, deadline: u64) {
        *self.deadline.get_mut() = deadline;
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

    /// How often the entry was read since the policy last looked (0 to [`MAX_FREQ`]).
    #[inline]
    pub(super) fn freq(&self) -> u32 {
        (self.link.load(Ordering::Relaxed) & FREQ_MASK) >> FREQ_SHIFT
    }

    #[inline]
    pub(super) fn in_main(&self) -> bool {
        self.link.load(Ordering::Relaxed) & IN_MAIN != 0
    }

    #[inline]
    pub(super) fn prev(&self) -> u32 {
        self.link.load(Ordering::Relaxed) & PREV_MASK
    }

    #[inline]
    pub(super) fn set_prev(&mut self, prev: u32) {
        let link = self.link.get_mut();
        *link = (*link & !PREV_MASK) | prev;
    }

    /// Sets the access bits and queue flag, keeping the link.
    #[inline]
    pub(super) fn set_state(&mut self, freq: u32, main: bool) {
        let link = self.link.get_mut();
        *link = (*link & PREV_MASK) | (freq << FREQ_SHIFT) | if main { IN_MAIN } else { 0 };
    }
}

#[cfg(all(test, not(feature = "shuttle")))]
mod tests {
    use super::*;

    #[test]
    fn a_u64_entry_with_its_ttl_is_32_bytes() {
        assert_eq!(std::mem::size_of::<Entry<u64, u64>>(), 32);
    }

    #[test]
    fn access_bits_saturate_without_touching_the_link() {
        let mut entry = Entry::new(1u64, 1u64, NEVER);
        entry.set_prev(7);
        entry.set_state(0, true);
        for _ in 0..10 {
            entry.touch();
        }
        assert_eq!(
            (entry.freq(), entry.prev(), entry.in_main()),
            (MAX_FREQ, 7, true)
        );
    }
}
