//! The state every worker, the timer and every `Dispatcher` handle share.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, Instant},
};

use crossbeam_channel::Sender;
use evbus_core::{Bus, Event};

use crate::{
    clock::{Clock, deadline},
    handler::{Handler, bump},
    isolate,
    scheduler::Scheduler,
    signal::{Failure, Signal},
    sync::{AtomicBool, AtomicU64, Mutex, Ordering},
    timer::{Fire, Msg},
    watchdog::StallWatch,
};

/// One failed handler call, as the error hook sees it.
#[derive(Debug)]
#[non_exhaustive]
pub struct HandlerFailure<'a> {
    /// The handler's name.
    pub handler: &'a str,
    /// The attempt that failed (1-based).
    pub attempt: u32,
    /// What went wrong.
    pub failure: &'a Failure,
    /// Whether a retry is scheduled (otherwise the event is dead-lettered,
    /// or abandoned during shutdown).
    pub will_retry: bool,
}

pub(crate) type ErrorHook = Arc<dyn Fn(&HandlerFailure<'_>) + Send + Sync>;

pub(crate) struct Runtime<E> {
    /// Unique per dispatcher in this process (see `CURRENT`).
    pub(crate) id: u64,
    pub(crate) bus: Bus<E>,
    pub(crate) signals: Bus<Signal<E>>,
    pub(crate) sched: Arc<Scheduler<Handler<E>>>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) timer: Sender<Msg<E>>,
    hook: Option<ErrorHook>,
    stopping: AtomicBool,
    /// Registered handlers, in registration order.
    pub(crate) handlers: Mutex<Vec<Arc<Handler<E>>>>,
    /// Unregistered handlers whose last run has not ended yet: `wait_idle`
    /// and shutdown still wait for them.
    pub(crate) retired: Mutex<Vec<Arc<Handler<E>>>>,
    /// Registration sequence numbers.
    pub(crate) seq: AtomicU64,
    /// Panics contained by [`Runtime::isolate`], over all handlers and the
    /// dispatcher's own threads.
    pub(crate) contained: AtomicU64,
}

impl<E> fmt::Debug for Runtime<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

thread_local! {
    /// On a worker thread: its dispatcher's id and the key of the handler it
    /// is running (`u64::MAX` between runs). Lets shutdown, called from a
    /// handler, skip waiting for itself.
    pub(crate) static CURRENT: std::cell::Cell<(u64, u64)> =
        const { std::cell::Cell::new((u64::MAX, u64::MAX)) };
}

impl<E: Event> Runtime<E> {
    pub(crate) fn new(
        id: u64,
        bus: Bus<E>,
        clock: Arc<dyn Clock>,
        timer: Sender<Msg<E>>,
        hook: Option<ErrorHook>,
    ) -> Self {
        Self {
            id,
            bus,
            signals: Bus::new(),
            sched: Arc::new(Scheduler::new()),
            clock,
            timer,
            hook,
            stopping: AtomicBool::new(false),
            handlers: Mutex::new(Vec::new()),
            retired: Mutex::new(Vec::new()),
            seq: AtomicU64::new(0),
            contained: AtomicU64::new(0),
        }
    }

    pub(crate) fn is_stopping(&self) -> bool {
        // Acquire: pairs with shutdown's AcqRel swap, which precedes its
        // ring closes.
        self.stopping.load(Ordering::Acquire)
    }

    /// Marks the runtime stopping; `true` for the one call that did.
    pub(crate) fn begin_stop(&self) -> bool {
        // AcqRel: one winner runs the shutdown sequence.
        !self.stopping.swap(true, Ordering::AcqRel)
    }

    /// Runs user code `f` on a dispatcher thread, containing a panic (see
    /// `isolate`) and counting it, for `handler` if it acts for one.
    pub(crate) fn isolate(&self, handler: Option<&Handler<E>>, f: impl FnOnce()) {
        if isolate::contain(f) {
            bump(&self.contained);
            if let Some(handler) = handler {
                bump(&handler.counters.contained);
            }
            #[cfg(feature = "tracing")]
            tracing::error!(
                handler = handler.map(|h| &*h.name),
                "evbus user code panicked outside a handler call; contained"
            );
        }
    }

