//! Read-through loading through the public API: single flight for async and blocking callers,
//! a cancelled leader, failing and panicking loaders. Async tests run on tokio's paused clock:
//! a loader's `sleep` advances virtual time, so nothing here waits for real time to pass. A
//! test of blocking callers holds its load in the air until the others have joined it
//! (`Namespace::load_joiners`), rather than for a stretch of real time.
#![cfg(not(feature = "shuttle"))]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use strata::store::{LoadError, Loaded, Namespace, Source, Store};
use strata::Key;

fn store() -> Store {
    Store::new()
}

#[tokio::test(start_paused = true)]
async fn a_thousand_callers_on_one_missing_key_make_one_origin_call() {
    let store = store();
    let ns = store.namespace::<String>("default").unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..1_000)
        .map(|_| {
            let ns = ns.clone();
            let calls = Arc::clone(&calls);
            tokio::spawn(async move {
                ns.get_or_load("user::42", move |key: Key| async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Ok::<_, std::io::Error>(format!("profile of {key}"))
                })
                .await
            })
        })
        .collect();
    for task in tasks {
        let loaded = task.await.unwrap().unwrap();
        assert_eq!(loaded.value, "profile of user::42");
        assert_eq!(
            loaded.source,
            Source::Origin,
            "all of them waited for the one load"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let stats = ns.load_stats();
    assert_eq!(stats.loads, 1);
    // The one load took 200 ms of virtual time, from the first miss to its landing.
    assert_eq!(stats.latency.count(), 1);
    assert_eq!(stats.latency.sum_nanos, 200_000_000);
    assert_eq!(
        stats.latency.quantile(0.99),
        Some(Duration::from_millis(250))
    );
    let again = ns
        .get_or_load("user::42", |_| async {
            Err::<String, _>(std::io::Error::other("unused"))
        })
        .await
        .unwrap();
    assert!(again.from_cache());
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_leader_does_not_strand_its_waiters() {
    let store = store();
    let ns = store.namespace::<u64>("default").unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(tokio::sync::Notify::new());
    let leader = {
        let (ns, calls, started) = (ns.clone(), Arc::clone(&calls), Arc::clone(&started));
        tokio::spawn(async move {
            ns.get_or_load("k", move |_| async move {
                calls.fetch_add(1, Ordering::SeqCst);
                started.notify_one();
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok::<_, std::io::Error>(7)
            })
            .await
        })
    };
    started.notified().await;
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    // A caller arriving now joins the load still in the air and gets its value.
    let calls2 = Arc::clone(&calls);
    let loaded = ns
        .get_or_load("k", move |_| async move {
            calls2.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(99)
        })
        .await
        .unwrap();
    assert_eq!((loaded.value, loaded.source), (7, Source::Origin));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(ns.get("k"), Some(7), "the load stored its value");
}

#[tokio::test(start_paused = true)]
async fn a_panicking_loader_wakes_every_waiter_with_the_error() {
    let store = store();
    let ns = store.namespace::<u64>("default").unwrap();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let ns = ns.clone();
            tokio::spawn(async move {
                ns.get_or_load("k", |_| async {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    if true {
                        panic!("the origin driver crashed");
                    }
                    Ok::<u64, std::io::Error>(1)
                })
                .await
            })
        })
        .collect();
    for task in tasks {
        assert!(matches!(task.await.unwrap(), Err(LoadError::Panicked)));
    }
    assert_eq!(ns.load_stats().loads, 1);
    assert_eq!(ns.load_stats().errors, 1);
    assert_eq!(ns.get("k"), None, "nothing cached");
    // The next caller tries again.
    let loaded = ns
        .get_or_load("k", |_| async { Ok::<_, std::io::Error>(5) })
        .await
        .unwrap();
    assert_eq!((loaded.value, loaded.source), (5, Source::Origin));
}

