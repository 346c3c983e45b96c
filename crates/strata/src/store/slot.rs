//! What a namespace stores for a key (a [`Slot`]) and what that slot is to a reader at a
//! given moment (its [`SlotState`]): the one vocabulary every read, write and removal of the
//! store uses to decide whether an entry counts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::tags::{TagRegistry, TagSet};
use crate::HeapSize;

/// What a namespace stores for a key: the value, the tags it was inserted with, and when it
/// stops being fresh (its TTL, on the namespace's clock; `NEVER` for none). With fail-safe
/// on, the engine keeps the entry `max_stale` longer than that, for `get_or_load` to serve
/// when the origin fails; plain reads treat it as gone.
///
/// A slot without a value is a *negative* entry: the origin said it has nothing for the key,
/// remembered for `negative_ttl`. Only the loads that can answer "not found"
/// ([`Namespace::get_or_load_optional`](super::Namespace::get_or_load_optional),
/// [`Namespace::get_many_or_load`](super::Namespace::get_many_or_load)) see it; to
/// everything else it is absent.
pub(crate) struct Slot<V> {
    pub(crate) value: Option<V>,
    pub(crate) tags: Option<Arc<TagSet>>,
    pub(crate) fresh_until: AtomicU64,
}

/// What a slot the engine still holds (so not expired in the engine's eyes) is to a reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotState {
    /// It holds a value within its TTL: a hit, and what every write, removal and count
    /// treats as present.
    Fresh,
    /// The origin's "not found", within its `negative_ttl`: a hit for the loads that can
    /// answer "not found", absent to everything else.
    Negative,
    /// Past its TTL but kept for the fail-safe (within `max_stale`), holding a value or a
    /// "not found": absent to readers, what a failing load may answer with instead.
    Stale,
    /// A tag of it was invalidated: absent to everyone, waiting for the janitor to remove it.
    Invalidated,
}

impl<V> Slot<V> {
    /// The slot's state. `now` is the clock's reading where freshness is judged here: in a
    /// namespace with a stale window, where the engine keeps entries past their TTL. It is
    /// `None` where the engine already drops entries at their TTL, and for callers that only
    /// ask whether the slot was invalidated (then no slot is called stale).
    #[inline]
    pub(crate) fn state(&self, tags: &TagRegistry, now: Option<u64>) -> SlotState {
        if !self.tags.as_ref().is_none_or(|t| t.none_invalidated(tags)) {
            return SlotState::Invalidated;
        }
        if now.is_some_and(|now| self.fresh_until.load(Ordering::Relaxed) <= now) {
            return SlotState::Stale;
        }
        match self.value {
            Some(_) => SlotState::Fresh,
            None => SlotState::Negative,
        }
    }
}

impl<V: Clone> Clone for Slot<V> {
    fn clone(&self) -> Self {
        Self {
            value: self.value.clone(),
            tags: self.tags.clone(),
            fresh_until: AtomicU64::new(self.fresh_until.load(Ordering::Relaxed)),
        }
    }
}

impl<V: HeapSize> HeapSize for Slot<V> {
    fn heap_size(&self) -> usize {
        self.value.as_ref().map_or(0, V::heap_size)
            + self.tags.as_ref().map_or(0, |t| t.heap_size())
    }
}
