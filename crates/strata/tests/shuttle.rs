//! Deterministic concurrency tests: with the `shuttle` feature the engine's locks and atomics
//! are shuttle's, and shuttle explores thread interleavings (random and PCT schedules).
//!
//! Run with `cargo test -p strata --features shuttle --test shuttle`.
#![cfg(feature = "shuttle")]

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::Arc;
use std::time::Duration;

use shuttle::sync::Mutex;
use shuttle::thread;
use strata::{Cache, Inserted, MockClock, RemovalCause};

/// A fixed hasher, so a failing schedule replays identically.
type Fixed = BuildHasherDefault<DefaultHasher>;
type TestCache = Cache<u64, u64, Fixed>;
type Events = Arc<Mutex<Vec<(u64, u64, RemovalCause)>>>;

const ITERATIONS: usize = 1000;

fn cache(max_entries: u64, shards: usize) -> (TestCache, Events) {
    let events: Events = Arc::default();
    let sink = Arc::clone(&events);
    let cache = Cache::<u64, u64>::builder()
        .max_entries(max_entries)
        .shards(shards)
        .hasher(Fixed::default())
        .removal_listener(move |k, v, c| sink.lock().unwrap().push((k, v, c)))
        .build()
        .unwrap();
    (cache, events)
}

/// Values encode their key, so any answer can be checked against the key it was asked for.
fn value(key: u64, thread: u64, seq: u64) -> u64 {
    key * 1_000_000 + thread * 1000 + seq
}

fn key_of(value: u64) -> u64 {
    value / 1_000_000
}

/// After a final clear, every value that was stored has been reported exactly once, under its
/// own key, and the listener's causes agree with the statistics.
fn check_accounting(cache: &TestCache, events: &Events, stored: &[u64]) {
    cache.clear();
    assert!(cache.is_empty());
    let events = events.lock().unwrap();
    let mut reported = HashMap::new();
    for &(k, v, cause) in events.iter() {
        assert_eq!(k, key_of(v), "{v} reported under key {k}");
        assert!(reported.insert(v, cause).is_none(), "{v} reported twice");
    }
    let mut stored = stored.to_vec();
    stored.sort_unstable();
    let mut got: Vec<u64> = reported.keys().copied().collect();
    got.sort_unstable();
    assert_eq!(got, stored, "reported values differ from stored values");
    let count = |c: RemovalCause| reported.values().filter(|&&x| x == c).count() as u64;
    let s = cache.stats();
    assert_eq!(s.entries, 0);
    assert_eq!(s.inserts, s.removals + s.expirations + s.evictions, "{s:?}");
    assert_eq!(s.evictions, count(RemovalCause::Evicted));
    assert_eq!(s.expirations, count(RemovalCause::Expired));
    assert_eq!(s.updates, count(RemovalCause::Replaced));
    assert_eq!(
        s.removals,
        count(RemovalCause::Removed) + count(RemovalCause::Cleared)
    );
}

fn insert_if_absent_race() {
    let (cache, events) = cache(16, 1);
    let handles: Vec<_> = (0..3u64)
        .map(|t| {
            let cache = cache.clone();
            thread::spawn(move || (t, cache.insert_if_absent(7, value(7, t, 0)).unwrap()))
        })
        .collect();
    let results: Vec<(u64, Inserted<u64>)> =
        handles.into_iter().map(|h| h.join().unwrap()).collect();
    let winners: Vec<u64> = results
        .iter()
        .filter(|(_, r)| *r == Inserted::Inserted)
        .map(|&(t, _)| value(7, t, 0))
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let winner = winners[0];
    for (_, r) in &results {
        if let Inserted::Existing(v) = r {
            assert_eq!(*v, winner, "{results:?}");
        }
    }
    assert_eq!(cache.get(&7), Some(winner));
    let s = cache.stats();
    assert_eq!((s.inserts, s.updates, s.entries), (1, 0, 1));
    check_accounting(&cache, &events, &[winner]);
}

#[test]
fn insert_if_absent_has_one_winner_random() {
    shuttle::check_random(insert_if_absent_race, ITERATIONS);
}

#[test]
fn insert_if_absent_has_one_winner_pct() {
    shuttle::check_pct(insert_if_absent_race, ITERATIONS, 3);
}

