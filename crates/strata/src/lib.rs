//! # strata
//!
//! A concurrent in-memory cache for services: bounded by entries and by bytes, with a TTL per
//! cache and per entry, time-to-idle, scan-resistant eviction, a removal listener and exact
//! statistics. It is the engine under strata's namespaces, read-through loading, admin API and
//! Redis-protocol server.
//!
//! ```
//! use strata::Cache;
//! use std::time::Duration;
//!
//! let balances: Cache<u64, i64> = Cache::builder()
//!     .max_entries(100_000)
//!     .default_ttl(Duration::from_secs(120))
//!     .build()
//!     .unwrap();
//!
//! balances.insert(42, 1_250).unwrap();
//! assert_eq!(balances.get(&42), Some(1_250));
//! assert_eq!(balances.get(&7), None);
//! let stats = balances.stats();
//! assert_eq!((stats.hits, stats.misses), (1, 1));
//! ```
//!
//! ## Design in one screen
//! (The long version, with the measurements behind each choice, is `docs/design.md`.)
//!
//! **Concurrency.** The cache is split into shards (a power of two, sixteen per core by default),
//! each a reader-writer lock around plain data. A lookup takes the read lock, so readers of the
//! same shard proceed together; it records the access by bumping two bits in the entry (and
//! stops writing them once they are saturated, so hot entries' cache lines stay shared).
//! Writes take the shard's write lock. Entries that leave are dropped, or handed to the removal
//! listener, after the lock is released.
//!
//! **Storage.** A shard keeps its entries in a dense `Vec` (the slab) and a `hashbrown` table of
//! `u32` slab indices. Removing swaps the slab's last entry into the hole, so there are no free
//! slots to track. Queue links are `u32` indices in the entry. For `u64` keys and values an
//! entry is 32 bytes, TTL included.
//!
//! **Eviction.** New entries enter a small FIFO (1% of the shard). One that is read while
//! there moves on to the main queue; one that is not must beat main's next victim on a
//! frequency sketch (4-bit count-min, TinyLFU) to get in. Main is a CLOCK over two access bits.
//! This is S3-FIFO with the ghost queue replaced by TinyLFU's admission test: one-hit wonders and
//! scans never displace the working set, loops larger than the cache keep a stable part of
//! themselves cached, and popularity that moves is picked up through the small queue.
//!
//! **Expiry.** Every entry carries its deadline; a lookup never returns an entry past it. Expired
//! entries are reclaimed by a sweep that visits two slab slots on every write, by the policy
//! whenever it meets one, by [`Cache::run_pending_tasks`], and by an optional reaper thread
//! ([`CacheBuilder::reaper`]).
//!
//! **Bounds.** Each shard enforces its share of the bounds under its lock before an insert
//! returns, so the cache never holds more than its bounds, with no slack. The heaviest entry
//! admitted is one shard's share of the weight bound; a heavier one is refused with
//! [`InsertError::TooLarge`].
//!
//! **Statistics.** Hits and misses are counted in atomics beside each shard's lock, everything
//! else under the write lock: exact, and cheap enough to be always on.
//!
//! ## Namespaces, tags and invalidation
//! [`store::Store`] puts named namespaces (one engine each, with its own TTL, limits and stats)
//! under one memory budget, and invalidates by key, prefix, glob pattern, tag (O(1), by
//! generations) and event rules from the [`config`]. Every invalidation is an
//! [`store::Invalidation`] value handed to an optional publisher. See the [`store`] docs.

#![warn(missing_docs)]

// The README's examples compile and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;

mod builder;
mod cache;
pub mod cached;
mod clock;
pub mod config;
mod engine;
mod error;
pub mod key;
mod listener;
pub mod pattern;
mod stats;
pub mod store;
mod sync;
pub mod warm;
mod weigher;

/// The caching macros: `#[cached]` keeps a function's values in a namespace of
/// [`cached::global()`], `#[invalidates]` drops keys, patterns and tags once a function has
/// succeeded.
#[cfg(feature = "macros")]
pub use strata_macros::{cached, invalidates};

pub use builder::{CacheBuilder, MIN_SHARD_BYTES};
pub use cache::{Cache, Cleared, Compute, Inserted, Keys};
pub use clock::{Clock, MockClock};
pub use error::{BuildError, InsertError};
pub use key::Key;
pub use listener::{Listener, RemovalCause};
pub use pattern::Pattern;
pub use stats::CacheStats;
pub use store::{Namespace, Store};
pub use weigher::{DefaultWeigher, HeapSize, Weigher};

/// The hasher a cache uses unless told otherwise: foldhash, fast and seeded per process.
pub type DefaultHashBuilder = foldhash::fast::RandomState;
