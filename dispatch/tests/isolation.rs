//! User code that panics on a worker outside the handler call: an event's
//! `Drop` after the handler returned `Ok`, an event's `Clone` while a dead
//! letter is published, an error hook whose panic payload panics when
//! dropped, and a handler's captured state whose `Drop` calls back into the
//! dispatcher. With one worker, a worker lost to any of them would starve
//! every other handler; each test checks that the others carry on, that
//! the panic is counted, and that shutdown drains.
//!
//! Every wait is on a channel, guarded by a timeout that only turns a hang
//! into a failure.

mod common;

use std::{io, sync::mpsc, thread};

use common::TIMEOUT;
use evbus_core::{Bus, Event, EventKind};
use evbus_dispatch::{Dispatcher, HandlerOptions, ManualClock, RetryPolicy, Signal};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobKind {
    Job,
}

impl EventKind for JobKind {
    const ALL: &'static [Self] = &[JobKind::Job];
    fn topic(self) -> &'static str {
        "jobs.run"
    }
    fn index(self) -> usize {
        0
    }
}

/// An event whose `Drop` or `Clone` panics when armed, but only on a
/// dispatcher worker thread: publishing from the test thread (which clones
/// the event per ring and drops the original) stays safe.
#[derive(Debug)]
struct Fragile {
    n: u64,
    panic_on_drop: bool,
    panic_on_clone: bool,
}

fn on_worker() -> bool {
    thread::current()
        .name()
        .is_some_and(|name| name.starts_with("evbus-worker-"))
}

impl Clone for Fragile {
    fn clone(&self) -> Self {
        if self.panic_on_clone && on_worker() {
            panic!("clone of event {} panicked", self.n);
        }
        Self {
            n: self.n,
            panic_on_drop: self.panic_on_drop,
            panic_on_clone: self.panic_on_clone,
        }
    }
}

impl Drop for Fragile {
    fn drop(&mut self) {
        if self.panic_on_drop && on_worker() && !thread::panicking() {
            panic!("drop of event {} panicked", self.n);
        }
    }
}

impl Event for Fragile {
    type Kind = JobKind;
    fn kind(&self) -> JobKind {
        JobKind::Job
    }
}

fn plain(n: u64) -> Fragile {
    Fragile {
        n,
        panic_on_drop: false,
        panic_on_clone: false,
    }
}

fn one_worker() -> (Bus<Fragile>, Dispatcher<Fragile>) {
    let bus = Bus::new();
    let d = Dispatcher::builder(&bus)
        .workers(1)
        .clock(ManualClock::new())
        .build()
        .unwrap();
    (bus, d)
}

fn opts(name: &str) -> HandlerOptions {
    HandlerOptions::pattern(name, "jobs.>").unwrap()
}

/// Registers a handler named `name` that sends the number of every event it
/// handles on the returned channel.
fn witness(d: &Dispatcher<Fragile>, name: &str) -> mpsc::Receiver<u64> {
    let (tx, rx) = mpsc::channel();
    d.register(opts(name), move |e: &Fragile| {
        tx.send(e.n)?;
        Ok(())
    })
    .unwrap();
    rx
}

fn expect(rx: &mpsc::Receiver<u64>, n: u64) {
    assert_eq!(
        rx.recv_timeout(TIMEOUT),
        Ok(n),
        "a handler starved: the only worker died"
    );
}

#[test]
fn a_panicking_drop_after_ok_keeps_the_worker() {
    let (bus, d) = one_worker();
    let first = witness(&d, "first");
    let second = witness(&d, "second");
    bus.publish(Fragile {
        n: 1,
        panic_on_drop: true,
        panic_on_clone: false,
    })
    .unwrap();
    bus.publish(plain(2)).unwrap();
    for n in [1, 2] {
        expect(&first, n);
        expect(&second, n);
    }
    assert!(d.wait_idle(TIMEOUT));
    for name in ["first", "second"] {
        let s = d.stats(name).unwrap();
        // The handler returned `Ok` for both: the panic came after, from
        // the event's `Drop`, and is counted apart from handler panics.
        assert_eq!((s.received, s.handled, s.panics), (2, 2, 0), "{s:?}");
        assert_eq!(s.contained_panics, 1, "{s:?}");
    }
    let report = d.shutdown(TIMEOUT);
    assert!(report.drained, "{report:?}");
    assert!(report.undrained.is_empty() && report.wedged.is_empty());
    assert_eq!(report.contained_panics, 2, "{report:?}");
    assert_eq!((report.workers_joined, report.workers_detached), (1, 0));
}

