//! The bridge's state and counters: what [`Bridge::state`](crate::Bridge::state),
//! [`Bridge::watch_state`](crate::Bridge::watch_state) and
//! [`Bridge::stats`](crate::Bridge::stats) report.

use std::collections::VecDeque;

use tokio::sync::watch;

use crate::{
    dedupe::IdWindow,
    error::BridgeError,
    sync::{AtomicBool, AtomicU8, AtomicU64, Mutex, Ordering},
};

/// Where the bridge stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum BridgeState {
    /// Not connected yet.
    #[default]
    Connecting,
    /// Connected, keeping up.
    Connected,
    /// The connection was lost; the client is reconnecting. Exports wait
    /// (and are retried); nothing acknowledged is lost.
    Reconnecting,
    /// Connected, but behind: the export ring or an importer's backlog is
    /// above [`BridgeConfig::lag_threshold`](crate::BridgeConfig::lag_threshold).
    Lagging,
    /// Shut down.
    Closed,
}

/// The exporter's counters.
///
/// Once the export task has ended (after [`Bridge::shutdown`](crate::Bridge::shutdown)
/// returns, or [`StatsHandle::export_ended`] resolves after the bridge was
/// dropped), every event that entered the export ring is counted exactly
/// once in one of `acked`, `skipped_imported`, `oversized`, `failed`,
/// `lost` and `abandoned`: no event leaves uncounted.
///
/// More counters may be added in later versions (`#[non_exhaustive]`):
/// read the fields, or start from `ExportStats::default()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ExportStats {
    /// Events taken from the export subscription.
    pub received: u64,
    /// Publishes sent to the server, retries included.
    pub sent: u64,
    /// Events the server acknowledged (stored, or recognised as duplicates).
    pub acked: u64,
    /// Publishes sent again after a timeout or a lost connection.
    pub retried: u64,
    /// Acknowledgements that said "duplicate": the server had the
    /// `Nats-Msg-Id` already (a retry whose first attempt landed, or a
    /// republish after a restart).
    pub deduplicated: u64,
    /// Events not exported because this bridge imported them (no loops).
    pub skipped_imported: u64,
    /// Events the lossy export ring lost (`Lagged`); always 0 when lossless.
    pub lost: u64,
    /// Events larger than the server's `max_payload`, reported.
    pub oversized: u64,
    /// Events that failed otherwise (encoding, retries exhausted), reported.
    pub failed: u64,
    /// Events whose `Drop` panicked in the export task, reported
    /// ([`ExportError::DropPanicked`](crate::ExportError::DropPanicked)).
    /// They are counted besides: each one is also acknowledged, skipped or
    /// failed, as it would be otherwise.
    pub drop_panics: u64,
    /// Events given up when the export task ended before they were
    /// resolved: a bridge dropped, or a [`shutdown`](crate::Bridge::shutdown)
    /// whose timeout ran out. They are the events still in the export
    /// ring, waiting to be sent again, or in flight; one of those in flight
    /// may still have been stored by the server (its acknowledgement was
    /// not awaited). Counted when the export task ends.
    pub abandoned: u64,
    /// Publishes waiting for their acknowledgement now.
    pub in_flight: u64,
    /// Events in the export ring now.
    pub backlog: u64,
}

/// The importers' counters (all durable consumers together).
///
/// More counters may be added in later versions (`#[non_exhaustive]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ImportStats {
    /// Messages pulled from the server, redeliveries included.
    pub received: u64,
    /// Envelopes published on the local bus.
    pub delivered: u64,
    /// Messages acknowledged to the server.
    pub acked: u64,
    /// Messages the server delivered more than once.
    pub redelivered: u64,
    /// Redeliveries dropped because their envelope id was delivered within
    /// the dedupe window.
    pub duplicates: u64,
    /// Messages this bridge exported itself (same origin), acknowledged and
    /// skipped.
    pub own_origin: u64,
    /// Messages that are not envelopes of this bridge (bad subject or
    /// payload), or whose local publish panicked (the payload's `Clone`):
    /// terminated on the server and reported.
    pub rejected: u64,
    /// Imported events whose `Drop` panicked in the bridge, reported
    /// ([`ImportError::DropPanicked`](crate::ImportError::DropPanicked)).
    /// They are counted besides: each message is also a duplicate, a
    /// rejection, or one left for redelivery.
    pub drop_panics: u64,
    /// Acknowledgements that failed to send (the server redelivers them).
    pub ack_errors: u64,
    /// Errors of the pull stream (missed heartbeats while the server is
    /// away, ...).
    pub stream_errors: u64,
    /// Messages pending on the server for the consumers, as last reported.
    pub pending: u64,
}

