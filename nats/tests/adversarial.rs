//! Adversarial paths: payloads whose `Serialize`, `Clone` or `Drop` panics
//! or fails, a bridge dropped while its server hangs with publishes in flight,
//! and a server that stays away for many ack timeouts.

mod support;

use std::{
    collections::HashSet,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use evbus::{
    Bus, Envelope, Filter, Overflow, SubscribeOptions,
    nats::{
        Bridge, BridgeConfig, BridgeError, BridgeState, ExportError, ImportError,
        server::NatsServer,
    },
};
use evbus_testkit::{Evil, Mode};
use support::*;

type EvilEnv = Envelope<Evil>;

/// Collects the `seq` of every `Evil` a subscription receives, on a thread.
struct Seqs {
    got: Arc<Mutex<Vec<u64>>>,
    unsub: evbus::Unsubscriber<EvilEnv>,
    thread: std::thread::JoinHandle<()>,
}

impl Seqs {
    fn len(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    /// Closes the subscription and returns everything it received.
    fn finish(self) -> Vec<u64> {
        self.unsub.unsubscribe();
        self.thread.join().unwrap();
        self.got.lock().unwrap().clone()
    }
}

/// A ring of `capacity` whose publishers wait (without a bound) rather
/// than drop.
fn lossless(capacity: usize) -> SubscribeOptions {
    SubscribeOptions::new()
        .capacity(capacity)
        .overflow(Overflow::Block(Duration::MAX))
}

/// Publishes one event of each of `modes` on `adv.x`, three rounds, so
/// that the bridges keep going after each failure. Returns how many it
/// published, and the sequence numbers of the `Fine` ones.
fn publish_rounds(bus: &Bus<EvilEnv>, modes: &[Mode]) -> (u64, Vec<u64>) {
    let (mut seq, mut fine) = (0, Vec::new());
    for _ in 0..3 {
        for &mode in modes {
            bus.publish_to("adv.x", Evil::envelope(seq, mode)).unwrap();
            if mode == Mode::Fine {
                fine.push(seq);
            }
            seq += 1;
        }
    }
    (seq, fine)
}

/// A bridge that exports `adv.>` from `bus`.
async fn exporter(scope: &Scope, bus: &Bus<EvilEnv>) -> Bridge<Evil> {
    Bridge::connect(&scope.url, bus, scope.config().export("adv.>"))
        .await
        .expect("exporter")
}

fn collect(bus: &Bus<EvilEnv>) -> Seqs {
    let mut sub = bus
        .subscribe_with(Filter::pattern("adv.>").unwrap(), lossless(1024))
        .unwrap();
    let unsub = sub.unsubscriber();
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&got);
    let thread = std::thread::spawn(move || {
        while let Ok(mut e) = sub.recv() {
            // A `DropPanics` payload must not take this thread down.
            e.payload_mut().defuse();
            sink.lock().unwrap().push(e.payload().seq);
        }
    });
    Seqs { got, unsub, thread }
}

/// A payload whose `Serialize` panics, one whose `Serialize` fails, one
/// whose `Deserialize` panics in the importer, and one whose `Clone` panics
/// in the importer's local publish: each is counted and reported as a typed
/// error, and every other event still flows, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_and_failing_payloads_are_reported_and_the_rest_flows() {
    let scope = Scope::new("evil");
    let bus_a = Bus::<EvilEnv>::new();
    let a = exporter(&scope, &bus_a).await;
    let bus_b = Bus::<EvilEnv>::new();
    // Two local subscribers: the import's publish clones for one of them.
    let got1 = collect(&bus_b);
    let got2 = collect(&bus_b);
    let b = Bridge::connect(
        &scope.url,
        &bus_b,
        scope.config().import("evil-importer", "adv.>"),
    )
    .await
    .expect("importer");

    let modes = Mode::interleaved(&[
        Mode::SerializePanics,
        Mode::SerializeFails,
        Mode::ClonePanics,
        Mode::DeserializePanics,
    ]);
    // One subscriber on bus A (the export's): the publish moves the event
    // into its ring and clones nothing.
    let (seq, fine) = publish_rounds(&bus_a, &modes);
    a.flush(Duration::from_secs(30))
        .await
        .expect("the exporter resolves every event, the failing ones too");
    let sa = a.stats().export;
    assert_eq!(sa.received, seq, "{sa:?}");
    // 3 serialize panics + 3 serialize errors; the clone- and
    // deserialize-panicking payloads serialize fine.
    assert_eq!(sa.failed, 6, "{sa:?}");
    assert_eq!(sa.acked, seq - 6, "{sa:?}");
    let errors = a.take_errors();
    let encode: Vec<&str> = errors
        .iter()
        .filter_map(|e| match e {
            BridgeError::Export(ExportError::Encode { reason, .. }) => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(encode.len(), 6, "{errors:?}");
    assert_eq!(
        encode
            .iter()
            .filter(|r| r.contains("serialize panicked"))
            .count(),
        3,
        "{encode:?}"
    );
    assert_eq!(
        encode
            .iter()
            .filter(|r| r.contains("refuses to serialize"))
            .count(),
        3,
        "{encode:?}"
    );

    // The importer: 15 fine events to both subscribers; 3 whose local
    // publish panicked and 3 whose decoding panicked are terminated and
    // reported, and the pull and the delivery thread go on.
    let want = fine.len();
    wait_until("the fine events", Duration::from_secs(30), || {
        got1.len() >= want && got2.len() >= want
    })
    .await;
    wait_until("the panics reported", Duration::from_secs(30), || {
        b.stats().import.rejected >= 6
    })
    .await;
    let sb = b.stats().import;
    assert_eq!(sb.delivered, want as u64, "{sb:?}");
    assert_eq!(sb.rejected, 6, "{sb:?}");
    let errors = b.take_errors();
    let panicked = errors
        .iter()
        .filter(|e| matches!(e, BridgeError::Import(ImportError::Panicked { .. })))
        .count();
    assert_eq!(panicked, 3, "{errors:?}");
    let undecodable = errors
        .iter()
        .filter(|e| {
            matches!(e, BridgeError::Import(ImportError::Decode { reason, .. })
                if reason.contains("deserialize panicked"))
        })
        .count();
    assert_eq!(undecodable, 3, "{errors:?}");
    b.shutdown(Duration::from_secs(10)).await;
    a.shutdown(Duration::from_secs(10)).await;
    for got in [got1.finish(), got2.finish()] {
        // Each fine event once; a subscriber the panicking publish reached
        // before the clone panicked may also hold that event.
        let fine_seen: Vec<u64> = got.iter().copied().filter(|s| fine.contains(s)).collect();
        assert_eq!(fine_seen, fine, "each fine event once, in order");
        assert!(got.len() <= want + 3);
    }
}

/// A payload whose `Clone` panics on the exporting side: the panic reaches
/// the local publisher (the bus counts the rings it missed as drops), and
/// the bridge exports every later event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clone_panic_on_the_exporting_bus_stops_nothing() {
    let scope = Scope::new("clonepanic");
    let bus_a = Bus::<EvilEnv>::new();
    // A local subscriber besides the export's: the publish clones.
    let local = collect(&bus_a);
    let a = exporter(&scope, &bus_a).await;
    for seq in 0..5 {
        bus_a
            .publish_to("adv.x", Evil::envelope(seq, Mode::Fine))
            .unwrap();
    }
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        bus_a.publish_to("adv.x", Evil::envelope(5, Mode::ClonePanics))
    }));
    assert!(panicked.is_err(), "the clone panic reaches the publisher");
    for seq in 6..10 {
        bus_a
            .publish_to("adv.x", Evil::envelope(seq, Mode::Fine))
            .unwrap();
    }
    a.flush(Duration::from_secs(30)).await.expect("flush");
    let s = a.stats().export;
    // The event with the panicking clone reached the export ring or not
    // (the bus counts it as a drop there); every other event was exported.
    assert!(s.received == 9 || s.received == 10, "{s:?}");
    assert_eq!(s.acked, s.received, "{s:?}");
    assert_eq!(s.failed, 0, "{s:?}");
    a.shutdown(Duration::from_secs(10)).await;
    let got = local.finish();
    let fine: Vec<u64> = got.iter().copied().filter(|&s| s != 5).collect();
    assert_eq!(fine, (0..10).filter(|&s| s != 5).collect::<Vec<_>>());
}

