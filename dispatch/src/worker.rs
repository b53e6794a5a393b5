//! What a worker thread does: take the best ready handler, run it for a
//! batch of events, act on the step each attempt returns, and hand the
//! handler back to the scheduler.

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use evbus_core::{Event, RecvError, ReplayMark};

use crate::{
    handler::{Body, Handler, Pending, Step, bump},
    isolate,
    runtime::{CURRENT, Runtime},
    scheduler::Outcome,
    signal::Signal,
    sync::Ordering,
};

/// Events a worker handles for one handler before it lets others run.
const BATCH: usize = 64;

/// A worker's loop: run ready handlers until shutdown.
///
/// Every piece of user code a run reaches is contained where it runs (see
/// `isolate`), so that the event's outcome is counted right. The run as a
/// whole is contained too, as tokio contains a task poll: a panic that gets
/// past those (user code reached through a path not listed there, such as
/// an error type's `Display` in a tracing event) is counted for the
/// handler, which is requeued; the worker lives on.
pub(crate) fn work<E: Event>(rt: &Arc<Runtime<E>>) {
    while let Some(handler) = rt.sched.pop() {
        CURRENT.with(|c| c.set((rt.id, handler.key)));
        let outcome = isolate::catch(|| run(rt, &handler)).unwrap_or_else(|payload| {
            rt.discard(Some(&handler), payload);
            bump(&rt.contained);
            bump(&handler.counters.contained);
            Outcome::Yield
        });
        CURRENT.with(|c| c.set((rt.id, u64::MAX)));
        rt.sched.finish(&handler, outcome);
        // Possibly the last reference; a handler that ended has dropped its
        // callback already, but one dropped without ending (the runtime
        // going away) has not.
        rt.discard(None, handler);
    }
}

/// Whether a run goes on after acting on a step.
enum Flow {
    /// Go on with the next event.
    Next,
    /// A retry is pending: stop until its timer fires.
    Paused,
}

/// Runs `handler` on the current worker: its pending event, then up to
/// [`BATCH`] events from its ring.
fn run<E: Event>(rt: &Runtime<E>, handler: &Arc<Handler<E>>) -> Outcome {
    // Uncontended: the scheduler's state machine lets one worker run a
    // handler at a time.
    let mut body = handler.body.lock();
    let body = &mut *body;
    let Some(waker) = handler.waker.get() else {
        // Not reachable: the waker is set before the handler is first
        // scheduled. Treat it as idle rather than run without one.
        return Outcome::Idle;
    };
    let mut cx = Context::from_waker(waker);
    rt.check_depth(handler);
    for _ in 0..BATCH {
        // Relaxed: a flag checked between events; the ring close that goes
        // with it is ordered by the ring itself.
        if handler.removed.load(Ordering::Relaxed) {
            return retire(rt, handler, body);
        }
        if let Some(pending) = body.next.take() {
            if pending.waiting {
                handler.paused.store(false, Ordering::Relaxed);
                if rt.is_stopping() {
                    // Shutdown abandons pending retries, due or not.
                    handler.counters.count_abandoned(pending.replayed);
                    rt.discard(Some(handler), pending.event);
                    continue;
                }
                // Acquire: pairs with the timer's Release store.
                if !handler.retry_ready.swap(false, Ordering::Acquire) {
                    handler.paused.store(true, Ordering::Relaxed);
                    body.next = Some(pending);
                    return Outcome::Idle;
                }
            }
            let replayed = pending.replayed;
            let step = handler.attempt(body, pending.event, replayed, pending.attempt, || {
                rt.is_stopping()
            });
            match settle(rt, handler, step, replayed) {
                Flow::Next => continue,
                Flow::Paused => return Outcome::Idle,
            }
        }
        match body.sub.poll_recv(&mut cx) {
            Poll::Ready(Ok(event)) => {
                let mark = replay_mark(rt, handler, &event);
                let replayed = mark.is_some();
                bump(handler.counters.taken(replayed));
                // Relaxed: a toggle takes effect from some event on; no data
                // depends on it.
                if !handler.enabled.load(Ordering::Relaxed) {
                    bump(handler.counters.skipped(replayed));
                    rt.discard(Some(handler), event);
                    continue;
                }
                if handler.skip_dry_run && mark.is_some_and(|m| m.dry_run) {
                    bump(&handler.counters.skipped_dry_run);
                    rt.discard(Some(handler), event);
                    continue;
                }
                if rt.sched.better_ready(handler.key) {
                    body.next = Some(Pending {
                        event,
                        replayed,
                        attempt: 1,
                        waiting: false,
                    });
                    return Outcome::Yield;
                }
                let step = handler.attempt(body, event, replayed, 1, || rt.is_stopping());
                if let Flow::Paused = settle(rt, handler, step, replayed) {
                    return Outcome::Idle;
                }
            }
            // Overwritten events are counted by the ring.
            Poll::Ready(Err(RecvError::Lagged(_))) => {}
            Poll::Ready(Err(RecvError::Disconnected)) => return end(rt, handler, body),
            Poll::Pending => return Outcome::Idle,
        }
    }
    Outcome::Yield
}

