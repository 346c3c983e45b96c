//! The keyspace a client sees: one flat space of keys, each living in the namespace its
//! prefix names (`[server.prefixes]`, longest prefix first; `default` otherwise), so the
//! namespace's TTL, limits and statistics apply to it.
//!
//! With a `[redis]` section the shared namespaces are written through to Redis, which is
//! their source of truth for every `strata serve` over it: a command's keys that are not
//! here are pulled from Redis before it runs, and its writes are sent before its reply.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata::config::{MaxmemoryPolicy, DEFAULT_NAMESPACE};
use strata::store::{Namespace, Put, Store, StoreError};
use strata_redis::{Raw, Tier};

use crate::cmd::strings::SetOptions;
use crate::cmd::{self, Kind, Spec};

/// Values as the server stores them: bytes, binary-safe, in an allocation of their exact
/// size behind a 16-byte pointer. (`Bytes` would take 32 bytes in every entry and allocate a
/// shared header the first time a value is cloned; replies are written from the cache in
/// place instead, see [`Namespace::get_with`].)
pub type Value = Box<[u8]>;

/// SCAN cursors: the namespace's position in the high bits, its own cursor (below 2^48,
/// see [`strata::Cache::scan`]) in the low ones.
const NS_SHIFT: u32 = 48;

/// The longest a reply waits for its command's writes to reach Redis while the link is up
/// (a round trip, normally; more under load, and the guarantee that a write is in Redis
/// before its reply is worth the wait). Past it, or as soon as the link is down, the writes
/// stay queued (and are sent when they can), and the reply goes.
const WRITE_ACK: Duration = Duration::from_secs(10);

/// A key to bring in from Redis before a command runs.
pub(crate) type Pull = (Namespace<Value>, Bytes);

/// The store's namespaces, opened for byte values, and the rules that route keys to them.
pub struct Keyspace {
    store: Store,
    /// The shared tier, with a `[redis]` section.
    tier: Option<Arc<Tier>>,
    /// Every namespace, by name (the order SCAN walks them in).
    namespaces: Vec<Namespace<Value>>,
    /// (prefix, index into `namespaces`), longest prefix first.
    prefixes: Vec<(Box<[u8]>, usize)>,
    /// Index of `default`.
    default: usize,
    /// `maxmemory-policy` as last set, as its discriminant (`MaxmemoryPolicy as u8`).
    policy: AtomicU8,
}

