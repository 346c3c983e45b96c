//! Namespaces, tags, invalidation and event rules over the engine.
//!
//! A [`Store`] holds named namespaces (tiers), each with its own TTL, time-to-idle, limits and
//! statistics, sharing one memory budget; a store-wide tag registry; the event rules of its
//! configuration; and an optional publisher that is told of every invalidation.
//!
//! ```
//! use strata::config::Config;
//! use strata::store::{Invalidation, Put, Store};
//! use std::collections::BTreeMap;
//!
//! let config = Config::from_sources(Some(r#"
//!     max_bytes = "64MiB"
//!     [namespaces.wallet]
//!     ttl = "2m"
//!     [namespaces.payment]
//!     ttl = "10m"
//!     [events."payment.succeeded"]
//!     params = ["user_id"]
//!     keys = ["payment::history::{user_id}"]
//!     tags = ["dashboard:{user_id}"]
//! "#), []).unwrap();
//! let store = Store::from_config(&config).unwrap();
//!
//! let payments = store.namespace::<String>("payment").unwrap();
//! let wallet = store.namespace::<i64>("wallet").unwrap();
//! payments.insert("payment::history::42", "[...]".to_string()).unwrap();
//! wallet.insert_with("wallet::42", 1_250, Put::new().tag("dashboard:42")).unwrap();
//!
//! // An event drops what its rule names, in every namespace it applies to.
//! let dropped = store.emit("payment.succeeded", [("user_id", "42")]).unwrap();
//! assert_eq!(dropped, 2);
//! assert_eq!(payments.get("payment::history::42"), None);
//! assert_eq!(wallet.get("wallet::42"), None);
//!
//! // Every invalidation is a value too, for the publisher and for instances that receive it.
//! let inv = Invalidation::Prefix { namespace: Some("wallet".into()), prefix: "wallet::".into() };
//! assert_eq!(store.invalidate(&inv).unwrap(), 0);
//! ```
//!
//! ## One engine per namespace
//! Each namespace has an engine of its own ([`Cache`](crate::Cache)), built the first time
//! [`Store::namespace`] asks for it with the value type it holds. Why not one engine with the
//! namespace in the key: per-namespace bounds are then exact and a scan in one namespace
//! cannot evict another's working set, clearing a namespace is swapping its shards, and stats
//! are per namespace for free. docs/design.md has the measurements behind this choice.
//!
//! ## The budget
//! The store's `max_bytes` is divided when it is built (see
//! [`Config::budget_shares`](crate::config::Config::budget_shares)): namespaces with a
//! `max_bytes` of their own get it, the others split the rest evenly. Each engine holds its
//! share exactly, so the store never holds more than its budget.
//!
//! ## Invalidation
//! By key, prefix and glob pattern within a namespace (or all of them); by tag across the
//! store, in O(1) whatever the number of entries tagged (see `tags.rs`: generations checked
//! on read; the dead entries are removed in the background); by event, through the rules of
//! the configuration (see [`config`](crate::config) for how rules are written). Each is an
//! [`Invalidation`] value; applying one locally
//! hands it to the publisher, and [`Store::apply_remote`] applies one received from another
//! instance without publishing it again.

mod batch_load;
mod borrowed_load;
mod flight;
mod hot;
mod invalidation;
mod janitor;
mod latency;
mod load;
mod load_stats;
mod namespace;
mod put;
mod shared;
mod slot;
mod stats;
mod tags;

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use thiserror::Error;

pub use hot::{HotKey, SAMPLE_EVERY};
pub use invalidation::{Invalidation, Publisher};
pub use latency::{Latency, LATENCY_BOUNDS};
pub use load::{LoadError, LoadFuture, Loaded, OriginError, Source};
pub use load_stats::LoadStats;
pub use namespace::Namespace;
pub use put::{Current, Put, Update};
pub use shared::{
    Claim, ClaimError, Fetched, Seen, SharedClaim, SharedFetch, SharedTier, SharedWrite,
};
pub use stats::{NamespaceStats, StoreStats};

