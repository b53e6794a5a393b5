//! The public handle: building a dispatcher, registering handlers, toggles,
//! watchdogs, stats and shutdown.

use std::{
    fmt, io,
    num::NonZeroUsize,
    sync::Arc,
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use crossbeam_channel::{Receiver, Sender};
use evbus_core::{Bus, Event, Filter, SubscribeError, SubscribeOptions};

use crate::{
    clock::{Clock, SystemClock},
    handler::{self, Cell, HandlerOptions, HandlerResult},
    retry::RetryPolicy,
    runtime::{ErrorHook, HandlerFailure, Runtime},
    scheduler::{DONE, IDLE, NOTIFIED, RUNNING},
    signal::Signal,
    stats::{HandlerStats, Priority},
    sync::{AtomicU64, Mutex, Ordering},
    timer::{Msg, Timer, deadline},
    watchdog::StallWatch,
};

/// Dispatcher ids, for telling a handler's own dispatcher apart.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// The grace period of the shutdown that dropping the last handle runs.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Configures a [`Dispatcher`].
pub struct DispatcherBuilder<E> {
    bus: Bus<E>,
    workers: Option<usize>,
    clock: Arc<dyn Clock>,
    hook: Option<ErrorHook>,
    depth_scan: Duration,
}

impl<E> fmt::Debug for DispatcherBuilder<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DispatcherBuilder")
            .field("workers", &self.workers)
            .field("clock", &self.clock)
            .field("depth_scan", &self.depth_scan)
            .finish_non_exhaustive()
    }
}

impl<E: Event> DispatcherBuilder<E> {
    /// The number of worker threads. Default: `available_parallelism`.
    #[must_use]
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    /// The clock for retries and watchdogs. Default: [`SystemClock`].
    #[must_use]
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Called on the worker thread for every failed handler call (a panic
    /// in the hook is contained).
    #[must_use]
    pub fn on_error(mut self, hook: impl Fn(&HandlerFailure<'_>) + Send + Sync + 'static) -> Self {
        self.hook = Some(Arc::new(hook));
        self
    }

    /// How often (on the clock) the timer scans rings for queue-depth
    /// alarms; workers also check when they run a handler. Default 100 ms.
    #[must_use]
    pub fn depth_scan_every(mut self, every: Duration) -> Self {
        self.depth_scan = every.max(Duration::from_millis(1));
        self
    }

    /// Starts the workers and the timer.
    ///
    /// # Errors
    ///
    /// [`BuildError::ZeroWorkers`], or [`BuildError::Spawn`] if a thread
    /// could not be started (those already started are stopped).
    pub fn build(self) -> Result<Dispatcher<E>, BuildError> {
        let workers = match self.workers {
            Some(0) => return Err(BuildError::ZeroWorkers),
            Some(n) => n,
            None => thread::available_parallelism().map_or(1, NonZeroUsize::get),
        };
        // Relaxed: ids only need to be unique.
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let (timer_tx, timer_rx) = crossbeam_channel::unbounded();
        let rt = Arc::new(Runtime::new(
            id,
            self.bus,
            Arc::clone(&self.clock),
            timer_tx.clone(),
            self.hook,
        ));
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        let owner = Arc::new(Owner {
            rt: Arc::clone(&rt),
            threads: Mutex::new(Threads {
                workers: Vec::new(),
                timer: None,
                done: done_rx,
            }),
        });
        let timer = Timer::new(
            timer_rx,
            Arc::clone(&self.clock),
            Arc::downgrade(&rt),
            self.depth_scan,
        );
        let spawned = thread::Builder::new()
            .name(format!("evbus-timer-{id}"))
            .spawn(move || timer.run());
        owner.threads.lock().timer = Some(spawned.map_err(BuildError::Spawn)?);
        for i in 0..workers {
            let rt = Arc::clone(&rt);
            let done: Sender<usize> = done_tx.clone();
            let spawned = thread::Builder::new()
                .name(format!("evbus-worker-{id}-{i}"))
                .spawn(move || {
                    rt.work();
                    let _ = done.send(i);
                });
            match spawned {
                Ok(handle) => owner.threads.lock().workers.push((i, handle)),
                Err(err) => {
                    owner.shutdown(Duration::ZERO);
                    return Err(BuildError::Spawn(err));
                }
            }
        }
        // A manual clock tells the timer when it jumps, and waits for it.
        let tx = timer_tx;
        self.clock.on_advance(Box::new(move || {
            let (ack_tx, ack_rx) = crossbeam_channel::bounded(1);
            if tx.send(Msg::Advanced(ack_tx)).is_ok() {
                let _ = ack_rx.recv();
            }
        }));
        Ok(Dispatcher { rt, owner })
    }
}

/// Why a dispatcher could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// `workers(0)`: nothing would run the handlers.
    ZeroWorkers,
    /// A thread could not be spawned.
    Spawn(io::Error),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroWorkers => f.write_str("a dispatcher needs at least one worker"),
            Self::Spawn(e) => write!(f, "could not spawn a dispatcher thread: {e}"),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Spawn(e) => Some(e),
            Self::ZeroWorkers => None,
        }
    }
}

