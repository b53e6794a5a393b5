//! Handler rows from a real `evbus-dispatch` dispatcher.

mod common;

use std::time::Duration;

use common::Order;
use evbus_core::Bus;
use evbus_dispatch::{Dispatcher, HandlerOptions, Priority, RetryPolicy};
use evbus_metrics::Snapshot;
use prom_text_format_parser::Scrape;

/// Only a bound for a broken build: the handlers finish long before.
const IDLE: Duration = Duration::from_secs(30);

#[test]
fn handler_stats_reach_the_snapshot_and_the_text() {
    let bus = Bus::<Order>::new();
    let dispatcher = Dispatcher::builder(&bus).workers(2).build().unwrap();
    dispatcher
        .register(
            HandlerOptions::pattern("shipping", "orders.>")
                .unwrap()
                .priority(Priority::High),
            |_: &Order| Ok(()),
        )
        .unwrap();
    dispatcher
        .register(
            HandlerOptions::pattern("flaky \"audit\"", "orders.placed")
                .unwrap()
                .priority(Priority::Low)
                .retry(RetryPolicy::never()),
            |o: &Order| match o {
                Order::Placed(n) if n % 2 == 1 => Err(format!("odd order {n}").into()),
                _ => Ok(()),
            },
        )
        .unwrap();
    for i in 0..10 {
        bus.publish(Order::Placed(i)).unwrap();
    }
    bus.publish(Order::Shipped(1)).unwrap();
    assert!(dispatcher.wait_idle(IDLE), "handlers did not go idle");

    let snap = Snapshot::capture(&bus).with_handlers(dispatcher.handler_stats());
    let shipping = snap.handler("shipping").expect("shipping row");
    assert_eq!(shipping.priority, Priority::High);
    assert_eq!((shipping.received, shipping.handled), (11, 11));
    let flaky = snap.handler("flaky \"audit\"").expect("flaky row");
    assert_eq!(flaky.priority, Priority::Low);
    assert_eq!((flaky.received, flaky.handled, flaky.errors), (10, 5, 5));
    assert_eq!(flaky.dead_lettered, 5);

    let text = snap.to_prometheus_text();
    let scrape = Scrape::parse(&text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    let errors = scrape
        .metrics
        .iter()
        .find(|m| m.name == "evbus_handler_errors_total")
        .expect("errors family");
    let flaky_errors = errors
        .samples
        .iter()
        .find(|s| {
            s.labels
                .iter()
                .any(|l| l.key == "handler" && l.value == r#"flaky \"audit\""#)
        })
        .expect("flaky sample");
    assert_eq!(flaky_errors.value.value.as_f64(), 5.0);
    dispatcher.shutdown(IDLE);
}

#[test]
fn replayed_events_have_their_own_counters_in_the_text() {
    use evbus_core::{Envelope, ReplayMark};

    let bus = Bus::<Envelope<Order>>::new();
    let dispatcher = Dispatcher::builder(&bus).workers(1).build().unwrap();
    dispatcher
        .register(
            HandlerOptions::pattern("mailer", "orders.>")
                .unwrap()
                .skip_dry_run(true),
            |_: &Envelope<Order>| Ok(()),
        )
        .unwrap();
    let live: Vec<_> = (0..3).map(|i| Envelope::new(Order::Placed(i))).collect();
    for e in &live {
        bus.publish(e.clone()).unwrap();
    }
    // A dry run of all three, a real replay of the first.
    for (seq, e) in (0..).zip(&live) {
        let mark = ReplayMark {
            dry_run: true,
            recorded_seq: seq,
        };
        bus.publish(e.clone().with_replay_mark(Some(mark))).unwrap();
    }
    let mark = ReplayMark {
        dry_run: false,
        recorded_seq: 0,
    };
    bus.publish(live[0].clone().with_replay_mark(Some(mark)))
        .unwrap();
    dispatcher.wait_settled(IDLE).unwrap();

    let snap = Snapshot::capture(&bus).with_handlers(dispatcher.handler_stats());
    let text = snap.to_prometheus_text();
    let scrape = Scrape::parse(&text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    let value = |name: &str| {
        scrape
            .metrics
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
            .samples[0]
            .value
            .value
            .as_f64()
    };
    // The live counters count each event once.
    assert_eq!(value("evbus_handler_received_total"), 3.0);
    assert_eq!(value("evbus_handler_handled_total"), 3.0);
    assert_eq!(value("evbus_handler_replayed_total"), 4.0);
    assert_eq!(value("evbus_handler_replay_handled_total"), 1.0);
    assert_eq!(value("evbus_handler_skipped_dry_run_total"), 3.0);
    assert_eq!(value("evbus_handler_replay_errors_total"), 0.0);
    assert_eq!(value("evbus_handler_replay_failed_total"), 0.0);
    dispatcher.shutdown(IDLE);
}