/// The errors in `errors` that report a panicking `Drop` (export or
/// import), with their messages.
fn drop_panics(errors: &[BridgeError]) -> Vec<String> {
    errors
        .iter()
        .filter_map(|e| match e {
            BridgeError::Export(ExportError::DropPanicked { reason, .. })
            | BridgeError::Import(ImportError::DropPanicked { reason, .. }) => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

/// Payloads whose `Drop` panics in the export task, after they are encoded
/// (the exporting bridge) and when they are skipped as imported (a bridge
/// that imports and exports the same topics): each panic is contained,
/// reported as `DropPanicked` and counted in `drop_panics`, the event is
/// exported (or skipped) all the same, and every later event flows, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_drop_in_the_export_task_is_reported_and_the_export_goes_on() {
    let scope = Scope::new("dropexport");
    let bus_a = Bus::<EvilEnv>::new();
    let a = exporter(&scope, &bus_a).await;
    let bus_b = Bus::<EvilEnv>::new();
    let got = collect(&bus_b);
    // B exports what A exports: its export task skips (and drops) every
    // event it imported.
    let b = Bridge::connect(
        &scope.url,
        &bus_b,
        scope
            .config()
            .import("drop-importer", "adv.>")
            .export("adv.>"),
    )
    .await
    .expect("importer");

    let modes = Mode::interleaved(&[Mode::DropPanics]);
    // One subscriber on bus A (the export's): the publish moves the event
    // into its ring and drops nothing.
    let (seq, _) = publish_rounds(&bus_a, &modes);
    let panicking = 3;
    a.flush(Duration::from_secs(30)).await.expect("flush");
    let sa = a.stats().export;
    assert_eq!(sa.received, seq, "{sa:?}");
    assert_eq!(sa.acked, seq, "exported all the same: {sa:?}");
    assert_eq!(sa.failed, 0, "{sa:?}");
    assert_eq!(sa.drop_panics, panicking, "{sa:?}");
    let reasons = drop_panics(&a.take_errors());
    assert_eq!(reasons.len(), panicking as usize, "{reasons:?}");
    assert!(
        reasons.iter().all(|r| r.contains("drop of event")),
        "{reasons:?}"
    );

    wait_until("every event imported", Duration::from_secs(30), || {
        got.len() >= seq as usize
    })
    .await;
    b.flush(Duration::from_secs(30)).await.expect("flush B");
    let sb = b.stats();
    assert_eq!(sb.import.delivered, seq, "{sb:?}");
    assert_eq!(sb.export.received, seq, "{sb:?}");
    assert_eq!(sb.export.skipped_imported, seq, "{sb:?}");
    assert_eq!(sb.export.drop_panics, panicking, "{sb:?}");
    assert_eq!(sb.export.sent, 0, "{sb:?}");
    let reasons = drop_panics(&b.take_errors());
    assert_eq!(reasons.len(), panicking as usize, "{reasons:?}");
    b.shutdown(Duration::from_secs(10)).await;
    a.shutdown(Duration::from_secs(10)).await;
    assert_eq!(
        got.finish(),
        (0..seq).collect::<Vec<_>>(),
        "each once, in order"
    );
}

/// Publishes `env` on `subject` of the scope's stream directly, without a
/// `Nats-Msg-Id`: the server stores every copy.
async fn publish_raw(js: &async_nats::jetstream::Context, subject: String, env: &EvilEnv) {
    let body = serde_json::to_vec(env).unwrap();
    js.publish(subject, body.into())
        .await
        .unwrap()
        .await
        .unwrap();
}

/// Payloads whose `Drop` panics where the importer drops them: a
/// redelivered copy skipped as a duplicate (in the delivery thread), an
/// envelope whose topic is not its subject's (in the pull): each panic is
/// contained, reported as `DropPanicked` and counted, the message is
/// handled as any other (acknowledged, or terminated as a mismatch), and
/// every later message is delivered, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_drop_in_the_import_is_reported_and_the_import_goes_on() {
    let scope = Scope::new("dropimport");
    let bus = Bus::<EvilEnv>::new();
    let got = collect(&bus);
    let b = Bridge::connect(
        &scope.url,
        &bus,
        scope.config().import("drop-importer", "adv.>"),
    )
    .await
    .expect("importer");
    let client = async_nats::connect(&scope.url).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    let on = |topic: &str| format!("{}.{topic}", scope.prefix);

    const ROUNDS: u64 = 3;
    let mut want = Vec::new();
    let mut sent = 0u64;
    for round in 0..ROUNDS {
        let seq = round * 10;
        publish_raw(&js, on("adv.x"), &Evil::envelope(seq, Mode::Fine)).await;
        // The same envelope twice: the second copy is a duplicate, dropped
        // by the delivery thread.
        let mut twice = Evil::envelope(seq + 1, Mode::DropPanics);
        publish_raw(&js, on("adv.x"), &twice).await;
        publish_raw(&js, on("adv.x"), &twice).await;
        twice.payload_mut().defuse();
        // Its subject names another topic: rejected, dropped by the pull.
        let mut elsewhere = Evil::envelope(seq + 2, Mode::DropPanics);
        publish_raw(&js, on("adv.y"), &elsewhere).await;
        elsewhere.payload_mut().defuse();
        publish_raw(&js, on("adv.x"), &Evil::envelope(seq + 3, Mode::Fine)).await;
        want.extend([seq, seq + 1, seq + 3]);
        sent += 5;
    }
    wait_until("every message handled", Duration::from_secs(30), || {
        let s = b.stats().import;
        s.acked == sent && got.len() >= want.len()
    })
    .await;
    let s = b.stats().import;
    assert_eq!(s.received, sent, "{s:?}");
    assert_eq!(s.delivered, 3 * ROUNDS, "{s:?}");
    assert_eq!(s.duplicates, ROUNDS, "{s:?}");
    assert_eq!(s.rejected, ROUNDS, "{s:?}");
    assert_eq!(s.drop_panics, 2 * ROUNDS, "{s:?}");
    // Nothing lost without being counted.
    assert_eq!(
        s.received,
        s.delivered + s.duplicates + s.rejected + s.own_origin,
        "{s:?}"
    );
    let errors = b.take_errors();
    let reasons = drop_panics(&errors);
    assert_eq!(reasons.len(), 2 * ROUNDS as usize, "{errors:?}");
    let mismatches = errors
        .iter()
        .filter(|e| matches!(e, BridgeError::Import(ImportError::TopicMismatch { .. })))
        .count();
    assert_eq!(mismatches, ROUNDS as usize, "{errors:?}");
    b.shutdown(Duration::from_secs(10)).await;
    assert_eq!(got.finish(), want, "each once, in order");
}

/// The local bus shuts down under a running importer: the delivery
/// thread's publish hands the event back and the thread ends, dropping it
/// and what the pulls had queued; each panicking `Drop` is contained,
/// reported and counted, nothing is acknowledged, and the next run with
/// the same durable name receives every message (at-least-once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_drop_of_events_the_closed_bus_refused_is_reported() {
    const N: u64 = 4;
    let scope = Scope::new("dropclosed");
    let config = || {
        scope
            .config()
            .import("drop-closed", "adv.>")
            .ack_wait(Duration::from_millis(500))
    };
    let bus = Bus::<EvilEnv>::new();
    let b = Bridge::connect(&scope.url, &bus, config())
        .await
        .expect("importer");
    bus.shutdown();
    let client = async_nats::connect(&scope.url).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    for seq in 0..N {
        let mut env = Evil::envelope(seq, Mode::DropPanics);
        publish_raw(&js, format!("{}.adv.x", scope.prefix), &env).await;
        env.payload_mut().defuse();
    }
    wait_until("the refused event's drop", Duration::from_secs(30), || {
        b.stats().import.drop_panics >= 1
    })
    .await;
    let s = b.stats().import;
    assert_eq!(s.delivered, 0, "{s:?}");
    assert_eq!(s.acked, 0, "{s:?}");
    let errors = b.take_errors();
    assert!(
        errors
            .iter()
            .all(|e| matches!(e, BridgeError::Import(ImportError::DropPanicked { .. }))),
        "{errors:?}"
    );
    assert!(!errors.is_empty());
    let stats = b.shutdown(Duration::from_secs(10)).await;
    // Every event the thread dropped is counted; none twice.
    assert!((1..=N).contains(&stats.import.drop_panics), "{stats:?}");

    let bus = Bus::<EvilEnv>::new();
    let got = collect(&bus);
    let c = Bridge::connect(&scope.url, &bus, config())
        .await
        .expect("second run");
    wait_until("the second run", Duration::from_secs(30), || {
        got.len() >= N as usize
    })
    .await;
    c.shutdown(Duration::from_secs(10)).await;
    // Redeliveries come after the ack wait, behind what was never pulled.
    let mut seqs = got.finish();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..N).collect::<Vec<_>>(), "each once");
}

