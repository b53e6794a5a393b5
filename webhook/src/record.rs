//! What the journal holds: one record per delivery attempt, one per dead
//! letter, one per replay of a dead letter; and the thread that appends
//! them.
//!
//! Records are [`Envelope<DeliveryRecord>`] on the topics
//! [`ATTEMPT_TOPIC`], [`DEAD_LETTER_TOPIC`] and [`REPLAYED_TOPIC`]. Each
//! keeps the delivered event's correlation id and tenant, and has the event
//! as its causation, so the journal's queries (by correlation id, tenant,
//! time) find every attempt made for a request.

use std::{path::Path, sync::mpsc, thread};

use evbus_core::{Envelope, EventId, Pattern};
use evbus_journal::{Journal, Query};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::error::Error;

/// The topic of attempt records.
pub const ATTEMPT_TOPIC: &str = "webhook.attempt";
/// The topic of dead-letter records.
pub const DEAD_LETTER_TOPIC: &str = "webhook.dead_letter";
/// The topic of records that say a dead letter was replayed.
pub const REPLAYED_TOPIC: &str = "webhook.replayed";

/// One delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// The delivered event.
    pub event_id: EventId,
    /// The `webhook-id` sent (the same on every attempt of one event).
    pub webhook_id: String,
    /// The endpoint's name.
    pub endpoint: String,
    /// The event's tenant.
    pub tenant: Option<String>,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The HTTP status, if a response came.
    pub status: Option<u16>,
    /// The attempt's duration on the injected clock, in microseconds.
    pub latency_us: u64,
    /// Why it failed, if it did (`timeout`, `connect: ...`, `status 500`,
    /// `circuit open`, ...).
    pub error: Option<String>,
    /// When the attempt started, in milliseconds on the injected clock
    /// since the deliverer was built.
    pub started_ms: u64,
    /// The delay before the next attempt, in milliseconds, if one is
    /// scheduled.
    pub retry_in_ms: Option<u64>,
    /// Whether this was a replay of a dead letter.
    pub replay: bool,
}

impl Attempt {
    /// Whether the endpoint acknowledged (2xx).
    pub fn succeeded(&self) -> bool {
        self.error.is_none()
    }
}

/// An event that exhausted its retries (or was refused a place in the
/// endpoint's queue). It holds the exact body, so a replay sends the same
/// bytes under the same `webhook-id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The event.
    pub event_id: EventId,
    /// The event's correlation id (replays keep it).
    pub correlation_id: EventId,
    /// The `webhook-id`.
    pub webhook_id: String,
    /// The endpoint's name.
    pub endpoint: String,
    /// The event's tenant.
    pub tenant: Option<String>,
    /// Attempts made.
    pub attempts: u32,
    /// The last error.
    pub error: String,
    /// The request body.
    pub body: String,
    /// The journal sequence number of this record (filled in when read).
    #[serde(skip)]
    pub seq: u64,
}

/// A replay of the dead letter at journal sequence `dead_letter_seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replayed {
    /// The endpoint's name.
    pub endpoint: String,
    /// The dead letter's sequence number.
    pub dead_letter_seq: u64,
}

/// The payload of every record the deliverer writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliveryRecord {
    /// On [`ATTEMPT_TOPIC`].
    Attempt(Attempt),
    /// On [`DEAD_LETTER_TOPIC`].
    DeadLetter(DeadLetter),
    /// On [`REPLAYED_TOPIC`].
    Replayed(Replayed),
}

pub(crate) enum JournalMsg {
    Append(Envelope<DeliveryRecord>),
    Flush(oneshot::Sender<Result<(), String>>),
}

