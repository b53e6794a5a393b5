//! One registered handler: its subscription, callback, counters and flags,
//! and one attempt at an event, which returns the [`Step`] the worker takes
//! next.

use std::{
    error::Error as StdError,
    fmt,
    sync::{Arc, OnceLock},
    task::Waker,
    time::Duration,
};

use evbus_core::{Event, Subscription, Unsubscriber};

use crate::{
    isolate,
    options::HandlerOptions,
    retry::{Jitter, RetryPolicy},
    scheduler::{IDLE, Task},
    signal::{DeadLetter, DepthAlarm, Failure},
    stats::{HandlerStats, Priority},
    sync::{AtomicBool, AtomicU8, AtomicU64, Mutex, Ordering},
};

/// What a handler returns: `Err` counts as a failure and is retried.
pub type HandlerResult = Result<(), Box<dyn StdError + Send + Sync>>;

pub(crate) type Callback<E> = Box<dyn FnMut(&E) -> HandlerResult + Send>;

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
    /// Panics contained outside the handler call (see `isolate`).
    pub(crate) contained: AtomicU64,
    /// The replay ledger (see `HandlerStats`).
    pub(crate) replayed: AtomicU64,
    pub(crate) replay_handled: AtomicU64,
    pub(crate) skipped_dry_run: AtomicU64,
    pub(crate) replay_errors: AtomicU64,
    pub(crate) replay_failed: AtomicU64,
    /// Of `replay_failed`: abandoned retries (for the shutdown report,
    /// which counts every abandoned retry).
    pub(crate) replay_abandoned: AtomicU64,
}

impl Counters {
    /// The counter of an event taken out of the ring.
    pub(crate) fn taken(&self, replayed: bool) -> &AtomicU64 {
        if replayed {
            &self.replayed
        } else {
            &self.received
        }
    }

    /// The counter of an event the handler returned `Ok` for.
    pub(crate) fn handled(&self, replayed: bool) -> &AtomicU64 {
        if replayed {
            &self.replay_handled
        } else {
            &self.handled
        }
    }

    /// The counter of an event skipped because the handler was disabled or
    /// unregistered.
    pub(crate) fn skipped(&self, replayed: bool) -> &AtomicU64 {
        if replayed {
            &self.replay_failed
        } else {
            &self.skipped
        }
    }

    /// Counts an event whose pending retry was abandoned.
    pub(crate) fn count_abandoned(&self, replayed: bool) {
        if replayed {
            bump(&self.replay_failed);
            bump(&self.replay_abandoned);
        } else {
            bump(&self.abandoned);
        }
    }

    /// Abandoned retries, live and replayed.
    pub(crate) fn all_abandoned(&self) -> u64 {
        self.abandoned.load(Ordering::Relaxed) + self.replay_abandoned.load(Ordering::Relaxed)
    }

    /// The counter of an event sent to the dead-letter topic.
    pub(crate) fn dead_lettered(&self, replayed: bool) -> &AtomicU64 {
        if replayed {
            &self.replay_failed
        } else {
            &self.dead_lettered
        }
    }
}

/// Adds one to a counter (Relaxed: see [`Counters`]).
pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// What only the running worker touches.
pub(crate) struct Body<E> {
    pub(crate) sub: Subscription<E>,
    /// Replaced by a no-op when the handler ends, so its captured state is
    /// dropped on the worker, under no dispatcher lock (see `take_callback`).
    callback: Callback<E>,
    /// An event taken from the ring but not finished: waiting for its retry
    /// timer, or put back because a better handler became ready.
    pub(crate) next: Option<Pending<E>>,
    jitter: Jitter,
}

impl<E> Body<E> {
    /// Takes the handler's callback out, leaving a no-op: a handler that
    /// ended drops its captured state at once, on the worker and under no
    /// dispatcher lock, instead of wherever the last reference to the
    /// handler happens to go (which may be under a dispatcher lock, where a
    /// `Drop` that calls back into the dispatcher would deadlock).
    pub(crate) fn take_callback(&mut self) -> Callback<E> {
        std::mem::replace(&mut self.callback, Box::new(|_: &E| Ok(())))
    }
}

pub(crate) struct Pending<E> {
    pub(crate) event: E,
    /// The event carries a replay mark (read once, when it was taken).
    pub(crate) replayed: bool,
    /// The attempt to make next (1-based).
    pub(crate) attempt: u32,
    /// Waiting for the retry timer.
    pub(crate) waiting: bool,
}

/// A queue-depth alarm's threshold and whether it is raised.
#[derive(Debug)]
pub(crate) struct DepthWatch {
    pub(crate) threshold: usize,
    raised: AtomicBool,
}

/// A registered handler.
pub(crate) struct Handler<E> {
    /// Run-queue order: priority, then registration sequence.
    pub(crate) key: u64,
    pub(crate) name: Arc<str>,
    pub(crate) group: Option<Arc<str>>,
    pub(crate) priority: Priority,
    pub(crate) filter: Vec<String>,
    pub(crate) enabled: AtomicBool,
    /// Set by unregister; the next run closes the ring and ends.
    pub(crate) removed: AtomicBool,
    /// The scheduler's state word (see `scheduler`).
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
    /// Skip dry-run replays (see `HandlerOptions::skip_dry_run`).
    pub(crate) skip_dry_run: bool,
    /// The waker its subscription registers; set once at registration.
    pub(crate) waker: OnceLock<Waker>,
}

