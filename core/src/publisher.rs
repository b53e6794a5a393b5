//! Publishers: the fast publish path, with a cached registry and counters of
//! their own.

use std::fmt;

use crate::{
    bus::{Shared, Topic, deliver, publish_to},
    error::PublishError,
    kind::{Event, EventKind},
    registry::Registry,
    stats::PublishReport,
    sync::{
        Arc, SnapshotCache,
        atomic::{AtomicU64, Ordering},
    },
};

/// Publish counters of one publisher.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    published: AtomicU64,
    no_subscribers: AtomicU64,
}

impl Counters {
    /// Counts a publish made by the single owner of these counters: a plain
    /// load and store, no read-modify-write.
    #[inline]
    pub(crate) fn record_owned(&self, report: &PublishReport) {
        // Relaxed: single writer (the owning `Publisher`, through `&mut`);
        // snapshot readers only need some recent value.
        bump(&self.published);
        if report.matched == 0 {
            bump(&self.no_subscribers);
        }
    }

    /// Counts a publish made through a shared `Bus` handle.
    #[inline]
    pub(crate) fn record_shared(&self, report: &PublishReport) {
        // Relaxed: an independent counter, read only by snapshots.
        self.published.fetch_add(1, Ordering::Relaxed);
        if report.matched == 0 {
            self.no_subscribers.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `(published, no_subscribers)`.
    pub(crate) fn read(&self) -> (u64, u64) {
        (
            self.published.load(Ordering::Relaxed),
            self.no_subscribers.load(Ordering::Relaxed),
        )
    }
}

#[inline]
fn bump(counter: &AtomicU64) {
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// A publishing handle with a registry cache and counters of its own.
///
/// A publish through a `Publisher` skips the arc-swap load while the
/// registry is unchanged, and counts with plain stores instead of shared
/// read-modify-writes, which is why its methods take `&mut self`. Clone it
/// to publish from several threads: every clone has its own cache and
/// counters, and the bus sums them in [`Bus::snapshot`](crate::Bus::snapshot).
pub struct Publisher<E> {
    shared: Arc<Shared<E>>,
    cache: SnapshotCache<Registry<E>>,
    counters: Arc<Counters>,
}

impl<E> Publisher<E> {
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

impl<E: Clone> Publisher<E> {
    /// Publishes `event` on an explicit topic. See
    /// [`Bus::publish_to`](crate::Bus::publish_to).
    ///
    /// # Errors
    ///
    /// [`PublishError::InvalidTopic`] or [`PublishError::Closed`], with the
    /// event.
    pub fn publish_to(&mut self, topic: &str, event: E) -> Result<PublishReport, PublishError<E>> {
        let report = publish_to(self.cache.load(), topic, event)?;
        self.counters.record_owned(&report);
        Ok(report)
    }

    /// Publishes `event` on an interned topic. See
    /// [`Bus::publish_on`](crate::Bus::publish_on).
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
        if registry.refuses() {
            return Err(registry.refusal(event));
        }
        let report = deliver(registry.route(id), event);
        self.counters.record_owned(&report);
        Ok(report)
    }
}

impl<E: Event> Publisher<E> {
    /// Publishes `event` on its kind's topic. See
    /// [`Bus::publish`](crate::Bus::publish).
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

impl<E> Clone for Publisher<E> {
    fn clone(&self) -> Self {
        Self::new(Arc::clone(&self.shared))
    }
}

impl<E> Drop for Publisher<E> {
    fn drop(&mut self) {
        self.shared.retire_publisher(&self.counters);
    }
}

impl<E> fmt::Debug for Publisher<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("Publisher { .. }")
    }
}
