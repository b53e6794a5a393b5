//! Replayed events: handlers read the mark, `skip_dry_run` skips dry runs,
//! and every outcome of a replayed event counts in the replay counters,
//! never in the live ones. Time is a `ManualClock`; every wait is
//! `wait_idle` / `wait_settled`, guarded by a timeout.

mod common;

use std::{
    io,
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{Ev, Kind, TIMEOUT, ev};
use evbus_core::{Bus, Envelope, Event, ReplayMark};
use evbus_dispatch::{Dispatcher, HandlerOptions, HandlerStats, ManualClock, RetryPolicy, Signal};

type Env = Envelope<Ev>;

fn setup() -> (Bus<Env>, ManualClock, Dispatcher<Env>) {
    let bus = Bus::new();
    let clock = ManualClock::new();
    let d = Dispatcher::builder(&bus)
        .workers(1)
        .clock(clock.clone())
        .build()
        .expect("dispatcher starts");
    (bus, clock, d)
}

fn opts(name: &str) -> HandlerOptions {
    HandlerOptions::pattern(name, ">").unwrap()
}

fn no_jitter(attempts: u32) -> RetryPolicy {
    RetryPolicy::builder()
        .max_attempts(attempts)
        .base(Duration::from_millis(100))
        .factor(1.0)
        .max_delay(Duration::from_secs(60))
        .jitter(0.0)
        .build()
        .unwrap()
}

fn live(n: u64) -> Env {
    Envelope::new(ev(Kind::Order, n))
}

fn replayed(n: u64, dry_run: bool) -> Env {
    live(n).with_replay_mark(Some(ReplayMark {
        dry_run,
        recorded_seq: n,
    }))
}

/// `(received, handled, errors, panics, retries, dead_lettered, skipped, abandoned)`.
fn live_counts(s: &HandlerStats) -> [u64; 8] {
    [
        s.received,
        s.handled,
        s.errors,
        s.panics,
        s.retries,
        s.dead_lettered,
        s.skipped,
        s.abandoned,
    ]
}

/// `(replayed, replay_handled, skipped_dry_run, replay_errors, replay_failed)`.
fn replay_counts(s: &HandlerStats) -> [u64; 5] {
    [
        s.replayed,
        s.replay_handled,
        s.skipped_dry_run,
        s.replay_errors,
        s.replay_failed,
    ]
}

type Seen = Arc<Mutex<Vec<(u64, Option<ReplayMark>)>>>;

fn seen_by(seen: &Seen) -> impl FnMut(&Env) -> evbus_dispatch::HandlerResult + Send + 'static {
    let seen = Arc::clone(seen);
    move |e: &Env| {
        seen.lock().unwrap().push((e.payload().n, e.replay_mark()));
        Ok(())
    }
}

