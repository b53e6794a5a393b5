//! The single producer of a [`Bus::single_producer`](crate::Bus::single_producer)
//! bus: delivers with plain stores instead of a CAS per ring.

use std::fmt;

use smallvec::SmallVec;

use crate::{
    bus::{Shared, Topic},
    error::PublishError,
    kind::{Event, EventKind},
    publisher::Counters,
    registry::Registry,
    ring::{Ring, SoloGuard},
    stats::PublishReport,
    sync::{Arc, SnapshotCache},
    topic::validate_topic,
};

/// The only publisher of a single-producer bus.
///
/// Made by [`Bus::single_producer`](crate::Bus::single_producer); not
/// `Clone`. Because no other thread produces into its rings, a delivery is a
/// stamp check, a write and a Release store: no read-modify-write. A publish
/// that reaches at least one subscriber pays two `fence(SeqCst)` in all,
/// however many subscribers it reaches: one lets a concurrent unsubscribe or
/// shutdown wait out the publish (so no event is stranded in a closed
/// ring), one lets it see a receiver that parked (so no wake-up is lost).
/// With one subscriber that makes it slower than a [`Publisher`]; from about
/// four subscribers on, faster (see the README's benchmark table).
///
/// It can move between threads (`Send`), and publishes take `&mut self`.
///
/// [`Publisher`]: crate::Publisher
pub struct SoloPublisher<E> {
    shared: Arc<Shared<E>>,
    cache: SnapshotCache<Registry<E>>,
    counters: Arc<Counters>,
}

impl<E> SoloPublisher<E> {
    pub(crate) fn new(shared: Arc<Shared<E>>) -> Self {
        let counters = Arc::new(Counters::default());
        shared.publishers.lock().push(Arc::clone(&counters));
        Self {
            cache: shared.registry.cache(),
            shared,
            counters,
        }
    }
}

/// Delivers `event` to each ring of `route` as the single producer.
#[inline]
fn deliver_solo<E: Clone>(
    sink: &crate::ring::Sink,
    route: &[Arc<Ring<E>>],
    event: E,
) -> PublishReport {
    let mut report = PublishReport::default();
    let Some((last, rest)) = route.split_last() else {
        return report;
    };
    let guard = SoloGuard::begin(sink);
    for ring in rest {
        // SAFETY: the bus's one `SoloPublisher` is the only producer of its
        // rings (other publishes are refused), `&mut self` makes this the only
        // publish in progress, and `guard` is held.
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

impl<E: Clone> SoloPublisher<E> {
    /// Publishes `event` on an interned topic.
    ///
    /// # Errors
    ///
    /// [`PublishError::ForeignTopic`] or [`PublishError::Closed`], with the
    /// event.
    #[inline]
    pub fn publish_on(
        &mut self,
        topic: &Topic,
        event: E,
    ) -> Result<PublishReport, PublishError<E>> {
        if !topic.belongs_to(self.shared.id) {
            return Err(PublishError::ForeignTopic(event));
        }
        self.publish_id(topic.id, event)
    }

    #[inline]
    fn publish_id(&mut self, id: u32, event: E) -> Result<PublishReport, PublishError<E>> {
        let registry = self.cache.load();
        if registry.closed {
            return Err(PublishError::Closed(event));
        }
        let report = deliver_solo(&self.shared.sink, registry.route(id), event);
        self.counters.record_owned(&report);
        Ok(report)
    }

    /// Publishes `event` on an explicit topic (see
    /// [`Bus::publish_to`](crate::Bus::publish_to)).
    ///
    /// # Errors
    ///
    /// [`PublishError::InvalidTopic`] or [`PublishError::Closed`], with the
    /// event.
    pub fn publish_to(&mut self, topic: &str, event: E) -> Result<PublishReport, PublishError<E>> {
        let registry = self.cache.load();
        if registry.closed {
            return Err(PublishError::Closed(event));
        }
        let report = if let Some(id) = registry.topic_id(topic) {
            deliver_solo(&self.shared.sink, registry.route(id), event)
        } else {
            if let Err(err) = validate_topic(topic) {
                return Err(PublishError::InvalidTopic(event, err));
            }
            let mut route: SmallVec<[Arc<Ring<E>>; 8]> = SmallVec::new();
            registry.resolve(topic, |ring| route.push(Arc::clone(ring)));
            deliver_solo(&self.shared.sink, &route, event)
        };
        self.counters.record_owned(&report);
        Ok(report)
    }
}

impl<E: Event> SoloPublisher<E> {
    /// Publishes `event` on its kind's topic.
    ///
    /// # Errors
    ///
    /// [`PublishError::Closed`] with the event after shutdown.
    #[inline]
    pub fn publish(&mut self, event: E) -> Result<PublishReport, PublishError<E>> {
        let id = event.kind().index() as u32;
        self.publish_id(id, event)
    }
}

impl<E> Drop for SoloPublisher<E> {
    fn drop(&mut self) {
        self.shared.retire_publisher(&self.counters);
    }
}

impl<E> fmt::Debug for SoloPublisher<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("SoloPublisher { .. }")
    }
}
