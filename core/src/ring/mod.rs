//! Bounded multi-producer, single-consumer ring with per-slot stamps.
//!
//! The algorithm is Dmitry Vyukov's bounded MPMC queue
//! (<https://www.1024cores.net/home/lock-free-algorithms/queues/bounded-mpmc-queue>)
//! in the form crossbeam's array channel and `ArrayQueue::force_push` use it,
//! with two extra bits in `tail`: a mark bit for "closed" and a park bit for
//! "the consumer is asleep".
//!
//! # Encoding
//!
//! `head` and `tail` are *positions*: `{ lap, park bit, mark bit, index }`,
//! where `index < cap` is the slot and `lap` counts trips around the buffer.
//! `mark_bit = (cap + 1).next_power_of_two()`, `park_bit = 2 * mark_bit` and
//! `one_lap = 4 * mark_bit`. Only `tail` ever carries the two flag bits.
//!
//! Each slot's `stamp` says what the slot holds: `stamp == pos` means it is
//! free for the producer at `pos`; `stamp == pos + 1` means the value written
//! at `pos` is ready for the consumer.
//!
//! # Synchronization protocol
//!
//! 1. *Claim.* A producer claims `pos` with a CAS on `tail`. The CAS fails if
//!    the ring was closed (mark bit) or if the consumer parked meanwhile
//!    (park bit), so both are observed in `tail`'s modification order.
//! 2. *Publish a slot.* The producer writes the value, then stores the stamp
//!    with `Release`; the consumer loads it with `Acquire`.
//! 3. *Free a slot.* The consumer reads the value, then stores
//!    `stamp = pos + one_lap` with `Release`; producers load it with
//!    `Acquire` before they overwrite the slot.
//! 4. *Park without a lost wake-up.* The consumer parks only after setting
//!    the park bit with a CAS whose expected value says "empty". A producer's
//!    claim CAS reads the bit (RMWs on one location are totally ordered, so
//!    either the producer sees the bit or the consumer's CAS fails) and the
//!    producer that clears it wakes the consumer after publishing its slot.
//!    The consumer holds the waiter mutex from its CAS until it is asleep, and
//!    the waker takes that mutex to notify, so the notification cannot fall
//!    between the two. Publishes that find no park bit pay nothing: no fence,
//!    no extra load.
//! 5. *Close.* `close` sets the mark bit with `fetch_or`; exactly one caller
//!    sees it clear. Every claim that succeeded before the close is included
//!    in the tail value that carries the mark bit, so a consumer that sees
//!    `mark && tail == head` has drained everything: no event is stranded.
//!    5a. A consumer that finds the slot at `head` unwritten reads `tail`:
//!    `pos(tail) == head` means empty (`Disconnected` with the mark bit).
//!    Otherwise a producer claimed `head` and is writing it, and the
//!    consumer waits it out instead of answering `Empty`, so a receive sees
//!    every publish that returned before it began (linearizable, as
//!    crossbeam's array channel): a preempted claim at `head` must not hide
//!    the completed slots behind it.
//! 6. *Block policy.* A blocked producer registers in `blocked`, then
//!    `fence(SeqCst)`, then re-checks for space; a consumer of a `Block` ring
//!    frees a slot, then `fence(SeqCst)`, then reads `blocked`. Of the two
//!    sides, at least one sees the other.
//! 7. *Fold.* When a subscription leaves the registry its counters are
//!    added to the bus totals once. A `DropOldest` eviction announces itself
//!    in `evicting`, `fence(SeqCst)`, and re-checks for a close; the folder
//!    closes, `fence(SeqCst)`, and waits for `evicting == 0`. Later losses
//!    (`DropNewest`, `Block` timeouts) find the `FOLDED` flag in their
//!    counter and go to the bus totals directly.
//!
//! # Layout
//!
//! The protocol steps above, by file:
//!
//! | step | what | file |
//! |---|---|---|
//! | encoding, 1-3, 5 | positions, `Slot`, `Ring`, claim (`push_with`, `force_push`), pop, close, `Drop` | `ring/mod.rs` |
//! | 4, 6 | waiters: park, sleep, wake; `Block` producers waiting for space | `ring/park.rs` |
//! | 7 | folded counts, losses, high-water, lag, length; latency and tracing hooks | `ring/accounting.rs` |
//! | S1-S4 | single-producer mode: plain-store pushes, publish epoch | `ring/solo.rs` |

