//! Single-producer mode: pushes with plain stores, no read-modify-write.
//!
//! On a bus built with [`Bus::single_producer`](crate::Bus::single_producer)
//! one [`SoloPublisher`](crate::SoloPublisher) is the only producer of every
//! ring, as the disruptor's `build_single_producer`. On any other bus, the
//! holder of the bus's lease pushes this way into the rings still leased
//! (`ring/lease.rs`). Its position lives in
//! the ring's [`SoloCursor`], which only it writes; `tail` keeps the flags, which the
//! consumer (park) and closers (mark, final) set with RMWs as before.
//!
//! Slots are written by the producer only, as in an SPSC queue such as
//! rtrb: the consumer frees a slot by moving `head`, not by storing its
//! stamp. So a slot's cache line travels one way, producer to consumer, and
//! a busy-polling consumer does not pull the line the producer writes next
//! into its own cache in the modified state.
//!
//! # Protocol (numbers continue the MPSC protocol in `ring/mod.rs`)
//!
//! S1. *Push.* The producer checks the mark bit (Relaxed). The ring is full
//!     when the consumer's position is a lap behind the producer's. The
//!     producer keeps the last `head` it read and re-reads `head` (Acquire)
//!     only when that copy says full; the consumer stores `head` (Release)
//!     after it read the value, so that read happens before the producer
//!     overwrites the slot. The producer writes the value and stores the
//!     stamp `pos + 1` with Release; the consumer's Acquire load of the
//!     stamp pairs with it (step 2 as before). No CAS.
//! S2. *Publish epoch.* Before the pushes of one publish, the producer
//!     stores an odd value in the bus's [`Epoch`] and runs a light
//!     barrier; after them it stores the next even epoch with Release. A
//!     closer sets the mark bit, runs a heavy barrier, loads the epoch, and
//!     if it is odd waits until it changes. Either the producer's mark check
//!     sees the mark, or the closer sees the odd epoch and waits for the
//!     publish to end; so once the closer sets the *final* bit, no push can
//!     land any more. A consumer reports `Disconnected` only after seeing
//!     the final bit (Acquire, pairing with the closer's Release, which
//!     follows its Acquire of the even epoch that the producer stored with
//!     Release after its stamps), so no event is stranded.
//! S3. *No lost wake-up.* After the pushes the producer runs one more light
//!     barrier and loads each ring's park bit; a consumer sets the park bit
//!     (CAS), runs a heavy barrier and re-checks the stamp at `head` before
//!     sleeping. Either the producer sees the bit (and wakes under the
//!     waiter mutex) or the consumer sees the stamp.
//! S4. *Close.* Every close waits for the final bit, so `fold` (which runs
//!     after a close returns) counts a settled ring. A shutdown marks every
//!     ring of the bus first, then waits out the publish once for all of
//!     them (`Ring::close_marked`, `Ring::close_settled`), then sets each
//!     final bit. A close made by the
//!     producing thread inside its own publish (an `E::clone` that
//!     unsubscribes) does not wait for itself: the rest of that publish
//!     checks the mark in program order.
//! S5. *Block.* A full `Block` ring makes the producer wait as in step 6
//!     (spin, yield, then park with the heavy barrier; the consumer frees a
//!     slot by storing `head`, then runs the light barrier and reads
//!     `wanted`). Before it parks, the producer *pauses* the publish: it
//!     runs S3 for the rings of the publish's route (a receiver parked on
//!     one it already served may be the thread that would free this one;
//!     the others cost at most a spurious wake), then stores the
//!     next even epoch with Release, so a closer does not wait for a parked
//!     producer (S2); a close wakes it after setting the mark
//!     (`Closed::space`). After the park it *resumes*: the next odd epoch,
//!     the light barrier, then the mark check again, as at the start of a
//!     publish. A paused publish is, for closers, two publishes.
//!
//! Light and heavy barriers (`barrier.rs`) pair like two `fence(SeqCst)`.
//! Where Linux `membarrier` is available the light one is a compiler fence
//! and the heavy one the system call, so a publish pays no fence at all and
//! the rare side (a receiver about to sleep, a close) pays about a
//! microsecond; elsewhere both are `fence(SeqCst)`. Loom models them as
//! fences.

use std::{cell::Cell, task::Waker, time::Instant};

use crossbeam_utils::CachePadded;

