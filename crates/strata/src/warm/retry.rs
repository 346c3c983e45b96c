//! How a failed step is tried again: the `Retry` policy, its backoff, and the jitter drawn to
//! spread retries apart.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How often, and how far apart, a failed step is tried again. See the
/// [module docs](super#retries-backoff-and-jitter) for the formula.
///
/// ```
/// use strata::warm::Retry;
/// use std::time::Duration;
///
/// let retry = Retry::exponential(Duration::from_millis(100))
///     .max_attempts(5)
///     .max_delay(Duration::from_millis(300))
///     .jitter(0.0);
/// // The waits after the 1st, 2nd, 3rd and 4th failed attempts (before jitter):
/// let waits: Vec<_> = (1..5).map(|n| retry.base_delay(n).as_millis()).collect();
/// assert_eq!(waits, [100, 200, 300, 300]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retry {
    first: Duration,
    max_attempts: u32,
    max_delay: Duration,
    jitter: f64,
}

impl Default for Retry {
    /// `Retry::exponential(100 ms)`: 3 attempts, delays up to 30 s, jitter 0.2.
    fn default() -> Self {
        Self::exponential(Duration::from_millis(100))
    }
}

impl Retry {
    /// Exponential backoff waiting `first` after the first failure and twice as long after
    /// each next one; 3 attempts, delays capped at 30 s, jitter 0.2.
    pub fn exponential(first: Duration) -> Self {
        Self {
            first,
            max_attempts: 3,
            max_delay: Duration::from_secs(30),
            jitter: 0.2,
        }
    }

    /// One attempt, no retry.
    pub fn none() -> Self {
        Self::default().max_attempts(1)
    }

    /// Attempts per step, the first included (at least 1; 0 is taken as 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The longest wait between two attempts, before jitter.
    pub fn max_delay(mut self, max: Duration) -> Self {
        self.max_delay = max;
        self
    }

    /// How much of each wait may be taken off at random: a wait `d` becomes uniform in
    /// `[d × (1 − fraction), d]`. Clamped to `[0, 1]`; NaN is taken as 0.
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        self
    }

    /// Attempts per step, the first included.
    pub fn attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The wait after `failed` failed attempts (1 for the first), before jitter:
    /// `min(first × 2^(failed − 1), max_delay)`.
    pub fn base_delay(&self, failed: u32) -> Duration {
        let factor = 1u32
            .checked_shl(failed.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.first.saturating_mul(factor).min(self.max_delay)
    }

    /// The wait after `failed` failed attempts, with `unit` (in `[0, 1)`) drawn for jitter.
    pub(super) fn delay(&self, failed: u32, unit: f64) -> Duration {
        let base = self.base_delay(failed);
        // At most `base` (the factor is at most 1); a value f64 cannot carry back is no cut.
        let cut = Duration::try_from_secs_f64(base.as_secs_f64() * self.jitter * unit)
            .unwrap_or(Duration::ZERO);
        base.saturating_sub(cut)
    }
}

/// splitmix64 over an atomic counter: the jitter's randomness, seeded per warmer.
pub(super) struct Jitter(AtomicU64);

impl Jitter {
    const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

    pub(super) fn seeded() -> Self {
        let seed = std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64);
        Self(AtomicU64::new(seed))
    }

    /// Uniform in `[0, 1)`.
    pub(super) fn unit(&self) -> f64 {
        let mut z = self
            .0
            .fetch_add(Self::GAMMA, Ordering::Relaxed)
            .wrapping_add(Self::GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}
