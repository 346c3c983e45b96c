//! The engine: sharded storage and the eviction policy. See the crate docs for the design.
//!
//! - `entry.rs`: one entry and its link word (queue links and access bits).
//! - `queue.rs`: the two FIFO queues threaded through a shard's slab (the mechanics).
//! - `policy.rs`: which entry leaves (S3-FIFO queues with TinyLFU admission).
//! - `sketch.rs`: the frequency sketch the policy consults.
//! - `climber.rs`: the window's size, adapted cache-wide by hill climbing on the hit ratio.
//! - `column.rs`: per-entry side columns only some caches keep (weights, hard deadlines).
//! - `shard.rs`: one shard's storage: slab, table, placing, removing, sweeping.

mod climber;
mod column;
mod entry;
mod policy;
mod queue;
mod shard;
mod sketch;

pub(crate) use climber::Climber;
pub(crate) use entry::{Entry, NEVER};
pub(crate) use shard::{
    IfPresent, Insertion, NewEntry, Readings, Removed, Shard, ShardSettings, MAX_SHARD_LEN,
};

use crate::sync::{AtomicU64, RwLock};

/// A shard behind its lock, with the read-side counters on the same cache lines as the lock
/// word: a reader already owns that line, so counting a hit costs no extra miss, and the
/// counters are striped across shards instead of being one contended atomic.
#[repr(align(128))]
pub(crate) struct ShardCell<K, V> {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) lock: RwLock<Shard<K, V>>,
}

/// Bytes the engine spends per entry beyond the heap that key and value own: the entry slot
/// (with the key and value in it), its weight (4), its hard deadline (8; only time-to-idle
/// caches keep one, but a weigher cannot tell, so it is always counted and the byte bound errs
/// on the safe side), its share of the hash table (a 4-byte index and a control byte at 7/8
/// load, about 6) and of the frequency sketch (8).
pub(crate) fn entry_overhead<K, V>() -> usize {
    std::mem::size_of::<Entry<K, V>>() + 4 + 8 + 6 + 8
}
