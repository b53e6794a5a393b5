//! Replay: order, marks, filters, pacing on a fake clock, reports, closed
//! targets, sessions as a source, and dry runs through a dispatcher.
#![cfg(not(miri))] // Wall-clock ids and threads; nothing here is unsafe.

mod common;

use std::{
    cell::{Cell, RefCell},
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use evbus::{
    Bus, Envelope, Event, ReplayMark, Timestamp,
    dispatch::{Dispatcher, HandlerOptions, RetryPolicy},
};
use evbus_journal::{
    Pace, Replay, ReplayClock, ReplayEnd, ReplayError, ReplayTarget, SessionReader, SessionWriter,
};
use serde::{Deserialize, Serialize};

use common::Kind;

/// Only a bound for a broken build: handlers finish long before.
const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Order {
    Placed(u64),
    Shipped(u64),
}

impl Event for Order {
    type Kind = Kind;
    fn kind(&self) -> Kind {
        match self {
            Order::Placed(_) => Kind::Placed,
            Order::Shipped(_) => Kind::Shipped,
        }
    }
}

type Record = Result<(u64, Envelope<Order>), Infallible>;

/// Envelopes recorded at these times (ms), as `Placed(i)` for even `i` and
/// `Shipped(i)` for odd, with seqs from 100.
fn recorded(times_ms: &[u64]) -> Vec<Envelope<Order>> {
    times_ms
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let i = i as u64;
            let payload = if i & 1 == 0 {
                Order::Placed(i)
            } else {
                Order::Shipped(i)
            };
            Envelope::new(payload).with_time(Timestamp::from_nanos(t * 1_000_000))
        })
        .collect()
}

fn source(envelopes: &[Envelope<Order>]) -> Vec<Record> {
    (100..).zip(envelopes.iter().cloned()).map(Ok).collect()
}

/// A clock that records the sleeps asked of it and advances by them.
#[derive(Debug, Default)]
struct FakeClock {
    now: Cell<Duration>,
    sleeps: RefCell<Vec<Duration>>,
}

impl ReplayClock for FakeClock {
    fn now(&self) -> Duration {
        self.now.get()
    }