use super::{
    Layout, Mode, Overflow, PopError, Push, Ring, SpaceWait,
    lanes::Lane,
    lease_state::{Fallback, Lease},
    park::store_waker,
};
use crate::{
    barrier,
    sync::{
        Arc, Backoff,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    unwind::FirstPanic,
};

crate::sync::thread_local! {
    /// The [`Epoch`] (as an address) of the single-producer bus this
    /// thread is publishing on, or 0.
    static PUBLISHING: Cell<usize> = const { Cell::new(0) };
}

/// The single producer's publish epoch, odd while it publishes (S2), and
/// the bus's lease (`ring/lease.rs`), which says whether a multi-producer
/// bus has a single producer now. One per bus, owned by the bus's shared
/// state; each single-producer or leased ring holds it for its closers.
#[derive(Debug)]
pub(crate) struct Epoch {
    count: CachePadded<AtomicU64>,
    pub(crate) lease: Lease,
}

impl Default for Epoch {
    /// The epoch of a multi-producer bus, its lease free.
    fn default() -> Self {
        Self::with_lease(Lease::new())
    }
}

impl Epoch {
    /// The address that `PUBLISHING` holds while this bus publishes.
    #[inline]
    fn addr(&self) -> usize {
        self as *const Self as usize
    }

    /// A new epoch (even: no publish in flight) holding `lease`.
    fn with_lease(lease: Lease) -> Self {
        Self {
            count: CachePadded::new(AtomicU64::new(0)),
            lease,
        }
    }

    /// The epoch of a single-producer bus, whose lease is never taken: its
    /// rings are single-producer by construction.
    pub(crate) fn single_producer() -> Self {
        Self::with_lease(Lease::revoked())
    }

    /// Revokes the bus's lease for good (`ring/lease.rs`, L2), before the
    /// caller's first publish as a second producer: returns once no
    /// plain-store push can land any more, except from inside the holder's
    /// own publish, which cannot be waited for (L5).
    #[inline]
    pub(crate) fn revoke_lease(&self) {
        if !self.lease.revoked_for_good() {
            self.revoke_lease_slow();
        }
    }

    #[cold]
    #[inline(never)]
    fn revoke_lease_slow(&self) {
        if !self.lease.start_revoke() || self.publishing_here() {
            // Complete already; or a callback inside the holder's publish
            // (L5), for a later revoker to complete.
            return;
        }
        self.wait_out_publish();
        self.lease.finish_revoke();
    }

    /// Whether this thread is inside a publish of this epoch's producer
    /// (an `E::clone` or a waker that calls back into the bus).
    pub(crate) fn publishing_here(&self) -> bool {
        PUBLISHING.with(|p| p.get()) == self.addr()
    }

    /// Waits out a publish in flight (S2), for a caller that has made a
    /// change the producer checks at the start of a publish (a mark bit, a
    /// revoked lease): runs the heavy barrier that pairs with the
    /// producer's light one in `SoloGuard::begin`, then, if the epoch is
    /// odd, waits until it changes. Not from inside that publish
    /// ([`Epoch::publishing_here`]), which would wait for itself.
    pub(crate) fn wait_out_publish(&self) {
        // Pairs with the producer's light barrier in `SoloGuard::begin`.
        barrier::heavy();
        // Acquire: pairs with the Release epoch store that ends a publish,
        // so its stamps (and its cursor) are visible to the caller.
        let seen = self.count.load(Ordering::Acquire);
        if seen & 1 == 1 {
            // Bounded by one publish, which runs no user code but `E::clone`
            // and a condvar notify, or by its pause before a `Block` wait.
            let backoff = Backoff::new();
            while self.count.load(Ordering::Acquire) == seen {
                backoff.snooze();
            }
        }
    }
}

/// The single producer's position and its copy of the consumer's
/// ([`Mode::Solo`]): written only by the producer (statistics read
/// `tail`), on a line of the ring that no fast path of the consumer's
/// writes or reads (see [`Ring`]'s layout).
#[derive(Default)]
pub(super) struct SoloCursor {
    /// The producer's position.
    tail: AtomicUsize,
    /// The consumer's position as the producer last read it (S1); never
    /// ahead of `head`.
    head_seen: AtomicUsize,
}

impl SoloCursor {
    /// The producer's position (`Relaxed` for statistics and `Drop`).
    #[inline]
    pub(super) fn tail(&self, order: Ordering) -> usize {
        self.tail.load(order)
    }
}

/// One single-producer publish in progress: odd epoch set, barrier run. Its
/// `Drop` ends the publish (also on a panic in `E::clone`), so closers never
/// wait on an epoch that stays odd.
pub(crate) struct SoloGuard<'a, T> {
    epoch: &'a Epoch,
    /// The publish's route, which a pause settles (S5).
    route: &'a [Arc<Ring<T>>],
    /// The first panic of a task waker that a pause woke, for the end of
    /// the publish to raise ([`SoloGuard::take_panic`]).
    panic: Cell<FirstPanic>,
    /// The even epoch that ends this publish; a `Block` wait that pauses
    /// the publish (S5) moves it on.
    next: Cell<u64>,
    prev_publishing: usize,
    /// The lease, for a publish of its holder (`ring/lease.rs`).
    lease: Option<&'a Lease>,
    /// The lease was found revoked when a paused publish resumed (L4): the
    /// rest of the publish goes the multi-producer way.
    revoked: Cell<bool>,
}