/// A server this test starts and may kill, its URL, and a stream name
/// unique to this call, made from `name`.
fn own_stream(name: &str) -> (NatsServer, String, String) {
    let server = own_server();
    let url = server.url();
    (server, url, unique(name))
}

/// A config on `stream` that exports `pattern`, with at most `in_flight`
/// publishes unacknowledged, each retried after `ack_timeout_ms` and a
/// backoff of `backoff_ms`.
fn retrying(
    stream: &str,
    pattern: &str,
    in_flight: usize,
    ack_timeout_ms: u64,
    backoff_ms: u64,
) -> BridgeConfig {
    BridgeConfig::new(stream)
        .export(pattern)
        .max_in_flight(in_flight)
        .ack_timeout(Duration::from_millis(ack_timeout_ms))
        .retry_backoff(Duration::from_millis(backoff_ms))
}

/// An importer of `pattern` from `stream` (durable `durable`) into `bus`.
async fn importer(
    url: &str,
    bus: &Bus<Env>,
    stream: &str,
    durable: &str,
    pattern: &str,
) -> Bridge<PeerEvent> {
    Bridge::connect(url, bus, BridgeConfig::new(stream).import(durable, pattern))
        .await
        .unwrap_or_else(|e| panic!("importer {durable}: {e:?}"))
}

