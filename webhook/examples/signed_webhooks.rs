//! A service delivering signed webhooks to a receiver that verifies them.
//!
//! ```text
//! cargo run -p evbus-webhook --example signed_webhooks
//! ```
//!
//! The service publishes `plugins.released` envelopes on an evbus bus; a
//! [`Webhooks`] deliverer forwards them to two endpoints: one for the
//! tenant `acme`, one for events tagged `stable`. The receivers are axum
//! servers on loopback that check every request with a [`Receiver`]
//! (signature, timestamp, duplicate `webhook-id`). The first receiver
//! fails its first request with a 503 and `Retry-After: 1`, so one event
//! is retried. At the end the example prints each endpoint's figures, the
//! attempts for one event from the journal, and the Prometheus text; it
//! exits non-zero if a check fails.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use evbus_core::{Bus, Envelope, Event, EventKind, Pattern};
use evbus_journal::{Journal, JournalOptions, SyncPolicy};
use evbus_webhook::{AttemptQuery, Endpoint, Receiver, Secret, Verifier, Webhooks};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Released,
}

impl EventKind for Kind {
    const ALL: &'static [Self] = &[Kind::Released];
    fn topic(self) -> &'static str {
        "plugins.released"
    }
    fn index(self) -> usize {
        0
    }
}

/// The service's event.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Released {
    plugin: String,
    version: String,
}

impl Event for Released {
    type Kind = Kind;
    fn kind(&self) -> Kind {
        Kind::Released
    }
}

struct Inbox {
    receiver: Receiver,
    fail_first: AtomicBool,
}

async fn receive(State(inbox): State<Arc<Inbox>>, headers: HeaderMap, body: Bytes) -> Response {
    if inbox.fail_first.swap(false, Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "1")]).into_response();
    }
    match inbox.receiver.receive(&headers, &body) {
        Ok(r) if r.duplicate => StatusCode::OK.into_response(),
        Ok(r) => {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            println!(
                "  [{}] verified {} {} {}",
                inbox.receiver.name(),
                r.webhook_id,
                v["type"],
                v["data"]
            );
            StatusCode::OK.into_response()
        }
        Err(e) => (StatusCode::UNAUTHORIZED, e.to_string()).into_response(),
    }
}

async fn start_receiver(name: &str, secret: &Secret, fail_first: bool) -> (String, Arc<Inbox>) {
    let inbox = Arc::new(Inbox {
        receiver: Receiver::new(name, Verifier::new(secret.clone()))
            .on_alert(|a| eprintln!("ALERT {a:?}")),
        fail_first: AtomicBool::new(fail_first),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hooks", listener.local_addr().expect("addr"));
    let app = Router::new()
        .route("/hooks", post(receive))
        .with_state(Arc::clone(&inbox));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, inbox)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Each subscriber system has its own secret, shared out of band.
    let acme_secret = Secret::generate();
    let stable_secret = Secret::generate();
    let (acme_url, acme) = start_receiver("acme", &acme_secret, true).await;
    let (stable_url, stable) = start_receiver("stable-feed", &stable_secret, false).await;

    // The service: a bus, a journal for the delivery trace, a deliverer.
    let dir = tempfile::tempdir()?;
    let journal = Journal::create(dir.path(), JournalOptions::new().sync(SyncPolicy::Never))?;
    let webhooks = Webhooks::builder(journal).build()?;
    webhooks.register(
        Endpoint::builder("acme", &acme_url)
            .secret(acme_secret)
            .topic(Pattern::parse("plugins.>")?)
            .tenant("acme")
            .timeout(Duration::from_secs(5))
            .build()?,
    )?;
    webhooks.register(
        Endpoint::builder("stable-feed", &stable_url)
            .secret(stable_secret)
            .any_tag("stable")
            .build()?,
    )?;
    let bus = Bus::<Envelope<Released>>::new();
    let forwarder = webhooks.forward(bus.subscribe(">")?);

    let releases = [
        ("acme", "search", "2.0.0", "stable"),
        ("acme", "search", "2.1.0-beta", "beta"),
        ("globex", "billing", "1.4.2", "stable"),
    ];
    for (tenant, plugin, version, channel) in releases {
        let e = Envelope::new(Released {
            plugin: plugin.into(),
            version: version.into(),
        })
        .with_tenant(tenant)
        .with_tag(channel);
        println!("publish {tenant} {plugin} {version} [{channel}]");
        bus.publish(e)?;
    }
    bus.shutdown();
    let forwarded = tokio::task::spawn_blocking(move || forwarder.join())
        .await?
        .map_err(|_| "forwarder panicked")?;
    tokio::time::timeout(Duration::from_secs(15), webhooks.wait_idle()).await?;

    println!("\nper endpoint:");
    for s in &webhooks.stats().endpoints {
        println!(
            "  {:12} delivered {} (first attempt {}), retries {}, dead letters {}, ack p95 {:.1} ms",
            s.endpoint,
            s.delivery_success_total,
            s.first_attempt_success_total,
            s.delivery_retry_total,
            s.delivery_dead_letter_total,
            s.ack_latency.p95_ns as f64 / 1e6
        );
    }
    // Events go out concurrently, so whichever request reached acme first
    // met the 503: find that event in the journal, then show its attempts.
    let acme_attempts = webhooks
        .attempts(&AttemptQuery {
            endpoint: Some("acme".into()),
            ..Default::default()
        })
        .await?;
    let retried = acme_attempts
        .iter()
        .find(|a| a.status == Some(503))
        .map(|a| a.event_id)
        .ok_or("no attempt met the 503")?;
    println!("\nattempts for event {retried} (from the journal):");
    let attempts = webhooks
        .attempts(&AttemptQuery {
            event: Some(retried),
            ..Default::default()
        })
        .await?;
    for a in &attempts {
        println!(
            "  {} attempt {} status {:?} error {:?} retry in {:?} ms",
            a.endpoint, a.attempt, a.status, a.error, a.retry_in_ms
        );
    }
    let text = webhooks.stats().to_prometheus_text();
    println!("\nprometheus (excerpt):");
    for line in text
        .lines()
        .filter(|l| l.starts_with("evbus_webhook_delivery_success_total"))
    {
        println!("  {line}");
    }

    // Checks: acme got its two events (one after a 503 + Retry-After),
    // the stable feed got the two stable releases, nothing was rejected
    // or dead-lettered.
    let ok = forwarded == 3
        && acme.receiver.accepted() == 2
        && stable.receiver.accepted() == 2
        && acme.receiver.rejected() + stable.receiver.rejected() == 0
        && webhooks.dead_letters(None).await?.is_empty()
        // Two events, one of them tried twice.
        && acme_attempts.len() == 3
        && attempts.iter().filter(|a| a.endpoint == "acme").count() == 2
        && attempts
            .iter()
            .any(|a| a.status == Some(503) && a.retry_in_ms >= Some(1000));
    if !ok {
        eprintln!("signed_webhooks: a check failed");
        std::process::exit(1);
    }
    println!("\nsigned_webhooks: all checks passed");
    Ok(())
}
