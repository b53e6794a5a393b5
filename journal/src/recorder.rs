//! The recorder: a lossless subscriber that appends what a bus publishes.
//!
//! # How `flush` covers "published before the call"
//!
//! A publish returns after its event sits in every matching ring, and a
//! ring's `delivered` counter counts the events it accepted. So when
//! [`Recorder::flush`] starts, `delivered` of the recorder's subscription
//! counts every event whose publish returned before (and perhaps a few
//! racing ones). The recorder thread takes events from its ring in order and
//! counts them once their batch is appended; `flush` waits (on a condition
//! variable, no spinning) until that count reaches the `delivered` it read,
//! then flushes the journal. Every event published before the call is then
//! appended and durable under the policy.

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{Arc, Condvar, Mutex, MutexGuard},
    thread::JoinHandle,
    time::Duration,
};

use evbus_core::{
    Bus, DEFAULT_CAPACITY, Envelope, Event, Filter, Overflow, RecvError, RecvTimeoutError,
    SubscribeOptions, Subscription, Unsubscriber,
};
use serde::Serialize;

use crate::{
    error::{Error, Result},
    live::{CloseOnDrop, Live},
    reader::{Reader, Start},
    shared::Shared,
    writer::Journal,
};

/// Options of a [`Recorder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecorderOptions {
    pattern: String,
    capacity: usize,
    block_timeout: Duration,
    name: String,
}

impl Default for RecorderOptions {
    fn default() -> Self {
        RecorderOptions {
            pattern: ">".to_owned(),
            capacity: DEFAULT_CAPACITY,
            block_timeout: Duration::MAX,
            name: "journal-recorder".to_owned(),
        }
    }
}

impl RecorderOptions {
    /// Every topic (`>`), a ring of [`DEFAULT_CAPACITY`] events,
    /// publishers wait for room without a time limit.
    pub fn new() -> Self {
        Self::default()
    }
    /// Records only topics matching `pattern` (checked at start).
    #[must_use]
    pub fn pattern(mut self, pattern: &str) -> Self {
        self.pattern = pattern.to_owned();
        self
    }
    /// Sets the capacity of the recorder's ring.
    #[must_use]
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }
    /// How long a publisher waits for room in a full recorder ring before
    /// the event is dropped (and counted in [`RecorderReport::dropped`]).
    /// Without a limit (the default) recording is lossless; publishers wait
    /// only while the recorder is behind.
    #[must_use]
    pub fn block_timeout(mut self, timeout: Duration) -> Self {
        self.block_timeout = timeout;
        self
    }
    /// Names the subscription (in bus stats) and the thread.
    #[must_use]
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_owned();
        self
    }
    /// The pattern.
    pub fn get_pattern(&self) -> &str {
        &self.pattern
    }
    /// The ring capacity.
    pub fn get_capacity(&self) -> usize {
        self.capacity
    }
    /// The publishers' wait limit.
    pub fn get_block_timeout(&self) -> Duration {
        self.block_timeout
    }
    /// The name.
    pub fn get_name(&self) -> &str {
        &self.name
    }
}

/// What a recorder did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecorderReport {
    /// Records appended.
    pub records: u64,
    /// Batches written (group commits).
    pub batches: u64,
    /// Segment syncs (`fdatasync`) made.
    pub syncs: u64,
    /// Events that could not be appended (encoding or I/O errors).
    pub errors: u64,
    /// The first error's message, if any.
    pub first_error: Option<String>,
    /// Replayed events with a dry-run mark, not recorded.
    pub dry_run_skipped: u64,
    /// Events not appended because their idempotency key was appended
    /// within the journal's window
    /// ([`JournalOptions::idempotency`](crate::JournalOptions::idempotency)).
    pub duplicates: u64,
    /// Events the ring dropped because a publisher's wait timed out (only
    /// with a [`RecorderOptions::block_timeout`]).
    pub dropped: u64,
}

