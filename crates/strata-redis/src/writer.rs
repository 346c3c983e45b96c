//! The writer task: drains the queue into Redis, one job at a time, in order. A job the link
//! failed goes back to its place and is tried again once the breaker lets a call through; a
//! job Redis itself keeps refusing (out of memory, a key of the wrong type) is given up on
//! after a few tries, and every instance is told to treat what it holds as unverified.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use strata::store::{Invalidation, Store};
use strata::{Key, Pattern};

use crate::envelope;
use crate::held::{Current, Held};
use crate::link::LinkError;
use crate::outbox::Job;
use crate::scripts;
use crate::stats::Counters;
use crate::wire::{LogEntry, Wire};

/// How often a job Redis refuses is tried before it is given up on.
const TRIES: u32 = 3;

/// How long a write-through waits for the log to be followed again before it is looked at
/// again.
const FOLLOW_WAIT: Duration = Duration::from_millis(20);

/// A write-through whose key is gone here and was to expire within this is deleted in
/// Redis rather than left to expire there: the engine judges expiry on a coarse clock, a
/// few milliseconds early, and an entry this close to its end is not worth telling apart
/// from an expired one.
const EXPIRY_SLACK: Duration = Duration::from_secs(1);

/// How many keys one SCAN step asks for, when a prefix, pattern or clear is applied to Redis.
const SCAN_COUNT: usize = 512;

pub(crate) async fn run(wire: Arc<Wire>, store: Store, held: Arc<Held>) {
    let mut refused = 0;
    loop {
        let Some((seq, job)) = wire.outbox.pop() else {
            if wire.outbox.take_overflow() {
                Counters::bump(&wire.counters.queue_overflows);
                wire.outbox.push(Job::Unverified);
                continue;
            }
            wire.outbox.wait().await;
            continue;
        };
        if matches!(job, Job::Store { .. }) && !wire.following.load(Ordering::SeqCst) {
            // Back from an outage, the log is replayed first: a key another instance changed
            // meanwhile is dropped here, and what it wrote is not overwritten with an older
            // value (see `send`).
            wire.outbox.put_back(seq, job);
            tokio::time::sleep(FOLLOW_WAIT).await;
            continue;
        }
        match send(&wire, &store, &held, &job).await {
            Ok(()) => {
                refused = 0;
                wire.outbox.done();
            }
            Err(e) if e.is_link_failure() => {
                wire.outbox.put_back(seq, job);
                // The breaker fails calls at once while open: wait for it to let one try.
                tokio::time::sleep(wire.config.breaker_cooldown.min(Duration::from_millis(100)))
                    .await;
            }
            Err(e) => {
                refused += 1;
                if matches!(job, Job::Unverified) {
                    // The message that writes were lost is never given up on: dropping it
                    // would be losing them silently. It waits for Redis to take it.
                    wire.outbox.put_back(seq, job);
                    tokio::time::sleep(Duration::from_millis(10 << refused.min(6))).await;
                    continue;
                }
                if refused < TRIES {
                    wire.outbox.put_back(seq, job);
                    tokio::time::sleep(Duration::from_millis(10 << refused)).await;
                } else {
                    refused = 0;
                    wire.outbox.done();
                    Counters::bump(&wire.counters.jobs_dropped);
                    tracing::error!(error = %e, "Redis refused a write {TRIES} times; \
                        telling every instance to treat what it holds as unverified");
                    wire.outbox.push(Job::Unverified);
                }
            }
        }
    }
}

