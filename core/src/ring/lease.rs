//! The lease: the single-producer protocol for a multi-producer bus while it
//! has one publisher.
//!
//! A service that embeds a bus usually publishes from one place. On a bus
//! made by [`Bus::new`](crate::Bus::new), the first
//! [`Publisher`](crate::Publisher) takes the bus's lease, and while it holds
//! it, its publishes push into the rings with plain stores (S1 of
//! `ring/solo.rs`), as a [`SoloPublisher`](crate::SoloPublisher) does: no
//! CAS per delivery. A second producer (another `Publisher` while the
//! holder lives, or any publish through [`Bus`](crate::Bus) itself)
//! revokes the lease for good, and each ring turns to the multi-producer
//! protocol on the first push that finds it leased.
//!
//! # Protocol (numbers continue S1-S5 of `ring/solo.rs`)
//!
//! L1. *Leased rings.* A `DropNewest` or `Block` ring made while the lease
//!     is not revoked is [`Mode::Leased`]: its `tail` starts as the lease
//!     bit, and while that bit is set `tail` holds only flags, the
//!     producer's position being in the ring's cursor, as in
//!     single-producer mode. The lease bit is below the lap bits, in the
//!     flag bits that every multi-producer push tests at once, so a push
//!     that finds it goes to the slow path at no cost to the fast one.
//!     `DropOldest` rings are never leased.
//! L2. *Holding.* `Lease::take` moves the lease from free to held (AcqRel:
//!     Acquire pairs with the Release of the last holder's
//!     `Lease::give_back`, so its cursors are this holder's to go on
//!     from). A holder's publish starts as S2's (odd epoch, light barrier),
//!     then loads the lease state: still held, it pushes into leased rings
//!     as S1 says (and into the others the multi-producer way); revoked, it
//!     ends the epoch and publishes the multi-producer way from then on.
//!     A revoker stores `REVOKING`, then waits out a publish in flight
//!     (heavy barrier, then the epoch, as S2's closer), then stores
//!     `REVOKED` with Release (`Epoch::revoke_lease`; the states are in
//!     `ring/lease_state.rs`). The barriers pair as in S2: either the
//!     holder sees the revocation, or the revoker sees the odd epoch and
//!     waits for the publish to end.
//! L3. *Conversion.* A multi-producer push that finds the lease bit (and no
//!     mark) replaces `tail` by the cursor's position with the park bit
//!     kept, with a CAS; then it claims as usual. Only a producer that
//!     completed a revocation converts (every other producer revokes before
//!     its first publish, and loads `REVOKED` with Acquire, which pairs
//!     with the revoker's Release, itself after its Acquire of the even
//!     epoch that the holder stored with Release after its last push): so
//!     the cursor it reads is final, and no plain-store push can follow.
//!     The holder converts too once it saw the revocation (program order).
//!     A close's `fetch_or` and a consumer's park CAS are RMWs on `tail`
//!     as well: each acts on one encoding, and a CAS that lost to one of
//!     them reads again.
//! L4. *A paused publish.* A holder's `Block` wait that parks pauses the
//!     publish (S5), so revokers do not wait for it. On resuming (odd epoch,
//!     light barrier) it loads the lease state again; revoked, the rest of
//!     the publish, the ring it waited on included, goes the
//!     multi-producer way.
//! L5. *User code.* A holder's push makes its value (`E::clone`) after its
//!     room check, as S1 does. A clone that publishes on the same bus
//!     (through `Bus`, or a new `Publisher`) revokes from inside the
//!     holder's publish: that revocation does not wait for the publish it
//!     is in (`Epoch::publishing_here`), stores `REVOKING` only, and its
//!     pushes convert the rings they reach on this thread. So after making
//!     its value, the holder's push loads `tail` again and, if the ring was
//!     converted or closed meanwhile, pushes the value the multi-producer
//!     way. Other threads wait for `REVOKED`, which a revoker stores only
//!     after the holder's publish has ended.
//! L6. *Consumers.* A consumer of a leased ring pops as in any ring (both
//!     protocols free a slot by moving `head`). When it finds a slot
//!     unwritten, or parks, it looks at `tail`: with the lease bit it
//!     answers as S2 and S3 say (`Empty` until the closer's final bit; park
//!     with a CAS on the flags, a heavy barrier and a look at the stamp),
//!     else as steps 4 and 5a. The lease bit never comes back, and each
//!     park CAS compares the whole `tail`, so a conversion between the look
//!     and the CAS fails the CAS, and the consumer looks again. A close
//!     that finds the lease bit in its `fetch_or` closes as S4 (waits out
//!     the publish, sets the final bit); a ring closed while leased is
//!     never converted.

