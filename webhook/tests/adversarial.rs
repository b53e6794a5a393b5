//! Adversarial paths: payloads whose `Serialize`, `Clone` or `Drop` panics
//! or fails, a receiver that calls back into the deliverer and the bus that
//! feeds it, and a deliverer dropped (or its runtime shut down) while
//! deliveries wait on a slow receiver.

mod common;

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use common::{eventually, fixture, serve};
use evbus_core::{Bus, Envelope, Filter, Overflow, Pattern, SubscribeOptions};
use evbus_journal::{Journal, JournalOptions, SyncPolicy};
use evbus_testkit::{Evil, EvilKind, Mode};
use evbus_webhook::{
    AttemptQuery, Endpoint, Error, Receiver, Secret, Verifier, Webhooks, read_attempts,
};
use serde::Serialize;

/// A JSON payload that is an evbus event (topics are given per envelope).
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
struct Json(serde_json::Value);

impl evbus_core::Event for Json {
    type Kind = EvilKind;
    fn kind(&self) -> EvilKind {
        EvilKind
    }
}

fn lossless() -> SubscribeOptions {
    SubscribeOptions::new()
        .capacity(64)
        .overflow(Overflow::Block(Duration::MAX))
}

/// `webhooks` forwarding what `bus` publishes on `adv.>`, through a
/// lossless subscription.
fn forward_adv(webhooks: &Webhooks, bus: &Bus<Envelope<Evil>>) -> std::thread::JoinHandle<u64> {
    webhooks.forward(
        bus.subscribe_with(Filter::pattern("adv.>").unwrap(), lossless())
            .unwrap(),
    )
}

/// Shuts `bus` down and returns what its forwarding thread sent.
async fn shut_and_join<T: Send + 'static>(
    bus: &Bus<Envelope<T>>,
    forwarder: std::thread::JoinHandle<u64>,
) -> u64
where
    Envelope<T>: evbus_core::Event,
{
    bus.shutdown();
    tokio::task::spawn_blocking(move || forwarder.join())
        .await
        .unwrap()
        .expect("the forwarding thread did not panic")
}

/// Registers the endpoint `name` at `url`, signed with `secret`, for the
/// topics `pattern` matches.
fn register(webhooks: &Webhooks, name: &str, url: &str, secret: Secret, pattern: &str) {
    webhooks
        .register(
            Endpoint::builder(name, url)
                .secret(secret)
                .topic(Pattern::parse(pattern).unwrap())
                .build()
                .unwrap(),
        )
        .unwrap();
}

/// Sends `Evil { seq, mode }` directly; `send` must refuse it as
/// unserializable: returns why.
fn refusal(webhooks: &Webhooks, seq: u64, mode: Mode) -> String {
    match webhooks.send(&Evil::envelope(seq, mode)) {
        Err(Error::Serialize(why)) => why,
        other => panic!("not refused as unserializable: {other:?}"),
    }
}

/// An envelope on `topic` holding `{"n": n}`.
fn numbered(topic: &str, n: &impl Serialize) -> Envelope<serde_json::Value> {
    Envelope::on(topic, serde_json::json!({ "n": n })).unwrap()
}

/// A deliverer (journal in a new temporary directory, manual clock) whose
/// tasks run on a runtime of its own, with one worker, which the caller
/// may shut down.
fn on_own_runtime() -> (tempfile::TempDir, tokio::runtime::Runtime, Webhooks) {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let journal =
        Journal::create(dir.path(), JournalOptions::new().sync(SyncPolicy::Never)).unwrap();
    let webhooks = Webhooks::builder(journal)
        .clock(Arc::new(evbus_webhook::ManualClock::new()))
        .runtime(rt.handle().clone())
        .build()
        .unwrap();
    (dir, rt, webhooks)
}

