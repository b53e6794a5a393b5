//! Publishers: the fast publish path, with a cached registry and counters of
//! their own.

use std::{fmt, marker::PhantomData};

use crate::{
    deliver::{Holding, LeaseHolder, Producer, SoloProducer, To, publish, publish_held},
    error::PublishError,
    full_route::FullRoute,
    kind::{Event, kind_id},
    registry::Registry,
    shared::{Counters, Shared},
    stats::PublishReport,
    sync::{Arc, SnapshotCache},
    topic::Topic,
};

mod sealed {
    pub trait Sealed {}
}

/// How a [`Publisher`] delivers: [`MultiProducer`] (the default) or
/// [`SingleProducer`]. Sealed.
pub trait DeliveryMode: sealed::Sealed + Send + Sync + 'static {
    /// Whether this mode is the single producer of its bus's rings.
    #[doc(hidden)]
    const SOLO: bool;
}

/// Any number of publishers; each delivery claims its slot with a CAS,
/// except while a bus has one `Publisher` (see [`Publisher`]: the lease).
#[derive(Debug)]
pub enum MultiProducer {}

/// The one publisher of a [`Bus::single_producer`](crate::Bus::single_producer)
/// bus; deliveries are plain stores. See [`SoloPublisher`].
#[derive(Debug)]
pub enum SingleProducer {}

impl sealed::Sealed for MultiProducer {}
impl sealed::Sealed for SingleProducer {}
impl DeliveryMode for MultiProducer {
    const SOLO: bool = false;
}
impl DeliveryMode for SingleProducer {
    const SOLO: bool = true;
}

/// A publishing handle with a registry cache and counters of its own.
///
/// A publish through a `Publisher` skips the arc-swap load while the
/// registry is unchanged, and counts with plain stores instead of shared
/// read-modify-writes, which is why its methods take `&mut self`. Clone it
/// to publish from several threads: every clone has its own cache and
/// counters, and the bus sums them in [`Bus::snapshot`](crate::Bus::snapshot).
///
/// # The lease
///
/// The first `Publisher` of a bus takes the bus's *lease*: while it is the
/// bus's only producer, its publishes to two subscriptions or more deliver
/// with plain stores, as a [`SoloPublisher`] does, instead of a CAS per
/// subscription (a publish to one subscription keeps its CAS, which costs
/// less there). A second `Publisher` made while it lives, or a publish
/// through [`Bus`](crate::Bus) itself, revokes the lease for good: that
/// call waits out the holder's publish in flight, if any (a `membarrier`
/// system call on Linux, once), and every delivery claims with a CAS from
/// then on. Dropping the holder frees the lease for the next `Publisher`.
/// Nothing else changes: the lease is invisible but in the cost.
///
/// `M` is the delivery mode; [`SoloPublisher`] is the single-producer one.
pub struct Publisher<E, M: DeliveryMode = MultiProducer> {
    shared: Arc<Shared<E>>,
    cache: SnapshotCache<Registry<E>>,
    counters: Arc<Counters>,
    /// The last route found full, for a multi-producer handle
    /// (`full_route.rs`).
    full: FullRoute<E>,
    /// Whether this handle took its bus's lease (`ring/lease.rs`) and has
    /// not seen it revoked: it pushes into the leased rings with plain
    /// stores.
    holding: Holding,
    mode: PhantomData<M>,
}

/// The only publisher of a single-producer bus.
///
/// Made by [`Bus::single_producer`](crate::Bus::single_producer); not
/// `Clone`. Because no other thread produces into its rings, a delivery is a
/// stamp check, a write and a Release store: no read-modify-write. A publish
/// that reaches at least one subscriber runs two barriers in all, however
/// many subscribers it reaches: one lets a concurrent unsubscribe or
/// shutdown wait out the publish (so no event is stranded in a closed
/// ring), one lets it see a receiver that parked (so no wake-up is lost). On
/// Linux these are compiler fences, paired with a `membarrier` system call
/// on the rare side (a receiver about to sleep, a close); elsewhere they are
/// `fence(SeqCst)`. It gains most when one publish reaches several
/// subscribers (see the README's benchmark table).
///
/// It can move between threads (`Send`); publishes take `&mut self`.
pub type SoloPublisher<E> = Publisher<E, SingleProducer>;

impl<E, M: DeliveryMode> Publisher<E, M> {
    pub(crate) fn new(shared: Arc<Shared<E>>) -> Self {
        let counters = Arc::new(Counters::with_lane(shared.lanes.take()));
        {
            let mut live = shared.publishers.lock();
            live.push(Arc::clone(&counters));
            // Two live: their claims may be in flight at once (step 5a). One
            // that follows a dropped one does not count: the list's lock
            // orders the last publish of the one before the first of this.
            if live.len() > 1 {
                shared.totals.second_producer();
            }
        }
        shared.add_producer();
        // The first multi-producer handle takes the lease; one made while
        // another holds it, or after a publish through `Bus`, revokes it
        // before its first publish (`ring/lease.rs`, L2, L3).
        let leased = !M::SOLO && shared.epoch.lease.take();
        if leased {
            // The barriers of a leased publish are settled before it.
            crate::barrier::init();
        } else if !M::SOLO {
            shared.epoch.revoke_lease();
        }
        Self {
            cache: shared.registry.cache(),
            holding: Holding::new(Arc::clone(&shared.epoch), leased),
            shared,
            counters,
            full: FullRoute::default(),
            mode: PhantomData,
        }
    }
}

