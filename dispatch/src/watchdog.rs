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

use crossbeam_channel::Sender;
use evbus_core::Event;

use crate::{
    runtime::Runtime,
    signal::{Signal, StallAlarm},
    sync::Mutex,
    timer::{Msg, deadline},
};

pub(crate) struct StallWatch<E> {
    name: Arc<str>,
    after: Duration,
    state: Mutex<WatchState>,
    timer: Sender<Msg<E>>,
}

struct WatchState {
    last_seen: Instant,
    stalled: bool,
}

impl<E> fmt::Debug for StallWatch<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StallWatch")
            .field("name", &self.name)
            .field("after", &self.after)
            .finish_non_exhaustive()
    }
}

impl<E: Event> StallWatch<E> {
    /// A watchdog that last saw traffic `now`; the caller schedules its
    /// first check at `now + after`.
    pub(crate) fn new(name: &str, after: Duration, now: Instant, timer: Sender<Msg<E>>) -> Self {
        Self {
            name: Arc::from(name),
            after,
            state: Mutex::new(WatchState {
                last_seen: now,
                stalled: false,
            }),
            timer,
        }
    }

    pub(crate) fn after(&self) -> Duration {
        self.after
    }

    /// An event arrived at `now`: stamp it, and if the watchdog had raised
    /// a stall, publish `Recovered` and re-arm the check.
    pub(crate) fn seen(self: &Arc<Self>, rt: &Runtime<E>, now: Instant) {
        let mut st = self.state.lock();
        let quiet_for = now.saturating_duration_since(st.last_seen);
        st.last_seen = now;
        if st.stalled {
            st.stalled = false;
            // Published under the lock, so a later Stall cannot overtake it.
            rt.signal(Signal::Recovered(StallAlarm {
                watchdog: Arc::clone(&self.name),
                quiet_for,
            }));
            let due = deadline(now, self.after);
            let _ = self.timer.send(Msg::Stall(Arc::downgrade(self), due));
        }
    }

    /// The timer's check at `now`: raises the stall once if the watchdog has
    /// been quiet for `after`. Returns when to check next, or `None` while
    /// stalled (recovery re-arms it).
    pub(crate) fn check(&self, rt: &Runtime<E>, now: Instant) -> Option<Instant> {
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
        rt.signal(Signal::Stall(StallAlarm {
            watchdog: Arc::clone(&self.name),
            quiet_for: now.saturating_duration_since(st.last_seen),
        }));
        None
    }
}