    /// Drops `value` (an event, a handler's state) with its `Drop`
    /// contained.
    pub(crate) fn discard<T>(&self, handler: Option<&Handler<E>>, value: T) {
        self.isolate(handler, move || drop(value));
    }

    /// Publishes on the signal bus, for `handler` if it raised the signal.
    /// The fan-out runs user code (the event's `Clone` in a dead letter,
    /// subscribers' wakers), which is contained. After shutdown the signal
    /// bus is closed and the signal is dropped.
    pub(crate) fn signal(&self, handler: Option<&Handler<E>>, signal: Signal<E>) {
        self.isolate(handler, || {
            // A refused signal comes back in the error: drop it here, still
            // contained.
            let _ = self.signals.publish(signal);
        });
    }

    /// Runs the error hook, containing any panic it raises.
    pub(crate) fn report_failure(
        &self,
        handler: &Handler<E>,
        attempt: u32,
        failure: &Failure,
        retry: bool,
    ) {
        if let Some(hook) = &self.hook {
            let report = HandlerFailure {
                handler: &handler.name,
                attempt,
                failure,
                will_retry: retry,
            };
            self.isolate(Some(handler), || hook(&report));
        }
    }

    /// Asks the timer to fire `handler`'s pending retry after `delay`.
    pub(crate) fn schedule_retry(&self, handler: &Arc<Handler<E>>, delay: Duration) {
        let due = deadline(self.clock.now(), delay);
        if self
            .timer
            .send(Msg::Retry(Arc::downgrade(handler), due))
            .is_err()
        {
            // The timer is gone (shutdown): mark it due, so the next run
            // abandons the retry instead of waiting forever.
            // Release: pairs with the worker's Acquire swap.
            handler.retry_ready.store(true, Ordering::Release);
        }
    }

    /// Asks the timer to check `watch` at `due`.
    pub(crate) fn schedule_stall_check(&self, watch: &Arc<StallWatch>, due: Instant) {
        let _ = self.timer.send(Msg::Stall(Arc::downgrade(watch), due));
    }

    pub(crate) fn handlers_snapshot(&self) -> Vec<Arc<Handler<E>>> {
        self.handlers.lock().clone()
    }

    /// Registered handlers and unregistered ones still finishing (those
    /// done are pruned, and released after the lock: a handler that ended
    /// has dropped its callback already, so releasing it runs no user code,
    /// but no dispatcher lock is held for it either way).
    pub(crate) fn live_handlers(&self) -> Vec<Arc<Handler<E>>> {
        let mut handlers = self.handlers_snapshot();
        let ended: Vec<_> = {
            let mut retired = self.retired.lock();
            // Acquire: pairs with the Release that ends a handler's last run.
            let (ended, live) = std::mem::take(&mut *retired)
                .into_iter()
                .partition(|h| h.done.load(Ordering::Acquire));
            *retired = live;
            handlers.extend(retired.iter().cloned());
            ended
        };
        drop(ended);
        handlers
    }

    /// Checks `handler`'s queue-depth alarm and publishes it if raised.
    pub(crate) fn check_depth(&self, handler: &Handler<E>) {
        if let Some(alarm) = handler.check_depth() {
            self.signal(Some(handler), Signal::QueueDepth(alarm));
        }
    }

    /// The key of the handler this thread is running for this dispatcher.
    pub(crate) fn current_handler(&self) -> Option<u64> {
        let (id, key) = CURRENT.with(|c| c.get());
        (id == self.id && key != u64::MAX).then_some(key)
    }
}

impl<E: Event> Fire<E> for Runtime<E> {
    fn retry_due(&self, handler: &Arc<Handler<E>>) {
        // Release: pairs with the worker's Acquire swap, so the retry it
        // sees is this due one.
        handler.retry_ready.store(true, Ordering::Release);
        self.sched.notify(handler);
    }

    fn stall_due(&self, watch: &StallWatch, now: Instant) -> Option<Instant> {
        watch.check(now, |alarm| self.signal(None, Signal::Stall(alarm)))
    }

    fn scan_depth(&self) {
        for handler in self.handlers_snapshot() {
            self.check_depth(&handler);
        }
    }
}
