//! History then live: [`subscribe_with_history`](EventHistory::subscribe_with_history)
//! returns the recorded events a consumer asks for, then the live events,
//! with no gap and no duplicate at the boundary.
//!
//! # The boundary protocol
//!
//! The live events do not come straight from the application's bus: they
//! come from the recorder (a [`Recorder`] or a
//! [`MemoryJournal`](crate::MemoryJournal)) after it has recorded them. The
//! recorder keeps a private bus, the *live bus*, and a *gate*: a mutex
//! around the *boundary*, the sequence number of the first record not yet
//! published on the live bus.
//!
//! - The recorder thread records a batch (sequence numbers `b..e`), then,
//!   holding the gate, publishes the batch on the live bus in record order
//!   and sets the boundary to `e`.
//! - `subscribe_with_history`, holding the gate, subscribes to the live bus
//!   and reads the boundary `B`; then, outside the gate, it reads the
//!   history from the records below `B`.
//!
//! Why this has no gap and no duplicate: the gate orders every batch's
//! publication wholly before or wholly after the subscription.
//! - A record below `B` was published before the subscription existed, so
//!   the live subscription never receives it; it is recorded (records are
//!   published only once recorded), so the history can return it.
//! - A record at or above `B` is published after the gate is released,
//!   which happens after the subscription returned, and a subscription
//!   receives every event published after it returned (the bus contract).
//!   The history stops below `B`, so it is returned once, live.
//!
//! The sequence a consumer sees is therefore exactly the recorder's order
//! from where the history starts: every record once, in order, then every
//! later event once, in order. Each publisher's order is kept, because the
//! recorder's lossless ring keeps it.
//!
//! Why not subscribe to the application's bus directly (subscribe, flush
//! the recorder, read the history, skip live events whose id the history
//! returned)? Because a publish that loaded the bus's routing table just
//! before the subscription was installed reaches the recorder's ring only
//! after the flush has read how far to wait (a `Block` publisher waiting for
//! room in a full recorder ring can stay in that window for a long time):
//! that event is in neither the history nor the live stream. The recorder
//! sees every event in one order, so putting the boundary in that order
//! closes the window. The cost is that live events arrive once recorded
//! (after the recorder's `write`, and its `fdatasync` under
//! [`SyncPolicy::Always`](crate::SyncPolicy::Always)), never before they
//! are durable.
//!
//! # What breaks "no gap"
//!
//! Only a full live ring: the live subscription is bounded. With the
//! default [`Overflow::DropOldest`] the receiver gets
//! [`HistoryError::Lagged`] with the count, then the events that remain;
//! with [`Overflow::Block`] nothing is lost but the recorder (and so the
//! publishers, once its ring fills) waits for this consumer. Events the
//! recorder failed to record (see [`RecorderReport`](crate::RecorderReport))
//! are published live but are in no history, and dry-run replays are never
//! recorded, so they too are live-only.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use evbus_core::{
    DEFAULT_CAPACITY, Envelope, Event, Filter, Overflow, RecvError, RecvTimeoutError,
    SubscribeError, SubscribeOptions, Subscription, Timestamp, TryRecvError,
};
use serde::de::DeserializeOwned;

use crate::{
    error::{Error, Result},
    format::Record,
    live::Live,
    reader::{Reader, Start},
    recorder::Recorder,
    segment::list_segments,
    shared::Shared,
};

/// Which recorded events a history subscription returns before the live
/// ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryStart {
    /// No history: only live events.
    LiveOnly,
    /// The last `n` recorded events that match the filter.
    Last(usize),
    /// The matching records with this sequence number or a later one.
    Seq(u64),
    /// The matching records from the first record at or after this time (as
    /// [`Start::Time`]).
    Time(Timestamp),
}

