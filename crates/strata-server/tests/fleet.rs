//! Several `strata serve` processes over one Redis (each a real process with nothing but
//! `[redis] url` in its configuration, the Redis a `redis-server` of the test's own) are one
//! cache for their clients: what is written through one is read through the others, and a
//! deletion, an expiry, a flush or an invalidation through one is seen by all within the
//! propagation bound. A version oracle checks the same under a random workload.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{eventually, skip_unless_strata, Server};

/// How long a change through one server may take to reach the others (generous: the
/// machine is shared; the measured figure is in docs/benchmarks.md).
const PROPAGATION: Duration = Duration::from_secs(5);

/// A Redis and `n` servers over it.
struct Fleet {
    servers: Vec<Server>,
    redis: Server,
}

impl Fleet {
    fn start(n: usize) -> Fleet {
        let redis = Server::redis(&[]);
        let config = format!("[redis]\nurl = \"redis://{}\"\n", redis.addr());
        let servers = (0..n)
            .map(|_| Server::start_with_config(&config).expect("strata mode"))
            .collect();
        Fleet { servers, redis }
    }

    fn con(&self, server: usize) -> redis::Connection {
        self.servers[server].con(false)
    }
}

fn get(con: &mut redis::Connection, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query(con).expect("GET")
}

fn run<T: redis::FromRedisValue>(con: &mut redis::Connection, args: &[&str]) -> T {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query(con)
        .unwrap_or_else(|e| panic!("{}: {e}", args.join(" ")))
}

/// What Redis holds for `key` of the default namespace, read there directly (the value's
/// envelope is `S1 <version> v 0`, a newline, then the bytes; a tombstone is a miss).
fn in_redis(redis: &mut redis::Connection, key: &str) -> Option<String> {
    let names: Vec<String> = run(redis, &["KEYS", &format!("strata:{{*}}:d:default:{key}")]);
    let envelope: Vec<u8> = redis::cmd("GET")
        .arg(names.first()?)
        .query::<Option<Vec<u8>>>(redis)
        .ok()??;
    let end = envelope.iter().position(|&b| b == b'\n')?;
    let (header, payload) = (&envelope[..end], &envelope[end + 1..]);
    let live = header.starts_with(b"S1 ") && header.windows(3).any(|w| w == b" v ");
    live.then(|| String::from_utf8_lossy(payload).into_owned())
}

/// Whether every connection in `cons` reads `want` for `key` within the propagation bound.
fn all_read(cons: &mut [redis::Connection], key: &str, want: Option<&str>) -> bool {
    cons.iter_mut().all(|con| {
        eventually(PROPAGATION, || get(con, key).as_deref() == want)
            || panic!("{key}: {:?}, expected {want:?}", get(con, key))
    })
}