mod accounting;
mod park;
mod solo;

use std::{mem::MaybeUninit, time::Instant};

use crossbeam_utils::CachePadded;

use crate::{
    error::SubscribeError,
    policy::Overflow,
    sync::{
        Arc, Backoff, UnsafeCell,
        atomic::{AtomicUsize, Ordering, fence},
    },
};

pub(crate) use self::{
    accounting::Totals,
    solo::{Epoch, SoloGuard},
};
use self::{
    accounting::{Cold, Hooks},
    park::Waiter,
    solo::Solo,
};

/// The largest ring capacity evbus accepts, in events. A ring is also
/// bounded in bytes by [`MAX_RING_BYTES`], which is the tighter bound for
/// events larger than 4 bytes.
pub const MAX_CAPACITY: usize = 1 << 28;

/// The largest ring buffer evbus allocates: 1 GiB. A ring of `capacity`
/// slots takes `capacity * (size_of::<E>() + 8)` bytes or so (each slot
/// holds an event and its stamp), so for a 64-byte event the largest
/// capacity is about 14.9 million. Larger requests fail with
/// [`SubscribeError::CapacityTooLarge`], whose `max` is the bound for the
/// event type, instead of asking the allocator for memory that Linux would
/// promise (overcommit) and then kill the process for touching.
pub const MAX_RING_BYTES: usize = 1 << 30;

/// One slot of the buffer.
struct Slot<T> {
    /// `pos` when free for the producer at `pos`, `pos + 1` when the value
    /// written at `pos` is ready.
    stamp: AtomicUsize,
    value: UnsafeCell<MaybeUninit<T>>,
}

/// What happened to one push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Push {
    /// The value is in the ring (under `DropOldest`, possibly after evicting
    /// the oldest one).
    Accepted,
    /// The ring was full; the value was dropped and counted.
    Dropped,
    /// The ring is closed; the value was not taken.
    Closed,
}

/// The rings of a publish's route from a position on: what it will not
/// reach if user code cuts it short there. A route and a position, sliced
/// only on that cold path, so a push carries it in two registers.
#[derive(Clone, Copy)]
pub(crate) struct Tail<'a, T>(pub(crate) &'a [Arc<Ring<T>>], pub(crate) usize);

impl<T> Tail<'_, T> {
    /// Counts a drop on each ring of the tail.
    #[cold]
    pub(crate) fn count_unreached(self) {
        for ring in self.0.get(self.1..).unwrap_or_default() {
            ring.count_unreached();
        }
    }
}

/// Runs `f`, user code that a push runs after it made its value (a waker,
/// the `Drop` of a value evicted or refused); if it panics, counts a drop on
/// each ring of `rest` (the rest of the publish's route, which it will not
/// reach), then lets the panic go on.
#[cold]
fn contained<T>(f: impl FnOnce(), rest: Tail<'_, T>) {
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

/// What a [`Ring::close`] did, and the wake-ups it still owes
/// ([`Ring::wake_closed`]).
#[must_use = "a close owes its wake-ups: pass it to `Ring::wake_closed`"]
#[derive(Debug)]
pub(crate) struct Closed {
    /// This call closed the ring; every other found it closed.
    pub(crate) first: bool,
    /// The consumer was parked.
    consumer: bool,
    /// `Block` producers may be asleep.
    space: bool,
}

/// What a pop found instead of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PopError {
    /// Nothing is buffered.
    Empty,
    /// Nothing is buffered and the ring is closed.
    Disconnected,
    /// Evictions moved `head` past the consumer's own copy of it
    /// ([`Ring::try_pop_oldest`]): report the lag before the next event.
    Lagged,
}

