//! The tier's figures: counters bumped where things happen, read as a [`TierStats`].

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use serde::Serialize;

/// What the shared tier has done since the instance started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TierStats {
    /// Whether the last Redis call (or the log's tailer) reached Redis.
    pub link_up: bool,
    /// Whether this instance is following the invalidation log (connected to it, every
    /// partition's cursor set). Until it is, it cannot hear of other instances' changes.
    pub log_following: bool,
    /// Loads that found the value in Redis.
    pub l2_hits: u64,
    /// Loads that found nothing usable in Redis (and went to the origin).
    pub l2_misses: u64,
    /// Redis calls that failed or timed out (reads and writes).
    pub l2_errors: u64,
    /// Values under strata's keys that were not a strata envelope, or that the codec could
    /// not decode: counted, treated as misses.
    pub l2_corrupt: u64,
    /// Total time spent in Redis lookups, in microseconds (with `l2_lookups`, the mean).
    pub l2_lookup_micros: u64,
    /// Redis lookups made.
    pub l2_lookups: u64,
    /// Values written to Redis.
    pub writes_sent: u64,
    /// Loads' values Redis refused because the key changed while the origin was read.
    pub writes_refused: u64,
    /// Invalidations this instance sent.
    pub invalidations_sent: u64,
    /// Invalidations received from other instances and applied.
    pub invalidations_received: u64,
    /// Of those, the ones read after a reconnect (missed while the link was down).
    pub invalidations_replayed: u64,
    /// Times the log could not be replayed (it no longer reached back, or Redis lost it),
    /// so the shared namespaces were marked unverified.
    pub gaps: u64,
    /// Writes and invalidations waiting to be sent.
    pub queue_depth: u64,
    /// Times the queue was full during an outage (each marks every instance unverified).
    pub queue_overflows: u64,
    /// Writes and invalidations Redis kept refusing, given up on (each marks every instance
    /// unverified).
    pub jobs_dropped: u64,
    /// Per partition of the log (by index), how many entries other instances had added that
    /// this instance had not read yet, sampled about once a second while it follows the log
    /// (its own entries count: it reads them to skip them).
    pub log_lag: Vec<u64>,
}

/// The counters behind [`TierStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) l2_hits: AtomicU64,
    pub(crate) l2_misses: AtomicU64,
    pub(crate) l2_errors: AtomicU64,
    pub(crate) l2_corrupt: AtomicU64,
    pub(crate) l2_lookup_micros: AtomicU64,
    pub(crate) l2_lookups: AtomicU64,
    pub(crate) writes_sent: AtomicU64,
    pub(crate) writes_refused: AtomicU64,
    pub(crate) invalidations_sent: AtomicU64,
    pub(crate) invalidations_received: AtomicU64,
    pub(crate) invalidations_replayed: AtomicU64,
    pub(crate) gaps: AtomicU64,
    pub(crate) queue_overflows: AtomicU64,
    pub(crate) jobs_dropped: AtomicU64,
    /// The last sample of [`TierStats::log_lag`].
    pub(crate) log_lag: Mutex<Vec<u64>>,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, link_up: bool, queue_depth: u64) -> TierStats {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TierStats {
            link_up,
            log_following: false,
            l2_hits: read(&self.l2_hits),
            l2_misses: read(&self.l2_misses),
            l2_errors: read(&self.l2_errors),
            l2_corrupt: read(&self.l2_corrupt),
            l2_lookup_micros: read(&self.l2_lookup_micros),
            l2_lookups: read(&self.l2_lookups),
            writes_sent: read(&self.writes_sent),
            writes_refused: read(&self.writes_refused),
            invalidations_sent: read(&self.invalidations_sent),
            invalidations_received: read(&self.invalidations_received),
            invalidations_replayed: read(&self.invalidations_replayed),
            gaps: read(&self.gaps),
            queue_depth,
            queue_overflows: read(&self.queue_overflows),
            jobs_dropped: read(&self.jobs_dropped),
            log_lag: self.log_lag.lock().clone(),
        }
    }
}
