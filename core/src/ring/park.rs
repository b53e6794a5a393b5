//! Step 4 (park without a lost wake-up) and step 6 (`Block` producers
//! waiting for space): the waiters, and how each side sleeps and wakes the
//! other. See the protocol in `ring/mod.rs`; the single-producer park is in
//! `ring/solo.rs` (S3).

use std::{task::Waker, time::Instant};

use super::Ring;
use crate::sync::{
    self, Condvar, Mutex, MutexGuard,
    atomic::{Ordering, fence},
};

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
        if self.is_solo() {
            // SAFETY: the caller's contract, passed on.
            return unsafe { self.park_solo(waker, deadline) };
        }
        let mut guard = self.consumer.lock.lock();
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Relaxed);
        if tail & self.mark_bit != 0 || self.pos(tail) != head {
            // Relaxed: only decides whether to yield; the caller looks again.
            if self.slot(head).stamp.load(Ordering::Relaxed) == head {
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
        if self.tail.load(Ordering::Relaxed) & self.park_bit != 0 {
            self.tail.fetch_and(!self.park_bit, Ordering::Relaxed);
        }
    }

    /// Waits until the slot at `pos` may be free, the ring closes, or
    /// `deadline` (if any) passes. Returns `false` on timeout.
    #[cold]
    pub(super) fn wait_for_space(&self, pos: usize, deadline: Option<Instant>) -> bool {
        let guard = self.space.lock.lock();
        // Relaxed: the SeqCst fence below orders it (step 6).
        self.cold.blocked.fetch_add(1, Ordering::Relaxed);
        // SeqCst: pairs with the consumer's fence after it frees a slot.
        fence(Ordering::SeqCst);
        let head = self.head.load(Ordering::Relaxed);
        let closed = self.tail.load(Ordering::Relaxed) & self.mark_bit != 0;
        let mut in_time = true;
        if head.wrapping_add(self.one_lap) == pos && !closed {
            match deadline.map(|d| d.checked_duration_since(Instant::now())) {
                None => drop(self.space.cond.wait(guard, None)),
                Some(Some(left)) if !left.is_zero() => {
                    drop(self.space.cond.wait(guard, Some(left)));
                }
                Some(_) => in_time = false,
            }
        } else {
            drop(guard);
        }
        self.cold.blocked.fetch_sub(1, Ordering::Relaxed);
        in_time
    }

    /// Wakes `Block` producers after a slot was freed (step 6).
    pub(super) fn notify_space(&self) {
        // SeqCst: pairs with the fence in `wait_for_space`.
        fence(Ordering::SeqCst);
        if self.cold.blocked.load(Ordering::Relaxed) != 0 {
            self.wake(&self.space);
        }
    }

    #[cold]
    pub(super) fn wake(&self, waiter: &Waiter) {
        // Taking the lock orders this notification after the sleeper's
        // check-and-wait, which it performs while holding the lock.
        let mut guard = waiter.lock.lock();
        waiter.cond.notify_all();
        let task = guard.take();
        drop(guard);
        // Outside the lock: the waker may run arbitrary scheduler code.
        if let Some(task) = task {
            task.wake();
        }
    }
}
