//! Focused behaviour tests for the engine: builder validation, insert refusals, TTL edge cases,
//! removal causes, proactive expiry, snapshots, scan resistance and the reaper thread.
//!
//! The `shuttle` feature swaps the engine's locks for shuttle's, which only work inside a
//! shuttle test; these tests run without it.
#![cfg(not(feature = "shuttle"))]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strata::{BuildError, Cache, InsertError, Inserted, MockClock, RemovalCause};

mod common;
use common::Rng;

type Events<K, V> = Arc<Mutex<Vec<(K, V, RemovalCause)>>>;

/// A removal listener that records every call.
fn recorder<K: Send + 'static, V: Send + 'static>() -> (
    Events<K, V>,
    impl Fn(K, V, RemovalCause) + Send + Sync + 'static,
) {
    let events: Events<K, V> = Arc::default();
    let sink = Arc::clone(&events);
    (events, move |k, v, cause| {
        sink.lock().unwrap().push((k, v, cause))
    })
}

fn take<K, V>(events: &Events<K, V>) -> Vec<(K, V, RemovalCause)> {
    std::mem::take(&mut *events.lock().unwrap())
}

const MS: Duration = Duration::from_millis(1);

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
// Insert refusals and TTL edge cases
// ---------------------------------------------------------------------------------------------

#[test]
fn zero_ttl_is_refused_and_changes_nothing() {
    let cache: Cache<u64, u64> = Cache::builder().max_entries(100).build().unwrap();
    cache.insert(1, 10).unwrap();
    let before = cache.stats();
    assert_eq!(
        cache.insert_with_ttl(1, 11, Duration::ZERO),
        Err(InsertError::ZeroTtl)
    );
    assert_eq!(
        cache.insert_with_ttl(2, 20, Duration::ZERO),
        Err(InsertError::ZeroTtl)
    );
    assert_eq!(
        cache.insert_if_absent_with_ttl(3, 30, Duration::ZERO),
        Err(InsertError::ZeroTtl)
    );
    assert_eq!(cache.stats(), before);
    assert_eq!(cache.len(), 1);
    assert_eq!(cache.get(&1), Some(10));
    assert_eq!(cache.get(&2), None);
}

#[test]
fn huge_ttl_never_expires() {
    let clock = MockClock::new();
    let cache: Cache<u64, u64> = Cache::builder()
        .max_entries(100)
        .default_ttl(Duration::from_secs(60))
        .clock(clock.clone())
        .build()
        .unwrap();
    cache.insert_with_ttl(1, 10, Duration::MAX).unwrap();
    assert_eq!(
        cache.insert_if_absent_with_ttl(2, 20, Duration::MAX),
        Ok(Inserted::Inserted)
    );
    // Roughly 500 years: longer than any real deadline, still below u64 nanoseconds.
    let century = Duration::from_secs(100 * 365 * 24 * 3600);
    cache.insert_with_ttl(3, 30, century * 5).unwrap();
    cache.insert(4, 40).unwrap(); // default TTL

    clock.advance(century * 4);
    assert_eq!(cache.run_pending_tasks(), 1); // only the default-TTL entry
    assert_eq!(cache.get(&1), Some(10));
    assert_eq!(cache.get(&2), Some(20));
    assert_eq!(cache.get(&3), Some(30));
    assert_eq!(cache.get(&4), None);

    clock.advance(century);
    assert_eq!(cache.get(&3), None);
    // To the end of representable time: Duration::MAX still never expires.
    clock.advance(Duration::MAX);
    assert_eq!(cache.run_pending_tasks(), 1);
    assert_eq!(cache.get(&1), Some(10));
    assert!(cache.contains_key(&2));
    assert_eq!(cache.len(), 2);
    let keys: BTreeSet<u64> = cache.keys().collect();
    assert_eq!(keys, BTreeSet::from([1, 2]));
}

