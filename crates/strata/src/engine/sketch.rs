//! A count-min sketch of 4-bit counters: the engine's memory of how often a key was asked
//! for, including keys no longer (or not yet) in the cache. This is TinyLFU's frequency
//! filter (Einziger, Friedman, Manes 2017), sized like Caffeine's: one `u64` of sixteen
//! counters per cached entry, four counters per key, conservative update. Every counter is
//! halved after a sample of `20 × capacity` additions so that old popularity fades.
//!
//! As in Caffeine 3, a key's four counters sit in one 64-byte block (eight words: counter `i`
//! in word `2i` or `2i + 1`), so counting or estimating a key touches one cache line instead
//! of four.
//!
//! The density and the sample were chosen on the synthetic suite (docs/design.md): a quarter
//! of this density lost up to 0.03 of hit ratio on weakly skewed traces, and a sample of
//! `10 × capacity` lost up to 0.07 on loops.

/// Mixes a key's hash into the hash that picks its counters within the block.
const COUNTER_MIX: u64 = 0x9e37_79b9_7f4a_7c15;

#[derive(Debug)]
pub(crate) struct Sketch {
    words: Box<[u64]>,
    /// Blocks of eight words, minus one (a power of two).
    block_mask: usize,
    additions: u64,
    sample: u64,
}

impl Sketch {
    /// A sketch for about `capacity` resident keys: one word (sixteen counters) per key.
    pub(crate) fn new(capacity: usize) -> Self {
        let words = capacity.clamp(8, 1 << 26).next_power_of_two();
        Self {
            words: vec![0; words].into_boxed_slice(),
            block_mask: words / 8 - 1,
            additions: 0,
            sample: (words as u64).saturating_mul(20),
        }
    }

    /// How many resident keys the sketch is sized for.
    pub(crate) fn capacity(&self) -> usize {
        self.words.len()
    }

    /// Heap bytes held by the sketch.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.words.len() * 8
    }

    /// The word index and bit shift of each of the key's four counters.
    #[inline]
    fn slots(&self, hash: u64) -> [(usize, u32); 4] {
        // The low bits: bits 32 and up choose the shard, so within a shard they barely vary.
        let block = (hash as usize & self.block_mask) << 3;
        let h = hash.wrapping_mul(COUNTER_MIX);
        let h = h ^ (h >> 31);
        [0u32, 1, 2, 3].map(|i| {
            let bits = (h >> (i * 8)) as u32;
            let word = block + (i as usize) * 2 + (bits & 1) as usize;
            (word, ((bits >> 1) & 15) << 2)
        })
    }

    /// The estimated number of recent requests for `hash` (0 to 15).
    #[inline]
    pub(crate) fn frequency(&self, hash: u64) -> u8 {
        self.slots(hash)
            .iter()
            .map(|&(w, shift)| ((self.words[w] >> shift) & 15) as u8)
            .min()
            .unwrap_or(0)
    }

    /// Counts one request for `hash`. Only the smallest counters grow (conservative update),
    /// which keeps collisions from inflating estimates.
    pub(crate) fn increment(&mut self, hash: u64) {
        let slots = self.slots(hash);
        let min = slots
            .iter()
            .map(|&(w, shift)| (self.words[w] >> shift) & 15)
            .min()
            .unwrap_or(15);
        if min == 15 {
            return;
        }
        for (w, shift) in slots {
            if (self.words[w] >> shift) & 15 == min {
                self.words[w] += 1 << shift;
            }
        }
        self.additions += 1;
        if self.additions >= self.sample {
            self.age();
        }
    }

    /// Halves every counter, so the sketch reflects recent popularity.
    fn age(&mut self) {
        for word in self.words.iter_mut() {
            *word = (*word >> 1) & 0x7777_7777_7777_7777;
        }
        self.additions /= 2;
    }

    /// Forgets everything.
    pub(crate) fn clear(&mut self) {
        self.words.fill(0);
        self.additions = 0;
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
