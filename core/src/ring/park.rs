//! Step 4 (park without a lost wake-up) and step 6 (`Block` producers
//! waiting for space: spin, yield, park; woken by the pop that finds one
//! registered): the waiters, and how each side sleeps and wakes the other.
//! See the protocol in `ring/mod.rs`; the single-producer park is in
//! `ring/solo.rs` (S3), its `Block` wait there too (S5).

use std::{task::Waker, time::Instant};

use super::Ring;
use crate::{
    barrier,
    sync::{
        self, Backoff, Condvar, Mutex, MutexGuard,
        atomic::{AtomicUsize, Ordering},
    },
};

/// The longest single sleep of a parked `Block` producer: a backstop, not
/// the protocol (a pop wakes it at once). Each slice that ends without a
/// wake-up costs one futex call.
#[cfg(not(evbus_loom))]
const PRODUCER_PARK_SLICE: std::time::Duration = std::time::Duration::from_millis(100);

/// Spin-then-yield rounds (of `Backoff::snooze`) a `Block` producer makes
/// at least before it parks, as a receiver does before it sleeps.
const SPACE_SPIN_ROUNDS: u32 = 3;

/// Keeps `waker` as the one to wake, unless the stored one already wakes the
/// same task.
pub(super) fn store_waker(slot: &mut Option<Waker>, waker: &Waker) {
    match slot.as_mut() {
        Some(current) if current.will_wake(waker) => {}
        _ => *slot = Some(waker.clone()),
    }
}

/// A mutex and condition variable pair that one side sleeps on, plus the
/// task waker of an asynchronous consumer (`poll_recv`).
#[derive(Debug, Default)]
pub(super) struct Waiter {
    pub(super) lock: Mutex<Option<Waker>>,
    pub(super) cond: Condvar,
}

/// Where `Block` producers sleep, and their request to be woken (step 6).
#[derive(Debug, Default)]
pub(super) struct Space {
    /// The producers registered to sleep, until each leaves its wait.
    sleepers: Mutex<usize>,
    cond: Condvar,
    /// Nonzero while a producer asks to be woken: set by a producer about
    /// to park, under the lock; cleared under the lock by the consumer that
    /// wakes the sleepers (or by the last sleeper to leave). Pops read it
    /// and nothing else.
    wanted: AtomicUsize,
    /// Test builds: how many times a producer went to sleep, and how many
    /// times a consumer woke sleepers.
    #[cfg(test)]
    parks: AtomicUsize,
    #[cfg(test)]
    wakes: AtomicUsize,
}

/// A `Block` producer's progress through one wait for space, kept across
/// the rounds of its push: spin, yield, park (step 6).
///
/// The clock is read once per park, not per round: a producer that keeps
/// finding the ring full (it outpaces its consumer by a slot at a time)
/// would otherwise pay a clock read per event. So a timeout runs from the
/// end of the first spin phase (a few microseconds, or a few scheduler
/// yields on a busy core), except a zero timeout, which refuses at once.
#[derive(Debug)]
pub(super) struct SpaceWait {
    backoff: Backoff,
    rounds: u32,
    /// The `Block` timeout; set by `start`.
    timeout: Option<std::time::Duration>,
    /// Set when the first spin phase ends: `None` inside for a timeout too
    /// long to represent as an `Instant` (`Duration::MAX`), which waits
    /// without one.
    deadline: Option<Option<Instant>>,
}

impl SpaceWait {
    pub(super) fn new() -> Self {
        Self {
            backoff: Backoff::new(),
            rounds: 0,
            timeout: None,
            deadline: None,
        }
    }

    /// One round that does not park: `Some(false)` once the deadline has
    /// passed, `Some(true)` after a spin or a yield (`snooze` does both,
    /// each bounded: a consumer on another core frees a slot within
    /// microseconds, and on a shared core the yield lets it run). `None`
    /// when the spinning is over: the caller parks, and the next call
    /// starts a new round of spinning. The deadline is checked only when a
    /// spin phase ends (and at once for a zero timeout).
    pub(super) fn spin(&mut self) -> Option<bool> {
        if self.timeout == Some(std::time::Duration::ZERO) {
            return Some(false);
        }
        // Under loom the wait parks at once: the spinning is no part of the
        // protocol, and its yields would each cost the models a preemption
        // to reach the park.
        if !cfg!(evbus_loom) && (self.rounds < SPACE_SPIN_ROUNDS || !self.backoff.is_completed()) {
            self.rounds += 1;
            self.backoff.snooze();
            return Some(true);
        }
        self.rounds = 0;
        self.backoff = Backoff::new();
        let now = Instant::now();
        let timeout = self.timeout.unwrap_or(std::time::Duration::MAX);
        match *self
            .deadline
            .get_or_insert_with(|| now.checked_add(timeout))
        {
            Some(deadline) if now >= deadline => Some(false),
            _ => None,
        }
    }

