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

mod hot;
mod inline;
mod janitor;
mod latency;
mod load;
mod namespace;
pub(crate) mod rules;
mod tags;

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use hot::{HotKey, SAMPLE_EVERY};
pub use latency::{Latency, LATENCY_BOUNDS};
pub use load::{LoadError, LoadFuture, LoadStats, Loaded, OriginError, Source};
pub use namespace::{Current, Namespace, Put, Update};

use crate::config::{Config, ConfigError, NamespaceConfig};
use crate::key::Key;
use crate::{BuildError, CacheStats, Clock, HeapSize, Pattern};
use janitor::Janitor;
use namespace::{AnyNamespace, NsInner};
use rules::{Escape, Rules};

/// One invalidation, as applied locally and as published to other instances. Serialised
/// with serde (externally tagged: `{"tag": {"tag": "dashboard:42"}}`); keys, prefixes and
/// patterns are strings when they are UTF-8. A `namespace` of `None` means every namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Invalidation {
    /// One key.
    Key {
        /// Where; every namespace when `None`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
        /// The key.
        key: Key,
    },
    /// Every key starting with `prefix`.
    Prefix {
        /// Where; every namespace when `None`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
        /// The prefix.
        prefix: Key,
    },
    /// Every key matching a glob pattern (Redis `MATCH` syntax).
    Pattern {
        /// Where; every namespace when `None`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
        /// The pattern.
        pattern: Key,
    },
    /// Every entry carrying a tag, in every namespace.
    Tag {
        /// The tag.
        tag: String,
    },
    /// An event, run through the rules. Published as the event (one message however much it
    /// expands to); each instance expands it with its own rules.
    Event {
        /// The event's name.
        event: String,
        /// Its parameters.
        #[serde(default)]
        params: BTreeMap<String, String>,
    },
    /// Everything in a namespace, or in every namespace.
    Clear {
        /// Which; every namespace when `None`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
    },
}

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

/// Called with every invalidation applied locally (not with those from
/// [`Store::apply_remote`]). It runs inline with the invalidation: hand the value to a
/// channel or a task rather than doing I/O here.
pub type Publisher = dyn Fn(&Invalidation) + Send + Sync + 'static;

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

/// A namespace's figures, for the admin API and metrics.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NamespaceStats {
    /// The namespace's counters (zero until it is first opened).
    #[serde(serialize_with = "serialize_stats")]
    pub stats: CacheStats,
    /// Its loads through `get_or_load` and the like.
    pub loads: LoadStats,
    /// The settings it runs with; `max_bytes` is its share of the budget.
    pub limits: NamespaceConfig,
    /// Whether it was opened (has an engine).
    pub opened: bool,
}

/// Every namespace's figures and their sum.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoreStats {
    /// Summed over namespaces.
    #[serde(serialize_with = "serialize_stats")]
    pub total: CacheStats,
    /// Load figures summed over namespaces.
    pub loads: LoadStats,
    /// The store's budget in bytes.
    pub max_bytes: u64,
    /// By namespace name.
    pub namespaces: BTreeMap<String, NamespaceStats>,
}

