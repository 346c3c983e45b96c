//! `strata::store` tags through the public API: a tag over a million entries invalidated at
//! once, tag counts through replacements, removals, evictions and expiry, and the dead entries
//! an invalidated tag leaves, which answer like absent ones until the purge takes them. Time is
//! a `MockClock`; background work is waited for with `Store::run_pending_tasks`, never with
//! sleeps.

mod common;

use std::sync::Mutex;
use std::time::Duration;

use common::store::{in_parallel, store};
use strata::store::{Invalidation, Put};
use strata::{HeapSize, Inserted};

#[test]
fn a_tag_over_a_million_entries_is_invalidated_at_once() {
    const N: u64 = 1_000_000;
    let (store, _clock) = store("max_bytes = \"1GiB\"\n[namespaces.big]\n");
    let ns = store.namespace::<u64>("big").unwrap();
    // One entry in ten is a control without the tag; one tagged entry in three carries a
    // second tag as well.
    let is_control = |i: u64| i % 10 == 7;
    let has_second = |i: u64| !is_control(i) && i.is_multiple_of(3);
    in_parallel(N, |range| {
        for i in range {
            let put = if is_control(i) {
                Put::new()
            } else if has_second(i) {
                Put::new().tag("bulk").tag("other")
            } else {
                Put::new().tag("bulk")
            };
            ns.insert_with(format!("e::{i}"), i, put).unwrap();
        }
    });
    let tagged = (0..N).filter(|&i| !is_control(i)).count() as u64;
    let second = (0..N).filter(|&i| has_second(i)).count() as u64;
    let controls = N - tagged;
    assert_eq!(ns.len() as u64, N, "every insert must have been kept");
    assert_eq!(store.tag_count("bulk"), tagged);
    assert_eq!(store.tag_count("other"), second);

    assert_eq!(store.invalidate_tag("bulk"), tagged);
    assert_eq!(store.tag_count("bulk"), 0);
    // Every entry, at once (the purge may be running meanwhile; it changes no answer).
    in_parallel(N, |range| {
        for i in range {
            let got = ns.get(format!("e::{i}"));
            if is_control(i) {
                assert_eq!(got, Some(i), "control e::{i} was dropped");
            } else {
                assert_eq!(got, None, "tagged e::{i} still reads");
            }
        }
    });
    let stats = ns.stats();
    assert_eq!((stats.hits, stats.misses), (controls, tagged));
    assert_eq!(
        store.invalidate_tag("bulk"),
        0,
        "nothing carries it any more"
    );

    store.run_pending_tasks();
    assert_eq!(ns.len() as u64, controls, "dead entries were not reclaimed");
    assert_eq!(ns.stats().entries, controls);
    // The entries with the second tag are gone, so the second tag counts none.
    assert_eq!(store.tag_count("other"), 0);
    assert_eq!(store.invalidate_tag("other"), 0);

    // The same tag, used after the invalidation, is a new generation: live.
    ns.insert_with("late", 1, Put::new().tag("bulk")).unwrap();
    assert_eq!(ns.get("late"), Some(1));
    assert_eq!(store.tag_count("bulk"), 1);
    store.run_pending_tasks();
    assert_eq!(ns.get("late"), Some(1), "the purge took a live entry");
    assert_eq!(store.invalidate_tag("bulk"), 1);
    assert_eq!(ns.get("late"), None);
}

#[test]
fn tag_counts_follow_replacements_removals_evictions_and_expiry() {
    let (store, clock) = store(
        "[namespaces.a]\n[namespaces.b]\n[namespaces.tiny]\nmax_entries = 100\n\
         [namespaces.short]\nttl = \"1m\"\n",
    );
    let a = store.namespace::<u64>("a").unwrap();
    let b = store.namespace::<String>("b").unwrap();
    for i in 0..100 {
        a.insert_with(format!("k{i}"), i, Put::new().tag("t"))
            .unwrap();
    }
    // The same tag twice on one entry counts once.
    b.insert_with("x", "x".into(), Put::new().tag("t").tag("t"))
        .unwrap();
    assert_eq!(store.tag_count("t"), 101);
    // Replaced without the tag, replaced with it again, removed, invalidated by key.
    for i in 0..10 {
        a.insert(format!("k{i}"), i).unwrap();
    }
    for i in 10..20 {
        a.insert_with(format!("k{i}"), i, Put::new().tag("t"))
            .unwrap();
    }
    for i in 20..25 {
        assert_eq!(a.remove(format!("k{i}")), Some(i));
    }
    // k3 (no longer tagged) and k30..k39.
    assert_eq!(a.invalidate_prefix("k3"), 11);
    assert_eq!(store.tag_count("t"), 101 - 10 - 5 - 10);

    // Evicted entries stop counting.
    let tiny = store.namespace::<u64>("tiny").unwrap();
    for i in 0..1_000 {
        tiny.insert_with(format!("k{i}"), i, Put::new().tag("e"))
            .unwrap();
    }
    assert!(tiny.len() <= 100);
    assert_eq!(store.tag_count("e"), tiny.len() as u64);

    // Expired entries count until they are reclaimed.
    let short = store.namespace::<u64>("short").unwrap();
    for i in 0..7 {
        short
            .insert_with(format!("k{i}"), i, Put::new().tag("s"))
            .unwrap();
    }
    short
        .insert_with(
            "long",
            0,
            Put::new().tag("s").ttl(Duration::from_secs(3600)),
        )
        .unwrap();
    clock.advance(Duration::from_secs(61));
    assert_eq!(short.get("k0"), None);
    assert_eq!(short.get("long"), Some(0));
    store.run_pending_tasks();
    assert_eq!(store.tag_count("s"), 1);

    // A tag spans namespaces: the count is over all of them.
    let expected = store.tag_count("t");
    assert_eq!(expected, 76);
    assert_eq!(store.invalidate_tag("t"), expected);
    assert_eq!(b.get("x"), None);
    assert_eq!(a.get("k50"), None);
    assert_eq!(a.get("k0"), Some(0), "an untagged replacement was dropped");
    // (Read the length first: the purge may take them as soon as they are dead.)
    let held = tiny.len() as u64;
    assert_eq!(store.invalidate_tag("e"), held);
    assert_eq!(store.invalidate_tag("s"), 1);
    assert_eq!(short.get("long"), None);
}

