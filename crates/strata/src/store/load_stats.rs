//! The load figures a namespace keeps: counters bumped by every load, and the snapshot
//! ([`LoadStats`]) that `Namespace::load_stats`, `Store::stats` and the admin API report.

use std::sync::atomic::{AtomicU64, Ordering};

use super::latency::{Latency, LatencyRecorder};

/// Loads counted per namespace.
#[derive(Debug, Default)]
pub(crate) struct LoadCounters {
    pub(crate) loads: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) stale_served: AtomicU64,
    pub(crate) refreshes: AtomicU64,
    pub(crate) latency: LatencyRecorder,
}

/// A namespace's load figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct LoadStats {
    /// Keys loaded from the origin: one per flight, however many callers it served (a
    /// batch call for n keys counts n).
    pub loads: u64,
    /// Those that failed, panicked, timed out or were cancelled.
    pub errors: u64,
    /// Those abandoned at the hard timeout (also counted in `errors`).
    pub timeouts: u64,
    /// Answers served stale by the fail-safe.
    pub stale_served: u64,
    /// Loads started ahead of expiry by refresh ahead (also counted in `loads`).
    pub refreshes: u64,
    /// How long the loads took.
    pub latency: Latency,
}

impl std::ops::AddAssign for LoadStats {
    fn add_assign(&mut self, other: Self) {
        self.loads += other.loads;
        self.errors += other.errors;
        self.timeouts += other.timeouts;
        self.stale_served += other.stale_served;
        self.refreshes += other.refreshes;
        self.latency += other.latency;
    }
}

impl LoadCounters {
    pub(crate) fn snapshot(&self) -> LoadStats {
        LoadStats {
            loads: self.loads.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            timeouts: self.timeouts.load(Ordering::Relaxed),
            stale_served: self.stale_served.load(Ordering::Relaxed),
            refreshes: self.refreshes.load(Ordering::Relaxed),
            latency: self.latency.snapshot(),
        }
    }
}
