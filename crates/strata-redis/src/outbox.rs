//! What waits to be sent to Redis: a bounded queue where the latest job for a key replaces
//! an older one still waiting (an invalidation or a write-through supersedes a load's fill; a
//! fill never supersedes either, which the other instances must hear of), drained in order by
//! the writer task. While Redis is away it fills; when it is full, a job is refused and the
//! overflow is remembered, for the writer to mark every instance unverified once Redis is
//! back, rather than lose something silently. A caller can wait until what was queued before
//! it has been sent ([`Outbox::settled`]).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use strata::store::{Invalidation, Seen};
use strata::Key;
use tokio::sync::Notify;

use crate::rung;

/// One thing to send.
#[derive(Debug, Clone)]
pub(crate) enum Job {
    /// A load's fill: the origin's answer, written to Redis if the key is still at the
    /// version the load saw there. Not logged: it changes nothing another instance holds.
    Write {
        namespace: Arc<str>,
        key: Key,
        /// The value as its codec wrote it.
        payload: Vec<u8>,
        ttl: Option<Duration>,
        /// What Redis must still know of the key.
        seen: Seen,
    },
    /// An invalidation applied here: applied to Redis and logged.
    Invalidate(Invalidation),
    /// A key changed here, in a namespace whose source of truth is Redis (`strata serve`):
    /// what this instance holds for it when the job is sent is written to Redis, and logged
    /// so the other instances drop theirs. `expires` is when the key expired here as of the
    /// change: gone by then, it is deleted there too.
    Store {
        namespace: Arc<str>,
        key: Key,
        expires: Option<Instant>,
    },
    /// Tell every instance that what it holds is unverified (after an overflow or a job
    /// given up on).
    Unverified,
}

impl Job {
    /// The key the job is about, when it is about one key: a newer job for the key replaces it.
    fn key(&self) -> Option<(Arc<str>, Key)> {
        match self {
            Job::Write { namespace, key, .. } | Job::Store { namespace, key, .. } => {
                Some((Arc::clone(namespace), key.clone()))
            }
            Job::Invalidate(Invalidation::Key {
                namespace: Some(namespace),
                key,
            }) => Some((Arc::from(namespace.as_str()), key.clone())),
            _ => None,
        }
    }

    /// Whether others must hear of it: every job but a load's fill.
    fn is_news(&self) -> bool {
        !matches!(self, Job::Write { .. })
    }
}

#[derive(Default)]
struct Pending {
    next: u64,
    jobs: BTreeMap<u64, Job>,
    by_key: HashMap<(Arc<str>, Key), u64>,
    overflowed: bool,
    /// The jobs the writer is sending (popped, not yet done), with their places in line.
    sending: Vec<(u64, Job)>,
    /// How many waiting jobs invalidate more than one key (prefix, pattern, clear, tag,
    /// event), so a read need not walk the queue to know whether one covers its key.
    unkeyed: usize,
}

impl Pending {
    /// Puts `job` in line at `seq`.
    fn enqueue(&mut self, seq: u64, job: Job, key: Option<(Arc<str>, Key)>) {
        if let Some(key) = key {
            self.by_key.insert(key, seq);
        } else if matches!(job, Job::Invalidate(_)) {
            self.unkeyed += 1;
        }
        self.jobs.insert(seq, job);
    }
}

/// The queue.
pub(crate) struct Outbox {
    pending: Mutex<Pending>,
    max: usize,
    wake: Notify,
    /// Rung whenever a job is done with.
    sent: Notify,
}

impl Outbox {
    pub(crate) fn new(max: u64) -> Self {
        Self {
            pending: Mutex::new(Pending::default()),
            max: usize::try_from(max).unwrap_or(usize::MAX).max(1),
            wake: Notify::new(),
            sent: Notify::new(),
        }
    }