/// Why a handler or watchdog could not be registered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegisterError {
    /// A handler of that name exists.
    DuplicateName(String),
    /// The name is empty.
    EmptyName,
    /// The subscription failed (bad capacity, empty filter, closed bus).
    Subscribe(SubscribeError),
    /// The depth-alarm fraction is not in `(0, 1]`.
    InvalidDepthAlarm(String),
    /// A stall watchdog's period is zero.
    ZeroStallPeriod,
    /// The dispatcher is shutting down.
    ShutDown,
}

impl fmt::Display for RegisterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DuplicateName(n) => write!(f, "a handler named {n:?} is already registered"),
            Self::EmptyName => f.write_str("a handler needs a non-empty name"),
            Self::Subscribe(e) => write!(f, "could not subscribe the handler: {e}"),
            Self::InvalidDepthAlarm(x) => {
                write!(f, "depth alarm fraction must be within (0, 1], got {x}")
            }
            Self::ZeroStallPeriod => f.write_str("a stall watchdog needs a period above zero"),
            Self::ShutDown => f.write_str("the dispatcher is shut down"),
        }
    }
}

impl std::error::Error for RegisterError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Subscribe(e) => Some(e),
            _ => None,
        }
    }
}

impl From<SubscribeError> for RegisterError {
    fn from(e: SubscribeError) -> Self {
        match e {
            SubscribeError::Closed => Self::ShutDown,
            other => Self::Subscribe(other),
        }
    }
}

/// What [`Dispatcher::shutdown`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct DispatchReport {
    /// `true` if an earlier call shut the dispatcher down; nothing was done.
    pub already_shut_down: bool,
    /// Every handler drained its ring before the deadline.
    pub drained: bool,
    /// Handlers still inside a call at the deadline.
    pub wedged: Vec<String>,
    /// Handlers not inside a call, but with events left at the deadline
    /// (their workers were busy with a wedged handler).
    pub undrained: Vec<String>,
    /// Pending retries dropped by the shutdown, over all handlers.
    pub abandoned_retries: u64,
    /// Worker threads that exited and were joined.
    pub workers_joined: usize,
    /// Worker threads left running (wedged, or the caller's own thread when
    /// a handler called shutdown); they exit when their call returns.
    pub workers_detached: usize,
}

struct Threads {
    workers: Vec<(usize, JoinHandle<()>)>,
    timer: Option<JoinHandle<()>>,
    done: Receiver<usize>,
}

/// Shuts the dispatcher down when the last [`Dispatcher`] handle goes.
struct Owner<E: Event> {
    rt: Arc<Runtime<E>>,
    threads: Mutex<Threads>,
}

impl<E: Event> Drop for Owner<E> {
    fn drop(&mut self) {
        self.shutdown(DEFAULT_SHUTDOWN_GRACE);
    }
}