/// `send` refuses a payload whose `Serialize` panics or fails with a typed
/// error and counts it; the forwarding thread skips such events and goes
/// on; a payload whose `Clone` panics panics in the bus's publisher and
/// stops nothing downstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_and_failing_payloads_are_refused_counted_and_skipped() {
    let f = fixture();
    let secret = Secret::generate();
    let srv = serve("adv", &secret).await;
    register(&f.webhooks, "adv", &srv.url(), secret, "adv.>");

    // Directly: typed errors.
    let why = refusal(&f.webhooks, 100, Mode::SerializePanics);
    assert!(why.contains("serialize panicked"), "{why}");
    let why = refusal(&f.webhooks, 101, Mode::SerializeFails);
    assert!(why.contains("refuses to serialize"), "{why}");
    assert_eq!(f.webhooks.serialize_errors(), 2);

    // Through a bus and `forward`, with a second local subscriber so the
    // bus clones.
    let bus = Bus::<Envelope<Evil>>::new();
    let forwarder = forward_adv(&f.webhooks, &bus);
    let local = bus
        .subscribe_with(Filter::pattern("adv.>").unwrap(), lossless())
        .unwrap();
    let local_unsub = local.unsubscriber();
    let local_thread = std::thread::spawn(move || {
        let mut local = local;
        let mut n = 0u64;
        while local.recv().is_ok() {
            n += 1;
        }
        n
    });
    let modes = Mode::interleaved(&[
        Mode::SerializePanics,
        Mode::SerializeFails,
        Mode::ClonePanics,
    ]);
    let mut fine = 0u64;
    let mut clone_panics = 0;
    let mut seq = 0;
    for _ in 0..3 {
        for &mode in &modes {
            let published =
                catch_unwind(AssertUnwindSafe(|| bus.publish(Evil::envelope(seq, mode))));
            match mode {
                Mode::ClonePanics => {
                    assert!(published.is_err(), "the clone panic reaches the publisher");
                    clone_panics += 1;
                }
                _ => {
                    published.unwrap().unwrap();
                }
            }
            if mode == Mode::Fine {
                fine += 1;
            }
            seq += 1;
        }
    }
    let forwarded = shut_and_join(&bus, forwarder).await;
    local_unsub.unsubscribe();
    let local_n = tokio::task::spawn_blocking(move || local_thread.join())
        .await
        .unwrap()
        .unwrap();
    // The clone-panicking events reach at most one of the two rings (the
    // one that gets the event moved, not cloned).
    assert!(
        (fine..=fine + clone_panics).contains(&forwarded),
        "forwarded {forwarded} of {fine} fine"
    );
    // The local subscriber takes every event, those that do not
    // serialize too.
    let others = seq - clone_panics;
    assert!(
        (others..=seq).contains(&local_n),
        "local {local_n} of {others}"
    );
    assert_eq!(f.webhooks.serialize_errors(), 2 + 6);
    // The same count in the stats and in their Prometheus text.
    let stats = f.webhooks.stats();
    assert_eq!((stats.serialize_errors, stats.drop_panics), (2 + 6, 0));
    let text = stats.to_prometheus_text();
    assert!(
        text.lines()
            .any(|l| l == "evbus_webhook_serialize_errors_total 8"),
        "{text}"
    );
    f.webhooks.wait_idle().await;
    srv.hook
        .wait_for("every forwarded event", |h| h.len() as u64 >= forwarded)
        .await;
    let stats = f.webhooks.stats();
    assert_eq!(stats.endpoints[0].delivery_success_total, forwarded);
    assert_eq!(srv.hook.receiver.accepted(), forwarded);
    assert_eq!(srv.hook.receiver.duplicates(), 0);
}

/// Payloads whose `Drop` panics in the forwarding thread, which drops each
/// envelope after sending it: the panic is contained and counted in
/// `drop_panics`, the event is delivered all the same, and the thread goes
/// on with every later event (before the fix, it ended at the first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_drop_in_the_forwarding_thread_is_counted_and_the_forward_goes_on() {
    let f = fixture();
    let secret = Secret::generate();
    let srv = serve("drop", &secret).await;
    register(&f.webhooks, "drop", &srv.url(), secret, "adv.>");
    let bus = Bus::<Envelope<Evil>>::new();
    // The forward's is the only subscription: the publish moves each event
    // into its ring and drops nothing here.
    let forwarder = forward_adv(&f.webhooks, &bus);
    let modes = Mode::interleaved(&[Mode::DropPanics]);
    let mut seq = 0u64;
    for _ in 0..3 {
        for &mode in &modes {
            bus.publish(Evil::envelope(seq, mode)).unwrap();
            seq += 1;
        }
    }
    let forwarded = shut_and_join(&bus, forwarder).await;
    assert_eq!(forwarded, seq, "every event sent");
    assert_eq!(f.webhooks.drop_panics(), 3);
    assert_eq!(f.webhooks.serialize_errors(), 0);
    // The same count in the stats and in their Prometheus text.
    let stats = f.webhooks.stats();
    assert_eq!((stats.drop_panics, stats.serialize_errors), (3, 0));
    let text = stats.to_prometheus_text();
    assert!(
        text.lines()
            .any(|l| l == "evbus_webhook_drop_panics_total 3"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE evbus_webhook_drop_panics_total counter\n"),
        "{text}"
    );
    f.webhooks.wait_idle().await;
    srv.hook
        .wait_for("every event", |h| h.len() as u64 >= seq)
        .await;
    let stats = f.webhooks.stats();
    assert_eq!(stats.endpoints[0].delivery_success_total, seq);
    assert_eq!(srv.hook.receiver.accepted(), seq);
    assert_eq!(srv.hook.receiver.duplicates(), 0);
}