#[derive(Debug, Default)]
struct State {
    /// Events taken from the ring and handled (appended, skipped or failed).
    handled: u64,
    report: RecorderReport,
    /// The thread ended.
    done: bool,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    changed: Condvar,
    /// `None` once the thread closed it.
    journal: Mutex<Option<Journal>>,
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        // Updated in whole steps; a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn journal(&self) -> MutexGuard<'_, Option<Journal>> {
        self.journal.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn error(&self, count: u64, e: &dyn std::fmt::Display) {
        let mut st = self.state();
        st.report.errors += count;
        if st.report.first_error.is_none() {
            st.report.first_error = Some(e.to_string());
        }
    }
}

/// Records the envelopes a bus publishes into a [`Journal`], on its own
/// thread.
///
/// The recorder subscribes to a pattern (`>` by default) with
/// [`Overflow::Block`]: lossless, so a publisher waits only when the
/// recorder's ring is full (without a time limit unless
/// [`RecorderOptions::block_timeout`] sets one). Its thread takes whatever
/// the ring holds in one go and appends it as one batch (group commit: one
/// `write`, and one `fdatasync` under [`SyncPolicy::Always`](crate::SyncPolicy::Always)).
///
/// Replayed events that carry a dry-run [`ReplayMark`](evbus_core::ReplayMark)
/// are not recorded (counted in [`RecorderReport::dry_run_skipped`]); a
/// replay that is not a dry run is recorded with its mark.
///
/// # Closing
///
/// The recorder drains its ring and closes the journal (flushing it) when
/// the bus shuts down (or its last handle goes), or when
/// [`Recorder::stop`] is called or the recorder is dropped; `stop` and
/// `drop` wait for the thread.
///
/// # Errors while recording
///
/// A record that cannot be encoded, or a failed write, is counted in
/// [`RecorderReport::errors`]; the recorder keeps draining its ring so
/// publishers never wait on a broken journal.
pub struct Recorder {
    inner: Arc<Inner>,
    shared: Arc<Shared>,
    unsubscriber: Box<dyn Unsub>,
    thread: Option<JoinHandle<()>>,
    /// The live bus and gate of history subscriptions (`Live<T>`, typed by
    /// the payload; see `history.rs`).
    live: Arc<dyn std::any::Any + Send + Sync>,
}

/// The typed `Unsubscriber` behind a trait object, so `Recorder` has no
/// type parameter.
trait Unsub: Send + Sync {
    fn unsubscribe(&self);
    fn delivered(&self) -> u64;
    fn dropped(&self) -> u64;
}

impl<E: Send> Unsub for Unsubscriber<E> {
    fn unsubscribe(&self) {
        Unsubscriber::unsubscribe(self);
    }
    fn delivered(&self) -> u64 {
        self.stats().delivered
    }
    fn dropped(&self) -> u64 {
        self.stats().dropped
    }
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad("Recorder { .. }")
    }
}

impl Recorder {
    /// Starts recording every envelope `bus` publishes into `journal`.
    ///
    /// # Errors
    ///
    /// [`Error::Subscribe`] if the bus is shut down; I/O errors starting the
    /// thread.
    pub fn start<T>(bus: &Bus<Envelope<T>>, journal: Journal) -> Result<Recorder>
    where
        T: Event + Serialize + Clone + Send + 'static,
    {
        Self::start_with(bus, journal, RecorderOptions::default())
    }

    /// Starts recording with options.
    ///
    /// # Errors
    ///
    /// [`Error::Subscribe`] for a bad pattern or capacity, or a shut-down
    /// bus; I/O errors starting the thread.
    pub fn start_with<T>(
        bus: &Bus<Envelope<T>>,
        journal: Journal,
        options: RecorderOptions,
    ) -> Result<Recorder>
    where
        T: Event + Serialize + Clone + Send + 'static,
    {
        let filter = Filter::pattern(&options.pattern).map_err(evbus_core::SubscribeError::from)?;
        let sub = bus.subscribe_with(
            filter,
            SubscribeOptions::new()
                .capacity(options.capacity)
                .overflow(Overflow::Block(options.block_timeout))
                .name(options.name.clone()),
        )?;
        let unsubscriber = sub.unsubscriber();
        let shared = Arc::clone(journal.shared());
        let live = Arc::new(Live::<T>::new(journal.next_seq()));
        let thread_live = Arc::clone(&live);
        let inner = Arc::new(Inner {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            journal: Mutex::new(Some(journal)),
        });
        let thread_inner = Arc::clone(&inner);
        let thread = std::thread::Builder::new()
            .name(options.name.clone())
            .spawn(move || run(&thread_inner, sub, &thread_live))
            .map_err(|e| Error::io("<recorder thread>", e))?;
        Ok(Recorder {
            inner,
            shared,
            unsubscriber: Box::new(unsubscriber),
            thread: Some(thread),
            live,
        })
    }

