//! Tags: invalidating every entry that carries a tag in O(1), with generations.
//!
//! Each tag has one word: a 32-bit generation and a 32-bit count of the live tag sets stamped
//! with it. An entry inserted with tags keeps a [`TagSet`]: for each tag, the tag's state and
//! the generation it was stamped with. A reader checks the stamps against the current
//! generations (one relaxed load per tag); invalidating a tag bumps its generation, which
//! kills every entry stamped before, and reads the count in the same atomic swap, so it knows
//! how many it killed. The dead entries are then removed in the background (see `janitor`).
//!
//! The count is kept by the tag sets themselves: made, they add one; dropped (the entry
//! evicted, replaced, removed, cleared), they subtract one if their generation is still
//! current. So it is exact without the engine telling anyone about removals.
//!
//! States live in a sharded registry. A state nobody points to but the registry is dropped
//! from it when its shard has doubled since its last collection: the registry stays in
//! proportion to the tags in use, however many distinct tags (one per user, say) go by.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use parking_lot::Mutex;
use smallvec::SmallVec;

use std::sync::atomic::{AtomicU64, Ordering};

const REGISTRY_SHARDS: usize = 16;
const COUNT_MASK: u64 = u32::MAX as u64;

/// One tag's state: generation in the high half of `word`, live count in the low half.
pub(crate) struct TagState {
    word: AtomicU64,
}

impl TagState {
    #[inline]
    fn generation(&self) -> u32 {
        (self.word.load(Ordering::Relaxed) >> 32) as u32
    }

    /// Adds one to the count and returns the generation it was added under (the stamp).
    fn enlist(&self) -> u32 {
        (self.word.fetch_add(1, Ordering::Relaxed) >> 32) as u32
    }

    /// Takes one off the count if `generation` is still current.
    fn discharge(&self, generation: u32) {
        let _ = self
            .word
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
                ((w >> 32) as u32 == generation && w & COUNT_MASK > 0).then(|| w - 1)
            });
    }

    /// Moves to the next generation and returns how many tag sets the old one had.
    fn bump(&self) -> u64 {
        let old = self
            .word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                Some(u64::from(((w >> 32) as u32).wrapping_add(1)) << 32)
            })
            .unwrap_or_else(|w| w);
        old & COUNT_MASK
    }
}

/// The tags of one entry, each with the generation it was stamped with. Most entries carry
/// one or two tags, which the set holds without a heap allocation of its own.
pub(crate) struct TagSet {
    /// The registry's epoch when the stamps were last all found current (see
    /// [`none_invalidated`](Self::none_invalidated)).
    checked: AtomicU64,
    stamps: SmallVec<[(Arc<TagState>, u32); 2]>,
}

impl TagSet {
    /// Whether no tag of the set has been invalidated since it was stamped.
    ///
    /// The fast path: if no tag at all was invalidated since the set was last checked (the
    /// registry's epoch is the one recorded), it is live without looking at its tags, so a
    /// hit costs one load of a line every reader shares instead of one per tag. Otherwise the
    /// stamps are checked and, if all are current, the epoch read *before* checking them is
    /// recorded. That order makes the shortcut sound: an invalidation bumps the generation
    /// and then the epoch, so a reader that saw the new epoch also sees the new generation,
    /// and an epoch recorded before a bump is stale by the time that invalidation returns.
    #[inline]
    pub(crate) fn none_invalidated(&self, registry: &TagRegistry) -> bool {
        let epoch = registry.epoch.load(Ordering::Acquire);
        if self.checked.load(Ordering::Relaxed) == epoch {
            return true;
        }
        let live = self
            .stamps
            .iter()
            .all(|(state, g)| state.generation() == *g);
        if live {
            self.checked.store(epoch, Ordering::Relaxed);
        }
        live
    }

    /// Heap bytes the set owns (its allocation behind the entry's pointer).
    pub(crate) fn heap_size(&self) -> usize {
        std::mem::size_of::<Self>()
            + 16
            + if self.stamps.spilled() {
                self.stamps.capacity() * std::mem::size_of::<(Arc<TagState>, u32)>()
            } else {
                0
            }
    }
}

impl Drop for TagSet {
    fn drop(&mut self) {
        for (state, generation) in &self.stamps {
            state.discharge(*generation);
        }
    }
}

/// Every tag in use, by name.
pub(crate) struct TagRegistry {
    /// Moves on with every invalidation of a tag in use (see [`TagSet::none_invalidated`]).
    epoch: AtomicU64,
    shards: Box<[Mutex<RegistryShard>]>,
    hasher: foldhash::fast::FixedState,
}

#[derive(Default)]
struct RegistryShard {
    tags: HashMap<Box<str>, Arc<TagState>>,
    /// Size after the last collection; the next runs when the shard has doubled.
    collected_at: usize,
}

impl RegistryShard {
    /// Drops states that no tag set points to any more.
    fn collect(&mut self) {
        self.tags.retain(|_, state| Arc::strong_count(state) > 1);
        self.collected_at = self.tags.len();
    }
}

impl TagRegistry {
    pub(crate) fn new() -> Self {
        Self {
            epoch: AtomicU64::new(0),
            shards: (0..REGISTRY_SHARDS).map(|_| Mutex::default()).collect(),
            hasher: foldhash::fast::FixedState::default(),
        }
    }

    fn shard(&self, tag: &str) -> &Mutex<RegistryShard> {
        &self.shards[self.hasher.hash_one(tag) as usize % REGISTRY_SHARDS]
    }