/// The fields of a [`Ring`] that map positions to slots, copied out for a
/// loop over many positions. `Ring` holds atomics, so the compiler reloads
/// its fields after every atomic access made through `&Ring`; a local copy
/// stays in registers.
#[derive(Clone, Copy)]
struct Layout {
    cap: usize,
    /// `mark_bit - 1`: the index bits of a position.
    mask: usize,
    one_lap: usize,
}

impl Layout {
    /// The position after `pos`.
    #[inline(always)]
    fn next(self, pos: usize) -> usize {
        if (pos & self.mask) + 1 < self.cap {
            pos + 1
        } else {
            (pos & !(self.one_lap - 1)).wrapping_add(self.one_lap)
        }
    }
}

/// Who produces into a ring.
#[expect(
    clippy::large_enum_variant,
    reason = "boxing `Solo` costs the single-producer push a pointer load (see `Solo`)"
)]
enum Mode {
    /// Any number of producers, each claiming its slot with a CAS (steps
    /// 1-7).
    Multi,
    /// One producer, pushing with plain stores (`ring/solo.rs`, S1-S4);
    /// `tail` then carries only the mark, park and final flags. Inline, not
    /// boxed: the extra pointer load cost a single-producer publish to four
    /// rings about 2 % (benches/src/bin/callgrind_solo.rs), so a
    /// multi-producer ring still reserves, but never initializes, the
    /// cursor's cache line.
    Solo(Solo),
}

/// A bounded MPSC ring. See the module docs for the protocol.
pub(crate) struct Ring<T> {
    /// Producer position `{ lap, park, mark, index }`.
    tail: CachePadded<AtomicUsize>,
    /// Consumer position `{ lap, 0, 0, index }`.
    head: CachePadded<AtomicUsize>,
    buffer: Box<[Slot<T>]>,
    cap: usize,
    mark_bit: usize,
    park_bit: usize,
    one_lap: usize,
    /// `log2(one_lap)`, so counting laps is a shift, not a division.
    lap_shift: u32,
    policy: Overflow,
    /// Who produces: any number of producers, or one (see `ring/solo.rs`).
    mode: Mode,
    /// Delivery order within a publish (higher first); see
    /// [`SubscribeOptions::priority`](crate::SubscribeOptions::priority).
    priority: i32,
    cold: CachePadded<Cold>,
    /// Where drops after [`Ring::fold`] are counted.
    totals: Arc<Totals>,
    /// Where the consumer sleeps.
    consumer: Waiter,
    /// Where `Block` producers sleep.
    space: Waiter,
    /// What the latency and tracing hooks need (empty without those
    /// features).
    #[cfg_attr(
        not(any(feature = "latency", feature = "tracing")),
        expect(dead_code, reason = "an empty struct without the features")
    )]
    hooks: Hooks,
}

// SAFETY: a `Ring` hands each `T` from exactly one producer to the consumer,
// so it moves values between threads (`T: Send`) but never shares one.
unsafe impl<T: Send> Send for Ring<T> {}
// SAFETY: concurrent access to a slot's value (and, with the `latency`
// feature, to its entry in the sampler's send times) is excluded by the
// stamp protocol (module docs, steps 1-3); only `T: Send` is needed for that.
unsafe impl<T: Send> Sync for Ring<T> {}

