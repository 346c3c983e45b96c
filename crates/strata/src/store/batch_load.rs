//! Batch loading: [`Namespace::get_many_or_load`], many keys with one origin call for all
//! that missed, single flight still holding per key (a key another caller is loading is
//! waited for, not asked again), through the shared tier when the namespace has one. The
//! single-key machinery it shares is in `load.rs`.

use std::collections::{HashMap, HashSet};
use std::error::Error;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::flight::FlightEnd;
use super::load::{runtime, LoadError, Loaded, Optional, OriginError, Source};
use super::namespace::Namespace;
use super::shared::{Fetched, Seen, SharedTier, SharedWrite};
use crate::key::Key;
use crate::HeapSize;

impl<V> Namespace<V>
where
    V: Clone + HeapSize + Send + Sync + 'static,
{
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
        let mut seen = HashSet::new();
        let mut misses = Vec::new();
        let mut led = Vec::new();
        for key in keys {
            let key = key.as_ref();
            if seen.contains(key) {
                continue;
            }
            let key = Key::from(key);
            seen.insert(key.clone());
            match self.hit::<Optional>(key.as_bytes(), |_| true) {
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
            let keys: Vec<Key> = led.iter().map(|(key, _)| key.clone()).collect();
            match self.inner.shared.get() {
                None => self.spawn_load(runtime, led, loader(keys), |loaded, flights| {
                    origin_ends(loaded, flights.iter().map(|(key, _)| key))
                }),
                Some(tier) => {
                    let load =
                        batch_through_tier(Arc::clone(tier), keys, loader, self.inner.limits.ttl);
                    self.spawn_load(runtime, led, load, |ends, _| ends);
                }
            }
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
}

/// How each of `keys` ended, from the origin's answer for all of them.
fn origin_ends<'k, V, R, E>(
    loaded: Result<R, E>,
    keys: impl Iterator<Item = &'k Key>,
) -> Vec<FlightEnd<V>>
where
    R: IntoIterator<Item = (Key, V)>,
    E: Into<Box<dyn Error + Send + Sync + 'static>>,
{
    match loaded {
        Ok(pairs) => {
            let mut pairs: HashMap<Key, V> = pairs.into_iter().collect();
            keys.map(|key| FlightEnd::Value(pairs.remove(key)))
                .collect()
        }
        Err(e) => {
            let e: OriginError = Arc::from(e.into());
            keys.map(|_| FlightEnd::Failed(Arc::clone(&e))).collect()
        }
    }
}

/// A batch load through the shared tier: every key looked up there at once; one origin call
/// for the keys it lacks, whose values are handed back to the tier (each with what the tier
/// said of it, unless it could not answer). How each key ended, in the order of `keys`.
async fn batch_through_tier<V, F, Fut, R, E>(
    tier: Arc<dyn SharedTier<V>>,
    keys: Vec<Key>,
    loader: F,
    ttl: Option<Duration>,
) -> Vec<FlightEnd<V>>
where
    V: Send + 'static,
    F: FnOnce(Vec<Key>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<R, E>> + Send + 'static,
    R: IntoIterator<Item = (Key, V)> + Send + 'static,
    E: Into<Box<dyn Error + Send + Sync + 'static>> + Send + 'static,
{
    // The lookups run as tasks, so a batch waits one round trip, not one per key.
    let lookups: Vec<_> = keys
        .iter()
        .map(|key| tokio::spawn(tier.fetch(key)))
        .collect();
    let mut ends: Vec<Option<FlightEnd<V>>> = Vec::with_capacity(keys.len());
    let mut missed: Vec<(usize, Option<Seen>)> = Vec::new();
    for (i, lookup) in lookups.into_iter().enumerate() {
        match lookup.await.unwrap_or(Fetched::Unavailable) {
            Fetched::Found { value, ttl, tags } => {
                ends.push(Some(FlightEnd::Shared(value, ttl, tags)))
            }
            Fetched::Missing { seen } => {
                ends.push(None);
                missed.push((i, Some(seen)));
            }
            Fetched::Unavailable => {
                ends.push(None);
                missed.push((i, None));
            }
        }
    }
    if !missed.is_empty() {
        let asked: Vec<Key> = missed.iter().map(|(i, _)| keys[*i].clone()).collect();
        let origin = origin_ends(loader(asked).await, missed.iter().map(|(i, _)| &keys[*i]));
        for ((i, seen), end) in missed.into_iter().zip(origin) {
            if let (FlightEnd::Value(Some(value)), Some(seen)) = (&end, seen) {
                tier.fill(SharedWrite {
                    key: &keys[i],
                    value,
                    ttl,
                    if_unchanged: seen,
                });
            }
            ends[i] = Some(end);
        }
    }
    ends.into_iter()
        .map(|end| end.unwrap_or(FlightEnd::Cancelled))
        .collect()
}
