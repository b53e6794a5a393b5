//! Steps 1 and 2, the producer side: claim a slot with a CAS on `tail`,
//! write it, publish it with its stamp; the overflow policies of a full ring
//! (`DropNewest`, `DropOldest`'s eviction, `Block`'s wait); and the user code
//! a push runs after it made its value, contained so that a panic there
//! leaves the publish's counts balanced.

use std::mem::MaybeUninit;

use super::{Push, Ring, Slot, SpaceWait, lanes::Lane};
use crate::{
    policy::Overflow,
    sync::{
        Arc, Backoff,
        atomic::{Ordering, fence},
    },
};

/// The rings of a publish's route from a position on: what it will not
/// reach if user code cuts it short there. The iterator that the delivery
/// loop walks anyway, so a push carries it in the two registers the loop
/// keeps (a pointer and an end): a route and a position would be three
/// words, passed through memory and stored on every round, and a slice
/// took register moves on every round to keep both its own and the loop's
/// copy (`benches/callgrind.sh`).
pub(crate) struct Tail<'a, T>(std::slice::Iter<'a, Arc<Ring<T>>>);

impl<'a, T> Tail<'a, T> {
    /// The rings of `rings`, in order.
    #[inline(always)]
    pub(crate) fn new(rings: std::slice::Iter<'a, Arc<Ring<T>>>) -> Self {
        Self(rings)
    }

    /// No ring: a push with nothing after it.
    #[cfg(test)]
    pub(crate) fn none() -> Self {
        Self([].iter())
    }

    /// Counts a drop on each ring of the tail.
    #[cold]
    pub(crate) fn count_unreached(&self) {
        for ring in self.0.clone() {
            ring.count_unreached();
        }
    }
}

/// What a producer found at the slot it would claim ([`Ring::room`]).
enum Room {
    /// Free for it.
    Free,
    /// Full: the slot holds the value of a lap ago. With what to re-check
    /// it by ([`Ring::still_full`]).
    Full(usize),
    /// Its `tail` was stale: load it again.
    Stale,
}

/// Runs `f`, user code that a push runs after it made its value (a waker,
/// the `Drop` of a value evicted or refused); if it panics, counts a drop on
/// each ring of `rest` (the rest of the publish's route, which it will not
/// reach), then lets the panic go on.
#[cold]
pub(super) fn contained<T>(f: impl FnOnce(), rest: Tail<'_, T>) {
    if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        rest.count_unreached();
        std::panic::resume_unwind(payload);
    }
}

/// Ends a push that did not take its value: drops the value, if one was
/// made, under [`contained`].
#[inline(always)]
fn refuse<T>(value: Option<T>, rest: Tail<'_, T>, push: Push) -> Push {
    if let Some(value) = value {
        contained(move || drop(value), rest);
    }
    push
}

impl<T> Ring<T> {
    /// Pushes the value `make` produces, following the overflow policy when
    /// the ring is full. `make` runs at most once, before any slot is
    /// claimed, so a panicking `Clone` cannot leave a claimed slot unwritten.
    /// A refusal is counted in `lane`, the publisher's own drop cell
    /// (step 8), or in the shared counter for [`Lane::SHARED`].
    ///
    /// User code that runs after the value is made (the consumer's task
    /// waker, the `Drop` of an evicted value or of one the ring refused)
    /// runs contained: if it panics, each ring of `rest` (the rest of the
    /// publish's route) counts a drop before the panic goes on. Free on the
    /// fast path: `rest` is sliced only then.
    ///
    /// The first round is inline and handles the two common outcomes: a
    /// free slot claimed at once, and a full `DropNewest` ring refused
    /// before the value is made. Everything else (a lost CAS, a stale
    /// `tail`, the other policies) goes to the loop in
    /// [`Ring::push_contended`].
    #[inline]
    pub(crate) fn push_with<F: FnOnce() -> T>(
        &self,
        make: F,
        rest: Tail<'_, T>,
        lane: Lane,
    ) -> Push {
        // Relaxed: only a hint for the first CAS, which re-reads the latest
        // value in `tail`'s modification order if the hint is stale.
        let tail = self.producers.tail.load(Ordering::Relaxed);
        // Neither flag: the ring is open, no consumer is parked (so the
        // claim owes no wake-up), and `tail` is its own position. A flag
        // sends the push to the loop, which handles both.
        if tail & self.flag_bits == 0 {
            let pos = tail;
            // Masked before the room check: the compiler must reload the
            // ring's fields after an atomic access, not this local. The
            // slot's address only after it: a full ring does not need it.
            let index = self.index(pos);
            match self.room(pos, index) {
                Room::Free => {
                    let slot = self.slot_at(index);
                    let v = make();
                    return match self.claim(tail, self.after(pos, index)) {
                        // The claim succeeded from `tail`, which had no park
                        // bit: nothing to wake.
                        Ok(()) => self.publish_slot(slot, pos, v),
                        Err(current) => {
                            self.push_contended::<F>(current, Some(v), None, rest, lane)
                        }
                    };
                }
                // Full, as in `push_contended`: `DropNewest` refuses at once.
                Room::Full(_) if matches!(self.policy, Overflow::DropNewest) => {
                    self.count_refusal(lane);
                    return Push::Dropped;
                }
                Room::Full(_) | Room::Stale => {}
            }
        }
        self.push_contended(tail, None, Some(make), rest, lane)
    }