/// A snapshot of a bridge's state and counters.
///
/// More fields may be added in later versions (`#[non_exhaustive]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct BridgeStats {
    /// The state when the snapshot was taken.
    pub state: BridgeState,
    /// Connections made, reconnections included.
    pub connects: u64,
    /// Connections lost.
    pub disconnects: u64,
    /// The exporter.
    pub export: ExportStats,
    /// The importers.
    pub import: ImportStats,
}

macro_rules! counters {
    ($name:ident { $($field:ident),* $(,)? }) => {
        #[derive(Debug, Default)]
        pub(crate) struct $name {
            $(pub(crate) $field: AtomicU64,)*
        }
    };
}

counters!(ExportCounters {
    received,
    sent,
    acked,
    retried,
    deduplicated,
    skipped_imported,
    lost,
    oversized,
    failed,
    drop_panics,
    abandoned,
    in_flight,
    backlog,
    resolved,
});

counters!(ImportCounters {
    received,
    delivered,
    acked,
    redelivered,
    duplicates,
    own_origin,
    rejected,
    drop_panics,
    ack_errors,
    stream_errors,
    pending,
});

pub(crate) fn bump(c: &AtomicU64) {
    // Relaxed: a statistic (see `sync`).
    c.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

pub(crate) fn set(c: &AtomicU64, v: u64) {
    c.store(v, Ordering::Relaxed);
}

/// How many errors [`Shared::errors`] keeps (the oldest go first).
const MAX_ERRORS: usize = 256;

/// What the bridge's tasks share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) export: ExportCounters,
    pub(crate) import: ImportCounters,
    pub(crate) connects: AtomicU64,
    pub(crate) disconnects: AtomicU64,
    pub(crate) connected: AtomicBool,
    pub(crate) ever_connected: AtomicBool,
    pub(crate) closed: AtomicBool,
    pub(crate) errors: Mutex<VecDeque<BridgeError>>,
    /// Ids this bridge imported: the exporter skips them (no loops).
    pub(crate) imported: Mutex<IdWindow>,
    pub(crate) state: watch::Sender<BridgeState>,
    /// The state last sent on `state`, as a `u8`: `refresh` sends only a
    /// change, without the watch's lock on the common path.
    last_state: AtomicU8,
    /// Bumped (in batches) as `export.resolved` grows, for `flush` to wait
    /// on.
    pub(crate) progress: watch::Sender<u64>,
    /// Raised once the export task has ended and counted what it gave up
    /// (or at the start, for a bridge that exports nothing).
    pub(crate) export_ended: watch::Sender<bool>,
    pub(crate) lag_threshold: u64,
}

impl Shared {
    pub(crate) fn new(imported: IdWindow, lag_threshold: u64) -> Self {
        Shared {
            export: ExportCounters::default(),
            import: ImportCounters::default(),
            connects: AtomicU64::new(0),
            disconnects: AtomicU64::new(0),
            connected: AtomicBool::new(false),
            ever_connected: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            errors: Mutex::new(VecDeque::new()),
            imported: Mutex::new(imported),
            state: watch::Sender::new(BridgeState::Connecting),
            last_state: AtomicU8::new(BridgeState::Connecting as u8),
            progress: watch::Sender::new(0),
            export_ended: watch::Sender::new(false),
            lag_threshold,
        }
    }

    pub(crate) fn report(&self, error: BridgeError) {
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if errors.len() == MAX_ERRORS {
            errors.pop_front();
        }
        errors.push_back(error);
    }

    pub(crate) fn set_connected(&self, connected: bool) {
        // Relaxed: a flag read by `refresh`, which only reports it.
        let was = self.connected.swap(connected, Ordering::Relaxed);
        if connected && !was {
            bump(&self.connects);
            self.ever_connected.store(true, Ordering::Relaxed);
        } else if !connected && was {
            bump(&self.disconnects);
        }
        self.refresh();
    }

    /// One more exported event is resolved (acknowledged, reported or
    /// skipped). The exporter wakes `flush` waiters with
    /// [`publish_progress`](Shared::publish_progress).
    pub(crate) fn resolved(&self) {
        bump(&self.export.resolved);
    }

    /// Wakes the `flush` waiters if the resolved count moved.
    pub(crate) fn publish_progress(&self) {
        let done = get(&self.export.resolved);
        if *self.progress.borrow() != done {
            self.progress.send_replace(done);
        }
    }

