//! The exporter: local events to JetStream, acknowledged, retried,
//! deduplicated by the server.
//!
//! One task owns the export subscription. It takes events while fewer than
//! `max_in_flight` publishes wait for their acknowledgements, and resolves
//! the acknowledgements in publish order. A publish that times out (or
//! fails on a lost connection) waits, with the others that fail, until
//! nothing else is in flight; then they are sent again, in their original
//! order, with the same `Nats-Msg-Id`, after a backoff that doubles per
//! round up to 2 s. No new event is taken while a retry is pending, so a
//! failure reorders at most the publishes that were already in flight with
//! it.

use std::{
    collections::{HashMap, VecDeque},
    future::{Future, IntoFuture},
    pin::Pin,
    sync::Arc,
    time::Duration,
};

use async_nats::{
    HeaderMap,
    jetstream::{self, context::Publish, publish::PublishAck},
};
use bytes::Bytes;
use evbus_core::{Envelope, EventId, RecvError, Subscription, TryRecvError};
use futures_util::future::poll_fn;
use serde::Serialize;
use tokio::sync::watch;

use crate::{
    error::{BridgeError, ExportError, SubjectError},
    state::{Shared, bump, get, raised, set},
    subject,
    sync::Ordering,
    unwind,
};

/// The header naming the bridge that exported a message.
pub const ORIGIN_HEADER: &str = "Evbus-Origin";
/// JetStream's deduplication header: the envelope id.
pub const MSG_ID_HEADER: &str = "Nats-Msg-Id";

/// The acknowledgement of one publish, or why there is none (a timeout, a
/// lost connection, no stream).
type AckFuture = Pin<Box<dyn Future<Output = Result<PublishAck, String>> + Send>>;

/// A message ready to publish (and to publish again).
pub(crate) struct Outgoing {
    pub(crate) id: EventId,
    pub(crate) subject: String,
    pub(crate) headers: HeaderMap,
    pub(crate) payload: Bytes,
    pub(crate) attempts: u32,
}

struct InFlight {
    out: Outgoing,
    ack: AckFuture,
}

/// Turns topics into subjects the stream stores (cached per topic).
pub(crate) struct SubjectMap {
    prefix: String,
    stream: String,
    stream_subjects: Vec<String>,
    cache: HashMap<String, Result<String, SubjectError>>,
}

impl SubjectMap {
    pub(crate) fn new(prefix: &str, stream: &str, stream_subjects: &[String]) -> Self {
        SubjectMap {
            prefix: prefix.to_owned(),
            stream: stream.to_owned(),
            stream_subjects: stream_subjects.to_vec(),
            cache: HashMap::new(),
        }
    }

    pub(crate) fn subject(&mut self, topic: &str) -> Result<String, SubjectError> {
        if let Some(hit) = self.cache.get(topic) {
            return hit.clone();
        }
        let result = subject::subject_for(&self.prefix, topic).and_then(|s| {
            if self.stream_subjects.iter().any(|w| subject::covers(w, &s)) {
                Ok(s)
            } else {
                Err(SubjectError::NotInStream {
                    subject: s,
                    stream: self.stream.clone(),
                })
            }
        });
        // A bounded cache: the topic set of a bus is usually small.
        if self.cache.len() >= 4096 {
            self.cache.clear();
        }
        self.cache.insert(topic.to_owned(), result.clone());
        result
    }
}

/// Encodes an envelope as a message: JSON body, `Nats-Msg-Id` and
/// `Evbus-Origin` headers, checked against the server's `max_payload`
/// (`0`: unknown, not checked).
pub(crate) fn encode<T: Serialize>(
    env: &Envelope<T>,
    subjects: &mut SubjectMap,
    origin: &str,
    max_payload: usize,
) -> Result<Outgoing, ExportError> {
    let id = env.id();
    let subject = subjects
        .subject(env.topic())
        .map_err(|error| ExportError::Subject { id, error })?;
    // A `Serialize` impl that panics must not end the export task (every
    // later event would be lost silently): the panic is contained and
    // reported as an encoding failure of this one event.
    let encoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // AssertUnwindSafe: the closure only reads the envelope and builds
        // a new buffer, dropped if it unwinds.
        serde_json::to_vec(env)
    }));
    let payload = match encoded {
        Ok(Ok(payload)) => payload,
        Ok(Err(e)) => {
            return Err(ExportError::Encode {
                id,
                reason: e.to_string(),
            });
        }
        Err(panic) => {
            return Err(ExportError::Encode {
                id,
                reason: format!("serialize panicked: {}", unwind::panic_message(&*panic)),
            });
        }
    };
    let id_text = id.to_string();
    // "NATS/1.0\r\n", each "Name: value\r\n", then "\r\n".
    let header_len = 10
        + (MSG_ID_HEADER.len() + 4 + id_text.len())
        + (ORIGIN_HEADER.len() + 4 + origin.len())
        + 2;
    let size = payload.len() + header_len;
    if max_payload > 0 && size > max_payload {
        return Err(ExportError::Oversized {
            id,
            topic: env.topic().to_owned(),
            size,
            max: max_payload,
        });
    }
    let mut headers = HeaderMap::new();
    headers.insert(MSG_ID_HEADER, id_text.as_str());
    headers.insert(ORIGIN_HEADER, origin);
    Ok(Outgoing {
        id,
        subject,
        headers,
        payload: Bytes::from(payload),
        attempts: 0,
    })
}