/// The bridge is dropped while the server hangs (SIGSTOP) with publishes
/// in flight, the export ring full and a local publisher blocked on it: the
/// drop returns, the blocked publisher is released, nothing panics, and the
/// stream later holds only events that were published, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_bridge_while_the_server_hangs() {
    let (server, url, stream) = own_stream("DROPHANG");
    let bus = Bus::<Env>::new();
    const IN_FLIGHT: usize = 4;
    const CAP: usize = 8;
    let a = Bridge::connect(
        &url,
        &bus,
        retrying(&stream, "dh.>", IN_FLIGHT, 200, 10)
            .import("dh-self", "back.>")
            .export_capacity(CAP),
    )
    .await
    .expect("bridge");
    for i in 0..10 {
        bus.publish_to("dh.a", event("dh.a", "t", i)).unwrap();
    }
    a.flush(Duration::from_secs(30)).await.expect("flush");
    assert_eq!(a.stats().export.acked, 10);

    server.pause().expect("SIGSTOP");
    // A lossless publisher fills what is in flight and the ring, then
    // blocks.
    let published = Arc::new(AtomicU64::new(10));
    let count = Arc::clone(&published);
    let publisher_bus = bus.clone();
    let publisher = std::thread::spawn(move || {
        for i in 10..1000 {
            if publisher_bus
                .publish_to("dh.a", event("dh.a", "t", i))
                .is_err()
            {
                break;
            }
            count.store(i + 1, Ordering::Relaxed);
        }
    });
    wait_until(
        "the publisher to block on a full ring",
        Duration::from_secs(30),
        || {
            // The ring is full and nothing more is taken: the first
            // `IN_FLIGHT` after the pause are in flight (or between retry
            // rounds).
            let s = a.stats().export;
            s.backlog == CAP as u64 && s.received == 10 + IN_FLIGHT as u64
        },
    )
    .await;
    assert!(!publisher.is_finished());
    let handle = a.stats_handle();
    drop(a);
    // The export subscription went with the bridge: the publisher runs on
    // to its end.
    wait_until("the publisher to finish", Duration::from_secs(30), || {
        publisher.is_finished()
    })
    .await;
    publisher.join().expect("the publisher did not panic");
    let total = published.load(Ordering::Relaxed);
    assert_eq!(total, 1000);
    // What the drop gave up is counted: those in flight and the full
    // ring; the publishes released by the drop never entered the ring.
    tokio::time::timeout(Duration::from_secs(30), handle.export_ended())
        .await
        .expect("the export task ends after the drop");
    let e = handle.stats().export;
    assert_eq!(e.acked, 10, "{e:?}");
    assert_eq!(e.abandoned, (IN_FLIGHT + CAP) as u64, "{e:?}");
    assert_eq!(e.failed + e.oversized + e.lost, 0, "{e:?}");
    server.resume().expect("SIGCONT");

    // What the stream holds: the 10 acknowledged, plus any of those in
    // flight that the server took before the drop; nothing twice, nothing
    // never published.
    let bus_c = Bus::<Env>::new();
    let late = Collector::new(&bus_c, "dh.>");
    let c = importer(&url, &bus_c, &stream, "dh-late", "dh.>").await;
    wait_until("the acknowledged events", Duration::from_secs(30), || {
        late.len() >= 10
    })
    .await;
    // Let the importer go through everything the server holds.
    wait_until("the importer to drain", Duration::from_secs(30), || {
        let s = c.stats().import;
        s.pending == 0 && s.acked == s.received
    })
    .await;
    c.shutdown(Duration::from_secs(10)).await;
    let seqs: Vec<u64> = late.snapshot().iter().map(|e| e.payload().seq).collect();
    let set: HashSet<u64> = seqs.iter().copied().collect();
    assert_eq!(set.len(), seqs.len(), "no duplicate: {seqs:?}");
    assert!(
        (0..10).all(|s| set.contains(&s)),
        "every acknowledged event"
    );
    assert!(
        seqs.len() <= 10 + IN_FLIGHT,
        "at most the in-flight publishes besides: {seqs:?}"
    );
    drop(bus);
}