fn serialize_stats<S: serde::Serializer>(stats: &CacheStats, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct;
    let mut out = s.serialize_struct("CacheStats", 10)?;
    out.serialize_field("hits", &stats.hits)?;
    out.serialize_field("misses", &stats.misses)?;
    out.serialize_field("hit_ratio", &stats.hit_ratio())?;
    out.serialize_field("inserts", &stats.inserts)?;
    out.serialize_field("updates", &stats.updates)?;
    out.serialize_field("removals", &stats.removals)?;
    out.serialize_field("expirations", &stats.expirations)?;
    out.serialize_field("evictions", &stats.evictions)?;
    out.serialize_field("entries", &stats.entries)?;
    out.serialize_field("bytes", &stats.weighted_size)?;
    out.end()
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

    /// Applies `invalidation` here and hands it to the publisher. Returns how many live
    /// entries it dropped: exact for keys, prefixes and patterns; for a tag, the count of
    /// [`tag_count`](Self::tag_count) (an upper bound); for a clear, the entries held; for
    /// an event, the sum of its parts (so an entry dropped by two of them counts twice).
    pub fn invalidate(&self, invalidation: &Invalidation) -> Result<u64, StoreError> {
        let n = self.apply(invalidation)?;
        self.inner.core.publish(invalidation);
        Ok(n)
    }

    /// Applies an invalidation received from another instance, without publishing it again.
    pub fn apply_remote(&self, invalidation: &Invalidation) -> Result<u64, StoreError> {
        self.apply(invalidation)
    }

    fn apply(&self, invalidation: &Invalidation) -> Result<u64, StoreError> {
        let inner = &*self.inner;
        Ok(match invalidation {
            Invalidation::Key { namespace, key } => inner
                .scope(namespace.as_deref())?
                .iter()
                .map(|ns| ns.remove_key(key.as_bytes()))
                .sum(),
            Invalidation::Prefix { namespace, prefix } => inner
                .scope(namespace.as_deref())?
                .iter()
                .map(|ns| ns.remove_prefix(prefix.as_bytes()))
                .sum(),
            Invalidation::Pattern { namespace, pattern } => {
                let pattern = Pattern::new(pattern.as_bytes());
                inner
                    .scope(namespace.as_deref())?
                    .iter()
                    .map(|ns| ns.remove_pattern(&pattern))
                    .sum()
            }
            Invalidation::Tag { tag } => self.kill_tag(tag),
            Invalidation::Clear { namespace } => inner
                .scope(namespace.as_deref())?
                .iter()
                .map(|ns| ns.clear_now())
                .sum(),
            Invalidation::Event { event, params } => self.run_event(event, params)?,
        })
    }

    fn kill_tag(&self, tag: &str) -> u64 {
        let n = self.inner.core.tags.invalidate(tag);
        if n > 0 && !self.inner.core.janitor.request_purge() {
            // No background thread: reclaim here.
            self.inner.purge_dead();
        }
        n
    }

    /// Expands an event through the rules (checking every parameter first, so that a bad
    /// event drops nothing) and applies what it names.
    fn run_event(&self, event: &str, params: &BTreeMap<String, String>) -> Result<u64, StoreError> {
        let rules = &self.inner.rules;
        let rule = rules
            .events
            .get(event)
            .ok_or_else(|| StoreError::UnknownEvent(event.to_owned()))?;
        if let Some(missing) = rule.params.iter().find(|p| !params.contains_key(*p)) {
            return Err(StoreError::MissingParam {
                event: event.to_owned(),
                param: missing.clone(),
            });
        }
        let mut dropped = 0;
        // Cascades are acyclic (checked at load), so this walk ends. Every event runs once
        // however many paths reach it (all run with the same parameters, so a second run
        // would drop nothing; without this, a chain of diamonds runs exponentially often).
        let mut pending = vec![event];
        let mut seen = std::collections::BTreeSet::new();
        while let Some(name) = pending.pop() {
            if !seen.insert(name) {
                continue;
            }
            let rule = &rules.events[name];
            let render = |t: &rules::Template, escape| {
                t.render(params, escape)
                    .map_err(|param| StoreError::MissingParam {
                        event: name.to_owned(),
                        param,
                    })
            };
            let scopes: Vec<Option<&str>> = if rule.namespaces.is_empty() {
                vec![None]
            } else {
                rule.namespaces.iter().map(|n| Some(n.as_str())).collect()
            };
            for scope in scopes {
                let targets = self.inner.scope(scope)?;
                for key in &rule.keys {
                    let key = render(key, Escape::Key)?;
                    dropped += targets
                        .iter()
                        .map(|ns| ns.remove_key(key.as_bytes()))
                        .sum::<u64>();
                }
                for prefix in &rule.prefixes {
                    let prefix = render(prefix, Escape::Key)?;
                    dropped += targets
                        .iter()
                        .map(|ns| ns.remove_prefix(prefix.as_bytes()))
                        .sum::<u64>();
                }
                for pattern in &rule.patterns {
                    let pattern = Pattern::new(render(pattern, Escape::Glob)?);
                    dropped += targets
                        .iter()
                        .map(|ns| ns.remove_pattern(&pattern))
                        .sum::<u64>();
                }
            }
            for tag in &rule.tags {
                dropped += self.kill_tag(&render(tag, Escape::Raw)?);
            }
            pending.extend(rule.cascade.iter().map(String::as_str));
        }
        Ok(dropped)
    }

    /// Drops every entry carrying `tag`, in every namespace, and returns how many carried it
    /// (as [`tag_count`](Self::tag_count) counts them). O(1) for the caller however many
    /// that is: readers miss on them from now on, and they are removed from memory by the
    /// background thread soon after.
    pub fn invalidate_tag(&self, tag: &str) -> u64 {
        let invalidation = Invalidation::Tag {
            tag: tag.to_owned(),
        };
        // A tag names no namespace, so applying it cannot fail.
        self.invalidate(&invalidation).unwrap_or(0)
    }

    /// How many entries carry `tag` now, counted in O(1): an upper bound of the live ones.
    /// Until the background thread has caught up it also counts entries that are already
    /// dead another way (expired, killed through another of their tags, or cleared) but not
    /// yet freed; after [`run_pending_tasks`](Self::run_pending_tasks) it is exact.
    pub fn tag_count(&self, tag: &str) -> u64 {
        self.inner.core.tags.count(tag)
    }

    /// Emits `event` with `params` through the rules; returns how many entries it dropped.
    pub fn emit<K, V>(
        &self,
        event: &str,
        params: impl IntoIterator<Item = (K, V)>,
    ) -> Result<u64, StoreError>
    where
        K: Into<String>,
        V: Into<String>,
    {
        self.invalidate(&Invalidation::Event {
            event: event.to_owned(),
            params: params
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        })
    }

    /// Empties the namespace `name` in O(1) (see [`Namespace::clear`]).
    pub fn clear_namespace(&self, name: &str) -> Result<u64, StoreError> {
        self.invalidate(&Invalidation::Clear {
            namespace: Some(name.to_owned()),
        })
    }

    /// Empties every namespace in O(1) per namespace.
    pub fn clear(&self) -> u64 {
        self.invalidate(&Invalidation::Clear { namespace: None })
            .unwrap_or(0)
    }

    /// Every namespace's counters and limits, and their sum.
    pub fn stats(&self) -> StoreStats {
        let mut total = CacheStats::default();
        let mut total_loads = LoadStats::default();
        let namespaces = self
            .inner
            .namespaces
            .iter()
            .map(|(name, slot)| {
                let opened = slot.opened.read();
                let stats = opened.as_ref().map(|o| o.ns.stats()).unwrap_or_default();
                let loads = opened
                    .as_ref()
                    .map(|o| o.ns.load_stats())
                    .unwrap_or_default();
                total += stats;
                total_loads += loads;
                let figures = NamespaceStats {
                    stats,
                    loads,
                    limits: NamespaceConfig {
                        max_bytes: Some(slot.share.load(Ordering::Relaxed)),
                        ..slot.limits.clone()
                    },
                    opened: opened.is_some(),
                };
                (name.clone(), figures)
            })
            .collect();
        StoreStats {
            total,
            loads: total_loads,
            max_bytes: self.max_bytes(),
            namespaces,
        }
    }

    /// The memory budget now, in bytes.
    pub fn max_bytes(&self) -> u64 {
        *self.inner.max_bytes.lock()
    }

    /// Changes the memory budget (Redis's `CONFIG SET maxmemory`): the shares are divided
    /// again as at build time (see [`Config::budget_shares`]) and each namespace that shrinks
    /// evicts by its policy until it fits. Fails, changing nothing, when the new budget
    /// cannot hold the namespaces' own `max_bytes` or leaves too little for the others.
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
