//! A job as a warmer keeps it once added: its settings, its type-erased closures, and the
//! figures its runs record, from which its status is read.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use tokio::time::Instant;

use super::job::{BatchFn, ListFn};
use super::{JobState, JobStatus, Progress, Retry};

/// A job's mutable figures.
#[derive(Debug, Default)]
pub(super) struct Record {
    pub(super) running: bool,
    pub(super) runs: u64,
    pub(super) last_started_unix_ms: Option<u64>,
    pub(super) last_duration_ms: Option<u64>,
    pub(super) last_loaded: u64,
    pub(super) last_failed: u64,
    pub(super) last_missing: u64,
    pub(super) total_loaded: u64,
    pub(super) total_failed: u64,
    pub(super) last_error: Option<String>,
    pub(super) next_run_unix_ms: Option<u64>,
    pub(super) progress: Option<Progress>,
}

/// A job as the warmer keeps it: settings, the type-erased closures, and its figures.
pub(super) struct Job {
    pub(super) name: String,
    pub(super) namespace: String,
    pub(super) scopes: BTreeSet<String>,
    pub(super) priority: i32,
    pub(super) batch_size: usize,
    pub(super) concurrency: usize,
    pub(super) retry: Retry,
    pub(super) on_start: bool,
    pub(super) every: Option<Duration>,
    pub(super) list: Arc<ListFn>,
    pub(super) batch: Arc<BatchFn>,
    pub(super) record: Mutex<Record>,
}

impl Job {
    pub(super) fn status(&self) -> JobStatus {
        let r = self.record.lock();
        JobStatus {
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            scopes: self.scopes.iter().cloned().collect(),
            priority: self.priority,
            state: if r.running {
                JobState::Running
            } else {
                JobState::Idle
            },
            runs: r.runs,
            last_started_unix_ms: r.last_started_unix_ms,
            last_duration_ms: r.last_duration_ms,
            last_loaded: r.last_loaded,
            last_failed: r.last_failed,
            last_missing: r.last_missing,
            total_loaded: r.total_loaded,
            total_failed: r.total_failed,
            last_error: r.last_error.clone(),
            next_run_unix_ms: r.next_run_unix_ms,
            progress: r.progress,
        }
    }

    pub(super) fn set_next_run(&self, at: Option<Instant>) {
        self.record.lock().next_run_unix_ms = at.and_then(unix_ms_at);
    }
}

/// `d` in whole milliseconds, saturating: the unit of every duration in the figures.
pub(super) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Milliseconds from the Unix epoch to `t`; `None` before the epoch.
pub(super) fn unix_ms(t: SystemTime) -> Option<u64> {
    t.duration_since(UNIX_EPOCH).ok().map(millis)
}

/// The wall-clock time of `at`, a tokio instant (virtual under a paused clock).
fn unix_ms_at(at: Instant) -> Option<u64> {
    let from_now = at.saturating_duration_since(Instant::now());
    unix_ms(SystemTime::now().checked_add(from_now)?)
}
