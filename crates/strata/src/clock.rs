//! Time as the cache sees it.
//!
//! Every deadline in the engine is a count of nanoseconds since the clock's own origin.
//!
//! The system clock on Linux is `CLOCK_MONOTONIC_COARSE`: the kernel's tick-granular monotonic
//! time (4 ms here), read in about 7 ns, where a precise `Instant::now()` costs about 38 ns on
//! the machines we measured, more than half of a whole cache hit. Elsewhere it is `Instant`.
//! A coarse clock lags real time by up to its resolution, so the cache reads it
//! conservatively: deadlines are computed from the clock's reading, and a lookup treats an
//! entry as expired once `deadline <= reading + resolution`. An entry is therefore never
//! returned after its deadline in real time, and may expire up to one resolution early.
//! [`MockClock`] has no resolution and is moved by hand, so tests drive expiry exactly
//! instead of sleeping; what waits on a cache's clock (its reaper) waits for the mock to be
//! moved.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

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
    #[cfg(target_os = "linux")]
    Coarse {
        origin: u64,
        resolution: u64,
    },
    #[cfg_attr(target_os = "linux", allow(dead_code))]
    Precise(Instant),
    Mock(Arc<MockTime>),
}

impl Clock {
    /// The monotonic system clock (coarse on Linux), with its origin at the moment of the call.
    pub fn system() -> Self {
        #[cfg(target_os = "linux")]
        if let (Some(origin), Some(resolution)) = (coarse::now(), coarse::resolution()) {
            return Clock(Kind::Coarse { origin, resolution });
        }
        Clock::precise()
    }

    /// The precise monotonic clock ([`Instant`]), at about five times the cost of a read.
    pub fn precise() -> Self {
        Clock(Kind::Precise(Instant::now()))
    }

    /// Nanoseconds since this clock's origin. It may lag real time by up to
    /// [`resolution_nanos`](Self::resolution_nanos).
    #[inline]
    pub fn now_nanos(&self) -> u64 {
        match &self.0 {
            #[cfg(target_os = "linux")]
            Kind::Coarse { origin, .. } => coarse::now().unwrap_or(*origin).saturating_sub(*origin),
            // An Instant more than 584 years after the origin saturates: no deadline is that far.
            Kind::Precise(origin) => u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX),
            Kind::Mock(time) => time.nanos.load(Ordering::Acquire),
        }
    }

    /// How far a reading may lag real time (0 for the precise and mock clocks).
    #[inline]
    pub fn resolution_nanos(&self) -> u64 {
        match &self.0 {
            #[cfg(target_os = "linux")]
            Kind::Coarse { resolution, .. } => *resolution,
            Kind::Precise(_) | Kind::Mock(_) => 0,
        }
    }

    /// The latest real time the clock could be at now: `now + resolution`. Expiry compares
    /// deadlines against this, so nothing is served late.
    #[inline]
    pub(crate) fn upper_nanos(&self) -> u64 {
        self.now_nanos().saturating_add(self.resolution_nanos())
    }

    /// Blocks the calling thread until this clock reads `at` (nanoseconds since its origin):
    /// a real sleep for the system clocks; for a mock, until it has been advanced that far.
    pub(crate) fn sleep_until(&self, at: u64) {
        match &self.0 {
            Kind::Mock(time) => time.sleep_until(at),
            _ => std::thread::sleep(Duration::from_nanos(at.saturating_sub(self.now_nanos()))),
        }
    }
}

#[cfg(target_os = "linux")]
mod coarse {
    fn read(
        f: unsafe extern "C" fn(libc::clockid_t, *mut libc::timespec) -> libc::c_int,
    ) -> Option<u64> {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
        let rc = unsafe { f(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
        if rc != 0 {
            return None;
        }
        let secs = u64::try_from(ts.tv_sec).ok()?;
        let nanos = u64::try_from(ts.tv_nsec).ok()?;
        Some(secs.saturating_mul(1_000_000_000).saturating_add(nanos))
    }

    #[inline]
    pub(super) fn now() -> Option<u64> {
        read(libc::clock_gettime)
    }

    pub(super) fn resolution() -> Option<u64> {
        read(libc::clock_getres)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

/// A clock that only moves when told to. Clones share the same time.
#[derive(Clone, Debug, Default)]
pub struct MockClock(Arc<MockTime>);

/// A mock clock's time, and the threads sleeping on it (woken by every advance).
#[derive(Debug, Default)]
struct MockTime {
    nanos: AtomicU64,
    /// Held while a sleeper checks the time and while an advance wakes the sleepers, so no
    /// advance falls between a sleeper's check and its wait.
    lock: Mutex<()>,
    advanced: Condvar,
}

impl MockTime {
    fn sleep_until(&self, at: u64) {
        let mut guard = self.lock.lock();
        while self.nanos.load(Ordering::Acquire) < at {
            self.advanced.wait(&mut guard);
        }
    }
}

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
            .nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                Some(now.saturating_add(by))
            });
        let _guard = self.0.lock.lock();
        self.0.advanced.notify_all();
    }

    /// Nanoseconds since the origin.
    pub fn now_nanos(&self) -> u64 {
        self.0.nanos.load(Ordering::Acquire)
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
