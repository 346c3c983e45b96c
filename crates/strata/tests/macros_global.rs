//! `set_global` checks the store against the namespaces the macros name. A file of its own:
//! the global store is per process, and this test must be the first to set it.
#![cfg(all(feature = "macros", not(feature = "shuttle")))]

use strata::cached::{set_global, GlobalError};
use strata::config::Config;
use strata::store::Store;

#[strata::cached(namespace = "orphan", key = "orphan::{n}")]
fn orphan(n: u64) -> u64 {
    n * 10
}

#[test]
fn set_global_refuses_a_store_lacking_a_macros_namespace() {
    let refused = set_global(Store::new()).expect_err("the store has no namespace orphan");
    assert_eq!(
        refused,
        GlobalError::MissingNamespaces(
            vec!["orphan".to_string()],
            vec!["macros_global::orphan".to_string()]
        )
    );
    assert_eq!(
        refused.to_string(),
        "the store has no namespace orphan used by macros_global::orphan"
    );

    // Refused, it was not set: a store with the namespace is taken, and used.
    let config = Config::from_sources(Some("[namespaces.orphan]"), []).expect("valid");
    let store = Store::from_config(&config).expect("builds");
    set_global(store.clone()).expect("the store has every namespace");
    assert_eq!(orphan(3), 30);
    assert_eq!(orphan(3), 30);
    let figures = &store.stats().namespaces["orphan"];
    assert_eq!((figures.stats.hits, figures.stats.entries), (1, 1));
}
