//! The stall watchdog: "if nothing matching P arrives for N, publish a
//! stall signal once, and a recovered signal when traffic comes back".
//!
//! A watchdog is an internal handler (so it has its own ring and shows in
//! the stats, named `watchdog.<name>`) that stamps the clock on each event,
//! plus a timer entry that checks the stamp when it could first be stale.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, Instant},
};

use crate::{clock::deadline, signal::StallAlarm, sync::Mutex};

pub(crate) struct StallWatch {
    name: Arc<str>,
    after: Duration,
    state: Mutex<WatchState>,
}

struct WatchState {
    last_seen: Instant,
    stalled: bool,
}

impl fmt::Debug for StallWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StallWatch")
            .field("name", &self.name)
            .field("after", &self.after)
            .finish_non_exhaustive()
    }
}

impl StallWatch {
    /// A watchdog that last saw traffic `now`; the caller schedules its
    /// first check at `now + after`.
    pub(crate) fn new(name: &str, after: Duration, now: Instant) -> Self {
        Self {
            name: Arc::from(name),
            after,
            state: Mutex::new(WatchState {
                last_seen: now,
                stalled: false,
            }),
        }
    }

    pub(crate) fn after(&self) -> Duration {
        self.after
    }

    /// An event arrived at `now`: stamp it. If the watchdog had raised a
    /// stall, calls `recovered` and returns when to check next (the caller
    /// re-arms the timer).
    pub(crate) fn seen(&self, now: Instant, recovered: impl FnOnce(StallAlarm)) -> Option<Instant> {
        let mut st = self.state.lock();
        let quiet_for = now.saturating_duration_since(st.last_seen);
        st.last_seen = now;
        if !st.stalled {
            return None;
        }
        st.stalled = false;
        // Called under the lock, so a later stall cannot overtake it.
        recovered(StallAlarm {
            watchdog: Arc::clone(&self.name),
            quiet_for,
        });
        Some(deadline(now, self.after))
    }

    /// The timer's check at `now`: calls `stalled` once if the watchdog has
    /// been quiet for `after`. Returns when to check next, or `None` while
    /// stalled (recovery re-arms it).
    pub(crate) fn check(&self, now: Instant, stalled: impl FnOnce(StallAlarm)) -> Option<Instant> {
        let mut st = self.state.lock();
        if st.stalled {
            return None;
        }
        let due = deadline(st.last_seen, self.after);
        if now < due {
            return Some(due);
        }
        st.stalled = true;
        #[cfg(feature = "tracing")]
        tracing::warn!(watchdog = %self.name, after = ?self.after, "evbus stall watchdog fired");
        stalled(StallAlarm {
            watchdog: Arc::clone(&self.name),
            quiet_for: now.saturating_duration_since(st.last_seen),
        });
        None
    }
}
