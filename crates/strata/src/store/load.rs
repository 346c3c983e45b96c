//! Read-through loading with single flight: [`Namespace::get_or_load`] and its blocking twin.
//!
//! On a miss, the first caller for a key (the leader) starts the load and registers a
//! *flight* for the key; callers that miss on the key while it is in the air wait for that
//! flight instead of calling the origin again. When the load ends, its value is stored, then
//! the flight is taken out of the table, then every waiter is woken with the outcome. A caller
//! that arrives after the flight left finds the value in the cache.
//!
//! The async load runs as a tokio task of its own, so dropping the leader's future (a client
//! that went away, a `select!` that chose another branch) does not strand the waiters: the
//! load completes and stores its value regardless. A loader that returns an error or panics
//! wakes every waiter with [`LoadError::Origin`] or [`LoadError::Panicked`]; nothing is
//! cached and the next caller tries again.
//!
//! The blocking twin runs its loader on the leader's own thread (it cannot be cancelled), with
//! the panic caught. Blocking and async callers of one key share the same flight.

use std::collections::HashMap;
use std::error::Error;
use std::future::Future;
use std::hash::BuildHasher;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use thiserror::Error as ThisError;

use super::latency::{Latency, LatencyRecorder};
use super::namespace::{Namespace, Put};
use crate::key::Key;
use crate::HeapSize;

/// An origin's error, shared by every caller the load served.
pub type OriginError = Arc<dyn Error + Send + Sync + 'static>;

/// Where a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A hit: no origin call.
    Cache,
    /// Loaded from the origin, by this caller or by the load it waited for.
    Origin,
    /// Past its TTL but within `max_stale`, served because the origin failed or was slower
    /// than the soft timeout (fail-safe).
    Stale,
}

/// A value and where it came from (the `fromCache` flag of the services strata replaces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded<V> {
    /// The value.
    pub value: V,
    /// Where it came from.
    pub source: Source,
}

impl<V> Loaded<V> {
    /// Whether the value came from the cache.
    pub fn from_cache(&self) -> bool {
        self.source == Source::Cache
    }
}

/// Why a load gave no value. Every caller waiting on the load gets the same error.
#[derive(Debug, Clone, ThisError)]
#[non_exhaustive]
pub enum LoadError {
    /// The loader returned an error.
    #[error("the origin failed: {0}")]
    Origin(OriginError),
    /// The loader panicked (the panic was caught; the cache is unharmed).
    #[error("the loader panicked")]
    Panicked,
    /// The load took longer than the namespace's `hard_timeout` and was abandoned.
    #[error("the load took longer than its hard timeout of {0:?}")]
    TimedOut(Duration),
    /// The load's task was dropped before it finished (its runtime shut down).
    #[error("the load was cancelled: its runtime shut down")]
    Cancelled,
    /// The origin has no value for the key (its loader answered `None`, or a batch's
    /// answer left the key out) and the caller asked for a value.
    #[error("the origin has no value for the key")]
    NotFound,
    /// `get_or_load` was called outside a tokio runtime, which it needs to run the load.
    #[error("get_or_load needs a tokio runtime (use get_or_load_blocking outside one)")]
    NoRuntime,
}

/// What [`Namespace::get_or_load`] returns: ready at once on a hit, otherwise waiting for
/// the load. It is `'static` and `Send`, so it can be spawned.
#[must_use = "a future does nothing until awaited"]
pub struct LoadFuture<V> {
    state: LoadState<V>,
}

type Waiting<V> = Pin<Box<dyn Future<Output = Result<Loaded<V>, LoadError>> + Send + 'static>>;

enum LoadState<V> {
    Ready(Option<Result<Loaded<V>, LoadError>>),
    Waiting(Waiting<V>),
}

impl<V> LoadFuture<V> {
    fn ready(result: Result<Loaded<V>, LoadError>) -> Self {
        Self {
            state: LoadState::Ready(Some(result)),
        }
    }
}