impl<'a, T> SoloGuard<'a, T> {
    /// Starts a publish to `route` on the bus whose epoch is `epoch` (step
    /// S2).
    #[inline]
    pub(crate) fn begin(epoch: &'a Epoch, route: &'a [Arc<Ring<T>>]) -> Self {
        // Relaxed: only this producer writes the epoch.
        let odd = epoch.count.load(Ordering::Relaxed).wrapping_add(1) | 1;
        epoch.count.store(odd, Ordering::Relaxed);
        let prev_publishing = PUBLISHING.with(|p| p.replace(epoch.addr()));
        // Pairs with the closer's heavy barrier in `close_solo` (S2).
        barrier::light();
        Self {
            epoch,
            route,
            panic: Cell::new(FirstPanic::new()),
            next: Cell::new(odd.wrapping_add(1)),
            prev_publishing,
            lease: None,
            revoked: Cell::new(false),
        }
    }

    /// Starts a publish of the lease holder (L2): as [`SoloGuard::begin`],
    /// then, after its barrier, checks that the bus's lease is still held.
    /// `None` (the publish's epoch ended) if it was revoked: the caller
    /// publishes the multi-producer way, and holds the lease no more.
    #[inline]
    pub(crate) fn begin_leased(epoch: &'a Epoch, route: &'a [Arc<Ring<T>>]) -> Option<Self> {
        let mut guard = Self::begin(epoch, route);
        if !epoch.lease.held() {
            return None;
        }
        guard.lease = Some(&epoch.lease);
        Some(guard)
    }

    /// Whether the lease was revoked while a `Block` wait paused this
    /// publish (L4).
    #[inline(always)]
    pub(crate) fn revoked(&self) -> bool {
        self.revoked.get()
    }

    /// Pauses the publish before a `Block` wait parks (S5): settles every
    /// ring of the route (step S3, as at the end of a publish: those served
    /// so far need it, the others cost at most a spurious wake; a waker's
    /// panic is kept for [`SoloGuard::take_panic`]), then ends the epoch,
    /// so that closers do not wait for the parked producer.
    #[cold]
    fn pause(&self) {
        self.pushed();
        let mut panic = self.panic.take();
        for ring in self.route {
            ring.settle_solo(&mut panic);
        }
        self.panic.set(panic);
        // Release: as the store in `drop`: a closer that sees the even epoch
        // sees the stamps of the pushes made so far (S2).
        self.epoch.count.store(self.next.get(), Ordering::Release);
    }

    /// The first panic of a waker that a pause woke, if any: the end of the
    /// publish settles every ring, then raises it.
    #[inline]
    pub(crate) fn take_panic(&self) -> FirstPanic {
        self.panic.take()
    }

    /// Resumes a publish paused by [`SoloGuard::pause`], as
    /// [`SoloGuard::begin`] starts one: the next odd epoch, then the light
    /// barrier (S2). The caller checks the mark bit again after it.
    #[cold]
    fn resume(&self) {
        let odd = self.next.get().wrapping_add(1);
        // Relaxed: only this producer writes the epoch; the barrier below
        // orders it, as in `begin`.
        self.epoch.count.store(odd, Ordering::Relaxed);
        self.next.set(odd.wrapping_add(1));
        // Pairs with the closer's heavy barrier in `close_solo` (S2), and
        // with a revoker's in `Epoch::revoke_lease` (L2).
        barrier::light();
        if let Some(lease) = self.lease
            && !lease.held()
        {
            self.revoked.set(true);
        }
    }

    /// Runs the barrier of step S3; call once, after every push of the
    /// publish and before [`Ring::settle_solo`].
    #[inline]
    pub(crate) fn pushed(&self) {
        // Pairs with the consumer's heavy barrier in `park_solo` (S3).
        barrier::light();
    }
}

impl<T> Drop for SoloGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // Release: pairs with the closer's Acquire load of the epoch, so a
        // closer that sees the publish end sees its stamps (S2).
        self.epoch.count.store(self.next.get(), Ordering::Release);
        PUBLISHING.with(|p| p.set(self.prev_publishing));
    }
}

impl<T> Ring<T> {
    /// Turns single-producer mode on, for the bus whose epoch is `epoch`.
    /// `DropNewest` and `Block` rings support it, not `DropOldest` (the
    /// caller checks).
    #[must_use]
    pub(crate) fn solo(mut self, epoch: Arc<Epoch>) -> Self {
        debug_assert_ne!(self.policy, Overflow::DropOldest);
        self.mode = Mode::Solo(epoch);
        self
    }

    /// The final bit: set by the closer once no push can land (S2). In
    /// single-producer mode `tail`'s position bits are unused, so the lowest
    /// lap bit is free.
    #[inline]
    pub(super) fn final_bit(&self) -> usize {
        self.one_lap
    }