/// A pool of worker threads running handlers over a [`Bus`].
///
/// Each handler has its own subscription, ring and counters, so a slow or
/// failing handler affects only itself. Handles are cheap to clone; a
/// handler may hold one and call any method from inside its callback
/// (publish through [`bus`](Dispatcher::bus), register, unregister itself,
/// disable itself, shut down) without deadlock. Dropping the last handle
/// shuts down with [`DEFAULT_SHUTDOWN_GRACE`]; a handler that holds a handle
/// keeps the dispatcher alive, so call [`shutdown`](Dispatcher::shutdown).
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
    /// A builder over `bus`.
    pub fn builder(bus: &Bus<E>) -> DispatcherBuilder<E> {
        DispatcherBuilder {
            bus: bus.clone(),
            workers: None,
            clock: Arc::new(SystemClock),
            hook: None,
            depth_scan: Duration::from_millis(100),
        }
    }

    /// The bus the handlers subscribe to.
    pub fn bus(&self) -> &Bus<E> {
        &self.rt.bus
    }

    /// The dispatcher's own bus of dead letters and watchdog alarms (see
    /// [`SignalKind`](crate::SignalKind) for the topics). Closed by
    /// shutdown.
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
        callback: handler::Callback<E>,
    ) -> Result<(), RegisterError> {
        if self.rt.is_stopping() {
            return Err(RegisterError::ShutDown);
        }
        if opts.name.is_empty() {
            return Err(RegisterError::EmptyName);
        }
        let threshold = match opts.depth_alarm {
            None => None,
            Some(f) if f > 0.0 && f <= 1.0 => {
                let cap = opts.subscribe.get_capacity();
                Some(((cap as f64 * f).ceil() as usize).clamp(1, cap.max(1)))
            }
            Some(f) => return Err(RegisterError::InvalidDepthAlarm(f.to_string())),
        };
        // Hold the list lock across the subscribe so names stay unique and
        // registration order is subscription order.
        let mut handlers = self.rt.handlers.lock();
        if handlers.iter().any(|c| *c.name == *opts.name) {
            return Err(RegisterError::DuplicateName(opts.name));
        }
        let sub_opts: SubscribeOptions = opts
            .subscribe
            .clone()
            .name(opts.name.clone())
            .priority(ring_priority(opts.priority));
        let sub = self.rt.bus.subscribe_with(opts.filter.clone(), sub_opts)?;
        // Relaxed: a sequence number under the list lock.
        let seq = self.rt.seq.fetch_add(1, Ordering::Relaxed);
        let cell = Arc::new(Cell::new(
            run_key(opts.priority, seq),
            opts,
            sub,
            callback,
            threshold,
        ));
        handler::install_waker(&self.rt, &cell);
        handlers.push(Arc::clone(&cell));
        drop(handlers);
        #[cfg(feature = "tracing")]
        tracing::debug!(handler = %cell.name, "evbus handler registered");
        // The first run polls the ring and registers the waker.
        self.rt.sched.notify(&cell);
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
        let watch = Arc::new(StallWatch::new(name, after, now, self.rt.timer.clone()));
        let rt = Arc::downgrade(&self.rt);
        let clock = Arc::clone(&self.rt.clock);
        let seen = Arc::clone(&watch);
        let opts = HandlerOptions::new(format!("watchdog.{name}"), filter)
            .priority(Priority::High)
            .overflow(evbus_core::Overflow::DropOldest)
            .capacity(64)
            .retry(RetryPolicy::never());
        self.register(opts, move |_event| {
            if let Some(rt) = rt.upgrade() {
                seen.seen(&rt, clock.now());
            }
            Ok(())
        })?;
        let due = deadline(now, watch.after());
        let _ = self.rt.timer.send(Msg::Stall(Arc::downgrade(&watch), due));
        // The timer holds only a weak reference; the handler keeps it alive.
        drop(watch);
        Ok(())
    }

    fn find(&self, name: &str) -> Option<Arc<Cell<E>>> {
        self.rt
            .handlers
            .lock()
            .iter()
            .find(|c| *c.name == *name)
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
            Some(cell) => {
                // Relaxed: see the load in `handler::run`.
                cell.enabled.store(on, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Whether a handler is enabled; `None` if no handler has that name.
    pub fn is_enabled(&self, name: &str) -> Option<bool> {
        self.find(name).map(|c| c.enabled.load(Ordering::Relaxed))
    }

    /// Unregisters a handler: its ring closes at once, a call in progress
    /// finishes, and events still buffered are counted as `skipped`.
    /// Returns `false` if no handler has that name.
    pub fn unregister(&self, name: &str) -> bool {
        let cell = {
            let mut handlers = self.rt.handlers.lock();
            match handlers.iter().position(|c| *c.name == *name) {
                Some(i) => handlers.remove(i),
                None => return false,
            }
        };
        self.retire(&cell);
        true
    }

    fn retire(&self, cell: &Arc<Cell<E>>) {
        self.rt.retired.lock().push(Arc::clone(cell));
        // Relaxed: the worker checks it between events; the ring close below
        // is what stops deliveries.
        cell.removed.store(true, Ordering::Relaxed);
        cell.unsub.unsubscribe();
        #[cfg(feature = "tracing")]
        tracing::debug!(handler = %cell.name, "evbus handler unregistered");
        // Mark a waiting retry due so the next run retires the handler.
        // Release: pairs with the worker's Acquire swap in `handler::run`.
        cell.retry_ready.store(true, Ordering::Release);
        self.rt.sched.notify(cell);
    }

    /// Unregisters every handler of `group`; returns how many.
    pub fn unregister_group(&self, group: &str) -> usize {
        let removed: Vec<_> = {
            let mut handlers = self.rt.handlers.lock();
            let (out, keep) = handlers
                .drain(..)
                .partition(|c| c.group.as_deref() == Some(group));
            *handlers = keep;
            out
        };
        for cell in &removed {
            self.retire(cell);
        }
        removed.len()
    }

    /// Unregisters every handler; returns how many.
    pub fn unregister_all(&self) -> usize {
        let removed = std::mem::take(&mut *self.rt.handlers.lock());
        for cell in &removed {
            self.retire(cell);
        }
        removed.len()
    }

    /// Names of the registered handlers, in registration order.
    pub fn handler_names(&self) -> Vec<String> {
        self.rt
            .handlers
            .lock()
            .iter()
            .map(|c| c.name.to_string())
            .collect()
    }

    /// Names of the handlers registered in `group`.
    pub fn handlers_in(&self, group: &str) -> Vec<String> {
        self.rt
            .handlers
            .lock()
            .iter()
            .filter(|c| c.group.as_deref() == Some(group))
            .map(|c| c.name.to_string())
            .collect()
    }

    /// Counters of every registered handler, in registration order.
    pub fn handler_stats(&self) -> Vec<HandlerStats> {
        self.rt
            .handlers_snapshot()
            .iter()
            .map(|c| c.stats())
            .collect()
    }

    /// Counters of one handler.
    pub fn stats(&self, name: &str) -> Option<HandlerStats> {
        self.find(name).map(|c| c.stats())
    }

    /// Waits until every handler is idle: nothing buffered and nothing
    /// running, except handlers waiting for a retry timer. Returns `false`
    /// if `timeout` passed first. For tests and orderly hand-offs.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let until = deadline(Instant::now(), timeout);
        let me = self.rt.current_handler();
        self.rt.sched.wait_settled(until, || {
            self.rt.live_cells().iter().all(|c| {
                if Some(c.key) == me {
                    return true;
                }
                // Acquire: pairs with the worker's Release when the run
                // ended, so a drained ring is seen drained.
                let state = c.state().load(Ordering::Acquire);
                state == DONE
                    || (state == IDLE && (c.paused.load(Ordering::Relaxed) || c.unsub.is_empty()))
            })
        })
    }

    /// Shuts down: closes every handler's ring, lets the workers drain what
    /// is buffered (handlers still run), abandons pending retries (counted
    /// per handler as `abandoned`), waits at most `grace` for handlers still
    /// running, closes the signal bus, and joins the workers and the timer.
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

impl<E: Event> Owner<E> {
    fn shutdown(&self, grace: Duration) -> DispatchReport {
        let rt = &self.rt;
        if !rt.begin_stop() {
            return DispatchReport {
                already_shut_down: true,
                ..DispatchReport::default()
            };
        }
        let until = deadline(Instant::now(), grace);
        let cells = rt.live_cells();
        for cell in &cells {
            cell.unsub.unsubscribe();
            // Release: a waiting retry is now due, to be abandoned.
            cell.retry_ready.store(true, Ordering::Release);
            rt.sched.notify(cell);
        }
        let me = rt.current_handler();
        // Acquire on `done`: pairs with the Release that ends the handler's
        // last run (`handler::run`, `retire`), so its counters are final.
        let drained = rt.sched.wait_settled(until, || {
            cells
                .iter()
                .all(|c| Some(c.key) == me || c.done.load(Ordering::Acquire))
        });
        let mut report = DispatchReport {
            drained,
            ..DispatchReport::default()
        };
        for c in &cells {
            if Some(c.key) == me || c.done.load(Ordering::Acquire) {
                continue;
            }
            // Acquire: pairs with the worker's Release state stores; a
            // snapshot for the report.
            let running = matches!(c.state().load(Ordering::Acquire), RUNNING | NOTIFIED);
            let list = if running {
                &mut report.wedged
            } else {
                &mut report.undrained
            };
            list.push(c.name.to_string());
        }
        report.abandoned_retries = cells
            .iter()
            .map(|c| c.counters.abandoned.load(Ordering::Relaxed))
            .sum();
        let _ = rt.timer.send(Msg::Stop);
        rt.signals.shutdown();
        rt.sched.exit();
        let mut threads = self.threads.lock();
        if let Some(timer) = threads.timer.take() {
            // The timer runs no user code and exits on `Stop`.
            let _ = timer.join();
        }
        let workers = std::mem::take(&mut threads.workers);
        let on_worker = rt.current_handler().is_some()
            || workers
                .iter()
                .any(|(_, h)| h.thread().id() == thread::current().id());
        let mut exited = Vec::new();
        let expected = workers.len() - usize::from(on_worker);
        while exited.len() < expected {
            let now = Instant::now();
            let wait = until.saturating_duration_since(now);
            match threads.done.recv_timeout(wait) {
                Ok(i) => exited.push(i),
                Err(_) => break,
            }
        }
        for (i, handle) in workers {
            if exited.contains(&i) {
                let _ = handle.join();
                report.workers_joined += 1;
            } else {
                report.workers_detached += 1;
            }
        }
        #[cfg(feature = "tracing")]
        tracing::info!(
            drained = report.drained,
            wedged = ?report.wedged,
            abandoned_retries = report.abandoned_retries,
            "evbus dispatcher shut down"
        );
        report
    }
}
