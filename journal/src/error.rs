//! The journal's error type.

use std::{fmt, io, path::PathBuf};

use evbus_core::SubscribeError;

/// Everything that can go wrong in the journal.
///
/// Errors about bytes on disk name the segment file and the byte offset
/// (from the start of the file) where the problem was found.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation on `path` failed.
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// Another writer holds the journal's `LOCK` file.
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// [`Journal::create`](crate::Journal::create) found segments already.
    AlreadyExists {
        /// The journal directory.
        dir: PathBuf,
    },
    /// The directory holds no journal (no segment file).
    NotFound {
        /// The journal directory.
        dir: PathBuf,
    },
    /// A segment does not start with the journal's magic bytes.
    BadMagic {
        /// The segment file.
        segment: PathBuf,
    },
    /// A segment has a format version this crate does not read.
    UnsupportedVersion {
        /// The segment file.
        segment: PathBuf,
        /// The version found.
        version: u16,
    },
    /// A segment header names a codec this crate does not know.
    UnknownCodec {
        /// The segment file.
        segment: PathBuf,
        /// The codec id found.
        id: u8,
    },
    /// A segment header is damaged (bad checksum, reserved bits set, or a
    /// first sequence number that disagrees with the file name or with the
    /// segment before it).
    BadHeader {
        /// The segment file.
        segment: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
    /// The options ask for a codec other than the one the journal uses.
    CodecMismatch {
        /// The codec the options asked for.
        requested: crate::Codec,
        /// The codec of the journal on disk.
        found: crate::Codec,
    },
    /// A frame is damaged: bad checksum, impossible length, bad metadata,
    /// or an unexpected sequence number, with valid data after it (a damaged
    /// *tail* is truncated on open instead, see
    /// [`OpenReport`](crate::OpenReport)). [`Journal::repair`](crate::Journal::repair)
    /// skips such frames.
    Corrupt {
        /// The segment file.
        segment: PathBuf,
        /// Offset of the damaged frame in the file.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// A record's frame body would exceed the maximum frame size.
    FrameTooLarge {
        /// The body's length.
        len: usize,
        /// The configured maximum.
        max: u32,
    },
    /// A metadata field is too long for the format (strings up to 65 535
    /// bytes, up to 255 tags).
    FieldTooLong {
        /// The field.
        field: &'static str,
    },
    /// The payload codec could not encode a payload.
    Encode {
        /// The codec's message.
        message: String,
    },
    /// A stored payload or record could not be decoded as the asked type.
    Decode {
        /// Sequence number of the record.
        seq: u64,
        /// The codec's message.
        message: String,
    },
    /// Invalid options.
    InvalidOptions {
        /// What is wrong.
        reason: &'static str,
    },
    /// An earlier write failed and could not be undone, or a sync failed;
    /// the journal takes no more appends. Reopen it (recovery truncates a
    /// partial write).
    Poisoned,
    /// The recorder could not subscribe.
    Subscribe(SubscribeError),
    /// The recorder stopped (its thread ended) before the records a
    /// `flush` waited for were appended.
    RecorderStopped,
    /// The recorder failed to append this many records (see
    /// [`RecorderReport`](crate::RecorderReport)).
    RecordsLost {
        /// Records that could not be appended so far.
        count: u64,
    },
    /// The next sequence number would pass `u64::MAX` (a segment header
    /// with a first sequence number near the end of the range: damage, or
    /// a journal made by hand).
    SeqExhausted,
    /// A cursor name is empty, too long, or has a character other than
    /// ASCII letters, digits, `-`, `_` and `.` (or starts with `.`).
    InvalidCursorName {
        /// The name given.
        name: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A cursor file is damaged (bad magic, version or checksum).
    BadCursor {
        /// The cursor file.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
    /// A history subscription asked for another payload type than the one
    /// the recorder records.
    WrongPayloadType {
        /// The type asked for.
        asked: &'static str,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, source } => write!(f, "i/o error on {}: {source}", path.display()),
            Error::Locked { path } => write!(
                f,
                "the journal is locked by another writer ({})",
                path.display()
            ),
            Error::AlreadyExists { dir } => {
                write!(f, "a journal already exists in {}", dir.display())
            }
            Error::NotFound { dir } => write!(f, "no journal in {}", dir.display()),
            Error::BadMagic { segment } => {
                write!(
                    f,
                    "{} is not a journal segment (bad magic)",
                    segment.display()
                )
            }
            Error::UnsupportedVersion { segment, version } => write!(
                f,
                "{} has format version {version}, this build reads version {}",
                segment.display(),
                crate::layout::VERSION
            ),
            Error::UnknownCodec { segment, id } => {
                write!(f, "{} names unknown codec id {id}", segment.display())
            }
            Error::BadHeader { segment, reason } => {
                write!(f, "bad segment header in {}: {reason}", segment.display())
            }
            Error::CodecMismatch { requested, found } => write!(
                f,
                "codec mismatch: the options ask for {requested:?}, the journal uses {found:?}"
            ),
            Error::Corrupt {
                segment,
                offset,
                reason,
            } => write!(
                f,
                "corrupt frame in {} at offset {offset}: {reason}",
                segment.display()
            ),
            Error::FrameTooLarge { len, max } => {
                write!(f, "frame body of {len} bytes exceeds the maximum of {max}")
            }
            Error::FieldTooLong { field } => write!(f, "metadata field {field} is too long"),
            Error::Encode { message } => write!(f, "cannot encode payload: {message}"),
            Error::Decode { seq, message } => write!(f, "cannot decode record {seq}: {message}"),
            Error::InvalidOptions { reason } => write!(f, "invalid options: {reason}"),
            Error::Poisoned => write!(
                f,
                "an earlier write failed and could not be undone; reopen the journal"
            ),
            Error::Subscribe(e) => write!(f, "recorder cannot subscribe: {e}"),
            Error::RecorderStopped => write!(f, "the recorder stopped"),
            Error::RecordsLost { count } => {
                write!(f, "the recorder failed to append {count} records")
            }
            Error::SeqExhausted => write!(
                f,
                "no sequence number left: the next record would pass u64::MAX \
                 (check the segment headers, or repair the journal)"
            ),
            Error::InvalidCursorName { name, reason } => {
                write!(f, "invalid cursor name {name:?}: {reason}")
            }
            Error::BadCursor { path, reason } => {
                write!(f, "damaged cursor file {}: {reason}", path.display())
            }
            Error::WrongPayloadType { asked } => {
                write!(f, "the recorder does not record payloads of type {asked}")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Subscribe(e) => Some(e),
            _ => None,
        }
    }
}

impl From<SubscribeError> for Error {
    fn from(e: SubscribeError) -> Self {
        Error::Subscribe(e)
    }
}

/// The journal's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
