//! Replay: publish recorded envelopes into a bus again, in recorded order,
//! filtered, paced, and marked.
//!
//! A [`Replay`] reads `(recorded_seq, envelope)` pairs from any source (a
//! [`SessionReader`](crate::SessionReader), a journal reader through a small
//! adapter, a `Vec` in a test), keeps those that pass its filters, waits
//! between them as its [`Pace`] says, and publishes each on its recorded
//! topic into a [`ReplayTarget`]: a `Bus<Envelope<T>>` or a `Publisher`.
//!
//! A journal reader, which yields untyped records, becomes a source with
//! one `map`: `reader.map(|r| r.and_then(|rec| Ok((rec.seq(), rec.envelope::<T>()?))))`.
//! A [`SessionReader`](crate::SessionReader) is one as it is, with each
//! envelope's line position as its seq.
//!
//! # Marks and dry runs
//!
//! Every envelope a replay publishes carries a
//! [`ReplayMark`] `{ dry_run, recorded_seq }` (set with
//! [`Envelope::with_replay_mark`]), in a real replay too, so handlers and
//! recorders can tell a replayed event from a live one. In a dry run
//! ([`Replay::dry_run`]) handlers must not cause outbound effects: an
//! `evbus-dispatch` handler registered with `HandlerOptions::skip_dry_run`
//! is not called for such events at all, and the dispatcher counts replayed
//! events apart from live ones, so its counters (and the metrics built from
//! them) are not bumped twice for one event.
//!
//! # Pacing
//!
//! [`Pace::Max`] publishes as fast as the target takes the events.
//! [`Pace::AsRecorded`] and [`Pace::Scaled`] keep the recorded spacing: the
//! k-th published envelope goes out `(time_k - time_0) / factor` after the
//! first one (`time` being the envelope's recorded [`Timestamp`]); the
//! schedule is anchored to the start, so delays do not accumulate. Filtered
//! envelopes take no time. An envelope recorded earlier than the previous
//! one goes out at once. Time is read from a [`ReplayClock`]
//! ([`SystemReplayClock`] by default), so tests can check the schedule
//! without sleeping.
//!
//! # Stopping
//!
//! A replay ends when its source ends ([`ReplayEnd::Exhausted`]), or when
//! the target is closed: a publish refused with `Closed`, or a shutdown seen
//! while it waits between events ([`ReplayEnd::TargetClosed`]). Long waits
//! are cut into slices of at most [`Replay::wait_slice`] to check for that.
//!
//! # Examples
//!
//! ```
//! # #![cfg_attr(miri, allow(unused))]
//! use std::convert::Infallible;
//! use evbus::{Bus, Envelope, Event, EventKind};
//! use evbus::journal::{Pace, Replay};
//!
//! #[derive(Debug, Clone, Copy, PartialEq, Eq)]
//! enum Kind { Placed }
//! impl EventKind for Kind {
//!     const ALL: &'static [Self] = &[Kind::Placed];
//!     fn topic(self) -> &'static str { "orders.placed" }
//!     fn index(self) -> usize { 0 }
//! }
//! #[derive(Debug, Clone, PartialEq)]
//! struct Placed(u64);
//! impl Event for Placed {
//!     type Kind = Kind;
//!     fn kind(&self) -> Kind { Kind::Placed }
//! }
//!
//! # #[cfg(not(miri))] { // Miri's isolation has no wall clock.
//! let recorded: Vec<Result<_, Infallible>> =
//!     (0..3).map(|i| Ok((i, Envelope::new(Placed(i))))).collect();
//! let bus = Bus::<Envelope<Placed>>::new();
//! let mut sub = bus.subscribe("orders.>")?;
//! let report = Replay::new(recorded)
//!     .pace(Pace::Max)
//!     .dry_run(true)
//!     .run(&bus)?;
//! assert_eq!(report.published, 3);
//! let first = sub.try_recv()?;
//! assert_eq!(first.payload(), &Placed(0));
//! assert!(first.replay().unwrap().dry_run);
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::{
    fmt,
    time::{Duration, Instant},
};

use evbus_core::{
    Bus, DeliveryMode, Envelope, EventId, PublishError, PublishReport, Publisher, ReplayMark,
    Timestamp, TopicError, topic::Pattern,
};