    /// Stamps a new tag set for `tags` (duplicates counted once), or `None` for no tags.
    pub(crate) fn stamp<T: AsRef<str>>(&self, tags: &[T]) -> Option<Arc<TagSet>> {
        if tags.is_empty() {
            return None;
        }
        // Read before the stamps are taken: they are current as of this epoch at least.
        let epoch = self.epoch.load(Ordering::Acquire);
        let mut stamps: SmallVec<[(Arc<TagState>, u32); 2]> = SmallVec::new();
        for tag in tags {
            let tag = tag.as_ref();
            // States are cloned under the shard's lock, so a collection (also under it) that
            // sees a count of one knows nobody else holds the state.
            let state = {
                let mut shard = self.shard(tag).lock();
                if let Some(state) = shard.tags.get(tag) {
                    Arc::clone(state)
                } else {
                    if shard.tags.len() >= 2 * shard.collected_at.max(32) {
                        shard.collect();
                    }
                    let state = Arc::new(TagState {
                        word: AtomicU64::new(0),
                    });
                    shard.tags.insert(tag.into(), Arc::clone(&state));
                    state
                }
            };
            if stamps.iter().any(|(s, _)| Arc::ptr_eq(s, &state)) {
                continue;
            }
            let generation = state.enlist();
            stamps.push((state, generation));
        }
        Some(Arc::new(TagSet {
            checked: AtomicU64::new(epoch),
            stamps,
        }))
    }

    /// Kills every entry carrying `tag` and returns how many entries carried it.
    pub(crate) fn invalidate(&self, tag: &str) -> u64 {
        let Some(state) = self.shard(tag).lock().tags.get(tag).cloned() else {
            return 0;
        };
        let killed = state.bump();
        // After the bump (see `TagSet::none_invalidated`).
        self.epoch.fetch_add(1, Ordering::AcqRel);
        killed
    }

    /// How many live entries carry `tag` now.
    pub(crate) fn count(&self, tag: &str) -> u64 {
        let shard = self.shard(tag).lock();
        shard
            .tags
            .get(tag)
            .map_or(0, |s| s.word.load(Ordering::Relaxed) & COUNT_MASK)
    }

    /// Drops the states of tags no entry carries any more; returns how many tags remain.
    pub(crate) fn collect(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                let mut shard = shard.lock();
                shard.collect();
                shard.tags.len()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_kill_and_counts_follow_the_sets() {
        let registry = TagRegistry::new();
        let a = registry.stamp(&["t", "u"]).unwrap();
        let b = registry.stamp(&["t"]).unwrap();
        assert!(a.none_invalidated(&registry) && b.none_invalidated(&registry));
        assert_eq!(registry.count("t"), 2);
        drop(b);
        assert_eq!(registry.count("t"), 1);
        assert_eq!(registry.invalidate("t"), 1);
        assert!(!a.none_invalidated(&registry));
        assert_eq!(registry.count("u"), 1);
        // A set stamped after the invalidation is live; the dead one leaving changes nothing.
        let c = registry.stamp(&["t", "t"]).unwrap();
        assert!(c.none_invalidated(&registry));
        // Another tag's invalidation moves the epoch: c is checked again, and still live.
        registry.invalidate("u");
        assert!(c.none_invalidated(&registry));
        assert!(!a.none_invalidated(&registry));
        drop(a);
        assert_eq!(registry.count("t"), 1);
        assert_eq!(registry.count("u"), 0);
        assert_eq!(registry.invalidate("absent"), 0);
        drop(c);
        assert_eq!(registry.collect(), 0);
    }

    /// Threads stamp, keep, drop and invalidate concurrently; at the end each tag's count is
    /// exactly the number of kept sets stamped with its current generation.
    #[test]
    fn counts_stay_exact_under_concurrent_stamps_drops_and_invalidations() {
        let registry = Arc::new(TagRegistry::new());
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let registry = Arc::clone(&registry);
                std::thread::spawn(move || {
                    let mut kept = Vec::new();
                    let mut x = t.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                    for _ in 0..20_000 {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let tag = ["a", "b", "c"][(x % 3) as usize];
                        match (x >> 8) % 8 {
                            0 => {
                                registry.invalidate(tag);
                            }
                            1 if !kept.is_empty() => {
                                kept.swap_remove((x >> 16) as usize % kept.len());
                            }
                            _ => kept.extend(registry.stamp(&[tag, "all"])),
                        }
                    }
                    kept
                })
            })
            .collect();
        let kept: Vec<Arc<TagSet>> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        for tag in ["a", "b", "c", "all"] {
            let live = kept
                .iter()
                .filter(|set| {
                    set.stamps.iter().any(|(state, g)| {
                        let current = registry.shard(tag).lock().tags.get(tag).cloned();
                        current.is_some_and(|c| Arc::ptr_eq(&c, state) && c.generation() == *g)
                    })
                })
                .count();
            assert_eq!(registry.count(tag), live as u64, "tag {tag}");
        }
    }

    #[test]
    fn the_registry_collects_unused_tags_as_it_grows() {
        let registry = TagRegistry::new();
        for i in 0..100_000 {
            // Each set is dropped at once, as when an entry is replaced or evicted.
            drop(registry.stamp(&[format!("user:{i}")]));
        }
        let held: usize = registry.shards.iter().map(|s| s.lock().tags.len()).sum();
        assert!(
            held < 2 * 32 * REGISTRY_SHARDS + 100,
            "registry kept {held} dead tags"
        );
    }
}
