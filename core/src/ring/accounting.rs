//! Step 7 and the statistics: losses and their fold into the bus totals
//! (the per-publisher drop cells of step 8 are in `ring/lanes.rs`),
//! high-water, lag, length and counters, and the two hooks through which the
//! ring feeds latency sampling (feature `latency`) and tracing (feature
//! `tracing`). See the protocol in `ring/mod.rs`.

use super::{
    Ring,
    lanes::{FoldedAt, Lane, RouteDrops},
};
#[cfg(feature = "latency")]
use crate::latency::Sampler;
use crate::sync::{
    Backoff,
    atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence},
};
#[cfg(feature = "tracing")]
use crate::trace::TraceInfo;

/// Set in `dropped` and `overwritten` once [`fold_rings`] has added them to
/// the bus totals. An increment that finds it set adds itself to the
/// [`Totals`] directly, so a drop racing an unsubscribe is counted exactly
/// once: the flag and the count share one atomic, so every increment is
/// either before the fold (and in it) or after (and in the totals).
const FOLDED: u64 = 1 << 63;

/// What every ring of a bus shares: the bus totals of rings that left the
/// registry, and whether the bus has had at most one producer at a time
/// (step 5a).
#[derive(Debug, Default)]
pub(crate) struct Totals {
    pub(crate) delivered: AtomicU64,
    pub(crate) dropped: AtomicU64,
    /// True while no two claims can be in flight in one ring at once:
    /// every push so far came from one `Publisher` (at most one live at a
    /// time, each publishing through `&mut self`). Cleared for good when a
    /// second `Publisher` is live or the `Bus` handle publishes (`&self`,
    /// from any number of threads). `false` by default: a ring made
    /// without a bus (the tests) may have any number of producers.
    one_producer: AtomicBool,
    /// The lanes' route counts and the fold announcements (step 8b).
    pub(crate) route: RouteDrops,
}

impl Totals {
    /// The totals of a new bus, which has no producer yet.
    pub(crate) fn for_bus() -> Self {
        Self {
            one_producer: AtomicBool::new(true),
            ..Self::default()
        }
    }

    /// Whether every claim so far came from one producer at a time (step
    /// 5a).
    #[inline]
    pub(crate) fn one_producer(&self) -> bool {
        // Relaxed: the store below is made before the second producer's
        // first claim, so a receive that began after one of that
        // producer's publishes returned sees `false`: through whatever
        // ordered the two, or, when this thread's own claim read that
        // producer's, through the claim's Release and the consumer's
        // Acquire fence (step 5a, `Ring::unwritten`).
        self.one_producer.load(Ordering::Relaxed)
    }

    /// A second producer may claim from now on: before its first claim.
    #[inline]
    pub(crate) fn second_producer(&self) {
        if self.one_producer() {
            // Relaxed: see `one_producer`; sequenced before this producer's
            // first claim. The flag never goes back.
            self.one_producer.store(false, Ordering::Relaxed);
        }
    }
}

/// Counters written only off the fast path, on the ring's cold line (see
/// [`Ring`]'s layout), away from `head`, `tail` and the configuration.
#[derive(Debug, Default)]
pub(super) struct Cold {
    /// Events refused because the ring was full (`DropNewest`, or a `Block`
    /// timeout), plus the [`FOLDED`] flag. Written only on the full path.
    pub(super) dropped: AtomicU64,
    /// Events evicted by `DropOldest`, plus the [`FOLDED`] flag. Written
    /// only on the full path.
    pub(super) overwritten: AtomicU64,
    /// Producers inside `force_push` (see [`Ring::finish_fold`]).
    pub(super) evicting: AtomicUsize,
    /// What the fold read from the lane drop cells (step 8).
    pub(super) folded_at: FoldedAt,
}

/// What the latency and tracing hooks of a ring need: nothing without the
/// features.
#[derive(Default)]
pub(super) struct Hooks {
    /// Latency sampling, if the bus had it on at subscribe time.
    /// Boxed: a ring without sampling pays one pointer, checked once per
    /// push and pop.
    #[cfg(feature = "latency")]
    sampler: Option<Box<Sampler>>,
    /// The subscription's identity in tracing events.
    #[cfg(feature = "tracing")]
    trace: TraceInfo,
}