/// How fast a replay publishes.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Pace {
    /// As fast as the target takes the events (the default).
    #[default]
    Max,
    /// With the recorded spacing between events.
    AsRecorded,
    /// With the recorded spacing divided by the factor: `2.0` replays twice
    /// as fast, `0.5` at half speed. The factor must be finite and above
    /// zero ([`ReplayError::InvalidPace`] otherwise).
    Scaled(f64),
}

/// Where a replay reads the time and waits: monotonic time since any
/// fixed origin, and a sleep.
///
/// Implement it in tests to check a pacing schedule without sleeping: a
/// fake whose `sleep` records the duration and advances its `now`.
pub trait ReplayClock {
    /// The time since this clock's origin; never goes back.
    fn now(&self) -> Duration;
    /// Waits `duration` (at least roughly).
    fn sleep(&self, duration: Duration);
}

/// The real clock: [`Instant`] and [`std::thread::sleep`].
#[derive(Debug, Clone, Copy)]
pub struct SystemReplayClock {
    origin: Instant,
}

impl Default for SystemReplayClock {
    fn default() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl ReplayClock for SystemReplayClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

impl<C: ReplayClock + ?Sized> ReplayClock for &C {
    fn now(&self) -> Duration {
        (**self).now()
    }

    fn sleep(&self, duration: Duration) {
        (**self).sleep(duration);
    }
}

/// Where a replay publishes: a bus of envelopes, or a publisher of one.
///
/// Each envelope goes out on its recorded topic ([`Envelope::topic`]), not
/// on its payload kind's topic.
pub trait ReplayTarget<T> {
    /// Publishes `envelope` on its own topic.
    ///
    /// # Errors
    ///
    /// The publish error, with the envelope.
    fn publish_envelope(
        &mut self,
        envelope: Envelope<T>,
    ) -> Result<PublishReport, PublishError<Envelope<T>>>;

    /// Whether the target is known to be closed (checked while a replay
    /// waits between events). `false` when unknown.
    fn is_closed(&self) -> bool {
        false
    }
}

impl<T: Clone + Send + 'static> ReplayTarget<T> for Bus<Envelope<T>> {
    fn publish_envelope(
        &mut self,
        envelope: Envelope<T>,
    ) -> Result<PublishReport, PublishError<Envelope<T>>> {
        // `publish_to` borrows the topic while it takes the envelope.
        let topic = envelope.topic().to_owned();
        Bus::publish_to(self, &topic, envelope)
    }

    fn is_closed(&self) -> bool {
        self.is_shut_down()
    }
}

impl<T: Clone + Send + 'static> ReplayTarget<T> for &Bus<Envelope<T>> {
    fn publish_envelope(
        &mut self,
        envelope: Envelope<T>,
    ) -> Result<PublishReport, PublishError<Envelope<T>>> {
        let topic = envelope.topic().to_owned();
        (**self).publish_to(&topic, envelope)
    }

    fn is_closed(&self) -> bool {
        self.is_shut_down()
    }
}

impl<T: Clone + Send + 'static, M: DeliveryMode> ReplayTarget<T> for Publisher<Envelope<T>, M> {
    fn publish_envelope(
        &mut self,
        envelope: Envelope<T>,
    ) -> Result<PublishReport, PublishError<Envelope<T>>> {
        let topic = envelope.topic().to_owned();
        self.publish_to(&topic, envelope)
    }
}

impl<T, P: ReplayTarget<T> + ?Sized> ReplayTarget<T> for &mut P {
    fn publish_envelope(
        &mut self,
        envelope: Envelope<T>,
    ) -> Result<PublishReport, PublishError<Envelope<T>>> {
        (**self).publish_envelope(envelope)
    }

    fn is_closed(&self) -> bool {
        (**self).is_closed()
    }
}

/// How many envelopes each filter kept out of a replay. An envelope is
/// counted by the first filter it fails, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct FilteredBy {
    /// By the topic patterns.
    pub pattern: u64,
    /// By the time range.
    pub time: u64,
    /// By the correlation id.
    pub correlation: u64,
}

/// Why a replay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayEnd {
    /// The source had no more records.
    Exhausted,
    /// The target was closed (a publish returned `Closed`, or a shutdown
    /// was seen while waiting); the rest of the source was not read.
    TargetClosed,
}

