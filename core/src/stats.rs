//! Reports and counters: what a publish, a subscription and the bus report.

use crate::policy::Overflow;

/// What one publish did.
///
/// `matched` counts the live subscriptions the topic routed to; each of them
/// either `accepted` the event or `dropped` it (its ring was full).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct PublishReport {
    /// Subscriptions whose filter matched the topic.
    pub matched: u32,
    /// Rings that took the event.
    pub accepted: u32,
    /// Rings that were full and dropped it (and counted it).
    pub dropped: u32,
}

/// Counters of one subscription.
///
/// `delivered + dropped` is every event routed to the subscription while it
/// was open; `delivered = received + queued`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct SubscriptionStats {
    /// The subscription's id, unique within its bus.
    pub id: u64,
    /// The name given in [`SubscribeOptions::name`](crate::SubscribeOptions::name).
    pub name: Option<String>,
    /// The patterns of its filter.
    pub filter: Vec<String>,
    /// Ring capacity.
    pub capacity: usize,
    /// Overflow policy.
    pub overflow: Overflow,
    /// Events that reached the ring and were not overwritten.
    pub delivered: u64,
    /// Events the subscriber has taken out of the ring.
    pub received: u64,
    /// Events lost: refused by a full ring, or overwritten under
    /// [`Overflow::DropOldest`].
    pub dropped: u64,
    /// The part of `dropped` that was overwritten under
    /// [`Overflow::DropOldest`] (reported to the receiver as `Lagged(n)`);
    /// always 0 under the other policies.
    pub lagged: u64,
    /// Events buffered now.
    pub queued: usize,
    /// The largest queue length observed; it never goes down. A full ring
    /// sets it to the capacity. Below that, it is sampled by the receiver
    /// on the first receive after it found the ring empty (when a backlog
    /// is longest) and on every 32nd receive after that, and by every stats
    /// read; a short peak between samples can be missed.
    pub high_water: usize,
    /// Whether the subscription is closed.
    pub closed: bool,
}

/// A point-in-time view of a whole bus.
///
/// Totals include subscriptions and publishers that are gone.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct BusSnapshot {
    /// Publishes that were attempted on the open bus.
    pub published: u64,
    /// Publishes that matched no subscription.
    pub no_subscribers: u64,
    /// Sum of [`SubscriptionStats::delivered`].
    pub delivered: u64,
    /// Sum of [`SubscriptionStats::dropped`].
    pub dropped: u64,
    /// Events buffered now, over all live subscriptions.
    pub queued: u64,
    /// Interned topics.
    pub topics: usize,
    /// Whether [`shutdown`](crate::Bus::shutdown) has run.
    pub shut_down: bool,
    /// Each subscription still registered.
    pub subscriptions: Vec<SubscriptionStats>,
}

/// What [`shutdown`](crate::Bus::shutdown) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Subscriptions this call closed (an unsubscribe may have closed others).
    pub closed: usize,
    /// Events still buffered for receivers to drain.
    pub buffered: usize,
    /// `true` if the bus was already shut down; nothing was done.
    pub already_shut_down: bool,
}
