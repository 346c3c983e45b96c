//! Warming jobs through the public API: batches, concurrency, retries with backoff, priority,
//! scopes, status, events, periodic runs, skipping and panics. Everything runs on tokio's
//! paused clock: loaders and backoff `sleep` in virtual time, so nothing here waits for real
//! time to pass and every time measured is exact.
#![cfg(not(feature = "shuttle"))]

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use strata::config::Config;
use strata::store::{Namespace, Put, Store};
use strata::warm::{
    BatchLoader, JobState, KeyLister, Progress, Retry, WarmError, WarmEvent, WarmJob, Warmer,
    EVENT_CAPACITY,
};
use strata::Key;
use tokio::sync::broadcast;
use tokio::time::Instant;

type Io = std::io::Error;

fn strings(store: &Store) -> Namespace<String> {
    store.namespace::<String>("default").unwrap()
}

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("k{i:02}")).collect()
}

/// The value a loader gives `key`.
fn value_of(key: &Key) -> String {
    format!("v:{key}")
}

/// A loader that answers every key of its batch at once.
async fn echo(batch: Vec<Key>) -> Result<Vec<(Key, String)>, Io> {
    Ok(batch
        .into_iter()
        .map(|k| {
            let v = value_of(&k);
            (k, v)
        })
        .collect())
}

/// A complete job, ready for `Warmer::add`.
type Job = WarmJob<String, KeyLister, BatchLoader<String>>;

/// A job over `names` that loads with `echo`.
fn echo_job(name: &str, ns: &Namespace<String>, names: Vec<String>) -> Job {
    let names = Arc::new(names);
    WarmJob::new(name, ns.clone())
        .keys(move || {
            let names = Arc::clone(&names);
            async move { Ok::<_, Io>(names.to_vec()) }
        })
        .load(echo)
}

/// Events received until (and with) the `Finished` of `job`.
async fn until_finished(events: &mut broadcast::Receiver<WarmEvent>, job: &str) -> Vec<WarmEvent> {
    let mut seen = Vec::new();
    loop {
        let event = events.recv().await.unwrap();
        let done = matches!(&event, WarmEvent::Finished { job: j, .. } if j == job);
        seen.push(event);
        if done {
            return seen;
        }
    }
}

