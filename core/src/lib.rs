//! evbus-core: a lock-free, typed, in-process event bus.
//!
//! Publishers publish typed events on dot-separated topics; every
//! subscription owns a bounded ring with its own counters. A publish takes no
//! lock, never waits for a slow subscriber (unless that subscriber chose
//! [`Overflow::Block`]), and never loses an event without counting it.
//!
//! Depend on the `evbus` facade, which re-exports every item of this crate
//! at its root (`evbus::Bus`); the examples are written that way.
//!
//! # Hello world
//!
//! ```
//! use evbus::{Bus, Event, EventKind};
//!
//! #[derive(Debug, Clone, Copy, PartialEq, Eq)]
//! enum Kind { Placed, Shipped }
//! impl EventKind for Kind {
//!     const ALL: &'static [Self] = &[Kind::Placed, Kind::Shipped];
//!     fn topic(self) -> &'static str {
//!         match self { Kind::Placed => "orders.placed", Kind::Shipped => "orders.shipped" }
//!     }
//!     fn index(self) -> usize { self as usize }
//! }
//! #[derive(Debug, Clone, PartialEq)]
//! enum Order { Placed(u64), Shipped(u64) }
//! impl Event for Order {
//!     type Kind = Kind;
//!     fn kind(&self) -> Kind {
//!         match self { Order::Placed(_) => Kind::Placed, Order::Shipped(_) => Kind::Shipped }
//!     }
//! }
//!
//! let bus = Bus::<Order>::new();
//! let mut all = bus.subscribe("orders.>")?;
//! let mut shipped = bus.subscribe_kinds(&[Kind::Shipped])?;
//! let mut publisher = bus.publisher();
//! publisher.publish(Order::Placed(7)).unwrap();
//! publisher.publish(Order::Shipped(7)).unwrap();
//! assert_eq!(all.try_recv(), Ok(Order::Placed(7)));
//! assert_eq!(all.try_recv(), Ok(Order::Shipped(7)));
//! assert_eq!(shipped.try_recv(), Ok(Order::Shipped(7)));
//! # Ok::<(), evbus::SubscribeError>(())
//! ```
//!
//! # Topics and patterns
//!
//! Topics follow the NATS rules (see [`topic`]): `*` matches one segment,
//! a final `>` one or more. Matching runs when subscriptions change, not
//! when events are published.
//!
//! # Overflow
//!
//! See [`Overflow`]: `DropNewest` (default), `DropOldest` (+ `Lagged(n)`),
//! `Block(timeout)`.
//!
//! # Closing
//!
//! [`Bus::shutdown`] makes later publishes return [`PublishError::Closed`]
//! and closes every subscription; receivers drain what is buffered, then get
//! `Disconnected`. Dropping a [`Subscription`] unsubscribes it and drops
//! what it still buffered.
//!
//! When the last producer-side handle goes (every [`Bus`] clone and every
//! [`Publisher`], the [`SoloPublisher`] included), the bus shuts down as if
//! [`Bus::shutdown`] had run, as a crossbeam or tokio channel disconnects
//! when its last sender goes: a receiver blocked in `recv` wakes, and
//! `for e in sub.iter()` ends. Subscriptions do not keep a bus open.
//!
//! # User code
//!
//! The event's `Clone` and `Drop` and a task waker may panic or call back
//! into the bus. Closing closes every ring before it runs any waker; a
//! publish cut short by a panicking `Clone` is counted as published, keeps
//! the event in the rings it reached and counts a drop in the others; events
//! and old registry snapshots are dropped outside every lock. The first
//! panic reaches the caller once the bus's state is settled.
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks, clippy::unnecessary_safety_comment)]
#![doc(test(no_crate_inject, attr(deny(warnings))))]

#[cfg(test)]
mod abandoned_tests;
mod barrier;
mod bus;
mod deliver;
mod envelope;
mod error;
mod filter;
mod full_route;
mod index;
mod kind;
#[cfg(feature = "latency")]
mod latency;
mod persist;
mod policy;
mod publisher;
mod registry;
mod ring;
mod shared;
mod stats;
mod subscription;
mod sync;
#[cfg(test)]
mod test_strategies;
pub mod topic;
#[cfg(feature = "tracing")]
mod trace;
mod unwind;

#[cfg(feature = "latency")]
pub use crate::latency::{LatencyRecorder, LatencySampling};
pub use crate::{
    bus::Bus,
    envelope::{Envelope, EventId, Metadata, ParseEventIdError, ReplayMark, Timestamp},
    error::{
        KindTableError, Lagged, PublishError, RecvError, RecvTimeoutError, SubscribeError,
        TryRecvError,
    },
    filter::Filter,
    kind::{Event, EventKind},
    policy::{DEFAULT_CAPACITY, Overflow, SubscribeOptions},
    publisher::{DeliveryMode, MultiProducer, Publisher, SingleProducer, SoloPublisher},
    ring::{MAX_CAPACITY, MAX_RING_BYTES},
    stats::{BusSnapshot, PublishReport, ShutdownReport, SubscriptionStats},
    subscription::{Iter, Subscription, TryIter, Unsubscriber},
    topic::{Pattern, Topic, TopicError, validate_topic},
};