impl<E> fmt::Debug for Handler<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handler")
            .field("name", &self.name)
            .field("priority", &self.priority)
            .finish_non_exhaustive()
    }
}

impl<E: Event> Task for Handler<E> {
    fn key(&self) -> u64 {
        self.key
    }

    fn state(&self) -> &AtomicU8 {
        &self.state
    }
}

/// A failed attempt, for the error hook.
#[derive(Debug)]
pub(crate) struct Failed {
    /// The attempt that failed (1-based).
    pub(crate) attempt: u32,
    pub(crate) failure: Failure,
}

/// What the worker does after one attempt.
pub(crate) enum Step<E> {
    /// The event was handled: drop it (its `Drop` is user code, which the
    /// worker contains) and go on with the next one.
    Next(E),
    /// The attempt failed; the event waits in the body for a retry after
    /// the delay.
    Retry(Failed, Duration),
    /// The last attempt failed: send the event to the dead-letter topic.
    DeadLetter(DeadLetter<E>),
    /// The attempt failed while the dispatcher stops, with attempts left:
    /// the retry is abandoned and the event dropped.
    Abandon(Failed, E),
}

impl<E: Event> Handler<E> {
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
            state: AtomicU8::new(IDLE),
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
            skip_dry_run: opts.skip_dry_run,
            depth: depth_threshold.map(|threshold| DepthWatch {
                threshold,
                raised: AtomicBool::new(false),
            }),
            waker: OnceLock::new(),
        }
    }

    /// Checks the queue-depth alarm: the alarm to raise on an upward
    /// crossing (once per crossing); re-arms it when the ring is back below
    /// the threshold.
    pub(crate) fn check_depth(&self) -> Option<DepthAlarm> {
        let watch = self.depth.as_ref()?;
        let queued = self.unsub.len();
        if queued >= watch.threshold {
            // Relaxed: the flag only has to make the alarm fire once per
            // crossing; the swap is one RMW, so two checkers cannot both win.
            if !watch.raised.swap(true, Ordering::Relaxed) {
                return Some(DepthAlarm {
                    handler: Arc::clone(&self.name),
                    queued,
                    capacity: self.unsub.capacity(),
                    threshold: watch.threshold,
                });
            }
        } else {
            watch.raised.store(false, Ordering::Relaxed);
        }
        None
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
            contained_panics: load(&c.contained),
            replayed: load(&c.replayed),
            replay_handled: load(&c.replay_handled),
            skipped_dry_run: load(&c.skipped_dry_run),
            replay_errors: load(&c.replay_errors),
            replay_failed: load(&c.replay_failed),
            delivered: ring.delivered,
            dropped: ring.dropped,
            queued: ring.queued,
            capacity: ring.capacity,
        }
    }

    /// Calls the handler once on `event`, with panics caught, counts the
    /// call (`handled`, `errors` or `panics`; for a `replayed` event
    /// `replay_handled` or `replay_errors`) and says what comes next by
    /// the retry policy (which retries a panic only with `retry_panics`).
    /// `stopping` is asked after the call: a dispatcher that stops retries
    /// nothing.
    ///
    /// On [`Step::Retry`] the event is parked in `body` for the retry; the
    /// worker counts the retry, dead letter or abandonment when it acts on
    /// the step. Every other step hands the event back to the worker, which
    /// drops it or publishes it with its user code contained.
    pub(crate) fn attempt(
        &self,
        body: &mut Body<E>,
        event: E,
        replayed: bool,
        attempt: u32,
        stopping: impl FnOnce() -> bool,
    ) -> Step<E> {
        let callback = &mut body.callback;
        let c = &self.counters;
        let failure = match isolate::catch(|| callback(&event)) {
            Ok(Ok(())) => {
                bump(c.handled(replayed));
                return Step::Next(event);
            }
            Ok(Err(err)) => {
                bump(if replayed {
                    &c.replay_errors
                } else {
                    &c.errors
                });
                Failure::Error(Arc::from(err))
            }
            Err(payload) => {
                bump(if replayed {
                    &c.replay_errors
                } else {
                    &c.panics
                });
                let failure = Failure::from_panic(&*payload);
                // Dropping a panic payload can itself panic; contain that too.
                isolate::drop_payload(payload);
                #[cfg(feature = "tracing")]
                tracing::error!(handler = %self.name, attempt, %failure, "evbus handler panicked");
                failure
            }
        };
        // A panic is retried only if the policy says so.
        let retryable = !failure.is_panic() || self.retry.retry_panics();
        let attempts_left = retryable && attempt < self.retry.max_attempts();
        if attempts_left && stopping() {
            return Step::Abandon(Failed { attempt, failure }, event);
        }
        if attempts_left {
            let delay = self.retry.delay(attempt, body.jitter.unit());
            body.next = Some(Pending {
                event,
                replayed,
                attempt: attempt + 1,
                waiting: true,
            });
            return Step::Retry(Failed { attempt, failure }, delay);
        }
        Step::DeadLetter(DeadLetter {
            event,
            handler: Arc::clone(&self.name),
            attempts: attempt,
            failure,
        })
    }
}
