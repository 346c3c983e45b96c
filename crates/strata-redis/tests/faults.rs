//! Faults, each with instances that must go on answering: Redis absent at start, killed
//! (SIGKILL) and restarted empty, one instance's link cut (by a TCP proxy) for less and for
//! longer than the log keeps, and the outage queue overflowing.

mod common;

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use common::{eventually, origin, Instance, Proxy, RedisServer, PROPAGATION};
use strata::store::Source;
use strata_redis::LinkHealth;

async fn following(instance: &Instance) {
    assert!(
        eventually(PROPAGATION, || instance.tier.stats().log_following).await,
        "the instance follows the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_starts_without_redis_serves_and_connects_when_redis_comes() {
    let mut redis = RedisServer::not_started();
    let a = Instance::start(&redis.url(), "", "");
    let calls = Arc::new(AtomicUsize::new(0));
    // Served from this instance and the origin, with no error.
    a.users.insert("user::1", "Ada".to_owned()).unwrap();
    assert_eq!(a.users.get("user::1").as_deref(), Some("Ada"));
    let loaded = a
        .users
        .get_or_load("user::2", origin(&calls, "Bob"))
        .await
        .unwrap();
    assert_eq!(loaded.source, Source::Origin);
    assert_eq!(a.tier.health(), LinkHealth::Degraded);
    redis.restart();
    following(&a).await;
    assert!(eventually(PROPAGATION, || a.tier.health() == LinkHealth::Up).await);
    // What waited in the queue reached Redis.
    assert!(eventually(PROPAGATION, || a.tier.stats().invalidations_sent >= 1).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_required_redis_makes_health_down_while_it_is_away() {
    let redis = RedisServer::not_started();
    let a = Instance::start(&redis.url(), "required = true", "");
    let _ = a
        .users
        .get_or_load("user::1", |_| async {
            Ok::<_, std::io::Error>("x".to_owned())
        })
        .await;
    assert_eq!(a.tier.health(), LinkHealth::Down);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_empty_leaves_no_instance_serving_what_it_may_have_missed() {
    let mut redis = RedisServer::start();
    let a = Instance::start(&redis.url(), "", "");
    let b = Instance::start(&redis.url(), "", "");
    following(&a).await;
    following(&b).await;
    let calls = Arc::new(AtomicUsize::new(0));
    a.users
        .get_or_load("user::1", origin(&calls, "v1"))
        .await
        .unwrap();
    assert!(eventually(PROPAGATION, || a.tier.stats().writes_sent == 1).await);
    let loaded = b
        .users
        .get_or_load("user::1", origin(&calls, "origin"))
        .await
        .unwrap();
    assert_eq!(loaded.source, Source::Shared);

    redis.kill();
    // Through the outage: reads answer from the instance, writes and removals queue.
    for _ in 0..50 {
        assert_eq!(b.users.get("user::1").as_deref(), Some("v1"));
        let loaded = b
            .users
            .get_or_load("user::1", origin(&calls, "origin"))
            .await
            .unwrap();
        assert_eq!(loaded.value, "v1");
    }
    a.users.remove("user::1");
    let loaded = b
        .users
        .get_or_load("user::3", origin(&calls, "fresh"))
        .await
        .unwrap();
    assert_eq!(
        loaded.source,
        Source::Origin,
        "a miss during the outage goes to the origin"
    );

    redis.restart();
    // B cannot know what it missed while Redis was away (Redis lost the log): it must stop
    // serving user::1 as fresh.
    assert!(
        eventually(PROPAGATION, || b.users.get("user::1").is_none()).await,
        "B still serves a value it may have missed the deletion of"
    );
    assert!(b.tier.stats().gaps >= 1);
    // The fail-safe keeps it: with the origin failing, B answers with the stale value.
    let failing = b
        .users
        .get_or_load("user::1", |_| async {
            Err::<String, _>(std::io::Error::other("database down"))
        })
        .await
        .unwrap();
    assert_eq!(
        (failing.value.as_str(), failing.source),
        ("v1", Source::Stale)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_cut_off_briefly_replays_what_it_missed() {
    let redis = RedisServer::start();
    let proxy = Proxy::start(redis.port).await;
    let a = Instance::start(&redis.url(), "", "");
    let b = Instance::start(&proxy.url(), "", "");
    following(&a).await;
    following(&b).await;
    let calls = Arc::new(AtomicUsize::new(0));
    for i in 0..10 {
        a.users
            .get_or_load(format!("user::{i}"), origin(&calls, "v1"))
            .await
            .unwrap();
    }
    assert!(eventually(PROPAGATION, || a.tier.stats().writes_sent == 10).await);
    for i in 0..10 {
        let loaded = b
            .users
            .get_or_load(format!("user::{i}"), origin(&calls, "o"))
            .await
            .unwrap();
        assert_eq!(loaded.source, Source::Shared);
    }
    proxy.cut();
    assert!(eventually(PROPAGATION, || !b.tier.stats().log_following).await);
    for i in 0..5 {
        a.users.remove(format!("user::{i}"));
    }
    assert!(eventually(PROPAGATION, || a.tier.stats().invalidations_sent == 5).await);
    // B, cut off, still answers with what it has.
    assert_eq!(b.users.get("user::0").as_deref(), Some("v1"));
    proxy.restore();
    assert!(
        eventually(PROPAGATION, || (0..5)
            .all(|i| b.users.get(format!("user::{i}")).is_none()))
        .await
    );
    let stats = b.tier.stats();
    assert_eq!(
        stats.gaps, 0,
        "the log reached back: nothing to mark unverified"
    );
    assert!(stats.invalidations_replayed >= 5, "{stats:?}");
    for i in 5..10 {
        assert_eq!(
            b.users.get(format!("user::{i}")).as_deref(),
            Some("v1"),
            "untouched keys stay"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_cut_off_for_longer_than_the_log_keeps_marks_what_it_holds_unverified() {
    let redis = RedisServer::start();
    let proxy = Proxy::start(redis.port).await;
    // Few partitions and a short log, so the writes below trim past B's cursor.
    let small = "partitions = 1\nlog_max_len = 10";
    let a = Instance::start(&redis.url(), small, "");
    let b = Instance::start(&proxy.url(), small, "");
    following(&a).await;
    following(&b).await;
    let calls = Arc::new(AtomicUsize::new(0));
    a.users
        .get_or_load("user::kept", origin(&calls, "v1"))
        .await
        .unwrap();
    assert!(eventually(PROPAGATION, || a.tier.stats().writes_sent == 1).await);
    let loaded = b
        .users
        .get_or_load("user::kept", origin(&calls, "o"))
        .await
        .unwrap();
    assert_eq!(loaded.source, Source::Shared);
    proxy.cut();
    assert!(eventually(PROPAGATION, || !b.tier.stats().log_following).await);
    // Enough entries that trimming (whole stream nodes of 100) removes the ones B missed.
    for i in 0..500 {
        a.users
            .insert(format!("user::{i}"), "x".to_owned())
            .unwrap();
        if i % 50 == 0 {
            // Let the writer keep up, so these are 500 entries, not fewer conflated ones.
            assert!(eventually(PROPAGATION, || a.tier.stats().queue_depth == 0).await);
        }
    }
    a.users.insert("user::kept", "v2".to_owned()).unwrap();
    assert!(eventually(PROPAGATION, || a.tier.stats().queue_depth == 0).await);
    let mut conn = redis.conn();
    let length: u64 = redis::cmd("XLEN")
        .arg("strata:{0}:log")
        .query(&mut conn)
        .unwrap();
    assert!(length < 500, "the log was trimmed ({length} entries)");
    proxy.restore();
    assert!(
        eventually(PROPAGATION, || b.tier.stats().gaps >= 1).await,
        "B saw the gap"
    );
    assert_eq!(
        b.users.get("user::kept"),
        None,
        "not served as fresh any more"
    );
    // A's insert left no value in Redis: B reads the database.
    let loaded = b
        .users
        .get_or_load("user::kept", origin(&calls, "v2"))
        .await
        .unwrap();
    assert_eq!(
        (loaded.value.as_str(), loaded.source),
        ("v2", Source::Origin)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_that_overflows_during_an_outage_tells_every_instance() {
    let redis = RedisServer::start();
    let proxy = Proxy::start(redis.port).await;
    let a = Instance::start(&proxy.url(), "queue_max = 3", "");
    let b = Instance::start(&redis.url(), "", "");
    following(&a).await;
    following(&b).await;
    let calls = Arc::new(AtomicUsize::new(0));
    b.users.insert("user::b", "held".to_owned()).unwrap();
    proxy.cut();
    for i in 0..10 {
        a.users
            .insert(format!("user::{i}"), "lost".to_owned())
            .unwrap();
    }
    assert_eq!(a.tier.stats().queue_depth, 3);
    proxy.restore();
    assert!(eventually(PROPAGATION, || a.tier.stats().queue_overflows == 1).await);
    assert!(
        eventually(PROPAGATION, || b.users.get("user::b").is_none()).await,
        "B was told that writes were lost, and stopped trusting what it holds"
    );
    assert!(b.tier.stats().gaps >= 1);
    let _ = calls;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_password_is_reported_naming_the_setting_and_the_instance_serves() {
    let redis = RedisServer::with_password("right");
    let a = Instance::start(&redis.url(), "password = \"wrong\"", "");
    a.users.insert("user::1", "Ada".to_owned()).unwrap();
    assert_eq!(a.users.get("user::1").as_deref(), Some("Ada"));
    assert!(
        eventually(PROPAGATION, || a
            .tier
            .link_error()
            .is_some_and(|e| e.contains("redis.password")))
        .await,
        "{:?}",
        a.tier.link_error()
    );
    assert_eq!(a.tier.health(), LinkHealth::Degraded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_answering_oom_costs_callers_nothing_and_the_fleet_is_told_once_it_has_room() {
    let redis = RedisServer::start();
    let a = Instance::start(&redis.url(), "", "");
    let b = Instance::start(&redis.url(), "", "");
    following(&a).await;
    following(&b).await;
    b.users.insert("user::b", "held".to_owned()).unwrap();
    let mut conn = redis.conn();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("noeviction")
        .query(&mut conn)
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(1)
        .query(&mut conn)
        .unwrap();

    // Reads, loads and inserts answer as usual; Redis refuses every write.
    let calls = Arc::new(AtomicUsize::new(0));
    let loaded = a
        .users
        .get_or_load("user::1", origin(&calls, "Ada"))
        .await
        .unwrap();
    assert_eq!(
        (loaded.value.as_str(), loaded.source),
        ("Ada", Source::Origin)
    );
    a.users.insert("user::2", "Bob".to_owned()).unwrap();
    assert_eq!(a.users.get("user::2").as_deref(), Some("Bob"));
    assert!(
        eventually(PROPAGATION, || a.tier.stats().jobs_dropped >= 1).await,
        "the refused writes are given up on and counted: {:?}",
        a.tier.stats()
    );
    let dropped = a.tier.stats().jobs_dropped;

    // Room again: the `unverified` entry waiting to be sent reaches B, which stops trusting
    // what it holds (it may have missed the insert of user::2), and the queue drains.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(0)
        .query(&mut conn)
        .unwrap();
    assert!(
        eventually(PROPAGATION, || b.users.get("user::b").is_none()).await,
        "B was told"
    );
    assert!(eventually(PROPAGATION, || a.tier.stats().queue_depth == 0).await);
    assert_eq!(
        a.tier.stats().jobs_dropped,
        dropped,
        "the message that writes were lost is kept until sent, not dropped in turn"
    );
}
