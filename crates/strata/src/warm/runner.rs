//! How a run goes: the job is marked running, its keys are listed, its batches are loaded with
//! retries, and its figures are recorded and announced as it goes.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::RwLock;
use tokio::runtime::Handle;
use tokio::sync::broadcast;
use tokio::task::{JoinError, JoinHandle, JoinSet};
use tokio::time::Instant;

use super::job::{BoxError, BoxFuture, Stored};
use super::record::{millis, unix_ms, Job};
use super::retry::Jitter;
use super::{JobReport, Progress, SkippedJob, WarmEvent};
use crate::key::Key;

/// Why a task ended without an answer: `what` panicked (with its message, when it is text),
/// or the task was cancelled.
fn join_failure(what: &str, e: JoinError) -> String {
    if !e.is_panic() {
        return format!("{what} was cancelled");
    }
    let payload: Box<dyn Any + Send> = e.into_panic();
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned());
    match message {
        Some(message) => format!("{what} panicked: {message}"),
        None => format!("{what} panicked"),
    }
}

/// A task aborted when its handle is dropped (so a cancelled run leaves nothing running).
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a warmer shares with its tasks.
pub(super) struct Shared {
    /// Sorted by priority (higher first), then name.
    pub(super) jobs: RwLock<Vec<Arc<Job>>>,
    pub(super) events: broadcast::Sender<WarmEvent>,
    pub(super) jitter: Jitter,
}

/// How [`Shared::run_job`] ended.
pub(super) enum Ran {
    Done(JobReport),
    Skipped(SkippedJob),
}

impl Shared {
    fn emit(&self, event: WarmEvent) {
        // An error only means nobody is subscribed.
        let _ = self.events.send(event);
    }

    /// Tries `attempt` per the job's retry policy. A panic in it unwinds the task this runs
    /// in (so it is not retried); the caller sees it through the `JoinError`.
    async fn retrying<T>(
        self: Arc<Self>,
        job: Arc<Job>,
        attempt: impl Fn() -> BoxFuture<Result<T, BoxError>>,
    ) -> Result<T, String> {
        let mut failed = 0;
        loop {
            let error = match attempt().await {
                Ok(answer) => return Ok(answer),
                Err(e) => e.to_string(),
            };
            failed += 1;
            if failed >= job.retry.attempts() {
                return Err(error);
            }
            let delay = job.retry.delay(failed, self.jitter.unit());
            self.emit(WarmEvent::Retrying {
                job: job.name.clone(),
                attempt: failed,
                delay_ms: millis(delay),
                error,
            });
            tokio::time::sleep(delay).await;
        }
    }

    /// One run of `job` (see the module docs), unless it is running already.
    pub(super) async fn run_job(self: &Arc<Self>, job: &Arc<Job>, runtime: &Handle) -> Ran {
        let Some(mut run) = RunGuard::begin(self, job) else {
            let reason = "already running".to_owned();
            self.emit(WarmEvent::Skipped {
                job: job.name.clone(),
                reason: reason.clone(),
            });
            return Ran::Skipped(SkippedJob {
                job: job.name.clone(),
                reason,
            });
        };
        let list = Arc::clone(&job.list);
        let listing = Arc::clone(self).retrying(Arc::clone(job), move || list());
        let mut listing = AbortOnDrop(runtime.spawn(listing));
        let mut keys = match (&mut listing.0).await {
            Ok(Ok(keys)) => keys,
            Ok(Err(error)) => return Ran::Done(run.finish(Some(error))),
            Err(e) => return Ran::Done(run.finish(Some(join_failure("the key lister", e)))),
        };
        let mut seen = HashSet::with_capacity(keys.len());
        keys.retain(|key| seen.insert(key.clone()));
        drop(seen);
        run.listed(keys.len() as u64);

        let mut keys = keys.into_iter();
        let mut in_flight = JoinSet::new();
        let mut sizes = HashMap::new();
        loop {
            while in_flight.len() < job.concurrency {
                let batch: Vec<Key> = keys.by_ref().take(job.batch_size).collect();
                if batch.is_empty() {
                    break;
                }
                let size = batch.len() as u64;
                let load = Arc::clone(&job.batch);
                let loading =
                    Arc::clone(self).retrying(Arc::clone(job), move || load(batch.clone()));
                let task = in_flight.spawn_on(async move { (size, loading.await) }, runtime);
                sizes.insert(task.id(), size);
            }
            let Some(joined) = in_flight.join_next_with_id().await else {
                break;
            };
            let (size, outcome) = match joined {
                Ok((id, (size, outcome))) => {
                    sizes.remove(&id);
                    (size, outcome)
                }
                // Every task's size was recorded right after it was spawned, before any join.
                Err(e) => (
                    sizes.remove(&e.id()).unwrap_or(0),
                    Err(join_failure("the loader", e)),
                ),
            };
            let stored = outcome.unwrap_or_else(|error| {
                self.emit(WarmEvent::BatchFailed {
                    job: job.name.clone(),
                    keys: size,
                    error,
                });
                Stored {
                    failed: size,
                    ..Stored::default()
                }
            });
            run.batch_done(stored);
        }
        Ran::Done(run.finish(None))
    }

