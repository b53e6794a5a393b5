//! Faults: a server restart mid-stream, a stalled local subscriber.

mod support;

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use evbus::{
    Bus, Overflow, SubscribeOptions,
    nats::{Bridge, BridgeConfig, BridgeState},
};
use support::*;

const N: u64 = 1000;

async fn restart_mid_stream(kill: bool) {
    let mut server = own_server();
    let url = server.url();
    let stream = unique("RESTART");

    let bus_a = Bus::<Env>::new();
    let a = Bridge::connect(
        &url,
        &bus_a,
        BridgeConfig::new(&stream)
            .export("rs.>")
            .ack_timeout(Duration::from_millis(500))
            .retry_backoff(Duration::from_millis(20)),
    )
    .await
    .expect("exporter");
    let bus_b = Bus::<Env>::new();
    let live = Collector::new(&bus_b, "rs.>");
    let b = Bridge::connect(
        &url,
        &bus_b,
        BridgeConfig::new(&stream).import("live", "rs.>"),
    )
    .await
    .expect("importer");

    // Every state the exporter passes through.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut watch = a.watch_state();
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        while watch.changed().await.is_ok() {
            let s = *watch.borrow_and_update();
            log.lock().unwrap().push(s);
        }
    });

    let mut publisher = bus_a.publisher();
    let publish = |p: &mut evbus::Publisher<Env>, range: std::ops::Range<u64>| {
        for i in range {
            let topic = format!("rs.k{}", i % 3);
            p.publish_to(&topic, event(&topic, "a", i)).unwrap();
        }
    };
    publish(&mut publisher, 0..N / 2);
    a.flush(Duration::from_secs(60))
        .await
        .expect("flush before the restart");
    let acked_before = a.stats().export.acked;
    assert_eq!(acked_before, N / 2);

    if kill {
        server.kill();
    } else {
        server.stop();
    }
    wait_until(
        "the exporter to see the loss",
        Duration::from_secs(30),
        || a.state() == BridgeState::Reconnecting,
    )
    .await;
    // Published while the server is away: they wait in the ring and in
    // flight, and are retried.
    publish(&mut publisher, N / 2..N);
    // Their acknowledgements time out and they are sent again (the same
    // `Nats-Msg-Id`), while the server is away.
    wait_until("a retry", Duration::from_secs(30), || {
        a.stats().export.retried >= 1
    })
    .await;
    server.restart().expect("restart");
    a.flush(Duration::from_secs(60))
        .await
        .expect("flush after the restart");

    // A consumer made after the restart reads the whole stream from disk.
    let bus_c = Bus::<Env>::new();
    let late = Collector::new(&bus_c, "rs.>");
    let c = Bridge::connect(
        &url,
        &bus_c,
        BridgeConfig::new(&stream).import("late", "rs.>"),
    )
    .await
    .expect("late importer");
    for (name, got) in [("live", &live), ("late", &late)] {
        wait_until(name, Duration::from_secs(60), || got.len() >= N as usize).await;
    }
    let stats_a = a.stats();
    assert_eq!(stats_a.export.acked, N);
    assert_eq!(stats_a.export.failed, 0);
    // Every publish was sent once, plus its retries.
    assert_eq!(
        stats_a.export.sent,
        N + stats_a.export.retried,
        "{stats_a:?}"
    );
    assert!(
        stats_a.disconnects >= 1 && stats_a.connects >= 2,
        "{stats_a:?}"
    );
    assert!(seen.lock().unwrap().contains(&BridgeState::Reconnecting));
    b.shutdown(Duration::from_secs(10)).await;
    c.shutdown(Duration::from_secs(10)).await;
    a.shutdown(Duration::from_secs(10)).await;
    for (name, got) in [("live", &live), ("late", &late)] {
        let events = got.snapshot();
        let seqs: HashSet<u64> = events.iter().map(|e| e.payload().seq).collect();
        assert_eq!(seqs, (0..N).collect::<HashSet<_>>(), "{name}: every event");
        // No duplicate within the dedupe window: a retried publish was
        // stored once (Nats-Msg-Id), a redelivery dropped by id.
        assert_eq!(events.len(), N as usize, "{name}: no duplicate");
    }
}

/// The server stops cleanly mid-stream and comes back on the same file
/// store: every acknowledged event is there, the rest are retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_restart_mid_stream_loses_nothing_acknowledged() {
    restart_mid_stream(false).await;
}

/// The same with SIGKILL of the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_killed_mid_stream_loses_nothing_acknowledged() {
    restart_mid_stream(true).await;
}

