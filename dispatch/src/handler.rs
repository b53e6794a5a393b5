//! One registered handler: its options, its subscription, its counters, and
//! what a worker does when it runs it.

use std::{
    error::Error as StdError,
    fmt,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{Arc, OnceLock},
    task::{Context, Poll, Waker},
};

use evbus_core::{
    Event, Filter, Overflow, RecvError, SubscribeOptions, Subscription, TopicError, Unsubscriber,
};

use crate::{
    retry::{Jitter, RetryPolicy},
    runtime::Runtime,
    scheduler::{CellWaker, Outcome},
    signal::{DeadLetter, DepthAlarm, Failure, Signal},
    stats::{HandlerStats, Priority},
    sync::{AtomicBool, AtomicU8, AtomicU64, Mutex, Ordering},
};

/// What a handler returns: `Err` counts as a failure and is retried.
pub type HandlerResult = Result<(), Box<dyn StdError + Send + Sync>>;

/// Events a worker handles for one handler before it lets others run.
const BATCH: usize = 64;

/// How a handler is registered: its name, filter, priority, ring and
/// retries.
///
/// ```
/// use evbus_dispatch::{HandlerOptions, Priority, RetryPolicy};
///
/// let opts = HandlerOptions::pattern("audit", "orders.>")?
///     .priority(Priority::High)
///     .capacity(256)
///     .retry(RetryPolicy::never());
/// # Ok::<(), evbus_core::TopicError>(())
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
    #[must_use]
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.subscribe = self.subscribe.overflow(overflow);
        self
    }

    /// Sets the retry policy.
    #[must_use]
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Publishes [`Signal::QueueDepth`] once each time the ring fills past
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

    /// Puts the handler in a group (a plugin, say), so the group can be
    /// listed and unregistered together.
    #[must_use]
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }
}

/// Per-handler counters; Relaxed: statistics, read one by one.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) received: AtomicU64,
    pub(crate) handled: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) panics: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) skipped: AtomicU64,
    pub(crate) abandoned: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

pub(crate) type Callback<E> = Box<dyn FnMut(&E) -> HandlerResult + Send>;

/// What only the running worker touches.
pub(crate) struct Body<E> {
    pub(crate) sub: Subscription<E>,
    callback: Callback<E>,
    /// An event taken from the ring but not finished: waiting for its retry
    /// timer, or put back because a better handler became ready.
    next: Option<Pending<E>>,
    jitter: Jitter,
}

struct Pending<E> {
    event: E,
    /// The attempt to make next (1-based).
    attempt: u32,
    /// Waiting for the retry timer.
    waiting: bool,
}

/// A queue-depth alarm's threshold and whether it is raised.
#[derive(Debug)]
pub(crate) struct DepthWatch {
    pub(crate) threshold: usize,
    raised: AtomicBool,
}

/// A registered handler.
pub(crate) struct Cell<E> {
    /// Run-queue order: priority, then registration sequence.
    pub(crate) key: u64,
    pub(crate) name: Arc<str>,
    pub(crate) group: Option<Arc<str>>,
    pub(crate) priority: Priority,
    pub(crate) filter: Vec<String>,
    pub(crate) enabled: AtomicBool,
    /// Set by unregister; the next run closes the ring and ends.
    pub(crate) removed: AtomicBool,
    state: AtomicU8,
    /// Set by the timer when the pending retry is due.
    pub(crate) retry_ready: AtomicBool,
    /// Set by the run that ends the handler.
    pub(crate) done: AtomicBool,
    /// Waiting for a retry timer (its ring may hold events meanwhile).
    pub(crate) paused: AtomicBool,
    pub(crate) body: Mutex<Body<E>>,
    pub(crate) counters: Counters,
    pub(crate) unsub: Unsubscriber<E>,
    retry: RetryPolicy,
    pub(crate) depth: Option<DepthWatch>,
    /// The waker its subscription registers; set once at registration.
    pub(crate) waker: OnceLock<Waker>,
}

impl<E> fmt::Debug for Cell<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handler")
            .field("name", &self.name)
            .field("priority", &self.priority)
            .finish_non_exhaustive()
    }
}

impl<E> Cell<E> {
    pub(crate) fn state(&self) -> &AtomicU8 {
        &self.state
    }
}

