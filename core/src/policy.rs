//! Overflow policies and subscription options.

use std::time::Duration;

/// What a full ring does with a new event. Chosen per subscription, at
/// [`subscribe`](crate::Bus::subscribe_with) time.
///
/// Whatever the policy, a full ring never slows down other subscribers, and
/// every event it loses is counted in [`SubscriptionStats::dropped`].
///
/// [`SubscriptionStats::dropped`]: crate::SubscriptionStats::dropped
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Overflow {
    /// Drop the new event and count it. Publishing never waits. The default.
    #[default]
    DropNewest,
    /// Overwrite the oldest buffered event. The receiver then gets
    /// [`TryRecvError::Lagged(n)`](crate::TryRecvError::Lagged) once, with
    /// the number of events it lost, and then the events that remain.
    DropOldest,
    /// Lossless while the subscriber keeps up: the publisher waits on this
    /// ring for at most the given time, then drops the event and counts it.
    /// Other rings of the same publish are not affected, but the publish as a
    /// whole returns only after this ring accepted or timed out.
    ///
    /// The wait spins briefly, then yields the CPU, then parks the thread;
    /// the receiver pays for a wake-up only when it frees a slot while a
    /// publisher is parked, once per park. The timeout runs from the end of
    /// the first spin (a few microseconds, or a few yields on a busy core),
    /// so a publisher that keeps finding the ring full reads the clock once
    /// per park, not once per event; `Block(Duration::ZERO)` drops at once.
    /// A [`Bus::single_producer`](crate::Bus::single_producer) bus supports
    /// it too.
    Block(Duration),
}

/// The default ring capacity: 1024 events.
pub const DEFAULT_CAPACITY: usize = 1024;

/// Options of one subscription.
///
/// A builder: each setter takes the option's plain name (`capacity(64)`),
/// as `std::thread::Builder::name` and tokio's `runtime::Builder` do. The
/// plain names being taken, the options read back through `get_capacity`,
/// `get_overflow`, `get_name` and `get_priority`, the way the standard
/// library reads a builder back (`std::process::Command::get_program`,
/// `get_args`, `get_current_dir`).
///
/// ```
/// use evbus::{Overflow, SubscribeOptions};
///
/// let opts = SubscribeOptions::new().capacity(64).overflow(Overflow::DropOldest).name("audit");
/// assert_eq!(opts.get_capacity(), 64);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeOptions {
    capacity: usize,
    overflow: Overflow,
    name: Option<String>,
    priority: i32,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        Self {
            capacity: DEFAULT_CAPACITY,
            overflow: Overflow::DropNewest,
            name: None,
            priority: 0,
        }
    }
}

impl SubscribeOptions {
    /// [`DEFAULT_CAPACITY`], [`Overflow::DropNewest`], no name.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the ring capacity. It is validated when subscribing: zero, or
    /// more than [`MAX_CAPACITY`](crate::MAX_CAPACITY) events or
    /// [`MAX_RING_BYTES`](crate::MAX_RING_BYTES) bytes, is an error.
    #[must_use]
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Sets the overflow policy.
    #[must_use]
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// Names the subscription in stats and snapshots.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the delivery priority (default 0). Within one publish, rings of
    /// higher priority receive the event first; equal priorities go in
    /// subscription order. It changes nothing else: every matching ring
    /// still gets the event.
    ///
    /// A runtime that drains several subscriptions (such as evbus-dispatch)
    /// uses it to see an event in its high-priority rings no later than in
    /// its low-priority ones.
    #[must_use]
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// The configured delivery priority.
    pub fn get_priority(&self) -> i32 {
        self.priority
    }

    /// The configured capacity.
    pub fn get_capacity(&self) -> usize {
        self.capacity
    }

    /// The configured overflow policy.
    pub fn get_overflow(&self) -> Overflow {
        self.overflow
    }

    /// The configured name.
    pub fn get_name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}
