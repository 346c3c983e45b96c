//! The bound on all clients' buffers together (`[server] max_client_memory`), Redis 7's
//! `maxmemory-clients`: past it, the client holding the most is closed.
//!
//! Each limit of a single client (`max_bulk_len`, `max_query_len`, `output_buffer`) bounds
//! what that client can make the server hold, but not what many hold at once: a dozen clients
//! each sending most of a 60 MiB value, or asking for a reply of 100 copies of a big value,
//! would add up to several times the memory budget. So every connection counts what its
//! buffers hold (read buffer with an unfinished command, arguments the decoder keeps, replies
//! not yet written) into one [`ClientMemory`], and reports it at every point where it may
//! grow: before a read, after each command, while a large reply is being built, before a
//! write. A report that takes the sum past the bound closes the client holding the most (which
//! may be the one reporting): its count is taken off at once and its task is woken to drop
//! its buffers, so other clients reporting in the meantime do not close a second one for the
//! same excess.
//!
//! A report is an atomic swap on the client's own counter, and touches the shared sum only
//! when the count changed. Finding the biggest client walks every client under a lock, but
//! only when the bound is passed, which is the exception.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use strata::DefaultHashBuilder;
use tokio::sync::Notify;

use strata_admin::accept::LogThrottle;

/// What every client's buffers hold together, and the bound on it.
#[derive(Debug)]
pub(crate) struct ClientMemory {
    /// The bound in bytes.
    bound: AtomicUsize,
    /// The sum of every client's count.
    total: AtomicUsize,
    /// Clients closed to bring the sum back under the bound, since start.
    evicted: AtomicU64,
    /// Every connected client's counter, by client id.
    clients: Mutex<HashMap<u64, Arc<Counter>, DefaultHashBuilder>>,
    /// For the warning logged when a client is closed.
    log: LogThrottle,
}

/// One client's count, shared between its connection and the eviction.
#[derive(Debug, Default)]
struct Counter {
    bytes: AtomicUsize,
    /// Set when the client is chosen to be closed; its count is then zero for good.
    evicted: AtomicBool,
    /// Wakes the connection's task when it is chosen while waiting for I/O.
    wake: Notify,
}

/// The client was closed to bring all clients' buffers back under `max_client_memory`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Evicted;

impl ClientMemory {
    /// No clients yet, and a bound of `bound` bytes.
    pub(crate) fn new(bound: u64) -> Self {
        Self {
            bound: AtomicUsize::new(usize::try_from(bound).unwrap_or(usize::MAX)),
            total: AtomicUsize::new(0),
            evicted: AtomicU64::new(0),
            clients: Mutex::new(HashMap::default()),
            log: LogThrottle::new(),
        }
    }

    /// Starts counting the buffers of client `id`; the count goes when the account is dropped.
    pub(crate) fn register(self: &Arc<Self>, id: u64) -> ClientAccount {
        let counter = Arc::new(Counter::default());
        self.clients.lock().insert(id, Arc::clone(&counter));
        ClientAccount {
            memory: Arc::clone(self),
            id,
            counter,
        }
    }

    /// The bound in bytes.
    pub(crate) fn bound(&self) -> u64 {
        self.bound.load(Ordering::Relaxed) as u64
    }

    /// Changes the bound, closing clients at once if the sum is past the new one.
    pub(crate) fn set_bound(&self, bound: u64) {
        let bound = usize::try_from(bound).unwrap_or(usize::MAX);
        self.bound.store(bound, Ordering::Relaxed);
        if self.total.load(Ordering::Relaxed) > bound {
            self.evict_past_bound();
        }
    }

    /// What every client's buffers hold now, in bytes.
    pub(crate) fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed) as u64
    }

    /// Clients closed to keep to the bound, since start.
    pub(crate) fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Closes the biggest clients, one at a time, until the sum is within the bound.
    fn evict_past_bound(&self) {
        let clients = self.clients.lock();
        loop {
            let total = self.total.load(Ordering::Relaxed);
            let bound = self.bound.load(Ordering::Relaxed);
            if total <= bound {
                return;
            }
            let biggest = clients
                .iter()
                .filter(|(_, c)| !c.evicted.load(Ordering::Relaxed))
                .max_by_key(|(_, c)| c.bytes.load(Ordering::Relaxed));
            let Some((&id, victim)) = biggest else { return };
            if victim.bytes.load(Ordering::Relaxed) == 0 {
                // Nobody holds anything: the sum is stale, not a client's doing.
                return;
            }
            victim.evicted.store(true, Ordering::Relaxed);
            // Its buffers are dropped as soon as its task runs; count them gone now so the
            // clients reporting meanwhile are not closed for the same excess.
            let freed = victim.bytes.swap(0, Ordering::Relaxed);
            self.total.fetch_sub(freed, Ordering::Relaxed);
            self.evicted.fetch_add(1, Ordering::Relaxed);
            victim.wake.notify_one();
            if let Some(since_last) = self.log.event_now() {
                tracing::warn!(
                    client = id,
                    bytes = freed,
                    all_clients = total,
                    max_client_memory = bound,
                    events_since_last_warning = since_last,
                    "client closed: all clients' buffers passed max_client_memory and it held \
                     the most"
                );
            }
        }
    }
}

