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

use std::error::Error;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use thiserror::Error as ThisError;

use super::flight::{Flight, FlightEnd};
use super::load_stats::LoadStats;
use super::namespace::Namespace;
use super::put::Put;
use super::shared::{Fetched, SharedTier, SharedWrite};
use super::slot::SlotState;
use crate::engine::IfPresent;
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
    /// Missed here, found in the shared tier (Redis) that other instances fill: no origin
    /// call.
    Shared,
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
    /// Lands each flight with how it ended, in order.
    fn land(&mut self, ends: impl IntoIterator<Item = FlightEnd<V>>) {
        self.landed = true;
        for ((key, flight), end) in self.flights.iter().zip(ends) {
            self.ns.land(key, flight, end);
        }
    }

    /// Lands every flight with a copy of one failure.
    fn fail(&mut self, failure: impl Fn() -> FlightEnd<V>) {
        self.land(std::iter::repeat_with(failure));
    }
}

impl<V> Drop for Landing<V>
where
    V: Clone + HeapSize + Send + Sync + 'static,
{
    fn drop(&mut self) {
        if !self.landed {
            self.fail(|| FlightEnd::Cancelled);
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
pub(super) struct Optional;

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

/// A load through the shared tier: the tier's value if it has one, else the origin's, which
/// is handed back to the tier (unless the tier could not answer: then what it holds is
/// unknown, and writing blindly could bring back a value deleted meanwhile).
async fn through_tier<V, F, Fut, E>(
    tier: Arc<dyn SharedTier<V>>,
    key: Key,
    loader: F,
    ttl: Option<Duration>,
) -> FlightEnd<V>
where
    V: Send + 'static,
    F: FnOnce(Key) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Option<V>, E>> + Send + 'static,
    E: Into<Box<dyn Error + Send + Sync + 'static>> + Send + 'static,
{
    let seen = match tier.fetch(&key).await {
        Fetched::Found { value, ttl, tags } => return FlightEnd::Shared(value, ttl, tags),
        Fetched::Missing { seen } => Some(seen),
        Fetched::Unavailable => None,
    };
    let loaded = loader(key.clone()).await;
    if let (Ok(Some(value)), Some(seen)) = (&loaded, seen) {
        tier.fill(SharedWrite {
            key: &key,
            value,
            ttl,
            if_unchanged: seen,
        });
    }
    FlightEnd::loaded(loaded)
}

/// The runtime a load would run on, or the error for a caller outside one.
pub(super) fn runtime() -> Result<tokio::runtime::Handle, LoadError> {
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

    /// Brings `key` in from the shared tier when no live entry holds it here, and returns
    /// once it is here or the tier has nothing for it. Counts no hit or miss (the read that
    /// follows does), only the load. For code that reads the store synchronously but may
    /// await before it (`strata serve` pulls a command's keys before running it). Joins a load
    /// of the key in the air; the origin is not asked (a key the tier lacks stays absent). A
    /// load overtaken by a change of the key stores nothing, so the key is looked up again,
    /// a few times at most. Without a tier, does nothing.
    pub async fn pull(&self, key: impl AsRef<[u8]>) {
        /// Overtaken this often in a row, the key is changing faster than a round trip: the
        /// read that follows answers from whatever is here.
        const TRIES: usize = 3;
        let key = key.as_ref();
        if self.inner.shared.get().is_none() {
            return;
        }
        for _ in 0..TRIES {
            if self.contains_key(key) {
                return;
            }
            let Ok(runtime) = runtime() else { return };
            let nothing = |_| async { Ok::<_, std::convert::Infallible>(None) };
            let (flight, _) = self.start_load(&runtime, Key::from(key), nothing);
            if !matches!(flight.wait().await, Ok(Loaded { value: Some(_), .. })) {
                return;
            }
        }
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
        if let Some((found, fresh_until)) = self.hit::<W>(key, |_| true) {
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

    /// A hit for a load, in the shape `W` asks for: a fresh value that `fits` (the borrowing
    /// path's callers may share a namespace with values of other kinds; everyone else accepts
    /// any), or the origin's remembered "not found" for callers that can take it, with when it
    /// stops being fresh. Counts a hit or a miss.
    #[inline]
    pub(super) fn hit<W: Want<V>>(
        &self,
        key: &[u8],
        fits: impl FnOnce(&V) -> bool,
    ) -> Option<(Option<V>, u64)> {
        self.read(key, |slot, state| {
            let found = match (state, &slot.value) {
                (SlotState::Fresh, Some(value)) if fits(value) => Some(value.clone()),
                (SlotState::Negative, None) if W::NEGATIVE => None,
                _ => return None,
            };
            Some((found, slot.fresh_until.load(Ordering::Relaxed)))
        })
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
            match self.inner.shared.get() {
                None => self.spawn_load(runtime, led, loader(key), |loaded, _| {
                    vec![FlightEnd::loaded(loaded)]
                }),
                Some(tier) => {
                    let load = through_tier(Arc::clone(tier), key, loader, self.inner.limits.ttl);
                    self.spawn_load(runtime, led, load, |end, _| vec![end]);
                }
            }
        }
        (flight, leader)
    }

    /// Runs `load` for the flights `led` (one, or a batch's) as a task on `runtime`, under
    /// the namespace's hard timeout, and lands them: `ends` turns what the loader returned
    /// into how each flight ended, in order.
    pub(super) fn spawn_load<Fut, T>(
        &self,
        runtime: &tokio::runtime::Handle,
        led: Vec<(Key, Arc<Flight<V>>)>,
        load: Fut,
        ends: impl FnOnce(T, &[(Key, Arc<Flight<V>>)]) -> Vec<FlightEnd<V>> + Send + 'static,
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
                    let ends = ends(loaded, &landing.flights);
                    landing.land(ends);
                }
                Ok(Err(e)) if e.is_panic() => landing.fail(|| FlightEnd::Panicked),
                Ok(Err(_)) => landing.fail(|| FlightEnd::Cancelled),
                Err(hard) => landing.fail(|| FlightEnd::TimedOut(hard)),
            }
        });
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
        if let Some((Some(value), _)) = self.hit::<Required>(key, |_| true) {
            return Ok(Loaded {
                value,
                source: Source::Cache,
            });
        }
        let stale = self.stale::<Required>(key);
        let key = Key::from(key);
        let (flight, leader) = self.inner.flights.join(&key);
        if leader {
            let end = match catch_unwind(AssertUnwindSafe(|| loader(&key))) {
                Ok(loaded) => FlightEnd::loaded(loaded.map(Some)),
                Err(_) => FlightEnd::Panicked,
            };
            self.land(&key, &flight, end);
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
            let usable = inner.state(slot) != SlotState::Invalidated
                && (W::NEGATIVE || slot.value.is_some());
            usable.then(|| slot.value.clone())
        })
    }

    /// Whether a hit whose freshness ends at `fresh_until` is past the refresh point.
    #[inline]
    pub(super) fn refresh_due(&self, fresh_until: u64) -> bool {
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
    pub(super) fn fail_safe<W: Want<V>>(
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

    /// Ends a flight: stores a loaded value (or the origin's "not found"), records how the
    /// flight ended, takes it out of the table and wakes its waiters, in that order (see the
    /// module docs).
    fn land(&self, key: &Key, flight: &Arc<Flight<V>>, end: FlightEnd<V>) {
        self.land_with(key, flight, end, Put::new());
    }

    /// [`land`](Self::land), storing a loaded value as `put` says.
    pub(super) fn land_with(
        &self,
        key: &Key,
        flight: &Arc<Flight<V>>,
        end: FlightEnd<V>,
        put: Put,
    ) {
        let counters = &self.inner.loads;
        counters.loads.fetch_add(1, Ordering::Relaxed);
        counters.latency.record(flight.started.elapsed());
        match &end {
            FlightEnd::Value(_) | FlightEnd::Shared(..) => {
                // Stored here only: the shared tier had the value, or was handed the origin's
                // answer by the load (see `through_tier`). A value too heavy to cache is
                // still handed to the callers.
                let stored = match &end {
                    FlightEnd::Value(Some(value)) => Some((value, put)),
                    FlightEnd::Shared(value, ttl, tags) => {
                        let put = put.tags(tags.iter().cloned());
                        let put = match ttl {
                            Some(ttl) => put.ttl(*ttl),
                            None => put.no_ttl(),
                        };
                        Some((value, put))
                    }
                    _ => None,
                };
                // Overtaken already (by an invalidation, or by an insert of a newer value,
                // which marks the flight the same way): store nothing, so what came after
                // stays.
                if !flight.invalidated.load(Ordering::SeqCst) {
                    match stored {
                        Some((value, put)) => {
                            drop(self.store(key.clone(), value.clone(), put, IfPresent::Replace))
                        }
                        None => self.store_not_found(key.clone()),
                    }
                    // Overtaken meanwhile: an invalidation marks the flight, then removes the
                    // key; either its removal comes after the store above and drops it, or
                    // (the lock on the key's shard ordering the two) its mark is visible here.
                    if flight.invalidated.load(Ordering::SeqCst) {
                        self.inner.cache.remove(key.as_bytes());
                    }
                }
            }
            FlightEnd::TimedOut(_) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                counters.timeouts.fetch_add(1, Ordering::Relaxed);
            }
            FlightEnd::Failed(_) | FlightEnd::Panicked | FlightEnd::Cancelled => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.inner.flights.land(key, flight, end);
    }

    pub(super) fn count_stale_served(&self) {
        let counters = &self.inner.loads;
        counters.stale_served.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a load made outside any flight (see [`super::borrowed_load`]).
    pub(super) fn count_load(&self, failed: bool) {
        let counters = &self.inner.loads;
        counters.loads.fetch_add(1, Ordering::Relaxed);
        if failed {
            counters.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How many callers joined the load of `key` that is in the air (0 when none is), rather
    /// than starting their own. For tests that must know other callers are waiting on a load
    /// before letting it finish; not part of the supported API.
    #[doc(hidden)]
    pub fn load_joiners(&self, key: impl AsRef<[u8]>) -> usize {
        self.inner.flights.joiners(key.as_ref())
    }

    /// The namespace's load figures.
    pub fn load_stats(&self) -> LoadStats {
        self.inner.loads.snapshot()
    }
}
