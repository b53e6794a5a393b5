//! Idempotency: a record whose idempotency key was already appended within
//! a window (of records and/or time) is not appended again.
//!
//! The window is the journal's, not the wall clock's: "time" is the
//! envelopes' time, measured back from the newest record time the journal
//! has seen, so a replayed or injected history behaves the same every run.
//! The keys in the window are kept in memory and rebuilt from the tail of
//! the journal when it is opened, so the window survives a reopen.

use std::{
    collections::{HashMap, VecDeque},
    ops::Range,
    time::Duration,
};

#[cfg(doc)]
use crate::{Journal, JournalOptions};
use crate::{
    error::Result,
    index::{self, IoCount},
    reader::{Reader, Start},
    segment::list_segments,
    shared::Shared,
};

/// How long an idempotency key is remembered: by record count, by time, or
/// both (a key is remembered while it is inside every bound that is set).
/// Without a bound, deduplication is off (the default).
///
/// Set it with [`JournalOptions::idempotency`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use evbus_journal::IdempotencyWindow;
///
/// // Keys seen in the last 100 000 records and the last 10 minutes.
/// let w = IdempotencyWindow::new()
///     .records(100_000)
///     .time(Duration::from_secs(600));
/// assert!(w.is_enabled());
/// assert!(!IdempotencyWindow::new().is_enabled());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IdempotencyWindow {
    records: Option<u64>,
    time: Option<Duration>,
}

impl IdempotencyWindow {
    /// No bound: deduplication off.
    pub const fn new() -> Self {
        IdempotencyWindow {
            records: None,
            time: None,
        }
    }
    /// A key is a duplicate if the record that carried it is among the last
    /// `n` records appended before (`n ≥ 1`).
    #[must_use]
    pub const fn records(mut self, n: u64) -> Self {
        self.records = Some(n);
        self
    }
    /// A key is a duplicate if the record that carried it has a time no
    /// more than `window` before the newest record time seen.
    #[must_use]
    pub const fn time(mut self, window: Duration) -> Self {
        self.time = Some(window);
        self
    }
    /// The record bound.
    pub const fn get_records(&self) -> Option<u64> {
        self.records
    }
    /// The time bound.
    pub const fn get_time(&self) -> Option<Duration> {
        self.time
    }
    /// Whether a bound is set (deduplication on).
    pub const fn is_enabled(&self) -> bool {
        self.records.is_some() || self.time.is_some()
    }

    fn time_nanos(&self) -> Option<u64> {
        self.time
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }
}

/// What an append did with one record: see [`Journal::append_outcome`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Appended {
    /// Appended with this sequence number.
    New(u64),
    /// Not appended: its idempotency key was appended within the window,
    /// by the record with this sequence number.
    Duplicate {
        /// The record that carried the key first.
        original_seq: u64,
    },
}

impl Appended {
    /// The new record's sequence number, or the original's for a duplicate.
    pub const fn seq(&self) -> u64 {
        match *self {
            Appended::New(seq) | Appended::Duplicate { original_seq: seq } => seq,
        }
    }
    /// Whether the record was a duplicate.
    pub const fn is_duplicate(&self) -> bool {
        matches!(self, Appended::Duplicate { .. })
    }
}

/// What [`Journal::append_batch_outcome`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct BatchAppend {
    /// The sequence numbers of the records appended (gapless; duplicates
    /// take none).
    pub seqs: Range<u64>,
    /// The duplicates that were not appended, in batch order.
    pub duplicates: Vec<Duplicate>,
}

/// A record of a batch that was not appended because it was a duplicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Duplicate {
    /// Its index in the batch.
    pub index: usize,
    /// The record that carried its idempotency key first.
    pub original_seq: u64,
}

/// The keys in the window.
#[derive(Debug, Default)]
pub(crate) struct Window {
    config: IdempotencyWindow,
    /// Key → (seq, time ns) of the record that carried it.
    seen: HashMap<Box<str>, (u64, u64)>,
    /// The entries in sequence order, for eviction.
    order: VecDeque<(u64, u64, Box<str>)>,
    /// The newest record time seen (ns): the window's "now".
    newest: u64,
    /// Duplicates found since the journal was opened (counted by the
    /// writer once their batch is done).
    pub(crate) duplicates: u64,
}

impl Window {
    pub(crate) fn new(config: IdempotencyWindow) -> Self {
        Window {
            config,
            ..Window::default()
        }
    }

    pub(crate) fn is_enabled(&self) -> bool {
        self.config.is_enabled()
    }

    /// Whether an entry (`seq`, `time`) is inside the window for a record
    /// with sequence number `at`.
    fn inside(&self, seq: u64, time: u64, at: u64) -> bool {
        let by_records = self.config.records.is_none_or(|n| at - seq <= n);
        let by_time = self
            .config
            .time_nanos()
            .is_none_or(|d| time.saturating_add(d) >= self.newest);
        by_records && by_time
    }