    /// When the wait gives up (`None`: never).
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.deadline.flatten()
    }

    /// Sets the timeout of a `Block(timeout)` wait; the clock starts when
    /// the first spin phase ends.
    pub(super) fn start(&mut self, timeout: std::time::Duration) {
        self.timeout = Some(timeout);
    }
}

impl<T> Ring<T> {
    /// Parks the consumer until the ring may be non-empty or closed, or
    /// until `deadline`. Spurious returns are possible; the caller re-checks.
    ///
    /// # Safety
    ///
    /// - Same as [`Ring::try_pop`]: the caller is the only consumer.
    pub(crate) unsafe fn wait(&self, deadline: Option<Instant>) {
        // SAFETY: the caller's contract, passed on.
        unsafe { self.park(None, deadline) };
    }

    /// Registers `waker` to be woken when the ring may be non-empty or
    /// closed, as [`Ring::wait`] does for a thread. Returns `false`, and
    /// registers nothing that will fire, if the ring is not empty and open
    /// now: the caller receives again instead of waiting.
    ///
    /// The waker fires once; a consumer that finds the ring empty again
    /// registers again.
    ///
    /// # Safety
    ///
    /// - Same as [`Ring::try_pop`]: the caller is the only consumer.
    pub(crate) unsafe fn register(&self, waker: &Waker) -> bool {
        // SAFETY: the caller's contract, passed on.
        unsafe { self.park(Some(waker), None) }
    }

    /// Sleeps until woken or `deadline` (`waker` is `None`), or registers
    /// `waker`; returns whether it registered. Multi-producer protocol,
    /// step 4: the park bit is set with a CAS whose expected value says
    /// "empty".
    ///
    /// # Safety
    ///
    /// - Same as [`Ring::try_pop`]: the caller is the only consumer.
    pub(super) unsafe fn park(&self, waker: Option<&Waker>, deadline: Option<Instant>) -> bool {
        if self.single_now() {
            // Single-producer mode, or a leased ring (`ring/lease.rs`, L6).
            // SAFETY: the caller's contract, passed on.
            return unsafe { self.park_solo(waker, deadline) };
        }
        let mut guard = self.consumer.lock.lock();
        let head = self.head.load(Ordering::Relaxed);
        // Acquire: pairs with the mark's `fetch_or` in `close`: a closed ring
        // sends the caller back to `try_pop`, which must then see the
        // ring's `closed` flag (step 5a) and answer `Disconnected`.
        let tail = self.producers.tail.load(Ordering::Acquire);
        if tail & self.mark_bit != 0 || self.pos(tail) != head {
            // Relaxed: only decides whether to yield; the caller looks again.
            if self.slot(head).stamp.load(Ordering::Relaxed) != head.wrapping_add(1) {
                // Not ready and not empty: a claim is being written (step
                // 5a). That takes a few instructions unless its thread was
                // preempted; give it the CPU instead of polling it.
                drop(guard);
                sync::yield_now();
            }
            return false;
        }
        if let Some(w) = waker {
            // Before the park bit can be seen: a producer that clears the
            // bit takes the waker under this same lock (`wake`).
            store_waker(&mut guard, w);
        }
        // The no-lost-wake-up guarantee comes from this CAS and the
        // producers' claim CAS being RMWs of the same location (step 4).
        if !self.set_park_bit(tail) {
            return false;
        }
        if waker.is_some() {
            return true;
        }
        self.sleep(guard, deadline);
        false
    }

