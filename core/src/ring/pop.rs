//! Steps 3 and 5a, the consumer side: take the value at `head`, free its
//! slot; answer `Empty` or `Disconnected` only when no claim is in flight at
//! `head`; and, under `DropOldest`, report an eviction before the event
//! after it.

use super::{PopError, Ring, Slot};
use crate::{
    policy::Overflow,
    sync::{
        Backoff,
        atomic::{Ordering, fence},
    },
};

impl<T> Ring<T> {
    /// Takes the oldest value.
    ///
    /// # Safety
    ///
    /// - Only one thread at a time may call the consumer-side methods
    ///   (`try_pop`, `wait`, `observe_len`, `take_lag`).
    #[inline]
    pub(crate) unsafe fn try_pop(&self) -> Result<T, PopError> {
        if self.is_solo() {
            // SAFETY: the caller's contract, passed on.
            unsafe { self.try_pop_solo() }
        } else {
            // SAFETY: the caller's contract, passed on.
            unsafe { self.try_pop_multi() }
        }
    }

    /// Takes up to `max` values in order, handing each to `f`, and stops
    /// early when the ring is empty or closed. Returns how many it took, and
    /// why it stopped early. The same steps as `try_pop` per value, with the
    /// mode test made once per call.
    ///
    /// # Safety
    ///
    /// - As [`Ring::try_pop`].
    #[inline]
    pub(crate) unsafe fn pop_each(
        &self,
        max: usize,
        f: impl FnMut(T),
    ) -> (usize, Option<PopError>) {
        if self.is_solo() {
            // SAFETY: the caller's contract, passed on.
            unsafe { self.pop_each_solo(max, f) }
        } else {
            // SAFETY: the caller's contract, passed on.
            unsafe { self.pop_each_multi(max, f) }
        }
    }

    /// `pop_each` for multi-producer rings.
    ///
    /// Without evictions (every policy but `DropOldest`) only this consumer
    /// writes `head`, so the loop keeps it in a local instead of loading it
    /// again per value; a slot not yet written goes to `try_pop_multi`,
    /// which answers or waits as step 5a says.
    ///
    /// # Safety
    ///
    /// - As [`Ring::try_pop`].
    #[inline(always)]
    unsafe fn pop_each_multi(&self, max: usize, mut f: impl FnMut(T)) -> (usize, Option<PopError>) {
        let mut taken = 0;
        if self.policy == Overflow::DropOldest {
            while taken < max {
                // SAFETY: the caller's contract, passed on.
                match unsafe { self.try_pop_multi() } {
                    Ok(v) => {
                        taken += 1;
                        f(v);
                    }
                    Err(e) => return (taken, Some(e)),
                }
            }
            return (taken, None);
        }
        // Relaxed: our own last store, or the initial value (no producer
        // writes `head` of these rings).
        let mut head = self.head.load(Ordering::Relaxed);
        while taken < max {
            let (slot, index) = self.place(head);
            // Acquire: pairs with the producer's Release stamp store (step 2).
            let stamp = slot.stamp.load(Ordering::Acquire);
            if head.wrapping_add(1) == stamp {
                let new_head = self.after(head, index);
                // SAFETY: `stamp == head + 1` (Acquire), and only we move
                // `head` of a ring without evictions.
                let value = unsafe { self.take_moving_head(slot, head, new_head) };
                head = new_head;
                taken += 1;
                // Handed on from here, not from a value the slow path below
                // also assigns: a merged value went through a stack copy per
                // event, whose overlapping moves of a large event stalled
                // store forwarding (64 B events drained 4 x slower than
                // single-producer ones with the same instructions).
                f(value);
                continue;
            }
            // SAFETY: the caller's contract, passed on.
            match unsafe { self.try_pop_multi() } {
                Ok(v) => {
                    // Relaxed: the store `try_pop_multi` just made.
                    head = self.head.load(Ordering::Relaxed);
                    taken += 1;
                    f(v);
                }
                Err(e) => return (taken, Some(e)),
            }
        }
        (taken, None)
    }