/// The event's replay mark. `Event::replay_mark` is user code: a panic
/// there is contained and counted, and the event counts as live.
fn replay_mark<E: Event>(rt: &Runtime<E>, handler: &Handler<E>, event: &E) -> Option<ReplayMark> {
    let mut mark = None;
    rt.isolate(Some(handler), || mark = event.replay_mark());
    mark
}

/// Acts on what an attempt returned: reports a failure to the error hook,
/// then counts and schedules the retry, or the dead letter, or the
/// abandonment (in the replay counters for a `replayed` event).
fn settle<E: Event>(
    rt: &Runtime<E>,
    handler: &Arc<Handler<E>>,
    step: Step<E>,
    replayed: bool,
) -> Flow {
    match step {
        Step::Next(event) => {
            // The event's `Drop` runs after the handler returned `Ok`.
            rt.discard(Some(handler), event);
            Flow::Next
        }
        Step::Retry(failed, delay) => {
            rt.report_failure(handler, failed.attempt, &failed.failure, true);
            if !replayed {
                bump(&handler.counters.retries);
            }
            // Relaxed: read by `wait_idle` and `wait_settled` under the
            // scheduler's lock, after this run ends (which takes that lock
            // before it notifies them).
            handler.paused.store(true, Ordering::Relaxed);
            rt.schedule_retry(handler, delay);
            // A `Failure::Error` holds the handler's error: user `Drop`.
            rt.discard(Some(handler), failed);
            Flow::Paused
        }
        Step::Abandon(failed, event) => {
            rt.report_failure(handler, failed.attempt, &failed.failure, false);
            handler.counters.count_abandoned(replayed);
            rt.discard(Some(handler), (failed, event));
            Flow::Next
        }
        Step::DeadLetter(letter) => {
            rt.report_failure(handler, letter.attempts, &letter.failure, false);
            bump(handler.counters.dead_lettered(replayed));
            #[cfg(feature = "tracing")]
            tracing::warn!(handler = %handler.name, attempts = letter.attempts, failure = %letter.failure, "evbus handler gave up; event dead-lettered");
            // The fan-out clones the event; `signal` contains that.
            rt.signal(Some(handler), Signal::DeadLetter(letter));
            Flow::Next
        }
    }
}

/// Ends an unregistered handler: closes its ring and counts what it held
/// as skipped, dropping each event with its `Drop` contained.
fn retire<E: Event>(rt: &Runtime<E>, handler: &Handler<E>, body: &mut Body<E>) -> Outcome {
    handler.unsub.unsubscribe();
    if let Some(pending) = body.next.take() {
        bump(handler.counters.skipped(pending.replayed));
        rt.discard(Some(handler), pending.event);
    }
    for event in body.sub.try_iter() {
        let replayed = replay_mark(rt, handler, &event).is_some();
        bump(handler.counters.taken(replayed));
        bump(handler.counters.skipped(replayed));
        rt.discard(Some(handler), event);
    }
    end(rt, handler, body)
}

/// Ends a handler whose ring is closed and drained: drops its callback (its
/// captured state's `Drop` is user code, which may call back into the
/// dispatcher: it runs here, contained, under no dispatcher lock) and marks
/// it done.
fn end<E: Event>(rt: &Runtime<E>, handler: &Handler<E>, body: &mut Body<E>) -> Outcome {
    let callback = body.take_callback();
    rt.discard(Some(handler), callback);
    // Release: pairs with the Acquire loads of `done` in `wait_idle` and
    // shutdown, which then read the counters.
    handler.done.store(true, Ordering::Release);
    Outcome::Done
}