    fn sleep(&self, duration: Duration) {
        self.sleeps.borrow_mut().push(duration);
        self.now.set(self.now.get() + duration);
    }
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn drain(sub: &mut evbus::Subscription<Envelope<Order>>) -> Vec<Envelope<Order>> {
    sub.try_iter().collect()
}

#[test]
fn replays_in_recorded_order_with_marks() {
    let envelopes = recorded(&[0, 1, 2, 3, 4]);
    let bus = Bus::<Envelope<Order>>::new();
    let mut sub = bus.subscribe(">").unwrap();
    let report = Replay::new(source(&envelopes)).run(&bus).unwrap();
    assert_eq!(
        (report.read, report.published, report.skipped, report.failed),
        (5, 5, 0, 0)
    );
    assert_eq!((report.first_seq, report.last_seq), (Some(100), Some(104)));
    assert_eq!(report.end, ReplayEnd::Exhausted);
    assert!(!report.dry_run);
    let got = drain(&mut sub);
    assert_eq!(got.len(), 5);
    for (i, (e, original)) in got.iter().zip(&envelopes).enumerate() {
        // Same identity, time and payload; a real replay is marked too.
        assert_eq!(e.id(), original.id());
        assert_eq!(e.time(), original.time());
        assert_eq!(e.payload(), original.payload());
        assert_eq!(
            e.replay(),
            Some(ReplayMark {
                dry_run: false,
                recorded_seq: 100 + i as u64
            })
        );
        assert_eq!(Event::replay_mark(e), e.replay());
    }
}

#[test]
fn envelopes_go_out_on_their_recorded_topic() {
    let custom = Envelope::on("audit.custom", Order::Placed(1)).unwrap();
    let bus = Bus::<Envelope<Order>>::new();
    let mut audit = bus.subscribe("audit.>").unwrap();
    let mut orders = bus.subscribe("orders.>").unwrap();
    let report = Replay::new(vec![Ok::<_, Infallible>((0, custom.clone()))])
        .dry_run(true)
        .run(&bus)
        .unwrap();
    assert_eq!(report.published, 1);
    assert!(report.dry_run);
    assert_eq!(audit.try_recv().unwrap().id(), custom.id());
    assert!(orders.try_recv().is_err());
}

#[test]
fn filters_count_what_they_keep_out() {
    let mut envelopes = recorded(&[0, 10, 20, 30, 40, 50]);
    // Two of them belong to one request.
    let root = envelopes[2].clone();
    envelopes[3] = root
        .caused(Order::Shipped(3))
        .with_time(Timestamp::from_nanos(30_000_000));
    let request = root.correlation_id();

    let bus = Bus::<Envelope<Order>>::new();
    let mut sub = bus.subscribe(">").unwrap();
    let report = Replay::new(source(&envelopes))
        .pattern("orders.placed")
        .unwrap()
        .run(&bus)
        .unwrap();
    assert_eq!((report.published, report.skipped), (3, 3));
    assert_eq!(report.filtered_by.pattern, 3);
    assert!(drain(&mut sub).iter().all(|e| e.topic() == "orders.placed"));

    // Time: [10 ms, 40 ms) keeps 10, 20, 30.
    let report = Replay::new(source(&envelopes))
        .between(
            Timestamp::from_nanos(10_000_000),
            Timestamp::from_nanos(40_000_000),
        )
        .run(&bus)
        .unwrap();
    assert_eq!((report.published, report.filtered_by.time), (3, 3));
    let seqs: Vec<u64> = drain(&mut sub)
        .iter()
        .map(|e| e.replay().unwrap().recorded_seq)
        .collect();
    assert_eq!(seqs, [101, 102, 103]);

    // Correlation.
    let report = Replay::new(source(&envelopes))
        .correlation_id(request)
        .run(&bus)
        .unwrap();
    assert_eq!((report.published, report.filtered_by.correlation), (2, 4));
    let got = drain(&mut sub);
    assert_eq!(got[0].id(), root.id());
    assert_eq!(got[1].causation_id(), Some(root.id()));

    // All three: a pattern matched by both, a range that drops the root.
    let report = Replay::new(source(&envelopes))
        .pattern("orders.*")
        .unwrap()
        .from_time(Timestamp::from_nanos(25_000_000))
        .correlation_id(request)
        .run(&bus)
        .unwrap();
    assert_eq!(report.published, 1);
    assert_eq!(
        (
            report.filtered_by.pattern,
            report.filtered_by.time,
            report.filtered_by.correlation
        ),
        (0, 3, 2)
    );
    assert_eq!(report.skipped, 5);
    assert_eq!(drain(&mut sub)[0].payload(), &Order::Shipped(3));

    // Several patterns: any one passes.
    let report = Replay::new(source(&envelopes))
        .pattern("nothing.here")
        .unwrap()
        .pattern("orders.shipped")
        .unwrap()
        .run(&bus)
        .unwrap();
    assert_eq!(report.published, 3);
    drain(&mut sub);
}

#[test]
fn bad_configuration_is_a_typed_error() {
    let envelopes = recorded(&[0]);
    assert!(
        Replay::new(source(&envelopes))
            .pattern("orders..x")
            .is_err()
    );
    let bus = Bus::<Envelope<Order>>::new();
    for factor in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let err = Replay::new(source(&envelopes))
            .pace(Pace::Scaled(factor))
            .run(&bus)
            .unwrap_err();
        assert!(matches!(err, ReplayError::InvalidPace { .. }), "{err:?}");
    }
    let err = Replay::new(source(&envelopes))
        .between(Timestamp::from_nanos(5), Timestamp::from_nanos(4))
        .run(&bus)
        .unwrap_err();
    assert!(matches!(err, ReplayError::InvalidTimeRange { .. }));
    assert!(err.to_string().contains("time range"));
}

/// The sleeps a replay of events at `times_ms` asks for at `pace`.
fn schedule(times_ms: &[u64], pace: Pace) -> Vec<Duration> {
    let bus = Bus::<Envelope<Order>>::new();
    let clock = FakeClock::default();
    let report = Replay::new(source(&recorded(times_ms)))
        .pace(pace)
        .wait_slice(Duration::MAX)
        .clock(&clock)
        .run(&bus)
        .unwrap();
    assert_eq!(report.published, times_ms.len() as u64);
    clock.sleeps.into_inner()
}

