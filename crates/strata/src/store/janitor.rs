//! The store's background thread: frees what clears left behind, removes entries whose tags
//! were invalidated, reclaims expired entries periodically, and collects unused tags. It keeps
//! that work off the callers, which is what makes clearing a namespace and invalidating a tag
//! O(1) for them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::StoreInner;

pub(crate) enum Job {
    /// Something to drop here rather than on the caller's thread.
    Dispose(Box<dyn Send>),
    /// Entries with invalidated tags are waiting to be removed.
    Purge,
    /// Answer once every job sent before this one is done.
    Barrier(mpsc::SyncSender<()>),
}

/// The sending side, held by the store's core.
pub(crate) struct Janitor {
    tx: Option<Sender<Job>>,
    /// A purge is queued and not started: further tag invalidations need not queue another.
    purge_queued: Arc<AtomicBool>,
}

impl Janitor {
    /// A janitor whose thread is started later by [`start`](Self::start); until then (or if
    /// the thread cannot be spawned) the work is done inline.
    pub(crate) fn new() -> (Self, mpsc::Receiver<Job>) {
        let (tx, rx) = mpsc::channel();
        (
            Self {
                tx: Some(tx),
                purge_queued: Arc::new(AtomicBool::new(false)),
            },
            rx,
        )
    }

    /// Hands `job` to the thread; returns it if there is no thread to take it.
    pub(crate) fn send(&self, job: Job) -> Result<(), Job> {
        match &self.tx {
            Some(tx) => tx.send(job).map_err(|e| e.0),
            None => Err(job),
        }
    }

    /// Asks for a purge unless one is already queued; false if no thread will run it.
    pub(crate) fn request_purge(&self) -> bool {
        if self.purge_queued.swap(true, Ordering::AcqRel) {
            return true;
        }
        if self.send(Job::Purge).is_err() {
            self.purge_queued.store(false, Ordering::Release);
            return false;
        }
        true
    }

    pub(crate) fn start(
        &self,
        rx: mpsc::Receiver<Job>,
        store: Weak<StoreInner>,
        interval: Duration,
    ) -> bool {
        let purge_queued = Arc::clone(&self.purge_queued);
        std::thread::Builder::new()
            .name("strata-janitor".into())
            .spawn(move || run(rx, store, interval, purge_queued))
            .is_ok()
    }
}

/// Lowers the calling thread's scheduling priority to the least (nice 19), so that waking
/// the janitor never takes the CPU from the caller that woke it: measured on two busy cores,
/// an `invalidate_tag` whose wake-up preempted the caller took milliseconds instead of
/// microseconds (docs/benchmarks.md). Cleanup then waits for idle time, which is the point.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid and setpriority take no pointers; on failure the thread just keeps its
    // priority.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19);
    }
}

fn run(
    rx: mpsc::Receiver<Job>,
    store: Weak<StoreInner>,
    interval: Duration,
    purge_queued: Arc<AtomicBool>,
) {
    lower_priority();
    loop {
        match rx.recv_timeout(interval) {
            Ok(Job::Dispose(thing)) => drop(thing),
            Ok(Job::Purge) => {
                purge_queued.store(false, Ordering::Release);
                let Some(store) = store.upgrade() else { return };
                store.purge_dead();
            }
            Ok(Job::Barrier(done)) => {
                let _ = done.send(());
            }
            Err(RecvTimeoutError::Timeout) => {
                let Some(store) = store.upgrade() else { return };
                store.maintain();
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}
