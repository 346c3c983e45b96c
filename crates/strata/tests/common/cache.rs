//! Helpers shared by the `cache_*` tests: a removal listener that records, and a millisecond.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata::RemovalCause;

/// What a recording removal listener was handed, in order.
pub type Events<K, V> = Arc<Mutex<Vec<(K, V, RemovalCause)>>>;

/// A removal listener that records every call.
pub fn recorder<K: Send + 'static, V: Send + 'static>() -> (
    Events<K, V>,
    impl Fn(K, V, RemovalCause) + Send + Sync + 'static,
) {
    let events: Events<K, V> = Arc::default();
    let sink = Arc::clone(&events);
    (events, move |k, v, cause| {
        sink.lock().unwrap().push((k, v, cause))
    })
}

/// Takes what the listener has recorded so far.
pub fn take<K, V>(events: &Events<K, V>) -> Vec<(K, V, RemovalCause)> {
    std::mem::take(&mut *events.lock().unwrap())
}

/// One millisecond: the unit of the tests' short TTLs.
pub const MS: Duration = Duration::from_millis(1);