use crate::config::events::Rules;
use crate::config::{Config, ConfigError, NamespaceConfig};
use crate::{BuildError, Clock, HeapSize};
use janitor::Janitor;
use namespace::{AnyNamespace, NsInner};

/// Why the store refused something.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No namespace of that name is configured.
    #[error("no namespace {0:?} (configure it under [namespaces])")]
    UnknownNamespace(String),
    /// The namespace already holds values of another type.
    #[error("namespace {namespace:?} holds {holds}, not {asked}")]
    WrongType {
        /// The namespace.
        namespace: String,
        /// The type it was first opened with.
        holds: &'static str,
        /// The type asked for now.
        asked: &'static str,
    },
    /// No rule for that event.
    #[error("no rule for event {0:?}")]
    UnknownEvent(String),
    /// The event's rules need a parameter that was not given.
    #[error("event {event:?} needs parameter {param:?}")]
    MissingParam {
        /// The event emitted (or cascaded into).
        event: String,
        /// The parameter.
        param: String,
    },
    /// The configuration was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A namespace's engine could not be built from its limits.
    #[error("namespace {namespace:?}: {source}")]
    Build {
        /// The namespace.
        namespace: String,
        /// Why.
        source: BuildError,
    },
}

/// What namespaces share: tags, the publisher, the janitor, the clock.
pub(crate) struct Core {
    tags: tags::TagRegistry,
    publisher: Option<Arc<Publisher>>,
    janitor: Janitor,
    clock: Clock,
}

impl Core {
    fn publish(&self, invalidation: &Invalidation) {
        if let Some(publisher) = &self.publisher {
            publisher(invalidation);
        }
    }
}

struct Opened {
    ns: Arc<dyn AnyNamespace>,
    typed: Arc<dyn Any + Send + Sync>,
    type_name: &'static str,
}

impl Opened {
    /// A typed handle to the namespace `name`, if it holds values of type `V`.
    fn handle<V>(&self, name: &str) -> Result<Namespace<V>, StoreError>
    where
        V: Clone + HeapSize + Send + Sync + 'static,
    {
        Arc::clone(&self.typed)
            .downcast::<NsInner<V>>()
            .map(|inner| Namespace { inner })
            .map_err(|_| StoreError::WrongType {
                namespace: name.to_owned(),
                holds: self.type_name,
                asked: std::any::type_name::<V>(),
            })
    }
}

struct NamespaceSlot {
    /// Its settings, with `max_bytes` set to its share of the budget when it was built.
    limits: NamespaceConfig,
    /// Its share of the budget now (see [`Store::set_max_bytes`]).
    share: AtomicU64,
    opened: RwLock<Option<Opened>>,
}

pub(crate) struct StoreInner {
    core: Arc<Core>,
    namespaces: BTreeMap<String, NamespaceSlot>,
    rules: Rules,
    config: Config,
    /// The budget now: `config.max_bytes` until [`Store::set_max_bytes`] changes it. The
    /// mutex serialises resizes.
    max_bytes: parking_lot::Mutex<u64>,
}

impl Drop for StoreInner {
    fn drop(&mut self) {
        self.core.janitor.retire();
    }
}

impl StoreInner {
    fn opened(&self) -> Vec<(String, Arc<dyn AnyNamespace>)> {
        self.namespaces
            .iter()
            .filter_map(|(name, slot)| {
                slot.opened
                    .read()
                    .as_ref()
                    .map(|o| (name.clone(), Arc::clone(&o.ns)))
            })
            .collect()
    }

    /// Removes every entry whose tags were invalidated; returns how many.
    fn purge_dead(&self) -> u64 {
        let n = self.opened().iter().map(|(_, ns)| ns.purge_dead()).sum();
        self.core.tags.collect();
        n
    }

    /// Periodic work: expired entries and unused tags.
    fn maintain(&self) {
        for (_, ns) in self.opened() {
            ns.reclaim_expired();
        }
        self.core.tags.collect();
    }

