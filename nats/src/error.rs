//! Error types, one per operation. `Display` is lowercase, without a final
//! period.

use std::{fmt, time::Duration};

use evbus_core::EventId;

/// A topic, pattern or prefix that does not make a valid subject, or a
/// subject that is not an evbus topic.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubjectError {
    /// The prefix is not a valid subject prefix.
    InvalidPrefix {
        /// The prefix.
        prefix: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// The topic or pattern breaks the evbus topic rules.
    InvalidTopic {
        /// The topic or pattern.
        topic: String,
        /// The rule it breaks.
        reason: String,
    },
    /// The subject does not start with the bridge's prefix.
    OutsidePrefix {
        /// The subject.
        subject: String,
        /// The prefix.
        prefix: String,
    },
    /// No subject of the stream covers the subject or filter, so the server
    /// would not store it.
    NotInStream {
        /// The subject or filter.
        subject: String,
        /// The stream.
        stream: String,
    },
}

impl fmt::Display for SubjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidPrefix { prefix, reason } => {
                write!(f, "invalid subject prefix {prefix:?}: {reason}")
            }
            Self::InvalidTopic { topic, reason } => write!(f, "invalid topic {topic:?}: {reason}"),
            Self::OutsidePrefix { subject, prefix } => {
                write!(f, "subject {subject:?} is not under the prefix {prefix:?}")
            }
            Self::NotInStream { subject, stream } => {
                write!(
                    f,
                    "stream {stream:?} has no subject that covers {subject:?}"
                )
            }
        }
    }
}

impl std::error::Error for SubjectError {}

/// One field of the server's stream that disagrees with the
/// [`StreamSpec`](crate::StreamSpec).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The field: `subjects`, `retention`, `storage` or `duplicate_window`.
    pub field: &'static str,
    /// What the configuration asks for.
    pub expected: String,
    /// What the server has.
    pub found: String,
}

/// Why [`ensure_stream`](crate::ensure_stream) failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum SetupError {
    /// The specification itself is invalid (a stream name or subject).
    InvalidSpec(String),
    /// The stream exists with another configuration; nothing was changed.
    Conflict {
        /// The stream.
        stream: String,
        /// Every field that disagrees.
        mismatches: Vec<Mismatch>,
    },
    /// The stream does not exist and the configuration forbids creating it.
    Missing(String),
    /// The server or connection failed (JetStream not enabled, timeout, ...).
    Server(String),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidSpec(why) => write!(f, "invalid stream specification: {why}"),
            Self::Conflict { stream, mismatches } => {
                write!(f, "stream {stream:?} exists with another configuration:")?;
                for m in mismatches {
                    write!(f, " {} is {} (expected {});", m.field, m.found, m.expected)?;
                }
                Ok(())
            }
            Self::Missing(stream) => write!(f, "stream {stream:?} does not exist"),
            Self::Server(why) => write!(f, "jetstream request failed: {why}"),
        }
    }
}

impl std::error::Error for SetupError {}

/// Why a bridge did not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// A prefix, export pattern or import pattern that makes no valid
    /// subject, or one that the stream does not store.
    Subject(SubjectError),
    /// The stream could not be created or disagrees with the configuration.
    Setup(SetupError),
    /// The connection to the server failed.
    Connect(String),
    /// A local subscription could not be made (the bus is shut down, or the
    /// export capacity is invalid).
    Subscribe(evbus_core::SubscribeError),
    /// A durable consumer could not be created.
    Consumer(String),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Subject(e) => write!(f, "bad subject: {e}"),
            Self::Setup(e) => write!(f, "stream setup: {e}"),
            Self::Connect(e) => write!(f, "connect: {e}"),
            Self::Subscribe(e) => write!(f, "local subscription: {e}"),
            Self::Consumer(e) => write!(f, "durable consumer: {e}"),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Subject(e) => Some(e),
            Self::Setup(e) => Some(e),
            Self::Subscribe(e) => Some(e),
            _ => None,
        }
    }
}

impl From<SubjectError> for StartError {
    fn from(e: SubjectError) -> Self {
        StartError::Subject(e)
    }
}

impl From<SetupError> for StartError {
    fn from(e: SetupError) -> Self {
        StartError::Setup(e)
    }
}

/// An event the exporter could not publish. It is reported here (and in
/// [`Bridge::take_errors`](crate::Bridge::take_errors)), never dropped
/// silently.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExportError {
    /// The encoded message is larger than the server's `max_payload`.
    Oversized {
        /// The envelope.
        id: EventId,
        /// Its topic.
        topic: String,
        /// The message size (payload and headers).
        size: usize,
        /// The server's limit.
        max: usize,
    },
    /// The envelope's payload could not be encoded: its `Serialize`
    /// returned an error or panicked (the panic is contained; the export
    /// goes on with the next event).
    Encode {
        /// The envelope.
        id: EventId,
        /// Why.
        reason: String,
    },
    /// The topic makes no subject the stream stores.
    Subject {
        /// The envelope.
        id: EventId,
        /// Why.
        error: SubjectError,
    },
    /// The event's `Drop` panicked in the export task, after the event was
    /// encoded (or skipped, as one this bridge imported). The panic is
    /// contained; the event is exported (or skipped) all the same and the
    /// export goes on with the next event. Counted in
    /// [`ExportStats::drop_panics`](crate::ExportStats::drop_panics).
    DropPanicked {
        /// The envelope.
        id: EventId,
        /// The panic's message.
        reason: String,
    },
    /// Every attempt failed ([`BridgeConfig::max_retries`](crate::BridgeConfig::max_retries)).
    GaveUp {
        /// The envelope.
        id: EventId,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
}

impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Oversized {
                id,
                topic,
                size,
                max,
            } => write!(
                f,
                "event {id} on {topic:?} is {size} bytes, over the server's max_payload of {max}"
            ),
            Self::Encode { id, reason } => write!(f, "event {id} could not be encoded: {reason}"),
            Self::Subject { id, error } => write!(f, "event {id}: {error}"),
            Self::DropPanicked { id, reason } => {
                write!(f, "dropping event {id} panicked: {reason}")
            }
            Self::GaveUp { id, attempts, last } => {
                write!(
                    f,
                    "event {id} not acknowledged after {attempts} attempts: {last}"
                )
            }
        }
    }
}

impl std::error::Error for ExportError {}

/// A message the importer could not deliver; it is terminated on the server
/// (not redelivered) and reported.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImportError {
    /// The subject is not `<prefix>.<an evbus topic>`.
    Subject {
        /// The stream sequence number.
        stream_seq: u64,
        /// Why.
        error: SubjectError,
    },
    /// The payload is not an envelope of the bridge's payload type (or the
    /// payload's `Deserialize` panicked; the panic is contained).
    Decode {
        /// The stream sequence number.
        stream_seq: u64,
        /// The subject.
        subject: String,
        /// Why.
        reason: String,
    },
    /// The envelope's topic is not the one its subject names.
    TopicMismatch {
        /// The stream sequence number.
        stream_seq: u64,
        /// The subject's topic.
        subject_topic: String,
        /// The envelope's topic.
        envelope_topic: String,
    },
    /// The local publish panicked (the payload's `Clone` or an event's
    /// `Drop`): the local subscribers it reached have the event, the
    /// others count it as dropped; the message is terminated, not
    /// redelivered (a redelivery would panic again).
    Panicked {
        /// The stream sequence number.
        stream_seq: u64,
        /// The envelope.
        id: EventId,
        /// The panic's message.
        reason: String,
    },
    /// An imported event's `Drop` panicked in the bridge, which dropped it
    /// without publishing it locally: a redelivery it skipped as a
    /// duplicate, an envelope whose topic does not match its subject, one
    /// left over when the bus or the bridge closed. The panic is contained
    /// and the message is handled as it would be otherwise (acknowledged,
    /// terminated, or left for redelivery); counted in
    /// [`ImportStats::drop_panics`](crate::ImportStats::drop_panics).
    DropPanicked {
        /// The stream sequence number.
        stream_seq: u64,
        /// The envelope.
        id: EventId,
        /// The panic's message.
        reason: String,
    },
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Subject { stream_seq, error } => write!(f, "message {stream_seq}: {error}"),
            Self::Decode {
                stream_seq,
                subject,
                reason,
            } => write!(
                f,
                "message {stream_seq} on {subject:?} is not an envelope: {reason}"
            ),
            Self::TopicMismatch {
                stream_seq,
                subject_topic,
                envelope_topic,
            } => write!(
                f,
                "message {stream_seq}: subject names topic {subject_topic:?}, envelope says {envelope_topic:?}"
            ),
            Self::Panicked {
                stream_seq,
                id,
                reason,
            } => write!(
                f,
                "message {stream_seq} (event {id}): the local publish panicked: {reason}"
            ),
            Self::DropPanicked {
                stream_seq,
                id,
                reason,
            } => write!(
                f,
                "message {stream_seq} (event {id}): dropping the event panicked: {reason}"
            ),
        }
    }
}

impl std::error::Error for ImportError {}

/// What went wrong in a running bridge, kept in a bounded list for
/// [`Bridge::take_errors`](crate::Bridge::take_errors).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BridgeError {
    /// An event the exporter could not publish (or whose `Drop` panicked).
    Export(ExportError),
    /// A message the importer could not deliver (or whose event's `Drop`
    /// panicked).
    Import(ImportError),
}

impl fmt::Display for BridgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Export(e) => write!(f, "export: {e}"),
            Self::Import(e) => write!(f, "import: {e}"),
        }
    }
}

impl std::error::Error for BridgeError {}

/// [`Bridge::flush`](crate::Bridge::flush) timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushTimeout {
    /// Events still unresolved (neither acknowledged nor reported).
    pub outstanding: u64,
    /// The time waited.
    pub waited: Duration,
}

impl fmt::Display for FlushTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "flush timed out after {:?} with {} events unacknowledged",
            self.waited, self.outstanding
        )
    }
}

impl std::error::Error for FlushTimeout {}
