//! `strata::store` namespaces through the public API: the configuration as the store sees it,
//! each namespace's limits and TTL within the store's budget, one type per namespace, and hot
//! keys. Time is a `MockClock`; background work is waited for with `Store::run_pending_tasks`,
//! never with sleeps.

mod common;

use std::time::Duration;

use common::store::store;
use common::Rng;
use strata::config::{Config, ConfigError, DEFAULT_MAX_BYTES, DEFAULT_NAMESPACE};
use strata::store::{Put, Store, StoreError, SAMPLE_EVERY};
use strata::Key;

// ---------------------------------------------------------------------------------------------
// Configuration as the store sees it (config-only checks are in tests/config.rs)

#[test]
fn the_default_store_has_one_namespace_with_the_whole_budget() {
    let store = Store::new();
    assert_eq!(
        store.namespace_names().collect::<Vec<_>>(),
        [DEFAULT_NAMESPACE]
    );
    let ns = store.namespace::<String>(DEFAULT_NAMESPACE).unwrap();
    assert_eq!(ns.limits().max_bytes, Some(DEFAULT_MAX_BYTES));
    assert_eq!(ns.limits().ttl, None);
    assert_eq!(ns.limits().max_entries, None);
    ns.insert("k", "v".into()).unwrap();
    assert_eq!(ns.ttl("k"), Some(None));
    assert_eq!(store.stats().max_bytes, DEFAULT_MAX_BYTES);
}

