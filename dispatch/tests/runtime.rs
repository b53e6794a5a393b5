//! The handler runtime: ordering, priorities, isolation, retries, dead
//! letters, toggles, watchdogs, stats and shutdown. Time is a
//! `ManualClock`; every wait is on a channel, a barrier or `wait_idle`,
//! guarded by a timeout.

mod common;

use std::{
    io,
    sync::{Arc, Barrier, Mutex, mpsc},
    time::Duration,
};

use common::{Ev, Kind, TIMEOUT, ev, idle, setup, signals};
use evbus_core::Filter;
use evbus_dispatch::{
    BuildError, Dispatcher, Failure, HandlerOptions, Priority, RegisterError, RetryPolicy, Signal,
};

fn opts(name: &str, pattern: &str) -> HandlerOptions {
    HandlerOptions::pattern(name, pattern).unwrap()
}

fn no_jitter(attempts: u32, base_ms: u64) -> RetryPolicy {
    RetryPolicy::builder()
        .max_attempts(attempts)
        .base(Duration::from_millis(base_ms))
        .factor(2.0)
        .max_delay(Duration::from_secs(60))
        .jitter(0.0)
        .build()
        .unwrap()
}

type Log = Arc<Mutex<Vec<(&'static str, u64)>>>;
type Callback = Box<dyn FnMut(&Ev) -> evbus_dispatch::HandlerResult + Send>;

/// A shared log, and a maker of handlers that record calls in it as
/// `(handler, n)`.
fn recorder() -> (Log, impl Fn(&'static str) -> Callback) {
    let log: Log = Arc::new(Mutex::new(Vec::new()));
    let l = Arc::clone(&log);
    let make = move |name: &'static str| -> Callback {
        let l = Arc::clone(&l);
        Box::new(move |e: &Ev| {
            l.lock().unwrap().push((name, e.n));
            Ok(())
        })
    };
    (log, make)
}

#[test]
fn each_handler_sees_each_publishers_events_in_order() {
    let (bus, _clock, d) = setup(2);
    let seen = Arc::new(Mutex::new(Vec::new()));
    for name in ["a", "b", "c"] {
        let seen = Arc::clone(&seen);
        d.register(opts(name, "shop.>").capacity(4096), move |e: &Ev| {
            seen.lock().unwrap().push((name, e.src, e.n));
            Ok(())
        })
        .unwrap();
    }
    let barrier = Arc::new(Barrier::new(3));
    let publishers: Vec<_> = (0..3u32)
        .map(|src| {
            let bus = bus.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let mut p = bus.publisher();
                barrier.wait();
                for n in 0..500 {
                    p.publish(Ev {
                        kind: Kind::Order,
                        src,
                        n,
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for p in publishers {
        p.join().unwrap();
    }
    idle(&d);
    let seen = seen.lock().unwrap();
    for name in ["a", "b", "c"] {
        for src in 0..3 {
            let ns: Vec<u64> = seen
                .iter()
                .filter(|(h, s, _)| *h == name && *s == src)
                .map(|(_, _, n)| *n)
                .collect();
            assert_eq!(ns, (0..500).collect::<Vec<_>>(), "{name} from {src}");
        }
    }
    for s in d.handler_stats() {
        assert_eq!((s.received, s.handled, s.dropped), (1500, 1500, 0), "{s:?}");
    }
}

#[test]
fn higher_priority_runs_first_and_registration_breaks_ties() {
    let (bus, _clock, d) = setup(1);
    let (log, make) = recorder();
    // Registered low to high on purpose.
    d.register(opts("low", ">").priority(Priority::Low), make("low"))
        .unwrap();
    d.register(opts("normal-1", ">"), make("normal-1")).unwrap();
    d.register(opts("high", ">").priority(Priority::High), make("high"))
        .unwrap();
    d.register(opts("normal-2", ">"), make("normal-2")).unwrap();
    idle(&d);
    for n in 0..200 {
        bus.publish(ev(Kind::Order, n)).unwrap();
    }
    idle(&d);
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 800);
    let rank = |h: &str| {
        ["high", "normal-1", "normal-2", "low"]
            .iter()
            .position(|x| *x == h)
            .unwrap()
    };
    // For every event, the handlers ran it in priority order.
    for n in 0..200 {
        let order: Vec<usize> = log
            .iter()
            .filter(|(_, m)| *m == n)
            .map(|(h, _)| rank(h))
            .collect();
        assert_eq!(order, vec![0, 1, 2, 3], "event {n}: {log:?}");
    }
}

#[test]
fn panics_and_errors_are_isolated_counted_and_reported() {
    let bus = evbus_core::Bus::<Ev>::new();
    let (hook_tx, hook_rx) = mpsc::channel();
    let hook_tx = Mutex::new(hook_tx);
    let d = Dispatcher::builder(&bus)
        .workers(2)
        .clock(evbus_dispatch::ManualClock::new())
        .on_error(move |f| {
            let _ = hook_tx.lock().unwrap().send((
                f.handler.to_owned(),
                f.failure.is_panic(),
                f.will_retry,
            ));
        })
        .build()
        .unwrap();
    let (log, make) = recorder();
    d.register(opts("panics", ">").retry(RetryPolicy::never()), |e: &Ev| {
        if e.n % 2 == 0 {
            panic!("boom {}", e.n);
        }
        Ok(())
    })
    .unwrap();
    d.register(opts("errs", ">").retry(RetryPolicy::never()), |e: &Ev| {
        if e.n % 3 == 0 {
            return Err(io::Error::other(format!("bad {}", e.n)).into());
        }
        Ok(())
    })
    .unwrap();
    d.register(opts("fine", ">"), make("fine")).unwrap();
    for n in 0..30 {
        bus.publish(ev(Kind::Order, n)).unwrap();
    }
    idle(&d);
    assert_eq!(
        log.lock().unwrap().len(),
        30,
        "the healthy handler saw everything"
    );
    let p = d.stats("panics").unwrap();
    assert_eq!(
        (p.received, p.panics, p.handled, p.dead_lettered),
        (30, 15, 15, 15)
    );
    let e = d.stats("errs").unwrap();
    assert_eq!(
        (e.received, e.errors, e.handled, e.dead_lettered),
        (30, 10, 20, 10)
    );
    let reports: Vec<_> = hook_rx.try_iter().collect();
    assert_eq!(
        reports.iter().filter(|r| r.0 == "panics" && r.1).count(),
        15
    );
    assert_eq!(reports.iter().filter(|r| r.0 == "errs" && !r.1).count(), 10);
    assert!(
        reports.iter().all(|r| !r.2),
        "no retries with RetryPolicy::never"
    );
    // No lock was poisoned: the panicking handler keeps working.
    bus.publish(ev(Kind::Order, 1)).unwrap();
    idle(&d);
    assert_eq!(d.stats("panics").unwrap().handled, 16);
}

#[test]
fn retries_back_off_on_the_clock_then_dead_letter() {
    let (bus, clock, d) = setup(2);
    let mut dead = d.signals().subscribe("evbus.dead_letter").unwrap();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let c = Arc::clone(&calls);
    d.register(
        opts("flaky", ">").retry(no_jitter(3, 100)),
        move |e: &Ev| {
            c.lock().unwrap().push(e.n);
            Err(io::Error::other("down").into())
        },
    )
    .unwrap();
    bus.publish(ev(Kind::Order, 7)).unwrap();
    idle(&d);
    assert_eq!(*calls.lock().unwrap(), vec![7]);
    // The first retry is due after 100 ms on the clock, not before.
    clock.advance(Duration::from_millis(99));
    idle(&d);
    assert_eq!(calls.lock().unwrap().len(), 1);
    clock.advance(Duration::from_millis(1));
    idle(&d);
    assert_eq!(calls.lock().unwrap().len(), 2);
    // The second after 200 ms more.
    clock.advance(Duration::from_millis(199));
    idle(&d);
    assert_eq!(calls.lock().unwrap().len(), 2);
    assert!(signals(&mut dead).is_empty());
    clock.advance(Duration::from_millis(1));
    idle(&d);
    assert_eq!(*calls.lock().unwrap(), vec![7, 7, 7]);
    let got = signals(&mut dead);
    assert_eq!(got.len(), 1);
    match &got[0] {
        Signal::DeadLetter(l) => {
            assert_eq!(l.event, ev(Kind::Order, 7));
            assert_eq!(&*l.handler, "flaky");
            assert_eq!(l.attempts, 3);
            assert!(matches!(&l.failure, Failure::Error(e) if e.to_string() == "down"));
        }
        other => panic!("expected a dead letter, got {other:?}"),
    }
    let s = d.stats("flaky").unwrap();
    assert_eq!(
        (s.errors, s.retries, s.dead_lettered, s.handled),
        (3, 2, 1, 0)
    );
}

#[test]
fn a_panic_is_dead_lettered_at_once_by_default() {
    let bus = evbus_core::Bus::<Ev>::new();
    let (hook_tx, hook_rx) = mpsc::channel();
    let hook_tx = Mutex::new(hook_tx);
    let d = Dispatcher::builder(&bus)
        .workers(1)
        .clock(evbus_dispatch::ManualClock::new())
        .on_error(move |f| {
            let _ = hook_tx
                .lock()
                .unwrap()
                .send((f.attempt, f.failure.is_panic(), f.will_retry));
        })
        .build()
        .unwrap();
    let mut dead = d.signals().subscribe("evbus.dead_letter").unwrap();
    let (log, make) = recorder();
    let mut rest = make("panicky");
    // The default policy: 3 attempts for errors.
    d.register(opts("panicky", ">"), move |e: &Ev| {
        if e.n == 0 {
            panic!("bug on event 0");
        }
        rest(e)
    })
    .unwrap();
    for n in 0..10 {
        bus.publish(ev(Kind::Order, n)).unwrap();
    }
    // No clock advance: nothing waits for a retry, so the later events are
    // not held behind the panicking one.
    idle(&d);
    let s = d.stats("panicky").unwrap();
    assert_eq!(
        (s.panics, s.retries, s.dead_lettered, s.handled, s.queued),
        (1, 0, 1, 9, 0),
        "{s:?}"
    );
    let handled: Vec<u64> = log.lock().unwrap().iter().map(|x| x.1).collect();
    assert_eq!(handled, (1..10).collect::<Vec<_>>());
    assert_eq!(
        hook_rx.try_iter().collect::<Vec<_>>(),
        vec![(1, true, false)]
    );
    match &signals(&mut dead)[..] {
        [Signal::DeadLetter(l)] => {
            assert_eq!(l.event, ev(Kind::Order, 0));
            assert_eq!(l.attempts, 1);
            assert!(matches!(&l.failure, Failure::Panic(m) if m == "bug on event 0"));
        }
        other => panic!("expected one dead letter, got {other:?}"),
    }
}

#[test]
fn a_policy_that_retries_panics_retries_them() {
    let (bus, clock, d) = setup(1);
    let policy = RetryPolicy::builder()
        .max_attempts(3)
        .base(Duration::from_millis(100))
        .jitter(0.0)
        .retry_panics(true)
        .build()
        .unwrap();
    let (log, make) = recorder();
    let mut rest = make("flaky");
    let mut panicked = false;
    d.register(opts("flaky", ">").retry(policy), move |e: &Ev| {
        if !panicked {
            panicked = true;
            panic!("once");
        }
        rest(e)
    })
    .unwrap();
    bus.publish(ev(Kind::Order, 1)).unwrap();
    bus.publish(ev(Kind::Order, 2)).unwrap();
    idle(&d);
    let s = d.stats("flaky").unwrap();
    assert_eq!((s.panics, s.retries, s.handled, s.queued), (1, 1, 0, 1));
    clock.advance(Duration::from_millis(100));
    idle(&d);
    assert_eq!(*log.lock().unwrap(), vec![("flaky", 1), ("flaky", 2)]);
    let s = d.stats("flaky").unwrap();
    assert_eq!(
        (s.panics, s.retries, s.handled, s.dead_lettered),
        (1, 1, 2, 0)
    );
}

#[test]
fn a_retrying_handler_holds_back_only_its_own_later_events() {
    let (bus, clock, d) = setup(1);
    let (log, make) = recorder();
    let l = Arc::clone(&log);
    let mut failed_once = false;
    d.register(
        opts("retrying", ">").retry(no_jitter(2, 50)),
        move |e: &Ev| {
            if e.n == 1 && !failed_once {
                failed_once = true;
                return Err(io::Error::other("once").into());
            }
            l.lock().unwrap().push(("retrying", e.n));
            Ok(())
        },
    )
    .unwrap();
    d.register(opts("other", ">"), make("other")).unwrap();
    for n in 1..=3 {
        bus.publish(ev(Kind::Order, n)).unwrap();
    }
    idle(&d);
    {
        let log = log.lock().unwrap();
        // The other handler is not delayed by the retry...
        let other: Vec<u64> = log.iter().filter(|x| x.0 == "other").map(|x| x.1).collect();
        assert_eq!(other, vec![1, 2, 3]);
        // ...while the retrying one waits, keeping its events in order.
        assert!(log.iter().all(|x| x.0 != "retrying"), "{log:?}");
    }
    assert_eq!(d.stats("retrying").unwrap().queued, 2);
    clock.advance(Duration::from_millis(50));
    idle(&d);
    let mine: Vec<u64> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|x| x.0 == "retrying")
        .map(|x| x.1)
        .collect();
    assert_eq!(mine, vec![1, 2, 3]);
}

#[test]
fn wait_settled_waits_for_pending_retries_where_wait_idle_does_not() {
    let (bus, clock, d) = setup(1);
    let (log, make) = recorder();
    let mut rest = make("flaky");
    let mut failed_once = false;
    d.register(
        opts("flaky", ">").retry(no_jitter(3, 100)),
        move |e: &Ev| {
            if e.n == 1 && !failed_once {
                failed_once = true;
                return Err(io::Error::other("once").into());
            }
            rest(e)
        },
    )
    .unwrap();
    d.register(opts("fine", ">"), make("fine")).unwrap();
    bus.publish(ev(Kind::Order, 1)).unwrap();
    bus.publish(ev(Kind::Order, 2)).unwrap();
    // wait_idle returns while the retry is pending...
    idle(&d);
    // ...wait_settled does not: the handler still owes events 1 and 2.
    let err = d.wait_settled(Duration::ZERO).unwrap_err();
    assert_eq!(err.retrying, vec!["flaky".to_owned()]);
    assert!(err.busy.is_empty(), "{err:?}");
    assert!(err.to_string().contains("flaky"), "{err}");
    clock.advance(Duration::from_millis(100));
    assert_eq!(d.wait_settled(TIMEOUT), Ok(()));
    let mine: Vec<u64> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|x| x.0 == "flaky")
        .map(|x| x.1)
        .collect();
    assert_eq!(mine, vec![1, 2]);
}

#[test]
fn wait_settled_then_shutdown_abandons_nothing() {
    let (bus, clock, d) = setup(2);
    let mut failed_once = false;
    d.register(
        opts("flaky", ">").retry(no_jitter(3, 100)),
        move |_: &Ev| {
            if !failed_once {
                failed_once = true;
                return Err(io::Error::other("once").into());
            }
            Ok(())
        },
    )
    .unwrap();
    for n in 0..5 {
        bus.publish(ev(Kind::Order, n)).unwrap();
    }
    idle(&d);
    // "Wait, report, shut down" on another thread, while this one moves
    // the clock (before or after that thread starts waiting: either way
    // it returns once the retry ran).
    let waiter = {
        let d = d.clone();
        std::thread::spawn(move || {
            let settled = d.wait_settled(TIMEOUT);
            let stats = d.stats("flaky").unwrap();
            (settled, stats, d.shutdown(TIMEOUT))
        })
    };
    clock.advance(Duration::from_millis(100));
    let (settled, stats, report) = waiter.join().unwrap();
    assert_eq!(settled, Ok(()));
    assert_eq!(
        (stats.handled, stats.retries, stats.abandoned, stats.queued),
        (5, 1, 0, 0),
        "{stats:?}"
    );
    assert_eq!(report.abandoned_retries, 0);
    assert!(report.drained, "{report:?}");
}

#[test]
fn disabled_handlers_skip_and_count_then_resume() {
    let (bus, _clock, d) = setup(2);
    let (log, make) = recorder();
    d.register(opts("toggled", ">"), make("toggled")).unwrap();
    assert_eq!(d.is_enabled("toggled"), Some(true));
    assert!(d.disable("toggled"));
    for n in 0..5 {
        bus.publish(ev(Kind::Order, n)).unwrap();
    }
    idle(&d);
    assert!(log.lock().unwrap().is_empty());
    assert!(d.enable("toggled"));
    bus.publish(ev(Kind::Order, 5)).unwrap();
    idle(&d);
    assert_eq!(*log.lock().unwrap(), vec![("toggled", 5)]);
    let s = d.stats("toggled").unwrap();
    assert_eq!(
        (s.received, s.skipped, s.handled, s.enabled),
        (6, 5, 1, true)
    );
    assert!(!d.disable("missing"));
    assert_eq!(d.is_enabled("missing"), None);
    // Registered disabled.
    d.register(opts("off", ">").disabled(), make("off"))
        .unwrap();
    assert_eq!(d.is_enabled("off"), Some(false));
}

#[test]
fn stall_watchdog_fires_once_and_recovers_on_the_fake_clock() {
    let (bus, clock, d) = setup(2);
    let mut alarms = d.signals().subscribe("evbus.watchdog.>").unwrap();
    d.watch_stall(
        "beat",
        Filter::kinds(&[Kind::Heartbeat]).unwrap(),
        Duration::from_secs(10),
    )
    .unwrap();
    idle(&d);
    clock.advance(Duration::from_secs(6));
    bus.publish(ev(Kind::Heartbeat, 1)).unwrap();
    // Other traffic does not count as a heartbeat.
    bus.publish(ev(Kind::Order, 1)).unwrap();
    idle(&d);
    clock.advance(Duration::from_secs(9));
    assert!(signals(&mut alarms).is_empty(), "9 s after the last beat");
    clock.advance(Duration::from_secs(1));
    let got = signals(&mut alarms);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        matches!(&got[0], Signal::Stall(a) if &*a.watchdog == "beat" && a.quiet_for == Duration::from_secs(10))
    );
    // Once per quiet period.
    clock.advance(Duration::from_secs(30));
    assert!(signals(&mut alarms).is_empty());
    bus.publish(ev(Kind::Heartbeat, 2)).unwrap();
    idle(&d);
    let got = signals(&mut alarms);
    assert!(
        matches!(&got[..], [Signal::Recovered(a)] if a.quiet_for == Duration::from_secs(40)),
        "{got:?}"
    );
    // Armed again.
    clock.advance(Duration::from_secs(10));
    assert!(matches!(&signals(&mut alarms)[..], [Signal::Stall(_)]));
    assert_eq!(
        d.watch_stall("zero", Filter::pattern(">").unwrap(), Duration::ZERO),
        Err(RegisterError::ZeroStallPeriod)
    );
}

#[test]
fn queue_depth_alarm_fires_once_per_crossing() {
    let (bus, clock, d) = setup(1);
    let mut alarms = d.signals().subscribe("evbus.watchdog.queue_depth").unwrap();
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    let (entered_tx, entered_rx) = mpsc::channel::<u64>();
    d.register(
        opts("slow", ">").capacity(10).depth_alarm(0.5),
        move |e: &Ev| {
            entered_tx.send(e.n).unwrap();
            gate_rx.recv_timeout(TIMEOUT).unwrap();
            Ok(())
        },
    )
    .unwrap();
    idle(&d);
    bus.publish(ev(Kind::Order, 0)).unwrap();
    assert_eq!(entered_rx.recv_timeout(TIMEOUT), Ok(0));
    // The handler is stuck in event 0; fill its ring past half.
    for n in 1..=6 {
        bus.publish(ev(Kind::Order, n)).unwrap();
    }
    clock.advance(Duration::from_millis(100));
    clock.advance(Duration::from_millis(100));
    let got = signals(&mut alarms);
    assert!(
        matches!(&got[..], [Signal::QueueDepth(a)] if &*a.handler == "slow" && a.queued == 6 && a.threshold == 5 && a.capacity == 10),
        "{got:?}"
    );
    // Drain: below the threshold re-arms it.
    for n in 1..=6 {
        gate_tx.send(()).unwrap();
        assert_eq!(entered_rx.recv_timeout(TIMEOUT), Ok(n));
    }
    gate_tx.send(()).unwrap();
    idle(&d);
    clock.advance(Duration::from_millis(100));
    assert!(signals(&mut alarms).is_empty());
    bus.publish(ev(Kind::Order, 7)).unwrap();
    assert_eq!(entered_rx.recv_timeout(TIMEOUT), Ok(7));
    for n in 8..=13 {
        bus.publish(ev(Kind::Order, n)).unwrap();
    }
    clock.advance(Duration::from_millis(100));
    assert_eq!(
        signals(&mut alarms).len(),
        1,
        "a second crossing, a second alarm"
    );
    for _ in 7..=13 {
        gate_tx.send(()).unwrap();
    }
    idle(&d);
    assert_eq!(
        d.register(opts("bad", ">").depth_alarm(1.5), |_: &Ev| Ok(())),
        Err(RegisterError::InvalidDepthAlarm("1.5".into()))
    );
}

#[test]
fn a_slow_handler_drops_only_its_own_events() {
    let (bus, _clock, d) = setup(2);
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    d.register(opts("slow", ">").capacity(4), move |_: &Ev| {
        let _ = entered_tx.send(());
        gate_rx.recv_timeout(TIMEOUT).unwrap();
        Ok(())
    })
    .unwrap();
    let (log, make) = recorder();
    d.register(opts("fast", ">").capacity(1024), make("fast"))
        .unwrap();
    bus.publish(ev(Kind::Order, 0)).unwrap();
    entered_rx.recv_timeout(TIMEOUT).unwrap();
    for n in 1..100 {
        bus.publish(ev(Kind::Order, n)).unwrap();
    }
    for _ in 0..5 {
        let _ = gate_tx.send(());
    }
    idle(&d);
    assert_eq!(log.lock().unwrap().len(), 100);
    let slow = d.stats("slow").unwrap();
    let fast = d.stats("fast").unwrap();
    assert_eq!(fast.dropped, 0);
    assert_eq!(slow.dropped, 95);
    assert_eq!(slow.delivered + slow.dropped, 100);
}

#[test]
fn shutdown_drains_abandons_retries_and_joins() {
    let (bus, _clock, d) = setup(2);
    let (log, make) = recorder();
    d.register(opts("ok", ">"), make("ok")).unwrap();
    d.register(opts("failing", ">").retry(no_jitter(5, 1000)), |_: &Ev| {
        Err(io::Error::other("no").into())
    })
    .unwrap();
    for n in 0..10 {
        bus.publish(ev(Kind::Order, n)).unwrap();
    }
    let report = d.shutdown(TIMEOUT);
    assert!(report.drained, "{report:?}");
    assert!(report.wedged.is_empty() && report.undrained.is_empty());
    assert_eq!(report.workers_joined, 2);
    assert_eq!(report.workers_detached, 0);
    assert_eq!(
        log.lock().unwrap().len(),
        10,
        "buffered events were handled"
    );
    let f = d.stats("failing").unwrap();
    // The first event failed and waited for its retry; the shutdown
    // abandoned it, and the other nine got one attempt each, no retry.
    assert_eq!(report.abandoned_retries, f.abandoned);
    assert_eq!(f.abandoned + f.dead_lettered + f.handled, 10, "{f:?}");
    assert!(f.abandoned >= 1);
    assert!(d.shutdown(TIMEOUT).already_shut_down);
    assert_eq!(
        d.register(opts("late", ">"), |_: &Ev| Ok(())),
        Err(RegisterError::ShutDown)
    );
    // The bus itself stays open for others.
    assert!(!bus.is_shut_down());
}

#[test]
fn shutdown_names_a_wedged_handler() {
    let (bus, _clock, d) = setup(2);
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    d.register(opts("stuck", ">"), move |_: &Ev| {
        entered_tx.send(()).unwrap();
        gate_rx.recv_timeout(TIMEOUT).unwrap();
        Ok(())
    })
    .unwrap();
    bus.publish(ev(Kind::Order, 0)).unwrap();
    entered_rx.recv_timeout(TIMEOUT).unwrap();
    let report = d.shutdown(Duration::from_millis(20));
    assert!(!report.drained);
    assert_eq!(report.wedged, vec!["stuck".to_owned()]);
    // The stuck worker cannot be joined; the idle one normally is, but how
    // fast it exits is up to the scheduler, so only the total is exact.
    assert!(report.workers_detached >= 1);
    assert_eq!(report.workers_joined + report.workers_detached, 2);
    gate_tx.send(()).unwrap();
}

#[test]
fn registration_errors_are_typed() {
    let (_bus, _clock, d) = setup(1);
    d.register(opts("x", ">"), |_: &Ev| Ok(())).unwrap();
    assert_eq!(
        d.register(opts("x", ">"), |_: &Ev| Ok(())),
        Err(RegisterError::DuplicateName("x".into()))
    );
    assert_eq!(
        d.register(opts("", ">"), |_: &Ev| Ok(())),
        Err(RegisterError::EmptyName)
    );
    assert!(matches!(
        d.register(opts("zero", ">").capacity(0), |_: &Ev| Ok(())),
        Err(RegisterError::Subscribe(
            evbus_core::SubscribeError::ZeroCapacity
        ))
    ));
    assert!(HandlerOptions::pattern("p", "a..b").is_err());
    assert!(matches!(
        Dispatcher::builder(&evbus_core::Bus::<Ev>::new())
            .workers(0)
            .build(),
        Err(BuildError::ZeroWorkers)
    ));
}