    /// Pushes without a read-modify-write (step S1). Wake-ups are settled
    /// afterwards by [`Ring::settle_solo`]. A full `Block` ring waits for
    /// space (S5), pausing the publish `guard` holds before it parks.
    ///
    /// # Safety
    ///
    /// - The caller is the ring's only producer (the bus's `SoloPublisher`,
    ///   through `&mut`), and holds `guard`, the [`SoloGuard`] for this
    ///   publish.
    #[inline]
    pub(crate) unsafe fn push_solo(
        &self,
        make: impl FnOnce() -> T,
        guard: &SoloGuard<'_, T>,
        lane: Lane,
    ) -> Push {
        // Relaxed: a late mark is caught by the epoch handshake (S2).
        if self.producers.tail.load(Ordering::Relaxed) & self.mark_bit != 0 {
            return Push::Closed;
        }
        // Only the `SoloPublisher` of a single-producer bus pushes this way
        // (the caller's contract), and every ring of that bus is made in
        // single-producer mode (`Bus::subscribe_with` refuses to make
        // another). Checked in debug builds only: the cursor is a field of
        // every ring, so the push needs no `Mode` match (a panicking one
        // cost the publish about 2 %, benches/src/bin/callgrind_solo.rs).
        debug_assert!(self.is_solo(), "push_solo on a multi-producer ring");
        // SAFETY: the caller's contract, passed on.
        match unsafe { self.push_own::<false, _>(make, guard, lane) } {
            Ok(push) => push,
            Err(_) => unreachable!("only a leased push falls back"),
        }
    }

    /// The push of S1 into a ring whose only producer the caller is: a
    /// single-producer ring, or a leased one (`LEASED`, `ring/lease.rs`).
    /// A leased push falls back to the multi-producer protocol with what
    /// it has ([`Fallback`]) when the lease was revoked while its `Block`
    /// wait paused the publish, or when the value's `make` (user code)
    /// converted or closed the ring.
    ///
    /// # Safety
    ///
    /// - As [`Ring::push_solo`], or, for `LEASED`, as
    ///   [`Ring::push_leased`], which checked the lease bit.
    #[inline(always)]
    pub(super) unsafe fn push_own<const LEASED: bool, F: FnOnce() -> T>(
        &self,
        make: F,
        guard: &SoloGuard<'_, T>,
        lane: Lane,
    ) -> Result<Push, Fallback<F, T>> {
        let cursor = &self.cursor;
        // Relaxed: only this producer writes its cursor.
        let pos = cursor.tail.load(Ordering::Relaxed);
        let seen = cursor.head_seen.load(Ordering::Relaxed);
        // Full when the consumer is a lap behind: the slot at `pos` still
        // holds the value written at `pos - lap`.
        if seen.wrapping_add(self.one_lap) == pos {
            // Acquire: pairs with the consumer's Release `head` store, made
            // after it read the value at `seen` (S1).
            let head = self.head.load(Ordering::Acquire);
            // Relaxed: the producer's own copy; no other thread reads it.
            cursor.head_seen.store(head, Ordering::Relaxed);
            if head.wrapping_add(self.one_lap) == pos {
                // `DropNewest` refuses inline, as in `push_with`.
                if matches!(self.policy, Overflow::DropNewest) {
                    self.count_refusal(lane);
                    return Ok(Push::Dropped);
                }
                if let Some(push) = self.full_solo(cursor, pos, guard, lane) {
                    return Ok(push);
                }
                if LEASED && guard.revoked() {
                    // Revoked while the wait paused the publish (L4).
                    return Err(Fallback::Make(make));
                }
            }
        }
        let slot = self.slot(pos);
        let v = make();
        if LEASED {
            // Relaxed: `make` is user code; a conversion or a close it made
            // runs on this thread, before this load (L5).
            let tail = self.producers.tail.load(Ordering::Relaxed);
            if tail & (self.lease_bit() | self.mark_bit) != self.lease_bit() {
                return Err(Fallback::Made(v, tail));
            }
        }
        // SAFETY: the only producer owns `pos`, and `head_seen` (loaded with
        // Acquire, and never ahead of `head`) is past `pos - lap`: the
        // consumer read the slot's previous value before it moved `head`.
        slot.value.with_mut(|p| unsafe { (*p).write(v) });
        // SAFETY: as for the value just above; the stamp is not stored.
        unsafe { self.sample_sent(pos) };
        // Release: pairs with the consumer's Acquire stamp load (step 2).
        slot.stamp.store(pos.wrapping_add(1), Ordering::Release);
        // Relaxed: read by statistics and `Drop`, and by a conversion
        // (L3), which comes after this publish ends.
        cursor.tail.store(self.next(pos), Ordering::Relaxed);
        Ok(Push::Accepted)
    }

    /// What a push does with a full ring (S1, S5) under the policies other
    /// than `DropNewest` (which `push_solo` refuses inline): `Block` waits
    /// ([`Ring::block_solo`]), then drops and counts if it timed out. `None`
    /// when there is room after all.
    #[cold]
    #[inline(never)]
    fn full_solo(
        &self,
        cursor: &SoloCursor,
        pos: usize,
        guard: &SoloGuard<'_, T>,
        lane: Lane,
    ) -> Option<Push> {
        let refused = match self.policy {
            Overflow::Block(_) => self.block_solo(cursor, pos, guard)?,
            _ => Push::Dropped,
        };
        if refused == Push::Dropped {
            self.count_refusal(lane);
        }
        Some(refused)
    }