    /// Waits until every event published before the call is appended and
    /// durable under the journal's [`SyncPolicy`](crate::SyncPolicy).
    /// Blocks without spinning; returns at once if the recorder has closed
    /// after appending them.
    ///
    /// Why the wait covers exactly "published before the call": a publish
    /// returns after its event sits in the recorder's ring, whose
    /// `delivered` counter counts the events it accepted. `flush` reads that
    /// counter first; the recorder thread takes events in ring order and
    /// counts them once their batch is appended; `flush` waits (on a
    /// condition variable) until that count reaches what it read, then
    /// flushes the journal.
    ///
    /// # Errors
    ///
    /// [`Error::RecordsLost`] if the recorder failed to append some record
    /// so far; [`Error::RecorderStopped`] if its thread ended before
    /// handling them; the journal's flush errors.
    pub fn flush(&self) -> Result<()> {
        let target = self.unsubscriber.delivered();
        let st = self
            .inner
            .changed
            .wait_while(self.inner.state(), |st| st.handled < target && !st.done)
            .unwrap_or_else(|e| e.into_inner());
        if st.handled < target {
            return Err(Error::RecorderStopped);
        }
        let errors = st.report.errors;
        drop(st);
        if let Some(j) = self.inner.journal().as_mut() {
            j.flush()?;
        }
        if errors > 0 {
            return Err(Error::RecordsLost { count: errors });
        }
        Ok(())
    }

    /// A reader of the recorded journal from `start`, reading up to what the
    /// recorder has appended (including later appends).
    ///
    /// # Errors
    ///
    /// As [`Journal::reader`].
    pub fn reader(&self, start: Start) -> Result<Reader> {
        Reader::in_process(Arc::clone(self.shared()), start)
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The `Live<T>` of history subscriptions.
    pub(crate) fn live(&self) -> &(dyn std::any::Any + Send + Sync) {
        &*self.live
    }

    /// The report so far.
    pub fn report(&self) -> RecorderReport {
        let mut r = self.inner.state().report.clone();
        r.dropped = self.unsubscriber.dropped();
        r
    }

    /// Whether the recorder's thread has ended (the bus shut down).
    pub fn is_closed(&self) -> bool {
        self.inner.state().done
    }

    /// Stops recording: unsubscribes, appends what the ring still holds,
    /// closes the journal, and reports.
    pub fn stop(mut self) -> RecorderReport {
        self.stop_inner();
        self.report()
    }

    fn stop_inner(&mut self) {
        self.unsubscriber.unsubscribe();
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            let mut st = self.inner.state();
            st.report.errors += 1;
            st.report
                .first_error
                .get_or_insert_with(|| "the recorder thread panicked".to_owned());
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

/// Marks the thread done when it ends, even by a panic.
struct DoneGuard<'a>(&'a Inner);

impl Drop for DoneGuard<'_> {
    fn drop(&mut self) {
        let mut st = self.0.state();
        st.done = true;
        drop(st);
        self.0.changed.notify_all();
    }
}

fn is_dry_run<T>(e: &Envelope<T>) -> bool {
    e.replay().is_some_and(|r| r.dry_run)
}

/// The recorder thread.
fn run<T>(inner: &Inner, mut sub: Subscription<Envelope<T>>, live: &Live<T>)
where
    T: Event + Serialize + Clone + Send + 'static,
{
    let _done = DoneGuard(inner);
    // Dropped first, after the journal is closed (or on a panic): history
    // subscriptions drain, then disconnect.
    let _live = CloseOnDrop(live);
    let mut buf: Vec<Envelope<T>> = Vec::new();
    loop {
        let due = inner.journal().as_ref().and_then(Journal::sync_due_in);
        let first = match due {
            Some(wait) => match sub.recv_timeout(wait) {
                Ok(e) => e,
                Err(RecvTimeoutError::Timeout) => {
                    let result = inner.journal().as_mut().map(Journal::sync_if_due);
                    if let Some(Err(e)) = result {
                        inner.error(0, &e);
                    }
                    update_syncs(inner);
                    continue;
                }
                Err(RecvTimeoutError::Lagged(_)) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            },
            None => match sub.recv() {
                Ok(e) => e,
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Disconnected) => break,
            },
        };
        buf.push(first);
        sub.drain_into(&mut buf);
        let handled = buf.len() as u64;
        let next_seq = append(inner, &buf);
        // History subscriptions: publish the batch live, now recorded, and
        // move the boundary past it (history.rs), before `flush` can see
        // the batch handled: after a `flush`, a history subscription's
        // history holds everything published before it.
        if let Some(next_seq) = next_seq {
            live.publish(&mut buf, next_seq);
        }
        inner.state().handled += handled;
        inner.changed.notify_all();
        // The events' `Drop` (user code) runs outside every lock.
        buf.clear();
    }
    let closing = inner.journal().take();
    if let Some(mut j) = closing {
        let result = j.flush();
        let mut st = inner.state();
        st.report.syncs = j.syncs();
        drop(st);
        if let Err(e) = result {
            inner.error(0, &e);
        }
        // Closes the segment and releases the lock.
        drop(j);
    }
}

