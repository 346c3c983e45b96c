//! A count-min sketch of 4-bit counters: the engine's memory of how often a key was asked
//! for, including keys no longer (or not yet) in the cache. This is TinyLFU's frequency
//! filter (Einziger, Friedman, Manes 2017), sized like Caffeine's: one `u64` of sixteen
//! counters per cached entry, four counters per key, conservative update. Every counter is
//! halved after `30 × capacity` requests to the shard (lookups and writes; Caffeine also
//! counts its sample in requests) so that old popularity fades.
//!
//! As in Caffeine 3, a key's four counters sit in one 64-byte block (eight words: counter `i`
//! in word `2i` or `2i + 1`), so counting or estimating a key touches one cache line instead
//! of four.
//!
//! The density and the period were chosen on the synthetic suite (docs/design.md): a quarter
//! of this density lost up to 0.03 of hit ratio on weakly skewed traces.

/// Requests (lookups and writes) between two agings, per key the sketch is sized for. Chosen
/// on the synthetic suite (docs/design.md): shorter periods follow shifting popularity better,
/// longer ones tell weakly skewed keys apart better; 30 balances them.
const AGING_PERIOD: u64 = 30;

/// Mixes a key's hash into the hash that picks its counters within the block.
const COUNTER_MIX: u64 = 0x9e37_79b9_7f4a_7c15;

#[derive(Debug)]
pub(crate) struct Sketch {
    /// 64-byte blocks of eight words, sixteen 4-bit counters a word; a power of two of them.
    blocks: Box<[[u64; 8]]>,
    /// The shard's request count (hits + misses) when the sketch last aged.
    aged_at: u64,
    /// Requests between agings.
    period: u64,
}

impl Sketch {
    /// A sketch for about `capacity` resident keys: one word (sixteen counters) per key.
    pub(crate) fn new(capacity: usize) -> Self {
        let words = capacity.clamp(8, 1 << 26).next_power_of_two();
        Self {
            blocks: vec![[0; 8]; words / 8].into_boxed_slice(),
            aged_at: 0,
            period: (words as u64).saturating_mul(AGING_PERIOD),
        }
    }

    /// Ages the sketch once for every whole period `requests` (the shard's running count of
    /// lookups and writes) has advanced since the last aging; four halvings at most, which
    /// empty every counter anyway.
    #[inline]
    pub(crate) fn observe_requests(&mut self, requests: u64) {
        let elapsed = requests.wrapping_sub(self.aged_at);
        if elapsed >= self.period {
            // Divide only when a period has passed: this runs on every insert.
            let periods = elapsed / self.period;
            self.aged_at = self
                .aged_at
                .wrapping_add(periods.saturating_mul(self.period));
            for _ in 0..periods.min(4) {
                self.age();
            }
        }
    }

    /// Grows the sketch to suit `capacity` keys without losing what it knows. A key's block is
    /// its hash masked to the table's size, so in a table `n` times larger it lands on one of
    /// the `n` copies of its old block, and its counters (placed by other bits) are unchanged.
    pub(crate) fn grow(&mut self, capacity: usize) {
        let words = capacity.clamp(8, 1 << 26).next_power_of_two();
        let old = self.blocks.len();
        if words / 8 <= old {
            return;
        }
        self.blocks = (0..words / 8).map(|b| self.blocks[b % old]).collect();
        self.period = (words as u64).saturating_mul(AGING_PERIOD);
    }

    /// How many resident keys the sketch is sized for.
    pub(crate) fn capacity(&self) -> usize {
        self.blocks.len() * 8
    }