/// Payloads whose `Drop` panics, given up when the bridge is dropped while
/// the server hangs: some were taken (in flight or waiting for a retry),
/// the rest wait in the ring. Each is counted in `abandoned`, and each
/// panicking drop once in `drop_panics`, wherever the bridge dropped it
/// (after encoding, or when the ending task drained the ring).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_payloads_whose_drop_panics_count_in_both_counters() {
    let (server, url, stream) = own_stream("DROPABANDON");
    let bus = Bus::<EvilEnv>::new();
    let a = Bridge::connect(&url, &bus, retrying(&stream, "adv.>", 2, 200, 10))
        .await
        .expect("bridge");
    server.pause().expect("SIGSTOP");
    // The export's is the only subscription: the publish moves each event
    // into its ring and drops nothing here.
    let (seq, _) = publish_rounds(&bus, &Mode::interleaved(&[Mode::DropPanics]));
    wait_until("publishes in flight", Duration::from_secs(30), || {
        a.stats().export.received >= 2
    })
    .await;
    let handle = a.stats_handle();
    drop(a);
    tokio::time::timeout(Duration::from_secs(30), handle.export_ended())
        .await
        .expect("the export task ends after the drop");
    let e = handle.stats().export;
    assert_eq!((e.acked, e.abandoned), (0, seq), "{e:?}");
    assert_eq!(e.drop_panics, 3, "{e:?}");
    server.resume().expect("SIGCONT");
}