fn update_syncs(inner: &Inner) {
    let syncs = inner.journal().as_ref().map(Journal::syncs);
    if let Some(s) = syncs {
        inner.state().report.syncs = s;
    }
}

/// Appends one drained batch and reports it (the caller counts it handled).
/// Returns the journal's next sequence number after it, if the journal is
/// open.
fn append<T: Serialize>(inner: &Inner, batch: &[Envelope<T>]) -> Option<u64> {
    let skipped = batch.iter().filter(|e| is_dry_run(e)).count() as u64;
    let wanted = batch.len() as u64 - skipped;
    let mut appended = 0;
    let mut duplicates = 0;
    let mut errors: Vec<Error> = Vec::new();
    let mut syncs = None;
    let mut next_seq = None;
    if wanted > 0 {
        let mut guard = inner.journal();
        match guard.as_mut() {
            None => errors.push(Error::RecorderStopped),
            Some(j) => {
                let before = j.next_seq();
                let dups_before = j.duplicates();
                let all = batch.iter().filter(|e| !is_dry_run(e));
                let whole = catch_unwind(AssertUnwindSafe(|| j.append_batch(all)));
                if !matches!(whole, Ok(Ok(_))) {
                    // A batch that spans segments may have landed in part
                    // before an I/O error; the rest is retried one by one,
                    // so a failing or panicking record does not take its
                    // batch down with it.
                    let landed = j.batch_consumed();
                    let rest = batch.iter().filter(|e| !is_dry_run(e)).skip(landed);
                    for e in rest {
                        match catch_unwind(AssertUnwindSafe(|| j.append(e))) {
                            Ok(Ok(_)) => {}
                            Ok(Err(err)) => errors.push(err),
                            Err(_) => errors.push(Error::Encode {
                                message: "a payload's Serialize panicked".to_owned(),
                            }),
                        }
                    }
                }
                appended = j.next_seq() - before;
                duplicates = j.duplicates() - dups_before;
                syncs = Some(j.syncs());
                next_seq = Some(j.next_seq());
            }
        }
    }
    let failed = wanted.saturating_sub(appended + duplicates);
    let mut st = inner.state();
    st.report.records += appended;
    st.report.batches += u64::from(appended > 0);
    st.report.dry_run_skipped += skipped;
    st.report.duplicates += duplicates;
    st.report.errors += failed;
    if let Some(s) = syncs {
        st.report.syncs = s;
    }
    if st.report.first_error.is_none() {
        st.report.first_error = errors.first().map(ToString::to_string);
    }
    drop(st);
    next_seq.or_else(|| inner.journal().as_ref().map(Journal::next_seq))
}