/// The export task's parts.
pub(crate) struct Exporter<T> {
    pub(crate) sub: Subscription<Envelope<T>>,
    pub(crate) js: jetstream::Context,
    pub(crate) client: async_nats::Client,
    pub(crate) shared: Arc<Shared>,
    pub(crate) subjects: SubjectMap,
    pub(crate) origin: String,
    pub(crate) max_in_flight: usize,
    pub(crate) max_retries: Option<u32>,
    pub(crate) backoff: Duration,
    pub(crate) ack_timeout: Duration,
    /// Whether this bridge imports: only then can an event be one it
    /// imported.
    pub(crate) imports: bool,
    /// The server's `max_payload`, re-read every 1024 events.
    pub(crate) max_payload: usize,
    pub(crate) since_info: u32,
}

impl<T: Serialize + Clone + Send + 'static> Exporter<T> {
    /// Runs until `stop` turns true and everything taken is resolved, or
    /// `abort` turns true.
    pub(crate) async fn run(
        mut self,
        mut stop: watch::Receiver<bool>,
        mut abort: watch::Receiver<bool>,
    ) {
        let mut inflight: VecDeque<InFlight> = VecDeque::new();
        let mut retry: VecDeque<Outgoing> = VecDeque::new();
        let mut open = true;
        let mut stopping = false;
        let mut round = 0u32;
        let mut published = 0u64;
        loop {
            set(&self.shared.export.in_flight, inflight.len() as u64);
            set(&self.shared.export.backlog, self.sub.len() as u64);
            self.shared.refresh();
            // Wake `flush` waiters when idle, else every 64 resolutions.
            let resolved = get(&self.shared.export.resolved);
            if resolved != published && (inflight.is_empty() || resolved - published >= 64) {
                self.shared.publish_progress();
                published = resolved;
            }
            if !open && inflight.is_empty() && retry.is_empty() {
                return;
            }
            if !retry.is_empty() && inflight.is_empty() {
                let delay = self
                    .backoff
                    .saturating_mul(1u32 << round.min(16))
                    .min(Duration::from_secs(2));
                round = round.saturating_add(1);
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = raised(&mut abort) => return,
                }
                while let Some(out) = retry.pop_front() {
                    bump(&self.shared.export.retried);
                    self.send(out, &mut inflight).await;
                }
                continue;
            }
            let take = open && retry.is_empty() && inflight.len() < self.max_in_flight;
            let waiting = !inflight.is_empty();
            tokio::select! {
                biased;
                () = raised(&mut abort) => return,
                result = head(&mut inflight), if waiting => {
                    let Some(InFlight { mut out, .. }) = inflight.pop_front() else { continue };
                    match result {
                        Ok(ack) => {
                            round = 0;
                            bump(&self.shared.export.acked);
                            if ack.duplicate {
                                bump(&self.shared.export.deduplicated);
                            }
                            self.shared.resolved();
                        }
                        Err(e) => {
                            out.attempts += 1;
                            if self.max_retries.is_some_and(|max| out.attempts > max) {
                                bump(&self.shared.export.failed);
                                self.shared.report(BridgeError::Export(ExportError::GaveUp {
                                    id: out.id,
                                    attempts: out.attempts,
                                    last: e,
                                }));
                                self.shared.resolved();
                            } else {
                                retry.push_back(out);
                            }
                        }
                    }
                }
                event = poll_fn(|cx| self.sub.poll_recv(cx)), if take => match event {
                    Ok(env) => self.take(env, &mut inflight).await,
                    Err(RecvError::Lagged(n)) => {
                        self.shared.export.lost.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(RecvError::Disconnected) => open = false,
                },
                () = raised(&mut stop), if !stopping => {
                    stopping = true;
                    // The ring closes; what it buffered is still drained
                    // and exported, then `Disconnected` ends the intake.
                    self.sub.unsubscribe();
                }
            }
        }
    }

    async fn take(&mut self, env: Envelope<T>, inflight: &mut VecDeque<InFlight>) {
        let shared = &*self.shared;
        bump(&shared.export.received);
        let imported = self.imports && {
            let mut ids = shared.imported.lock().unwrap_or_else(|p| p.into_inner());
            ids.contains(&env.id(), std::time::Instant::now())
        };
        // A dry-run replay must cause no effect outside the process.
        let skip = imported || env.replay().is_some_and(|m| m.dry_run);
        let encoded = if skip {
            None
        } else {
            if self.max_payload == 0 || self.since_info >= 1024 {
                self.max_payload = self.client.server_info().max_payload;
                self.since_info = 0;
            }
            self.since_info += 1;
            Some(encode(
                &env,
                &mut self.subjects,
                &self.origin,
                self.max_payload,
            ))
        };
        // The event is done with: dropped here, before any await, so that
        // a panicking `Drop` is contained and reported rather than ending
        // this task (or unwinding out of an abort).
        drop_event(shared, env);
        match encoded {
            None => {
                bump(&shared.export.skipped_imported);
                shared.resolved();
            }
            Some(Ok(out)) => self.send(out, inflight).await,
            Some(Err(e)) => {
                // Reported before counted: who sees the count sees the
                // error.
                let oversized = matches!(e, ExportError::Oversized { .. });
                shared.report(BridgeError::Export(e));
                if oversized {
                    bump(&shared.export.oversized);
                } else {
                    bump(&shared.export.failed);
                }
                shared.resolved();
            }
        }
    }

    async fn send(&self, out: Outgoing, inflight: &mut VecDeque<InFlight>) {
        bump(&self.shared.export.sent);
        let publish = Publish::build()
            .payload(out.payload.clone())
            .headers(out.headers.clone());
        // The deadline runs from now, for every publish in flight at once:
        // async-nats starts its own timeout only when the future is first
        // polled, and only the oldest is polled.
        let deadline = tokio::time::Instant::now() + self.ack_timeout;
        let ack: AckFuture = match self.js.send_publish(out.subject.clone(), publish).await {
            Ok(fut) => Box::pin(async move {
                match tokio::time::timeout_at(deadline, fut.into_future()).await {
                    Ok(Ok(ack)) => Ok(ack),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("timed out: no acknowledgement in time".to_owned()),
                }
            }),
            Err(e) => Box::pin(std::future::ready(Err(e.to_string()))),
        };
        inflight.push_back(InFlight { out, ack });
    }
}