/// Serves `app` on a free local port, on a task of this runtime: its
/// address and the task.
async fn serve_hook(app: Router) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, server)
}

/// A request's headers and body.
type Request = (HeaderMap, Vec<u8>);

/// What the looping receiver shares with its handler.
struct Loop {
    receiver: Receiver,
    bus: Bus<Envelope<Json>>,
    webhooks: Webhooks,
    pings: AtomicU64,
}

/// A handler that verifies, then publishes into the bus the deliverer
/// forwards (`loop.ping` causes `loop.pong`), and sends to the deliverer
/// directly (`loop.direct`) while the request is in flight.
async fn looping(State(l): State<Arc<Loop>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let Ok(received) = l.receiver.receive(&headers, &body) else {
        return StatusCode::UNAUTHORIZED;
    };
    if received.duplicate {
        return StatusCode::OK;
    }
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    if v["type"] == "loop.ping" {
        l.pings.fetch_add(1, Ordering::Relaxed);
        let n = v["data"]["n"].clone();
        // A lossless ring of 1 in front of the forwarder: this publish may
        // wait for the forwarding thread, which never waits on a delivery.
        let bus = l.bus.clone();
        let n2 = n.clone();
        tokio::task::spawn_blocking(move || {
            bus.publish_to(
                "loop.pong",
                Envelope::on("loop.pong", Json(serde_json::json!({ "n": n2 }))).unwrap(),
            )
        })
        .await
        .unwrap()
        .unwrap();
        let r = l.webhooks.send(&numbered("loop.direct", &n)).unwrap();
        assert_eq!(r.queued, 1);
        let _ = l.webhooks.stats();
    }
    StatusCode::OK
}

