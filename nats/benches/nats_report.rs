//! The bridge against raw `async-nats`, in one run, on one server:
//!
//! - export throughput: events published on the bus and exported with
//!   acknowledgements, against raw JetStream publishes of the same encoded
//!   envelopes with the same `Nats-Msg-Id` headers and the same number in
//!   flight;
//! - end-to-end latency, p50 and p99: a publish on the bus of this process
//!   to the receive on the bus of another process (`evbus-nats-peer`),
//!   through JetStream, against a raw NATS request/reply round trip to the
//!   same other process.
//!
//! ```text
//! cargo bench -p evbus-nats --bench nats_report [-- --events N --in-flight W --rounds R --samples K]
//! ```
//!
//! It starts its own `nats-server` (or uses `EVBUS_NATS_URL`).

use std::{
    collections::VecDeque,
    future::IntoFuture,
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use async_nats::jetstream::context::Publish;
use evbus_core::{Bus, Envelope};
use evbus_nats::{
    Bridge, BridgeConfig, MSG_ID_HEADER, ORIGIN_HEADER, peer::PeerEvent, server::NatsServer,
};

struct Opts {
    events: u64,
    in_flight: usize,
    rounds: usize,
    samples: u64,
}

fn opts() -> Opts {
    let mut o = Opts {
        events: 20_000,
        in_flight: 256,
        rounds: 3,
        samples: 2_000,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let value = args.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        match (args[i].as_str(), value) {
            ("--events", Some(v)) => o.events = v,
            ("--in-flight", Some(v)) => o.in_flight = v as usize,
            ("--rounds", Some(v)) => o.rounds = v as usize,
            ("--samples", Some(v)) => o.samples = v,
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    o
}

fn micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn event(topic: &str, seq: u64) -> Envelope<PeerEvent> {
    Envelope::on(
        topic,
        PeerEvent {
            from: "bench".into(),
            seq,
            micros: micros(),
            // A 64-byte body.
            body: "x".repeat(64),
        },
    )
    .expect("a valid topic")
}

/// Events per second through the bridge: publish `n` on the bus, until the
/// last is acknowledged.
async fn bridge_run(url: &str, stream: &str, n: u64, in_flight: usize) -> f64 {
    let bus = Bus::<Envelope<PeerEvent>>::new();
    let bridge = Bridge::connect(
        url,
        &bus,
        BridgeConfig::new(stream)
            .export("tp.>")
            .max_in_flight(in_flight)
            .export_capacity(1 << 16),
    )
    .await
    .expect("bridge");
    let events: Vec<_> = (0..n)
        .map(|i| event(&format!("tp.k{}", i % 3), i))
        .collect();
    let mut publisher = bus.publisher();
    let start = Instant::now();
    for e in events {
        let topic = e.topic().to_owned();
        publisher.publish_to(&topic, e).expect("publish");
    }
    bridge.flush(Duration::from_secs(300)).await.expect("flush");
    let secs = start.elapsed().as_secs_f64();
    let stats = bridge.shutdown(Duration::from_secs(10)).await;
    assert_eq!(stats.export.acked, n, "{stats:?}");
    n as f64 / secs
}

/// Events per second through raw JetStream publishes: the same encoded
/// envelopes and headers, the same number in flight.
async fn raw_run(js: &async_nats::jetstream::Context, n: u64, in_flight: usize) -> f64 {
    let messages: Vec<(String, String, bytes::Bytes)> = (0..n)
        .map(|i| {
            let e = event(&format!("tp.k{}", i % 3), i);
            (
                format!("evbus.{}", e.topic()),
                e.id().to_string(),
                bytes::Bytes::from(serde_json::to_vec(&e).expect("json")),
            )
        })
        .collect();
    let start = Instant::now();
    let mut pending = VecDeque::new();
    for (subject, id, payload) in messages {
        if pending.len() >= in_flight {
            let ack: async_nats::jetstream::context::PublishAckFuture =
                pending.pop_front().expect("one in flight");
            ack.into_future().await.expect("ack");
        }
        let publish = Publish::build()
            .payload(payload)
            .header(MSG_ID_HEADER, id.as_str())
            .header(ORIGIN_HEADER, "raw");
        pending.push_back(js.send_publish(subject, publish).await.expect("publish"));
    }
    for ack in pending {
        ack.into_future().await.expect("ack");
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    percentile(&v, 0.5)
}

fn main() {
    let o = opts();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (_server, url) = match std::env::var("EVBUS_NATS_URL") {
        Ok(u) if !u.is_empty() => (None, u),
        _ => {
            let s = NatsServer::start().expect("nats-server");
            let url = s.url();
            (Some(s), url)
        }
    };
    runtime.block_on(async {
        let client = async_nats::connect(&url).await.expect("connect");
        let js = async_nats::jetstream::new(client.clone());
        let stream = "NATSBENCH";
        evbus_nats::ensure_stream(&js, &evbus_nats::StreamSpec::new(stream, "evbus"), true)
            .await
            .expect("stream");

        // Throughput, alternating so drift hits both alike.
        let (mut bridge, mut raw) = (Vec::new(), Vec::new());
        for round in 0..o.rounds {
            let r = raw_run(&js, o.events, o.in_flight).await;
            let b = bridge_run(&url, stream, o.events, o.in_flight).await;
            eprintln!("round {round}: raw {r:.0}/s, bridge {b:.0}/s");
            raw.push(r);
            bridge.push(b);
        }
        let (b, r) = (median(bridge), median(raw));

        // Latency: this process publishes, the peer receives.
        let peer = env!("CARGO_BIN_EXE_evbus-nats-peer");
        let mut child = Command::new(peer)
            .args([
                "--url", &url, "--stream", stream, "--origin", "receiver",
                "--import", "latency", "lat.>", "--print", "lat.>",
                "--respond", "bench.echo", "--linger",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("peer");
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink = Arc::clone(&lines);
        let stdout = child.stdout.take().expect("stdout");
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().expect("lines").push(line);
            }
        });
        let wait = |what: &str, pred: &dyn Fn(&[String]) -> bool| {
            let deadline = Instant::now() + Duration::from_secs(120);
            while !pred(&lines.lock().expect("lines")) {
                assert!(Instant::now() < deadline, "timed out waiting for {what}");
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        wait("READY", &|l| l.iter().any(|x| x == "READY"));

        let bus = Bus::<Envelope<PeerEvent>>::new();
        let bridge_a = Bridge::connect(&url, &bus, BridgeConfig::new(stream).export("lat.>"))
            .await
            .expect("bridge");
        let mut publisher = bus.publisher();
        for i in 0..o.samples {
            let e = event("lat.one", i);
            publisher.publish_to("lat.one", e).expect("publish");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        bridge_a.flush(Duration::from_secs(60)).await.expect("flush");
        let samples = o.samples as usize;
        tokio::task::block_in_place(|| {
            wait("the events", &|l| {
                l.iter().filter(|x| x.starts_with("EV ")).count() >= samples
            })
        });
        let mut one_way: Vec<f64> = lines
            .lock()
            .expect("lines")
            .iter()
            .filter_map(|l| {
                let f: Vec<&str> = l.strip_prefix("EV ")?.split(' ').collect();
                let sent: f64 = f.get(4)?.parse().ok()?;
                let got: f64 = f.get(5)?.parse().ok()?;
                Some(got - sent)
            })
            .collect();
        one_way.sort_by(|a, b| a.total_cmp(b));

        // Raw request/reply to the same process.
        let payload = bytes::Bytes::from(serde_json::to_vec(&event("lat.one", 0)).expect("json"));
        let mut rtt = Vec::new();
        for _ in 0..o.samples {
            let start = Instant::now();
            client
                .request("bench.echo", payload.clone())
                .await
                .expect("reply");
            rtt.push(start.elapsed().as_secs_f64() * 1e6);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        rtt.sort_by(|a, b| a.total_cmp(b));
        drop(child.stdin.take());
        let _ = child.wait();
        let _ = reader.join();
        bridge_a.shutdown(Duration::from_secs(10)).await;

        println!();
        println!(
            "| what | bridge | raw async-nats | ratio |\n|---|---|---|---|"
        );
        println!(
            "| export throughput, {} events of {} bytes, {} in flight, acked (median of {}) | {:.0} /s | {:.0} /s | {:.2} × |",
            o.events,
            payload.len(),
            o.in_flight,
            o.rounds,
            b,
            r,
            b / r
        );
        println!(
            "| latency p50, process A → process B (bridge: bus publish → JetStream → bus receive, one way; raw: request/reply round trip) | {:.0} µs | {:.0} µs | |",
            percentile(&one_way, 0.5),
            percentile(&rtt, 0.5)
        );
        println!(
            "| latency p99 (same) | {:.0} µs | {:.0} µs | |",
            percentile(&one_way, 0.99),
            percentile(&rtt, 0.99)
        );
        println!("({} latency samples each, 1 ms apart)", one_way.len());
    });
}