    /// Waits for the slot at `pos` to be freed, for a `Block` ring found
    /// full (S5): spins, yields, then pauses the publish (`guard`, settling
    /// its rings) and parks until a consumer frees a slot,
    /// the ring closes, or the timeout passes. `None` when there is room
    /// now (`head_seen` is up to date); else `Closed`, or `Dropped` (for
    /// the caller to count) on timeout.
    #[cold]
    fn block_solo(
        &self,
        cursor: &SoloCursor,
        pos: usize,
        guard: &SoloGuard<'_, T>,
    ) -> Option<Push> {
        let Overflow::Block(timeout) = self.policy else {
            return Some(Push::Dropped);
        };
        let mut wait = SpaceWait::new();
        wait.start(timeout);
        loop {
            let in_time = match wait.spin() {
                Some(in_time) => in_time,
                None => {
                    guard.pause();
                    // Relaxed: run after the barrier of step 6, which
                    // orders them; the Acquire `head` load below makes the
                    // consumer's reads happen before our write.
                    let full = || {
                        self.head.load(Ordering::Relaxed).wrapping_add(self.one_lap) == pos
                            && self.producers.tail.load(Ordering::Relaxed) & self.mark_bit == 0
                    };
                    let in_time = self.park_producer(wait.deadline(), full);
                    guard.resume();
                    if guard.revoked() {
                        // The caller pushes the multi-producer way (L4).
                        return None;
                    }
                    in_time
                }
            };
            // Relaxed: as the check in `push_solo`; after `resume`, a close
            // this load misses waits for the publish (S2).
            if self.producers.tail.load(Ordering::Relaxed) & self.mark_bit != 0 {
                return Some(Push::Closed);
            }
            // Acquire: as in `push_solo` (S1).
            let head = self.head.load(Ordering::Acquire);
            // Relaxed: the producer's own copy; no other thread reads it.
            cursor.head_seen.store(head, Ordering::Relaxed);
            if head.wrapping_add(self.one_lap) != pos {
                return None;
            }
            if !in_time {
                return Some(Push::Dropped);
            }
        }
    }

    /// Wakes the consumer if it parked (step S3). Call after
    /// [`SoloGuard::pushed`], for every ring that accepted. The wake runs a
    /// task waker, user code: its panic is kept in `panic`, so the caller
    /// settles every ring before raising it.
    #[inline]
    pub(crate) fn settle_solo(&self, panic: &mut FirstPanic) {
        // Relaxed: ordered by the barrier in `SoloGuard::pushed` (S3).
        if self.producers.tail.load(Ordering::Relaxed) & self.park_bit != 0 {
            panic.run(|| self.wake_solo());
        }
    }

    #[cold]
    pub(super) fn wake_solo(&self) {
        // Relaxed: the waiter mutex orders the notification (step 4).
        let old = self
            .producers
            .tail
            .fetch_and(!self.park_bit, Ordering::Relaxed);
        if old & self.park_bit != 0 {
            self.wake(&self.consumer);
        }
    }

    /// `close` for single-producer mode, after its `fetch_or` of the mark
    /// bit returned `old`: waits out a publish in flight on `bus_epoch` (the
    /// ring's) unless the caller did (`waited`, after this mark), then sets
    /// the final bit (S2, S4). Returns whether this call closed the ring,
    /// and whether it found the consumer parked (the caller owes it a
    /// wake).
    #[cold]
    pub(super) fn close_solo(&self, bus_epoch: &Epoch, old: usize, waited: bool) -> (bool, bool) {
        let first = old & self.mark_bit == 0;
        if !waited && !bus_epoch.publishing_here() {
            // The stamps of the publish waited out are visible before
            // `final`.
            bus_epoch.wait_out_publish();
        }
        if !first {
            // Another closer is finishing: wait for its final bit, so that
            // every close returns with the ring settled (S4).
            let backoff = Backoff::new();
            // Acquire: pairs with that closer's AcqRel `fetch_or`.
            while self.producers.tail.load(Ordering::Acquire) & self.final_bit() == 0 {
                backoff.snooze();
            }
            return (false, false);
        }
        // AcqRel. Release: pairs with the consumer's Acquire load of the
        // final bit in `try_pop_solo` and `park_solo`, and with another
        // closer's Acquire wait above, so they see the stamps this closer
        // saw through the epoch (S2). Acquire: not needed for the park bit
        // it reads (the waiter mutex orders the wake, step 4); it makes this
        // RMW, like the mark `fetch_or` in `close`, see every earlier
        // Release RMW on `tail` (other closers' marks).
        let old = self
            .producers
            .tail
            .fetch_or(self.final_bit(), Ordering::AcqRel);
        (true, old & self.park_bit != 0)
    }

