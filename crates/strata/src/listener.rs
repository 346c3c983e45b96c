//! Removal notifications.

/// Why an entry left the cache, as told to the removal listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RemovalCause {
    /// Its TTL or idle time ran out.
    Expired,
    /// The policy made room for other entries.
    Evicted,
    /// [`Cache::remove`](crate::Cache::remove) took it out.
    Removed,
    /// An insert replaced its value (the listener receives the old value).
    Replaced,
    /// [`Cache::clear`](crate::Cache::clear) dropped everything.
    Cleared,
    /// [`Cache::remove_where`](crate::Cache::remove_where) took it out: an invalidation by
    /// prefix, pattern or tag.
    Invalidated,
}

/// Called once for every entry that leaves the cache, after the cache's lock is released, on
/// the thread whose operation removed it (or the one running maintenance). Keep it short: that
/// operation waits for it.
pub type Listener<K, V> = dyn Fn(K, V, RemovalCause) + Send + Sync + 'static;
