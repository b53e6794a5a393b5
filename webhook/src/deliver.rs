//! The deliverer: endpoints, per-event delivery tasks, retries, breaker,
//! rate limits, and the journal of attempts.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    fmt,
    path::PathBuf,
    sync::{Arc, Mutex, RwLock, mpsc},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use evbus_core::{Envelope, EventId, Timestamp};
use evbus_dispatch::{Clock, SystemClock};
use evbus_journal::Journal;
use governor::{
    Quota, RateLimiter,
    state::{InMemoryState, NotKeyed},
};
use serde::Serialize;
use tokio::{
    runtime::Handle,
    sync::{OwnedSemaphorePermit, Semaphore, broadcast},
};

use crate::{
    breaker::{Admit, Breaker, BreakerState, Transition},
    clock::{ClockHandle, GovernorClock},
    endpoint::{Endpoint, EndpointError},
    error::Error,
    record::{
        ATTEMPT_TOPIC, Attempt, AttemptQuery, DEAD_LETTER_TOPIC, DeadLetter, DeliveryRecord,
        JournalMsg, REPLAYED_TOPIC, Replayed, read_attempts, read_dead_letters, spawn_writer,
    },
    sign::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, signature_header},
    stats::{Alert, AlertState, Counters, EndpointStats, Stats, summary},
    sync::Ordering,
};

type Limiter = RateLimiter<NotKeyed, InMemoryState, GovernorClock>;

/// Event ids (or idempotency keys) an endpoint has been given, the most
/// recent `cap` of them.
#[derive(Debug)]
struct Seen {
    set: HashSet<String>,
    order: VecDeque<String>,
    cap: usize,
}

impl Seen {
    /// Whether `key` is new (and remembers it).
    fn insert(&mut self, key: String) -> bool {
        if self.set.contains(&key) {
            return false;
        }
        if self.order.len() >= self.cap
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        self.set.insert(key.clone());
        self.order.push_back(key);
        true
    }
}

struct EndpointState {
    ep: Endpoint,
    breaker: Mutex<Breaker>,
    alerts: Mutex<AlertState>,
    limiter: Option<Limiter>,
    /// One permit per event accepted and not finished: the queue bound.
    queue: Arc<Semaphore>,
    /// One permit per request in flight.
    requests: Semaphore,
    counters: Counters,
    seen: Mutex<Seen>,
}

impl fmt::Debug for EndpointState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointState")
            .field("ep", &self.ep.name)
            .finish_non_exhaustive()
    }
}

struct Shared {
    clock: ClockHandle,
    origin: Instant,
    client: reqwest::Client,
    endpoints: RwLock<HashMap<String, Arc<EndpointState>>>,
    journal: Mutex<mpsc::Sender<JournalMsg>>,
    journal_dir: PathBuf,
    alerts: broadcast::Sender<Alert>,
    runtime: Handle,
    outstanding: crate::sync::AtomicU64,
    /// Events `send` refused because their payload did not serialize
    /// (an error or a panic).
    serialize_errors: crate::sync::AtomicU64,
    /// Envelopes whose payload's `Drop` panicked in a forwarding thread.
    drop_panics: crate::sync::AtomicU64,
    idle: tokio::sync::Notify,
    dedupe_window: usize,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhooks")
            .field("journal", &self.journal_dir)
            .finish_non_exhaustive()
    }
}