#[tokio::test(start_paused = true)]
async fn a_failing_loader_caches_nothing_and_shares_its_error() {
    let store = store();
    let ns = store.namespace::<u64>("default").unwrap();
    let a = {
        let ns = ns.clone();
        tokio::spawn(async move {
            ns.get_or_load("k", |_| async {
                tokio::time::sleep(Duration::from_millis(10)).await;
                Err::<u64, _>(std::io::Error::other("connection refused"))
            })
            .await
        })
    };
    tokio::task::yield_now().await;
    let b = ns
        .get_or_load("k", |_| async { Ok::<_, std::io::Error>(1) })
        .await;
    for result in [a.await.unwrap(), b] {
        match result {
            Err(LoadError::Origin(e)) => assert_eq!(e.to_string(), "connection refused"),
            other => panic!("expected the origin's error, got {other:?}"),
        }
    }
    assert_eq!(ns.get("k"), None);
    assert_eq!(ns.load_stats().errors, 1);
}

#[test]
fn blocking_callers_share_one_load() {
    let store = store();
    let ns = store.namespace::<u64>("default").unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    // The load stays in the air until the other fifteen callers have joined it.
    let (go, gate) = std::sync::mpsc::channel::<()>();
    let gate = Arc::new(std::sync::Mutex::new(gate));
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let (ns, calls, gate) = (ns.clone(), Arc::clone(&calls), Arc::clone(&gate));
            std::thread::spawn(move || {
                ns.get_or_load_blocking("k", |_| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    gate.lock().unwrap().recv().unwrap();
                    Ok::<_, std::io::Error>(3)
                })
                .unwrap()
            })
        })
        .collect();
    while ns.load_joiners("k") < 15 {
        std::thread::yield_now();
    }
    go.send(()).unwrap();
    for t in threads {
        assert_eq!(t.join().unwrap().value, 3);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn a_panicking_blocking_loader_is_an_error_not_a_crash() {
    let store = store();
    let ns = store.namespace::<u64>("default").unwrap();
    let result =
        ns.get_or_load_blocking("k", |_| -> Result<u64, std::io::Error> { panic!("boom") });
    assert!(matches!(result, Err(LoadError::Panicked)));
    let loaded = ns
        .get_or_load_blocking("k", |_| Ok::<_, std::io::Error>(4))
        .unwrap();
    assert_eq!((loaded.value, loaded.source), (4, Source::Origin));
}

/// A blocking caller of `k` on its own thread, returned once it has joined the load of `k`
/// in the air (its own loader would answer `fallback`).
fn blocking_joiner(
    ns: &Namespace<u64>,
    fallback: u64,
) -> std::thread::JoinHandle<Result<Loaded<u64>, LoadError>> {
    let joiners = ns.load_joiners("k");
    let caller = {
        let ns = ns.clone();
        std::thread::spawn(move || {
            ns.get_or_load_blocking("k", |_| Ok::<_, std::io::Error>(fallback))
        })
    };
    // A caller that ended without joining is left for the test's assertions to catch.
    while ns.load_joiners("k") == joiners && !caller.is_finished() {
        std::thread::yield_now();
    }
    caller
}

#[test]
fn a_blocking_caller_waits_for_an_async_load() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .build()
        .unwrap();
    let store = store();
    let ns = store.namespace::<u64>("default").unwrap();
    let (started, in_the_air) = std::sync::mpsc::channel();
    let (go, gate) = tokio::sync::oneshot::channel::<()>();
    let async_caller = {
        let ns = ns.clone();
        runtime.spawn(async move {
            ns.get_or_load("k", move |_| async move {
                started.send(()).unwrap();
                gate.await.unwrap();
                Ok::<_, std::io::Error>(8)
            })
            .await
        })
    };
    in_the_air.recv().unwrap();
    // The async load is in the air: this blocking caller joins it instead of loading.
    let blocking_caller = blocking_joiner(&ns, 0);
    go.send(()).unwrap();
    let loaded = blocking_caller.join().unwrap().unwrap();
    assert_eq!((loaded.value, loaded.source), (8, Source::Origin));
    assert_eq!(runtime.block_on(async_caller).unwrap().unwrap().value, 8);
    assert_eq!(ns.load_stats().loads, 1);
}