/// One client's entry in [`ClientMemory`]; dropping it takes the client's count off.
#[derive(Debug)]
pub(crate) struct ClientAccount {
    memory: Arc<ClientMemory>,
    id: u64,
    counter: Arc<Counter>,
}

impl ClientAccount {
    /// Sets the client's count to `bytes`, closing the biggest clients if the sum passes the
    /// bound. `Err(Evicted)` when this client was closed (now or earlier): its connection
    /// must stop and drop its buffers.
    pub(crate) fn report(&self, bytes: usize) -> Result<(), Evicted> {
        let counter = &self.counter;
        if counter.evicted.load(Ordering::Relaxed) {
            return Err(Evicted);
        }
        if counter.bytes.load(Ordering::Relaxed) == bytes {
            return Ok(());
        }
        let before = counter.bytes.swap(bytes, Ordering::Relaxed);
        let memory = &*self.memory;
        if bytes <= before {
            memory.total.fetch_sub(before - bytes, Ordering::Relaxed);
            return Ok(());
        }
        let grown = bytes - before;
        let total = memory.total.fetch_add(grown, Ordering::Relaxed) + grown;
        if total > memory.bound.load(Ordering::Relaxed) {
            memory.evict_past_bound();
        }
        if counter.evicted.load(Ordering::Relaxed) {
            Err(Evicted)
        } else {
            Ok(())
        }
    }

    /// Whether this client was chosen to be closed.
    pub(crate) fn is_evicted(&self) -> bool {
        self.counter.evicted.load(Ordering::Relaxed)
    }

    /// Completes when this client is chosen to be closed (at once if it already was).
    pub(crate) async fn evicted(&self) {
        if self.is_evicted() {
            return;
        }
        // `notify_one` leaves a permit when nobody waits, so a choice made between the check
        // above and this wait is not missed.
        self.counter.wake.notified().await;
    }
}

impl Drop for ClientAccount {
    fn drop(&mut self) {
        self.memory.clients.lock().remove(&self.id);
        let left = self.counter.bytes.swap(0, Ordering::Relaxed);
        self.memory.total.fetch_sub(left, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory(bound: u64) -> Arc<ClientMemory> {
        Arc::new(ClientMemory::new(bound))
    }

    #[test]
    fn counts_add_up_and_leave_with_their_client() {
        let memory = memory(1000);
        let a = memory.register(1);
        let b = memory.register(2);
        assert_eq!(a.report(300), Ok(()));
        assert_eq!(b.report(200), Ok(()));
        assert_eq!(memory.total(), 500);
        assert_eq!(a.report(100), Ok(()));
        assert_eq!(memory.total(), 300);
        drop(b);
        assert_eq!(memory.total(), 100);
        assert_eq!(memory.evicted(), 0);
    }

    #[test]
    fn passing_the_bound_closes_the_biggest_client_even_when_another_grew() {
        let memory = memory(1000);
        let small = memory.register(1);
        let big = memory.register(2);
        let growing = memory.register(3);
        assert_eq!(small.report(100), Ok(()));
        assert_eq!(big.report(600), Ok(()));
        // 100 + 600 + 400 passes 1000: the biggest (600) goes, not the one that grew.
        assert_eq!(growing.report(400), Ok(()));
        assert!(big.is_evicted());
        assert_eq!(big.report(10), Err(Evicted), "stays closed");
        assert!(!small.is_evicted() && !growing.is_evicted());
        assert_eq!(memory.total(), 500);
        assert_eq!(memory.evicted(), 1);
        // The one growing is closed when it is the biggest.
        assert_eq!(growing.report(950), Err(Evicted));
        assert_eq!(memory.total(), 100);
        assert_eq!(memory.evicted(), 2);
        drop(big);
        drop(growing);
        assert_eq!(memory.total(), 100);
    }

    #[test]
    fn as_many_clients_go_as_it_takes() {
        let memory = memory(1000);
        let clients: Vec<_> = (0..5).map(|id| memory.register(id)).collect();
        for (client, bytes) in clients.iter().zip([150, 160, 170, 180, 190]) {
            assert_eq!(client.report(bytes), Ok(()));
        }
        // Lowering the bound to 400 (of 850) closes the three biggest.
        memory.set_bound(400);
        let closed: Vec<bool> = clients.iter().map(ClientAccount::is_evicted).collect();
        assert_eq!(closed, [false, false, true, true, true]);
        assert_eq!(memory.total(), 310);
        assert_eq!(memory.evicted(), 3);
        assert_eq!(memory.bound(), 400);
    }

    #[tokio::test]
    async fn a_client_waiting_for_io_is_woken_when_chosen() {
        let memory = memory(100);
        let waiting = memory.register(1);
        let other = memory.register(2);
        assert_eq!(waiting.report(90), Ok(()));
        let woken = tokio::spawn(async move {
            waiting.evicted().await;
            waiting.is_evicted()
        });
        assert_eq!(other.report(20), Ok(()));
        let woken = tokio::time::timeout(std::time::Duration::from_secs(10), woken).await;
        assert_eq!(woken.ok().and_then(Result::ok), Some(true), "woken");
    }
}
