//! Three instances under a random workload of reads (through `get_or_load`), writes,
//! deletions and prefix invalidations, checked against a version oracle: the "database" is
//! a map of versions, each change records when it finished, and a read may never return a
//! version older than one whose replacement finished more than the propagation bound before
//! the read began. After quiescence, no instance holds anything but the database's version.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{eventually, Instance, RedisServer, PROPAGATION};
use parking_lot::Mutex;

/// How stale a read may be: far above the measured propagation (docs/benchmarks.md), so a
/// loaded CI machine does not fail the test, and far below the namespace's 10-minute TTL,
/// so a lost invalidation cannot hide behind it.
const BOUND: Duration = Duration::from_secs(1);
const KEYS: u64 = 24;
const GROUPS: u64 = 4;
const RUN: Duration = Duration::from_secs(3);

/// The database: each key's current version, and when each version stopped being current.
#[derive(Default)]
struct Database {
    current: HashMap<String, u64>,
    next: u64,
    /// Per key: (version, when the change that replaced it finished).
    replaced: HashMap<String, Vec<(u64, Instant)>>,
}

fn key(i: u64) -> String {
    format!("user::g{}::{i}", i % GROUPS)
}

/// A small deterministic generator (splitmix64), so a failure can be replayed by seed.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_read_is_older_than_the_bound_and_every_instance_ends_agreeing() {
    let redis = RedisServer::start();
    let fleet: Vec<Arc<Instance>> = (0..3)
        .map(|_| Arc::new(Instance::start(&redis.url(), "", "")))
        .collect();
    for instance in &fleet {
        assert!(eventually(PROPAGATION, || instance.tier.stats().log_following).await);
    }
    let db = Arc::new(Mutex::new(Database::default()));
    // Writers of one key take its lock around the database change and the cache call, as a
    // row lock would: the cache is told of changes in the order they happened.
    let locks: Arc<Vec<tokio::sync::Mutex<()>>> =
        Arc::new((0..KEYS).map(|_| tokio::sync::Mutex::new(())).collect());
    let reads = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for (n, instance) in fleet.iter().enumerate() {
        let (instance, db, locks, reads) = (
            Arc::clone(instance),
            Arc::clone(&db),
            Arc::clone(&locks),
            Arc::clone(&reads),
        );
        tasks.push(tokio::spawn(async move {
            let mut dice = Dice(0x5eed + n as u64);
            let started = Instant::now();
            while started.elapsed() < RUN {
                let i = dice.next() % KEYS;
                let k = key(i);
                match dice.next() % 10 {
                    // A change: the database first, then the cache (write-through or drop).
                    0..=2 => {
                        let _row = locks[i as usize].lock().await;
                        let version = change(&db, &k);
                        if dice.next().is_multiple_of(2) {
                            instance.users.insert(&*k, version.to_string()).unwrap();
                        } else {
                            instance.users.remove(&k);
                        }
                        finish(&db, &k, version);
                    }
                    // A group's prefix invalidated after its rows changed.
                    3 if dice.next().is_multiple_of(4) => {
                        let group = i % GROUPS;
                        let members: Vec<u64> = (0..KEYS).filter(|j| j % GROUPS == group).collect();
                        let mut rows = Vec::new();
                        for j in &members {
                            rows.push(locks[*j as usize].lock().await);
                        }
                        let versions: Vec<(String, u64)> =
                            members.iter().map(|j| (key(*j), change(&db, &key(*j)))).collect();
                        instance.users.invalidate_prefix(format!("user::g{group}::"));
                        for (k, version) in versions {
                            finish(&db, &k, version);
                        }
                        drop(rows);
                    }
                    _ => {
                        let began = Instant::now();
                        let origin_db = Arc::clone(&db);
                        let origin_key = k.clone();
                        let loaded = instance
                            .users
                            .get_or_load(&*k, move |_| async move {
                                let version = origin_db.lock().current.get(&origin_key).copied();
                                Ok::<_, std::io::Error>(version.unwrap_or(0).to_string())
                            })
                            .await
                            .unwrap();
                        let got: u64 = loaded.value.parse().unwrap();
                        let db = db.lock();
                        let too_old = db.replaced.get(&k).and_then(|history| {
                            history.iter().find(|(version, replaced)| {
                                *version >= got && *replaced + BOUND < began
                            })
                        });
                        assert!(
                            too_old.is_none(),
                            "instance {n} read {k} at version {got} ({:?}), replaced {:?} before the read began",
                            loaded.source,
                            too_old.map(|(_, at)| began - *at)
                        );
                        reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert!(reads.load(std::sync::atomic::Ordering::Relaxed) > 100);

    // Quiescence: every queue drained, then the bound.
    for instance in &fleet {
        assert!(eventually(PROPAGATION, || instance.tier.stats().queue_depth == 0).await);
    }
    tokio::time::sleep(BOUND).await;
    let current = db.lock().current.clone();
    for (n, instance) in fleet.iter().enumerate() {
        for (k, version) in &current {
            if let Some(held) = instance.users.get(k) {
                assert_eq!(
                    &held,
                    &version.to_string(),
                    "instance {n} holds {k} out of date"
                );
            }
        }
    }
    // And Redis: a newcomer reads every key as the database has it (from Redis or the origin).
    let newcomer = Instance::start(&redis.url(), "", "");
    for (k, version) in &current {
        let loaded = newcomer
            .users
            .get_or_load(&**k, |_| async {
                Ok::<_, std::io::Error>(String::from("origin"))
            })
            .await
            .unwrap();
        assert!(
            loaded.value == version.to_string() || loaded.value == "origin",
            "Redis holds {k} at {} while the database is at {version}",
            loaded.value
        );
    }
}

/// Moves `k` to a new version in the database; returns it.
fn change(db: &Mutex<Database>, k: &str) -> u64 {
    let mut db = db.lock();
    db.next += 1;
    let version = db.next;
    db.current.insert(k.to_owned(), version);
    version
}

/// Records that the change to `version` finished: every older version of `k` is replaced.
fn finish(db: &Mutex<Database>, k: &str, version: u64) {
    let mut db = db.lock();
    let now = Instant::now();
    let history = db.replaced.entry(k.to_owned()).or_default();
    history.push((version - 1, now));
    // Versions are global: every version of `k` below `version` is now replaced; the check
    // looks for any recorded version at or above what was read, so recording `version - 1`
    // covers every older one.
}