    /// Whether the slot at `pos` (buffer index `index`) is free for a
    /// producer that read `tail` at `pos`: the linearization point of a drop
    /// when full.
    ///
    /// A `DropOldest` ring answers from the slot's stamp, which its consumer
    /// and evictions store to free a slot (step 3). Every other ring answers
    /// from `head`: its consumer frees a slot by moving `head` and never
    /// writes a slot, so a slot's line travels one way, producer to
    /// consumer. Producers share the last `head` one of them loaded in
    /// `head_seen`, and load `head` itself only when that copy says full.
    #[inline(always)]
    fn room(&self, pos: usize, index: usize) -> Room {
        if self.policy == Overflow::DropOldest {
            let slot = self.slot_at(index);
            // Acquire: pairs with the consumer's (or an evictor's) Release
            // stamp store (step 3), so its read of the old value happens
            // before our write.
            let stamp = slot.stamp.load(Ordering::Acquire);
            return if stamp == pos {
                Room::Free
            } else if stamp.wrapping_add(self.one_lap) == pos + 1 {
                // The value written one lap ago, not yet received.
                Room::Full(stamp)
            } else {
                Room::Stale
            };
        }
        // Acquire: pairs with the Release store below, made by the producer
        // that loaded this `head` with Acquire; so the consumer's read of
        // the slot's old value happens before our write (transitively).
        let seen = self.producers.head_seen.load(Ordering::Acquire);
        // Positions order as integers (lap above index), so `pos` has room
        // while it is less than a lap ahead of a `head` at or behind the
        // real one.
        if pos.wrapping_sub(seen) < self.one_lap {
            return Room::Free;
        }
        // Acquire: pairs with the consumer's Release `head` store, made
        // after it read the value (step 3).
        let head = self.head.load(Ordering::Acquire);
        let ahead = pos.wrapping_sub(head);
        if ahead < self.one_lap {
            // Release: pairs with the Acquire load above, in the producers
            // that trust this copy.
            self.producers.head_seen.store(head, Ordering::Release);
            Room::Free
        } else if ahead == self.one_lap {
            // The consumer is a lap behind `pos`: full.
            Room::Full(head)
        } else {
            // `pos` came from a stale `tail`, behind `head`.
            Room::Stale
        }
    }

    /// Whether the ring is still full as `room` found it, with `witness`
    /// from its `Room::Full`: the same stamp at `pos`, or the same `head`.
    /// Relaxed: run after the heavy barrier of step 6, which orders it.
    #[inline]
    fn still_full(&self, slot: &Slot<T>, witness: usize) -> bool {
        let now = if self.policy == Overflow::DropOldest {
            slot.stamp.load(Ordering::Relaxed)
        } else {
            self.head.load(Ordering::Relaxed)
        };
        now == witness
    }

    /// Moves `tail`, which a producer read as `tail`, on to `next`, the
    /// position after it: the claim of step 1. On failure returns the
    /// current `tail`.
    #[inline(always)]
    fn claim(&self, tail: usize, next: usize) -> Result<(), usize> {
        // Release success, though the slot is handed over by the stamp
        // (step 2), not by `tail`: it carries what this producer did before
        // its claim, its `second_producer` store among it, to a consumer
        // whose own later claim reads this one (step 5a's acquire fence).
        // Free where every locked RMW is a full barrier (x86). Clearing the
        // park bit here is what obliges us to wake the consumer (step 4).
        self.producers
            .tail
            .compare_exchange_weak(tail, next, Ordering::Release, Ordering::Relaxed)
            .map(drop)
    }

