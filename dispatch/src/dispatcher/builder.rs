//! [`DispatcherBuilder`]: the worker count, clock, error hook and depth
//! scan of a new dispatcher, and the start of its threads.

use std::{
    fmt,
    num::NonZeroUsize,
    sync::{Arc, Weak},
    thread,
    time::Duration,
};

use crossbeam_channel::Sender;
use evbus_core::{Bus, Event};

use super::{
    Dispatcher,
    error::BuildError,
    shutdown::{Owner, Threads},
};
use crate::{
    clock::{Clock, SystemClock},
    isolate,
    runtime::{ErrorHook, HandlerFailure, Runtime},
    sync::{AtomicU64, Mutex, Ordering},
    timer::{Msg, Timer},
    worker,
};

/// Dispatcher ids, for telling a handler's own dispatcher apart.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

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
        let fire: Weak<Runtime<E>> = Arc::downgrade(&rt);
        let timer = Timer::new(timer_rx, Arc::clone(&self.clock), fire, self.depth_scan);
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
                    worker::work(&rt);
                    // The last reference to the runtime may go here, with
                    // handlers that never ended (wedged past shutdown): their
                    // state's `Drop` is user code. Contained, not counted:
                    // nothing is left to count it in.
                    let _ = isolate::contain(move || drop(rt));
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
}
