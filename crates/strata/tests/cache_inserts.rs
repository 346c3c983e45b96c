//! The engine `Cache` through its public API: the inserts it refuses (a zero TTL, a weigher
//! that panics, a value too heavy), which change nothing, and what becomes of a value that is
//! refused or replaced.
//!
//! The `shuttle` feature swaps the engine's locks for shuttle's, which only work inside a
//! shuttle test; these tests run without it.
#![cfg(not(feature = "shuttle"))]

use std::time::Duration;

use strata::{Cache, InsertError, Inserted, RemovalCause};

mod common;
use common::cache::{recorder, take};

// ---------------------------------------------------------------------------------------------
// Insert refusals
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

// ---------------------------------------------------------------------------------------------
// Found by review
// ---------------------------------------------------------------------------------------------

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