/// Sends one job.
async fn send(wire: &Wire, store: &Store, held: &Held, job: &Job) -> Result<(), LinkError> {
    match job {
        Job::Store {
            namespace,
            key,
            expires,
        } => {
            // What this instance holds now: the latest of however many changes were queued.
            match held.current(namespace, key) {
                Some(current) => {
                    store_value(wire, namespace, key, current).await?;
                    Counters::bump(&wire.counters.writes_sent);
                }
                // It expired here before it could be sent (or is about to: the engine's
                // clock is coarse): it goes there too. (Another instance's change of the key
                // cancels the job: see the tailer.)
                None if expires.is_some_and(|at| at <= Instant::now() + EXPIRY_SLACK) => {
                    let gone = Invalidation::Key {
                        namespace: Some(namespace.to_string()),
                        key: key.clone(),
                    };
                    invalidate(wire, store, &gone).await?;
                    Counters::bump(&wire.counters.invalidations_sent);
                }
                // Evicted here, or dropped when this instance's view was marked unverified:
                // what Redis holds stays.
                None => {}
            }
            Ok(())
        }
        Job::Write {
            namespace,
            key,
            payload,
            ttl,
            seen,
        } => {
            // Fills carry no tags (a loader gives none).
            let header = &envelope::value_header_rest(&[]);
            let partition = wire.keys.partition(namespace, key.as_bytes());
            let ttl_ms = ttl_millis(*ttl);
            let version: u64 = wire
                .link
                .call(|mut conn| async move {
                    scripts::FILL
                        .key(wire.keys.data(namespace, key.as_bytes()))
                        .key(wire.keys.version(partition))
                        .key(wire.keys.scope(partition))
                        .arg(seen.0)
                        .arg(ttl_ms)
                        .arg(header)
                        .arg(payload.as_slice())
                        .arg(seen.1)
                        .invoke_async(&mut conn)
                        .await
                })
                .await?;
            if version == 0 {
                Counters::bump(&wire.counters.writes_refused);
            } else {
                Counters::bump(&wire.counters.writes_sent);
            }
            Ok(())
        }
        Job::Invalidate(invalidation) => {
            invalidate(wire, store, invalidation).await?;
            Counters::bump(&wire.counters.invalidations_sent);
            Ok(())
        }
        Job::Unverified => append(wire, 0, &LogEntry::Unverified).await,
    }
}

/// Writes `current` as the value of `key` in `namespace`, with a new version, and logs the
/// change for the other instances.
async fn store_value(
    wire: &Wire,
    namespace: &str,
    key: &Key,
    current: Current,
) -> Result<(), LinkError> {
    let header = &envelope::value_header_rest(&[]);
    let partition = wire.keys.partition(namespace, key.as_bytes());
    let entry = &LogEntry::Invalidate(Invalidation::Key {
        namespace: Some(namespace.to_owned()),
        key: key.clone(),
    })
    .to_json();
    let payload = &current.payload;
    wire.link
        .call(|mut conn| async move {
            scripts::STORE
                .key(wire.keys.data(namespace, key.as_bytes()))
                .key(wire.keys.version(partition))
                .key(wire.keys.log(partition))
                .arg(ttl_millis(current.ttl))
                .arg(header)
                .arg(payload.as_slice())
                .arg(wire.config.log_max_len)
                .arg(&wire.instance)
                .arg(entry)
                .invoke_async::<u64>(&mut conn)
                .await
        })
        .await?;
    Ok(())
}

/// A TTL as the scripts take it: milliseconds, at least one; 0 for none.
fn ttl_millis(ttl: Option<Duration>) -> u64 {
    ttl.map_or(0, |t| t.as_millis().clamp(1, u128::from(u64::MAX)) as u64)
}

/// Applies `invalidation` to Redis and logs it.
async fn invalidate(
    wire: &Wire,
    store: &Store,
    invalidation: &Invalidation,
) -> Result<(), LinkError> {
    match invalidation {
        // One key: the tombstone and the log entry in one step.
        Invalidation::Key {
            namespace: Some(namespace),
            key,
        } => {
            let partition = wire.keys.partition(namespace, key.as_bytes());
            let entry = &LogEntry::Invalidate(invalidation.clone()).to_json();
            let ttl_ms = wire.config.tombstone_ttl.as_millis() as u64;
            wire.link
                .call(|mut conn| async move {
                    scripts::DELETE
                        .key(wire.keys.data(namespace, key.as_bytes()))
                        .key(wire.keys.version(partition))
                        .key(wire.keys.log(partition))
                        .arg(ttl_ms.max(1))
                        .arg(wire.config.log_max_len)
                        .arg(&wire.instance)
                        .arg(entry)
                        .invoke_async::<u64>(&mut conn)
                        .await
                })
                .await?;
            Ok(())
        }
        // Everything else: Redis first, then the log, so an instance that hears of it finds
        // nothing stale in Redis to fill from.
        other => {
            if !matches!(other, Invalidation::Tag { .. }) {
                // First, so that a fill whose load read the origin before this is refused
                // even for a key Redis does not hold (tagged values are checked by their
                // tags' generations instead).
                move_scopes(wire).await?;
            }
            apply_to_redis(wire, store, other).await?;
            let partition = match other {
                Invalidation::Prefix {
                    namespace: Some(ns),
                    ..
                }
                | Invalidation::Pattern {
                    namespace: Some(ns),
                    ..
                }
                | Invalidation::Clear {
                    namespace: Some(ns),
                } => wire.keys.namespace_partition(ns),
                _ => 0,
            };
            append(wire, partition, &LogEntry::Invalidate(other.clone())).await
        }
    }
}

