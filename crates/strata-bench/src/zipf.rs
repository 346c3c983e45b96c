//! Exact inverse-CDF Zipf sampler and a fixed bijective key scrambler.

use rand::Rng;

/// Samples ranks `0..n` with `P(rank = i) ∝ 1 / (i + 1)^s`.
///
/// Uses an exact cumulative table (8 bytes per key) and binary search, so any
/// exponent `s >= 0` works, including `s = 1.0` (where some closed-form
/// samplers have a singularity).
#[derive(Debug, Clone)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    /// Builds the table for `n` ranks and exponent `s`.
    pub fn new(n: u64, s: f64) -> anyhow::Result<Self> {
        anyhow::ensure!(n > 0, "zipf: number of keys must be > 0");
        anyhow::ensure!(
            s.is_finite() && s >= 0.0,
            "zipf: exponent must be a finite number >= 0 (got {s})"
        );
        let n = usize::try_from(n).map_err(|_| anyhow::anyhow!("zipf: too many keys ({n})"))?;
        let mut cdf = Vec::with_capacity(n);
        let mut sum = 0.0f64;
        for i in 0..n {
            sum += ((i + 1) as f64).powf(-s);
            cdf.push(sum);
        }
        for c in &mut cdf {
            *c /= sum;
        }
        if let Some(last) = cdf.last_mut() {
            *last = 1.0;
        }
        Ok(Self { cdf })
    }

    /// Number of ranks.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.cdf.len()
    }

    /// Probability of rank `i` (for tests).
    #[cfg(test)]
    pub fn probability(&self, i: usize) -> f64 {
        let prev = if i == 0 { 0.0 } else { self.cdf[i - 1] };
        self.cdf[i] - prev
    }

    /// Draws one rank in `0..n` (0 is the most popular).
    #[inline]
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> u64 {
        let u: f64 = rng.random();
        let i = self.cdf.partition_point(|&c| c <= u);
        i.min(self.cdf.len() - 1) as u64
    }
}

/// Fixed bijection on `u64` (murmur3 `fmix64` of `x` xor a constant), used so
/// that hot ranks 0, 1, 2, ... do not become keys 0, 1, 2, ...
#[inline]
pub fn scramble(x: u64) -> u64 {
    let mut k = x ^ 0x9E37_79B9_7F4A_7C15;
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use std::collections::HashSet;

    #[test]
    fn probabilities_sum_to_one_and_decrease() {
        let z = Zipf::new(1000, 1.0).unwrap();
        let total: f64 = (0..z.len()).map(|i| z.probability(i)).sum();
        assert!((total - 1.0).abs() < 1e-9);
        for i in 1..z.len() {
            assert!(z.probability(i) <= z.probability(i - 1) + 1e-15);
        }
        // s = 1: p(0) / p(1) = 2, p(0) / p(9) = 10.
        assert!((z.probability(0) / z.probability(1) - 2.0).abs() < 1e-9);
        assert!((z.probability(0) / z.probability(9) - 10.0).abs() < 1e-9);
    }

    #[test]
    fn empirical_matches_theoretical() {
        for &s in &[0.0, 0.6, 1.0, 1.2] {
            let n = 100u64;
            let z = Zipf::new(n, s).unwrap();
            let mut rng = StdRng::seed_from_u64(7);
            let draws = 400_000;
            let mut counts = vec![0u64; n as usize];
            for _ in 0..draws {
                let r = z.sample(&mut rng);
                assert!(r < n);
                counts[r as usize] += 1;
            }
            for i in [0usize, 1, 2, 10, 50, 99] {
                let expected = z.probability(i) * draws as f64;
                let sd = expected.sqrt();
                let got = counts[i] as f64;
                assert!(
                    (got - expected).abs() < 6.0 * sd + 5.0,
                    "s={s} rank={i} expected={expected} got={got}"
                );
            }
            // Popularity is monotone for s > 0 at the head.
            if s > 0.0 {
                assert!(counts[0] > counts[1] && counts[1] > counts[10]);
            }
        }
    }

    #[test]
    fn single_key_and_bad_params() {
        let z = Zipf::new(1, 1.0).unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..100 {
            assert_eq!(z.sample(&mut rng), 0);
        }
        assert!(Zipf::new(0, 1.0).is_err());
        assert!(Zipf::new(10, -1.0).is_err());
        assert!(Zipf::new(10, f64::NAN).is_err());
    }

    #[test]
    fn scramble_is_injective_on_a_range() {
        let set: HashSet<u64> = (0..100_000u64).map(scramble).collect();
        assert_eq!(set.len(), 100_000);
        assert_ne!(scramble(0), 0);
    }
}
