//! The window's size, adapted to the workload by hill climbing on the cache-wide hit ratio.
//!
//! A 1% window with frequency admission suits skewed and looping workloads, and fails
//! recency-driven ones: a key asked for twice, a hundred requests apart, leaves a small window
//! long before its second request and then loses its admission duel. No fixed size suits both
//! (docs/design.md has the figures), so the window moves: after every sample of about ten times
//! the cache's entries in lookups, the climber compares the sample's hit ratio with the one
//! before and steps the window on in the same direction if the ratio rose, back if it fell.
//! Steps start at 6.25% of the cache and shrink by 2% a sample so that the window settles; a
//! jump of 5 points in the hit ratio (the workload changed) restarts them. This is Caffeine's
//! climber (Einziger et al., "Adaptive Software Cache Management", Middleware 2018).
//!
//! One climber serves the whole cache. Shards report their lookups, hits, entries and
//! evictions in batches as they take writes, and every shard sizes its window to the same
//! share of itself. A climber per shard was tried first and reverted: a shard's sample is too
//! small, and its noise (σ ≈ 0.014 at a cache of 1,000) was as large as the effects it chased.

use crate::sync::{AtomicU32, AtomicU64, Ordering, RwLock};

/// The window's share of a shard is kept in units of 1/`SCALE`.
pub(super) const SCALE: u32 = 1 << 20;

/// Where the window starts: 1%, W-TinyLFU's window, the best fixed size on skewed traces.
const INITIAL: f64 = 0.01;
/// The window's bounds, as shares of the cache. A shard's window is never under one entry.
const LEAST: f64 = 0.0;
const MOST: f64 = 0.9;
/// The first step, and the step after a restart.
const STEP: f64 = 0.0625;
/// Each step is this fraction of the one before, in the direction the last one proved right.
const DECAY: f64 = 0.98;
/// A change in hit ratio this large means the workload changed: the steps start over.
const RESTART: f64 = 0.05;
/// A sample holds this many lookups per entry held.
const SAMPLE_PER_ENTRY: u64 = 10;
/// A sample holds at least this many lookups, however small the cache.
const LEAST_SAMPLE: u64 = 1024;

/// What a shard reports: lookups and hits since its last report, the change in the entries
/// it holds, and its evictions since its last report.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Report {
    pub(crate) lookups: u64,
    pub(crate) hits: u64,
    pub(crate) held: i64,
    pub(crate) evictions: u64,
}

/// The running state, touched only by the one thread that closes a sample.
#[derive(Debug)]
struct Climb {
    /// The window's share of the cache.
    window: f64,
    /// The next step, signed.
    step: f64,
    /// The hit ratio of the last sample.
    previous: f64,
}

/// The cache-wide window share and the sample it is judged on.
#[derive(Debug)]
pub(crate) struct Climber {
    /// The window's share of each shard, in units of 1/[`SCALE`]; read by shards on writes.
    window: AtomicU32,
    lookups: AtomicU64,
    hits: AtomicU64,
    evictions: AtomicU64,
    /// Entries held across the shards, as reported.
    held: AtomicU64,
    climb: RwLock<Climb>,
}

impl Default for Climber {
    fn default() -> Self {
        Self::new()
    }
}

impl Climber {
    pub(crate) fn new() -> Self {
        Self {
            window: AtomicU32::new(to_units(INITIAL)),
            lookups: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            held: AtomicU64::new(0),
            climb: RwLock::new(Climb {
                window: INITIAL,
                // Shrinking first, as Caffeine does: while a cache warms up its hit ratio rises
                // whatever the window does, and a climber that took the rise for its own doing
                // would march the window up (on Zipf 1.0 at 5k entries, to 26% and a loss of
                // 0.015 in the run's hit ratio). Growing the window must be earned later.
                step: -STEP,
                previous: 0.0,
            }),
        }
    }

    /// The window's share of a shard, in units of 1/[`SCALE`].
    #[inline]
    pub(crate) fn window(&self) -> u32 {
        self.window.load(Ordering::Relaxed)
    }