#[test]
fn servers_over_one_redis_serve_one_keyspace() {
    if skip_unless_strata("servers_over_one_redis_serve_one_keyspace") {
        return;
    }
    let fleet = Fleet::start(3);
    let mut cons: Vec<_> = (0..3).map(|i| fleet.con(i)).collect();

    // A write is in Redis before its reply: a server that never held the key reads it at once.
    run::<()>(&mut cons[0], &["SET", "greeting", "hello"]);
    assert_eq!(get(&mut cons[1], "greeting").as_deref(), Some("hello"));
    assert_eq!(get(&mut cons[2], "greeting").as_deref(), Some("hello"));
    // A server holding the old value drops it when the log tells it.
    run::<()>(&mut cons[1], &["SET", "greeting", "bonjour"]);
    assert!(all_read(&mut cons, "greeting", Some("bonjour")));

    // Counters, appends and multi-key writes travel the same way.
    for _ in 0..5 {
        run::<i64>(&mut cons[2], &["INCR", "visits"]);
    }
    assert!(all_read(&mut cons, "visits", Some("5")));
    run::<i64>(&mut cons[0], &["APPEND", "visits", "0"]);
    assert!(all_read(&mut cons, "visits", Some("50")));
    run::<()>(&mut cons[1], &["MSET", "a", "1", "b", "2"]);
    assert!(all_read(&mut cons, "a", Some("1")) && all_read(&mut cons, "b", Some("2")));

    // DEL through one: gone everywhere, and counted as Redis counts it, though the deleting
    // server never held the key.
    run::<()>(&mut cons[0], &["SET", "doomed", "x"]);
    assert_eq!(run::<i64>(&mut cons[2], &["DEL", "doomed", "never-set"]), 1);
    assert!(all_read(&mut cons, "doomed", None));

    // A TTL set through one server is the key's TTL on all.
    run::<()>(&mut cons[0], &["SET", "session", "s"]);
    assert_eq!(run::<i64>(&mut cons[1], &["EXPIRE", "session", "100"]), 1);
    for con in &mut cons {
        assert!(eventually(PROPAGATION, || {
            let ttl: i64 = run(con, &["TTL", "session"]);
            (1..=100).contains(&ttl)
        }));
    }
    assert_eq!(run::<i64>(&mut cons[2], &["PEXPIRE", "session", "1"]), 1);
    assert!(all_read(&mut cons, "session", None));

    // Invalidation by prefix through one server.
    for key in ["user:1", "user:2", "order:1"] {
        run::<()>(&mut cons[0], &["SET", key, "v"]);
        assert_eq!(get(&mut cons[1], key).as_deref(), Some("v"));
    }
    run::<i64>(&mut cons[1], &["STRATA.INVALIDATE", "PREFIX", "user:"]);
    assert!(all_read(&mut cons, "user:1", None) && all_read(&mut cons, "user:2", None));
    assert!(all_read(&mut cons, "order:1", Some("v")));

    // FLUSHDB through one empties the keyspace for all.
    run::<()>(&mut cons[2], &["FLUSHDB"]);
    for key in ["greeting", "visits", "a", "b", "order:1"] {
        assert!(all_read(&mut cons, key, None));
    }

    // A server started now reads what the fleet holds.
    run::<()>(&mut cons[0], &["SET", "late", "still here"]);
    let config = format!("[redis]\nurl = \"redis://{}\"\n", fleet.redis.addr());
    let newcomer = Server::start_with_config(&config).expect("strata mode");
    let mut newcomer = newcomer.con(false);
    assert_eq!(get(&mut newcomer, "late").as_deref(), Some("still here"));
    // Several keys it does not hold, in one command.
    run::<()>(&mut cons[0], &["MSET", "m1", "x", "m2", "y"]);
    let got: Vec<Option<String>> = run(&mut newcomer, &["MGET", "m1", "nothing", "m2"]);
    assert_eq!(got, [Some("x".into()), None, Some("y".into())]);
}

#[test]
fn reads_go_on_through_a_redis_that_stops_answering_and_writes_made_meanwhile_arrive_after() {
    if skip_unless_strata("reads_go_on_through_a_redis_outage") {
        return;
    }
    let fleet = Fleet::start(2);
    let (mut a, mut b) = (fleet.con(0), fleet.con(1));
    run::<()>(&mut a, &["SET", "held", "v1"]);
    assert_eq!(get(&mut b, "held").as_deref(), Some("v1"));

    fleet.redis.pause();
    // What a server holds is served at once; a write is kept and acknowledged within the
    // time a reply waits for Redis (a second), not refused.
    let started = Instant::now();
    assert_eq!(get(&mut b, "held").as_deref(), Some("v1"));
    run::<()>(&mut a, &["SET", "during", "v2"]);
    assert_eq!(get(&mut a, "during").as_deref(), Some("v2"));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    fleet.redis.resume();

    assert!(eventually(PROPAGATION, || get(&mut b, "during").as_deref()
        == Some("v2")));
    assert_eq!(get(&mut b, "held").as_deref(), Some("v1"));
}

/// One change of a key as the oracle saw it: the value it left (`None`: none), and when
/// its reply came.
struct Change {
    value: Option<String>,
    done: Instant,
}

