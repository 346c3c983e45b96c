//! strata on its embedded in-memory default: a read-through cache in front of a slow "database",
//! with a TTL, a byte bound, a removal listener and the statistics at the end.
//!
//! Run it with `cargo run --release --example quickstart`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata::{Cache, RemovalCause};

/// Stands in for a database query that takes a fifth of a millisecond.
fn load_profile(user: u64) -> String {
    std::thread::sleep(Duration::from_micros(200));
    format!("{{\"id\":{user},\"name\":\"user-{user}\"}}")
}

fn main() {
    let evicted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&evicted);
    let profiles: Cache<String, String> = Cache::builder()
        .max_entries(500)
        .max_bytes(256 << 10)
        .default_ttl(Duration::from_secs(600))
        .removal_listener(move |_key, _value, cause| {
            if cause == RemovalCause::Evicted {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        })
        .build()
        .expect("a valid configuration");

    // A skewed stream of 20,000 requests over 2,000 users: a few users are asked for often.
    let started = Instant::now();
    let mut origin_calls = 0;
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..20_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let user = (state % 2_000) * (state % 2_000) / 2_000; // squares bias towards low ids
        let key = format!("user::{user}::profile");
        if profiles.get(&key).is_none() {
            origin_calls += 1;
            if let Err(e) = profiles.insert(key, load_profile(user)) {
                eprintln!("not cached: {e}");
            }
        }
    }

    let stats = profiles.stats();
    println!("requests      20000 in {:.2?}", started.elapsed());
    println!("origin calls  {origin_calls}");
    println!("hit ratio     {:.3}", stats.hit_ratio());
    println!("entries       {} (bound 500)", stats.entries);
    println!(
        "bytes         {} (bound {})",
        stats.weighted_size,
        256 << 10
    );
    println!(
        "evictions     {} (listener saw {})",
        stats.evictions,
        evicted.load(Ordering::Relaxed)
    );
}
