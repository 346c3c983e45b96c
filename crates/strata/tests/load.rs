//! Read-through loading through the public API: single flight for async and blocking callers,
//! a cancelled leader, failing and panicking loaders. Async tests run on tokio's paused clock:
//! a loader's `sleep` advances virtual time, so nothing here waits for real time to pass.
#![cfg(not(feature = "shuttle"))]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use strata::store::{LoadError, Source, Store};
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
    assert_eq!(ns.load_stats().loads, 1);
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
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let (ns, calls) = (ns.clone(), Arc::clone(&calls));
            std::thread::spawn(move || {
                ns.get_or_load_blocking("k", |_| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    // Long enough for the others to arrive; a late one hits the cache.
                    std::thread::sleep(Duration::from_millis(100));
                    Ok::<_, std::io::Error>(3)
                })
                .unwrap()
            })
        })
        .collect();
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

#[test]
fn a_blocking_caller_waits_for_an_async_load() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .build()
        .unwrap();
    let store = store();
    let ns = store.namespace::<u64>("default").unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let async_caller = {
        let ns = ns.clone();
        runtime.spawn(async move {
            ns.get_or_load("k", move |_| async move {
                tx.send(()).unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok::<_, std::io::Error>(8)
            })
            .await
        })
    };
    rx.recv().unwrap();
    // The async load is in the air: this blocking caller joins it instead of loading.
    let loaded = ns
        .get_or_load_blocking("k", |_| Ok::<_, std::io::Error>(0))
        .unwrap();
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
    let waiter = {
        let ns = ns.clone();
        std::thread::spawn(move || ns.get_or_load_blocking("k", |_| Ok::<_, std::io::Error>(2)))
    };
    // Let the waiter join the flight, then drop the runtime and its tasks.
    std::thread::sleep(Duration::from_millis(50));
    runtime.shutdown_background();
    match waiter.join().unwrap() {
        // It joined the flight: released with the cancellation.
        Err(LoadError::Cancelled) => {}
        // It came late enough to lead a load of its own.
        Ok(loaded) => assert_eq!(loaded.value, 2),
        other => panic!("unexpected {other:?}"),
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