/// One event of a [`HistorySubscription`]: from the history or live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryItem<T> {
    /// A recorded event, with its sequence number.
    History {
        /// The record's sequence number.
        seq: u64,
        /// The event.
        envelope: Envelope<T>,
    },
    /// A live event (recorded, or that failed to record, after the
    /// subscription was made).
    Live(Envelope<T>),
}

impl<T> HistoryItem<T> {
    /// The event.
    pub fn envelope(&self) -> &Envelope<T> {
        match self {
            HistoryItem::History { envelope, .. } | HistoryItem::Live(envelope) => envelope,
        }
    }
    /// The event, by value.
    pub fn into_envelope(self) -> Envelope<T> {
        match self {
            HistoryItem::History { envelope, .. } | HistoryItem::Live(envelope) => envelope,
        }
    }
    /// Whether this is a live event.
    pub fn is_live(&self) -> bool {
        matches!(self, HistoryItem::Live(_))
    }
    /// The record's sequence number, for a history event.
    pub fn seq(&self) -> Option<u64> {
        match self {
            HistoryItem::History { seq, .. } => Some(*seq),
            HistoryItem::Live(_) => None,
        }
    }
}

/// Why a [`HistorySubscription`] returned no event.
#[derive(Debug)]
#[non_exhaustive]
pub enum HistoryError {
    /// `try_recv`: the history is done and no live event is buffered.
    Empty,
    /// `recv_timeout` / `recv_deadline`: no live event arrived in time.
    Timeout,
    /// The live ring was full and this many events were lost (with
    /// [`Overflow::DropOldest`]); reported once, before the events that
    /// remain.
    Lagged(u64),
    /// The recorder stopped (or the bus shut down) and every event is
    /// returned.
    Disconnected,
    /// Reading or decoding a history record failed. A record that cannot be
    /// decoded is skipped (the next call goes on after it); a damaged
    /// journal ends the history (the next call goes on with the live
    /// events).
    Journal(Error),
}

impl std::fmt::Display for HistoryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HistoryError::Empty => f.write_str("no event available yet"),
            HistoryError::Timeout => f.write_str("timed out waiting for an event"),
            HistoryError::Lagged(n) => {
                write!(f, "history subscription lagged behind by {n} events")
            }
            HistoryError::Disconnected => f.write_str("the recorder stopped"),
            HistoryError::Journal(e) => write!(f, "reading the history failed: {e}"),
        }
    }
}

impl std::error::Error for HistoryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HistoryError::Journal(e) => Some(e),
            _ => None,
        }
    }
}

/// The default options of a history subscription's live part: a ring of
/// [`DEFAULT_CAPACITY`] events that reports a lag
/// ([`Overflow::DropOldest`]) rather than slowing the recorder down.
pub fn default_live_options() -> SubscribeOptions {
    SubscribeOptions::new()
        .capacity(DEFAULT_CAPACITY)
        .overflow(Overflow::DropOldest)
        .name("journal-history")
}

/// Where the history part comes from.
enum Source<T> {
    /// Already selected (the memory journal), oldest first.
    Memory(VecDeque<(u64, Envelope<T>)>),
    /// Read lazily from the journal, below `end`.
    Disk {
        /// Boxed: a reader is large next to a `VecDeque`.
        reader: Option<Box<Reader>>,
        end: u64,
        filter: Filter,
        decode: fn(&Record) -> Result<Envelope<T>>,
    },
}

fn matches(filter: &Filter, topic: &str) -> bool {
    filter.patterns_slice().iter().any(|p| p.matches(topic))
}

/// Recorded events, then live ones; see the [module docs](self).
///
/// Receive with [`recv`](HistorySubscription::recv),
/// [`try_recv`](HistorySubscription::try_recv),
/// [`recv_timeout`](HistorySubscription::recv_timeout) or as a blocking
/// iterator (which ends at [`HistoryError::Disconnected`] and skips lag
/// reports). Every item says whether it is history or live
/// ([`HistoryItem`]).
pub struct HistorySubscription<T> {
    history: Source<T>,
    live: Option<Subscription<Envelope<T>>>,
    boundary: u64,
}

