//! The tailer task: follows every partition of the invalidation log from a cursor, on a
//! connection of its own (a blocking `XREAD` would hold up the shared one), and applies what
//! other instances logged.
//!
//! For each partition it keeps the id of the last entry read and the entry's *position*
//! (how many entries the stream had taken when that one was added). Redis counts the entries
//! ever added to a stream (`XINFO STREAM`'s `entries-added`) and how many it holds; the
//! difference is what trimming took. After a reconnect (or when reading falls a full batch
//! behind) the tailer compares: if trimming took entries past its position, or the stream
//! was recreated (fewer entries ever added than its position), it cannot replay what it
//! missed, and marks every shared namespace unverified. The epoch key catches a Redis that
//! came back empty: it holds a random id set when first missing; a different id means the
//! log was lost.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisError, Value};
use strata::store::{Invalidation, Store};

use crate::applied::EntryId;
use crate::stats::Counters;
use crate::wire::{LogEntry, Wire};
use crate::writer::shared_scope;

/// How long one `XREAD` blocks waiting for entries.
const BLOCK: Duration = Duration::from_millis(1000);
/// How many entries one `XREAD` takes per partition.
const BATCH: usize = 1024;
/// How often the lag behind each partition is sampled while following the log.
const LAG_EVERY: Duration = Duration::from_secs(1);

/// Where the tailer is in one partition.
#[derive(Debug, Clone)]
struct Cursor {
    /// The last entry read (`0-0` before any).
    id: String,
    /// How many entries the stream had taken when that entry was added.
    position: u64,
}

pub(crate) async fn run(wire: Arc<Wire>, store: Store) {
    let client = match crate::link::client(&wire.config) {
        Ok(client) => client,
        // The link was built from the same settings, so this cannot fail here.
        Err(_) => return,
    };
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(wire.config.connect_timeout))
        .set_response_timeout(None);
    let mut cursors: Option<Vec<Cursor>> = None;
    let mut epoch: Option<String> = None;
    let mut reported = false;
    loop {
        let mut conn = match client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(conn) => conn,
            Err(e) => {
                wire.link.tailer_saw(Err(&e));
                if !reported {
                    tracing::warn!(error = %e, "the invalidation log cannot be read; retrying");
                    reported = true;
                }
                tokio::time::sleep(wire.config.breaker_cooldown).await;
                continue;
            }
        };
        reported = false;
        let mut replaying = cursors.is_some();
        match resync(&wire, &store, &mut conn, &mut cursors, &mut epoch).await {
            Ok(()) => {
                wire.link.tailer_saw(Ok(()));
                wire.following.store(true, Ordering::SeqCst);
            }
            Err(e) => {
                tracing::debug!(error = %e, "resynchronising with the log failed");
                tokio::time::sleep(wire.config.breaker_cooldown).await;
                continue;
            }
        }
        let Some(at) = cursors.as_mut() else { continue };
        let mut sampled = Instant::now();
        loop {
            if sampled.elapsed() >= LAG_EVERY {
                sampled = Instant::now();
                if let Err(e) = sample_lag(&wire, &mut conn, at).await {
                    tracing::debug!(error = %e, "sampling the log's lag failed");
                }
            }
            match read(&wire, &store, &mut conn, at, replaying).await {
                Ok(full) if full => {
                    // A full batch: behind, maybe far enough that trimming passed us.
                    if let Err(e) = check_gaps(&wire, &store, &mut conn, at).await {
                        tracing::debug!(error = %e, "checking the log for gaps failed");
                        break;
                    }
                }
                Ok(_) => replaying = false,
                Err(e) => {
                    wire.link.tailer_saw(Err(&e));
                    wire.following.store(false, Ordering::SeqCst);
                    tracing::debug!(error = %e, "reading the log failed; reconnecting");
                    break;
                }
            }
        }
    }
}

