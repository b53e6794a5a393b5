//! Seed acceptance tests: an SLA heartbeat monitor.
//!
//! Services emit heartbeat, latency-sample and SLA-breach events, plus
//! unrelated audit events. A heartbeat subscriber listens to the three SLA
//! kinds only, a stall watchdog watches the heartbeats on an injected
//! clock, and a failing handler must not halt the bus.
//!
//! Waits go through channels and `Dispatcher::wait_idle`, each guarded by a
//! timeout that only turns a hang into a failure; no test sleeps.

use std::{io, sync::mpsc, time::Duration};

use evbus::{
    Bus, Event, EventKind, Filter,
    dispatch::{Dispatcher, HandlerOptions, ManualClock, Priority, RetryPolicy, Signal},
};

const HANG_GUARD: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Heartbeat,
    Latency,
    Breach,
    Audit,
}

impl EventKind for Kind {
    const ALL: &'static [Self] = &[Kind::Heartbeat, Kind::Latency, Kind::Breach, Kind::Audit];

    fn topic(self) -> &'static str {
        match self {
            Kind::Heartbeat => "sla.heartbeat",
            Kind::Latency => "sla.latency",
            Kind::Breach => "sla.breach",
            Kind::Audit => "audit.entry",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Sla {
    Heartbeat { service: &'static str },
    Latency { service: &'static str, micros: u64 },
    Breach { service: &'static str },
    Audit { line: u64 },
}

impl Event for Sla {
    type Kind = Kind;

    fn kind(&self) -> Kind {
        match self {
            Sla::Heartbeat { .. } => Kind::Heartbeat,
            Sla::Latency { .. } => Kind::Latency,
            Sla::Breach { .. } => Kind::Breach,
            Sla::Audit { .. } => Kind::Audit,
        }
    }
}

const SLA_KINDS: [Kind; 3] = [Kind::Heartbeat, Kind::Latency, Kind::Breach];

fn setup() -> (Bus<Sla>, ManualClock, Dispatcher<Sla>) {
    let bus = Bus::new();
    let clock = ManualClock::new();
    let d = Dispatcher::builder(&bus)
        .workers(2)
        .clock(clock.clone())
        .build()
        .unwrap();
    (bus, clock, d)
}

fn traffic(bus: &Bus<Sla>) {
    bus.publish(Sla::Heartbeat { service: "api" }).unwrap();
    bus.publish(Sla::Audit { line: 1 }).unwrap();
    bus.publish(Sla::Latency {
        service: "api",
        micros: 900,
    })
    .unwrap();
    bus.publish(Sla::Audit { line: 2 }).unwrap();
    bus.publish(Sla::Breach { service: "db" }).unwrap();
}

#[test]
fn heartbeat_subscriber_receives_only_its_three_kinds() {
    let (bus, _clock, d) = setup();
    let (tx, rx) = mpsc::channel();
    d.register(
        HandlerOptions::new("heartbeat", Filter::kinds(&SLA_KINDS).unwrap()),
        move |e: &Sla| {
            tx.send(e.kind()).unwrap();
            Ok(())
        },
    )
    .unwrap();
    traffic(&bus);
    assert!(d.wait_idle(HANG_GUARD));
    let got: Vec<Kind> = rx.try_iter().collect();
    assert_eq!(got, SLA_KINDS.to_vec());
    let stats = d.stats("heartbeat").unwrap();
    assert_eq!((stats.received, stats.handled, stats.dropped), (3, 3, 0));
    // The plain core subscription sees the same.
    let mut sub = bus.subscribe_kinds(&SLA_KINDS).unwrap();
    traffic(&bus);
    let kinds: Vec<Kind> = sub.try_iter().map(|e| e.kind()).collect();
    assert_eq!(kinds, SLA_KINDS.to_vec());
}

#[test]
fn stall_is_detected_after_n_seconds_on_a_fake_clock() {
    let (bus, clock, d) = setup();
    let mut alarms = d.signals().subscribe("evbus.watchdog.>").unwrap();
    let n = Duration::from_secs(30);
    d.watch_stall(
        "api-heartbeat",
        Filter::kinds(&[Kind::Heartbeat]).unwrap(),
        n,
    )
    .unwrap();
    for _ in 0..3 {
        bus.publish(Sla::Heartbeat { service: "api" }).unwrap();
        assert!(d.wait_idle(HANG_GUARD));
        clock.advance(Duration::from_secs(20));
    }
    assert_eq!(
        alarms.try_recv().ok().map(|_| ()),
        None,
        "beats every 20 s: no stall"
    );
    // Audit traffic is not a heartbeat.
    bus.publish(Sla::Audit { line: 9 }).unwrap();
    assert!(d.wait_idle(HANG_GUARD));
    clock.advance(Duration::from_secs(9));
    assert!(alarms.try_recv().is_err(), "29 s quiet");
    clock.advance(Duration::from_secs(1));
    match alarms.try_recv() {
        Ok(Signal::Stall(a)) => {
            assert_eq!(&*a.watchdog, "api-heartbeat");
            assert_eq!(a.quiet_for, n);
        }
        other => panic!("expected a stall, got {other:?}"),
    }
    clock.advance(Duration::from_secs(300));
    assert!(alarms.try_recv().is_err(), "raised once per quiet period");
    bus.publish(Sla::Heartbeat { service: "api" }).unwrap();
    assert!(d.wait_idle(HANG_GUARD));
    assert!(matches!(alarms.try_recv(), Ok(Signal::Recovered(_))));
}

#[test]
fn a_failing_handler_does_not_halt_the_bus() {
    let (bus, _clock, d) = setup();
    d.register(
        HandlerOptions::new("breach-pager", Filter::kinds(&SLA_KINDS).unwrap())
            .priority(Priority::High)
            .retry(RetryPolicy::never()),
        |e: &Sla| match e {
            Sla::Breach { .. } => Err(io::Error::other("pager offline").into()),
            Sla::Latency { .. } => panic!("latency parser bug"),
            _ => Ok(()),
        },
    )
    .unwrap();
    let (tx, rx) = mpsc::channel();
    d.register(
        HandlerOptions::new("dashboard", Filter::kinds(&SLA_KINDS).unwrap()),
        move |e: &Sla| {
            tx.send(e.clone()).unwrap();
            Ok(())
        },
    )
    .unwrap();
    let mut raw = bus.subscribe("sla.>").unwrap();
    let mut dead = d.signals().subscribe("evbus.dead_letter").unwrap();
    for _ in 0..3 {
        traffic(&bus);
    }
    assert!(d.wait_idle(HANG_GUARD));
    assert_eq!(rx.try_iter().count(), 9, "the dashboard got everything");
    assert_eq!(raw.try_iter().count(), 9, "a plain subscriber too");
    let pager = d.stats("breach-pager").unwrap();
    assert_eq!((pager.errors, pager.panics, pager.handled), (3, 3, 3));
    assert_eq!(dead.try_iter().count(), 6);
    // The bus is still open and delivering.
    bus.publish(Sla::Heartbeat { service: "db" }).unwrap();
    assert_eq!(
        raw.recv_timeout(HANG_GUARD).unwrap(),
        Sla::Heartbeat { service: "db" }
    );
}
