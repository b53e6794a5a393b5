//! The importer: durable pull consumers feeding the local bus.
//!
//! Per [`ImportSpec`](crate::ImportSpec), a task pulls from its durable
//! consumer and decodes each message. One thread of the bridge (the
//! *delivery thread*) publishes them on the local bus, because a local
//! publish may block on a lossless subscriber: it takes the messages from a
//! bounded channel, so a blocked publish stops the pulls (back-pressure,
//! never a drop). After each publish returns, it hands the message to the
//! ack task, which acknowledges it to the server: a message is acknowledged
//! only after the local bus accepted it (at-least-once).
//!
//! The delivery thread remembers the envelope ids it delivered, for the
//! dedupe window: a redelivery (an acknowledgement lost, or an ack wait that
//! expired while the bus pushed back) is acknowledged and not published
//! again. It also records every id it imports for the exporter, which skips
//! them (no loops); and skips messages that carry this bridge's own origin.

use std::{sync::Arc, time::Duration};

use async_nats::jetstream::{self, AckKind, consumer::PullConsumer};
use evbus_core::{Bus, Envelope, PublishError};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};

use crate::{
    dedupe::IdWindow,
    error::{BridgeError, ImportError},
    export::ORIGIN_HEADER,
    state::{Shared, bump, raised, set},
    subject,
    sync::Ordering,
    unwind,
};

/// A pulled message on its way to the delivery thread.
pub(crate) struct Item<T> {
    msg: jetstream::Message,
    what: What<T>,
}

enum What<T> {
    Deliver(Envelope<T>),
    OwnOrigin,
    Reject(ImportError),
}

/// What the ack task is asked to do.
pub(crate) struct Ack {
    msg: jetstream::Message,
    kind: AckKind,
}

/// Pulls from one durable consumer until `stop`.
pub(crate) async fn pull<T: DeserializeOwned + Send + 'static>(
    consumer: PullConsumer,
    prefix: String,
    origin: String,
    batch: usize,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Item<T>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let stream = consumer
            .stream()
            .max_messages_per_batch(batch)
            .expires(Duration::from_secs(5))
            .heartbeat(Duration::from_secs(2))
            .messages()
            .await;
        let mut messages = match stream {
            Ok(m) => m,
            Err(_) => {
                bump(&shared.import.stream_errors);
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(200)) => continue,
                    () = raised(&mut stop) => return,
                }
            }
        };
        loop {
            let next = tokio::select! {
                () = raised(&mut stop) => return,
                next = messages.next() => next,
            };
            let msg = match next {
                None => break,
                Some(Err(_)) => {
                    bump(&shared.import.stream_errors);
                    continue;
                }
                Some(Ok(msg)) => msg,
            };
            bump(&shared.import.received);
            let mut stream_seq = 0;
            if let Ok(info) = msg.info() {
                stream_seq = info.stream_sequence;
                if info.delivered > 1 {
                    bump(&shared.import.redelivered);
                }
                set(&shared.import.pending, info.pending);
            }
            shared.refresh();
            // Waits while the delivery thread is behind: back-pressure. The
            // slot is reserved before decoding, so no event is held across
            // this wait (a stop or an abort here drops only the message).
            let permit = tokio::select! {
                () = raised(&mut stop) => return,
                permit = tx.reserve() => permit,
            };
            let Ok(permit) = permit else { return };
            // A `Deserialize` impl that panics must not end this pull (its
            // consumer would stop silently): the message is rejected as
            // undecodable instead.
            let what = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                // AssertUnwindSafe: `decode` only reads the message and
                // builds a new value, dropped if it unwinds; what it
                // reports is complete before any user code runs.
                decode(&msg, &prefix, &origin, stream_seq, &shared)
            }))
            .unwrap_or_else(|panic| {
                What::Reject(ImportError::Decode {
                    stream_seq,
                    subject: msg.subject.to_string(),
                    reason: format!("deserialize panicked: {}", unwind::panic_message(&*panic)),
                })
            });
            permit.send(Item { msg, what });
        }
    }
}

fn decode<T: DeserializeOwned>(
    msg: &jetstream::Message,
    prefix: &str,
    origin: &str,
    stream_seq: u64,
    shared: &Shared,
) -> What<T> {
    let own = msg
        .headers
        .as_ref()
        .and_then(|h| h.get(ORIGIN_HEADER))
        .is_some_and(|v| v.as_str() == origin);
    if own {
        return What::OwnOrigin;
    }
    let subject = msg.subject.as_str();
    let topic = match subject::topic_of(prefix, subject) {
        Ok(t) => t,
        Err(error) => return What::Reject(ImportError::Subject { stream_seq, error }),
    };
    match serde_json::from_slice::<Envelope<T>>(&msg.payload) {
        Ok(env) if env.topic() == topic => What::Deliver(env),
        Ok(env) => {
            let mismatch = ImportError::TopicMismatch {
                stream_seq,
                subject_topic: topic.to_owned(),
                envelope_topic: env.topic().to_owned(),
            };
            drop_event(shared, stream_seq, env);
            What::Reject(mismatch)
        }
        Err(e) => What::Reject(ImportError::Decode {
            stream_seq,
            subject: subject.to_owned(),
            reason: e.to_string(),
        }),
    }
}