    /// `try_pop` in single-producer mode.
    ///
    /// # Safety
    ///
    /// - As [`Ring::try_pop`]: the caller is the only consumer.
    #[inline(always)]
    pub(super) unsafe fn try_pop_solo(&self) -> Result<T, PopError> {
        // Relaxed: only the consumer writes `head`.
        let head = self.head.load(Ordering::Relaxed);
        let block = matches!(self.policy, Overflow::Block(_));
        // SAFETY: the caller's contract, passed on; `head` is the ring's.
        unsafe { self.pop_solo_at(self.layout(), head, block) }.map(|(v, _)| v)
    }

    /// `pop_each` in single-producer mode: the steps of `try_pop_solo` per
    /// value, with the layout and the consumer's position in registers.
    ///
    /// # Safety
    ///
    /// - As [`Ring::try_pop`]: the caller is the only consumer.
    #[inline(always)]
    pub(super) unsafe fn pop_each_solo(
        &self,
        max: usize,
        mut f: impl FnMut(T),
    ) -> (usize, Option<PopError>) {
        let layout = self.layout();
        let block = matches!(self.policy, Overflow::Block(_));
        // Relaxed: only the consumer writes `head`.
        let mut head = self.head.load(Ordering::Relaxed);
        let mut taken = 0;
        while taken < max {
            // SAFETY: the caller's contract, passed on; `head` is the
            // ring's, as each step stores the next one.
            match unsafe { self.pop_solo_at(layout, head, block) } {
                Ok((v, next)) => {
                    head = next;
                    taken += 1;
                    f(v);
                }
                Err(e) => return (taken, Some(e)),
            }
        }
        (taken, None)
    }

    /// Takes the value at `head`, the consumer's position; returns it with
    /// the next position, which it stored.
    ///
    /// # Safety
    ///
    /// - As [`Ring::try_pop`]: the caller is the only consumer.
    /// - `head` is the value of `self.head`, and `layout` is the ring's.
    ///
    /// `block` says whether the ring's policy is `Block` (a pop then looks
    /// for a parked producer, S5), hoisted out of a caller's loop.
    #[inline(always)]
    unsafe fn pop_solo_at(
        &self,
        layout: Layout,
        head: usize,
        block: bool,
    ) -> Result<(T, usize), PopError> {
        // SAFETY: `head` is a position of this ring (the caller's contract),
        // and positions keep their index below `cap` (see `slot`).
        let slot = unsafe { self.buffer.get_unchecked(head & layout.mask) };
        // Acquire: pairs with the producer's Release stamp store (S1).
        let mut stamp = slot.stamp.load(Ordering::Acquire);
        if stamp != head.wrapping_add(1) {
            // Acquire: pairs with the closer's final `fetch_or` (S2).
            if self.producers.tail.load(Ordering::Acquire) & self.final_bit() == 0 {
                self.found_empty();
                return Err(PopError::Empty);
            }
            // Final: every push has landed; look once more.
            stamp = slot.stamp.load(Ordering::Acquire);
            if stamp != head.wrapping_add(1) {
                return Err(PopError::Disconnected);
            }
        }
        let next = layout.next(head);
        // SAFETY: `stamp == head + 1` (Acquire) shows the value is written,
        // and the sole consumer owns `head`.
        let value = slot.value.with(|p| unsafe { (*p).assume_init_read() });
        // SAFETY: as for the value just above; `free` frees the slot.
        unsafe {
            self.sample_received(head, || {
                // Release: frees the slot (S1): pairs with the producer's
                // Acquire `head` load, so our reads above happen before its
                // next write here; and with the Acquire head loads of
                // statistics.
                self.head.store(next, Ordering::Release);
                if block {
                    // S5, step 6, as soon as the slot is free and before
                    // any user code (a latency recorder) runs: a panic
                    // there must not leave the producer asleep with room.
                    self.notify_space();
                }
            });
        }
        Ok((value, next))
    }

    /// Parks the consumer (`waker` is `None`: sleep until woken or
    /// `deadline`), or registers `waker`, in single-producer mode (S3).
    /// Returns whether it registered (for `register`).
    ///
    /// # Safety
    ///
    /// - As [`Ring::try_pop`]: the caller is the only consumer.
    pub(super) unsafe fn park_solo(
        &self,
        waker: Option<&Waker>,
        deadline: Option<Instant>,
    ) -> bool {
        let mut guard = self.consumer.lock.lock();
        let head = self.head.load(Ordering::Relaxed);
        let slot = self.slot(head);
        let tail = self.producers.tail.load(Ordering::Relaxed);
        if !self.is_solo() && tail & self.lease_bit() == 0 {
            // A leased ring converted since the caller looked (L6): its
            // `tail` holds a position now. Look again, the multi-producer
            // way.
            return false;
        }
        // Acquire: as in `try_pop_solo`.
        if tail & self.final_bit() != 0
            || slot.stamp.load(Ordering::Acquire) == head.wrapping_add(1)
        {
            return false;
        }
        if let Some(w) = waker {
            store_waker(&mut guard, w);
        }
        // The CAS fails if a closer changed the flags meanwhile: look again.
        // Ordered by the barrier below (S3).
        if !self.set_park_bit(tail) {
            return false;
        }
        // Pairs with the producer's light barrier in `SoloGuard::pushed`.
        barrier::heavy();
        if slot.stamp.load(Ordering::Acquire) == head.wrapping_add(1) {
            drop(guard);
            self.unpark_bit();
            return false;
        }
        if waker.is_some() {
            return true;
        }
        self.sleep(guard, deadline);
        false
    }
}