    fn evict(&mut self, at: u64) {
        while let Some((seq, time, _)) = self.order.front() {
            if self.inside(*seq, *time, at) {
                break;
            }
            if let Some((seq, _, key)) = self.order.pop_front()
                && self.seen.get(&key).is_some_and(|&(s, _)| s == seq)
            {
                self.seen.remove(&key);
            }
        }
    }

    /// The append path's check of a record with sequence number `seq` (if
    /// appended), time `time` (ns) and `key`: `Some(original)` for a
    /// duplicate; otherwise the key is remembered with `seq` (undone by
    /// [`Window::rollback`] if the record does not land).
    pub(crate) fn check(&mut self, key: Option<&str>, seq: u64, time: u64) -> Option<u64> {
        if !self.is_enabled() {
            return None;
        }
        let key = key?;
        self.newest = self.newest.max(time);
        self.evict(seq);
        if let Some(&(s, t)) = self.seen.get(key)
            && self.inside(s, t, seq)
        {
            return Some(s);
        }
        self.remember(key, seq, time);
        None
    }

    fn remember(&mut self, key: &str, seq: u64, time: u64) {
        self.seen.insert(key.into(), (seq, time));
        self.order.push_back((seq, time, key.into()));
    }

    /// Forgets the keys of records from `next_seq` on (a write that failed).
    pub(crate) fn rollback(&mut self, next_seq: u64) {
        while let Some((seq, _, _)) = self.order.back() {
            if *seq < next_seq {
                break;
            }
            if let Some((seq, _, key)) = self.order.pop_back()
                && self.seen.get(&key).is_some_and(|&(s, _)| s == seq)
            {
                self.seen.remove(&key);
            }
        }
    }

    /// Rebuilds the window from the tail of the journal (on open): reads
    /// the records that may still be inside it.
    pub(crate) fn rebuild(&mut self, shared: &std::sync::Arc<Shared>, next_seq: u64) -> Result<()> {
        if !self.is_enabled() || next_seq == 0 {
            return Ok(());
        }
        let mut from = 0;
        if let Some(n) = self.config.records {
            from = from.max(next_seq.saturating_sub(n.saturating_add(1)));
        }
        if let Some(d) = self.config.time_nanos() {
            from = from.max(time_window_start(shared, d)?);
        }
        let reader = Reader::in_process(std::sync::Arc::clone(shared), Start::Seq(from))?;
        for record in reader {
            let record = record?;
            if record.seq() >= next_seq {
                break;
            }
            let time = record.time().as_nanos();
            self.newest = self.newest.max(time);
            if let Some(key) = record.idempotency_key() {
                self.remember(key, record.seq(), time);
            }
        }
        self.evict(next_seq);
        Ok(())
    }
}

/// The first sequence number of the earliest segment that may hold a record
/// inside a time window of `d` ns: segments are walked back from the newest
/// while their latest time reaches into the window.
fn time_window_start(shared: &Shared, d: u64) -> Result<u64> {
    let segments = list_segments(&shared.dir)?;
    let mut newest = 0u64;
    let mut start = 0u64;
    let mut io = IoCount::default();
    for &seg in segments.iter().rev() {
        let active = shared.index.lock();
        let max = if active.summary().first_seq == seg {
            let s = active.summary();
            (s.count > 0).then_some(s.max_time)
        } else {
            drop(active);
            let loaded = index::load_summary(&shared.dir, seg, &mut io)?;
            let s = loaded.summary();
            (s.count > 0).then_some(s.max_time)
        };
        start = seg;
        let Some(max) = max else { continue };
        newest = newest.max(max);
        if max.saturating_add(d) < newest {
            break;
        }
    }
    Ok(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_window() {
        let mut w = Window::new(IdempotencyWindow::new().records(2));
        assert_eq!(w.check(Some("a"), 0, 0), None);
        assert_eq!(w.check(Some("a"), 1, 0), Some(0));
        assert_eq!(w.check(None, 1, 0), None);
        assert_eq!(w.check(Some("b"), 1, 0), None);
        assert_eq!(w.check(Some("a"), 2, 0), Some(0));
        // Record 0 is 3 records back from 3: outside.
        assert_eq!(w.check(Some("a"), 3, 0), None);
        assert_eq!(w.check(Some("a"), 4, 0), Some(3));
    }

    #[test]
    fn time_window_and_rollback() {
        let mut w = Window::new(IdempotencyWindow::new().time(Duration::from_nanos(10)));
        assert_eq!(w.check(Some("a"), 0, 100), None);
        assert_eq!(w.check(Some("a"), 1, 110), Some(0));
        assert_eq!(w.check(Some("a"), 1, 111), None);
        w.rollback(1);
        // The entry for seq 1 is gone, and seq 0's was evicted.
        assert_eq!(w.check(Some("a"), 1, 111), None);
        assert_eq!(w.check(Some("a"), 2, 50), Some(1));
    }

    #[test]
    fn disabled_remembers_nothing() {
        let mut w = Window::new(IdempotencyWindow::new());
        assert_eq!(w.check(Some("a"), 0, 0), None);
        assert_eq!(w.check(Some("a"), 1, 0), None);
        assert!(w.seen.is_empty());
    }
}
