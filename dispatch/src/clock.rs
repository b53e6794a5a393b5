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

    /// Moves the clock forward by `by` (saturating), then runs every
    /// listener. A dispatcher's listener returns once its timers due by the
    /// new time have fired, so their effects (retries scheduled, stall
    /// signals published) are visible when `advance` returns.
    pub fn advance(&self, by: Duration) {
        {
            let mut offset = self.inner.offset.lock();
            *offset = offset.saturating_add(by);
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
        self.inner
            .start
            .checked_add(offset)
            .unwrap_or(self.inner.start)
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

/// Adds `by` to `t`, saturating far in the future instead of overflowing.
pub(crate) fn deadline(t: Instant, by: Duration) -> Instant {
    t.checked_add(by)
        .or_else(|| t.checked_add(Duration::from_secs(86_400 * 365 * 100)))
        .unwrap_or(t)
}
