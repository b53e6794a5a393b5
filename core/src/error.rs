//! Error types, one per operation.
//!
//! `Debug` never needs `E: Debug`; `Display` text is lowercase, without a
//! final period.

use std::fmt;

use crate::{policy::Overflow, topic::TopicError};

/// Why a publish did not happen. The event is handed back.
#[non_exhaustive]
pub enum PublishError<E> {
    /// The bus was shut down.
    Closed(E),
    /// `publish_to` was given a topic that breaks the topic rules.
    InvalidTopic(E, TopicError),
    /// The [`Topic`](crate::Topic) handle belongs to another bus.
    ForeignTopic(E),
    /// The bus was built with [`Bus::single_producer`](crate::Bus::single_producer):
    /// only its [`SoloPublisher`](crate::SoloPublisher) may publish.
    NotTheProducer(E),
    /// The event's kind is not in its [`EventKind::ALL`](crate::EventKind::ALL)
    /// table (its `index()` is past the table's end), so it has no topic on
    /// this bus. A bug in a hand-written kind enum; `#[derive(Event)]`
    /// cannot make it.
    UnknownKind(E),
}

impl<E> PublishError<E> {
    /// Returns the event that was not published.
    pub fn into_inner(self) -> E {
        match self {
            Self::Closed(e)
            | Self::InvalidTopic(e, _)
            | Self::ForeignTopic(e)
            | Self::NotTheProducer(e)
            | Self::UnknownKind(e) => e,
        }
    }
}

impl<E> fmt::Debug for PublishError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed(_) => f.pad("Closed(..)"),
            Self::InvalidTopic(_, err) => f
                .debug_tuple("InvalidTopic")
                .field(&"..")
                .field(err)
                .finish(),
            Self::ForeignTopic(_) => f.pad("ForeignTopic(..)"),
            Self::NotTheProducer(_) => f.pad("NotTheProducer(..)"),
            Self::UnknownKind(_) => f.pad("UnknownKind(..)"),
        }
    }
}

impl<E> fmt::Display for PublishError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed(_) => f.write_str("publishing on a closed bus"),
            Self::InvalidTopic(_, err) => write!(f, "invalid topic: {err}"),
            Self::ForeignTopic(_) => f.write_str("topic handle belongs to another bus"),
            Self::NotTheProducer(_) => {
                f.write_str("a single-producer bus takes publishes from its SoloPublisher only")
            }
            Self::UnknownKind(_) => {
                f.write_str("the event's kind is not in its EventKind::ALL table")
            }
        }
    }
}

impl<E> std::error::Error for PublishError<E> {}

/// Why a subscription could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubscribeError {
    /// The bus was shut down.
    Closed,
    /// The capacity was zero.
    ZeroCapacity,
    /// The capacity is above the maximum, or the ring could not be allocated.
    CapacityTooLarge {
        /// The capacity asked for.
        requested: usize,
        /// The largest capacity evbus accepts for this event type:
        /// [`MAX_CAPACITY`](crate::MAX_CAPACITY) slots, within
        /// [`MAX_RING_BYTES`](crate::MAX_RING_BYTES).
        max: usize,
    },
    /// A pattern breaks the topic rules.
    InvalidPattern(TopicError),
    /// The filter matches nothing: no pattern and no kind was given.
    EmptyFilter,
    /// A single-producer bus supports [`Overflow::DropNewest`] and
    /// [`Overflow::Block`] subscriptions, not [`Overflow::DropOldest`].
    SingleProducerPolicy(Overflow),
}

impl fmt::Display for SubscribeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed => f.write_str("subscribing to a closed bus"),
            Self::ZeroCapacity => f.write_str("subscription capacity must be at least 1"),
            Self::CapacityTooLarge { requested, max } => {
                write!(
                    f,
                    "subscription capacity {requested} is too large (max {max}, or allocation failed)"
                )
            }
            Self::InvalidPattern(err) => write!(f, "invalid pattern: {err}"),
            Self::EmptyFilter => f.write_str("subscription filter is empty"),
            Self::SingleProducerPolicy(policy) => write!(
                f,
                "a single-producer bus supports DropNewest and Block subscriptions, not {policy:?}"
            ),
        }
    }
}

impl std::error::Error for SubscribeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::InvalidPattern(err) => Some(err),
            _ => None,
        }
    }
}

impl From<TopicError> for SubscribeError {
    fn from(err: TopicError) -> Self {
        Self::InvalidPattern(err)
    }
}

/// Why [`try_recv`](crate::Subscription::try_recv) returned no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing is buffered right now.
    Empty,
    /// Under [`Overflow::DropOldest`], this many
    /// events were overwritten before they were received. Reported once; the
    /// next call returns the oldest event that remains.
    Lagged(u64),
    /// The subscription is closed and drained.
    Disconnected,
}

/// Why [`recv`](crate::Subscription::recv) returned no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvError {
    /// See [`TryRecvError::Lagged`].
    Lagged(u64),
    /// The subscription is closed and drained.
    Disconnected,
}

/// The error item of a subscription used as a `Stream` (feature `async`):
/// under [`Overflow::DropOldest`], this many
/// events were overwritten before they were received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lagged(pub u64);

impl fmt::Display for Lagged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "subscription lagged behind by {} events", self.0)
    }
}

impl std::error::Error for Lagged {}

/// Why [`recv_timeout`](crate::Subscription::recv_timeout) returned no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvTimeoutError {
    /// No event arrived in time.
    Timeout,
    /// See [`TryRecvError::Lagged`].
    Lagged(u64),
    /// The subscription is closed and drained.
    Disconnected,
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("receiving on an empty subscription"),
            Self::Lagged(n) => write!(f, "subscription lagged behind by {n} events"),
            Self::Disconnected => f.write_str("receiving on a closed subscription"),
        }
    }
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Lagged(n) => write!(f, "subscription lagged behind by {n} events"),
            Self::Disconnected => f.write_str("receiving on a closed subscription"),
        }
    }
}

impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => f.write_str("timed out waiting on a subscription"),
            Self::Lagged(n) => write!(f, "subscription lagged behind by {n} events"),
            Self::Disconnected => f.write_str("receiving on a closed subscription"),
        }
    }
}

impl std::error::Error for TryRecvError {}
impl std::error::Error for RecvError {}
impl std::error::Error for RecvTimeoutError {}

/// Why a kind table was rejected by [`Bus::try_new`](crate::Bus::try_new).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KindTableError {
    /// A kind's topic breaks the topic rules.
    InvalidTopic(&'static str, TopicError),
    /// Two kinds share a topic.
    DuplicateTopic(&'static str),
    /// A kind's `index()` is not its position in `ALL`.
    IndexMismatch {
        /// The kind's topic.
        topic: &'static str,
        /// What `index()` returned.
        index: usize,
        /// Its position in `ALL`.
        position: usize,
    },
}

impl fmt::Display for KindTableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidTopic(topic, err) => write!(f, "kind topic {topic:?} is invalid: {err}"),
            Self::DuplicateTopic(topic) => write!(f, "two kinds share topic {topic:?}"),
            Self::IndexMismatch {
                topic,
                index,
                position,
            } => {
                write!(
                    f,
                    "kind {topic:?} has index {index} but is at position {position} of ALL"
                )
            }
        }
    }
}

impl std::error::Error for KindTableError {}