#[test]
fn a_runtime_shut_down_mid_load_releases_blocking_waiters() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .build()
        .unwrap();
    let store = store();
    let ns = store.namespace::<u64>("default").unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let ns = ns.clone();
        runtime.spawn(async move {
            let _ = ns
                .get_or_load("k", move |_| async move {
                    tx.send(()).unwrap();
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    Ok::<_, std::io::Error>(1)
                })
                .await;
        });
    }
    rx.recv().unwrap();
    // The load is in the air, and its flight stays until the runtime drops the task; shut
    // down only once the waiter has joined it.
    let waiter = blocking_joiner(&ns, 2);
    runtime.shutdown_background();
    // A waiter on the flight is released with the cancellation (`LoadError::Cancelled`: the
    // load's task was dropped, its runtime shut down); it neither hangs nor loads again.
    match waiter.join().unwrap() {
        Err(LoadError::Cancelled) => {}
        other => panic!("expected the waiter released with Cancelled, got {other:?}"),
    }
}

#[test]
fn get_or_load_outside_a_runtime_says_so() {
    let store = store();
    let ns = store.namespace::<u64>("default").unwrap();
    let result =
        futures_lite_block_on(ns.get_or_load("k", |_| async { Ok::<_, std::io::Error>(1) }));
    assert!(matches!(result, Err(LoadError::NoRuntime)));
}

/// Polls a future to completion on this thread without a tokio runtime (it must not need
/// one to make progress, which is what the test checks).
fn futures_lite_block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

// Fail-safe, timeouts and refresh ahead. The cache's TTLs run on a MockClock; loader delays
// and timeouts on tokio's paused clock.

use strata::config::Config;
use strata::MockClock;

const LOADING: &str = r#"
[namespaces.q]
ttl = "1m"
max_stale = "10m"
soft_timeout = "100ms"
hard_timeout = "2s"
refresh_ahead = "80%"

[namespaces.plain]
ttl = "1m"
hard_timeout = "2s"
"#;

fn loading_store() -> (Store, MockClock) {
    let clock = MockClock::new();
    let config = Config::from_sources(Some(LOADING), []).unwrap();
    let store = Store::builder(config).clock(clock.clone()).build().unwrap();
    (store, clock)
}

async fn failing(_: Key) -> Result<u64, std::io::Error> {
    Err(std::io::Error::other("database down"))
}

#[tokio::test(start_paused = true)]
async fn fail_safe_serves_a_stale_value_while_the_origin_fails() {
    let (store, clock) = loading_store();
    let ns = store.namespace::<u64>("q").unwrap();
    let first = ns
        .get_or_load("k", |_| async { Ok::<_, std::io::Error>(1) })
        .await
        .unwrap();
    assert_eq!(first.source, Source::Origin);
    clock.advance(Duration::from_secs(61));
    // Past its TTL: plain reads don't see it...
    assert_eq!(ns.get("k"), None);
    assert!(!ns.contains_key("k"));
    // ...but a failing load falls back on it.
    let served = ns.get_or_load("k", failing).await.unwrap();
    assert_eq!((served.value, served.source), (1, Source::Stale));
    let stats = ns.load_stats();
    assert_eq!((stats.errors, stats.stale_served), (1, 1));
    // Beyond the stale window there is nothing to fall back on.
    clock.advance(Duration::from_secs(10 * 60));
    assert!(matches!(
        ns.get_or_load("k", failing).await,
        Err(LoadError::Origin(_))
    ));
}

#[test]
fn the_blocking_twin_is_fail_safe_too() {
    let (store, clock) = loading_store();
    let ns = store.namespace::<u64>("q").unwrap();
    ns.insert("k", 1).unwrap();
    clock.advance(Duration::from_secs(61));
    let served = ns
        .get_or_load_blocking("k", |_| Err::<u64, _>(std::io::Error::other("down")))
        .unwrap();
    assert_eq!((served.value, served.source), (1, Source::Stale));
}