/// A receiver whose handler publishes into the bus that feeds the
/// deliverer, and sends to the deliverer directly, while its own delivery
/// is in flight; and whose alert hook re-enters the receiver and the
/// deliverer. Nothing deadlocks and every event arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_calls_back_into_the_bus_and_deliverer_does_not_deadlock() {
    const N: u64 = 20;
    let f = fixture();
    let secret = Secret::generate();
    let bus = Bus::<Envelope<Json>>::new();

    // The alert hook: a rejected signature re-enters the receiver once
    // with the same bad request (a nested rejection and alert), and sends
    // an event to the deliverer each time.
    let this: Arc<OnceLock<Receiver>> = Arc::new(OnceLock::new());
    let bad: Arc<Mutex<Option<Request>>> = Arc::new(Mutex::new(None));
    let reentered = Arc::new(AtomicBool::new(false));
    let alerts = Arc::new(AtomicU64::new(0));
    let receiver = {
        let this = Arc::clone(&this);
        let bad = Arc::clone(&bad);
        let reentered = Arc::clone(&reentered);
        let alerts = Arc::clone(&alerts);
        let webhooks = f.webhooks.clone();
        Receiver::new("loop", Verifier::new(secret.clone())).on_alert(move |_| {
            let n = alerts.fetch_add(1, Ordering::Relaxed);
            webhooks.send(&numbered("loop.alert", &n)).unwrap();
            if !reentered.swap(true, Ordering::Relaxed) {
                let (h, b) = bad.lock().unwrap().clone().unwrap();
                let again = this.get().unwrap().receive(&h, &b);
                assert!(again.is_err());
            }
        })
    };
    this.set(receiver.clone()).unwrap();

    let state = Arc::new(Loop {
        receiver: receiver.clone(),
        bus: bus.clone(),
        webhooks: f.webhooks.clone(),
        pings: AtomicU64::new(0),
    });
    let (addr, server) = serve_hook(
        Router::new()
            .route("/hook", post(looping))
            .with_state(Arc::clone(&state)),
    )
    .await;
    register(
        &f.webhooks,
        "loop",
        &format!("http://{addr}/hook"),
        secret.clone(),
        "loop.>",
    );
    let forwarder = f.webhooks.forward(
        bus.subscribe_with(
            Filter::pattern("loop.>").unwrap(),
            SubscribeOptions::new()
                .capacity(1)
                .overflow(Overflow::Block(Duration::MAX)),
        )
        .unwrap(),
    );

    // A tampered request straight to the receiver: rejected, alert hook.
    let mut headers = HeaderMap::new();
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let body = br#"{"type":"loop.evil"}"#.to_vec();
    headers.insert("webhook-id", "msg_tampered".parse().unwrap());
    headers.insert("webhook-timestamp", ts.to_string().parse().unwrap());
    headers.insert(
        "webhook-signature",
        evbus_webhook::sign::signature_header(
            std::slice::from_ref(&secret),
            "msg_tampered",
            ts,
            b"other",
        )
        .parse()
        .unwrap(),
    );
    *bad.lock().unwrap() = Some((headers.clone(), body.clone()));
    let client = reqwest::Client::new();
    let mut req = client.post(format!("http://{addr}/hook")).body(body);
    for (k, v) in &headers {
        req = req.header(k.as_str(), v.to_str().unwrap());
    }
    assert_eq!(req.send().await.unwrap().status(), 401);

    let publisher_bus = bus.clone();
    tokio::task::spawn_blocking(move || {
        for n in 0..N {
            publisher_bus
                .publish_to(
                    "loop.ping",
                    Envelope::on("loop.ping", Json(serde_json::json!({ "n": n }))).unwrap(),
                )
                .unwrap();
        }
    })
    .await
    .unwrap();
    // N pings, N pongs, N direct sends, 2 alert events.
    let want = 3 * N + 2;
    eventually("every event at the receiver", || {
        receiver.accepted() >= want
    })
    .await;
    f.webhooks.wait_idle().await;
    assert_eq!(receiver.accepted(), want);
    assert_eq!(receiver.duplicates(), 0);
    assert_eq!(receiver.rejected(), 2, "the request and its re-entry");
    assert_eq!(alerts.load(Ordering::Relaxed), 2);
    assert_eq!(state.pings.load(Ordering::Relaxed), N);
    let s = &f.webhooks.stats().endpoints[0];
    assert_eq!(s.delivery_success_total, want);
    let forwarded = shut_and_join(&bus, forwarder).await;
    assert_eq!(forwarded, 2 * N);
    server.abort();
}

/// A slow receiver: each request waits until the gate opens.
struct Gate {
    receiver: Receiver,
    open: tokio::sync::watch::Receiver<bool>,
    arrived: AtomicU64,
}

async fn gated(State(g): State<Arc<Gate>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    g.arrived.fetch_add(1, Ordering::Relaxed);
    let mut open = g.open.clone();
    let _ = open.wait_for(|o| *o).await;
    match g.receiver.receive(&headers, &body) {
        Ok(_) => StatusCode::OK,
        Err(_) => StatusCode::UNAUTHORIZED,
    }
}

async fn gated_server(secret: &Secret) -> (String, Arc<Gate>, tokio::sync::watch::Sender<bool>) {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let gate = Arc::new(Gate {
        receiver: Receiver::new("gated", Verifier::new(secret.clone())),
        open: rx,
        arrived: AtomicU64::new(0),
    });
    let (addr, _server) = serve_hook(
        Router::new()
            .route("/hook", post(gated))
            .with_state(Arc::clone(&gate)),
    )
    .await;
    (format!("http://{addr}/hook"), gate, tx)
}

/// Polls (bounded) until the journal's writer lock is free: the
/// deliverer's journal thread has closed it, so every delivery task is
/// gone.
async fn journal_released(dir: &std::path::Path) {
    eventually("the journal closed by the deliverer", || {
        Journal::open(dir, JournalOptions::new().sync(SyncPolicy::Never)).is_ok()
    })
    .await;
}