/// Delivers events to registered endpoints as signed webhooks.
///
/// Cheap to clone (a shared handle). Each event accepted for an endpoint
/// runs as its own task on the tokio runtime, so a slow or dead endpoint
/// holds only its own tasks: its queue bound, request concurrency, rate
/// limit and breaker are its own.
///
/// Delivery order within an endpoint is not guaranteed (retries overtake
/// nothing and wait for nothing); receivers order by the event's time or
/// id and deduplicate by `webhook-id`.
///
/// # Closing
///
/// Dropping the last handle stops nothing that was accepted: each event's
/// task holds the shared state until it is delivered or dead-lettered,
/// and the journal thread closes the journal once the last of them is
/// gone. To finish cleanly, call [`wait_idle`](Self::wait_idle) and then
/// [`flush`](Self::flush) before dropping. Tasks run on the runtime the
/// deliverer was built with; shutting that runtime down cancels them:
/// their finished attempts are in the journal, an attempt in progress is
/// cut off unrecorded, the rest are not made, and each such event is
/// dead-lettered with an error that starts with `cancelled` (so
/// [`replay_dead_letters`](Self::replay_dead_letters) can send it later;
/// a receiver may then see a `webhook-id` again, if the cut-off request
/// reached it). Events sent after that runtime is gone are dead-lettered
/// the same way, and [`wait_idle`](Self::wait_idle) does not wait for
/// them. The journal thread closes the journal once the last task is
/// gone.
#[derive(Clone, Debug)]
pub struct Webhooks {
    shared: Arc<Shared>,
}

/// Builds a [`Webhooks`].
pub struct WebhooksBuilder {
    journal: Journal,
    clock: Arc<dyn Clock>,
    client: Option<reqwest::Client>,
    runtime: Option<Handle>,
    dedupe_window: usize,
}

impl fmt::Debug for WebhooksBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhooksBuilder")
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl WebhooksBuilder {
    /// The clock for backoff, timeouts, rate limits, breakers and alert
    /// windows (default [`SystemClock`]). The signing timestamp is always
    /// the wall clock.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The HTTP client (default: rustls, no proxy from the environment,
    /// 2 s connect timeout).
    #[must_use]
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The runtime to run on (default: the current one).
    #[must_use]
    pub fn runtime(mut self, runtime: Handle) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// Event ids (or idempotency keys) remembered per endpoint to refuse
    /// duplicates (default 100 000).
    #[must_use]
    pub fn dedupe_window(mut self, n: usize) -> Self {
        self.dedupe_window = n.max(1);
        self
    }

    /// Starts the journal thread.
    pub fn build(self) -> Result<Webhooks, Error> {
        let runtime = match self.runtime {
            Some(h) => h,
            None => Handle::try_current().map_err(|_| Error::NoRuntime)?,
        };
        let client = match self.client {
            Some(c) => c,
            None => reqwest::Client::builder()
                .no_proxy()
                .connect_timeout(Duration::from_secs(2))
                .build()
                .map_err(|e| Error::Io(e.to_string()))?,
        };
        let journal_dir = self.journal.dir().to_path_buf();
        let tx = spawn_writer(self.journal)?;
        let clock = ClockHandle::new(self.clock);
        let (alerts, _) = broadcast::channel(4096);
        Ok(Webhooks {
            shared: Arc::new(Shared {
                origin: clock.now(),
                clock,
                client,
                endpoints: RwLock::new(HashMap::new()),
                journal: Mutex::new(tx),
                journal_dir,
                alerts,
                runtime,
                outstanding: crate::sync::AtomicU64::new(0),
                serialize_errors: crate::sync::AtomicU64::new(0),
                drop_panics: crate::sync::AtomicU64::new(0),
                idle: tokio::sync::Notify::new(),
                dedupe_window: self.dedupe_window,
            }),
        })
    }
}

/// What [`Webhooks::send`] did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SendReport {
    /// Endpoints whose filter matched.
    pub matched: usize,
    /// Endpoints the event was queued for.
    pub queued: usize,
    /// Endpoints that already had it (not sent again).
    pub duplicates: usize,
    /// Endpoints whose queue was full (the event was dead-lettered there).
    pub queue_full: usize,
}

#[derive(Serialize)]
struct Body<'a, T> {
    #[serde(rename = "type")]
    kind: &'a str,
    id: EventId,
    time: Timestamp,
    correlation_id: EventId,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<&'a str>,
    data: &'a T,
}

#[derive(Debug, Clone)]
struct Job {
    event_id: EventId,
    correlation: EventId,
    webhook_id: Arc<str>,
    tenant: Option<Arc<str>>,
    body: Arc<[u8]>,
    accepted: Instant,
    replay: bool,
}

/// The `webhook-id` of an event: `msg_` and the event id.
pub fn webhook_id(event: EventId) -> String {
    format!("msg_{event}")
}

