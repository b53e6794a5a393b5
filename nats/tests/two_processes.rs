//! Two evbus processes bridged through one server act as one bus for the
//! bridged patterns: wildcards, ordering per publisher, counters.

mod support;

use std::time::Duration;

use evbus::{
    Bus,
    nats::{Bridge, BridgeState},
};
use support::*;

const N: u64 = 600;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_act_as_one_bus() {
    let scope = Scope::new("onebus");

    // The child: exports and imports `demo.>`, publishes on demo.child.k*,
    // prints what it gets on the parent's topics.
    let expect = N.to_string();
    let count = N.to_string();
    let mut child = scope.peer(
        "child",
        &[
            "--export",
            "demo.>",
            "--import",
            "child",
            "demo.>",
            "--publish",
            &count,
            "--topic-base",
            "demo.child",
            "--print",
            "demo.parent.*",
            "--expect",
            &expect,
        ],
    );

    // The parent: this test, the same bridge configuration.
    let bus = Bus::<Env>::new();
    let from_child = Collector::new(&bus, "demo.child.*");
    let only_k1 = Collector::new(&bus, "demo.child.k1");
    let own = Collector::new(&bus, "demo.parent.>");
    let config = scope
        .config()
        .origin("parent")
        .export("demo.>")
        .import("parent", "demo.>");
    let bridge = Bridge::connect(&scope.url, &bus, config)
        .await
        .expect("bridge");
    let mut state = bridge.watch_state();
    state
        .wait_for(|s| *s == BridgeState::Connected)
        .await
        .expect("connected");
    let mut publisher = bus.publisher();
    for i in 0..N {
        let topic = format!("demo.parent.k{}", i % 3);
        publisher
            .publish_to(&topic, event(&topic, "parent", i))
            .unwrap();
    }
    bridge.flush(Duration::from_secs(60)).await.expect("flush");

    wait_until("the child's events", Duration::from_secs(60), || {
        from_child.len() >= N as usize
    })
    .await;
    assert!(child.finish(Duration::from_secs(60)).await.success());

    // Every child event once, in the child's publish order.
    let got = from_child.snapshot();
    assert_eq!(got.len(), N as usize);
    let seqs: Vec<u64> = got.iter().map(|e| e.payload().seq).collect();
    assert_eq!(seqs, (0..N).collect::<Vec<_>>(), "ordering per publisher");
    assert!(got.iter().all(|e| e.payload().from == "child"));
    // The single-segment wildcard and an exact topic route as locally.
    let k1 = only_k1.snapshot();
    assert_eq!(k1.len(), (0..N).filter(|i| i % 3 == 1).count());
    assert!(k1.iter().all(|e| e.topic() == "demo.child.k1"));

    // The child saw every parent event once, in order.
    let lines = child.events();
    assert_eq!(lines.len(), N as usize);
    assert_eq!(
        lines.iter().map(|l| l.seq).collect::<Vec<_>>(),
        (0..N).collect::<Vec<_>>()
    );
    assert!(
        lines
            .iter()
            .all(|l| l.from == "parent" && l.topic.starts_with("demo.parent.k"))
    );

    // The parent's own events were not echoed back to it.
    wait_until(
        "the parent's own events to come back",
        Duration::from_secs(30),
        || bridge.stats().import.own_origin >= N,
    )
    .await;
    assert_eq!(own.len(), N as usize);

    // Counters, both sides. An imported event reaches the export ring in
    // the local publish, which returns before `delivered` counts it; flush
    // then waits until the exporter took (and skipped) them all.
    wait_until("every import counted", Duration::from_secs(30), || {
        bridge.stats().import.delivered >= N
    })
    .await;
    bridge.flush(Duration::from_secs(60)).await.expect("flush");
    let stats = bridge.stats();
    assert_eq!(
        stats.export.received,
        2 * N,
        "own and imported events reach the export ring"
    );
    assert_eq!(stats.export.acked, N);
    assert_eq!(
        stats.export.skipped_imported, N,
        "imported events are not re-exported"
    );
    assert_eq!(
        stats.export.failed + stats.export.oversized + stats.export.lost,
        0
    );
    assert_eq!(stats.import.delivered, N);
    assert_eq!(stats.import.own_origin, N);
    assert_eq!(stats.import.duplicates + stats.import.rejected, 0);
    let child_stats = child.stats();
    assert_eq!(child_stats.export.acked, N);
    assert_eq!(child_stats.export.skipped_imported, N);
    assert_eq!(child_stats.import.delivered, N);
    assert_eq!(child_stats.export.deduplicated, 0);

    let fin = bridge.shutdown(Duration::from_secs(10)).await;
    assert_eq!(fin.state, BridgeState::Closed);
    assert_eq!(fin.import.acked, fin.import.received);
}
