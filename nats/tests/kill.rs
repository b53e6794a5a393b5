//! SIGKILL of a bridge process mid-stream, then a restart.

mod support;

use std::{collections::HashSet, time::Duration};

use evbus::{Bus, nats::Bridge};
use support::*;

const N: u64 = 3000;

/// The exporting process dies mid-stream; the restarted process publishes
/// the same events again (same envelope ids, as an application replaying
/// its source or journal does). Every event arrives, once, in order: the
/// server drops the republished ids as duplicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporter_killed_mid_stream_then_restarted() {
    let scope = Scope::new("killx");

    let bus = Bus::<Env>::new();
    let got = Collector::new(&bus, "kill.>");
    let config = scope.config().import("importer", "kill.>");
    let bridge = Bridge::connect(&scope.url, &bus, config)
        .await
        .expect("bridge");

    let count = N.to_string();
    let args = [
        "--export",
        "kill.>",
        "--publish",
        &count,
        "--topic-base",
        "kill",
        "--id-run",
        "7",
        "--sleep-every",
        "10",
    ];
    let mut first = scope.peer("exporter", &args);
    wait_until("a part of the stream", Duration::from_secs(60), || {
        got.len() >= 300
    })
    .await;
    first.kill();
    let before_restart = got.len() as u64;
    assert!(
        before_restart < N,
        "the kill came after the whole stream; slow the peer down"
    );

    let mut second = scope.peer("exporter", &args);
    assert!(second.finish(Duration::from_secs(60)).await.success());
    wait_until("every event", Duration::from_secs(60), || {
        got.len() >= N as usize
    })
    .await;
    // Settle: whatever else arrives would be a duplicate.
    bridge.shutdown(Duration::from_secs(10)).await;

    let events = got.snapshot();
    let seqs: Vec<u64> = events.iter().map(|e| e.payload().seq).collect();
    assert_eq!(
        seqs,
        (0..N).collect::<Vec<_>>(),
        "each event once, in publish order"
    );
    let ids: HashSet<String> = events.iter().map(|e| e.id().to_string()).collect();
    assert_eq!(ids.len(), N as usize);

    let stats = second.stats();
    assert_eq!(stats.export.acked, N);
    // The events stored before the kill came back as duplicates.
    assert!(
        stats.export.deduplicated >= before_restart,
        "{} duplicates acknowledged, {before_restart} events stored before the kill",
        stats.export.deduplicated
    );
}

/// The importing process dies mid-stream; the restarted process, with the
/// same durable consumer, receives everything it had not acknowledged.
/// Within one process nothing is delivered twice; across the crash only the
/// messages delivered but not yet acknowledged come again (at-least-once),
/// at most `max_ack_pending` of them.
///
/// A message is acknowledged once the local bus accepted it, so what sat in
/// a local subscriber's ring when the process died dies with it, as
/// anything in its memory does. The peer's printing subscriber has a ring
/// of one event, so at most two accepted events (one in the ring, one being
/// printed) were never printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn importer_killed_mid_stream_then_restarted() {
    let scope = Scope::new("killi");

    let args = [
        "--import",
        "victim",
        "kill.>",
        "--print",
        "kill.>",
        "--print-capacity",
        "1",
        "--linger",
        // The server redelivers what the killed process did not
        // acknowledge after this wait.
        "--ack-wait-ms",
        "1000",
    ];
    let mut first = scope.peer("importer", &args);
    first.wait_ready().await;

    let bus = Bus::<Env>::new();
    let config = scope.config().export("kill.>");
    let bridge = Bridge::connect(&scope.url, &bus, config)
        .await
        .expect("bridge");
    let mut publisher = bus.publisher();
    let mut published = 0u64;
    while published < N {
        for _ in 0..50 {
            let topic = format!("kill.k{}", published % 3);
            publisher
                .publish_to(&topic, event(&topic, "test", published))
                .unwrap();
            published += 1;
        }
        bridge.flush(Duration::from_secs(60)).await.expect("flush");
        if first.ev_count() >= 300 {
            break;
        }
    }
    first.kill();
    let before = first.events();
    for i in published..N {
        let topic = format!("kill.k{}", i % 3);
        publisher
            .publish_to(&topic, event(&topic, "test", i))
            .unwrap();
    }
    bridge.flush(Duration::from_secs(60)).await.expect("flush");
    assert_eq!(bridge.stats().export.acked, N);

    let mut second = scope.peer("importer", &args);
    // Everything arrives, but for what the first process had accepted
    // (and acknowledged) after the last event it printed: the one in its
    // print ring and the one being printed.
    let printed: HashSet<u64> = before.iter().map(|l| l.seq).collect();
    let last_before = before.iter().map(|l| l.seq).max().unwrap_or(0);
    let in_memory = [last_before + 1, last_before + 2];
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut got = printed.clone();
        got.extend(second.events().iter().map(|l| l.seq));
        let missing: Vec<u64> = (0..N)
            .filter(|s| !got.contains(s) && !in_memory.contains(s))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "after the restart, {} events are missing, such as {:?} (the first printed up to {last_before})",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(second.finish(Duration::from_secs(30)).await.success());
    let after = second.events();

    for (name, lines) in [("before", &before), ("after", &after)] {
        let unique: HashSet<u64> = lines.iter().map(|l| l.seq).collect();
        assert_eq!(
            unique.len(),
            lines.len(),
            "a duplicate within one process ({name})"
        );
    }
    // Before the crash, in publish order. After it, the redeliveries of what
    // the dead process left unacknowledged come when their ack wait ends,
    // so only the first delivery of the rest keeps the order.
    let seqs: Vec<u64> = before.iter().map(|l| l.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "order before the crash"
    );
    let first_seen: HashSet<u64> = before.iter().map(|l| l.seq).collect();
    let mut all = first_seen.clone();
    all.extend(after.iter().map(|l| l.seq));
    let missing: Vec<u64> = (0..N).filter(|s| !all.contains(s)).collect();
    assert!(
        missing.iter().all(|s| in_memory.contains(s)),
        "lost, though not in the killed process's memory: {missing:?}"
    );
    let again = after.iter().filter(|l| first_seen.contains(&l.seq)).count();
    assert!(again <= 1024, "{again} redelivered across the crash");
    let stats = second.stats();
    assert_eq!(stats.import.delivered, after.len() as u64);
    assert_eq!(stats.import.acked, stats.import.received);
}
