//! Time as the cache sees it.
//!
//! Every deadline in the engine is a count of nanoseconds since the clock's own origin. The
//! production clock reads [`std::time::Instant`]; [`MockClock`] is moved by hand so that tests
//! drive expiry instead of sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The source of time for a cache. Cheap to clone.
///
/// ```
/// use strata::{Cache, MockClock};
/// use std::time::Duration;
///
/// let clock = MockClock::new();
/// let cache: Cache<&str, u32> = Cache::builder()
///     .max_entries(100)
///     .default_ttl(Duration::from_secs(60))
///     .clock(clock.clone())
///     .build()
///     .unwrap();
/// cache.insert("answer", 42).unwrap();
/// clock.advance(Duration::from_secs(61));
/// assert_eq!(cache.get("answer"), None);
/// ```
#[derive(Clone, Debug)]
pub struct Clock(Kind);

#[derive(Clone, Debug)]
enum Kind {
    System(Instant),
    Mock(Arc<AtomicU64>),
}

impl Clock {
    /// The monotonic system clock, with its origin at the moment of the call.
    pub fn system() -> Self {
        Clock(Kind::System(Instant::now()))
    }

    /// Nanoseconds since this clock's origin.
    #[inline]
    pub fn now_nanos(&self) -> u64 {
        match &self.0 {
            // An Instant more than 584 years after the origin saturates: no deadline is that far.
            Kind::System(origin) => u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX),
            Kind::Mock(now) => now.load(Ordering::Acquire),
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

/// A clock that only moves when told to. Clones share the same time.
#[derive(Clone, Debug, Default)]
pub struct MockClock(Arc<AtomicU64>);

impl MockClock {
    /// A clock standing at its origin.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves time forward by `by`, saturating at the end of representable time.
    pub fn advance(&self, by: Duration) {
        let by = duration_to_nanos(by);
        // fetch_update cannot fail with a closure that always returns Some.
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| Some(now.saturating_add(by)));
    }

    /// Nanoseconds since the origin.
    pub fn now_nanos(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

impl From<MockClock> for Clock {
    fn from(mock: MockClock) -> Self {
        Clock(Kind::Mock(mock.0))
    }
}

/// A duration as whole nanoseconds, saturating at `u64::MAX` (about 584 years).
pub(crate) fn duration_to_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