    /// Heap bytes held by the sketch.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.blocks.len() * 64
    }

    /// The key's block, and for each of its four counters the word within the block (counter
    /// `i` lives in word `2i` or `2i + 1`) and the bit shift within that word.
    #[inline]
    fn locate(&self, hash: u64) -> (usize, [(usize, u32); 4]) {
        // The low bits: bits 32 and up choose the shard, so within a shard they barely vary.
        let block = hash as usize & (self.blocks.len() - 1);
        let h = hash.wrapping_mul(COUNTER_MIX);
        let h = h ^ (h >> 31);
        let slot = |i: usize| {
            let bits = (h >> (i * 8)) as u32;
            (i * 2 + (bits & 1) as usize, ((bits >> 1) & 15) << 2)
        };
        (block, [slot(0), slot(1), slot(2), slot(3)])
    }

    /// The estimated number of recent requests for `hash` (0 to 15).
    #[inline]
    pub(crate) fn frequency(&self, hash: u64) -> u8 {
        let (block, slots) = self.locate(hash);
        let words = &self.blocks[block];
        let count = |(w, shift): (usize, u32)| (words[w] >> shift) & 15;
        count(slots[0])
            .min(count(slots[1]))
            .min(count(slots[2]))
            .min(count(slots[3])) as u8
    }

    /// Counts one request for `hash`. Only the smallest counters grow (conservative update),
    /// which keeps collisions from inflating estimates.
    #[inline]
    pub(crate) fn increment(&mut self, hash: u64) {
        let (block, slots) = self.locate(hash);
        let words = &mut self.blocks[block];
        let count = |words: &[u64; 8], (w, shift): (usize, u32)| (words[w] >> shift) & 15;
        let min = count(words, slots[0])
            .min(count(words, slots[1]))
            .min(count(words, slots[2]))
            .min(count(words, slots[3]));
        if min == 15 {
            return;
        }
        for (w, shift) in slots {
            if (words[w] >> shift) & 15 == min {
                words[w] += 1 << shift;
            }
        }
    }

    /// Halves every counter, so the sketch reflects recent popularity.
    fn age(&mut self) {
        for word in self.blocks.iter_mut().flatten() {
            *word = (*word >> 1) & 0x7777_7777_7777_7777;
        }
    }

    /// Forgets everything.
    pub(crate) fn clear(&mut self) {
        self.blocks.fill([0; 8]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_saturate_and_age() {
        let mut s = Sketch::new(1024);
        for _ in 0..20 {
            s.increment(42);
        }
        assert_eq!(s.frequency(42), 15);
        assert_eq!(s.frequency(43), 0);
        s.age();
        assert_eq!(s.frequency(42), 7);
    }

    #[test]
    fn growing_keeps_every_estimate() {
        let mut s = Sketch::new(64);
        let keys: Vec<u64> = (0..200u64)
            .map(|k| k.wrapping_mul(0x2545_f491_4f6c_dd1d))
            .collect();
        for (i, &k) in keys.iter().enumerate() {
            for _ in 0..(i % 7) {
                s.increment(k);
            }
        }
        let before: Vec<u8> = keys.iter().map(|&k| s.frequency(k)).collect();
        s.grow(4096);
        assert_eq!(s.capacity(), 4096);
        let after: Vec<u8> = keys.iter().map(|&k| s.frequency(k)).collect();
        assert_eq!(before, after);
    }

    #[test]
    fn idle_periods_age_more_than_once() {
        let mut s = Sketch::new(1024);
        for _ in 0..12 {
            s.increment(42);
        }
        s.observe_requests(3 * 1024 * AGING_PERIOD);
        assert_eq!(
            s.frequency(42),
            1,
            "three periods halve three times: 12 -> 6 -> 3 -> 1"
        );
    }

    #[test]
    fn ages_once_per_period_of_requests() {
        let mut s = Sketch::new(1024);
        for _ in 0..8 {
            s.increment(42);
        }
        let period = 1024 * AGING_PERIOD;
        s.observe_requests(period - 1);
        assert_eq!(s.frequency(42), 8, "aged before a whole period");
        s.observe_requests(period);
        assert_eq!(s.frequency(42), 4);
        s.observe_requests(period + 10);
        assert_eq!(s.frequency(42), 4, "aged twice in one period");
    }

    #[test]
    fn hot_keys_outrank_cold_ones() {
        let mut s = Sketch::new(4096);
        for k in 0..4096u64 {
            s.increment(k.wrapping_mul(0x2545_f491_4f6c_dd1d));
        }
        for _ in 0..5 {
            s.increment(7u64.wrapping_mul(0x2545_f491_4f6c_dd1d));
        }
        let hot = s.frequency(7u64.wrapping_mul(0x2545_f491_4f6c_dd1d));
        let cold = s.frequency(8u64.wrapping_mul(0x2545_f491_4f6c_dd1d));
        assert!(hot > cold, "hot {hot} cold {cold}");
    }
}