/// The delivery thread: publish, remember, hand to the ack task. Returns
/// when the channel closes, the bus shuts down or the bridge is dropped;
/// then the events the pulls queued and it did not deliver are dropped
/// here (their messages stay unacknowledged, for redelivery), each drop
/// contained.
pub(crate) fn deliver<T: Clone + Send + 'static>(
    bus: Bus<Envelope<T>>,
    mut rx: mpsc::Receiver<Item<T>>,
    acks: mpsc::UnboundedSender<Ack>,
    seen: IdWindow,
    shared: Arc<Shared>,
) {
    deliver_until_closed(bus, &mut rx, &acks, seen, &shared);
    // Closed, then drained to the end: a pull that holds a reserved slot
    // sends at once (it decodes between reserving and sending, and awaits
    // nothing), so this waits for no pull, and nothing is left for the
    // channel's own drop.
    rx.close();
    while let Some(item) = rx.blocking_recv() {
        drop_item(&shared, item);
    }
}

fn deliver_until_closed<T: Clone + Send + 'static>(
    bus: Bus<Envelope<T>>,
    rx: &mut mpsc::Receiver<Item<T>>,
    acks: &mpsc::UnboundedSender<Ack>,
    mut seen: IdWindow,
    shared: &Shared,
) {
    let mut publisher = bus.publisher();
    drop(bus);
    while let Some(Item { msg, what }) = rx.blocking_recv() {
        // The bridge was dropped (or its shutdown gave up): deliver nothing
        // more. What the pulls had queued stays unacknowledged, and the
        // server redelivers it to the next run after `ack_wait`. Relaxed: a
        // stop flag; a stale read delivers (and acknowledges) one more
        // message, which is harmless.
        if shared.closed.load(Ordering::Relaxed) {
            drop_item(shared, Item { msg, what });
            return;
        }
        let stream_seq = || msg.info().map_or(0, |i| i.stream_sequence);
        let kind = match what {
            What::OwnOrigin => {
                bump(&shared.import.own_origin);
                AckKind::Ack
            }
            What::Reject(e) => {
                // Reported before counted: who sees the count sees the error.
                shared.report(BridgeError::Import(e));
                bump(&shared.import.rejected);
                AckKind::Term
            }
            What::Deliver(env) => {
                let now = std::time::Instant::now();
                let id = env.id();
                if seen.contains(&id, now) {
                    drop_event(shared, stream_seq(), env);
                    bump(&shared.import.duplicates);
                    AckKind::Ack
                } else {
                    shared
                        .imported
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(id, now);
                    let topic = env.topic().to_owned();
                    // A panic in user code during the publish (the
                    // payload's `Clone`, an event's `Drop`) must not end
                    // this thread, which would stop every import silently:
                    // the bus settles its own state before the panic
                    // reaches us (rings the publish missed count as
                    // drops), and the message is terminated and reported,
                    // as a redelivery would panic again.
                    let published = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        // AssertUnwindSafe: the publisher is consistent
                        // after a contained panic (see above).
                        publisher.publish_to(&topic, env)
                    }));
                    match published {
                        Err(panic) => {
                            shared.report(BridgeError::Import(ImportError::Panicked {
                                stream_seq: stream_seq(),
                                id,
                                reason: unwind::panic_message(&*panic),
                            }));
                            bump(&shared.import.rejected);
                            AckKind::Term
                        }
                        Ok(Ok(_)) => {
                            seen.insert(id, now);
                            bump(&shared.import.delivered);
                            AckKind::Ack
                        }
                        // The bus is gone: leave the message unacknowledged,
                        // for the next run to receive. The refused event
                        // comes back in the error, and is dropped here.
                        Ok(Err(e @ PublishError::Closed(_))) => {
                            drop_event(shared, stream_seq(), e.into_inner());
                            return;
                        }
                        Ok(Err(e)) => {
                            // A topic the envelope's own validation let
                            // through cannot fail here; terminate rather
                            // than loop on it.
                            drop_event(shared, stream_seq(), e.into_inner());
                            bump(&shared.import.rejected);
                            AckKind::Term
                        }
                    }
                }
            }
        };
        if acks.send(Ack { msg, kind }).is_err() {
            return;
        }
        // The backlog shrank: `Lagging` may be over.
        shared.refresh();
    }
}

/// Drops a queued item the delivery thread does not deliver.
fn drop_item<T>(shared: &Shared, Item { msg, what }: Item<T>) {
    if let What::Deliver(env) = what {
        drop_event(shared, msg.info().map_or(0, |i| i.stream_sequence), env);
    }
}

/// Drops an imported event the bridge does not publish; a panic of its
/// `Drop` is contained, reported and counted.
fn drop_event<T>(shared: &Shared, stream_seq: u64, env: Envelope<T>) {
    let id = env.id();
    if let Err(reason) = unwind::drop_contained(env) {
        // Reported before counted: who sees the count sees the error.
        shared.report(BridgeError::Import(ImportError::DropPanicked {
            stream_seq,
            id,
            reason,
        }));
        bump(&shared.import.drop_panics);
    }
}

/// Acknowledges what the delivery thread handed over.
pub(crate) async fn ack(mut rx: mpsc::UnboundedReceiver<Ack>, shared: Arc<Shared>) {
    while let Some(Ack { msg, kind }) = rx.recv().await {
        let acked = match kind {
            AckKind::Ack => msg.ack().await,
            other => msg.ack_with(other).await,
        };
        match acked {
            Ok(()) => bump(&shared.import.acked),
            Err(_) => bump(&shared.import.ack_errors),
        }
    }
}