/// After connecting: checks the epoch, then either starts at the log's end (first time) or
/// checks that the log still reaches back to the cursors.
async fn resync(
    wire: &Wire,
    store: &Store,
    conn: &mut MultiplexedConnection,
    cursors: &mut Option<Vec<Cursor>>,
    epoch: &mut Option<String>,
) -> Result<(), RedisError> {
    let name = wire.keys.epoch();
    let fresh = format!(
        "{:016x}",
        xxhash_rust::xxh3::xxh3_64(wire.instance.as_bytes()) ^ now_nanos()
    );
    let _: Option<String> = redis::cmd("SET")
        .arg(&name)
        .arg(&fresh)
        .arg("NX")
        .query_async(conn)
        .await?;
    let current: String = redis::cmd("GET").arg(&name).query_async(conn).await?;
    let lost = epoch.as_ref().is_some_and(|known| *known != current);
    *epoch = Some(current);
    if lost || cursors.is_none() {
        if lost {
            tracing::warn!(
                "Redis lost the invalidation log (its epoch changed); what this \
                instance holds is marked unverified"
            );
            unverify(wire, store);
        } else {
            // The first time: what was loaded before the tailer followed the log could have
            // been changed since by an entry the tailer, starting at the end, will not read.
            for ns in shared_scope(store, None) {
                let _ = store.mark_unverified(&ns);
            }
        }
        let mut start = Vec::with_capacity(wire.keys.partitions() as usize);
        for (p, log) in wire.keys.logs().iter().enumerate() {
            let (added, _, last) = info(conn, log).await?;
            // Everything before it is what the first marking as unverified covers.
            wire.applied
                .set(p, EntryId::parse(&last).unwrap_or_default());
            start.push(Cursor {
                id: last,
                position: added,
            });
        }
        *cursors = Some(start);
        return Ok(());
    }
    if let Some(at) = cursors.as_mut() {
        check_gaps(wire, store, conn, at).await?;
    }
    Ok(())
}

/// Marks every shared namespace unverified if the log no longer reaches back to a cursor.
async fn check_gaps(
    wire: &Wire,
    store: &Store,
    conn: &mut MultiplexedConnection,
    cursors: &mut [Cursor],
) -> Result<(), RedisError> {
    let mut gap = false;
    for (log, cursor) in wire.keys.logs().iter().zip(cursors.iter_mut()) {
        let (added, length, _) = info(conn, log).await?;
        let trimmed = added.saturating_sub(length);
        if added < cursor.position || trimmed > cursor.position {
            gap = true;
            // Go on from what the log holds now.
            if added < cursor.position {
                *cursor = Cursor {
                    id: "0-0".into(),
                    position: 0,
                };
            } else {
                // Entries after the cursor survive from position `trimmed` on: read them,
                // counting from there.
                cursor.position = trimmed;
            }
        }
    }
    if gap {
        tracing::warn!(
            "the invalidation log no longer reaches back to where this instance \
            was; what it holds is marked unverified"
        );
        unverify(wire, store);
    }
    Ok(())
}

/// Records how many entries each partition had taken that the cursors have not read.
async fn sample_lag(
    wire: &Wire,
    conn: &mut MultiplexedConnection,
    cursors: &[Cursor],
) -> Result<(), RedisError> {
    let mut lag = Vec::with_capacity(cursors.len());
    for (log, cursor) in wire.keys.logs().iter().zip(cursors) {
        let (added, _, _) = info(conn, log).await?;
        lag.push(added.saturating_sub(cursor.position));
    }
    *wire.counters.log_lag.lock() = lag;
    Ok(())
}

/// A stream's entries ever added, entries held, and last id (`0, 0, "0-0"` for none).
async fn info(
    conn: &mut MultiplexedConnection,
    log: &str,
) -> Result<(u64, u64, String), RedisError> {
    let exists: bool = redis::cmd("EXISTS").arg(log).query_async(conn).await?;
    if !exists {
        return Ok((0, 0, "0-0".into()));
    }
    let fields: HashMap<String, Value> = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(log)
        .query_async(conn)
        .await?;
    let number = |name: &str| match fields.get(name) {
        Some(Value::Int(n)) => u64::try_from(*n).unwrap_or(0),
        _ => 0,
    };
    let last = match fields.get("last-generated-id") {
        Some(value) => {
            redis::from_redis_value_ref::<String>(value).unwrap_or_else(|_| "0-0".into())
        }
        None => "0-0".into(),
    };
    Ok((number("entries-added"), number("length"), last))
}