#[tokio::test(start_paused = true)]
async fn a_slow_origin_gets_the_stale_value_at_the_soft_timeout_and_refreshes_later() {
    let (store, clock) = loading_store();
    let ns = store.namespace::<u64>("q").unwrap();
    ns.insert("k", 1).unwrap();
    clock.advance(Duration::from_secs(61));
    let started = tokio::time::Instant::now();
    let served = ns
        .get_or_load("k", |_| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, std::io::Error>(2)
        })
        .await
        .unwrap();
    assert_eq!((served.value, served.source), (1, Source::Stale));
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(100),
        "answered at the soft timeout"
    );
    // The load went on in the background and stored its value.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(ns.get("k"), Some(2));
    assert_eq!(ns.load_stats().loads, 1);
}

#[tokio::test(start_paused = true)]
async fn the_hard_timeout_abandons_a_load_with_nothing_to_fall_back_on() {
    let (store, _clock) = loading_store();
    let ns = store.namespace::<u64>("plain").unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let started = tokio::time::Instant::now();
    let result = ns
        .get_or_load("k", move |_| async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            c.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(2)
        })
        .await;
    assert!(matches!(result, Err(LoadError::TimedOut(d)) if d == Duration::from_secs(2)));
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    // The load was aborted: it never finishes, and nothing is cached.
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(ns.get("k"), None);
    let stats = ns.load_stats();
    assert_eq!((stats.loads, stats.errors, stats.timeouts), (1, 1, 1));
}

#[tokio::test(start_paused = true)]
async fn refresh_ahead_reloads_a_hot_key_before_it_expires() {
    let (store, clock) = loading_store();
    let ns = store.namespace::<u64>("q").unwrap();
    let version = Arc::new(AtomicUsize::new(0));
    let load = |version: Arc<AtomicUsize>| {
        move |_: Key| async move {
            Ok::<_, std::io::Error>(version.fetch_add(1, Ordering::SeqCst) as u64)
        }
    };
    assert_eq!(
        ns.get_or_load("k", load(Arc::clone(&version)))
            .await
            .unwrap()
            .value,
        0
    );
    // Before 80% of the TTL: a plain hit.
    clock.advance(Duration::from_secs(40));
    let hit = ns
        .get_or_load("k", load(Arc::clone(&version)))
        .await
        .unwrap();
    assert_eq!((hit.value, hit.source), (0, Source::Cache));
    tokio::task::yield_now().await;
    assert_eq!(version.load(Ordering::SeqCst), 1, "no refresh before 80%");
    // Past it: still a hit, and a reload in the background.
    clock.advance(Duration::from_secs(10));
    let hit = ns
        .get_or_load("k", load(Arc::clone(&version)))
        .await
        .unwrap();
    assert_eq!((hit.value, hit.source), (0, Source::Cache));
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(ns.get("k"), Some(1), "the refresh stored the new value");
    assert_eq!(ns.load_stats().refreshes, 1);
    // The refreshed entry lives a TTL from the refresh: past the first one's expiry, a hit.
    clock.advance(Duration::from_secs(20));
    assert_eq!(ns.get("k"), Some(1));
}