impl Keyspace {
    /// Opens every namespace of `store` for byte values (written through to Redis by `tier`
    /// when it shares them) and compiles the prefix routes of its `[server]` configuration.
    /// Fails if a namespace was opened with another type.
    pub fn new(store: Store, tier: Option<Arc<Tier>>) -> Result<Self, StoreError> {
        let names: Vec<String> = store.namespace_names().map(str::to_owned).collect();
        let namespaces = names
            .iter()
            .map(|name| match &tier {
                Some(tier) => tier.write_through_namespace::<Value, _>(name, Raw),
                None => store.namespace::<Value>(name),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let index = |name: &str| names.iter().position(|n| n == name);
        let server = &store.config().server;
        let mut prefixes: Vec<(Box<[u8]>, usize)> = server
            .prefixes
            .iter()
            .filter_map(|(prefix, ns)| Some((prefix.as_bytes().into(), index(ns)?)))
            .collect();
        prefixes.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        let default = index(DEFAULT_NAMESPACE).unwrap_or(0);
        let policy = AtomicU8::new(server.maxmemory_policy as u8);
        Ok(Self {
            policy,
            store,
            tier,
            namespaces,
            prefixes,
            default,
        })
    }

    /// The store underneath.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The shared tier, with a `[redis]` section.
    pub fn tier(&self) -> Option<&Arc<Tier>> {
        self.tier.as_ref()
    }

    /// The keys of the command `args` that live in shared namespaces and are not here: to
    /// be [pulled](Self::pull) before it runs, so that it sees what the fleet holds. Empty
    /// without a tier, and for commands that read no key's current value (a plain `SET`,
    /// `MSET`). Keys it could not name (a wrong arity) are left to the command's own error.
    pub(crate) fn missing_shared(&self, spec: &Spec, args: &[Bytes]) -> Vec<Pull> {
        if self.tier.is_none() || spec.kind == Kind::Other || overwrites(spec, args) {
            return Vec::new();
        }
        cmd::key_positions(spec, args.len())
            .filter_map(|at| {
                let key = &args[at];
                let ns = self.route(key);
                (ns.is_shared() && !ns.contains_key(key)).then(|| (ns.clone(), key.clone()))
            })
            .collect()
    }

    /// Brings `keys` in from Redis (those it has), all at once: an `MGET` of keys held
    /// elsewhere costs one round trip's wait, not one per key.
    pub(crate) async fn pull(keys: Vec<Pull>) {
        futures_util::future::join_all(keys.iter().map(|(ns, key)| ns.pull(key))).await;
    }

    /// Waits, for a while at most, until the writes made here so far have reached Redis
    /// (see [`WRITE_ACK`]).
    pub(crate) async fn settled(&self) {
        if let Some(tier) = &self.tier {
            tier.settled(WRITE_ACK).await;
        }
    }

    /// The namespace `key` lives in.
    #[inline]
    pub fn route(&self, key: &[u8]) -> &Namespace<Value> {
        let idx = self
            .prefixes
            .iter()
            .find(|(prefix, _)| key.starts_with(prefix))
            .map_or(self.default, |&(_, idx)| idx);
        &self.namespaces[idx]
    }

    /// One SCAN step over every namespace: visits the live keys among about `count` slots
    /// from `cursor`, returns the next cursor (0 at the end).
    pub fn scan(&self, cursor: u64, count: usize, mut visit: impl FnMut(&[u8])) -> u64 {
        let mut ns = (cursor >> NS_SHIFT) as usize;
        let mut inner = cursor & ((1 << NS_SHIFT) - 1);
        let mut budget = count.max(1);
        while let Some(namespace) = self.namespaces.get(ns) {
            let mut seen = 0;
            inner = namespace.scan(inner, budget, |key, _| {
                seen += 1;
                visit(key.as_bytes());
            });
            if inner != 0 {
                return ((ns as u64) << NS_SHIFT) | inner;
            }
            ns += 1;
            // An empty namespace costs a step of its own at most: walking on is cheap.
            budget = budget.saturating_sub(seen.max(1));
            if budget == 0 {
                break;
            }
        }
        if ns >= self.namespaces.len() {
            0
        } else {
            (ns as u64) << NS_SHIFT
        }
    }

    /// Live keys in every namespace (what `DBSIZE` answers; expired entries not yet
    /// reclaimed are counted, as Redis counts them).
    pub fn len(&self) -> u64 {
        self.namespaces.iter().map(|ns| ns.len() as u64).sum()
    }

    /// Keys with a TTL in every namespace (what `INFO keyspace` calls `expires`).
    pub fn expiring_len(&self) -> u64 {
        self.namespaces
            .iter()
            .map(|ns| ns.expiring_len() as u64)
            .sum()
    }

    /// Whether no namespace holds an entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `maxmemory-policy` as last set.
    pub fn policy(&self) -> MaxmemoryPolicy {
        // Only `new` and `set_policy` write the atomic, each a policy's discriminant; were it
        // anything else, `noeviction` would refuse writes rather than evict.
        MaxmemoryPolicy::from_u8(self.policy.load(Ordering::Relaxed))
            .unwrap_or(MaxmemoryPolicy::NoEviction)
    }

    /// Sets `maxmemory-policy`.
    pub fn set_policy(&self, policy: MaxmemoryPolicy) {
        self.policy.store(policy as u8, Ordering::Relaxed);
    }

    /// Whether writes must not evict (`noeviction`).
    #[inline]
    pub fn no_evict(&self) -> bool {
        !self.policy().evicts()
    }

    /// `put` under the eviction policy: with `noeviction`, a write that needs room fails
    /// (OOM) instead of evicting.
    pub(crate) fn under_policy(&self, put: Put) -> Put {
        if self.no_evict() {
            put.no_evict()
        } else {
            put
        }
    }
}

/// Whether the command `args` replaces its keys' values without reading them: a `SET` with
/// no `NX`, `XX`, `GET` or `KEEPTTL`, `MSET`, `SETEX`, `PSETEX`.
fn overwrites(spec: &Spec, args: &[Bytes]) -> bool {
    match spec.name {
        "mset" | "setex" | "psetex" => true,
        "set" => SetOptions::parse(args).is_ok_and(|set| set.reads_nothing()),
        _ => false,
    }
}
