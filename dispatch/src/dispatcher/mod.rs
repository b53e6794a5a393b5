//! The public handle: registering handlers, toggles, watchdogs, stats and
//! waits. The parts around it:
//!
//! 1. `builder`: [`DispatcherBuilder`](builder::DispatcherBuilder), which
//!    starts the threads.
//! 2. `error`: [`BuildError`](error::BuildError), [`RegisterError`] and
//!    [`SettleTimeout`].
//! 3. `shutdown`: the shutdown sequence and its [`DispatchReport`].
//! 4. `weak`: [`WeakDispatcher`](weak::WeakDispatcher), a handle that does
//!    not keep the dispatcher alive.

pub(crate) mod builder;
pub(crate) mod error;
pub(crate) mod shutdown;
pub(crate) mod weak;

use std::{
    fmt,
    sync::Arc,
    time::{Duration, Instant},
};

use evbus_core::{Bus, Event, Filter, SubscribeOptions};

use self::{
    error::{RegisterError, SettleTimeout},
    shutdown::{DispatchReport, Owner},
};
use crate::{
    clock::deadline,
    handler::{Callback, Handler, HandlerResult},
    options::HandlerOptions,
    retry::RetryPolicy,
    runtime::Runtime,
    scheduler::{DONE, IDLE, Task, TaskWaker},
    signal::Signal,
    stats::{HandlerStats, Priority},
    sync::Ordering,
    watchdog::StallWatch,
};

/// A pool of worker threads running handlers over a [`Bus`].
///
/// Each handler has its own subscription, ring and counters, so a slow or
/// failing handler affects only itself. Handles are cheap to clone; a
/// handler may hold one and call any method from inside its callback
/// (publish through [`bus`](Dispatcher::bus), register, unregister itself,
/// disable itself, shut down) without deadlock.
///
/// Dropping the last handle shuts the dispatcher down, as dropping a tokio
/// `Runtime` does: the same sequence as [`shutdown`](Dispatcher::shutdown)
/// with [`DEFAULT_SHUTDOWN_GRACE`](crate::DEFAULT_SHUTDOWN_GRACE), so that
/// `drop` may block that long for a wedged handler. A handler that holds a
/// `Dispatcher` keeps it alive (the dispatcher owns the handler); give it
/// a [`WeakDispatcher`](crate::WeakDispatcher) from
/// [`downgrade`](Dispatcher::downgrade) instead, or call `shutdown`.
///
/// See the crate docs for ordering, retries, toggles and watchdogs.
pub struct Dispatcher<E: Event> {
    rt: Arc<Runtime<E>>,
    owner: Arc<Owner<E>>,
}

impl<E: Event> Clone for Dispatcher<E> {
    fn clone(&self) -> Self {
        Self {
            rt: Arc::clone(&self.rt),
            owner: Arc::clone(&self.owner),
        }
    }
}

impl<E: Event> fmt::Debug for Dispatcher<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatcher")
            .field("id", &self.rt.id)
            .field("handlers", &self.rt.handlers.lock().len())
            .finish_non_exhaustive()
    }
}

/// Subscription priority per handler priority: routes deliver to higher
/// values first.
fn ring_priority(p: Priority) -> i32 {
    match p {
        Priority::High => 2,
        Priority::Normal => 1,
        Priority::Low => 0,
    }
}

/// Run-queue key: priority in the top bits, registration order below.
fn run_key(p: Priority, seq: u64) -> u64 {
    let rank = match p {
        Priority::High => 0u64,
        Priority::Normal => 1,
        Priority::Low => 2,
    };
    (rank << 56) | (seq & ((1 << 56) - 1))
}

impl<E: Event> Dispatcher<E> {
    /// The bus the handlers subscribe to.
    pub fn bus(&self) -> &Bus<E> {
        &self.rt.bus
    }

    /// The dispatcher's own bus of dead letters and watchdog alarms (see
    /// [`SignalKind`](crate::SignalKind) for the topics). Closed by
    /// shutdown, and so when the last `Dispatcher` handle is dropped:
    /// subscribers then drain, then get `Disconnected`.
    pub fn signals(&self) -> &Bus<Signal<E>> {
        &self.rt.signals
    }

