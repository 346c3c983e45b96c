//! The operations `strata serve` is built on, through the public API: atomic
//! read-modify-write (`Cache::compute`, `Namespace::update`), the resumable walk (`scan`)
//! and its guarantee under writes, a budget changed at run time (`Store::set_max_bytes`),
//! and writes refused rather than evicting (`Put::no_evict`).

mod common;

use std::collections::{BTreeSet, HashMap};
use std::thread;
use std::time::Duration;

use common::Rng;
use proptest::prelude::*;
use strata::config::Config;
use strata::store::{Put, Store, Update};
use strata::{Cache, Compute, InsertError, MockClock};

fn store(toml: &str) -> (Store, MockClock) {
    let clock = MockClock::new();
    let config = Config::from_sources(Some(toml), []).expect("config");
    let store = Store::builder(config)
        .clock(clock.clone())
        .maintenance_interval(Duration::from_secs(24 * 3600))
        .build()
        .expect("store");
    (store, clock)
}

#[test]
fn concurrent_increments_through_compute_lose_no_step() {
    let cache: Cache<u32, u64> = Cache::new(100);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let cache = cache.clone();
            thread::spawn(move || {
                for _ in 0..5_000 {
                    cache
                        .compute(7, |n| {
                            let next = n.copied().unwrap_or(0) + 1;
                            (
                                Compute::Insert {
                                    value: next,
                                    ttl: None,
                                    evict: true,
                                },
                                (),
                            )
                        })
                        .expect("fits");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("no panic");
    }
    assert_eq!(cache.get(&7), Some(20_000));
}

#[test]
fn compute_sees_no_expired_entry_and_keep_changes_nothing() {
    let clock = MockClock::new();
    let cache: Cache<&str, u32> = Cache::builder()
        .max_entries(10)
        .clock(clock.clone())
        .build()
        .expect("cache");
    cache
        .insert_with_ttl("k", 1, Duration::from_secs(1))
        .expect("fits");
    assert_eq!(
        cache.compute("k", |v| (Compute::Keep, v.copied())),
        Ok(Some(1))
    );
    let before = cache.stats();
    clock.advance(Duration::from_secs(2));
    assert_eq!(
        cache.compute("k", |v| (Compute::Keep, v.copied())),
        Ok(None)
    );
    assert_eq!(cache.stats().inserts, before.inserts);
    assert_eq!(
        cache.stats().hits + cache.stats().misses,
        0,
        "compute counts no lookups"
    );
}

#[test]
fn compute_without_eviction_refuses_a_write_that_needs_room() {
    let cache: Cache<u32, u32> = Cache::builder()
        .max_entries(4)
        .shards(1)
        .build()
        .expect("cache");
    for i in 0..4 {
        cache.insert(i, i).expect("fits");
    }
    let no_evict = |v: u32| {
        move |_: Option<&u32>| {
            (
                Compute::Insert {
                    value: v,
                    ttl: None,
                    evict: false,
                },
                (),
            )
        }
    };
    assert_eq!(cache.compute(9, no_evict(9)), Err(InsertError::NoRoom));
    assert_eq!(cache.len(), 4);
    assert_eq!(cache.get(&9), None);
    // Replacing a key that is there needs no room.
    assert_eq!(cache.compute(2, no_evict(20)), Ok(()));
    assert_eq!(cache.get(&2), Some(20));
    assert_eq!(cache.stats().evictions, 0);
}

/// Walks `cache` to the end with steps of `count`, doing `between` before each step.
fn walk(cache: &Cache<u64, u64>, count: usize, mut between: impl FnMut()) -> Vec<u64> {
    let (mut seen, mut cursor) = (Vec::new(), 0);
    loop {
        between();
        cursor = cache.scan(cursor, count, |k, _| seen.push(*k));
        if cursor == 0 {
            return seen;
        }
    }
}

#[test]
fn a_quiet_scan_sees_every_entry_exactly_once() {
    let cache: Cache<u64, u64> = Cache::new(10_000);
    for i in 0..5_000 {
        cache.insert(i, i).expect("fits");
    }
    for count in [1, 7, 100, 100_000] {
        let mut seen = walk(&cache, count, || {});
        seen.sort_unstable();
        assert_eq!(seen, (0..5_000).collect::<Vec<_>>(), "count {count}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Redis's SCAN guarantee: whatever is inserted, removed or evicted between steps, a key
    /// present for the whole walk is returned at least once.
    #[test]
    fn scan_returns_every_key_present_throughout(
        seed in any::<u64>(),
        count in 1usize..50,
        churn in 0usize..40,
        bound in 200u64..2_000,
    ) {
        let cache: Cache<u64, u64> = Cache::builder().max_entries(bound).shards(4).build().expect("cache");
        let mut rng = Rng(seed);
        for i in 0..bound / 2 {
            cache.insert(i, i).expect("fits");
        }
        let mut removed = BTreeSet::new();
        let seen: BTreeSet<u64> = walk(&cache, count, || {
            for _ in 0..churn {
                let key = rng.below(bound * 2);
                if rng.below(3) == 0 {
                    cache.remove(&key);
                    removed.insert(key);
                } else {
                    // Inserts past the bound evict: keys leave by the policy too.
                    cache.insert(bound * 4 + key, 0).expect("fits");
                }
            }
        })
        .into_iter()
        .collect();
        for key in 0..bound / 2 {
            // Present throughout: never removed, never evicted (still there at the end).
            if !removed.contains(&key) && cache.contains_key(&key) {
                prop_assert!(seen.contains(&key), "key {} was missed", key);
            }
        }
    }
}

#[test]
fn update_keeps_ttl_and_tags_when_asked_and_publishes_removals() {
    let (store, clock) = store("[namespaces.counters]\nttl = \"1m\"\n");
    let ns = store.namespace::<i64>("counters").expect("namespace");
    ns.insert_with("n", 1, Put::new().ttl(Duration::from_secs(30)).tag("t"))
        .expect("fits");
    clock.advance(Duration::from_secs(10));
    let add = |current: Option<strata::store::Current<'_, i64>>| {
        let next = current.map_or(0, |c| *c.value) + 1;
        (Update::Put(next, Put::new().keep_ttl().keep_tags()), next)
    };
    assert_eq!(ns.update("n", add), Ok(2));
    assert_eq!(ns.ttl("n"), Some(Some(Duration::from_secs(20))));
    // A new key gets the namespace's TTL.
    assert_eq!(ns.update("fresh", add), Ok(1));
    assert_eq!(ns.ttl("fresh"), Some(Some(Duration::from_secs(60))));
    // The tag came along: invalidating it drops the updated entry.
    assert_eq!(store.invalidate_tag("t"), 1);
    assert_eq!(ns.get("n"), None);
    // no_ttl overrides the namespace's TTL; remove goes.
    ns.insert_with("p", 5, Put::new().no_ttl()).expect("fits");
    assert_eq!(ns.ttl("p"), Some(None));
    assert_eq!(
        ns.update("p", |c| (Update::Remove, c.map(|c| *c.value))),
        Ok(Some(5))
    );
    assert_eq!(ns.get("p"), None);
}

#[test]
fn namespace_scan_skips_entries_whose_tag_was_invalidated() {
    let (store, _clock) = store("");
    let ns = store.namespace::<u32>("default").expect("namespace");
    for i in 0..100u32 {
        let put = if i % 2 == 0 {
            Put::new().tag("even")
        } else {
            Put::new()
        };
        ns.insert_with(format!("k{i}"), i, put).expect("fits");
    }
    store.invalidate_tag("even");
    let (mut seen, mut cursor) = (Vec::new(), 0);
    loop {
        cursor = ns.scan(cursor, 16, |_, c| seen.push(*c.value));
        if cursor == 0 {
            break;
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..100).filter(|i| i % 2 == 1).collect::<Vec<_>>());
}

#[test]
fn a_smaller_budget_evicts_until_each_namespace_fits_its_new_share() {
    let (store, _clock) = store("max_bytes = \"8MiB\"\n[namespaces.a]\n[namespaces.b]\n");
    let a = store.namespace::<Vec<u8>>("a").expect("namespace");
    for i in 0..2_000 {
        a.insert(format!("k{i}"), vec![0u8; 1_000]).expect("fits");
    }
    let before = store.stats().namespaces["a"].stats.weighted_size;
    assert!(before > 1_500_000, "a holds {before} bytes");
    store.set_max_bytes(3 << 20).expect("valid budget");
    assert_eq!(store.max_bytes(), 3 << 20);
    let stats = store.stats();
    let share = stats.namespaces["a"].limits.max_bytes.expect("a share");
    assert_eq!(
        share,
        (3 << 20) / 3,
        "three namespaces share the budget (default, a, b)"
    );
    assert!(stats.namespaces["a"].stats.weighted_size <= share);
    assert!(stats.namespaces["a"].stats.evictions > 0);
    // A namespace opened after the change is built with its new share.
    let b = store.namespace::<Vec<u8>>("b").expect("namespace");
    for i in 0..2_000 {
        b.insert(format!("k{i}"), vec![0u8; 1_000]).expect("fits");
    }
    assert!(store.stats().namespaces["b"].stats.weighted_size <= share);
    // Too small a budget is refused and changes nothing.
    assert!(store.set_max_bytes(1_000).is_err());
    assert_eq!(store.max_bytes(), 3 << 20);
    // Growing it back lets the namespace hold every entry again.
    store.set_max_bytes(64 << 20).expect("valid budget");
    for i in 0..2_000 {
        a.insert(format!("k{i}"), vec![0u8; 1_000]).expect("fits");
    }
    assert_eq!(a.len(), 2_000);
    assert_eq!(store.stats().namespaces["a"].stats.weighted_size, before);
}

#[test]
fn no_evict_puts_are_refused_when_full_and_nothing_is_lost() {
    let (store, _clock) = store("max_bytes = \"4MiB\"\n[namespaces.small]\nmax_bytes = \"1MiB\"\n");
    let ns = store.namespace::<Vec<u8>>("small").expect("namespace");
    let mut stored = HashMap::new();
    let mut refused = 0;
    for i in 0..2_000 {
        let key = format!("k{i}");
        match ns.insert_with(key.clone(), vec![1u8; 1_000], Put::new().no_evict()) {
            Ok(()) => {
                stored.insert(key, ());
            }
            Err(InsertError::NoRoom) => refused += 1,
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert!(refused > 0, "1 MiB cannot hold 2 MB");
    assert_eq!(ns.stats().evictions, 0);
    for key in stored.keys() {
        assert!(
            ns.contains_key(key),
            "{key} was stored and must still be there"
        );
    }
}

#[test]
fn update_expire_changes_only_the_ttl() {
    let (store, clock) = store("[namespaces.s]\nttl = \"1m\"\nmax_stale = \"1h\"\n");
    let ns = store.namespace::<String>("s").expect("namespace");
    ns.insert_with("k", "v".to_string(), Put::new().tag("t"))
        .expect("fits");
    let expire = |ttl| {
        move |c: Option<strata::store::Current<'_, String>>| (Update::Expire(ttl), c.is_some())
    };
    assert_eq!(
        ns.update("k", expire(Some(Duration::from_secs(5)))),
        Ok(true)
    );
    assert_eq!(ns.ttl("k"), Some(Some(Duration::from_secs(5))));
    assert_eq!(
        ns.update("missing", expire(Some(Duration::from_secs(5)))),
        Ok(false)
    );
    assert_eq!(ns.get("missing"), None, "expire does not create a key");
    // Past its new TTL the value is stale: gone for readers, whatever max_stale keeps.
    clock.advance(Duration::from_secs(6));
    assert_eq!(ns.get("k"), None);
    ns.insert_with("k", "v".to_string(), Put::new().tag("t"))
        .expect("fits");
    assert_eq!(ns.update("k", expire(None)), Ok(true));
    assert_eq!(ns.ttl("k"), Some(None));
    clock.advance(Duration::from_secs(3600 * 24));
    assert_eq!(ns.get("k").as_deref(), Some("v"), "never expires now");
    assert_eq!(store.invalidate_tag("t"), 1, "the tag stayed");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The same guarantee in a byte-bounded cache, where a key rewritten with a heavier value
    /// makes others leave: the key must stay where the walk will find it.
    #[test]
    fn scan_finds_keys_rewritten_heavier_during_the_walk(
        seed in any::<u64>(),
        count in 1usize..20,
        churn in 1usize..10,
    ) {
        let cache: Cache<u64, Vec<u8>> = Cache::builder()
            .max_bytes(64 << 10)
            .shards(2)
            .build()
            .expect("cache");
        let mut rng = Rng(seed);
        for i in 0..2_000u64 {
            cache.insert(i, vec![0; 40]).expect("fits");
        }
        let mut seen = BTreeSet::new();
        let mut rewritten = BTreeSet::new();
        let mut cursor = 0;
        loop {
            cursor = cache.scan(cursor, count, |k, _| {
                seen.insert(*k);
            });
            if cursor == 0 {
                break;
            }
            for _ in 0..churn {
                // A key still there, rewritten with a value twice as heavy.
                let key = rng.below(2_000);
                if cache.contains_key(&key) {
                    cache.insert(key, vec![1; 80]).expect("fits");
                    rewritten.insert(key);
                }
            }
        }
        for key in rewritten {
            // Present throughout (it was there before, and rewriting never removes it): if it
            // is still there, the walk saw it.
            if cache.contains_key(&key) {
                prop_assert!(seen.contains(&key), "rewritten key {} was missed", key);
            }
        }
    }
}

#[derive(Debug, Clone)]
enum TtlOp {
    Insert(u8),
    InsertWithTtl(u8),
    Remove(u8),
    SetTtl(u8, bool),
    ComputeInsert(u8, bool),
    ComputeExpire(u8, bool),
    Clear,
}

fn ttl_op() -> impl Strategy<Value = TtlOp> {
    prop_oneof![
        4 => any::<u8>().prop_map(TtlOp::Insert),
        4 => any::<u8>().prop_map(TtlOp::InsertWithTtl),
        2 => any::<u8>().prop_map(TtlOp::Remove),
        2 => (any::<u8>(), any::<bool>()).prop_map(|(k, t)| TtlOp::SetTtl(k, t)),
        2 => (any::<u8>(), any::<bool>()).prop_map(|(k, t)| TtlOp::ComputeInsert(k, t)),
        2 => (any::<u8>(), any::<bool>()).prop_map(|(k, t)| TtlOp::ComputeExpire(k, t)),
        1 => Just(TtlOp::Clear),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// `expiring_len` (INFO's `expires`) counts exactly the entries with a deadline, through
    /// inserts, replacements, removals, TTL changes, evictions (a bound of 64 entries under
    /// 256 keys) and clears. No time passes, so nothing expires.
    #[test]
    fn expiring_len_counts_the_entries_with_a_ttl(ops in proptest::collection::vec(ttl_op(), 1..300)) {
        let cache: Cache<u8, u32> = Cache::builder().max_entries(64).shards(2).build().expect("cache");
        let ttl = Duration::from_secs(60);
        for op in ops {
            match op {
                TtlOp::Insert(k) => cache.insert(k, 0).expect("fits"),
                TtlOp::InsertWithTtl(k) => cache.insert_with_ttl(k, 0, ttl).expect("fits"),
                TtlOp::Remove(k) => {
                    cache.remove(&k);
                }
                TtlOp::SetTtl(k, t) => {
                    cache.set_ttl(&k, t.then_some(ttl));
                }
                TtlOp::ComputeInsert(k, t) => cache
                    .compute(k, |_| (Compute::Insert { value: 1, ttl: t.then_some(ttl), evict: true }, ()))
                    .expect("fits"),
                TtlOp::ComputeExpire(k, t) => cache
                    .compute(k, |_| (Compute::Expire(t.then_some(ttl)), ()))
                    .expect("fits"),
                TtlOp::Clear => cache.clear(),
            }
            let truth = cache.keys().filter(|k| cache.ttl(k).is_some_and(|t| t.is_some())).count();
            prop_assert_eq!(cache.expiring_len(), truth);
        }
    }
}
