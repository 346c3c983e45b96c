//! A fleet of instances (stores with the Redis tier, in this process) over a real
//! `redis-server` of the test's own: what one does, the others see.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{eventually, origin, Instance, RedisServer, PROPAGATION};
use strata::store::{ClaimError, Invalidation, Put, Source};
use strata::Inserted;

/// Instances on `redis`, each following the log before the test goes on.
async fn fleet(redis: &RedisServer, n: usize) -> Vec<Instance> {
    let instances: Vec<Instance> = (0..n)
        .map(|_| Instance::start(&redis.url(), "", ""))
        .collect();
    for instance in &instances {
        assert!(
            eventually(PROPAGATION, || instance.tier.stats().log_following).await,
            "an instance did not start following the log"
        );
    }
    instances
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_loaded_by_one_instance_is_read_from_redis_by_another() {
    let redis = RedisServer::start();
    let fleet = fleet(&redis, 2).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let first = fleet[0]
        .users
        .get_or_load("user::1", origin(&calls, "Ada"))
        .await
        .unwrap();
    assert_eq!(first.source, Source::Origin);
    // The fill is written to Redis by the writer task: wait for it.
    assert!(eventually(PROPAGATION, || fleet[0].tier.stats().writes_sent == 1).await);
    let second = fleet[1]
        .users
        .get_or_load("user::1", origin(&calls, "wrong"))
        .await
        .unwrap();
    assert_eq!(
        (second.value.as_str(), second.source),
        ("Ada", Source::Shared)
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "one origin call for the fleet"
    );
    // Kept here with the TTL it had left in Redis.
    let left = fleet[1].users.ttl("user::1").unwrap().unwrap();
    assert!(
        left > Duration::from_secs(9 * 60) && left <= Duration::from_secs(600),
        "{left:?}"
    );
    let third = fleet[1]
        .users
        .get_or_load("user::1", origin(&calls, "wrong"))
        .await
        .unwrap();
    assert_eq!(third.source, Source::Cache);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insert_on_one_instance_drops_the_key_on_every_other_and_in_redis() {
    let redis = RedisServer::start();
    let fleet = fleet(&redis, 3).await;
    let calls = Arc::new(AtomicUsize::new(0));
    fleet[0]
        .users
        .get_or_load("user::2", origin(&calls, "v1"))
        .await
        .unwrap();
    assert!(eventually(PROPAGATION, || fleet[0].tier.stats().writes_sent == 1).await);
    for instance in &fleet[1..] {
        let loaded = instance
            .users
            .get_or_load("user::2", origin(&calls, "wrong"))
            .await
            .unwrap();
        assert_eq!(
            (loaded.value.as_str(), loaded.source),
            ("v1", Source::Shared)
        );
    }
    // The database changed; the instance that changed it stores the new value.
    fleet[0].users.insert("user::2", "v2".to_owned()).unwrap();
    assert_eq!(fleet[0].users.get("user::2").as_deref(), Some("v2"));
    for instance in &fleet[1..] {
        assert!(
            eventually(PROPAGATION, || instance.users.get("user::2").is_none()).await,
            "the old value was dropped"
        );
        let loaded = instance
            .users
            .get_or_load("user::2", origin(&calls, "v2"))
            .await
            .unwrap();
        assert_eq!(loaded.value, "v2", "never v1 again");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_invalidation_travels_and_empties_redis_too() {
    let redis = RedisServer::start();
    let fleet = fleet(&redis, 2).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let (a, b) = (&fleet[0], &fleet[1]);
    let kinds: Vec<(&str, Put, Invalidation)> = vec![
        (
            "user::k::1",
            Put::new(),
            Invalidation::Key {
                namespace: Some("user".into()),
                key: "user::k::1".into(),
            },
        ),
        (
            "user::p::1",
            Put::new(),
            Invalidation::Prefix {
                namespace: Some("user".into()),
                prefix: "user::p::".into(),
            },
        ),
        (
            "user::g::1",
            Put::new(),
            Invalidation::Pattern {
                namespace: None,
                pattern: "user::g::*".into(),
            },
        ),
        (
            "user::t::1",
            Put::new().tag("team:7"),
            Invalidation::Tag {
                tag: "team:7".into(),
            },
        ),
        (
            "user::c::1",
            Put::new(),
            Invalidation::Clear {
                namespace: Some("user".into()),
            },
        ),
    ];
    let mut filled = 0;
    for (key, put, invalidation) in kinds {
        if matches!(invalidation, Invalidation::Tag { .. }) {
            // Tagged where it was inserted (loads' fills carry no tags).
            b.users.insert_with(key, "old".to_owned(), put).unwrap();
            assert!(eventually(PROPAGATION, || b.tier.stats().queue_depth == 0).await);
        } else {
            // In Redis (A's load filled it) and on B (read from there).
            a.users
                .get_or_load(key, origin(&calls, "old"))
                .await
                .unwrap();
            filled += 1;
            assert!(eventually(PROPAGATION, || a.tier.stats().writes_sent == filled).await);
            let loaded = b
                .users
                .get_or_load(key, origin(&calls, "new"))
                .await
                .unwrap();
            assert_eq!(
                (loaded.value.as_str(), loaded.source),
                ("old", Source::Shared),
                "{key}"
            );
        }
        a.store.invalidate(&invalidation).unwrap();
        assert_eq!(a.users.get(key), None, "{key}: applied here at once");
        assert!(
            eventually(PROPAGATION, || b.users.get(key).is_none()).await,
            "{key}: {invalidation:?} reached the other instance"
        );
        // And Redis holds nothing for it: the next load goes to the origin.
        let reloaded = b
            .users
            .get_or_load(key, origin(&calls, "new"))
            .await
            .unwrap();
        assert_eq!(
            (reloaded.value.as_str(), reloaded.source),
            ("new", Source::Origin),
            "{key}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_is_expanded_by_each_instance_and_applied_to_redis() {
    let redis = RedisServer::start();
    let rules = "[events.\"user.changed\"]\nparams = [\"id\"]\nkeys = [\"user::{id}\"]\ntags = [\"feed:{id}\"]\n";
    let a = Instance::start(&redis.url(), "", rules);
    let b = Instance::start(&redis.url(), "", rules);
    for i in [&a, &b] {
        assert!(eventually(PROPAGATION, || i.tier.stats().log_following).await);
    }
    let calls = Arc::new(AtomicUsize::new(0));
    a.users
        .get_or_load("user::9", origin(&calls, "old"))
        .await
        .unwrap();
    assert!(eventually(PROPAGATION, || a.tier.stats().writes_sent == 1).await);
    let loaded = b
        .users
        .get_or_load("user::9", origin(&calls, "new"))
        .await
        .unwrap();
    assert_eq!(loaded.source, Source::Shared);
    b.users
        .insert_with("feed::9", "old feed".to_owned(), Put::new().tag("feed:9"))
        .unwrap();
    assert!(eventually(PROPAGATION, || b.tier.stats().queue_depth == 0).await);
    a.store.emit("user.changed", [("id", "9")]).unwrap();
    for key in ["user::9", "feed::9"] {
        assert!(
            eventually(PROPAGATION, || b.users.get(key).is_none()).await,
            "{key}"
        );
        let loaded = b
            .users
            .get_or_load(key, origin(&calls, "new"))
            .await
            .unwrap();
        assert_eq!(loaded.source, Source::Origin, "{key}: gone from Redis too");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_racing_a_delete_does_not_write_the_old_value_back() {
    let redis = RedisServer::start();
    let fleet = fleet(&redis, 3).await;
    let (a, b, c) = (&fleet[0], &fleet[1], &fleet[2]);
    // B misses and reads the origin, which answers slowly with what it had before A's
    // change.
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let slow = b.users.get_or_load("user::race", move |_| async move {
        let _ = released.await;
        Ok::<_, std::io::Error>("old".to_owned())
    });
    let slow = tokio::spawn(slow);
    assert!(eventually(PROPAGATION, || b.tier.stats().l2_misses == 1).await);
    // Meanwhile A changes the origin and deletes the key.
    a.users.remove("user::race");
    assert!(eventually(PROPAGATION, || a.tier.stats().invalidations_sent == 1).await);
    release.send(()).unwrap();
    assert_eq!(
        slow.await.unwrap().unwrap().value,
        "old",
        "B's caller gets what B read"
    );
    // B's write-back is refused by Redis (or skipped, if B heard of the deletion first):
    // either way, C must not find the old value in Redis, and B must not keep it.
    assert!(eventually(PROPAGATION, || b.tier.stats().queue_depth == 0).await);
    let calls = Arc::new(AtomicUsize::new(0));
    let loaded = c
        .users
        .get_or_load("user::race", origin(&calls, "new"))
        .await
        .unwrap();
    assert_eq!(
        (loaded.value.as_str(), loaded.source),
        ("new", Source::Origin)
    );
    assert!(
        eventually(PROPAGATION, || b.users.get("user::race").as_deref()
            != Some("old"))
        .await,
        "B dropped the value its load read before the deletion"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_value_in_redis_is_a_miss_not_a_failure() {
    let redis = RedisServer::start();
    let fleet = fleet(&redis, 1).await;
    let calls = Arc::new(AtomicUsize::new(0));
    fleet[0]
        .users
        .get_or_load("user::bad", origin(&calls, "good"))
        .await
        .unwrap();
    assert!(eventually(PROPAGATION, || fleet[0].tier.stats().writes_sent == 1).await);
    let mut conn = redis.conn();
    let names: Vec<String> = redis::cmd("KEYS")
        .arg("strata:{*}:d:user:user::bad")
        .query(&mut conn)
        .unwrap();
    assert_eq!(names.len(), 1);
    for garbage in [&b"not an envelope"[..], b"S1 5 v 0\n{not json"] {
        let _: () = redis::cmd("SET")
            .arg(&names[0])
            .arg(garbage)
            .query(&mut conn)
            .unwrap();
        // Dropped here only (a removal would delete it from Redis too).
        let here = Invalidation::Key {
            namespace: Some("user".into()),
            key: "user::bad".into(),
        };
        fleet[0].store.apply_remote(&here).unwrap();
        let loaded = fleet[0]
            .users
            .get_or_load("user::bad", origin(&calls, "from origin"))
            .await
            .unwrap();
        assert_eq!(
            (loaded.value.as_str(), loaded.source),
            ("from origin", Source::Origin)
        );
    }
    assert_eq!(fleet[0].tier.stats().l2_corrupt, 2);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_is_won_by_exactly_one_instance_of_the_fleet() {
    let redis = RedisServer::start();
    let instances = fleet(&redis, 3).await;
    // Many keys, each claimed by all three at once: one winner per key, and the losers get
    // the winner's value.
    for round in 0..50 {
        let key = format!("webhook::{round}");
        let claims = instances.iter().enumerate().map(|(i, instance)| {
            let users = instance.users.clone();
            let key = key.clone();
            tokio::spawn(async move { users.claim(key, format!("instance {i}"), Put::new()).await })
        });
        let mut won = Vec::new();
        let mut seen = Vec::new();
        for (i, claim) in claims.collect::<Vec<_>>().into_iter().enumerate() {
            match claim.await.unwrap().expect("Redis decides") {
                Inserted::Inserted => won.push(format!("instance {i}")),
                Inserted::Existing(value) => seen.push(value),
            }
        }
        assert_eq!(won.len(), 1, "{key}: {won:?} {seen:?}");
        assert!(seen.iter().all(|v| *v == won[0]), "{key}: {won:?} {seen:?}");
    }
    // Deleted (here, then in Redis), the key can be claimed again.
    instances[0].users.remove("webhook::0");
    let again = instances[1]
        .users
        .claim("webhook::0", "again".to_owned(), Put::new())
        .await;
    // Instance 1 may still hold the key until the deletion reaches it; once it has, the
    // claim is won.
    if matches!(again, Ok(Inserted::Existing(_))) {
        assert!(
            eventually(PROPAGATION, || instances[1]
                .users
                .get("webhook::0")
                .is_none())
            .await
        );
        let again = instances[1]
            .users
            .claim("webhook::0", "again".to_owned(), Put::new())
            .await;
        assert!(matches!(again, Ok(Inserted::Inserted)), "{again:?}");
    } else {
        assert!(matches!(again, Ok(Inserted::Inserted)), "{again:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_redis_cannot_decide_is_an_error_not_a_guess() {
    let mut redis = RedisServer::start();
    let a = Instance::start(&redis.url(), "", "");
    redis.kill();
    let claimed = a
        .users
        .claim("webhook::1", "x".to_owned(), Put::new())
        .await;
    assert_eq!(claimed, Err(ClaimError::Undecided));
    assert!(a.users.get("webhook::1").is_none(), "nothing was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_load_reads_what_another_instance_loaded_from_redis() {
    let redis = RedisServer::start();
    let fleet = fleet(&redis, 2).await;
    let calls = Arc::new(AtomicUsize::new(0));
    for key in ["user::1", "user::2"] {
        fleet[0]
            .users
            .get_or_load(key, origin(&calls, "from A's origin"))
            .await
            .unwrap();
    }
    assert!(eventually(PROPAGATION, || fleet[0].tier.stats().writes_sent >= 2).await);
    let found = fleet[1]
        .users
        .get_many_or_load(
            ["user::1", "user::2", "user::3"],
            |missing: Vec<strata::Key>| async move {
                assert_eq!(
                    missing,
                    [strata::Key::from("user::3")],
                    "only the key Redis lacks"
                );
                Ok::<_, std::io::Error>(vec![(missing[0].clone(), "from B's origin".to_owned())])
            },
        )
        .await
        .unwrap();
    assert_eq!(found[&strata::Key::from("user::1")].source, Source::Shared);
    assert_eq!(
        found[&strata::Key::from("user::2")].value,
        "from A's origin"
    );
    assert_eq!(found[&strata::Key::from("user::3")].source, Source::Origin);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_past_compress_above_are_compressed_in_redis_and_read_back_whole() {
    let redis = RedisServer::start();
    let a = Instance::start(&redis.url(), "", "compress_above = 100");
    let b = Instance::start(&redis.url(), "", "compress_above = 100");
    for i in [&a, &b] {
        assert!(eventually(PROPAGATION, || i.tier.stats().log_following).await);
    }
    let history = r#"{"id":"pay_1","status":"succeeded","currency":"EUR"},"#.repeat(100);
    let calls = Arc::new(AtomicUsize::new(0));
    a.users
        .get_or_load("user::history", origin(&calls, &history))
        .await
        .unwrap();
    assert!(eventually(PROPAGATION, || a.tier.stats().writes_sent >= 1).await);
    let mut conn = redis.conn();
    let names: Vec<Vec<u8>> = redis::cmd("KEYS")
        .arg("strata:{*}:d:user:user::history")
        .query(&mut conn)
        .unwrap();
    let stored: Vec<u8> = redis::cmd("GET").arg(&names[0]).query(&mut conn).unwrap();
    assert!(stored.windows(3).any(|w| w == b" z "), "marked compressed");
    assert!(stored.len() < history.len() / 4, "{} bytes", stored.len());
    let loaded = b
        .users
        .get_or_load("user::history", origin(&calls, "not this"))
        .await
        .unwrap();
    assert_eq!(loaded.source, Source::Shared);
    assert_eq!(loaded.value, history);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