    /// Queues `job`, replacing a waiting job for the same key. Returns false if the queue was
    /// full (the overflow is remembered).
    pub(crate) fn push(&self, job: Job) -> bool {
        let key = job.key();
        let mut pending = self.pending.lock();
        if let Some(&old) = key.as_ref().and_then(|k| pending.by_key.get(k)) {
            // A load's fill never replaces a waiting invalidation or write-through: the other
            // instances must still hear of that change, and a fill racing it is refused by
            // Redis anyway.
            if !job.is_news() && pending.jobs.get(&old).is_some_and(Job::is_news) {
                return true;
            }
            pending.jobs.remove(&old);
            if let Some(k) = key.as_ref() {
                pending.by_key.remove(k);
            }
        }
        if pending.jobs.len() >= self.max {
            pending.overflowed = true;
            return false;
        }
        let seq = pending.next;
        pending.next += 1;
        pending.enqueue(seq, job, key);
        drop(pending);
        self.wake.notify_one();
        true
    }

    /// The oldest jobs, taken out in order with their places in line: up to `max` jobs about
    /// one key each (sent together), or one job about many keys (sent alone). They count as
    /// being sent until [`done`](Self::done) or [`put_back`](Self::put_back).
    pub(crate) fn pop_batch(&self, max: usize) -> Vec<(u64, Job)> {
        let mut pending = self.pending.lock();
        let mut batch = Vec::new();
        while batch.len() < max.max(1) {
            let Some(entry) = pending.jobs.first_entry() else {
                break;
            };
            let keyed = entry.get().key().is_some();
            if !batch.is_empty() && !keyed {
                break;
            }
            let (seq, job) = entry.remove_entry();
            match job.key() {
                Some(key) if pending.by_key.get(&key) == Some(&seq) => {
                    pending.by_key.remove(&key);
                }
                Some(_) => {}
                None if matches!(job, Job::Invalidate(_)) => pending.unkeyed -= 1,
                None => {}
            }
            pending.sending.push((seq, job.clone()));
            batch.push((seq, job));
            if !keyed {
                break;
            }
        }
        batch
    }

    /// Puts back a job that could not be sent, in its old place, unless a newer job for the
    /// same key came meanwhile.
    pub(crate) fn put_back(&self, seq: u64, job: Job) {
        let key = job.key();
        let mut pending = self.pending.lock();
        pending.sending.retain(|(sent, _)| *sent != seq);
        if let Some(newer) = key.as_ref().and_then(|k| pending.by_key.get(k).copied()) {
            // A newer job wins, unless it is a fill and this is news.
            let fill_waits = pending.jobs.get(&newer).is_some_and(|j| !j.is_news());
            if !(fill_waits && job.is_news()) {
                self.sent.notify_waiters();
                return;
            }
            pending.jobs.remove(&newer);
        }
        pending.enqueue(seq, job, key);
    }

    /// The jobs popped last (and not put back) reached Redis, or were given up on.
    pub(crate) fn done(&self) {
        self.pending.lock().sending.clear();
        self.sent.notify_waiters();
    }

