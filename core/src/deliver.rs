//! Delivery: what one publish does with its event once it has a registry,
//! for many producers (a CAS per ring) and for the single producer of a
//! [`Bus::single_producer`](crate::Bus::single_producer) bus (plain stores;
//! see `ring/solo.rs` for the protocol).
//!
//! Every publish method of [`Bus`](crate::Bus) and
//! [`Publisher`](crate::Publisher) is [`publish`]: refuse, resolve the
//! route, deliver, count.

mod batch;

use self::batch::{BATCH_BYTES, BATCH_MIN_RINGS, Batched, deliver_batch};
use crate::{
    error::PublishError,
    full_route::{FullRoute, refusals},
    registry::Registry,
    ring::{Epoch, Lane, Push, Ring, SoloGuard, Tail},
    shared::Counters,
    stats::PublishReport,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    topic::validate_topic,
    unwind::FirstPanic,
};

/// The outcomes of one publish's pushes, as it goes: the accepted count in
/// the low half of one word and the dropped count in the high half, so the
/// tally takes one register. Counting into the [`PublishReport`] itself kept
/// the counts in the caller's return slot, a load and a store per ring whose
/// chain (each increment waits for the last store) set the pace of a
/// publish to many full rings; two counters of their own were spilled to the
/// stack (`benches/callgrind.sh`, `full4`). Neither half overflows: a
/// report counts in `u32` as before, and a route of more than `u32::MAX`
/// rings would take terabytes (each ring is 512 bytes or more).
#[derive(Clone, Copy, Default)]
struct Tally(u64);

impl Tally {
    const ACCEPTED: u64 = 1;
    const DROPPED: u64 = 1 << 32;

    /// Adds one ring's outcome.
    #[inline(always)]
    fn add(&mut self, push: Push) {
        self.0 += match push {
            Push::Accepted => Self::ACCEPTED,
            Push::Dropped => Self::DROPPED,
            // A ring closed by unsubscribe or shutdown after this publish
            // loaded the registry: it no longer counts as a subscriber.
            Push::Closed => 0,
        };
    }

