//! What every part of the tier shares: the link, the key names, the queue, the counters and
//! this instance's id; and the one read, [`Wire::fetch`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis::{AsyncCommands, ScriptInvocation};
use serde::{Deserialize, Serialize};
use strata::config::RedisConfig;
use strata::store::{Invalidation, Seen};
use strata::Key;

use crate::applied::{Applied, EntryId};
use crate::envelope::{self, Stored};
use crate::keys::Keys;
use crate::link::Link;
use crate::link::LinkError;
use crate::outbox::Outbox;
use crate::packing::Packing;
use crate::scripts;
use crate::stats::{Counters, TierStats};

/// One entry of the invalidation log, as JSON in the stream entry's `e` field (with the
/// sending instance's id in `o`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LogEntry {
    /// Apply this invalidation.
    Invalidate(Invalidation),
    /// Treat what the shared namespaces hold as unverified: the sender lost writes.
    Unverified,
}

impl LogEntry {
    pub(crate) fn to_json(&self) -> String {
        // A log entry is strings and maps of strings: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What Redis had for a key, as the tier reads it.
pub(crate) enum Lookup {
    /// A live value: its payload, remaining TTL, tags, and version (for a fill replacing
    /// it, should it not decode: see [`Wire::seen`]).
    Found {
        payload: Vec<u8>,
        ttl: Option<Duration>,
        tags: Vec<String>,
        version: u64,
    },
    /// Nothing usable, with what to hand back with a fill.
    Missing(Seen),
    /// No answer.
    Unavailable,
}

pub(crate) struct Wire {
    pub(crate) config: RedisConfig,
    pub(crate) keys: Keys,
    pub(crate) link: Link,
    pub(crate) outbox: Outbox,
    pub(crate) counters: Counters,
    /// This instance's id in the log, so it skips its own entries.
    pub(crate) instance: String,
    /// Whether the tailer is following the log (connected and caught up with where it was).
    pub(crate) following: AtomicBool,
    /// How far the tailer has applied each partition.
    pub(crate) applied: Applied,
    /// Which namespaces compress their values in Redis.
    pub(crate) packing: Packing,
}

impl Wire {
    pub(crate) fn new(config: RedisConfig, packing: Packing) -> Result<Self, redis::RedisError> {
        let partitions = u32::try_from(config.partitions).unwrap_or(u32::MAX);
        Ok(Self {
            keys: Keys::new(&config.prefix, partitions),
            link: Link::new(&config)?,
            outbox: Outbox::new(config.queue_max),
            counters: Counters::default(),
            instance: instance_id(),
            following: AtomicBool::new(false),
            applied: Applied::new(partitions),
            packing,
            config,
        })
    }

    pub(crate) fn stats(&self) -> TierStats {
        let mut stats = self
            .counters
            .snapshot(self.link.is_up(), self.outbox.len() as u64);
        stats.log_following = self.following.load(Ordering::Relaxed);
        stats
    }

    /// Reads `key` of `namespace` from Redis: the value and its remaining TTL in one round
    /// trip, and, for a tagged value, its tags' generations in a second; on a miss, the
    /// partition's scope in a second (only a fill needs it, and a fill follows an origin
    /// call, so it is read before the origin is all the same). Counts the lookup and its
    /// time; the caller, who decodes, counts the hit or the miss. `patient` for a reader
    /// with no origin to fall back on: it waits up to `redis.connect_timeout`.
    pub(crate) async fn fetch(&self, namespace: &str, key: &[u8], patient: bool) -> Lookup {
        let started = Instant::now();
        let name = &self.keys.data(namespace, key);
        let partition = self.keys.partition(namespace, key);
        let log = &self.keys.log(partition);
        let read = |mut conn: redis::aio::ConnectionManager| async move {
            let mut pipe = redis::pipe();
            pipe.get(name).pttl(name);
            if patient {
                // The log's newest entry: see `applied.rs`.
                pipe.cmd("XREVRANGE")
                    .arg(log)
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1);
            }
            pipe.query_async::<Vec<redis::Value>>(&mut conn).await
        };
        let read = if patient {
            self.link.call_patiently(read).await
        } else {
            self.link.call(read).await
        };
        let read = read.ok().and_then(|mut answers| {
            let newest = answers.get(2).and_then(newest_entry);
            answers.truncate(2);
            let (bytes, pttl) =
                redis::from_redis_value::<(Option<Vec<u8>>, i64)>(redis::Value::Array(answers))
                    .ok()?;
            Some((bytes, pttl, newest))
        });
        let judged = match read {
            None => None,
            Some((None, _, _)) => Some(Err(0)),
            Some((Some(bytes), pttl, newest)) => {
                let judged = self.judge(&bytes, pttl).await;
                if let (Ok(_), Some(newest)) = (&judged, newest) {
                    // Served as what this instance holds: nothing older may drop it.
                    let reached = self.applied.reached(partition as usize, newest);
                    let _ = tokio::time::timeout(self.config.connect_timeout, reached).await;
                }
                Some(judged)
            }
        };
        let lookup = match judged {
            None => Lookup::Unavailable,
            Some(Ok(found)) => found,
            Some(Err(version)) => match self.seen(namespace, key, version, patient).await {
                Some(seen) => Lookup::Missing(seen),
                None => Lookup::Unavailable,
            },
        };
        if matches!(lookup, Lookup::Unavailable) {
            Counters::bump(&self.counters.l2_errors);
        }
        let micros = started.elapsed().as_micros() as u64;
        self.counters
            .l2_lookup_micros
            .fetch_add(micros, Ordering::Relaxed);
        Counters::bump(&self.counters.l2_lookups);
        lookup
    }

    /// The [`STORE`](scripts::STORE) script's call writing `payload` (with `ttl`) as the
    /// value of `key` in `namespace` and logging it; with `only_if_absent`, a claim.
    pub(crate) fn store_call(
        &self,
        namespace: &str,
        key: &[u8],
        ttl: Option<Duration>,
        payload: Vec<u8>,
        only_if_absent: bool,
    ) -> ScriptInvocation<'static> {
        let partition = self.keys.partition(namespace, key);
        let entry = LogEntry::Invalidate(Invalidation::Key {
            namespace: Some(namespace.to_owned()),
            key: key.into(),
        });
        let (compressed, body) = self.packing.pack(namespace, payload);
        let mut call = scripts::STORE.prepare_invoke();
        call.key(self.keys.data(namespace, key))
            .key(self.keys.version(partition))
            .key(self.keys.log(partition))
            .arg(scripts::ttl_millis(ttl))
            .arg(envelope::value_header_rest(&[], compressed))
            .arg(body)
            .arg(self.config.log_max_len)
            .arg(&self.instance)
            .arg(entry.to_json())
            .arg(if only_if_absent { "1" } else { "0" });
        call
    }

