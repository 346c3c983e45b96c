//! Single flight for a load whose body borrows from its caller: the path of the `#[cached]`
//! macro.
//!
//! [`Namespace::get_or_load`] spawns its load, which needs a `'static` loader; a cached
//! function's body borrows its arguments (`&self`, `&str` …), so here the leader runs the
//! body in its own future (or on its own thread) instead. That changes what happens when
//! things go wrong:
//!
//! - The leader's future dropped mid-load, or its body panicked: the flight lands as
//!   cancelled and its waiters *take over*: they start again, one becomes the new leader.
//! - The body returned an error: it goes to the leader, whose declared error type it is.
//!   The waiters cannot be given a copy (an error need not be `Clone`), so each runs the body
//!   itself, once, and gets its own error (or value). With fail-safe on, every one of them
//!   gets the stale value instead, if there is one.
//!
//! Timeouts are the body's business: the cache cannot make up an error of its type.

use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::Arc;

use super::flight::{Flight, FlightEnd};
use super::load::{LoadError, Loaded, Required, Source};
use super::namespace::Namespace;
use super::put::Put;
use crate::key::Key;
use crate::HeapSize;

/// What a waiter does once the flight it waited for has landed.
enum Next<V> {
    Answer(Loaded<V>),
    /// The leader got an error: run the body alone.
    RunAlone,
    /// The leader went away: start again.
    Retry,
}

fn next<V>(result: Result<Loaded<Option<V>>, LoadError>, fits: impl Fn(&V) -> bool) -> Next<V> {
    match result {
        Ok(Loaded {
            value: Some(value),
            source,
        }) if fits(&value) => Next::Answer(Loaded { value, source }),
        // A value another kind of caller stored under the same key.
        Ok(Loaded { value: Some(_), .. }) => Next::RunAlone,
        Err(LoadError::Origin(_)) => Next::RunAlone,
        // Cancelled, panicked, or an answer of "not found" (which no borrowing leader gives).
        _ => Next::Retry,
    }
}

/// Lands the flight as cancelled unless disarmed: a leader dropped or unwinding mid-load.
struct Abandon<'a, V>
where
    V: Clone + HeapSize + Send + Sync + 'static,
{
    ns: &'a Namespace<V>,
    key: &'a Key,
    flight: &'a Arc<Flight<V>>,
    armed: bool,
}

impl<V> Drop for Abandon<'_, V>
where
    V: Clone + HeapSize + Send + Sync + 'static,
{
    fn drop(&mut self) {
        if self.armed {
            self.ns
                .land_with(self.key, self.flight, FlightEnd::Cancelled, Put::new());
        }
    }
}

/// A body's error as the flight's waiters see it (they run the body themselves).
#[derive(Debug, thiserror::Error)]
#[error("the call this one waited for failed")]
struct LeaderFailed;

