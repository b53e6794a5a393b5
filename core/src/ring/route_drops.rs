//! Step 8b: the drops of a remembered full route, counted once per publish.
//!
//! A [`Publisher`](crate::Publisher) that found every ring of a route full
//! twice in a row remembers it (`full_route.rs`), and its next publishes on
//! that topic refuse each ring after one look at its `head`. Counting each
//! of those K drops in the ring's lane cell (step 8) is a load, a store and
//! a `state` load per ring per publish: at K = 16 about 4.3 of the 14.6 ns
//! a publish took (`bench-report` `10.`, with the counts left out as an
//! experiment). So while a lane's owner holds a route, the drops of every
//! ring in it are counted once per publish, in the lane's *route count*
//! ([`RouteDrops`], one per bus, in its `Totals`), and each ring's lane cell
//! says how to read it:
//!
//! - a cell holds `n << 1`: `n` drops, as in step 8; or
//! - `(n - r) << 1 | 1` (mod 2^64) while the lane's owner holds a route with
//!   this ring: the ring's count is that offset plus the lane's route count
//!   `r`, so one increment of `r` counts one drop in every ring of the
//!   route. A drop through another route adds 2 to the cell, either way.
//!
//! The owner *holds* a ring by rewriting its cell from the first form to
//! the second ([`LaneCounts::hold`]), and *releases* it by writing the count
//! back in the first form ([`LaneCounts::release`]) before it forgets the
//! route, and before it gives its lane back.
//!
//! # Synchronization protocol
//!
//! - *Readers* (statistics, the fold) read a held cell, then the route
//!   count, then the cell again, and retry if it changed
//!   ([`LaneCounts::decoded`]). Only the owner writes either. The route
//!   count's stores are Release and its loads Acquire, and so are every
//!   store to a cell that may be held (`hold`, and a drop's count: a
//!   release sequence holds no plain store) and the cell's first load: a
//!   reader that sees a held cell sees at least the route count it was
//!   held at, and a reader that
//!   sees a route count written after a release sees the release in its
//!   second load. So equal loads give an exact count, with one exception:
//!   the cell released and held again at the same offset between them.
//!   That takes the route count to rise (while the lane held another
//!   route) by exactly the drops counted into the released cell meanwhile.
//!   The count the reader decodes then lies between the ring's counts at
//!   the release and at the new hold, which rose one at a time within the
//!   read, so it is a count the ring had during the read.
//! - *The fold* (step 8) must get every drop once: in its read of the cells,
//!   or from the publisher itself (`count_late`). A publish counted in the
//!   route count checks no ring's `state`, so the folder also announces
//!   each fold in the bus's fold count ([`RouteDrops::folds`], Release, after
//!   the ring's `FOLDING`, before its heavy barrier), and the publisher:
//!   - on a publish, stores the route count, runs a light barrier and
//!     loads the fold count: unchanged since it held the route, the fold's
//!     read comes after the store (the store-buffering pair of step 8);
//!     changed, it settles each ring of the route that is folding
//!     (`count_late`) and forgets the route;
//!   - on holding, rewrites the cells, runs a light barrier, loads the fold
//!     count (Acquire, so a new count shows the `FOLDING` stored before
//!     it), then every ring's `state`: a ring folding already makes it
//!     release them all and not hold the route. Otherwise a fold that reads
//!     the cells before the next publish's store reads the held cells, and
//!     one that begins after the hold changes the fold count that publish
//!     loads.

use crate::{barrier, sync::atomic::Ordering};

use super::{Ring, lanes::RouteDrops};

impl RouteDrops {
    /// One more publish that refused every ring of lane `i`'s held route;
    /// `false` if a fold began since `folds` (from
    /// [`RouteDrops::hold_route`]): the caller then settles the route
    /// ([`Ring::settle_route`]).
    #[inline(always)]
    pub(crate) fn refuse_all(&self, i: usize, folds: u64) -> bool {
        let count = &self.counts[i];
        // Relaxed load: one writer, this thread. Release store: pairs with
        // the Acquire in `count`.
        count.store(count.load(Ordering::Relaxed) + 1, Ordering::Release);
        // Pairs with the heavy barrier of the fold: it reads this count, or
        // the load below sees its announcement.
        barrier::light();
        // Acquire: pairs with the Release in `announce_fold`, so that a new
        // count shows the ring's `FOLDING` to `settle_route`.
        self.folds.load(Ordering::Acquire) == folds
    }

    /// Announces a ring's fold, after its `FOLDING` and before the heavy
    /// barrier (`Ring::begin_fold`).
    pub(super) fn announce_fold(&self) {
        // Release: pairs with the Acquire loads in `refuse_all` and
        // `hold_route`; the heavy barrier that follows orders it with their
        // light ones.
        self.folds.fetch_add(1, Ordering::Release);
    }

    /// Holds `rings`, a full route of lane `i`'s owner: their drops count
    /// in the lane's route count from now on. Returns the fold count to
    /// pass to [`RouteDrops::refuse_all`], or `None`, with every ring
    /// released, if one of them has begun to fold.
    pub(crate) fn hold_route<'r, T: 'r>(
        &self,
        rings: impl Iterator<Item = &'r Ring<T>> + Clone,
        i: usize,
    ) -> Option<u64> {
        // Relaxed: one writer, this thread.
        let r = self.counts[i].load(Ordering::Relaxed);
        for ring in rings.clone() {
            ring.lanes.hold(i, r);
        }
        // Pairs with the heavy barrier of a fold, as in `refuse_all`.
        barrier::light();
        // Acquire: as in `refuse_all`.
        let folds = self.folds.load(Ordering::Acquire);
        if rings.clone().any(|ring| ring.lanes.folding()) {
            for ring in rings {
                ring.lanes.release(i, r);
            }
            return None;
        }
        Some(folds)
    }

    /// Releases `rings`, held by lane `i`'s owner: their cells count on
    /// their own again.
    pub(crate) fn release_route<'r, T: 'r>(
        &self,
        rings: impl Iterator<Item = &'r Ring<T>>,
        i: usize,
    ) {
        // Relaxed: one writer, this thread.
        let r = self.counts[i].load(Ordering::Relaxed);
        for ring in rings {
            ring.lanes.release(i, r);
        }
    }
}

impl<T> Ring<T> {
    /// After [`RouteDrops::refuse_all`] saw a fold begin: settles this
    /// ring's drops for lane `i`, held, if its fold has begun (as a lane
    /// drop that raced the fold, step 8).
    pub(crate) fn settle_route(&self, i: usize) {
        if self.lanes.folding() {
            self.lanes.count_late(
                i,
                &self.totals.route,
                &self.totals.dropped,
                &self.cold.folded_at,
            );
        }
    }
}
