//! `evbus-nats-peer`: one evbus process bridged to NATS, for the tests, the
//! benchmark and the `two_processes` example.
//!
//! ```text
//! evbus-nats-peer --url URL --stream NAME [--prefix P] [--origin NAME]
//!     [--export PATTERN]... [--import DURABLE PATTERN]...
//!     [--print PATTERN [--print-capacity N]] [--expect N]
//!     [--publish N --topic-base BASE [--id-run R] [--sleep-every K]]
//!     [--bytes N] [--ack-wait-ms MS] [--respond SUBJECT] [--linger]
//! ```
//!
//! It makes a `Bus<Envelope<PeerEvent>>` and a bridge, prints `READY`, then
//! publishes `N` events on `BASE.k<i % 3>` (with ids derived from `R` and
//! `i` when `--id-run` is given, so a rerun publishes the same ids), and
//! prints `EV <topic> <id> <from> <seq> <sent> <received>` for every local
//! event matching `--print` (the publish and receive times, microseconds
//! since the epoch). With `--respond SUBJECT` it also answers raw NATS
//! requests on `SUBJECT` with their payload. It exits after the export is flushed and `--expect` events were
//! printed (or, with `--linger`, when its standard input closes), printing
//! `STATS <json>` last.

use std::{
    io::{BufRead, Write},
    process::ExitCode,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use evbus_core::{Bus, Envelope, EventId, Filter, Overflow, SubscribeOptions};
use evbus_nats::{Bridge, BridgeConfig, peer::PeerEvent};

#[derive(Default)]
struct Args {
    url: String,
    stream: String,
    origin: Option<String>,
    prefix: Option<String>,
    export: Vec<String>,
    import: Vec<(String, String)>,
    print: Option<String>,
    expect: u64,
    publish: u64,
    topic_base: String,
    id_run: Option<u64>,
    sleep_every: u64,
    bytes: usize,
    linger: bool,
    respond: Option<String>,
    print_capacity: Option<u64>,
    ack_wait_ms: Option<u64>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        topic_base: "peer".into(),
        ..Args::default()
    };
    let mut it = std::env::args().skip(1);
    let next = |it: &mut dyn Iterator<Item = String>, flag: &str| {
        it.next().ok_or_else(|| format!("{flag} needs a value"))
    };
    while let Some(flag) = it.next() {
        let num = |s: String| s.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--url" => a.url = next(&mut it, &flag)?,
            "--stream" => a.stream = next(&mut it, &flag)?,
            "--origin" => a.origin = Some(next(&mut it, &flag)?),
            "--prefix" => a.prefix = Some(next(&mut it, &flag)?),
            "--export" => a.export.push(next(&mut it, &flag)?),
            "--import" => {
                let durable = next(&mut it, &flag)?;
                a.import.push((durable, next(&mut it, &flag)?));
            }
            "--print" => a.print = Some(next(&mut it, &flag)?),
            "--expect" => a.expect = num(next(&mut it, &flag)?)?,
            "--publish" => a.publish = num(next(&mut it, &flag)?)?,
            "--topic-base" => a.topic_base = next(&mut it, &flag)?,
            "--id-run" => a.id_run = Some(num(next(&mut it, &flag)?)?),
            "--sleep-every" => a.sleep_every = num(next(&mut it, &flag)?)?,
            "--bytes" => a.bytes = num(next(&mut it, &flag)?)? as usize,
            "--linger" => a.linger = true,
            "--respond" => a.respond = Some(next(&mut it, &flag)?),
            "--print-capacity" => a.print_capacity = Some(num(next(&mut it, &flag)?)?),
            "--ack-wait-ms" => a.ack_wait_ms = Some(num(next(&mut it, &flag)?)?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if a.url.is_empty() || a.stream.is_empty() {
        return Err("--url and --stream are required".into());
    }
    Ok(a)
}

fn micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("evbus-nats-peer: {e}");
            return ExitCode::from(64);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    let bus = Bus::<Envelope<PeerEvent>>::new();
    let origin = args
        .origin
        .clone()
        .unwrap_or_else(|| format!("peer-{}", std::process::id()));
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<u64>();
    let printer = match &args.print {
        Some(pattern) => {
            let filter = match Filter::pattern(pattern) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("evbus-nats-peer: --print: {e}");
                    return ExitCode::from(64);
                }
            };
            let mut sub = bus
                .subscribe_with(
                    filter,
                    SubscribeOptions::new()
                        .capacity(args.print_capacity.map_or(1 << 16, |c| c as usize))
                        .overflow(Overflow::Block(Duration::MAX)),
                )
                .expect("a subscription on a live bus");
            let expect = args.expect;
            Some(std::thread::spawn(move || {
                let stdout = std::io::stdout();
                let mut count = 0u64;
                let mut done = Some(done_tx);
                while let Ok(e) = sub.recv() {
                    count += 1;
                    let p = e.payload();
                    let mut out = stdout.lock();
                    let _ = writeln!(
                        out,
                        "EV {} {} {} {} {} {}",
                        e.topic(),
                        e.id(),
                        p.from,
                        p.seq,
                        p.micros,
                        micros()
                    );
                    let _ = out.flush();
                    if count >= expect
                        && let Some(tx) = done.take()
                    {
                        let _ = tx.send(count);
                    }
                }
            }))
        }
        None => {
            drop(done_tx);
            None
        }
    };

    let mut config = BridgeConfig::new(&args.stream).origin(&origin);
    if let Some(ms) = args.ack_wait_ms {
        config = config.ack_wait(Duration::from_millis(ms));
    }
    if let Some(prefix) = &args.prefix {
        config = config.prefix(prefix);
    }
    for p in &args.export {
        config = config.export(p);
    }
    for (d, p) in &args.import {
        config = config.import(d, p);
    }
    let bridge = match Bridge::connect(&args.url, &bus, config).await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("evbus-nats-peer: {e}");
            return ExitCode::from(1);
        }
    };
    if let Some(subject) = &args.respond {
        // A raw responder, the request/reply baseline of the benchmark.
        let client = bridge.client().clone();
        let mut requests = match client.subscribe(subject.clone()).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("evbus-nats-peer: --respond: {e}");
                return ExitCode::from(1);
            }
        };
        let _ = client.flush().await;
        tokio::spawn(async move {
            use futures_util::StreamExt;
            while let Some(m) = requests.next().await {
                if let Some(reply) = m.reply {
                    let _ = client.publish(reply, m.payload).await;
                }
            }
        });
    }
    println!("READY");
    let _ = std::io::stdout().flush();

    let body = "x".repeat(args.bytes);
    let mut publisher = bus.publisher();
    for i in 0..args.publish {
        let topic = format!("{}.k{}", args.topic_base, i % 3);
        let event = PeerEvent {
            from: origin.clone(),
            seq: i,
            micros: micros(),
            body: body.clone(),
        };
        let mut env = Envelope::on(&topic, event).expect("a valid topic");
        if let Some(run) = args.id_run {
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&run.to_be_bytes());
            bytes[8..].copy_from_slice(&i.to_be_bytes());
            env = env.with_id(EventId::from_bytes(bytes));
        }
        if publisher.publish_to(&topic, env).is_err() {
            eprintln!("evbus-nats-peer: the bus closed");
            return ExitCode::from(1);
        }
        if args.sleep_every > 0 && (i + 1) % args.sleep_every == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let mut status = ExitCode::SUCCESS;
    if let Err(e) = bridge.flush(Duration::from_secs(60)).await {
        eprintln!("evbus-nats-peer: {e}");
        status = ExitCode::from(2);
    }
    if args.print.is_some()
        && args.expect > 0
        && tokio::time::timeout(Duration::from_secs(60), done_rx)
            .await
            .is_err()
    {
        eprintln!("evbus-nats-peer: fewer than {} events arrived", args.expect);
        status = ExitCode::from(2);
    }
    if args.linger {
        let _ = tokio::task::spawn_blocking(|| {
            let stdin = std::io::stdin();
            for line in stdin.lock().lines() {
                if line.is_err() {
                    break;
                }
            }
        })
        .await;
    }
    let stats = bridge.shutdown(Duration::from_secs(10)).await;
    println!(
        "STATS {}",
        serde_json::to_string(&stats).unwrap_or_default()
    );
    let _ = std::io::stdout().flush();
    bus.shutdown();
    if let Some(p) = printer {
        let _ = p.join();
    }
    status
}