// Nothing is ever pinned in place inside: the ready value is moved out by `take`, and the
// waiting future is pinned in its own box.
impl<V> Unpin for LoadFuture<V> {}

impl<V> Future for LoadFuture<V> {
    type Output = Result<Loaded<V>, LoadError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            LoadState::Ready(result) => match result.take() {
                Some(result) => Poll::Ready(result),
                None => panic!("LoadFuture polled after it completed"),
            },
            LoadState::Waiting(future) => future.as_mut().poll(cx),
        }
    }
}

impl<V> std::fmt::Debug for LoadFuture<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            LoadState::Ready(_) => "ready",
            LoadState::Waiting(_) => "waiting",
        };
        f.debug_struct("LoadFuture").field("state", &state).finish()
    }
}

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

/// How a flight ended. `Value(None)` is the origin's "not found".
pub(super) enum Outcome<V> {
    Value(Option<V>),
    Failed(OriginError),
    Panicked,
    Cancelled,
    TimedOut(Duration),
}

impl<V> Outcome<V> {
    /// What a loader that returned (rather than panicked) gave.
    fn loaded<E>(loaded: Result<Option<V>, E>) -> Self
    where
        E: Into<Box<dyn Error + Send + Sync + 'static>>,
    {
        match loaded {
            Ok(value) => Outcome::Value(value),
            Err(e) => Outcome::Failed(Arc::from(e.into())),
        }
    }
}

impl<V: Clone> Outcome<V> {
    fn result(&self) -> Result<Loaded<Option<V>>, LoadError> {
        match self {
            Outcome::Value(v) => Ok(Loaded {
                value: v.clone(),
                source: Source::Origin,
            }),
            Outcome::Failed(e) => Err(LoadError::Origin(Arc::clone(e))),
            Outcome::Panicked => Err(LoadError::Panicked),
            Outcome::Cancelled => Err(LoadError::Cancelled),
            Outcome::TimedOut(d) => Err(LoadError::TimedOut(*d)),
        }
    }
}

/// One load in the air and the callers waiting for it.
pub(super) struct Flight<V> {
    /// When the load started (tokio's clock, so a paused test clock times it exactly).
    started: tokio::time::Instant,
    /// Set by an invalidation that covers the key while the load is in the air: what the
    /// load read from the origin may predate it, so it answers its callers but is not kept.
    invalidated: AtomicBool,
    outcome: Mutex<Option<Outcome<V>>>,
    /// Wakes blocking waiters.
    landed: Condvar,
    /// Wakes async waiters.
    notify: tokio::sync::Notify,
}

impl<V: Clone> Flight<V> {
    fn new() -> Self {
        Self {
            started: tokio::time::Instant::now(),
            invalidated: AtomicBool::new(false),
            outcome: Mutex::new(None),
            landed: Condvar::new(),
            notify: tokio::sync::Notify::new(),
        }
    }

    /// Waits for the landing, up to `limit` if given (`None` when that passed first).
    pub(super) fn wait_blocking(
        &self,
        limit: Option<Duration>,
    ) -> Option<Result<Loaded<Option<V>>, LoadError>> {
        let deadline = limit.and_then(|d| Instant::now().checked_add(d));
        let mut outcome = self.outcome.lock();
        loop {
            if let Some(done) = outcome.as_ref() {
                return Some(done.result());
            }
            match deadline {
                Some(at) => {
                    if self.landed.wait_until(&mut outcome, at).timed_out() && outcome.is_none() {
                        return None;
                    }
                }
                None => self.landed.wait(&mut outcome),
            }
        }
    }

    pub(super) async fn wait(&self) -> Result<Loaded<Option<V>>, LoadError> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Registered before the check, so a landing in between is not missed.
            notified.as_mut().enable();
            if let Some(done) = self.outcome.lock().as_ref() {
                return done.result();
            }
            notified.await;
        }
    }
}

/// Lands a load's flights (one, or one per key of a batch) once, when its task ends or is
/// dropped.
struct Landing<V>
where
    V: Clone + HeapSize + Send + Sync + 'static,
{
    ns: Namespace<V>,
    flights: Vec<(Key, Arc<Flight<V>>)>,
    landed: bool,
}

