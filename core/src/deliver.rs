//! Delivery: what one publish does with its event once it has a registry,
//! for many producers (a CAS per ring) and for the single producer of a
//! [`Bus::single_producer`](crate::Bus::single_producer) bus (plain stores;
//! see `ring/solo.rs` for the protocol).
//!
//! Every publish method of [`Bus`](crate::Bus) and
//! [`Publisher`](crate::Publisher) is [`publish`]: refuse, resolve the
//! route, deliver, count.

use std::cell::Cell;

use crate::{
    error::PublishError,
    registry::Registry,
    ring::{Epoch, Push, Ring, SoloGuard},
    stats::PublishReport,
    sync::Arc,
    topic::validate_topic,
    unwind::FirstPanic,
};

impl PublishReport {
    /// Adds one ring's outcome.
    #[inline]
    pub(crate) fn record(&mut self, push: Push) {
        match push {
            Push::Accepted => {
                self.matched += 1;
                self.accepted += 1;
            }
            Push::Dropped => {
                self.matched += 1;
                self.dropped += 1;
            }
            // A ring closed by unsubscribe or shutdown after this publish
            // loaded the registry: it no longer counts as a subscriber.
            Push::Closed => {}
        }
    }
}

/// Where a publish goes.
#[derive(Clone, Copy)]
pub(crate) enum To<'a> {
    /// An interned topic (a kind's topic, or a [`Topic`](crate::Topic)).
    Id(u32),
    /// A name, interned or not (`publish_to`).
    Name(&'a str),
}

/// Proof that its holder is the one producer of a single-producer bus, with
/// no other publish of it in progress, for as long as it lives.
#[derive(Clone, Copy)]
pub(crate) struct SoloProducer<'a> {
    epoch: &'a Epoch,
}

impl<'a> SoloProducer<'a> {
    /// # Safety
    ///
    /// - The caller is the one producer of every ring of the bus whose
    ///   epoch is `epoch` (a single-producer bus, whose other publishes are
    ///   refused), and makes no other publish on it while the value lives.
    #[inline(always)]
    pub(crate) unsafe fn new(epoch: &'a Epoch) -> Self {
        Self { epoch }
    }
}

/// One publish on a loaded `registry`: refuse, resolve `to`, deliver
/// (as `solo`, the single producer, if given), then `record` the report.
///
/// A multi-producer publish is refused on a closed or a single-producer
/// bus, the single producer's only on a closed one: one test either way.
#[inline(always)]
pub(crate) fn publish<E: Clone>(
    registry: &Registry<E>,
    solo: Option<SoloProducer<'_>>,
    to: To<'_>,
    event: E,
    record: impl FnOnce(&PublishReport),
) -> Result<PublishReport, PublishError<E>> {
    let refused = match solo {
        Some(_) => registry.closed,
        None => registry.refuses(),
    };
    if refused {
        return Err(registry.refusal(event));
    }
    // A panic in user code (`E::clone`, a task waker) unwinds out of the
    // delivery: the publish is still counted (as one that had subscribers:
    // only a ring runs user code), and `Reach` counts the rings it missed.
    let mut record = CountOnUnwind(Some(record));
    let send = |route: &[Arc<Ring<E>>], event: E| match solo {
        // SAFETY: a `SoloProducer` is the caller's proof that it is the one
        // producer and that no other publish of it is in progress.
        Some(solo) => unsafe { deliver_solo(solo.epoch, route, event) },
        None => deliver(route, event),
    };
    let report = match to {
        To::Id(id) => send(registry.route(id), event),
        To::Name(topic) => publish_to(registry, topic, event, send)?,
    };
    if let Some(record) = record.0.take() {
        record(&report);
    }
    Ok(report)
}

/// Records a publish that a panic cut short. Dropped still armed without a
/// panic, it is a refused publish (`InvalidTopic`), which counts nothing.
struct CountOnUnwind<F: FnOnce(&PublishReport)>(Option<F>);

impl<F: FnOnce(&PublishReport)> Drop for CountOnUnwind<F> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        if let Some(record) = self.0.take() {
            record(&PublishReport {
                matched: 1,
                ..PublishReport::default()
            });
        }
    }
}

/// How far a delivery got along its route, so that a panic in user code
/// (`E::clone`, a task waker, an evicted event's `Drop`) leaves the counters
/// balanced: on unwind, every ring the event did not reach counts a drop, as
/// a full ring would, and `delivered + dropped` still covers every ring the
/// publish matched.
struct Reach<'a, E> {
    route: &'a [Arc<Ring<E>>],
    /// The ring being served; `route.len()` once all were.
    at: Cell<usize>,
    /// Whether the value for the ring at `at` was made: a panic after that
    /// (a waker, an evicted event's `Drop`) came after the ring took it.
    made: Cell<bool>,
}

impl<'a, E> Reach<'a, E> {
    #[inline(always)]
    fn new(route: &'a [Arc<Ring<E>>]) -> Self {
        Self {
            route,
            at: Cell::new(0),
            made: Cell::new(false),
        }
    }

