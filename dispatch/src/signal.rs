//! What the dispatcher itself publishes: dead letters and watchdog alarms,
//! on its own typed signal bus ([`Dispatcher::signals`]).
//!
//! [`Dispatcher::signals`]: crate::Dispatcher::signals

use std::{error::Error as StdError, fmt, sync::Arc, time::Duration};

use evbus_core::{Event, EventKind};

/// Why one handler call failed.
#[derive(Clone)]
pub enum Failure {
    /// The handler returned `Err`.
    Error(Arc<dyn StdError + Send + Sync>),
    /// The handler panicked; the panic message, when it was a string.
    Panic(String),
}

impl Failure {
    pub(crate) fn from_panic(payload: &(dyn std::any::Any + Send)) -> Self {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".to_owned());
        Failure::Panic(msg)
    }

    /// Whether the handler panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self, Failure::Panic(_))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Error(e) => write!(f, "error: {e}"),
            Failure::Panic(msg) => write!(f, "panic: {msg}"),
        }
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Error(e) => f.debug_tuple("Error").field(&e.to_string()).finish(),
            Failure::Panic(msg) => f.debug_tuple("Panic").field(msg).finish(),
        }
    }
}

/// An event whose handler failed on every attempt.
#[derive(Clone)]
#[non_exhaustive]
pub struct DeadLetter<E> {
    /// The event.
    pub event: E,
    /// The handler that gave up on it.
    pub handler: Arc<str>,
    /// Calls made, the first included.
    pub attempts: u32,
    /// The last failure.
    pub failure: Failure,
}

impl<E> fmt::Debug for DeadLetter<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetter")
            .field("handler", &self.handler)
            .field("attempts", &self.attempts)
            .field("failure", &self.failure)
            .finish_non_exhaustive()
    }
}

/// A stall watchdog's alarm: nothing matching its filter arrived for
/// `quiet_for` (or, in `Signal::Recovered`, traffic came back).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StallAlarm {
    /// The watchdog's name.
    pub watchdog: Arc<str>,
    /// How long it had been quiet when the alarm was raised, or in all when
    /// traffic came back.
    pub quiet_for: Duration,
}

/// A queue-depth alarm: a handler's ring filled past its threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DepthAlarm {
    /// The handler.
    pub handler: Arc<str>,
    /// Events buffered when the crossing was seen.
    pub queued: usize,
    /// The ring's capacity.
    pub capacity: usize,
    /// The threshold, in events.
    pub threshold: usize,
}

/// What the dispatcher publishes on its signal bus.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Signal<E> {
    /// On `evbus.dead_letter`.
    DeadLetter(DeadLetter<E>),
    /// On `evbus.watchdog.stall`, once per quiet period.
    Stall(StallAlarm),
    /// On `evbus.watchdog.recovered`, when traffic returns after a stall.
    Recovered(StallAlarm),
    /// On `evbus.watchdog.queue_depth`, once per upward crossing.
    QueueDepth(DepthAlarm),
}

/// The kinds of [`Signal`], each on its own topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignalKind {
    /// `evbus.dead_letter`
    DeadLetter,
    /// `evbus.watchdog.stall`
    Stall,
    /// `evbus.watchdog.recovered`
    Recovered,
    /// `evbus.watchdog.queue_depth`
    QueueDepth,
}

impl EventKind for SignalKind {
    const ALL: &'static [Self] = &[
        SignalKind::DeadLetter,
        SignalKind::Stall,
        SignalKind::Recovered,
        SignalKind::QueueDepth,
    ];

    fn topic(self) -> &'static str {
        match self {
            SignalKind::DeadLetter => "evbus.dead_letter",
            SignalKind::Stall => "evbus.watchdog.stall",
            SignalKind::Recovered => "evbus.watchdog.recovered",
            SignalKind::QueueDepth => "evbus.watchdog.queue_depth",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl<E: Clone + Send + 'static> Event for Signal<E> {
    type Kind = SignalKind;

    fn kind(&self) -> SignalKind {
        match self {
            Signal::DeadLetter(_) => SignalKind::DeadLetter,
            Signal::Stall(_) => SignalKind::Stall,
            Signal::Recovered(_) => SignalKind::Recovered,
            Signal::QueueDepth(_) => SignalKind::QueueDepth,
        }
    }
}