    /// The namespaces `scope` names (all of them for `None`), opened or not.
    fn scope(&self, scope: Option<&str>) -> Result<Vec<Arc<dyn AnyNamespace>>, StoreError> {
        match scope {
            None => Ok(self.opened().into_iter().map(|(_, ns)| ns).collect()),
            Some(name) => {
                let slot = self
                    .namespaces
                    .get(name)
                    .ok_or_else(|| StoreError::UnknownNamespace(name.to_owned()))?;
                Ok(slot
                    .opened
                    .read()
                    .as_ref()
                    .map(|o| Arc::clone(&o.ns))
                    .into_iter()
                    .collect())
            }
        }
    }
}

/// Builds a [`Store`]: a configuration, and optionally a clock, a publisher and how often the
/// background thread does its periodic work.
#[must_use = "a builder does nothing until build() is called"]
pub struct StoreBuilder {
    config: Config,
    clock: Clock,
    publisher: Option<Arc<Publisher>>,
    maintenance: Duration,
}

impl StoreBuilder {
    /// The configuration the store will be built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The clock every namespace uses (a [`MockClock`](crate::MockClock) in tests).
    pub fn clock(mut self, clock: impl Into<Clock>) -> Self {
        self.clock = clock.into();
        self
    }

    /// Told of every invalidation applied locally (see [`Publisher`]).
    pub fn publisher(mut self, publisher: impl Fn(&Invalidation) + Send + Sync + 'static) -> Self {
        self.publisher = Some(Arc::new(publisher));
        self
    }

    /// How often the background thread reclaims expired entries and unused tags (default 5 s).
    pub fn maintenance_interval(mut self, every: Duration) -> Self {
        self.maintenance = every;
        self
    }

    /// Checks the configuration and starts the background thread. Namespaces' engines are
    /// built when first opened.
    pub fn build(self) -> Result<Store, StoreError> {
        let shares = self.config.budget_shares()?;
        let names: std::collections::BTreeSet<String> = shares.keys().cloned().collect();
        let rules = Rules::compile(&self.config.events, &names)?;
        let namespaces = shares
            .into_iter()
            .map(|(name, bytes)| {
                let limits = NamespaceConfig {
                    max_bytes: Some(bytes),
                    ..self.config.namespace(&name).clone()
                };
                let slot = NamespaceSlot {
                    limits,
                    share: AtomicU64::new(bytes),
                    opened: RwLock::new(None),
                };
                (name, slot)
            })
            .collect();
        let janitor = Janitor::new();
        let core = Arc::new(Core {
            tags: tags::TagRegistry::new(),
            publisher: self.publisher,
            janitor,
            clock: self.clock,
        });
        let inner = Arc::new(StoreInner {
            core,
            namespaces,
            rules,
            max_bytes: parking_lot::Mutex::new(self.config.max_bytes),
            config: self.config,
        });
        inner.core.janitor.start(
            Arc::downgrade(&inner),
            self.maintenance.max(Duration::from_millis(1)),
        );
        Ok(Store { inner })
    }
}