#[test]
fn weigher_panic_is_reported_and_cache_keeps_working() {
    let (events, listener) = recorder();
    let cache: Cache<u64, u64> = Cache::builder()
        .max_weight(1000)
        .weigher(|_: &u64, v: &u64| {
            assert!(*v != 666, "weigher refuses 666");
            *v
        })
        .shards(1)
        .removal_listener(listener)
        .build()
        .unwrap();
    cache.insert(1, 10).unwrap();
    let before = cache.stats();
    assert_eq!(cache.insert(1, 666), Err(InsertError::WeigherPanicked));
    assert_eq!(cache.insert(2, 666), Err(InsertError::WeigherPanicked));
    assert_eq!(
        cache.insert_if_absent(3, 666),
        Err(InsertError::WeigherPanicked)
    );
    assert_eq!(cache.stats(), before);
    assert!(take(&events).is_empty());
    // Still works for everything else.
    assert_eq!(cache.get(&1), Some(10));
    cache.insert(2, 20).unwrap();
    cache.insert(1, 11).unwrap();
    assert_eq!(cache.get(&2), Some(20));
    assert_eq!(cache.get(&1), Some(11));
    assert_eq!(cache.weighted_size(), 31);
    assert_eq!(take(&events), vec![(1, 10, RemovalCause::Replaced)]);
}

#[test]
fn too_large_weight_is_refused_and_changes_nothing() {
    let (events, listener) = recorder();
    let cache: Cache<u64, u64> = Cache::builder()
        .max_weight(1000)
        .weigher(|_: &u64, v: &u64| *v)
        .shards(4)
        .removal_listener(listener)
        .build()
        .unwrap();
    for k in 0..10 {
        cache.insert(k, 10).unwrap();
    }
    let before = cache.stats();
    assert_eq!(
        cache.insert(100, u64::MAX),
        Err(InsertError::TooLarge {
            weight: u64::MAX,
            limit: 250
        })
    );
    // Over an existing key: the old value stays.
    assert_eq!(
        cache.insert(3, u64::MAX),
        Err(InsertError::TooLarge {
            weight: u64::MAX,
            limit: 250
        })
    );
    assert_eq!(
        cache.insert_if_absent(101, u64::MAX),
        Err(InsertError::TooLarge {
            weight: u64::MAX,
            limit: 250
        })
    );
    // The per-entry limit is one shard's share of the bound.
    assert_eq!(
        cache.insert(102, 251),
        Err(InsertError::TooLarge {
            weight: 251,
            limit: 250
        })
    );
    assert_eq!(cache.stats(), before);
    assert!(take(&events).is_empty());
    assert_eq!(cache.get(&3), Some(10));
    assert_eq!(cache.get(&100), None);
    // Exactly the limit is admitted.
    cache.insert(102, 250).unwrap();
    assert_eq!(cache.get(&102), Some(250));
    assert!(cache.weighted_size() <= 1000);
}

