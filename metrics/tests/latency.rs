//! Feature `latency`: per-thread histograms merged into the snapshot.
//! Counts and orderings only; no assertion looks at a measured duration.
#![cfg(feature = "latency")]

mod common;

use std::{num::NonZeroU32, sync::mpsc, thread};

use common::Order;
use evbus_core::Bus;
use evbus_metrics::{LatencyHistograms, Snapshot};

fn every(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

#[test]
fn merged_across_receiving_threads() {
    let bus = Bus::<Order>::new();
    let latency = LatencyHistograms::new();
    latency.install(&bus, every(4));
    let placed = bus.subscribe("orders.placed").unwrap();
    let all = bus.subscribe("orders.>").unwrap();
    let (placed_id, all_id) = (placed.id(), all.id());

    // Each subscription is received on its own thread; `all` moves to a
    // second thread halfway, so its samples live in two shards.
    let (to_second, from_first) = mpsc::channel();
    let first = thread::spawn(move || {
        let mut all = all;
        for _ in 0..200 {
            all.recv().unwrap();
        }
        to_second.send(all).unwrap();
    });
    let second = thread::spawn(move || {
        let mut all = from_first.recv().unwrap();
        for _ in 0..200 {
            all.recv().unwrap();
        }
        // Kept registered, so the snapshot below still lists it.
        all
    });
    let placed_thread = thread::spawn(move || {
        let mut placed = placed;
        for _ in 0..200 {
            placed.recv().unwrap();
        }
        placed
    });
    let mut publisher = bus.publisher();
    for i in 0..200 {
        publisher.publish(Order::Placed(i)).unwrap();
        publisher.publish(Order::Shipped(i)).unwrap();
    }
    first.join().unwrap();
    let _all = second.join().unwrap();
    let _placed = placed_thread.join().unwrap();

    let snap = Snapshot::capture(&bus).with_latency(&latency);
    let placed = snap
        .subscription(placed_id)
        .unwrap()
        .latency
        .expect("sampled");
    let all = snap.subscription(all_id).unwrap().latency.expect("sampled");
    // 1 in 4 of 200 and of 400 events.
    assert_eq!(placed.samples, 50);
    assert_eq!(all.samples, 100);
    for l in [placed, all] {
        assert!(l.p50_ns <= l.p95_ns);
        assert!(l.p95_ns <= l.p99_ns);
        assert!(l.p99_ns <= l.p999_ns);
        assert!(l.p999_ns <= l.max_ns);
        assert!(l.p50_ns >= 1);
    }

    // The receiving threads have exited; their shards are folded in, and
    // reading again gives the same counts.
    let again = latency.summaries();
    assert_eq!(again[&placed_id].samples, 50);
    assert_eq!(again[&all_id].samples, 100);
    // And the summary reaches the Prometheus text.
    let text = snap.to_prometheus_text();
    assert!(text.contains("# TYPE evbus_subscription_latency_seconds summary\n"));
    assert!(text.contains("evbus_subscription_latency_seconds_count{subscription=\"orders.>\""));
}

#[test]
fn not_sampled_without_install() {
    let bus = Bus::<Order>::new();
    let latency = LatencyHistograms::new();
    let mut sub = bus.subscribe("orders.>").unwrap();
    for i in 0..10 {
        bus.publish(Order::Shipped(i)).unwrap();
    }
    while sub.try_recv().is_ok() {}
    let snap = Snapshot::capture(&bus).with_latency(&latency);
    assert_eq!(snap.subscriptions[0].latency, None);
    assert!(latency.summaries().is_empty());
}

#[test]
fn two_buses_keep_their_own_histograms() {
    let (a, b) = (Bus::<Order>::new(), Bus::<Order>::new());
    let (la, lb) = (LatencyHistograms::new(), LatencyHistograms::new());
    la.install(&a, every(1));
    lb.install(&b, every(1));
    let mut sa = a.subscribe("orders.>").unwrap();
    let mut sb = b.subscribe("orders.>").unwrap();
    // Both subscriptions have id 1 in their own bus, and are received on
    // this one thread.
    assert_eq!(sa.id(), sb.id());
    for i in 0..3 {
        a.publish(Order::Placed(i)).unwrap();
    }
    for i in 0..5 {
        b.publish(Order::Placed(i)).unwrap();
    }
    while sa.try_recv().is_ok() {}
    while sb.try_recv().is_ok() {}
    assert_eq!(la.summaries()[&sa.id()].samples, 3);
    assert_eq!(lb.summaries()[&sb.id()].samples, 5);
    drop(la);
    // A thread keeps working after a histogram set it recorded into is gone.
    let lc = LatencyHistograms::new();
    lc.install(&a, every(1));
    let mut sc = a.subscribe("orders.>").unwrap();
    a.publish(Order::Placed(9)).unwrap();
    while sc.try_recv().is_ok() {}
    assert_eq!(lc.summaries()[&sc.id()].samples, 1);
}