/// Named namespaces over one memory budget, with tags, invalidation and event rules. Cheap to
/// clone; every clone is the same store. See the [module docs](self).
#[derive(Clone)]
pub struct Store {
    inner: Arc<StoreInner>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field(
                "namespaces",
                &self.inner.namespaces.keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Store {
    /// A store with the default configuration: one namespace, `default`, with the whole
    /// default budget (256 MiB), no TTL.
    pub fn new() -> Self {
        match Self::builder(Config::default()).build() {
            Ok(store) => store,
            // The default configuration is valid; a test pins it.
            Err(e) => unreachable!("the default configuration was refused: {e}"),
        }
    }

    /// A store for `config` with the system clock and no publisher.
    pub fn from_config(config: &Config) -> Result<Self, StoreError> {
        Self::builder(config.clone()).build()
    }

    /// Starts building a store for `config`.
    pub fn builder(config: Config) -> StoreBuilder {
        StoreBuilder {
            config,
            clock: Clock::system(),
            publisher: None,
            maintenance: Duration::from_secs(5),
        }
    }

    /// The configuration the store runs with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The namespaces' names.
    pub fn namespace_names(&self) -> impl Iterator<Item = &str> {
        self.inner.namespaces.keys().map(String::as_str)
    }

    /// The namespace `name`, holding values of type `V`. The first call builds its engine;
    /// later calls with the same type return handles to it, with another type an error.
    pub fn namespace<V>(&self, name: &str) -> Result<Namespace<V>, StoreError>
    where
        V: Clone + HeapSize + Send + Sync + 'static,
    {
        let slot = self
            .inner
            .namespaces
            .get(name)
            .ok_or_else(|| StoreError::UnknownNamespace(name.to_owned()))?;
        if let Some(opened) = slot.opened.read().as_ref() {
            return opened.handle(name);
        }
        // The budget's lock first (as `set_max_bytes` takes them), so a resize cannot pass
        // between reading the share and publishing the engine built with it.
        let _budget = self.inner.max_bytes.lock();
        let mut opened = slot.opened.write();
        if let Some(opened) = opened.as_ref() {
            return opened.handle(name);
        }
        let limits = NamespaceConfig {
            max_bytes: Some(slot.share.load(Ordering::Relaxed)),
            ..slot.limits.clone()
        };
        let ns = Namespace::<V>::build(name, limits, Arc::clone(&self.inner.core)).map_err(
            |source| StoreError::Build {
                namespace: name.to_owned(),
                source,
            },
        )?;
        *opened = Some(Opened {
            ns: Arc::clone(&ns.inner) as Arc<dyn AnyNamespace>,
            typed: Arc::clone(&ns.inner).into_any(),
            type_name: std::any::type_name::<V>(),
        });
        Ok(ns)
    }

    /// The memory budget now, in bytes.
    pub fn max_bytes(&self) -> u64 {
        *self.inner.max_bytes.lock()
    }

    /// Changes the memory budget (Redis's `CONFIG SET maxmemory`): the shares are divided
    /// again as at build time (see [`Config::budget_shares`]) and each namespace that shrinks
    /// evicts by its policy until it fits. Fails, changing nothing, when the new budget is
    /// above [`MAX_BUDGET`](crate::config::MAX_BUDGET), cannot hold the namespaces' own
    /// `max_bytes`, or leaves too little for the others.
    pub fn set_max_bytes(&self, max_bytes: u64) -> Result<(), StoreError> {
        let mut budget = self.inner.max_bytes.lock();
        let config = Config {
            max_bytes,
            ..self.inner.config.clone()
        };
        let shares = config.budget_shares()?;
        for (name, share) in shares {
            let Some(slot) = self.inner.namespaces.get(&name) else {
                continue;
            };
            slot.share.store(share, Ordering::Relaxed);
            if let Some(opened) = slot.opened.read().as_ref() {
                opened.ns.set_max_bytes(share);
            }
        }
        *budget = max_bytes;
        Ok(())
    }

    /// The approximate `n` hottest keys of namespace `name`.
    pub fn hot_keys(&self, name: &str, n: usize) -> Result<Vec<HotKey>, StoreError> {
        Ok(self
            .inner
            .scope(Some(name))?
            .first()
            .map(|ns| ns.hot_keys(n))
            .unwrap_or_default())
    }

    /// Does now what the background thread does soon: waits for it to free what clears left
    /// behind, removes entries whose tags were invalidated, reclaims expired entries and
    /// unused tags. Returns how many entries it removed. For tests, and for callers who want
    /// the memory back at a moment of their choosing.
    pub fn run_pending_tasks(&self) -> u64 {
        let before = self.inner.core.janitor.purged();
        self.inner.core.janitor.barrier();
        let mut n = self.inner.core.janitor.purged().saturating_sub(before);
        // Expired entries first: the purge would remove them too, without counting them.
        for (_, ns) in self.inner.opened() {
            n += ns.reclaim_expired() as u64;
        }
        n + self.inner.purge_dead()
    }

    /// Bytes held by the engines' own structures (not what keys and values own).
    pub fn engine_heap_bytes(&self) -> usize {
        self.inner
            .opened()
            .iter()
            .map(|(_, ns)| ns.engine_heap_bytes())
            .sum()
    }
}
