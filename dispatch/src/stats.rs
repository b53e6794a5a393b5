//! Per-handler counters and the shutdown report.

use std::fmt;

/// The priority of a handler. When several handlers take the same event, a
/// higher priority runs first; registration order breaks ties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Priority {
    /// Runs before `Normal` and `Low`.
    High,
    /// The default.
    #[default]
    Normal,
    /// Runs after `High` and `Normal`.
    Low,
}

impl Priority {
    /// `"high"`, `"normal"` or `"low"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Counters of one handler, read one by one (exact when the handler is
/// quiet).
///
/// Every live event taken out of the ring counts once in `received` and,
/// once settled, in exactly one of `handled`, `dead_lettered`, `skipped` or
/// `abandoned`. Each failed attempt on a live event counts once in `errors`
/// or `panics`, and each retry of one in `retries`.
///
/// A replayed event (one whose [`Event::replay_mark`](evbus_core::Event::replay_mark)
/// is `Some`, dry run or not) was counted when it was first handled, so it
/// counts in the replay counters instead, never in the live ones: once in
/// `replayed` and, once settled, in exactly one of `replay_handled`,
/// `skipped_dry_run` or `replay_failed`; each failed attempt on it counts in
/// `replay_errors`. The metrics built from these rows follow the same split.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct HandlerStats {
    /// The handler's name, unique within its dispatcher.
    pub name: String,
    /// Its priority.
    pub priority: Priority,
    /// The patterns of its filter.
    pub filter: Vec<String>,
    /// Whether it is enabled now.
    pub enabled: bool,
    /// Events taken out of its ring.
    pub received: u64,
    /// Events the handler returned `Ok` for (on any attempt).
    pub handled: u64,
    /// Attempts that returned `Err`.
    pub errors: u64,
    /// Attempts that panicked.
    pub panics: u64,
    /// Retries scheduled after a failed attempt.
    pub retries: u64,
    /// Events sent to the dead-letter topic after the last attempt failed.
    pub dead_lettered: u64,
    /// Events taken while the handler was disabled, and not run.
    pub skipped: u64,
    /// Events whose pending retry shutdown abandoned.
    pub abandoned: u64,
    /// Panics raised by user code other than the handler call while the
    /// dispatcher acted for this handler, each contained and counted here:
    /// an event's `Drop` (after the call, or when skipped or abandoned), an
    /// event's `Clone` while its dead letter is published, a signal
    /// subscriber's waker, the error hook (one per hook call, however often
    /// its panic payload panics again), the `Drop` of the handler's captured
    /// state. The event's own outcome is counted as usual (`handled`,
    /// `dead_lettered`, ...). Absent in stats serialized before it existed.
    #[cfg_attr(feature = "serde", serde(default))]
    pub contained_panics: u64,
    /// Replayed events taken out of its ring (not in `received`). Absent in
    /// stats serialized before it existed, as are the other replay counters.
    #[cfg_attr(feature = "serde", serde(default))]
    pub replayed: u64,
    /// Replayed events the handler returned `Ok` for (not in `handled`).
    #[cfg_attr(feature = "serde", serde(default))]
    pub replay_handled: u64,
    /// Dry-run events not run because the handler was registered with
    /// [`HandlerOptions::skip_dry_run`](crate::HandlerOptions::skip_dry_run).
    #[cfg_attr(feature = "serde", serde(default))]
    pub skipped_dry_run: u64,
    /// Failed attempts (`Err` or panic) on replayed events (not in `errors`,
    /// `panics` or `retries`).
    #[cfg_attr(feature = "serde", serde(default))]
    pub replay_errors: u64,
    /// Replayed events settled without `Ok`: dead-lettered after the last
    /// attempt, abandoned at shutdown, or skipped because the handler was
    /// disabled or unregistered (not in `dead_lettered`, `abandoned` or
    /// `skipped`).
    #[cfg_attr(feature = "serde", serde(default))]
    pub replay_failed: u64,
    /// Events its ring accepted (see `SubscriptionStats::delivered`).
    pub delivered: u64,
    /// Events its ring dropped (see `SubscriptionStats::dropped`).
    pub dropped: u64,
    /// Events buffered in its ring now.
    pub queued: usize,
    /// Its ring's capacity.
    pub capacity: usize,
}
