//! [`Tier`]: starting the shared tier beside a store, and opening namespaces on it.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use strata::config::ConfigError;
use strata::store::{
    Claim, Fetched, Invalidation, Namespace, SharedClaim, SharedFetch, SharedTier, SharedWrite,
    Store, StoreBuilder, StoreError,
};
use strata::{HeapSize, Key};
use thiserror::Error;
use tokio::task::JoinHandle;

use crate::codec::Codec;
use crate::held::Held;
use crate::outbox::Job;
use crate::packing::Packing;
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
    /// The write-through namespaces, for the writer to read what it sends.
    held: Arc<Held>,
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
        let packing = Packing::from_config(&config);
        let wire = Arc::new(Wire::new(redis, packing).map_err(TierError::Url)?);
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
        let held = Arc::new(Held::default());
        let tasks = vec![
            runtime.spawn(writer::run(
                Arc::clone(&wire),
                store.clone(),
                Arc::clone(&held),
            )),
            runtime.spawn(tailer::run(Arc::clone(&wire), store.clone())),
        ];
        let tier = Tier {
            wire,
            store: store.clone(),
            held,
            tasks,
        };
        Ok((store, tier))
    }

    /// Opens namespace `name` for values of type `V`, on the tier when the configuration
    /// shares it (every namespace unless it says `shared = false`), its values written to
    /// Redis with `codec`. The origin is the source of truth: a load that misses everywhere
    /// fills Redis, and an insert drops the key in Redis and on every instance (the next
    /// load fills it again).
    pub fn namespace<V, C>(&self, name: &str, codec: C) -> Result<Namespace<V>, StoreError>
    where
        V: Clone + HeapSize + Send + Sync + 'static,
        C: Codec<V>,
    {
        self.open(name, codec, false)
    }

    /// Opens namespace `name` like [`namespace`](Self::namespace), with Redis as the source
    /// of truth instead of an origin (`strata serve`): an insert or update here is written
    /// through to Redis with a new version, and every other instance drops what it held for
    /// the key and reads the new value from Redis. Wait for the writes with
    /// [`settled`](Self::settled) before acknowledging them.
    pub fn write_through_namespace<V, C>(
        &self,
        name: &str,
        codec: C,
    ) -> Result<Namespace<V>, StoreError>
    where
        V: Clone + HeapSize + Send + Sync + 'static,
        C: Codec<V>,
    {
        self.open(name, codec, true)
    }

    /// Opens `name`, on the tier when shared, written through to Redis when `through`.
    fn open<V, C>(&self, name: &str, codec: C, through: bool) -> Result<Namespace<V>, StoreError>
    where
        V: Clone + HeapSize + Send + Sync + 'static,
        C: Codec<V>,
    {
        let namespace = self.store.namespace::<V>(name)?;
        if self.store.config().is_shared(name) && !namespace.is_shared() {
            let codec = Arc::new(codec);
            let writes = if through {
                self.held.register(namespace.clone(), Arc::clone(&codec));
                Writes::Through(Arc::clone(&self.held))
            } else {
                Writes::Invalidate
            };
            namespace.share(Arc::new(SharedNamespace {
                wire: Arc::clone(&self.wire),
                name: Arc::from(name),
                codec,
                writes,
                values: PhantomData,
            }));
        }
        Ok(namespace)
    }

    /// Waits until the tier follows the invalidation log (connected, and caught up), for at
    /// most `limit`; returns whether it does. A server should wait for it before taking
    /// writes: what it holds is marked unverified when it first catches up.
    pub async fn ready(&self, limit: Duration) -> bool {
        let following = async {
            while !self
                .wire
                .following
                .load(std::sync::atomic::Ordering::SeqCst)
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(limit, following).await.is_ok()
    }

    /// Waits until the writes and invalidations this instance queued before the call have
    /// reached Redis, for at most `limit`; returns whether they did. While the link is down
    /// they stay queued (and are sent when it is back): returns false as soon as it is.
    pub async fn settled(&self, limit: Duration) -> bool {
        /// How often a wait looks at the link.
        const LOOK: Duration = Duration::from_millis(50);
        let deadline = tokio::time::Instant::now() + limit;
        let settled = self.wire.outbox.settled();
        tokio::pin!(settled);
        loop {
            if !self.wire.link.is_up() {
                return self.wire.outbox.len() == 0;
            }
            let look = deadline.min(tokio::time::Instant::now() + LOOK);
            match tokio::time::timeout_at(look, &mut settled).await {
                Ok(()) => return true,
                Err(_) if look >= deadline => return false,
                Err(_) => {}
            }
        }
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

/// What an insert or update of a shared key does in Redis.
enum Writes {
    /// Drops the key there and on every instance (an origin is the source of truth).
    Invalidate,
    /// Writes the new value through (Redis is the source of truth), read from what this
    /// instance holds.
    Through(Arc<Held>),
}

/// A namespace's view of the tier: the [`SharedTier`] the core calls.
struct SharedNamespace<V, C> {
    wire: Arc<Wire>,
    name: Arc<str>,
    codec: Arc<C>,
    writes: Writes,
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
        let through = matches!(self.writes, Writes::Through(_));
        Box::pin(async move {
            let counters = &wire.counters;
            if wire.outbox.invalidation_pending(&name, &key) {
                // Redis may still hold what this instance changed, and this instance never
                // hears of its own change. With an origin: go to it, and do not fill (the
                // invalidation, once sent, moves the key's version anyway). Write-through,
                // Redis is the only source: read it once the change is there (a write's
                // round trip, unless Redis is away).
                if !through || !wire.own_change_sent(&name, &key).await {
                    return Fetched::Unavailable;
                }
            }
            match wire.fetch(&name, key.as_bytes(), through).await {
                Lookup::Found {
                    payload,
                    ttl,
                    tags,
                    version,
                } => match codec.decode(&payload) {
                    Ok(value) => {
                        Counters::bump(&counters.l2_hits);
                        Fetched::Found { value, ttl, tags }
                    }
                    Err(e) => {
                        Counters::bump(&counters.l2_corrupt);
                        Counters::bump(&counters.l2_misses);
                        tracing::debug!(namespace = %name, error = %e, "a value in Redis does not decode; treated as a miss");
                        match wire.seen(&name, key.as_bytes(), version, through).await {
                            Some(seen) => Fetched::Missing { seen },
                            None => Fetched::Unavailable,
                        }
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

    fn claim(&self, key: &Key, value: &V, ttl: Option<Duration>) -> SharedClaim<V> {
        let mut payload = Vec::new();
        if let Err(e) = self.codec.encode(value, &mut payload) {
            tracing::warn!(namespace = %self.name, error = %e, "a value could not be encoded for Redis; the claim is undecided");
            return Box::pin(std::future::ready(Claim::Undecided));
        }
        let wire = Arc::clone(&self.wire);
        let name = Arc::clone(&self.name);
        let codec = Arc::clone(&self.codec);
        let key = key.clone();
        Box::pin(async move {
            // This instance's own change of the key goes first (a DEL, then a SET NX).
            if !wire.own_change_sent(&name, &key).await {
                return Claim::Undecided;
            }
            match wire.claim(&name, key.as_bytes(), payload, ttl).await {
                Ok(None) => {
                    Counters::bump(&wire.counters.writes_sent);
                    Claim::Won
                }
                Ok(Some(existing)) => match codec.decode(&existing) {
                    Ok(value) => Claim::Lost(value),
                    Err(_) => {
                        Counters::bump(&wire.counters.l2_corrupt);
                        Claim::Undecided
                    }
                },
                Err(e) => {
                    Counters::bump(&wire.counters.l2_errors);
                    tracing::debug!(namespace = %name, error = %e, "a claim could not be decided");
                    Claim::Undecided
                }
            }
        })
    }

    /// With an origin, an insert drops the key in Redis and on every instance instead of
    /// writing its value there: the queue sends it later, and two instances' inserts of one
    /// key could reach Redis in either order, so a value written that way could be an older
    /// one landing after a newer (the version oracle test found it). A deletion landing late
    /// is harmless. The next load fills Redis, by version.
    ///
    /// Write-through, the job names the key only, and the writer sends what this instance
    /// holds for it when the job goes. Redis's order decides between instances: each
    /// write-through is logged, so every other instance drops its copy and reads back the
    /// last value Redis took; an instance that heard of another's write before sending its
    /// own has dropped its copy, and sends nothing.
    fn inserted(&self, key: &Key) {
        let key = key.clone();
        self.wire.outbox.push(match &self.writes {
            Writes::Invalidate => Job::Invalidate(Invalidation::Key {
                namespace: Some(self.name.to_string()),
                key,
            }),
            Writes::Through(held) => Job::Store {
                namespace: Arc::clone(&self.name),
                expires: held.expires(&self.name, &key),
                key,
            },
        });
    }
}
