//! The engine `Cache` through its public API: what the builder refuses, and the bounds a
//! cache keeps, in entries and in bytes, down to a single entry per shard; and what it keeps
//! when a scan or a new working set passes through.
//!
//! The `shuttle` feature swaps the engine's locks for shuttle's, which only work inside a
//! shuttle test; these tests run without it.
#![cfg(not(feature = "shuttle"))]

use std::time::Duration;

use strata::{BuildError, Cache, InsertError};

mod common;
use common::cache::{recorder, take, MS};
use common::Rng;

// ---------------------------------------------------------------------------------------------
// Builder
// ---------------------------------------------------------------------------------------------

#[test]
fn builder_rejects_bad_configurations() {
    let err = |b: strata::CacheBuilder<u64, u64>| b.build().unwrap_err();

    assert_eq!(err(Cache::builder()), BuildError::Unbounded);
    assert_eq!(err(Cache::builder().default_ttl(MS)), BuildError::Unbounded);
    assert_eq!(
        err(Cache::builder().max_entries(0)),
        BuildError::ZeroCapacity {
            field: "max_entries"
        }
    );
    assert_eq!(
        err(Cache::builder().max_weight(0).weigher(|_: &u64, _: &u64| 1)),
        BuildError::ZeroCapacity {
            field: "max_weight"
        }
    );
    assert_eq!(
        err(Cache::builder().max_weight(10)),
        BuildError::MissingWeigher
    );
    assert_eq!(
        err(Cache::builder().max_entries(10).max_weight(10)),
        BuildError::MissingWeigher
    );
    assert_eq!(
        err(Cache::builder().max_entries(10).default_ttl(Duration::ZERO)),
        BuildError::ZeroDuration {
            field: "default_ttl"
        }
    );
    assert_eq!(
        err(Cache::builder()
            .max_entries(10)
            .time_to_idle(Duration::ZERO)),
        BuildError::ZeroDuration {
            field: "time_to_idle"
        }
    );
    assert_eq!(
        err(Cache::builder().max_entries(10).reaper(Duration::ZERO)),
        BuildError::ZeroDuration { field: "reaper" }
    );
    for n in [0usize, 3, 6, 12, 100, (1 << 16) + 1, 1 << 17] {
        assert_eq!(
            err(Cache::builder().max_entries(1000).shards(n)),
            BuildError::BadShardCount(n)
        );
    }
    for n in [1usize, 2, 4, 64] {
        let cache: Cache<u64, u64> = Cache::builder()
            .max_entries(1000)
            .shards(n)
            .build()
            .unwrap();
        assert!(cache.is_empty());
    }
    // A weigher alone (no weight bound) is allowed, and so is a weight bound alone.
    Cache::<u64, u64>::builder()
        .max_entries(10)
        .weigher(|_: &u64, _: &u64| 3)
        .build()
        .unwrap();
    Cache::<u64, u64>::builder()
        .max_weight(10)
        .weigher(|_: &u64, _: &u64| 3)
        .build()
        .unwrap();
    Cache::<String, Vec<u8>>::builder()
        .max_bytes(1 << 20)
        .build()
        .unwrap();
}

#[test]
#[should_panic]
fn cache_new_zero_panics() {
    let _ = Cache::<u64, u64>::new(0);
}

// ---------------------------------------------------------------------------------------------
// Bounds, down to one entry per shard
// ---------------------------------------------------------------------------------------------

