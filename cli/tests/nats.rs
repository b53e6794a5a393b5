//! `evbus replay --to nats://..` against a real `nats-server` (JetStream),
//! started by the test; the stream is read back through an evbus-nats
//! bridge.

mod common;

use std::time::Duration;

use common::evbus;
use evbus_core::{Bus, Envelope, Event, EventKind, Filter, SubscribeOptions};
use evbus_nats::{Bridge, BridgeConfig, server::NatsServer};
use predicates::prelude::*;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
struct Any(serde_json::Value);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AnyKind;

impl EventKind for AnyKind {
    const ALL: &'static [Self] = &[AnyKind];
    fn topic(self) -> &'static str {
        "test.any"
    }
    fn index(self) -> usize {
        0
    }
}

impl Event for Any {
    type Kind = AnyKind;
    fn kind(&self) -> AnyKind {
        AnyKind
    }
}

#[test]
fn replay_to_nats_stores_every_envelope_in_the_stream() {
    let server = NatsServer::start().expect("nats-server on the PATH (or $EVBUS_NATS_SERVER)");
    let dir = common::orders_journal(4); // 6 records
    evbus()
        .args([
            "replay",
            "--to",
            &server.url(),
            "--stream",
            "ORDERS",
            "--topic",
            "orders.>",
        ])
        .arg(dir.path())
        .assert()
        .success()
        .stderr(predicate::str::contains("replay report: read 6, sent 6"))
        .stderr(predicate::str::contains(
            "stream ORDERS: sent 6, acknowledged 6",
        ));

    // Read the stream back into a bus of our own.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let bus = Bus::<Envelope<Any>>::new();
    let mut sub = bus
        .subscribe_with(
            Filter::pattern(">").unwrap(),
            SubscribeOptions::new().capacity(64),
        )
        .unwrap();
    let bridge = runtime
        .block_on(Bridge::connect(
            &server.url(),
            &bus,
            BridgeConfig::new("ORDERS").import("check", ">"),
        ))
        .unwrap();
    // A bound, not a timing assertion.
    let got: Vec<Envelope<Any>> = (0..6)
        .map(|_| {
            sub.recv_timeout(Duration::from_secs(30))
                .expect("an imported envelope")
        })
        .collect();
    runtime.block_on(bridge.shutdown(Duration::from_secs(5)));
    assert_eq!(got[0].topic(), "orders.placed");
    assert_eq!(
        got[0].payload().0,
        serde_json::json!({"order": 0, "total": 0})
    );
    assert_eq!(got[1].topic(), "orders.shipped");
    assert_eq!(
        got[1].replay().map(|m| (m.dry_run, m.recorded_seq)),
        Some((false, 1))
    );

    // A bad URL is a usage error; no server is a failure that says what to do.
    evbus()
        .args(["replay", "--to", "http://127.0.0.1:4222"])
        .arg(dir.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("nats://"));
    let port = common::unused_port();
    evbus()
        .args(["replay", "--to", &format!("nats://127.0.0.1:{port}")])
        .arg(dir.path())
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cannot bridge"))
        .stderr(predicate::str::contains(
            "hint: check that nats-server runs there",
        ));
    // A dry run connects to nothing.
    evbus()
        .args([
            "replay",
            "--dry-run",
            "--to",
            &format!("nats://127.0.0.1:{port}"),
        ])
        .arg(dir.path())
        .assert()
        .success()
        .stderr(predicate::str::contains("would send 6"));
    drop(server);
}
