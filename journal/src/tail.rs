//! Tailers: follow a journal's appends as they happen, woken by the writer.
//!
//! A [`Tailer`] is an in-process [`Reader`] that, instead of returning
//! "nothing more for now", waits for the writer's next commit: the writer
//! publishes its committed position under a mutex and notifies a condition
//! variable; the tailer checks the committed sequence number under that
//! mutex before it sleeps, so a commit can never slip between the check and
//! the sleep (no lost wake-up), and it never spins.
//!
//! # Closing
//!
//! When the writer goes (the [`Journal`] is dropped or closed, or the
//! [`Recorder`] stops), the tailer returns the records committed until then,
//! then reports the end: `None` from [`Tailer::next`],
//! [`TailError::Closed`] from the other calls.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use evbus_core::Filter;

use crate::{
    cursor::Cursor,
    error::{Error, Result},
    format::Record,
    reader::{Reader, Start},
    recorder::Recorder,
    shared::Shared,
    writer::Journal,
};

/// Why [`Tailer::try_next`] or [`Tailer::next_timeout`] returned no record.
#[derive(Debug)]
#[non_exhaustive]
pub enum TailError {
    /// [`Tailer::try_next`]: no record is committed past the tailer yet.
    Empty,
    /// [`Tailer::next_timeout`] / [`Tailer::next_deadline`]: no record was
    /// committed in time.
    Timeout,
    /// The writer is gone and every record it committed has been returned.
    Closed,
    /// Reading failed (the tailer ends: every later call returns
    /// [`TailError::Closed`]).
    Journal(Error),
}

impl std::fmt::Display for TailError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TailError::Empty => f.write_str("no record committed past the tailer yet"),
            TailError::Timeout => f.write_str("timed out waiting for a record"),
            TailError::Closed => f.write_str("the journal is closed and fully read"),
            TailError::Journal(e) => write!(f, "tailing failed: {e}"),
        }
    }
}

impl std::error::Error for TailError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TailError::Journal(e) => Some(e),
            _ => None,
        }
    }
}

/// Follows a journal's appends in the writer's process, record by record, in
/// sequence order; see the [module docs](self).
///
/// Made by [`Journal::tailer`] or [`Recorder::tailer`]. The blocking
/// [`Iterator`] implementation waits for each next record and ends (`None`)
/// when the writer is gone and everything it committed has been read.
///
/// ```
/// use evbus_core::Envelope;
/// use evbus_journal::{Journal, JournalOptions, Start, SyncPolicy};
///
/// let dir = tempfile::tempdir()?;
/// let mut journal = Journal::create(dir.path(), JournalOptions::new().sync(SyncPolicy::Never))?;
/// let tailer = journal.tailer(Start::Beginning)?.pattern("orders.*")?;
/// let reader = std::thread::spawn(move || {
///     tailer.map(|r| r.unwrap().seq()).collect::<Vec<_>>()
/// });
/// journal.append(&Envelope::on("orders.placed", 1u32)?)?;
/// journal.append(&Envelope::on("audit.login", 2u32)?)?;
/// journal.append(&Envelope::on("orders.shipped", 3u32)?)?;
/// drop(journal); // the tailer ends after the last record
/// assert_eq!(reader.join().unwrap(), [0, 2]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Tailer {
    reader: Reader,
    shared: Arc<Shared>,
    filter: Option<Filter>,
    done: bool,
}