/// Three threads insert, read, remove and insert_if_absent over 6 keys in a cache of 4
/// entries with one shard; every thread checks the bound after each of its operations.
fn tiny_cache_mixed_ops() {
    const MAX: u64 = 4;
    let (cache, events) = cache(MAX, 1);
    let handles: Vec<_> = (0..3u64)
        .map(|t| {
            let cache = cache.clone();
            thread::spawn(move || {
                let mut stored = Vec::new();
                for seq in 0..6u64 {
                    let key = (t * 2 + seq) % 6;
                    match (t + seq) % 4 {
                        0 | 1 => {
                            let v = value(key, t, seq);
                            cache.insert(key, v).unwrap();
                            stored.push(v);
                        }
                        2 => {
                            let v = value(key, t, seq);
                            match cache.insert_if_absent(key, v).unwrap() {
                                Inserted::Inserted => stored.push(v),
                                Inserted::Existing(old) => assert_eq!(key_of(old), key),
                            }
                        }
                        _ => {
                            if let Some(v) = cache.get(&key) {
                                assert_eq!(key_of(v), key);
                            }
                            if let Some(v) = cache.remove(&((key + 1) % 6)) {
                                assert_eq!(key_of(v), (key + 1) % 6);
                            }
                        }
                    }
                    assert!(cache.len() as u64 <= MAX, "len {} > {MAX}", cache.len());
                    assert!(cache.weighted_size() <= MAX);
                }
                stored
            })
        })
        .collect();
    let stored: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert!(cache.len() as u64 <= MAX);
    let s = cache.stats();
    assert_eq!(
        s.entries,
        s.inserts - s.removals - s.expirations - s.evictions,
        "{s:?}"
    );
    assert_eq!(s.inserts + s.updates, stored.len() as u64);
    check_accounting(&cache, &events, &stored);
}

#[test]
fn tiny_cache_keeps_bound_random() {
    shuttle::check_random(tiny_cache_mixed_ops, ITERATIONS);
}

#[test]
fn tiny_cache_keeps_bound_pct() {
    shuttle::check_pct(tiny_cache_mixed_ops, ITERATIONS, 3);
}

/// clear() racing with inserts and removes, over two shards: whatever the interleaving,
/// every stored value is reported exactly once and the counters close.
fn clear_with_inserts(max_entries: u64) {
    let (cache, events) = cache(max_entries, 2);
    let writers: Vec<_> = (0..2u64)
        .map(|t| {
            let cache = cache.clone();
            thread::spawn(move || {
                let mut stored = Vec::new();
                for seq in 0..5u64 {
                    let key = (seq + t) % 4;
                    let v = value(key, t, seq);
                    cache.insert(key, v).unwrap();
                    stored.push(v);
                    if seq == 2 {
                        if let Some(v) = cache.remove(&key) {
                            assert_eq!(key_of(v), key);
                        }
                    }
                }
                stored
            })
        })
        .collect();
    let clearer = {
        let cache = cache.clone();
        thread::spawn(move || {
            cache.clear();
            let len = cache.len() as u64;
            assert!(len <= max_entries);
            cache.clear();
        })
    };
    clearer.join().unwrap();
    let stored: Vec<u64> = writers
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let s = cache.stats();
    assert_eq!(
        s.entries,
        s.inserts - s.removals - s.expirations - s.evictions,
        "{s:?}"
    );
    assert_eq!(s.inserts + s.updates, stored.len() as u64);
    check_accounting(&cache, &events, &stored);
}

#[test]
fn clear_races_with_inserts_random() {
    shuttle::check_random(|| clear_with_inserts(64), ITERATIONS);
}

#[test]
fn clear_races_with_inserts_pct() {
    shuttle::check_pct(|| clear_with_inserts(64), ITERATIONS, 3);
}

/// A tiny cache (2 entries per shard) under the same race: `clear` drops the slab's
/// allocation and the next insert's growth panics (`clamp(16, 2)`); see cache_bounds.rs's
/// `tiny_cache_survives_clear`.
#[test]
fn clear_races_with_inserts_tiny() {
    shuttle::check_random(|| clear_with_inserts(4), 100);
}

/// A read racing with an insert and with time passing: a get never returns a value whose
/// deadline had passed when the get started.
fn expiry_race() {
    let clock = MockClock::new();
    let cache: TestCache = Cache::<u64, u64>::builder()
        .max_entries(16)
        .shards(1)
        .hasher(Fixed::default())
        .time_to_idle(Duration::from_millis(5))
        .clock(clock.clone())
        .build()
        .unwrap();
    cache
        .insert_with_ttl(1, 100, Duration::from_millis(10))
        .unwrap();
    let advancer = {
        let clock = clock.clone();
        thread::spawn(move || {
            for _ in 0..4 {
                clock.advance(Duration::from_millis(3));
                thread::yield_now();
            }
        })
    };
    let writer = {
        let cache = cache.clone();
        thread::spawn(move || {
            // Writes sweep; a second insert of the key replaces or re-inserts it.
            cache.insert(2, 200).unwrap();
            let _ = cache.insert_if_absent(1, 101);
        })
    };
    let reader = {
        let cache = cache.clone();
        let clock = clock.clone();
        thread::spawn(move || {
            for _ in 0..4 {
                let now = clock.now_nanos();
                match cache.get(&1) {
                    // Inserted at 0 with a 10 ms TTL, so dead from 10 ms on whatever reads did.
                    Some(100) => assert!(now < 10_000_000, "read the first value at {now}"),
                    Some(101) | None => {}
                    Some(v) => panic!("get(1) returned {v}"),
                }
            }
        })
    };
    advancer.join().unwrap();
    writer.join().unwrap();
    reader.join().unwrap();
    let s = cache.stats();
    assert_eq!(
        s.entries,
        s.inserts - s.removals - s.expirations - s.evictions,
        "{s:?}"
    );
}

#[test]
fn get_never_returns_expired_random() {
    shuttle::check_random(expiry_race, ITERATIONS);
}
