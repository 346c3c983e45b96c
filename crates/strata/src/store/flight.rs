//! Single flight's bookkeeping: a [`Flight`] is one load in the air with the callers waiting
//! for it, [`Flights`] is a namespace's table of them by key, and [`FlightEnd`] is how a
//! flight ended. How loads start, land and are shared is in `load.rs`.

use std::collections::HashMap;
use std::error::Error;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::load::{LoadError, Loaded, OriginError, Source};
use crate::key::Key;

/// How a flight ended. `Value(None)` is the origin's "not found".
pub(super) enum FlightEnd<V> {
    Value(Option<V>),
    /// Found in the shared tier, with its remaining TTL and its tags there.
    Shared(V, Option<Duration>, Vec<String>),
    Failed(OriginError),
    Panicked,
    Cancelled,
    TimedOut(Duration),
}

impl<V> FlightEnd<V> {
    /// What a loader that returned (rather than panicked) gave.
    pub(super) fn loaded<E>(loaded: Result<Option<V>, E>) -> Self
    where
        E: Into<Box<dyn Error + Send + Sync + 'static>>,
    {
        match loaded {
            Ok(value) => FlightEnd::Value(value),
            Err(e) => FlightEnd::Failed(Arc::from(e.into())),
        }
    }
}

impl<V: Clone> FlightEnd<V> {
    fn result(&self) -> Result<Loaded<Option<V>>, LoadError> {
        match self {
            FlightEnd::Value(v) => Ok(Loaded {
                value: v.clone(),
                source: Source::Origin,
            }),
            FlightEnd::Shared(v, ..) => Ok(Loaded {
                value: Some(v.clone()),
                source: Source::Shared,
            }),
            FlightEnd::Failed(e) => Err(LoadError::Origin(Arc::clone(e))),
            FlightEnd::Panicked => Err(LoadError::Panicked),
            FlightEnd::Cancelled => Err(LoadError::Cancelled),
            FlightEnd::TimedOut(d) => Err(LoadError::TimedOut(*d)),
        }
    }
}

/// One load in the air and the callers waiting for it.
pub(super) struct Flight<V> {
    /// When the load started (tokio's clock, so a paused test clock times it exactly).
    pub(super) started: tokio::time::Instant,
    /// Set by an invalidation that covers the key while the load is in the air: what the
    /// load read from the origin may predate it, so it answers its callers but is not kept.
    pub(super) invalidated: AtomicBool,
    /// Callers that found the load in the air and joined it instead of starting their own.
    joiners: AtomicUsize,
    end: Mutex<Option<FlightEnd<V>>>,
    /// Wakes blocking waiters.
    landed: Condvar,
    /// Wakes async waiters.
    notify: tokio::sync::Notify,
}

impl<V: Clone> Flight<V> {
    fn new() -> Self {
        Self {
            started: tokio::time::Instant::now(),
            invalidated: AtomicBool::new(false),
            joiners: AtomicUsize::new(0),
            end: Mutex::new(None),
            landed: Condvar::new(),
            notify: tokio::sync::Notify::new(),
        }
    }

    /// Waits for the landing, up to `limit` if given (`None` when that passed first).
    pub(super) fn wait_blocking(
        &self,
        limit: Option<Duration>,
    ) -> Option<Result<Loaded<Option<V>>, LoadError>> {
        let deadline = limit.and_then(|d| Instant::now().checked_add(d));
        let mut end = self.end.lock();
        loop {
            if let Some(done) = end.as_ref() {
                return Some(done.result());
            }
            match deadline {
                Some(at) => {
                    if self.landed.wait_until(&mut end, at).timed_out() && end.is_none() {
                        return None;
                    }
                }
                None => self.landed.wait(&mut end),
            }
        }
    }

    pub(super) async fn wait(&self) -> Result<Loaded<Option<V>>, LoadError> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Registered before the check, so a landing in between is not missed.
            notified.as_mut().enable();
            if let Some(done) = self.end.lock().as_ref() {
                return done.result();
            }
            notified.await;
        }
    }
}

const FLIGHT_SHARDS: usize = 16;

type FlightShard<V> = Mutex<HashMap<Key, Arc<Flight<V>>>>;

/// The flights of one namespace, by key.
pub(crate) struct Flights<V> {
    shards: Box<[FlightShard<V>]>,
    hasher: foldhash::fast::FixedState,
    /// How many flights are in the table, so that an insert with none in the air (nearly
    /// always) marks nothing without taking a lock.
    in_air: AtomicUsize,
}

impl<V: Clone> Flights<V> {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..FLIGHT_SHARDS).map(|_| Mutex::default()).collect(),
            hasher: foldhash::fast::FixedState::default(),
            in_air: AtomicUsize::new(0),
        }
    }

    fn shard(&self, key: &[u8]) -> &FlightShard<V> {
        &self.shards[self.hasher.hash_one(key) as usize % FLIGHT_SHARDS]
    }

    /// The flight for `key` and whether this caller leads it (started it).
    pub(super) fn join(&self, key: &Key) -> (Arc<Flight<V>>, bool) {
        let mut shard = self.shard(key.as_bytes()).lock();
        if let Some(flight) = shard.get(key) {
            flight.joiners.fetch_add(1, Ordering::SeqCst);
            return (Arc::clone(flight), false);
        }
        let flight = Arc::new(Flight::new());
        shard.insert(key.clone(), Arc::clone(&flight));
        self.in_air.fetch_add(1, Ordering::SeqCst);
        (flight, true)
    }

    /// How many callers joined the load of `key` in the air (0 when none is).
    pub(super) fn joiners(&self, key: &[u8]) -> usize {
        let shard = self.shard(key).lock();
        shard
            .get(key)
            .map_or(0, |flight| flight.joiners.load(Ordering::SeqCst))
    }

    /// Marks the flight for `key`, if one is in the air, as overtaken by an invalidation.
    /// Called *before* the invalidation removes the key from the cache; see
    /// [`Namespace::land_with`](super::Namespace::land_with) for why that order makes the
    /// invalidation win.
    pub(crate) fn invalidate(&self, key: &[u8]) {
        // A flight joined after this load began after the change being made: it reads what
        // the change left, so it need not be marked.
        if self.in_air.load(Ordering::SeqCst) == 0 {
            return;
        }
        if let Some(flight) = self.shard(key).lock().get(key) {
            flight.invalidated.store(true, Ordering::SeqCst);
        }
    }

    /// [`invalidate`](Self::invalidate) for every flight whose key `covers` accepts (a
    /// prefix, a pattern, a clear). The table holds only the loads in the air, so walking it
    /// is cheap next to the removal that follows.
    pub(crate) fn invalidate_where(&self, covers: impl Fn(&[u8]) -> bool) {
        for shard in self.shards.iter() {
            for (key, flight) in shard.lock().iter() {
                if covers(key.as_bytes()) {
                    flight.invalidated.store(true, Ordering::SeqCst);
                }
            }
        }
    }

    /// Ends `flight`: records how it ended, takes it out of the table (if it is still the
    /// one for `key`) and wakes its waiters, in that order (see the module docs of `load`).
    pub(super) fn land(&self, key: &Key, flight: &Flight<V>, end: FlightEnd<V>) {
        *flight.end.lock() = Some(end);
        {
            let mut shard = self.shard(key.as_bytes()).lock();
            if shard.get(key).is_some_and(|f| std::ptr::eq(&**f, flight)) {
                shard.remove(key);
                self.in_air.fetch_sub(1, Ordering::SeqCst);
            }
        }
        flight.notify.notify_waiters();
        flight.landed.notify_all();
    }
}