/// Three servers, writers that change each key one at a time (so the order of a key's
/// changes is the order their replies came in: SET, DEL, PEXPIRE, and now and then a
/// FLUSHDB or an invalidation by prefix or pattern, which hold every key), and readers on
/// every server. No read may
/// return a value older than one whose replacement was acknowledged before the read began,
/// by more than the propagation bound; once quiet, every server agrees on every key.
#[test]
fn a_version_oracle_finds_no_stale_read_beyond_the_bound_across_three_servers() {
    if skip_unless_strata("a_version_oracle_across_three_servers") {
        return;
    }
    const KEYS: usize = 12;
    const RUN: Duration = Duration::from_secs(3);
    /// Tighter than PROPAGATION: the bound the oracle holds reads to.
    const BOUND: Duration = Duration::from_millis(500);
    let fleet = Fleet::start(3);
    let history: Arc<Vec<Mutex<Vec<Change>>>> =
        Arc::new((0..KEYS).map(|_| Mutex::new(Vec::new())).collect());
    let version = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(Mutex::new(Vec::new()));

    let mut threads = Vec::new();
    for writer in 0..3 {
        let mut con = fleet.con(writer);
        let (history, version, stop) = (
            Arc::clone(&history),
            Arc::clone(&version),
            Arc::clone(&stop),
        );
        threads.push(thread::spawn(move || {
            let mut n = writer as u64;
            while !stop.load(Ordering::Relaxed) {
                n = n
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let key = (n >> 33) as usize % KEYS;
                let roll = (n >> 20) % 100;
                if roll < 3 {
                    // A change of many keys: every key's lock, in order, so none changes
                    // in between.
                    let mut all: Vec<_> = history.iter().map(|h| h.lock().unwrap()).collect();
                    let (command, covers): (&[&str], fn(&str) -> bool) = match roll {
                        0 => (&["FLUSHDB"], |_| true),
                        1 => (&["STRATA.INVALIDATE", "PREFIX", "k1"], |k| {
                            k.starts_with("k1")
                        }),
                        _ => (&["STRATA.INVALIDATE", "PATTERN", "k*2"], |k| {
                            k.ends_with('2')
                        }),
                    };
                    run::<redis::Value>(&mut con, command);
                    let done = Instant::now();
                    for (k, changes) in all.iter_mut().enumerate() {
                        if covers(&format!("k{k}")) {
                            changes.push(Change { value: None, done });
                        }
                    }
                    continue;
                }
                let name = format!("k{key}");
                let mut changes = history[key].lock().unwrap();
                let (value, done) = match roll {
                    3..=17 => {
                        run::<i64>(&mut con, &["DEL", &name]);
                        (None, Instant::now())
                    }
                    18..=22 => {
                        // Gone a millisecond later (a few, on the engine's coarse clock).
                        run::<i64>(&mut con, &["PEXPIRE", &name, "1"]);
                        (None, Instant::now() + Duration::from_millis(10))
                    }
                    _ => {
                        let v = format!("v{}", version.fetch_add(1, Ordering::Relaxed));
                        run::<()>(&mut con, &["SET", &name, &v]);
                        (Some(v), Instant::now())
                    }
                };
                changes.push(Change { value, done });
            }
        }));
    }
    for reader in 0..3 {
        let mut con = fleet.con(reader);
        let (stop, reads) = (Arc::clone(&stop), Arc::clone(&reads));
        threads.push(thread::spawn(move || {
            let mut n = 99 + reader as u64;
            let mut mine = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                n = n
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let key = (n >> 33) as usize % KEYS;
                let began = Instant::now();
                mine.push((key, began, get(&mut con, &format!("k{key}"))));
            }
            reads.lock().unwrap().extend(mine);
        }));
    }
    thread::sleep(RUN);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }

    let reads = reads.lock().unwrap();
    let mut stale = Vec::new();
    for (key, began, got) in reads.iter() {
        let changes = history[*key].lock().unwrap();
        // The last change acknowledged before the read began, less the bound: the read may
        // return it or anything after it, never what came before (the key starts absent).
        let fine = match changes.iter().rposition(|c| c.done + BOUND < *began) {
            Some(settled) => changes[settled..].iter().any(|c| c.value == *got),
            None => got.is_none() || changes.iter().any(|c| c.value == *got),
        };
        if !fine {
            stale.push((*key, got.clone()));
        }
    }
    let writes: usize = history.iter().map(|h| h.lock().unwrap().len()).sum();
    assert!(
        writes > 100 && reads.len() > 1000,
        "{writes} writes, {} reads",
        reads.len()
    );
    assert!(
        stale.is_empty(),
        "{} of {} reads older than the bound: {:?}",
        stale.len(),
        reads.len(),
        &stale[..stale.len().min(10)]
    );

    // Quiet: every server agrees with the last change of every key.
    let mut cons: Vec<_> = (0..3).map(|i| fleet.con(i)).collect();
    let last: HashMap<usize, Option<String>> = (0..KEYS)
        .map(|k| {
            let changes = history[k].lock().unwrap();
            (k, changes.last().and_then(|c| c.value.clone()))
        })
        .collect();
    let mut redis = fleet.redis.con(false);
    for (key, want) in &last {
        let key = format!("k{key}");
        let agree = cons
            .iter_mut()
            .all(|con| eventually(PROPAGATION, || get(con, &key).as_deref() == want.as_deref()));
        let answers: Vec<_> = cons.iter_mut().map(|con| get(con, &key)).collect();
        assert!(
            agree,
            "{key}: servers read {answers:?}, Redis holds {:?}, the last change left {want:?}",
            in_redis(&mut redis, &key)
        );
    }
}