impl<T> std::fmt::Debug for HistorySubscription<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistorySubscription")
            .field("boundary", &self.boundary)
            .finish_non_exhaustive()
    }
}

fn decode<T: DeserializeOwned>(record: &Record) -> Result<Envelope<T>> {
    record.envelope::<T>()
}

impl<T: DeserializeOwned> HistorySubscription<T> {
    /// A subscription whose history is read from the journal behind
    /// `shared`, below `boundary`.
    pub(crate) fn from_disk(
        shared: &std::sync::Arc<Shared>,
        filter: Filter,
        from: HistoryStart,
        live: Option<Subscription<Envelope<T>>>,
        boundary: u64,
    ) -> Result<Self> {
        let start = match from {
            HistoryStart::LiveOnly => None,
            HistoryStart::Seq(s) => Some(Start::Seq(s)),
            HistoryStart::Time(t) => Some(Start::Time(t)),
            HistoryStart::Last(n) => Some(Start::Seq(last_n_start(shared, &filter, n, boundary)?)),
        };
        let reader = match start {
            Some(Start::Seq(s)) if s >= boundary => None,
            Some(start) => Some(Box::new(Reader::in_process(
                std::sync::Arc::clone(shared),
                start,
            )?)),
            None => None,
        };
        Ok(HistorySubscription {
            history: Source::Disk {
                reader,
                end: boundary,
                filter,
                decode: decode::<T>,
            },
            live,
            boundary,
        })
    }
}

impl<T> HistorySubscription<T> {
    pub(crate) fn from_memory(
        history: VecDeque<(u64, Envelope<T>)>,
        live: Option<Subscription<Envelope<T>>>,
        boundary: u64,
    ) -> Self {
        HistorySubscription {
            history: Source::Memory(history),
            live,
            boundary,
        }
    }

    /// The boundary: the sequence number of the first record that comes
    /// live rather than from the history.
    pub fn boundary(&self) -> u64 {
        self.boundary
    }

    /// Whether the history part is done (only live events follow).
    pub fn history_done(&self) -> bool {
        match &self.history {
            Source::Memory(q) => q.is_empty(),
            Source::Disk { reader, .. } => reader.is_none(),
        }
    }

    /// The next history event, if any is left.
    fn next_history(&mut self) -> Option<Result<HistoryItem<T>, HistoryError>> {
        match &mut self.history {
            Source::Memory(q) => q
                .pop_front()
                .map(|(seq, envelope)| Ok(HistoryItem::History { seq, envelope })),
            Source::Disk {
                reader,
                end,
                filter,
                decode,
            } => loop {
                let r = reader.as_mut()?;
                match r.next() {
                    Some(Ok(record)) if record.seq() < *end => {
                        if !matches(filter, record.topic()) {
                            continue;
                        }
                        let seq = record.seq();
                        return Some(match decode(&record) {
                            Ok(envelope) => Ok(HistoryItem::History { seq, envelope }),
                            Err(e) => Err(HistoryError::Journal(e)),
                        });
                    }
                    Some(Err(e)) => {
                        *reader = None;
                        return Some(Err(HistoryError::Journal(e)));
                    }
                    // At the boundary (every record below it is committed,
                    // so the reader cannot run dry before it).
                    Some(Ok(_)) | None => *reader = None,
                }
            },
        }
    }

    /// The next event without waiting.
    ///
    /// # Errors
    ///
    /// [`HistoryError::Empty`], [`HistoryError::Lagged`],
    /// [`HistoryError::Disconnected`], [`HistoryError::Journal`].
    pub fn try_recv(&mut self) -> Result<HistoryItem<T>, HistoryError> {
        if let Some(item) = self.next_history() {
            return item;
        }
        let Some(live) = &mut self.live else {
            return Err(HistoryError::Disconnected);
        };
        match live.try_recv() {
            Ok(e) => Ok(HistoryItem::Live(e)),
            Err(TryRecvError::Empty) => Err(HistoryError::Empty),
            Err(TryRecvError::Lagged(n)) => Err(HistoryError::Lagged(n)),
            Err(TryRecvError::Disconnected) => Err(HistoryError::Disconnected),
        }
    }