    /// Stores `payload` as the value of `key` in `namespace` only if Redis holds no live
    /// value for it: `Ok(None)` when it was stored, `Ok(Some(payload))` with the live value's
    /// payload when one was there.
    pub(crate) async fn claim(
        &self,
        namespace: &str,
        key: &[u8],
        payload: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<Option<Vec<u8>>, LinkError> {
        let call = &self.store_call(namespace, key, ttl, payload, true);
        let answer: redis::Value = self
            .link
            .call_patiently(|mut conn| async move { call.invoke_async(&mut conn).await })
            .await?;
        match answer {
            redis::Value::Int(_) => Ok(None),
            other => {
                let bytes = redis::from_redis_value::<Vec<u8>>(other).unwrap_or_default();
                match envelope::parse(&bytes) {
                    Ok(Stored::Value {
                        compressed,
                        payload,
                        ..
                    }) => match self.packing.unpack(compressed, payload) {
                        Ok(payload) => Ok(Some(payload)),
                        Err(why) => Err(not_strata(why)),
                    },
                    // The script returns only live values, as their envelopes.
                    _ => Err(not_strata(
                        "a claim found a value that is not strata's".into(),
                    )),
                }
            }
        }
    }

    /// Waits (up to `redis.connect_timeout`) until this instance's own queued change of
    /// `key` in `namespace`, if any, has reached Redis; false if it has not.
    pub(crate) async fn own_change_sent(&self, namespace: &str, key: &Key) -> bool {
        let sent = self.outbox.key_settled(namespace, key);
        tokio::time::timeout(self.config.connect_timeout, sent)
            .await
            .is_ok()
    }

    /// What a fill of `key` must find unchanged: `version` (what the key held: 0 for
    /// nothing) and its partition's scope, read now. `None` if Redis did not answer.
    pub(crate) async fn seen(
        &self,
        namespace: &str,
        key: &[u8],
        version: u64,
        patient: bool,
    ) -> Option<Seen> {
        let scope = &self.keys.scope(self.keys.partition(namespace, key));
        let read = |mut conn: redis::aio::ConnectionManager| async move {
            conn.get::<_, Option<u64>>(scope).await
        };
        let scope = if patient {
            self.link.call_patiently(read).await
        } else {
            self.link.call(read).await
        };
        scope.ok().map(|scope| Seen(version, scope.unwrap_or(0)))
    }

    /// What a value's bytes (with the key's PTTL) are worth to a reader: a live value, or
    /// the version a fill must find (`Err`).
    async fn judge(&self, bytes: &[u8], pttl: i64) -> Result<Lookup, u64> {
        let (version, tags, compressed, payload) = match envelope::parse(bytes) {
            Ok(Stored::Value {
                version,
                tags,
                compressed,
                payload,
            }) => (version, tags, compressed, payload),
            Ok(Stored::Tombstone { version }) => return Err(version),
            Err(corrupt) => {
                Counters::bump(&self.counters.l2_corrupt);
                tracing::debug!(%corrupt, "a value in Redis is not strata's; treated as a miss");
                return Err(0);
            }
        };
        let ttl = match pttl {
            -1 => None,
            ms if ms > 0 => Some(Duration::from_millis(ms as u64)),
            // Gone between the two reads, or about to be.
            _ => return Err(version),
        };
        if !tags.is_empty() && !self.tags_current(&tags).await {
            return Err(version);
        }
        let payload = match self.packing.unpack(compressed, payload) {
            Ok(payload) => payload,
            Err(why) => {
                Counters::bump(&self.counters.l2_corrupt);
                tracing::debug!(%why, "a compressed value in Redis does not decompress; treated as a miss");
                return Err(version);
            }
        };
        Ok(Lookup::Found {
            payload,
            ttl,
            tags: tags.into_iter().map(|(tag, _)| tag).collect(),
            version,
        })
    }

    /// Whether no tag of a value was invalidated since it was written (a failed read counts
    /// as invalidated: the value is not served unchecked).
    async fn tags_current(&self, tags: &[(String, u64)]) -> bool {
        let names = &tags
            .iter()
            .map(|(tag, _)| self.keys.tag(tag))
            .collect::<Vec<_>>();
        let generations = self
            .link
            .call(|mut conn| async move { conn.mget::<_, Vec<Option<u64>>>(names).await })
            .await;
        match generations {
            Ok(now) => tags
                .iter()
                .zip(now)
                .all(|((_, then), now)| now.unwrap_or(0) == *then),
            Err(_) => {
                Counters::bump(&self.counters.l2_errors);
                false
            }
        }
    }
}

/// A value under strata's keys that strata cannot read, as a link error.
fn not_strata(why: String) -> LinkError {
    LinkError::Redis(redis::RedisError::from((
        redis::ErrorKind::Parse,
        "not a strata value",
        why,
    )))
}

/// The id of the entry an `XREVRANGE ... COUNT 1` answered with (none for an empty log).
fn newest_entry(answer: &redis::Value) -> Option<EntryId> {
    let range = redis::from_redis_value_ref::<redis::streams::StreamRangeReply>(answer).ok()?;
    EntryId::parse(&range.ids.first()?.id)
}

/// An id for this tier, unique across the fleet with overwhelming odds: the process id, the
/// time and a count of the tiers this process started, hashed.
fn instance_id() -> String {
    static STARTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let nth = STARTED.fetch_add(1, Ordering::Relaxed);
    let seed = format!("{}:{nanos}:{nth}", std::process::id());
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(seed.as_bytes()))
}