#[test]
fn info_and_stats_show_the_redis_link() {
    if skip_unless_strata("info_and_stats_show_the_redis_link") {
        return;
    }
    let fleet = Fleet::start(1);
    let mut con = fleet.con(0);
    run::<()>(&mut con, &["SET", "k", "v"]);
    let url = format!("http://{}", fleet.servers[0].http_addr());
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
            .args(args)
            .args(["--url", &url])
            .output()
            .expect("the strata CLI runs");
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).expect("UTF-8")
    };
    let info = cli(&["info"]);
    let redis = format!("redis://{}", fleet.redis.addr());
    assert!(
        info.lines()
            .any(|l| l.starts_with("redis") && l.contains(&redis)),
        "{info}"
    );
    assert!(
        info.lines()
            .any(|l| l.starts_with("default") && l.trim_end().ends_with("yes")),
        "{info}"
    );
    let stats = cli(&["stats"]);
    assert!(
        stats.contains("redis: link up, following the log") && stats.contains("sent 1 writes"),
        "{stats}"
    );
    // The lag behind each partition of the log, sampled once a second.
    let lag_of_partition_0 = "\nstrata_redis_log_lag_entries{partition=\"0\"} 0\n";
    assert!(eventually(PROPAGATION, || {
        let metrics = ureq::get(&format!("{url}/metrics"))
            .call()
            .expect("GET /metrics")
            .body_mut()
            .read_to_string()
            .expect("the metrics");
        metrics.contains(lag_of_partition_0)
    }));
}