    /// The next event, waiting for a live one without a time limit.
    ///
    /// # Errors
    ///
    /// [`HistoryError::Lagged`], [`HistoryError::Disconnected`],
    /// [`HistoryError::Journal`].
    pub fn recv(&mut self) -> Result<HistoryItem<T>, HistoryError> {
        if let Some(item) = self.next_history() {
            return item;
        }
        let Some(live) = &mut self.live else {
            return Err(HistoryError::Disconnected);
        };
        match live.recv() {
            Ok(e) => Ok(HistoryItem::Live(e)),
            Err(RecvError::Lagged(n)) => Err(HistoryError::Lagged(n)),
            Err(RecvError::Disconnected) => Err(HistoryError::Disconnected),
        }
    }

    /// The next event, waiting at most `timeout` for a live one.
    ///
    /// # Errors
    ///
    /// [`HistoryError::Timeout`], [`HistoryError::Lagged`],
    /// [`HistoryError::Disconnected`], [`HistoryError::Journal`].
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<HistoryItem<T>, HistoryError> {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.recv_deadline(deadline),
            None => self.recv(),
        }
    }

    /// The next event, waiting until `deadline` for a live one.
    ///
    /// # Errors
    ///
    /// As [`HistorySubscription::recv_timeout`].
    pub fn recv_deadline(&mut self, deadline: Instant) -> Result<HistoryItem<T>, HistoryError> {
        if let Some(item) = self.next_history() {
            return item;
        }
        let Some(live) = &mut self.live else {
            return Err(HistoryError::Disconnected);
        };
        match live.recv_deadline(deadline) {
            Ok(e) => Ok(HistoryItem::Live(e)),
            Err(RecvTimeoutError::Timeout) => Err(HistoryError::Timeout),
            Err(RecvTimeoutError::Lagged(n)) => Err(HistoryError::Lagged(n)),
            Err(RecvTimeoutError::Disconnected) => Err(HistoryError::Disconnected),
        }
    }
}

impl<T> Iterator for HistorySubscription<T> {
    type Item = HistoryItem<T>;

    /// Blocks for the next event; skips lag reports and records that
    /// cannot be read (use [`recv`](HistorySubscription::recv) to see them);
    /// `None` once disconnected.
    fn next(&mut self) -> Option<HistoryItem<T>> {
        loop {
            match self.recv() {
                Ok(item) => return Some(item),
                Err(HistoryError::Disconnected) => return None,
                Err(_) => {}
            }
        }
    }
}

/// The first sequence number of the last `n` records below `end` whose
/// topic matches `filter` (`end` if `n == 0`, the journal's first record if
/// fewer match). Reads segments from the newest back, each once, until it
/// has counted `n`.
fn last_n_start(
    shared: &std::sync::Arc<Shared>,
    filter: &Filter,
    n: usize,
    end: u64,
) -> Result<u64> {
    if n == 0 {
        return Ok(end);
    }
    let segments = list_segments(&shared.dir)?;
    let mut wanted = n;
    let mut upper = end;
    for &first in segments.iter().rev() {
        if first >= upper {
            continue;
        }
        let mut seqs = Vec::new();
        for r in Reader::in_process(std::sync::Arc::clone(shared), Start::Seq(first))? {
            let r = r?;
            if r.seq() >= upper {
                break;
            }
            if matches(filter, r.topic()) {
                seqs.push(r.seq());
            }
        }
        if seqs.len() >= wanted {
            return Ok(seqs[seqs.len() - wanted]);
        }
        wanted -= seqs.len();
        upper = first;
    }
    Ok(0)
}