struct Outcome {
    status: Option<u16>,
    error: Option<String>,
    retry_after: Option<Duration>,
    request: bool,
    latency: Duration,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn parse_retry_after(v: &reqwest::header::HeaderValue) -> Option<Duration> {
    let s = v.to_str().ok()?.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(s).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

impl Webhooks {
    /// A builder writing delivery records to `journal`.
    pub fn builder(journal: Journal) -> WebhooksBuilder {
        WebhooksBuilder {
            journal,
            clock: Arc::new(SystemClock),
            client: None,
            runtime: None,
            dedupe_window: 100_000,
        }
    }

    /// Registers an endpoint; events sent from now on may go to it.
    pub fn register(&self, ep: Endpoint) -> Result<(), Error> {
        let now = self.shared.clock.now();
        let limiter = ep.rate_limit.map(|r| {
            let quota = Quota::per_second(r.per_second).allow_burst(r.burst);
            RateLimiter::direct_with_clock(quota, self.shared.clock.governor())
        });
        let state = Arc::new(EndpointState {
            breaker: Mutex::new(Breaker::new(ep.breaker, now)),
            alerts: Mutex::new(AlertState::new(now)),
            limiter,
            queue: Arc::new(Semaphore::new(ep.queue.min(Semaphore::MAX_PERMITS))),
            requests: Semaphore::new(ep.concurrency.min(Semaphore::MAX_PERMITS)),
            counters: Counters::new(),
            seen: Mutex::new(Seen {
                set: HashSet::new(),
                order: VecDeque::new(),
                cap: self.shared.dedupe_window,
            }),
            ep,
        });
        let mut map = self.shared.endpoints.write().map_err(|_| Error::Closed)?;
        if map.contains_key(&state.ep.name) {
            return Err(EndpointError::Exists(state.ep.name.clone()).into());
        }
        map.insert(state.ep.name.clone(), state);
        Ok(())
    }

    /// Removes an endpoint: no new event goes to it; events already
    /// accepted finish their attempts. Returns whether it existed.
    pub fn remove(&self, name: &str) -> bool {
        self.shared
            .endpoints
            .write()
            .map(|mut m| m.remove(name).is_some())
            .unwrap_or(false)
    }

    /// The registered endpoints' names, sorted.
    pub fn endpoints(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .shared
            .endpoints
            .read()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Queues `envelope` for every endpoint whose filter it passes. The
    /// body is JSON: `type` (the topic), `id`, `time` (ns since the epoch),
    /// `correlation_id`, `tenant`, `tags` and `data` (the payload).
    ///
    /// Never waits: a full endpoint queue dead-letters the event there.
    /// It may be called from anywhere, a receiver's handler or an alert
    /// hook included: it takes no lock that a delivery holds across a
    /// request.
    ///
    /// # Errors
    ///
    /// [`Error::Serialize`] when the payload's `Serialize` fails or panics
    /// (the panic is contained; see
    /// [`serialize_errors`](Self::serialize_errors)).
    pub fn send<T: Serialize>(&self, envelope: &Envelope<T>) -> Result<SendReport, Error> {
        let mut report = SendReport::default();
        let targets: Vec<Arc<EndpointState>> = {
            let map = self.shared.endpoints.read().map_err(|_| Error::Closed)?;
            map.values()
                .filter(|s| s.ep.filter.matches(envelope))
                .cloned()
                .collect()
        };
        report.matched = targets.len();
        if targets.is_empty() {
            return Ok(report);
        }
        // A payload whose `Serialize` panics is refused like one whose
        // `Serialize` fails: the panic is contained here, so a forwarding
        // thread (or any caller) goes on with the next event.
        let encoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // AssertUnwindSafe: the closure only reads the envelope and
            // builds a new buffer, dropped if it unwinds; nothing of the
            // deliverer is touched yet.
            serde_json::to_vec(&Body {
                kind: envelope.topic(),
                id: envelope.id(),
                time: envelope.time(),
                correlation_id: envelope.correlation_id(),
                tenant: envelope.tenant(),
                tags: envelope.tags().collect(),
                data: envelope.payload(),
            })
        }));
        let body = match encoded {
            Ok(Ok(body)) => body,
            Ok(Err(e)) => return Err(self.serialize_error(e.to_string())),
            Err(panic) => {
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a non-string panic payload".to_owned());
                return Err(self.serialize_error(format!("serialize panicked: {why}")));
            }
        };
        let job = Job {
            event_id: envelope.id(),
            correlation: envelope.correlation_id(),
            webhook_id: webhook_id(envelope.id()).into(),
            tenant: envelope.tenant().map(Arc::from),
            body: body.into(),
            accepted: self.shared.clock.now(),
            replay: false,
        };
        let key = envelope
            .idempotency_key()
            .map_or_else(|| envelope.id().to_string(), |k| format!("key:{k}"));
        for st in targets {
            let fresh = st
                .seen
                .lock()
                .map(|mut s| s.insert(key.clone()))
                .unwrap_or(true);
            if !fresh {
                Counters::bump(&st.counters.duplicate);
                report.duplicates += 1;
                continue;
            }
            if self.enqueue(&st, job.clone()) {
                report.queued += 1;
            } else {
                report.queue_full += 1;
            }
        }
        Ok(report)
    }

