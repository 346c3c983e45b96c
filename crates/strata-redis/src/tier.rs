//! [`Tier`]: starting the shared tier beside a store, and opening namespaces on it.

use std::marker::PhantomData;
use std::sync::Arc;

use strata::config::ConfigError;
use strata::store::{
    Fetched, Invalidation, Namespace, SharedFetch, SharedTier, SharedWrite, Store, StoreBuilder,
    StoreError,
};
use strata::{HeapSize, Key};
use thiserror::Error;
use tokio::task::JoinHandle;

use crate::codec::Codec;
use crate::outbox::Job;
use crate::stats::{Counters, TierStats};
use crate::wire::{Lookup, Wire};
use crate::{tailer, writer};

/// Why the tier could not start.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TierError {
    /// The configuration has no `[redis]` section.
    #[error("no [redis] section in the configuration: nothing to share")]
    NotConfigured,
    /// The `[redis]` settings were refused by the Redis client (the URL, say).
    #[error("redis.url: {0}")]
    Url(#[source] redis::RedisError),
    /// The store could not be built.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No tokio runtime to run the tier's tasks on.
    #[error("the Redis tier needs a tokio runtime")]
    NoRuntime,
}

impl From<ConfigError> for TierError {
    fn from(e: ConfigError) -> Self {
        TierError::Store(StoreError::Config(e))
    }
}

/// Whether the instance can count on the shared tier, for health checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkHealth {
    /// Redis answers.
    Up,
    /// Redis does not answer, and `redis.required` is false: the instance serves what it
    /// holds.
    Degraded,
    /// Redis does not answer, and `redis.required` is true.
    Down,
}

/// The shared tier of one instance: a link to Redis, the writer that sends this instance's
/// writes and invalidations, and the tailer that applies other instances'. Dropping it stops
/// both tasks (what the store holds stays).
pub struct Tier {
    wire: Arc<Wire>,
    store: Store,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tier")
            .field("instance", &self.wire.instance)
            .field("link_up", &self.wire.link.is_up())
            .finish()
    }
}

impl Drop for Tier {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Tier {
    /// Builds the store from `builder` with the tier as its publisher, and starts the tier
    /// from the configuration's `[redis]` section. Needs a tokio runtime. Redis need not be
    /// up: the instance serves from itself and connects when Redis comes.
    ///
    /// Open namespaces with [`Tier::namespace`] so that the shared ones get the tier.
    pub fn start(builder: StoreBuilder) -> Result<(Store, Tier), TierError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| TierError::NoRuntime)?;
        let config = builder.config().clone();
        let redis = config.redis.clone().ok_or(TierError::NotConfigured)?;
        let wire = Arc::new(Wire::new(redis).map_err(TierError::Url)?);
        let shared: Vec<String> = config
            .namespace_names()
            .into_iter()
            .filter(|name| config.is_shared(name))
            .collect();
        let publisher = {
            let wire = Arc::clone(&wire);
            move |invalidation: &Invalidation| publish(&wire, &shared, invalidation)
        };
        let store = builder.publisher(publisher).build()?;
        let tasks = vec![
            runtime.spawn(writer::run(Arc::clone(&wire), store.clone())),
            runtime.spawn(tailer::run(Arc::clone(&wire), store.clone())),
        ];
        Ok((store.clone(), Tier { wire, store, tasks }))
    }

    /// Opens namespace `name` for values of type `V`, on the tier when the configuration
    /// shares it (every namespace unless it says `shared = false`), its values written to
    /// Redis with `codec`.
    pub fn namespace<V, C>(&self, name: &str, codec: C) -> Result<Namespace<V>, StoreError>
    where
        V: Clone + HeapSize + Send + Sync + 'static,
        C: Codec<V>,
    {
        let namespace = self.store.namespace::<V>(name)?;
        if self.store.config().is_shared(name) && !namespace.is_shared() {
            namespace.share(Arc::new(SharedNamespace {
                wire: Arc::clone(&self.wire),
                name: Arc::from(name),
                codec: Arc::new(codec),
                values: PhantomData,
            }));
        }
        Ok(namespace)
    }

    /// The tier's figures.
    pub fn stats(&self) -> TierStats {
        self.wire.stats()
    }

    /// Whether the link is up, and what it means for the instance's health if not.
    pub fn health(&self) -> LinkHealth {
        match (self.wire.link.is_up(), self.wire.config.required) {
            (true, _) => LinkHealth::Up,
            (false, false) => LinkHealth::Degraded,
            (false, true) => LinkHealth::Down,
        }
    }

    /// Why the link is down, while it is (a refused password names the settings to check).
    pub fn link_error(&self) -> Option<String> {
        self.wire.link.last_error()
    }

    /// This instance's id in the log.
    pub fn instance(&self) -> &str {
        &self.wire.instance
    }
}

