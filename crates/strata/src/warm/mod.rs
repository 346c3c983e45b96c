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
//! (default 1), its [`Retry`] policy, the [`Put`] its entries are stored with (TTL and tags),
//! and whether [`Warmer::start`] runs it at start-up ([`on_start`][WarmJob::on_start]) and
//! every so often ([`every`][WarmJob::every]).
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
//! [`get_or_load`][Namespace::get_or_load].
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
//!    stored with the job's [`Put`]; a pair the namespace refuses (a value heavier than it can
//!    hold) counts as *failed*. A key of the batch that the loader did not return is
//!    *missing*: neither loaded nor failed, and nothing is stored for it. Pairs for keys
//!    not in the batch, and second answers for one key, are ignored.
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
//! A job inserts what it loads with [`Namespace::insert_with`][Namespace::insert_with]
//! rather than through the single-flight path of `get_many_or_load`, because:
//! - warming must *replace* entries (a periodic run refreshes values that are still cached),
//!   which `get_many_or_load` would serve from the cache without asking the origin;
//! - the job stores with its own [`Put`] (TTL and tags), which the loading path does not take;
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
//!
//! [Retry::max_attempts]: crate::warm::Retry::max_attempts
//! [WarmEvent::BatchFailed]: crate::warm::WarmEvent::BatchFailed
//! [WarmEvent::Finished]: crate::warm::WarmEvent::Finished
//! [WarmEvent::Retrying]: crate::warm::WarmEvent::Retrying
//! [WarmJob::every]: crate::warm::WarmJob::every
//! [WarmJob::keys]: crate::warm::WarmJob::keys
//! [WarmJob::load]: crate::warm::WarmJob::load
//! [WarmJob::on_start]: crate::warm::WarmJob::on_start
//! [WarmerHandle::stop]: crate::warm::WarmerHandle::stop
//! [`EVENT_CAPACITY`]: crate::warm::EVENT_CAPACITY
//! [`JobReport::error`]: crate::warm::JobReport::error
//! [`JobStatus::last_error`]: crate::warm::JobStatus::last_error
//! [`JobStatus::next_run_unix_ms`]: crate::warm::JobStatus::next_run_unix_ms
//! [`Missing`]: crate::warm::Missing
//! [`Put`]: crate::store::Put
//! [`Retry`]: crate::warm::Retry
//! [`WarmError::NoRuntime`]: crate::warm::WarmError::NoRuntime
//! [`WarmJob::new`]: crate::warm::WarmJob::new
//! [`WarmJob`]: crate::warm::WarmJob
//! [`Warmer::add`]: crate::warm::Warmer::add
//! [`Warmer::run`]: crate::warm::Warmer::run
//! [`Warmer::start`]: crate::warm::Warmer::start
//! [`Warmer::status`]: crate::warm::Warmer::status
//! [`Warmer::subscribe`]: crate::warm::Warmer::subscribe
//! [`WarmerHandle`]: crate::warm::WarmerHandle
//! [`Warmer`]: crate::warm::Warmer
//! [Namespace::get_or_load]: crate::store::Namespace::get_or_load
//! [Namespace::insert_with]: crate::store::Namespace::insert_with

use std::any::Any;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::hash::BuildHasher;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use thiserror::Error as ThisError;
use tokio::runtime::Handle;
use tokio::sync::broadcast;
use tokio::task::{JoinError, JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::key::Key;
use crate::store::{Namespace, Put};
use crate::HeapSize;

/// How many events a subscriber may fall behind by before it misses some.
pub const EVENT_CAPACITY: usize = 1024;

/// The scope every job is in.
pub const ALL: &str = "all";

type BoxError = Box<dyn Error + Send + Sync + 'static>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
type ListFn = dyn Fn() -> BoxFuture<Result<Vec<Key>, BoxError>> + Send + Sync;
type LoadFn<V> = dyn Fn(Vec<Key>) -> BoxFuture<Result<Vec<(Key, V)>, BoxError>> + Send + Sync;
/// Loads one batch and stores what came back; type-erased over the namespace's value type.
type BatchFn = dyn Fn(Vec<Key>) -> BoxFuture<Result<Stored, BoxError>> + Send + Sync;

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

/// How often, and how far apart, a failed step is tried again. See the
/// [module docs](self#retries-backoff-and-jitter) for the formula.
///
/// ```
/// use strata::warm::Retry;
/// use std::time::Duration;
///
/// let retry = Retry::exponential(Duration::from_millis(100))
///     .max_attempts(5)
///     .max_delay(Duration::from_millis(300))
///     .jitter(0.0);
/// // The waits after the 1st, 2nd, 3rd and 4th failed attempts (before jitter):
/// let waits: Vec<_> = (1..5).map(|n| retry.base_delay(n).as_millis()).collect();
/// assert_eq!(waits, [100, 200, 300, 300]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retry {
    first: Duration,
    max_attempts: u32,
    max_delay: Duration,
    jitter: f64,
}

