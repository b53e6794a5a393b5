//! The [`Snapshot`]: one plain, serializable view of a bus, its
//! subscriptions and (feature `dispatch`) its handlers.

#[cfg(feature = "dispatch")]
use std::borrow::Borrow;

use evbus_core::{Bus, BusSnapshot, Overflow, SubscriptionStats};
#[cfg(feature = "dispatch")]
use evbus_dispatch::HandlerStats;
use serde::{Deserialize, Serialize};

/// A point-in-time view of a bus, each of its subscriptions and each
/// handler of a dispatcher.
///
/// Built from [`Bus::snapshot`] by [`Snapshot::capture`]; handler rows come
/// from `with_handlers` (feature `dispatch`). Counters are read one by
/// one, so a snapshot taken while events flow is not one instant; when the
/// bus is quiet it is exact.
///
/// It round-trips through serde (JSON, for example) and renders as
/// Prometheus text with [`to_prometheus_text`](Snapshot::to_prometheus_text).
///
/// # Examples
///
/// ```
/// use evbus::{Bus, Event, EventKind, metrics::Snapshot};
///
/// #[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// enum Kind { Ping }
/// impl EventKind for Kind {
///     const ALL: &'static [Self] = &[Kind::Ping];
///     fn topic(self) -> &'static str { "net.ping" }
///     fn index(self) -> usize { 0 }
/// }
/// #[derive(Debug, Clone)]
/// struct Ping;
/// impl Event for Ping {
///     type Kind = Kind;
///     fn kind(&self) -> Kind { Kind::Ping }
/// }
///
/// let bus = Bus::<Ping>::new();
/// let _sub = bus.subscribe("net.>")?;
/// bus.publish(Ping).unwrap();
/// let snap = Snapshot::capture(&bus);
/// assert_eq!(snap.bus.published, 1);
/// assert_eq!(snap.subscriptions[0].queued, 1);
/// assert!(snap.to_prometheus_text().contains("evbus_events_published_total 1\n"));
/// # Ok::<(), evbus::SubscribeError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Snapshot {
    /// Bus-wide totals.
    pub bus: BusTotals,
    /// Each subscription registered when the snapshot was taken, by id.
    pub subscriptions: Vec<SubscriptionSnapshot>,
    /// Each handler, in the order they were given (feature `dispatch`).
    #[cfg(feature = "dispatch")]
    #[cfg_attr(docsrs, doc(cfg(feature = "dispatch")))]
    #[serde(default)]
    pub handlers: Vec<HandlerStats>,
}

/// Bus-wide totals. They include subscriptions and publishers that are
/// gone.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BusTotals {
    /// Publishes attempted on the open bus.
    pub published: u64,
    /// Publishes that matched no subscription.
    pub no_subscribers: u64,
    /// Events that reached a ring and were not overwritten.
    pub delivered: u64,
    /// Events lost to full rings (refused or overwritten).
    pub dropped: u64,
    /// Events buffered now, over all live subscriptions.
    pub queued: u64,
    /// Interned topics.
    pub topics: u64,
    /// Subscriptions registered now.
    pub subscriptions: u64,
    /// Whether the bus has been shut down.
    pub shut_down: bool,
}

/// The overflow policy of a subscription, as a snapshot records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// [`Overflow::DropNewest`].
    #[default]
    DropNewest,
    /// [`Overflow::DropOldest`].
    DropOldest,
    /// [`Overflow::Block`], with its timeout in nanoseconds (saturated at
    /// `u64::MAX`).
    Block {
        /// The longest a publisher waits on the full ring.
        timeout_ns: u64,
    },
}

impl Policy {
    /// `"drop_newest"`, `"drop_oldest"` or `"block"`: the value of the
    /// `overflow` label in Prometheus text.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::DropNewest => "drop_newest",
            Policy::DropOldest => "drop_oldest",
            Policy::Block { .. } => "block",
        }
    }
}

impl From<Overflow> for Policy {
    fn from(overflow: Overflow) -> Self {
        match overflow {
            Overflow::DropNewest => Policy::DropNewest,
            Overflow::DropOldest => Policy::DropOldest,
            Overflow::Block(timeout) => Policy::Block {
                timeout_ns: u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX),
            },
        }
    }
}