/// Waits for the `Started` event of `job`.
async fn until_started(events: &mut broadcast::Receiver<WarmEvent>, job: &str) {
    loop {
        if let WarmEvent::Started { job: j, .. } = events.recv().await.unwrap() {
            if j == job {
                return;
            }
        }
    }
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn a_warmer_is_shared_across_threads_and_tasks() {
    fn shared<T: Send + Sync + Clone + std::fmt::Debug + 'static>() {}
    shared::<Warmer>();
    fn sent<T: Send + 'static>(_: &T) {}
    sent(&Warmer::new().run("all"));
}

#[tokio::test(start_paused = true)]
async fn a_job_loads_every_key_in_batches_of_its_size() {
    let store = Store::new();
    let ns = strings(&store);
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let mut listed = keys(10);
    listed.push("k03".into()); // listed twice, warmed once
    let warmer = Warmer::new();
    warmer
        .add(
            WarmJob::new("ten", ns.clone())
                .batch_size(3)
                .put(Put::new().tag("warm"))
                .keys(move || {
                    let listed = listed.clone();
                    async move { Ok::<_, Io>(listed) }
                })
                .load({
                    let sizes = Arc::clone(&sizes);
                    move |batch: Vec<Key>| {
                        sizes.lock().unwrap().push(batch.len());
                        echo(batch)
                    }
                }),
        )
        .unwrap();
    let report = warmer.run("all").await.unwrap();
    assert_eq!(*sizes.lock().unwrap(), [3, 3, 3, 1]);
    assert_eq!(report.scope, "all");
    assert!(report.skipped.is_empty());
    assert_eq!(report.jobs.len(), 1);
    let job = report.job("ten").unwrap();
    assert_eq!(
        (job.loaded, job.failed, job.missing, job.error.as_deref()),
        (10, 0, 0, None)
    );
    assert_eq!((report.loaded(), report.failed()), (10, 0));
    for key in keys(10) {
        assert_eq!(ns.get(&key), Some(format!("v:{key}")), "{key}");
    }
    // Stored with the job's Put.
    assert_eq!(store.invalidate_tag("warm"), 10);
    assert_eq!(ns.get("k00"), None);
}

#[tokio::test(start_paused = true)]
async fn keys_left_out_are_missing_and_refused_values_failed() {
    let config = Config::from_sources(Some("max_bytes = \"1MiB\""), []).unwrap();
    let store = Store::from_config(&config).unwrap();
    let ns = strings(&store);
    let warmer = Warmer::new();
    warmer
        .add(
            WarmJob::new("gaps", ns.clone())
                .batch_size(4)
                .keys(|| async { Ok::<_, Io>(["a", "b", "c", "d", "e", "f"]) })
                .load(|batch: Vec<Key>| async move {
                    let mut pairs = Vec::new();
                    for key in batch {
                        match key.as_str() {
                            Some("b") | Some("f") => {} // not found at the origin
                            Some("c") => pairs.push((key, "x".repeat(2 << 20))), // too big
                            _ => {
                                let v = value_of(&key);
                                pairs.push((key.clone(), v));
                                pairs.push((key, "second answer".into())); // ignored
                            }
                        }
                    }
                    pairs.push((Key::from("not asked"), "ignored".into()));
                    Ok::<_, Io>(pairs)
                }),
        )
        .unwrap();
    let report = warmer.run("all").await.unwrap();
    let job = report.job("gaps").unwrap();
    assert_eq!((job.loaded, job.failed, job.missing), (3, 1, 2));
    assert_eq!(ns.get("a").as_deref(), Some("v:a"));
    assert_eq!(ns.get("b"), None);
    assert_eq!(ns.get("c"), None);
    assert_eq!(ns.get("not asked"), None);
    let status = &warmer.status()[0];
    assert_eq!(
        (status.last_loaded, status.last_failed, status.last_missing),
        (3, 1, 2)
    );
}

#[tokio::test(start_paused = true)]
async fn no_more_than_concurrency_batches_are_in_flight() {
    let store = Store::new();
    let ns = strings(&store);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let names = Arc::new(keys(10));
    let warmer = Warmer::new();
    warmer
        .add(
            WarmJob::new("slow", ns.clone())
                .batch_size(1)
                .concurrency(3)
                .keys(move || {
                    let names = Arc::clone(&names);
                    async move { Ok::<_, Io>(names.to_vec()) }
                })
                .load({
                    let (in_flight, most) = (Arc::clone(&in_flight), Arc::clone(&most));
                    move |batch: Vec<Key>| {
                        let (in_flight, most) = (Arc::clone(&in_flight), Arc::clone(&most));
                        async move {
                            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            in_flight.fetch_sub(1, Ordering::SeqCst);
                            echo(batch).await
                        }
                    }
                }),
        )
        .unwrap();
    let report = warmer.run("all").await.unwrap();
    assert_eq!(most.load(Ordering::SeqCst), 3);
    let job = report.job("slow").unwrap();
    assert_eq!(job.loaded, 10);
    // Ten batches, three at a time, 100 ms each: four rounds.
    assert_eq!(job.duration_ms, 400);
}

/// What a loader's future answers.
type Answer = std::pin::Pin<Box<dyn Future<Output = Result<Vec<(Key, String)>, Io>> + Send>>;

/// A loader that fails its first `failures` calls, recording when each call was made.
fn flaky(
    failures: usize,
    calls: &Arc<Mutex<Vec<Instant>>>,
) -> impl Fn(Vec<Key>) -> Answer + Send + Sync + 'static {
    let calls = Arc::clone(calls);
    move |batch| {
        let n = {
            let mut calls = calls.lock().unwrap();
            calls.push(Instant::now());
            calls.len()
        };
        Box::pin(async move {
            if n <= failures {
                Err(Io::other(format!("origin down (call {n})")))
            } else {
                echo(batch).await
            }
        })
    }
}