    /// `try_pop` for multi-producer rings.
    ///
    /// # Safety
    ///
    /// - As [`Ring::try_pop`].
    #[inline(always)]
    unsafe fn try_pop_multi(&self) -> Result<T, PopError> {
        let backoff = Backoff::new();
        // Relaxed: only the consumer and `force_push` write `head`; a stale
        // value is caught by the stamp check or the head CAS.
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            let slot = self.slot(head);
            // Acquire: pairs with the producer's Release stamp store (step 2).
            let stamp = slot.stamp.load(Ordering::Acquire);
            if head.wrapping_add(1) == stamp {
                let new_head = self.next(head);
                if self.policy != Overflow::DropOldest {
                    // SAFETY: `stamp == head + 1` (Acquire), and only we move
                    // `head` of a ring without evictions.
                    return Ok(unsafe { self.take_moving_head(slot, head, new_head) });
                }
                // AcqRel: competes with `force_push` for the slot.
                if let Err(actual) = self.head.compare_exchange_weak(
                    head,
                    new_head,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                ) {
                    head = actual;
                    continue;
                }
                // SAFETY: `stamp == head + 1` (Acquire), and the CAS made the
                // slot ours.
                return Ok(unsafe { self.take(slot, head) });
            } else if stamp == head || self.policy != Overflow::DropOldest {
                // Not written: a ring without evictions leaves a slot's
                // stamp at what its last producer wrote, a lap ago (or at
                // its first position's, never written).
                if let Some(err) = self.unwritten(head, &backoff) {
                    return Err(err);
                }
            } else {
                // `force_push` moved `head` under us.
                backoff.snooze();
                head = self.head.load(Ordering::Relaxed);
            }
        }
    }

    /// Reads the value at `head` of a ring without evictions and frees its
    /// slot by moving `head` on to `new_head` (step 3): its producers learn
    /// of the room from `head`, and the slot's line is never written here.
    ///
    /// # Safety
    ///
    /// - As [`Ring::try_pop`]: the caller is the only consumer.
    /// - The ring's policy is not `DropOldest`; `slot` is the slot of
    ///   `head`, whose stamp the caller saw equal to `head + 1` with Acquire
    ///   (the value is written); `new_head` is the position after `head`.
    #[inline(always)]
    unsafe fn take_moving_head(&self, slot: &Slot<T>, head: usize, new_head: usize) -> T {
        // SAFETY: the value is written, and ours until `head` moves (the
        // caller's contract).
        let value = slot.value.with(|p| unsafe { (*p).assume_init_read() });
        // SAFETY: as for the value just above; the `head` store frees the
        // slot.
        unsafe {
            self.sample_received(head, || {
                // Release: pairs with the producers' Acquire `head` load in
                // `room` (step 3): our read happens before their next write;
                // and with the SeqCst `head` loads of `len` and the counters.
                self.head.store(new_head, Ordering::Release);
                self.freed();
            });
        }
        value
    }

    /// Reads the value at `head` of a `DropOldest` ring and frees its slot
    /// by its stamp (step 3).
    ///
    /// # Safety
    ///
    /// - As [`Ring::try_pop`]: the caller is the only consumer.
    /// - `slot` is the slot of `head`, whose stamp the caller saw equal to
    ///   `head + 1` with Acquire (the value is written), and the caller owns
    ///   `head` (it won the CAS that moved `head` past it).
    #[inline(always)]
    unsafe fn take(&self, slot: &Slot<T>, head: usize) -> T {
        // SAFETY: the value is written and ours (the caller's contract).
        let value = slot.value.with(|p| unsafe { (*p).assume_init_read() });
        // SAFETY: as for the value just above; `free` frees the slot.
        unsafe {
            self.sample_received(head, || {
                // Release: pairs with the producers' Acquire stamp load in
                // `room` (step 3): our read happens before their next write.
                slot.stamp
                    .store(head.wrapping_add(self.one_lap), Ordering::Release);
                self.freed();
            });
        }
        value
    }

    /// Step 6, as soon as a slot is free and before any user code (a
    /// latency recorder) runs: a panic there must not leave a parked
    /// producer asleep with room.
    #[inline(always)]
    fn freed(&self) {
        if let Overflow::Block(_) = self.policy {
            self.notify_space();
        }
    }

    /// What a consumer that found the slot at `head` unwritten answers
    /// (step 5a): `Empty` or `Disconnected` when no producer has claimed
    /// `head`; `None`, after a step of `backoff`, when one has and is
    /// writing it, which the caller waits out by looking again.
    ///
    /// Waiting, not answering `Empty`, is what makes a receive linearizable:
    /// a producer that claimed `head` and was preempted would otherwise hide
    /// every later slot, including those of publishes that have returned.
    /// The wait is bounded by the few instructions between a claim and its
    /// stamp store (no user code runs there), and the caller's backoff
    /// yields to a preempted producer.
    ///
    /// On a bus that has had one producer at a time, no claim can be in
    /// flight behind the one at `head`: that producer makes its claims one
    /// after another, and `head`'s is its latest. So `Empty` needs no look
    /// at `tail` while the ring is open, and the consumer that keeps up
    /// with its producer stops taking the line that each claim's CAS must
    /// then take back (`bench-report`, scenario 9).
    #[inline]
    fn unwritten(&self, head: usize, backoff: &Backoff) -> Option<PopError> {
        // Acquire: pairs with the Release claim CAS of another producer
        // that this thread's own claims read (`Ring::claim`): if this
        // thread's publish followed a second producer's claim, it sees that
        // producer's `second_producer` store. A compiler fence on x86.
        fence(Ordering::Acquire);
        // Relaxed: `closed` is set before the mark bit; one not yet visible
        // means the close has not returned, and this receive comes before
        // it. `one_producer`: see its ordering.
        if self.totals.one_producer() && !self.closed.load(Ordering::Relaxed) {
            self.found_empty();
            return Some(PopError::Empty);
        }
        // Relaxed: the data comes with the stamp, and the mark bit and the
        // position travel in one value (step 5). A publish that returned
        // before this receive began wrote `tail` first, so by coherence this
        // load sees its claim, or a later value.
        let tail = self.producers.tail.load(Ordering::Relaxed);
        if tail & self.lease_bit() != 0 {
            // Leased: the single-producer answer (`ring/lease.rs`, L6).
            return self.unwritten_leased(head);
        }
        if self.pos(tail) != head {
            backoff.snooze();
            return None;
        }
        if tail & self.mark_bit != 0 {
            return Some(PopError::Disconnected);
        }
        self.found_empty();
        Some(PopError::Empty)
    }

    /// `try_pop` for the receiver of a `DropOldest` ring, which reports
    /// evictions as lags before the first event after them. `own` is the
    /// consumer's own copy of `head`, as it last moved it or reported it
    /// (see [`Ring::take_lag`]). A `head` that differs from it was moved by
    /// evictions: the pop answers [`PopError::Lagged`] instead of taking the
    /// event after the gap, and `take_lag` then reports the gap.
    ///
    /// # Safety
    ///
    /// - As [`Ring::try_pop`].
    #[inline]
    pub(crate) unsafe fn try_pop_oldest(&self, own: &mut usize) -> Result<T, PopError> {
        let mut value = None;
        // SAFETY: the caller's contract, passed on.
        let (_, stopped) = unsafe { self.pop_each_oldest(own, 1, |v| value = Some(v)) };
        // One taken, or a reason to stop: `stopped` is never `None` then.
        value.ok_or(stopped.unwrap_or(PopError::Empty))
    }

    /// [`Ring::try_pop_oldest`] up to `max` times, handing each value to
    /// `f`; stops early at a gap (`Lagged`, for the caller to report with
    /// `take_lag`), an empty ring or a closed one. Returns how many it took,
    /// and why it stopped early.
    ///
    /// Each value goes to `f` from the branch that took it: passed through
    /// a `Result` and the caller's own, a 64-byte event was copied at
    /// overlapping offsets that stalled store forwarding, and a drain of
    /// such events cost 10 x one of `u64`s.
    ///
    /// # Safety
    ///
    /// - As [`Ring::try_pop`].
    #[inline]
    pub(crate) unsafe fn pop_each_oldest(
        &self,
        own: &mut usize,
        max: usize,
        mut f: impl FnMut(T),
    ) -> (usize, Option<PopError>) {
        debug_assert_eq!(self.policy, Overflow::DropOldest);
        let backoff = Backoff::new();
        let mut taken = 0;
        while taken < max {
            // Relaxed: only the consumer and `force_push` write `head`; the
            // CAS below settles any race with an eviction.
            let head = self.head.load(Ordering::Relaxed);
            if head != *own {
                return (taken, Some(PopError::Lagged));
            }
            let slot = self.slot(head);
            // Acquire: pairs with the producer's Release stamp store (step 2).
            let stamp = slot.stamp.load(Ordering::Acquire);
            if head.wrapping_add(1) == stamp {
                let new_head = self.next(head);
                // AcqRel: competes with `force_push` for the slot. A failure
                // means an eviction took it: a gap to report first.
                if self
                    .head
                    .compare_exchange(head, new_head, Ordering::AcqRel, Ordering::Relaxed)
                    .is_err()
                {
                    return (taken, Some(PopError::Lagged));
                }
                *own = new_head;
                // SAFETY: `stamp == head + 1` (Acquire), and the CAS made the
                // slot ours.
                let value = unsafe { self.take(slot, head) };
                taken += 1;
                f(value);
            } else if stamp == head {
                if let Some(err) = self.unwritten(head, &backoff) {
                    return (taken, Some(err));
                }
            } else {
                // An eviction moved `head` under us; the next round reports it.
                backoff.snooze();
            }
        }
        (taken, None)
    }
}
