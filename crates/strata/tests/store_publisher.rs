//! `strata::store`'s publisher through the public API: every invalidation path publishes once,
//! invalidations serialise as documented, and a remote instance that applies what was published
//! ends in the same state. Time is a `MockClock`; background work is waited for with
//! `Store::run_pending_tasks`, never with sleeps.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use common::store::{
    config, key_text, random_bytes, recorded_store, EVENTS, KEY_BYTES, NO_MAINTENANCE,
};
use common::Rng;
use strata::config::DEFAULT_NAMESPACE;
use strata::store::{Invalidation, Put, Store};
use strata::{Key, MockClock};

#[test]
fn every_invalidation_path_publishes_once() {
    let (store, recorder) = recorded_store(EVENTS);
    let wallet = store.namespace::<String>("wallet").unwrap();
    let bill = store.namespace::<u64>("bill").unwrap();
    let some = |name: &str| Some(name.to_owned());
    wallet.insert("wallet::1::balance", "1".into()).unwrap();
    wallet.insert("wallet::2::balance", "2".into()).unwrap();
    bill.insert_with("bill::status::9", 9, Put::new().tag("t"))
        .unwrap();
    assert_eq!(recorder.take(), [], "inserts are not invalidations");

    assert_eq!(wallet.remove("wallet::1::balance").as_deref(), Some("1"));
    assert_eq!(
        recorder.take(),
        [Invalidation::Key {
            namespace: some("wallet"),
            key: "wallet::1::balance".into(),
        }]
    );
    // Removing an absent key is still an invalidation others must hear of.
    assert_eq!(wallet.remove("absent"), None);
    assert_eq!(
        recorder.take(),
        [Invalidation::Key {
            namespace: some("wallet"),
            key: "absent".into(),
        }]
    );
    assert_eq!(wallet.invalidate_prefix("wallet::2"), 1);
    assert_eq!(
        recorder.take(),
        [Invalidation::Prefix {
            namespace: some("wallet"),
            prefix: "wallet::2".into(),
        }]
    );
    assert_eq!(wallet.invalidate_pattern("w*[0-9]*"), 0);
    assert_eq!(
        recorder.take(),
        [Invalidation::Pattern {
            namespace: some("wallet"),
            pattern: "w*[0-9]*".into(),
        }]
    );
    wallet.insert("x", "x".into()).unwrap();
    assert_eq!(wallet.clear(), 1);
    assert_eq!(
        recorder.take(),
        [Invalidation::Clear {
            namespace: some("wallet"),
        }]
    );
    assert_eq!(store.invalidate_tag("t"), 1);
    assert_eq!(recorder.take(), [Invalidation::Tag { tag: "t".into() }]);

    // An event is published once, as the event, however far it cascades.
    wallet.insert("wallet::5::balance", "5".into()).unwrap();
    let n = store
        .emit("payment.succeeded", [("user_id", "5"), ("bill_id", "9")])
        .unwrap();
    assert_eq!(n, 1);
    let params: BTreeMap<String, String> = [("user_id", "5"), ("bill_id", "9")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(
        recorder.take(),
        [Invalidation::Event {
            event: "payment.succeeded".into(),
            params: params.clone(),
        }]
    );

    // Store::invalidate publishes exactly the value it was given, every variant.
    for inv in [
        Invalidation::Key {
            namespace: None,
            key: Key::from(&b"\xff\x00bin"[..]),
        },
        Invalidation::Prefix {
            namespace: some("bill"),
            prefix: "bill::".into(),
        },
        Invalidation::Pattern {
            namespace: None,
            pattern: "*".into(),
        },
        Invalidation::Tag { tag: "t".into() },
        Invalidation::Event {
            event: "ledger.changed".into(),
            params,
        },
        Invalidation::Clear {
            namespace: some("dashboard"),
        },
        Invalidation::Clear { namespace: None },
    ] {
        store.invalidate(&inv).unwrap();
        assert_eq!(recorder.take(), [inv]);
    }

    wallet.insert("y", "y".into()).unwrap();
    assert_eq!(store.clear_namespace("wallet").unwrap(), 1);
    assert_eq!(
        recorder.take(),
        [Invalidation::Clear {
            namespace: some("wallet"),
        }]
    );
    wallet.insert("z", "z".into()).unwrap();
    bill.insert("z", 1).unwrap();
    assert_eq!(store.clear(), 2);
    assert_eq!(recorder.take(), [Invalidation::Clear { namespace: None }]);

    // What is refused is not published; what comes from elsewhere is not published again.
    assert!(store.clear_namespace("nope").is_err());
    assert!(store.emit("nope", [("a", "b")]).is_err());
    wallet.insert("r", "r".into()).unwrap();
    let remote = Invalidation::Key {
        namespace: some("wallet"),
        key: "r".into(),
    };
    assert_eq!(store.apply_remote(&remote).unwrap(), 1);
    assert_eq!(
        store
            .apply_remote(&Invalidation::Tag { tag: "t".into() })
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .apply_remote(&Invalidation::Clear { namespace: None })
            .unwrap(),
        0
    );
    assert!(!wallet.contains_key("r"));
    assert_eq!(recorder.take(), []);
}

#[test]
fn invalidations_serialise_as_documented_and_round_trip() {
    let cases: Vec<(Invalidation, &str)> = vec![
        (
            Invalidation::Tag {
                tag: "dashboard:42".into(),
            },
            r#"{"tag":{"tag":"dashboard:42"}}"#,
        ),
        (
            Invalidation::Key {
                namespace: Some("wallet".into()),
                key: "wallet::42".into(),
            },
            r#"{"key":{"namespace":"wallet","key":"wallet::42"}}"#,
        ),
        (
            Invalidation::Prefix {
                namespace: None,
                prefix: "user::".into(),
            },
            r#"{"prefix":{"prefix":"user::"}}"#,
        ),
        (
            Invalidation::Pattern {
                namespace: Some("a".into()),
                pattern: "user::*".into(),
            },
            r#"{"pattern":{"namespace":"a","pattern":"user::*"}}"#,
        ),
        (
            Invalidation::Event {
                event: "payment.succeeded".into(),
                params: [("user_id".to_string(), "42".to_string())].into(),
            },
            r#"{"event":{"event":"payment.succeeded","params":{"user_id":"42"}}}"#,
        ),
        (Invalidation::Clear { namespace: None }, r#"{"clear":{}}"#),
        // Binary keys are byte arrays.
        (
            Invalidation::Key {
                namespace: None,
                key: Key::from(vec![0xff, 0x00, b':', 0x80]),
            },
            r#"{"key":{"key":[255,0,58,128]}}"#,
        ),
    ];
    for (inv, json) in cases {
        let text = serde_json::to_string(&inv).unwrap();
        assert_eq!(text, json);
        let back: Invalidation = serde_json::from_str(&text).unwrap();
        assert_eq!(back, inv);
    }
    // Every byte value survives, in keys, prefixes and patterns.
    let all_bytes: Vec<u8> = (0..=255u8).rev().collect();
    for inv in [
        Invalidation::Key {
            namespace: None,
            key: Key::from(all_bytes.clone()),
        },
        Invalidation::Prefix {
            namespace: Some("p".into()),
            prefix: Key::from(all_bytes.clone()),
        },
        Invalidation::Pattern {
            namespace: None,
            pattern: Key::from(all_bytes.clone()),
        },
    ] {
        let back: Invalidation =
            serde_json::from_slice(&serde_json::to_vec(&inv).unwrap()).unwrap();
        assert_eq!(back, inv);
    }
    // Omitted fields take their defaults.
    let event: Invalidation = serde_json::from_str(r#"{"event":{"event":"e"}}"#).unwrap();
    assert_eq!(
        event,
        Invalidation::Event {
            event: "e".into(),
            params: BTreeMap::new(),
        }
    );
}

#[test]
fn a_remote_instance_applying_what_was_published_ends_in_the_same_state() {
    let json = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = Arc::clone(&json);
    let local = Store::builder(config(EVENTS))
        .clock(MockClock::new())
        .maintenance_interval(NO_MAINTENANCE)
        .publisher(move |inv| {
            sink.lock()
                .unwrap()
                .push(serde_json::to_string(inv).unwrap())
        })
        .build()
        .unwrap();
    let (remote, remote_published) = recorded_store(EVENTS);

    // The same data in both, binary keys included.
    let mut rng = Rng(0x5eed_0003);
    let names = ["payment", "bill", "wallet", "dashboard", DEFAULT_NAMESPACE];
    let mut entries: Vec<(&str, Vec<u8>, Put)> = Vec::new();
    for i in 0..2_000u64 {
        let ns = names[rng.below(names.len() as u64) as usize];
        let user = rng.below(20);
        let key = match rng.below(5) {
            0 => format!("payment::history::{user}").into_bytes(),
            1 => format!("wallet::{user}::k{i}").into_bytes(),
            2 => format!("bill::b{user}::line::{i}").into_bytes(),
            3 => format!("ledger::{user}").into_bytes(),
            _ => {
                let mut k = random_bytes(&mut rng, KEY_BYTES, 4);
                k.push(i as u8);
                k
            }
        };
        let put = match rng.below(3) {
            0 => Put::new().tag(format!("dashboard:{user}")),
            1 => Put::new().tag(format!("ledger:{user}")).tag("all"),
            _ => Put::new(),
        };
        entries.push((ns, key, put));
    }
    for store in [&local, &remote] {
        for (ns, key, put) in &entries {
            store
                .namespace::<u64>(ns)
                .unwrap()
                .insert_with(key.clone(), key.len() as u64, put.clone())
                .unwrap();
        }
    }

    // Every path on the local one; what each dropped. Each step is left to settle (dead
    // entries purged) before the next, on both sides, since a clear counts the dead entries
    // still held.
    let payment = local.namespace::<u64>("payment").unwrap();
    let wallet = local.namespace::<u64>("wallet").unwrap();
    let bill = local.namespace::<u64>("bill").unwrap();
    let settle = |n: u64| {
        local.run_pending_tasks();
        n
    };
    let counts = vec![
        settle(u64::from(payment.remove("payment::history::3").is_some())),
        settle(wallet.invalidate_prefix("wallet::4::")),
        settle(bill.invalidate_pattern("bill::b[5-7]::*")),
        settle(local.invalidate_tag("dashboard:8")),
        settle(
            local
                .emit("payment.succeeded", [("user_id", "9"), ("bill_id", "b9")])
                .unwrap(),
        ),
        settle(local.emit("ledger.changed", [("user_id", "10")]).unwrap()),
        settle(
            local
                .invalidate(&Invalidation::Pattern {
                    namespace: None,
                    pattern: Key::from(&b"*\x80*"[..]),
                })
                .unwrap(),
        ),
        settle(
            local
                .invalidate(&Invalidation::Key {
                    namespace: None,
                    key: "ledger::11".into(),
                })
                .unwrap(),
        ),
        settle(local.clear_namespace("dashboard").unwrap()),
        settle(local.invalidate_tag("all")),
    ];
    assert!(
        counts.iter().all(|&n| n > 0),
        "every step should drop something: {counts:?}"
    );
    let published = std::mem::take(&mut *json.lock().unwrap());
    assert_eq!(published.len(), counts.len());

    // The remote one applies the messages in order and drops as much at each step.
    for (message, &expected) in published.iter().zip(&counts) {
        let inv: Invalidation = serde_json::from_str(message).unwrap();
        assert_eq!(remote.apply_remote(&inv).unwrap(), expected, "{message}");
        remote.run_pending_tasks();
    }
    assert_eq!(remote_published.take(), [], "apply_remote published");

    for store in [&local, &remote] {
        store.run_pending_tasks();
    }
    for name in names {
        let (l, r) = (
            local.namespace::<u64>(name).unwrap(),
            remote.namespace::<u64>(name).unwrap(),
        );
        assert_eq!(l.len(), r.len(), "namespace {name}");
        for (ns, key, _) in &entries {
            if *ns == name {
                assert_eq!(
                    l.contains_key(key),
                    r.contains_key(key),
                    "{name}: {}",
                    key_text(key)
                );
            }
        }
    }
    assert!(!local.namespace::<u64>("wallet").unwrap().is_empty());
}