    /// Sets the park bit in `tail`, expecting the value `tail`; `true` if
    /// the bit is set now. A CAS failure means a claim or a close changed
    /// `tail` since the caller looked: look again instead of sleeping.
    pub(super) fn set_park_bit(&self, tail: usize) -> bool {
        // Relaxed: the park protocols order it (step 4 with the claim CAS;
        // S3 with the fences); data travels with the stamps.
        tail & self.park_bit != 0
            || self
                .producers
                .tail
                .compare_exchange(
                    tail,
                    tail | self.park_bit,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    /// Sleeps on the consumer condvar (holding `guard` until asleep) until
    /// notified or `deadline`, then clears a park bit no producer cleared.
    pub(super) fn sleep(&self, guard: MutexGuard<'_, Option<Waker>>, deadline: Option<Instant>) {
        let timeout = match deadline {
            None => None,
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(t) if !t.is_zero() => Some(t),
                _ => {
                    drop(guard);
                    self.unpark_bit();
                    return;
                }
            },
        };
        drop(self.consumer.cond.wait(guard, timeout));
        self.unpark_bit();
    }

    /// Clears the park bit if no producer did (timeout or spurious wake).
    pub(super) fn unpark_bit(&self) {
        // Relaxed: as the CAS in `set_park_bit`, which set the bit: the
        // park protocols order it, and data travels with the stamps.
        if self.producers.tail.load(Ordering::Relaxed) & self.park_bit != 0 {
            self.producers
                .tail
                .fetch_and(!self.park_bit, Ordering::Relaxed);
        }
    }

    /// One round of a `Block` producer's wait for space (step 6): spins,
    /// then yields, then parks, as `wait` says. `full` re-checks, after the
    /// producer registered as a sleeper, whether the slot it wants still
    /// holds an unreceived value (and the ring is open); it is called only
    /// on the parking round. Returns `false` once `wait`'s deadline passed:
    /// the caller drops and counts.
    #[cold]
    pub(super) fn wait_for_space(&self, wait: &mut SpaceWait, full: impl FnOnce() -> bool) -> bool {
        match wait.spin() {
            Some(in_time) => in_time,
            None => self.park_producer(wait.deadline(), full),
        }
    }

    /// Parks a `Block` producer until a consumer frees a slot, the ring
    /// closes, or `deadline` passes (step 6). Returns `false` on timeout.
    ///
    /// Registers first (`wanted`, under the lock), runs the heavy barrier,
    /// then re-checks with `full`; sleeps only if that still says full.
    #[cold]
    pub(super) fn park_producer(
        &self,
        deadline: Option<Instant>,
        full: impl FnOnce() -> bool,
    ) -> bool {
        let mut sleepers = self.space.sleepers.lock();
        *sleepers += 1;
        // Relaxed: the barrier below orders it before the re-check; the
        // mutex orders it with the consumer's clear (`wake_space`).
        self.space.wanted.store(1, Ordering::Relaxed);
        // Pairs with the consumer's light barrier in `notify_space`: either
        // it sees `wanted`, or `full` below sees the slot it freed (step 6).
        barrier::heavy();
        let mut in_time = true;
        if full() {
            #[cfg(test)]
            self.space.parks.fetch_add(1, Ordering::Relaxed);
            let timeout = match deadline.map(|d| d.checked_duration_since(Instant::now())) {
                None => Some(None),
                Some(Some(left)) if !left.is_zero() => Some(Some(left)),
                Some(_) => None,
            };
            // Never one sleep longer than `PRODUCER_PARK_SLICE` (outside
            // loom, which must see a lost wake-up as a hang): the caller
            // re-checks and parks again, so a wake-up lost to a barrier
            // that stopped working (`membarrier` refused after a seccomp
            // filter arrived) costs one slice, never a hang.
            #[cfg(not(evbus_loom))]
            let timeout = timeout
                .map(|t| Some(t.map_or(PRODUCER_PARK_SLICE, |t| t.min(PRODUCER_PARK_SLICE))));
            match timeout {
                Some(timeout) => sleepers = self.space.cond.wait(sleepers, timeout),
                None => in_time = false,
            }
        }
        *sleepers -= 1;
        if *sleepers == 0 {
            // The last registered producer leaves: withdraw the request, so
            // pops stop looking at the lock (a consumer may have done it
            // already). Under the lock, so no producer's new registration
            // is lost. Relaxed: the mutex orders it.
            self.space.wanted.store(0, Ordering::Relaxed);
        }
        in_time
    }

    /// Wakes `Block` producers after a slot was freed, if one registered
    /// (step 6). With no producer waiting it costs a light barrier (a
    /// compiler fence where `membarrier` works) and one load of a line that
    /// only parking producers write: no lock, no system call.
    #[inline]
    pub(super) fn notify_space(&self) {
        // Pairs with the producer's heavy barrier in `park_producer`.
        barrier::light();
        // Relaxed: ordered by the barrier pair above.
        if self.space.wanted.load(Ordering::Relaxed) != 0 {
            self.wake_space();
        }
    }

    /// Wakes every `Block` producer asleep on this ring and withdraws their
    /// request, so the pops after this one pay nothing until a producer
    /// parks again: one wake per park, not one per pop. A woken producer
    /// that finds the ring full again registers again.
    #[cold]
    pub(super) fn wake_space(&self) {
        let sleepers = self.space.sleepers.lock();
        // Relaxed: under the lock, which every producer holds from its
        // registration until it is asleep; so no registration is cleared
        // before its producer sleeps, where this notification reaches it.
        self.space.wanted.store(0, Ordering::Relaxed);
        let any = *sleepers != 0;
        // Notified after the unlock, as in `wake`: every registered
        // producer is asleep once we held the lock.
        drop(sleepers);
        if any {
            #[cfg(test)]
            self.space.wakes.fetch_add(1, Ordering::Relaxed);
            self.space.cond.notify_all();
        }
    }

    #[cold]
    pub(super) fn wake(&self, waiter: &Waiter) {
        // Taking the lock orders this notification after the sleeper's
        // check-and-wait, which it performs while holding the lock: once we
        // hold it, a sleeper that set the park bit is waiting on the
        // condvar. So the notification can follow the unlock, and the woken
        // thread does not find the lock held (one futex call fewer).
        let mut guard = waiter.lock.lock();
        let task = guard.take();
        drop(guard);
        waiter.cond.notify_all();
        // Outside the lock: the waker may run arbitrary scheduler code.
        if let Some(task) = task {
            task.wake();
        }
    }
}

/// Models of the `Block` handshake (step 6). Run with
/// `RUSTFLAGS="--cfg evbus_loom" cargo test -p evbus-core --release --lib`.
#[cfg(all(test, evbus_loom))]
mod loom_tests {
    use std::time::Duration;

