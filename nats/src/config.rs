//! What a bridge does: the stream, the subject prefix, what it exports and
//! imports, and its limits.

use std::time::Duration;

use evbus_core::{EventId, Overflow};

/// How the server keeps the stream's messages (JetStream's retention
/// policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Retention {
    /// Until a limit (age, count, bytes) removes them. The default: several
    /// importers can read the same stream.
    #[default]
    Limits,
    /// While some consumer has not acknowledged them.
    Interest,
    /// Until one consumer acknowledges them.
    WorkQueue,
}

/// Where the server keeps the stream's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Storage {
    /// On disk: survives a server restart. The default.
    #[default]
    File,
    /// In memory: lost when the server stops.
    Memory,
}

/// The JetStream stream the bridge publishes to and pulls from.
///
/// [`ensure_stream`](crate::ensure_stream) creates it, or checks that the
/// server's stream has these subjects, retention, storage and duplicate
/// window.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StreamSpec {
    /// The stream's name (no `.`, `*`, `>` or whitespace).
    pub name: String,
    /// The subjects the stream stores, in NATS syntax.
    pub subjects: Vec<String>,
    /// Retention policy.
    pub retention: Retention,
    /// Storage.
    pub storage: Storage,
    /// How long the server remembers a `Nats-Msg-Id` to drop a duplicate
    /// publish (JetStream's `duplicate_window`).
    pub duplicate_window: Duration,
}

impl StreamSpec {
    /// A file-backed, limits-retention stream named `name` that stores
    /// `<prefix>.>` (everything the bridge exports with that prefix), with a
    /// two-minute duplicate window (the server's default).
    pub fn new(name: &str, prefix: &str) -> Self {
        let subject = if prefix.is_empty() {
            ">".to_owned()
        } else {
            format!("{prefix}.>")
        };
        StreamSpec {
            name: name.to_owned(),
            subjects: vec![subject],
            retention: Retention::Limits,
            storage: Storage::File,
            duplicate_window: Duration::from_secs(120),
        }
    }

    /// Sets the storage.
    #[must_use]
    pub fn storage(mut self, storage: Storage) -> Self {
        self.storage = storage;
        self
    }

    /// Sets the retention policy.
    #[must_use]
    pub fn retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// Sets the duplicate window.
    #[must_use]
    pub fn duplicate_window(mut self, window: Duration) -> Self {
        self.duplicate_window = window;
        self
    }

    /// Sets the subjects.
    #[must_use]
    pub fn subjects<I: IntoIterator<Item = S>, S: Into<String>>(mut self, subjects: I) -> Self {
        self.subjects = subjects.into_iter().map(Into::into).collect();
        self
    }
}

/// How the export subscription behaves when the bridge falls behind the
/// local publishers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportMode {
    /// [`Overflow::Block`] without a time limit: a local publish waits for
    /// room in the bridge's ring, so nothing is lost locally. The default.
    Lossless,
    /// The given drop policy (`DropNewest` or `DropOldest`): local
    /// publishers never wait for the bridge; what it loses is counted in
    /// [`ExportStats::lost`](crate::ExportStats::lost).
    Lossy(Overflow),
}

impl ExportMode {
    pub(crate) fn overflow(self) -> Overflow {
        match self {
            ExportMode::Lossless => Overflow::Block(Duration::MAX),
            ExportMode::Lossy(o) => o,
        }
    }
}

/// One durable pull consumer that feeds the local bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSpec {
    /// The consumer's durable name: a restarted bridge with the same name
    /// resumes after the last message it acknowledged.
    pub durable: String,
    /// The evbus pattern of the topics to import (`>` for everything).
    pub pattern: String,
}

/// The whole configuration of a [`Bridge`](crate::Bridge).
///
/// A builder, like [`SubscribeOptions`](evbus_core::SubscribeOptions).
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    pub(crate) prefix: String,
    pub(crate) stream: StreamSpec,
    pub(crate) create_stream: bool,
    pub(crate) export: Vec<String>,
    pub(crate) export_mode: ExportMode,
    pub(crate) export_capacity: usize,
    pub(crate) import: Vec<ImportSpec>,
    pub(crate) max_in_flight: usize,
    pub(crate) ack_timeout: Duration,
    pub(crate) max_retries: Option<u32>,
    pub(crate) retry_backoff: Duration,
    pub(crate) dedupe_window: Duration,
    pub(crate) dedupe_capacity: usize,
    pub(crate) pull_batch: usize,
    pub(crate) ack_wait: Duration,
    pub(crate) max_ack_pending: usize,
    pub(crate) origin: String,
    pub(crate) lag_threshold: u64,
}

