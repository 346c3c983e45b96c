//! What an accept loop does when accepting goes wrong: [`AcceptBackoff`] waits longer after
//! each failed `accept` (out of file descriptors, say) instead of spinning, and [`LogThrottle`]
//! keeps a storm of failures or refusals (or anything else a client can make happen
//! continuously) to one log line a second. Both listeners of `strata serve`, the admin port's
//! and the Redis port's, use them.
//!
//! Both take the time as an argument, so their policy is tested without a clock.

use std::io;
use std::time::Duration;

use tokio::time::Instant;

/// The wait after the first failed accept in a row.
pub const FIRST_WAIT: Duration = Duration::from_millis(10);

/// The longest wait between two accepts, however many failed in a row.
pub const LONGEST_WAIT: Duration = Duration::from_secs(1);

/// How long an accept loop waits after a failed `accept`: [`FIRST_WAIT`], doubling with
/// each failure in a row up to [`LONGEST_WAIT`], and back to the first after a success.
///
/// Running out of descriptors (`EMFILE`) is the usual failure: accepting again at once fails
/// again, and a loop that retries every few milliseconds burns a core and floods the log
/// while the connections that hold the descriptors need that core to finish. Waiting longer
/// each time lets them; a second at most keeps the port answering soon after they have.
///
/// ```
/// use std::time::Duration;
/// use strata_admin::accept::AcceptBackoff;
///
/// let mut backoff = AcceptBackoff::new();
/// let waits: Vec<Duration> = (0..9).map(|_| backoff.failed()).collect();
/// assert_eq!(waits[0], Duration::from_millis(10));
/// assert_eq!(waits[1], Duration::from_millis(20));
/// assert_eq!(waits[7], Duration::from_secs(1));
/// assert_eq!(waits[8], Duration::from_secs(1));
/// backoff.succeeded();
/// assert_eq!(backoff.failed(), Duration::from_millis(10));
/// ```
#[derive(Debug, Clone)]
pub struct AcceptBackoff {
    next: Duration,
}

impl AcceptBackoff {
    /// A backoff that has seen no failure.
    pub fn new() -> Self {
        Self { next: FIRST_WAIT }
    }

    /// An accept failed: how long to wait before the next one.
    pub fn failed(&mut self) -> Duration {
        let wait = self.next;
        self.next = (wait * 2).min(LONGEST_WAIT);
        wait
    }

    /// An accept succeeded: the next failure waits [`FIRST_WAIT`] again.
    pub fn succeeded(&mut self) {
        self.next = FIRST_WAIT;
    }
}

impl Default for AcceptBackoff {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether a failed `accept` concerns only the connection being accepted (it was reset or
/// aborted before the accept), so the next accept may go ahead at once.
pub fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// At most one log line per [`LogThrottle::EVERY`] for a repeated event, with how many
/// happened since the last line.
///
/// It may be shared (one per kind of event, across every connection that can meet it).
///
/// ```
/// use std::time::Duration;
/// use strata_admin::accept::LogThrottle;
/// use tokio::time::Instant;
///
/// let start = Instant::now();
/// let throttle = LogThrottle::new();
/// assert_eq!(throttle.event(start), Some(1), "the first is logged");
/// assert_eq!(throttle.event(start + Duration::from_millis(10)), None);
/// assert_eq!(throttle.event(start + Duration::from_millis(20)), None);
/// // A second after the last line: logged, counting the two held back.
/// assert_eq!(throttle.event(start + Duration::from_secs(1)), Some(3));
/// ```
#[derive(Debug, Default)]
pub struct LogThrottle {
    /// When a line was last let through, and the events since it. Taken only on paths that
    /// are already exceptional, so a lock costs nothing that matters.
    state: parking_lot::Mutex<(Option<Instant>, u64)>,
}

impl LogThrottle {
    /// The least time between two lines.
    pub const EVERY: Duration = Duration::from_secs(1);

    /// A throttle that has logged nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The event happened at `now`: `Some(n)` if it is to be logged, `n` being the events
    /// since the last line (this one included); `None` if it is held back.
    pub fn event(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock();
        let (last_logged, since) = &mut *state;
        *since += 1;
        let due = last_logged.is_none_or(|last| now.saturating_duration_since(last) >= Self::EVERY);
        if !due {
            return None;
        }
        *last_logged = Some(now);
        Some(std::mem::take(since))
    }

    /// [`event`](Self::event) at the present moment.
    pub fn event_now(&self) -> Option<u64> {
        self.event(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_from_10_ms_to_1_s_and_starts_again_after_a_success() {
        let mut backoff = AcceptBackoff::new();
        let waits: Vec<u64> = (0..10)
            .map(|_| backoff.failed().as_millis() as u64)
            .collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        backoff.succeeded();
        assert_eq!(backoff.failed(), FIRST_WAIT);
    }

    #[test]
    fn a_storm_of_events_is_one_line_a_second() {
        let start = Instant::now();
        let throttle = LogThrottle::new();
        // 50 ms apart for 3 s, as the accept loop once logged: 60 events, 3 lines.
        let lines: Vec<(u64, u64)> = (0..60u64)
            .filter_map(|i| {
                let at = start + Duration::from_millis(50 * i);
                throttle.event(at).map(|n| (i, n))
            })
            .collect();
        assert_eq!(lines, [(0, 1), (20, 20), (40, 20)]);
    }

    #[test]
    fn only_a_reset_or_aborted_connection_is_retried_at_once() {
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert!(is_connection_error(&reset));
        let exhausted = io::Error::from_raw_os_error(24); // EMFILE
        assert!(!is_connection_error(&exhausted));
    }
}