/// The history/live API that the disk recorder ([`Recorder`]) and the
/// [`MemoryJournal`](crate::MemoryJournal) share, so code (and tests) can
/// run over either.
pub trait EventHistory<T> {
    /// History selected by `from` among the events matching `filter`, then
    /// the live events matching it, with the live part's ring made with
    /// `options` (see the [module docs](self) on what a full ring does).
    ///
    /// # Errors
    ///
    /// [`Error::Subscribe`] for bad options; errors reading the journal.
    fn subscribe_with_history_opts(
        &self,
        filter: Filter,
        from: HistoryStart,
        options: SubscribeOptions,
    ) -> Result<HistorySubscription<T>>;

    /// History selected by `from` among the events whose topic matches
    /// `pattern`, then the live events, with
    /// [`default_live_options`].
    ///
    /// # Errors
    ///
    /// [`Error::Subscribe`] for a bad pattern; errors reading the journal.
    fn subscribe_with_history(
        &self,
        pattern: &str,
        from: HistoryStart,
    ) -> Result<HistorySubscription<T>> {
        let filter = Filter::pattern(pattern).map_err(SubscribeError::from)?;
        self.subscribe_with_history_opts(filter, from, default_live_options())
    }

    /// A query: the recorded events matching `filter` selected by `from`,
    /// oldest first, with their sequence numbers (no live part).
    ///
    /// # Errors
    ///
    /// Errors reading or decoding the journal.
    fn history(&self, filter: Filter, from: HistoryStart) -> Result<Vec<(u64, Envelope<T>)>> {
        let options = SubscribeOptions::new()
            .capacity(1)
            .overflow(Overflow::DropNewest);
        let mut sub = self.subscribe_with_history_opts(filter, from, options)?;
        sub.live = None;
        let mut out = Vec::new();
        while let Some(item) = sub.next_history() {
            match item {
                Ok(HistoryItem::History { seq, envelope }) => out.push((seq, envelope)),
                Ok(HistoryItem::Live(_)) => {}
                Err(HistoryError::Journal(e)) => return Err(e),
                Err(_) => {}
            }
        }
        Ok(out)
    }
}

impl Recorder {
    /// History then live events of payload type `T` (the type the recorder
    /// was started with); see [`EventHistory::subscribe_with_history`] and
    /// the [module docs](self) for the boundary.
    ///
    /// # Errors
    ///
    /// [`Error::WrongPayloadType`] if the recorder records another type;
    /// [`Error::Subscribe`] for a bad pattern; errors reading the journal.
    pub fn subscribe_with_history<T>(
        &self,
        pattern: &str,
        from: HistoryStart,
    ) -> Result<HistorySubscription<T>>
    where
        T: Event + DeserializeOwned,
    {
        EventHistory::<T>::subscribe_with_history(self, pattern, from)
    }

    /// [`Recorder::subscribe_with_history`] with a filter and the live
    /// ring's options.
    ///
    /// # Errors
    ///
    /// As [`Recorder::subscribe_with_history`].
    pub fn subscribe_with_history_opts<T>(
        &self,
        filter: Filter,
        from: HistoryStart,
        options: SubscribeOptions,
    ) -> Result<HistorySubscription<T>>
    where
        T: Event + DeserializeOwned,
    {
        EventHistory::<T>::subscribe_with_history_opts(self, filter, from, options)
    }
}

impl<T: Event + DeserializeOwned> EventHistory<T> for Recorder {
    fn subscribe_with_history_opts(
        &self,
        filter: Filter,
        from: HistoryStart,
        options: SubscribeOptions,
    ) -> Result<HistorySubscription<T>> {
        let live = self
            .live()
            .downcast_ref::<Live<T>>()
            .ok_or(Error::WrongPayloadType {
                asked: std::any::type_name::<T>(),
            })?;
        let (sub, boundary) = live.subscribe(filter.clone(), options)?;
        HistorySubscription::from_disk(self.shared(), filter, from, sub, boundary)
    }
}