    fn serialize_error(&self, why: String) -> Error {
        // Relaxed: a statistic.
        self.shared.serialize_errors.fetch_add(1, Ordering::Relaxed);
        Error::Serialize(why)
    }

    /// Events [`send`](Self::send) (or [`forward`](Self::forward)) refused
    /// because their payload did not serialize: its `Serialize` returned an
    /// error or panicked. Such an event goes to no endpoint and is not
    /// journaled (there is no body to keep); `send` returns
    /// [`Error::Serialize`] for it.
    pub fn serialize_errors(&self) -> u64 {
        self.shared.serialize_errors.load(Ordering::Relaxed)
    }

    /// Envelopes a [`forward`](Self::forward) thread received whose
    /// payload's `Drop` panicked when the thread dropped them (after
    /// sending them). The panic is contained: the thread goes on with the
    /// next envelope, and what was sent is delivered as any other event.
    pub fn drop_panics(&self) -> u64 {
        self.shared.drop_panics.load(Ordering::Relaxed)
    }

    fn enqueue(&self, st: &Arc<EndpointState>, job: Job) -> bool {
        let Ok(permit) = Arc::clone(&st.queue).try_acquire_owned() else {
            self.dead_letter(st, &job, 0, "queue full".to_owned());
            Counters::bump(&st.counters.dead);
            return false;
        };
        // Relaxed: the increment comes before the task is spawned, in this
        // thread; `wait_idle` orders on the decrements.
        self.shared.outstanding.fetch_add(1, Ordering::Relaxed);
        st.counters.outstanding.fetch_add(1, Ordering::Relaxed);
        // The guard moves into the task's future: it is dropped when the
        // task ends, and also when the runtime drops the future without
        // running it to the end (shut down, or gone before it started).
        let mut accepted = Accepted {
            shared: Arc::clone(&self.shared),
            st: Arc::clone(st),
            job: job.clone(),
            attempts: 0,
            done: false,
        };
        self.shared.runtime.spawn(async move {
            let a = &mut accepted;
            run(&a.shared, &a.st, job, permit, &mut a.attempts).await;
            a.done = true;
        });
        true
    }

    fn dead_letter(&self, st: &EndpointState, job: &Job, attempts: u32, error: String) {
        write_dead_letter(&self.shared, st, job, attempts, error);
    }

    /// Waits until every accepted event is delivered or dead-lettered.
    pub async fn wait_idle(&self) {
        loop {
            let mut idle = std::pin::pin!(self.shared.idle.notified());
            idle.as_mut().enable();
            // Acquire: pairs with the Release decrement after each
            // delivery (the counters and stats read after this see it).
            if self.shared.outstanding.load(Ordering::Acquire) == 0 {
                return;
            }
            idle.await;
        }
    }