#[test]
fn dead_entries_answer_like_absent_ones() {
    let (store, _clock) = store("[namespaces.n]\nttl = \"1h\"\n");
    let ns = store.namespace::<String>("n").unwrap();
    ns.insert_with("k", "v".into(), Put::new().tag("t"))
        .unwrap();
    assert_eq!(ns.ttl("k"), Some(Some(Duration::from_secs(3600))));
    store.invalidate_tag("t");
    assert!(!ns.contains_key("k"));
    assert_eq!(ns.ttl("k"), None);
    assert!(!ns.set_ttl("k", None));
    assert_eq!(ns.remove("k"), None);
    ns.insert_with("k2", "v".into(), Put::new().tag("t2"))
        .unwrap();
    store.invalidate_tag("t2");
    let key_invalidation = Invalidation::Key {
        namespace: Some("n".into()),
        key: "k2".into(),
    };
    assert_eq!(store.invalidate(&key_invalidation).unwrap(), 0);
    ns.insert_with("p::1", "v".into(), Put::new().tag("t3"))
        .unwrap();
    ns.insert("p::2", "v".into()).unwrap();
    store.invalidate_tag("t3");
    assert_eq!(ns.invalidate_prefix("p::"), 1);
    assert_eq!(ns.invalidate_pattern("*"), 0);
}

#[test]
fn insert_if_absent_does_not_lose_to_a_dead_entry() {
    let (store, _clock) = store("[namespaces.n]\n");
    let ns = store.namespace::<String>("n").unwrap();
    ns.insert_with("k", "old".into(), Put::new().tag("t"))
        .unwrap();
    assert_eq!(
        ns.insert_if_absent("k", "other".into()).unwrap(),
        Inserted::Existing("old".into())
    );
    assert_eq!(store.invalidate_tag("t"), 1);
    assert_eq!(
        ns.insert_if_absent("k", "new".into()).unwrap(),
        Inserted::Inserted
    );
    assert_eq!(ns.get("k").as_deref(), Some("new"));
    // And after the purge the new one is still there.
    store.run_pending_tasks();
    assert_eq!(ns.get("k").as_deref(), Some("new"));

    // With a tag of its own, replacing a dead entry with the same tag.
    ns.insert_with("j", "old".into(), Put::new().tag("u"))
        .unwrap();
    store.invalidate_tag("u");
    assert_eq!(
        ns.insert_if_absent_with("j", "new".into(), Put::new().tag("u"))
            .unwrap(),
        Inserted::Inserted
    );
    assert_eq!(store.tag_count("u"), 1);
    assert_eq!(ns.get("j").as_deref(), Some("new"));
    store.run_pending_tasks();
    assert_eq!(ns.get("j").as_deref(), Some("new"));
    assert_eq!(store.invalidate_tag("u"), 1);
}

// Regressions from the review of the store (each failed before its fix).

/// A value whose weighing runs a hook once: the weigher runs before the shard's lock, so the
/// hook lands an invalidation exactly between an insert's start and its critical section.
#[derive(Clone, Debug, PartialEq)]
struct Hooked(u64);

type Hook = Box<dyn FnOnce() + Send>;
static HOOK: Mutex<Option<Hook>> = Mutex::new(None);

impl HeapSize for Hooked {
    fn heap_size(&self) -> usize {
        let hook = HOOK.lock().unwrap().take();
        if let Some(hook) = hook {
            hook();
        }
        0
    }
}

#[test]
fn insert_if_absent_never_loses_to_an_entry_killed_mid_insert() {
    let (store, _clock) = store("");
    let ns = store.namespace::<Hooked>("default").unwrap();
    ns.insert_with("k", Hooked(1), Put::new().tag("t")).unwrap();
    let killer = store.clone();
    *HOOK.lock().unwrap() = Some(Box::new(move || {
        killer.invalidate_tag("t");
    }));
    let outcome = ns.insert_if_absent("k", Hooked(2)).unwrap();
    assert_eq!(outcome, Inserted::Inserted);
    assert_eq!(ns.get("k"), Some(Hooked(2)));
}

#[test]
fn replacing_a_dead_entry_counts_as_an_insert_and_a_removal() {
    let (store, _clock) = store("");
    let ns = store.namespace::<u64>("default").unwrap();
    ns.insert_with("k", 1, Put::new().tag("t")).unwrap();
    store.invalidate_tag("t");
    ns.insert("k", 2).unwrap();
    let s = ns.stats();
    assert_eq!((s.inserts, s.updates, s.removals), (2, 0, 1));
    assert_eq!(s.entries, s.inserts - s.removals);
    assert_eq!(ns.get("k"), Some(2));
}