/// One subscription's row.
///
/// The fields are those of [`SubscriptionStats`], by the same names, plus
/// `latency`. `delivered + dropped` is every event routed to
/// it while it was open; `delivered = received + queued`; `lagged` is the
/// part of `dropped` that was overwritten under `DropOldest`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SubscriptionSnapshot {
    /// Its id, unique within its bus.
    pub id: u64,
    /// The name given at subscribe time, if any.
    pub name: Option<String>,
    /// The patterns of its filter.
    pub filter: Vec<String>,
    /// Its overflow policy.
    pub overflow: Policy,
    /// Ring capacity.
    pub capacity: u64,
    /// Events buffered now.
    pub queued: u64,
    /// The largest queue length observed (see
    /// [`SubscriptionStats::high_water`]).
    pub high_water: u64,
    /// Events that reached the ring and were not overwritten.
    pub delivered: u64,
    /// Events the subscriber took out of the ring.
    pub received: u64,
    /// Events lost: refused by a full ring or overwritten.
    pub dropped: u64,
    /// Events overwritten under `DropOldest` (included in `dropped`).
    pub lagged: u64,
    /// Whether it is closed (it may still hold events to drain).
    pub closed: bool,
    /// Publish-to-receive latency, when sampling is on and samples were
    /// taken (feature `latency`: `Snapshot::with_latency`).
    pub latency: Option<LatencySummary>,
}

impl SubscriptionSnapshot {
    /// What to call it in a report: its name, or else its patterns.
    pub fn label(&self) -> String {
        match &self.name {
            Some(name) => name.clone(),
            None => self.filter.join(","),
        }
    }
}

impl From<&SubscriptionStats> for SubscriptionSnapshot {
    fn from(s: &SubscriptionStats) -> Self {
        Self {
            id: s.id,
            name: s.name.clone(),
            filter: s.filter.clone(),
            overflow: s.overflow.into(),
            capacity: s.capacity as u64,
            queued: s.queued as u64,
            high_water: s.high_water as u64,
            delivered: s.delivered,
            received: s.received,
            dropped: s.dropped,
            lagged: s.lagged,
            closed: s.closed,
            latency: None,
        }
    }
}

/// Publish-to-receive latency of one subscription, in nanoseconds, from
/// the sampled events (see the crate docs, "Latency").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LatencySummary {
    /// Sampled events received.
    pub samples: u64,
    /// Median.
    pub p50_ns: u64,
    /// 95th percentile.
    pub p95_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// The largest sample.
    pub max_ns: u64,
    /// The sum of the samples (HDR-rounded), for a Prometheus summary.
    pub sum_ns: u64,
}

impl From<&BusSnapshot> for Snapshot {
    fn from(b: &BusSnapshot) -> Self {
        Self {
            bus: BusTotals {
                published: b.published,
                no_subscribers: b.no_subscribers,
                delivered: b.delivered,
                dropped: b.dropped,
                queued: b.queued,
                topics: b.topics as u64,
                subscriptions: b.subscriptions.len() as u64,
                shut_down: b.shut_down,
            },
            subscriptions: b.subscriptions.iter().map(Into::into).collect(),
            #[cfg(feature = "dispatch")]
            handlers: Vec::new(),
        }
    }
}

impl Snapshot {
    /// Takes a snapshot of `bus` (see [`Bus::snapshot`]), with no handler
    /// rows.
    pub fn capture<E: Clone + Send + 'static>(bus: &Bus<E>) -> Self {
        Self::from(&bus.snapshot())
    }

    /// Adds a row for each handler, in order (for example from a
    /// dispatcher's handler stats).
    #[cfg(feature = "dispatch")]
    #[cfg_attr(docsrs, doc(cfg(feature = "dispatch")))]
    #[must_use]
    pub fn with_handlers<I>(mut self, handlers: I) -> Self
    where
        I: IntoIterator,
        I::Item: Borrow<HandlerStats>,
    {
        self.handlers
            .extend(handlers.into_iter().map(|h| h.borrow().clone()));
        self
    }

    /// The row of subscription `id`, if it was registered.
    pub fn subscription(&self, id: u64) -> Option<&SubscriptionSnapshot> {
        self.subscriptions.iter().find(|s| s.id == id)
    }

    /// The row of the handler called `name`, if any.
    #[cfg(feature = "dispatch")]
    #[cfg_attr(docsrs, doc(cfg(feature = "dispatch")))]
    pub fn handler(&self, name: &str) -> Option<&HandlerStats> {
        self.handlers.iter().find(|h| h.name == name)
    }
}