impl Default for Retry {
    /// `Retry::exponential(100 ms)`: 3 attempts, delays up to 30 s, jitter 0.2.
    fn default() -> Self {
        Self::exponential(Duration::from_millis(100))
    }
}

impl Retry {
    /// Exponential backoff waiting `first` after the first failure and twice as long after
    /// each next one; 3 attempts, delays capped at 30 s, jitter 0.2.
    pub fn exponential(first: Duration) -> Self {
        Self {
            first,
            max_attempts: 3,
            max_delay: Duration::from_secs(30),
            jitter: 0.2,
        }
    }

    /// One attempt, no retry.
    pub fn none() -> Self {
        Self::default().max_attempts(1)
    }

    /// Attempts per step, the first included (at least 1; 0 is taken as 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The longest wait between two attempts, before jitter.
    pub fn max_delay(mut self, max: Duration) -> Self {
        self.max_delay = max;
        self
    }

    /// How much of each wait may be taken off at random: a wait `d` becomes uniform in
    /// `[d × (1 − fraction), d]`. Clamped to `[0, 1]`; NaN is taken as 0.
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        self
    }

    /// Attempts per step, the first included.
    pub fn attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The wait after `failed` failed attempts (1 for the first), before jitter:
    /// `min(first × 2^(failed − 1), max_delay)`.
    pub fn base_delay(&self, failed: u32) -> Duration {
        let factor = 1u32
            .checked_shl(failed.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.first.saturating_mul(factor).min(self.max_delay)
    }

    /// The wait after `failed` failed attempts, with `unit` (in `[0, 1)`) drawn for jitter.
    fn delay(&self, failed: u32, unit: f64) -> Duration {
        let base = self.base_delay(failed);
        // At most `base` (the factor is at most 1); a value f64 cannot carry back is no cut.
        let cut = Duration::try_from_secs_f64(base.as_secs_f64() * self.jitter * unit)
            .unwrap_or(Duration::ZERO);
        base.saturating_sub(cut)
    }
}

/// splitmix64 over an atomic counter: the jitter's randomness, seeded per warmer.
struct Jitter(AtomicU64);

impl Jitter {
    const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

    fn seeded() -> Self {
        let seed = std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64);
        Self(AtomicU64::new(seed))
    }

    /// Uniform in `[0, 1)`.
    fn unit(&self) -> f64 {
        let mut z = self
            .0
            .fetch_add(Self::GAMMA, Ordering::Relaxed)
            .wrapping_add(Self::GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A type parameter of [`WarmJob`]: this closure was not given yet. A job with a `Missing`
/// part cannot be added to a [`Warmer`].
#[derive(Debug)]
pub struct Missing(());

/// A type parameter of [`WarmJob`]: the closure that lists the keys, given with
/// [`WarmJob::keys`] (boxed).
pub struct KeyLister(Arc<ListFn>);

/// A type parameter of [`WarmJob`]: the closure that loads a batch, given with
/// [`WarmJob::load`] (boxed).
pub struct BatchLoader<V>(Arc<LoadFn<V>>);

impl fmt::Debug for KeyLister {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyLister(..)")
    }
}

impl<V> fmt::Debug for BatchLoader<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BatchLoader(..)")
    }
}

/// How to warm one namespace; added to a [`Warmer`] with [`Warmer::add`]. `K` and `L` track
/// whether [`keys`](Self::keys) and [`load`](Self::load) were given (see the
/// [module docs](self#a-job)).
///
/// ```
/// use strata::warm::{Retry, WarmJob};
/// use strata::store::{Put, Store};
/// use strata::Key;
/// use std::time::Duration;
///
/// let store = Store::new();
/// let ns = store.namespace::<u64>("default").unwrap();
/// let job = WarmJob::new("balances", ns)
///     .scope("wallet")
///     .priority(10)
///     .batch_size(500)
///     .concurrency(4)
///     .retry(Retry::exponential(Duration::from_millis(100)).max_attempts(5))
///     .put(Put::new().ttl(Duration::from_secs(300)).tag("wallet"))
///     .on_start()
///     .every(Duration::from_secs(600))
///     .keys(|| async { Ok::<_, std::io::Error>(vec!["wallet::1", "wallet::2"]) })
///     .load(|batch: Vec<Key>| async move {
///         Ok::<_, std::io::Error>(batch.into_iter().map(|key| (key, 0)).collect::<Vec<_>>())
///     });
/// # let _ = job;
/// ```
#[must_use = "a job does nothing until it is added to a Warmer"]
pub struct WarmJob<V, K = Missing, L = Missing> {
    name: String,
    ns: Namespace<V>,
    scopes: BTreeSet<String>,
    priority: i32,
    batch_size: usize,
    concurrency: usize,
    retry: Retry,
    put: Put,
    on_start: bool,
    every: Option<Duration>,
    keys: K,
    load: L,
}

