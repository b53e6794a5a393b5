//! `tracing` events of the core (feature `tracing`), all with target
//! `"evbus"`.
//!
//! | event | level | when |
//! |---|---|---|
//! | `subscribed` | debug | a subscription is registered |
//! | `unsubscribed` | debug | it leaves the registry (unsubscribe or drop) |
//! | `dropping` | warn | its ring loses its first event after a clean period |
//! | `recovered` | info | its receiver drained the ring empty after losses |
//! | `shut down` | info | [`Bus::shutdown`](crate::Bus::shutdown) closes the bus |
//! | `membarrier failed` | error | the process falls back from asymmetric barriers to full fences (`barrier.rs`), once |
//!
//! A "clean period" starts when the receiver finds the ring empty, so a
//! subscriber that falls behind produces one `dropping` event per episode,
//! not one per lost event; the `recovered` event says how many it lost
//! (counted without a lock, so exact only when the ring is quiet).
//!
//! Without the feature this module is not compiled and the call sites are
//! `cfg`'d out: nothing is left on any path.

use crate::{policy::Overflow, stats::ShutdownReport};

/// Identity of a ring in its events.
#[derive(Debug, Clone, Default)]
pub(crate) struct TraceInfo {
    pub(crate) id: u64,
    pub(crate) name: Option<crate::sync::StdArc<str>>,
}

pub(crate) fn subscribed(info: &TraceInfo, patterns: &[String], capacity: usize, policy: Overflow) {
    tracing::debug!(
        target: "evbus",
        subscription = info.id,
        name = info.name.as_deref(),
        ?patterns,
        capacity,
        ?policy,
        "subscribed"
    );
}

pub(crate) fn unsubscribed(info: &TraceInfo, delivered: u64, dropped: u64) {
    tracing::debug!(
        target: "evbus",
        subscription = info.id,
        name = info.name.as_deref(),
        delivered,
        dropped,
        "unsubscribed"
    );
}

#[cold]
pub(crate) fn drop_started(info: &TraceInfo, capacity: usize, policy: Overflow) {
    tracing::warn!(
        target: "evbus",
        subscription = info.id,
        name = info.name.as_deref(),
        capacity,
        ?policy,
        "dropping: ring full, events are being lost"
    );
}

#[cold]
pub(crate) fn drop_ended(info: &TraceInfo, lost: u64) {
    tracing::info!(
        target: "evbus",
        subscription = info.id,
        name = info.name.as_deref(),
        lost,
        "recovered: ring drained after losing events"
    );
}

pub(crate) fn shut_down(report: &ShutdownReport) {
    tracing::info!(
        target: "evbus",
        closed = report.closed,
        buffered = report.buffered,
        "shut down"
    );
}

/// The `membarrier` system call failed after registration succeeded (see
/// `barrier.rs`): from now on both sides of every barrier pair take full
/// fences. A single-producer publish or `Block` pop running at that moment
/// may have paired with a failed heavy barrier; a parked `Block` producer
/// recovers within its 100 ms sleep slice.
#[cold]
pub(crate) fn barrier_degraded(errno: i32) {
    tracing::error!(
        target: "evbus",
        errno,
        "membarrier failed: falling back to full fences; a wake-up racing this moment may \
         be late by up to one 100 ms sleep slice"
    );
}