    /// Registers a handler. It sees every matching event published after
    /// this returns.
    ///
    /// # Errors
    ///
    /// [`RegisterError`] for a duplicate or empty name, a bad capacity or
    /// depth fraction, or after shutdown.
    pub fn register(
        &self,
        opts: HandlerOptions,
        callback: impl FnMut(&E) -> HandlerResult + Send + 'static,
    ) -> Result<(), RegisterError> {
        self.register_boxed(opts, Box::new(callback))
    }

    fn register_boxed(
        &self,
        opts: HandlerOptions,
        callback: Callback<E>,
    ) -> Result<(), RegisterError> {
        if self.rt.is_stopping() {
            return Err(RegisterError::ShutDown);
        }
        if opts.name.is_empty() {
            return Err(RegisterError::EmptyName);
        }
        let depth_alarm = match opts.depth_alarm {
            Some(f) if !(f > 0.0 && f <= 1.0) => {
                return Err(RegisterError::InvalidDepthAlarm(f.to_string()));
            }
            fraction => fraction,
        };
        // Hold the list lock across the subscribe so names stay unique and
        // registration order is subscription order.
        let mut handlers = self.rt.handlers.lock();
        if handlers.iter().any(|h| *h.name == *opts.name) {
            return Err(RegisterError::DuplicateName(opts.name));
        }
        let sub_opts: SubscribeOptions = opts
            .subscribe
            .clone()
            .name(opts.name.clone())
            .priority(ring_priority(opts.priority));
        let sub = self.rt.bus.subscribe_with(opts.filter.clone(), sub_opts)?;
        // The threshold in events, from the capacity the ring was made with.
        let threshold = depth_alarm.map(|f| {
            let cap = sub.capacity();
            ((cap as f64 * f).ceil() as usize).clamp(1, cap.max(1))
        });
        // Relaxed: a sequence number under the list lock.
        let seq = self.rt.seq.fetch_add(1, Ordering::Relaxed);
        let handler = Arc::new(Handler::new(
            run_key(opts.priority, seq),
            opts,
            sub,
            callback,
            threshold,
        ));
        let _ = handler
            .waker
            .set(TaskWaker::waker(&handler, &self.rt.sched));
        handlers.push(Arc::clone(&handler));
        drop(handlers);
        #[cfg(feature = "tracing")]
        tracing::debug!(handler = %handler.name, "evbus handler registered");
        // The first run polls the ring and registers the waker.
        self.rt.sched.notify(&handler);
        Ok(())
    }

    /// Registers a stall watchdog named `name`: if no event matching
    /// `filter` arrives for `after` (on the dispatcher's clock), it publishes
    /// [`Signal::Stall`] once, and [`Signal::Recovered`] when traffic comes
    /// back. It runs as a handler named `watchdog.<name>`.
    ///
    /// # Errors
    ///
    /// As [`register`](Dispatcher::register), and
    /// [`RegisterError::ZeroStallPeriod`].
    pub fn watch_stall(
        &self,
        name: &str,
        filter: Filter,
        after: Duration,
    ) -> Result<(), RegisterError> {
        if after.is_zero() {
            return Err(RegisterError::ZeroStallPeriod);
        }
        if name.is_empty() {
            return Err(RegisterError::EmptyName);
        }
        let now = self.rt.clock.now();
        let watch = Arc::new(StallWatch::new(name, after, now));
        let rt = Arc::downgrade(&self.rt);
        let seen = Arc::clone(&watch);
        let opts = HandlerOptions::new(format!("watchdog.{name}"), filter)
            .priority(Priority::High)
            .overflow(evbus_core::Overflow::DropOldest)
            .capacity(64)
            .retry(RetryPolicy::never());
        self.register(opts, move |_event| {
            if let Some(rt) = rt.upgrade() {
                let recovered = |alarm| rt.signal(None, Signal::Recovered(alarm));
                if let Some(due) = seen.seen(rt.clock.now(), recovered) {
                    // Re-armed after a recovery.
                    rt.schedule_stall_check(&seen, due);
                }
            }
            Ok(())
        })?;
        self.rt
            .schedule_stall_check(&watch, deadline(now, watch.after()));
        // The timer holds only a weak reference; the handler keeps it alive.
        drop(watch);
        Ok(())
    }