/// What a replay did.
///
/// `read = published + skipped + failed + source_errors` (in a report that
/// [`Replay::run`] returned as `Ok`), and `skipped` is the sum of
/// [`filtered_by`](ReplayReport::filtered_by).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplayReport {
    /// Records taken from the source (errors included).
    pub read: u64,
    /// Envelopes the target took (`Ok` publishes, whether or not any
    /// subscription matched).
    pub published: u64,
    /// Of `published`: publishes that matched no subscription.
    pub no_subscribers: u64,
    /// Of `published`: ring deliveries the full rings dropped (summed over
    /// the publishes' reports).
    pub dropped: u64,
    /// Envelopes the filters kept out.
    pub skipped: u64,
    /// Per filter.
    pub filtered_by: FilteredBy,
    /// Envelopes not published: the target refused them (closed, or a
    /// topic it rejects), or closed while the replay waited for their time.
    pub failed: u64,
    /// Source errors skipped (with [`Replay::skip_source_errors`]).
    pub source_errors: u64,
    /// The recorded seq of the first and last envelope published.
    pub first_seq: Option<u64>,
    /// See `first_seq`.
    pub last_seq: Option<u64>,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Why it ended.
    pub end: ReplayEnd,
}

impl ReplayReport {
    fn new(dry_run: bool) -> Self {
        Self {
            read: 0,
            published: 0,
            no_subscribers: 0,
            dropped: 0,
            skipped: 0,
            filtered_by: FilteredBy::default(),
            failed: 0,
            source_errors: 0,
            first_seq: None,
            last_seq: None,
            dry_run,
            end: ReplayEnd::Exhausted,
        }
    }
}

/// Why a replay could not run, or stopped on a source error.
#[non_exhaustive]
pub enum ReplayError<E> {
    /// [`Pace::Scaled`] with a factor that is not finite and above zero.
    InvalidPace {
        /// The factor.
        factor: f64,
    },
    /// A time range that ends before it starts.
    InvalidTimeRange {
        /// The start (inclusive).
        from: Timestamp,
        /// The end (exclusive).
        until: Timestamp,
    },
    /// The source returned an error (and errors are not skipped): the
    /// replay stopped there.
    Source {
        /// The source's error.
        error: E,
        /// What the replay did before it.
        report: ReplayReport,
    },
}

impl<E: fmt::Debug> fmt::Debug for ReplayError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidPace { factor } => f
                .debug_struct("InvalidPace")
                .field("factor", factor)
                .finish(),
            Self::InvalidTimeRange { from, until } => f
                .debug_struct("InvalidTimeRange")
                .field("from", from)
                .field("until", until)
                .finish(),
            Self::Source { error, report } => f
                .debug_struct("Source")
                .field("error", error)
                .field("report", report)
                .finish(),
        }
    }
}

