//! evbus-dispatch: a handler runtime over an evbus [`Bus`](evbus_core::Bus).
//!
//! A [`Dispatcher`] runs handlers on a fixed pool of worker threads. Each
//! handler has its own subscription, so its own ring, capacity, overflow
//! policy and counters: a slow handler drops only its own events. Idle
//! workers park on a condition variable; a handler's ring wakes it through a
//! task waker only when the handler was idle (see
//! [`Subscription::poll_recv`](evbus_core::Subscription::poll_recv)), so the
//! publish path pays nothing extra while handlers keep up.
//!
//! The `evbus` facade re-exports this crate as `evbus::dispatch`; the
//! examples are written that way.
//!
//! ```
//! use std::time::Duration;
//! use evbus::{Bus, Event, EventKind};
//! use evbus::dispatch::{Dispatcher, HandlerOptions, Priority};
//!
//! #[derive(Debug, Clone, Copy, PartialEq, Eq)]
//! enum Kind { Placed }
//! impl EventKind for Kind {
//!     const ALL: &'static [Self] = &[Kind::Placed];
//!     fn topic(self) -> &'static str { "orders.placed" }
//!     fn index(self) -> usize { 0 }
//! }
//! #[derive(Debug, Clone)]
//! struct Placed(u64);
//! impl Event for Placed {
//!     type Kind = Kind;
//!     fn kind(&self) -> Kind { Kind::Placed }
//! }
//!
//! let bus = Bus::<Placed>::new();
//! let dispatcher = Dispatcher::builder(&bus).workers(2).build()?;
//! let (tx, rx) = std::sync::mpsc::channel();
//! dispatcher.register(
//!     HandlerOptions::pattern("audit", "orders.>")?.priority(Priority::High),
//!     move |e: &Placed| { tx.send(e.0)?; Ok(()) },
//! )?;
//! bus.publish(Placed(7)).unwrap();
//! assert_eq!(rx.recv_timeout(Duration::from_secs(10))?, 7);
//! let report = dispatcher.shutdown(Duration::from_secs(5));
//! assert!(report.drained);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Ordering
//!
//! Guaranteed:
//! - A handler never runs concurrently with itself.
//! - Each handler sees the events of each publisher in publish order,
//!   retries included: while one of its events waits for a retry, the
//!   handler takes no later event (see *Retries*).
//! - Within one publish, rings receive the event in priority order (see
//!   [`SubscribeOptions::priority`](evbus_core::SubscribeOptions::priority)),
//!   and a free worker always takes the ready handler with the highest
//!   priority, then the earliest registration. A running handler checks,
//!   after taking each event, whether a better handler became ready, and if
//!   so puts the event back and yields.
//! - With one worker (`workers(1)`) this makes priority strict per event:
//!   every higher-priority handler that takes an event finishes it before a
//!   lower-priority handler starts it (unless the higher one is disabled or
//!   waiting for a retry), and equal priorities go in registration order.
//!
//! Not guaranteed:
//! - With more than one worker, handlers run in parallel. Priority then
//!   decides which ready handler a free worker takes first, not which one
//!   finishes first: a low-priority handler on another worker may finish an
//!   event before a high-priority one does.
//! - Order between events of different publishers, beyond what the bus
//!   gives (each ring is FIFO in the order pushes claimed slots).
//! - Order between a handler's calls and the signals it causes (dead
//!   letters, alarms) as seen by other subscribers.
//!
//! # Failures and retries
//!
//! A handler returns [`HandlerResult`]. An `Err`, or a panic (caught with
//! `catch_unwind`), counts in the handler's `errors` or `panics` and goes to
//! the error hook ([`DispatcherBuilder::on_error`]). Other handlers and
//! later events carry on; no lock is poisoned.
//!
//! **No user code can take a worker down.** A worker runs more user code
//! than the handler call: the event's `Drop` once it is handled, skipped or
//! abandoned; its `Clone` when a dead letter fans out on the signal bus;
//! signal subscribers' wakers; the error hook (and the `Drop` of its panic
//! payload); the `Drop` of a handler's captured state. Each is contained
//! with `catch_unwind`, as tokio contains a task poll, and counted in the
//! handler's [`contained_panics`](HandlerStats::contained_panics) and in
//! the dispatcher's [`DispatchReport::contained_panics`]; the event is
//! still counted by what happened to it (an event whose `Drop` panics after
//! the handler returned `Ok` counts as `handled`; one whose dead letter
//! could not be cloned counts as `dead_lettered`, though signal
//! subscribers may miss that letter). None of it runs under a
//! dispatcher lock, so it may call back into the dispatcher. A handler's
//! captured state is dropped on a worker as soon as the handler ends
//! (unregistered, or its ring closed and drained).
//!
//! An `Err` is retried by the handler's [`RetryPolicy`] (3 attempts by
//! default, capped exponential backoff with jitter). **A panic is not
//! retried** unless the policy says so
//! ([`RetryPolicyBuilder::retry_panics`]): by default the event goes to the
//! dead-letter topic after that one call, and the handler moves on to its
//! next event. (A panic is usually a bug the same event hits again, and a
//! pending retry holds the handler's later events back, see below.)
//!
//! Retries are timed by a timer thread on the dispatcher's [`Clock`], off
//! the delivery path: the worker is released at once and runs other
//! handlers. **The retrying handler's own later events wait** in its ring
//! until the retry settles, which keeps its per-publisher order; if the ring
//! fills meanwhile, its overflow policy applies and drops are counted. After
//! the last attempt the event goes to the dead-letter topic
//! (`evbus.dead_letter` on [`Dispatcher::signals`]) as a [`DeadLetter`] with
//! the failure, the number of attempts and the handler's name.
//!
//! # Waiting
//!
//! - [`Dispatcher::wait_idle`] returns once nothing is buffered or running,
//!   **not counting handlers that wait for a retry** (and the events held
//!   behind it).
//! - [`Dispatcher::wait_settled`] returns once every event the handlers
//!   received is handled, dead-lettered or skipped, retries included, or
//!   gives a [`SettleTimeout`] naming the handlers still busy or retrying.
//!   Use it for "wait, report, shut down", so the shutdown has no retry to
//!   abandon.
//!
//! # Toggles
//!
//! [`Dispatcher::disable`] keeps the handler registered and its ring
//! draining; **events it takes while disabled are skipped and counted** in
//! `skipped`, not buffered (a buffer would grow without bound, or drop in
//! the ring anyway). [`Dispatcher::enable`] resumes with the next event.
//!
//! # Replays and dry runs
//!
//! An event that a replay published (an `evbus-journal` `Replay`, or any
//! publisher that sets one) carries a [`ReplayMark`](evbus_core::ReplayMark)
//! `{ dry_run, recorded_seq }`, which a handler reads with
//! [`Event::replay_mark`](evbus_core::Event::replay_mark) on the event it
//! is given (an [`Envelope`](evbus_core::Envelope) returns its mark; other
//! event types return `None` unless they implement it):
//!
//! - In a **dry run** (`dry_run == true`) a handler must cause no effect
//!   outside the process. A handler that has such effects (mail, webhooks,
//!   writes to other systems) can check the mark itself, or be registered
//!   with [`HandlerOptions::skip_dry_run`]: the dispatcher then takes the
//!   event out of its ring without calling it, and counts it in
//!   [`skipped_dry_run`](HandlerStats::skipped_dry_run).
//! - **Counters are not bumped twice.** A replayed event, dry run or not,
//!   was counted when it was handled live, so it counts in the replay
//!   counters of [`HandlerStats`] instead of the live ones: `replayed`
//!   instead of `received`, `replay_handled` instead of `handled`,
//!   `replay_errors` instead of `errors`, `panics` and `retries`, and
//!   `replay_failed` instead of `dead_lettered`, `abandoned` and `skipped`.
//!   The live counters, and the metrics built from them, describe live
//!   traffic only. Retries, dead letters and the error hook work for
//!   replayed events as for live ones (a dead letter carries the marked
//!   event).
//! - The mark is read once per event, when it is taken out of the ring; a
//!   panicking `replay_mark` is contained (counted in `contained_panics`)
//!   and the event counts as live.
//!
//! # Watchdogs
//!
//! Both run on the injected [`Clock`] ([`ManualClock`] in tests, whose
//! `advance` returns once every due timer has fired):
//! - [`Dispatcher::watch_stall`]: if nothing matching a filter arrives for
//!   a period, [`Signal::Stall`] once, then [`Signal::Recovered`] when
//!   traffic returns.
//! - [`HandlerOptions::depth_alarm`]: when a handler's ring fills past a
//!   fraction, [`Signal::QueueDepth`] once per upward crossing; it re-arms
//!   below the threshold. Workers check when they run the handler, and the
//!   timer scans every [`DispatcherBuilder::depth_scan_every`], so a wedged
//!   handler still raises it.
//!
//! # Re-entrancy
//!
//! From inside a callback a handler may publish, subscribe, register,
//! unregister (itself included), enable or disable (itself included) and
//! shut the dispatcher down. No dispatcher lock is held while user code
//! runs, except the handler's own body, which nothing else waits on.
//!
//! # Time
//!
//! Every deadline is "now + duration" on the [`Clock`] (retries, stall
//! checks, depth scans) or in real time (the `timeout` of the waits, the
//! shutdown grace). None overflows: a sum past the last instant the
//! platform can represent saturates there. The system clock never gets
//! that far, so such a deadline means "no deadline"; a [`ManualClock`]
//! advanced by `Duration::MAX` reaches it and stays there, and everything
//! due by then fires. An [`Overflow::Block`](evbus_core::Overflow::Block)
//! timeout above a century (up to `Duration::MAX`) is stored as a century.
//!
//! # Shutdown and closing
//!
//! [`Dispatcher::shutdown`] closes every handler's ring, lets the workers
//! drain what is buffered, abandons pending retries (counted as
//! `abandoned`; call [`Dispatcher::wait_settled`] first to let them run),
//! waits up to a grace period for handlers still running,
//! closes the signal bus, joins the workers and the timer, and returns a
//! [`DispatchReport`] that names any wedged handler. The bus itself stays
//! open.
//!
//! **Dropping the last [`Dispatcher`] handle shuts it down**, as dropping a
//! tokio `Runtime` does: the same sequence, with
//! [`DEFAULT_SHUTDOWN_GRACE`], so the `drop` may block that long for a
//! wedged handler. Then every handler's ring is closed and unsubscribed,
//! every handler's captured state dropped, the worker threads have exited
//! (a wedged one exits when its call returns), and subscribers of
//! [`Dispatcher::signals`] drain what is buffered, then get
//! `Disconnected`. A clone of the signal bus held elsewhere does not keep
//! it open: the shutdown closes it explicitly.
//!
//! - A handler that holds a `Dispatcher` keeps it alive (the dispatcher
//!   owns the handler). Give it a [`WeakDispatcher`]
//!   ([`Dispatcher::downgrade`]) and upgrade it for the call, or call
//!   `shutdown` yourself.
//! - The dispatcher holds a handle of the bus it serves
//!   ([`Dispatcher::bus`]), so the bus does not close for lack of
//!   producer-side handles while any `Dispatcher` handle lives; once the
//!   last one is dropped the dispatcher lets go of it.
//! - If the bus closes first ([`Bus::shutdown`](evbus_core::Bus::shutdown)),
//!   each handler drains its ring and ends; the dispatcher stays up (its
//!   signal bus open) until it is shut down or dropped.
#![warn(missing_docs)]
#![deny(unsafe_code)]

// Layers, from the bottom up; a module takes names only from the layers
// below its own:
//   sync, isolate; clock, retry, signal, stats; options, scheduler,
//   watchdog;
//   handler; timer; runtime; worker; dispatcher (the public handle, its
//   builder, errors and shutdown).
mod clock;
mod dispatcher;
mod handler;
mod isolate;
mod options;
mod retry;
mod runtime;
mod scheduler;
mod signal;
mod stats;
mod sync;
mod timer;
mod watchdog;
mod worker;

pub use crate::{
    clock::{Clock, ManualClock, SystemClock},
    dispatcher::{
        Dispatcher,
        builder::DispatcherBuilder,
        error::{BuildError, RegisterError, SettleTimeout},
        shutdown::{DEFAULT_SHUTDOWN_GRACE, DispatchReport},
        weak::WeakDispatcher,
    },
    handler::HandlerResult,
    options::HandlerOptions,
    retry::{RetryPolicy, RetryPolicyBuilder, RetryPolicyError},
    runtime::HandlerFailure,
    signal::{DeadLetter, DepthAlarm, Failure, Signal, SignalKind, StallAlarm},
    stats::{HandlerStats, Priority},
};