#[test]
fn value_bigger_than_the_whole_cache_is_refused() {
    let cache: Cache<u64, Vec<u8>> = Cache::builder()
        .max_weight(100)
        .weigher(|_: &u64, v: &Vec<u8>| v.len() as u64)
        .shards(1)
        .build()
        .unwrap();
    assert_eq!(
        cache.insert(1, vec![0; 101]),
        Err(InsertError::TooLarge {
            weight: 101,
            limit: 100
        })
    );
    assert!(cache.is_empty());
    cache.insert(1, vec![0; 100]).unwrap();
    assert_eq!(cache.weighted_size(), 100);
    // A second full-size value evicts the first.
    cache.insert(2, vec![0; 100]).unwrap();
    assert_eq!(cache.len(), 1);
    assert_eq!(cache.weighted_size(), 100);

    // Also through max_bytes: a value beyond the byte bound is refused.
    let bytes: Cache<u64, Vec<u8>> = Cache::builder().max_bytes(4096).shards(1).build().unwrap();
    match bytes.insert(1, vec![0; 5000]) {
        Err(InsertError::TooLarge {
            weight,
            limit: 4096,
        }) => assert!(weight >= 5000),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(bytes.is_empty());
}

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

// ---------------------------------------------------------------------------------------------
// Removal causes
// ---------------------------------------------------------------------------------------------

#[test]
fn removal_causes_for_every_path() {
    let clock = MockClock::new();
    let (events, listener) = recorder();
    let cache: Cache<u64, u64> = Cache::builder()
        .max_entries(100)
        .shards(1)
        .clock(clock.clone())
        .removal_listener(listener)
        .build()
        .unwrap();

    // Replaced: the old value is reported.
    cache.insert(1, 10).unwrap();
    cache.insert(1, 11).unwrap();
    assert_eq!(take(&events), vec![(1, 10, RemovalCause::Replaced)]);

    // Removed.
    assert_eq!(cache.remove(&1), Some(11));
    assert_eq!(take(&events), vec![(1, 11, RemovalCause::Removed)]);
    assert_eq!(cache.remove(&1), None);
    assert!(take(&events).is_empty());

    // Expired, via run_pending_tasks.
    cache.insert_with_ttl(2, 20, 10 * MS).unwrap();
    clock.advance(9 * MS);
    assert_eq!(cache.run_pending_tasks(), 0);
    clock.advance(MS); // deadline == now: dead
    assert_eq!(cache.get(&2), None);
    assert_eq!(cache.run_pending_tasks(), 1);
    assert_eq!(take(&events), vec![(2, 20, RemovalCause::Expired)]);

    // Expired, via an overwrite after expiry (counts as an expiration and an insert).
    let s0 = cache.stats();
    cache.insert_with_ttl(3, 30, 10 * MS).unwrap();
    clock.advance(10 * MS);
    cache.insert(3, 31).unwrap();
    assert_eq!(take(&events), vec![(3, 30, RemovalCause::Expired)]);
    let s1 = cache.stats();
    assert_eq!(s1.inserts - s0.inserts, 2);
    assert_eq!(s1.updates - s0.updates, 0);
    assert_eq!(s1.expirations - s0.expirations, 1);
    assert_eq!(cache.get(&3), Some(31));

    // Expired, via insert_if_absent over an expired entry.
    cache.insert_with_ttl(4, 40, 10 * MS).unwrap();
    clock.advance(10 * MS);
    assert_eq!(cache.insert_if_absent(4, 41), Ok(Inserted::Inserted));
    assert_eq!(take(&events), vec![(4, 40, RemovalCause::Expired)]);

    // Expired, via remove of an expired entry: remove returns None.
    cache.insert_with_ttl(5, 50, 10 * MS).unwrap();
    clock.advance(10 * MS);
    assert_eq!(cache.remove(&5), None);
    assert_eq!(take(&events), vec![(5, 50, RemovalCause::Expired)]);

    // Cleared.
    cache.clear();
    let mut cleared = take(&events);
    cleared.sort_unstable_by_key(|&(k, v, _)| (k, v));
    assert_eq!(
        cleared,
        vec![
            (3, 31, RemovalCause::Cleared),
            (4, 41, RemovalCause::Cleared)
        ]
    );
    assert!(cache.is_empty());

    // Evicted.
    let (events, listener) = recorder();
    let small: Cache<u64, u64> = Cache::builder()
        .max_entries(20)
        .shards(1)
        .removal_listener(listener)
        .build()
        .unwrap();
    for k in 0..21 {
        small.insert(k, k * 10).unwrap();
    }
    let evicted = take(&events);
    assert_eq!(evicted.len(), 1);
    let (k, v, cause) = evicted[0];
    assert_eq!((v, cause), (k * 10, RemovalCause::Evicted));
    assert_eq!(small.len(), 20);
    assert_eq!(small.stats().evictions, 1);

    let s = cache.stats();
    assert_eq!(
        s.entries,
        s.inserts - s.removals - s.expirations - s.evictions
    );
}

#[test]
fn stats_count_what_they_say() {
    let clock = MockClock::new();
    let cache: Cache<u64, u64> = Cache::builder()
        .max_entries(100)
        .clock(clock.clone())
        .build()
        .unwrap();
    cache.insert(1, 1).unwrap(); // insert
    cache.insert(1, 2).unwrap(); // update
    assert_eq!(cache.insert_if_absent(1, 3), Ok(Inserted::Existing(2))); // nothing
    assert_eq!(cache.insert_if_absent(2, 3), Ok(Inserted::Inserted)); // insert
    assert_eq!(cache.get(&1), Some(2)); // hit
    assert_eq!(cache.get(&9), None); // miss
    assert!(cache.contains_key(&1)); // nothing
    assert!(!cache.contains_key(&9)); // nothing
    assert_eq!(cache.remove(&2), Some(3)); // removal
    assert_eq!(cache.remove(&2), None); // nothing
    let s = cache.stats();
    assert_eq!(
        (
            s.hits,
            s.misses,
            s.inserts,
            s.updates,
            s.removals,
            s.expirations,
            s.evictions
        ),
        (1, 1, 2, 1, 1, 0, 0)
    );
    assert_eq!((s.entries, s.weighted_size), (1, 1));
    cache.clear();
    let s = cache.stats();
    assert_eq!((s.removals, s.entries, s.weighted_size), (2, 0, 0));
}

// ---------------------------------------------------------------------------------------------
// Time-to-idle
// ---------------------------------------------------------------------------------------------

#[test]
fn time_to_idle_refreshes_on_reads_up_to_the_ttl() {
    let clock = MockClock::new();
    let cache: Cache<u64, u64> = Cache::builder()
        .max_entries(100)
        .default_ttl(100 * MS)
        .time_to_idle(30 * MS)
        .clock(clock.clone())
        .build()
        .unwrap();
    cache.insert(1, 10).unwrap();
    cache.insert(2, 20).unwrap();
    // Key 1 is read every 20 ms and lives until its TTL; key 2 is never read.
    for step in 1..=4 {
        clock.advance(20 * MS);
        assert_eq!(cache.get(&1), Some(10), "step {step}");
        // contains_key is not a read: it does not keep key 2 alive.
        assert_eq!(cache.contains_key(&2), step == 1, "step {step}");
    }
    clock.advance(19 * MS); // t = 99 ms
    assert_eq!(cache.get(&1), Some(10));
    clock.advance(MS); // t = 100 ms: the hard TTL
    assert_eq!(cache.get(&1), None);

    // Idle expiry at the exact boundary.
    cache.insert(3, 30).unwrap();
    clock.advance(29 * MS);
    assert!(cache.contains_key(&3));
    clock.advance(MS);
    assert!(!cache.contains_key(&3));
    assert_eq!(cache.get(&3), None);
}

// ---------------------------------------------------------------------------------------------
// Proactive expiry and snapshots
// ---------------------------------------------------------------------------------------------

#[test]
fn writes_to_other_keys_reclaim_expired_entries() {
    let clock = MockClock::new();
    let (events, listener) = recorder();
    let cache: Cache<u64, u64> = Cache::builder()
        .max_entries(10_000)
        .shards(4)
        .clock(clock.clone())
        .removal_listener(listener)
        .build()
        .unwrap();
    for k in 0..200 {
        cache.insert_with_ttl(k, k, Duration::from_secs(1)).unwrap();
    }
    clock.advance(Duration::from_secs(1));
    // Never read the expired keys: only write others.
    for k in 1000..2000 {
        cache.insert(k, k).unwrap();
    }
    let s = cache.stats();
    assert_eq!(s.expirations, 200, "{s:?}");
    assert_eq!(cache.len(), 1000);
    assert_eq!(s.misses + s.hits, 0);
    let expired = take(&events);
    assert_eq!(expired.len(), 200);
    assert!(expired
        .iter()
        .all(|&(k, v, c)| k < 200 && k == v && c == RemovalCause::Expired));
}

#[test]
fn keys_snapshot_is_exactly_the_live_keys() {
    let clock = MockClock::new();
    let cache: Cache<u64, u64> = Cache::builder()
        .max_entries(10_000)
        .shards(8)
        .clock(clock.clone())
        .build()
        .unwrap();
    let mut live = BTreeSet::new();
    for k in 0..500u64 {
        match k % 3 {
            0 => cache.insert_with_ttl(k, k, 10 * MS).unwrap(),
            1 => cache.insert_with_ttl(k, k, 20 * MS).unwrap(),
            _ => cache.insert(k, k).unwrap(),
        }
    }
    for k in (0..500).step_by(7) {
        cache.remove(&k);
    }
    assert_eq!(cache.keys().count(), 500 - (0..500).step_by(7).count());
    clock.advance(10 * MS);
    for k in 0..500u64 {
        if k % 7 != 0 && k % 3 != 0 {
            live.insert(k);
        }
    }
    let keys: Vec<u64> = cache.keys().collect();
    assert_eq!(keys.len(), live.len(), "duplicates in keys()");
    assert_eq!(keys.into_iter().collect::<BTreeSet<_>>(), live);
    // Expired entries are still held until reclaimed, but not listed.
    assert!(cache.len() > live.len());
    clock.advance(10 * MS);
    live.retain(|k| k % 3 == 2);
    assert_eq!(cache.keys().collect::<BTreeSet<_>>(), live);
    cache.run_pending_tasks();
    assert_eq!(cache.len(), live.len());
}

// ---------------------------------------------------------------------------------------------
// Scan resistance
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

// ---------------------------------------------------------------------------------------------
// Reaper thread
// ---------------------------------------------------------------------------------------------

#[test]
fn reaper_reclaims_without_any_access() {
    let clock = MockClock::new();
    let (events, listener) = recorder();
    let cache: Cache<u64, u64> = Cache::builder()
        .max_entries(1000)
        .reaper(Duration::from_millis(10))
        .clock(clock.clone())
        .removal_listener(listener)
        .build()
        .unwrap();
    for k in 0..100 {
        cache.insert_with_ttl(k, k, Duration::from_secs(1)).unwrap();
    }
    cache.insert(1000, 1000).unwrap();
    clock.advance(Duration::from_secs(1));
    let start = Instant::now();
    while cache.len() > 1 && start.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(cache.len(), 1, "reaper did not reclaim within 2 s");
    assert_eq!(cache.stats().expirations, 100);
    assert_eq!(take(&events).len(), 100);
    assert_eq!(cache.get(&1000), Some(1000));
}

// ---------------------------------------------------------------------------------------------
// Small bounds
// ---------------------------------------------------------------------------------------------

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
    let start = Instant::now();
    cache.insert(1, vec![1]).unwrap();
    cache.clear();
    assert!(
        start.elapsed() < Duration::from_millis(100),
        "clear took {:?}",
        start.elapsed()
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

// ---------------------------------------------------------------------------------------------
// Found by review: unwinding user code, drops under the lock, replacements evicting themselves
// ---------------------------------------------------------------------------------------------

mod hash_panics {
    use std::hash::{Hash, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Keys whose `Hash` panics for the value stored in `PANIC_ON` (0: never).
    pub static PANIC_ON: AtomicU64 = AtomicU64::new(0);

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Key(pub u64);

    impl Hash for Key {
        fn hash<H: Hasher>(&self, state: &mut H) {
            if PANIC_ON.load(Ordering::SeqCst) == self.0 {
                panic!("hash of {} panics", self.0);
            }
            self.0.hash(state);
        }
    }
}

/// A key whose `Hash` panics while the shard is mid-removal (the slab's last entry must be
/// rehashed to move it into the hole) leaves the shard exactly as it was.
#[test]
fn a_panicking_hash_leaves_the_shard_intact() {
    use hash_panics::{Key, PANIC_ON};
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::atomic::Ordering;

    let cache: Cache<Key, u64> = Cache::builder().max_entries(100).shards(1).build().unwrap();
    for k in 1..=4 {
        cache.insert(Key(k), k).unwrap();
    }
    // Removing key 1 moves the last slot (key 4) into its place, which hashes key 4.
    PANIC_ON.store(4, Ordering::SeqCst);
    let removed = catch_unwind(AssertUnwindSafe(|| cache.remove(&Key(1))));
    PANIC_ON.store(0, Ordering::SeqCst);
    assert!(removed.is_err(), "the hash of key 4 should have panicked");
    for k in 1..=4 {
        assert_eq!(cache.get(&Key(k)), Some(k), "key {k} after the panic");
    }
    assert_eq!(cache.len(), 4);
    assert_eq!(cache.remove(&Key(1)), Some(1));
    assert_eq!(cache.get(&Key(4)), Some(4));
    assert_eq!(cache.len(), 3);
}

/// `insert_if_absent` that finds a live entry drops the caller's value after releasing the
/// shard's lock: a destructor that reads the cache (from another thread, or this one) must not
/// find it locked.
#[test]
fn rejected_values_are_dropped_outside_the_lock() {
    use std::sync::mpsc;
    use std::sync::OnceLock;

    static CACHE: OnceLock<Cache<u64, Probe>> = OnceLock::new();
    static LOCK_FREE: OnceLock<bool> = OnceLock::new();

    #[derive(Clone)]
    struct Probe(bool);
    impl Drop for Probe {
        fn drop(&mut self) {
            if !self.0 {
                return;
            }
            // Ask another thread to read the (single) shard; it answers at once if the lock is
            // free, and only after this drop returns if it is held.
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                let _ = CACHE.get().map(|c| c.len());
                let _ = tx.send(());
            });
            let free = rx.recv_timeout(std::time::Duration::from_secs(5)).is_ok();
            let _ = LOCK_FREE.set(free);
        }
    }

    let cache = CACHE.get_or_init(|| Cache::builder().max_entries(10).shards(1).build().unwrap());
    cache.insert(1, Probe(false)).unwrap();
    let outcome = cache.insert_if_absent(1, Probe(true)).unwrap();
    assert!(matches!(outcome, Inserted::Existing(_)));
    assert_eq!(LOCK_FREE.get(), Some(&true), "dropped under the write lock");
}

/// Replacing a value with a heavier one evicts other entries, never the entry just written.
#[test]
fn a_heavier_replacement_does_not_evict_itself() {
    let cache: Cache<&str, u64> = Cache::builder()
        .max_weight(20)
        .weigher(|_: &&str, v: &u64| *v)
        .shards(1)
        .build()
        .unwrap();
    for key in ["a", "b", "c"] {
        cache.insert(key, 5).unwrap();
    }
    cache.insert("a", 12).unwrap();
    assert_eq!(cache.get("a"), Some(12));
    assert!(cache.weighted_size() <= 20);
    let stats = cache.stats();
    assert_eq!(stats.updates, 1);
    assert_eq!(stats.evictions, 1, "one of b and c makes room");
    assert_eq!(stats.entries, 2);
}

/// A TTL too long to represent means "never", whether given at insert or by `set_ttl`.
#[test]
fn set_ttl_with_an_unrepresentable_duration_means_never() {
    let cache: Cache<u64, u64> = Cache::builder().max_entries(10).build().unwrap();
    cache.insert_with_ttl(1, 1, Duration::MAX).unwrap();
    assert_eq!(cache.ttl(&1), Some(None));
    cache.insert_with_ttl(2, 2, Duration::from_secs(5)).unwrap();
    assert!(cache.set_ttl(&2, Some(Duration::MAX)));
    assert_eq!(cache.ttl(&2), Some(None));
}

/// `remove_where` works through a big shard in slices, releasing the lock between them; every
/// entry is visited once, exactly the doomed ones go, and the memory of a mostly emptied shard
/// is given back.
#[test]
fn remove_where_in_slices_is_exact_and_gives_memory_back() {
    let (events, listener) = recorder::<u64, u64>();
    let cache: Cache<u64, u64> = Cache::builder()
        .max_entries(100_000)
        .shards(1)
        .removal_listener(listener)
        .build()
        .unwrap();
    for k in 0..50_000 {
        cache.insert(k, k).unwrap();
    }
    let mut visited = Vec::new();
    let removed = cache.remove_where(|&k, _| {
        visited.push(k);
        k % 3 == 0
    });
    assert_eq!(removed, 16_667);
    visited.sort_unstable();
    assert_eq!(
        visited,
        (0..50_000).collect::<Vec<u64>>(),
        "each entry visited once"
    );
    for k in 0..50_000 {
        assert_eq!(cache.get(&k).is_some(), k % 3 != 0, "key {k}");
    }
    let heap_full = cache.engine_heap_bytes();
    assert_eq!(cache.remove_where(|&k, _| k >= 100), 33_267);
    assert_eq!(cache.len(), 66);
    assert!(
        cache.engine_heap_bytes() < heap_full / 4,
        "{} bytes kept after removing all but 66 of 33,333 entries (was {heap_full})",
        cache.engine_heap_bytes()
    );
    let events = events.lock().unwrap();
    assert_eq!(events.len(), 16_667 + 33_267);
    assert!(events.iter().all(|e| e.2 == RemovalCause::Invalidated));
    drop(events);
    // The shrunken shard still works.
    for k in 0..1_000 {
        cache.insert(k, k + 1).unwrap();
    }
    assert_eq!(cache.get(&999), Some(1_000));
}

/// Writers working on other keys while `remove_where` runs neither stop it from removing every
/// doomed entry that was there throughout, nor lose their own entries.
#[test]
fn remove_where_removes_every_doomed_entry_despite_concurrent_writes() {
    let cache: Cache<u64, u64> = Cache::builder()
        .max_entries(1_000_000)
        .shards(2)
        .build()
        .unwrap();
    // Odd keys are doomed; even keys belong to the writer.
    for k in 0..100_000 {
        cache.insert(k, k).unwrap();
    }
    let writer = {
        let cache = cache.clone();
        std::thread::spawn(move || {
            let mut rng = Rng(7);
            for _ in 0..200_000 {
                let k = rng.below(200_000) * 2;
                if rng.below(3) == 0 {
                    cache.remove(&k);
                } else {
                    cache.insert(k, k).unwrap();
                }
            }
        })
    };
    let removed = cache.remove_where(|&k, _| k % 2 == 1);
    writer.join().unwrap();
    assert_eq!(removed, 50_000);
    assert!(cache.keys().all(|k| k % 2 == 0));
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