    use super::*;
    use crate::{
        policy::Overflow,
        ring::{PopError, Push, Totals},
        sync::Arc,
    };

    fn block_ring(cap: usize) -> Arc<Ring<u64>> {
        Arc::new(
            Ring::new(
                cap,
                Overflow::Block(Duration::MAX),
                Arc::new(Totals::default()),
            )
            .unwrap(),
        )
    }

    /// Receives until `last` or `Disconnected`, parking when empty; returns
    /// what it received.
    fn receive(ring: &Ring<u64>, last: u64) -> Vec<u64> {
        let mut got = Vec::new();
        loop {
            // SAFETY: the calling thread is the ring's only consumer.
            match unsafe { ring.try_pop() } {
                Ok(v) => {
                    got.push(v);
                    if v == last {
                        return got;
                    }
                }
                Err(PopError::Disconnected) => return got,
                Err(PopError::Lagged) => unreachable!("a Block ring never lags"),
                // SAFETY: as above.
                Err(PopError::Empty) => unsafe { ring.wait(None) },
            }
        }
    }

    /// Property: a producer that parks on a full `Block` ring (capacity 1)
    /// is woken by the pop that frees the slot: the model terminates, and
    /// both events arrive in order, none dropped.
    ///
    /// Depends on: the producer registering in `wanted` (under the space
    /// lock), then the heavy barrier, then re-checking the slot; and the
    /// consumer freeing the slot, then the light barrier, then reading
    /// `wanted`. With the heavy barrier removed, loom finds the
    /// interleaving where the consumer reads `wanted == 0` and the producer
    /// reads the slot as full, and reports the deadlock (the producer
    /// asleep on the space condvar, the consumer on its own).
    #[test]
    fn pop_wakes_parked_block_producer() {
        loom::model(|| {
            let ring = block_ring(1);
            let consumer = {
                let ring = Arc::clone(&ring);
                loom::thread::spawn(move || receive(&ring, 2))
            };
            assert_eq!(ring.push_alone(1), Push::Accepted);
            assert_eq!(ring.push_alone(2), Push::Accepted);
            assert_eq!(consumer.join().unwrap(), [1, 2]);
            assert_eq!(ring.counters().dropped, 0);
        });
    }

