//! How to warm one namespace: the `WarmJob` builder, the closures it is given, and how the
//! answer to one batch is stored.

use std::collections::{BTreeSet, HashSet};
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::{Retry, ALL};
use crate::key::Key;
use crate::store::{Namespace, Put};
use crate::HeapSize;

pub(super) type BoxError = Box<dyn Error + Send + Sync + 'static>;
pub(super) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
pub(super) type ListFn = dyn Fn() -> BoxFuture<Result<Vec<Key>, BoxError>> + Send + Sync;
type LoadFn<V> = dyn Fn(Vec<Key>) -> BoxFuture<Result<Vec<(Key, V)>, BoxError>> + Send + Sync;
/// Loads one batch and stores what came back; type-erased over the namespace's value type.
pub(super) type BatchFn = dyn Fn(Vec<Key>) -> BoxFuture<Result<Stored, BoxError>> + Send + Sync;

/// A type parameter of [`WarmJob`]: this closure was not given yet. A job with a `Missing`
/// part cannot be added to a [`Warmer`](super::Warmer).
#[derive(Debug)]
pub struct Missing(());

/// A type parameter of [`WarmJob`]: the closure that lists the keys, given with
/// [`WarmJob::keys`] (boxed).
pub struct KeyLister(pub(super) Arc<ListFn>);

/// A type parameter of [`WarmJob`]: the closure that loads a batch, given with
/// [`WarmJob::load`] (boxed).
pub struct BatchLoader<V>(pub(super) Arc<LoadFn<V>>);

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

/// How to warm one namespace; added to a [`Warmer`](super::Warmer) with
/// [`Warmer::add`](super::Warmer::add). `K` and `L` track whether [`keys`](Self::keys) and
/// [`load`](Self::load) were given (see the [module docs](super#a-job)).
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
    pub(super) name: String,
    pub(super) ns: Namespace<V>,
    pub(super) scopes: BTreeSet<String>,
    pub(super) priority: i32,
    pub(super) batch_size: usize,
    pub(super) concurrency: usize,
    pub(super) retry: Retry,
    pub(super) put: Put,
    pub(super) on_start: bool,
    pub(super) every: Option<Duration>,
    pub(super) keys: K,
    pub(super) load: L,
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

    /// [`Warmer::start`](super::Warmer::start) runs the job once at start-up.
    pub fn on_start(mut self) -> Self {
        self.on_start = true;
        self
    }

    /// [`Warmer::start`](super::Warmer::start) runs the job every `period` (see the
    /// [module docs](super#start-up-and-periodic-runs)); a period under 1 ms is taken as 1 ms.
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
pub(super) struct Stored {
    pub(super) loaded: u64,
    pub(super) failed: u64,
    pub(super) missing: u64,
}

/// Stores the pairs answering `asked` (see the module docs for what counts as what).
pub(super) fn store_batch<V>(
    ns: &Namespace<V>,
    put: &Put,
    asked: Vec<Key>,
    pairs: Vec<(Key, V)>,
) -> Stored
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
