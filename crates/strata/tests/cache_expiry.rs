//! The engine `Cache` through its public API, in time: TTLs too long to represent, time-to-idle,
//! expired entries reclaimed by writes to other keys, key snapshots, and the reaper thread.
//! Time is a `MockClock`, except for the reaper thread's interval, which is real time: its test
//! waits for the reaper's removals rather than for time to pass.
//!
//! The `shuttle` feature swaps the engine's locks for shuttle's, which only work inside a
//! shuttle test; these tests run without it.
#![cfg(not(feature = "shuttle"))]

use std::collections::BTreeSet;
use std::sync::mpsc;
use std::time::Duration;

use strata::{Cache, Inserted, MockClock, RemovalCause};

mod common;
use common::cache::{recorder, take, MS};

// ---------------------------------------------------------------------------------------------
// TTL edge cases
// ---------------------------------------------------------------------------------------------

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
// Reaper thread
// ---------------------------------------------------------------------------------------------

#[test]
fn reaper_reclaims_without_any_access() {
    let clock = MockClock::new();
    let (events, record) = recorder();
    // The reaper sleeps on the cache's clock, so it runs when the test advances the mock;
    // the listener tells this thread of each entry it reclaims, and the test waits for the
    // hundredth.
    let (reclaimed, each_reclaimed) = mpsc::channel();
    let cache: Cache<u64, u64> = Cache::builder()
        .max_entries(1000)
        .reaper(Duration::from_millis(10))
        .clock(clock.clone())
        .removal_listener(move |k, v, cause| {
            record(k, v, cause);
            let _ = reclaimed.send(());
        })
        .build()
        .unwrap();
    for k in 0..100 {
        cache.insert_with_ttl(k, k, Duration::from_secs(1)).unwrap();
    }
    cache.insert(1000, 1000).unwrap();
    assert_eq!(cache.len(), 101, "the reaper ran before the clock moved");
    clock.advance(Duration::from_secs(1));
    // The bound only ends the wait of a test whose reaper never comes; the assertions below
    // say what is missing.
    for _ in 0..100 {
        if each_reclaimed
            .recv_timeout(Duration::from_secs(10))
            .is_err()
        {
            break;
        }
    }
    assert_eq!(
        cache.len(),
        1,
        "the reaper did not reclaim once the clock moved"
    );
    assert_eq!(cache.stats().expirations, 100);
    assert_eq!(take(&events).len(), 100);
    assert_eq!(cache.get(&1000), Some(1000));
}
