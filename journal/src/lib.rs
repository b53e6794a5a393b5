//! A durable journal for evbus: record every event of a bus to append-only
//! segment files, then read it back, in this process or another.
//!
//! - A [`Journal`] is the single writer of a directory: it appends
//!   [`Envelope<T>`](evbus_core::Envelope)s as records with gapless sequence
//!   numbers, in segment files, and makes them durable per its
//!   [`SyncPolicy`].
//! - A [`Recorder`] subscribes to a bus and appends what it publishes, on its
//!   own thread, in batches (group commit).
//! - A [`Reader`] iterates [`Record`]s from a [`Start`]: the beginning, a
//!   sequence number, a time, or the end. A record carries the envelope's
//!   metadata, decoded, and the payload's bytes; [`Record::envelope`] decodes
//!   the payload as `T`, so a tool can read a journal without knowing `T`.
//!
//! # Hello journal
//!
//! ```
//! use evbus_core::Envelope;
//! use evbus_journal::{Journal, JournalOptions, Reader, Start, SyncPolicy};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let mut journal = Journal::create(dir.path(), JournalOptions::new().sync(SyncPolicy::Never))?;
//! let placed = Envelope::on("orders.placed", 7u64)?.with_tenant("acme");
//! assert_eq!(journal.append(&placed)?, 0);
//! assert_eq!(journal.append_batch([&placed.caused_on("orders.shipped", 7u64)?])?, 1..2);
//! journal.close()?;
//!
//! // Any process can read it; the metadata needs no payload type.
//! let records = Reader::open(dir.path(), Start::Beginning)?.collect::<Result<Vec<_>, _>>()?;
//! assert_eq!(records[1].topic(), "orders.shipped");
//! assert_eq!(records[1].causation_id(), Some(placed.id()));
//! assert_eq!(records[0].envelope::<u64>()?, placed);
//! # Ok(()) }
//! ```
//!
//! # Recording a bus
//!
//! ```
//! use evbus_core::{Bus, Envelope, Event, EventKind};
//! use evbus_journal::{Journal, JournalOptions, Recorder, Start};
//! # #[derive(Debug, Clone, Copy, PartialEq, Eq)]
//! # enum Kind { Tick }
//! # impl EventKind for Kind {
//! #     const ALL: &'static [Self] = &[Kind::Tick];
//! #     fn topic(self) -> &'static str { "clock.tick" }
//! #     fn index(self) -> usize { 0 }
//! # }
//! #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
//! struct Tick(u64);
//! impl Event for Tick {
//!     type Kind = Kind;
//!     fn kind(&self) -> Kind { Kind::Tick }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let bus = Bus::<Envelope<Tick>>::new();
//! let recorder = Recorder::start(&bus, Journal::open(dir.path(), JournalOptions::new())?)?;
//! for i in 0..3 {
//!     bus.publish(Envelope::new(Tick(i)))?;
//! }
//! // Everything published so far is appended and synced.
//! recorder.flush()?;
//! let seqs: Vec<u64> = recorder.reader(Start::Beginning)?.map(|r| r.map(|r| r.seq())).collect::<Result<_, _>>()?;
//! assert_eq!(seqs, [0, 1, 2]);
//! let report = recorder.stop();
//! assert_eq!(report.records, 3);
//! # Ok(()) }
//! ```
//!
//! # Durability
//!
//! Every append reaches the operating system (one `write` per append or
//! batch) before it returns, so acknowledged records survive a crash of the
//! process under every policy. What survives a power loss depends on the
//! [`SyncPolicy`]: [`Never`](SyncPolicy::Never) (page cache only),
//! [`EveryRecords(n)`](SyncPolicy::EveryRecords),
//! [`Interval(d)`](SyncPolicy::Interval), or [`Always`](SyncPolicy::Always)
//! (the default: `fdatasync` before an append or batch returns).
//!
//! # Format and crash safety
//!
//! The byte layout is documented in the [`format`](mod@format) module. On
//! open, a torn tail of the last segment is cut off and reported
//! ([`OpenReport`]); damage in the middle is an [`Error::Corrupt`] that names
//! the segment and offset, and [`Journal::repair`] removes it, reporting what
//! it skipped. No reader returns a record whose checksum did not match.
//!
//! # Concurrency
//!
//! One writer per directory, enforced by an advisory lock on `<dir>/LOCK`
//! ([`Error::Locked`] for a second one). Readers have their own file handles
//! and run while the writer appends: one made by [`Journal::reader`] or
//! [`Recorder::reader`] reads up to what the writer has committed; one made
//! by [`Reader::open`] (any process) reads up to the last complete valid
//! frame.
//!
//! # Queries, retention and idempotency
//!
//! Each segment has a sparse index (sequence number and time to offset) and
//! a correlation-id index, in memory for the active segment and in a
//! sidecar file (`<first_seq>.idx`) for sealed ones; readers that start at
//! a sequence number or a time seek through it. A [`Query`] (topic
//! [`Pattern`](evbus_core::Pattern), time range, correlation id, session,
//! tenant, start, limit), run by [`Journal::query`] or [`Query::run`],
//! opens only the segments and reads only the blocks or frames the indexes
//! point to, and says what it read ([`QueryStats`]). A [`Retention`]
//! policy deletes whole sealed segments by size, age or record count; an
//! [`IdempotencyWindow`] keeps a record whose idempotency key was appended
//! recently from being appended again ([`Appended::Duplicate`]).
#![warn(missing_docs)]
#![deny(unsafe_code)]
#![doc(test(no_crate_inject, attr(deny(warnings))))]

mod codec;
pub mod cursor;
mod error;
pub mod format;
pub mod history;
mod idempotency;
mod index;
mod layout;
mod live;
pub mod memory;
mod query;
mod reader;
mod recorder;
mod recovery;
pub mod replay;
mod retention;
mod segment;
pub mod session;
mod shared;
pub mod tail;
mod writer;

pub use crate::{
    codec::Codec,
    cursor::{Cursor, MAX_CURSOR_NAME},
    error::{Error, Result},
    format::{Position, Record},
    history::{
        EventHistory, HistoryError, HistoryItem, HistoryStart, HistorySubscription,
        default_live_options,
    },
    idempotency::{Appended, BatchAppend, Duplicate, IdempotencyWindow},
    memory::MemoryJournal,
    query::{Query, QueryIter, QueryStats},
    reader::{Reader, Start},
    recorder::{Recorder, RecorderOptions, RecorderReport},
    recovery::{OpenReport, RepairReport, Skipped, Truncation},
    replay::{
        FilteredBy, Pace, Replay, ReplayClock, ReplayEnd, ReplayError, ReplayReport, ReplayTarget,
        SystemReplayClock,
    },
    retention::{Retention, RetentionReport},
    session::{
        ReadOptions, SessionError, SessionHeader, SessionReader, SessionWriter, read_session,
        write_session,
    },
    tail::{TailError, Tailer},
    writer::{DEFAULT_SEGMENT_SIZE, Journal, JournalOptions, SyncPolicy},
};

/// The handles are `Send` (and `Sync` where shared), checked at compile time.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    const fn send<T: Send>() {}
    send_sync::<Recorder>();
    send_sync::<Journal>();
    send_sync::<Error>();
    send::<Reader>();
};
