//! The face of warming: the `Warmer` that holds jobs and runs them, the handle that stops its
//! background runs, and the errors it answers.

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use thiserror::Error as ThisError;
use tokio::runtime::Handle;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::job::{store_batch, BatchFn};
use super::record::{Job, Record};
use super::retry::Jitter;
use super::runner::{Ran, Shared};
use super::{BatchLoader, JobStatus, KeyLister, WarmEvent, WarmJob, WarmReport, EVENT_CAPACITY};
use crate::key::Key;
use crate::HeapSize;

/// Why a warmer refused something.
#[derive(Debug, Clone, PartialEq, Eq, ThisError)]
#[non_exhaustive]
pub enum WarmError {
    /// A job of that name was added already.
    #[error("a warming job named {0:?} exists already")]
    DuplicateJob(String),
    /// No job has that scope.
    #[error("no warming job has scope {0:?}")]
    UnknownScope(String),
    /// Called outside a tokio runtime, which warming needs to run its tasks and timers.
    #[error("warming needs a tokio runtime")]
    NoRuntime,
}

/// Runs warming jobs: on demand by scope, at start-up and periodically. Cheap to clone; every
/// clone is the same warmer. See the [module docs](super).
#[derive(Clone)]
pub struct Warmer {
    shared: Arc<Shared>,
}

impl Default for Warmer {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Warmer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let jobs = self.shared.jobs.read();
        let names: Vec<&str> = jobs.iter().map(|j| j.name.as_str()).collect();
        f.debug_struct("Warmer")
            .field("jobs", &names)
            .finish_non_exhaustive()
    }
}