#[test]
fn handlers_read_the_mark_and_skip_dry_runs_when_asked() {
    let (bus, _clock, d) = setup();
    let plain: Seen = Arc::default();
    let careful: Seen = Arc::default();
    d.register(opts("plain"), seen_by(&plain)).unwrap();
    d.register(opts("careful").skip_dry_run(true), seen_by(&careful))
        .unwrap();
    bus.publish(live(1)).unwrap();
    bus.publish(replayed(2, true)).unwrap();
    bus.publish(replayed(3, false)).unwrap();
    d.wait_settled(TIMEOUT).unwrap();

    let mark = |n, dry_run| {
        Some(ReplayMark {
            dry_run,
            recorded_seq: n,
        })
    };
    assert_eq!(
        *plain.lock().unwrap(),
        [(1, None), (2, mark(2, true)), (3, mark(3, false))]
    );
    // A real replay still runs a `skip_dry_run` handler.
    assert_eq!(*careful.lock().unwrap(), [(1, None), (3, mark(3, false))]);

    let p = d.stats("plain").unwrap();
    assert_eq!(live_counts(&p), [1, 1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(replay_counts(&p), [2, 2, 0, 0, 0]);
    let c = d.stats("careful").unwrap();
    assert_eq!(live_counts(&c), [1, 1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(replay_counts(&c), [2, 1, 1, 0, 0]);
}

#[test]
fn failures_of_replayed_events_count_apart_retries_included() {
    let (bus, clock, d) = setup();
    let mut dead = d.signals().subscribe("evbus.dead_letter").unwrap();
    let calls = Arc::new(Mutex::new(0u32));
    let c = Arc::clone(&calls);
    // Fails twice per event, then succeeds: within 3 attempts.
    d.register(opts("flaky").retry(no_jitter(3)), move |_: &Env| {
        let mut n = c.lock().unwrap();
        *n += 1;
        if *n % 3 == 0 {
            Ok(())
        } else {
            Err(io::Error::other("down").into())
        }
    })
    .unwrap();
    d.register(opts("broken").retry(no_jitter(2)), |_: &Env| {
        Err(io::Error::other("always").into())
    })
    .unwrap();

    bus.publish(replayed(5, false)).unwrap();
    for _ in 0..2 {
        assert!(d.wait_idle(TIMEOUT));
        clock.advance(Duration::from_millis(100));
    }
    d.wait_settled(TIMEOUT).unwrap();

    let f = d.stats("flaky").unwrap();
    assert_eq!(live_counts(&f), [0; 8], "{f:?}");
    assert_eq!(replay_counts(&f), [1, 1, 0, 2, 0]);
    let b = d.stats("broken").unwrap();
    assert_eq!(live_counts(&b), [0; 8], "{b:?}");
    assert_eq!(replay_counts(&b), [1, 0, 0, 2, 1]);
    // The dead letter carries the marked event.
    let letters: Vec<_> = dead.try_iter().collect();
    assert_eq!(letters.len(), 1);
    match &letters[0] {
        Signal::DeadLetter(l) => {
            assert_eq!(&*l.handler, "broken");
            assert_eq!(l.event.replay().map(|m| m.recorded_seq), Some(5));
        }
        other => panic!("expected a dead letter, got {other:?}"),
    }

    // The same failures on a live event count in the live counters.
    bus.publish(live(6)).unwrap();
    for _ in 0..2 {
        assert!(d.wait_idle(TIMEOUT));
        clock.advance(Duration::from_millis(100));
    }
    d.wait_settled(TIMEOUT).unwrap();
    let b = d.stats("broken").unwrap();
    assert_eq!(live_counts(&b), [1, 0, 2, 0, 1, 1, 0, 0]);
    assert_eq!(replay_counts(&b), [1, 0, 0, 2, 1]);
}

#[test]
fn disabled_and_abandoned_replays_count_as_replay_failed() {
    let (bus, _clock, d) = setup();
    d.register(opts("off").disabled(), |_: &Env| Ok(()))
        .unwrap();
    d.register(opts("retrying").retry(no_jitter(3)), |_: &Env| {
        Err(io::Error::other("later").into())
    })
    .unwrap();
    bus.publish(replayed(1, true)).unwrap();
    bus.publish(live(2)).unwrap();
    assert!(d.wait_idle(TIMEOUT));
    let off = d.stats("off").unwrap();
    assert_eq!(live_counts(&off), [1, 0, 0, 0, 0, 0, 1, 0]);
    assert_eq!(replay_counts(&off), [1, 0, 0, 0, 1]);

    // The retrying handler waits on its first (replayed) event; the live
    // one waits behind it in the ring. Shutdown abandons the retry, then
    // drains the ring: the live event fails once and is abandoned too.
    let report = d.shutdown(TIMEOUT);
    assert_eq!(report.abandoned_retries, 2);
    let r = &report_stats(&d)["retrying"];
    assert_eq!(replay_counts(r), [1, 0, 0, 1, 1]);
    assert_eq!(live_counts(r), [1, 0, 1, 0, 0, 0, 0, 1], "{r:?}");
}

/// Stats by name, for handlers that may have ended.
fn report_stats(d: &Dispatcher<Env>) -> std::collections::HashMap<String, HandlerStats> {
    d.handler_stats()
        .into_iter()
        .map(|s| (s.name.clone(), s))
        .collect()
}

/// An event type whose `replay_mark` panics.
#[derive(Debug, Clone)]
struct Grumpy;

impl Event for Grumpy {
    type Kind = Kind;
    fn kind(&self) -> Kind {
        Kind::Order
    }
    fn replay_mark(&self) -> Option<ReplayMark> {
        panic!("no mark for you")
    }
}

#[test]
fn a_panicking_replay_mark_is_contained_and_the_event_counts_as_live() {
    let bus = Bus::<Grumpy>::new();
    let d = Dispatcher::builder(&bus).workers(1).build().unwrap();
    d.register(opts("h").skip_dry_run(true), |_: &Grumpy| Ok(()))
        .unwrap();
    bus.publish(Grumpy).unwrap();
    d.wait_settled(TIMEOUT).unwrap();
    let s = d.stats("h").unwrap();
    assert_eq!((s.received, s.handled, s.replayed), (1, 1, 0));
    assert_eq!(s.contained_panics, 1);
    assert_eq!(d.shutdown(TIMEOUT).contained_panics, 1);
}