#[test]
fn pacing_keeps_the_recorded_spacing_scaled() {
    let times = [1000, 1010, 1030, 1030, 1100];
    assert!(schedule(&times, Pace::Max).is_empty());
    assert_eq!(schedule(&times, Pace::AsRecorded), [ms(10), ms(20), ms(70)]);
    assert_eq!(schedule(&times, Pace::Scaled(2.0)), [ms(5), ms(10), ms(35)]);
    assert_eq!(
        schedule(&times, Pace::Scaled(0.5)),
        [ms(20), ms(40), ms(140)]
    );
    // Recorded out of order: the late one goes out at once.
    assert_eq!(
        schedule(&[0, 50, 20, 60], Pace::AsRecorded),
        [ms(50), ms(10)]
    );
}

#[test]
fn pacing_is_anchored_to_the_start_and_skips_filtered_gaps() {
    // A clock that overshoots each sleep by 3 ms: the next wait is shorter,
    // so the schedule does not drift.
    struct Late(FakeClock);
    impl ReplayClock for Late {
        fn now(&self) -> Duration {
            self.0.now()
        }
        fn sleep(&self, d: Duration) {
            self.0.sleep(d);
            self.0.now.set(self.0.now.get() + ms(3));
        }
    }
    let bus = Bus::<Envelope<Order>>::new();
    let clock = Late(FakeClock::default());
    Replay::new(source(&recorded(&[0, 10, 20, 30])))
        .pace(Pace::AsRecorded)
        .clock(&clock)
        .run(&bus)
        .unwrap();
    assert_eq!(*clock.0.sleeps.borrow(), [ms(10), ms(7), ms(7)]);

    // Filtered envelopes take no time: only the gaps between published
    // ones (all `Placed`, at 0, 20, 40 ms) are waited.
    let clock = FakeClock::default();
    let report = Replay::new(source(&recorded(&[0, 5, 20, 33, 40])))
        .pattern("orders.placed")
        .unwrap()
        .pace(Pace::AsRecorded)
        .clock(&clock)
        .run(&bus)
        .unwrap();
    assert_eq!(report.published, 3);
    assert_eq!(*clock.sleeps.borrow(), [ms(20), ms(20)]);
}

#[test]
fn long_waits_are_sliced() {
    let bus = Bus::<Envelope<Order>>::new();
    let clock = FakeClock::default();
    Replay::new(source(&recorded(&[0, 250])))
        .pace(Pace::AsRecorded)
        .wait_slice(ms(100))
        .clock(&clock)
        .run(&bus)
        .unwrap();
    assert_eq!(*clock.sleeps.borrow(), [ms(100), ms(100), ms(50)]);
}

#[test]
fn a_shut_down_bus_stops_the_replay() {
    let envelopes = recorded(&[0, 1, 2]);
    let bus = Bus::<Envelope<Order>>::new();
    bus.shutdown();
    let report = Replay::new(source(&envelopes)).run(&bus).unwrap();
    assert_eq!(report.end, ReplayEnd::TargetClosed);
    assert_eq!((report.read, report.published, report.failed), (1, 0, 1));
}

#[test]
fn a_shutdown_during_a_wait_stops_the_replay() {
    // The bus shuts down while the replay sleeps before its third event.
    struct ShutsDown<'a> {
        clock: FakeClock,
        bus: &'a Bus<Envelope<Order>>,
    }
    impl ReplayClock for ShutsDown<'_> {
        fn now(&self) -> Duration {
            self.clock.now()
        }
        fn sleep(&self, d: Duration) {
            if self.clock.sleeps.borrow().len() == 1 {
                self.bus.shutdown();
            }
            self.clock.sleep(d);
        }
    }
    let bus = Bus::<Envelope<Order>>::new();
    let mut sub = bus.subscribe(">").unwrap();
    let clock = ShutsDown {
        clock: FakeClock::default(),
        bus: &bus,
    };
    let report = Replay::new(source(&recorded(&[0, 100, 1000, 1100])))
        .pace(Pace::AsRecorded)
        .wait_slice(ms(100))
        .clock(&clock)
        .run(&bus)
        .unwrap();
    assert_eq!(report.end, ReplayEnd::TargetClosed);
    assert_eq!((report.read, report.published, report.failed), (3, 2, 1));
    // It stopped at the first slice after the shutdown, not after 900 ms.
    assert_eq!(*clock.clock.sleeps.borrow(), [ms(100), ms(100)]);
    assert_eq!(drain(&mut sub).len(), 2);
}

