//! The bus handle: construction, publish, subscribe, shutdown and
//! snapshots. The state it shares with publishers and subscriptions is in
//! `shared.rs`; what a publish does, in `deliver.rs`.
//!
//! # Synchronization protocol
//!
//! - The registry is a [`SnapshotCell`] (see
//!   `shared.rs`): publishers load it without a lock; subscribe,
//!   unsubscribe and topic interning update it with `rcu`; shutdown
//!   replaces it with a closed successor, also with `rcu`.
//! - Closing a ring is the ring's own `fetch_or` (see `ring/mod.rs`), so
//!   when [`Subscription::unsubscribe`] and [`Bus::shutdown`] race, exactly
//!   one of them closes each ring.
//! - A publish that loaded the registry before shutdown may still reach rings
//!   that shutdown has not closed yet. Those events are buffered and drained
//!   by their receivers, like any other: nothing is stranded, nothing is lost
//!   uncounted.

use std::{fmt, sync::atomic::AtomicU64 as StdAtomicU64};

use crossbeam_utils::CachePadded;

#[cfg(feature = "latency")]
use crate::latency::LatencySampling;
use crate::{
    deliver::{Producer, To, publish},
    error::{KindTableError, PublishError, SubscribeError},
    filter::Filter,
    kind::{Event, EventKind, kind_id},
    policy::{Overflow, SubscribeOptions},
    publisher::{Publisher, SoloPublisher},
    registry::{Registry, SubEntry},
    ring::{Epoch, LanePool, Ring, Totals},
    shared::{Counters, Retired, Shared, Unfolded, sub_stats},
    stats::{BusSnapshot, PublishReport, ShutdownReport, SubscriptionStats},
    subscription::Subscription,
    sync::{
        Arc, Mutex, SnapshotCell, StdArc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    topic::{Topic, TopicError, validate_topic},
};

/// Bus identities, so a [`Topic`] handle cannot be used on another bus.
/// A plain std atomic: it only hands out ids and is part of no protocol that
/// the loom models check (and loom's atomics cannot be `static`).
static NEXT_BUS_ID: StdAtomicU64 = StdAtomicU64::new(1);

/// A lock-free, typed, in-process event bus.
///
/// `Bus` is a cheap handle: clones share one bus. Publish through the bus
/// itself, or through a [`Publisher`], which caches the registry and keeps
/// its own counters (the fast path).
///
/// # Examples
///
/// ```
/// use evbus::{Bus, Event, EventKind};
///
/// #[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// enum Kind { Tick }
/// impl EventKind for Kind {
///     const ALL: &'static [Self] = &[Kind::Tick];
///     fn topic(self) -> &'static str { "clock.tick" }
///     fn index(self) -> usize { self as usize }
/// }
/// #[derive(Debug, Clone)]
/// struct Tick(u64);
/// impl Event for Tick {
///     type Kind = Kind;
///     fn kind(&self) -> Kind { Kind::Tick }
/// }
///
/// let bus = Bus::<Tick>::new();
/// let mut sub = bus.subscribe("clock.*")?;
/// bus.publish(Tick(1)).unwrap();
/// assert_eq!(sub.try_recv().unwrap().0, 1);
/// # Ok::<(), evbus::SubscribeError>(())
/// ```
pub struct Bus<E> {
    shared: Arc<Shared<E>>,
}

impl<E> Clone for Bus<E> {
    fn clone(&self) -> Self {
        self.shared.add_producer();
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The last producer-side handle (a `Bus` or a [`Publisher`]) to go shuts
/// the bus down; see the crate docs' "Closing".
impl<E> Drop for Bus<E> {
    fn drop(&mut self) {
        if self.shared.release_producer() {
            self.shared.close_abandoned(&self.shared.registry.load());
        }
    }
}

impl<E> fmt::Debug for Bus<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("Bus { .. }")
    }
}

impl<E: Event> Default for Bus<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: Event> Bus<E> {
    /// Creates a bus for events of type `E`.
    ///
    /// # Panics
    ///
    /// If `E::Kind` is inconsistent (see [`Bus::try_new`]); that is a bug in
    /// the kind enum, not bad input.
    #[track_caller]
    pub fn new() -> Self {
        match Self::try_new() {
            Ok(bus) => bus,
            Err(err) => panic!("invalid EventKind table: {err}"),
        }
    }

    /// Creates a bus, checking the kind table of `E::Kind`.
    ///
    /// # Errors
    ///
    /// [`KindTableError`] if a kind topic breaks the topic rules, two kinds
    /// share a topic, or `index` disagrees with the order of `ALL`.
    pub fn try_new() -> Result<Self, KindTableError> {
        Ok(Self::with_registry(Self::kind_registry()?))
    }

    /// Creates a single-producer bus and its one publisher.
    ///
    /// The [`SoloPublisher`] is not `Clone`: it is the only producer of
    /// every ring, so a delivery is a plain store instead of a CAS, as in
    /// the disruptor's single-producer mode (see [`SoloPublisher`] for the
    /// costs). Other publishes on this bus ([`Bus::publish`], a
    /// [`Publisher`]) return [`PublishError::NotTheProducer`], and
    /// subscriptions use [`Overflow::DropNewest`] or [`Overflow::Block`]
    /// (a full `Block` ring makes the publisher wait, as on any bus), not
    /// [`Overflow::DropOldest`].
    ///
    /// When one thread does all the publishing, this mode makes it a
    /// guarantee: a bus made by [`Bus::new`] gets the same plain-store
    /// deliveries while it has one [`Publisher`] (the lease, see there),
    /// and loses them when a second producer comes. A multi-producer
    /// delivery claims its slot with a CAS on the ring's tail, which waits
    /// for the slot stores before it, so the line a receiver on another
    /// core polls holds each claim up (`BENCHMARKS.md`, scenario 9); here
    /// the producer's position is its own.
    ///
    /// # Errors
    ///
    /// As [`Bus::try_new`].
    pub fn single_producer() -> Result<(Self, SoloPublisher<E>), KindTableError> {
        let mut registry = Self::kind_registry()?;
        registry.solo = true;
        // Settle the asymmetric barriers before any publish can use them.
        crate::barrier::init();
        let bus = Self::with_registry(registry);
        let publisher = SoloPublisher::new(Arc::clone(&bus.shared));
        Ok((bus, publisher))
    }

    /// A registry with every kind topic interned, in kind order.
    fn kind_registry() -> Result<Registry<E>, KindTableError> {
        let mut registry = Registry::new();
        for (i, kind) in E::Kind::ALL.iter().enumerate() {
            validate_topic(kind.topic())
                .map_err(|e| KindTableError::InvalidTopic(kind.topic(), e))?;
            if kind.index() != i {
                return Err(KindTableError::IndexMismatch {
                    topic: kind.topic(),
                    index: kind.index(),
                    position: i,
                });
            }
            if registry.intern(kind.topic()) as usize != i {
                return Err(KindTableError::DuplicateTopic(kind.topic()));
            }
        }
        Ok(registry)
    }

    /// Publishes `event` on its kind's topic.
    ///
    /// Never blocks, unless a matching subscription uses
    /// [`Overflow::Block`]. A full ring drops the
    /// event for that subscriber only, and counts it.
    ///
    /// # Errors
    ///
    /// [`PublishError::Closed`] with the event after shutdown;
    /// [`PublishError::UnknownKind`] for a kind missing from
    /// [`EventKind::ALL`].
    ///
    /// # Note
    ///
    /// `Ok` does not mean anyone will read the event: check the report's
    /// `accepted`.
    pub fn publish(&self, event: E) -> Result<PublishReport, PublishError<E>> {
        match kind_id(&event) {
            Some(id) => self.publish_inner(To::Id(id), event),
            None => Err(PublishError::UnknownKind(event)),
        }
    }

    /// Subscribes to the events of `kinds`, with default options.
    ///
    /// # Errors
    ///
    /// See [`Bus::subscribe_with`].
    pub fn subscribe_kinds(&self, kinds: &[E::Kind]) -> Result<Subscription<E>, SubscribeError> {
        self.subscribe_with(Filter::kinds(kinds)?, SubscribeOptions::default())
    }
}

impl<E: Clone + Send + 'static> Bus<E> {
    fn with_registry(registry: Registry<E>) -> Self {
        Self {
            shared: Arc::new(Shared {
                id: NEXT_BUS_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                next_sub_id: AtomicU64::new(1),
                // This handle.
                producers: AtomicUsize::new(1),
                direct: CachePadded::new(Counters::default()),
                publishers: Mutex::new(Vec::new()),
                retired: Mutex::new(Retired::default()),
                lanes: LanePool::default(),
                totals: Arc::new(Totals::for_bus()),
                unfolded: Mutex::new(Unfolded::default()),
                epoch: Arc::new(if registry.solo {
                    Epoch::single_producer()
                } else {
                    Epoch::default()
                }),
                registry: SnapshotCell::new(Arc::new(registry)),
                #[cfg(feature = "latency")]
                latency: Mutex::new(None),
                #[cfg(all(test, evbus_loom))]
                abandoned_closed: AtomicUsize::new(0),
            }),
        }
    }

    /// A new publisher: the fast path for a thread that publishes often.
    pub fn publisher(&self) -> Publisher<E> {
        Publisher::new(Arc::clone(&self.shared))
    }

    /// Interns `name` and returns a handle that publishes on it without
    /// hashing or matching. Interned topics live as long as the bus: intern
    /// a bounded set, and use [`publish_to`](Bus::publish_to) for the rest.
    ///
    /// # Errors
    ///
    /// The [`TopicError`] of a name that breaks the topic rules.
    pub fn topic(&self, name: &str) -> Result<Topic, TopicError> {
        validate_topic(name)?;
        let mut id = 0;
        let registry = self.shared.registry.rcu(|cur| match cur.topic_id(name) {
            Some(existing) => {
                id = existing;
                Arc::clone(cur)
            }
            None => {
                let (next, new_id) = cur.with_topic(name);
                id = new_id;
                Arc::new(next)
            }
        });
        drop(registry);
        Ok(Topic::new(self.shared.id, id, name))
    }

    /// Publishes `event` on an explicit topic.
    ///
    /// An interned topic costs one hash lookup; another topic is validated
    /// and resolved through the pattern trie.
    ///
    /// # Errors
    ///
    /// [`PublishError::InvalidTopic`] or [`PublishError::Closed`], with the
    /// event.
    pub fn publish_to(&self, topic: &str, event: E) -> Result<PublishReport, PublishError<E>> {
        self.publish_inner(To::Name(topic), event)
    }

    /// Publishes `event` on an interned topic.
    ///
    /// # Errors
    ///
    /// [`PublishError::ForeignTopic`] or [`PublishError::Closed`], with the
    /// event.
    pub fn publish_on(&self, topic: &Topic, event: E) -> Result<PublishReport, PublishError<E>> {
        if !topic.belongs_to(self.shared.id) {
            return Err(PublishError::ForeignTopic(event));
        }
        self.publish_inner(To::Id(topic.id), event)
    }

    /// Every publish through the bus handle: a fresh registry load, counted
    /// in the bus's own shared counters.
    #[inline(always)]
    fn publish_inner(&self, to: To<'_>, event: E) -> Result<PublishReport, PublishError<E>> {
        // `&self`: any number of threads may publish here at once.
        self.shared.totals.second_producer();
        // So no ring stays leased to a `Publisher` (`ring/lease.rs`, L2).
        self.shared.epoch.revoke_lease();
        let registry = self.shared.registry.load();
        publish(
            &registry,
            Producer::Multi,
            to,
            event,
            &self.shared.direct,
            false,
            None,
        )
    }

    /// Subscribes to a pattern, with default options.
    ///
    /// # Errors
    ///
    /// See [`Bus::subscribe_with`].
    pub fn subscribe(&self, pattern: &str) -> Result<Subscription<E>, SubscribeError> {
        self.subscribe_with(Filter::pattern(pattern)?, SubscribeOptions::default())
    }

    /// Subscribes with a filter and options.
    ///
    /// The subscription sees every event published on a matching topic after
    /// this call returns.
    ///
    /// # Errors
    ///
    /// [`SubscribeError::Closed`] after shutdown; `ZeroCapacity` or
    /// `CapacityTooLarge` for a bad capacity; `EmptyFilter` for a filter
    /// with no pattern.
    pub fn subscribe_with(
        &self,
        filter: Filter,
        options: SubscribeOptions,
    ) -> Result<Subscription<E>, SubscribeError> {
        let patterns = filter.into_patterns();
        if patterns.is_empty() {
            return Err(SubscribeError::EmptyFilter);
        }
        // Relaxed: ids only need to be unique.
        let id = self.shared.next_sub_id.fetch_add(1, Ordering::Relaxed);
        let name = options.get_name().map(StdArc::from);
        let ring = Ring::new(
            options.get_capacity(),
            options.get_overflow(),
            Arc::clone(&self.shared.totals),
        )?
        .with_priority(options.get_priority());
        // Set once, when the bus is made; every successor registry copies it.
        let solo = self.shared.registry.load().solo;
        let ring = match (solo, options.get_overflow()) {
            (false, Overflow::DropNewest | Overflow::Block(_))
                if self.shared.epoch.lease.leasable() =>
            {
                ring.leased(Arc::clone(&self.shared.epoch))
            }
            (false, _) => ring,
            (true, Overflow::DropNewest | Overflow::Block(_)) => {
                ring.solo(Arc::clone(&self.shared.epoch))
            }
            (true, other) => return Err(SubscribeError::SingleProducerPolicy(other)),
        };
        #[cfg(feature = "latency")]
        let ring = ring.with_sampler(self.shared.latency.lock().as_ref().and_then(|sampling| {
            crate::latency::Sampler::new(sampling, id, options.get_capacity())
        }));
        #[cfg(feature = "tracing")]
        let ring = ring.with_trace(crate::trace::TraceInfo {
            id,
            name: name.clone(),
        });
        let ring = Arc::new(ring);
        let entry = SubEntry {
            id,
            ring: Arc::clone(&ring),
            patterns: patterns.into(),
            name,
        };
        // The owner exists before the registry update is installed: if user
        // code panics while the update frees old snapshots (an event's or a
        // waker's `Drop`), the unwind drops it, which unsubscribes, so the
        // bus never keeps a subscription that nobody owns.
        let subscription = Subscription::new(Arc::clone(&self.shared), entry.clone());
        let mut closed = false;
        self.shared.registry.rcu(|cur| {
            closed = cur.closed;
            if closed {
                Arc::clone(cur)
            } else {
                Arc::new(cur.with_sub(entry.clone()))
            }
        });
        if closed {
            return Err(SubscribeError::Closed);
        }
        #[cfg(feature = "tracing")]
        crate::trace::subscribed(
            ring.trace_info(),
            &entry
                .patterns
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect::<Vec<_>>(),
            ring.capacity(),
            ring.policy(),
        );
        Ok(subscription)
    }

    /// Shuts the bus down: later publishes return `Closed`, later subscribes
    /// fail, and every subscription is closed. Receivers drain what is
    /// buffered, then get `Disconnected`.
    ///
    /// Idempotent: a second call reports `already_shut_down`.
    pub fn shutdown(&self) -> ShutdownReport {
        self.shared.shutdown()
    }

    /// Turns publish-to-receive latency sampling on (`Some`) or off
    /// (`None`) for the subscriptions made after this call; existing ones
    /// keep what they had. Off by default. Feature `latency`.
    ///
    /// A sampled push reads the clock once and writes the time next to the
    /// event in its slot; the receive that takes it reads the clock again
    /// and hands the difference to the recorder, on the receiving thread.
    /// Unsampled pushes pay one predictable branch.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{num::NonZeroU32, sync::{Arc, Mutex}};
    /// use evbus::{Bus, Event, EventKind, LatencyRecorder, LatencySampling};
    ///
    /// # #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    /// # enum Kind { Tick }
    /// # impl EventKind for Kind {
    /// #     const ALL: &'static [Self] = &[Kind::Tick];
    /// #     fn topic(self) -> &'static str { "clock.tick" }
    /// #     fn index(self) -> usize { 0 }
    /// # }
    /// # #[derive(Debug, Clone)]
    /// # struct Tick;
    /// # impl Event for Tick {
    /// #     type Kind = Kind;
    /// #     fn kind(&self) -> Kind { Kind::Tick }
    /// # }
    /// #[derive(Default)]
    /// struct Samples(Mutex<Vec<(u64, u64)>>);
    /// impl LatencyRecorder for Samples {
    ///     fn record(&self, subscription: u64, nanos: u64) {
    ///         self.0.lock().unwrap().push((subscription, nanos));
    ///     }
    /// }
    ///
    /// let bus = Bus::<Tick>::new();
    /// let samples = Arc::new(Samples::default());
    /// let every = NonZeroU32::new(2).unwrap();
    /// bus.set_latency_sampling(Some(LatencySampling::new(every, samples.clone())));
    /// let mut sub = bus.subscribe("clock.tick")?;
    /// for _ in 0..4 {
    ///     bus.publish(Tick).unwrap();
    /// }
    /// while sub.try_recv().is_ok() {}
    /// assert_eq!(samples.0.lock().unwrap().len(), 2);
    /// # Ok::<(), evbus::SubscribeError>(())
    /// ```
    #[cfg(feature = "latency")]
    pub fn set_latency_sampling(&self, sampling: Option<LatencySampling>) {
        *self.shared.latency.lock() = sampling;
    }

    /// Whether [`shutdown`](Bus::shutdown) has run.
    pub fn is_shut_down(&self) -> bool {
        self.shared.registry.load().closed
    }

    /// The number of registered subscriptions.
    pub fn subscriber_count(&self) -> usize {
        self.shared.registry.load().sub_count()
    }

    /// Whether two handles refer to the same bus.
    pub fn same_bus(&self, other: &Bus<E>) -> bool {
        self.shared.id == other.shared.id
    }

    /// Takes a snapshot of every counter.
    ///
    /// Counters are read one by one, so a snapshot taken while events flow
    /// is not one instant; when the bus is quiet it is exact.
    pub fn snapshot(&self) -> BusSnapshot {
        // Subscriptions that left count in the totals from here on.
        self.shared.fold_unfolded();
        let registry = self.shared.registry.load();
        let mut subscriptions: Vec<SubscriptionStats> = registry.subs().map(sub_stats).collect();
        // The registry keeps them by id in no order: list them in id order.
        subscriptions.sort_unstable_by_key(|s| s.id);
        let mut snap = BusSnapshot {
            topics: registry.topic_count(),
            shut_down: registry.closed,
            ..BusSnapshot::default()
        };
        {
            // Lock order as in `Publisher::drop`: publishers, then retired,
            // so a publisher that goes away is counted exactly once.
            let publishers = self.shared.publishers.lock();
            let retired = self.shared.retired.lock();
            snap.published = retired.published;
            snap.no_subscribers = retired.no_subscribers;
            // Relaxed: statistics.
            snap.delivered = self.shared.totals.delivered.load(Ordering::Relaxed);
            snap.dropped = self.shared.totals.dropped.load(Ordering::Relaxed);
            for counters in
                std::iter::once(&*self.shared.direct).chain(publishers.iter().map(|c| &**c))
            {
                let (published, none) = counters.read();
                snap.published += published;
                snap.no_subscribers += none;
            }
        }
        for s in &subscriptions {
            snap.delivered += s.delivered;
            snap.dropped += s.dropped;
            snap.queued += s.queued as u64;
        }
        snap.subscriptions = subscriptions;
        snap
    }
}