#[test]
fn the_environment_reaches_the_namespaces() {
    let config = Config::from_sources(
        Some("max_bytes = \"64MiB\"\n[namespaces.wallet]\nttl = \"2m\"\nmax_bytes = \"8MiB\"\n"),
        [
            (
                "STRATA_NAMESPACES__WALLET__TTL".to_string(),
                "90s".to_string(),
            ),
            (
                "STRATA_NAMESPACES__WALLET__MAX_ENTRIES".to_string(),
                "500".to_string(),
            ),
            (
                "STRATA_NAMESPACES__USER__TTL".to_string(),
                "10m".to_string(),
            ),
        ],
    )
    .unwrap();
    let store = Store::from_config(&config).unwrap();
    let wallet = store.namespace::<u64>("wallet").unwrap();
    assert_eq!(wallet.limits().ttl, Some(Duration::from_secs(90)));
    assert_eq!(wallet.limits().max_entries, Some(500));
    assert_eq!(wallet.limits().max_bytes, Some(8 << 20));
    let user = store.namespace::<u64>("user").unwrap();
    assert_eq!(user.limits().ttl, Some(Duration::from_secs(600)));
    // user and default share what wallet leaves.
    assert_eq!(user.limits().max_bytes, Some((56 << 20) / 2));

    // A configuration built by hand is checked when the store is built.
    let mut over = Config {
        max_bytes: 4 << 20,
        ..Config::default()
    };
    over.namespaces.insert(
        "a".into(),
        strata::config::NamespaceConfig {
            max_bytes: Some(3 << 20),
            ..Default::default()
        },
    );
    over.namespaces.insert(
        "b".into(),
        strata::config::NamespaceConfig {
            max_bytes: Some(3 << 20),
            ..Default::default()
        },
    );
    match Store::from_config(&over) {
        Err(StoreError::Config(ConfigError::Invalid { field, value, .. })) => {
            assert_eq!((field.as_str(), value.as_str()), ("max_bytes", "4194304"));
        }
        other => panic!("expected a budget error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Limits and the budget

const TIERS: &str = r#"
max_bytes = "8MiB"
[namespaces.small]
max_entries = 300
max_bytes = "1MiB"
[namespaces.blobs]
max_bytes = "2MiB"
[namespaces.wallet]
ttl = "2m"
max_entries = 2000
[namespaces.user]
ttl = "10m"
"#;

#[test]
fn namespaces_hold_their_limits_and_the_store_its_budget() {
    let (store, _clock) = store(TIERS);
    let budget = store.config().max_bytes;
    let small = store.namespace::<Vec<u8>>("small").unwrap();
    let blobs = store.namespace::<Vec<u8>>("blobs").unwrap();
    let wallet = store.namespace::<String>("wallet").unwrap();
    let user = store.namespace::<String>("user").unwrap();
    let default = store.namespace::<Vec<u8>>(DEFAULT_NAMESPACE).unwrap();
    // The budget as divided: fixed shares as configured, the rest split evenly.
    let elastic = (budget - (3 << 20)) / 3;
    assert_eq!(small.limits().max_bytes, Some(1 << 20));
    assert_eq!(blobs.limits().max_bytes, Some(2 << 20));
    for limits in [wallet.limits(), user.limits()] {
        assert_eq!(limits.max_bytes, Some(elastic));
    }
    assert_eq!(default.limits().max_bytes, Some(elastic));
    assert_eq!(small.limits().max_entries, Some(300));
    assert_eq!(wallet.limits().max_entries, Some(2000));

    // Values stay under the heaviest entry a namespace admits (its share over its shards, up
    // to 256 of them on a big machine: 4 KiB for `small`, 8 KiB for `blobs`).
    let mut rng = Rng(0x5eed_0006);
    let bytes = |rng: &mut Rng, max: u64| vec![rng.next() as u8; rng.below(max) as usize];
    let text = |rng: &mut Rng, max: u64| "x".repeat(rng.below(max) as usize);
    for batch in 0..12 {
        for _ in 0..300 {
            let k = rng.below(5_000);
            small
                .insert(format!("s{k}"), bytes(&mut rng, 3_000))
                .unwrap();
        }
        for _ in 0..200 {
            let k = rng.below(5_000);
            blobs
                .insert(format!("b{k}"), bytes(&mut rng, 7_000))
                .unwrap();
        }
        for _ in 0..400 {
            let k = rng.below(10_000);
            wallet.insert(format!("w{k}"), text(&mut rng, 500)).unwrap();
        }
        for _ in 0..500 {
            let k = rng.below(10_000);
            user.insert(format!("u{k}"), text(&mut rng, 2_000)).unwrap();
        }
        for _ in 0..1_000 {
            let k = rng.below(20_000);
            default
                .insert(format!("d{k}"), bytes(&mut rng, 1_000))
                .unwrap();
        }

        let stats = store.stats();
        let mut sum = strata::CacheStats::default();
        let mut held = 0;
        for (name, ns) in &stats.namespaces {
            let s = ns.stats;
            let max_bytes = ns.limits.max_bytes.expect("a store sets every share");
            assert!(
                s.weighted_size <= max_bytes,
                "batch {batch}: {name} holds {} of {max_bytes}",
                s.weighted_size,
            );
            if let Some(max) = ns.limits.max_entries {
                assert!(
                    s.entries <= max,
                    "batch {batch}: {name} has {} of {max}",
                    s.entries
                );
            }
            held += s.weighted_size;
            sum += s;
        }
        assert!(
            held <= budget,
            "batch {batch}: {held} held, budget {budget}"
        );
        assert_eq!(stats.total, sum);
        // The handles see the same figures as the store.
        assert_eq!(stats.namespaces["small"].stats, small.stats());
        assert_eq!(stats.namespaces["user"].stats, user.stats());
        assert_eq!(small.stats().entries, small.len() as u64);
    }
    // Each namespace was filled past a bound, and its bound was what held it.
    let stats = store.stats();
    for (name, ns) in &stats.namespaces {
        let s = ns.stats;
        assert!(s.evictions > 0, "{name} never reached a limit: {s:?}");
        let near_bytes = ns.limits.max_bytes.is_some_and(|m| s.weighted_size > m / 2);
        let near_entries = ns.limits.max_entries.is_some_and(|m| s.entries > m / 2);
        assert!(
            near_bytes || near_entries,
            "{name} holds far below its limits: {s:?}"
        );
    }
    assert_eq!(
        stats.total.entries,
        [
            small.len(),
            blobs.len(),
            wallet.len(),
            user.len(),
            default.len()
        ]
        .iter()
        .sum::<usize>() as u64
    );
}

#[test]
fn each_namespace_expires_on_its_own_ttl() {
    let (store, clock) = store(TIERS);
    let wallet = store.namespace::<String>("wallet").unwrap();
    let user = store.namespace::<String>("user").unwrap();
    let default = store.namespace::<Vec<u8>>(DEFAULT_NAMESPACE).unwrap();
    wallet.insert("wallet::42", "1250".into()).unwrap();
    wallet
        .insert_with(
            "wallet::long",
            "x".into(),
            Put::new().ttl(Duration::from_secs(3600)),
        )
        .unwrap();
    user.insert("user::42", "Ada".into()).unwrap();
    user.insert_with(
        "user::short",
        "x".into(),
        Put::new().ttl(Duration::from_secs(30)),
    )
    .unwrap();
    default.insert("forever", vec![1]).unwrap();
    assert_eq!(
        wallet.ttl("wallet::42"),
        Some(Some(Duration::from_secs(120)))
    );
    assert_eq!(user.ttl("user::42"), Some(Some(Duration::from_secs(600))));
    assert_eq!(default.ttl("forever"), Some(None));

    clock.advance(Duration::from_secs(30));
    assert_eq!(user.get("user::short"), None, "a TTL of its own wins");
    clock.advance(Duration::from_secs(89));
    assert!(wallet.get("wallet::42").is_some(), "expired before 2m");
    clock.advance(Duration::from_secs(1));
    assert_eq!(wallet.get("wallet::42"), None, "alive at 2m");
    assert!(user.get("user::42").is_some());
    assert!(wallet.get("wallet::long").is_some());
    assert_eq!(user.ttl("user::42"), Some(Some(Duration::from_secs(480))));
    clock.advance(Duration::from_secs(479));
    assert!(user.get("user::42").is_some(), "expired before 10m");
    clock.advance(Duration::from_secs(1));
    assert_eq!(user.get("user::42"), None, "alive at 10m");
    assert!(wallet.get("wallet::long").is_some());
    clock.advance(Duration::from_secs(86_400));
    assert_eq!(default.get("forever"), Some(vec![1]));

    // wallet::42, wallet::long, user::42, user::short.
    assert_eq!(
        store.run_pending_tasks(),
        4,
        "entries reclaimed, as counted"
    );
    assert_eq!((wallet.len(), user.len(), default.len()), (0, 0, 1));
    assert_eq!(store.stats().total.expirations, 4);
}

// ---------------------------------------------------------------------------------------------
// Types and hot keys

#[test]
fn a_namespace_holds_one_type_and_must_exist() {
    let (store, _clock) = store("[namespaces.x]\n");
    let strings = store.namespace::<String>("x").unwrap();
    strings.insert("k", "v".into()).unwrap();
    assert_eq!(
        store.namespace::<u64>("x").unwrap_err(),
        StoreError::WrongType {
            namespace: "x".into(),
            holds: std::any::type_name::<String>(),
            asked: std::any::type_name::<u64>(),
        }
    );
    // Even once every handle is gone, the namespace keeps its type and its entries.
    drop(strings);
    assert!(matches!(
        store.namespace::<Vec<u8>>("x"),
        Err(StoreError::WrongType { .. })
    ));
    assert_eq!(
        store.namespace::<String>("x").unwrap().get("k").as_deref(),
        Some("v")
    );
    assert_eq!(
        store.namespace::<String>("nope").unwrap_err(),
        StoreError::UnknownNamespace("nope".into())
    );
    assert_eq!(
        store.hot_keys("nope", 3),
        Err(StoreError::UnknownNamespace("nope".into()))
    );
    // A configured but unopened namespace has no hot keys yet.
    assert_eq!(store.hot_keys(DEFAULT_NAMESPACE, 3), Ok(vec![]));
}

#[test]
fn hot_keys_surface_among_many_cold_ones() {
    let (store, _clock) = store("[namespaces.n]\n");
    let ns = store.namespace::<u64>("n").unwrap();
    for i in 0..5_000 {
        ns.insert(format!("cold::{i}"), i).unwrap();
    }
    for hot in ["hot::a", "hot::b", "hot::c"] {
        ns.insert(hot, 0).unwrap();
    }
    const ROUNDS: u64 = 20_000;
    // On a thread of its own: sampling counts hits per thread.
    let reader = ns.clone();
    std::thread::spawn(move || {
        for round in 0..ROUNDS {
            for _ in 0..3 {
                reader.get("hot::a").unwrap();
            }
            for _ in 0..2 {
                reader.get("hot::b").unwrap();
            }
            reader.get("hot::c").unwrap();
            reader.get(format!("cold::{}", round % 5_000)).unwrap();
            // Misses, however many, are not hits.
            assert!(reader.get("absent").is_none());
            assert!(reader.get("absent").is_none());
            assert!(reader.get("absent").is_none());
            assert!(reader.get("absent").is_none());
        }
    })
    .join()
    .unwrap();
    let top = store.hot_keys("n", 3).unwrap();
    let keys: Vec<&Key> = top.iter().map(|h| &h.key).collect();
    assert_eq!(
        keys,
        [
            &Key::from("hot::a"),
            &Key::from("hot::b"),
            &Key::from("hot::c")
        ]
    );
    assert_eq!(ns.hot_keys(3), top);
    // The estimates are near the truth (sampling is one hit in SAMPLE_EVERY).
    for (hot, reads) in top.iter().zip([3 * ROUNDS, 2 * ROUNDS, ROUNDS]) {
        let slack = reads / 10 + u64::from(SAMPLE_EVERY);
        assert!(
            hot.hits.abs_diff(reads) <= slack,
            "{:?}: estimated {} hits for {reads}",
            hot.key,
            hot.hits
        );
    }
    assert!(store.hot_keys("n", 100).unwrap().len() <= 64);
    assert!(!store
        .hot_keys("n", 100)
        .unwrap()
        .iter()
        .any(|h| h.key == Key::from("absent")));
    // A clear forgets them.
    ns.clear();
    assert_eq!(store.hot_keys("n", 3).unwrap(), []);
}