impl<V> Landing<V>
where
    V: Clone + HeapSize + Send + Sync + 'static,
{
    /// Lands each flight with its outcome, in order.
    fn land(&mut self, outcomes: impl IntoIterator<Item = Outcome<V>>) {
        self.landed = true;
        for ((key, flight), outcome) in self.flights.iter().zip(outcomes) {
            self.ns.land(key, flight, outcome);
        }
    }

    /// Lands every flight with a copy of one failure.
    fn fail(&mut self, failure: impl Fn() -> Outcome<V>) {
        self.land(std::iter::repeat_with(failure));
    }
}

impl<V> Drop for Landing<V>
where
    V: Clone + HeapSize + Send + Sync + 'static,
{
    fn drop(&mut self) {
        if !self.landed {
            self.fail(|| Outcome::Cancelled);
        }
    }
}

const FLIGHT_SHARDS: usize = 16;

type FlightShard<V> = Mutex<HashMap<Key, Arc<Flight<V>>>>;

/// The flights of one namespace, by key.
pub(crate) struct Flights<V> {
    shards: Box<[FlightShard<V>]>,
    hasher: foldhash::fast::FixedState,
}

impl<V: Clone> Flights<V> {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..FLIGHT_SHARDS).map(|_| Mutex::default()).collect(),
            hasher: foldhash::fast::FixedState::default(),
        }
    }

    fn shard(&self, key: &[u8]) -> &FlightShard<V> {
        &self.shards[self.hasher.hash_one(key) as usize % FLIGHT_SHARDS]
    }

    /// The flight for `key` and whether this caller leads it (started it).
    pub(super) fn join(&self, key: &Key) -> (Arc<Flight<V>>, bool) {
        let mut shard = self.shard(key.as_bytes()).lock();
        if let Some(flight) = shard.get(key) {
            return (Arc::clone(flight), false);
        }
        let flight = Arc::new(Flight::new());
        shard.insert(key.clone(), Arc::clone(&flight));
        (flight, true)
    }

    /// Marks the flight for `key`, if one is in the air, as overtaken by an invalidation.
    /// Called *before* the invalidation removes the key from the cache; see
    /// [`Namespace::land_with`] for why that order makes the invalidation win.
    pub(crate) fn invalidate(&self, key: &[u8]) {
        if let Some(flight) = self.shard(key).lock().get(key) {
            flight.invalidated.store(true, Ordering::SeqCst);
        }
    }

    /// [`invalidate`](Self::invalidate) for every flight whose key `covers` accepts (a
    /// prefix, a pattern, a clear). The table holds only the loads in the air, so walking it
    /// is cheap next to the removal that follows.
    pub(crate) fn invalidate_where(&self, covers: impl Fn(&[u8]) -> bool) {
        for shard in self.shards.iter() {
            for (key, flight) in shard.lock().iter() {
                if covers(key.as_bytes()) {
                    flight.invalidated.store(true, Ordering::SeqCst);
                }
            }
        }
    }

    /// Takes `flight` out of the table (if it is still the one for `key`).
    fn leave(&self, key: &Key, flight: &Arc<Flight<V>>) {
        let mut shard = self.shard(key.as_bytes()).lock();
        if shard.get(key).is_some_and(|f| Arc::ptr_eq(f, flight)) {
            shard.remove(key);
        }
    }
}

/// What a caller asks of a load: the value, where the origin's "not found" is an error
/// ([`Required`]), or whether there is one ([`Optional`]).
pub(super) trait Want<V>: 'static {
    type Out: Send + 'static;
    /// Whether a negative entry answers this caller (otherwise it is a miss).
    const NEGATIVE: bool;
    fn out(found: Option<V>) -> Result<Self::Out, LoadError>;
}

/// `get_or_load`: a value, or [`LoadError::NotFound`].
pub(super) struct Required;

/// `get_or_load_optional`: `Some(value)` or `None`.
struct Optional;

