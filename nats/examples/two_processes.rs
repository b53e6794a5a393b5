//! Two processes, one bus: each process has its own `Bus`, bridged both
//! ways through NATS JetStream, and sees the other's events as its own.
//!
//! ```text
//! cargo run -p evbus-nats --example two_processes [nats://host:port]
//! ```
//!
//! Without a URL it starts a `nats-server` of its own (JetStream on, a
//! temporary store, a free loopback port) and stops it at the end. The
//! process starts a copy of itself as the second process; both publish on
//! `demo.<who>.greeting`, both subscribe to `demo.*.greeting`, and each
//! exits once it has seen the other's events. It exits non-zero if one is
//! missing.

use std::{
    process::{Command, ExitCode},
    time::Duration,
};

use evbus::{
    Bus, Envelope, Event, EventKind, Filter, Overflow, SubscribeOptions,
    nats::{Bridge, BridgeConfig, server::NatsServer},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Greeting,
}

impl EventKind for Kind {
    const ALL: &'static [Self] = &[Kind::Greeting];
    fn topic(self) -> &'static str {
        "demo.greeting"
    }
    fn index(self) -> usize {
        0
    }
}

/// What the processes say to each other.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Greeting {
    from: String,
    n: u32,
}

impl Event for Greeting {
    type Kind = Kind;
    fn kind(&self) -> Kind {
        Kind::Greeting
    }
}

const COUNT: u32 = 5;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let first = args.next();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match first.as_deref() {
        Some("--child") => {
            let url = args.next().expect("the child gets the URL");
            runtime.block_on(process("b", "a", &url))
        }
        url => {
            // Our own server, unless one was named.
            let (server, url) = match url {
                Some(u) => (None, u.to_owned()),
                None => match NatsServer::start() {
                    Ok(s) => {
                        let url = s.url();
                        (Some(s), url)
                    }
                    Err(e) => {
                        eprintln!("two_processes: {e}");
                        return ExitCode::FAILURE;
                    }
                },
            };
            let mut child = Command::new(std::env::current_exe().expect("this executable"))
                .args(["--child", &url])
                .spawn()
                .expect("the second process starts");
            let here = runtime.block_on(process("a", "b", &url));
            let there = child.wait().map(|s| s.success()).unwrap_or(false);
            drop(server);
            if here == ExitCode::SUCCESS && there {
                println!("two processes, one bus: ok");
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

async fn process(me: &str, peer: &str, url: &str) -> ExitCode {
    let bus = Bus::<Envelope<Greeting>>::new();
    let mut inbox = bus
        .subscribe_with(
            Filter::pattern(&format!("demo.{peer}.*")).expect("a pattern"),
            SubscribeOptions::new().overflow(Overflow::Block(Duration::MAX)),
        )
        .expect("a subscription");
    let config = BridgeConfig::new("DEMO")
        .origin(me)
        .export("demo.>")
        .import(&format!("demo-{me}"), "demo.>");
    let bridge = match Bridge::connect(url, &bus, config).await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("[{me}] cannot bridge: {e}");
            return ExitCode::FAILURE;
        }
    };
    let topic = format!("demo.{me}.greeting");
    for n in 0..COUNT {
        let greeting = Greeting {
            from: me.to_owned(),
            n,
        };
        let env = Envelope::on(&topic, greeting).expect("a valid topic");
        bus.publish_to(&topic, env).expect("a live bus");
    }
    let received = tokio::task::spawn_blocking(move || {
        let mut got = Vec::new();
        while got.len() < COUNT as usize {
            match inbox.recv_timeout(Duration::from_secs(30)) {
                Ok(env) => got.push(env),
                Err(_) => break,
            }
        }
        got
    })
    .await
    .unwrap_or_default();
    for env in &received {
        println!(
            "[{me}] got {} from {} (#{})",
            env.topic(),
            env.payload().from,
            env.payload().n
        );
    }
    let _ = bridge.flush(Duration::from_secs(30)).await;
    let stats = bridge.shutdown(Duration::from_secs(10)).await;
    println!(
        "[{me}] exported {} (acknowledged by the server), imported {}, skipped {} imported events \
         in the export and {} of its own in the import",
        stats.export.acked,
        stats.import.delivered,
        stats.export.skipped_imported,
        stats.import.own_origin
    );
    if received.len() == COUNT as usize {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "[{me}] got {} of {COUNT} events from {peer}",
            received.len()
        );
        ExitCode::FAILURE
    }
}