#[test]
fn loading_settings_are_checked_at_load() {
    let cases = [
        (
            "[namespaces.a]\nttl = \"1m\"\nsoft_timeout = \"2s\"\nhard_timeout = \"1s\"\n",
            "namespaces.a.soft_timeout",
        ),
        (
            "[namespaces.a]\nmax_stale = \"1m\"\n",
            "namespaces.a.max_stale",
        ),
        (
            "[namespaces.a]\nrefresh_ahead = 0.5\n",
            "namespaces.a.refresh_ahead",
        ),
        (
            "[namespaces.a]\nttl = \"1m\"\nrefresh_ahead = 1.5\n",
            "namespaces.a.refresh_ahead",
        ),
        (
            "[namespaces.a]\nttl = \"1m\"\nrefresh_ahead = \"eighty\"\n",
            "namespaces.a.refresh_ahead",
        ),
    ];
    for (toml, field) in cases {
        let err = Config::from_sources(Some(toml), [])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(field), "{toml:?}: {err}");
    }
    for (written, percent) in [("0.8", 80), ("\"80%\"", 80), ("\"0.25\"", 25)] {
        let toml = format!("[namespaces.a]\nttl = \"1m\"\nrefresh_ahead = {written}\n");
        let config = Config::from_sources(Some(&toml), []).unwrap();
        assert_eq!(
            config.namespaces["a"].refresh_ahead,
            Some(percent),
            "{written}"
        );
    }
    let env = [(
        "STRATA_NAMESPACES__A__MAX_STALE".to_string(),
        "5m".to_string(),
    )];
    let config = Config::from_sources(Some("[namespaces.a]\nttl = \"1m\"\n"), env).unwrap();
    assert_eq!(
        config.namespaces["a"].max_stale,
        Some(Duration::from_secs(300))
    );
}

// Negative caching and batch loading.

const NEGATIVE: &str = r#"
[namespaces.n]
ttl = "1m"
negative_ttl = "30s"

[namespaces.s]
ttl = "1m"
max_stale = "10m"
hard_timeout = "2s"
"#;

fn negative_store() -> (Store, MockClock) {
    let clock = MockClock::new();
    let config = Config::from_sources(Some(NEGATIVE), []).unwrap();
    let store = Store::builder(config).clock(clock.clone()).build().unwrap();
    (store, clock)
}

/// A loader answering "not found" that counts its calls.
type NotFound = std::future::Ready<Result<Option<u64>, std::io::Error>>;

fn nothing(calls: &Arc<AtomicUsize>) -> impl FnOnce(Key) -> NotFound + Send + 'static {
    let calls = Arc::clone(calls);
    move |_| {
        calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(None))
    }
}

#[tokio::test(start_paused = true)]
async fn not_found_is_remembered_for_the_negative_ttl() {
    let (store, clock) = negative_store();
    let ns = store.namespace::<u64>("n").unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let first = ns.get_or_load_optional("k", nothing(&calls)).await.unwrap();
    assert_eq!((first.value, first.source), (None, Source::Origin));
    let again = ns.get_or_load_optional("k", nothing(&calls)).await.unwrap();
    assert_eq!((again.value, again.source), (None, Source::Cache));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the second read did not reach the origin"
    );
    // To everything but the loads that can answer "not found", the key is absent.
    assert_eq!(ns.get("k"), None);
    assert!(!ns.contains_key("k"));
    assert_eq!(ns.ttl("k"), None);
    // Past the negative TTL the origin is asked again.
    clock.advance(Duration::from_secs(31));
    ns.get_or_load_optional("k", nothing(&calls)).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // An insert replaces "not found" at once.
    ns.insert("k", 5).unwrap();
    let found = ns.get_or_load_optional("k", nothing(&calls)).await.unwrap();
    assert_eq!((found.value, found.source), (Some(5), Source::Cache));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_remembered_not_found_does_not_stop_a_loader_that_has_a_value() {
    let (store, _clock) = negative_store();
    let ns = store.namespace::<u64>("n").unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    ns.get_or_load_optional("k", nothing(&calls)).await.unwrap();
    // get_or_load's loader always has a value, so a negative entry is a miss to it...
    let loaded = ns
        .get_or_load("k", |_| async { Ok::<_, std::io::Error>(9) })
        .await
        .unwrap();
    assert_eq!((loaded.value, loaded.source), (9, Source::Origin));
    // ...and its value replaces the negative entry for everyone.
    assert_eq!(ns.get("k"), Some(9));
    let optional = ns.get_or_load_optional("k", nothing(&calls)).await.unwrap();
    assert_eq!(optional.value, Some(9));
    // insert_if_absent treats a negative entry as absent too.
    ns.get_or_load_optional("other", nothing(&calls))
        .await
        .unwrap();
    assert!(matches!(
        ns.insert_if_absent("other", 1).unwrap(),
        strata::Inserted::Inserted
    ));
}