impl<T> Ring<T> {
    /// Creates a ring holding at most `cap` events.
    ///
    /// # Errors
    ///
    /// [`SubscribeError::ZeroCapacity`] for 0, and
    /// [`SubscribeError::CapacityTooLarge`] above [`Ring::max_capacity`] or
    /// when the buffer cannot be allocated.
    pub(crate) fn new(
        cap: usize,
        policy: Overflow,
        totals: Arc<Totals>,
    ) -> Result<Self, SubscribeError> {
        if cap == 0 {
            return Err(SubscribeError::ZeroCapacity);
        }
        let max = Self::max_capacity();
        let too_large = SubscribeError::CapacityTooLarge {
            requested: cap,
            max,
        };
        if cap > max {
            return Err(too_large);
        }
        let mut buffer = Vec::new();
        buffer.try_reserve_exact(cap).map_err(|_| too_large)?;
        buffer.extend((0..cap).map(|i| Slot {
            // Slot `i` is free for the producer at position `i` of lap 0.
            stamp: AtomicUsize::new(i),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }));
        let mark_bit = (cap + 1).next_power_of_two();
        Ok(Self {
            tail: CachePadded::new(AtomicUsize::new(0)),
            head: CachePadded::new(AtomicUsize::new(0)),
            buffer: buffer.into_boxed_slice(),
            cap,
            mark_bit,
            park_bit: mark_bit << 1,
            one_lap: mark_bit << 2,
            lap_shift: (mark_bit << 2).trailing_zeros(),
            policy,
            mode: Mode::Multi,
            priority: 0,
            cold: CachePadded::new(Cold::default()),
            totals,
            consumer: Waiter::default(),
            space: Waiter::default(),
            hooks: Hooks::default(),
        })
    }

    /// The largest capacity of a ring of `T`: [`MAX_CAPACITY`] slots, and at
    /// most [`MAX_RING_BYTES`] of them.
    pub(crate) fn max_capacity() -> usize {
        let slot = std::mem::size_of::<Slot<T>>().max(1);
        MAX_CAPACITY.min(MAX_RING_BYTES / slot)
    }

    /// Sets the delivery priority (see [`Ring::priority`]).
    #[must_use]
    pub(crate) fn with_priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    pub(crate) fn capacity(&self) -> usize {
        self.cap
    }

    /// Delivery order within a publish: routes list rings by descending
    /// priority.
    pub(crate) fn priority(&self) -> i32 {
        self.priority
    }

    pub(crate) fn policy(&self) -> Overflow {
        self.policy
    }

    /// `tail` as the statistics and `Drop` read it: in single-producer mode
    /// the producer's position comes from its cursor, the flags from
    /// `tail`.
    #[inline]
    fn tail_word(&self, order: Ordering) -> usize {
        let tail = self.tail.load(order);
        match &self.mode {
            Mode::Multi => tail,
            Mode::Solo(solo) => solo.tail(order) | (tail & (self.mark_bit | self.park_bit)),
        }
    }

    /// Whether the ring is in single-producer mode.
    #[inline(always)]
    fn is_solo(&self) -> bool {
        matches!(self.mode, Mode::Solo(_))
    }

    /// `tail` without its flag bits.
    #[inline]
    fn pos(&self, tail: usize) -> usize {
        tail & !(self.mark_bit | self.park_bit)
    }

    /// The position after `pos`.
    #[inline]
    fn next(&self, pos: usize) -> usize {
        self.layout().next(pos)
    }

    /// The fields that place positions in the buffer, as a copy.
    #[inline]
    fn layout(&self) -> Layout {
        Layout {
            cap: self.cap,
            mask: self.mark_bit - 1,
            one_lap: self.one_lap,
        }
    }

    /// The number of positions before `pos`, counted from the start.
    #[inline]
    fn count(&self, pos: usize) -> u64 {
        let laps = (pos >> self.lap_shift) as u64;
        laps * self.cap as u64 + (pos & (self.mark_bit - 1)) as u64
    }

    #[inline]
    fn slot(&self, pos: usize) -> &Slot<T> {
        let index = pos & (self.mark_bit - 1);
        debug_assert!(index < self.cap, "index {index} out of {}", self.cap);
        // SAFETY: every position is made by `next` from 0 (or is one of
        // those plus flag bits, which the mask removes), and `next` wraps the
        // index to 0 at `cap`; so `index < cap == buffer.len()`.
        unsafe { self.buffer.get_unchecked(index) }
    }

