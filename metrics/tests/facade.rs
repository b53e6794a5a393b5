//! Feature `metrics`: snapshots mirrored into the `metrics` facade, checked
//! with `metrics-util`'s debugging recorder.
#![cfg(feature = "metrics-facade")]

mod common;

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use common::{NASTY, busy_bus, handler_stats};
use evbus_metrics::{MetricsMirror, Snapshot};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_util::{
    CompositeKey, MetricKind,
    debugging::{DebugValue, DebuggingRecorder, Snapshotter},
};

/// The debugging recorder, counting how often each kind of series is
/// registered.
struct Counting {
    inner: DebuggingRecorder,
    registrations: Arc<AtomicUsize>,
}

impl Recorder for Counting {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_counter(key, unit, description);
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_gauge(key, unit, description);
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_histogram(key, unit, description);
    }
    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        self.registrations.fetch_add(1, Ordering::Relaxed);
        self.inner.register_counter(key, metadata)
    }
    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        self.registrations.fetch_add(1, Ordering::Relaxed);
        self.inner.register_gauge(key, metadata)
    }
    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        self.registrations.fetch_add(1, Ordering::Relaxed);
        self.inner.register_histogram(key, metadata)
    }
}

fn recorder() -> (Counting, Snapshotter, Arc<AtomicUsize>) {
    let inner = DebuggingRecorder::new();
    let snapshotter = inner.snapshotter();
    let registrations = Arc::new(AtomicUsize::new(0));
    (
        Counting {
            inner,
            registrations: Arc::clone(&registrations),
        },
        snapshotter,
        registrations,
    )
}

type Row = (
    MetricKind,
    String,
    Vec<(String, String)>,
    DebugValue,
    Option<SharedString>,
);

fn rows(snapshotter: &Snapshotter) -> Vec<Row> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(ck, _unit, help, value): (CompositeKey, _, _, _)| {
            let (kind, key) = ck.into_parts();
            let labels = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            (kind, key.name().to_owned(), labels, value, help)
        })
        .collect()
}

fn find<'a>(rows: &'a [Row], name: &str, labels: &[(&str, &str)]) -> &'a Row {
    let hits: Vec<&Row> = rows
        .iter()
        .filter(|r| {
            r.1 == name
                && labels
                    .iter()
                    .all(|(k, v)| r.2.iter().any(|(rk, rv)| rk == k && rv == v))
        })
        .collect();
    assert_eq!(hits.len(), 1, "{name} {labels:?}");
    hits[0]
}

#[test]
fn counters_are_absolute_and_gauges_set() {
    let (rec, snapshotter, _) = recorder();
    let (bus, mut subs) = busy_bus();
    let mut mirror = MetricsMirror::new();
    metrics::with_local_recorder(&rec, || {
        mirror.record(&Snapshot::capture(&bus).with_handlers(handler_stats()));
    });
    let r = rows(&snapshotter);
    let published = find(&r, "evbus_events_published_total", &[]);
    assert_eq!(published.0, MetricKind::Counter);
    assert_eq!(published.3, DebugValue::Counter(15));
    assert_eq!(
        published.4.as_deref(),
        Some("Publishes attempted on the open bus.")
    );
    let queued = find(&r, "evbus_subscription_queued", &[("subscription", "all")]);
    assert_eq!(queued.0, MetricKind::Gauge);
    assert_eq!(queued.3, DebugValue::Gauge(11.0.into()));
    let lagged = find(
        &r,
        "evbus_subscription_lagged_total",
        &[("subscription", NASTY)],
    );
    assert_eq!(lagged.3, DebugValue::Counter(6));
    let panics = find(&r, "evbus_handler_panics_total", &[("handler", "mailer")]);
    assert_eq!(panics.3, DebugValue::Counter(1));

    // More traffic; the next record moves the same series. It runs outside
    // the recorder scope: the cached handles are all it needs.
    for _ in 0..11 {
        subs[0].try_recv().unwrap();
    }
    bus.publish(common::Order::Placed(99)).unwrap();
    mirror.record(&Snapshot::capture(&bus));
    let r = rows(&snapshotter);
    assert_eq!(
        find(&r, "evbus_events_published_total", &[]).3,
        DebugValue::Counter(16)
    );
    assert_eq!(
        find(&r, "evbus_subscription_queued", &[("subscription", "all")]).3,
        DebugValue::Gauge(1.0.into())
    );
    assert_eq!(
        find(
            &r,
            "evbus_subscription_received_total",
            &[("subscription", "all")]
        )
        .3,
        DebugValue::Counter(15)
    );
}

#[test]
fn each_series_is_registered_once() {
    let (rec, _snapshotter, registrations) = recorder();
    let (bus, _subs) = busy_bus();
    let mut mirror = MetricsMirror::new();
    metrics::with_local_recorder(&rec, || {
        mirror.record(&Snapshot::capture(&bus).with_handlers(handler_stats()));
        let first = registrations.load(Ordering::Relaxed);
        assert_eq!(first, mirror.registered());
        assert!(first > 30, "{first}");
        for i in 0..5 {
            bus.publish(common::Order::Shipped(i)).unwrap();
            mirror.record(&Snapshot::capture(&bus).with_handlers(handler_stats()));
        }
        assert_eq!(registrations.load(Ordering::Relaxed), first);
        // A new subscription adds its own series, once.
        let _late = bus.subscribe("orders.*").unwrap();
        mirror.record(&Snapshot::capture(&bus));
        let after = registrations.load(Ordering::Relaxed);
        assert!(after > first);
        mirror.record(&Snapshot::capture(&bus));
        assert_eq!(registrations.load(Ordering::Relaxed), after);
    });
}