    /// Writes `v` into `slot`, the slot at `pos`, which a claim from `tail`
    /// made ours, publishes it (step 2), and wakes the consumer if the claim
    /// cleared the park bit (step 4).
    #[inline(always)]
    fn fill(&self, slot: &Slot<T>, pos: usize, v: T, tail: usize, rest: Tail<'_, T>) -> Push {
        let push = self.publish_slot(slot, pos, v);
        if tail & self.park_bit != 0 {
            contained(|| self.wake(&self.consumer), rest);
        }
        push
    }

    /// Writes `v` into `slot`, the slot at `pos`, which a claim made ours,
    /// and publishes it (step 2).
    #[inline(always)]
    fn publish_slot(&self, slot: &Slot<T>, pos: usize, v: T) -> Push {
        // SAFETY: the claim made us the only producer at `pos`, and the
        // caller saw `stamp == pos` (Acquire): the consumer is done with the
        // slot's previous value.
        slot.value.with_mut(|p| unsafe { (*p).write(v) });
        // SAFETY: as for the value just above.
        unsafe { self.sample_sent(pos) };
        // Release: pairs with the consumer's Acquire load in `try_pop`
        // (step 2).
        slot.stamp.store(pos.wrapping_add(1), Ordering::Release);
        Push::Accepted
    }

    /// The rounds of [`Ring::push_with`] after its first: from `tail`, with
    /// the value if it was made, else `make`.
    #[inline(never)]
    fn push_contended<F: FnOnce() -> T>(
        &self,
        mut tail: usize,
        mut value: Option<T>,
        mut make: Option<F>,
        rest: Tail<'_, T>,
        lane: Lane,
    ) -> Push {
        let backoff = Backoff::new();
        // A `Block` wait in progress (step 6), made on the first full round.
        let mut space: Option<SpaceWait> = None;
        loop {
            if tail & self.mark_bit != 0 {
                return refuse(value, rest, Push::Closed);
            }
            if tail & self.lease_bit() != 0 {
                // A leased ring: this producer revoked the lease before its
                // first publish, so it may convert it (`ring/lease.rs`, L3).
                tail = self.convert_lease(tail);
                continue;
            }
            let pos = self.pos(tail);
            let (slot, index) = self.place(pos);
            let room = self.room(pos, index);
            if let Room::Free = room {
                let v = match value.take() {
                    Some(v) => v,
                    None => (make.take().expect("make runs once"))(),
                };
                match self.claim(tail, self.after(pos, index)) {
                    Ok(()) => return self.fill(slot, pos, v, tail, rest),
                    Err(current) => {
                        value = Some(v);
                        tail = current;
                        backoff.spin();
                    }
                }
            } else if let Room::Full(witness) = room {
                // The slot still holds the value written one lap ago, not yet
                // received: the ring was full when `room` looked, which is
                // the linearization point of a drop. `DropNewest` needs no
                // more: it drops without a fence.
                match self.policy {
                    Overflow::DropNewest => return refuse(value, rest, self.drop_newest(lane)),
                    Overflow::Block(timeout) => {
                        // No fence here: a wait that started on a stale
                        // `head` spins one round and retries, and a park
                        // re-checks after the heavy barrier (step 6), which
                        // is what orders it.
                        let wait = space.get_or_insert_with(SpaceWait::new);
                        wait.start(timeout);
                        // Still full and open. Relaxed: run after the
                        // barrier of step 6, which orders it; the retry below
                        // checks the room again with Acquire before any
                        // write.
                        let full = || {
                            self.still_full(slot, witness)
                                && self.producers.tail.load(Ordering::Relaxed) & self.mark_bit == 0
                        };
                        if !self.wait_for_space(wait, full) {
                            return refuse(value, rest, self.drop_newest(lane));
                        }
                        // Relaxed: a hint for the retry, as at the start.
                        tail = self.producers.tail.load(Ordering::Relaxed);
                        continue;
                    }
                    Overflow::DropOldest => {}
                }
                // An eviction acts on the oldest slot, so it checks that the
                // consumer has not moved on since `room` loaded the stamp.
                // SeqCst: orders the stamp load above before the head load
                // below (as in crossbeam's array channel); pairs with the
                // consumer's Release head store.
                fence(Ordering::SeqCst);
                let head = self.head.load(Ordering::Relaxed);
                if head.wrapping_add(self.one_lap) == pos {
                    let v = match value.take() {
                        Some(v) => v,
                        None => (make.take().expect("make runs once"))(),
                    };
                    // Announce the eviction, then re-check for a close:
                    // `fold` waits for announced evictions (step 7).
                    // Relaxed: ordered by the SeqCst fence below.
                    self.cold.evicting.fetch_add(1, Ordering::Relaxed);
                    // SeqCst: pairs with the fence in `fold`.
                    fence(Ordering::SeqCst);
                    // A close hands `v` back, to be dropped (user code)
                    // only once out of the window.
                    let outcome =
                        if self.producers.tail.load(Ordering::Relaxed) & self.mark_bit != 0 {
                            Err(v)
                        } else {
                            Ok(self.force_push(tail, v))
                        };
                    // Release: pairs with the Acquire load in `fold`, so
                    // the fold sees this eviction's counts.
                    self.cold.evicting.fetch_sub(1, Ordering::Release);
                    match outcome {
                        Err(v) => return refuse(Some(v), rest, Push::Closed),
                        Ok(Ok((evicted, parked))) => {
                            // User code (a waker, the evicted value's
                            // `Drop`) runs only now, outside the
                            // counted eviction window (step 7).
                            contained(
                                || {
                                    if parked {
                                        self.wake(&self.consumer);
                                    }
                                    drop(evicted);
                                },
                                rest,
                            );
                            return Push::Accepted;
                        }
                        Ok(Err(v)) => value = Some(v),
                    }
                }
                // `snooze`, not `spin`: the consumer may be preempted
                // between its `head` and stamp stores; yield to it after a
                // few rounds instead of burning the time slice.
                backoff.snooze();
                tail = self.producers.tail.load(Ordering::Relaxed);
            } else {
                // Another producer claimed `pos` and we read a stale tail.
                backoff.snooze();
                tail = self.producers.tail.load(Ordering::Relaxed);
            }
        }
    }

