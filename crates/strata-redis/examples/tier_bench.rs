//! The shared tier's figures, on a `redis-server` of its own on a free port (loopback):
//!
//! - how long an invalidation takes to reach another instance (p50, p99, max);
//! - an L2 hit (a `get_or_load` that misses here and finds the value in Redis) against a
//!   plain `GET` of the same key through the same client library, one at a time;
//! - an L1 hit (`get`) in a shared namespace against one in a namespace of its own;
//! - replaying 100,000 log entries missed while cut off (by a TCP proxy), from reconnect to
//!   applied.
//!
//! `cargo run --release -p strata-redis --example tier_bench [SAMPLES]`

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{eventually, Instance, Proxy, RedisServer};
use strata::store::{Invalidation, Source};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let samples: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000);
    let redis = RedisServer::start();
    let a = Instance::start(&redis.url(), "", "");
    let b = Instance::start(&redis.url(), "", "");
    for i in [&a, &b] {
        assert!(eventually(Duration::from_secs(10), || i.tier.stats().log_following).await);
    }

    // Propagation: B holds the key; A removes it; B polls until it is gone.
    let mut took = Vec::with_capacity(samples);
    for i in 0..samples {
        let key = format!("user::p{i}");
        b.users.insert(&*key, "v".to_owned()).unwrap();
        // B's insert sends a deletion of its own first: let it reach Redis, so its log entry
        // is not mistaken for A's.
        while b.tier.stats().invalidations_sent < i as u64 + 1 {
            tokio::task::yield_now().await;
        }
        let start = Instant::now();
        a.users.remove(&key);
        while b.users.get(&key).is_some() {
            tokio::task::yield_now().await;
        }
        took.push(start.elapsed());
    }
    took.sort();
    println!(
        "invalidation reaches another instance ({samples} samples): p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
        micros(percentile(&took, 0.5)),
        micros(percentile(&took, 0.99)),
        micros(*took.last().unwrap())
    );

    // L2 hit against a plain GET of the same key with the same client library. A's load
    // fills Redis.
    a.users
        .get_or_load("user::l2", |_| async {
            Ok::<_, std::io::Error>("x".repeat(100))
        })
        .await
        .unwrap();
    while a.tier.stats().writes_sent < 1 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let here_only = Invalidation::Key {
        namespace: Some("user".into()),
        key: "user::l2".into(),
    };
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_connection_manager().await.unwrap();
    let name: Vec<String> = redis::cmd("KEYS")
        .arg("strata:{*}:d:user:user::l2")
        .query_async(&mut conn)
        .await
        .unwrap();
    // One of each in turn, so that the machine's noise falls on both alike.
    let (mut l2, mut get) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..samples {
        b.store.apply_remote(&here_only).unwrap();
        let start = Instant::now();
        let loaded = b
            .users
            .get_or_load("user::l2", |_| async {
                Ok::<_, std::io::Error>(String::new())
            })
            .await
            .unwrap();
        l2 += start.elapsed();
        assert_eq!(loaded.source, Source::Shared);
        let start = Instant::now();
        let _: Vec<u8> = redis::cmd("GET")
            .arg(&name[0])
            .query_async(&mut conn)
            .await
            .unwrap();
        get += start.elapsed();
    }
    let (l2, get) = (l2 / samples as u32, get / samples as u32);
    println!(
        "L2 hit {:.1} µs, plain GET {:.1} µs: {:.2}x",
        micros(l2),
        micros(get),
        l2.as_secs_f64() / get.as_secs_f64()
    );

    // L1 hits: the shared namespace against the same namespace in a store without [redis].
    let alone = strata::config::Config::from_sources(
        Some("[namespaces.user]\nttl = \"10m\"\nmax_stale = \"1h\"\n"),
        [],
    )
    .unwrap();
    let plain = strata::store::Store::from_config(&alone).unwrap();
    let own = plain.namespace::<String>("user").unwrap();
    own.insert("k", "x".repeat(100)).unwrap();
    b.users.insert("k", "x".repeat(100)).unwrap();
    let reads = 2_000_000;
    let time = |f: &dyn Fn() -> bool| {
        let start = Instant::now();
        let mut hits = 0;
        for _ in 0..reads {
            hits += usize::from(f());
        }
        assert_eq!(hits, reads);
        start.elapsed() / reads as u32
    };
    let mut shared_hit = Duration::MAX;
    let mut own_hit = Duration::MAX;
    for _ in 0..5 {
        shared_hit = shared_hit.min(time(&|| b.users.get_with("k", |v| v.len()).is_some()));
        own_hit = own_hit.min(time(&|| own.get_with("k", |v| v.len()).is_some()));
    }
    println!(
        "L1 hit: shared {:.1} ns, not shared {:.1} ns: {:.3}x (best of 5 runs of {reads})",
        shared_hit.as_secs_f64() * 1e9,
        own_hit.as_secs_f64() * 1e9,
        shared_hit.as_secs_f64() / own_hit.as_secs_f64()
    );

    // Replay: C is cut off while 100,000 entries are logged, then reconnects.
    let proxy = Proxy::start(redis.port).await;
    let c = Instance::start(&proxy.url(), "", "");
    assert!(eventually(Duration::from_secs(10), || c.tier.stats().log_following).await);
    proxy.cut();
    assert!(eventually(Duration::from_secs(10), || !c.tier.stats().log_following).await);
    let missed = 100_000u64;
    for chunk in 0..missed / 5_000 {
        let mut pipe = redis::pipe();
        for i in chunk * 5_000..(chunk + 1) * 5_000 {
            let entry =
                format!(r#"{{"invalidate":{{"key":{{"namespace":"user","key":"user::r{i}"}}}}}}"#);
            pipe.cmd("XADD")
                .arg(format!("strata:{{{}}}:log", i % 16))
                .arg("*")
                .arg("o")
                .arg("elsewhere")
                .arg("e")
                .arg(entry)
                .ignore();
        }
        let _: () = pipe.query_async(&mut conn).await.unwrap();
    }
    let start = Instant::now();
    proxy.restore();
    while c.tier.stats().invalidations_replayed < missed {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    println!(
        "replayed {missed} missed entries in {:.0} ms (from reconnect to applied; gaps: {})",
        start.elapsed().as_secs_f64() * 1e3,
        c.tier.stats().gaps
    );
}
