//! The injected clock: the dispatcher's [`Clock`] trait, with async sleeps
//! that a [`ManualClock`](evbus_dispatch::ManualClock) wakes when advanced,
//! and an adaptor for `governor`'s rate limiters.

use std::{
    fmt,
    pin::pin,
    sync::Arc,
    time::{Duration, Instant},
};

use evbus_dispatch::Clock;
use tokio::sync::Notify;

/// A shared clock and the notifier its advances ring.
#[derive(Clone)]
pub(crate) struct ClockHandle {
    clock: Arc<dyn Clock>,
    advanced: Arc<Notify>,
}

impl fmt::Debug for ClockHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ClockHandle").field(&self.clock).finish()
    }
}

impl ClockHandle {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Self {
        let advanced = Arc::new(Notify::new());
        let wake = Arc::clone(&advanced);
        clock.on_advance(Box::new(move || wake.notify_waiters()));
        Self { clock, advanced }
    }

    pub(crate) fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Waits until the clock reads `deadline` or later. On a clock that
    /// moves by itself this sleeps in real time; on a manual clock it waits
    /// for advances.
    pub(crate) async fn sleep_until(&self, deadline: Instant) {
        loop {
            // Register for the next advance before reading the time, so an
            // advance between the two is not missed.
            let mut advanced = pin!(self.advanced.notified());
            advanced.as_mut().enable();
            if self.clock.now() >= deadline {
                return;
            }
            match self.clock.real_wait(deadline) {
                Some(wait) => {
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = advanced => {}
                    }
                }
                None => advanced.await,
            }
        }
    }

    pub(crate) async fn sleep(&self, by: Duration) {
        let deadline = self.now().checked_add(by);
        match deadline {
            Some(d) => self.sleep_until(d).await,
            // Past the last representable instant: a deadline that never
            // comes (an endpoint timeout of `Duration::MAX` means none).
            // Retry delays never get here: the policy caps them.
            None => std::future::pending().await,
        }
    }

    /// The clock as `governor` sees it.
    pub(crate) fn governor(&self) -> GovernorClock {
        GovernorClock(Arc::clone(&self.clock))
    }
}

/// The injected clock as a `governor` clock, so rate limits follow it.
#[derive(Clone)]
pub(crate) struct GovernorClock(Arc<dyn Clock>);

impl fmt::Debug for GovernorClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("GovernorClock").field(&self.0).finish()
    }
}

impl governor::clock::Clock for GovernorClock {
    type Instant = Instant;

    fn now(&self) -> Instant {
        self.0.now()
    }
}