/// The last `Webhooks` handle is dropped while every delivery waits on a
/// slow receiver: as documented, accepted events still finish (the
/// receiver gets each once, the journal records each success), and then
/// the journal thread closes the journal. Nothing panics or hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_deliverer_mid_delivery_finishes_what_was_accepted() {
    const N: u64 = 5;
    let f = fixture();
    let secret = Secret::generate();
    let (url, gate, open) = gated_server(&secret).await;
    register(&f.webhooks, "slow", &url, secret, "slow.>");
    for n in 0..N {
        let r = f.webhooks.send(&numbered("slow.x", &n)).unwrap();
        assert_eq!(r.queued, 1);
    }
    eventually("every request at the receiver", || {
        gate.arrived.load(Ordering::Relaxed) >= N
    })
    .await;
    let dir = f.dir.path().to_path_buf();
    // The manual clock is frozen: no attempt times out while it waits.
    drop(f.webhooks);
    assert!(
        Journal::open(&dir, JournalOptions::new()).is_err(),
        "deliveries in flight keep the journal open"
    );
    open.send_replace(true);
    journal_released(&dir).await;
    let attempts = read_attempts(&dir, &AttemptQuery::default()).unwrap();
    assert_eq!(attempts.len() as u64, N, "{attempts:?}");
    assert!(attempts.iter().all(|a| a.succeeded()), "{attempts:?}");
    assert_eq!(gate.receiver.accepted(), N);
    assert_eq!(gate.receiver.duplicates(), 0);
}

/// The deliverer's runtime is shut down while every delivery waits on a
/// slow receiver (on another runtime): the tasks are cancelled, as
/// documented; each event is dead-lettered as cancelled, and the journal
/// thread then closes the journal, which holds no attempt for the cut-off
/// requests. Nothing panics or hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutting_down_the_deliverers_runtime_mid_delivery_cancels_cleanly() {
    const N: u64 = 5;
    let secret = Secret::generate();
    let (url, gate, open) = gated_server(&secret).await;
    let (dir, rt, webhooks) = on_own_runtime();
    register(&webhooks, "slow", &url, secret, "slow.>");
    for n in 0..N {
        webhooks.send(&numbered("slow.x", &n)).unwrap();
    }
    eventually("every request at the receiver", || {
        gate.arrived.load(Ordering::Relaxed) >= N
    })
    .await;
    // The handle goes first, then the runtime (dropped off the async
    // context: it waits for its worker).
    drop(webhooks);
    tokio::task::spawn_blocking(move || drop(rt)).await.unwrap();
    journal_released(dir.path()).await;
    let attempts = read_attempts(dir.path(), &AttemptQuery::default()).unwrap();
    assert!(attempts.is_empty(), "{attempts:?}");
    // Each cancelled event is a dead letter, for a later replay.
    let dead = evbus_webhook::read_dead_letters(dir.path(), None).unwrap();
    assert_eq!(dead.len() as u64, N, "{dead:?}");
    assert!(
        dead.iter()
            .all(|d| d.error.starts_with("cancelled") && d.attempts == 0),
        "{dead:?}"
    );
    // The receiver, released now, answers into closed connections.
    open.send_replace(true);
    assert_eq!(gate.receiver.duplicates(), 0);
}

/// Events sent after the deliverer's runtime is gone cannot run: they are
/// dead-lettered as cancelled (in the journal, the counters and the
/// alerts), and `wait_idle` returns instead of waiting for them forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sending_after_the_runtime_is_gone_dead_letters_and_wait_idle_returns() {
    let secret = Secret::generate();
    let srv = serve("gone", &secret).await;
    let (_dir, rt, webhooks) = on_own_runtime();
    register(&webhooks, "gone", &srv.url(), secret, "gone.>");
    tokio::task::spawn_blocking(move || drop(rt)).await.unwrap();
    let mut alerts = webhooks.alerts();
    for n in 0..3 {
        webhooks.send(&numbered("gone.x", &n)).unwrap();
    }
    // The bound is a hang detector: `wait_idle` must not wait for tasks
    // that can never run.
    tokio::time::timeout(Duration::from_secs(30), webhooks.wait_idle())
        .await
        .expect("wait_idle returns");
    let s = &webhooks.stats().endpoints[0];
    assert_eq!(s.outstanding, 0, "{s:?}");
    assert_eq!(s.delivery_dead_letter_total, 3, "{s:?}");
    let dead = webhooks.dead_letters(Some("gone")).await.unwrap();
    assert_eq!(dead.len(), 3, "{dead:?}");
    assert!(
        dead.iter().all(|d| d.error.contains("cancelled")),
        "{dead:?}"
    );
    let mut n = 0;
    while let Ok(a) = alerts.try_recv() {
        if matches!(a, evbus_webhook::Alert::DeadLettered { .. }) {
            n += 1;
        }
    }
    assert_eq!(n, 3);
    assert!(srv.hook.hits().is_empty());
}
