//! What the bridge tests share: a real `nats-server` (started here, or the
//! one `EVBUS_NATS_URL` names), the peer process, collectors and bounded
//! waits. A test that cannot reach a server fails; none skips.
#![allow(dead_code, unreachable_pub)]

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

pub use evbus::nats::peer::PeerEvent;
use evbus::nats::{BridgeConfig, BridgeStats, server::NatsServer};
use evbus::{Bus, Envelope, Filter, Overflow, SubscribeOptions, Subscription};

pub type Env = Envelope<PeerEvent>;

pub fn event(topic: &str, from: &str, seq: u64) -> Env {
    Envelope::on(
        topic,
        PeerEvent {
            from: from.into(),
            seq,
            micros: 0,
            body: String::new(),
        },
    )
    .expect("a valid topic")
}

/// A server for one test: our own, or the one `EVBUS_NATS_URL` names.
pub enum Server {
    Own(NatsServer),
    External(String),
}

impl Server {
    pub fn url(&self) -> String {
        match self {
            Server::Own(s) => s.url(),
            Server::External(u) => u.clone(),
        }
    }
}

pub fn server() -> Server {
    match std::env::var("EVBUS_NATS_URL") {
        Ok(url) if !url.is_empty() => Server::External(url),
        _ => Server::Own(own_server()),
    }
}

/// One test's share of a server: the server, its URL, and a stream and a
/// subject prefix no other test uses.
pub struct Scope {
    pub server: Server,
    pub url: String,
    pub stream: String,
    pub prefix: String,
}

impl Scope {
    /// A server (see [`server`]), the stream `<NAME>_..` and the prefix
    /// `<name>_..`.
    pub fn new(name: &str) -> Scope {
        let server = server();
        let url = server.url();
        Scope {
            server,
            url,
            stream: unique(&name.to_uppercase()),
            prefix: unique(&name.to_lowercase()),
        }
    }

    /// A bridge configuration on this scope's stream and prefix.
    pub fn config(&self) -> BridgeConfig {
        BridgeConfig::new(&self.stream).prefix(&self.prefix)
    }

    /// Spawns a peer on this scope's server, stream and prefix, with the
    /// origin `origin` and the further arguments `rest`.
    pub fn peer(&self, origin: &str, rest: &[&str]) -> Peer {
        let mut args = vec![
            "--url",
            &self.url,
            "--stream",
            &self.stream,
            "--prefix",
            &self.prefix,
            "--origin",
            origin,
        ];
        args.extend_from_slice(rest);
        Peer::spawn(&args)
    }
}

/// A server this test starts and may kill (always ours).
pub fn own_server() -> NatsServer {
    NatsServer::start().unwrap_or_else(|e| panic!("cannot start nats-server: {e}"))
}

/// A name unique to this process and call: stream names and subject
/// prefixes, so tests can share an external server.
pub fn unique(name: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{name}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls `cond` every 10 ms until it holds; panics after `timeout`.
pub async fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Collects the events of a local subscription on a thread.
pub struct Collector {
    pub events: Arc<Mutex<Vec<Env>>>,
    unsub: evbus::Unsubscriber<Env>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Collector {
    pub fn new(bus: &Bus<Env>, pattern: &str) -> Self {
        Self::with(
            bus,
            pattern,
            SubscribeOptions::new()
                .capacity(1 << 16)
                .overflow(Overflow::Block(Duration::MAX)),
        )
    }

    pub fn with(bus: &Bus<Env>, pattern: &str, options: SubscribeOptions) -> Self {
        let sub = bus
            .subscribe_with(Filter::pattern(pattern).unwrap(), options)
            .unwrap();
        Self::from_sub(sub)
    }

    pub fn from_sub(mut sub: Subscription<Env>) -> Self {
        let events = Arc::new(Mutex::new(Vec::new()));
        let unsub = sub.unsubscriber();
        let sink = Arc::clone(&events);
        let thread = std::thread::spawn(move || {
            while let Ok(e) = sub.recv() {
                sink.lock().unwrap().push(e);
            }
        });
        Collector {
            events,
            unsub,
            thread: Some(thread),
        }
    }

    pub fn len(&self) -> usize {
        self.events.lock().unwrap().len()
    }

    pub fn snapshot(&self) -> Vec<Env> {
        self.events.lock().unwrap().clone()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.unsub.unsubscribe();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An `EV` line of the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub topic: String,
    pub id: String,
    pub from: String,
    pub seq: u64,
    pub micros: u64,
}

/// A running `evbus-nats-peer`.
pub struct Peer {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Peer {
    pub fn spawn(args: &[&str]) -> Peer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_evbus-nats-peer"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the peer binary runs");
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Peer {
            child,
            lines,
            reader: Some(reader),
        }
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub fn events(&self) -> Vec<Line> {
        self.lines()
            .iter()
            .filter_map(|l| {
                let mut f = l.strip_prefix("EV ")?.split(' ');
                Some(Line {
                    topic: f.next()?.into(),
                    id: f.next()?.into(),
                    from: f.next()?.into(),
                    seq: f.next()?.parse().ok()?,
                    micros: f.next()?.parse().ok()?,
                })
            })
            .collect()
    }

    pub fn ev_count(&self) -> usize {
        self.lines().iter().filter(|l| l.starts_with("EV ")).count()
    }

    pub async fn wait_ready(&self) {
        wait_until("the peer's READY", Duration::from_secs(30), || {
            self.lines().iter().any(|l| l == "READY")
        })
        .await;
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }

    /// Closes its stdin (ends `--linger`) and waits for it to exit.
    pub async fn finish(&mut self, timeout: Duration) -> ExitStatus {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                if let Some(r) = self.reader.take() {
                    let _ = r.join();
                }
                return status;
            }
            assert!(Instant::now() < deadline, "the peer did not exit");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn stats(&self) -> BridgeStats {
        let lines = self.lines();
        let json = lines
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("STATS "))
            .expect("a STATS line");
        serde_json::from_str(json).unwrap()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.kill();
    }
}