/// The server stays away for many ack timeouts (the bridge's own
/// `ack_timeout`): publishes are retried round after round, nothing is given
/// up, and after the restart every event is stored and imported once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_down_for_many_ack_timeouts_loses_nothing() {
    const N: u64 = 200;
    const IN_FLIGHT: usize = 16;
    let (mut server, url, stream) = own_stream("LONGDOWN");
    let bus_a = Bus::<Env>::new();
    let a = Bridge::connect(&url, &bus_a, retrying(&stream, "ld.>", IN_FLIGHT, 100, 5))
        .await
        .expect("exporter");
    let bus_b = Bus::<Env>::new();
    let live = Collector::new(&bus_b, "ld.>");
    let b = importer(&url, &bus_b, &stream, "ld-live", "ld.>").await;

    for i in 0..N / 2 {
        bus_a.publish_to("ld.a", event("ld.a", "a", i)).unwrap();
    }
    a.flush(Duration::from_secs(30)).await.expect("flush");
    assert_eq!(a.stats().export.acked, N / 2);

    server.stop();
    wait_until("Reconnecting", Duration::from_secs(30), || {
        a.state() == BridgeState::Reconnecting
    })
    .await;
    for i in N / 2..N {
        bus_a.publish_to("ld.a", event("ld.a", "a", i)).unwrap();
    }
    // Five full rounds of ack timeouts while the server is away: each round
    // retries every publish in flight.
    wait_until("five rounds of retries", Duration::from_secs(60), || {
        a.stats().export.retried >= 5 * IN_FLIGHT as u64
    })
    .await;
    let s = a.stats();
    assert_eq!(s.state, BridgeState::Reconnecting, "{s:?}");
    assert_eq!(s.export.failed, 0, "nothing given up: {s:?}");
    assert_eq!(s.export.acked, N / 2, "{s:?}");
    assert!(a.take_errors().is_empty());

    server.restart().expect("restart");
    a.flush(Duration::from_secs(60))
        .await
        .expect("flush after the restart");
    wait_until("every event imported", Duration::from_secs(60), || {
        live.len() >= N as usize
    })
    .await;
    let s = a.stats();
    assert_eq!(s.export.acked, N, "{s:?}");
    assert_eq!(s.export.failed, 0, "{s:?}");
    assert_eq!(s.export.sent, N + s.export.retried, "{s:?}");
    assert!(s.export.retried >= 5 * IN_FLIGHT as u64, "{s:?}");
    b.shutdown(Duration::from_secs(10)).await;
    a.shutdown(Duration::from_secs(10)).await;
    let seqs: Vec<u64> = live.snapshot().iter().map(|e| e.payload().seq).collect();
    let set: HashSet<u64> = seqs.iter().copied().collect();
    assert_eq!(set, (0..N).collect::<HashSet<_>>(), "every event");
    assert_eq!(seqs.len(), N as usize, "no duplicate delivered locally");
}

