//! The hook a shared second tier plugs into a namespace with: [`SharedTier`]. Redis is one
//! (the `strata-redis` crate); the core knows only this trait, so it needs no Redis client.
//!
//! With a tier attached ([`Namespace::share`]), a namespace works like this:
//! - [`get_or_load`](Namespace::get_or_load) (and its `_optional` twin) that misses here asks
//!   the tier inside the load's flight, so callers missing on one key together make one
//!   lookup; a value found there is kept here for what remains of its TTL in the tier and
//!   answered with [`Source::Shared`](super::Source::Shared). Only when the tier has nothing
//!   (or cannot answer) is the origin called, and its value is handed back to the tier with
//!   what the tier said of the key, so the tier can refuse it if the key changed meanwhile.
//! - [`insert`](Namespace::insert) and its variants, and an [`update`](Namespace::update)
//!   that changes a value or a TTL, tell the tier the key changed.
//! - [`pull`](Namespace::pull) brings a key in from the tier ahead of a synchronous read.
//! - [`claim`](Namespace::claim) is an insert-if-absent the tier decides for every instance.
//! - Removals and invalidations reach the tier through the store's publisher, as before.
//! - Plain reads ([`get`](Namespace::get)) stay on this instance: they are synchronous, and
//!   a network call has no place in them.
//!
//! [`get_many_or_load`](Namespace::get_many_or_load) asks the tier for every key it misses
//! at once, then the origin once for the rest. The blocking load does not consult the tier
//! (its lookup is async), nor does `#[cached]`, whose namespaces hold type-erased values no
//! codec can write to Redis.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::key::Key;
use crate::InsertError;

/// A shared second tier under a namespace. Its calls must not block: [`fill`](Self::fill)
/// and [`inserted`](Self::inserted) are made on the caller's thread, so they hand the work
/// to a task.
pub trait SharedTier<V: Send + 'static>: Send + Sync + 'static {
    /// Looks `key` up for a load of this instance that missed here.
    fn fetch(&self, key: &Key) -> SharedFetch<V>;

    /// The origin answered a load that missed in the tier: keep the answer there too, unless
    /// what the tier knows of the key moved since the lookup.
    fn fill(&self, fill: SharedWrite<'_, V>);

    /// This instance inserted or updated a value for `key`: the tier and the other instances
    /// must stop serving what they hold for it (or, for a tier that is the source of truth,
    /// take what this instance now holds, see [`Namespace::peek_with`](super::Namespace::peek_with)).
    fn inserted(&self, key: &Key);

    /// Stores `value` under `key` in the tier only if no instance's value is there, deciding
    /// once for every instance; the others drop what they hold for the key. A tier that
    /// cannot decide answers [`Claim::Undecided`] (the default).
    fn claim(&self, key: &Key, value: &V, ttl: Option<Duration>) -> SharedClaim<V> {
        let _ = (key, value, ttl);
        Box::pin(std::future::ready(Claim::Undecided))
    }
}

/// What [`SharedTier::claim`] returns.
pub type SharedClaim<V> = Pin<Box<dyn Future<Output = Claim<V>> + Send + 'static>>;

/// Why [`Namespace::claim`](super::Namespace::claim) decided nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClaimError {
    /// The value could not be stored here.
    #[error(transparent)]
    Insert(#[from] InsertError),
    /// The shared tier could not decide (Redis away or too slow): nothing was stored.
    #[error("the shared tier could not decide the insert (it is unreachable or too slow)")]
    Undecided,
}

/// What the shared tier decided for an insert-if-absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim<V> {
    /// The value is stored there: this caller won.
    Won,
    /// Another value was there (returned); nothing changed.
    Lost(V),
    /// The tier could not decide (unreachable, too slow): nothing is known.
    Undecided,
}

/// What [`SharedTier::fetch`] returns.
pub type SharedFetch<V> = Pin<Box<dyn Future<Output = Fetched<V>> + Send + 'static>>;

/// What the shared tier answered for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched<V> {
    /// A value, with what remains of its TTL there (`None`: it does not expire) and its tags.
    Found {
        /// The value.
        value: V,
        /// Its remaining TTL in the tier, which it keeps here too.
        ttl: Option<Duration>,
        /// Its tags, which it carries here too (so a tag invalidation reaches it).
        tags: Vec<String>,
    },
    /// Nothing there. `seen` is what the tier knew of the key at the lookup, handed back
    /// with the origin's answer in [`SharedWrite::if_unchanged`].
    Missing {
        /// What the tier knew of the key.
        seen: Seen,
    },
    /// The tier could not answer (unreachable, too slow, its breaker open): the load goes to
    /// the origin, and its value is not written back unconditionally.
    Unavailable,
}

/// A load's answer from the origin, for the tier.
#[derive(Debug)]
pub struct SharedWrite<'a, V> {
    /// The key.
    pub key: &'a Key,
    /// The value.
    pub value: &'a V,
    /// Its TTL (`None`: it does not expire).
    pub ttl: Option<Duration>,
    /// What the tier knew of the key at the lookup ([`Fetched::Missing`]): the fill is kept
    /// only if that is unchanged.
    pub if_unchanged: Seen,
}

/// What a tier knew of a key when a load missed there, opaque to the core: for Redis, the
/// key's version (a deletion leaves one behind for a while) and its partition's scope
/// generation (moved by every prefix, pattern, clear and event invalidation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seen(pub u64, pub u64);
