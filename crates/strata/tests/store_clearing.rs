//! `strata::store` clears through the public API: a clear is immediate and its values are
//! freed in the background, by the janitor, or by the clearing thread itself once the store
//! (and with it the janitor) is gone; a maintenance interval of forever leaves the janitor
//! alive. Time is a `MockClock`; background work is waited for with
//! `Store::run_pending_tasks`, never with sleeps.

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::store::{in_parallel, store};
use strata::config::Config;
use strata::store::{Put, Store};
use strata::HeapSize;

/// A value that counts how many of its copies are alive.
struct Counted(Arc<AtomicI64>);

impl Counted {
    fn new(live: &Arc<AtomicI64>) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        Counted(Arc::clone(live))
    }
}

impl Clone for Counted {
    fn clone(&self) -> Self {
        Counted::new(&self.0)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl HeapSize for Counted {
    fn heap_size(&self) -> usize {
        0
    }
}

#[test]
fn clearing_a_namespace_is_immediate_and_frees_in_the_background() {
    const N: u64 = 200_000;
    let (store, _clock) = store("max_bytes = \"512MiB\"\n[namespaces.big]\n[namespaces.other]\n");
    let live = Arc::new(AtomicI64::new(0));
    let big = store.namespace::<Counted>("big").unwrap();
    let other = store.namespace::<u64>("other").unwrap();
    in_parallel(N, |range| {
        for i in range {
            let put = if i % 2 == 0 {
                Put::new().tag("c")
            } else {
                Put::new()
            };
            big.insert_with(format!("k{i}"), Counted::new(&live), put)
                .unwrap();
        }
    });
    for i in 0..100 {
        other.insert(format!("k{i}"), i).unwrap();
    }
    assert_eq!(big.len() as u64, N);
    assert_eq!(live.load(Ordering::SeqCst), N as i64);
    assert_eq!(store.tag_count("c"), N / 2);

    assert_eq!(big.clear(), N);
    assert_eq!(big.len(), 0);
    assert_eq!(big.stats().entries, 0);
    in_parallel(N, |range| {
        for i in range {
            assert!(
                big.get(format!("k{i}")).is_none(),
                "k{i} read after the clear"
            );
        }
    });
    for i in 0..100 {
        assert_eq!(
            other.get(format!("k{i}")),
            Some(i),
            "other namespace touched"
        );
    }
    // Inserts after the clear are live, tagged or not.
    for i in 0..10 {
        big.insert_with(format!("k{i}"), Counted::new(&live), Put::new().tag("c"))
            .unwrap();
        big.insert(format!("new{i}"), Counted::new(&live)).unwrap();
    }
    store.run_pending_tasks();
    assert_eq!(
        live.load(Ordering::SeqCst),
        20,
        "cleared values were not freed"
    );
    assert_eq!(store.tag_count("c"), 10);
    assert_eq!(big.len(), 20);
    for i in 0..10 {
        assert!(big.get(format!("k{i}")).is_some());
        assert!(big.get(format!("new{i}")).is_some());
    }
    assert_eq!(store.invalidate_tag("c"), 10);
    assert_eq!(other.len(), 100);
    drop(big);
    // A clear counts what is held, dead entries not yet purged included: purge first.
    store.run_pending_tasks();
    assert_eq!(store.clear(), 110);
    store.run_pending_tasks();
    assert_eq!(live.load(Ordering::SeqCst), 0);
}

// Regressions from the review of the store (each failed before its fix).

#[test]
fn namespaces_outliving_their_store_free_on_their_own_thread() {
    let live = Arc::new(AtomicI64::new(0));
    let store = Store::new();
    let ns = store.namespace::<Counted>("default").unwrap();
    // Dropping the store retires its janitor at once: from here on, nothing is left to it.
    drop(store);
    ns.insert("k", Counted::new(&live)).unwrap();
    assert_eq!(ns.clear(), 1);
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "the cleared value was not freed by the clear itself"
    );
}

#[test]
fn a_maintenance_interval_of_forever_keeps_the_janitor_alive() {
    let live = Arc::new(AtomicI64::new(0));
    let store = Store::builder(Config::default())
        .maintenance_interval(Duration::MAX)
        .build()
        .unwrap();
    let ns = store.namespace::<Counted>("default").unwrap();
    ns.insert("k", Counted::new(&live)).unwrap();
    assert_eq!(ns.clear(), 1);
    store.run_pending_tasks();
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "the cleared value was not freed"
    );
}
