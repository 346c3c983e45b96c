//! How a write is described: a [`Put`] (TTL, tags, and what it keeps of the entry it
//! replaces), an [`Update`] (what a read-modify-write does with the key), and the live entry
//! ([`Current`]) that an update or a scan sees.

use std::time::Duration;

#[cfg(doc)]
use super::Namespace;
#[cfg(doc)]
use crate::InsertError;

/// How to store an entry: its TTL (instead of the namespace's) and its tags.
///
/// ```
/// use strata::store::Put;
/// use std::time::Duration;
/// let put = Put::new().ttl(Duration::from_secs(30)).tag("dashboard:42").tag("user:42");
/// # let _ = put;
/// ```
#[derive(Debug, Clone)]
pub struct Put {
    pub(super) ttl: Option<Duration>,
    pub(super) tags: Vec<String>,
    /// Never expires, whatever the namespace's TTL.
    pub(super) never: bool,
    pub(super) keep_ttl: bool,
    pub(super) keep_tags: bool,
    pub(super) evict: bool,
}

impl Default for Put {
    fn default() -> Self {
        Self {
            ttl: None,
            tags: Vec::new(),
            never: false,
            keep_ttl: false,
            keep_tags: false,
            evict: true,
        }
    }
}

impl Put {
    /// The namespace's TTL and no tags.
    pub fn new() -> Self {
        Self::default()
    }

    /// Expire after `ttl` whatever the namespace's TTL.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Carry `tag`: [`Store::invalidate_tag`](super::Store::invalidate_tag) drops the entry.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Carry every tag of `tags`.
    pub fn tags<T: Into<String>>(mut self, tags: impl IntoIterator<Item = T>) -> Self {
        self.tags.extend(tags.into_iter().map(Into::into));
        self
    }

    /// Never expire, whatever the namespace's TTL (Redis's `SET` without `EX`).
    pub fn no_ttl(mut self) -> Self {
        self.never = true;
        self
    }

    /// Keep the TTL of the entry being replaced (Redis's `KEEPTTL`); a new key gets this
    /// `Put`'s TTL.
    pub fn keep_ttl(mut self) -> Self {
        self.keep_ttl = true;
        self
    }

    /// Keep the tags of the entry being replaced (as `INCR` and `APPEND` do in `strata
    /// serve`); a new key gets this `Put`'s tags.
    pub fn keep_tags(mut self) -> Self {
        self.keep_tags = true;
        self
    }

    /// Refuse the write with [`InsertError::NoRoom`] rather than evict another entry to make
    /// room for it (Redis's `noeviction` policy).
    pub fn no_evict(mut self) -> Self {
        self.evict = false;
        self
    }

    /// Whether the write needs to see the entry it replaces.
    pub(super) fn reads_current(&self) -> bool {
        self.keep_ttl || self.keep_tags || !self.evict
    }
}

/// What [`Namespace::update`] does with the key.
#[derive(Debug, Clone)]
pub enum Update<V> {
    /// Leave it as it is.
    Keep,
    /// Remove it (and tell the publisher).
    Remove,
    /// Store a value, as [`Namespace::insert_with`] would.
    Put(V, Put),
    /// Keep the value and tags, and expire `ttl` from now (never for `None`): Redis's
    /// `EXPIRE` and `PERSIST`, without copying the value.
    Expire(Option<Duration>),
}

/// A live entry as [`Namespace::update`] and [`Namespace::scan`] see it.
#[derive(Debug)]
#[non_exhaustive]
pub struct Current<'a, V> {
    /// Its value.
    pub value: &'a V,
    /// Its deadline on the namespace's clock, in nanoseconds (`u64::MAX` for none); see
    /// [`Namespace::remaining`].
    pub fresh_until: u64,
}
