//! The engine `Cache` through its public API: the cause the removal listener is given on
//! every path, the statistics, `remove_where` over a big shard and beside writers, and a key
//! whose `Hash` panics mid-removal.
//!
//! The `shuttle` feature swaps the engine's locks for shuttle's, which only work inside a
//! shuttle test; these tests run without it.
#![cfg(not(feature = "shuttle"))]

use strata::{Cache, Inserted, MockClock, RemovalCause};

mod common;
use common::cache::{recorder, take, MS};
use common::Rng;

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
// Found by review
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
