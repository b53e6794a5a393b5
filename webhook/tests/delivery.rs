//! Delivery against real HTTP receivers on loopback, with faults injected
//! at the receiver and time on a manual clock.

mod common;

use std::{
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{Fault, dropper, fixture, free_port, hook, serve, serve_on};
use evbus_core::{Envelope, Pattern};
use evbus_webhook::{
    Alert, AttemptQuery, BreakerPolicy, BreakerState, Endpoint, RateLimit, Receiver, RetryPolicy,
    Secret, Verifier, VerifyError, sign,
};

fn policy(attempts: u32, base_ms: u64) -> RetryPolicy {
    RetryPolicy::builder()
        .max_attempts(attempts)
        .base(Duration::from_millis(base_ms))
        .factor(2.0)
        .max_delay(Duration::from_secs(60))
        .jitter(0.0)
        .build()
        .unwrap()
}

fn event(topic: &str, n: u64) -> Envelope<serde_json::Value> {
    Envelope::on(topic, serde_json::json!({ "n": n })).unwrap()
}

fn drain(rx: &mut tokio::sync::broadcast::Receiver<Alert>) -> Vec<Alert> {
    let mut v = Vec::new();
    while let Ok(a) = rx.try_recv() {
        v.push(a);
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_verify_at_the_receiver_and_bad_ones_are_rejected() {
    let f = fixture();
    let old = Secret::generate();
    let new = Secret::generate();
    // Two receivers: one still on the old secret, one already on the new.
    let on_old = serve("old", &old).await;
    let on_new = serve("new", &new).await;
    for (name, srv) in [("old", &on_old), ("new", &on_new)] {
        f.webhooks
            .register(
                Endpoint::builder(name, &srv.url())
                    .secret(old.clone())
                    .secret(new.clone())
                    .build()
                    .unwrap(),
            )
            .unwrap();
    }
    let e = event("plugins.released", 1).with_tenant("acme");
    assert_eq!(f.webhooks.send(&e).unwrap().queued, 2);
    f.webhooks.wait_idle().await;
    for srv in [&on_old, &on_new] {
        let hits = srv.hook.hits();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].status, 200);
        assert_eq!(hits[0].id, evbus_webhook::webhook_id(e.id()));
        let body: serde_json::Value = serde_json::from_slice(&hits[0].body).unwrap();
        assert_eq!(body["type"], "plugins.released");
        assert_eq!(body["tenant"], "acme");
        assert_eq!(body["data"]["n"], 1);
    }

    // Requests made by hand to the same receiver: tampered body, wrong
    // secret, old timestamp. Each is rejected and raises an alert.
    let alerts = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&alerts);
    let gate = Receiver::new("gate", Verifier::new(old.clone()))
        .on_alert(move |a| sink.lock().unwrap().push(a));
    let srv = serve("gate", &old).await;
    let client = reqwest::Client::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let body = br#"{"n":1}"#;
    let post = |id: &str, ts: u64, sig: String, body: &'static [u8]| {
        client
            .post(srv.url())
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig)
            .body(body)
            .send()
    };
    let good = sign::sign(&old, "msg_1", now, body);
    assert_eq!(
        post("msg_1", now, good.clone(), body)
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        post(
            "msg_2",
            now,
            sign::sign(&old, "msg_2", now, body),
            br#"{"n":2}"#
        )
        .await
        .unwrap()
        .status(),
        401
    );
    assert_eq!(
        post("msg_3", now, sign::sign(&new, "msg_3", now, body), body)
            .await
            .unwrap()
            .status(),
        401
    );
    let stale = now - 600;
    assert_eq!(
        post("msg_4", stale, sign::sign(&old, "msg_4", stale, body), body)
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(srv.hook.receiver.rejected(), 3);
    assert_eq!(srv.hook.receiver.accepted(), 1);

    // The same checks through a `Receiver` with an alert hook.
    let mut headers = http::HeaderMap::new();
    headers.insert("webhook-id", "msg_1".parse().unwrap());
    headers.insert("webhook-timestamp", now.to_string().parse().unwrap());
    headers.insert("webhook-signature", good.parse().unwrap());
    assert!(!gate.receive(&headers, body).unwrap().duplicate);
    assert!(gate.receive(&headers, body).unwrap().duplicate);
    assert_eq!(
        gate.receive(&headers, br#"{"n":2}"#),
        Err(VerifyError::NoMatch)
    );
    headers.insert("webhook-timestamp", stale.to_string().parse().unwrap());
    assert!(matches!(
        gate.receive(&headers, body),
        Err(VerifyError::TooOld { .. })
    ));
    let alerts = alerts.lock().unwrap().clone();
    assert_eq!(alerts.len(), 2);
    assert!(
        matches!(&alerts[0], Alert::SignatureRejected { receiver, webhook_id: Some(id), error: VerifyError::NoMatch } if receiver == "gate" && id == "msg_1")
    );
    assert_eq!(
        (gate.accepted(), gate.duplicates(), gate.rejected()),
        (1, 1, 2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_follow_the_policy_and_honour_retry_after() {
    let f = fixture();
    let secret = Secret::generate();
    let srv = serve("r", &secret).await;
    srv.hook.script([
        Fault::Status(500),
        Fault::RetryAfter(429, 7),
        Fault::RetryAfter(503, 1),
        Fault::Ok,
    ]);
    f.webhooks
        .register(
            Endpoint::builder("r", &srv.url())
                .secret(secret)
                .retry(policy(4, 1000))
                .build()
                .unwrap(),
        )
        .unwrap();
    let e = event("orders.placed", 7).with_tenant("acme");
    f.webhooks.send(&e).unwrap();
    let w = &f.webhooks;
    f.drive(Duration::from_millis(100), "delivery", || {
        w.stats().endpoint("r").unwrap().delivery_success_total == 1
    })
    .await;
    let hits = srv.hook.hits();
    assert_eq!(
        hits.iter().map(|h| h.status).collect::<Vec<_>>(),
        [500, 429, 503, 200]
    );
    // The webhook-id is the same on every attempt.
    assert!(hits.iter().all(|h| h.id == hits[0].id));

    let attempts = w
        .attempts(&AttemptQuery {
            event: Some(e.id()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(attempts.len(), 4);
    assert_eq!(
        attempts.iter().map(|a| a.attempt).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert_eq!(
        attempts.iter().map(|a| a.status).collect::<Vec<_>>(),
        [Some(500), Some(429), Some(503), Some(200)]
    );
    // Backoff 1 s, then Retry-After 7 s over the 2 s backoff, then the 4 s
    // backoff over Retry-After 1 s.
    assert_eq!(
        attempts.iter().map(|a| a.retry_in_ms).collect::<Vec<_>>(),
        [Some(1000), Some(7000), Some(4000), None]
    );
    for pair in attempts.windows(2) {
        assert!(
            pair[1].started_ms >= pair[0].started_ms + pair[0].retry_in_ms.unwrap(),
            "{attempts:?}"
        );
    }
    assert_eq!(attempts[3].error, None);
    assert_eq!(attempts[0].error.as_deref(), Some("status 500"));
    assert!(
        attempts
            .iter()
            .all(|a| a.tenant.as_deref() == Some("acme") && a.endpoint == "r")
    );
    // Queryable through the journal's indexes too: by correlation id, by tenant.
    let by_corr = w
        .attempts(&AttemptQuery {
            correlation: Some(e.correlation_id()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_corr, attempts);
    let other = w
        .attempts(&AttemptQuery {
            tenant: Some("other".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(other.is_empty());
    let s = w.stats();
    let s = s.endpoint("r").unwrap();
    assert_eq!(
        (
            s.delivery_success_total,
            s.delivery_retry_total,
            s.delivery_failure_total,
            s.first_attempt_success_total
        ),
        (1, 3, 3, 0)
    );
    assert!(w.dead_letters(None).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_and_dropped_connections_dead_letter_and_replay() {
    let f = fixture();
    let secret = Secret::generate();
    let slow = serve("slow", &secret).await;
    slow.hook.set_default(Fault::Hang);
    let (drop_addr, _dropper) = dropper().await;
    f.webhooks
        .register(
            Endpoint::builder("slow", &slow.url())
                .secret(secret.clone())
                .timeout(Duration::from_secs(2))
                .retry(policy(2, 1000))
                .build()
                .unwrap(),
        )
        .unwrap();
    f.webhooks
        .register(
            Endpoint::builder("dropped", &format!("http://{drop_addr}/hook"))
                .secret(secret.clone())
                .retry(policy(3, 500))
                .build()
                .unwrap(),
        )
        .unwrap();
    let mut alerts = f.webhooks.alerts();
    let e = event("orders.placed", 1);
    assert_eq!(f.webhooks.send(&e).unwrap().queued, 2);
    let w = &f.webhooks;
    f.drive(Duration::from_millis(100), "dead letters", || {
        let s = w.stats();
        s.endpoint("slow").unwrap().delivery_dead_letter_total == 1
            && s.endpoint("dropped").unwrap().delivery_dead_letter_total == 1
    })
    .await;
    let slow_attempts = w
        .attempts(&AttemptQuery {
            endpoint: Some("slow".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(slow_attempts.len(), 2);
    assert!(
        slow_attempts
            .iter()
            .all(|a| a.error.as_deref() == Some("timeout") && a.status.is_none())
    );
    // Each timed out after 2 s on the manual clock.
    assert!(slow_attempts.iter().all(|a| a.latency_us >= 2_000_000));
    let dropped = w
        .attempts(&AttemptQuery {
            endpoint: Some("dropped".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(dropped.len(), 3);
    assert!(
        dropped
            .iter()
            .all(|a| a.status.is_none() && a.error.is_some())
    );
    let dead = w.dead_letters(None).await.unwrap();
    assert_eq!(dead.len(), 2);
    let slow_dead = dead.iter().find(|d| d.endpoint == "slow").unwrap();
    assert_eq!(
        (slow_dead.attempts, slow_dead.error.as_str()),
        (2, "timeout")
    );
    assert_eq!(
        dead.iter()
            .find(|d| d.endpoint == "dropped")
            .unwrap()
            .attempts,
        3
    );
    let alerts = drain(&mut alerts);
    assert_eq!(
        alerts
            .iter()
            .filter(|a| matches!(a, Alert::DeadLettered { .. }))
            .count(),
        2
    );

    // The receiver recovers; the dead letter is replayed with the same
    // id and body, once.
    slow.hook.set_default(Fault::Ok);
    assert_eq!(w.replay_dead_letters("slow").await.unwrap(), 1);
    w.wait_idle().await;
    let ok: Vec<_> = slow
        .hook
        .hits()
        .into_iter()
        .filter(|h| h.status == 200)
        .collect();
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].id, evbus_webhook::webhook_id(e.id()));
    assert_eq!(ok[0].body, slow_dead.body.as_bytes());
    assert_eq!(w.replay_dead_letters("slow").await.unwrap(), 0);
    assert_eq!(w.dead_letters(Some("slow")).await.unwrap().len(), 0);
    assert_eq!(w.dead_letters(Some("dropped")).await.unwrap().len(), 1);
    let replayed = w
        .attempts(&AttemptQuery {
            endpoint: Some("slow".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(replayed.last().unwrap().replay && replayed.last().unwrap().succeeded());
    // The replay keeps the event's correlation id.
    let by_corr = w
        .attempts(&AttemptQuery {
            correlation: Some(e.correlation_id()),
            endpoint: Some("slow".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_corr, replayed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_opens_on_a_dead_receiver_then_probes_and_closes() {
    let f = fixture();
    let secret = Secret::generate();
    let addr = free_port().await;
    f.webhooks
        .register(
            Endpoint::builder("flaky", &format!("http://{addr}/hook"))
                .secret(secret.clone())
                .retry(RetryPolicy::never())
                .breaker(BreakerPolicy {
                    consecutive_failures: 5,
                    open_for: Duration::from_secs(10),
                    ..BreakerPolicy::default()
                })
                .build()
                .unwrap(),
        )
        .unwrap();
    let mut alerts = f.webhooks.alerts();
    let w = &f.webhooks;
    let dead = |n| {
        move || {
            w.stats()
                .endpoint("flaky")
                .unwrap()
                .delivery_dead_letter_total
                == n
        }
    };
    // The receiver is down: five refused connections, one at a time.
    for i in 0..5 {
        w.send(&event("orders.placed", i)).unwrap();
        f.drive(Duration::ZERO, "a failure", dead(i + 1)).await;
    }
    let s = w.stats();
    assert_eq!(s.endpoint("flaky").unwrap().breaker, BreakerState::Open);
    let a = drain(&mut alerts);
    assert!(
        a.contains(&Alert::ConsecutiveFailures {
            endpoint: "flaky".into(),
            failures: 4
        }),
        "{a:?}"
    );
    assert!(a.contains(&Alert::BreakerOpened {
        endpoint: "flaky".into()
    }));
    // While open, no request is made: the attempt fails as "circuit open".
    let srv = serve_on(addr, hook("flaky", Verifier::new(secret.clone()))).await;
    let e6 = event("orders.placed", 6);
    w.send(&e6).unwrap();
    f.drive(Duration::ZERO, "refused", dead(6)).await;
    let a6 = w
        .attempts(&AttemptQuery {
            event: Some(e6.id()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(a6[0].error.as_deref(), Some("circuit open"));
    assert!(srv.hook.hits().is_empty());
    // After open_for the breaker half-opens; a successful probe closes it.
    f.clock.advance(Duration::from_secs(10));
    assert_eq!(
        w.stats().endpoint("flaky").unwrap().breaker,
        BreakerState::HalfOpen
    );
    let e7 = event("orders.placed", 7);
    w.send(&e7).unwrap();
    w.wait_idle().await;
    assert_eq!(srv.hook.ok_ids(), [evbus_webhook::webhook_id(e7.id())]);
    assert_eq!(
        w.stats().endpoint("flaky").unwrap().breaker,
        BreakerState::Closed
    );
    assert!(drain(&mut alerts).contains(&Alert::BreakerClosed {
        endpoint: "flaky".into()
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_a_while_gets_the_event_on_a_retry() {
    let f = fixture();
    let secret = Secret::generate();
    let addr = free_port().await;
    f.webhooks
        .register(
            Endpoint::builder("later", &format!("http://{addr}/hook"))
                .secret(secret.clone())
                .retry(policy(4, 1000))
                .build()
                .unwrap(),
        )
        .unwrap();
    let e = event("orders.placed", 1);
    f.webhooks.send(&e).unwrap();
    let w = &f.webhooks;
    f.drive(Duration::from_millis(250), "two failures", || {
        w.stats().endpoint("later").unwrap().delivery_failure_total == 2
    })
    .await;
    let srv = serve_on(addr, hook("later", Verifier::new(secret))).await;
    f.drive(Duration::from_millis(250), "delivery", || {
        w.stats().endpoint("later").unwrap().delivery_success_total == 1
    })
    .await;
    let a = w.attempts(&AttemptQuery::default()).await.unwrap();
    assert_eq!(a.len(), 3);
    assert!(
        a[0].error.as_deref().unwrap().starts_with("connect"),
        "{a:?}"
    );
    assert_eq!(a[2].status, Some(200));
    assert_eq!(srv.hook.ok_ids().len(), 1);
    assert!(w.dead_letters(None).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_and_tag_filters_route_events() {
    let f = fixture();
    let secret = Secret::generate();
    let acme = serve("acme", &secret).await;
    let releases = serve("releases", &secret).await;
    let w = &f.webhooks;
    w.register(
        Endpoint::builder("acme", &acme.url())
            .secret(secret.clone())
            .topic(Pattern::parse("plugins.>").unwrap())
            .tenant("acme")
            .build()
            .unwrap(),
    )
    .unwrap();
    w.register(
        Endpoint::builder("releases", &releases.url())
            .secret(secret.clone())
            .all_tag("release")
            .any_tag("stable")
            .any_tag("lts")
            .build()
            .unwrap(),
    )
    .unwrap();
    let a = event("plugins.released", 1)
        .with_tenant("acme")
        .with_tag("release")
        .with_tag("stable");
    let b = event("plugins.released", 2)
        .with_tenant("globex")
        .with_tag("release")
        .with_tag("lts");
    let c = event("plugins.updated", 3)
        .with_tenant("acme")
        .with_tag("release");
    let d = event("orders.placed", 4)
        .with_tenant("acme")
        .with_tag("stable");
    let reports: Vec<usize> = [&a, &b, &c, &d]
        .iter()
        .map(|e| w.send(e).unwrap().matched)
        .collect();
    assert_eq!(reports, [2, 1, 1, 0]);
    w.wait_idle().await;
    let ids = |es: &[&Envelope<serde_json::Value>]| {
        let mut v: Vec<String> = es
            .iter()
            .map(|e| evbus_webhook::webhook_id(e.id()))
            .collect();
        v.sort();
        v
    };
    let mut got = acme.hook.ok_ids();
    got.sort();
    assert_eq!(got, ids(&[&a, &c]));
    let mut got = releases.hook.ok_ids();
    got.sort();
    assert_eq!(got, ids(&[&a, &b]));
    // Sending an event again, or another with the same idempotency key,
    // is a duplicate for the endpoints that had it.
    assert_eq!(w.send(&a).unwrap().duplicates, 2);
    let k1 = event("plugins.released", 5)
        .with_tenant("acme")
        .with_idempotency_key("rel-5");
    let k2 = event("plugins.released", 5)
        .with_tenant("acme")
        .with_idempotency_key("rel-5");
    assert_eq!(w.send(&k1).unwrap().queued, 1);
    assert_eq!(w.send(&k2).unwrap().duplicates, 1);
    w.wait_idle().await;
    assert_eq!(
        w.stats().endpoint("acme").unwrap().delivery_duplicate_total,
        2
    );
    assert_eq!(acme.hook.receiver.duplicates(), 0);
    let text = w.stats().to_prometheus_text();
    assert!(
        text.contains("evbus_webhook_delivery_duplicate_total{endpoint=\"acme\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("evbus_webhook_delivery_success_total{endpoint=\"releases\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("evbus_webhook_ack_latency_seconds{endpoint=\"acme\",quantile=\"0.95\"}"),
        "{text}"
    );
    // A removed endpoint gets nothing more.
    assert!(w.remove("acme"));
    assert!(!w.remove("acme"));
    assert_eq!(w.endpoints(), ["releases"]);
    let e = event("plugins.released", 9)
        .with_tenant("acme")
        .with_tag("release")
        .with_tag("stable");
    assert_eq!(w.send(&e).unwrap().matched, 1);
    w.wait_idle().await;
    assert_eq!(acme.hook.ok_ids().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_space_requests_on_the_clock() {
    let f = fixture();
    let secret = Secret::generate();
    let srv = serve("limited", &secret).await;
    let two = NonZeroU32::new(2).unwrap();
    f.webhooks
        .register(
            Endpoint::builder("limited", &srv.url())
                .secret(secret)
                .rate_limit(RateLimit::per_second(two))
                .build()
                .unwrap(),
        )
        .unwrap();
    for i in 0..6 {
        f.webhooks.send(&event("orders.placed", i)).unwrap();
    }
    let w = &f.webhooks;
    f.drive(Duration::from_millis(100), "six deliveries", || {
        w.stats()
            .endpoint("limited")
            .unwrap()
            .delivery_success_total
            == 6
    })
    .await;
    let mut starts: Vec<u64> = w
        .attempts(&AttemptQuery::default())
        .await
        .unwrap()
        .iter()
        .map(|a| a.started_ms)
        .collect();
    starts.sort_unstable();
    // A burst of 2, then one every 500 ms: the k-th request (from 0)
    // starts at least (k - 1) × 500 ms after the first.
    for (k, s) in starts.iter().enumerate().skip(2) {
        assert!(*s >= starts[0] + (k as u64 - 1) * 500, "{starts:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_endpoint_does_not_delay_a_live_one() {
    let f = fixture();
    let secret = Secret::generate();
    let dead = serve("dead", &secret).await;
    dead.hook.set_default(Fault::Hang);
    let live = serve("live", &secret).await;
    let w = &f.webhooks;
    w.register(
        Endpoint::builder("dead", &dead.url())
            .secret(secret.clone())
            .concurrency(1)
            .timeout(Duration::from_secs(3600))
            .build()
            .unwrap(),
    )
    .unwrap();
    w.register(
        Endpoint::builder("live", &live.url())
            .secret(secret.clone())
            .build()
            .unwrap(),
    )
    .unwrap();
    let events: Vec<_> = (0..50).map(|i| event("orders.placed", i)).collect();
    for e in &events {
        assert_eq!(w.send(e).unwrap().queued, 2);
    }
    // The dead endpoint's first request is in the receiver and will never
    // be answered (the clock never moves, so it never times out either) ...
    dead.hook
        .wait_for("the first request", |h| h.len() == 1)
        .await;
    // ... and every event still reaches the live endpoint.
    live.hook.wait_for("all 50 events", |h| h.len() == 50).await;
    // (The deliverer counts a success once the response is read; the
    // clock stays put.)
    f.drive(Duration::ZERO, "50 acknowledged", || {
        w.stats().endpoint("live").unwrap().delivery_success_total == 50
    })
    .await;
    assert_eq!(dead.hook.hits().len(), 1);
    let s = w.stats();
    assert_eq!(s.endpoint("dead").unwrap().outstanding, 50);
    assert_eq!(s.endpoint("dead").unwrap().delivery_success_total, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_rate_over_the_window_raises_an_alert() {
    let f = fixture();
    let secret = Secret::generate();
    let srv = serve("rate", &secret).await;
    srv.hook.script([Fault::Status(500), Fault::Status(500)]);
    f.webhooks
        .register(
            Endpoint::builder("rate", &srv.url())
                .secret(secret)
                .retry(RetryPolicy::never())
                .concurrency(1)
                .build()
                .unwrap(),
        )
        .unwrap();
    let mut alerts = f.webhooks.alerts();
    for i in 0..20 {
        f.webhooks.send(&event("orders.placed", i)).unwrap();
    }
    f.webhooks.wait_idle().await;
    let a = drain(&mut alerts);
    assert!(
        a.contains(&Alert::FailureRate {
            endpoint: "rate".into(),
            failed: 2,
            attempts: 20
        }),
        "{a:?}"
    );
    let s = f.webhooks.stats();
    let s = s.endpoint("rate").unwrap();
    assert_eq!(
        (s.attempts_5m, s.failed_5m, s.delivery_dead_letter_total),
        (20, 2, 2)
    );
    // Five minutes later the window is empty.
    f.clock.advance(Duration::from_secs(301));
    assert_eq!(f.webhooks.stats().endpoint("rate").unwrap().attempts_5m, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_dead_letters_instead_of_waiting() {
    let f = fixture();
    let secret = Secret::generate();
    let stuck = serve("stuck", &secret).await;
    stuck.hook.set_default(Fault::Hang);
    let w = &f.webhooks;
    w.register(
        Endpoint::builder("stuck", &stuck.url())
            .secret(secret)
            .queue(2)
            .concurrency(1)
            .build()
            .unwrap(),
    )
    .unwrap();
    let events: Vec<_> = (0..3).map(|i| event("orders.placed", i)).collect();
    assert_eq!(w.send(&events[0]).unwrap().queued, 1);
    assert_eq!(w.send(&events[1]).unwrap().queued, 1);
    let r = w.send(&events[2]).unwrap();
    assert_eq!((r.queued, r.queue_full), (0, 1));
    let dead = w.dead_letters(Some("stuck")).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].event_id, dead[0].attempts, dead[0].error.as_str()),
        (events[2].id(), 0, "queue full")
    );
    assert_eq!(w.stats().endpoint("stuck").unwrap().outstanding, 2);
}