    /// Starts serving the ring at `at`.
    #[inline(always)]
    fn serve(&self, at: usize) {
        self.at.set(at);
        self.made.set(false);
    }

    /// The value for the current ring exists.
    #[inline(always)]
    fn made<T>(&self, value: T) -> T {
        self.made.set(true);
        value
    }

    /// Every ring was served.
    #[inline(always)]
    fn done(&self) {
        self.at.set(self.route.len());
    }

    /// Whether a delivery was cut short.
    #[inline(always)]
    fn cut_short(&self) -> bool {
        self.at.get() < self.route.len()
    }
}

impl<E> Drop for Reach<'_, E> {
    #[inline]
    fn drop(&mut self) {
        if !self.cut_short() {
            return;
        }
        let at = self.at.get();
        let first = if self.made.get() { at + 1 } else { at };
        for ring in &self.route[first..] {
            ring.count_unreached();
        }
    }
}

/// Delivers `event` to each ring of `route`: a clone to every ring but the
/// last, which takes the original.
#[inline]
fn deliver<E: Clone>(route: &[Arc<Ring<E>>], event: E) -> PublishReport {
    let mut report = PublishReport::default();
    let Some((last, rest)) = route.split_last() else {
        return report;
    };
    let reach = Reach::new(route);
    for (at, ring) in rest.iter().enumerate() {
        reach.serve(at);
        report.record(ring.push_with(|| reach.made(event.clone())));
    }
    reach.serve(rest.len());
    let reached = &reach;
    report.record(last.push_with(move || reached.made(event)));
    reach.done();
    report
}

/// Delivers `event` to each ring of `route` as the single producer.
///
/// # Safety
///
/// - The caller is the one producer of every ring of its bus (a
///   single-producer bus, whose other publishes are refused), and no other
///   publish of it is in progress.
#[inline]
unsafe fn deliver_solo<E: Clone>(epoch: &Epoch, route: &[Arc<Ring<E>>], event: E) -> PublishReport {
    let mut report = PublishReport::default();
    let Some((last, rest)) = route.split_last() else {
        return report;
    };
    let guard = SoloGuard::begin(epoch);
    // Declared after `guard`, so dropped before it: a cut-short publish is
    // settled while its epoch is still odd, as a whole one is.
    let reach = SoloReach {
        reach: Reach::new(route),
        guard: &guard,
    };
    for (at, ring) in rest.iter().enumerate() {
        reach.reach.serve(at);
        // SAFETY: the caller's contract, and `guard` is held.
        report.record(unsafe { ring.push_solo(|| reach.reach.made(event.clone())) });
    }
    reach.reach.serve(rest.len());
    let reached = &reach.reach;
    // SAFETY: as above.
    report.record(unsafe { last.push_solo(move || reached.made(event)) });
    reach.reach.done();
    guard.pushed();
    // Every ring, not only those that accepted: a park bit on a full or
    // closed ring costs one spurious wake, and tracking who accepted costs
    // more than the loads.
    for ring in route {
        ring.settle_solo();
    }
    drop(reach);
    drop(guard);
    report
}

/// [`Reach`] for the single producer: a publish cut short by a panicking
/// `E::clone` still runs the wake-up step (S3) for every ring, or a receiver
/// parked on a ring served before the panic would sleep with an event
/// buffered.
struct SoloReach<'a, 'g, E> {
    reach: Reach<'a, E>,
    guard: &'g SoloGuard<'g>,
}

impl<E> Drop for SoloReach<'_, '_, E> {
    #[inline]
    fn drop(&mut self) {
        if !self.reach.cut_short() {
            return;
        }
        self.guard.pushed();
        // This thread is unwinding: a second panic (a waker's) would abort,
        // so each wake runs contained, and its panic is dropped; the first
        // one is already on its way to the caller.
        let mut panic = FirstPanic::new();
        for ring in self.reach.route {
            panic.run(|| ring.settle_solo());
        }
        panic.resume();
        // `self.reach` counts the rings the event missed when it drops.
    }
}

/// A publish on the name `topic`, delivering with `deliver`: the route of an
/// interned topic, or one resolved through the pattern index.
#[inline]
fn publish_to<E: Clone>(
    registry: &Registry<E>,
    topic: &str,
    event: E,
    deliver: impl FnOnce(&[Arc<Ring<E>>], E) -> PublishReport,
) -> Result<PublishReport, PublishError<E>> {
    if let Some(id) = registry.topic_id(topic) {
        return Ok(deliver(registry.route(id), event));
    }
    if let Err(err) = validate_topic(topic) {
        return Err(PublishError::InvalidTopic(event, err));
    }
    let mut route: smallvec::SmallVec<[Arc<Ring<E>>; 8]> = smallvec::SmallVec::new();
    registry.resolve(topic, |ring| route.push(Arc::clone(ring)));
    Ok(deliver(&route, event))
}