/// Folds every ring of `rings` (each closed, and folded only here) into
/// the bus totals, with one heavy barrier for all of them (step 8).
pub(crate) fn fold_rings<T>(rings: &[crate::sync::Arc<Ring<T>>]) {
    if rings.is_empty() {
        return;
    }
    for ring in rings {
        ring.begin_fold();
    }
    crate::barrier::heavy();
    for ring in rings {
        ring.finish_fold();
    }
}

/// Point-in-time counters of one ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct RingCounters {
    pub(crate) delivered: u64,
    pub(crate) received: u64,
    pub(crate) dropped: u64,
    /// The part of `dropped` evicted by `DropOldest`.
    pub(crate) overwritten: u64,
    pub(crate) queued: usize,
    pub(crate) high_water: usize,
    pub(crate) closed: bool,
}

impl<T> Ring<T> {
    /// Latency hook, producer side: records the send time of the event at
    /// `pos` if the ring samples and `pos` is sampled. Without the `latency`
    /// feature it is nothing; with it, a ring without sampling pays one
    /// `Option` check.
    ///
    /// # Safety
    ///
    /// - Same as [`Sampler::write`](crate::latency::Sampler::write): the
    ///   caller owns `pos` and has not yet stored its slot's Release stamp.
    #[inline(always)]
    pub(super) unsafe fn sample_sent(&self, pos: usize) {
        #[cfg(feature = "latency")]
        if let Some(s) = &self.hooks.sampler {
            // SAFETY: the caller's contract, passed on.
            unsafe { self.stamp_sent(s, pos) };
        }
        let _ = pos;
    }

    /// Latency hook, consumer side: runs `free`, which frees the slot of the
    /// event just taken at `head`, and reports that event's latency if it
    /// was sampled (out of line, in `free_sampled`). Without sampling it is
    /// `free()`.
    ///
    /// # Safety
    ///
    /// - The caller is the consumer, saw the event at `head` ready
    ///   (Acquire), and has not yet freed its slot; `free` frees it.
    #[inline(always)]
    pub(super) unsafe fn sample_received(&self, head: usize, free: impl FnOnce()) {
        #[cfg(feature = "latency")]
        if let Some(s) = &self.hooks.sampler {
            // SAFETY: the caller's contract, passed on.
            return unsafe { self.free_sampled(s, head, free) };
        }
        let _ = head;
        free();
    }

    /// Tracing hook: the consumer found the ring empty, which closes an
    /// open drop episode (see `trace.rs`). Nothing without the `tracing`
    /// feature.
    #[inline(always)]
    pub(super) fn found_empty(&self) {
        #[cfg(feature = "tracing")]
        self.trace_clean();
    }

    /// Counts one lost event in `counter` (`dropped` or `overwritten`), and
    /// in the bus totals if the ring was already folded.
    pub(super) fn count_loss(&self, counter: &AtomicU64) {
        // Relaxed: the count and `FOLDED` share this atomic, so its
        // modification order alone decides which side counts the event.
        if counter.fetch_add(1, Ordering::Relaxed) & FOLDED != 0 {
            self.totals.dropped.fetch_add(1, Ordering::Relaxed);
        }
        #[cfg(feature = "tracing")]
        self.trace_loss();
    }

    /// Counts a refusal (`DropNewest`, or a `Block` timeout) by the
    /// publisher that owns `lane`: in
    /// its lane's cell, with plain stores (step 8), or in the shared
    /// counter without a lane. A lane drop does not raise the high-water
    /// mark: the counters derive it (the ring was full).
    #[inline(always)]
    pub(crate) fn count_refusal(&self, lane: Lane) {
        match lane.index() {
            Some(i) => {
                if self.lanes.count(i) {
                    self.lanes.count_late(
                        i,
                        &self.totals.route,
                        &self.totals.dropped,
                        &self.cold.folded_at,
                    );
                }
                #[cfg(feature = "tracing")]
                self.trace_loss();
            }
            None => {
                self.count_loss(&self.cold.dropped);
                self.raise_high_water(self.cap);
            }
        }
    }

    /// The totals of this ring's bus, which hold its route counts (step
    /// 8b).
    pub(crate) fn totals(&self) -> &crate::sync::Arc<Totals> {
        &self.totals
    }

    /// Tracing hook: a drop counted in a route count (step 8b), for the
    /// drop episodes of `trace.rs`.
    #[cfg(feature = "tracing")]
    pub(crate) fn trace_refusal(&self) {
        self.trace_loss();
    }