impl BridgeConfig {
    /// A bridge on the stream `stream_name` with the subject prefix `evbus`
    /// (topic `orders.placed` is subject `evbus.orders.placed`), exporting
    /// and importing nothing yet.
    pub fn new(stream_name: &str) -> Self {
        let prefix = "evbus";
        BridgeConfig {
            prefix: prefix.to_owned(),
            stream: StreamSpec::new(stream_name, prefix),
            create_stream: true,
            export: Vec::new(),
            export_mode: ExportMode::Lossless,
            export_capacity: 4096,
            import: Vec::new(),
            max_in_flight: 256,
            ack_timeout: Duration::from_secs(5),
            max_retries: None,
            retry_backoff: Duration::from_millis(50),
            dedupe_window: Duration::from_secs(120),
            dedupe_capacity: 100_000,
            pull_batch: 256,
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 1024,
            origin: format!("evbus-{}-{}", std::process::id(), EventId::new()),
            lag_threshold: 1024,
        }
    }

    /// Sets the subject prefix (`""` for none) and makes the stream store
    /// `<prefix>.>`.
    #[must_use]
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_owned();
        self.stream = StreamSpec {
            subjects: StreamSpec::new(&self.stream.name, prefix).subjects,
            ..self.stream
        };
        self
    }

    /// Replaces the stream specification (the prefix is kept).
    #[must_use]
    pub fn stream(mut self, stream: StreamSpec) -> Self {
        self.stream = stream;
        self
    }

    /// Whether [`Bridge::connect`](crate::Bridge::connect) may create the stream
    /// (the default) or only check it.
    #[must_use]
    pub fn create_stream(mut self, create: bool) -> Self {
        self.create_stream = create;
        self
    }

    /// Exports the local events whose topic matches `pattern`.
    #[must_use]
    pub fn export(mut self, pattern: &str) -> Self {
        self.export.push(pattern.to_owned());
        self
    }

    /// Sets how the export subscription handles a bridge that falls behind.
    #[must_use]
    pub fn export_mode(mut self, mode: ExportMode) -> Self {
        self.export_mode = mode;
        self
    }

    /// The capacity of the export subscription's ring (default 4096).
    #[must_use]
    pub fn export_capacity(mut self, capacity: usize) -> Self {
        self.export_capacity = capacity;
        self
    }

    /// Imports the topics matching `pattern` through the durable consumer
    /// `durable`.
    #[must_use]
    pub fn import(mut self, durable: &str, pattern: &str) -> Self {
        self.import.push(ImportSpec {
            durable: durable.to_owned(),
            pattern: pattern.to_owned(),
        });
        self
    }

    /// How many publishes may wait for their acknowledgement at once
    /// (default 256).
    #[must_use]
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// How long a publish waits for its acknowledgement before it is
    /// retried (default 5 s).
    #[must_use]
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = timeout;
        self
    }

    /// How many times a publish is retried before it is given up and
    /// reported (default: without limit, so nothing is lost while the server
    /// is away).
    #[must_use]
    pub fn max_retries(mut self, retries: Option<u32>) -> Self {
        self.max_retries = retries;
        self
    }

    /// The first retry's delay; it doubles per attempt up to 2 s.
    #[must_use]
    pub fn retry_backoff(mut self, backoff: Duration) -> Self {
        self.retry_backoff = backoff;
        self
    }

    /// How long, and for how many ids at most, an importer remembers the
    /// envelope ids it delivered, to drop a redelivery (default 2 min,
    /// 100 000 ids).
    #[must_use]
    pub fn dedupe_window(mut self, window: Duration, capacity: usize) -> Self {
        self.dedupe_window = window;
        self.dedupe_capacity = capacity.max(1);
        self
    }

    /// How many messages one pull asks for (default 256).
    #[must_use]
    pub fn pull_batch(mut self, n: usize) -> Self {
        self.pull_batch = n.max(1);
        self
    }

    /// The consumer's ack wait: how long the server waits for an
    /// acknowledgement before it redelivers (default 30 s).
    #[must_use]
    pub fn ack_wait(mut self, wait: Duration) -> Self {
        self.ack_wait = wait;
        self
    }

    /// The consumer's limit of delivered, unacknowledged messages (default
    /// 1024).
    #[must_use]
    pub fn max_ack_pending(mut self, n: usize) -> Self {
        self.max_ack_pending = n.max(1);
        self
    }

    /// This bridge's origin, sent in the `Evbus-Origin` header (default:
    /// unique per bridge). An importer skips the messages of its own origin.
    #[must_use]
    pub fn origin(mut self, origin: &str) -> Self {
        self.origin = origin.to_owned();
        self
    }

    /// The backlog (the export ring's length, or the messages an importer
    /// has not published yet: pending on the server, or pulled and waiting
    /// for the local bus) above which the bridge reports
    /// [`BridgeState::Lagging`](crate::BridgeState::Lagging) (default 1024).
    #[must_use]
    pub fn lag_threshold(mut self, n: u64) -> Self {
        self.lag_threshold = n;
        self
    }

    /// The subject prefix.
    pub fn get_prefix(&self) -> &str {
        &self.prefix
    }

    /// The stream specification.
    pub fn get_stream(&self) -> &StreamSpec {
        &self.stream
    }

    /// The origin.
    pub fn get_origin(&self) -> &str {
        &self.origin
    }
}
