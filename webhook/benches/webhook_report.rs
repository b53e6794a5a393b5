//! Signed-webhook delivery under load (issue 16), a benchmark binary:
//!
//! ```text
//! cargo bench -p evbus-webhook --bench webhook_report -- [--rate 500] [--secs 60] \
//!     [--endpoints 10] [--fail 0.03] [--search-secs 10] [--no-search]
//! ```
//!
//! One process runs the deliverer (on a 1-thread tokio runtime) and the
//! receivers (`--endpoints` axum servers on loopback, on another 1-thread
//! runtime). Every event goes to every endpoint. Each receiver answers 500
//! to `--fail` of the requests at random (before looking at them), and
//! otherwise verifies the signature and deduplicates by `webhook-id`.
//!
//! Reported: first-attempt and cumulative success, dead letters,
//! duplicates seen by the receivers, delivery latency (from `send` to the
//! first acknowledged request at the receiver, by the wall clock) p50 /
//! p95 / p99 / max, and that every attempt is in the journal. Then a search
//! for the highest rate meeting the targets: runs of `--search-secs` at
//! rising rates (×1.5 from the main rate) until one misses.

use std::{
    collections::HashSet,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use evbus_core::Envelope;
use evbus_journal::{Journal, JournalOptions, SyncPolicy};
use evbus_webhook::{AttemptQuery, Endpoint, Receiver, Secret, Verifier, Webhooks, read_attempts};
use hdrhistogram::Histogram;

struct Sink {
    receiver: Receiver,
    fail: f64,
    latency: Mutex<Histogram<u64>>,
    seen: Mutex<HashSet<String>>,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

async fn handle(State(sink): State<Arc<Sink>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if rand::random::<f64>() < sink.fail {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    match sink.receiver.receive(&headers, &body) {
        Ok(r) => {
            if !r.duplicate {
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let sent = v["data"]["sent_ns"].as_u64().unwrap_or(0);
                let us = now_ns().saturating_sub(sent) / 1000;
                sink.latency.lock().unwrap().record(us.max(1)).ok();
                sink.seen.lock().unwrap().insert(r.webhook_id);
            }
            StatusCode::OK
        }
        Err(_) => StatusCode::UNAUTHORIZED,
    }
}

struct Args {
    rate: u64,
    secs: u64,
    endpoints: usize,
    fail: f64,
    search_secs: u64,
    search: bool,
}

fn args() -> Args {
    let mut a = Args {
        rate: 500,
        secs: 60,
        endpoints: 10,
        fail: 0.03,
        search_secs: 10,
        search: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_default();
        match k.as_str() {
            "--rate" => a.rate = v().parse().expect("--rate N"),
            "--secs" => a.secs = v().parse().expect("--secs N"),
            "--endpoints" => a.endpoints = v().parse().expect("--endpoints N"),
            "--fail" => a.fail = v().parse().expect("--fail F"),
            "--search-secs" => a.search_secs = v().parse().expect("--search-secs N"),
            "--no-search" => a.search = false,
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

#[derive(Debug)]
struct Outcome {
    rate: u64,
    sent_rate: f64,
    events: u64,
    requests: u64,
    first_ok: u64,
    ok: u64,
    dead: u64,
    duplicates: u64,
    distinct_at_receivers: u64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    journaled: Option<u64>,
    attempts: u64,
}

impl Outcome {
    fn meets_targets(&self) -> bool {
        let not_dead = self.requests - self.dead;
        self.ok == not_dead
            && self.distinct_at_receivers == not_dead
            && (self.duplicates as f64) < 0.005 * self.requests as f64
            && self.max_ms <= 5000.0
            && self.p95_ms <= 1000.0
            && self.sent_rate >= 0.98 * self.rate as f64
    }
}

fn run(rate: u64, secs: u64, n_endpoints: usize, fail: f64, check_journal: bool) -> Outcome {
    let receivers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let sender = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let secret = Secret::generate();
    let sinks: Vec<Arc<Sink>> = (0..n_endpoints)
        .map(|i| {
            Arc::new(Sink {
                receiver: Receiver::new(&format!("r{i}"), Verifier::new(secret.clone())),
                fail,
                latency: Mutex::new(Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap()),
                seen: Mutex::new(HashSet::new()),
            })
        })
        .collect();
    let addrs: Vec<SocketAddr> = receivers.block_on(async {
        let mut addrs = Vec::new();
        for sink in &sinks {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addrs.push(l.local_addr().unwrap());
            let app = Router::new()
                .route("/hook", post(handle))
                .with_state(Arc::clone(sink));
            tokio::spawn(async move {
                let _ = axum::serve(l, app).await;
            });
        }
        addrs
    });
    let dir = tempfile::tempdir().unwrap();
    let journal =
        Journal::create(dir.path(), JournalOptions::new().sync(SyncPolicy::Never)).unwrap();
    let webhooks = sender.block_on(async { Webhooks::builder(journal).build().unwrap() });
    for (i, a) in addrs.iter().enumerate() {
        webhooks
            .register(
                Endpoint::builder(&format!("ep{i}"), &format!("http://{a}/hook"))
                    .secret(secret.clone())
                    .build()
                    .unwrap(),
            )
            .unwrap();
    }
    let total = rate * secs;
    let started = Instant::now();
    let sent = sender.block_on(async {
        // Send in 5 ms ticks, catching up to the schedule.
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut sent = 0u64;
        while sent < total {
            tick.tick().await;
            let due = ((started.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
            while sent < due {
                let e = Envelope::on(
                    "plugins.released",
                    serde_json::json!({ "n": sent, "sent_ns": now_ns() }),
                )
                .unwrap();
                webhooks.send(&e).unwrap();
                sent += 1;
            }
        }
        sent
    });
    let send_secs = started.elapsed().as_secs_f64();
    sender.block_on(async {
        let _ = tokio::time::timeout(Duration::from_secs(60), webhooks.wait_idle()).await;
    });
    let stats = webhooks.stats();
    let sum =
        |f: fn(&evbus_webhook::EndpointStats) -> u64| stats.endpoints.iter().map(f).sum::<u64>();
    let mut lat = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
    for s in &sinks {
        lat.add(&*s.latency.lock().unwrap()).unwrap();
    }
    let ms = |us: u64| us as f64 / 1000.0;
    let attempts = sum(|e| e.delivery_success_total) + sum(|e| e.delivery_failure_total);
    let journaled = check_journal.then(|| {
        sender.block_on(webhooks.flush()).unwrap();
        read_attempts(dir.path(), &AttemptQuery::default())
            .unwrap()
            .len() as u64
    });
    let out = Outcome {
        rate,
        sent_rate: sent as f64 / send_secs,
        events: sent,
        requests: sent * n_endpoints as u64,
        first_ok: sum(|e| e.first_attempt_success_total),
        ok: sum(|e| e.delivery_success_total),
        dead: sum(|e| e.delivery_dead_letter_total),
        duplicates: sinks.iter().map(|s| s.receiver.duplicates()).sum(),
        distinct_at_receivers: sinks
            .iter()
            .map(|s| s.seen.lock().unwrap().len() as u64)
            .sum(),
        p50_ms: ms(lat.value_at_quantile(0.5)),
        p95_ms: ms(lat.value_at_quantile(0.95)),
        p99_ms: ms(lat.value_at_quantile(0.99)),
        max_ms: ms(lat.max()),
        journaled,
        attempts,
    };
    drop(webhooks);
    sender.shutdown_timeout(Duration::from_secs(1));
    receivers.shutdown_timeout(Duration::from_secs(1));
    out
}

fn pct(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        100.0 * a as f64 / b as f64
    }
}

fn main() {
    let a = args();
    println!(
        "# webhook_report: {} events/s for {} s to {} endpoints, {:.1} % of requests failing at random",
        a.rate,
        a.secs,
        a.endpoints,
        a.fail * 100.0
    );
    let o = run(a.rate, a.secs, a.endpoints, a.fail, true);
    println!("| metric | value | target |\n|---|---|---|");
    println!(
        "| events sent (rate achieved) | {} ({:.0}/s) | {}/s |",
        o.events, o.sent_rate, a.rate
    );
    println!("| deliveries (event × endpoint) | {} | |", o.requests);
    println!(
        "| attempts (journaled) | {} ({}) | all |",
        o.attempts,
        o.journaled.map_or("-".into(), |j| j.to_string())
    );
    println!(
        "| first-attempt success | {:.3} % | ≥ 97 % |",
        pct(o.first_ok, o.requests)
    );
    println!(
        "| cumulative success | {:.4} % ({} of {}) | ≥ 99.5 % |",
        pct(o.ok, o.requests),
        o.ok,
        o.requests
    );
    println!("| dead-lettered | {} | |", o.dead);
    println!(
        "| cumulative success of what was not dead-lettered | {:.4} % | 100 % |",
        pct(o.ok, o.requests - o.dead)
    );
    println!(
        "| distinct deliveries seen by receivers | {} | |",
        o.distinct_at_receivers
    );
    println!(
        "| duplicates seen by receivers (by webhook-id) | {} ({:.4} %) | < 0.5 % |",
        o.duplicates,
        pct(o.duplicates, o.requests)
    );
    println!(
        "| delivery latency p50 / p95 / p99 | {:.1} / {:.1} / {:.1} ms | p95 ≤ 1000 ms |",
        o.p50_ms, o.p95_ms, o.p99_ms
    );
    println!("| delivery latency max | {:.1} ms | ≤ 5000 ms |", o.max_ms);
    println!("| targets met | {} | |", o.meets_targets());
    if !a.search {
        return;
    }
    println!(
        "\n# search: {} s runs, rate × 1.5 until a run misses a target",
        a.search_secs
    );
    println!(
        "| rate (events/s) | requests/s | achieved | first-attempt | cumulative | dead | dups | p95 ms | max ms | met |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    let mut rate = a.rate;
    let mut best = None;
    for _ in 0..8 {
        let o = run(rate, a.search_secs, a.endpoints, a.fail, false);
        let met = o.meets_targets();
        println!(
            "| {} | {} | {:.0} | {:.2} % | {:.3} % | {} | {} | {:.1} | {:.1} | {} |",
            rate,
            rate * a.endpoints as u64,
            o.sent_rate,
            pct(o.first_ok, o.requests),
            pct(o.ok, o.requests),
            o.dead,
            o.duplicates,
            o.p95_ms,
            o.max_ms,
            met
        );
        if !met {
            break;
        }
        best = Some(rate);
        rate = rate * 3 / 2;
    }
    match best {
        Some(r) => println!(
            "\nhighest rate meeting the targets: {r} events/s ({} requests/s)",
            r * a.endpoints as u64
        ),
        None => println!("\nno rate met the targets"),
    }
}
