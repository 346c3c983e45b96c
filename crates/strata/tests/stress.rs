//! Many-thread stress test on overlapping keys, with TTLs and time-to-idle on a mock clock that
//! one thread moves, and a monitor thread checking the bounds all along.
//!
//! Values carry their key, their writer and sequence number, and their hard deadline, so every
//! answer can be checked on its own: right key, not past its deadline. Inserts hold a gate that
//! the clock thread needs to move time, so the deadline a value carries is exactly the one the
//! cache computed for it.
#![cfg(not(feature = "shuttle"))]

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, RwLock};
use std::thread;
use std::time::Duration;

use strata::{Cache, Inserted, MockClock, RemovalCause};

mod common;
use common::Rng;

const THREADS: usize = 8;
const OPS: usize = 50_000;
const DEFAULT_TTL: Duration = Duration::from_millis(200);
const TTI: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy)]
struct Params {
    shards: usize,
    max_entries: u64,
    max_weight: u64,
    /// Keys are drawn from `0..keys`, half of the time from `0..hot`.
    keys: u64,
    hot: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Val {
    key: u64,
    writer: u32,
    seq: u32,
    /// The hard deadline (TTL) in clock nanoseconds; time-to-idle may end the entry earlier.
    deadline: u64,
    weight: u64,
}

impl Val {
    fn slot(&self) -> usize {
        self.writer as usize * OPS + self.seq as usize
    }
}

#[derive(Default)]
struct Causes([AtomicU64; 6]);

impl Causes {
    fn index(cause: RemovalCause) -> usize {
        match cause {
            RemovalCause::Expired => 0,
            RemovalCause::Evicted => 1,
            RemovalCause::Removed => 2,
            RemovalCause::Replaced => 3,
            RemovalCause::Cleared => 4,
            RemovalCause::Invalidated => 5,
        }
    }

    fn get(&self, cause: RemovalCause) -> u64 {
        self.0[Self::index(cause)].load(Ordering::Relaxed)
    }
}

#[derive(Default)]
struct Tally {
    gets: AtomicU64,
    stored: AtomicU64,
    removed: AtomicU64,
}

#[test]
fn many_threads_on_many_shards() {
    // Entries bind (mean weight 4.5).
    run(Params {
        shards: 8,
        max_entries: 1000,
        max_weight: 6000,
        keys: 2048,
        hot: 64,
    });
}

#[test]
fn many_threads_on_few_shards_weight_bound() {
    // Weight binds.
    run(Params {
        shards: 2,
        max_entries: 1000,
        max_weight: 300,
        keys: 1024,
        hot: 32,
    });
}

#[test]
fn many_threads_on_one_tiny_shard() {
    // Both bind, one lock for everyone.
    run(Params {
        shards: 1,
        max_entries: 16,
        max_weight: 72,
        keys: 64,
        hot: 8,
    });
}

fn run(p: Params) {
    let Params {
        shards,
        max_entries,
        max_weight,
        keys,
        hot,
    } = p;
    let clock = MockClock::new();
    let causes = Arc::new(Causes::default());
    // How often each value was stored (0 or 1) and reported to the listener.
    let stored: Arc<Vec<AtomicU8>> =
        Arc::new((0..THREADS * OPS).map(|_| AtomicU8::new(0)).collect());
    let reported: Arc<Vec<AtomicU8>> =
        Arc::new((0..THREADS * OPS).map(|_| AtomicU8::new(0)).collect());

    let cache: Cache<u64, Val> = {
        let causes = Arc::clone(&causes);
        let reported = Arc::clone(&reported);
        Cache::builder()
            .max_entries(max_entries)
            .max_weight(max_weight)
            .weigher(|_: &u64, v: &Val| v.weight)
            .default_ttl(DEFAULT_TTL)
            .time_to_idle(TTI)
            .shards(shards)
            .clock(clock.clone())
            .removal_listener(move |k: u64, v: Val, cause| {
                assert_eq!(k, v.key, "listener got {v:?} under key {k}");
                causes.0[Causes::index(cause)].fetch_add(1, Ordering::Relaxed);
                reported[v.slot()].fetch_add(1, Ordering::Relaxed);
            })
            .build()
            .unwrap()
    };

    // Inserts hold this for reading; moving the clock takes it for writing.
    let gate = Arc::new(RwLock::new(()));
    let done = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());

    let monitor = {
        let cache = cache.clone();
        let done = Arc::clone(&done);
        thread::spawn(move || {
            let mut checks = 0u64;
            while !done.load(Ordering::Acquire) {
                let len = cache.len() as u64;
                let weight = cache.weighted_size();
                assert!(len <= max_entries, "len {len} > {max_entries}");
                assert!(
                    weight <= max_weight,
                    "weighted_size {weight} > {max_weight}"
                );
                if checks.is_multiple_of(64) {
                    let s = cache.stats();
                    assert!(
                        s.entries <= max_entries && s.weighted_size <= max_weight,
                        "{s:?}"
                    );
                }
                checks += 1;
                thread::yield_now();
            }
            checks
        })
    };