/// A local subscriber of the importing bus that stops reading does not make
/// the bridge drop events for the others: a lossy one drops (and counts) its
/// own, a lossless one slows the import down until it reads again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_does_not_make_the_bridge_drop() {
    let scope = Scope::new("stall");

    let bus_a = Bus::<Env>::new();
    let a = Bridge::connect(&scope.url, &bus_a, scope.config().export("st.>"))
        .await
        .expect("exporter");
    let bus_b = Bus::<Env>::new();
    let healthy = Collector::new(&bus_b, "st.>");
    // Never read: drops what does not fit.
    let lossy = bus_b
        .subscribe_with(
            evbus::Filter::pattern("st.>").unwrap(),
            SubscribeOptions::new()
                .capacity(8)
                .overflow(Overflow::DropNewest),
        )
        .unwrap();
    // Lossless, not read until later: the import must wait for it.
    const CAP: u64 = 16;
    let mut slow = bus_b
        .subscribe_with(
            evbus::Filter::pattern("st.>").unwrap(),
            SubscribeOptions::new()
                .capacity(CAP as usize)
                .overflow(Overflow::Block(Duration::MAX)),
        )
        .unwrap();
    let b = Bridge::connect(
        &scope.url,
        &bus_b,
        scope.config().import("stall", "st.>").lag_threshold(100),
    )
    .await
    .expect("importer");

    let mut publisher = bus_a.publisher();
    for i in 0..N {
        let topic = format!("st.k{}", i % 3);
        publisher.publish_to(&topic, event(&topic, "a", i)).unwrap();
    }
    a.flush(Duration::from_secs(60)).await.expect("flush");

    // The lossless subscriber holds the import back: its ring fills, and
    // no more than its capacity is published locally (one more waits).
    wait_until("the slow ring to fill", Duration::from_secs(30), || {
        slow.len() as u64 == CAP
    })
    .await;
    // Held back with most of the stream pending on the server: lagging.
    wait_until(
        "the importer to report lagging",
        Duration::from_secs(30),
        || b.state() == BridgeState::Lagging,
    )
    .await;
    let held = b.stats().import;
    assert!(
        held.received - held.delivered + held.pending > 100,
        "{held:?}"
    );
    assert!(held.delivered <= CAP, "{held:?}");
    assert_eq!(
        held.acked, held.delivered,
        "acknowledged only once published"
    );

    // It reads again: everything arrives everywhere, nothing dropped but
    // what the lossy subscriber chose to drop.
    let mut slow_got = Vec::new();
    while (slow_got.len() as u64) < N {
        match slow.recv_timeout(Duration::from_secs(30)) {
            Ok(e) => slow_got.push(e.payload().seq),
            Err(e) => panic!(
                "the slow subscriber got {} events, then {e:?}",
                slow_got.len()
            ),
        }
    }
    assert_eq!(slow_got, (0..N).collect::<Vec<_>>());
    wait_until("the healthy subscriber", Duration::from_secs(30), || {
        healthy.len() >= N as usize
    })
    .await;
    let seqs: Vec<u64> = healthy.snapshot().iter().map(|e| e.payload().seq).collect();
    assert_eq!(seqs, (0..N).collect::<Vec<_>>());
    let lossy_stats = lossy.stats();
    assert_eq!(lossy_stats.delivered + lossy_stats.dropped, N);
    assert!(lossy_stats.dropped >= N - 8);
    // Counted just after the local publish returns.
    wait_until("every delivery counted", Duration::from_secs(30), || {
        b.stats().import.delivered == N
    })
    .await;
    wait_until("the acknowledgements", Duration::from_secs(30), || {
        b.stats().import.acked >= N
    })
    .await;
    assert_eq!(b.stats().import.rejected, 0);
    // Caught up: connected again.
    wait_until("the importer to catch up", Duration::from_secs(30), || {
        b.state() == BridgeState::Connected
    })
    .await;
}

/// Every outcome an event that entered the export ring can have, once the
/// export task has ended: each is counted in exactly one of these.
fn accounted(e: &evbus::nats::ExportStats) -> u64 {
    e.acked + e.skipped_imported + e.oversized + e.failed + e.lost + e.abandoned
}

/// How a test stops the exporting bridge while the server is away.
#[derive(Clone, Copy)]
enum Stop {
    /// Dropped: the export task is aborted.
    Drop,
    /// Shut down with a timeout that runs out.
    ShutdownTimesOut,
}