/// The appending thread: drains what is queued and appends it as one
/// batch, so delivery tasks never wait on the disk.
pub(crate) fn spawn_writer(mut journal: Journal) -> Result<mpsc::Sender<JournalMsg>, Error> {
    let (tx, rx) = mpsc::channel::<JournalMsg>();
    thread::Builder::new()
        .name("evbus-webhook-journal".into())
        .spawn(move || {
            let mut failed: Option<String> = None;
            while let Ok(first) = rx.recv() {
                let mut batch = Vec::new();
                let mut flushes = Vec::new();
                let mut next = Some(first);
                while let Some(m) = next.take() {
                    match m {
                        JournalMsg::Append(e) => batch.push(e),
                        JournalMsg::Flush(done) => flushes.push(done),
                    }
                    if batch.len() < 4096 {
                        next = rx.try_recv().ok();
                    }
                }
                if !batch.is_empty()
                    && failed.is_none()
                    && let Err(e) = journal.append_batch(batch.iter())
                {
                    failed = Some(e.to_string());
                }
                if !flushes.is_empty()
                    && failed.is_none()
                    && let Err(e) = journal.flush()
                {
                    failed = Some(e.to_string());
                }
                for done in flushes {
                    let _ = done.send(match &failed {
                        None => Ok(()),
                        Some(e) => Err(e.clone()),
                    });
                }
            }
            let _ = journal.close();
        })
        .map_err(|e| Error::Io(e.to_string()))?;
    Ok(tx)
}

/// Filters for [`read_attempts`].
#[derive(Debug, Clone, Default)]
pub struct AttemptQuery {
    /// Only attempts for this event.
    pub event: Option<EventId>,
    /// Only attempts for events of this correlation id (uses the journal's
    /// correlation index).
    pub correlation: Option<EventId>,
    /// Only attempts to this endpoint.
    pub endpoint: Option<String>,
    /// Only attempts for events of this tenant.
    pub tenant: Option<String>,
}

fn query_records(
    dir: &Path,
    topic: &str,
    q: &AttemptQuery,
) -> Result<Vec<(u64, DeliveryRecord)>, Error> {
    let mut query =
        Query::new().pattern(Pattern::parse(topic).map_err(|e| Error::Journal(e.to_string()))?);
    if let Some(c) = q.correlation {
        query = query.correlation(c);
    }
    if let Some(t) = &q.tenant {
        query = query.tenant(t);
    }
    let mut out = Vec::new();
    for r in Query::run(dir, &query).map_err(|e| Error::Journal(e.to_string()))? {
        let r = r.map_err(|e| Error::Journal(e.to_string()))?;
        let env = r
            .envelope::<DeliveryRecord>()
            .map_err(|e| Error::Journal(e.to_string()))?;
        if q.event.is_some_and(|id| env.causation_id() != Some(id)) {
            continue;
        }
        out.push((r.seq(), env.into_payload()));
    }
    Ok(out)
}

/// Every attempt recorded in the journal at `dir` that matches `q`, in
/// the order they were appended. Works on a journal another process
/// writes (it reads up to the last complete record).
pub fn read_attempts(dir: impl AsRef<Path>, q: &AttemptQuery) -> Result<Vec<Attempt>, Error> {
    Ok(query_records(dir.as_ref(), ATTEMPT_TOPIC, q)?
        .into_iter()
        .filter_map(|(_, r)| match r {
            DeliveryRecord::Attempt(a) if q.endpoint.as_ref().is_none_or(|e| *e == a.endpoint) => {
                Some(a)
            }
            _ => None,
        })
        .collect())
}

/// The dead letters in the journal at `dir` for `endpoint` (all endpoints
/// when `None`) that have not been replayed yet.
pub fn read_dead_letters(
    dir: impl AsRef<Path>,
    endpoint: Option<&str>,
) -> Result<Vec<DeadLetter>, Error> {
    let dir = dir.as_ref();
    let all = AttemptQuery::default();
    let replayed: std::collections::HashSet<u64> = query_records(dir, REPLAYED_TOPIC, &all)?
        .into_iter()
        .filter_map(|(_, r)| match r {
            DeliveryRecord::Replayed(r) => Some(r.dead_letter_seq),
            _ => None,
        })
        .collect();
    Ok(query_records(dir, DEAD_LETTER_TOPIC, &all)?
        .into_iter()
        .filter_map(|(seq, r)| match r {
            DeliveryRecord::DeadLetter(mut d)
                if endpoint.is_none_or(|e| e == d.endpoint) && !replayed.contains(&seq) =>
            {
                d.seq = seq;
                Some(d)
            }
            _ => None,
        })
        .collect())
}
