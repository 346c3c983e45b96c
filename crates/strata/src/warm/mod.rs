//! Warming jobs: fill namespaces ahead of traffic, at start-up, periodically or on demand.
//!
//! A [`WarmJob`] says how to fill one namespace: a closure that lists the keys to warm and
//! one that loads a batch of them from the origin. A [`Warmer`] holds jobs (of any value
//! types) and runs them on demand by *scope* ([`Warmer::run`]), at start-up and periodically
//! ([`Warmer::start`]), reporting as it goes ([`Warmer::subscribe`], [`Warmer::status`]).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use strata::warm::{WarmJob, Warmer};
//! use strata::store::Store;
//! use strata::Key;
//!
//! let store = Store::new();
//! let countries = store.namespace::<String>("default").unwrap();
//! let warmer = Warmer::new();
//! warmer
//!     .add(
//!         WarmJob::new("countries", countries.clone())
//!             .scope("reference")
//!             .batch_size(2)
//!             .keys(|| async {
//!                 // SELECT code FROM countries
//!                 Ok::<_, std::io::Error>(["country::pt", "country::fr", "country::jp"])
//!             })
//!             .load(|batch: Vec<Key>| async move {
//!                 // SELECT code, name FROM countries WHERE code IN (...)
//!                 let rows = batch.into_iter().map(|key| {
//!                     let name = format!("name of {key}");
//!                     (key, name)
//!                 });
//!                 Ok::<_, std::io::Error>(rows)
//!             }),
//!     )
//!     .unwrap();
//! let report = warmer.run("reference").await.unwrap();
//! assert_eq!((report.loaded(), report.failed()), (3, 0));
//! assert_eq!(countries.get("country::jp").as_deref(), Some("name of country::jp"));
//! # }
//! ```
//!
//! ## A job
//! [`WarmJob::new`] takes the job's name (unique within a warmer) and the namespace it fills.
//! The builder then sets its scopes (every job is also in scope `all`), its priority (higher
//! runs first, default 0), its batch size (default 100), how many batches it loads at once
//! (default 1), its [`Retry`] policy, the [`Put`](crate::store::Put) its entries are stored
//! with (TTL and tags), and whether [`Warmer::start`] runs it at start-up
//! ([`on_start`][WarmJob::on_start]) and every so often ([`every`][WarmJob::every]).
//!
//! The two closures are required, and the builder is typed so that a job without them does
//! not compile: until [`keys`][WarmJob::keys] and [`load`][WarmJob::load] are given, the job's
//! type says [`Missing`], and [`Warmer::add`] takes only a job with both.
//!
//! ```compile_fail
//! # use strata::store::Store;
//! # use strata::warm::{Warmer, WarmJob};
//! let store = Store::new();
//! let ns = store.namespace::<String>("default").unwrap();
//! // No `.load(...)`: this is a `WarmJob<String, KeyLister, Missing>`, which `add` refuses.
//! let job = WarmJob::new("half", ns).keys(|| async { Ok::<_, std::io::Error>(["k"]) });
//! Warmer::new().add(job);
//! ```
//!
//! Both closures are `Fn` (they are called again on every run and every retry), `Send +
//! Sync + 'static`, and return `Send + 'static` futures. Their errors are anything that
//! converts into `Box<dyn Error + Send + Sync>`, as for
//! [`get_or_load`](crate::store::Namespace::get_or_load).
//!
//! ## The order of work
//! [`Warmer::run`] runs the jobs of a scope one after another, in priority order (higher
//! first; equal priorities by name). It does not run jobs side by side: warming is meant to
//! be gentle on the origin, and a job that needs more throughput raises its own
//! concurrency. A job that is already running (from a periodic loop, or from another `run`)
//! is not run a second time: the new run does not wait for it, and reports it as skipped.
//!
//! One run of a job:
//! 1. **Keys.** `keys()` is called (and retried, see below). If it still fails, the run fails:
//!    nothing is loaded, and the error is in the report, in [`JobStatus::last_error`] and in
//!    the [`Finished`][WarmEvent::Finished] event. Duplicate keys are warmed once.
//! 2. **Batches.** The keys are cut into batches of `batch_size`, in the order listed, and up
//!    to `concurrency` batches are in flight at once (each as a tokio task; a batch waiting to
//!    retry counts as in flight).
//! 3. **Loading.** `load(batch)` answers with the pairs it found, in any order. Each is
//!    stored with the job's [`Put`](crate::store::Put); a pair the namespace refuses (a value
//!    heavier than it can hold) counts as *failed*. A key of the batch that the loader did
//!    not return is *missing*: neither loaded nor failed, and nothing is stored for it. Pairs
//!    for keys not in the batch, and second answers for one key, are ignored.
//! 4. **Failures.** A batch whose load still fails after its last attempt counts all its keys
//!    as failed, is reported in a [`BatchFailed`][WarmEvent::BatchFailed] event, and the job
//!    carries on with the other batches. A run whose batches fail is not a failed run:
//!    [`JobReport::error`] is for runs that could not list their keys (or were cancelled).
//!
//! ## Retries, backoff and jitter
//! A step (listing the keys, or loading one batch) is tried up to
//! [`max_attempts`][Retry::max_attempts] times, the first included. After the n-th failed
//! attempt it waits
//!
//! ```text
//! d = min(first × 2^(n−1), max_delay)        then, with jitter j in [0, 1]:
//! delay = d × (1 − j × u),  u uniform in [0, 1)  (so delay is in [d × (1 − j), d])
//! ```
//!
//! announced by a [`Retrying`][WarmEvent::Retrying] event. The wait is a `tokio::time::sleep`,
//! so tests on tokio's paused clock see exact virtual times and never sleep for real. The
//! randomness is a splitmix64 sequence seeded per [`Warmer`] from std's `RandomState`: jitter
//! is there to spread retries of many instances apart, not to be unpredictable.
//!
//! A closure that *panics* is not retried: a panic is a bug, not an origin having a bad
//! moment. The panic is caught (every step runs in a tokio task of its own); a panicking
//! `load` fails its batch, a panicking `keys` fails the run, and nothing escapes to the
//! caller.
//!
//! ## Start-up and periodic runs
//! [`Warmer::start`] needs a tokio runtime and spawns, from the jobs added so far:
//! - one task that runs every [`on_start`][WarmJob::on_start] job once, one after another in
//!   priority order (as `run` does);
//! - one loop per periodic job ([`every`][WarmJob::every]). Its runs are due at `start + every`,
//!   `start + 2 × every` and so on; when a run overruns the next due time, the next run starts
//!   as soon as it ends and the schedule counts on from there (tokio's
//!   `MissedTickBehavior::Delay`). A job with both settings runs at start-up, then on that
//!   schedule. [`JobStatus::next_run_unix_ms`] says when its loop will run it next.
//!
//! A failed run in these tasks is recorded in the status, sent as an event and logged with
//! `tracing` (at `warn`). The returned [`WarmerHandle`] stops them all when it is dropped or
//! [stopped][WarmerHandle::stop]; a run they had in progress is cancelled (recorded with the
//! error "cancelled"), and its batches in flight are aborted. Entries stored before then stay.
//!
//! ## Why jobs store directly
//! A job inserts what it loads with
//! [`Namespace::insert_with`](crate::store::Namespace::insert_with) rather than through the
//! single-flight path of `get_many_or_load`, because:
//! - warming must *replace* entries (a periodic run refreshes values that are still cached),
//!   which `get_many_or_load` would serve from the cache without asking the origin;
//! - the job stores with its own [`Put`](crate::store::Put) (TTL and tags), which the loading
//!   path does not take;
//! - a flight per key, for tens of thousands of keys nobody is waiting for, costs table
//!   traffic for nothing.
//!
//! The price: a reader who misses on a key while a job is loading it calls the origin as
//! well, once. Both values come from the origin moments apart, and the later insert wins.
//!
//! ## Events and status
//! Events go to a `tokio::sync::broadcast` channel of [`EVENT_CAPACITY`]; sending with no
//! subscriber is not an error, and a subscriber that falls further behind gets
//! `RecvError::Lagged` and carries on from the newest. [`Warmer::status`] is a snapshot of
//! every job's figures; durations are measured with `tokio::time::Instant` (virtual under a
//! paused clock), the `*_unix_ms` stamps are wall-clock.
//!
//! Every run needs a tokio runtime with its time driver (as `#[tokio::main]` and
//! `#[tokio::test]` build them); outside a runtime, [`Warmer::run`] and [`Warmer::start`]
//! answer [`WarmError::NoRuntime`].

mod job;
mod record;
mod report;
mod retry;
mod runner;
mod warmer;

pub use job::{BatchLoader, KeyLister, Missing, WarmJob};
pub use report::{JobReport, JobState, JobStatus, Progress, SkippedJob, WarmEvent, WarmReport};
pub use retry::Retry;
pub use warmer::{WarmError, Warmer, WarmerHandle};

/// How many events a subscriber may fall behind by before it misses some.
pub const EVENT_CAPACITY: usize = 1024;

/// The scope every job is in.
pub const ALL: &str = "all";