/// The store's publisher: queues what concerns the shared namespaces. An invalidation of
/// one key in every namespace becomes one per shared namespace, so each is logged in its
/// key's partition with a tombstone beside it.
fn publish(wire: &Wire, shared: &[String], invalidation: &Invalidation) {
    let is_shared = |ns: &Option<String>| ns.as_ref().is_none_or(|ns| shared.contains(ns));
    let jobs: Vec<Invalidation> = match invalidation {
        Invalidation::Key {
            namespace: None,
            key,
        } => shared
            .iter()
            .map(|ns| Invalidation::Key {
                namespace: Some(ns.clone()),
                key: key.clone(),
            })
            .collect(),
        Invalidation::Key { namespace, .. }
        | Invalidation::Prefix { namespace, .. }
        | Invalidation::Pattern { namespace, .. }
        | Invalidation::Clear { namespace }
            if !is_shared(namespace) =>
        {
            Vec::new()
        }
        _ if shared.is_empty() => Vec::new(),
        other => vec![other.clone()],
    };
    for job in jobs {
        wire.outbox.push(Job::Invalidate(job));
    }
}

/// A namespace's view of the tier: the [`SharedTier`] the core calls.
struct SharedNamespace<V, C> {
    wire: Arc<Wire>,
    name: Arc<str>,
    codec: Arc<C>,
    values: PhantomData<fn() -> V>,
}

impl<V, C> SharedTier<V> for SharedNamespace<V, C>
where
    V: Send + 'static,
    C: Codec<V>,
{
    fn fetch(&self, key: &Key) -> SharedFetch<V> {
        let wire = Arc::clone(&self.wire);
        let name = Arc::clone(&self.name);
        let codec = Arc::clone(&self.codec);
        let key = key.clone();
        Box::pin(async move {
            let counters = &wire.counters;
            // Redis may still hold what this instance invalidated: go to the origin, and do
            // not fill (the invalidation, once sent, moves the key's version anyway).
            if wire.outbox.invalidation_pending(&name, &key) {
                return Fetched::Unavailable;
            }
            match wire.fetch(&name, key.as_bytes()).await {
                Lookup::Found {
                    payload,
                    ttl,
                    tags,
                    seen,
                } => match codec.decode(&payload) {
                    Ok(value) => {
                        Counters::bump(&counters.l2_hits);
                        Fetched::Found { value, ttl, tags }
                    }
                    Err(e) => {
                        Counters::bump(&counters.l2_corrupt);
                        Counters::bump(&counters.l2_misses);
                        tracing::debug!(namespace = %name, error = %e, "a value in Redis does not decode; treated as a miss");
                        Fetched::Missing { seen }
                    }
                },
                Lookup::Missing(seen) => {
                    Counters::bump(&counters.l2_misses);
                    Fetched::Missing { seen }
                }
                Lookup::Unavailable => Fetched::Unavailable,
            }
        })
    }

    fn fill(&self, fill: SharedWrite<'_, V>) {
        let mut payload = Vec::new();
        if let Err(e) = self.codec.encode(fill.value, &mut payload) {
            tracing::warn!(namespace = %self.name, error = %e, "a value could not be encoded for Redis; kept on this instance only");
            return;
        }
        // A full queue remembers that it refused something; the writer tells the fleet.
        self.wire.outbox.push(Job::Write {
            namespace: Arc::clone(&self.name),
            key: fill.key.clone(),
            payload,
            ttl: fill.ttl,
            seen: fill.if_unchanged,
        });
    }

    /// An insert drops the key in Redis and on every instance instead of writing its value
    /// there: the queue sends it later, and two instances' inserts of one key could reach
    /// Redis in either order, so a value written that way could be an older one landing
    /// after a newer (the version oracle test found it). A deletion landing late is
    /// harmless. The next load fills Redis, by version.
    fn inserted(&self, key: &Key) {
        self.wire.outbox.push(Job::Invalidate(Invalidation::Key {
            namespace: Some(self.name.to_string()),
            key: key.clone(),
        }));
    }
}
