//! Shutting a dispatcher down: the shutdown sequence, the [`DispatchReport`]
//! it returns, and the owner that runs it when the last handle goes.

use std::{
    sync::Arc,
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use crossbeam_channel::Receiver;
use evbus_core::Event;

use crate::{
    clock::deadline,
    runtime::Runtime,
    scheduler::{NOTIFIED, RUNNING, Task},
    sync::{Mutex, Ordering},
    timer::Msg,
};

/// The grace period of the shutdown that dropping the last handle runs.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What [`Dispatcher::shutdown`](crate::Dispatcher::shutdown) did.
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
    /// Pending retries dropped by the shutdown, over all handlers (of live
    /// and replayed events).
    pub abandoned_retries: u64,
    /// Worker threads that exited and were joined.
    pub workers_joined: usize,
    /// Worker threads left running (wedged, or the caller's own thread when
    /// a handler called shutdown); they exit when their call returns.
    pub workers_detached: usize,
    /// Panics contained outside handler calls over the dispatcher's life,
    /// unregistered handlers included (see
    /// [`HandlerStats::contained_panics`](crate::HandlerStats::contained_panics)).
    /// Absent in reports serialized before it existed.
    #[cfg_attr(feature = "serde", serde(default))]
    pub contained_panics: u64,
}

/// The dispatcher's threads, and the channel on which each worker says it
/// exited.
pub(super) struct Threads {
    pub(super) workers: Vec<(usize, JoinHandle<()>)>,
    pub(super) timer: Option<JoinHandle<()>>,
    pub(super) done: Receiver<usize>,
}

/// Shuts the dispatcher down when the last
/// [`Dispatcher`](crate::Dispatcher) handle goes.
pub(super) struct Owner<E: Event> {
    pub(super) rt: Arc<Runtime<E>>,
    pub(super) threads: Mutex<Threads>,
}

impl<E: Event> Drop for Owner<E> {
    fn drop(&mut self) {
        self.shutdown(DEFAULT_SHUTDOWN_GRACE);
    }
}

impl<E: Event> Owner<E> {
    /// The shutdown sequence (see [`Dispatcher::shutdown`](crate::Dispatcher::shutdown)).
    pub(super) fn shutdown(&self, grace: Duration) -> DispatchReport {
        let rt = &self.rt;
        if !rt.begin_stop() {
            return DispatchReport {
                already_shut_down: true,
                ..DispatchReport::default()
            };
        }
        let until = deadline(Instant::now(), grace);
        let handlers = rt.live_handlers();
        for handler in &handlers {
            handler.unsub.unsubscribe();
            // Release: a waiting retry is now due, to be abandoned.
            handler.retry_ready.store(true, Ordering::Release);
            rt.sched.notify(handler);
        }
        let me = rt.current_handler();
        // Acquire on `done`: pairs with the Release that ends the handler's
        // last run (`worker::run`, `retire`), so its counters are final.
        let drained = rt.sched.wait_until(until, || {
            handlers
                .iter()
                .all(|h| Some(h.key) == me || h.done.load(Ordering::Acquire))
        });
        let mut report = DispatchReport {
            drained,
            ..DispatchReport::default()
        };
        for h in &handlers {
            if Some(h.key) == me || h.done.load(Ordering::Acquire) {
                continue;
            }
            // Acquire: pairs with the worker's Release state stores; a
            // snapshot for the report.
            let running = matches!(h.state().load(Ordering::Acquire), RUNNING | NOTIFIED);
            let list = if running {
                &mut report.wedged
            } else {
                &mut report.undrained
            };
            list.push(h.name.to_string());
        }
        report.abandoned_retries = handlers.iter().map(|h| h.counters.all_abandoned()).sum();
        let _ = rt.timer.send(Msg::Stop);
        // After the handlers settled: what their last runs contained is in.
        report.contained_panics = rt.contained.load(Ordering::Relaxed);
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