use super::{
    Mode, PopError, Push, Ring,
    lanes::Lane,
    lease_state::Fallback,
    push::{Tail, contained},
    solo::Epoch,
};
use crate::{
    barrier,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

impl<T> Ring<T> {
    /// Turns leasing on (L1), for the multi-producer bus whose epoch is
    /// `epoch`: `DropNewest` and `Block` rings only (the caller checks).
    #[must_use]
    pub(crate) fn leased(mut self, epoch: Arc<Epoch>) -> Self {
        debug_assert!(matches!(self.mode, Mode::Multi));
        self.producers = super::Producers {
            tail: AtomicUsize::new(self.lease_bit()),
            head_seen: AtomicUsize::new(0),
        };
        self.mode = Mode::Leased(epoch);
        self
    }

    /// A push by the lease holder, inside its publish (`guard`): the
    /// single-producer push while the ring is leased and the lease held,
    /// else [`Ring::push_with`]. `rest` is the rest of the route, as for
    /// `push_with`.
    #[inline]
    pub(crate) fn push_leased<F: FnOnce() -> T>(
        &self,
        make: F,
        guard: &super::SoloGuard<'_, T>,
        rest: Tail<'_, T>,
        lane: Lane,
    ) -> Push {
        // Relaxed: this publish's guard saw the lease held (L2), so no other
        // thread converts the ring until the publish ends; a conversion or
        // close by this thread's user code comes before in program order.
        let tail = self.producers.tail.load(Ordering::Relaxed);
        if guard.revoked() || tail & (self.lease_bit() | self.mark_bit) != self.lease_bit() {
            return self.push_with(make, rest, lane);
        }
        // SAFETY: the lease bit is set and the lease held for this publish,
        // whose guard the caller holds: its holder is the ring's only
        // producer (L2, L3).
        match unsafe { self.push_own::<true, F>(make, guard, lane) } {
            Ok(Push::Accepted) => {
                self.settle_leased(rest);
                Push::Accepted
            }
            Ok(push) => push,
            Err(Fallback::Make(make)) => self.push_with(make, rest, lane),
            Err(Fallback::Made(v, tail)) => self.push_made(tail, v, rest, lane),
        }
    }

    /// S3 for one leased ring, right after its push (L6): wakes its
    /// consumer if it parked. Run per ring, not once at the end of the
    /// publish as a single-producer bus does, so that a waker that panics
    /// cuts the publish short where it is, counting `rest` (the rest of the
    /// route) as unreached, as a multi-producer push's wake does: a route
    /// of leased and converted rings then behaves as one, and no parked
    /// consumer waits for a settle that a panic skipped. On Linux the
    /// barrier is a compiler fence.
    #[inline(always)]
    fn settle_leased(&self, rest: Tail<'_, T>) {
        // Pairs with the consumer's heavy barrier in `park_solo` (S3).
        barrier::light();
        // Relaxed: ordered by the barrier above (S3).
        if self.producers.tail.load(Ordering::Relaxed) & self.park_bit != 0 {
            contained(|| self.wake_solo(), rest);
        }
    }

    /// Converts a leased ring found with `tail` (lease bit set, no mark) to
    /// the multi-producer protocol (L3); returns the `tail` to go on from.
    ///
    /// Only for a producer that completed a revocation of the lease, or
    /// the holder after it saw the revocation.
    #[cold]
    pub(super) fn convert_lease(&self, tail: usize) -> usize {
        debug_assert!(tail & self.lease_bit() != 0 && tail & self.mark_bit == 0);
        // Relaxed: the holder's last store, visible through the revocation
        // (L3).
        let pos = self.cursor.tail(Ordering::Relaxed);
        let converted = pos | (tail & self.park_bit);
        // AcqRel: Release hands the cursor's position on to the producers
        // that claim from it; Acquire keeps the RMW chain of `tail` (a
        // consumer's park, a close) intact. On failure, the value that beat
        // it, to look at again.
        match self.producers.tail.compare_exchange(
            tail,
            converted,
            Ordering::AcqRel,
            Ordering::Relaxed,
        ) {
            Ok(_) => converted,
            Err(current) => current,
        }
    }

    /// Whether the ring runs the single-producer protocol now: a
    /// single-producer ring, or a leased one whose `tail` carries the lease
    /// bit (L6). A leased ring that answers `false` never answers `true`
    /// again.
    #[inline]
    pub(super) fn single_now(&self) -> bool {
        match self.mode {
            Mode::Solo(_) => true,
            Mode::Multi => false,
            // Relaxed: the bit never comes back; a consumer's CAS on `tail`
            // compares it again.
            Mode::Leased(_) => self.producers.tail.load(Ordering::Relaxed) & self.lease_bit() != 0,
        }
    }

    /// What a consumer that found the slot at `head` unwritten answers
    /// while the ring is leased (L6, as S2): `Empty` until the final bit;
    /// then `Disconnected`, or `None` (look again) if the slot was written
    /// before the close, or if the ring was converted meanwhile (its `tail`
    /// then holds a position, whose lap bits are no final bit).
    #[cold]
    pub(super) fn unwritten_leased(&self, head: usize) -> Option<PopError> {
        // Acquire: pairs with the closer's final `fetch_or` (S2).
        let tail = self.producers.tail.load(Ordering::Acquire);
        if tail & self.lease_bit() == 0 {
            return None;
        }
        if tail & self.final_bit() == 0 {
            self.found_empty();
            return Some(PopError::Empty);
        }
        // Acquire: pairs with the producer's Release stamp store (step 2).
        if self.slot(head).stamp.load(Ordering::Acquire) == head.wrapping_add(1) {
            return None;
        }
        Some(PopError::Disconnected)
    }

    /// The position a leased ring's next push claims, for its holder
    /// (`full_at`): the cursor's.
    #[inline]
    pub(super) fn leased_tail(&self, tail: usize) -> Option<usize> {
        match self.mode {
            // Relaxed: the holder's own cursor.
            Mode::Leased(_) if tail & self.flag_bits == self.lease_bit() => {
                Some(self.cursor.tail(Ordering::Relaxed))
            }
            _ => None,
        }
    }
}

/// Ring-level models of the lease. Run with
/// `RUSTFLAGS="--cfg evbus_loom" cargo test -p evbus-core --release --lib`.
#[cfg(all(test, evbus_loom))]
mod loom_tests {
    use super::*;
    use crate::{
        policy::Overflow,
        ring::{SoloGuard, Totals},
    };

    /// Property: a consumer that parks in `wait` on a leased ring while the
    /// holder's push lands is woken (L6, S3 per ring); the model deadlocks
    /// if the holder's barrier in `settle_leased` is missing.
    #[test]
    fn leased_push_wakes_parked_consumer() {
        loom::model(|| {
            let epoch = Arc::new(Epoch::default());
            assert!(epoch.lease.take());
            let ring = Arc::new(
                Ring::<u64>::new(1, Overflow::DropNewest, Arc::new(Totals::default()))
                    .unwrap()
                    .leased(Arc::clone(&epoch)),
            );
            let consumer = crate::ring::loom_tests::spawn_receive_one(&ring);
            let route = [Arc::clone(&ring)];
            let guard = SoloGuard::begin_leased(&epoch, &route).expect("held");
            let push = ring.push_leased(|| 7, &guard, Tail::none(), Lane::SHARED);
            drop(guard);
            assert_eq!(push, Push::Accepted);
            assert_eq!(consumer.join().unwrap(), 7);
        });
    }
}