#[test]
fn no_subscribers_and_full_rings_are_reported() {
    let bus = Bus::<Envelope<Order>>::new();
    let _sub = bus
        .subscribe_with(
            evbus::Filter::pattern("orders.placed").unwrap(),
            evbus::SubscribeOptions::new().capacity(1),
        )
        .unwrap();
    let report = Replay::new(source(&recorded(&[0, 1, 2, 3])))
        .run(&bus)
        .unwrap();
    // Placed 0 and 2 match (the second is dropped: capacity 1); Shipped 1
    // and 3 match nothing.
    assert_eq!(report.published, 4);
    assert_eq!(report.no_subscribers, 2);
    assert_eq!(report.dropped, 1);
}

#[test]
fn source_errors_stop_or_are_counted() {
    let envelopes = recorded(&[0, 1, 2]);
    let items = || -> Vec<Result<(u64, Envelope<Order>), &'static str>> {
        vec![
            Ok((0, envelopes[0].clone())),
            Err("torn record"),
            Ok((2, envelopes[2].clone())),
        ]
    };
    let bus = Bus::<Envelope<Order>>::new();
    let err = Replay::new(items()).run(&bus).unwrap_err();
    match err {
        ReplayError::Source { error, report } => {
            assert_eq!(error, "torn record");
            assert_eq!((report.read, report.published), (2, 1));
        }
        other => panic!("{other:?}"),
    }
    let report = Replay::new(items())
        .skip_source_errors(true)
        .run(&bus)
        .unwrap();
    assert_eq!(
        (report.read, report.published, report.source_errors),
        (3, 2, 1)
    );
}

#[test]
fn a_publisher_is_a_target_too() {
    let bus = Bus::<Envelope<Order>>::new();
    let mut sub = bus.subscribe(">").unwrap();
    let mut publisher = bus.publisher();
    let report = Replay::new(source(&recorded(&[0, 1])))
        .run(&mut publisher)
        .unwrap();
    assert_eq!(report.published, 2);
    assert!(!ReplayTarget::<Order>::is_closed(&publisher));
    assert_eq!(drain(&mut sub).len(), 2);
}

#[test]
fn a_session_file_replays_with_its_line_positions() {
    let envelopes = recorded(&[0, 10, 20]);
    let mut writer = SessionWriter::new(Vec::new());
    writer.write_all(&envelopes).unwrap();
    let (bytes, _) = writer.finish().unwrap();
    let bus = Bus::<Envelope<Order>>::new();
    let mut sub = bus.subscribe(">").unwrap();
    let clock = FakeClock::default();
    let reader = SessionReader::<_, Order>::new(&bytes[..]).unwrap();
    let report = Replay::new(reader)
        .pace(Pace::Scaled(10.0))
        .dry_run(true)
        .clock(&clock)
        .run(&bus)
        .unwrap();
    assert_eq!(report.published, 3);
    assert_eq!(*clock.sleeps.borrow(), [ms(1), ms(1)]);
    let marks: Vec<ReplayMark> = drain(&mut sub)
        .iter()
        .map(|e| e.replay().unwrap())
        .collect();
    assert_eq!(
        marks,
        (0..3)
            .map(|seq| ReplayMark {
                dry_run: true,
                recorded_seq: seq
            })
            .collect::<Vec<_>>()
    );
    // A bad line stops the replay with the line's error.
    let text = String::from_utf8(bytes).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let broken = lines[2].replace("\"orders.shipped\"", "1");
    lines[2] = &broken;
    let text = lines.join("\n");
    let reader = SessionReader::<_, Order>::new(text.as_bytes()).unwrap();
    let err = Replay::new(reader).run(&bus).unwrap_err();
    match err {
        ReplayError::Source { error, report } => {
            assert_eq!(error.line(), Some(3));
            assert_eq!(report.published, 1);
        }
        other => panic!("{other:?}"),
    }
}