    /// Raises the high-water mark to `len`; a read first, so a mark already
    /// there costs no read-modify-write.
    #[inline]
    pub(super) fn raise_high_water(&self, len: usize) {
        // Relaxed: a statistic; `fetch_max` keeps it monotonic.
        if self.high_water.load(Ordering::Relaxed) < len {
            self.high_water.fetch_max(len, Ordering::Relaxed);
        }
    }

    /// The first half of the fold ([`fold_rings`]), which adds this ring's
    /// counters to the bus totals, once, after it left the registry: step
    /// 8's announcement. The caller runs the heavy barrier, then
    /// [`Ring::finish_fold`].
    ///
    /// Call only after [`Ring::close`]: then no new claim can land.
    pub(super) fn begin_fold(&self) {
        debug_assert!(self.is_closed(), "fold before close");
        self.lanes.begin_fold();
        self.totals.route.announce_fold();
    }

    /// The rest of the fold, after [`Ring::begin_fold`] and a heavy barrier.
    /// A `DropOldest` eviction moves `tail` and counts its overwrite in two
    /// steps, so it first waits for evictions in flight (step 7). Later
    /// losses go to the totals directly (see [`FOLDED`] and step 8).
    pub(super) fn finish_fold(&self) {
        // SeqCst: pairs with the fence after a producer announces an
        // eviction: it sees the close, or we see its announcement.
        fence(Ordering::SeqCst);
        let backoff = Backoff::new();
        // Acquire: pairs with the Release decrement after `force_push`.
        // Bounded by the length of one `force_push`: no user code runs in it
        // (the evicted value is dropped after the decrement).
        while self.cold.evicting.load(Ordering::Acquire) != 0 {
            backoff.snooze();
        }
        // Relaxed: see `count_loss`.
        let dropped = self.cold.dropped.fetch_or(FOLDED, Ordering::Relaxed);
        let overwritten = self.cold.overwritten.fetch_or(FOLDED, Ordering::Relaxed);
        debug_assert_eq!((dropped | overwritten) & FOLDED, 0, "folded twice");
        let lane_drops = self
            .lanes
            .finish_fold(&self.cold.folded_at, &self.totals.route);
        let c = self.counters_with(dropped, lane_drops, overwritten);
        self.totals
            .delivered
            .fetch_add(c.delivered, Ordering::Relaxed);
        self.totals.dropped.fetch_add(c.dropped, Ordering::Relaxed);
    }

    /// The bytes of this ring's buffer.
    pub(crate) fn buffer_bytes(&self) -> usize {
        self.cap * std::mem::size_of::<super::Slot<T>>()
    }

    /// Counts a drop for an event that a publish cut short by a panic in
    /// user code never brought to this ring (see `deliver.rs`), unless the
    /// ring is closed and so no longer a subscriber.
    #[cold]
    pub(crate) fn count_unreached(&self) {
        if !self.is_closed() {
            self.count_loss(&self.cold.dropped);
        }
    }

    /// Takes and reports events evicted since the consumer last looked, if
    /// any: the distance by which evictions moved `head` past `own`, the
    /// consumer's own copy of it (see [`Ring::try_pop_oldest`]). Counted
    /// from positions, not from the `overwritten` statistic, which an
    /// eviction raises only after it moved `head`: so the report always
    /// comes before the first event after the gap.
    ///
    /// Consumer side; see [`Ring::try_pop`]'s safety section.
    pub(crate) fn take_lag(&self, own: &mut usize) -> Option<u64> {
        // Relaxed: only a distance; the event after the gap is read through
        // its stamp (Acquire) by the next pop.
        let head = self.head.load(Ordering::Relaxed);
        if head == *own {
            return None;
        }
        let lag = self.count(head).wrapping_sub(self.count(*own));
        *own = head;
        Some(lag)
    }

