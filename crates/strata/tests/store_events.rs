//! `strata::store` event rules through the public API: what an event and its cascades drop,
//! parameters escaped as key parts, refused emits that drop nothing, and the rules a
//! configuration refuses (cycles, unknown names, bad templates). Time is a `MockClock`;
//! background work is waited for with `Store::run_pending_tasks`, never with sleeps.

mod common;

use std::collections::BTreeMap;

use common::invalid_config;
use common::store::{config, recorded_store, store, EVENTS};
use strata::config::{Config, DEFAULT_NAMESPACE};
use strata::store::{Invalidation, Put, Store, StoreError};

/// An entry for the event tests: namespace, key, tag.
type Row = (&'static str, String, Option<String>);

fn insert_rows(store: &Store, rows: &[Row]) {
    for (ns, key, tag) in rows {
        let put = tag.iter().fold(Put::new(), |put, t| put.tag(t.clone()));
        store
            .namespace::<String>(ns)
            .unwrap()
            .insert_with(key.clone(), key.clone(), put)
            .unwrap();
    }
}

fn present(store: &Store, (ns, key, _): &Row) -> bool {
    store.namespace::<String>(ns).unwrap().get(key).as_deref() == Some(key.as_str())
}

fn row(ns: &'static str, key: &str, tag: Option<&str>) -> Row {
    (ns, key.to_owned(), tag.map(str::to_owned))
}

#[test]
fn an_event_drops_what_its_rules_and_their_cascades_name() {
    let (store, _clock) = store(EVENTS);
    // (entry, whether payment.succeeded{42, b1} drops it, and why)
    let table: Vec<(Row, bool)> = vec![
        (row("payment", "payment::history::42", None), true), // key, level 1
        (row("payment", "payment::history::7", None), false),
        (row("payment", "payment::history::420", None), false),
        (row("payment", "wallet::42::mirror", None), false), // level 2 prefix is wallet-only
        (row("payment", "widget::42", Some("wallet:42")), true), // level 2 tag, store-wide
        (row("bill", "bill::status::b1", None), true),       // key, level 1
        (row("bill", "bill::status::b2", None), false),
        (row("bill", "bill::b1::line::1", None), true), // pattern, level 2
        (row("bill", "bill::b1::line::2", None), true),
        (row("bill", "bill::b10::line::1", None), false),
        (row("bill", "payment::history::42", None), true), // level 1 keys: every namespace
        (row("wallet", "wallet::42::balance", None), true), // prefix, level 2
        (row("wallet", "wallet::42::limits", None), true),
        (row("wallet", "wallet::420::balance", None), false),
        (row("wallet", "wallet::7::balance", None), false),
        (row("wallet", "bill::b1::line::9", None), false), // level 2 pattern is bill-only
        (row("dashboard", "dash::42", Some("dashboard:42")), true), // tag, level 1
        (row("dashboard", "dash::7", Some("dashboard:7")), false),
        (row("dashboard", "ledger::42", None), true), // key, level 3
        (row("dashboard", "ledger::7", None), false),
        (row("dashboard", "ledger-view::42", Some("ledger:42")), true), // tag, level 3
        (row("dashboard", "ledger-view::7", Some("ledger:7")), false),
        (row(DEFAULT_NAMESPACE, "ledger::42", None), true),
    ];
    let rows: Vec<Row> = table.iter().map(|(r, _)| r.clone()).collect();
    insert_rows(&store, &rows);
    let expected = table.iter().filter(|(_, dropped)| *dropped).count() as u64;
    let dropped = store
        .emit("payment.succeeded", [("user_id", "42"), ("bill_id", "b1")])
        .unwrap();
    for (r, gone) in &table {
        assert_eq!(present(&store, r), !gone, "{r:?}");
    }
    // Exact, although ledger.changed ran twice (through both sides of the diamond).
    assert_eq!(dropped, expected);

    // A level-2 event on its own runs its cascade too.
    insert_rows(&store, &rows);
    let dropped = store.emit("wallet.changed", [("user_id", "7")]).unwrap();
    // wallet::7::balance (level 1 prefix), ledger::7 and ledger-view::7 (level 2 key and tag).
    assert_eq!(dropped, 3);
    assert!(!present(&store, &row("wallet", "wallet::7::balance", None)));
    assert!(!present(&store, &row("dashboard", "ledger::7", None)));
    assert!(present(&store, &row("wallet", "wallet::42::balance", None)));
    assert!(present(
        &store,
        &row("payment", "payment::history::7", None)
    ));
}

#[test]
fn parameters_are_escaped_as_key_parts() {
    // Other users and bills, keyed by the convention (`key!`), and keys written by hand that
    // an unescaped parameter would reach; all must survive every emit below.
    let other_users = ["4", "2", "42", "9", "4%3A%3A2", "b1"];
    let other_bills = ["b1", "b2", "b10", "b1x", "4"];
    let bystanders = |store: &Store| -> Vec<Row> {
        let mut rows = Vec::new();
        for u in other_users {
            rows.push(row("payment", &strata::key!("payment", "history", u), None));
            rows.push(row("wallet", &strata::key!("wallet", u, "balance"), None));
            rows.push(row("dashboard", &strata::key!("ledger", u), None));
            let tag = format!("dashboard:{u}");
            rows.push(row("dashboard", &strata::key!("dash", u), Some(&tag)));
        }
        for b in other_bills {
            rows.push(row("bill", &strata::key!("bill", "status", b), None));
            rows.push(row("bill", &strata::key!("bill", b, "line", "1"), None));
        }
        for raw in [
            "payment::history::4::2",
            "payment::history::4:",
            "payment::history::",
        ] {
            rows.push(row("payment", raw, None));
        }
        for raw in [
            "wallet::4::2::balance",
            "wallet::4:::balance",
            "wallet::4::balance::",
        ] {
            rows.push(row("wallet", raw, None));
        }
        for raw in ["bill::b::1::line::1", "bill::status::b::1"] {
            rows.push(row("bill", raw, None));
        }
        insert_rows(store, &rows);
        rows
    };
    for (user, bill) in [
        ("4::2", "b::1"),
        ("*", "*"),
        ("4%3A", "b?"),
        ("?", "[b]1"),
        ("\\", "b1\\"),
        ("4:", "b1*"),
    ] {
        let (store, _clock) = store(EVENTS);
        let others = bystanders(&store);
        let own: Vec<Row> = vec![
            row("payment", &strata::key!("payment", "history", user), None),
            row("wallet", &strata::key!("wallet", user, "balance"), None),
            row("bill", &strata::key!("bill", "status", bill), None),
            row("bill", &strata::key!("bill", bill, "line", "1"), None),
            row("dashboard", &strata::key!("ledger", user), None),
            row("dashboard", "own-dash", Some(&format!("dashboard:{user}"))),
        ];
        for o in &own {
            assert!(
                !others.iter().any(|b| b.0 == o.0 && b.1 == o.1),
                "test setup: {o:?} is a bystander's key"
            );
        }
        insert_rows(&store, &own);
        let dropped = store
            .emit("payment.succeeded", [("user_id", user), ("bill_id", bill)])
            .unwrap();
        for o in &own {
            assert!(
                !present(&store, o),
                "user {user:?} bill {bill:?}: {o:?} kept"
            );
        }
        for b in &others {
            assert!(
                present(&store, b),
                "user {user:?} bill {bill:?}: {b:?} dropped"
            );
        }
        assert_eq!(dropped, own.len() as u64, "user {user:?} bill {bill:?}");
    }
}

#[test]
fn a_bad_emit_drops_nothing() {
    let (store, recorder) = recorded_store(EVENTS);
    let rows = vec![
        row("payment", "payment::history::42", None),
        row("bill", "bill::status::b1", None),
        row("bill", "bill::b1::line::1", None),
        row("wallet", "wallet::42::balance", None),
        row("dashboard", "dash::42", Some("dashboard:42")),
        row("dashboard", "ledger::42", None),
    ];
    insert_rows(&store, &rows);
    let missing = |event: &str, param: &str| StoreError::MissingParam {
        event: event.into(),
        param: param.into(),
    };
    assert_eq!(
        store.emit("payment.succeeded", [("user_id", "42")]),
        Err(missing("payment.succeeded", "bill_id"))
    );
    assert_eq!(
        store.emit("payment.succeeded", [("bill_id", "b1")]),
        Err(missing("payment.succeeded", "user_id"))
    );
    // bill.paid uses only bill_id itself; its cascade needs user_id, which is checked first.
    assert_eq!(
        store.emit("bill.paid", [("bill_id", "b1")]),
        Err(missing("bill.paid", "user_id"))
    );
    assert_eq!(
        store.emit("wallet.changed", [("bill_id", "b1")]),
        Err(missing("wallet.changed", "user_id"))
    );
    assert_eq!(
        store.emit("payment.failed", [("user_id", "42")]),
        Err(StoreError::UnknownEvent("payment.failed".into()))
    );
    assert_eq!(
        store.emit("refund.issued", [("user_id", "42")]),
        Err(missing("refund.issued", "amount"))
    );
    let mut params = BTreeMap::new();
    params.insert("bill_id".to_string(), "b1".to_string());
    assert_eq!(
        store.invalidate(&Invalidation::Event {
            event: "bill.paid".into(),
            params,
        }),
        Err(missing("bill.paid", "user_id"))
    );
    for r in &rows {
        assert!(present(&store, r), "{r:?} was dropped by a refused event");
    }
    assert_eq!(store.tag_count("dashboard:42"), 1);
    assert_eq!(recorder.take(), [], "a refused event was published");
    // Extra parameters are fine.
    let n = store
        .emit(
            "payment.succeeded",
            [("user_id", "42"), ("bill_id", "b1"), ("extra", "x")],
        )
        .unwrap();
    assert_eq!(n, rows.len() as u64);
}

#[test]
fn cascade_cycles_are_refused_with_their_path() {
    let reason = invalid_config(
        r#"
        [events.a]
        cascade = ["b"]
        [events.b]
        cascade = ["c"]
        [events.c]
        cascade = ["a"]
        "#,
        "events.\"c\".cascade",
        "a",
    );
    assert!(reason.contains("a -> b -> c -> a"), "{reason}");

    let reason = invalid_config(
        "[events.self]\nkeys = [\"k\"]\ncascade = [\"self\"]\n",
        "events.\"self\".cascade",
        "self",
    );
    assert!(reason.contains("self -> self"), "{reason}");

    // A cycle below an acyclic start is reported as the cycle alone, whichever rotation.
    let err = Config::from_sources(
        Some(
            r#"
            [events.start]
            cascade = ["x"]
            [events.x]
            cascade = ["y"]
            [events.y]
            cascade = ["z"]
            [events.z]
            cascade = ["x"]
            "#,
        ),
        [],
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        ["x -> y -> z -> x", "y -> z -> x -> y", "z -> x -> y -> z"]
            .iter()
            .any(|cycle| text.contains(cycle)),
        "{text}"
    );
    assert!(!text.contains("start ->"), "{text}");

    // A diamond is not a cycle.
    Config::from_sources(
        Some(
            r#"
            [events.top]
            cascade = ["left", "right"]
            [events.left]
            cascade = ["bottom"]
            [events.right]
            cascade = ["bottom"]
            [events.bottom]
            keys = ["k"]
            "#,
        ),
        [],
    )
    .unwrap();
}

#[test]
fn bad_rules_name_their_field() {
    invalid_config(
        "[events.a]\ncascade = [\"ghost\"]\n",
        "events.\"a\".cascade",
        "ghost",
    );
    invalid_config(
        "[events.a]\nnamespaces = [\"nope\"]\nkeys = [\"k\"]\n",
        "events.\"a\".namespaces",
        "nope",
    );
    invalid_config(
        "[events.a]\nkeys = [\"user::{id\"]\n",
        "events.\"a\".keys",
        "user::{id",
    );
    invalid_config(
        "[events.a]\nprefixes = [\"user::{}\"]\n",
        "events.\"a\".prefixes",
        "user::{}",
    );
    invalid_config(
        "[events.a]\npatterns = [\"user::}*\"]\n",
        "events.\"a\".patterns",
        "user::}*",
    );
    invalid_config(
        "[events.a]\ntags = [\"user:{a b}\"]\n",
        "events.\"a\".tags",
        "user:{a b}",
    );
    let reason = invalid_config(
        "[events.a]\nparams = [\"user_id\"]\nkeys = [\"x::{user_id}::{bill_id}\"]\n",
        "events.\"a\".params",
        "user_id",
    );
    assert!(reason.contains("bill_id"), "{reason}");
    // Parameters a cascade needs count as the event's own.
    let reason = invalid_config(
        "[events.a]\nparams = [\"user_id\"]\nkeys = [\"u::{user_id}\"]\ncascade = [\"b\"]\n\
         [events.b]\nkeys = [\"b::{bill_id}\"]\n",
        "events.\"a\".params",
        "user_id",
    );
    assert!(reason.contains("bill_id"), "{reason}");
    // Unknown fields in a rule are refused too.
    let err = Config::from_sources(Some("[events.a]\nkey = [\"k\"]\n"), []).unwrap_err();
    assert!(err.to_string().contains("key"), "{err}");
    // A rule may name the default namespace, which always exists.
    config("[events.a]\nnamespaces = [\"default\"]\nkeys = [\"k\"]\n");
}

// Regressions from the review of the store (each failed before its fix).

/// Each level cascades twice into the next: 2^40 paths, one run per event.
#[test]
fn a_chain_of_diamonds_runs_each_event_once() {
    let mut toml = String::from("[namespaces.a]\n");
    for i in 0..40 {
        toml.push_str(&format!(
            "[events.\"e{i}\"]\nkeys = [\"k{i}::{{id}}\"]\ncascade = [\"e{next}\", \"e{next}\"]\n",
            next = i + 1
        ));
    }
    toml.push_str("[events.\"e40\"]\ntags = [\"last:{id}\"]\n");
    let (store, _clock) = store(&toml);
    let ns = store.namespace::<u64>("a").unwrap();
    ns.insert("k39::7", 1).unwrap();
    ns.insert_with("x", 2, Put::new().tag("last:7")).unwrap();
    assert_eq!(store.emit("e0", [("id", "7")]).unwrap(), 2);
    assert_eq!(ns.get("x"), None);
}

/// A long cascade chain loads (no recursion as deep as the chain).
#[test]
fn a_long_cascade_chain_loads() {
    let mut toml = String::new();
    for i in 0..20_000 {
        toml.push_str(&format!("[events.\"e{i}\"]\ncascade = [\"e{}\"]\n", i + 1));
    }
    toml.push_str("[events.\"e20000\"]\ntags = [\"end:{id}\"]\n");
    let config = Config::from_sources(Some(&toml), []).unwrap();
    assert_eq!(config.events.len(), 20_001);
}
