//! What waits to be sent to Redis: a bounded queue where the latest job for a key replaces
//! an older one still waiting (only the newest value of a key matters, and an invalidation
//! of it supersedes a write), drained in order by the writer task. While Redis is away it
//! fills; when it is full, a job is refused and the overflow is remembered, for the writer to
//! mark every instance unverified once Redis is back, rather than lose something silently.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use strata::store::Invalidation;
use strata::Key;
use tokio::sync::Notify;

/// One thing to send.
#[derive(Debug, Clone)]
pub(crate) enum Job {
    /// A value this instance stored: written to Redis, and logged unless it is a load's fill.
    Write {
        namespace: Arc<str>,
        key: Key,
        /// The value as its codec wrote it.
        payload: Vec<u8>,
        tags: Vec<String>,
        ttl: Option<Duration>,
        /// For a load's fill: the version the key must still have.
        if_unchanged: Option<u64>,
    },
    /// An invalidation applied here: applied to Redis and logged.
    Invalidate(Invalidation),
    /// Tell every instance that what it holds is unverified (after an overflow or a job
    /// given up on).
    Unverified,
}

impl Job {
    /// The key the job is about, when it is about one key: a newer job for the key replaces it.
    fn key(&self) -> Option<(Arc<str>, Key)> {
        match self {
            Job::Write { namespace, key, .. } => Some((Arc::clone(namespace), key.clone())),
            Job::Invalidate(Invalidation::Key {
                namespace: Some(namespace),
                key,
            }) => Some((Arc::from(namespace.as_str()), key.clone())),
            _ => None,
        }
    }
}

#[derive(Default)]
struct Pending {
    next: u64,
    jobs: BTreeMap<u64, Job>,
    by_key: HashMap<(Arc<str>, Key), u64>,
    overflowed: bool,
}

/// The queue.
pub(crate) struct Outbox {
    pending: Mutex<Pending>,
    max: usize,
    wake: Notify,
}

impl Outbox {
    pub(crate) fn new(max: u64) -> Self {
        Self {
            pending: Mutex::new(Pending::default()),
            max: usize::try_from(max).unwrap_or(usize::MAX).max(1),
            wake: Notify::new(),
        }
    }

    /// Queues `job`, replacing a waiting job for the same key. Returns false if the queue was
    /// full (the overflow is remembered).
    pub(crate) fn push(&self, job: Job) -> bool {
        let key = job.key();
        let mut pending = self.pending.lock();
        if let Some(old) = key.as_ref().and_then(|k| pending.by_key.remove(k)) {
            pending.jobs.remove(&old);
        }
        if pending.jobs.len() >= self.max {
            pending.overflowed = true;
            return false;
        }
        let seq = pending.next;
        pending.next += 1;
        pending.jobs.insert(seq, job);
        if let Some(key) = key {
            pending.by_key.insert(key, seq);
        }
        drop(pending);
        self.wake.notify_one();
        true
    }

    /// The oldest job, taken out, with its place in line.
    pub(crate) fn pop(&self) -> Option<(u64, Job)> {
        let mut pending = self.pending.lock();
        let (seq, job) = pending.jobs.pop_first()?;
        if let Some(key) = job.key() {
            if pending.by_key.get(&key) == Some(&seq) {
                pending.by_key.remove(&key);
            }
        }
        Some((seq, job))
    }

    /// Puts back a job that could not be sent, in its old place, unless a newer job for the
    /// same key came meanwhile.
    pub(crate) fn put_back(&self, seq: u64, job: Job) {
        let key = job.key();
        let mut pending = self.pending.lock();
        if let Some(key) = key {
            if pending.by_key.contains_key(&key) {
                return;
            }
            pending.by_key.insert(key, seq);
        }
        pending.jobs.insert(seq, job);
    }

    /// Whether the queue overflowed since the last call (which clears it).
    pub(crate) fn take_overflow(&self) -> bool {
        std::mem::take(&mut self.pending.lock().overflowed)
    }

    pub(crate) fn len(&self) -> usize {
        self.pending.lock().jobs.len()
    }

    /// Waits until a job is pushed.
    pub(crate) async fn wait(&self) {
        self.wake.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(key: &str, payload: &str) -> Job {
        Job::Write {
            namespace: Arc::from("ns"),
            key: Key::from(key),
            payload: payload.as_bytes().to_vec(),
            tags: vec![],
            ttl: None,
            if_unchanged: None,
        }
    }

    fn payload(job: &Job) -> &[u8] {
        match job {
            Job::Write { payload, .. } => payload,
            _ => b"",
        }
    }

    #[test]
    fn the_latest_job_for_a_key_wins_and_keeps_the_order_of_arrival() {
        let outbox = Outbox::new(10);
        outbox.push(write("a", "1"));
        outbox.push(write("b", "1"));
        outbox.push(write("a", "2"));
        assert_eq!(outbox.len(), 2);
        let (_, first) = outbox.pop().unwrap();
        assert_eq!(
            payload(&first),
            b"1",
            "b first: a's newer job went to the back"
        );
        let (_, second) = outbox.pop().unwrap();
        assert_eq!(payload(&second), b"2");
        assert!(outbox.pop().is_none());
    }

    #[test]
    fn a_full_queue_refuses_and_remembers_it() {
        let outbox = Outbox::new(2);
        assert!(outbox.push(write("a", "1")));
        assert!(outbox.push(write("b", "1")));
        assert!(outbox.push(write("a", "2")), "a replacement takes no room");
        assert!(!outbox.push(write("c", "1")));
        assert!(outbox.take_overflow());
        assert!(!outbox.take_overflow());
    }

    #[test]
    fn a_job_put_back_loses_to_a_newer_one() {
        let outbox = Outbox::new(10);
        outbox.push(write("a", "1"));
        let (seq, job) = outbox.pop().unwrap();
        outbox.push(write("a", "2"));
        outbox.put_back(seq, job);
        assert_eq!(outbox.len(), 1);
        assert_eq!(payload(&outbox.pop().unwrap().1), b"2");
        outbox.push(write("b", "1"));
        let (seq, job) = outbox.pop().unwrap();
        outbox.push(write("c", "1"));
        outbox.put_back(seq, job);
        assert_eq!(
            payload(&outbox.pop().unwrap().1),
            b"1",
            "b keeps its place before c"
        );
    }
}
