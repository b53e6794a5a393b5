//! Time at its edges: a manual clock advanced by `Duration::MAX`, and
//! durations too large to add to an instant (retry delays, stall periods,
//! `Overflow::Block` timeouts, wait and shutdown timeouts). Nothing may
//! overflow, panic, move time backwards or spin.
//!
//! Clock jumps that could hang run on a helper thread, so a hang fails the
//! test after the timeout instead of stalling it.

mod common;

use std::{
    io,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
        mpsc,
    },
    thread,
    time::Duration,
};

use common::{Kind, TIMEOUT, ev, setup, signals};
use evbus_core::{Filter, Overflow};
use evbus_dispatch::{Clock, HandlerOptions, ManualClock, RetryPolicy, Signal};

/// Advances `clock` by `by` on a helper thread; fails if that does not
/// return (every timer due must fire, and firing must end).
fn advance(clock: &ManualClock, by: Duration) {
    let (tx, rx) = mpsc::channel();
    let clock = clock.clone();
    thread::spawn(move || {
        clock.advance(by);
        let _ = tx.send(());
    });
    rx.recv_timeout(TIMEOUT)
        .expect("ManualClock::advance did not return");
}

#[test]
fn manual_clock_saturates_instead_of_going_back() {
    let clock = ManualClock::new();
    let t0 = clock.now();
    clock.advance(Duration::from_secs(5));
    let t5 = clock.now();
    assert_eq!(t5 - t0, Duration::from_secs(5));
    clock.advance(Duration::MAX);
    let end = clock.now();
    assert!(end > t5, "advance(Duration::MAX) moved the clock back");
    assert!(end - t0 > Duration::from_secs(86_400 * 365 * 100));
    // At the end of time it stays there.
    clock.advance(Duration::MAX);
    clock.advance(Duration::from_secs(1));
    assert_eq!(clock.now(), end);
}

#[test]
fn a_retry_fires_when_the_clock_jumps_to_the_end_of_time() {
    let (bus, clock, d) = setup(1);
    let calls = Arc::new(AtomicU32::new(0));
    let c = Arc::clone(&calls);
    let policy = RetryPolicy::builder()
        .max_attempts(2)
        .base(Duration::from_secs(1))
        .jitter(0.0)
        .build()
        .unwrap();
    d.register(
        HandlerOptions::pattern("flaky", ">").unwrap().retry(policy),
        move |_| {
            if c.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(io::Error::other("first call fails").into())
            } else {
                Ok(())
            }
        },
    )
    .unwrap();
    bus.publish(ev(Kind::Order, 1)).unwrap();
    common::idle(&d);
    assert_eq!(d.stats("flaky").unwrap().retries, 1);
    advance(&clock, Duration::MAX);
    d.wait_settled(TIMEOUT)
        .expect("the retry, due one second later, did not fire");
    let s = d.stats("flaky").unwrap();
    assert_eq!((s.errors, s.handled, s.dead_lettered), (1, 1, 0), "{s:?}");
    assert!(d.shutdown(TIMEOUT).drained);
}

#[test]
fn a_stall_period_of_duration_max_is_reached_only_at_the_end_of_time() {
    let (_bus, clock, d) = setup(1);
    let mut alarms = d.signals().subscribe("evbus.watchdog.>").unwrap();
    d.watch_stall("forever", Filter::pattern(">").unwrap(), Duration::MAX)
        .unwrap();
    common::idle(&d);
    advance(&clock, Duration::from_secs(86_400 * 365 * 1000));
    assert!(
        signals(&mut alarms).is_empty(),
        "a thousand years is not MAX"
    );
    advance(&clock, Duration::MAX);
    let got = signals(&mut alarms);
    assert!(
        matches!(&got[..], [Signal::Stall(a)] if &*a.watchdog == "forever"),
        "{got:?}"
    );
    assert!(d.shutdown(TIMEOUT).drained);
}

#[test]
fn retry_delays_too_large_for_an_instant_do_not_fire_early() {
    let (bus, clock, d) = setup(1);
    // A delay of about 2^64 seconds: no instant can hold "now + delay".
    let policy = RetryPolicy::builder()
        .max_attempts(2)
        .base(Duration::MAX)
        .max_delay(Duration::MAX)
        .jitter(0.0)
        .build()
        .unwrap();
    d.register(
        HandlerOptions::pattern("slow-retry", ">")
            .unwrap()
            .retry(policy),
        |_| Err(io::Error::other("fails").into()),
    )
    .unwrap();
    bus.publish(ev(Kind::Order, 1)).unwrap();
    common::idle(&d);
    advance(&clock, Duration::from_secs(86_400 * 365 * 1000));
    let s = d.stats("slow-retry").unwrap();
    assert_eq!((s.errors, s.retries), (1, 1), "{s:?}");
    let report = d.shutdown(TIMEOUT);
    assert_eq!(report.abandoned_retries, 1, "{report:?}");
}

#[test]
fn block_with_duration_max_waits_instead_of_panicking() {
    let (bus, _clock, d) = setup(1);
    let (entered_tx, entered_rx) = mpsc::channel();
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    let (seen_tx, seen_rx) = mpsc::channel();
    d.register(
        HandlerOptions::pattern("gated", ">")
            .unwrap()
            .capacity(1)
            .overflow(Overflow::Block(Duration::MAX)),
        move |e| {
            if e.n == 1 {
                entered_tx.send(())?;
                gate_rx.recv_timeout(TIMEOUT)?;
            }
            seen_tx.send(e.n)?;
            Ok(())
        },
    )
    .unwrap();
    // The ring's timeout is one a publisher can add to `Instant::now()`.
    match bus.snapshot().subscriptions[0].overflow {
        Overflow::Block(timeout) => assert!(
            std::time::Instant::now().checked_add(timeout).is_some(),
            "{timeout:?}"
        ),
        other => panic!("{other:?}"),
    }
    bus.publish(ev(Kind::Order, 1)).unwrap();
    entered_rx.recv_timeout(TIMEOUT).unwrap();
    // Event 2 fills the ring while the handler holds event 1; event 3 finds
    // it full and blocks (with no deadline) until the handler goes on. The
    // gate opens from another thread, which in practice starts after the
    // publish below has found the ring full; if it wins the race, the
    // publish simply finds room.
    bus.publish(ev(Kind::Order, 2)).unwrap();
    let opener = thread::spawn(move || gate_tx.send(()).unwrap());
    let report = bus.publish(ev(Kind::Order, 3)).unwrap();
    assert_eq!(report.accepted, 1, "the blocked publish lost the event");
    opener.join().unwrap();
    let seen: Vec<u64> = (0..3)
        .map(|_| seen_rx.recv_timeout(TIMEOUT).unwrap())
        .collect();
    assert_eq!(seen, [1, 2, 3]);
    assert!(d.shutdown(TIMEOUT).drained);
}

#[test]
fn waits_and_shutdown_accept_duration_max() {
    let (bus, _clock, d) = setup(1);
    let (tx, rx) = mpsc::channel();
    d.register(HandlerOptions::pattern("h", ">").unwrap(), move |e| {
        tx.send(e.n)?;
        Ok(())
    })
    .unwrap();
    bus.publish(ev(Kind::Order, 1)).unwrap();
    assert_eq!(rx.recv_timeout(TIMEOUT), Ok(1));
    assert!(d.wait_idle(Duration::MAX));
    d.wait_settled(Duration::MAX).unwrap();
    let report = d.shutdown(Duration::MAX);
    assert!(report.drained && report.workers_joined == 1, "{report:?}");
}
