//! Load latency: a fixed-bucket histogram, lock-free to record, with the bucket bounds a
//! Prometheus histogram of request durations usually has, so the metrics endpoint can expose
//! it as is and alerts can read a p99 from it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The upper bounds of the buckets, in seconds (the last bucket, `+Inf`, is implied).
pub const LATENCY_BOUNDS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

const BUCKETS: usize = LATENCY_BOUNDS.len() + 1;

/// The bounds in nanoseconds, for recording without floating point.
const BOUNDS_NANOS: [u64; 13] = [
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

#[derive(Debug, Default)]
pub(crate) struct LatencyRecorder {
    buckets: [AtomicU64; BUCKETS],
    sum_nanos: AtomicU64,
}

impl LatencyRecorder {
    pub(crate) fn record(&self, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BOUNDS_NANOS.partition_point(|&bound| bound < nanos);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Latency {
        Latency {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            sum_nanos: self.sum_nanos.load(Ordering::Relaxed),
        }
    }
}

/// How long loads took, from the first caller's miss to the landing (failed and timed-out
/// loads included), as a histogram over [`LATENCY_BOUNDS`].
///
/// ```
/// use strata::store::Latency;
/// let latency = Latency::default();
/// assert_eq!(latency.count(), 0);
/// assert_eq!(latency.quantile(0.99), None);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Latency {
    /// Loads per bucket (not cumulative): bucket `i` holds those that took at most
    /// `LATENCY_BOUNDS[i]` seconds and more than the bound before; the last one the rest.
    pub buckets: [u64; BUCKETS],
    /// The loads' total time, in nanoseconds.
    pub sum_nanos: u64,
}

impl std::ops::AddAssign for Latency {
    fn add_assign(&mut self, other: Self) {
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine += theirs;
        }
        self.sum_nanos += other.sum_nanos;
    }
}

impl Latency {
    /// How many loads were timed.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// An upper bound on the `q` quantile (0 to 1): the bound of the bucket it falls in, or
    /// `Duration::MAX` for the `+Inf` bucket; `None` before the first load.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        // The rank of the quantile, 1-based: the smallest bucket holding that many loads.
        let rank = ((q.clamp(0.0, 1.0) * count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(
                    BOUNDS_NANOS
                        .get(i)
                        .map_or(Duration::MAX, |&nanos| Duration::from_nanos(nanos)),
                );
            }
        }
        Some(Duration::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_land_in_the_bucket_of_their_bound() {
        let recorder = LatencyRecorder::default();
        for ms in [0, 1, 2, 3, 40, 40, 40, 40, 40, 20_000] {
            recorder.record(Duration::from_millis(ms));
        }
        let latency = recorder.snapshot();
        // 0 and 1 ms are at most 1 ms; 2 ms at most 2.5; 3 ms at most 5; 40 ms at most 50.
        assert_eq!(latency.buckets[..6], [2, 1, 1, 0, 0, 5]);
        assert_eq!(
            latency.buckets[BUCKETS - 1],
            1,
            "20 s is past the last bound"
        );
        assert_eq!(latency.count(), 10);
        assert_eq!(latency.sum_nanos, 20_206 * 1_000_000);
        assert_eq!(latency.quantile(0.5), Some(Duration::from_millis(50)));
        assert_eq!(latency.quantile(0.9), Some(Duration::from_millis(50)));
        assert_eq!(latency.quantile(0.99), Some(Duration::MAX));
        assert_eq!(latency.quantile(0.0), Some(Duration::from_millis(1)));
    }
}