/// What a handler saw: the payload and its replay mark.
type Seen = Arc<Mutex<Vec<(Order, Option<ReplayMark>)>>>;

#[test]
fn a_dispatcher_sees_the_marks_skips_dry_runs_and_counts_replays_apart() {
    let bus = Bus::<Envelope<Order>>::new();
    let dispatcher = Dispatcher::builder(&bus).workers(1).build().unwrap();
    let audit: Seen = Arc::default();
    let mailer: Seen = Arc::default();
    for (name, seen, skip) in [("audit", &audit, false), ("mailer", &mailer, true)] {
        let seen = Arc::clone(seen);
        dispatcher
            .register(
                HandlerOptions::pattern(name, "orders.>")
                    .unwrap()
                    .skip_dry_run(skip),
                move |e: &Envelope<Order>| {
                    seen.lock()
                        .unwrap()
                        .push((e.payload().clone(), e.replay_mark()));
                    Ok(())
                },
            )
            .unwrap();
    }
    dispatcher
        .register(
            HandlerOptions::pattern("flaky", "orders.placed")
                .unwrap()
                .retry(RetryPolicy::never()),
            |e: &Envelope<Order>| match e.replay_mark() {
                Some(_) => Err("fails on replay".into()),
                None => Ok(()),
            },
        )
        .unwrap();

    // Live traffic: two events.
    let live = recorded(&[0, 1]);
    for e in &live {
        bus.publish(e.clone()).unwrap();
    }
    dispatcher.wait_settled(TIMEOUT).unwrap();

    // A dry run of the same two, then a real replay of them.
    let dry = Replay::new(source(&live)).dry_run(true).run(&bus).unwrap();
    assert_eq!(dry.published, 2);
    dispatcher.wait_settled(TIMEOUT).unwrap();
    let real = Replay::new(source(&live)).run(&bus).unwrap();
    assert_eq!(real.published, 2);
    dispatcher.wait_settled(TIMEOUT).unwrap();

    let mark = |dry_run, recorded_seq| {
        Some(ReplayMark {
            dry_run,
            recorded_seq,
        })
    };
    assert_eq!(
        *audit.lock().unwrap(),
        [
            (Order::Placed(0), None),
            (Order::Shipped(1), None),
            (Order::Placed(0), mark(true, 100)),
            (Order::Shipped(1), mark(true, 101)),
            (Order::Placed(0), mark(false, 100)),
            (Order::Shipped(1), mark(false, 101)),
        ]
    );
    // The mailer was not called for the dry run.
    assert_eq!(
        *mailer.lock().unwrap(),
        [
            (Order::Placed(0), None),
            (Order::Shipped(1), None),
            (Order::Placed(0), mark(false, 100)),
            (Order::Shipped(1), mark(false, 101)),
        ]
    );

    // Live counters count the live events once; replays count apart.
    let a = dispatcher.stats("audit").unwrap();
    assert_eq!((a.received, a.handled), (2, 2), "{a:?}");
    assert_eq!((a.replayed, a.replay_handled, a.skipped_dry_run), (4, 4, 0));
    let m = dispatcher.stats("mailer").unwrap();
    assert_eq!((m.received, m.handled), (2, 2), "{m:?}");
    assert_eq!((m.replayed, m.replay_handled, m.skipped_dry_run), (4, 2, 2));
    let f = dispatcher.stats("flaky").unwrap();
    assert_eq!(
        (f.received, f.handled, f.errors, f.dead_lettered),
        (1, 1, 0, 0),
        "{f:?}"
    );
    assert_eq!(
        (
            f.replayed,
            f.replay_handled,
            f.replay_errors,
            f.replay_failed
        ),
        (2, 0, 2, 2)
    );
    let report = dispatcher.shutdown(TIMEOUT);
    assert!(report.drained);
}