impl<V: Send + 'static> Want<V> for Required {
    type Out = V;
    const NEGATIVE: bool = false;
    #[inline]
    fn out(found: Option<V>) -> Result<V, LoadError> {
        found.ok_or(LoadError::NotFound)
    }
}

impl<V: Send + 'static> Want<V> for Optional {
    type Out = Option<V>;
    const NEGATIVE: bool = true;
    #[inline]
    fn out(found: Option<V>) -> Result<Option<V>, LoadError> {
        Ok(found)
    }
}

/// The runtime a load would run on, or the error for a caller outside one.
fn runtime() -> Result<tokio::runtime::Handle, LoadError> {
    tokio::runtime::Handle::try_current().map_err(|_| LoadError::NoRuntime)
}

impl<V> Namespace<V>
where
    V: Clone + HeapSize + Send + Sync + 'static,
{
    /// The value for `key`: from the cache on a hit; on a miss from `loader`, called once
    /// however many callers miss on the key together, stored with the namespace's TTL.
    /// Needs a tokio runtime: the load runs as a task, so it completes (and serves the other
    /// waiters) even if this caller's future is dropped.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use strata::store::{Source, Store};
    /// let store = Store::new();
    /// let users = store.namespace::<String>("default").unwrap();
    /// let load = |key: strata::Key| async move {
    ///     Ok::<_, std::io::Error>(format!("profile of {key}"))   // the database, say
    /// };
    /// let first = users.get_or_load("user::42", load).await.unwrap();
    /// assert_eq!(first.source, Source::Origin);
    /// let again = users.get_or_load("user::42", load).await.unwrap();
    /// assert!(again.from_cache());
    /// assert_eq!(again.value, "profile of user::42");
    /// # }
    /// ```
    pub fn get_or_load<F, Fut, E>(&self, key: impl AsRef<[u8]>, loader: F) -> LoadFuture<V>
    where
        F: FnOnce(Key) -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        E: Into<Box<dyn Error + Send + Sync + 'static>> + Send + 'static,
    {
        self.load::<Required, _, _, _>(key.as_ref(), move |key| {
            let load = loader(key);
            async move { load.await.map(Some) }
        })
    }

    /// [`get_or_load`](Self::get_or_load) for keys the origin may not have: the loader
    /// answers `Ok(None)` for "not found", and so does this. With the namespace's
    /// `negative_ttl` set, "not found" is remembered that long, so a key that does not exist
    /// reaches the origin once per `negative_ttl` however often it is read (a remembered
    /// "not found" counts as a hit). An insert of the key replaces it at once.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use strata::config::Config;
    /// use strata::store::{Source, Store};
    /// let config = Config::from_sources(Some("[defaults]\nnegative_ttl = \"30s\""), []).unwrap();
    /// let store = Store::from_config(&config).unwrap();
    /// let users = store.namespace::<String>("default").unwrap();
    /// let load = |_key: strata::Key| async move { Ok::<Option<String>, std::io::Error>(None) };
    /// let first = users.get_or_load_optional("user::404", load).await.unwrap();
    /// assert_eq!((first.value, first.source), (None, Source::Origin));
    /// let again = users.get_or_load_optional("user::404", load).await.unwrap();
    /// assert_eq!((again.value, again.source), (None, Source::Cache));
    /// # }
    /// ```
    pub fn get_or_load_optional<F, Fut, E>(
        &self,
        key: impl AsRef<[u8]>,
        loader: F,
    ) -> LoadFuture<Option<V>>
    where
        F: FnOnce(Key) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Option<V>, E>> + Send + 'static,
        E: Into<Box<dyn Error + Send + Sync + 'static>> + Send + 'static,
    {
        self.load::<Optional, _, _, _>(key.as_ref(), loader)
    }

    /// A hit (in the shape `W` asks for), or the load of `key`.
    #[inline]
    fn load<W, F, Fut, E>(&self, key: &[u8], loader: F) -> LoadFuture<W::Out>
    where
        W: Want<V>,
        F: FnOnce(Key) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Option<V>, E>> + Send + 'static,
        E: Into<Box<dyn Error + Send + Sync + 'static>> + Send + 'static,
    {
        // The hit path runs here, before any future exists, so a hit costs a plain `get`
        // and the returned future is ready at once (measured: docs/benchmarks.md).
        if let Some((found, fresh_until)) = self.find::<W>(key) {
            if found.is_some() && self.refresh_due(fresh_until) {
                if let Ok(runtime) = runtime() {
                    let (_, led) = self.start_load(&runtime, Key::from(key), loader);
                    if led {
                        self.inner.loads.refreshes.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            return LoadFuture::ready(W::out(found).map(|value| Loaded {
                value,
                source: Source::Cache,
            }));
        }
        let stale = self.stale::<W>(key);
        let runtime = match runtime() {
            Ok(runtime) => runtime,
            Err(e) => return LoadFuture::ready(Err(e)),
        };
        let (flight, _) = self.start_load(&runtime, Key::from(key), loader);
        let soft = self.inner.limits.soft_timeout.filter(|_| stale.is_some());
        let ns = self.clone();
        LoadFuture {
            state: LoadState::Waiting(Box::pin(async move {
                let result = match soft {
                    Some(soft) => match tokio::time::timeout(soft, flight.wait()).await {
                        Ok(result) => result,
                        // The load goes on and will refresh the entry; answer with what we
                        // have.
                        Err(_) => Err(LoadError::TimedOut(soft)),
                    },
                    None => flight.wait().await,
                };
                ns.fail_safe::<W>(result, stale)
            })),
        }
    }

    /// A fresh hit in the shape `W` asks for: a negative entry answers only callers that can
    /// take "not found". Counts a hit or a miss.
    #[inline]
    fn find<W: Want<V>>(&self, key: &[u8]) -> Option<(Option<V>, u64)> {
        if W::NEGATIVE {
            self.lookup_known(key)
        } else {
            self.lookup(key)
                .map(|(value, fresh_until)| (Some(value), fresh_until))
        }
    }

    /// Joins the flight for `key`, or starts it (as two tasks on `runtime`, see the module
    /// docs) if there is none; returns it and whether this call started it.
    fn start_load<F, Fut, E>(
        &self,
        runtime: &tokio::runtime::Handle,
        key: Key,
        loader: F,
    ) -> (Arc<Flight<V>>, bool)
    where
        F: FnOnce(Key) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Option<V>, E>> + Send + 'static,
        E: Into<Box<dyn Error + Send + Sync + 'static>> + Send + 'static,
    {
        let (flight, leader) = self.inner.flights.join(&key);
        if leader {
            let led = vec![(key.clone(), Arc::clone(&flight))];
            self.spawn_load(runtime, led, loader(key), |loaded, _| {
                vec![Outcome::loaded(loaded)]
            });
        }
        (flight, leader)
    }

    /// Runs `load` for the flights `led` (one, or a batch's) as a task on `runtime`, under
    /// the namespace's hard timeout, and lands them: `outcomes` turns what the loader
    /// returned into one outcome per flight, in order.
    fn spawn_load<Fut, T>(
        &self,
        runtime: &tokio::runtime::Handle,
        led: Vec<(Key, Arc<Flight<V>>)>,
        load: Fut,
        outcomes: impl FnOnce(T, &[(Key, Arc<Flight<V>>)]) -> Vec<Outcome<V>> + Send + 'static,
    ) where
        Fut: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let mut load = runtime.spawn(load);
        // A second task awaits the first, so a panic in the loader (which ends its task)
        // still lands the flights, and neither depends on the caller staying around. If the
        // runtime drops the tasks unfinished, the guard lands the flights as cancelled, so no
        // waiter (a blocking one on another thread, say) waits forever.
        let mut landing = Landing {
            ns: self.clone(),
            flights: led,
            landed: false,
        };
        let hard = self.inner.limits.hard_timeout;
        runtime.spawn(async move {
            let joined = match hard {
                Some(hard) => match tokio::time::timeout(hard, &mut load).await {
                    Ok(joined) => Ok(joined),
                    Err(_) => {
                        load.abort();
                        Err(hard)
                    }
                },
                None => Ok((&mut load).await),
            };
            match joined {
                Ok(Ok(loaded)) => {
                    let outcomes = outcomes(loaded, &landing.flights);
                    landing.land(outcomes);
                }
                Ok(Err(e)) if e.is_panic() => landing.fail(|| Outcome::Panicked),
                Ok(Err(_)) => landing.fail(|| Outcome::Cancelled),
                Err(hard) => landing.fail(|| Outcome::TimedOut(hard)),
            }
        });
    }

    /// The values of many keys, with one origin call for all the missing ones: `loader` gets
    /// the keys that missed (each once, however often `keys` names it) and answers with the
    /// pairs it found, in any order. Single flight holds per key: a key already being loaded
    /// by another caller (single or batch) is waited for, not asked again.
    ///
    /// The answer maps each key that has a value to it and where it came from; a key the
    /// origin did not return is absent (and remembered as "not found" for `negative_ttl`,
    /// when the namespace has one). Fail-safe and the timeouts apply per key; if a key's
    /// load fails with no stale value to fall back on, the whole call fails with that
    /// error, and the values that did load stay cached for the next try. Keys past the
    /// refresh point are reloaded in the background by the same origin call. Pairs for keys
    /// that were not asked for are ignored.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use strata::store::{Source, Store};
    /// use strata::Key;
    /// let store = Store::new();
    /// let users = store.namespace::<String>("default").unwrap();
    /// users.insert("user::1", "Ada".to_string()).unwrap();
    /// let found = users
    ///     .get_many_or_load(["user::1", "user::2", "user::3"], |missing: Vec<Key>| async move {
    ///         assert_eq!(missing, [Key::from("user::2"), Key::from("user::3")]);
    ///         // SELECT ... WHERE id IN (...): user 3 does not exist.
    ///         Ok::<_, std::io::Error>(vec![(Key::from("user::2"), "Grace".to_string())])
    ///     })
    ///     .await
    ///     .unwrap();
    /// assert_eq!(found.len(), 2);
    /// assert_eq!(found[&Key::from("user::1")].source, Source::Cache);
    /// assert_eq!(found[&Key::from("user::2")].value, "Grace");
    /// assert!(!found.contains_key(&Key::from("user::3")));
    /// # }
    /// ```
    pub fn get_many_or_load<K, F, Fut, R, E>(
        &self,
        keys: impl IntoIterator<Item = K>,
        loader: F,
    ) -> impl Future<Output = Result<HashMap<Key, Loaded<V>>, LoadError>> + Send + 'static
    where
        K: AsRef<[u8]>,
        F: FnOnce(Vec<Key>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
        R: IntoIterator<Item = (Key, V)> + Send + 'static,
        E: Into<Box<dyn Error + Send + Sync + 'static>> + Send + 'static,
    {
        let runtime = runtime();
        let mut found = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        let mut misses = Vec::new();
        let mut led = Vec::new();
        for key in keys {
            let key = key.as_ref();
            if seen.contains(key) {
                continue;
            }
            let key = Key::from(key);
            seen.insert(key.clone());
            match self.find::<Optional>(key.as_bytes()) {
                Some((Some(value), fresh_until)) => {
                    if runtime.is_ok() && self.refresh_due(fresh_until) {
                        let (flight, leader) = self.inner.flights.join(&key);
                        if leader {
                            self.inner.loads.refreshes.fetch_add(1, Ordering::Relaxed);
                            led.push((key.clone(), flight));
                        }
                    }
                    let source = Source::Cache;
                    found.insert(key, Loaded { value, source });
                }
                // The origin's "not found", remembered.
                Some((None, _)) => {}
                None => misses.push(key),
            }
        }
        let mut waiting = Vec::with_capacity(misses.len());
        let started = match &runtime {
            Err(e) if !misses.is_empty() => Err(e.clone()),
            _ => Ok(()),
        };
        if started.is_ok() {
            for key in misses {
                let stale = self.stale::<Optional>(key.as_bytes());
                let (flight, leader) = self.inner.flights.join(&key);
                if leader {
                    led.push((key.clone(), Arc::clone(&flight)));
                }
                waiting.push((key, flight, stale));
            }
        }
        if let (false, Ok(runtime)) = (led.is_empty(), &runtime) {
            let keys = led.iter().map(|(key, _)| key.clone()).collect();
            self.spawn_load(runtime, led, loader(keys), |loaded, flights| match loaded {
                Ok(pairs) => {
                    let mut pairs: HashMap<Key, V> = pairs.into_iter().collect();
                    let found = |(key, _): &(Key, _)| Outcome::Value(pairs.remove(key));
                    flights.iter().map(found).collect()
                }
                Err(e) => {
                    let e: OriginError = Arc::from(e.into());
                    let failed = |_: &(Key, _)| Outcome::Failed(Arc::clone(&e));
                    flights.iter().map(failed).collect()
                }
            });
        }
        let soft = self.inner.limits.soft_timeout;
        let ns = self.clone();
        async move {
            started?;
            // Every flight is in the air already; one deadline serves them all.
            let soft_deadline = soft.map(|soft| (tokio::time::Instant::now() + soft, soft));
            for (key, flight, stale) in waiting {
                let result = match soft_deadline.filter(|_| stale.is_some()) {
                    Some((at, soft)) => tokio::time::timeout_at(at, flight.wait())
                        .await
                        .unwrap_or(Err(LoadError::TimedOut(soft))),
                    None => flight.wait().await,
                };
                let loaded = ns.fail_safe::<Optional>(result, stale)?;
                if let Some(value) = loaded.value {
                    let source = loaded.source;
                    found.insert(key, Loaded { value, source });
                }
            }
            Ok(found)
        }
    }

    /// [`get_or_load`](Self::get_or_load) for synchronous code: a leader calls `loader` on
    /// its own thread (a panic in it is caught and reported as [`LoadError::Panicked`]);
    /// other callers block until it is done. Fail-safe applies; the soft timeout applies to
    /// the callers that wait (the leader's own call cannot be interrupted), and refresh
    /// ahead is left to `get_or_load`, which can load in the background.
    ///
    /// ```
    /// use strata::store::Store;
    /// let store = Store::new();
    /// let balances = store.namespace::<i64>("default").unwrap();
    /// let loaded = balances
    ///     .get_or_load_blocking("wallet::42", |_key| Ok::<_, std::io::Error>(1_250))
    ///     .unwrap();
    /// assert_eq!((loaded.value, loaded.from_cache()), (1_250, false));
    /// ```
    pub fn get_or_load_blocking<F, E>(
        &self,
        key: impl AsRef<[u8]>,
        loader: F,
    ) -> Result<Loaded<V>, LoadError>
    where
        F: FnOnce(&Key) -> Result<V, E>,
        E: Into<Box<dyn Error + Send + Sync + 'static>>,
    {
        let key = key.as_ref();
        if let Some((value, _)) = self.lookup(key) {
            return Ok(Loaded {
                value,
                source: Source::Cache,
            });
        }
        let stale = self.stale::<Required>(key);
        let key = Key::from(key);
        let (flight, leader) = self.inner.flights.join(&key);
        if leader {
            let outcome = match catch_unwind(AssertUnwindSafe(|| loader(&key))) {
                Ok(loaded) => Outcome::loaded(loaded.map(Some)),
                Err(_) => Outcome::Panicked,
            };
            self.land(&key, &flight, outcome);
        }
        let soft = self.inner.limits.soft_timeout.filter(|_| stale.is_some());
        let result = match flight.wait_blocking(soft) {
            Some(result) => result,
            None => Err(LoadError::TimedOut(soft.unwrap_or_default())),
        };
        self.fail_safe::<Required>(result, stale)
    }

    /// What the fail-safe can fall back on for `key`: an entry past its TTL but within the
    /// stale window, in the shape `W` takes (none when the namespace has no `max_stale`).
    /// Counts nothing.
    pub(super) fn stale<W: Want<V>>(&self, key: &[u8]) -> Option<Option<V>> {
        let inner = &*self.inner;
        inner.limits.max_stale?;
        inner.cache.peek_with(key, |slot| {
            let usable = slot.is_live(&inner.core.tags) && (W::NEGATIVE || slot.value.is_some());
            usable.then(|| slot.value.clone())
        })
    }

    /// Whether a hit whose freshness ends at `fresh_until` is past the refresh point.
    #[inline]
    fn refresh_due(&self, fresh_until: u64) -> bool {
        let limits = &self.inner.limits;
        let (Some(share), Some(ttl)) = (limits.refresh_ahead, limits.ttl) else {
            return false;
        };
        if fresh_until == crate::engine::NEVER {
            return false;
        }
        let ttl = u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX);
        let ahead = ttl / 100 * u64::from(100 - share);
        self.inner.core.clock.now_nanos() >= fresh_until.saturating_sub(ahead)
    }

    /// A load's result in the shape `W` asks for, or the stale value in place of its error.
    fn fail_safe<W: Want<V>>(
        &self,
        result: Result<Loaded<Option<V>>, LoadError>,
        stale: Option<Option<V>>,
    ) -> Result<Loaded<W::Out>, LoadError> {
        let loaded = match (result, stale) {
            (Ok(loaded), _) => loaded,
            (Err(_), Some(value)) => {
                self.count_stale_served();
                Loaded {
                    value,
                    source: Source::Stale,
                }
            }
            (Err(e), None) => return Err(e),
        };
        Ok(Loaded {
            value: W::out(loaded.value)?,
            source: loaded.source,
        })
    }

    /// Ends a flight: stores a loaded value (or the origin's "not found"), records the
    /// outcome, takes the flight out of the table and wakes its waiters, in that order (see
    /// the module docs).
    fn land(&self, key: &Key, flight: &Arc<Flight<V>>, outcome: Outcome<V>) {
        self.land_with(key, flight, outcome, Put::new());
    }

    /// [`land`](Self::land), storing a loaded value as `put` says.
    pub(super) fn land_with(
        &self,
        key: &Key,
        flight: &Arc<Flight<V>>,
        outcome: Outcome<V>,
        put: Put,
    ) {
        let counters = &self.inner.loads;
        counters.loads.fetch_add(1, Ordering::Relaxed);
        counters.latency.record(flight.started.elapsed());
        match &outcome {
            Outcome::Value(found) => {
                match found {
                    // A value too heavy to cache is still handed to the callers.
                    Some(value) => drop(self.insert_with(key.clone(), value.clone(), put)),
                    None => self.store_not_found(key.clone()),
                }
                // An invalidation that came while the origin was being read must win over
                // what was read. It marks the flight, then removes the key: either its
                // removal comes after the store above and drops it, or (the lock on the
                // key's shard ordering the two) its mark is visible here.
                if flight.invalidated.load(Ordering::SeqCst) {
                    self.inner.cache.remove(key.as_bytes());
                }
            }
            Outcome::TimedOut(_) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                counters.timeouts.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Failed(_) | Outcome::Panicked | Outcome::Cancelled => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        *flight.outcome.lock() = Some(outcome);
        self.inner.flights.leave(key, flight);
        flight.notify.notify_waiters();
        flight.landed.notify_all();
    }

    pub(super) fn count_stale_served(&self) {
        let counters = &self.inner.loads;
        counters.stale_served.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a load made outside any flight (see [`super::inline`]).
    pub(super) fn count_load(&self, failed: bool) {
        let counters = &self.inner.loads;
        counters.loads.fetch_add(1, Ordering::Relaxed);
        if failed {
            counters.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The namespace's load figures.
    pub fn load_stats(&self) -> LoadStats {
        self.inner.loads.snapshot()
    }
}