#[test]
fn byte_bound_holds_with_wildly_different_sizes() {
    const MIB: usize = 1 << 20;
    let max: u64 = 8 * MIB as u64;
    let shards = 4;
    let limit = max / shards as u64;
    let cache: Cache<u64, Vec<u8>> = Cache::builder()
        .max_bytes(max)
        .shards(shards)
        .build()
        .unwrap();
    let mut rng = Rng(7);
    let (mut refused, mut stored) = (0, 0);
    for i in 0..3000u64 {
        // From 1 B to 1 MiB, log-uniform, with large values (64 KiB and up) on one insert in
        // ten to keep the test's allocation churn small; plus a few values beyond one shard's
        // share, which must be refused.
        let size = if i % 500 == 499 {
            3 * MIB
        } else {
            let bits = if i % 10 == 0 {
                rng.below(21)
            } else {
                rng.below(16)
            } as u32;
            ((1usize << bits) + rng.below(1 << bits) as usize).clamp(1, MIB)
        };
        let key = rng.below(400);
        let value = vec![i as u8; size];
        match cache.insert(key, value) {
            Ok(()) => stored += 1,
            Err(InsertError::TooLarge { weight, limit: l }) => {
                assert_eq!(l, limit);
                assert!(weight > limit);
                assert!(
                    size as u64 > limit - 64,
                    "refused {size} B (weight {weight})"
                );
                refused += 1;
            }
            Err(e) => panic!("unexpected {e:?}"),
        }
        assert!(
            cache.weighted_size() <= max,
            "weighted_size {} > {max}",
            cache.weighted_size()
        );
        if i % 100 == 0 {
            let s = cache.stats();
            assert_eq!(
                s.entries,
                s.inserts - s.removals - s.expirations - s.evictions
            );
        }
    }
    assert_eq!(refused, 6);
    assert_eq!(stored, 3000 - 6);
    assert!(
        cache.weighted_size() > max / 4,
        "cache nearly empty: {}",
        cache.weighted_size()
    );
}

/// `max_entries` below 16 per shard: the slab is preallocated to the bound and never grows,
/// until `clear` throws the allocation away; the next insert then grows it with
/// `(len * 2).clamp(16, max_len)`, and `clamp` panics when `max_len < 16`.
#[test]
fn tiny_cache_survives_clear() {
    for n in [1u64, 4, 15] {
        let cache: Cache<u64, u64> = Cache::builder().max_entries(n).shards(1).build().unwrap();
        cache.insert(1, 1).unwrap();
        cache.clear();
        cache.insert(2, 2).unwrap(); // panics: "assertion failed: min <= max"
        assert_eq!(cache.get(&2), Some(2));
    }
    // The same through Cache::new, whose default shard count is 1 for small caches.
    let cache: Cache<u64, u64> = Cache::new(8);
    cache.insert(1, 1).unwrap();
    cache.clear();
    cache.insert(2, 2).unwrap();
}

/// `max_entries` (or `max_weight`) smaller than an explicit shard count would leave shards
/// with a share of nothing: the builder refuses it with an error naming both numbers, and the
/// default shard count never produces it.
#[test]
fn fewer_entries_than_shards() {
    let err = Cache::<u64, u64>::builder()
        .max_entries(2)
        .shards(8)
        .build()
        .unwrap_err();
    assert_eq!(
        err,
        BuildError::TooManyShards {
            shards: 8,
            bound: 2
        }
    );
    assert!(err.to_string().contains("8 shards"), "{err}");
    let err = Cache::<u64, u64>::builder()
        .max_weight(3)
        .weigher(|_: &u64, _: &u64| 1)
        .shards(4)
        .build()
        .unwrap_err();
    assert_eq!(
        err,
        BuildError::TooManyShards {
            shards: 4,
            bound: 3
        }
    );
    // With the default shard count, tiny bounds work and hold.
    let cache: Cache<u64, u64> = Cache::builder().max_entries(2).build().unwrap();
    for k in 0..64 {
        cache.insert(k, k).unwrap();
        assert!(cache.len() <= 2, "len {} > max_entries 2", cache.len());
    }
}

#[test]
fn max_entries_bound_is_exact_per_cache() {
    // Bounds not divisible by the shard count: the total is still exact.
    for (n, shards) in [(1000u64, 8usize), (999, 8), (130, 2), (64, 4), (17, 1)] {
        let cache: Cache<u64, u64> = Cache::builder()
            .max_entries(n)
            .shards(shards)
            .build()
            .unwrap();
        for k in 0..(n * 4) {
            cache.insert(k, k).unwrap();
            assert!(cache.len() as u64 <= n);
        }
        assert!(cache.len() as u64 <= n);
        assert!(
            cache.len() as u64 >= n / 2,
            "{n}/{shards}: only {} held",
            cache.len()
        );
    }
}