#[test]
fn set_nx_through_different_servers_is_won_once() {
    if skip_unless_strata("set_nx_through_different_servers_is_won_once") {
        return;
    }
    let fleet = Fleet::start(3);
    let mut cons: Vec<_> = (0..3).map(|i| fleet.con(i)).collect();
    // A lock taken through one server is taken for all, at once.
    let took: Option<String> = run(&mut cons[0], &["SET", "lock", "a", "NX", "EX", "100"]);
    assert_eq!(took.as_deref(), Some("OK"));
    let again: Option<String> = run(&mut cons[1], &["SET", "lock", "b", "NX", "EX", "100"]);
    assert_eq!(again, None);
    assert_eq!(run::<i64>(&mut cons[2], &["SETNX", "lock", "c"]), 0);
    let old: Option<String> = run(&mut cons[2], &["SET", "lock", "c", "NX", "GET"]);
    assert_eq!(old.as_deref(), Some("a"));
    let ttl: i64 = run(&mut cons[1], &["TTL", "lock"]);
    assert!((1..=100).contains(&ttl), "{ttl}");
    // Released through another server, it can be taken again.
    assert_eq!(run::<i64>(&mut cons[2], &["DEL", "lock"]), 1);
    assert_eq!(run::<i64>(&mut cons[2], &["SETNX", "lock", "c"]), 1);
    assert!(all_read(&mut cons, "lock", Some("c")));

    // Many clients racing on many keys through three servers: one winner a key.
    let winners = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
    let threads: Vec<_> = (0..6)
        .map(|client| {
            let mut con = fleet.con(client % 3);
            let winners = Arc::clone(&winners);
            thread::spawn(move || {
                for key in 0..100 {
                    let key = format!("once:{key}");
                    if run::<i64>(&mut con, &["SETNX", &key, "x"]) == 1 {
                        *winners.lock().unwrap().entry(key).or_default() += 1;
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let winners = winners.lock().unwrap();
    assert_eq!(winners.len(), 100, "every key was won");
    assert!(winners.values().all(|&n| n == 1), "{winners:?}");
}

/// Redis killed (SIGKILL) under load and restarted empty, as a Redis without persistence
/// comes back: no read fails meanwhile, and once the servers have noticed, they hold nothing
/// from before (Redis has nothing) and share what is written after.
#[test]
fn redis_killed_under_load_and_restarted_empty_leaves_the_servers_agreeing() {
    if skip_unless_strata("redis_killed_under_load_and_restarted_empty") {
        return;
    }
    let mut fleet = Fleet::start(2);
    let stop = Arc::new(AtomicBool::new(false));
    // Writes stop at the restart, so what the servers held from before must go.
    let writing = Arc::new(AtomicBool::new(true));
    let failed_reads = Arc::new(AtomicU64::new(0));
    let mut load = Vec::new();
    for server in 0..2 {
        let mut con = fleet.con(server);
        let (stop, writing, failed_reads) = (
            Arc::clone(&stop),
            Arc::clone(&writing),
            Arc::clone(&failed_reads),
        );
        load.push(thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                if n.is_multiple_of(2) && writing.load(Ordering::Relaxed) {
                    let key = format!("k{}", (n / 2) % 20);
                    let _: () = run(&mut con, &["SET", &key, &n.to_string()]);
                } else if redis::cmd("GET")
                    .arg(format!("k{}", n % 20))
                    .query::<Option<String>>(&mut con)
                    .is_err()
                {
                    failed_reads.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    thread::sleep(Duration::from_millis(500));
    writing.store(false, Ordering::Relaxed);
    fleet.redis.restart_redis_empty();
    thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    assert_eq!(failed_reads.load(Ordering::Relaxed), 0, "no read failed");

    // Once the servers have noticed, both read what Redis holds for every key, and share
    // what comes next.
    let mut cons: Vec<_> = (0..2).map(|i| fleet.con(i)).collect();
    let mut redis = fleet.redis.con(false);
    for key in (0..20).map(|k| format!("k{k}")) {
        assert!(
            eventually(PROPAGATION, || {
                let truth = in_redis(&mut redis, &key);
                cons.iter_mut().all(|c| get(c, &key) == truth)
            }),
            "{key}: a server disagrees with Redis ({:?})",
            in_redis(&mut redis, &key)
        );
    }
    run::<()>(&mut cons[0], &["SET", "after", "the restart"]);
    assert_eq!(get(&mut cons[1], "after").as_deref(), Some("the restart"));
    assert_eq!(
        in_redis(&mut redis, "after").as_deref(),
        Some("the restart")
    );
}
