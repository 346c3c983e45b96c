//! Log lines from places a client or the system can make fire continuously (a flood of
//! cross-protocol requests, `accept` failing while descriptors are exhausted, clients refused
//! at `max_clients`), at most one per interval, each saying how many were left out since.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Lets one log line through per `interval`; counts the ones it holds back.
#[derive(Debug)]
pub(crate) struct Throttle {
    interval: Duration,
    /// When a line last went through, and how many were held back since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl Throttle {
    /// At most one line per `interval`.
    pub(crate) const fn new(interval: Duration) -> Self {
        Self {
            interval,
            state: Mutex::new((None, 0)),
        }
    }

    /// At most one line a second (Redis's rate for its security warning).
    pub(crate) const fn per_second() -> Self {
        Self::new(Duration::from_secs(1))
    }

    /// `Some(held back since the last line)` when a line may be logged now, `None` when it
    /// should be left out. Taken only on paths that are already exceptional, so a lock is
    /// cheap enough.
    pub(crate) fn ready(&self) -> Option<u64> {
        let now = Instant::now();
        let mut state = self.state.lock();
        let (last, held_back) = &mut *state;
        if last.is_some_and(|last| now.duration_since(last) < self.interval) {
            *held_back += 1;
            return None;
        }
        *last = Some(now);
        Some(std::mem::take(held_back))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_and_a_count_of_the_rest() {
        let throttle = Throttle::new(Duration::from_secs(3600));
        assert_eq!(throttle.ready(), Some(0));
        assert_eq!(throttle.ready(), None);
        assert_eq!(throttle.ready(), None);
        // Without an interval every line goes through, reporting what was held back.
        let open = Throttle::new(Duration::ZERO);
        assert_eq!(open.ready(), Some(0));
        assert_eq!(open.ready(), Some(0));
        // Once the interval has passed the next line goes through with the count.
        let short = Throttle::new(Duration::from_millis(1));
        assert_eq!(short.ready(), Some(0));
        let held_back = (0..5).filter(|_| short.ready().is_none()).count() as u64;
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(short.ready(), Some(held_back));
    }
}
