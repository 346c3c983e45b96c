//! Timing lookups: a pass of gets on one or more threads, and variants timed side by side,
//! taking turns slice by slice within each round.

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use anyhow::ensure;

use super::output::nanos;

/// One timed pass of gets.
#[derive(Debug, Clone, Copy)]
pub struct Pass {
    pub hits: u64,
    pub gets: u64,
    /// The slowest thread's time.
    pub wall: Duration,
    pub threads: usize,
}

impl Pass {
    /// Nanoseconds per hit per thread (wall time × threads / hits).
    pub fn ns_per_hit(&self) -> f64 {
        nanos(self.wall) * self.threads as f64 / self.hits.max(1) as f64
    }
}

/// Runs `gets` lookups per thread over `keys` (length a power of two; thread `t` starts at
/// `offset + t * len / threads`) and times them. The result of each lookup feeds a checksum
/// passed to `black_box`, and the key goes through `black_box` too, so nothing can be hoisted
/// or dropped.
pub fn time_gets<T, F>(keys: &[T], threads: usize, offset: usize, gets: usize, get: &F) -> Pass
where
    T: Sync,
    F: Fn(&T) -> Option<u64> + Sync,
{
    assert!(keys.len().is_power_of_two());
    let mask = keys.len() - 1;
    let run = |start: usize| -> (u64, Duration) {
        let t0 = Instant::now();
        let mut hits = 0u64;
        let mut sum = 0u64;
        let mut idx = start;
        for _ in 0..gets {
            let key = &keys[idx & mask];
            idx = idx.wrapping_add(1);
            if let Some(v) = get(black_box(key)) {
                hits += 1;
                sum = sum.wrapping_add(v);
            }
        }
        black_box(sum);
        (hits, t0.elapsed())
    };
    let (hits, wall) = if threads == 1 {
        run(offset)
    } else {
        let barrier = Barrier::new(threads);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let (run, barrier) = (&run, &barrier);
                    s.spawn(move || {
                        barrier.wait();
                        run(offset + t * (keys.len() / threads))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("benchmark thread panicked"))
                .fold((0, Duration::ZERO), |(h, w), (hits, wall)| {
                    (h + hits, w.max(wall))
                })
        })
    };
    Pass {
        hits,
        gets: (gets * threads) as u64,
        wall,
        threads,
    }
}

/// Slices a round's gets are cut into; the variants take turns slice by slice, so that a
/// burst of load from other processes falls on all of them alike.
pub const SLICES: usize = 10;

/// Times `variants` side by side: one warm-up slice each, then `rounds` rounds in which the
/// variants take turns for [`SLICES`] slices of `gets / SLICES` lookups per thread (the first
/// variant rotating). `run(v, offset, gets)` times `gets` lookups of variant `v` starting at
/// `offset` in the key sequence. Returns each variant's passes, one per round, and fails if any
/// lookup missed.
pub fn alternate(
    variants: usize,
    rounds: usize,
    gets: usize,
    mut run: impl FnMut(usize, usize, usize) -> Pass,
) -> anyhow::Result<Vec<Vec<Pass>>> {
    let slice = (gets / SLICES).max(1);
    let check = |v: usize, pass: Pass| -> anyhow::Result<Pass> {
        ensure!(
            pass.hits == pass.gets,
            "variant {v}: {} hits out of {} gets; every get must hit",
            pass.hits,
            pass.gets
        );
        Ok(pass)
    };
    for v in 0..variants {
        check(v, run(v, 0, slice))?;
    }
    let mut out = vec![Vec::with_capacity(rounds); variants];
    for round in 0..rounds {
        let mut sums: Vec<Option<Pass>> = vec![None; variants];
        for s in 0..SLICES {
            for i in 0..variants {
                let v = (round + s + i) % variants;
                let pass = check(v, run(v, (round * SLICES + s) * slice, slice))?;
                sums[v] = Some(match sums[v] {
                    None => pass,
                    Some(sum) => Pass {
                        hits: sum.hits + pass.hits,
                        gets: sum.gets + pass.gets,
                        wall: sum.wall + pass.wall,
                        threads: pass.threads,
                    },
                });
            }
        }
        for (v, sum) in sums.into_iter().enumerate() {
            out[v].push(sum.expect("every variant ran"));
        }
    }
    Ok(out)
}
