//! A publish's deliveries to a run of rings in one batch: every value made
//! first, then every slot claimed, then every slot written.
//!
//! A claim's CAS cannot complete before the stores ahead of it. Claimed one
//! ring after another, each claim waited for the slot written just before it,
//! whose line a consumer polling its ring keeps taking back: on 2 vCPUs, 87 %
//! of a lossless publisher's time at K = 16 went to the claims
//! (BENCHMARKS.md, session 12). In a batch the claims follow one another.
//!
//! The values are made before any claim, as a push makes its own before its
//! claim: user code (an `E::clone`) never runs while the publish holds a
//! slot that a consumer waits for, so a `Clone` that panics leaves no slot
//! unwritten, and one that calls back into the bus cannot wait on a
//! consumer that waits on it.

use std::mem::MaybeUninit;

use super::{Tally, Unreached};
use crate::{
    ring::{Lane, Ring, Tail},
    sync::Arc,
};

/// The most rings one batch takes.
const BATCH: usize = 8;

/// The largest event that publishes deliver in batches: a batch holds its
/// values on the stack until it has claimed their slots.
pub(super) const BATCH_BYTES: usize = 64;

/// The fewest rings a route has for its publishes to go in batches. A batch
/// costs about a third more instructions per ring than a push on its own
/// (the values and `tail`s kept, three passes), which on one thread is
/// 7.7 ns against 6.6 per delivery at K = 16, and 8.8 against 7.4 at K = 4;
/// between threads, where the claims of a route wait for the slots written
/// before them, a batch delivered 3.6 x more at K = 16 (`bench-report`
/// scenarios 1 and 9, BENCHMARKS.md, session 12). So routes of 8 rings or
/// more, where a publish's claims weigh most. Loom models take batches from
/// 2 rings, to check the protocol with few threads.
pub(super) const BATCH_MIN_RINGS: usize = if cfg!(evbus_loom) { 2 } else { 8 };

/// How a [`deliver_batch`] ended.
pub(super) enum Batched<E> {
    /// The event is delivered: the batch reached the end of the route.
    Done,
    /// `BATCH` rings taken: the rest may make another batch.
    Full(E),
    /// The next ring's push does not take the fast path: it and the rest go
    /// on their own.
    Stopped(E),
}

/// The rings of a batch, `route[..len]`, with the `tail` at which each was
/// found free and the value made for it; `values[taken..len]` not handed on
/// yet.
struct Batch<'r, E> {
    route: &'r [Arc<Ring<E>>],
    tails: [usize; BATCH],
    values: [MaybeUninit<E>; BATCH],
    len: usize,
    taken: usize,
    /// Still making values: a clone that panics leaves the values made
    /// before it to be pushed, as a publish without batches would have
    /// before it reached that clone. Once handing on, a push whose user code
    /// panics has counted the rings after it as unreached, and the values
    /// left are only dropped.
    making: bool,
}

impl<E> Batch<'_, E> {
    /// Moves out the value of the `i`-th ring, the next not handed on.
    #[inline(always)]
    fn take(&mut self, i: usize) -> E {
        debug_assert!(i == self.taken && i < self.len);
        // Moved on first, so the value is read once whatever happens next.
        self.taken = i + 1;
        // SAFETY: `i < len`: written when `len` passed it, and read only
        // now, as `taken` was `i`.
        unsafe { self.values[i].assume_init_read() }
    }
}

impl<E> Drop for Batch<'_, E> {
    fn drop(&mut self) {
        if self.taken != self.len {
            self.unwind();
        }
    }
}

impl<E> Batch<'_, E> {
    /// A panic cut the batch short: pushes the values left (while making)
    /// or drops them (while handing on). User code that a push runs here (a
    /// waker, or the `Drop` of a value refused when its claim lost a race)
    /// runs contained and its panic is dropped: this thread is unwinding,
    /// and a second panic would abort.
    #[cold]
    fn unwind(&mut self) {
        for i in self.taken..self.len {
            let value = self.take(i);
            if !self.making {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(value)));
                continue;
            }
            let (ring, tail) = (&*self.route[i], self.tails[i]);
            let push = || {
                if ring.claim_made(tail) {
                    ring.fill_made(tail, value)
                } else {
                    // `rest` none: the rings after this one count for
                    // themselves, made or unreached.
                    ring.push_made(tail, value, Tail::new([].iter()), Lane::SHARED)
                }
            };
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(push));
        }
    }
}

/// Delivers `event` to the rings of `rings` from the first on whose push
/// would take the fast path, up to `BATCH` of them: makes each one's value
/// in route order (the last ring of the route takes the event itself),
/// then claims their slots, then writes them. The batch ends before the
/// first ring whose push would not take the fast path (a full ring among
/// them), which goes on its own. A claim that loses a race (to another
/// producer, a close, a consumer parking) ends the claims; the values from
/// it on go the usual way ([`Ring::push_made`]), after the claimed ones are
/// written.
///
/// Inlined into `deliver_wide`, which is not inlined itself: every publish
/// to a narrower route keeps the code of its own path (callgrind `k0` and
/// `k4`).
#[inline]
pub(super) fn deliver_batch<E: Clone>(
    rings: &mut std::slice::Iter<'_, Arc<Ring<E>>>,
    event: E,
    tally: &mut Tally,
    lane: Lane,
) -> Batched<E> {
    let route = rings.as_slice();
    let end = route.len().min(BATCH);
    let mut batch = Batch {
        route,
        tails: [0; BATCH],
        values: [const { MaybeUninit::uninit() }; BATCH],
        len: 0,
        taken: 0,
        making: true,
    };
    let mut event = Some(event);
    while batch.len < end {
        let i = batch.len;
        let Some(tail) = route[i].peek_free() else {
            break;
        };
        let value = if i + 1 == route.len() {
            // The last ring takes the event itself.
            event.take()
        } else {
            // A panic counts this ring and the rest as unreached; the
            // batch's `Drop` pushes the values made before it.
            let unreached = Unreached(Tail::new(route[i..].iter()));
            let value = event.clone();
            unreached.disarm();
            value
        };
        let Some(value) = value else { break };
        batch.tails[i] = tail;
        batch.values[i].write(value);
        batch.len = i + 1;
    }
    batch.making = false;
    let len = batch.len;
    *rings = route[len..].iter();
    // Claim, in route order, up to the first claim that loses a race.
    let claimed = route[..len]
        .iter()
        .zip(&batch.tails)
        .position(|(ring, &tail)| !ring.claim_made(tail))
        .unwrap_or(len);
    for (i, ring) in route[..claimed].iter().enumerate() {
        let value = batch.take(i);
        tally.add(ring.fill_made(batch.tails[i], value));
    }
    // The rest the usual way, from the one whose claim failed.
    for i in claimed..len {
        let value = batch.take(i);
        let rest = Tail::new(route[i + 1..].iter());
        tally.add(route[i].push_made(batch.tails[i], value, rest, lane));
    }
    match event {
        None => Batched::Done,
        Some(event) if len == end && !rings.as_slice().is_empty() => Batched::Full(event),
        Some(event) => Batched::Stopped(event),
    }
}