#[tokio::test(start_paused = true)]
async fn without_a_negative_ttl_not_found_is_not_cached_and_drops_the_stale_value() {
    let (store, clock) = negative_store();
    let ns = store.namespace::<u64>("s").unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    for expected in 1..=2 {
        let answer = ns
            .get_or_load_optional("gone", nothing(&calls))
            .await
            .unwrap();
        assert_eq!(answer.value, None);
        assert_eq!(calls.load(Ordering::SeqCst), expected);
    }
    // A value past its TTL, then the origin says it no longer exists: the fail-safe must
    // not bring it back later.
    ns.insert("k", 1).unwrap();
    clock.advance(Duration::from_secs(61));
    let answer = ns.get_or_load_optional("k", nothing(&calls)).await.unwrap();
    assert_eq!((answer.value, answer.source), (None, Source::Origin));
    let result = ns.get_or_load("k", failing).await;
    assert!(matches!(result, Err(LoadError::Origin(_))), "{result:?}");
}

#[tokio::test(start_paused = true)]
async fn a_caller_that_needs_a_value_gets_not_found_from_a_shared_load_that_found_none() {
    let (store, _clock) = negative_store();
    let ns = store.namespace::<u64>("s").unwrap();
    let started = Arc::new(tokio::sync::Notify::new());
    let optional = {
        let (ns, started) = (ns.clone(), Arc::clone(&started));
        tokio::spawn(async move {
            ns.get_or_load_optional("k", move |_| async move {
                started.notify_one();
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok::<Option<u64>, std::io::Error>(None)
            })
            .await
        })
    };
    started.notified().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let required = ns
        .get_or_load("k", move |_| async move {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(1)
        })
        .await;
    assert!(matches!(required, Err(LoadError::NotFound)), "{required:?}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "it joined the load in the air"
    );
    assert_eq!(optional.await.unwrap().unwrap().value, None);
}

type Found = std::future::Ready<Result<Vec<(Key, u64)>, std::io::Error>>;

/// A batch loader that records each call's keys and answers every key but those in `absent`,
/// with the key's length as its value.
fn batch_loader(
    calls: &Arc<parking_lot::Mutex<Vec<Vec<Key>>>>,
    absent: &'static [&'static str],
) -> impl FnOnce(Vec<Key>) -> Found + Send {
    let calls = Arc::clone(calls);
    move |keys: Vec<Key>| {
        calls.lock().push(keys.clone());
        let found = keys
            .into_iter()
            .filter(|k| !absent.iter().any(|a| k.as_bytes() == a.as_bytes()))
            .map(|k| {
                let len = k.as_bytes().len() as u64;
                (k, len)
            })
            .collect();
        std::future::ready(Ok(found))
    }
}

#[tokio::test(start_paused = true)]
async fn a_batch_asks_the_origin_once_for_the_missing_keys_only() {
    let (store, _clock) = negative_store();
    let ns = store.namespace::<u64>("n").unwrap();
    ns.insert("a", 100).unwrap();
    ns.insert("bb", 200).unwrap();
    let calls = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let keys = ["a", "ccc", "bb", "dddd", "ccc", "missing"];
    let found = ns
        .get_many_or_load(keys, batch_loader(&calls, &["missing"]))
        .await
        .unwrap();
    assert_eq!(
        *calls.lock(),
        [vec![
            Key::from("ccc"),
            Key::from("dddd"),
            Key::from("missing")
        ]],
        "one call, with each missing key once, in the order asked"
    );
    let got = |k: &str| found.get(&Key::from(k)).map(|l| (l.value, l.source));
    assert_eq!(got("a"), Some((100, Source::Cache)));
    assert_eq!(got("bb"), Some((200, Source::Cache)));
    assert_eq!(got("ccc"), Some((3, Source::Origin)));
    assert_eq!(got("dddd"), Some((4, Source::Origin)));
    assert_eq!(got("missing"), None);
    assert_eq!(found.len(), 4);
    assert_eq!(ns.load_stats().loads, 3, "one per key loaded");
    // Everything is known now, the absent key as "not found": no second call.
    let again = ns
        .get_many_or_load(keys, batch_loader(&calls, &[]))
        .await
        .unwrap();
    assert_eq!(calls.lock().len(), 1);
    assert_eq!(again.len(), 4);
    assert!(again.values().all(|l| l.source == Source::Cache));
}

