//! What warming tells: the events it sends, the report of a run, and each job's status.

use serde::Serialize;

/// Something a warmer did, for progress bars and logs. Serialised with serde, internally
/// tagged: `{"event": "progress", "job": "countries", "done": 500, ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum WarmEvent {
    /// A run listed its keys and starts loading them.
    Started {
        /// The job.
        job: String,
        /// Keys to warm (duplicates counted once).
        total_keys: u64,
    },
    /// A batch ended (loaded or failed); the figures are the run's so far.
    Progress {
        /// The job.
        job: String,
        /// Keys dealt with: loaded, failed or missing.
        done: u64,
        /// Keys to warm.
        total: u64,
        /// Keys loaded and stored.
        loaded: u64,
        /// Keys that failed.
        failed: u64,
    },
    /// A step failed and will be tried again after `delay_ms`.
    Retrying {
        /// The job.
        job: String,
        /// The attempt that failed (1 for the first).
        attempt: u32,
        /// The wait before the next attempt, jitter included.
        delay_ms: u64,
        /// Why it failed.
        error: String,
    },
    /// A batch failed its last attempt (or panicked); its keys count as failed.
    BatchFailed {
        /// The job.
        job: String,
        /// Keys in the batch.
        keys: u64,
        /// Why.
        error: String,
    },
    /// A run ended.
    Finished {
        /// The job.
        job: String,
        /// Keys loaded and stored.
        loaded: u64,
        /// Keys that failed.
        failed: u64,
        /// Keys the loader did not return.
        missing: u64,
        /// How long the run took.
        duration_ms: u64,
        /// Why the run failed, if it did (its keys could not be listed, or it was cancelled).
        error: Option<String>,
    },
    /// A job was not run because it was running already.
    Skipped {
        /// The job.
        job: String,
        /// Why.
        reason: String,
    },
}

impl WarmEvent {
    /// The job the event is about.
    pub fn job(&self) -> &str {
        match self {
            WarmEvent::Started { job, .. }
            | WarmEvent::Progress { job, .. }
            | WarmEvent::Retrying { job, .. }
            | WarmEvent::BatchFailed { job, .. }
            | WarmEvent::Finished { job, .. }
            | WarmEvent::Skipped { job, .. } => job,
        }
    }
}

/// One job's run in a [`WarmReport`]: the figures of its [`Finished`](WarmEvent::Finished)
/// event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobReport {
    /// The job.
    pub job: String,
    /// Keys loaded and stored.
    pub loaded: u64,
    /// Keys whose batch failed, or whose value the namespace refused.
    pub failed: u64,
    /// Keys the loader did not return.
    pub missing: u64,
    /// How long the run took.
    pub duration_ms: u64,
    /// Why the run failed, if it did.
    pub error: Option<String>,
}

/// A job [`Warmer::run`](super::Warmer::run) did not run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedJob {
    /// The job.
    pub job: String,
    /// Why.
    pub reason: String,
}

/// What [`Warmer::run`](super::Warmer::run) did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WarmReport {
    /// The scope run.
    pub scope: String,
    /// The jobs run, in the order they ran.
    pub jobs: Vec<JobReport>,
    /// The jobs skipped because they were running already.
    pub skipped: Vec<SkippedJob>,
}

impl WarmReport {
    /// Keys loaded, over every job.
    pub fn loaded(&self) -> u64 {
        self.jobs.iter().map(|j| j.loaded).sum()
    }

    /// Keys failed, over every job.
    pub fn failed(&self) -> u64 {
        self.jobs.iter().map(|j| j.failed).sum()
    }

    /// The run of job `name`, if it ran.
    pub fn job(&self, name: &str) -> Option<&JobReport> {
        self.jobs.iter().find(|j| j.job == name)
    }
}

/// Whether a job is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Not running.
    Idle,
    /// Running now.
    Running,
}

/// How far a running job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// Keys dealt with: loaded, failed or missing.
    pub done: u64,
    /// Keys to warm (0 while they are being listed).
    pub total: u64,
}

/// A job's settings and figures, from [`Warmer::status`](super::Warmer::status).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobStatus {
    /// The job's name.
    pub name: String,
    /// The namespace it fills.
    pub namespace: String,
    /// Its scopes, sorted (`all` among them).
    pub scopes: Vec<String>,
    /// Its priority.
    pub priority: i32,
    /// Whether it is running.
    pub state: JobState,
    /// Runs started (skipped ones not counted).
    pub runs: u64,
    /// When the last run started (wall clock).
    pub last_started_unix_ms: Option<u64>,
    /// How long the last finished run took.
    pub last_duration_ms: Option<u64>,
    /// Keys loaded by the last finished run.
    pub last_loaded: u64,
    /// Keys failed in the last finished run.
    pub last_failed: u64,
    /// Keys missing in the last finished run.
    pub last_missing: u64,
    /// Keys loaded by every run.
    pub total_loaded: u64,
    /// Keys failed in every run.
    pub total_failed: u64,
    /// Why the last finished run failed, if it did.
    pub last_error: Option<String>,
    /// When the periodic loop will run the job next (wall clock); `None` when no loop runs it.
    pub next_run_unix_ms: Option<u64>,
    /// How far the run in progress is; `None` when idle.
    pub progress: Option<Progress>,
}