/// The server dies with events in flight, waiting for a retry and in the
/// export ring; the bridge is then stopped without them. Each is counted
/// in `abandoned`: `acked + abandoned` is every event published.
async fn abandoned_when_the_server_is_gone(stop: Stop) {
    const BEFORE: u64 = 20;
    const AFTER: u64 = 50;
    let mut server = own_server();
    let bus = Bus::<Env>::new();
    let bridge = Bridge::connect(
        &server.url(),
        &bus,
        BridgeConfig::new(&unique("ABANDON"))
            .export("ab.>")
            .export_capacity(1024)
            .max_in_flight(4)
            .ack_timeout(Duration::from_millis(200))
            .retry_backoff(Duration::from_millis(10)),
    )
    .await
    .expect("exporter");
    let handle = bridge.stats_handle();
    let publish = |range: std::ops::Range<u64>| {
        for i in range {
            bus.publish_to("ab.x", event("ab.x", "a", i)).unwrap();
        }
    };
    publish(0..BEFORE);
    bridge
        .flush(Duration::from_secs(60))
        .await
        .expect("flush while the server runs");
    server.kill();
    // Nothing published from here on can be acknowledged.
    publish(BEFORE..BEFORE + AFTER);
    wait_until("publishes in flight", Duration::from_secs(30), || {
        bridge.stats().export.sent >= BEFORE + 4
    })
    .await;
    let stats = match stop {
        Stop::Drop => {
            drop(bridge);
            tokio::time::timeout(Duration::from_secs(30), handle.export_ended())
                .await
                .expect("the export task ends after the drop");
            handle.stats()
        }
        Stop::ShutdownTimesOut => {
            let stats = bridge.shutdown(Duration::from_millis(100)).await;
            assert!(handle.is_export_ended());
            assert_eq!(stats.export, handle.stats().export);
            stats
        }
    };
    let e = stats.export;
    assert_eq!(e.acked, BEFORE, "{e:?}");
    assert_eq!(e.abandoned, AFTER, "{e:?}");
    assert_eq!(accounted(&e), BEFORE + AFTER, "{e:?}");
    assert_eq!((e.in_flight, e.backlog), (0, 0), "{e:?}");
    // The same count in the Prometheus text.
    let text = stats.to_prometheus_text("ab");
    let line = format!("evbus_nats_export_abandoned_total{{bridge=\"ab\"}} {AFTER}");
    assert!(text.lines().any(|l| l == line), "{text}");
}

/// A dropped bridge counts what it gives up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_bridge_counts_what_it_abandons() {
    abandoned_when_the_server_is_gone(Stop::Drop).await;
}

/// A shutdown whose timeout runs out counts what it gives up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_that_times_out_counts_what_it_abandons() {
    abandoned_when_the_server_is_gone(Stop::ShutdownTimesOut).await;
}

/// The server runs, but the bridge is dropped right after a burst it cannot
/// have exported yet: whatever the split, `acked + abandoned` is the burst,
/// and the server stored at least the acknowledged ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_dropped_mid_burst_counts_every_event() {
    const N: u64 = 2000;
    let scope = Scope::new("burst");
    let bus = Bus::<Env>::new();
    let bridge = Bridge::connect(
        &scope.url,
        &bus,
        scope.config().export("bu.>").export_capacity(4096),
    )
    .await
    .expect("exporter");
    let handle = bridge.stats_handle();
    for i in 0..N {
        bus.publish_to("bu.x", event("bu.x", "a", i)).unwrap();
    }
    drop(bridge);
    tokio::time::timeout(Duration::from_secs(30), handle.export_ended())
        .await
        .expect("the export task ends after the drop");
    let e = handle.stats().export;
    assert_eq!(accounted(&e), N, "{e:?}");
    assert_eq!(e.acked + e.abandoned, N, "{e:?}");
    assert_eq!((e.in_flight, e.backlog), (0, 0), "{e:?}");
    // The server has every acknowledged event (and perhaps some abandoned
    // in flight): an importer reads at least `acked` of them.
    let bus_b = Bus::<Env>::new();
    let got = Collector::new(&bus_b, "bu.>");
    let importer = Bridge::connect(&scope.url, &bus_b, scope.config().import("check", "bu.>"))
        .await
        .expect("importer");
    wait_until("the acknowledged events", Duration::from_secs(60), || {
        got.len() as u64 >= e.acked
    })
    .await;
    importer.shutdown(Duration::from_secs(10)).await;
    assert!(got.len() as u64 <= N);
}
