//! Time as the dispatcher sees it: an injectable [`Clock`], the real
//! [`SystemClock`], and a [`ManualClock`] for tests.
//!
//! Retries and watchdogs read deadlines from the clock. The timer thread
//! asks the clock how long to wait in real time
//! ([`Clock::real_wait`]); a manual clock answers "until I am advanced", and
//! [`ManualClock::advance`] returns only after every dispatcher using it has
//! acted on the new time, so a test can assert right after advancing.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, Instant},
};

use crate::sync::Mutex;

/// A source of time for retries and watchdogs.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> Instant;

    /// How long to wait in real time before `deadline` (on this clock) may
    /// have passed, or `None` to wait until the clock is advanced by hand
    /// (see [`Clock::on_advance`]).
    fn real_wait(&self, deadline: Instant) -> Option<Duration> {
        Some(deadline.saturating_duration_since(self.now()))
    }

    /// Registers `listener` to run, on the advancing thread, each time the
    /// clock jumps forward. Clocks that move on their own ignore it.
    fn on_advance(&self, listener: Box<dyn Fn() + Send + Sync>) {
        drop(listener);
    }
}

/// The real monotonic clock: [`Instant::now`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when [`advance`](ManualClock::advance)d.
///
/// Clones share one time.
///
/// ```
/// use std::time::Duration;
/// use evbus::dispatch::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// let t0 = clock.now();
/// clock.advance(Duration::from_secs(5));
/// assert_eq!(clock.now() - t0, Duration::from_secs(5));
/// ```
#[derive(Clone, Default)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

struct ManualInner {
    start: Instant,
    offset: Mutex<Duration>,
    listeners: Mutex<Vec<Arc<dyn Fn() + Send + Sync>>>,
}

impl Default for ManualInner {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            offset: Mutex::new(Duration::ZERO),
            listeners: Mutex::new(Vec::new()),
        }
    }
}

impl ManualClock {
    /// A clock at an arbitrary start time.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `by`, then runs every listener. A
    /// dispatcher's listener returns once its timers due by the new time
    /// have fired, so their effects (retries scheduled, stall signals
    /// published) are visible when `advance` returns.
    ///
    /// Time saturates: past the last instant the platform can represent,
    /// the clock stays at that instant (`advance(Duration::MAX)` jumps to
    /// the end of time, where every deadline has passed). It never moves
    /// back.
    pub fn advance(&self, by: Duration) {
        {
            let start = self.inner.start;
            let mut offset = self.inner.offset.lock();
            *offset = deadline(start, offset.saturating_add(by)) - start;
        }
        // Clone the list so a listener may register another one.
        let listeners = self.inner.listeners.lock().clone();
        for listener in listeners {
            listener();
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        let offset = *self.inner.offset.lock();
        // `advance` keeps `start + offset` representable.
        deadline(self.inner.start, offset)
    }

    fn real_wait(&self, _deadline: Instant) -> Option<Duration> {
        None
    }

    fn on_advance(&self, listener: Box<dyn Fn() + Send + Sync>) {
        self.inner.listeners.lock().push(Arc::from(listener));
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("elapsed", &*self.inner.offset.lock())
            .finish_non_exhaustive()
    }
}

/// `t + by`, saturating at the last instant the platform can represent.
///
/// Every deadline in this crate (retries, stall checks, depth scans, the
/// real-time waits of `wait_idle`, `wait_settled` and shutdown) comes from
/// here. A saturated deadline is one the system clock never reaches, so it
/// means "no deadline"; only a [`ManualClock`] advanced that far reaches it
/// (and stays there), so nothing due "after the end of time" fires early
/// and nothing fires at the start of time instead.
pub(crate) fn deadline(t: Instant, by: Duration) -> Instant {
    if let Some(sum) = t.checked_add(by) {
        return sum;
    }
    // Bisect on nanoseconds: `t + lo` is representable, `t + hi` is not.
    // About a hundred `checked_add`s, on this overflow path only.
    let (mut lo, mut hi) = (0u128, by.as_nanos());
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if t.checked_add(from_nanos(mid)).is_some() {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    t.checked_add(from_nanos(lo)).unwrap_or(t)
}

/// A duration of `n` nanoseconds; `n` is at most `Duration::MAX` in
/// nanoseconds, so the seconds fit in a `u64`.
fn from_nanos(n: u128) -> Duration {
    const NANOS_PER_SEC: u128 = 1_000_000_000;
    let secs = u64::try_from(n / NANOS_PER_SEC).unwrap_or(u64::MAX);
    // The remainder is below 10^9.
    Duration::new(secs, (n % NANOS_PER_SEC) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_saturate_at_the_last_representable_instant() {
        let t = Instant::now();
        assert_eq!(
            deadline(t, Duration::from_secs(3)),
            t + Duration::from_secs(3)
        );
        let end = deadline(t, Duration::MAX);
        assert!(end > t);
        assert!(end.checked_add(Duration::from_nanos(1)).is_none());
        assert_eq!(deadline(end, Duration::from_secs(1)), end);
        assert_eq!(deadline(end, Duration::ZERO), end);
        let later = deadline(t, Duration::from_secs(1));
        assert_eq!(deadline(later, Duration::MAX), end);
    }

    #[test]
    fn from_nanos_round_trips() {
        for d in [Duration::ZERO, Duration::new(5, 7), Duration::MAX] {
            assert_eq!(from_nanos(d.as_nanos()), d);
        }
    }
}