/// Reads one batch from every partition and applies it. Returns whether a partition gave a
/// full batch (the tailer is behind).
async fn read(
    wire: &Wire,
    store: &Store,
    conn: &mut MultiplexedConnection,
    cursors: &mut [Cursor],
    replaying: bool,
) -> Result<bool, RedisError> {
    let logs = wire.keys.logs();
    let mut cmd = redis::cmd("XREAD");
    cmd.arg("COUNT")
        .arg(BATCH)
        .arg("BLOCK")
        .arg(BLOCK.as_millis() as u64)
        .arg("STREAMS")
        .arg(&logs);
    for cursor in cursors.iter() {
        cmd.arg(&cursor.id);
    }
    let reply: Option<redis::streams::StreamReadReply> = match tokio::time::timeout(
        BLOCK + wire.config.timeout * 4 + Duration::from_secs(1),
        cmd.query_async(conn),
    )
    .await
    {
        Ok(reply) => reply?,
        Err(_) => {
            return Err(RedisError::from((
                redis::ErrorKind::Io,
                "XREAD gave no answer in time",
            )))
        }
    };
    let Some(reply) = reply else { return Ok(false) };
    let mut full = false;
    for stream in reply.keys {
        let Some(p) = logs.iter().position(|log| *log == stream.key) else {
            continue;
        };
        full |= stream.ids.len() >= BATCH;
        for entry in &stream.ids {
            let cursor = &mut cursors[p];
            cursor.id = entry.id.clone();
            cursor.position += 1;
            apply(wire, store, entry, replaying);
        }
        if let Some(id) = EntryId::parse(&cursors[p].id) {
            wire.applied.set(p, id);
        }
    }
    Ok(full)
}

/// Applies one log entry, unless this instance wrote it.
fn apply(wire: &Wire, store: &Store, entry: &redis::streams::StreamId, replaying: bool) {
    let field = |name: &str| -> Option<Vec<u8>> {
        entry
            .map
            .get(name)
            .and_then(|v| redis::from_redis_value_ref::<Vec<u8>>(v).ok())
    };
    if field("o").as_deref() == Some(wire.instance.as_bytes()) {
        return;
    }
    let parsed = field("e").and_then(|json| serde_json::from_slice::<LogEntry>(&json).ok());
    match parsed {
        Some(LogEntry::Invalidate(invalidation)) => {
            if let Invalidation::Key { namespace, key } = &invalidation {
                // Another instance's change reached Redis while this one's write-through of
                // the key waited: Redis keeps theirs, this instance drops its own (below),
                // and the fleet agrees.
                wire.outbox.cancel_stores(|ns, k| {
                    k == key && namespace.as_deref().is_none_or(|n| n == ns)
                });
            }
            if let Err(e) = store.apply_remote(&invalidation) {
                // Another instance's configuration differs (a namespace or an event this
                // one does not have): nothing here to invalidate.
                tracing::debug!(error = %e, "a logged invalidation does not apply here");
            }
            Counters::bump(&wire.counters.invalidations_received);
            if replaying {
                Counters::bump(&wire.counters.invalidations_replayed);
            }
        }
        Some(LogEntry::Unverified) => {
            tracing::warn!(
                "another instance lost writes to Redis; what this instance holds \
                is marked unverified"
            );
            unverify(wire, store);
        }
        None => Counters::bump(&wire.counters.l2_corrupt),
    }
}

/// Marks every shared namespace unverified.
pub(crate) fn unverify(wire: &Wire, store: &Store) {
    wire.counters.gaps.fetch_add(1, Ordering::Relaxed);
    // Changes this instance has not heard of may be newer than its waiting write-throughs.
    wire.outbox.cancel_stores(|_, _| true);
    for ns in shared_scope(store, None) {
        let _ = store.mark_unverified(&ns);
    }
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
