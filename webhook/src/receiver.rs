//! The receiving side: verify, deduplicate by `webhook-id`, count, and
//! signal signature failures.

use std::{
    collections::{HashSet, VecDeque},
    fmt,
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use crate::{
    sign::{HEADER_ID, Verifier, VerifyError},
    stats::Alert,
    sync::{AtomicU64, Ordering},
};

/// What [`Receiver::receive`] accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The `webhook-id`.
    pub webhook_id: String,
    /// Whether this id was seen before (a retry whose first try arrived):
    /// acknowledge it, but do not act on it again.
    pub duplicate: bool,
}

type AlertHook = Arc<dyn Fn(Alert) + Send + Sync>;

/// A receiver's gate: a [`Verifier`], a memory of recent `webhook-id`s,
/// counters, and a hook called with [`Alert::SignatureRejected`] on every
/// rejected request.
#[derive(Clone)]
pub struct Receiver {
    name: String,
    verifier: Verifier,
    inner: Arc<Inner>,
    on_alert: Option<AlertHook>,
}

struct Inner {
    seen: Mutex<(HashSet<String>, VecDeque<String>)>,
    cap: usize,
    accepted: AtomicU64,
    duplicates: AtomicU64,
    rejected: AtomicU64,
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("name", &self.name)
            .field("accepted", &self.accepted())
            .field("duplicates", &self.duplicates())
            .field("rejected", &self.rejected())
            .finish_non_exhaustive()
    }
}

impl Receiver {
    /// A receiver named `name` (it labels alerts) checking with `verifier`,
    /// remembering the last 100 000 ids.
    pub fn new(name: &str, verifier: Verifier) -> Self {
        Self {
            name: name.to_owned(),
            verifier,
            inner: Arc::new(Inner {
                seen: Mutex::new((HashSet::new(), VecDeque::new())),
                cap: 100_000,
                accepted: AtomicU64::new(0),
                duplicates: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
            }),
            on_alert: None,
        }
    }

    /// Remembers the last `n` ids (at least 1) for duplicate detection.
    ///
    /// Call it before sharing the receiver: clones made earlier keep the
    /// previous memory.
    #[must_use]
    pub fn remember(mut self, n: usize) -> Self {
        self.inner = Arc::new(Inner {
            seen: Mutex::new((HashSet::new(), VecDeque::new())),
            cap: n.max(1),
            accepted: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        });
        self
    }

    /// Calls `hook` with an [`Alert::SignatureRejected`] for every rejected
    /// request.
    #[must_use]
    pub fn on_alert(mut self, hook: impl Fn(Alert) + Send + Sync + 'static) -> Self {
        self.on_alert = Some(Arc::new(hook));
        self
    }

    /// Verifies a request with the wall clock as `now`.
    pub fn receive(&self, headers: &http::HeaderMap, body: &[u8]) -> Result<Received, VerifyError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.receive_at(headers, body, now)
    }

    /// Verifies a request with `now` (seconds since the epoch) as the
    /// clock, then records its id.
    pub fn receive_at(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
        now: u64,
    ) -> Result<Received, VerifyError> {
        let id = headers
            .get(HEADER_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if let Err(error) = self.verifier.verify(headers, body, now) {
            self.inner.rejected.fetch_add(1, Ordering::Relaxed);
            if let Some(hook) = &self.on_alert {
                hook(Alert::SignatureRejected {
                    receiver: self.name.clone(),
                    webhook_id: id,
                    error: error.clone(),
                });
            }
            return Err(error);
        }
        let id = id.unwrap_or_default();
        let fresh = match self.inner.seen.lock() {
            Ok(mut g) => {
                let (set, order) = &mut *g;
                if set.contains(&id) {
                    false
                } else {
                    if order.len() >= self.inner.cap
                        && let Some(old) = order.pop_front()
                    {
                        set.remove(&old);
                    }
                    set.insert(id.clone());
                    order.push_back(id.clone());
                    true
                }
            }
            Err(_) => true,
        };
        if fresh {
            self.inner.accepted.fetch_add(1, Ordering::Relaxed);
        } else {
            self.inner.duplicates.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Received {
            webhook_id: id,
            duplicate: !fresh,
        })
    }

    /// The receiver's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Distinct requests accepted.
    pub fn accepted(&self) -> u64 {
        self.inner.accepted.load(Ordering::Relaxed)
    }

    /// Accepted requests whose id had been seen.
    pub fn duplicates(&self) -> u64 {
        self.inner.duplicates.load(Ordering::Relaxed)
    }

    /// Requests whose signature check failed.
    pub fn rejected(&self) -> u64 {
        self.inner.rejected.load(Ordering::Relaxed)
    }
}