    /// [`run_job`](Self::run_job) for the warmer's own tasks, which have no caller to report
    /// to: a failed run is logged.
    pub(super) async fn run_logged(self: &Arc<Self>, job: &Arc<Job>, runtime: &Handle) {
        if let Ran::Done(report) = self.run_job(job, runtime).await {
            if let Some(error) = &report.error {
                tracing::warn!(job = %report.job, error = %error, "warming run failed");
            }
        }
    }

    /// The loop of a periodic job: runs due at `first`, then every `every` (see the module
    /// docs for overruns).
    pub(super) async fn periodic(
        self: Arc<Self>,
        job: Arc<Job>,
        runtime: Handle,
        every: Duration,
        first: Instant,
    ) {
        /// Clears the job's next run when the loop ends (stopped, or its runtime shut down).
        struct Unscheduled(Arc<Job>);
        impl Drop for Unscheduled {
            fn drop(&mut self) {
                self.0.set_next_run(None);
            }
        }
        let _unscheduled = Unscheduled(Arc::clone(&job));
        let mut due = first;
        loop {
            job.set_next_run(Some(due));
            tokio::time::sleep_until(due).await;
            // Due next if this run ends in time.
            let Some(next) = due.checked_add(every) else {
                // Centuries away: this is the last run.
                self.run_logged(&job, &runtime).await;
                return;
            };
            job.set_next_run(Some(next));
            self.run_logged(&job, &runtime).await;
            due = next.max(Instant::now());
        }
    }
}

/// A run in progress: keeps the figures, and records the run's end exactly once, also when
/// the run is dropped unfinished (cancelled).
struct RunGuard {
    shared: Arc<Shared>,
    job: Arc<Job>,
    started: Instant,
    total: u64,
    stored: Stored,
    finished: bool,
}

impl RunGuard {
    /// Marks `job` running, or `None` if it is running already.
    fn begin(shared: &Arc<Shared>, job: &Arc<Job>) -> Option<Self> {
        let mut record = job.record.lock();
        if record.running {
            return None;
        }
        record.running = true;
        record.runs += 1;
        record.last_started_unix_ms = unix_ms(SystemTime::now());
        record.progress = Some(Progress { done: 0, total: 0 });
        Some(Self {
            shared: Arc::clone(shared),
            job: Arc::clone(job),
            started: Instant::now(),
            total: 0,
            stored: Stored::default(),
            finished: false,
        })
    }

    fn done(&self) -> u64 {
        self.stored.loaded + self.stored.failed + self.stored.missing
    }

    fn listed(&mut self, total: u64) {
        self.total = total;
        self.job.record.lock().progress = Some(Progress { done: 0, total });
        self.shared.emit(WarmEvent::Started {
            job: self.job.name.clone(),
            total_keys: total,
        });
    }

    fn batch_done(&mut self, batch: Stored) {
        self.stored.loaded += batch.loaded;
        self.stored.failed += batch.failed;
        self.stored.missing += batch.missing;
        let (done, total) = (self.done(), self.total);
        self.job.record.lock().progress = Some(Progress { done, total });
        self.shared.emit(WarmEvent::Progress {
            job: self.job.name.clone(),
            done,
            total,
            loaded: self.stored.loaded,
            failed: self.stored.failed,
        });
    }

    fn finish(mut self, error: Option<String>) -> JobReport {
        self.close(error)
    }

    /// Records the end of the run, marks the job idle, then tells subscribers (so one that
    /// runs the job again on `Finished` is not skipped).
    fn close(&mut self, error: Option<String>) -> JobReport {
        self.finished = true;
        let Stored {
            loaded,
            failed,
            missing,
        } = self.stored;
        let duration_ms = millis(self.started.elapsed());
        {
            let mut r = self.job.record.lock();
            r.running = false;
            r.last_duration_ms = Some(duration_ms);
            r.last_loaded = loaded;
            r.last_failed = failed;
            r.last_missing = missing;
            r.total_loaded = r.total_loaded.saturating_add(loaded);
            r.total_failed = r.total_failed.saturating_add(failed);
            r.last_error = error.clone();
            r.progress = None;
        }
        let report = JobReport {
            job: self.job.name.clone(),
            loaded,
            failed,
            missing,
            duration_ms,
            error: error.clone(),
        };
        self.shared.emit(WarmEvent::Finished {
            job: self.job.name.clone(),
            loaded,
            failed,
            missing,
            duration_ms,
            error,
        });
        report
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.close(Some("cancelled".to_owned()));
        }
    }
}