    /// Adds a shard's report to the sample, and closes the sample (stepping the window) when
    /// it holds enough lookups. Only one thread closes a sample; others add and go on.
    pub(crate) fn report(&self, report: Report) {
        self.hits.fetch_add(report.hits, Ordering::Relaxed);
        self.evictions
            .fetch_add(report.evictions, Ordering::Relaxed);
        let held = if report.held >= 0 {
            self.held
                .fetch_add(report.held.unsigned_abs(), Ordering::Relaxed)
                .wrapping_add(report.held.unsigned_abs())
        } else {
            self.held
                .fetch_sub(report.held.unsigned_abs(), Ordering::Relaxed)
                .wrapping_sub(report.held.unsigned_abs())
        };
        let lookups = self.lookups.fetch_add(report.lookups, Ordering::Relaxed) + report.lookups;
        if lookups < sample_size(held) {
            return;
        }
        let Some(mut climb) = self.climb.try_write() else {
            return;
        };
        let lookups = self.lookups.swap(0, Ordering::Relaxed);
        let hits = self.hits.swap(0, Ordering::Relaxed);
        let evictions = self.evictions.swap(0, Ordering::Relaxed);
        if lookups < sample_size(held) {
            // Another thread closed this sample while this one waited for the lock.
            self.lookups.fetch_add(lookups, Ordering::Relaxed);
            self.hits.fetch_add(hits, Ordering::Relaxed);
            self.evictions.fetch_add(evictions, Ordering::Relaxed);
            return;
        }
        if evictions == 0 {
            // Nothing was evicted, so the window's size decided nothing in this sample.
            return;
        }
        climb.step_on(hits, lookups);
        self.window.store(to_units(climb.window), Ordering::Relaxed);
    }
}

impl Climb {
    /// One hill-climbing step on a closed sample's hit ratio.
    fn step_on(&mut self, hits: u64, lookups: u64) {
        let hit_ratio = hits as f64 / lookups as f64;
        let change = hit_ratio - self.previous;
        let amount = if change >= 0.0 { self.step } else { -self.step };
        self.step = if change.abs() >= RESTART {
            STEP.copysign(amount)
        } else {
            DECAY * amount
        };
        self.previous = hit_ratio;
        self.window = (self.window + amount).clamp(LEAST, MOST);
    }
}

fn sample_size(held: u64) -> u64 {
    held.saturating_mul(SAMPLE_PER_ENTRY).max(LEAST_SAMPLE)
}

fn to_units(share: f64) -> u32 {
    (share * f64::from(SCALE)).round() as u32
}

/// `share` (in units of 1/[`SCALE`]) of `total`, at least 1.
#[inline]
pub(super) fn share_of(total: u64, share: u32) -> u64 {
    ((u128::from(total) * u128::from(share) / u128::from(SCALE)) as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(climber: &Climber, lookups: u64, hits: u64) {
        climber.report(Report {
            lookups,
            hits,
            held: 0,
            evictions: 1,
        });
    }

    #[test]
    fn the_window_moves_on_while_moving_pays_and_turns_back_when_it_stops_paying() {
        let climber = Climber::new();
        climber.report(Report {
            held: 100,
            ..Report::default()
        });
        assert_eq!(climber.window(), to_units(INITIAL));
        sample(&climber, 2000, 600);
        assert_eq!(climber.window(), 0, "the first step shrinks the window");
        sample(&climber, 2000, 400);
        let turned = climber.window();
        assert!(turned > 0, "a worse ratio turns back: {turned}");
        sample(&climber, 2000, 500);
        let on = climber.window();
        assert!(
            on > turned,
            "a better ratio keeps the direction: {turned} -> {on}"
        );
        sample(&climber, 2000, 420);
        assert!(climber.window() < on, "a worse ratio turns back again");
    }

    #[test]
    fn a_jump_in_the_hit_ratio_restarts_the_steps() {
        let mut climb = Climb {
            window: 0.5,
            step: 0.001,
            previous: 0.5,
        };
        climb.step_on(501, 1000);
        assert!(
            (climb.step - 0.001 * DECAY).abs() < 1e-12,
            "small changes decay the step"
        );
        climb.step_on(300, 1000);
        assert_eq!(climb.step, -STEP, "a fall of 0.2 restarts, turned back");
    }

    #[test]
    fn a_sample_closes_only_when_full_and_only_if_something_was_evicted() {
        let climber = Climber::new();
        climber.report(Report {
            held: 1000,
            ..Report::default()
        });
        let start = climber.window();
        sample(&climber, 9_999, 5_000);
        assert_eq!(
            climber.window(),
            start,
            "10 lookups per entry make a sample"
        );
        sample(&climber, 1, 0);
        assert_ne!(climber.window(), start);
        let before = climber.window();
        climber.report(Report {
            lookups: 20_000,
            hits: 20_000,
            held: 0,
            evictions: 0,
        });
        assert_eq!(
            climber.window(),
            before,
            "no eviction: the window decided nothing"
        );
    }

    #[test]
    fn the_window_stays_in_its_bounds() {
        let climber = Climber::new();
        sample(&climber, 1024, 500);
        sample(&climber, 1024, 400);
        for i in 0..500 {
            // Every sample a little better than the last: the climber keeps growing it.
            sample(&climber, 1024, 401 + i / 100);
        }
        assert_eq!(climber.window(), to_units(MOST));
        assert_eq!(share_of(1000, 0), 1, "a window is never under one entry");
        assert_eq!(share_of(1000, SCALE / 2), 500);
    }
}
