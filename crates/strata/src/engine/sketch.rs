//! A count-min sketch of 4-bit counters: the engine's memory of how often a key was asked
//! for, including keys no longer (or not yet) in the cache. This is TinyLFU's frequency
//! filter (Einziger, Friedman, Manes 2017), sized like Caffeine's: one `u64` of sixteen
//! counters per cached entry, four counters per key, conservative update. Every counter is
//! halved after a sample of `20 × capacity` additions so that old popularity fades.
//!
//! The density and the sample were chosen on the synthetic suite (docs/design.md): a quarter
//! of this density lost up to 0.03 of hit ratio on weakly skewed traces, and a sample of
//! `10 × capacity` lost up to 0.07 on loops.

/// Four multipliers (odd, from the golden-ratio and splitmix families) that derive four
/// counter positions from one 64-bit hash.
const SEEDS: [u64; 4] = [
    0x9e37_79b9_7f4a_7c15,
    0xbf58_476d_1ce4_e5b9,
    0x94d0_49bb_1331_11eb,
    0xd6e8_feb8_6659_fd93,
];

#[derive(Debug)]
pub(crate) struct Sketch {
    words: Box<[u64]>,
    mask: usize,
    additions: u64,
    sample: u64,
}

impl Sketch {
    /// A sketch for about `capacity` resident keys: one word (sixteen counters) per key.
    pub(crate) fn new(capacity: usize) -> Self {
        let words = capacity.clamp(8, 1 << 26).next_power_of_two();
        Self {
            words: vec![0; words].into_boxed_slice(),
            mask: words - 1,
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

    #[inline]
    fn slots(&self, hash: u64) -> [(usize, u32); 4] {
        SEEDS.map(|seed| {
            let h = hash.wrapping_mul(seed);
            let h = h ^ (h >> 29);
            ((h as usize) & self.mask, ((h >> 60) as u32) << 2)
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