impl<V, K: fmt::Debug, L: fmt::Debug> fmt::Debug for WarmJob<V, K, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WarmJob")
            .field("name", &self.name)
            .field("namespace", &self.ns)
            .field("scopes", &self.scopes)
            .field("priority", &self.priority)
            .field("batch_size", &self.batch_size)
            .field("concurrency", &self.concurrency)
            .field("retry", &self.retry)
            .field("put", &self.put)
            .field("on_start", &self.on_start)
            .field("every", &self.every)
            .field("keys", &self.keys)
            .field("load", &self.load)
            .finish()
    }
}

impl<V> WarmJob<V>
where
    V: Clone + HeapSize + Send + Sync + 'static,
{
    /// A job named `name` (unique within its warmer) that fills `ns`: scope `all` only,
    /// priority 0, batches of 100, one at a time, [`Retry::default`], stored with
    /// [`Put::new`], run only on demand.
    pub fn new(name: impl Into<String>, ns: Namespace<V>) -> Self {
        Self {
            name: name.into(),
            ns,
            scopes: BTreeSet::from([ALL.to_owned()]),
            priority: 0,
            batch_size: 100,
            concurrency: 1,
            retry: Retry::default(),
            put: Put::new(),
            on_start: false,
            every: None,
            keys: Missing(()),
            load: Missing(()),
        }
    }
}

impl<V, K, L> WarmJob<V, K, L> {
    /// Puts the job in `scope` as well (it is always in `all`); may be called several times.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.insert(scope.into());
        self
    }

    /// Higher runs first (default 0).
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Keys per call of the loader (default 100; 0 is taken as 1).
    pub fn batch_size(mut self, keys: usize) -> Self {
        self.batch_size = keys.max(1);
        self
    }

    /// Batches in flight at once (default 1; 0 is taken as 1).
    pub fn concurrency(mut self, batches: usize) -> Self {
        self.concurrency = batches.max(1);
        self
    }

    /// How failed steps are retried (default [`Retry::default`]).
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// How the loaded entries are stored: TTL and tags (default [`Put::new`]: the
    /// namespace's TTL, no tags).
    pub fn put(mut self, put: Put) -> Self {
        self.put = put;
        self
    }

    /// [`Warmer::start`] runs the job once at start-up.
    pub fn on_start(mut self) -> Self {
        self.on_start = true;
        self
    }

    /// [`Warmer::start`] runs the job every `period` (see the
    /// [module docs](self#start-up-and-periodic-runs)); a period under 1 ms is taken as 1 ms.
    pub fn every(mut self, period: Duration) -> Self {
        self.every = Some(period.max(Duration::from_millis(1)));
        self
    }

    fn with_parts<K2, L2>(self, parts: impl FnOnce(K, L) -> (K2, L2)) -> WarmJob<V, K2, L2> {
        let (keys, load) = parts(self.keys, self.load);
        WarmJob {
            name: self.name,
            ns: self.ns,
            scopes: self.scopes,
            priority: self.priority,
            batch_size: self.batch_size,
            concurrency: self.concurrency,
            retry: self.retry,
            put: self.put,
            on_start: self.on_start,
            every: self.every,
            keys,
            load,
        }
    }
}

impl<V, L> WarmJob<V, Missing, L> {
    /// The closure that lists the keys to warm, called at the start of every run. It answers
    /// with anything iterable over things that convert into [`Key`] (`Vec<String>`,
    /// `[&str; N]`, `Vec<Key>` …).
    pub fn keys<F, Fut, I, E>(self, list: F) -> WarmJob<V, KeyLister, L>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<I, E>> + Send + 'static,
        I: IntoIterator + Send + 'static,
        I::Item: Into<Key>,
        E: Into<BoxError> + Send + 'static,
    {
        let list: Arc<ListFn> = Arc::new(move || {
            let listed = list();
            Box::pin(async move {
                match listed.await {
                    Ok(keys) => Ok(keys.into_iter().map(Into::into).collect()),
                    Err(e) => Err(e.into()),
                }
            })
        });
        self.with_parts(|_, load| (KeyLister(list), load))
    }
}