impl Warmer {
    /// A warmer with no jobs.
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        Self {
            shared: Arc::new(Shared {
                jobs: RwLock::new(Vec::new()),
                events,
                jitter: Jitter::seeded(),
            }),
        }
    }

    /// Adds `job`; [`WarmError::DuplicateJob`] if one of that name exists. A job added after
    /// [`start`](Self::start) is run on demand only, until the next `start`.
    pub fn add<V>(&self, job: WarmJob<V, KeyLister, BatchLoader<V>>) -> Result<(), WarmError>
    where
        V: Clone + HeapSize + Send + Sync + 'static,
    {
        let WarmJob {
            name,
            ns,
            scopes,
            priority,
            batch_size,
            concurrency,
            retry,
            put,
            on_start,
            every,
            keys: KeyLister(list),
            load: BatchLoader(load),
        } = job;
        let namespace = ns.name().to_owned();
        let batch: Arc<BatchFn> = Arc::new(move |asked: Vec<Key>| {
            let (ns, put, load) = (ns.clone(), put.clone(), Arc::clone(&load));
            Box::pin(async move {
                let pairs = load(asked.clone()).await?;
                Ok(store_batch(&ns, &put, asked, pairs))
            })
        });
        let mut jobs = self.shared.jobs.write();
        if jobs.iter().any(|j| j.name == name) {
            return Err(WarmError::DuplicateJob(name));
        }
        jobs.push(Arc::new(Job {
            name,
            namespace,
            scopes,
            priority,
            batch_size,
            concurrency,
            retry,
            on_start,
            every,
            list,
            batch,
            record: Mutex::new(Record::default()),
        }));
        jobs.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then_with(|| a.name.cmp(&b.name))
        });
        Ok(())
    }

    /// Runs the jobs of `scope` one after another, in priority order, skipping those running
    /// already (see the [module docs](super#the-order-of-work)). [`WarmError::UnknownScope`]
    /// if no job has the scope, [`WarmError::NoRuntime`] outside a tokio runtime. A job that
    /// fails is reported in the [`WarmReport`], not as an error. The future is `'static`, so
    /// it can be spawned; dropping it cancels the job it is running.
    pub fn run(
        &self,
        scope: &str,
    ) -> impl Future<Output = Result<WarmReport, WarmError>> + Send + 'static {
        let shared = Arc::clone(&self.shared);
        let scope = scope.to_owned();
        async move {
            let runtime = Handle::try_current().map_err(|_| WarmError::NoRuntime)?;
            let jobs: Vec<Arc<Job>> = shared
                .jobs
                .read()
                .iter()
                .filter(|j| j.scopes.contains(&scope))
                .cloned()
                .collect();
            if jobs.is_empty() {
                return Err(WarmError::UnknownScope(scope));
            }
            let mut report = WarmReport {
                scope,
                jobs: Vec::new(),
                skipped: Vec::new(),
            };
            for job in &jobs {
                match shared.run_job(job, &runtime).await {
                    Ran::Done(done) => report.jobs.push(done),
                    Ran::Skipped(skipped) => report.skipped.push(skipped),
                }
            }
            Ok(report)
        }
    }

    /// A receiver of every [`WarmEvent`] from now on (see the
    /// [module docs](super#events-and-status) for a receiver that falls behind).
    pub fn subscribe(&self) -> broadcast::Receiver<WarmEvent> {
        self.shared.events.subscribe()
    }

    /// Every job's settings and figures, by priority (higher first), then name.
    pub fn status(&self) -> Vec<JobStatus> {
        self.shared.jobs.read().iter().map(|j| j.status()).collect()
    }

    /// Every scope some job is in, sorted (`all` among them once there is a job).
    pub fn scopes(&self) -> Vec<String> {
        let jobs = self.shared.jobs.read();
        let scopes: BTreeSet<&String> = jobs.iter().flat_map(|j| &j.scopes).collect();
        scopes.into_iter().cloned().collect()
    }

    /// Starts the start-up runs and the periodic loops of the jobs added so far (see the
    /// [module docs](super#start-up-and-periodic-runs)); they run until the handle is stopped
    /// or dropped. [`WarmError::NoRuntime`] outside a tokio runtime. Call it once: a second
    /// call starts a second set of loops (their runs of a job would skip each other's).
    pub fn start(&self) -> Result<WarmerHandle, WarmError> {
        let runtime = Handle::try_current().map_err(|_| WarmError::NoRuntime)?;
        let jobs = self.shared.jobs.read().clone();
        let now = Instant::now();
        let mut tasks = Vec::new();
        let at_start: Vec<Arc<Job>> = jobs.iter().filter(|j| j.on_start).cloned().collect();
        if !at_start.is_empty() {
            let (shared, rt) = (Arc::clone(&self.shared), runtime.clone());
            tasks.push(runtime.spawn(async move {
                for job in &at_start {
                    shared.run_logged(job, &rt).await;
                }
            }));
        }
        for job in jobs {
            let Some(every) = job.every else { continue };
            // A period too long for the clock never comes round.
            let Some(first) = now.checked_add(every) else {
                continue;
            };
            job.set_next_run(Some(first));
            let periodic = Arc::clone(&self.shared).periodic(job, runtime.clone(), every, first);
            tasks.push(runtime.spawn(periodic));
        }
        Ok(WarmerHandle { tasks })
    }
}

/// The start-up runs and periodic loops of a [`Warmer::start`]; dropping it (or
/// [`stop`](Self::stop)) stops them.
#[must_use = "dropping the handle stops the start-up runs and the periodic loops at once"]
pub struct WarmerHandle {
    tasks: Vec<JoinHandle<()>>,
}

impl fmt::Debug for WarmerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WarmerHandle")
            .field("tasks", &self.tasks.len())
            .finish()
    }
}

impl WarmerHandle {
    /// Stops the loops (and cancels the runs they have in progress), and returns once they
    /// have ended.
    pub async fn stop(mut self) {
        let tasks = std::mem::take(&mut self.tasks);
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            // Cancelled, as asked; the tasks themselves do not panic.
            let _ = task.await;
        }
    }

    /// Whether every task has ended: the start-up runs are done and no job is periodic.
    pub fn is_finished(&self) -> bool {
        self.tasks.iter().all(JoinHandle::is_finished)
    }
}

impl Drop for WarmerHandle {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