impl std::fmt::Debug for Tailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tailer")
            .field("next_seq", &self.reader.next_seq())
            .field("filter", &self.filter)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl Tailer {
    pub(crate) fn new(shared: &Arc<Shared>, start: Start) -> Result<Tailer> {
        Ok(Tailer {
            reader: Reader::in_process(Arc::clone(shared), start)?,
            shared: Arc::clone(shared),
            filter: None,
            done: false,
        })
    }

    /// Returns only records whose topic matches `filter` (the bus's pattern
    /// grammar and matcher). Replaces an earlier filter.
    #[must_use]
    pub fn filter(mut self, filter: Filter) -> Tailer {
        self.filter = Some(filter);
        self
    }

    /// Returns only records whose topic matches `pattern`.
    ///
    /// # Errors
    ///
    /// [`Error::Subscribe`] with the pattern's
    /// [`TopicError`](evbus_core::TopicError) if it breaks the grammar.
    pub fn pattern(self, pattern: &str) -> Result<Tailer> {
        let filter = Filter::pattern(pattern).map_err(evbus_core::SubscribeError::from)?;
        Ok(self.filter(filter))
    }

    /// The smallest sequence number the next record can have.
    pub fn next_seq(&self) -> u64 {
        self.reader.next_seq()
    }

    fn wanted(&self, record: &Record) -> bool {
        self.filter
            .as_ref()
            .is_none_or(|f| f.patterns_slice().iter().any(|p| p.matches(record.topic())))
    }

    /// Reads what is committed; `Ok(None)` when caught up.
    fn poll(&mut self) -> Result<Option<Record>, TailError> {
        if self.done {
            return Err(TailError::Closed);
        }
        loop {
            match self.reader.next() {
                Some(Ok(record)) if self.wanted(&record) => return Ok(Some(record)),
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    self.done = true;
                    return Err(TailError::Journal(e));
                }
                None => return Ok(None),
            }
        }
    }

    /// The one implementation of every receive: waits until `deadline`
    /// (`None`: without a limit; `Some(now)` or earlier: not at all).
    ///
    /// The committed state is read *before* the reader runs dry: a reader
    /// that returns `None` has read everything committed at that moment
    /// (it reads up to the committed end), so waiting for a sequence number
    /// past that snapshot can miss nothing. (The reader's own `next_seq`
    /// would not do: a time start or a filter skips records without it.)
    fn next_until(&mut self, deadline: Option<Instant>) -> Result<Record, TailError> {
        loop {
            let seen = self.shared.committed();
            if let Some(record) = self.poll()? {
                return Ok(record);
            }
            if seen.closed {
                // The close published the final state: all of it is read.
                self.done = true;
                return Err(TailError::Closed);
            }
            if deadline.is_some_and(|d| d <= Instant::now()) {
                return Err(TailError::Timeout);
            }
            // Sleeps (under the writer's lock, so no commit is missed)
            // until a record past the snapshot is committed, the writer
            // closes, or the deadline passes; then reads again.
            self.shared.wait_for_seq(seen.next_seq, deadline);
        }
    }

    /// Returns the next committed record without waiting.
    ///
    /// # Errors
    ///
    /// [`TailError::Empty`] when caught up with the writer;
    /// [`TailError::Closed`] when the writer is gone and everything is read;
    /// [`TailError::Journal`] if reading failed.
    pub fn try_next(&mut self) -> Result<Record, TailError> {
        let seen = self.shared.committed();
        match self.poll()? {
            Some(record) => Ok(record),
            None if seen.closed => {
                self.done = true;
                Err(TailError::Closed)
            }
            None => Err(TailError::Empty),
        }
    }

    /// Waits at most `timeout` for the next record.
    ///
    /// # Errors
    ///
    /// [`TailError::Timeout`], [`TailError::Closed`] or
    /// [`TailError::Journal`].
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Record, TailError> {
        let deadline = Instant::now().checked_add(timeout);
        self.next_until(Some(deadline.unwrap_or_else(far_future)))
    }

    /// Waits until `deadline` for the next record.
    ///
    /// # Errors
    ///
    /// As [`Tailer::next_timeout`].
    pub fn next_deadline(&mut self, deadline: Instant) -> Result<Record, TailError> {
        self.next_until(Some(deadline))
    }

    /// Waits for the next record without a time limit.
    ///
    /// # Errors
    ///
    /// [`TailError::Closed`] or [`TailError::Journal`].
    pub fn next_blocking(&mut self) -> Result<Record, TailError> {
        self.next_until(None)
    }
}

/// A deadline for a timeout too long to represent (`Duration::MAX`): about
/// a century away, which `Condvar::wait_timeout` handles.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}

impl Iterator for Tailer {
    type Item = Result<Record>;

    /// Blocks until the next record; `None` once the writer is gone and
    /// everything is read (or after an error).
    fn next(&mut self) -> Option<Result<Record>> {
        match self.next_until(None) {
            Ok(record) => Some(Ok(record)),
            Err(TailError::Journal(e)) => Some(Err(e)),
            Err(_) => None,
        }
    }
}

impl Journal {
    /// A [`Tailer`] over this journal from `start`: it returns every record
    /// from there on, waiting for the writer's appends.
    ///
    /// # Errors
    ///
    /// As [`Journal::reader`].
    pub fn tailer(&self, start: Start) -> Result<Tailer> {
        Tailer::new(self.shared(), start)
    }

    /// A tailer that resumes after the last record `cursor` acknowledged
    /// ([`Cursor::start`]).
    ///
    /// # Errors
    ///
    /// As [`Journal::reader`].
    pub fn tailer_from(&self, cursor: &Cursor) -> Result<Tailer> {
        self.tailer(cursor.start())
    }
}

impl Recorder {
    /// A [`Tailer`] over the recorded journal from `start`: it follows the
    /// recorder's appends.
    ///
    /// # Errors
    ///
    /// As [`Journal::reader`].
    pub fn tailer(&self, start: Start) -> Result<Tailer> {
        Tailer::new(self.shared(), start)
    }

    /// A tailer that resumes after the last record `cursor` acknowledged.
    ///
    /// # Errors
    ///
    /// As [`Journal::reader`].
    pub fn tailer_from(&self, cursor: &Cursor) -> Result<Tailer> {
        self.tailer(cursor.start())
    }
}
