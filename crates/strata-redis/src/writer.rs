//! The writer task: drains the queue into Redis in order. Jobs about one key each go
//! together, as one pipeline of scripts (one round trip for a burst of writes); a job about
//! many keys goes alone. Jobs the link failed go back to their places and are tried again
//! once the breaker lets a call through; a job Redis itself keeps refusing (out of memory, a
//! key of the wrong type) is given up on after a few tries, and every instance is told to
//! treat what it holds as unverified.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::{AsyncCommands, RedisResult, Script, ScriptInvocation};
use strata::store::{Invalidation, Store};
use strata::Pattern;

use crate::envelope;
use crate::held::Held;
use crate::link::LinkError;
use crate::outbox::Job;
use crate::scripts;
use crate::stats::Counters;
use crate::wire::{LogEntry, Wire};

/// How often a job Redis refuses is tried before it is given up on.
const TRIES: u32 = 3;

/// The most jobs sent in one pipeline.
const BATCH: usize = 256;

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
        let batch = wire.outbox.pop_batch(BATCH);
        if batch.is_empty() {
            if wire.outbox.take_overflow() {
                Counters::bump(&wire.counters.queue_overflows);
                wire.outbox.push(Job::Unverified);
                continue;
            }
            wire.outbox.wait().await;
            continue;
        }
        let stores = batch
            .iter()
            .any(|(_, job)| matches!(job, Job::Store { .. }));
        if stores && !wire.following.load(Ordering::SeqCst) {
            // Back from an outage, the log is replayed first: a key another instance changed
            // meanwhile is dropped here, and what it wrote is not overwritten with an older
            // value (see `Planned::of`).
            put_back(&wire, batch);
            tokio::time::sleep(FOLLOW_WAIT).await;
            continue;
        }
        let sent = match &batch[..] {
            [(_, job)] if !is_scripted(job) => send_alone(&wire, &store, job).await.map(|()| None),
            _ => send_scripted(&wire, &held, &batch).await.map(Some),
        };
        match sent {
            Ok(refusals) => {
                let refusals = refusals.unwrap_or_default();
                if refusals.is_empty() {
                    refused = 0;
                    wire.outbox.done();
                    continue;
                }
                refused += 1;
                let (first, error) = &refusals[0];
                let unverified = matches!(batch[*first].1, Job::Unverified);
                if unverified || refused < TRIES {
                    // The message that writes were lost is never given up on: dropping it
                    // would be losing them silently. It waits for Redis to take it.
                    let again = refusals.iter().map(|(i, _)| batch[*i].clone()).collect();
                    put_back(&wire, again);
                    wire.outbox.done();
                    tokio::time::sleep(Duration::from_millis(10 << refused.min(6))).await;
                } else {
                    refused = 0;
                    wire.outbox.done();
                    wire.counters
                        .jobs_dropped
                        .fetch_add(refusals.len() as u64, Ordering::Relaxed);
                    tracing::error!(error = %error, jobs = refusals.len(),
                        "Redis refused writes {TRIES} times; telling every instance to treat \
                        what it holds as unverified");
                    wire.outbox.push(Job::Unverified);
                }
            }
            Err(_) => {
                put_back(&wire, batch);
                // The breaker fails calls at once while open: wait for it to let one try.
                tokio::time::sleep(wire.config.breaker_cooldown.min(Duration::from_millis(100)))
                    .await;
            }
        }
    }
}

/// Puts `jobs` back in their places, to be tried again.
fn put_back(wire: &Wire, jobs: Vec<(u64, Job)>) {
    for (seq, job) in jobs {
        wire.outbox.put_back(seq, job);
    }
}

/// Whether `job` is one script about one key (sent in a pipeline with others).
fn is_scripted(job: &Job) -> bool {
    matches!(
        job,
        Job::Write { .. }
            | Job::Store { .. }
            | Job::Invalidate(Invalidation::Key {
                namespace: Some(_),
                ..
            })
    )
}