/// `shutdown` with a timeout while the server hangs (SIGSTOP), with
/// publishes in flight, events in the ring and an importer: it returns
/// (abandoning what is not acknowledged, as documented) instead of waiting
/// on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_returns_while_the_server_hangs() {
    let (server, url, stream) = own_stream("SHUTHANG");
    let bus = Bus::<Env>::new();
    let a = Bridge::connect(
        &url,
        &bus,
        retrying(&stream, "sh.>", 4, 200, 10).import("sh-self", "other.>"),
    )
    .await
    .expect("bridge");
    server.pause().expect("SIGSTOP");
    for i in 0..20 {
        bus.publish_to("sh.a", event("sh.a", "t", i)).unwrap();
    }
    wait_until("publishes in flight", Duration::from_secs(30), || {
        a.stats().export.received >= 4
    })
    .await;
    // The bound is a hang detector, not a measurement: shutdown's own
    // timeout is 300 ms.
    let stats = tokio::time::timeout(
        Duration::from_secs(30),
        a.shutdown(Duration::from_millis(300)),
    )
    .await
    .expect("shutdown returns while the server hangs");
    assert_eq!(stats.state, BridgeState::Closed, "{stats:?}");
    // Nothing could be acknowledged; every event is counted as given up.
    let e = stats.export;
    assert_eq!((e.acked, e.abandoned), (0, 20), "{stats:?}");
    server.resume().expect("SIGCONT");
}