    /// Records in the high-water mark the queue length the consumer sees
    /// plus `taken`, the events it took just before looking (so the length
    /// the ring had before those receives).
    ///
    /// `local` is the consumer's own copy of the mark. The length can only
    /// raise it if more than `local - taken` events are still queued, that
    /// is if the slot `local - taken` places past `head` holds an event; so
    /// the look starts there, with one stamp load. Only when that slot is
    /// written does it read the producers' position, whose cache line they
    /// keep writing. A consumer that keeps up with its producer (the mark
    /// already above the backlogs it meets) thus reads a slot ahead of the
    /// producer, a line it will read anyway a lap later, instead of pulling
    /// the producer's line once per backlog: in single-producer mode, that
    /// read halved the throughput of a consumer draining as fast as one
    /// publisher publishes. Pushes that land between the receives and the
    /// look are counted too; they are the pushes of a few nanoseconds, and
    /// the result never exceeds the capacity. The shared RMW runs only when
    /// the mark rises.
    ///
    /// Consumer side; see [`Ring::try_pop`]'s safety section.
    #[inline]
    pub(crate) fn observe_len(&self, local: &mut usize, taken: usize) {
        // Events that must still be queued for the length to pass `local`,
        // less one: the length is `taken` plus those queued.
        let need = local.saturating_sub(taken);
        if need >= self.cap {
            // The length never exceeds the capacity, which `local` holds.
            return;
        }
        // Relaxed: a sample for statistics; `head` is our own.
        let head = self.head.load(Ordering::Relaxed);
        let probe = self.layout().ahead(head, need);
        // Relaxed: a statistic; no value is read on the strength of it. A
        // slot holds the event of its position when its stamp is that
        // position plus one, whatever the ring's mode.
        if self.slot(probe).stamp.load(Ordering::Relaxed) != probe.wrapping_add(1) {
            // At most `need` events queued: a length of at most `local`,
            // or `taken` exactly when nothing is queued.
            if taken > *local {
                *local = taken;
                self.raise_high_water(taken);
            }
            return;
        }
        let tail = self.tail_word(Ordering::Relaxed);
        let seen = self.count(self.pos(tail)).wrapping_sub(self.count(head)) as usize;
        // A torn pair (a lap apart) reads as more than `cap`; the probe
        // showed `need + 1` queued at least.
        let queued = if seen <= self.cap { seen } else { need + 1 };
        let len = queued.saturating_add(taken).min(self.cap);
        if len > *local {
            *local = len;
            self.raise_high_water(len);
        }
    }

    /// Events buffered now (a snapshot; exact when quiescent).
    pub(crate) fn len(&self) -> usize {
        let mut tail = self.tail_word(Ordering::SeqCst);
        // Bounded: under a stream of pushes the pair may never be stable;
        // after a few tries any recent pair is a fine answer.
        for _ in 0..4 {
            // SeqCst on all three, as crossbeam's `len`: tail is re-read to
            // check that head was read between two equal tails.
            let head = self.head.load(Ordering::SeqCst);
            let again = self.tail_word(Ordering::SeqCst);
            if again == tail {
                let len = self.count(self.pos(tail)).wrapping_sub(self.count(head));
                return (len as usize).min(self.cap);
            }
            tail = again;
        }
        let head = self.head.load(Ordering::SeqCst);
        let len = self.count(self.pos(tail)).wrapping_sub(self.count(head));
        (len as usize).min(self.cap)
    }

    /// Reads the counters. Derived from positions, so they cost nothing on
    /// the fast path.
    pub(crate) fn counters(&self) -> RingCounters {
        // Relaxed: statistics.
        let dropped = self.cold.dropped.load(Ordering::Relaxed);
        let overwritten = self.cold.overwritten.load(Ordering::Relaxed);
        self.counters_with(dropped, self.lanes.sum(&self.totals.route), overwritten)
    }

    /// The counters, given the shared `dropped` and `overwritten` counters
    /// (their flags allowed) and the refusals counted in lanes (step 8).
    pub(super) fn counters_with(
        &self,
        dropped: u64,
        lane_drops: u64,
        overwritten: u64,
    ) -> RingCounters {
        let dropped = (dropped & !FOLDED) + lane_drops;
        let overwritten = overwritten & !FOLDED;
        // SeqCst: as in `len`.
        let tail = self.tail_word(Ordering::SeqCst);
        let head = self.head.load(Ordering::SeqCst);
        let accepted = self.count(self.pos(tail));
        let popped = self.count(head);
        let queued = (accepted.saturating_sub(popped) as usize).min(self.cap);
        // A length seen here is a length the ring had: keep it, so the mark
        // never goes down between the receiver's samples.
        self.raise_high_water(queued);
        // A lane drop (step 8) found the ring full without raising the mark.
        if lane_drops != 0 {
            self.raise_high_water(self.cap);
        }
        RingCounters {
            delivered: accepted.saturating_sub(overwritten),
            received: popped.saturating_sub(overwritten),
            dropped: dropped + overwritten,
            overwritten,
            queued,
            high_water: self.high_water.load(Ordering::Relaxed),
            closed: tail & self.mark_bit != 0,
        }
    }
}