/// Moves every partition's scope generation.
async fn move_scopes(wire: &Wire) -> Result<(), LinkError> {
    let mut pipe = redis::pipe();
    for partition in 0..wire.keys.partitions() {
        pipe.incr(wire.keys.scope(partition), 1).ignore();
    }
    let pipe = &pipe;
    wire.link
        .call(|mut conn| async move { pipe.query_async::<()>(&mut conn).await })
        .await
}

/// What `invalidation` changes in Redis, without logging it.
async fn apply_to_redis(
    wire: &Wire,
    store: &Store,
    invalidation: &Invalidation,
) -> Result<(), LinkError> {
    match invalidation {
        Invalidation::Key { namespace, key } => {
            for ns in shared_scope(store, namespace.as_deref()) {
                let name = &wire.keys.data(&ns, key.as_bytes());
                wire.link
                    .call(|mut conn| async move { conn.unlink::<_, ()>(name).await })
                    .await?;
            }
            Ok(())
        }
        Invalidation::Prefix { namespace, prefix } => {
            let mut glob = crate::keys::escape_glob(prefix.as_bytes());
            glob.push(b'*');
            remove_matching(wire, store, namespace.as_deref(), &glob).await
        }
        Invalidation::Pattern { namespace, pattern } => {
            remove_matching(wire, store, namespace.as_deref(), pattern.as_bytes()).await
        }
        Invalidation::Clear { namespace } => {
            remove_matching(wire, store, namespace.as_deref(), b"*").await
        }
        Invalidation::Tag { tag } => {
            let name = &wire.keys.tag(tag);
            wire.link
                .call(|mut conn| async move { conn.incr::<_, _, u64>(name, 1).await })
                .await?;
            Ok(())
        }
        Invalidation::Event { event, params } => {
            // Expanded by this instance's rules for Redis; every instance expands the event
            // itself for what it holds. An event this instance has no rule for was refused
            // before it got here.
            for part in store.expand_event(event, params).unwrap_or_default() {
                Box::pin(apply_to_redis(wire, store, &part)).await?;
            }
            Ok(())
        }
    }
}

/// Unlinks every value of the shared namespaces in `scope` whose key matches `key_glob`.
async fn remove_matching(
    wire: &Wire,
    store: &Store,
    scope: Option<&str>,
    key_glob: &[u8],
) -> Result<(), LinkError> {
    let pattern = Pattern::new(key_glob);
    for ns in shared_scope(store, scope) {
        let glob = wire.keys.data_glob(&ns, key_glob);
        let mut cursor = 0u64;
        loop {
            let glob = &glob;
            let (next, names): (u64, Vec<Vec<u8>>) = wire
                .link
                .call(|mut conn| async move {
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(glob)
                        .arg("COUNT")
                        .arg(SCAN_COUNT)
                        .query_async(&mut conn)
                        .await
                })
                .await?;
            let doomed = &names
                .into_iter()
                .filter(|name| {
                    wire.keys
                        .parse_data(name)
                        .is_some_and(|(n, key)| n == ns && pattern.matches(key.as_bytes()))
                })
                .collect::<Vec<_>>();
            if !doomed.is_empty() {
                wire.link
                    .call(|mut conn| async move { conn.unlink::<_, ()>(doomed).await })
                    .await?;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    Ok(())
}

/// The shared namespaces `scope` names (all of them for `None`).
pub(crate) fn shared_scope(store: &Store, scope: Option<&str>) -> Vec<String> {
    let config = store.config();
    store
        .namespace_names()
        .filter(|name| scope.is_none_or(|s| s == *name) && config.is_shared(name))
        .map(str::to_owned)
        .collect()
}

/// Appends `entry` to partition `partition`'s log.
async fn append(wire: &Wire, partition: u32, entry: &LogEntry) -> Result<(), LinkError> {
    let log = &wire.keys.log(partition);
    let json = &entry.to_json();
    wire.link
        .call(|mut conn| async move {
            redis::cmd("XADD")
                .arg(log)
                .arg("MAXLEN")
                .arg("~")
                .arg(wire.config.log_max_len)
                .arg("*")
                .arg("o")
                .arg(&wire.instance)
                .arg("e")
                .arg(json)
                .query_async::<String>(&mut conn)
                .await
        })
        .await?;
    Ok(())
}