impl<E: fmt::Display> fmt::Display for ReplayError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidPace { factor } => write!(
                f,
                "invalid replay pace factor {factor}: it must be finite and above zero"
            ),
            Self::InvalidTimeRange { from, until } => write!(
                f,
                "invalid replay time range: it ends ({} ns) before it starts ({} ns)",
                until.as_nanos(),
                from.as_nanos()
            ),
            Self::Source { error, report } => write!(
                f,
                "replay stopped on a source error after {} records: {error}",
                report.read
            ),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for ReplayError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Source { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// The default longest single wait of a paced replay before it checks
/// whether the target closed.
pub const DEFAULT_WAIT_SLICE: Duration = Duration::from_millis(100);

/// A replay: a source, filters, a pace, a clock and a dry-run flag. See the
/// [module docs](self).
pub struct Replay<I, C = SystemReplayClock> {
    source: I,
    patterns: Vec<Pattern>,
    from: Option<Timestamp>,
    until: Option<Timestamp>,
    correlation: Option<EventId>,
    pace: Pace,
    clock: C,
    dry_run: bool,
    skip_source_errors: bool,
    wait_slice: Duration,
}

impl<I, C> fmt::Debug for Replay<I, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replay")
            .field("patterns", &self.patterns)
            .field("from", &self.from)
            .field("until", &self.until)
            .field("correlation", &self.correlation)
            .field("pace", &self.pace)
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

impl<I: Iterator> Replay<I> {
    /// A replay of `source`: every record, as fast as possible
    /// ([`Pace::Max`]), not a dry run, on the system clock.
    ///
    /// `source` yields `Result<(recorded_seq, Envelope<T>), E>` in recorded
    /// order.
    pub fn new(source: impl IntoIterator<IntoIter = I>) -> Self {
        Self {
            source: source.into_iter(),
            patterns: Vec::new(),
            from: None,
            until: None,
            correlation: None,
            pace: Pace::Max,
            clock: SystemReplayClock::default(),
            dry_run: false,
            skip_source_errors: false,
            wait_slice: DEFAULT_WAIT_SLICE,
        }
    }
}

impl<I, C> Replay<I, C> {
    /// Keeps only envelopes whose topic matches `pattern` (the bus's
    /// grammar and matcher). Several patterns: an envelope passes if any
    /// matches.
    ///
    /// # Errors
    ///
    /// The [`TopicError`] of an invalid pattern.
    pub fn pattern(self, pattern: &str) -> Result<Self, TopicError> {
        Ok(self.matching(Pattern::parse(pattern)?))
    }

    /// Keeps only envelopes whose topic matches `pattern` (see
    /// [`pattern`](Replay::pattern)).
    #[must_use]
    pub fn matching(mut self, pattern: Pattern) -> Self {
        self.patterns.push(pattern);
        self
    }

    /// Keeps only envelopes recorded at or after `from`.
    #[must_use]
    pub fn from_time(mut self, from: Timestamp) -> Self {
        self.from = Some(from);
        self
    }

    /// Keeps only envelopes recorded before `until`.
    #[must_use]
    pub fn until_time(mut self, until: Timestamp) -> Self {
        self.until = Some(until);
        self
    }

    /// Keeps only envelopes recorded in `from..until`.
    #[must_use]
    pub fn between(self, from: Timestamp, until: Timestamp) -> Self {
        self.from_time(from).until_time(until)
    }

    /// Keeps only the envelopes of one request: those with this
    /// correlation id.
    #[must_use]
    pub fn correlation_id(mut self, id: EventId) -> Self {
        self.correlation = Some(id);
        self
    }

    /// Sets the pace.
    #[must_use]
    pub fn pace(mut self, pace: Pace) -> Self {
        self.pace = pace;
        self
    }

    /// Marks every published envelope as a dry run (`true`) or a real
    /// replay (`false`, the default). Both set a [`ReplayMark`].
    #[must_use]
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Counts source errors in [`ReplayReport::source_errors`] and goes on,
    /// instead of stopping at the first. The source must end by itself.
    #[must_use]
    pub fn skip_source_errors(mut self, skip: bool) -> Self {
        self.skip_source_errors = skip;
        self
    }

    /// Sets the longest single wait before the replay checks whether the
    /// target closed ([`DEFAULT_WAIT_SLICE`] by default; at least 1 µs).
    #[must_use]
    pub fn wait_slice(mut self, slice: Duration) -> Self {
        self.wait_slice = slice.max(Duration::from_micros(1));
        self
    }

    /// Uses `clock` to read the time and wait.
    pub fn clock<C2: ReplayClock>(self, clock: C2) -> Replay<I, C2> {
        Replay {
            source: self.source,
            patterns: self.patterns,
            from: self.from,
            until: self.until,
            correlation: self.correlation,
            pace: self.pace,
            clock,
            dry_run: self.dry_run,
            skip_source_errors: self.skip_source_errors,
            wait_slice: self.wait_slice,
        }
    }

    /// Which filter, if any, keeps `envelope` out.
    fn filter<T>(&self, envelope: &Envelope<T>, by: &mut FilteredBy) -> bool {
        if !self.patterns.is_empty() && !self.patterns.iter().any(|p| p.matches(envelope.topic())) {
            by.pattern += 1;
            return false;
        }
        let time = envelope.time();
        if self.from.is_some_and(|from| time < from)
            || self.until.is_some_and(|until| time >= until)
        {
            by.time += 1;
            return false;
        }
        if self
            .correlation
            .is_some_and(|id| envelope.correlation_id() != id)
        {
            by.correlation += 1;
            return false;
        }
        true
    }
}

/// The pacing schedule: when, after the replay's first publish, an
/// envelope recorded at `time` goes out.
#[derive(Debug, Clone, Copy)]
enum Schedule {
    Max,
    /// Divide recorded offsets by this factor (1.0 exactly: integer math).
    Paced(f64),
}

impl Schedule {
    fn offset(self, first: Timestamp, time: Timestamp) -> Option<Duration> {
        let Schedule::Paced(factor) = self else {
            return None;
        };
        let gap = time.saturating_duration_since(first);
        if factor == 1.0 {
            return Some(gap);
        }
        // `as u64` saturates; the factor is finite and above zero.
        let nanos = (gap.as_nanos() as f64 / factor).round() as u64;
        Some(Duration::from_nanos(nanos))
    }
}

impl<I, C, T, E> Replay<I, C>
where
    I: Iterator<Item = Result<(u64, Envelope<T>), E>>,
    C: ReplayClock,
{
    /// Runs the replay into `target` and reports what it did.
    ///
    /// Reads the source in order; each envelope that passes the filters
    /// waits for its time (by the pace), gets a [`ReplayMark`] and is
    /// published on its recorded topic. Stops when the source ends or the
    /// target closes.
    ///
    /// # Errors
    ///
    /// [`ReplayError::InvalidPace`] or [`ReplayError::InvalidTimeRange`]
    /// before anything is read; [`ReplayError::Source`] with the report so
    /// far if the source fails (unless
    /// [`skip_source_errors`](Replay::skip_source_errors)).
    ///
    /// # Note
    ///
    /// A publish that returned `Ok` says nothing about handlers: a ring
    /// may drop the event (counted in [`ReplayReport::dropped`]), or no
    /// subscription may match ([`ReplayReport::no_subscribers`]).
    pub fn run(mut self, mut target: impl ReplayTarget<T>) -> Result<ReplayReport, ReplayError<E>> {
        let schedule = match self.pace {
            Pace::Max => Schedule::Max,
            Pace::AsRecorded => Schedule::Paced(1.0),
            Pace::Scaled(factor) if factor.is_finite() && factor > 0.0 => Schedule::Paced(factor),
            Pace::Scaled(factor) => return Err(ReplayError::InvalidPace { factor }),
        };
        match (self.from, self.until) {
            (Some(from), Some(until)) if until < from => {
                return Err(ReplayError::InvalidTimeRange { from, until });
            }
            _ => {}
        }
        let mut report = ReplayReport::new(self.dry_run);
        // The first published envelope's recorded time and the clock's
        // reading when it went out.
        let mut anchor: Option<(Timestamp, Duration)> = None;
        while let Some(item) = self.source.next() {
            report.read += 1;
            let (seq, envelope) = match item {
                Ok(record) => record,
                Err(_) if self.skip_source_errors => {
                    report.source_errors += 1;
                    continue;
                }
                Err(error) => return Err(ReplayError::Source { error, report }),
            };
            if !self.filter(&envelope, &mut report.filtered_by) {
                report.skipped += 1;
                continue;
            }
            match anchor {
                None => {
                    if !matches!(schedule, Schedule::Max) {
                        anchor = Some((envelope.time(), self.clock.now()));
                    }
                }
                Some((first, started)) => {
                    let due = schedule
                        .offset(first, envelope.time())
                        .map(|offset| started.saturating_add(offset));
                    if due.is_some_and(|due| !self.wait_until(due, &target)) {
                        // Read but not published: the target closed.
                        report.failed += 1;
                        report.end = ReplayEnd::TargetClosed;
                        return Ok(report);
                    }
                }
            }
            let envelope = envelope.with_replay_mark(Some(ReplayMark {
                dry_run: self.dry_run,
                recorded_seq: seq,
            }));
            match target.publish_envelope(envelope) {
                Ok(published) => {
                    report.published += 1;
                    if published.matched == 0 {
                        report.no_subscribers += 1;
                    }
                    report.dropped += u64::from(published.dropped);
                    report.first_seq.get_or_insert(seq);
                    report.last_seq = Some(seq);
                }
                Err(PublishError::Closed(_)) => {
                    report.failed += 1;
                    report.end = ReplayEnd::TargetClosed;
                    return Ok(report);
                }
                Err(_) => report.failed += 1,
            }
        }
        Ok(report)
    }

    /// Waits until the clock reads `deadline`, in slices, checking the
    /// target between them; `false` if it closed. Reads the clock once: the
    /// slices add up to the wait, so a clock that does not advance cannot
    /// make this loop forever.
    fn wait_until(&self, deadline: Duration, target: &impl ReplayTarget<T>) -> bool {
        let mut left = deadline.saturating_sub(self.clock.now());
        while !left.is_zero() {
            if target.is_closed() {
                return false;
            }
            let slice = left.min(self.wait_slice);
            self.clock.sleep(slice);
            left -= slice;
        }
        true
    }
}