impl<E: Clone, M: DeliveryMode> Publisher<E, M> {
    /// Publishes `event` on an explicit topic. See
    /// [`Bus::publish_to`](crate::Bus::publish_to).
    ///
    /// # Errors
    ///
    /// [`PublishError::InvalidTopic`] or [`PublishError::Closed`], with the
    /// event ([`PublishError::NotTheProducer`] for a multi-producer handle
    /// on a single-producer bus).
    pub fn publish_to(&mut self, topic: &str, event: E) -> Result<PublishReport, PublishError<E>> {
        self.publish_inner(To::Name(topic), event)
    }

    /// Publishes `event` on an interned topic. See
    /// [`Bus::publish_on`](crate::Bus::publish_on).
    ///
    /// # Errors
    ///
    /// [`PublishError::ForeignTopic`] or [`PublishError::Closed`], with the
    /// event (or `NotTheProducer`, as for `publish_to`).
    #[inline]
    pub fn publish_on(
        &mut self,
        topic: &Topic,
        event: E,
    ) -> Result<PublishReport, PublishError<E>> {
        if !topic.belongs_to(self.shared.id) {
            return Err(PublishError::ForeignTopic(event));
        }
        self.publish_inner(To::Id(topic.id), event)
    }

    /// Every publish through this handle: the cached registry, this mode's
    /// delivery, and this handle's own counters.
    #[inline(always)]
    fn publish_inner(&mut self, to: To<'_>, event: E) -> Result<PublishReport, PublishError<E>> {
        let registry = self.cache.load();
        if M::SOLO {
            // SAFETY: `M::SOLO` publishers exist only as the one
            // `SoloPublisher` of a single-producer bus, made by
            // `Bus::single_producer` and not `Clone`, and every other
            // publish on that bus is refused (`Registry::refuses`); we hold
            // `&mut self` for the whole publish, so no other is in progress.
            let solo = unsafe { SoloProducer::new(&self.shared.epoch) };
            let producer = Producer::Solo(solo);
            return publish(registry, producer, to, event, &self.counters, true, None);
        }
        let producer = if self.holding.held() {
            // SAFETY: this handle took the lease in `new` and gives it back
            // only when dropped; `&mut self` excludes another publish. A
            // revocation is seen by the publish itself (L2).
            Producer::Leased(unsafe { LeaseHolder::new(&self.holding) })
        } else {
            Producer::Multi
        };
        // A route this handle found full twice in a row (`full_route.rs`).
        if let (Some(held), To::Id(id)) = (self.full.held_topic(registry), to)
            && held == id
        {
            return publish_held(
                registry,
                producer,
                id,
                event,
                &self.counters,
                &mut self.full,
            );
        }
        let full = Some(&mut self.full);
        publish(registry, producer, to, event, &self.counters, true, full)
    }
}

impl<E: Event, M: DeliveryMode> Publisher<E, M> {
    /// Publishes `event` on its kind's topic. See
    /// [`Bus::publish`](crate::Bus::publish).
    ///
    /// # Errors
    ///
    /// [`PublishError::Closed`] with the event after shutdown (or
    /// `NotTheProducer`, as for `publish_to`); [`PublishError::UnknownKind`]
    /// for a kind missing from its `EventKind::ALL`.
    #[inline]
    pub fn publish(&mut self, event: E) -> Result<PublishReport, PublishError<E>> {
        match kind_id(&event) {
            Some(id) => self.publish_inner(To::Id(id), event),
            None => Err(PublishError::UnknownKind(event)),
        }
    }
}

impl<E> Clone for Publisher<E, MultiProducer> {
    fn clone(&self) -> Self {
        Self::new(Arc::clone(&self.shared))
    }
}

/// A publisher is a producer-side handle: the last one of those (with the
/// `Bus` handles) to go closes the bus.
impl<E, M: DeliveryMode> Drop for Publisher<E, M> {
    fn drop(&mut self) {
        // Before the lane goes back: a remembered full route's rings count
        // on their own again (step 8b).
        self.full.forget();
        // After this handle's last push (L2).
        self.holding.release();
        if self.shared.release_producer() {
            // The last one: no snapshot can be taken any more, so its
            // counters need no retiring. Its cached registry is current:
            // every update was made through a producer-side handle, and
            // `release_producer` synchronized with each one's release. A
            // cache hit costs this thread no arc-swap load, which on a
            // thread's first use registers it with arc-swap.
            let registry = self.cache.load();
            self.shared.close_abandoned(registry);
        } else {
            // After the count went down: a snapshot taken in between still
            // finds these counters in the live list, so they are counted
            // once either way.
            self.shared.retire_publisher(&self.counters);
        }
    }
}

impl<E, M: DeliveryMode> fmt::Debug for Publisher<E, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(if M::SOLO {
            "SoloPublisher { .. }"
        } else {
            "Publisher { .. }"
        })
    }
}