/// What a scripted job sends, and how its answer is counted.
enum Planned {
    /// Nothing to send (a write-through whose key is gone here without expiring).
    Nothing,
    /// A fill: its script answers 0 when Redis refused it (the key changed).
    Fill(ScriptInvocation<'static>),
    /// A value written through.
    Store(ScriptInvocation<'static>),
    /// A key deleted (a tombstone and a log entry).
    Delete(ScriptInvocation<'static>),
}

impl Planned {
    fn of(wire: &Wire, held: &Held, job: &Job) -> Planned {
        match job {
            Job::Store {
                namespace,
                key,
                expires,
            } => {
                // What this instance holds now: the latest of however many changes were
                // queued.
                let current = held.current(namespace, key);
                let key = key.as_bytes();
                match current {
                    Some(current) => Planned::Store(wire.store_call(
                        namespace,
                        key,
                        current.ttl,
                        current.payload,
                        false,
                    )),
                    // It expired here before it could be sent (or is about to: the engine's
                    // clock is coarse): it goes there too. (Another instance's change of the
                    // key cancels the job: see the tailer.)
                    None if expires.is_some_and(|at| at <= Instant::now() + EXPIRY_SLACK) => {
                        Planned::Delete(delete(wire, namespace, key))
                    }
                    // Evicted here, or dropped when this instance's view was marked
                    // unverified: what Redis holds stays.
                    None => Planned::Nothing,
                }
            }
            Job::Write {
                namespace,
                key,
                payload,
                ttl,
                seen,
            } => {
                // Fills carry no tags (a loader gives none).
                let partition = wire.keys.partition(namespace, key.as_bytes());
                let (compressed, body) = wire.packing.pack(namespace, payload.clone());
                let mut call = scripts::FILL.prepare_invoke();
                call.key(wire.keys.data(namespace, key.as_bytes()))
                    .key(wire.keys.version(partition))
                    .key(wire.keys.scope(partition))
                    .arg(seen.0)
                    .arg(scripts::ttl_millis(*ttl))
                    .arg(envelope::value_header_rest(&[], compressed))
                    .arg(body)
                    .arg(seen.1);
                Planned::Fill(call)
            }
            Job::Invalidate(Invalidation::Key {
                namespace: Some(namespace),
                key,
            }) => Planned::Delete(delete(wire, namespace, key.as_bytes())),
            // Not scripted: sent alone (see `is_scripted`).
            _ => Planned::Nothing,
        }
    }

    fn call(&self) -> Option<&ScriptInvocation<'static>> {
        match self {
            Planned::Nothing => None,
            Planned::Fill(call) | Planned::Store(call) | Planned::Delete(call) => Some(call),
        }
    }

    /// Counts Redis's answer; false if Redis refused it.
    fn count(&self, wire: &Wire, answer: &RedisResult<redis::Value>) -> bool {
        let counters = &wire.counters;
        let Ok(value) = answer else { return false };
        match self {
            Planned::Nothing => {}
            Planned::Fill(_) => match redis::from_redis_value_ref::<u64>(value) {
                Ok(0) => Counters::bump(&counters.writes_refused),
                _ => Counters::bump(&counters.writes_sent),
            },
            Planned::Store(_) => Counters::bump(&counters.writes_sent),
            Planned::Delete(_) => Counters::bump(&counters.invalidations_sent),
        }
        true
    }
}

/// The deletion of `key` in `namespace`: a tombstone with a new version, and a log entry.
fn delete(wire: &Wire, namespace: &str, key: &[u8]) -> ScriptInvocation<'static> {
    let partition = wire.keys.partition(namespace, key);
    let entry = LogEntry::Invalidate(Invalidation::Key {
        namespace: Some(namespace.to_owned()),
        key: key.into(),
    });
    let ttl_ms = wire.config.tombstone_ttl.as_millis() as u64;
    let mut call = scripts::DELETE.prepare_invoke();
    call.key(wire.keys.data(namespace, key))
        .key(wire.keys.version(partition))
        .key(wire.keys.log(partition))
        .arg(ttl_ms.max(1))
        .arg(wire.config.log_max_len)
        .arg(&wire.instance)
        .arg(entry.to_json());
    call
}

/// Sends a batch of scripted jobs as one pipeline, the scripts loaded first (a Redis that
/// restarted has none). Returns the jobs Redis refused (by index in `batch`), with its error;
/// `Err` when the link failed.
async fn send_scripted(
    wire: &Wire,
    held: &Held,
    batch: &[(u64, Job)],
) -> Result<Vec<(usize, redis::RedisError)>, LinkError> {
    let planned: Vec<Planned> = batch
        .iter()
        .map(|(_, job)| Planned::of(wire, held, job))
        .collect();
    let calls: Vec<(usize, &ScriptInvocation<'static>)> = planned
        .iter()
        .enumerate()
        .filter_map(|(i, plan)| plan.call().map(|call| (i, call)))
        .collect();
    if calls.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    let scripts: [&Script; 3] = [&scripts::FILL, &scripts::STORE, &scripts::DELETE];
    for script in scripts {
        pipe.load_script(script).ignore();
    }
    for (_, call) in &calls {
        pipe.invoke_script(call);
    }
    let pipe = &pipe;
    let answers: Vec<RedisResult<redis::Value>> = wire
        .link
        .call_patiently(|mut conn| async move { pipe.query_async(&mut conn).await })
        .await?;
    let mut refused = Vec::new();
    for ((i, _), answer) in calls.iter().zip(answers) {
        if !planned[*i].count(wire, &answer) {
            if let Err(e) = answer {
                refused.push((*i, e));
            }
        }
    }
    Ok(refused)
}

/// Sends one job about many keys (or the message that writes were lost).
async fn send_alone(wire: &Wire, store: &Store, job: &Job) -> Result<(), LinkError> {
    match job {
        Job::Invalidate(invalidation) => {
            invalidate(wire, store, invalidation).await?;
            Counters::bump(&wire.counters.invalidations_sent);
            Ok(())
        }
        Job::Unverified => append(wire, 0, &LogEntry::Unverified).await,
        // Scripted jobs go in `send_scripted`.
        Job::Write { .. } | Job::Store { .. } => Ok(()),
    }
}

/// Applies an invalidation of many keys (or of one key in every namespace) to Redis, then
/// logs it, so an instance that hears of it finds nothing stale in Redis to fill from.
/// (Deleting one key of a shared namespace is scripted instead: see `delete`.)
async fn invalidate(
    wire: &Wire,
    store: &Store,
    invalidation: &Invalidation,
) -> Result<(), LinkError> {
    if !matches!(invalidation, Invalidation::Tag { .. }) {
        // First, so that a fill whose load read the origin before this is refused even for a
        // key Redis does not hold (tagged values are checked by their tags' generations
        // instead).
        move_scopes(wire).await?;
    }
    apply_to_redis(wire, store, invalidation).await?;
    let partition = match invalidation {
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
    append(wire, partition, &LogEntry::Invalidate(invalidation.clone())).await
}

/// Moves every partition's scope generation.
async fn move_scopes(wire: &Wire) -> Result<(), LinkError> {
    let mut pipe = redis::pipe();
    for partition in 0..wire.keys.partitions() {
        pipe.incr(wire.keys.scope(partition), 1).ignore();
    }
    let pipe = &pipe;
    wire.link
        .call_patiently(|mut conn| async move { pipe.query_async::<()>(&mut conn).await })
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
                    .call_patiently(|mut conn| async move { conn.unlink::<_, ()>(name).await })
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
                .call_patiently(|mut conn| async move { conn.incr::<_, _, u64>(name, 1).await })
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
                .call_patiently(|mut conn| async move {
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
                    .call_patiently(|mut conn| async move { conn.unlink::<_, ()>(doomed).await })
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
        .call_patiently(|mut conn| async move {
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