/// The importing bridge is dropped while its delivery thread is blocked on
/// a stalled lossless local subscriber: the drop returns; once the
/// subscriber reads again the thread ends; the next run with the same
/// durable name receives what the dropped one did not acknowledge
/// (at-least-once), and no run delivers an event twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_an_importer_blocked_on_a_stalled_subscriber() {
    const N: u64 = 50;
    let scope = Scope::new("dropimport");
    let bus_a = Bus::<Env>::new();
    let a = Bridge::connect(&scope.url, &bus_a, scope.config().export("di.>"))
        .await
        .expect("exporter");
    for i in 0..N {
        bus_a.publish_to("di.a", event("di.a", "a", i)).unwrap();
    }
    a.flush(Duration::from_secs(30)).await.expect("flush");

    let bus_b = Bus::<Env>::new();
    let mut stalled = bus_b
        .subscribe_with(Filter::pattern("di.>").unwrap(), lossless(2))
        .unwrap();
    let config = || {
        scope
            .config()
            .import("di-durable", "di.>")
            .ack_wait(Duration::from_millis(500))
            .pull_batch(8)
    };
    let b = Bridge::connect(&scope.url, &bus_b, config())
        .await
        .expect("importer");
    // The ring holds 2, a third publish blocks the delivery thread.
    wait_until(
        "the delivery thread to block",
        Duration::from_secs(30),
        || {
            let s = b.stats().import;
            s.delivered == 2 && s.received > 3
        },
    )
    .await;
    drop(b);
    // Read what the stalled subscriber holds, and the one blocked publish.
    let first = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&first);
    let reader = std::thread::spawn(move || {
        while let Ok(e) = stalled.recv() {
            sink.lock().unwrap().push(e.payload().seq);
        }
    });
    // The next run, same durable: it gets what was not acknowledged.
    let bus_c = Bus::<Env>::new();
    let second = Collector::new(&bus_c, "di.>");
    let c = Bridge::connect(&scope.url, &bus_c, config())
        .await
        .expect("second run");
    wait_until(
        "the second run to cover the rest",
        Duration::from_secs(30),
        || {
            let all: HashSet<u64> = first
                .lock()
                .unwrap()
                .iter()
                .copied()
                .chain(second.snapshot().iter().map(|e| e.payload().seq))
                .collect();
            all.len() as u64 == N
        },
    )
    .await;
    c.shutdown(Duration::from_secs(10)).await;
    a.shutdown(Duration::from_secs(10)).await;
    // The first run's bus closes: its reader ends.
    bus_b.shutdown();
    tokio::task::spawn_blocking(move || reader.join().unwrap())
        .await
        .unwrap();
    let first = first.lock().unwrap().clone();
    let second: Vec<u64> = second.snapshot().iter().map(|e| e.payload().seq).collect();
    for (name, run) in [("first", &first), ("second", &second)] {
        let set: HashSet<u64> = run.iter().copied().collect();
        assert_eq!(set.len(), run.len(), "{name} run: no duplicate: {run:?}");
    }
    let all: HashSet<u64> = first.iter().chain(&second).copied().collect();
    assert_eq!(all, (0..N).collect::<HashSet<_>>(), "at-least-once");
    // The dropped bridge delivered nothing after the drop but the publish
    // that was blocked: the ring's 2 and that one.
    assert!(first.len() <= 3, "{first:?}");
}