#[cfg(feature = "latency")]
impl<T> Ring<T> {
    /// Turns latency sampling on (feature `latency`).
    #[must_use]
    pub(crate) fn with_sampler(mut self, sampler: Option<Sampler>) -> Self {
        self.hooks.sampler = sampler.map(Box::new);
        self
    }

    /// Records the send time of the event at `pos`, if `pos` is sampled.
    /// Out of line, so a ring without sampling pays only the `Option`
    /// check at the call site. The clock is read between the claim and the
    /// stamp store, which delays a consumer waiting on this very slot by
    /// one clock read, on sampled events only.
    ///
    /// # Safety
    ///
    /// - Same as [`Sampler::write`]: the caller owns `pos` and has not yet
    ///   stored its slot's Release stamp.
    #[inline(never)]
    pub(super) unsafe fn stamp_sent(&self, s: &Sampler, pos: usize) {
        if s.samples(self.count(pos)) {
            // SAFETY: forwarded from the caller's contract.
            unsafe { s.write(pos & self.index_mask, s.now()) };
        }
    }

    /// [`Ring::sample_received`] for a ring with sampling: reads the send
    /// time before `free` frees the slot, and the clock after.
    ///
    /// # Safety
    ///
    /// - As [`Ring::sent_at`], and `free` is what frees the slot.
    #[inline(never)]
    pub(super) unsafe fn free_sampled(&self, s: &Sampler, head: usize, free: impl FnOnce()) {
        // SAFETY: forwarded from the caller's contract.
        let sent = unsafe { self.sent_at(s, head) };
        free();
        if let Some(sent) = sent {
            s.record(sent);
        }
    }

    /// The send time of the event at `head`, if its position is sampled.
    ///
    /// # Safety
    ///
    /// - Same as [`Sampler::read`]: the caller is the consumer, saw the
    ///   event at `head` ready (Acquire), and has not yet freed its slot.
    #[inline(never)]
    pub(super) unsafe fn sent_at(&self, s: &Sampler, head: usize) -> Option<u64> {
        s.samples(self.count(head))
            // SAFETY: forwarded from the caller's contract; a sampled
            // position's send time was written by its producer
            // (`stamp_sent`) before the stamp the caller saw.
            .then(|| unsafe { s.read(head & self.index_mask) })
    }
}

#[cfg(feature = "tracing")]
impl<T> Ring<T> {
    /// Names the ring in tracing events (feature `tracing`).
    #[must_use]
    pub(crate) fn with_trace(mut self, trace: TraceInfo) -> Self {
        self.hooks.trace = trace;
        self
    }

    pub(crate) fn trace_info(&self) -> &TraceInfo {
        &self.hooks.trace
    }

    /// Opens a drop episode on the first loss after a clean period, and
    /// says so once (see `trace.rs`).
    #[cold]
    pub(super) fn trace_loss(&self) {
        // Relaxed: the flag orders nothing; the swap only has to elect one
        // reporter per episode, which any RMW on one location does. The
        // load first keeps an open episode to a plain read.
        if self.dropping.load(Ordering::Relaxed) == 0 {
            let base = self.losses();
            if self.dropping.swap(base, Ordering::Relaxed) == 0 {
                crate::trace::drop_started(&self.hooks.trace, self.cap, self.policy);
            }
        }
    }

    /// Closes an open drop episode; called by the consumer when it finds
    /// the ring empty.
    #[inline]
    pub(super) fn trace_clean(&self) {
        // Relaxed: as in `trace_loss`; the CAS elects one closer.
        let open = self.dropping.load(Ordering::Relaxed);
        if open != 0
            && self
                .dropping
                .compare_exchange(open, 0, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            // `open - 1` losses came before the episode (see `trace_loss`).
            let lost = self.losses().saturating_sub(open - 1);
            crate::trace::drop_ended(&self.hooks.trace, lost);
        }
    }

    /// Events lost so far (dropped and overwritten).
    pub(super) fn losses(&self) -> u64 {
        // Relaxed: statistics.
        let dropped = self.cold.dropped.load(Ordering::Relaxed) & !FOLDED;
        let overwritten = self.cold.overwritten.load(Ordering::Relaxed) & !FOLDED;
        dropped + overwritten + self.lanes.sum(&self.totals.route)
    }
}
