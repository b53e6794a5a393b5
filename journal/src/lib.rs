//! A durable journal for evbus: record every event of a bus to append-only
//! segment files, then query, tail, resume and replay it.
//!
//! # Writing
//!
//! A [`Journal`] is the single writer of a directory. It appends
//! [`Envelope<T>`](evbus_core::Envelope)s as records with gapless sequence
//! numbers, and makes them durable per its [`SyncPolicy`]. A [`Recorder`]
//! appends what a bus publishes, on its own thread, in batches.
//!
//! # Reading
//!
//! A [`Reader`] iterates [`Record`]s from a [`Start`]: the beginning, a
//! sequence number, a time, or the end. A record carries the envelope's
//! metadata decoded and the payload's bytes; [`Record::envelope`] decodes
//! the payload as `T`.
//!
//! # Format and crash safety
//!
//! The byte layout is documented in the [`format`](mod@format) module. On open, a torn
//! tail of the last segment is cut off and reported ([`OpenReport`]);
//! damage in the middle is an [`Error::Corrupt`] that
//! [`Journal::repair`] skips.
#![warn(missing_docs)]
#![deny(unsafe_code)]
#![doc(test(no_crate_inject, attr(deny(warnings))))]

mod codec;
mod error;
pub mod format;
mod idempotency;
mod index;
mod query;
mod reader;
mod recorder;
mod recovery;
mod retention;
mod segment;
mod writer;

pub use crate::{
    codec::Codec,
    error::{Error, Result},
    format::{Position, Record},
    idempotency::{Appended, BatchAppend, Duplicate, IdempotencyWindow},
    query::{Query, QueryIter, QueryStats},
    reader::{Reader, Start},
    recorder::{Recorder, RecorderOptions, RecorderReport},
    recovery::{OpenReport, RepairReport, Skipped, Truncation},
    retention::{Retention, RetentionReport},
    writer::{DEFAULT_SEGMENT_SIZE, Journal, JournalOptions, SyncPolicy},
};
