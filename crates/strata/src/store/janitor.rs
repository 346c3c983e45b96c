//! The store's background thread: frees what clears left behind, removes entries whose tags
//! were invalidated, reclaims expired entries periodically, and collects unused tags. It keeps
//! that work off the callers, which is what makes clearing a namespace and invalidating a tag
//! O(1) for them.
//!
//! Callers never wake it. They leave work in a list (or raise the purge flag) and the thread
//! looks every [`TICK`]. Waking a thread from `invalidate_tag` was measured to cost the caller
//! milliseconds on a busy machine: the scheduler handed the caller's CPU to the woken thread
//! (docs/benchmarks.md). Lowering the thread's priority instead made it worse elsewhere: a
//! low-priority thread preempted while holding a shard's lock stalls that shard's readers.
//! Only [`Store::run_pending_tasks`](super::Store::run_pending_tasks) wakes it, to wait for it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::StoreInner;

/// How often the thread looks for work.
const TICK: Duration = Duration::from_millis(10);

/// What callers leave for the thread.
#[derive(Default)]
struct Work {
    /// Things to drop there rather than on the caller's thread (cleared shards).
    disposals: Mutex<Vec<Box<dyn Send>>>,
    /// Entries with invalidated tags are waiting to be removed.
    purge: AtomicBool,
    /// Entries the thread's purges removed, for `run_pending_tasks` to report.
    purged: AtomicU64,
    /// The store was dropped, or the thread has ended: callers do the work themselves.
    retired: AtomicBool,
}

impl Work {
    fn drain(&self) {
        let disposals = std::mem::take(&mut *self.disposals.lock());
        drop(disposals);
    }
}

/// Marks the thread as ended however it ends (a user's `Drop` may panic on it) and frees
/// what was left.
struct ExitGuard<'a>(&'a Work);

impl Drop for ExitGuard<'_> {
    fn drop(&mut self) {
        self.0.retired.store(true, Ordering::SeqCst);
        self.0.drain();
    }
}

/// The callers' side, held by the store's core.
pub(crate) struct Janitor {
    /// Only for waiting on the thread (see `barrier`); `None` without a thread.
    wake: Mutex<Option<Sender<mpsc::SyncSender<()>>>>,
    work: Arc<Work>,
}

impl Janitor {
    pub(crate) fn new() -> Self {
        Self {
            wake: Mutex::new(None),
            work: Arc::default(),
        }
    }

    /// Starts the thread; false if it could not be spawned (callers then do the work on
    /// their own thread).
    pub(crate) fn start(&self, store: Weak<StoreInner>, maintenance: Duration) -> bool {
        let (tx, rx) = mpsc::channel();
        let work = Arc::clone(&self.work);
        let spawned = std::thread::Builder::new()
            .name("strata-janitor".into())
            .spawn(move || run(&rx, &store, &work, maintenance))
            .is_ok();
        if spawned {
            *self.wake.lock() = Some(tx);
        }
        spawned
    }

    fn running(&self) -> bool {
        self.wake.lock().is_some() && !self.work.retired.load(Ordering::SeqCst)
    }

    /// The store is being dropped: from now on callers do the work themselves, on their own
    /// thread (namespace handles may outlive the store). The thread notices within a tick,
    /// frees what was left to it and ends.
    pub(crate) fn retire(&self) {
        self.work.retired.store(true, Ordering::SeqCst);
    }

    /// Drops `thing` on the thread, or here if there is none.
    pub(crate) fn dispose(&self, thing: Box<dyn Send>) {
        if !self.running() {
            drop(thing);
            return;
        }
        self.work.disposals.lock().push(thing);
        // The thread may have ended after the check: then it drained before this push (the
        // list's lock orders the two), and its flag is visible here.
        if self.work.retired.load(Ordering::SeqCst) {
            self.work.drain();
        }
    }

    /// Entries the thread's purges have removed so far.
    pub(crate) fn purged(&self) -> u64 {
        self.work.purged.load(Ordering::Acquire)
    }

    /// Asks for a purge; false if there is no thread to run it.
    pub(crate) fn request_purge(&self) -> bool {
        self.work.purge.store(true, Ordering::Release);
        self.running()
    }

    /// Waits until the thread has done everything left for it before this call.
    pub(crate) fn barrier(&self) {
        if !self.running() {
            return;
        }
        let Some(wake) = self.wake.lock().clone() else {
            return;
        };
        let (done, wait) = mpsc::sync_channel(1);
        if wake.send(done).is_ok() {
            let _ = wait.recv();
        }
    }
}

fn run(
    rx: &mpsc::Receiver<mpsc::SyncSender<()>>,
    store: &Weak<StoreInner>,
    work: &Work,
    maintenance: Duration,
) {
    let _exit = ExitGuard(work);
    // An interval too long to add to a time means never.
    let mut next_maintenance = Instant::now().checked_add(maintenance);
    loop {
        let barrier = match rx.recv_timeout(TICK) {
            Ok(done) => Some(done),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        // A panic in a user's `Drop` (of a cleared value, say) must not end the thread.
        let _ = catch_unwind(AssertUnwindSafe(|| work.drain()));
        let Some(store) = store.upgrade() else {
            // The store is gone (namespace handles may live on; they free on their own
            // threads now).
            return;
        };
        if work.purge.swap(false, Ordering::AcqRel) {
            if let Ok(n) = catch_unwind(AssertUnwindSafe(|| store.purge_dead())) {
                work.purged.fetch_add(n, Ordering::AcqRel);
            }
        }
        if next_maintenance.is_some_and(|at| Instant::now() >= at) {
            let _ = catch_unwind(AssertUnwindSafe(|| store.maintain()));
            next_maintenance = Instant::now().checked_add(maintenance);
        }
        drop(store);
        if let Some(done) = barrier {
            let _ = done.send(());
        }
    }
}