#[tokio::test(start_paused = true)]
async fn single_flight_holds_per_key_between_batches_and_single_loads() {
    let (store, _clock) = negative_store();
    let ns = store.namespace::<u64>("n").unwrap();
    let started = Arc::new(tokio::sync::Notify::new());
    let single = {
        let (ns, started) = (ns.clone(), Arc::clone(&started));
        tokio::spawn(async move {
            ns.get_or_load("b", move |_| async move {
                started.notify_one();
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok::<_, std::io::Error>(42)
            })
            .await
        })
    };
    started.notified().await;
    let calls = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let found = ns
        .get_many_or_load(["a", "b", "c"], batch_loader(&calls, &[]))
        .await
        .unwrap();
    assert_eq!(*calls.lock(), [vec![Key::from("a"), Key::from("c")]]);
    let b = &found[&Key::from("b")];
    assert_eq!(
        (b.value, b.source),
        (42, Source::Origin),
        "waited for the single load"
    );
    assert_eq!(single.await.unwrap().unwrap().value, 42);
    // And the other way round: a single load joins a batch in the air.
    let slow = {
        let ns = ns.clone();
        tokio::spawn(async move {
            ns.get_many_or_load(["x", "y"], |keys: Vec<Key>| async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok::<_, std::io::Error>(keys.into_iter().map(|k| (k, 7)).collect::<Vec<_>>())
            })
            .await
        })
    };
    tokio::task::yield_now().await;
    let calls_before = ns.load_stats().loads;
    let y = ns
        .get_or_load("y", |_| async { Ok::<_, std::io::Error>(0) })
        .await
        .unwrap();
    assert_eq!((y.value, y.source), (7, Source::Origin));
    assert_eq!(slow.await.unwrap().unwrap().len(), 2);
    assert_eq!(
        ns.load_stats().loads - calls_before,
        2,
        "x and y, by the batch alone"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_batch_fails_unless_stale_values_cover_every_key() {
    let (store, clock) = negative_store();
    let ns = store.namespace::<u64>("s").unwrap();
    ns.insert("a", 1).unwrap();
    ns.insert("b", 2).unwrap();
    clock.advance(Duration::from_secs(61));
    let down =
        |_: Vec<Key>| async { Err::<Vec<(Key, u64)>, _>(std::io::Error::other("database down")) };
    let found = ns.get_many_or_load(["a", "b"], down).await.unwrap();
    let a = &found[&Key::from("a")];
    assert_eq!((a.value, a.source), (1, Source::Stale));
    assert_eq!(found[&Key::from("b")].source, Source::Stale);
    assert_eq!(ns.load_stats().stale_served, 2);
    let result = ns.get_many_or_load(["a", "b", "c"], down).await;
    match result {
        Err(LoadError::Origin(e)) => assert_eq!(e.to_string(), "database down"),
        other => panic!("expected the origin's error, got {other:?}"),
    }
    // A panicking batch loader is an error too, and leaves no flight behind.
    let result = ns
        .get_many_or_load(["c"], |_: Vec<Key>| async {
            if true {
                panic!("bug in the loader");
            }
            Ok::<Vec<(Key, u64)>, std::io::Error>(Vec::new())
        })
        .await;
    assert!(matches!(result, Err(LoadError::Panicked)), "{result:?}");
    let calls = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let found = ns
        .get_many_or_load(["c"], batch_loader(&calls, &[]))
        .await
        .unwrap();
    assert_eq!(found[&Key::from("c")].value, 1);
}

#[tokio::test(start_paused = true)]
async fn the_hard_timeout_abandons_a_slow_batch() {
    let (store, _clock) = negative_store();
    let ns = store.namespace::<u64>("s").unwrap();
    let started = tokio::time::Instant::now();
    let result = ns
        .get_many_or_load(["a", "b"], |keys: Vec<Key>| async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok::<_, std::io::Error>(keys.into_iter().map(|k| (k, 1)).collect::<Vec<_>>())
        })
        .await;
    assert!(
        matches!(result, Err(LoadError::TimedOut(d)) if d == Duration::from_secs(2)),
        "{result:?}"
    );
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    let stats = ns.load_stats();
    assert_eq!((stats.loads, stats.timeouts), (2, 2));
    assert_eq!(
        stats.latency.quantile(0.5),
        Some(Duration::from_millis(2_500))
    );
    assert_eq!(
        store.stats().namespaces["s"].loads,
        stats,
        "the store's figures carry the namespace's loads"
    );
}