    /// Waits until every record written so far is in the journal and
    /// durable under its sync policy.
    pub async fn flush(&self) -> Result<(), Error> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.shared
            .journal
            .lock()
            .map_err(|_| Error::Closed)?
            .send(JournalMsg::Flush(tx))
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?.map_err(Error::Journal)
    }

    /// The journal's directory.
    pub fn journal_dir(&self) -> &std::path::Path {
        &self.shared.journal_dir
    }

    /// The attempts recorded so far that match `q` (flushes first).
    pub async fn attempts(&self, q: &AttemptQuery) -> Result<Vec<Attempt>, Error> {
        self.flush().await?;
        read_attempts(&self.shared.journal_dir, q)
    }

    /// The dead letters not replayed yet, for `endpoint` (all when
    /// `None`), flushing first.
    pub async fn dead_letters(&self, endpoint: Option<&str>) -> Result<Vec<DeadLetter>, Error> {
        self.flush().await?;
        read_dead_letters(&self.shared.journal_dir, endpoint)
    }

    /// Sends every dead letter of `endpoint` not replayed yet again, with
    /// its body and `webhook-id`, under the endpoint's current policy.
    /// Each replay is journaled, so a dead letter is replayed once.
    /// Returns how many were queued.
    pub async fn replay_dead_letters(&self, endpoint: &str) -> Result<usize, Error> {
        let st = self
            .shared
            .endpoints
            .read()
            .map_err(|_| Error::Closed)?
            .get(endpoint)
            .cloned()
            .ok_or_else(|| Error::UnknownEndpoint(endpoint.to_owned()))?;
        let letters = self.dead_letters(Some(endpoint)).await?;
        let mut n = 0;
        for d in letters {
            journal(
                &self.shared,
                Envelope::on(
                    REPLAYED_TOPIC,
                    DeliveryRecord::Replayed(Replayed {
                        endpoint: endpoint.to_owned(),
                        dead_letter_seq: d.seq,
                    }),
                ),
                d.event_id,
                d.correlation_id,
                d.tenant.as_deref(),
            );
            let job = Job {
                event_id: d.event_id,
                correlation: d.correlation_id,
                webhook_id: d.webhook_id.into(),
                tenant: d.tenant.map(Arc::from),
                body: d.body.into_bytes().into(),
                accepted: self.shared.clock.now(),
                replay: true,
            };
            if self.enqueue(&st, job) {
                n += 1;
            }
        }
        Ok(n)
    }

    /// A receiver of alert signals (lagging receivers lose the oldest).
    pub fn alerts(&self) -> broadcast::Receiver<Alert> {
        self.shared.alerts.subscribe()
    }

    /// Every endpoint's figures now, with
    /// [`serialize_errors`](Self::serialize_errors) and
    /// [`drop_panics`](Self::drop_panics).
    pub fn stats(&self) -> Stats {
        let now = self.shared.clock.now();
        let mut endpoints: Vec<EndpointStats> = self
            .shared
            .endpoints
            .read()
            .map(|m| {
                m.values()
                    .map(|st| {
                        let c = &st.counters;
                        let (attempts_5m, failed_5m, consecutive) = st
                            .alerts
                            .lock()
                            .map(|mut a| {
                                let (n, f) = a.totals(now);
                                (n, f, a.consecutive())
                            })
                            .unwrap_or_default();
                        EndpointStats {
                            endpoint: st.ep.name.clone(),
                            outstanding: c.outstanding.load(Ordering::Relaxed),
                            delivery_success_total: c.success.load(Ordering::Relaxed),
                            first_attempt_success_total: c
                                .first_attempt_success
                                .load(Ordering::Relaxed),
                            delivery_failure_total: c.failed.load(Ordering::Relaxed),
                            delivery_retry_total: c.retry.load(Ordering::Relaxed),
                            delivery_dead_letter_total: c.dead.load(Ordering::Relaxed),
                            delivery_duplicate_total: c.duplicate.load(Ordering::Relaxed),
                            breaker: st
                                .breaker
                                .lock()
                                .map(|mut b| b.state(now))
                                .unwrap_or(BreakerState::Closed),
                            consecutive_failures: consecutive,
                            attempts_5m,
                            failed_5m,
                            ack_latency: summary(&c.ack),
                            delivery_latency: summary(&c.delivery),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        endpoints.sort_by(|a, b| a.endpoint.cmp(&b.endpoint));
        Stats {
            endpoints,
            serialize_errors: self.serialize_errors(),
            drop_panics: self.drop_panics(),
        }
    }

    /// Milliseconds on the injected clock since the deliverer was built
    /// (the scale of [`Attempt::started_ms`]).
    pub fn clock_ms(&self) -> u64 {
        ms(self
            .shared
            .clock
            .now()
            .saturating_duration_since(self.shared.origin))
    }

    /// Forwards every envelope a bus subscription receives to
    /// [`send`](Self::send), on a thread of its own, until the bus closes.
    /// Returns the thread's handle; it yields how many envelopes it sent.
    ///
    /// The subscription's overflow policy decides what happens when the
    /// deliverer falls behind the bus: for a lossless forward, subscribe
    /// with `Overflow::Block` (as the journal's recorder does). A lag
    /// reported by a lossy subscription is skipped over.
    ///
    /// An envelope whose payload does not serialize (its `Serialize`
    /// returns an error or panics) is skipped, counted in
    /// [`serialize_errors`](Self::serialize_errors), and not in the
    /// thread's result; the thread goes on with the next one. A payload
    /// whose `Clone` panics never reaches this thread: the bus clones in
    /// the publisher, where the panic surfaces (see the bus's docs). A
    /// payload whose `Drop` panics is sent first (and counts in the
    /// result); the panic of its drop is contained and counted in
    /// [`drop_panics`](Self::drop_panics).
    pub fn forward<T>(
        &self,
        mut sub: evbus_core::Subscription<Envelope<T>>,
    ) -> std::thread::JoinHandle<u64>
    where
        T: Serialize + Clone + Send + Sync + 'static,
        Envelope<T>: evbus_core::Event,
    {
        let this = self.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            loop {
                match sub.recv() {
                    Ok(env) => {
                        if this.send(&env).is_ok() {
                            n += 1;
                        }
                        // A panicking `Drop` must not end this thread,
                        // which would stop the forward silently.
                        // AssertUnwindSafe: the closure owns the envelope
                        // it drops and touches nothing else.
                        let dropped =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                                drop(env);
                            }));
                        if dropped.is_err() {
                            // Relaxed: a statistic.
                            this.shared.drop_panics.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(evbus_core::RecvError::Lagged(_)) => {}
                    Err(_) => return n,
                }
            }
        })
    }
}

/// One accepted event's hold on the deliverer, owned by its task. When it
/// drops, the event is no longer outstanding; if its task did not finish
/// (the runtime cancelled it), the event is dead-lettered as cancelled,
/// so it is neither lost silently nor waited for forever by `wait_idle`.
struct Accepted {
    shared: Arc<Shared>,
    st: Arc<EndpointState>,
    job: Job,
    /// Attempts journaled so far.
    attempts: u32,
    done: bool,
}

impl Drop for Accepted {
    fn drop(&mut self) {
        if !self.done {
            let why = if std::thread::panicking() {
                "cancelled: the delivery task panicked"
            } else {
                "cancelled: the deliverer's runtime shut down"
            };
            write_dead_letter(
                &self.shared,
                &self.st,
                &self.job,
                self.attempts,
                why.to_owned(),
            );
            Counters::bump(&self.st.counters.dead);
        }
        self.st.counters.outstanding.fetch_sub(1, Ordering::Relaxed);
        // Release: pairs with the Acquire load in `wait_idle`, so a caller
        // that sees 0 also sees this delivery's counters.
        if self.shared.outstanding.fetch_sub(1, Ordering::Release) == 1 {
            self.shared.idle.notify_waiters();
        }
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn journal(
    shared: &Shared,
    env: Result<Envelope<DeliveryRecord>, evbus_core::TopicError>,
    event: EventId,
    correlation: EventId,
    tenant: Option<&str>,
) {
    let Ok(mut env) = env else { return };
    env = env
        .with_causation_id(event)
        .with_correlation_id(correlation);
    if let Some(t) = tenant {
        env = env.with_tenant(t);
    }
    if let Ok(tx) = shared.journal.lock() {
        let _ = tx.send(JournalMsg::Append(env));
    }
}

fn emit(shared: &Shared, alerts: Vec<Alert>) {
    for a in alerts {
        let _ = shared.alerts.send(a);
    }
}

fn write_dead_letter(shared: &Shared, st: &EndpointState, job: &Job, attempts: u32, error: String) {
    journal(
        shared,
        Envelope::on(
            DEAD_LETTER_TOPIC,
            DeliveryRecord::DeadLetter(DeadLetter {
                event_id: job.event_id,
                correlation_id: job.correlation,
                webhook_id: job.webhook_id.to_string(),
                endpoint: st.ep.name.clone(),
                tenant: job.tenant.as_deref().map(str::to_owned),
                attempts,
                error,
                body: String::from_utf8_lossy(&job.body).into_owned(),
                seq: 0,
            }),
        ),
        job.event_id,
        job.correlation,
        job.tenant.as_deref(),
    );
    emit(
        shared,
        vec![Alert::DeadLettered {
            endpoint: st.ep.name.clone(),
            event_id: job.event_id,
        }],
    );
}

async fn request(shared: &Shared, st: &EndpointState, job: &Job) -> Outcome {
    let ep = &st.ep;
    let ts = unix_now();
    let sig = signature_header(&ep.secrets, &job.webhook_id, ts, &job.body);
    let _permit = st.requests.acquire().await;
    let started = shared.clock.now();
    let req = shared
        .client
        .post(ep.url.clone())
        .header(HEADER_ID, &*job.webhook_id)
        .header(HEADER_TIMESTAMP, ts.to_string())
        .header(HEADER_SIGNATURE, sig)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(job.body.to_vec());
    let exchange = async {
        let resp = req.send().await?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(parse_retry_after);
        // Read the body so the connection can be reused.
        let _ = resp.bytes().await;
        Ok::<_, reqwest::Error>((status, retry_after))
    };
    let result = tokio::select! {
        r = exchange => Some(r),
        () = shared.clock.sleep(ep.timeout) => None,
    };
    let latency = shared.clock.now().saturating_duration_since(started);
    match result {
        None => Outcome {
            status: None,
            error: Some("timeout".into()),
            retry_after: None,
            request: true,
            latency,
        },
        Some(Ok((status, retry_after))) => {
            let code = status.as_u16();
            if status.is_success() {
                Outcome {
                    status: Some(code),
                    error: None,
                    retry_after: None,
                    request: true,
                    latency,
                }
            } else {
                let honour = matches!(code, 429 | 503);
                Outcome {
                    status: Some(code),
                    error: Some(format!("status {code}")),
                    retry_after: if honour { retry_after } else { None },
                    request: true,
                    latency,
                }
            }
        }
        Some(Err(e)) => {
            let kind = if e.is_connect() {
                "connect"
            } else if e.is_timeout() {
                "timeout"
            } else {
                "request"
            };
            let mut msg = format!("{kind}: {e}");
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(": ");
                msg.push_str(&s.to_string());
                src = s.source();
            }
            Outcome {
                status: None,
                error: Some(msg),
                retry_after: None,
                request: true,
                latency,
            }
        }
    }
}

async fn run(
    shared: &Shared,
    st: &EndpointState,
    job: Job,
    _queue: OwnedSemaphorePermit,
    journaled: &mut u32,
) {
    let clock = &shared.clock;
    let policy = st.ep.retry;
    let mut attempt = 0u32;
    loop {
        attempt = attempt.saturating_add(1);
        let admit = st
            .breaker
            .lock()
            .map(|mut b| b.allow(clock.now()))
            .unwrap_or(Admit::Go { probe: false });
        let mut started = clock.now();
        let outcome = match admit {
            Admit::Refused { retry_in } => Outcome {
                status: None,
                error: Some("circuit open".into()),
                retry_after: Some(retry_in),
                request: false,
                latency: Duration::ZERO,
            },
            Admit::Go { probe } => {
                // Only requests that are made take a token.
                if let Some(limiter) = &st.limiter {
                    while let Err(not_until) = limiter.check() {
                        let wait = not_until.wait_time_from(clock.now());
                        clock.sleep(wait.max(Duration::from_micros(100))).await;
                    }
                    started = clock.now();
                }
                let out = request(shared, st, &job).await;
                let now = clock.now();
                let t = st
                    .breaker
                    .lock()
                    .ok()
                    .and_then(|mut b| b.record(now, probe, out.error.is_none()));
                match t {
                    Some(Transition::Opened) => emit(
                        shared,
                        vec![Alert::BreakerOpened {
                            endpoint: st.ep.name.clone(),
                        }],
                    ),
                    Some(Transition::Closed) => emit(
                        shared,
                        vec![Alert::BreakerClosed {
                            endpoint: st.ep.name.clone(),
                        }],
                    ),
                    None => {}
                }
                out
            }
        };
        let now = clock.now();
        let ok = outcome.error.is_none();
        let mut alerts = Vec::new();
        if let Ok(mut a) = st.alerts.lock() {
            a.record(&st.ep.name, now, ok, outcome.request, &mut alerts);
        }
        emit(shared, alerts);
        let c = &st.counters;
        let last = attempt >= policy.max_attempts();
        let retry_in = if ok || last {
            None
        } else {
            let mut d = policy.delay(attempt, rand::random::<f64>());
            if let Some(ra) = outcome.retry_after {
                d = d.max(ra.min(st.ep.max_retry_after));
            }
            Some(d)
        };
        journal(
            shared,
            Envelope::on(
                ATTEMPT_TOPIC,
                DeliveryRecord::Attempt(Attempt {
                    event_id: job.event_id,
                    webhook_id: job.webhook_id.to_string(),
                    endpoint: st.ep.name.clone(),
                    tenant: job.tenant.as_deref().map(str::to_owned),
                    attempt,
                    status: outcome.status,
                    latency_us: u64::try_from(outcome.latency.as_micros()).unwrap_or(u64::MAX),
                    error: outcome.error.clone(),
                    started_ms: ms(started.saturating_duration_since(shared.origin)),
                    retry_in_ms: retry_in.map(ms),
                    replay: job.replay,
                }),
            ),
            job.event_id,
            job.correlation,
            job.tenant.as_deref(),
        );
        *journaled = attempt;
        // Counters move after the records are queued for the journal, so
        // whoever sees a counter and then flushes finds the records.
        if ok {
            Counters::bump(&c.success);
            if attempt == 1 {
                Counters::bump(&c.first_attempt_success);
            }
            Counters::record_latency(&c.ack, outcome.latency);
            Counters::record_latency(&c.delivery, now.saturating_duration_since(job.accepted));
        } else {
            Counters::bump(&c.failed);
        }
        if ok {
            return;
        }
        match retry_in {
            None => {
                write_dead_letter(shared, st, &job, attempt, outcome.error.unwrap_or_default());
                Counters::bump(&c.dead);
                return;
            }
            Some(d) => {
                Counters::bump(&c.retry);
                clock.sleep(d).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        let v = |s: &str| reqwest::header::HeaderValue::from_str(s).unwrap();
        assert_eq!(parse_retry_after(&v("7")), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(&v(" 0 ")), Some(Duration::ZERO));
        let later = SystemTime::now() + Duration::from_secs(120);
        let d = parse_retry_after(&v(&httpdate::fmt_http_date(later))).unwrap();
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        // A date in the past means now.
        assert_eq!(
            parse_retry_after(&v("Sun, 06 Nov 1994 08:49:37 GMT")),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after(&v("soon")), None);
        assert_eq!(parse_retry_after(&v("-3")), None);
    }

    #[test]
    fn seen_ids_are_bounded() {
        let mut s = Seen {
            set: HashSet::new(),
            order: VecDeque::new(),
            cap: 2,
        };
        assert!(s.insert("a".into()));
        assert!(!s.insert("a".into()));
        assert!(s.insert("b".into()));
        assert!(s.insert("c".into()));
        // "a" fell out.
        assert!(s.insert("a".into()));
        assert_eq!(s.set.len(), 2);
    }
}
