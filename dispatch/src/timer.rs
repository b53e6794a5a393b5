//! The timer thread: retry deadlines, stall checks and queue-depth scans,
//! on the injected [`Clock`], off the delivery path.
//!
//! It owns a heap of deadlines and sleeps on a crossbeam channel until the
//! earliest one (in real time, as the clock says) or until a message. A
//! manual clock's advance sends [`Msg::Advanced`] and waits for the ack, so
//! everything due by the new time has fired when `advance` returns.

use std::{
    cmp::Reverse,
    collections::BinaryHeap,
    sync::{Arc, Weak},
    time::{Duration, Instant},
};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use evbus_core::Event;

use crate::{
    clock::{Clock, deadline},
    handler::Handler,
    watchdog::StallWatch,
};

/// What the timer asks of the runtime when an entry is due.
pub(crate) trait Fire<E>: Send + Sync {
    /// `handler`'s pending retry is due: mark it and schedule the handler.
    fn retry_due(&self, handler: &Arc<Handler<E>>);
    /// `watch`'s check is due at `now`; returns when to check next.
    fn stall_due(&self, watch: &StallWatch, now: Instant) -> Option<Instant>;
    /// Checks every handler's queue-depth alarm.
    fn scan_depth(&self);
}

pub(crate) enum Msg<E> {
    /// Fire `handler`'s pending retry at the deadline.
    Retry(Weak<Handler<E>>, Instant),
    /// Check `watch` at the deadline.
    Stall(Weak<StallWatch>, Instant),
    /// The clock jumped; fire what is due, then ack.
    Advanced(Sender<()>),
    /// Exit.
    Stop,
}

enum Task<E> {
    Retry(Weak<Handler<E>>),
    Stall(Weak<StallWatch>),
    DepthScan,
}

struct Entry<E> {
    due: Instant,
    seq: u64,
    task: Task<E>,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Entry<E> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

pub(crate) struct Timer<E> {
    rx: Receiver<Msg<E>>,
    clock: Arc<dyn Clock>,
    rt: Weak<dyn Fire<E>>,
    heap: BinaryHeap<Reverse<Entry<E>>>,
    seq: u64,
    depth_every: Duration,
}

impl<E: Event> Timer<E> {
    pub(crate) fn new(
        rx: Receiver<Msg<E>>,
        clock: Arc<dyn Clock>,
        rt: Weak<dyn Fire<E>>,
        depth_every: Duration,
    ) -> Self {
        Self {
            rx,
            clock,
            rt,
            heap: BinaryHeap::new(),
            seq: 0,
            depth_every,
        }
    }

    fn add(&mut self, due: Instant, task: Task<E>) {
        self.seq += 1;
        self.heap.push(Reverse(Entry {
            due,
            seq: self.seq,
            task,
        }));
    }

    pub(crate) fn run(mut self) {
        let first_scan = deadline(self.clock.now(), self.depth_every);
        self.add(first_scan, Task::DepthScan);
        loop {
            self.fire_due();
            let wait = self.heap.peek().and_then(|e| self.clock.real_wait(e.0.due));
            let msg = match wait {
                Some(d) => match self.rx.recv_timeout(d) {
                    Ok(msg) => msg,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return,
                },
                None => match self.rx.recv() {
                    Ok(msg) => msg,
                    Err(_) => return,
                },
            };
            match msg {
                Msg::Retry(handler, due) => self.add(due, Task::Retry(handler)),
                Msg::Stall(watch, due) => self.add(due, Task::Stall(watch)),
                Msg::Advanced(ack) => {
                    // Messages sent before the advance (a retry scheduled
                    // just now, say) are queued ahead of it: take them first.
                    while let Ok(msg) = self.rx.try_recv() {
                        match msg {
                            Msg::Retry(handler, due) => self.add(due, Task::Retry(handler)),
                            Msg::Stall(watch, due) => self.add(due, Task::Stall(watch)),
                            Msg::Advanced(other) => {
                                let _ = other.send(());
                            }
                            Msg::Stop => {
                                let _ = ack.send(());
                                return;
                            }
                        }
                    }
                    self.fire_due();
                    let _ = ack.send(());
                }
                Msg::Stop => return,
            }
        }
    }

    fn fire_due(&mut self) {
        let now = self.clock.now();
        while self.heap.peek().is_some_and(|e| e.0.due <= now) {
            let Some(Reverse(entry)) = self.heap.pop() else {
                break;
            };
            let Some(rt) = self.rt.upgrade() else { return };
            match entry.task {
                Task::Retry(handler) => {
                    if let Some(handler) = handler.upgrade() {
                        rt.retry_due(&handler);
                    }
                }
                Task::Stall(weak) => {
                    if let Some(next) = weak.upgrade().and_then(|w| rt.stall_due(&w, now)) {
                        self.add(next, Task::Stall(weak));
                    }
                }
                Task::DepthScan => {
                    rt.scan_depth();
                    let next = deadline(now, self.depth_every);
                    // A clock at the last representable instant cannot move
                    // on: a scan re-armed "now" would fire in this loop
                    // forever. Workers still check depth when they run.
                    if next > now {
                        self.add(next, Task::DepthScan);
                    }
                }
            }
        }
    }
}