impl<V, K> WarmJob<V, K, Missing>
where
    V: Send + 'static,
{
    /// The closure that loads one batch: it gets the batch's keys and answers with the
    /// pairs it found, in any order (a key it leaves out counts as missing).
    pub fn load<F, Fut, R, E>(self, load: F) -> WarmJob<V, K, BatchLoader<V>>
    where
        F: Fn(Vec<Key>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
        R: IntoIterator<Item = (Key, V)> + Send + 'static,
        E: Into<BoxError> + Send + 'static,
    {
        let load: Arc<LoadFn<V>> = Arc::new(move |batch| {
            let loaded = load(batch);
            Box::pin(async move {
                match loaded.await {
                    Ok(pairs) => Ok(pairs.into_iter().collect()),
                    Err(e) => Err(e.into()),
                }
            })
        });
        self.with_parts(|keys, _| (keys, BatchLoader(load)))
    }
}

/// What became of one batch's keys.
#[derive(Debug, Clone, Copy, Default)]
struct Stored {
    loaded: u64,
    failed: u64,
    missing: u64,
}

/// Stores the pairs answering `asked` (see the module docs for what counts as what).
fn store_batch<V>(ns: &Namespace<V>, put: &Put, asked: Vec<Key>, pairs: Vec<(Key, V)>) -> Stored
where
    V: Clone + HeapSize + Send + Sync + 'static,
{
    let mut waiting: HashSet<Key> = asked.into_iter().collect();
    let mut stored = Stored::default();
    for (key, value) in pairs {
        if !waiting.remove(&key) {
            continue;
        }
        match ns.insert_with(key, value, put.clone()) {
            Ok(()) => stored.loaded += 1,
            Err(_) => stored.failed += 1,
        }
    }
    stored.missing = waiting.len() as u64;
    stored
}

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

/// A job [`Warmer::run`] did not run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedJob {
    /// The job.
    pub job: String,
    /// Why.
    pub reason: String,
}

/// What [`Warmer::run`] did.
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

/// A job's settings and figures, from [`Warmer::status`].
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

/// A job's mutable figures.
#[derive(Debug, Default)]
struct Record {
    running: bool,
    runs: u64,
    last_started_unix_ms: Option<u64>,
    last_duration_ms: Option<u64>,
    last_loaded: u64,
    last_failed: u64,
    last_missing: u64,
    total_loaded: u64,
    total_failed: u64,
    last_error: Option<String>,
    next_run_unix_ms: Option<u64>,
    progress: Option<Progress>,
}

/// A job as the warmer keeps it: settings, the type-erased closures, and its figures.
struct Job {
    name: String,
    namespace: String,
    scopes: BTreeSet<String>,
    priority: i32,
    batch_size: usize,
    concurrency: usize,
    retry: Retry,
    on_start: bool,
    every: Option<Duration>,
    list: Arc<ListFn>,
    batch: Arc<BatchFn>,
    record: Mutex<Record>,
}

impl Job {
    fn status(&self) -> JobStatus {
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

    fn set_next_run(&self, at: Option<Instant>) {
        self.record.lock().next_run_unix_ms = at.and_then(unix_ms_at);
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn unix_ms(t: SystemTime) -> Option<u64> {
    t.duration_since(UNIX_EPOCH).ok().map(millis)
}

/// The wall-clock time of `at`, a tokio instant (virtual under a paused clock).
fn unix_ms_at(at: Instant) -> Option<u64> {
    let from_now = at.saturating_duration_since(Instant::now());
    unix_ms(SystemTime::now().checked_add(from_now)?)
}

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
struct Shared {
    /// Sorted by priority (higher first), then name.
    jobs: RwLock<Vec<Arc<Job>>>,
    events: broadcast::Sender<WarmEvent>,
    jitter: Jitter,
}

/// How [`Shared::run_job`] ended.
enum Ran {
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
            if failed >= job.retry.max_attempts {
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
    async fn run_job(self: &Arc<Self>, job: &Arc<Job>, runtime: &Handle) -> Ran {
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
    async fn run_logged(self: &Arc<Self>, job: &Arc<Job>, runtime: &Handle) {
        if let Ran::Done(report) = self.run_job(job, runtime).await {
            if let Some(error) = &report.error {
                tracing::warn!(job = %report.job, error = %error, "warming run failed");
            }
        }
    }

    /// The loop of a periodic job: runs due at `first`, then every `every` (see the module
    /// docs for overruns).
    async fn periodic(
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

/// Runs warming jobs: on demand by scope, at start-up and periodically. Cheap to clone; every
/// clone is the same warmer. See the [module docs](self).
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
    /// already (see the [module docs](self#the-order-of-work)). [`WarmError::UnknownScope`]
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
    /// [module docs](self#events-and-status) for a receiver that falls behind).
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
    /// [module docs](self#start-up-and-periodic-runs)); they run until the handle is stopped
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
