//! Bad input: typed errors, nothing lost, no panic.

mod support;

use std::time::Duration;

use evbus::{
    Bus,
    nats::{
        Bridge, BridgeConfig, BridgeError, ExportError, ImportError, SetupError, StartError,
        Storage, StreamSpec, SubjectError, async_nats, ensure_stream,
    },
};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_that_map_to_no_valid_subject_are_typed_errors() {
    let server = server();
    let url = server.url();
    let bus = Bus::<Env>::new();

    for prefix in ["ev..bus", "ev bus", "evbus.*", ".evbus"] {
        let config = BridgeConfig::new(&unique("BADP"))
            .prefix(prefix)
            .export(">");
        let err = Bridge::connect(&url, &bus, config).await.unwrap_err();
        assert!(
            matches!(err, StartError::Subject(SubjectError::InvalidPrefix { .. })),
            "{prefix}: {err}"
        );
    }
    // A pattern that is no evbus pattern.
    let config = BridgeConfig::new(&unique("BADT")).export("orders..x");
    let err = Bridge::connect(&url, &bus, config).await.unwrap_err();
    assert!(
        matches!(err, StartError::Subject(SubjectError::InvalidTopic { .. })),
        "{err}"
    );
    // Patterns the stream does not store.
    let stream = unique("NARROW");
    let narrow = StreamSpec::new(&stream, "evbus").subjects(["evbus.orders.>"]);
    for (export, import) in [(Some("billing.>"), None), (None, Some(">"))] {
        let mut config = BridgeConfig::new(&stream).stream(narrow.clone());
        if let Some(p) = export {
            config = config.export(p);
        }
        if let Some(p) = import {
            config = config.import("d", p);
        }
        let err = Bridge::connect(&url, &bus, config).await.unwrap_err();
        assert!(
            matches!(err, StartError::Subject(SubjectError::NotInStream { .. })),
            "{err}"
        );
    }
    // Nothing reached the server: no stream was made for the bad ones.
    assert!(
        Bridge::connect(
            &url,
            &bus,
            BridgeConfig::new(&stream).stream(narrow).export("orders.>")
        )
        .await
        .is_ok()
    );
    assert!(evbus::nats::subject::subject_for("evbus", "a..b").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_event_is_reported_and_the_others_flow() {
    let scope = Scope::new("big");
    let bus_a = Bus::<Env>::new();
    let a = Bridge::connect(&scope.url, &bus_a, scope.config().export("big.>"))
        .await
        .expect("exporter");
    let max = a.client().server_info().max_payload;
    assert!(max > 0);
    let bus_b = Bus::<Env>::new();
    let got = Collector::new(&bus_b, "big.>");
    let b = Bridge::connect(&scope.url, &bus_b, scope.config().import("big", "big.>"))
        .await
        .expect("importer");

    bus_a
        .publish_to("big.small", event("big.small", "a", 0))
        .unwrap();
    let mut huge = event("big.huge", "a", 1);
    huge.payload_mut().body = "x".repeat(max + 1);
    let huge_id = huge.id();
    bus_a.publish_to("big.huge", huge).unwrap();
    bus_a
        .publish_to("big.small", event("big.small", "a", 2))
        .unwrap();
    a.flush(Duration::from_secs(30))
        .await
        .expect("flush resolves the oversized event too");

    let errors = a.take_errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    match &errors[0] {
        BridgeError::Export(ExportError::Oversized {
            id, size, max: m, ..
        }) => {
            assert_eq!(*id, huge_id);
            assert!(size > m);
            assert_eq!(*m, max);
        }
        other => panic!("{other:?}"),
    }
    let stats = a.stats().export;
    assert_eq!((stats.received, stats.acked, stats.oversized), (3, 2, 1));
    wait_until("the small events", Duration::from_secs(30), || {
        got.len() >= 2
    })
    .await;
    let seqs: Vec<u64> = got.snapshot().iter().map(|e| e.payload().seq).collect();
    assert_eq!(seqs, [0, 2]);
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicting_stream_is_a_typed_error_and_is_left_alone() {
    let server = server();
    let url = server.url();
    let client = async_nats::connect(&url).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    let name = unique("CONFLICT");
    let prefix = unique("conflict");
    let spec = StreamSpec::new(&name, &prefix).storage(Storage::Memory);
    ensure_stream(&js, &spec, true).await.expect("created");
    // The same spec again: checked, fine.
    ensure_stream(&js, &spec, true).await.expect("checked");

    let other = StreamSpec::new(&name, &prefix)
        .storage(Storage::File)
        .duplicate_window(Duration::from_secs(5))
        .subjects([format!("{prefix}.orders.>")]);
    match ensure_stream(&js, &other, true).await {
        Err(SetupError::Conflict { stream, mismatches }) => {
            assert_eq!(stream, name);
            let fields: Vec<&str> = mismatches.iter().map(|m| m.field).collect();
            assert_eq!(fields, ["subjects", "storage", "duplicate_window"]);
        }
        other => panic!("{other:?}"),
    }
    // Through the bridge too.
    let bus = Bus::<Env>::new();
    let config = BridgeConfig::new(&name).prefix(&prefix).export(">");
    let err = Bridge::connect(&url, &bus, config).await.unwrap_err();
    assert!(
        matches!(err, StartError::Setup(SetupError::Conflict { .. })),
        "{err}"
    );
    // Unchanged on the server.
    let mut stream = js.get_stream(&name).await.unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(
        info.config.storage,
        async_nats::jetstream::stream::StorageType::Memory
    );
    // Missing, and not allowed to create.
    let missing = StreamSpec::new(&unique("MISSING"), &unique("missing"));
    assert!(matches!(
        ensure_stream(&js, &missing, false).await,
        Err(SetupError::Missing(_))
    ));
    assert!(matches!(
        ensure_stream(&js, &StreamSpec::new("bad.name", "x"), true).await,
        Err(SetupError::InvalidSpec(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_messages_are_rejected_and_the_rest_delivered() {
    let scope = Scope::new("foreign");
    let bus = Bus::<Env>::new();
    let got = Collector::new(&bus, ">");
    let b = Bridge::connect(&scope.url, &bus, scope.config().import("f", ">"))
        .await
        .expect("importer");

    let client = async_nats::connect(&scope.url).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    let good = event("ok.one", "raw", 1);
    let good_json = serde_json::to_vec(&good).unwrap();
    let sends: Vec<(String, Vec<u8>)> = vec![
        (format!("{}.ok.zero", scope.prefix), b"not json".to_vec()),
        // Not an evbus topic ('$').
        (format!("{}.bad$topic", scope.prefix), good_json.clone()),
        // Valid JSON, the envelope says another topic.
        (format!("{}.ok.other", scope.prefix), good_json.clone()),
        (format!("{}.ok.one", scope.prefix), good_json),
    ];
    for (subject, body) in sends {
        js.publish(subject, body.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    wait_until("the good event", Duration::from_secs(30), || got.len() >= 1).await;
    wait_until("the rejections", Duration::from_secs(30), || {
        b.stats().import.rejected >= 3
    })
    .await;
    let events = got.snapshot();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].id(), good.id());
    let errors = b.take_errors();
    assert!(
        matches!(errors[0], BridgeError::Import(ImportError::Decode { .. })),
        "{errors:?}"
    );
    assert!(
        matches!(errors[1], BridgeError::Import(ImportError::Subject { .. })),
        "{errors:?}"
    );
    assert!(
        matches!(
            errors[2],
            BridgeError::Import(ImportError::TopicMismatch { .. })
        ),
        "{errors:?}"
    );
    let stats = b.shutdown(Duration::from_secs(10)).await;
    assert_eq!(stats.import.delivered, 1);
}
