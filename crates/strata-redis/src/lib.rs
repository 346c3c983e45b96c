//! Redis as strata's shared second tier: a fleet of instances (the library in N processes,
//! or N `strata serve`) kept coherent over one Redis, with an invalidation log that loses
//! nothing across a reconnect and an instance that keeps serving through an outage.
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use strata::config::Config;
//! use strata::store::Store;
//! use strata_redis::{Json, Tier};
//!
//! let config = Config::from_sources(Some(r#"
//!     [redis]
//!     url = "redis://127.0.0.1:6379"
//!     [namespaces.user]
//!     ttl = "10m"
//! "#), [])?;
//! let (store, tier) = Tier::start(Store::builder(config))?;
//! let users = tier.namespace::<String, _>("user", Json)?;
//! // A miss here asks Redis, then the database; the value lands in both.
//! let profile = users
//!     .get_or_load("user::42", |_key| async { Ok::<_, std::io::Error>("Ada".to_string()) })
//!     .await?;
//! // An invalidation reaches every instance through the log.
//! store.namespace::<String>("user")?.remove("user::42");
//! # let _ = profile; Ok(()) }
//! ```
//!
//! ## How it works
//! - **Values** live in Redis under `{prefix}{partition}:d:{namespace}:{key}` in an
//!   envelope that carries a version given by Redis (`envelope.rs`). A load that misses here
//!   reads Redis (value and remaining TTL in one round trip) inside its single flight; only
//!   if Redis has nothing is the origin called, and its answer is written back (a *fill*)
//!   only if neither the key's version nor its partition's scope moved meanwhile.
//! - **Inserts and invalidations** go through a bounded queue to a writer task. A key's
//!   deletion (and an insert, which drops the key everywhere rather than racing other
//!   instances' inserts to Redis) is a tombstone with a new version and an entry in the
//!   **invalidation log**, one Lua script on one partition (`scripts.rs`). Prefix, pattern,
//!   clear, tag and event invalidations change Redis first and are logged after.
//! - **Every instance tails** every partition of the log from a cursor (`tailer.rs`) and
//!   applies what others logged (dropping the entries here, and marking loads in the air so
//!   they do not store what they read before). After a reconnect it resumes from its
//!   cursors; if the log no longer reaches back (trimmed, or Redis came back empty), what
//!   the shared namespaces hold is marked *unverified*: reloaded through Redis before it is
//!   served again, still usable as a fail-safe value.
//! - **Through an outage** reads are served from this instance (and the fail-safe), Redis
//!   calls fail fast behind a breaker (`link.rs`), and writes wait in the queue; if it
//!   overflows, every instance is told to treat what it holds as unverified once Redis is
//!   back.
//!
//! docs/design.md ("The shared tier") has the protocol, each failure and what happens, and
//! the guarantees beside FusionCache's, Redisson's and Redis client-side caching's.

mod applied;
mod codec;
mod envelope;
mod held;
mod keys;
mod link;
mod outbox;
mod packing;
mod rung;
mod scripts;
mod stats;
mod tailer;
mod tier;
mod wire;
mod writer;

pub use codec::{Codec, CodecError, Json, Raw};
pub use link::LinkError;
pub use stats::TierStats;
pub use tier::{LinkHealth, Tier, TierError};