/// Ring-level models of the single-producer protocol. Run with
/// `RUSTFLAGS="--cfg evbus_loom" cargo test -p evbus-core --release --lib`.
#[cfg(all(test, evbus_loom))]
mod loom_tests {
    use super::*;
    use crate::ring::Totals;

    fn ring(cap: usize) -> Arc<Ring<u64>> {
        ring_with(cap, Overflow::DropNewest)
    }

    fn ring_with(cap: usize, policy: Overflow) -> Arc<Ring<u64>> {
        ring_on(cap, policy, Arc::new(Epoch::default()))
    }

    fn ring_on(cap: usize, policy: Overflow, epoch: Arc<Epoch>) -> Arc<Ring<u64>> {
        Arc::new(
            Ring::new(cap, policy, Arc::new(Totals::default()))
                .unwrap()
                .solo(epoch),
        )
    }

    /// One publish to every ring of `route` (one bus: one epoch), as
    /// `deliver_solo` makes it.
    fn publish_route(route: &[Arc<Ring<u64>>], v: u64) -> Vec<Push> {
        let Mode::Solo(epoch) = &route[0].mode else {
            unreachable!("solo rings")
        };
        let guard = SoloGuard::begin(epoch, route);
        let pushes = route
            .iter()
            // SAFETY: this thread is the only producer and holds the guard.
            .map(|ring| unsafe { ring.push_solo(|| v, &guard, Lane::SHARED) })
            .collect();
        guard.pushed();
        let mut panic = guard.take_panic();
        for ring in route {
            ring.settle_solo(&mut panic);
        }
        drop(guard);
        panic.resume();
        pushes
    }

    /// One publish as `SoloPublisher` makes it, on one ring.
    fn publish(ring: &Arc<Ring<u64>>, v: u64) -> Push {
        let Mode::Solo(epoch) = &ring.mode else {
            unreachable!("a solo ring")
        };
        let route = [Arc::clone(ring)];
        let guard = SoloGuard::begin(epoch, &route);
        // SAFETY: this thread is the only producer and holds the guard.
        let push = unsafe { ring.push_solo(|| v, &guard, Lane::SHARED) };
        guard.pushed();
        let mut panic = guard.take_panic();
        if push == Push::Accepted {
            ring.settle_solo(&mut panic);
        }
        drop(guard);
        panic.resume();
        push
    }

    /// Property: a consumer that parks in `wait` while a solo push lands is
    /// woken (S3); the model deadlocks if either side's barrier is missing.
    #[test]
    fn solo_push_wakes_parked_consumer() {
        loom::model(|| {
            let ring = ring(1);
            let consumer = crate::ring::loom_tests::spawn_receive_one(&ring);
            assert_eq!(publish(&ring, 7), Push::Accepted);
            assert_eq!(consumer.join().unwrap(), 7);
        });
    }

    /// Property: at the full boundary the producer never overwrites a slot
    /// whose value the consumer has not read (S1): loom's cells report a
    /// write racing the read otherwise. Every accepted value is received
    /// once, in order, and every refused one is counted. Weakening the
    /// producer's `head` load to Relaxed makes loom report that race.
    #[test]
    fn solo_full_ring_frees_slots_by_head() {
        // The consumer's whole pop has to fit between two pushes: loom
        // reaches that with three preemptions, not with CI's default two.
        // Small model: three is cheap here.
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(builder.preemption_bound.unwrap_or(3).max(3));
        builder.check(|| {
            let ring = ring(1);
            let consumer = {
                let ring = Arc::clone(&ring);
                loom::thread::spawn(move || {
                    let mut got = Vec::new();
                    for _ in 0..2 {
                        // SAFETY: this thread is the only consumer.
                        if let Ok(v) = unsafe { ring.try_pop() } {
                            got.push(v);
                        }
                    }
                    got
                })
            };
            let accepted: Vec<u64> = (1..=3)
                .filter(|&v| publish(&ring, v) == Push::Accepted)
                .collect();
            let mut got = consumer.join().unwrap();
            // SAFETY: the consumer thread is gone; this is the only one.
            while let Ok(v) = unsafe { ring.try_pop() } {
                got.push(v);
            }
            assert_eq!(got, accepted);
            let c = ring.counters();
            assert_eq!(c.dropped, 3 - accepted.len() as u64);
            assert_eq!(c.received, accepted.len() as u64);
        });
    }