    fn find(&self, name: &str) -> Option<Arc<Handler<E>>> {
        self.rt
            .handlers
            .lock()
            .iter()
            .find(|h| *h.name == *name)
            .cloned()
    }

    /// Enables a handler. Returns `false` if no handler has that name.
    pub fn enable(&self, name: &str) -> bool {
        self.set_enabled(name, true)
    }

    /// Disables a handler: it keeps its registration and ring, and the
    /// events it takes while disabled are counted as `skipped`, not run.
    /// Returns `false` if no handler has that name.
    pub fn disable(&self, name: &str) -> bool {
        self.set_enabled(name, false)
    }

    fn set_enabled(&self, name: &str, on: bool) -> bool {
        match self.find(name) {
            Some(handler) => {
                // Relaxed: see the load in `worker::run`.
                handler.enabled.store(on, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Whether a handler is enabled; `None` if no handler has that name.
    pub fn is_enabled(&self, name: &str) -> Option<bool> {
        self.find(name).map(|h| h.enabled.load(Ordering::Relaxed))
    }

    /// Unregisters a handler: its ring closes at once, a call in progress
    /// finishes, and events still buffered are counted as `skipped`.
    /// Returns `false` if no handler has that name.
    pub fn unregister(&self, name: &str) -> bool {
        let handler = {
            let mut handlers = self.rt.handlers.lock();
            match handlers.iter().position(|h| *h.name == *name) {
                Some(i) => handlers.remove(i),
                None => return false,
            }
        };
        self.retire(&handler);
        true
    }

    fn retire(&self, handler: &Arc<Handler<E>>) {
        self.rt.retired.lock().push(Arc::clone(handler));
        // Relaxed: the worker checks it between events; the ring close below
        // is what stops deliveries.
        handler.removed.store(true, Ordering::Relaxed);
        handler.unsub.unsubscribe();
        #[cfg(feature = "tracing")]
        tracing::debug!(handler = %handler.name, "evbus handler unregistered");
        // Mark a waiting retry due so the next run retires the handler.
        // Release: pairs with the worker's Acquire swap in `worker::run`.
        handler.retry_ready.store(true, Ordering::Release);
        self.rt.sched.notify(handler);
    }

    /// Unregisters every handler of `group`; returns how many.
    pub fn unregister_group(&self, group: &str) -> usize {
        let removed: Vec<_> = {
            let mut handlers = self.rt.handlers.lock();
            let (out, keep) = handlers
                .drain(..)
                .partition(|h| h.group.as_deref() == Some(group));
            *handlers = keep;
            out
        };
        for handler in &removed {
            self.retire(handler);
        }
        removed.len()
    }

    /// Unregisters every handler; returns how many.
    pub fn unregister_all(&self) -> usize {
        let removed = std::mem::take(&mut *self.rt.handlers.lock());
        for handler in &removed {
            self.retire(handler);
        }
        removed.len()
    }

    /// Names of the registered handlers, in registration order.
    pub fn handler_names(&self) -> Vec<String> {
        self.rt
            .handlers
            .lock()
            .iter()
            .map(|h| h.name.to_string())
            .collect()
    }

    /// Names of the handlers registered in `group`.
    pub fn handlers_in(&self, group: &str) -> Vec<String> {
        self.rt
            .handlers
            .lock()
            .iter()
            .filter(|h| h.group.as_deref() == Some(group))
            .map(|h| h.name.to_string())
            .collect()
    }

    /// Counters of every registered handler, in registration order.
    pub fn handler_stats(&self) -> Vec<HandlerStats> {
        self.rt
            .handlers_snapshot()
            .iter()
            .map(|h| h.stats())
            .collect()
    }

    /// Counters of one handler.
    pub fn stats(&self, name: &str) -> Option<HandlerStats> {
        self.find(name).map(|h| h.stats())
    }

    /// Waits until every handler is idle: nothing buffered and nothing
    /// running, except handlers waiting for a retry timer. Returns `false`
    /// if `timeout` passed first. For tests and orderly hand-offs.
    ///
    /// A handler waiting for a retry counts as idle here, and its later
    /// events wait in its ring; to wait for those too, use
    /// [`wait_settled`](Dispatcher::wait_settled).
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        self.wait_for(timeout, |h| {
            // Relaxed: see `worker::settle`.
            h.paused.load(Ordering::Relaxed) || h.unsub.is_empty()
        })
    }

    /// Waits until every event the handlers received is settled: handled,
    /// dead-lettered, or skipped (events their rings dropped are counted
    /// there and never received), with nothing buffered, nothing running and
    /// **no retry pending**. Returns `Ok` then, or [`SettleTimeout`], naming
    /// the handlers still busy or waiting for a retry, once `timeout` (in
    /// real time) has passed.
    ///
    /// Retries run on the dispatcher's [`Clock`](crate::Clock): with a
    /// [`ManualClock`](crate::ManualClock), a pending retry settles only
    /// when another thread advances the clock. Called from inside a handler,
    /// it does not wait for that handler.
    ///
    /// "Wait, report, shut down" is `wait_settled`, then
    /// [`handler_stats`](Dispatcher::handler_stats), then
    /// [`shutdown`](Dispatcher::shutdown): the shutdown then has no retry
    /// to abandon. (After [`wait_idle`](Dispatcher::wait_idle) it may.)
    ///
    /// # Errors
    ///
    /// [`SettleTimeout`] if some handler had not settled by the deadline.
    pub fn wait_settled(&self, timeout: Duration) -> Result<(), SettleTimeout> {
        // Relaxed: see `worker::settle`.
        let settled = |h: &Handler<E>| !h.paused.load(Ordering::Relaxed) && h.unsub.is_empty();
        if self.wait_for(timeout, settled) {
            return Ok(());
        }
        let me = self.rt.current_handler();
        let mut err = SettleTimeout {
            busy: Vec::new(),
            retrying: Vec::new(),
        };
        for h in self.rt.live_handlers() {
            // Acquire: as in `wait_for`; a snapshot for the error.
            let state = h.state().load(Ordering::Acquire);
            if Some(h.key) == me || state == DONE || (state == IDLE && settled(&h)) {
                continue;
            }
            let list = if state == IDLE && h.paused.load(Ordering::Relaxed) {
                &mut err.retrying
            } else {
                &mut err.busy
            };
            list.push(h.name.to_string());
        }
        if err.busy.is_empty() && err.retrying.is_empty() {
            // Settled between the deadline and the snapshot.
            return Ok(());
        }
        Err(err)
    }

    /// Waits until every live handler but the caller's own is done, or idle
    /// (not scheduled, not running) with `quiet` true; `false` if `timeout`
    /// passed first. Re-checks after every run that ends.
    fn wait_for(&self, timeout: Duration, quiet: impl Fn(&Handler<E>) -> bool) -> bool {
        let until = deadline(Instant::now(), timeout);
        let me = self.rt.current_handler();
        self.rt.sched.wait_until(until, || {
            self.rt.live_handlers().iter().all(|h| {
                if Some(h.key) == me {
                    return true;
                }
                // Acquire: pairs with the worker's Release when the run
                // ended, so a drained ring is seen drained.
                let state = h.state().load(Ordering::Acquire);
                state == DONE || (state == IDLE && quiet(h))
            })
        })
    }

    /// Shuts down: closes every handler's ring, lets the workers drain what
    /// is buffered (handlers still run), abandons pending retries (counted
    /// per handler as `abandoned`), waits at most `grace` for handlers still
    /// running, closes the signal bus, and joins the workers and the timer.
    /// To let pending retries run first, call
    /// [`wait_settled`](Dispatcher::wait_settled) before.
    ///
    /// Called from inside a handler, it does not wait for that handler (nor
    /// join its worker, which exits once the call returns). Idempotent: a
    /// second call reports `already_shut_down`.
    pub fn shutdown(&self, grace: Duration) -> DispatchReport {
        self.owner.shutdown(grace)
    }

    /// Whether shutdown has begun.
    pub fn is_shut_down(&self) -> bool {
        self.rt.is_stopping()
    }
}