    let workers: Vec<_> = (0..THREADS)
        .map(|w| {
            let cache = cache.clone();
            let clock = clock.clone();
            let gate = Arc::clone(&gate);
            let stored = Arc::clone(&stored);
            let tally = Arc::clone(&tally);
            thread::spawn(move || {
                let mut rng = Rng(w as u64 + 1);
                let (mut gets, mut stores, mut removes) = (0u64, 0u64, 0u64);
                for seq in 0..OPS {
                    if w == 0 && seq % 64 == 0 {
                        let _g = gate.write().unwrap();
                        clock.advance(Duration::from_millis(1));
                    }
                    if w == 1 && seq % 10_000 == 9_999 {
                        cache.clear();
                    }
                    let key = if rng.below(2) == 0 {
                        rng.below(hot)
                    } else {
                        rng.below(keys)
                    };
                    match rng.below(100) {
                        0..=34 => {
                            let now = clock.now_nanos();
                            gets += 1;
                            if let Some(v) = cache.get(&key) {
                                assert_eq!(v.key, key, "get({key}) returned {v:?}");
                                assert!(
                                    v.deadline > now,
                                    "get({key}) at {now} returned expired {v:?}"
                                );
                            }
                        }
                        35..=74 => {
                            let ttl = (rng.below(2) == 0).then(|| rng.below(60) + 1);
                            let if_absent = rng.below(3) == 0;
                            let _g = gate.read().unwrap();
                            let now = clock.now_nanos();
                            let ttl_ns =
                                ttl.map_or(DEFAULT_TTL.as_nanos() as u64, |t| t * 1_000_000);
                            let v = Val {
                                key,
                                writer: w as u32,
                                seq: seq as u32,
                                deadline: now + ttl_ns,
                                weight: rng.below(8) + 1,
                            };
                            let outcome = match (ttl, if_absent) {
                                (None, false) => cache.insert(key, v).map(|()| Inserted::Inserted),
                                (Some(t), false) => cache
                                    .insert_with_ttl(key, v, Duration::from_millis(t))
                                    .map(|()| Inserted::Inserted),
                                (None, true) => cache.insert_if_absent(key, v),
                                (Some(t), true) => cache.insert_if_absent_with_ttl(
                                    key,
                                    v,
                                    Duration::from_millis(t),
                                ),
                            };
                            match outcome.unwrap() {
                                Inserted::Inserted => {
                                    stored[v.slot()].store(1, Ordering::Relaxed);
                                    stores += 1;
                                }
                                Inserted::Existing(old) => {
                                    assert!(if_absent);
                                    assert_eq!(
                                        old.key, key,
                                        "insert_if_absent({key}) found {old:?}"
                                    );
                                    assert!(
                                        old.deadline > now,
                                        "insert_if_absent({key}) at {now} found expired {old:?}"
                                    );
                                }
                            }
                        }
                        75..=89 => {
                            let now = clock.now_nanos();
                            if let Some(v) = cache.remove(&key) {
                                assert_eq!(v.key, key, "remove({key}) returned {v:?}");
                                assert!(
                                    v.deadline > now,
                                    "remove({key}) at {now} returned expired {v:?}"
                                );
                                removes += 1;
                            }
                        }
                        _ => {
                            cache.contains_key(&key);
                        }
                    }
                }
                tally.gets.fetch_add(gets, Ordering::Relaxed);
                tally.stored.fetch_add(stores, Ordering::Relaxed);
                tally.removed.fetch_add(removes, Ordering::Relaxed);
            })
        })
        .collect();

    for worker in workers {
        worker.join().unwrap();
    }
    done.store(true, Ordering::Release);
    let checks = monitor.join().unwrap();
    assert!(checks > 0);

    let s = cache.stats();
    eprintln!("{p:?}: {s:?}, {checks} monitor checks");
    assert_eq!(s.entries, cache.len() as u64);
    assert_eq!(s.weighted_size, cache.weighted_size());
    assert_eq!(
        s.entries,
        s.inserts - s.removals - s.expirations - s.evictions,
        "{s:?}"
    );
    assert_eq!(s.hits + s.misses, tally.gets.load(Ordering::Relaxed));
    assert_eq!(s.inserts + s.updates, tally.stored.load(Ordering::Relaxed));
    assert!(
        s.evictions > 0 && s.expirations > 0 && s.updates > 0 && s.hits > 0,
        "{s:?}"
    );
    assert_eq!(causes.get(RemovalCause::Expired), s.expirations);
    assert_eq!(causes.get(RemovalCause::Evicted), s.evictions);
    assert_eq!(causes.get(RemovalCause::Replaced), s.updates);
    assert_eq!(
        causes.get(RemovalCause::Removed),
        tally.removed.load(Ordering::Relaxed)
    );
    assert_eq!(
        causes.get(RemovalCause::Removed) + causes.get(RemovalCause::Cleared),
        s.removals
    );

    // Everything stored was reported exactly once, once the cache is emptied.
    cache.clear();
    assert!(cache.is_empty());
    for (i, (s, r)) in stored.iter().zip(reported.iter()).enumerate() {
        let (s, r) = (s.load(Ordering::Relaxed), r.load(Ordering::Relaxed));
        assert_eq!(
            s,
            r,
            "value {i} (writer {}, seq {}) stored {s}, reported {r}",
            i / OPS,
            i % OPS
        );
    }
    let s = cache.stats();
    assert_eq!(s.entries, 0);
    assert_eq!(s.inserts, s.removals + s.expirations + s.evictions);
}
