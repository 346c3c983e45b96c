//! The approximate hottest keys of a namespace, cheap enough to leave on.
//!
//! One hit in [`SAMPLE_EVERY`] (counted per thread) is offered to a Space-Saving summary of
//! [`SLOTS`] counters (Metwally et al., 2005): a key already tracked gains one; an untracked
//! key replaces the least counted one and inherits its count plus one. Any key whose share of
//! the sampled hits exceeds `1 / SLOTS` is guaranteed to be tracked, and each count is over by
//! at most the count it inherited (reported as `error`). The summary sits behind a mutex that
//! a sampled hit only tries to take: under contention the sample is skipped, so readers never
//! wait on it.

use std::cell::Cell;
use std::collections::HashMap;

use parking_lot::Mutex;

use crate::key::Key;

/// One hit in this many is sampled (a power of two).
pub const SAMPLE_EVERY: u32 = 64;

/// Counters kept per namespace.
pub const SLOTS: usize = 64;

thread_local! {
    static TICK: Cell<u32> = const { Cell::new(0) };
}

/// A key and its estimated number of hits.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HotKey {
    /// The key.
    pub key: Key,
    /// Estimated hits (sampled hits times [`SAMPLE_EVERY`]).
    pub hits: u64,
    /// How much of `hits` may be overcounting (inherited from the key it displaced).
    pub error: u64,
}

#[derive(Default)]
pub(crate) struct HotKeys {
    summary: Mutex<HashMap<Key, (u64, u64), foldhash::fast::RandomState>>,
}

impl HotKeys {
    /// Whether this hit is one to sample (true once every [`SAMPLE_EVERY`] per thread).
    #[inline]
    pub(crate) fn should_sample() -> bool {
        TICK.with(|t| {
            let n = t.get().wrapping_add(1);
            t.set(n);
            n & (SAMPLE_EVERY - 1) == 0
        })
    }

    /// Counts a sampled hit on `key`, unless another thread is counting right now.
    pub(crate) fn record(&self, key: &[u8]) {
        let Some(mut summary) = self.summary.try_lock() else {
            return;
        };
        if let Some((count, _)) = summary.get_mut(key) {
            *count += 1;
            return;
        }
        if summary.len() < SLOTS {
            summary.insert(Key::from(key), (1, 0));
            return;
        }
        let Some((victim, floor)) = summary
            .iter()
            .min_by_key(|(_, (count, _))| *count)
            .map(|(k, (count, _))| (k.clone(), *count))
        else {
            return;
        };
        summary.remove(&victim);
        summary.insert(Key::from(key), (floor + 1, floor));
    }

    /// The `n` most counted keys, hottest first.
    pub(crate) fn top(&self, n: usize) -> Vec<HotKey> {
        let summary = self.summary.lock();
        let mut keys: Vec<HotKey> = summary
            .iter()
            .map(|(key, &(count, error))| HotKey {
                key: key.clone(),
                hits: count * u64::from(SAMPLE_EVERY),
                error: error * u64::from(SAMPLE_EVERY),
            })
            .collect();
        keys.sort_by(|a, b| b.hits.cmp(&a.hits).then_with(|| a.key.cmp(&b.key)));
        keys.truncate(n);
        keys
    }

    /// Forgets everything (the namespace was cleared).
    pub(crate) fn reset(&self) {
        self.summary.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heavy_hitters_surface_among_many_cold_keys() {
        let hot = HotKeys::default();
        let mut cold = 0u64;
        for round in 0..20_000u64 {
            hot.record(b"hot::a");
            if round % 2 == 0 {
                hot.record(b"hot::b");
            }
            cold += 1;
            hot.record(format!("cold::{cold}").as_bytes());
        }
        let top = hot.top(2);
        assert_eq!(top[0].key, Key::from("hot::a"));
        assert_eq!(top[1].key, Key::from("hot::b"));
        assert!(top[0].hits - top[0].error <= 20_000 * u64::from(SAMPLE_EVERY));
        assert!(top[0].hits >= 20_000 * u64::from(SAMPLE_EVERY));
    }
}
