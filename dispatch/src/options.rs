//! How a handler is registered: [`HandlerOptions`], a builder of its name,
//! filter, priority, ring, retries and alarms.

use std::time::Duration;

use evbus_core::{Filter, Overflow, SubscribeOptions, TopicError};

use crate::{retry::RetryPolicy, stats::Priority};

/// The longest [`Overflow::Block`] timeout a handler's ring is given: a
/// century. A publisher into a full ring adds the timeout to
/// `Instant::now()`, which cannot hold `Duration::MAX`; a century is as
/// good as no deadline and always representable.
const BLOCK_FOREVER: Duration = Duration::from_secs(100 * 365 * 86_400);

/// How a handler is registered: its name, filter, priority, ring and
/// retries.
///
/// ```
/// use evbus::dispatch::{HandlerOptions, Priority, RetryPolicy};
///
/// let opts = HandlerOptions::pattern("audit", "orders.>")?
///     .priority(Priority::High)
///     .capacity(256)
///     .retry(RetryPolicy::never());
/// # Ok::<(), evbus::TopicError>(())
/// ```
#[derive(Debug, Clone)]
pub struct HandlerOptions {
    pub(crate) name: String,
    pub(crate) filter: Filter,
    pub(crate) priority: Priority,
    pub(crate) subscribe: SubscribeOptions,
    pub(crate) retry: RetryPolicy,
    pub(crate) depth_alarm: Option<f64>,
    pub(crate) enabled: bool,
    pub(crate) group: Option<String>,
    pub(crate) skip_dry_run: bool,
}

impl HandlerOptions {
    /// A handler named `name` over `filter`, with normal priority, the
    /// default ring and [`RetryPolicy::default`].
    pub fn new(name: impl Into<String>, filter: Filter) -> Self {
        Self {
            name: name.into(),
            filter,
            priority: Priority::Normal,
            subscribe: SubscribeOptions::new(),
            retry: RetryPolicy::default(),
            depth_alarm: None,
            enabled: true,
            group: None,
            skip_dry_run: false,
        }
    }

    /// A handler over one pattern.
    ///
    /// # Errors
    ///
    /// The [`TopicError`] of an invalid pattern.
    pub fn pattern(name: impl Into<String>, pattern: &str) -> Result<Self, TopicError> {
        Ok(Self::new(name, Filter::pattern(pattern)?))
    }

    /// Sets the priority.
    #[must_use]
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the ring capacity (validated at registration).
    #[must_use]
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.subscribe = self.subscribe.capacity(capacity);
        self
    }

    /// Sets the ring's overflow policy.
    ///
    /// An [`Overflow::Block`] timeout longer than a century (up to
    /// `Duration::MAX`) means "no deadline", and is stored as a century, so
    /// a publisher into the full ring waits instead of overflowing the
    /// deadline it computes.
    #[must_use]
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        let overflow = match overflow {
            Overflow::Block(timeout) => Overflow::Block(timeout.min(BLOCK_FOREVER)),
            other => other,
        };
        self.subscribe = self.subscribe.overflow(overflow);
        self
    }

    /// Sets the retry policy.
    #[must_use]
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Publishes [`Signal::QueueDepth`](crate::Signal::QueueDepth) once each time the ring fills past
    /// `fraction` of its capacity (in `(0, 1]`, validated at registration).
    #[must_use]
    pub fn depth_alarm(mut self, fraction: f64) -> Self {
        self.depth_alarm = Some(fraction);
        self
    }

    /// Registers the handler disabled: its events are skipped until
    /// [`Dispatcher::enable`](crate::Dispatcher::enable).
    #[must_use]
    pub fn disabled(mut self) -> Self {
        self.enabled = false;
        self
    }

    /// Whether the dispatcher skips this handler for dry-run replays: events
    /// whose [`replay_mark`](evbus_core::Event::replay_mark) has
    /// `dry_run == true`. Set it for handlers with outbound effects (mail,
    /// webhooks, writes to other systems). Such an event is taken out of
    /// the ring and counted in `replayed` and `skipped_dry_run`; the
    /// handler is not called. `false` by default: the handler is called,
    /// and can read the mark itself.
    #[must_use]
    pub fn skip_dry_run(mut self, skip: bool) -> Self {
        self.skip_dry_run = skip;
        self
    }

    /// Puts the handler in a group (a plugin, say), so the group can be
    /// listed and unregistered together.
    #[must_use]
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }
}