#[test]
fn a_panicking_clone_while_dead_lettering_keeps_the_worker() {
    let (bus, d) = one_worker();
    // Two subscriptions, so the dead letter is cloned once (the last ring
    // takes the original).
    let mut letters = d.signals().subscribe("evbus.dead_letter").unwrap();
    let mut copies = d.signals().subscribe("evbus.dead_letter").unwrap();
    d.register(
        opts("failing").retry(RetryPolicy::never()),
        |_: &Fragile| Err(io::Error::other("always").into()),
    )
    .unwrap();
    let after = witness(&d, "after");
    // The dead letter of event 1 clones it into the signal subscription's
    // ring, on the worker: that clone panics.
    bus.publish(Fragile {
        n: 1,
        panic_on_drop: false,
        panic_on_clone: true,
    })
    .unwrap();
    bus.publish(plain(2)).unwrap();
    expect(&after, 1);
    expect(&after, 2);
    assert!(d.wait_idle(TIMEOUT));
    let s = d.stats("failing").unwrap();
    assert_eq!((s.received, s.errors, s.dead_lettered), (2, 2, 2), "{s:?}");
    assert_eq!(s.contained_panics, 1, "{s:?}");
    // The second dead letter went through.
    for sub in [&mut letters, &mut copies] {
        let delivered: Vec<u64> = sub
            .try_iter()
            .map(|signal| match signal {
                Signal::DeadLetter(letter) => letter.event.n,
                other => panic!("unexpected signal {other:?}"),
            })
            .collect();
        assert_eq!(delivered.last(), Some(&2), "{delivered:?}");
    }
    let report = d.shutdown(TIMEOUT);
    assert!(report.drained && report.undrained.is_empty(), "{report:?}");
}

/// A panic payload whose `Drop` panics.
struct Grenade;

impl Drop for Grenade {
    fn drop(&mut self) {
        if !thread::panicking() {
            panic!("the panic payload panicked when dropped");
        }
    }
}

#[test]
fn an_error_hook_whose_panic_payload_panics_on_drop_keeps_the_worker() {
    let bus = Bus::<Fragile>::new();
    let d = Dispatcher::builder(&bus)
        .workers(1)
        .clock(ManualClock::new())
        .on_error(|_| std::panic::panic_any(Grenade))
        .build()
        .unwrap();
    d.register(
        opts("failing").retry(RetryPolicy::never()),
        |_: &Fragile| Err(io::Error::other("always").into()),
    )
    .unwrap();
    let after = witness(&d, "after");
    bus.publish(plain(1)).unwrap();
    bus.publish(plain(2)).unwrap();
    expect(&after, 1);
    expect(&after, 2);
    assert!(d.wait_idle(TIMEOUT));
    let s = d.stats("failing").unwrap();
    assert_eq!((s.errors, s.dead_lettered), (2, 2), "{s:?}");
    // Each hook call panicked (and its payload again when dropped): one
    // contained panic per hook call.
    assert_eq!(s.contained_panics, 2, "{s:?}");
    assert!(d.shutdown(TIMEOUT).drained);
}

/// Captured by a handler: when dropped, it calls back into the dispatcher
/// (unregisters another handler) and reports.
struct CallsBack {
    d: Dispatcher<Fragile>,
    done: mpsc::Sender<bool>,
}

impl Drop for CallsBack {
    fn drop(&mut self) {
        let unregistered = self.d.unregister("other");
        let _ = self.done.send(unregistered);
    }
}

#[test]
fn a_handlers_state_that_calls_back_on_drop_does_not_deadlock() {
    let (bus, d) = one_worker();
    let (done_tx, done_rx) = mpsc::channel();
    let state = CallsBack {
        d: d.clone(),
        done: done_tx,
    };
    d.register(opts("calls-back"), move |_: &Fragile| {
        let _keep = &state;
        Ok(())
    })
    .unwrap();
    let other = witness(&d, "other");
    bus.publish(plain(1)).unwrap();
    expect(&other, 1);
    assert!(d.unregister("calls-back"));
    // Wait on another thread, so a deadlock fails the test instead of
    // hanging it.
    let waiter = {
        let d = d.clone();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(d.wait_idle(TIMEOUT));
        });
        rx
    };
    assert_eq!(
        done_rx.recv_timeout(TIMEOUT),
        Ok(true),
        "the captured state's Drop did not run, or deadlocked"
    );
    assert_eq!(waiter.recv_timeout(TIMEOUT), Ok(true), "wait_idle hung");
    assert_eq!(d.handler_names(), Vec::<String>::new());
    let report = d.shutdown(TIMEOUT);
    assert!(report.drained, "{report:?}");
}