    /// The `head` at which this ring is full, if it is an open `DropNewest`
    /// ring and full now (`tail` a lap ahead of `head`): the witness a
    /// publisher keeps to refuse its next pushes by
    /// [`Ring::still_full_at`] (`full_route.rs`).
    pub(crate) fn full_at(&self) -> Option<usize> {
        if self.policy != Overflow::DropNewest {
            return None;
        }
        // Relaxed: as at the start of `push_with`.
        let mut tail = self.producers.tail.load(Ordering::Relaxed);
        if tail & self.flag_bits != 0 {
            // A leased ring's position is in its holder's cursor (the
            // holder's memory only: every other producer converts a leased
            // ring before it refuses into it).
            tail = self.leased_tail(tail)?;
        }
        // Acquire: as in `room`.
        let head = self.head.load(Ordering::Acquire);
        (tail.wrapping_sub(head) == self.one_lap).then_some(head)
    }

    /// Whether the ring is still full at `witness` (from
    /// [`Ring::full_at`]) and open: then the push is refused, and the
    /// caller counts the drop (`full_route.rs`); else it goes to
    /// [`Ring::push_with`].
    ///
    /// A `head` still at `witness` means the ring is still full: `tail`
    /// was seen a lap ahead of it, never moves back, and never runs more
    /// than a lap ahead of `head`. That load is
    /// the drop's linearization point, as `room`'s for a full ring: so a
    /// refusal costs the consumer's line (`head` and `closed` share it)
    /// and the drop count, not `tail`, the room check and the policy tests.
    #[inline(always)]
    pub(crate) fn still_full_at(&self, witness: usize) -> bool {
        // Acquire: as in `room`. Relaxed `closed`: set before the mark bit;
        // a close not yet visible has not returned, and the drop comes
        // before it.
        self.head.load(Ordering::Acquire) == witness && !self.closed.load(Ordering::Relaxed)
    }

    /// For a publish that makes the values of several rings before it
    /// claims their slots (`deliver/batch.rs`): the `tail` at which this
    /// ring's next push would take the fast path (the ring open, no consumer
    /// parked, a free slot), or `None` for a push that goes the usual way
    /// ([`Ring::push_with`]).
    #[inline(always)]
    pub(crate) fn peek_free(&self) -> Option<usize> {
        if self.policy == Overflow::DropOldest {
            return None;
        }
        // Relaxed: a hint, as at the start of `push_with`; the claim's CAS
        // in `claim_made` compares it with the latest value.
        let tail = self.producers.tail.load(Ordering::Relaxed);
        if tail & self.flag_bits != 0 {
            return None;
        }
        matches!(self.room(tail, self.index(tail)), Room::Free).then_some(tail)
    }