    /// Waits until every job queued before this call (not before the first poll) has been
    /// sent or given up on (a job replaced by a newer one counts as done with; the newer one
    /// is not waited for).
    pub(crate) fn settled(&self) -> impl Future<Output = ()> + '_ {
        let before = self.pending.lock().next;
        rung::until(&self.sent, move || {
            let pending = self.pending.lock();
            let waiting = pending.jobs.range(..before).next().is_some();
            let sending = pending.sending.iter().any(|(seq, _)| *seq < before);
            !waiting && !sending
        })
    }

    /// Whether an invalidation or a write-through of `key` in `namespace` made here has not
    /// reached Redis yet (waiting or being sent; an invalidation of more than one key counts
    /// for every key):
    /// then what Redis holds for the key may be what this instance just invalidated, and
    /// this instance would never hear of it again (it skips its own log entries).
    pub(crate) fn invalidation_pending(&self, namespace: &str, key: &Key) -> bool {
        let pending = self.pending.lock();
        let covers = |job: &Job| match job {
            Job::Invalidate(Invalidation::Key {
                namespace: Some(ns),
                key: k,
            }) => ns == namespace && k == key,
            Job::Invalidate(_) => true,
            // What Redis holds is older than what this instance wrote.
            Job::Store {
                namespace: ns,
                key: k,
                ..
            } => &**ns == namespace && k == key,
            Job::Write { .. } | Job::Unverified => false,
        };
        pending.sending.iter().any(|(_, job)| covers(job))
            || pending
                .by_key
                .get(&(Arc::from(namespace), key.clone()))
                .and_then(|seq| pending.jobs.get(seq))
                .is_some_and(covers)
            || pending.unkeyed > 0
    }

    /// Drops the waiting write-throughs whose key `covers` accepts: another instance's change
    /// of the key, heard of from the log, came after them in Redis's order.
    pub(crate) fn cancel_stores(&self, covers: impl Fn(&str, &Key) -> bool) {
        let mut pending = self.pending.lock();
        let doomed: Vec<u64> = pending
            .jobs
            .iter()
            .filter(|(_, job)| {
                matches!(job, Job::Store { namespace, key, .. } if covers(namespace, key))
            })
            .map(|(&seq, _)| seq)
            .collect();
        for seq in doomed {
            if let Some(job) = pending.jobs.remove(&seq) {
                if let Some(key) = job.key() {
                    pending.by_key.remove(&key);
                }
            }
        }
        drop(pending);
        self.sent.notify_waiters();
    }

    /// Waits until no invalidation or write-through of `key` in `namespace` made here is
    /// waiting or being sent (see [`invalidation_pending`](Self::invalidation_pending)).
    pub(crate) async fn key_settled(&self, namespace: &str, key: &Key) {
        rung::until(&self.sent, || !self.invalidation_pending(namespace, key)).await;
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

    fn pop(outbox: &Outbox) -> Option<(u64, Job)> {
        outbox.pop_batch(1).pop()
    }

    fn write(key: &str, payload: &str) -> Job {
        Job::Write {
            namespace: Arc::from("ns"),
            key: Key::from(key),
            payload: payload.as_bytes().to_vec(),
            ttl: None,
            seen: Seen::default(),
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
        let (_, first) = pop(&outbox).unwrap();
        assert_eq!(
            payload(&first),
            b"1",
            "b first: a's newer job went to the back"
        );
        let (_, second) = pop(&outbox).unwrap();
        assert_eq!(payload(&second), b"2");
        assert!(pop(&outbox).is_none());
    }

    #[test]
    fn a_fill_never_replaces_a_waiting_invalidation() {
        let outbox = Outbox::new(10);
        let key = Invalidation::Key {
            namespace: Some("ns".into()),
            key: Key::from("a"),
        };
        outbox.push(Job::Invalidate(key));
        outbox.push(write("a", "fill"));
        assert_eq!(outbox.len(), 1);
        assert!(matches!(pop(&outbox), Some((_, Job::Invalidate(_)))));
        outbox.push(write("a", "fill"));
        outbox.push(Job::Invalidate(Invalidation::Key {
            namespace: Some("ns".into()),
            key: Key::from("a"),
        }));
        assert_eq!(outbox.len(), 1);
        assert!(
            matches!(pop(&outbox), Some((_, Job::Invalidate(_)))),
            "an invalidation replaces a fill"
        );
    }

    #[test]
    fn an_invalidation_covers_reads_of_its_keys_until_it_is_sent() {
        let outbox = Outbox::new(10);
        let (a, b) = (Key::from("a"), Key::from("b"));
        outbox.push(Job::Invalidate(Invalidation::Key {
            namespace: Some("ns".into()),
            key: a.clone(),
        }));
        assert!(outbox.invalidation_pending("ns", &a));
        assert!(!outbox.invalidation_pending("ns", &b));
        assert!(!outbox.invalidation_pending("other", &a));
        pop(&outbox);
        assert!(outbox.invalidation_pending("ns", &a), "being sent");
        outbox.done();
        assert!(!outbox.invalidation_pending("ns", &a));
        outbox.push(Job::Invalidate(Invalidation::Prefix {
            namespace: Some("ns".into()),
            prefix: Key::from("x"),
        }));
        assert!(
            outbox.invalidation_pending("ns", &b),
            "a prefix may cover any key"
        );
        let (seq, job) = pop(&outbox).unwrap();
        outbox.put_back(seq, job);
        pop(&outbox);
        outbox.done();
        assert!(!outbox.invalidation_pending("ns", &b));
    }

    fn store(key: &str) -> Job {
        Job::Store {
            namespace: Arc::from("ns"),
            key: Key::from(key),
            expires: None,
        }
    }

    #[test]
    fn a_write_through_is_news_a_fill_cannot_replace_and_a_later_change_can() {
        let outbox = Outbox::new(10);
        let a = Key::from("a");
        outbox.push(store("a"));
        outbox.push(write("a", "fill"));
        assert!(matches!(pop(&outbox), Some((_, Job::Store { .. }))));
        assert!(outbox.invalidation_pending("ns", &a), "being sent");
        outbox.done();
        assert!(!outbox.invalidation_pending("ns", &a));
        outbox.push(Job::Invalidate(Invalidation::Key {
            namespace: Some("ns".into()),
            key: a.clone(),
        }));
        outbox.push(store("a"));
        assert_eq!(outbox.len(), 1);
        assert!(matches!(pop(&outbox), Some((_, Job::Store { .. }))));
    }

    #[test]
    fn another_instances_change_cancels_waiting_write_throughs_of_its_key() {
        let outbox = Outbox::new(10);
        outbox.push(store("a"));
        outbox.push(store("b"));
        outbox.cancel_stores(|ns, key| ns == "ns" && key.as_bytes() == b"a");
        assert_eq!(outbox.len(), 1);
        assert!(!outbox.invalidation_pending("ns", &Key::from("a")));
        assert!(outbox.invalidation_pending("ns", &Key::from("b")));
    }

    #[tokio::test]
    async fn settled_waits_for_what_was_queued_before_it_and_no_more() {
        let outbox = Outbox::new(10);
        outbox.settled().await;
        outbox.push(store("a"));
        let mut settled = Box::pin(outbox.settled());
        outbox.push(store("b"));
        let short = Duration::from_millis(20);
        assert!(
            tokio::time::timeout(short, &mut settled).await.is_err(),
            "a is queued"
        );
        pop(&outbox);
        assert!(
            tokio::time::timeout(short, &mut settled).await.is_err(),
            "a is being sent"
        );
        outbox.done();
        tokio::time::timeout(Duration::from_secs(5), settled)
            .await
            .expect("settled once a was sent, though b waits");
    }

    #[test]
    fn a_batch_is_jobs_about_one_key_each_or_one_job_about_many() {
        let outbox = Outbox::new(10);
        outbox.push(store("a"));
        outbox.push(write("b", "1"));
        outbox.push(Job::Invalidate(Invalidation::Clear { namespace: None }));
        outbox.push(store("c"));
        let keyed = |batch: Vec<(u64, Job)>| {
            batch
                .iter()
                .map(|(_, job)| job.key().is_some())
                .collect::<Vec<_>>()
        };
        assert_eq!(keyed(outbox.pop_batch(10)), [true, true]);
        assert!(
            outbox.invalidation_pending("ns", &Key::from("a")),
            "all are being sent"
        );
        outbox.done();
        assert_eq!(keyed(outbox.pop_batch(10)), [false], "the clear goes alone");
        outbox.done();
        assert_eq!(keyed(outbox.pop_batch(10)), [true]);
        outbox.done();
        assert!(outbox.pop_batch(10).is_empty());
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
        let (seq, job) = pop(&outbox).unwrap();
        outbox.push(write("a", "2"));
        outbox.put_back(seq, job);
        assert_eq!(outbox.len(), 1);
        assert_eq!(payload(&pop(&outbox).unwrap().1), b"2");
        outbox.push(write("b", "1"));
        let (seq, job) = pop(&outbox).unwrap();
        outbox.push(write("c", "1"));
        outbox.put_back(seq, job);
        assert_eq!(
            payload(&pop(&outbox).unwrap().1),
            b"1",
            "b keeps its place before c"
        );
    }
}