#[test]
fn a_batch_outside_a_runtime_needs_one_only_to_load() {
    let (store, _clock) = negative_store();
    let ns = store.namespace::<u64>("n").unwrap();
    ns.insert("a", 1).unwrap();
    let calls = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let hits = futures_lite_block_on(ns.get_many_or_load(["a"], batch_loader(&calls, &[])));
    assert_eq!(hits.unwrap().len(), 1);
    let result = futures_lite_block_on(ns.get_many_or_load(["a", "b"], batch_loader(&calls, &[])));
    assert!(matches!(result, Err(LoadError::NoRuntime)), "{result:?}");
    assert!(calls.lock().is_empty());
}

/// Starts a load of `key` whose loader reads "old" from the origin and takes 1 s to answer.
fn slow_old_read(
    ns: &strata::Namespace<String>,
    key: &'static str,
) -> tokio::task::JoinHandle<String> {
    let ns = ns.clone();
    tokio::spawn(async move {
        ns.get_or_load(key, |_| async {
            let read = "old".to_string(); // the row as it was when the load read it
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, std::io::Error>(read)
        })
        .await
        .unwrap()
        .value
    })
}

#[tokio::test(start_paused = true)]
async fn an_invalidation_during_a_load_wins_over_what_the_load_read() {
    let store = store();
    let ns = store.namespace::<String>("default").unwrap();
    let cases: [(&str, &dyn Fn()); 5] = [
        ("user::1", &|| drop(ns.remove("user::1"))),
        ("user::2", &|| {
            let key = strata::store::Invalidation::Key {
                namespace: None,
                key: Key::from("user::2"),
            };
            store.invalidate(&key).unwrap();
        }),
        ("user::3", &|| {
            ns.invalidate_prefix("user::");
        }),
        ("user::4", &|| {
            ns.invalidate_pattern("user::[4]");
        }),
        ("user::5", &|| {
            ns.clear();
        }),
    ];
    for (key, invalidate) in cases {
        let load = slow_old_read(&ns, key);
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The row is updated and the cache invalidated while the load is in the air.
        invalidate();
        assert_eq!(
            load.await.unwrap(),
            "old",
            "{key}: the caller still gets its answer"
        );
        assert_eq!(
            ns.get(key),
            None,
            "{key}: but the value read before the invalidation is not kept"
        );
    }
    // A load that no invalidation overtook keeps its value, and one on another key is not
    // disturbed by an invalidation of this one.
    let kept = slow_old_read(&ns, "user::6");
    let other = slow_old_read(&ns, "other::1");
    tokio::time::sleep(Duration::from_millis(100)).await;
    ns.invalidate_prefix("user::7");
    assert_eq!(kept.await.unwrap(), "old");
    assert_eq!(other.await.unwrap(), "old");
    assert_eq!(ns.get("user::6").as_deref(), Some("old"));
    assert_eq!(ns.get("other::1").as_deref(), Some("old"));
}