    /// Property: a close racing a producer parked (or about to park) on a
    /// full `Block` ring releases it: the model terminates, the push
    /// returns `Closed` or was accepted before the close, and the buffered
    /// events stay receivable.
    ///
    /// Depends on: the close setting the mark bit before `wake_space` takes
    /// the space lock, and the producer re-checking the mark under that
    /// lock before it sleeps. Without the `wake_space` in `wake_closed`
    /// loom reports the deadlock.
    #[test]
    fn close_wakes_parked_block_producer() {
        loom::model(|| {
            let ring = block_ring(1);
            assert_eq!(ring.push_alone(1), Push::Accepted);
            let producer = {
                let ring = Arc::clone(&ring);
                loom::thread::spawn(move || ring.push_alone(2))
            };
            let closed = ring.close();
            assert!(closed.first);
            ring.wake_closed(closed);
            assert_eq!(producer.join().unwrap(), Push::Closed);
            assert_eq!(receive(&ring, 2), [1]);
        });
    }
}

/// The cost of the `Block` handshake, counted rather than timed.
#[cfg(all(test, not(evbus_loom)))]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{
        policy::Overflow,
        ring::{Push, Tail, Totals},
        sync::Arc,
    };

    /// Waits, yielding, until `done` holds; panics (instead of hanging)
    /// after a generous number of rounds.
    fn wait_until(mut done: impl FnMut() -> bool) {
        for round in 0..200_000u32 {
            if done() {
                return;
            }
            if round < 1_000 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
        panic!("the producer never parked");
    }

    /// Property: a consumer wakes a parked `Block` producer once per park,
    /// not once per pop. Each round, the consumer waits until the producer
    /// has parked on the full ring, then drains all `CAP` events: only pops
    /// that find a registered sleeper pay for a wake, and the wake withdraws
    /// the request, so `wakes <= parks` however the threads interleave,
    /// while the consumer makes `CAP` pops per park. (Before, the waiting
    /// flag was cleared only when the producer ran again, so every pop in
    /// between took the lock and made a wake-up system call.)
    #[test]
    fn one_wake_per_park_not_per_pop() {
        const CAP: usize = 8;
        const ROUNDS: usize = if cfg!(miri) { 3 } else { 200 };
        let ring = Arc::new(
            Ring::<u64>::new(
                CAP,
                Overflow::Block(Duration::MAX),
                Arc::new(Totals::default()),
            )
            .unwrap(),
        );
        let total = (CAP * (ROUNDS + 1)) as u64;
        let producer = {
            let ring = Arc::clone(&ring);
            std::thread::spawn(move || {
                for v in 0..total {
                    assert_eq!(ring.push_alone(v), Push::Accepted);
                }
            })
        };
        let mut next = 0;
        let mut pops = 0;
        for round in 0..ROUNDS {
            // Relaxed: a test counter; the ring's own protocol orders the
            // events.
            wait_until(|| ring.space.parks.load(Ordering::Relaxed) > round);
            for _ in 0..CAP {
                let v = loop {
                    // SAFETY: this thread is the ring's only consumer.
                    match unsafe { ring.try_pop() } {
                        Ok(v) => break v,
                        // The producer is refilling the freed slots.
                        Err(_) => std::thread::yield_now(),
                    }
                };
                assert_eq!(v, next);
                next += 1;
                pops += 1;
            }
        }
        producer.join().unwrap();
        let parks = ring.space.parks.load(Ordering::Relaxed);
        let wakes = ring.space.wakes.load(Ordering::Relaxed);
        assert!(parks >= ROUNDS, "the consumer waited for a park each round");
        assert!(wakes >= 1, "a parked producer was woken");
        assert!(wakes <= parks, "{wakes} wakes for {parks} parks");
        assert_eq!(pops, CAP * ROUNDS);
        assert_eq!(ring.counters().dropped, 0);
    }

    /// Property: `Block(Duration::ZERO)` on a full ring refuses at once, in
    /// the lane of the publisher that asked: it never parks, and the drop is
    /// counted once (as `DropNewest` would count it).
    #[test]
    fn zero_block_timeout_refuses_without_parking() {
        let ring = Ring::<u64>::new(
            1,
            Overflow::Block(Duration::ZERO),
            Arc::new(Totals::default()),
        )
        .unwrap();
        assert_eq!(ring.push_alone(1), Push::Accepted);
        let lane = crate::ring::LanePool::default().take();
        for _ in 0..3 {
            assert_eq!(ring.push_with(|| 2, Tail::none(), lane), Push::Dropped);
        }
        assert_eq!(ring.space.parks.load(Ordering::Relaxed), 0);
        let c = ring.counters();
        assert_eq!((c.delivered, c.dropped, c.high_water), (1, 3, 1));
    }
}
