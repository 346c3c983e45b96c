//! `throughput`: multi-threaded get/insert-on-miss over a pre-drawn Zipf key
//! sequence, alternating implementations in rounds.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use crate::caches::BenchCache;

/// Ops between checks of the stop flag.
const CHECK_EVERY: u64 = 256;

/// Result of one measured phase.
#[derive(Debug, Default, Clone, Copy)]
pub struct PhaseResult {
    pub ops: u64,
    pub hits: u64,
    pub elapsed: Duration,
}

/// How a phase ends.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    /// Run for exactly this long (plus < 256 ops per thread).
    After(Duration),
    /// Warm-up: each thread stops after `ops_per_thread`, or all stop at `max_time`.
    WarmUp {
        ops_per_thread: u64,
        max_time: Duration,
    },
}

/// Runs the workload (get; on miss insert key→key) on `threads` threads.
/// Thread `t` walks `keys` (length must be a power of two) starting at
/// `positions[t]`; positions are advanced in place so a following phase
/// continues where this one stopped.
pub fn run_phase<C: BenchCache>(
    cache: &C,
    keys: &[u64],
    positions: &mut [usize],
    stop: Stop,
) -> PhaseResult {
    assert!(keys.len().is_power_of_two());
    let mask = keys.len() - 1;
    let threads = positions.len();
    let stop_flag = AtomicBool::new(false);
    let finished = AtomicUsize::new(0);
    let barrier = Barrier::new(threads + 1);
    let ops_limit = match stop {
        Stop::After(_) => u64::MAX,
        Stop::WarmUp { ops_per_thread, .. } => ops_per_thread.max(1),
    };

    std::thread::scope(|s| {
        let handles: Vec<_> = positions
            .iter()
            .map(|&start| {
                let (stop_flag, finished, barrier) = (&stop_flag, &finished, &barrier);
                s.spawn(move || {
                    let mut idx = start;
                    let mut ops = 0u64;
                    let mut hits = 0u64;
                    barrier.wait();
                    loop {
                        for _ in 0..CHECK_EVERY {
                            let k = keys[idx & mask];
                            idx = idx.wrapping_add(1);
                            if cache.get(&k).is_some() {
                                hits += 1;
                            } else {
                                cache.insert(k, k);
                            }
                        }
                        ops += CHECK_EVERY;
                        if ops >= ops_limit || stop_flag.load(Ordering::Relaxed) {
                            break;
                        }
                    }
                    finished.fetch_add(1, Ordering::Release);
                    (idx & mask, ops, hits)
                })
            })
            .collect();

        barrier.wait();
        let start = Instant::now();
        match stop {
            Stop::After(d) => {
                std::thread::sleep(d);
                stop_flag.store(true, Ordering::Relaxed);
            }
            Stop::WarmUp { max_time, .. } => {
                while finished.load(Ordering::Acquire) < threads && start.elapsed() < max_time {
                    std::thread::sleep(Duration::from_millis(2));
                }
                stop_flag.store(true, Ordering::Relaxed);
            }
        }
        let mut res = PhaseResult::default();
        for (h, pos) in handles.into_iter().zip(positions.iter_mut()) {
            let (idx, ops, hits) = h.join().expect("benchmark thread panicked");
            *pos = idx;
            res.ops += ops;
            res.hits += hits;
        }
        res.elapsed = start.elapsed();
        res
    })
}

/// Starting offsets of `threads` threads spread evenly over `len` keys.
pub fn start_positions(len: usize, threads: usize) -> Vec<usize> {
    (0..threads).map(|t| t * (len / threads)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caches::QuickCache;

    #[test]
    fn warmup_stops_after_ops() {
        let keys: Vec<u64> = (0..1024u64).collect();
        let cache = QuickCache::new(2048).unwrap();
        let mut pos = start_positions(keys.len(), 2);
        let r = run_phase(
            &cache,
            &keys,
            &mut pos,
            Stop::WarmUp {
                ops_per_thread: 1024,
                max_time: Duration::from_secs(10),
            },
        );
        assert_eq!(r.ops, 2048);
        // Both threads walk the whole key set once: the 1024 distinct keys
        // miss once each (give or take a racing duplicate insert).
        assert!(r.hits <= 1024);
        let r = run_phase(
            &cache,
            &keys,
            &mut pos,
            Stop::After(Duration::from_millis(50)),
        );
        assert!(r.ops > 0 && r.hits > 0);
    }
}