/// A cache bounded only by weight once sized every shard's sketch for the largest shard
/// (512 MiB each), and `clear()` wrote all of it.
#[test]
fn weight_only_cache_sketch_is_sized_to_its_bound() {
    let cache: Cache<u64, Vec<u8>> = Cache::builder()
        .max_bytes(1 << 20)
        .shards(4)
        .build()
        .unwrap();
    let heap = cache.engine_heap_bytes();
    assert!(
        heap < 16 << 20,
        "engine_heap_bytes {heap} for a 1 MiB cache"
    );
    // `clear()` writes the whole sketch, so its cost is the sketch's size: checked as bytes
    // after an insert and a clear, not as time (speed belongs to benchmarks).
    cache.insert(1, vec![1]).unwrap();
    cache.clear();
    let heap = cache.engine_heap_bytes();
    assert!(
        heap < 16 << 20,
        "engine_heap_bytes {heap} after an insert and a clear"
    );
}

/// A shard whose bound is a single entry (max_entries == shards, or a weight bound of 1 per
/// shard) panics on its second insert: the candidate from the small queue was never read,
/// `main_has_room()` is false (`0 + small_max_len(1) < max_len(1)` fails), and
/// `main_victim()` then reads `slab[main.head]` with main empty (`head == NIL`).
#[test]
fn one_entry_per_shard() {
    let cache: Cache<u64, u64> = Cache::new(1);
    cache.insert(1, 1).unwrap();
    cache.insert(2, 2).unwrap(); // panics: index out of bounds, the index is 536870911
    assert_eq!((cache.len(), cache.get(&2)), (1, Some(2)));

    let cache: Cache<u64, u64> = Cache::builder()
        .max_weight(2)
        .weigher(|_: &u64, _: &u64| 1)
        .shards(2)
        .build()
        .unwrap();
    for k in 0..100 {
        cache.insert(k, k).unwrap();
        assert!(cache.weighted_size() <= 2);
    }
}

/// Every entry bound from 2 to 15 per shard, without clear() (see `tiny_cache_survives_clear`):
/// the bound holds and the newest entry is always kept.
#[test]
fn small_entry_bounds_without_clear() {
    for n in 2..16u64 {
        for shards in [1usize, 2] {
            let (events, listener) = recorder();
            let cache: Cache<u64, u64> = Cache::builder()
                .max_entries(n * shards as u64)
                .shards(shards)
                .removal_listener(listener)
                .build()
                .unwrap();
            for k in 0..200u64 {
                cache.insert(k, k).unwrap();
                if k % 3 == 0 {
                    cache.get(&(k / 2));
                }
                assert!(cache.len() as u64 <= n * shards as u64);
                assert_eq!(
                    cache.get(&k),
                    Some(k),
                    "n {n}, shards {shards}: newest entry evicted"
                );
            }
            let s = cache.stats();
            assert_eq!(s.evictions as usize, take(&events).len());
            assert_eq!(s.entries, s.inserts - s.evictions);
        }
    }
}

/// With a bound in bytes, the default shard count leaves every shard at least
/// `MIN_SHARD_BYTES`, so a cache admits entries up to that size on any machine, however many
/// cores split it (or up to its whole bound, when that is smaller).
#[test]
fn byte_bounded_caches_admit_entries_up_to_a_mebibyte_on_any_machine() {
    for bound in [512 << 10, 2 << 20, 64 << 20, 1 << 30] {
        let cache: Cache<u64, Vec<u8>> = Cache::builder().max_bytes(bound).build().unwrap();
        let big = (bound.min(strata::MIN_SHARD_BYTES) - 1024) as usize;
        cache
            .insert(1, vec![0; big])
            .unwrap_or_else(|e| panic!("bound {bound}: {e}"));
        assert_eq!(cache.get(&1).map(|v| v.len()), Some(big));
    }
    // A custom weigher's units are its own: the 64-unit floor applies, not the byte one.
    let counted: Cache<u64, u64> = Cache::builder()
        .max_weight(1 << 20)
        .weigher(|_: &u64, _: &u64| 1)
        .build()
        .unwrap();
    let shown = format!("{counted:?}");
    assert!(
        !shown.contains("shards: 1,"),
        "one shard for 2^20 units: {shown}"
    );
}