    /// Claims the slot that [`Ring::peek_free`] found free at `tail`, for a
    /// value made since (step 1); `false` if `tail` moved meanwhile (another
    /// claim, a close, a parked consumer). A claim that succeeds has room
    /// still: `head` only moves on.
    #[inline(always)]
    pub(crate) fn claim_made(&self, tail: usize) -> bool {
        self.claim(tail, self.after(tail, self.index(tail))).is_ok()
    }

    /// Writes `v` into the slot at `tail`, which [`Ring::claim_made`]
    /// claimed from a `tail` without flags: no wake-up is owed (step 4).
    #[inline(always)]
    pub(crate) fn fill_made(&self, tail: usize, v: T) -> Push {
        self.publish_slot(self.slot_at(self.index(tail)), tail, v)
    }

    /// Pushes `v`, a value made before its claim, from `tail`, a hint: the
    /// rounds of [`Ring::push_with`] after its first, for a value whose
    /// [`Ring::claim_made`] failed.
    #[cold]
    pub(crate) fn push_made(&self, tail: usize, v: T, rest: Tail<'_, T>, lane: Lane) -> Push {
        self.push_contended::<fn() -> T>(tail, Some(v), None, rest, lane)
    }

    /// Test builds: a push of `v` alone (no route around it), counting any
    /// refusal in the shared counter.
    #[cfg(test)]
    pub(crate) fn push_alone(&self, v: T) -> Push {
        self.push_with(|| v, Tail::none(), Lane::SHARED)
    }

    /// Refuses a push into a full ring, counted in `lane`.
    #[cold]
    fn drop_newest(&self, lane: Lane) -> Push {
        self.count_refusal(lane);
        Push::Dropped
    }

    /// Evicts the oldest value to make room for `v`, as `ArrayQueue::force_push`.
    ///
    /// `tail` was observed with the slot at its position full. Returns the
    /// evicted value, for the caller to drop outside the eviction window,
    /// and whether the consumer must be woken (also outside it: a task
    /// waker is user code), or `v` back if the consumer moved first.
    #[cold]
    fn force_push(&self, tail: usize, v: T) -> Result<(T, bool), T> {
        let pos = self.pos(tail);
        let new_pos = self.next(pos);
        let head = pos.wrapping_sub(self.one_lap);
        let new_head = new_pos.wrapping_sub(self.one_lap);
        // AcqRel: the winner of `head` owns the oldest slot. Pairs with the
        // consumer's head CAS in `try_pop`, which competes for the same slot.
        if self
            .head
            .compare_exchange(head, new_head, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return Err(v);
        }
        // Move `tail` past the slot. Other producers see the slot as full and
        // wait for the stamp, so only a close or park can change `tail` now.
        // A CAS loop keeps the mark bit. The park bit can appear here: with
        // capacity 1, `head == pos(tail)` between the two CASes, so the
        // consumer sees an empty ring and parks; clearing the bit obliges us
        // to wake it, as in `push_with` (step 4), once out of the window.
        let mut cur = tail;
        loop {
            let new_tail = new_pos | (cur & self.mark_bit);
            // Release: as the claim in `push_with` (step 5a); the slot is
            // handed over by its stamp.
            match self.producers.tail.compare_exchange_weak(
                cur,
                new_tail,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        let slot = self.slot(pos);
        // SAFETY: winning the head CAS made us the owner of the oldest slot,
        // whose value was published by a Release stamp we read with Acquire
        // (the stamp load in `push_with`), and no consumer can claim it now.
        let old = slot
            .value
            .with_mut(|p| unsafe { std::ptr::replace(p, MaybeUninit::new(v)).assume_init() });
        // SAFETY: as for the value just above: we own the slot until the
        // Release stamp store below.
        unsafe { self.sample_sent(pos) };
        // Release: pairs with the consumer's Acquire stamp load.
        slot.stamp.store(pos.wrapping_add(1), Ordering::Release);
        self.count_loss(&self.cold.overwritten);
        self.raise_high_water(self.cap);
        Ok((old, cur & self.park_bit != 0))
    }
}