    /// The report: every ring that accepted or dropped was matched.
    #[inline(always)]
    fn report(self) -> PublishReport {
        #[expect(
            clippy::cast_possible_truncation,
            reason = "each half holds a count of at most u32::MAX"
        )]
        let (accepted, dropped) = (self.0 as u32, (self.0 >> 32) as u32);
        PublishReport {
            matched: accepted + dropped,
            accepted,
            dropped,
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

/// Who makes a publish, which decides how it delivers.
#[derive(Clone, Copy)]
pub(crate) enum Producer<'a> {
    /// One of any number of producers: a CAS per ring.
    Multi,
    /// The one producer of a single-producer bus: plain stores.
    Solo(SoloProducer<'a>),
    /// The holder of a multi-producer bus's lease (`ring/lease.rs`): plain
    /// stores into the rings still leased, while the lease holds.
    Leased(LeaseHolder<'a>),
}

/// What a [`Publisher`](crate::Publisher) keeps of its bus's lease
/// (`ring/lease.rs`): the bus's epoch, which holds the lease, and whether
/// this handle holds it, as far as it knows.
#[derive(Debug)]
pub(crate) struct Holding {
    epoch: Arc<Epoch>,
    /// Set when the handle took the lease; cleared by the first publish
    /// that finds it revoked, so that the publishes after it claim with a
    /// CAS at once. Only the owning handle reads or writes it (`&mut`
    /// there, and an atomic only to keep `Publisher` `Sync`).
    held: AtomicBool,
}

impl Holding {
    /// What a handle of the bus whose epoch is `epoch` keeps; `held` if it
    /// took the lease.
    pub(crate) fn new(epoch: Arc<Epoch>, held: bool) -> Self {
        Self {
            epoch,
            held: AtomicBool::new(held),
        }
    }

    /// Whether this handle still takes the lease to hold.
    #[inline(always)]
    pub(crate) fn held(&self) -> bool {
        // Relaxed: only the owning handle writes it.
        self.held.load(Ordering::Relaxed)
    }

    /// The handle goes: gives the lease back if it holds it.
    pub(crate) fn release(&self) {
        if self.held() {
            self.epoch.lease.give_back();
        }
    }
}

/// Proof that its holder took its bus's lease and has no other publish of
/// that bus in progress.
#[derive(Clone, Copy)]
pub(crate) struct LeaseHolder<'a>(&'a Holding);

impl<'a> LeaseHolder<'a> {
    /// # Safety
    ///
    /// - The caller took the lease that `holding` records
    ///   ([`Holding::held`]) and has not given it back, and makes no other
    ///   publish on that bus while the value lives.
    #[inline(always)]
    pub(crate) unsafe fn new(holding: &'a Holding) -> Self {
        Self(holding)
    }

    /// Starts a publish to `route` with plain stores into its leased rings
    /// (L2), or `None` if the lease was revoked: this handle then claims
    /// with a CAS from now on.
    #[inline]
    fn begin<E>(self, route: &'a [Arc<Ring<E>>]) -> Option<SoloGuard<'a, E>> {
        let guard = SoloGuard::begin_leased(&self.0.epoch, route);
        if guard.is_none() {
            // Relaxed: see `Holding::held`.
            self.0.held.store(false, Ordering::Relaxed);
        }
        guard
    }
}

/// One publish on a loaded `registry`: refuse, resolve `to`, count it in
/// `counters` (as their single `owner`, or shared), deliver (as `producer`
/// says), then count it as unmatched if no ring took part. Counted before
/// the delivery, so that a publish a panic in user code cuts short
/// (`E::clone`, a task waker, the event's `Drop`) still counts;
/// with no route, the unmatched count also comes before the event's `Drop`.
/// The rings a cut-short publish missed count a drop (`Unreached`, and the
/// `Tail` each push carries).
///
/// A multi-producer publish is refused on a closed or a single-producer
/// bus, the single producer's only on a closed one: one test either way.
///
/// `full` is a multi-producer `Publisher`'s memory of a route it found
/// full (`full_route.rs`), told of every publish on an interned topic that
/// dropped.
#[inline(always)]
pub(crate) fn publish<E: Clone>(
    registry: &Registry<E>,
    producer: Producer<'_>,
    to: To<'_>,
    event: E,
    counters: &Counters,
    owner: bool,
    full: Option<&mut FullRoute<E>>,
) -> Result<PublishReport, PublishError<E>> {
    let refused = match producer {
        Producer::Solo(_) => registry.closed,
        Producer::Multi | Producer::Leased(_) => registry.refuses(),
    };
    if refused {
        return Err(registry.refusal(event));
    }
    let send = |route: &[Arc<Ring<E>>], event: E, id: Option<u32>| {
        counters.count_publish(owner);
        if route.is_empty() {
            // Counted before the event's `Drop` (user code) runs, here.
            counters.count_unmatched(owner);
            return PublishReport::default();
        }
        let report = deliver_as(producer, route, event, counters.lane);
        if report.dropped != 0
            && let (Some(full), Some(id)) = (full, id)
        {
            full.saw_full(registry, id, report, counters.lane);
        }
        // Every ring was closed since the route was made.
        if report.matched == 0 {
            counters.count_unmatched(owner);
        }
        report
    };
    let report = match to {
        To::Id(id) => send(registry.route(id), event, Some(id)),
        To::Name(topic) => publish_to(registry, topic, event, send)?,
    };
    Ok(report)
}

/// [`publish`] on interned topic `id`, through a multi-producer
/// `Publisher` that remembers that route full (`full_route.rs`): the rings
/// still full refuse after one look each; the rest, from the first that
/// is not, get the usual delivery.
#[inline(never)]
pub(crate) fn publish_held<E: Clone>(
    registry: &Registry<E>,
    producer: Producer<'_>,
    id: u32,
    event: E,
    counters: &Counters,
    full: &mut FullRoute<E>,
) -> Result<PublishReport, PublishError<E>> {
    if registry.refuses() {
        return Err(registry.refusal(event));
    }
    // Counted before the delivery, as in `publish`; the publisher owns
    // its counters.
    counters.count_publish(true);
    // Before the refusals, which may forget the route.
    let held = full.len();
    let refused = full.refuse_held(counters.lane);
    if refused == held && refused != 0 {
        // No value was made; the event's `Drop` (user code) runs after the
        // counts, as in a push.
        drop(event);
        return Ok(refusals(refused));
    }
    let route = registry.route(id);
    let mut report = deliver_as(producer, &route[refused..], event, counters.lane);
    let before = refusals(refused);
    report.matched += before.matched;
    report.dropped += before.dropped;
    if report.matched == 0 {
        counters.count_unmatched(true);
    }
    Ok(report)
}

/// The rings a publish did not reach, counted as drops if a panicking
/// `E::clone` cuts it short, so that `delivered + dropped` still covers
/// every ring the publish matched (a full ring counts a drop the same way).
/// A push that panics after its ring took the value counts the rest itself
/// (`Ring::push_with`).
///
/// Made around each `E::clone`: the route and the position of the ring it
/// clones for, which with the rest were not reached if the clone panics. It
/// costs nothing on the fast path: forgotten when the clone returns, and
/// removed by the compiler where the clone cannot unwind (`u64`, `Arc<T>`).
struct Unreached<'a, E>(Tail<'a, E>);

impl<E> Unreached<'_, E> {
    /// The clone returned: nothing to count.
    #[inline(always)]
    fn disarm(self) {
        std::mem::forget(self);
    }
}

