//! Single-producer delivery: what a [`SoloPublisher`](crate::SoloPublisher)
//! does with one event and its route (see `ring_solo.rs` for the protocol).

use crate::{
    ring::{Ring, Sink, SoloGuard},
    stats::PublishReport,
    sync::Arc,
};

/// Delivers `event` to each ring of `route` as the single producer.
///
/// # Safety
///
/// - The caller is the one producer of every ring of its bus (a
///   single-producer bus, whose other publishes are refused), and no other
///   publish of it is in progress.
#[inline]
pub(crate) unsafe fn deliver_solo<E: Clone>(
    sink: &Sink,
    route: &[Arc<Ring<E>>],
    event: E,
) -> PublishReport {
    let mut report = PublishReport::default();
    let Some((last, rest)) = route.split_last() else {
        return report;
    };
    let guard = SoloGuard::begin(sink);
    for ring in rest {
        // SAFETY: the caller's contract, and `guard` is held.
        report.record(unsafe { ring.push_solo(|| event.clone()) });
    }
    // SAFETY: as above.
    report.record(unsafe { last.push_solo(move || event) });
    guard.pushed();
    // Every ring, not only those that accepted: a park bit on a full or
    // closed ring costs one spurious wake, and tracking who accepted costs
    // more than the loads.
    for ring in route {
        ring.settle_solo();
    }
    drop(guard);
    report
}
