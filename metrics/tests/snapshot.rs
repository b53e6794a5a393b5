//! `Snapshot`: contents and the JSON round trip.

mod common;

use common::{NASTY, busy_bus, handler_stats};
use evbus_metrics::{LatencySummary, Policy, Snapshot};

#[test]
fn covers_bus_subscriptions_and_handlers() {
    let (bus, _subs) = busy_bus();
    let handlers = handler_stats();
    let snap = Snapshot::capture(&bus).with_handlers(&handlers);

    assert_eq!(snap.bus.published, 15);
    assert_eq!(snap.bus.no_subscribers, 0);
    assert_eq!(snap.bus.subscriptions, 3);
    assert_eq!(snap.bus.topics, 2);
    assert!(!snap.bus.shut_down);

    let all = &snap.subscriptions[0];
    assert_eq!(all.name.as_deref(), Some("all"));
    assert_eq!(all.filter, ["orders.>"]);
    assert_eq!(all.overflow, Policy::DropNewest);
    assert_eq!(
        (all.capacity, all.queued, all.delivered, all.received),
        (64, 11, 15, 4)
    );
    assert_eq!((all.dropped, all.lagged), (0, 0));
    assert!(all.high_water >= 11);

    let lagging = &snap.subscriptions[1];
    assert_eq!(lagging.label(), NASTY);
    assert_eq!(lagging.overflow, Policy::DropOldest);
    assert_eq!((lagging.queued, lagging.high_water), (4, 4));
    assert_eq!((lagging.dropped, lagging.lagged), (6, 6));

    let small = &snap.subscriptions[2];
    assert_eq!(small.name, None);
    assert_eq!(small.label(), "orders.shipped");
    assert_eq!((small.capacity, small.queued), (2, 2));
    assert_eq!((small.dropped, small.lagged), (3, 0));

    // Totals agree with the rows.
    let rows = |f: fn(&evbus_metrics::SubscriptionSnapshot) -> u64| {
        snap.subscriptions.iter().map(f).sum::<u64>()
    };
    assert_eq!(snap.bus.delivered, rows(|s| s.delivered));
    assert_eq!(snap.bus.dropped, rows(|s| s.dropped));
    assert_eq!(snap.bus.queued, rows(|s| s.queued));

    assert_eq!(snap.handlers.len(), 2);
    let mailer = snap.handler("mailer").expect("mailer row");
    assert_eq!(mailer.priority, evbus_dispatch::Priority::High);
    assert_eq!(
        (
            mailer.received,
            mailer.handled,
            mailer.errors,
            mailer.panics
        ),
        (7, 5, 2, 1)
    );
    assert_eq!(
        (
            mailer.retries,
            mailer.dead_lettered,
            mailer.queued,
            mailer.capacity
        ),
        (3, 1, 2, 128)
    );
    assert_eq!(snap.handler("bill\"ing").map(|h| h.skipped), Some(4));
    assert!(snap.subscription(all.id).is_some());
}

#[test]
fn with_handlers_takes_owned_stats_too() {
    let bus = common::busy_bus().0;
    let snap = Snapshot::capture(&bus).with_handlers(handler_stats());
    assert_eq!(snap.handlers[1].name, "bill\"ing");
}

#[test]
fn json_round_trip() {
    let (bus, subs) = busy_bus();
    subs[2].unsubscribe();
    let mut snap = Snapshot::capture(&bus).with_handlers(handler_stats());
    let mut latency = LatencySummary::default();
    latency.samples = 3;
    latency.p50_ns = 1_200;
    latency.p999_ns = 90_000;
    latency.max_ns = 91_000;
    snap.subscriptions[0].latency = Some(latency);
    let mut blocking = snap.subscriptions[1].clone();
    blocking.overflow = Policy::Block { timeout_ns: 5_000 };
    snap.subscriptions.push(blocking);

    let json = serde_json::to_string_pretty(&snap).unwrap();
    let back: Snapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(back, snap);
    // The policy is readable as written.
    assert!(json.contains("\"drop_oldest\""), "{json}");
    assert!(json.contains("\"block\""), "{json}");
}

#[test]
fn shut_down_bus_still_reports_totals() {
    let (bus, subs) = busy_bus();
    bus.shutdown();
    drop(subs);
    let snap = Snapshot::capture(&bus);
    assert!(snap.bus.shut_down);
    assert_eq!(snap.bus.published, 15);
    assert_eq!(snap.bus.dropped, 9);
}

/// A row carries the core's `SubscriptionStats` under the same field names:
/// `filter`, `overflow`, `queued` and the counters.
#[test]
fn rows_use_the_core_stats_names() {
    let (bus, subs) = busy_bus();
    let snap = Snapshot::capture(&bus);
    for (row, sub) in snap.subscriptions.iter().zip(&subs) {
        let stats = sub.stats();
        assert_eq!(row.id, stats.id);
        assert_eq!(row.filter, stats.filter);
        assert_eq!(row.overflow, Policy::from(stats.overflow));
        assert_eq!(row.queued, stats.queued as u64);
        assert_eq!(row.capacity, stats.capacity as u64);
        assert_eq!(
            (row.delivered, row.received, row.dropped),
            (stats.delivered, stats.received, stats.dropped)
        );
    }
    let json = serde_json::to_value(&snap.subscriptions[1]).unwrap();
    for key in ["filter", "overflow", "queued"] {
        assert!(json.get(key).is_some(), "no {key:?} in {json}");
    }
}