impl<V> Namespace<V>
where
    V: Clone + HeapSize + Send + Sync + 'static,
{
    /// The value for `key`: a hit, or the value of `body` run by this caller or by the
    /// caller it waited for, stored as `put` says. Only values that `fits` accepts are
    /// taken from the cache (the others are misses), so callers sharing a namespace may
    /// store values of different kinds. See the [module docs](self).
    pub(crate) async fn load_borrowed<E, Fut>(
        &self,
        key: Key,
        put: Put,
        fits: impl Fn(&V) -> bool,
        body: Fut,
    ) -> Result<Loaded<V>, E>
    where
        Fut: Future<Output = Result<V, E>>,
    {
        let stale = match self.hit_or_stale(key.as_bytes(), &fits) {
            Ok(hit) => return Ok(hit),
            Err(stale) => stale,
        };
        loop {
            let (flight, leader) = self.inner.flights.join(&key);
            if leader {
                let mut abandon = Abandon {
                    ns: self,
                    key: &key,
                    flight: &flight,
                    armed: true,
                };
                let result = body.await;
                abandon.armed = false;
                return self.lead(&key, &flight, put, result, stale);
            }
            match next(flight.wait().await, &fits) {
                Next::Answer(loaded) => return Ok(loaded),
                Next::RunAlone => return self.alone(&key, put, body.await, stale),
                Next::Retry => {
                    if let Some(found) = self.fitting_hit(key.as_bytes(), &fits) {
                        return Ok(found);
                    }
                }
            }
        }
    }

    /// [`load_borrowed`](Self::load_borrowed) for a synchronous body, run on this thread; a
    /// panic in it lands the flight (its waiters take over) and goes on unwinding.
    pub(crate) fn load_borrowed_blocking<E>(
        &self,
        key: Key,
        put: Put,
        fits: impl Fn(&V) -> bool,
        body: impl FnOnce() -> Result<V, E>,
    ) -> Result<Loaded<V>, E> {
        let stale = match self.hit_or_stale(key.as_bytes(), &fits) {
            Ok(hit) => return Ok(hit),
            Err(stale) => stale,
        };
        loop {
            let (flight, leader) = self.inner.flights.join(&key);
            if leader {
                return match catch_unwind(AssertUnwindSafe(body)) {
                    Ok(result) => self.lead(&key, &flight, put, result, stale),
                    Err(panic) => {
                        self.land_with(&key, &flight, FlightEnd::Cancelled, Put::new());
                        resume_unwind(panic)
                    }
                };
            }
            let landed = flight
                .wait_blocking(None)
                .unwrap_or(Err(LoadError::Cancelled));
            match next(landed, &fits) {
                Next::Answer(loaded) => return Ok(loaded),
                Next::RunAlone => return self.alone(&key, put, body(), stale),
                Next::Retry => {
                    if let Some(found) = self.fitting_hit(key.as_bytes(), &fits) {
                        return Ok(found);
                    }
                }
            }
        }
    }

    /// A fresh hit whose value `fits` (counted as a hit, or a miss).
    fn fitting_hit(&self, key: &[u8], fits: &impl Fn(&V) -> bool) -> Option<Loaded<V>> {
        let (value, _) = self.hit::<Required>(key, fits)?;
        value.map(hit)
    }

    /// A hit that `fits`, or on a miss what the fail-safe may fall back on.
    fn hit_or_stale(&self, key: &[u8], fits: &impl Fn(&V) -> bool) -> Result<Loaded<V>, Option<V>> {
        if let Some(found) = self.fitting_hit(key, fits) {
            return Ok(found);
        }
        Err(self.stale::<Required>(key).flatten().filter(fits))
    }

    /// A leader's result: stored and shared when a value; an error goes to the leader (or
    /// the stale value does), and the waiters are told to run the body themselves.
    fn lead<E>(
        &self,
        key: &Key,
        flight: &Arc<Flight<V>>,
        put: Put,
        result: Result<V, E>,
        stale: Option<V>,
    ) -> Result<Loaded<V>, E> {
        match result {
            Ok(value) => {
                let end = FlightEnd::Value(Some(value.clone()));
                self.land_with(key, flight, end, put);
                Ok(origin(value))
            }
            Err(e) => {
                let end = FlightEnd::Failed(Arc::new(LeaderFailed));
                self.land_with(key, flight, end, Put::new());
                self.stale_or(stale, e)
            }
        }
    }

    /// The result of a body run outside any flight (its leader failed).
    fn alone<E>(
        &self,
        key: &Key,
        put: Put,
        result: Result<V, E>,
        stale: Option<V>,
    ) -> Result<Loaded<V>, E> {
        self.count_load(result.is_err());
        match result {
            Ok(value) => {
                // A value too heavy to cache is still the caller's.
                let _ = self.insert_with(key.clone(), value.clone(), put);
                Ok(origin(value))
            }
            Err(e) => self.stale_or(stale, e),
        }
    }

    fn stale_or<E>(&self, stale: Option<V>, e: E) -> Result<Loaded<V>, E> {
        match stale {
            Some(value) => {
                self.count_stale_served();
                Ok(Loaded {
                    value,
                    source: Source::Stale,
                })
            }
            None => Err(e),
        }
    }
}

fn hit<V>(value: V) -> Loaded<V> {
    Loaded {
        value,
        source: Source::Cache,
    }
}

fn origin<V>(value: V) -> Loaded<V> {
    Loaded {
        value,
        source: Source::Origin,
    }
}
