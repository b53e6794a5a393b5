//! The run queue: which handler a free worker takes next.
//!
//! Each handler is a task with a small state machine, like a tokio task:
//!
//! ```text
//!   IDLE --notify--> SCHEDULED --worker pops--> RUNNING --done--> IDLE
//!                                                  |  ^
//!                                          notify  v  | (requeued as SCHEDULED)
//!                                               NOTIFIED
//! ```
//!
//! A notify (its ring's waker, a retry timer, a toggle) moves `IDLE` to
//! `SCHEDULED` and queues the handler, or marks a running handler
//! `NOTIFIED` so the worker requeues it instead of going idle. So a handler
//! is queued at most once and run by one worker at a time, which keeps each
//! handler's events in order.
//!
//! Ready handlers are kept sorted by key: priority first, then registration
//! order. `best` mirrors the smallest key so that a running handler can see,
//! with one load per event, that a better one is waiting.
//!
//! The scheduler knows a handler only as a [`Task`]: a key and a state
//! word. What a run does is the worker's business.

use std::{
    collections::BTreeMap,
    sync::{Arc, Weak},
    task::Wake,
    time::Instant,
};

use crate::sync::{AtomicU8, AtomicU64, Condvar, Mutex, Ordering};

pub(crate) const IDLE: u8 = 0;
pub(crate) const SCHEDULED: u8 = 1;
pub(crate) const RUNNING: u8 = 2;
pub(crate) const NOTIFIED: u8 = 3;
/// The handler's ring is closed and drained, or it was unregistered.
pub(crate) const DONE: u8 = 4;

/// What the scheduler needs of a handler.
pub(crate) trait Task: Send + Sync + 'static {
    /// Run-queue order: smaller runs first. Unique per scheduler.
    fn key(&self) -> u64;
    /// The state word (`IDLE` .. `DONE`), owned by this module's protocol.
    fn state(&self) -> &AtomicU8;
}

/// How a run of one handler ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Nothing to do until notified (ring empty with its waker registered,
    /// or waiting for a retry timer).
    Idle,
    /// More to do; give others a turn.
    Yield,
    /// Never run again.
    Done,
}

pub(crate) struct Scheduler<T> {
    queue: Mutex<Queue<T>>,
    /// Idle workers wait here.
    work: Condvar,
    /// Notified whenever a run ends: `wait_idle` and shutdown wait here.
    settled: Condvar,
    /// The smallest key in `ready`, or `u64::MAX`.
    best: AtomicU64,
}

struct Queue<T> {
    ready: BTreeMap<u64, Arc<T>>,
    /// Set by shutdown: workers exit once `ready` is empty.
    exit: bool,
}

impl<T: Task> Scheduler<T> {
    pub(crate) fn new() -> Self {
        Self {
            queue: Mutex::new(Queue {
                ready: BTreeMap::new(),
                exit: false,
            }),
            work: Condvar::new(),
            settled: Condvar::new(),
            best: AtomicU64::new(u64::MAX),
        }
    }

    /// Queues `task` if it is idle, or marks it notified if it is running.
    pub(crate) fn notify(&self, task: &Arc<T>) {
        let state = task.state();
        // Acquire on load and AcqRel on the CAS: pairs with the worker's
        // Release when it leaves RUNNING, so a handler queued here sees the
        // worker's last writes (its body is behind a mutex anyway).
        let mut cur = state.load(Ordering::Acquire);
        loop {
            let next = match cur {
                IDLE => SCHEDULED,
                RUNNING => NOTIFIED,
                _ => return,
            };
            match state.compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    if next == SCHEDULED {
                        self.push(task);
                    }
                    return;
                }
                Err(actual) => cur = actual,
            }
        }
    }

    fn push(&self, task: &Arc<T>) {
        let mut q = self.queue.lock();
        q.ready.insert(task.key(), Arc::clone(task));
        self.publish_best(&q);
        drop(q);
        self.work.notify_one();
    }

    fn publish_best(&self, q: &Queue<T>) {
        let best = q.ready.keys().next().copied().unwrap_or(u64::MAX);
        // Relaxed: a hint read by running handlers; its users get their
        // ordering from the ring (see `better_ready`).
        self.best.store(best, Ordering::Relaxed);
    }

    /// Whether a handler with a smaller key (higher priority, or same
    /// priority and registered earlier) is waiting for a worker.
    ///
    /// Relaxed: the caller has just taken an event from its ring with an
    /// Acquire stamp load. A publish pushes to rings in priority order and
    /// wakes each one before pushing to the next, and that wake updates
    /// `best` under the queue mutex; so if a better handler was made ready
    /// by the publish of the event just taken, this load sees it.
    pub(crate) fn better_ready(&self, key: u64) -> bool {
        self.best.load(Ordering::Relaxed) < key
    }

    /// Takes the best ready handler and marks it running; blocks while
    /// there is none. `None` once shutdown asked workers to exit.
    pub(crate) fn pop(&self) -> Option<Arc<T>> {
        let mut q = self.queue.lock();
        loop {
            if let Some((_, task)) = q.ready.pop_first() {
                self.publish_best(&q);
                drop(q);
                // Release: pairs with `notify`'s Acquire.
                task.state().store(RUNNING, Ordering::Release);
                return Some(task);
            }
            if q.exit {
                return None;
            }
            q = self.work.wait(q);
        }
    }

    /// Ends a run of `task`.
    pub(crate) fn finish(&self, task: &Arc<T>, outcome: Outcome) {
        let state = task.state();
        // The Release stores below pair with `notify`'s Acquire load and
        // CAS, and with the Acquire reads of `wait_idle` and shutdown.
        match outcome {
            Outcome::Done => state.store(DONE, Ordering::Release),
            Outcome::Yield => {
                state.store(SCHEDULED, Ordering::Release);
                self.push(task);
            }
            Outcome::Idle => {
                // AcqRel: pairs with `notify`. If a notify arrived while we
                // ran (NOTIFIED), run again rather than lose it.
                if state
                    .compare_exchange(RUNNING, IDLE, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
                {
                    state.store(SCHEDULED, Ordering::Release);
                    self.push(task);
                }
            }
        }
        // Take the lock so a waiter between its check and its wait cannot
        // miss this notification.
        drop(self.queue.lock());
        self.settled.notify_all();
    }

    /// Waits until `done()` holds or `deadline` passes; re-checks after
    /// every run that ends. Returns the last value of `done()`.
    pub(crate) fn wait_until(&self, deadline: Instant, mut done: impl FnMut() -> bool) -> bool {
        let mut q = self.queue.lock();
        loop {
            if done() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            q = self.settled.wait_timeout(q, deadline - now);
        }
    }

    /// Asks workers to exit once nothing is ready.
    pub(crate) fn exit(&self) {
        self.queue.lock().exit = true;
        self.work.notify_all();
    }
}

/// The waker a handler's subscription holds while the handler is idle: it
/// notifies the scheduler, if both are still alive.
pub(crate) struct TaskWaker<T> {
    task: Weak<T>,
    sched: Weak<Scheduler<T>>,
}

impl<T: Task> TaskWaker<T> {
    pub(crate) fn waker(task: &Arc<T>, sched: &Arc<Scheduler<T>>) -> std::task::Waker {
        std::task::Waker::from(Arc::new(Self {
            task: Arc::downgrade(task),
            sched: Arc::downgrade(sched),
        }))
    }
}

impl<T: Task> Wake for TaskWaker<T> {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let (Some(task), Some(sched)) = (self.task.upgrade(), self.sched.upgrade()) {
            sched.notify(&task);
        }
    }
}