impl<E> Drop for Unreached<'_, E> {
    #[cold]
    fn drop(&mut self) {
        self.0.count_unreached();
    }
}

/// Delivers `event` to each ring of `route` as `producer` does.
#[inline(always)]
fn deliver_as<E: Clone>(
    producer: Producer<'_>,
    route: &[Arc<Ring<E>>],
    event: E,
    lane: Lane,
) -> PublishReport {
    let leased = match producer {
        // SAFETY: a `SoloProducer` is the caller's proof that it is the one
        // producer and that no other publish of it is in progress.
        Producer::Solo(solo) => return unsafe { deliver_solo(solo.epoch, route, event, lane) },
        Producer::Leased(holder) if route.len() >= LEASED_MIN_RINGS => holder.begin(route),
        // A route of one ring: its CAS costs less than the epoch, barriers
        // and settle of a single-producer publish. The ring is converted
        // (L3) if it is still leased, as its holder may: its own pushes
        // come before.
        Producer::Multi | Producer::Leased(_) => None,
    };
    // The event goes straight into one call or the other, not through a
    // binding of the match (a 64-byte event then took a stack copy whose
    // store forwarding stalled), and `deliver` has one call site, where it
    // inlines as before the lease.
    match leased {
        // SAFETY: the guard saw the lease held (L2), and a `LeaseHolder` is
        // the caller's proof that it holds it with no other publish in
        // progress.
        Some(guard) => unsafe { deliver_guarded::<true, E>(guard, route, event, lane) },
        None => deliver(route, event, lane),
    }
}

/// Delivers `event` to each ring of `route`: a clone to every ring but the
/// last, which takes the original. Refusals count in `lane`. Inlined into
/// `publish`, the hot caller; `publish_held` calls it for the rings of a
/// remembered route from the first one that no longer refuses on.
#[inline]
fn deliver<E: Clone>(route: &[Arc<Ring<E>>], event: E, lane: Lane) -> PublishReport {
    if size_of::<E>() <= BATCH_BYTES && route.len() >= BATCH_MIN_RINGS {
        return deliver_wide(route, event, lane);
    }
    let mut tally = Tally::default();
    deliver_each(route.iter(), event, &mut tally, lane);
    tally.report()
}