    /// Recomputes the state from the flags and backlogs.
    pub(crate) fn refresh(&self) {
        // Relaxed: a cache of the watch's value, written only under the
        // watch's lock below together with the value; a stale read costs
        // one extra locked comparison.
        if self.last_state.load(Ordering::Relaxed) == self.compute() as u8 {
            return;
        }
        self.state.send_if_modified(|s| {
            // Recomputed under the lock: the last writer leaves the watch
            // and the cache equal, and holding the latest state.
            let state = self.compute();
            self.last_state.store(state as u8, Ordering::Relaxed);
            if *s == state {
                false
            } else {
                *s = state;
                true
            }
        });
    }

    fn compute(&self) -> BridgeState {
        if self.closed.load(Ordering::Relaxed) {
            BridgeState::Closed
        } else if !self.connected.load(Ordering::Relaxed) {
            if self.ever_connected.load(Ordering::Relaxed) {
                BridgeState::Reconnecting
            } else {
                BridgeState::Connecting
            }
        } else if get(&self.export.backlog) > self.lag_threshold
            || self.import_backlog() > self.lag_threshold
        {
            BridgeState::Lagging
        } else {
            BridgeState::Connected
        }
    }

    /// Messages pending on the server (not yet delivered to the consumers)
    /// plus those pulled and not yet handled by the delivery thread.
    fn import_backlog(&self) -> u64 {
        let i = &self.import;
        let handled =
            get(&i.delivered) + get(&i.duplicates) + get(&i.own_origin) + get(&i.rejected);
        get(&i.pending) + get(&i.received).saturating_sub(handled)
    }

    pub(crate) fn snapshot(&self) -> BridgeStats {
        let e = &self.export;
        let i = &self.import;
        BridgeStats {
            state: self.compute(),
            connects: get(&self.connects),
            disconnects: get(&self.disconnects),
            export: ExportStats {
                received: get(&e.received),
                sent: get(&e.sent),
                acked: get(&e.acked),
                retried: get(&e.retried),
                deduplicated: get(&e.deduplicated),
                skipped_imported: get(&e.skipped_imported),
                lost: get(&e.lost),
                oversized: get(&e.oversized),
                failed: get(&e.failed),
                drop_panics: get(&e.drop_panics),
                abandoned: get(&e.abandoned),
                in_flight: get(&e.in_flight),
                backlog: get(&e.backlog),
            },
            import: ImportStats {
                received: get(&i.received),
                delivered: get(&i.delivered),
                acked: get(&i.acked),
                redelivered: get(&i.redelivered),
                duplicates: get(&i.duplicates),
                own_origin: get(&i.own_origin),
                rejected: get(&i.rejected),
                drop_panics: get(&i.drop_panics),
                ack_errors: get(&i.ack_errors),
                stream_errors: get(&i.stream_errors),
                pending: get(&i.pending),
            },
        }
    }
}

/// A bridge's counters, readable while it runs and after it was dropped.
///
/// Made by [`Bridge::stats_handle`](crate::Bridge::stats_handle). Dropping
/// a [`Bridge`](crate::Bridge) stops its tasks without waiting for them;
/// the export task counts what it gives up
/// ([`ExportStats::abandoned`]) as it ends, and
/// [`export_ended`](StatsHandle::export_ended) says when that is done.
#[derive(Clone)]
pub struct StatsHandle {
    pub(crate) shared: std::sync::Arc<Shared>,
}

impl std::fmt::Debug for StatsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsHandle")
            .field("stats", &self.stats())
            .finish()
    }
}

impl StatsHandle {
    /// A snapshot of the counters. While the bridge runs, `export.backlog`
    /// is as the export task last saw it (see
    /// [`Bridge::stats`](crate::Bridge::stats) for the ring's length now).
    pub fn stats(&self) -> BridgeStats {
        self.shared.snapshot()
    }

    /// Whether the export task has ended, with every event counted (at
    /// once true for a bridge that exports nothing).
    pub fn is_export_ended(&self) -> bool {
        *self.shared.export_ended.borrow()
    }

    /// Resolves once the export task has ended and counted every event
    /// it gave up: after that, [`stats`](StatsHandle::stats) holds the
    /// final export counters. At once for a bridge that exports nothing.
    /// The task ends after [`Bridge::shutdown`](crate::Bridge::shutdown),
    /// or soon after the bridge is dropped, on the bridge's runtime (or
    /// when that runtime shuts down).
    pub async fn export_ended(&self) {
        let mut ended = self.shared.export_ended.subscribe();
        raised(&mut ended).await;
    }
}

/// Resolves once the flag is (or was ever) raised, or its sender is gone.
pub(crate) async fn raised(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|raised| *raised).await;
}