impl<E: Event> Cell<E> {
    pub(crate) fn new(
        key: u64,
        opts: HandlerOptions,
        sub: Subscription<E>,
        callback: Callback<E>,
        depth_threshold: Option<usize>,
    ) -> Self {
        Self {
            key,
            name: Arc::from(opts.name),
            group: opts.group.map(Arc::from),
            priority: opts.priority,
            filter: opts
                .filter
                .patterns_slice()
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect(),
            enabled: AtomicBool::new(opts.enabled),
            removed: AtomicBool::new(false),
            state: AtomicU8::new(crate::scheduler::IDLE),
            retry_ready: AtomicBool::new(false),
            done: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            unsub: sub.unsubscriber(),
            body: Mutex::new(Body {
                sub,
                callback,
                next: None,
                jitter: Jitter::new(key.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            }),
            counters: Counters::default(),
            retry: opts.retry,
            depth: depth_threshold.map(|threshold| DepthWatch {
                threshold,
                raised: AtomicBool::new(false),
            }),
            waker: OnceLock::new(),
        }
    }

    /// Checks the queue-depth alarm: raises it once per upward crossing,
    /// re-arms it when the ring is back below the threshold.
    pub(crate) fn check_depth(&self, rt: &Runtime<E>) {
        let Some(watch) = &self.depth else { return };
        let queued = self.unsub.len();
        if queued >= watch.threshold {
            // Relaxed: the flag only has to make the alarm fire once per
            // crossing; the swap is one RMW, so two checkers cannot both win.
            if !watch.raised.swap(true, Ordering::Relaxed) {
                rt.signal(Signal::QueueDepth(DepthAlarm {
                    handler: Arc::clone(&self.name),
                    queued,
                    capacity: self.unsub.capacity(),
                    threshold: watch.threshold,
                }));
            }
        } else {
            watch.raised.store(false, Ordering::Relaxed);
        }
    }

    pub(crate) fn stats(&self) -> HandlerStats {
        let c = &self.counters;
        let ring = self.unsub.stats();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        HandlerStats {
            name: self.name.to_string(),
            priority: self.priority,
            filter: self.filter.clone(),
            enabled: self.enabled.load(Ordering::Relaxed),
            received: load(&c.received),
            handled: load(&c.handled),
            errors: load(&c.errors),
            panics: load(&c.panics),
            retries: load(&c.retries),
            dead_lettered: load(&c.dead_lettered),
            skipped: load(&c.skipped),
            abandoned: load(&c.abandoned),
            delivered: ring.delivered,
            dropped: ring.dropped,
            queued: ring.queued,
            capacity: ring.capacity,
        }
    }
}

/// What happened to one attempt.
enum Step {
    /// Go on with the next event.
    Next,
    /// A retry is pending: stop until its timer fires.
    Paused,
}

/// Runs `cell` on the current worker: its pending event, then up to
/// [`BATCH`] events from its ring.
pub(crate) fn run<E: Event>(rt: &Runtime<E>, cell: &Arc<Cell<E>>) -> Outcome {
    // Uncontended: the scheduler's state machine lets one worker run a
    // handler at a time.
    let mut body = cell.body.lock();
    let body = &mut *body;
    let Some(waker) = cell.waker.get() else {
        // Not reachable: the waker is set before the handler is first
        // scheduled. Treat it as idle rather than run without one.
        return Outcome::Idle;
    };
    let mut cx = Context::from_waker(waker);
    cell.check_depth(rt);
    for _ in 0..BATCH {
        // Relaxed: a flag checked between events; the ring close that goes
        // with it is ordered by the ring itself.
        if cell.removed.load(Ordering::Relaxed) {
            return retire(cell, body);
        }
        if let Some(pending) = body.next.take() {
            if pending.waiting {
                cell.paused.store(false, Ordering::Relaxed);
                if rt.is_stopping() {
                    // Shutdown abandons pending retries, due or not.
                    bump(&cell.counters.abandoned);
                    continue;
                }
                // Acquire: pairs with the timer's Release store.
                if !cell.retry_ready.swap(false, Ordering::Acquire) {
                    cell.paused.store(true, Ordering::Relaxed);
                    body.next = Some(pending);
                    return Outcome::Idle;
                }
            }
            match attempt(rt, cell, body, pending.event, pending.attempt) {
                Step::Next => continue,
                Step::Paused => return Outcome::Idle,
            }
        }
        match body.sub.poll_recv(&mut cx) {
            Poll::Ready(Ok(event)) => {
                bump(&cell.counters.received);
                // Relaxed: a toggle takes effect from some event on; no data
                // depends on it.
                if !cell.enabled.load(Ordering::Relaxed) {
                    bump(&cell.counters.skipped);
                    continue;
                }
                if rt.sched.better_ready(cell.key) {
                    body.next = Some(Pending {
                        event,
                        attempt: 1,
                        waiting: false,
                    });
                    return Outcome::Yield;
                }
                if let Step::Paused = attempt(rt, cell, body, event, 1) {
                    return Outcome::Idle;
                }
            }
            // Overwritten events are counted by the ring.
            Poll::Ready(Err(RecvError::Lagged(_))) => {}
            Poll::Ready(Err(RecvError::Disconnected)) => {
                // Release: as in `retire`.
                cell.done.store(true, Ordering::Release);
                return Outcome::Done;
            }
            Poll::Pending => return Outcome::Idle,
        }
    }
    Outcome::Yield
}

/// Ends an unregistered handler: closes its ring and counts what it held
/// as skipped.
fn retire<E: Event>(cell: &Cell<E>, body: &mut Body<E>) -> Outcome {
    cell.unsub.unsubscribe();
    if body.next.take().is_some() {
        bump(&cell.counters.skipped);
    }
    for _ in body.sub.try_iter() {
        bump(&cell.counters.received);
        bump(&cell.counters.skipped);
    }
    // Release: pairs with the Acquire loads of `done` in `wait_idle` and
    // shutdown, which then read the counters.
    cell.done.store(true, Ordering::Release);
    Outcome::Done
}

/// Calls the handler once on `event`, with panics caught, and settles the
/// outcome: counted, retried, or dead-lettered.
fn attempt<E: Event>(
    rt: &Runtime<E>,
    cell: &Arc<Cell<E>>,
    body: &mut Body<E>,
    event: E,
    attempt: u32,
) -> Step {
    let callback = &mut body.callback;
    let failure = match catch_unwind(AssertUnwindSafe(|| callback(&event))) {
        Ok(Ok(())) => {
            bump(&cell.counters.handled);
            return Step::Next;
        }
        Ok(Err(err)) => {
            bump(&cell.counters.errors);
            Failure::Error(Arc::from(err))
        }
        Err(payload) => {
            bump(&cell.counters.panics);
            let failure = Failure::from_panic(&*payload);
            // Dropping a panic payload can itself panic; contain that too.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            #[cfg(feature = "tracing")]
            tracing::error!(handler = %cell.name, attempt, %failure, "evbus handler panicked");
            failure
        }
    };
    let retry = attempt < cell.retry.max_attempts() && !rt.is_stopping();
    rt.report_failure(cell, attempt, &failure, retry);
    if retry {
        bump(&cell.counters.retries);
        let delay = cell.retry.delay(attempt, body.jitter.unit());
        body.next = Some(Pending {
            event,
            attempt: attempt + 1,
            waiting: true,
        });
        // Relaxed: read by `wait_idle` under the scheduler's lock, after
        // this run ends (which takes that lock).
        cell.paused.store(true, Ordering::Relaxed);
        rt.schedule_retry(cell, delay);
        return Step::Paused;
    }
    if rt.is_stopping() && attempt < cell.retry.max_attempts() {
        bump(&cell.counters.abandoned);
        return Step::Next;
    }
    bump(&cell.counters.dead_lettered);
    #[cfg(feature = "tracing")]
    tracing::warn!(handler = %cell.name, attempts = attempt, %failure, "evbus handler gave up; event dead-lettered");
    rt.signal(Signal::DeadLetter(DeadLetter {
        event,
        handler: Arc::clone(&cell.name),
        attempts: attempt,
        failure,
    }));
    Step::Next
}

/// Gives `cell` the waker its subscription registers while idle.
pub(crate) fn install_waker<E: Event>(rt: &Runtime<E>, cell: &Arc<Cell<E>>) {
    let waker = Waker::from(Arc::new(CellWaker {
        cell: Arc::downgrade(cell),
        sched: Arc::downgrade(&rt.sched),
    }));
    let _ = cell.waker.set(waker);
}