/// Delivers `event` to each ring of `rings` on its own, through
/// [`Ring::push_with`]: a clone to every ring but the last, which takes the
/// original.
#[inline(always)]
fn deliver_each<E: Clone>(
    mut rings: std::slice::Iter<'_, Arc<Ring<E>>>,
    event: E,
    tally: &mut Tally,
    lane: Lane,
) {
    // `rings` is the route after `ring`: the rings that a panic in user code
    // at or after `ring` leaves unreached, with `from`, the route from `ring`
    // on, for a panicking clone.
    loop {
        let from = rings.clone();
        let Some(ring) = rings.next() else { break };
        if rings.len() == 0 {
            // The last ring takes the event itself.
            tally.add(ring.push_with(move || event, Tail::new(rings), lane));
            break;
        }
        let make = || {
            let unreached = Unreached(Tail::new(from));
            let value = event.clone();
            unreached.disarm();
            value
        };
        tally.add(ring.push_with(make, Tail::new(rings.clone()), lane));
    }
}

/// [`deliver`] on a wide route: batches (`deliver/batch.rs`) while the
/// rings' pushes take the fast path; from the first ring whose push does
/// not (a full ring, a parked consumer, a `DropOldest` ring), each ring on
/// its own.
#[inline(never)]
fn deliver_wide<E: Clone>(route: &[Arc<Ring<E>>], event: E, lane: Lane) -> PublishReport {
    let mut tally = Tally::default();
    let mut rings = route.iter();
    let mut event = event;
    loop {
        match deliver_batch(&mut rings, event, &mut tally, lane) {
            Batched::Done => break,
            Batched::Full(rest) if rings.len() > 1 => event = rest,
            Batched::Full(rest) | Batched::Stopped(rest) => {
                deliver_each(rings, rest, &mut tally, lane);
                break;
            }
        }
    }
    tally.report()
}

/// Delivers `event` to each ring of `route` as the single producer.
///
/// # Safety
///
/// - The caller is the one producer of every ring of its bus (a
///   single-producer bus, whose other publishes are refused), and no other
///   publish of it is in progress.
#[inline]
unsafe fn deliver_solo<E: Clone>(
    epoch: &Epoch,
    route: &[Arc<Ring<E>>],
    event: E,
    lane: Lane,
) -> PublishReport {
    if route.is_empty() {
        return PublishReport::default();
    }
    let guard = SoloGuard::begin(epoch, route);
    // SAFETY: the caller's contract.
    unsafe { deliver_guarded::<false, E>(guard, route, event, lane) }
}

/// The fewest rings a route has for the lease holder's publishes to use the
/// single-producer protocol (`ring/lease.rs`). A publish to one ring pays
/// the epoch, two barriers and the settle of S2-S3 to save one CAS: on one
/// thread that cost 12.2 ns per delivery against 9.5 with the CAS, where
/// four rings took 5.7 against 7.1 (`bench-report` scenario 1, BENCHMARKS.md,
/// session 13).
///
/// Loom models take plain stores from one ring, to check the lease's
/// protocol with few threads and rings.
const LEASED_MIN_RINGS: usize = if cfg!(evbus_loom) { 1 } else { 2 };

/// One push of a publish that `guard` holds: a single producer's, or
/// (`LEASED`) the lease holder's.
///
/// # Safety
///
/// - As [`deliver_guarded`].
#[inline(always)]
unsafe fn push_guarded<const LEASED: bool, E, F: FnOnce() -> E>(
    ring: &Ring<E>,
    make: F,
    guard: &SoloGuard<'_, E>,
    rest: Tail<'_, E>,
    lane: Lane,
) -> Push {
    if LEASED {
        ring.push_leased(make, guard, rest, lane)
    } else {
        // SAFETY: the caller's contract.
        unsafe { ring.push_solo(make, guard, lane) }
    }
}

