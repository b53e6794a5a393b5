//! The lease's state (`ring/lease.rs`, L2): free, held by one `Publisher`,
//! being revoked, or revoked for good; and what a leased push hands back
//! when the lease no longer covers it. The revocation's wait for the
//! holder's publish is the epoch's (`Epoch::revoke_lease`, `ring/solo.rs`).

use crate::sync::atomic::{AtomicUsize, Ordering};

/// No holder, and never revoked: the next `Publisher` takes it.
const FREE: usize = 0;
/// A `Publisher` holds it.
const HELD: usize = 1;
/// Being revoked: the revocation is complete once a revoker waited out the
/// holder's publish in flight (from inside that publish, none can, L5).
const REVOKING: usize = 2;
/// Revoked, for good: every ring is multi-producer, or will be converted
/// by its next push.
const REVOKED: usize = 3;

/// A bus's lease: whether one `Publisher` is its only producer (L2).
#[derive(Debug)]
pub(crate) struct Lease {
    state: AtomicUsize,
}

impl Lease {
    /// The lease of a multi-producer bus: free.
    pub(super) fn new() -> Self {
        Self {
            state: AtomicUsize::new(FREE),
        }
    }

    /// The lease of a bus whose rings are never leased (a single-producer
    /// bus, whose producer is single by construction): revoked from the
    /// start.
    pub(super) fn revoked() -> Self {
        Self {
            state: AtomicUsize::new(REVOKED),
        }
    }

    /// Takes the lease if it is free; `true` if the caller holds it now.
    pub(crate) fn take(&self) -> bool {
        // AcqRel: Acquire pairs with the Release in `give_back`, so the
        // last holder's cursors are visible to this one (L2).
        self.state
            .compare_exchange(FREE, HELD, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// The holder is gone: the lease is free again, unless revoked.
    pub(crate) fn give_back(&self) {
        // Release: pairs with the Acquire in `take` (L2).
        let _ = self
            .state
            .compare_exchange(HELD, FREE, Ordering::Release, Ordering::Relaxed);
    }

    /// Whether the lease is still held, for its holder after the light
    /// barrier of a publish's start or resumption (L2, L4).
    #[inline(always)]
    pub(crate) fn held(&self) -> bool {
        // Relaxed: ordered by the barriers (L2); the holder needs no data
        // from the revoker.
        self.state.load(Ordering::Relaxed) == HELD
    }

    /// Whether rings made now may be leased (L1). A stale answer is safe:
    /// a ring made leased after the revocation is converted by its first
    /// push.
    pub(crate) fn leasable(&self) -> bool {
        // Relaxed: see above.
        self.state.load(Ordering::Relaxed) <= HELD
    }

    /// Whether the revocation is complete (L3).
    #[inline(always)]
    pub(super) fn revoked_for_good(&self) -> bool {
        // Acquire: pairs with the Release store in `finish_revoke`, made by
        // the revoker that waited out the holder's last publish (L3).
        self.state.load(Ordering::Acquire) == REVOKED
    }

    /// Starts a revocation: `false` if it was complete already.
    pub(super) fn start_revoke(&self) -> bool {
        // Relaxed: the heavy barrier of the wait that follows orders it
        // against the holder's load of the state (L2).
        if self.state.swap(REVOKING, Ordering::Relaxed) == REVOKED {
            // Another revoker finished first; restore its word.
            // Release: as in `finish_revoke`.
            self.state.store(REVOKED, Ordering::Release);
            return false;
        }
        true
    }

    /// Completes a revocation, once the holder's publish in flight was
    /// waited out.
    pub(super) fn finish_revoke(&self) {
        // Release: pairs with the Acquire in `revoked_for_good` (L3).
        self.state.store(REVOKED, Ordering::Release);
    }
}

/// What a leased push (`Ring::push_own`) hands back to the multi-producer
/// protocol when the lease no longer covers it.
pub(super) enum Fallback<F, T> {
    /// The lease was revoked while a `Block` wait paused the publish (L4):
    /// the value is not made yet.
    Make(F),
    /// The value's `make` converted or closed the ring (L5): the value and
    /// the `tail` seen after it.
    Made(T, usize),
}