// ---------------------------------------------------------------------------------------------
// Scans and new working sets
// ---------------------------------------------------------------------------------------------

#[test]
fn hot_set_survives_a_large_scan() {
    const CAPACITY: u64 = 1000;
    const HOT: u64 = 500;
    let cache: Cache<u64, u64> = Cache::new(CAPACITY);
    let get_or_load = |k: u64| {
        if cache.get(&k).is_none() {
            cache.insert(k, k).unwrap();
        }
    };
    for _ in 0..4 {
        for k in 0..HOT {
            get_or_load(k);
        }
    }
    let mut hot_misses = 0u64;
    for i in 0..100_000u64 {
        cache.insert(1_000_000 + i, i).unwrap();
        let k = i % HOT;
        if cache.get(&k).is_none() {
            hot_misses += 1;
            cache.insert(k, k).unwrap();
        }
    }
    let resident = (0..HOT).filter(|k| cache.contains_key(k)).count() as u64;
    eprintln!(
        "hot keys resident after the scan: {resident}/{HOT}; hot misses during it: {hot_misses}"
    );
    assert!(cache.len() as u64 <= CAPACITY);
    assert!(
        resident * 10 >= HOT * 9 && hot_misses * 10 <= 100_000,
        "hot keys resident after the scan: {resident}/{HOT}; hot misses during it: {hot_misses}/100000"
    );
}

/// A cache that is only written to (no lookups) must still let a new working set in. The
/// first phase cycles 2,000 keys through 1,000 slots, so every one of them is inserted again
/// and again and its sketch counters saturate. If only lookups aged the sketch, those counts
/// would never fall, every admission duel against them would tie, and the new set would be
/// refused forever; writes count as requests, so the old counts fade.
#[test]
fn write_only_cache_adopts_a_new_working_set() {
    let cache: Cache<u64, u64> = Cache::builder()
        .max_entries(1_000)
        .shards(1)
        .build()
        .unwrap();
    for _ in 0..30 {
        for k in 0..2_000 {
            cache.insert(k, k).unwrap();
        }
    }
    for _ in 0..100 {
        for k in 10_000..10_500 {
            cache.insert(k, k).unwrap();
        }
    }
    let new_set = (10_000..10_500u64)
        .filter(|k| cache.contains_key(k))
        .count();
    assert!(
        new_set >= 450,
        "only {new_set} of the new working set of 500 cached"
    );
}

/// A recency-driven workload: every key is asked for twice, a hundred requests apart, and
/// never again. LRU with 1,000 entries hits every second request (a hit ratio of 0.5, the
/// optimum); a fixed 1% window with frequency admission hits almost none, since each key
/// leaves the window of 10 entries long before its second request and then loses its
/// admission duel against entries asked for twice. The climber must find that a larger
/// window pays. (At 128 entries the window would need half the cache, and the climber does
/// not get there: docs/design.md, "Where it falls short".)
#[test]
fn the_window_grows_for_keys_reused_soon_after_their_first_request() {
    const STEPS: u64 = 200_000;
    const GAP: u64 = 50;
    let cache: Cache<u64, u64> = Cache::new(1_000);
    let mut late_hits = 0u64;
    let mut get_or_load = |k: u64, late: bool| {
        if cache.get(&k).is_some() {
            late_hits += u64::from(late);
        } else {
            cache.insert(k, k).unwrap();
        }
    };
    for step in 0..STEPS {
        let late = step >= STEPS / 2;
        get_or_load(step, late);
        if let Some(again) = step.checked_sub(GAP) {
            get_or_load(again, late);
        }
    }
    // The second half holds STEPS requests, half of them second requests.
    let ratio = late_hits as f64 / STEPS as f64;
    eprintln!("hit ratio over the second half: {ratio:.3} (LRU: 0.500)");
    assert!(ratio >= 0.45, "hit ratio over the second half: {ratio:.3}");
}