/// Delivers `event` to each ring of `route` (not empty) in the publish that
/// `guard` began, then settles the rings' wake-ups (S3) and ends it.
///
/// # Safety
///
/// - Without `LEASED`: as [`deliver_solo`]. With it: `guard` came from
///   [`SoloGuard::begin_leased`] for the caller, the lease holder.
#[inline(always)]
unsafe fn deliver_guarded<const LEASED: bool, E: Clone>(
    guard: SoloGuard<'_, E>,
    route: &[Arc<Ring<E>>],
    event: E,
    lane: Lane,
) -> PublishReport {
    let mut tally = Tally::default();
    // As in `deliver`: `from` is the route from `ring` on.
    let mut rings = route.iter();
    loop {
        let from = rings.clone();
        let Some(ring) = rings.next() else { break };
        if rings.len() == 0 {
            let rest = Tail::new(rings);
            // SAFETY: the caller's contract, and `guard` is held.
            tally.add(unsafe {
                push_guarded::<LEASED, E, _>(ring, move || event, &guard, rest, lane)
            });
            break;
        }
        // A panicking clone leaves this ring and the rest unreached; and on
        // a single-producer bus the rings already served may have a
        // receiver parked (S3), so it settles them all. A leased push
        // settled its ring already (L6), as a multi-producer one wakes.
        let make = || {
            if LEASED {
                let unreached = Unreached(Tail::new(from));
                let value = event.clone();
                unreached.disarm();
                return value;
            }
            let cut_short = SoloCutShort {
                _unreached: Unreached(Tail::new(from)),
                route,
                guard: &guard,
            };
            let value = event.clone();
            cut_short.disarm();
            value
        };
        let rest = Tail::new(rings.clone());
        // SAFETY: the caller's contract, and `guard` is held.
        tally.add(unsafe { push_guarded::<LEASED, E, _>(ring, make, &guard, rest, lane) });
    }
    let mut panic = guard.take_panic();
    if !LEASED {
        guard.pushed();
        // Every ring, not only those that accepted: a park bit on a full or
        // closed ring costs one spurious wake, and tracking who accepted
        // costs more than the loads. A waker that panics does not stop the
        // others; the first panic may be one that a `Block` wait's pause
        // woke (S5). A leased push settled its ring already (L6).
        for ring in route {
            ring.settle_solo(&mut panic);
        }
    }
    drop(guard);
    panic.resume();
    tally.report()
}

/// A single-producer publish cut short by a panicking `E::clone`: counts the
/// rings it missed, and still runs the wake-up step (S3) for every ring, or
/// a receiver parked on a ring served before the panic would sleep with an
/// event buffered.
struct SoloCutShort<'a, 'g, E> {
    /// Counts the rings the clone missed when it drops (after the body of
    /// `drop` below).
    _unreached: Unreached<'a, E>,
    route: &'a [Arc<Ring<E>>],
    guard: &'g SoloGuard<'g, E>,
}

impl<E> SoloCutShort<'_, '_, E> {
    /// The clone returned: nothing to do.
    #[inline(always)]
    fn disarm(self) {
        std::mem::forget(self);
    }
}

impl<E> Drop for SoloCutShort<'_, '_, E> {
    #[cold]
    fn drop(&mut self) {
        self.guard.pushed();
        // This thread is unwinding: a second panic (a waker's) would abort,
        // so each wake runs contained, and its panic is dropped; the first
        // one is already on its way to the caller.
        let mut panic = FirstPanic::new();
        for ring in self.route {
            ring.settle_solo(&mut panic);
        }
        panic.resume();
    }
}

/// A publish on the name `topic`, delivering with `deliver`: the route of an
/// interned topic (with its id), or one resolved through the pattern index.
#[inline]
fn publish_to<E: Clone>(
    registry: &Registry<E>,
    topic: &str,
    event: E,
    deliver: impl FnOnce(&[Arc<Ring<E>>], E, Option<u32>) -> PublishReport,
) -> Result<PublishReport, PublishError<E>> {
    if let Some(id) = registry.topic_id(topic) {
        return Ok(deliver(registry.route(id), event, Some(id)));
    }
    if let Err(err) = validate_topic(topic) {
        return Err(PublishError::InvalidTopic(event, err));
    }
    let mut route: smallvec::SmallVec<[Arc<Ring<E>>; 8]> = smallvec::SmallVec::new();
    registry.resolve(topic, |ring| route.push(Arc::clone(ring)));
    Ok(deliver(&route, event, None))
}