    /// Property: the single producer, parked on a full `Block` ring
    /// (capacity 1), is woken by the pop that frees the slot (S5, step 6):
    /// the model terminates and both events arrive, none dropped.
    ///
    /// Depends on: the producer registering in `wanted`, the heavy barrier,
    /// then re-reading `head`; the consumer storing `head`, the light
    /// barrier, then reading `wanted` (`pop_solo_at`). Removing both
    /// barriers of that pair makes loom report the deadlock, which it
    /// finds with three preemptions, not CI's default two (small model:
    /// three is cheap here).
    #[test]
    fn solo_pop_wakes_parked_block_producer() {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(builder.preemption_bound.unwrap_or(3).max(3));
        builder.check(|| {
            let ring = ring_with(1, Overflow::Block(std::time::Duration::MAX));
            let consumer = {
                let ring = Arc::clone(&ring);
                loom::thread::spawn(move || {
                    let mut got = Vec::new();
                    while got.len() < 2 {
                        // SAFETY: this thread is the only consumer.
                        match unsafe { ring.try_pop() } {
                            Ok(v) => got.push(v),
                            Err(PopError::Disconnected | PopError::Lagged) => {
                                unreachable!("never closed, never lags")
                            }
                            // SAFETY: as above.
                            Err(PopError::Empty) => unsafe { ring.wait(None) },
                        }
                    }
                    got
                })
            };
            assert_eq!(publish(&ring, 1), Push::Accepted);
            assert_eq!(publish(&ring, 2), Push::Accepted);
            assert_eq!(consumer.join().unwrap(), [1, 2]);
            assert_eq!(ring.counters().dropped, 0);
        });
    }

    /// Property: a close racing the single producer on a full `Block` ring
    /// returns (it does not wait for a parked publish), releases the
    /// producer with `Closed`, and strands nothing: the consumer receives
    /// the buffered event, then `Disconnected`.
    ///
    /// Depends on: the producer pausing its publish (even epoch, Release)
    /// before it parks, so the closer's epoch wait ends (S2, S5); the close
    /// waking the space waiters after its mark (`Closed::space`); and the
    /// producer re-checking the mark after `resume`. Without the
    /// `wake_space` in `wake_closed` loom reports the deadlock.
    #[test]
    fn solo_close_releases_parked_block_producer() {
        loom::model(|| {
            let ring = ring_with(1, Overflow::Block(std::time::Duration::MAX));
            assert_eq!(publish(&ring, 1), Push::Accepted);
            let producer = {
                let ring = Arc::clone(&ring);
                loom::thread::spawn(move || publish(&ring, 2))
            };
            let closed = ring.close();
            assert!(closed.first);
            ring.wake_closed(closed);
            assert_eq!(producer.join().unwrap(), Push::Closed);
            // SAFETY: this thread is the only consumer.
            assert_eq!(unsafe { ring.try_pop() }, Ok(1));
            // SAFETY: as above.
            assert_eq!(unsafe { ring.try_pop() }, Err(PopError::Disconnected));
        });
    }

    /// Property: a single producer about to park on a full `Block` ring
    /// first wakes the receiver of a ring it served earlier in the same
    /// publish (S5): here that receiver is the thread that will free the
    /// full ring, so without the wake both sleep. The model terminates and
    /// every event arrives.
    ///
    /// Depends on: `SoloGuard::pause` running S3 (light barrier, then the
    /// park bits) for the rings of the route, before the producer parks.
    /// Without that settle loom reports the deadlock.
    #[test]
    fn solo_block_wait_wakes_a_receiver_of_a_served_ring() {
        loom::model(|| {
            let epoch = Arc::new(Epoch::default());
            let block = Overflow::Block(std::time::Duration::MAX);
            let first = ring_on(1, block, Arc::clone(&epoch));
            let second = ring_on(1, block, epoch);
            // `second` is full before the publish begins.
            assert_eq!(publish(&second, 0), Push::Accepted);
            let consumer = {
                let (first, second) = (Arc::clone(&first), Arc::clone(&second));
                loom::thread::spawn(move || {
                    let mut got = Vec::new();
                    for (ring, n) in [(&first, 1), (&second, 2)] {
                        for _ in 0..n {
                            loop {
                                // SAFETY: this thread is the only consumer
                                // of both rings.
                                match unsafe { ring.try_pop() } {
                                    Ok(v) => break got.push(v),
                                    Err(PopError::Disconnected | PopError::Lagged) => {
                                        unreachable!("never closed, never lags")
                                    }
                                    // SAFETY: as above.
                                    Err(PopError::Empty) => unsafe { ring.wait(None) },
                                }
                            }
                        }
                    }
                    got
                })
            };
            let route = [first, second];
            assert_eq!(publish_route(&route, 1), [Push::Accepted, Push::Accepted]);
            assert_eq!(consumer.join().unwrap(), [1, 0, 1]);
        });
    }
}