    /// Pushes the value `make` produces, following the overflow policy when
    /// the ring is full. `make` runs at most once, before any slot is
    /// claimed, so a panicking `Clone` cannot leave a claimed slot unwritten.
    ///
    /// User code that runs after the value is made (the consumer's task
    /// waker, the `Drop` of an evicted value or of one the ring refused)
    /// runs contained: if it panics, each ring of `rest` (the rest of the
    /// publish's route) counts a drop before the panic goes on. Free on the
    /// fast path: `rest` is sliced only then.
    #[inline]
    pub(crate) fn push_with(&self, make: impl FnOnce() -> T, rest: Tail<'_, T>) -> Push {
        let mut make = Some(make);
        let mut value: Option<T> = None;
        let backoff = Backoff::new();
        let mut deadline = None;
        // Relaxed: only a hint for the first CAS, which re-reads the latest
        // value in `tail`'s modification order if the hint is stale.
        let mut tail = self.tail.load(Ordering::Relaxed);
        loop {
            if tail & self.mark_bit != 0 {
                return refuse(value, rest, Push::Closed);
            }
            let pos = self.pos(tail);
            let slot = self.slot(pos);
            // Acquire: pairs with the consumer's Release stamp store in
            // `try_pop` (step 3), so its read of the old value happens
            // before our write below.
            let stamp = slot.stamp.load(Ordering::Acquire);
            if stamp == pos {
                let v = match value.take() {
                    Some(v) => v,
                    None => (make.take().expect("make runs once"))(),
                };
                let new_tail = self.next(pos);
                // Relaxed success: the slot is handed over by the stamp
                // (step 2), not by `tail`. Clearing the park bit here is
                // what obliges us to wake the consumer (step 4).
                match self.tail.compare_exchange_weak(
                    tail,
                    new_tail,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: the CAS made us the only producer at
                        // `pos`, and `stamp == pos` (Acquire) shows the
                        // consumer is done with the slot's previous value.
                        slot.value.with_mut(|p| unsafe { (*p).write(v) });
                        // SAFETY: as for the value just above.
                        unsafe { self.sample_sent(pos) };
                        // Release: pairs with the consumer's Acquire load in
                        // `try_pop` (step 2).
                        slot.stamp.store(pos.wrapping_add(1), Ordering::Release);
                        if tail & self.park_bit != 0 {
                            contained(|| self.wake(&self.consumer), rest);
                        }
                        return Push::Accepted;
                    }
                    Err(current) => {
                        value = Some(v);
                        tail = current;
                        backoff.spin();
                    }
                }
            } else if stamp.wrapping_add(self.one_lap) == pos + 1 {
                // The slot still holds the value written one lap ago, not yet
                // received: the ring was full when we loaded the stamp, which
                // is the linearization point of a drop. `DropNewest` needs no
                // more: it drops without a fence.
                let block_timeout = match self.policy {
                    Overflow::DropNewest => return refuse(value, rest, self.drop_newest()),
                    Overflow::DropOldest => None,
                    Overflow::Block(timeout) => Some(timeout),
                };
                // The other policies act on the oldest slot, so they check
                // that the consumer has not moved on since the stamp load.
                // SeqCst: orders the stamp load above before the head load
                // below (as in crossbeam's array channel); pairs with the
                // consumer's Release head store.
                fence(Ordering::SeqCst);
                let head = self.head.load(Ordering::Relaxed);
                if head.wrapping_add(self.one_lap) == pos {
                    if let Some(timeout) = block_timeout {
                        // `None` inside: a timeout too long to represent as
                        // an `Instant` (`Duration::MAX`) waits without one.
                        let deadline =
                            *deadline.get_or_insert_with(|| Instant::now().checked_add(timeout));
                        if !self.wait_for_space(pos, deadline) {
                            return refuse(value, rest, self.drop_newest());
                        }
                    } else {
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
                        let outcome = if self.tail.load(Ordering::Relaxed) & self.mark_bit != 0 {
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
                }
                backoff.spin();
                tail = self.tail.load(Ordering::Relaxed);
            } else {
                // Another producer claimed `pos` and we read a stale tail.
                backoff.snooze();
                tail = self.tail.load(Ordering::Relaxed);
            }
        }
    }

    #[cold]
    fn drop_newest(&self) -> Push {
        self.count_loss(&self.cold.dropped);
        self.raise_high_water(self.cap);
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
            // Relaxed: as in `push_with`, the slot is handed over by its stamp.
            match self.tail.compare_exchange_weak(
                cur,
                new_tail,
                Ordering::Relaxed,
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
    /// # Safety
    ///
    /// - As [`Ring::try_pop`].
    #[inline(always)]
    unsafe fn pop_each_multi(&self, max: usize, mut f: impl FnMut(T)) -> (usize, Option<PopError>) {
        let mut taken = 0;
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
                if self.policy == Overflow::DropOldest {
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
                } else {
                    // Release: pairs with the SeqCst fence + head load on the
                    // producers' full path.
                    self.head.store(new_head, Ordering::Release);
                }
                // SAFETY: `stamp == head + 1` (Acquire) shows the value is
                // written, and we own `head` (sole consumer, or the CAS).
                let value = slot.value.with(|p| unsafe { (*p).assume_init_read() });
                // SAFETY: as for the value just above; `free` frees the slot.
                unsafe {
                    self.sample_received(head, || {
                        // Release: pairs with the producers' Acquire stamp
                        // load (step 3): our read happens before their next
                        // write.
                        slot.stamp
                            .store(head.wrapping_add(self.one_lap), Ordering::Release);
                    });
                }
                if let Overflow::Block(_) = self.policy {
                    self.notify_space();
                }
                return Ok(value);
            } else if stamp == head {
                match self.unwritten(head) {
                    Some(err) => return Err(err),
                    None => backoff.snooze(),
                }
            } else {
                // `force_push` moved `head` under us.
                backoff.snooze();
                head = self.head.load(Ordering::Relaxed);
            }
        }
    }

    /// What a consumer that found the slot at `head` unwritten answers
    /// (step 5a): `Empty` or `Disconnected` when no producer has claimed
    /// `head`, `None` when one has and is writing it, which the caller waits
    /// out.
    ///
    /// Waiting, not answering `Empty`, is what makes a receive linearizable:
    /// a producer that claimed `head` and was preempted would otherwise hide
    /// every later slot, including those of publishes that have returned.
    /// The wait is bounded by the few instructions between a claim and its
    /// stamp store (no user code runs there), and the caller's backoff
    /// yields to a preempted producer.
    #[inline]
    fn unwritten(&self, head: usize) -> Option<PopError> {
        // Relaxed: the data comes with the stamp, and the mark bit and the
        // position travel in one value (step 5). A publish that returned
        // before this receive began wrote `tail` first, so by coherence this
        // load sees its claim, or a later value.
        let tail = self.tail.load(Ordering::Relaxed);
        if self.pos(tail) != head {
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
        debug_assert_eq!(self.policy, Overflow::DropOldest);
        let backoff = Backoff::new();
        loop {
            // Relaxed: only the consumer and `force_push` write `head`; the
            // CAS below settles any race with an eviction.
            let head = self.head.load(Ordering::Relaxed);
            if head != *own {
                return Err(PopError::Lagged);
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
                    return Err(PopError::Lagged);
                }
                *own = new_head;
                // SAFETY: `stamp == head + 1` (Acquire) shows the value is
                // written, and the CAS made the slot ours.
                let value = slot.value.with(|p| unsafe { (*p).assume_init_read() });
                // SAFETY: as for the value just above; `free` frees the slot.
                unsafe {
                    self.sample_received(head, || {
                        // Release: as in `try_pop_multi` (step 3).
                        slot.stamp
                            .store(head.wrapping_add(self.one_lap), Ordering::Release);
                    });
                }
                return Ok(value);
            } else if stamp == head {
                match self.unwritten(head) {
                    Some(err) => return Err(err),
                    None => backoff.snooze(),
                }
            } else {
                // An eviction moved `head` under us; the next round reports it.
                backoff.snooze();
            }
        }
    }

    /// Closes the ring (step 5). Its [`Closed::first`] is `true` for the one
    /// call that closed it. The wake-ups the close owes are left to
    /// [`Ring::wake_closed`]: a task waker is user code, and an operation
    /// that closes several rings closes them all before it runs any.
    pub(crate) fn close(&self) -> Closed {
        // AcqRel: a single RMW decides the one closer; every claim before it
        // is in the value it writes (step 5).
        let old = self.tail.fetch_or(self.mark_bit, Ordering::AcqRel);
        if let Mode::Solo(solo) = &self.mode {
            let (first, parked) = self.close_solo(solo, old);
            return Closed {
                first,
                consumer: parked,
                space: false,
            };
        }
        let first = old & self.mark_bit == 0;
        Closed {
            first,
            consumer: first && old & self.park_bit != 0,
            space: first && matches!(self.policy, Overflow::Block(_)),
        }
    }

    /// Wakes whoever `closed` (this ring's close) left asleep: the parked
    /// consumer, and `Block` producers. Runs the consumer's task waker, if
    /// it registered one; a panic there leaves the ring closed.
    pub(crate) fn wake_closed(&self, closed: Closed) {
        if closed.space {
            self.wake(&self.space);
        }
        if closed.consumer {
            self.wake(&self.consumer);
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.tail.load(Ordering::Relaxed) & self.mark_bit != 0
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        // Relaxed: `&mut self` excludes every other thread.
        let tail = self.pos(self.tail_word(Ordering::Relaxed));
        let mut head = self.head.load(Ordering::Relaxed);
        while head != tail {
            let slot = self.slot(head);
            // SAFETY: we hold `&mut self`, so every producer is gone; every
            // position in `head..tail` was claimed and written (values are
            // made before claiming), and not yet popped.
            slot.value.with_mut(|p| unsafe { (*p).assume_init_drop() });
            head = self.next(head);
        }
    }
}

impl<T> std::fmt::Debug for Ring<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("capacity", &self.cap)
            .field("len", &self.len())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Models of ring internals that the public API cannot reach reliably.
/// Run with `RUSTFLAGS="--cfg evbus_loom" cargo test -p evbus-core --release --lib`.
#[cfg(all(test, evbus_loom))]
mod loom_tests {
    use super::*;

    /// Property: a consumer that parks while a `DropOldest` eviction is half
    /// done (capacity 1: `head == pos(tail)` between its two CASes) is woken.
    /// Depends on `force_push` waking the consumer when its tail CAS clears
    /// the park bit (step 4); without that wake the model deadlocks.
    #[test]
    fn force_push_wakes_parked_consumer() {
        loom::model(|| {
            let ring = Arc::new(
                Ring::<u64>::new(1, Overflow::DropOldest, Arc::new(Totals::default())).unwrap(),
            );
            let consumer = {
                let ring = Arc::clone(&ring);
                loom::thread::spawn(move || {
                    loop {
                        // SAFETY: this thread is the only consumer.
                        match unsafe { ring.try_pop() } {
                            Ok(2) | Err(PopError::Disconnected) => return,
                            Ok(_) => {}
                            // SAFETY: as above.
                            Err(PopError::Empty) => unsafe { ring.wait(None) },
                        }
                    }
                })
            };
            assert_eq!(ring.push_with(|| 1, Tail(&[], 0)), Push::Accepted);
            assert_eq!(ring.push_with(|| 2, Tail(&[], 0)), Push::Accepted);
            consumer.join().unwrap();
        });
    }
}
