//! A real HTTP receiver on loopback (axum), with scripted faults, and
//! helpers to drive a manual clock.
#![allow(dead_code, unreachable_pub)]

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{Arc, Mutex},
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
use evbus_journal::{Journal, JournalOptions, SyncPolicy};
use evbus_webhook::{ManualClock, Receiver, Secret, Verifier, Webhooks};
use tokio::sync::Notify;

/// What the receiver does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Ok,
    Status(u16),
    /// A status with `Retry-After: secs`.
    RetryAfter(u16, u64),
    /// Never answers.
    Hang,
}

#[derive(Debug, Clone)]
pub struct Hit {
    pub id: String,
    pub status: u16,
    pub body: Vec<u8>,
}

pub struct Hook {
    pub receiver: Receiver,
    verifier: Verifier,
    script: Mutex<VecDeque<Fault>>,
    default: Mutex<Fault>,
    pub hits: Mutex<Vec<Hit>>,
    pub changed: Notify,
}

impl Hook {
    pub fn script(&self, faults: impl IntoIterator<Item = Fault>) {
        self.script.lock().unwrap().extend(faults);
    }

    pub fn set_default(&self, fault: Fault) {
        *self.default.lock().unwrap() = fault;
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    pub fn ok_ids(&self) -> Vec<String> {
        self.hits()
            .into_iter()
            .filter(|h| h.status == 200)
            .map(|h| h.id)
            .collect()
    }

    /// Waits (real time, bounded) until `f` holds of the hits.
    pub async fn wait_for(&self, what: &str, f: impl Fn(&[Hit]) -> bool) {
        for _ in 0..3000 {
            let changed = self.changed.notified();
            if f(&self.hits.lock().unwrap()) {
                return;
            }
            let _ = tokio::time::timeout(Duration::from_millis(10), changed).await;
        }
        panic!("receiver never saw {what}; hits: {:?}", self.hits());
    }

    fn record(&self, id: String, status: u16, body: &[u8]) {
        self.hits.lock().unwrap().push(Hit {
            id,
            status,
            body: body.to_vec(),
        });
        self.changed.notify_waiters();
    }
}

async fn handle(State(hook): State<Arc<Hook>>, headers: HeaderMap, body: Bytes) -> Response {
    let fault = hook
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(*hook.default.lock().unwrap());
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if fault == Fault::Hang {
        hook.record(id, 0, &body);
        return std::future::pending().await;
    }
    if fault == Fault::Ok {
        return match hook.receiver.receive(&headers, &body) {
            Ok(_) => {
                hook.record(id, 200, &body);
                StatusCode::OK.into_response()
            }
            Err(_) => {
                hook.record(id, 401, &body);
                StatusCode::UNAUTHORIZED.into_response()
            }
        };
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if hook.verifier.verify(&headers, &body, now).is_err() {
        hook.record(id, 401, &body);
        return StatusCode::UNAUTHORIZED.into_response();
    }
    match fault {
        Fault::Status(c) => {
            hook.record(id, c, &body);
            StatusCode::from_u16(c).unwrap().into_response()
        }
        Fault::RetryAfter(c, secs) => {
            hook.record(id, c, &body);
            (
                StatusCode::from_u16(c).unwrap(),
                [("retry-after", secs.to_string())],
            )
                .into_response()
        }
        Fault::Ok | Fault::Hang => unreachable!(),
    }
}

pub struct Server {
    pub addr: SocketAddr,
    pub hook: Arc<Hook>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn stop(self) {
        self.task.abort();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn hook(name: &str, verifier: Verifier) -> Arc<Hook> {
    Arc::new(Hook {
        receiver: Receiver::new(name, verifier.clone()),
        verifier,
        script: Mutex::new(VecDeque::new()),
        default: Mutex::new(Fault::Ok),
        hits: Mutex::new(Vec::new()),
        changed: Notify::new(),
    })
}

/// Starts a receiver on `addr` (port 0 for any).
pub async fn serve_on(addr: SocketAddr, hook: Arc<Hook>) -> Server {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/hook", post(handle))
        .with_state(Arc::clone(&hook));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Server { addr, hook, task }
}

pub async fn serve(name: &str, secret: &Secret) -> Server {
    serve_on(
        "127.0.0.1:0".parse().unwrap(),
        hook(name, Verifier::new(secret.clone())),
    )
    .await
}

/// A loopback port with nothing listening on it (connections are refused).
pub async fn free_port() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

/// A listener that accepts connections, reads a little and closes them
/// without answering (a dropped connection). Returns its address.
pub async fn dropper() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    use tokio::io::AsyncReadExt;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = [0u8; 64];
            let _ = s.read(&mut buf).await;
            drop(s);
        }
    });
    (addr, task)
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub clock: ManualClock,
    pub webhooks: Webhooks,
}

pub fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let journal =
        Journal::create(dir.path(), JournalOptions::new().sync(SyncPolicy::Never)).unwrap();
    let clock = ManualClock::new();
    let webhooks = Webhooks::builder(journal)
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    Fixture {
        dir,
        clock,
        webhooks,
    }
}

impl Fixture {
    /// Advances the manual clock by `step` at a time, yielding real time
    /// between steps so delivery tasks run, until `until` holds. Bounded.
    pub async fn drive(&self, step: Duration, what: &str, mut until: impl FnMut() -> bool) {
        for _ in 0..5000 {
            if until() {
                return;
            }
            self.clock.advance(step);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("never reached: {what}");
    }
}

/// Polls `cond` every 10 ms until it holds (real time, bounded at 30 s: a
/// hang detector, not a measurement).
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..3000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never: {what}");
}