/// Whatever stops the task (its end, an abort, a dropped bridge), what it
/// gives up is counted here, in `abandoned`: the events it took and did
/// not resolve (in flight, waiting to be sent again, or being sent), and
/// the events still in the export ring. Those are dropped here, each drop
/// contained and reported, not in the subscription's own `Drop`, which
/// would raise a payload's panic again in the runtime.
impl<T> Drop for Exporter<T> {
    fn drop(&mut self) {
        let shared = &*self.shared;
        let e = &shared.export;
        // Every event taken is counted in `received` before the task's
        // first await, and in `resolved` once acknowledged, skipped or
        // reported; only this task writes either, and this is its last
        // act, so the difference is exact.
        let unresolved = get(&e.received).saturating_sub(get(&e.resolved));
        e.abandoned.fetch_add(unresolved, Ordering::Relaxed);
        self.sub.unsubscribe();
        loop {
            match self.sub.try_recv() {
                Ok(env) => {
                    drop_event(shared, env);
                    bump(&e.abandoned);
                }
                Err(TryRecvError::Lagged(n)) => {
                    e.lost.fetch_add(n, Ordering::Relaxed);
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        set(&e.in_flight, 0);
        set(&e.backlog, 0);
        shared.refresh();
        // Raised last: who waits on it reads the final counts.
        shared.export_ended.send_replace(true);
    }
}

/// Drops an event in the export task; a panic of its `Drop` is contained,
/// reported and counted.
fn drop_event<T>(shared: &Shared, env: Envelope<T>) {
    let id = env.id();
    if let Err(reason) = unwind::drop_contained(env) {
        // Reported before counted: who sees the count sees the error.
        shared.report(BridgeError::Export(ExportError::DropPanicked {
            id,
            reason,
        }));
        bump(&shared.export.drop_panics);
    }
}

/// The acknowledgement of the oldest publish in flight.
async fn head(inflight: &mut VecDeque<InFlight>) -> Result<PublishAck, String> {
    poll_fn(|cx| match inflight.front_mut() {
        Some(f) => f.ack.as_mut().poll(cx),
        None => std::task::Poll::Pending,
    })
    .await
}
