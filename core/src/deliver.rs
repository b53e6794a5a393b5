//! Delivery: what one publish does with its event once it has a registry,
//! for many producers (a CAS per ring) and for the single producer of a
//! [`Bus::single_producer`](crate::Bus::single_producer) bus (plain stores;
//! see `ring/solo.rs` for the protocol).
//!
//! Every publish method of [`Bus`](crate::Bus) and
//! [`Publisher`](crate::Publisher) is [`publish`]: refuse, resolve the
//! route, deliver, count.

use crate::{
    error::PublishError,
    registry::Registry,
    ring::{Epoch, Push, Ring, SoloGuard},
    stats::PublishReport,
    sync::Arc,
    topic::validate_topic,
};

impl PublishReport {
    /// Adds one ring's outcome.
    #[inline]
    pub(crate) fn record(&mut self, push: Push) {
        match push {
            Push::Accepted => {
                self.matched += 1;
                self.accepted += 1;
            }
            Push::Dropped => {
                self.matched += 1;
                self.dropped += 1;
            }
            // A ring closed by unsubscribe or shutdown after this publish
            // loaded the registry: it no longer counts as a subscriber.
            Push::Closed => {}
        }
    }
}

/// Where a publish goes.
#[derive(Clone, Copy)]
pub(crate) enum To<'a> {
    /// An interned topic (a kind's topic, or a [`Topic`](crate::Topic)).
    Id(u32),
    /// A name, interned or not (`publish_to`).
    Name(&'a str),
}

/// Proof that its holder is the one producer of a single-producer bus, with
/// no other publish of it in progress, for as long as it lives.
#[derive(Clone, Copy)]
pub(crate) struct SoloProducer<'a> {
    epoch: &'a Epoch,
}

impl<'a> SoloProducer<'a> {
    /// # Safety
    ///
    /// - The caller is the one producer of every ring of the bus whose
    ///   epoch is `epoch` (a single-producer bus, whose other publishes are
    ///   refused), and makes no other publish on it while the value lives.
    #[inline(always)]
    pub(crate) unsafe fn new(epoch: &'a Epoch) -> Self {
        Self { epoch }
    }
}

/// One publish on a loaded `registry`: refuse, resolve `to`, deliver
/// (as `solo`, the single producer, if given), then `record` the report.
///
/// A multi-producer publish is refused on a closed or a single-producer
/// bus, the single producer's only on a closed one: one test either way.
#[inline(always)]
pub(crate) fn publish<E: Clone>(
    registry: &Registry<E>,
    solo: Option<SoloProducer<'_>>,
    to: To<'_>,
    event: E,
    record: impl FnOnce(&PublishReport),
) -> Result<PublishReport, PublishError<E>> {
    let refused = match solo {
        Some(_) => registry.closed,
        None => registry.refuses(),
    };
    if refused {
        return Err(registry.refusal(event));
    }
    let send = |route: &[Arc<Ring<E>>], event: E| match solo {
        // SAFETY: a `SoloProducer` is the caller's proof that it is the one
        // producer and that no other publish of it is in progress.
        Some(solo) => unsafe { deliver_solo(solo.epoch, route, event) },
        None => deliver(route, event),
    };
    let report = match to {
        To::Id(id) => send(registry.route(id), event),
        To::Name(topic) => publish_to(registry, topic, event, send)?,
    };
    record(&report);
    Ok(report)
}

/// Delivers `event` to each ring of `route`: a clone to every ring but the
/// last, which takes the original.
#[inline]
fn deliver<E: Clone>(route: &[Arc<Ring<E>>], event: E) -> PublishReport {
    let mut report = PublishReport::default();
    let Some((last, rest)) = route.split_last() else {
        return report;
    };
    for ring in rest {
        report.record(ring.push_with(|| event.clone()));
    }
    report.record(last.push_with(move || event));
    report
}

/// Delivers `event` to each ring of `route` as the single producer.
///
/// # Safety
///
/// - The caller is the one producer of every ring of its bus (a
///   single-producer bus, whose other publishes are refused), and no other
///   publish of it is in progress.
#[inline]
unsafe fn deliver_solo<E: Clone>(epoch: &Epoch, route: &[Arc<Ring<E>>], event: E) -> PublishReport {
    let mut report = PublishReport::default();
    let Some((last, rest)) = route.split_last() else {
        return report;
    };
    let guard = SoloGuard::begin(epoch);
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

/// A publish on the name `topic`, delivering with `deliver`: the route of an
/// interned topic, or one resolved through the pattern index.
#[inline]
fn publish_to<E: Clone>(
    registry: &Registry<E>,
    topic: &str,
    event: E,
    deliver: impl FnOnce(&[Arc<Ring<E>>], E) -> PublishReport,
) -> Result<PublishReport, PublishError<E>> {
    if let Some(id) = registry.topic_id(topic) {
        return Ok(deliver(registry.route(id), event));
    }
    if let Err(err) = validate_topic(topic) {
        return Err(PublishError::InvalidTopic(event, err));
    }
    let mut route: smallvec::SmallVec<[Arc<Ring<E>>; 8]> = smallvec::SmallVec::new();
    registry.resolve(topic, |ring| route.push(Arc::clone(ring)));
    Ok(deliver(&route, event))
}