fn gaps_ms(calls: &[Instant]) -> Vec<u128> {
    calls
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_failing_batch_is_retried_with_exponential_backoff() {
    let store = Store::new();
    let ns = strings(&store);
    let calls = Arc::new(Mutex::new(Vec::new()));
    let warmer = Warmer::new();
    let mut events = warmer.subscribe();
    warmer
        .add(
            WarmJob::new("flaky", ns.clone())
                .retry(Retry::exponential(Duration::from_millis(100)).jitter(0.0))
                .keys(|| async { Ok::<_, Io>(["a"]) })
                .load(flaky(2, &calls)),
        )
        .unwrap();
    let report = warmer.run("all").await.unwrap();
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 3);
    assert_eq!(gaps_ms(&calls), [100, 200]);
    let job = report.job("flaky").unwrap();
    assert_eq!((job.loaded, job.failed, job.duration_ms), (1, 0, 300));
    assert_eq!(ns.get("a").as_deref(), Some("v:a"));

    let retries: Vec<_> = until_finished(&mut events, "flaky")
        .await
        .into_iter()
        .filter(|e| matches!(e, WarmEvent::Retrying { .. }))
        .collect();
    assert_eq!(
        retries,
        [
            WarmEvent::Retrying {
                job: "flaky".into(),
                attempt: 1,
                delay_ms: 100,
                error: "origin down (call 1)".into(),
            },
            WarmEvent::Retrying {
                job: "flaky".into(),
                attempt: 2,
                delay_ms: 200,
                error: "origin down (call 2)".into(),
            },
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn jittered_delays_stay_within_their_bounds() {
    let store = Store::new();
    let ns = strings(&store);
    let warmer = Warmer::new();
    let mut events = warmer.subscribe();
    let mut all_calls = Vec::new();
    for i in 0..20 {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let name = format!("jittery{i:02}");
        warmer
            .add(
                WarmJob::new(&name, ns.clone())
                    .scope(&name)
                    .retry(
                        Retry::exponential(Duration::from_millis(100))
                            .max_attempts(5)
                            .jitter(0.2),
                    )
                    .keys(|| async { Ok::<_, Io>(["a"]) })
                    .load(flaky(4, &calls)),
            )
            .unwrap();
        let report = warmer.run(&name).await.unwrap();
        assert_eq!(report.job(&name).unwrap().loaded, 1);
        all_calls.push(calls);
    }
    let bases = [100, 200, 400, 800];
    for calls in &all_calls {
        let calls = calls.lock().unwrap();
        assert_eq!(calls.len(), 5);
        for (gap, base) in gaps_ms(&calls).into_iter().zip(bases) {
            assert!(
                gap * 10 >= base * 8 && gap <= base,
                "a wait of {gap} ms where {base} ms less up to 20% was due"
            );
        }
    }
    // The jitter does take something off: not every one of the 80 waits is the full one.
    let mut delays = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let WarmEvent::Retrying {
            attempt, delay_ms, ..
        } = event
        {
            delays.push((attempt, delay_ms));
        }
    }
    assert_eq!(delays.len(), 80);
    assert!(delays
        .iter()
        .any(|&(attempt, ms)| u128::from(ms) < bases[attempt as usize - 1]));
}

#[tokio::test(start_paused = true)]
async fn max_delay_caps_the_backoff_and_a_batch_out_of_attempts_fails_alone() {
    let store = Store::new();
    let ns = strings(&store);
    let bad_calls = Arc::new(Mutex::new(Vec::new()));
    let warmer = Warmer::new();
    let mut events = warmer.subscribe();
    warmer
        .add(
            WarmJob::new("capped", ns.clone())
                .batch_size(1)
                .retry(
                    Retry::exponential(Duration::from_millis(100))
                        .max_attempts(4)
                        .max_delay(Duration::from_millis(150))
                        .jitter(0.0),
                )
                .keys(|| async { Ok::<_, Io>(["a", "bad", "c", "d"]) })
                .load({
                    let bad_calls = Arc::clone(&bad_calls);
                    move |batch: Vec<Key>| {
                        let bad = batch[0].as_str() == Some("bad");
                        if bad {
                            bad_calls.lock().unwrap().push(Instant::now());
                        }
                        async move {
                            if bad {
                                Err(Io::other("no such table"))
                            } else {
                                echo(batch).await
                            }
                        }
                    }
                }),
        )
        .unwrap();
    let report = warmer.run("all").await.unwrap();
    let bad_calls = bad_calls.lock().unwrap().clone();
    assert_eq!(bad_calls.len(), 4, "max_attempts counts the first attempt");
    assert_eq!(gaps_ms(&bad_calls), [100, 150, 150]);
    let job = report.job("capped").unwrap();
    assert_eq!((job.loaded, job.failed, job.missing), (3, 1, 0));
    assert_eq!(job.error, None, "failed batches do not fail the run");
    for key in ["a", "c", "d"] {
        assert!(ns.contains_key(key), "{key}");
    }
    let failed: Vec<_> = until_finished(&mut events, "capped")
        .await
        .into_iter()
        .filter(|e| matches!(e, WarmEvent::BatchFailed { .. }))
        .collect();
    assert_eq!(
        failed,
        [WarmEvent::BatchFailed {
            job: "capped".into(),
            keys: 1,
            error: "no such table".into()
        }]
    );
}

#[tokio::test(start_paused = true)]
async fn jobs_run_in_priority_order_and_scopes_pick_them() {
    let store = Store::new();
    let ns = strings(&store);
    let order = Arc::new(Mutex::new(Vec::new()));
    let warmer = Warmer::new();
    for (name, priority, scope) in [
        ("low", -5, "reference"),
        ("mid_b", 0, "config"),
        ("high", 10, "reference"),
        ("mid_a", 0, "config"),
    ] {
        let order = Arc::clone(&order);
        warmer
            .add(
                WarmJob::new(name, ns.clone())
                    .priority(priority)
                    .scope(scope)
                    .keys(move || {
                        order.lock().unwrap().push(name);
                        async move { Ok::<_, Io>([name]) }
                    })
                    .load(echo),
            )
            .unwrap();
    }
    let report = warmer.run("all").await.unwrap();
    assert_eq!(*order.lock().unwrap(), ["high", "mid_a", "mid_b", "low"]);
    let ran: Vec<&str> = report.jobs.iter().map(|j| j.job.as_str()).collect();
    assert_eq!(ran, ["high", "mid_a", "mid_b", "low"]);
    let listed: Vec<String> = warmer.status().into_iter().map(|s| s.name).collect();
    assert_eq!(listed, ["high", "mid_a", "mid_b", "low"]);

    order.lock().unwrap().clear();
    let report = warmer.run("reference").await.unwrap();
    assert_eq!(*order.lock().unwrap(), ["high", "low"]);
    assert_eq!(report.jobs.len(), 2);
    assert_eq!(warmer.scopes(), ["all", "config", "reference"]);
}

#[tokio::test(start_paused = true)]
async fn unknown_scopes_and_duplicate_names_are_refused() {
    let store = Store::new();
    let ns = strings(&store);
    let warmer = Warmer::new();
    assert!(warmer.scopes().is_empty());
    assert_eq!(
        warmer.run("all").await.unwrap_err(),
        WarmError::UnknownScope("all".into())
    );
    warmer.add(echo_job("x", &ns, keys(1))).unwrap();
    assert_eq!(
        warmer.add(echo_job("x", &ns, keys(2))).unwrap_err(),
        WarmError::DuplicateJob("x".into())
    );
    assert_eq!(warmer.status().len(), 1);
    let err = warmer.run("nope").await.unwrap_err();
    assert_eq!(err, WarmError::UnknownScope("nope".into()));
    assert_eq!(err.to_string(), "no warming job has scope \"nope\"");
    assert_eq!(warmer.scopes(), ["all"]);
}

#[test]
fn outside_a_runtime_run_and_start_say_so() {
    use std::task::{Context, Poll, Waker};
    let store = Store::new();
    let warmer = Warmer::new();
    warmer
        .add(echo_job("x", &strings(&store), keys(1)))
        .unwrap();
    let mut run = std::pin::pin!(warmer.run("all"));
    let polled = run.as_mut().poll(&mut Context::from_waker(Waker::noop()));
    assert!(matches!(polled, Poll::Ready(Err(WarmError::NoRuntime))));
    assert_eq!(warmer.start().unwrap_err(), WarmError::NoRuntime);
}

#[tokio::test(start_paused = true)]
async fn status_reports_runs_figures_and_progress() {
    let store = Store::new();
    let ns = strings(&store);
    let warmer = Warmer::new();
    let mut events = warmer.subscribe();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    warmer
        .add(
            WarmJob::new("users", ns.clone())
                .scope("reference")
                .priority(3)
                .batch_size(2)
                .keys(|| async { Ok::<_, Io>(["a", "b", "c"]) })
                .load({
                    let gate = Arc::clone(&gate);
                    move |batch: Vec<Key>| {
                        let gate = Arc::clone(&gate);
                        async move {
                            gate.acquire().await.unwrap().forget();
                            tokio::time::sleep(Duration::from_millis(250)).await;
                            // "c" does not exist.
                            let found = batch.into_iter().filter(|k| k.as_str() != Some("c"));
                            Ok::<_, Io>(found.map(|k| (k, "v".to_string())).collect::<Vec<_>>())
                        }
                    }
                }),
        )
        .unwrap();
    warmer
        .add(
            WarmJob::new("broken", ns.clone())
                .retry(Retry::none())
                .keys(|| async { Err::<Vec<String>, _>(Io::other("listing failed")) })
                .load(echo),
        )
        .unwrap();

    let before = warmer.status();
    assert_eq!(before[0].name, "users");
    assert_eq!((before[0].runs, before[0].state), (0, JobState::Idle));
    assert_eq!(before[0].last_duration_ms, None);

    let started_ms = now_unix_ms();
    let running = tokio::spawn(warmer.run("reference"));
    until_started(&mut events, "users").await;
    let status = &warmer.status()[0];
    assert_eq!(status.state, JobState::Running);
    assert_eq!(status.progress, Some(Progress { done: 0, total: 3 }));
    assert_eq!(status.runs, 1);
    gate.add_permits(1);
    loop {
        if let WarmEvent::Progress { done, .. } = events.recv().await.unwrap() {
            assert_eq!(done, 2);
            break;
        }
    }
    assert_eq!(
        warmer.status()[0].progress,
        Some(Progress { done: 2, total: 3 })
    );
    gate.add_permits(1);
    running.await.unwrap().unwrap();

    let status = &warmer.status()[0];
    assert_eq!(status.namespace, "default");
    assert_eq!(status.scopes, ["all", "reference"]);
    assert_eq!(status.priority, 3);
    assert_eq!((status.state, status.progress), (JobState::Idle, None));
    assert_eq!(status.runs, 1);
    assert_eq!(
        (status.last_loaded, status.last_failed, status.last_missing),
        (2, 0, 1)
    );
    assert_eq!(
        status.last_duration_ms,
        Some(500),
        "two batches of 250 virtual ms"
    );
    assert_eq!(status.last_error, None);
    assert_eq!(status.next_run_unix_ms, None);
    let stamp = status.last_started_unix_ms.unwrap();
    assert!(stamp >= started_ms && stamp <= now_unix_ms());

    gate.add_permits(2);
    warmer.run("reference").await.unwrap();
    let status = &warmer.status()[0];
    assert_eq!(
        (status.runs, status.total_loaded, status.total_failed),
        (2, 4, 0)
    );

    gate.add_permits(2);
    let report = warmer.run("all").await.unwrap();
    let broken = report.job("broken").unwrap();
    assert_eq!(broken.error.as_deref(), Some("listing failed"));
    assert_eq!((broken.loaded, broken.failed, broken.missing), (0, 0, 0));
    let status = warmer
        .status()
        .into_iter()
        .find(|s| s.name == "broken")
        .unwrap();
    assert_eq!(status.last_error.as_deref(), Some("listing failed"));
    assert_eq!((status.runs, status.last_loaded), (1, 0));

    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["state"], "idle");
    assert_eq!(json["last_error"], "listing failed");
    assert!(json["progress"].is_null());
}

#[tokio::test(start_paused = true)]
async fn the_events_of_a_small_job() {
    let store = Store::new();
    let ns = strings(&store);
    let warmer = Warmer::new();
    warmer
        .add(echo_job("small", &ns, keys(5)).batch_size(2))
        .unwrap();
    let mut events = warmer.subscribe();
    warmer.run("all").await.unwrap();
    let progress = |done, loaded| WarmEvent::Progress {
        job: "small".into(),
        done,
        total: 5,
        loaded,
        failed: 0,
    };
    assert_eq!(
        until_finished(&mut events, "small").await,
        [
            WarmEvent::Started {
                job: "small".into(),
                total_keys: 5
            },
            progress(2, 2),
            progress(4, 4),
            progress(5, 5),
            WarmEvent::Finished {
                job: "small".into(),
                loaded: 5,
                failed: 0,
                missing: 0,
                duration_ms: 0,
                error: None
            },
        ]
    );
    assert!(events.try_recv().is_err());
    let json = serde_json::to_string(&WarmEvent::Started {
        job: "small".into(),
        total_keys: 5,
    })
    .unwrap();
    assert_eq!(json, r#"{"event":"started","job":"small","total_keys":5}"#);

    // With nobody listening, running is no error (and more events than the channel holds
    // are fine too).
    drop(events);
    warmer
        .add(echo_job("big", &ns, keys(EVENT_CAPACITY * 2)).batch_size(1))
        .unwrap();
    let report = warmer.run("all").await.unwrap();
    assert_eq!(report.loaded(), 5 + EVENT_CAPACITY as u64 * 2);
}

/// A job that counts its runs.
fn counted(name: &str, ns: &Namespace<String>, runs: &Arc<AtomicUsize>) -> Job {
    let runs = Arc::clone(runs);
    WarmJob::new(name, ns.clone())
        .keys(move || {
            runs.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, Io>(["k"]) }
        })
        .load(echo)
}

const TEN_MIN: Duration = Duration::from_secs(600);

#[tokio::test(start_paused = true)]
async fn a_periodic_job_runs_every_period_until_stopped() {
    let store = Store::new();
    let ns = strings(&store);
    let runs = Arc::new(AtomicUsize::new(0));
    let warmer = Warmer::new();
    warmer
        .add(counted("periodic", &ns, &runs).every(TEN_MIN))
        .unwrap();
    let handle = warmer.start().unwrap();

    let due = warmer.status()[0].next_run_unix_ms.unwrap();
    let expected = now_unix_ms() + 600_000;
    assert!(
        due.abs_diff(expected) < 5_000,
        "next run at {due}, expected about {expected}"
    );

    tokio::time::sleep(TEN_MIN - Duration::from_millis(1)).await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        0,
        "the first run is one period after start"
    );
    tokio::time::sleep(Duration::from_millis(2)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    tokio::time::sleep(TEN_MIN).await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    let status = &warmer.status()[0];
    assert_eq!((status.runs, status.total_loaded), (2, 2));
    assert!(status.next_run_unix_ms.is_some());

    handle.stop().await;
    assert_eq!(warmer.status()[0].next_run_unix_ms, None);
    tokio::time::sleep(TEN_MIN * 6).await;
    assert_eq!(runs.load(Ordering::SeqCst), 2, "stopped");
}

#[tokio::test(start_paused = true)]
async fn start_runs_on_start_jobs_in_priority_order_then_the_periods() {
    let store = Store::new();
    let ns = strings(&store);
    let (a, b, c) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let warmer = Warmer::new();
    let mut events = warmer.subscribe();
    warmer
        .add(
            counted("first", &ns, &a)
                .priority(2)
                .on_start()
                .every(TEN_MIN),
        )
        .unwrap();
    warmer
        .add(counted("second", &ns, &b).priority(1).on_start())
        .unwrap();
    warmer.add(counted("on_demand", &ns, &c)).unwrap();
    let handle = warmer.start().unwrap();
    let mut finished = Vec::new();
    while finished.len() < 2 {
        if let WarmEvent::Finished { job, .. } = events.recv().await.unwrap() {
            finished.push(job);
        }
    }
    assert_eq!(finished, ["first", "second"]);
    let counts = || [&a, &b, &c].map(|n| n.load(Ordering::SeqCst));
    assert_eq!(counts(), [1, 1, 0]);
    tokio::time::sleep(TEN_MIN + Duration::from_millis(1)).await;
    assert_eq!(counts(), [2, 1, 0]);
    drop(handle);
    tokio::time::sleep(TEN_MIN * 3).await;
    assert_eq!(counts(), [2, 1, 0], "dropping the handle stops the loops");
}

#[tokio::test(start_paused = true)]
async fn a_running_job_is_skipped_by_a_second_run() {
    let store = Store::new();
    let ns = strings(&store);
    let calls = Arc::new(AtomicUsize::new(0));
    let warmer = Warmer::new();
    let mut events = warmer.subscribe();
    warmer
        .add(
            WarmJob::new("slow", ns.clone())
                .keys(|| async { Ok::<_, Io>(["a"]) })
                .load({
                    let calls = Arc::clone(&calls);
                    move |batch: Vec<Key>| {
                        calls.fetch_add(1, Ordering::SeqCst);
                        async move {
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            echo(batch).await
                        }
                    }
                }),
        )
        .unwrap();
    let first = tokio::spawn(warmer.run("all"));
    until_started(&mut events, "slow").await;
    let at = Instant::now();
    let second = warmer.run("all").await.unwrap();
    assert_eq!(Instant::now(), at, "the second run waited for nothing");
    assert!(second.jobs.is_empty());
    assert_eq!(second.skipped.len(), 1);
    assert_eq!(second.skipped[0].job, "slow");
    assert_eq!(second.skipped[0].reason, "already running");
    assert!(matches!(
        events.recv().await.unwrap(),
        WarmEvent::Skipped { job, .. } if job == "slow"
    ));
    let first = first.await.unwrap().unwrap();
    assert_eq!(first.job("slow").unwrap().loaded, 1);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(warmer.status()[0].runs, 1);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_loader_fails_its_batch_and_nothing_escapes() {
    let store = Store::new();
    let ns = strings(&store);
    let calls = Arc::new(AtomicUsize::new(0));
    let warmer = Warmer::new();
    let mut events = warmer.subscribe();
    // One job panics inside its future, one in the closure before making the future.
    for (name, inside) in [("inside", true), ("outside", false)] {
        let calls = Arc::clone(&calls);
        warmer
            .add(
                WarmJob::new(name, ns.clone())
                    .batch_size(1)
                    .keys(|| async { Ok::<_, Io>(["a", "boom", "c"]) })
                    .load(move |batch: Vec<Key>| {
                        let boom = batch[0].as_str() == Some("boom");
                        if boom {
                            calls.fetch_add(1, Ordering::SeqCst);
                            assert!(inside, "boom (outside)");
                        }
                        async move {
                            assert!(!boom, "boom (inside)");
                            echo(batch).await
                        }
                    }),
            )
            .unwrap();
    }
    let report = warmer.run("all").await.unwrap();
    for name in ["inside", "outside"] {
        let job = report.job(name).unwrap();
        assert_eq!(
            (job.loaded, job.failed, job.error.as_deref()),
            (2, 1, None),
            "{name}"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2, "a panic is not retried");
    let mut failures = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let WarmEvent::BatchFailed { job, error, .. } = event {
            failures.push((job, error));
        }
    }
    assert_eq!(
        failures,
        [
            (
                "inside".to_string(),
                "the loader panicked: boom (inside)".to_string()
            ),
            (
                "outside".to_string(),
                "the loader panicked: boom (outside)".to_string()
            ),
        ]
    );
    assert!(warmer.status().iter().all(|s| s.state == JobState::Idle));
}

fn no_keys() -> Result<Vec<String>, Io> {
    panic!("no keys today")
}

#[tokio::test(start_paused = true)]
async fn a_panicking_key_lister_fails_the_run() {
    let store = Store::new();
    let ns = strings(&store);
    let warmer = Warmer::new();
    warmer
        .add(
            WarmJob::new("lister", ns)
                .keys(|| async { no_keys() })
                .load(echo),
        )
        .unwrap();
    let report = warmer.run("all").await.unwrap();
    let job = report.job("lister").unwrap();
    assert_eq!(
        job.error.as_deref(),
        Some("the key lister panicked: no keys today")
    );
    let status = &warmer.status()[0];
    assert_eq!(status.last_error, job.error);
    assert_eq!(status.state, JobState::Idle);
}

#[tokio::test(start_paused = true)]
async fn stopping_cancels_a_run_in_progress_and_records_it() {
    let store = Store::new();
    let ns = strings(&store);
    let warmer = Warmer::new();
    let mut events = warmer.subscribe();
    warmer
        .add(
            WarmJob::new("endless", ns.clone())
                .on_start()
                .batch_size(1)
                .keys(|| async { Ok::<_, Io>(["a", "b"]) })
                .load(|batch: Vec<Key>| async move {
                    if batch[0].as_str() == Some("b") {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                    echo(batch).await
                }),
        )
        .unwrap();
    let handle = warmer.start().unwrap();
    until_started(&mut events, "endless").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    handle.stop().await;
    let status = &warmer.status()[0];
    assert_eq!(status.state, JobState::Idle);
    assert_eq!(status.last_error.as_deref(), Some("cancelled"));
    assert_eq!((status.last_loaded, status.runs), (1, 1));
    assert!(ns.contains_key("a"));
    assert!(!ns.contains_key("b"));
    // It can run again.
    let report = warmer.run("all").await;
    assert_eq!(report.unwrap().jobs.len(), 1);
}
