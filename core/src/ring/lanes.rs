//! Step 8: drops counted by their publisher, with plain stores.
//!
//! A `DropNewest` ring that is full refuses every publish, so its drop
//! counter is written once per publish per full ring. A shared counter would
//! make that a locked read-modify-write (about as dear as the rest of the
//! refusal together). A `Block` ring that times out counts the same way.
//! Instead each [`Publisher`](crate::Publisher) handle
//! takes a *lane* from its bus ([`LanePool`], [`LANES`] of them), and every
//! ring keeps one drop cell per lane ([`LaneCounts`]). Only the lane's owner
//! writes its cell, so a drop is a load and a store; readers sum the cells.
//! Publishes without a lane (through [`Bus`](crate::Bus) itself, or a
//! publisher beyond the first [`LANES`]) count in the ring's shared
//! `dropped` counter, as before (step 7).
//!
//! # Synchronization protocol
//!
//! - *Owner.* A lane has one owner at a time. [`LanePool::take`] acquires
//!   it (AcqRel RMW on the pool's bitmap) and [`LanePool::give_back`]
//!   releases it (Release RMW), so the next owner's first load of a cell
//!   sees the previous owner's last store: every cell only grows.
//! - *Fold.* When the ring leaves the registry ([`fold_rings`](super::fold_rings),
//!   after its close) its drops move into the bus totals once. A drop that
//!   raced the close (the publisher saw the ring open and full) may still
//!   land after the fold has read its cell, and must then go to the totals
//!   itself. The two sides are a store-buffering pair:
//!   - the publisher stores its cell, runs a *light* barrier, and loads
//!     `state`;
//!   - the folder stores `state = FOLDING`, runs a *heavy* barrier, reads
//!     every cell into `folded_at` ([`FoldedAt`], kept apart from the cells
//!     on the ring's cold line), then stores `state = FOLDED` (Release).
//!     A heavy barrier is a system call (about 10 to 20 µs on this VM), so
//!     the bus folds the rings that left in batches, one barrier each
//!     (`Shared::remove_sub`).
//!
//!   Together the barriers order like two `fence(SeqCst)` (`barrier.rs`):
//!   either the folder reads the new value, or the publisher sees the fold.
//!   A publisher that sees it waits for `FOLDED` (bounded by the folder's
//!   eight loads and stores; no user code runs there) and adds its drop to
//!   the totals unless `folded_at` for its lane already includes it. Cells
//!   only grow and have one writer, so `folded_at[lane] >= value` says
//!   exactly whether the fold counted this drop.
//!
//! The hot side costs a load, an add, a store, a compiler fence and one load
//! of `state` on a line that the publisher already holds (where Linux has
//! `membarrier`; elsewhere the light barrier is a `fence(SeqCst)`).

use crossbeam_utils::CachePadded;

use crate::{
    barrier,
    sync::{
        Backoff,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
};

/// Lanes per bus: the publisher handles whose drops cost no shared
/// read-modify-write. Eight cells fill one cache line.
pub(crate) const LANES: usize = 8;

/// `LaneCounts::state` values.
const OPEN: usize = 0;
const FOLDING: usize = 1;
const FOLDED: usize = 2;

/// A publisher's lane: the index of its cell in every ring of its bus, or
/// [`Lane::SHARED`] for a publish that counts in the shared counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lane(u8);

impl Lane {
    /// No lane: drops count in the ring's shared counter (step 7).
    pub(crate) const SHARED: Lane = Lane(LANES as u8);

    #[inline(always)]
    pub(crate) fn index(self) -> Option<usize> {
        let i = usize::from(self.0);
        (i < LANES).then_some(i)
    }
}

/// The lanes of one bus not taken by a live publisher.
#[derive(Debug, Default)]
pub(crate) struct LanePool {
    /// Bit `i` set: lane `i` is taken.
    taken: AtomicUsize,
}

impl LanePool {
    /// Takes a free lane, or [`Lane::SHARED`] if all are taken.
    pub(crate) fn take(&self) -> Lane {
        // Relaxed: a first guess for the CAS, which re-reads on failure.
        let mut cur = self.taken.load(Ordering::Relaxed);
        loop {
            let free = !cur & ((1 << LANES) - 1);
            if free == 0 {
                return Lane::SHARED;
            }
            let bit = free & free.wrapping_neg();
            // AcqRel: Acquire pairs with the Release in `give_back`, so the
            // previous owner's cell stores happen before ours (see the
            // module docs); Release keeps the RMW chain intact.
            match self.taken.compare_exchange_weak(
                cur,
                cur | bit,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                #[expect(
                    clippy::cast_possible_truncation,
                    reason = "bit < 1 << LANES, so its index is below 8"
                )]
                Ok(_) => return Lane(bit.trailing_zeros() as u8),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Returns `lane` to the pool; its owner makes no more drops.
    pub(crate) fn give_back(&self, lane: Lane) {
        if let Some(i) = lane.index() {
            // Release: pairs with the Acquire in `take` (see there).
            self.taken.fetch_and(!(1 << i), Ordering::Release);
        }
    }
}

/// Per bus: each lane's route count, and the folds begun (step 8b; its
/// protocol and its methods but [`RouteDrops::count`] are in
/// `ring/route_drops.rs`).
#[derive(Debug, Default)]
pub(crate) struct RouteDrops {
    /// Lane `i`'s publishes that refused every ring of the route it held.
    /// One writer, the lane's owner; on lines of their own, as publishers
    /// on other threads write their lanes' counts.
    pub(super) counts: [CachePadded<AtomicU64>; LANES],
    /// Fold announcements: one per ring that began to fold.
    pub(super) folds: AtomicU64,
}

impl RouteDrops {
    /// Lane `i`'s route count, as a reader: Acquire, see
    /// `ring/route_drops.rs`.
    #[inline]
    pub(super) fn count(&self, i: usize) -> u64 {
        // Acquire: pairs with the Release stores in `refuse_all`.
        self.counts[i].load(Ordering::Acquire)
    }
}

/// One ring's drop cells, one per lane, and their fold.
///
/// A cell holds `n << 1` for `n` drops, or, while its lane's owner holds a
/// full route with this ring, `(n - r) << 1 | HELD` with `r` the lane's
/// route count (`ring/route_drops.rs`). A drop adds [`ONE`] either way.
#[derive(Debug, Default)]
pub(super) struct LaneCounts {
    cells: [AtomicU64; LANES],
    /// `OPEN`, then `FOLDING`, then `FOLDED` (see the module docs).
    state: AtomicUsize,
}

/// A cell's flag: counted with its lane's route count (step 8b).
const HELD: u64 = 1;
/// One drop, in a cell.
const ONE: u64 = 2;
/// Counts are kept modulo 2^63: a cell's count bits.
const COUNT: u64 = u64::MAX >> 1;

/// The count of cell value `v`, with `r` its lane's route count.
#[inline]
fn decode(v: u64, r: u64) -> u64 {
    if v & HELD == 0 {
        v >> 1
    } else {
        (v >> 1).wrapping_add(r) & COUNT
    }
}

/// What the fold read from each cell of a ring's [`LaneCounts`] (decoded);
/// valid once their `state` is `FOLDED`. Apart from the cells, which share
/// the line of `tail`: only the fold writes it, and only a drop that raced
/// the fold reads it, so it waits on the ring's cold line.
#[derive(Debug, Default)]
pub(super) struct FoldedAt([AtomicU64; LANES]);

impl LaneCounts {
    /// Counts one drop in lane `i`, as its owner. `true` when the fold has
    /// begun: the caller then settles the drop with
    /// [`LaneCounts::count_late`].
    #[inline(always)]
    #[must_use = "a drop that raced the fold must be settled with `count_late`"]
    pub(super) fn count(&self, i: usize) -> bool {
        self.add_one(i);
        // Pairs with the heavy barrier in `fold`: the fold reads the new
        // count, or we see its `state` store below.
        barrier::light();
        self.folding()
    }

    /// One more drop in lane `i`'s cell (held or not), as its owner: the
    /// store of [`LaneCounts::count`].
    #[inline(always)]
    fn add_one(&self, i: usize) {
        let cell = &self.cells[i];
        // Relaxed load: one writer, the lane's owner (handed over by
        // `LanePool`). Release store: a reader whose Acquire load in
        // `decoded` reads this value of a held cell must also see the route
        // count the cell was held at. A release sequence holds no plain
        // store, so `hold`'s Release alone does not reach a reader that
        // reads this later value (on Linux the light barrier after it is
        // only a compiler fence). A plain store on x86. Wrapping: a held
        // cell's offset may be "negative"; the flag bit is never carried
        // into.
        cell.store(
            cell.load(Ordering::Relaxed).wrapping_add(ONE),
            Ordering::Release,
        );
    }

    /// Whether this ring's fold has begun, after a light barrier that
    /// follows a drop's count (its pair, see the module docs).
    #[inline(always)]
    pub(super) fn folding(&self) -> bool {
        // Relaxed: ordered by the barrier pair.
        self.state.load(Ordering::Relaxed) != OPEN
    }

    /// A drop whose publisher saw the fold begin, in lane `i` (whose route
    /// count is in `route`): counts it in `totals` unless the fold already
    /// read it, as `folded_at` (this ring's) says.
    #[cold]
    #[inline(never)]
    pub(super) fn count_late(
        &self,
        i: usize,
        route: &RouteDrops,
        totals: &AtomicU64,
        folded_at: &FoldedAt,
    ) {
        let backoff = Backoff::new();
        // Acquire: pairs with the Release store of `FOLDED` in `fold`, so
        // `folded_at` below is the fold's. Bounded: the folder is between
        // two stores with eight cell reads in between, and runs no user
        // code; `snooze` yields to it if it was preempted.
        while self.state.load(Ordering::Acquire) != FOLDED {
            backoff.snooze();
        }
        // The lane's count with this drop: this thread is the cell's and
        // the route count's one writer, so the read is exact.
        let n = self.decoded(i, route);
        // Relaxed: published by the Acquire above.
        if folded_at.0[i].load(Ordering::Relaxed) < n {
            // Relaxed: an independent total, read only by statistics.
            totals.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Lane `i`'s count. A held cell is read, then its route count, then
    /// the cell again, until the two agree (`ring/route_drops.rs`): a retry
    /// means the lane's owner wrote the cell in between, a few instructions'
    /// window, so it is rare, and each one snoozes.
    #[inline]
    pub(super) fn decoded(&self, i: usize, route: &RouteDrops) -> u64 {
        let cell = &self.cells[i];
        let backoff = Backoff::new();
        loop {
            // Acquire: pairs with the Release stores in `hold` and
            // `add_one`, so the route count below is at least the one the
            // cell was held at.
            let v = cell.load(Ordering::Acquire);
            if v & HELD == 0 {
                return v >> 1;
            }
            let r = route.count(i);
            // Relaxed: after the Acquire load of the route count, which
            // shows a release made before a later count's store.
            if cell.load(Ordering::Relaxed) == v {
                return decode(v, r);
            }
            backoff.snooze();
        }
    }

    /// Holds lane `i`'s cell (its owner's): from now on its count is read
    /// with the route count, which is `r` now.
    pub(super) fn hold(&self, i: usize, r: u64) {
        let cell = &self.cells[i];
        // Relaxed: one writer, this thread.
        let v = cell.load(Ordering::Relaxed);
        debug_assert_eq!(v & HELD, 0, "a ring held twice by one lane");
        // Release: pairs with the Acquire in `decoded`.
        cell.store(v.wrapping_sub(r << 1) | HELD, Ordering::Release);
    }

    /// Releases lane `i`'s cell (its owner's), held, with the route count
    /// `r` now: it holds its count again.
    pub(super) fn release(&self, i: usize, r: u64) {
        let cell = &self.cells[i];
        // Relaxed: one writer, this thread; a reader that sees a later
        // route count sees this store (the count's Release).
        let v = cell.load(Ordering::Relaxed);
        cell.store(decode(v, r) << 1, Ordering::Relaxed);
    }

    /// The first half of the fold: announces it. The caller runs the
    /// heavy barrier (one for any number of rings, see
    /// [`fold_rings`](super::fold_rings)) and [`LaneCounts::finish_fold`].
    pub(super) fn begin_fold(&self) {
        // Relaxed: ordered by the heavy barrier the caller runs next, which
        // pairs with the light barrier in `count`.
        let was = self.state.swap(FOLDING, Ordering::Relaxed);
        debug_assert_eq!(was, OPEN, "lanes folded twice");
    }

    /// The second half, after the heavy barrier: reads every cell, once,
    /// into `folded_at` (this ring's), and returns their sum, the lane drops
    /// the fold adds to the totals. Later drops go there themselves.
    pub(super) fn finish_fold(&self, folded_at: &FoldedAt, route: &RouteDrops) -> u64 {
        let mut sum = 0;
        for (i, at) in folded_at.0.iter().enumerate() {
            // Ordered by the barrier pair; published by the Release store
            // below.
            let v = self.decoded(i, route);
            at.store(v, Ordering::Relaxed);
            sum += v;
        }
        // Release: pairs with the Acquire load in `count_late`.
        self.state.store(FOLDED, Ordering::Release);
        sum
    }

    /// Drops counted in every lane so far (a snapshot, exact when
    /// quiescent).
    pub(super) fn sum(&self, route: &RouteDrops) -> u64 {
        (0..LANES).map(|i| self.decoded(i, route)).sum()
    }
}

/// Models of step 8. Run with
/// `RUSTFLAGS="--cfg evbus_loom" cargo test -p evbus-core --release --lib`.
#[cfg(all(test, evbus_loom))]
mod loom_tests {
    use super::*;
    use crate::{
        policy::Overflow,
        ring::{Push, Ring, Tail, Totals},
        sync::Arc,
    };

    /// Property: a lane drop that races the unsubscribe (close, then fold)
    /// reaches the bus totals exactly once, and the ring's own counter
    /// agrees, whichever side goes first.
    ///
    /// Depends on the barrier pair: with the light barrier in
    /// `LaneCounts::count` removed, loom finds the interleaving where the
    /// fold reads the cell before the store and the publisher reads
    /// `state == OPEN`, and the drop is in neither (totals 0, expected 1).
    #[test]
    fn lane_drop_racing_fold_counts_once() {
        loom::model(|| {
            let totals = Arc::new(Totals::default());
            let ring =
                Arc::new(Ring::<u64>::new(1, Overflow::DropNewest, Arc::clone(&totals)).unwrap());
            assert_eq!(ring.push_with(|| 0, Tail::none(), Lane(0)), Push::Accepted);
            let publisher = {
                let ring = Arc::clone(&ring);
                loom::thread::spawn(move || ring.push_with(|| 1, Tail::none(), Lane(0)))
            };
            let closed = ring.close();
            ring.wake_closed(closed);
            crate::ring::fold_rings(std::slice::from_ref(&ring));
            let push = publisher.join().unwrap();
            let expected = u64::from(push == Push::Dropped);
            assert_eq!(totals.dropped.load(Ordering::Relaxed), expected);
            assert_eq!(ring.counters().dropped, expected);
            assert_eq!(totals.delivered.load(Ordering::Relaxed), 1);
        });
    }

    /// Property: a reader of a held cell decodes a count the ring had,
    /// when the owner counted a drop into the cell after holding it (a
    /// drop through another route). Before the race the lane's route count
    /// is 3 (earlier routes); the owner holds the ring at 3 with no drop
    /// yet, then counts one drop with no barrier in between, as on Linux,
    /// where the light barrier is a compiler fence. The reader first reads
    /// the route count (as for another ring the lane holds), then the cell.
    ///
    /// Depends on the Release store in `LaneCounts::add_one`: with it
    /// Relaxed, the reader's Acquire load can read the drop's value without
    /// synchronizing with `hold`'s Release, and take a stale route count;
    /// loom finds it decoding `0x7ffffffffffffffe` (a negative count).
    /// Found by a review of step 8b.
    #[test]
    fn held_cell_read_sees_its_route_count() {
        loom::model(|| {
            let route = Arc::new(RouteDrops::default());
            let counts = Arc::new(LaneCounts::default());
            let owner = {
                let (route, counts) = (Arc::clone(&route), Arc::clone(&counts));
                loom::thread::spawn(move || {
                    // Earlier routes' refusals (as `RouteDrops::refuse_all`).
                    route.counts[0].store(3, Ordering::Release);
                    counts.hold(0, 3);
                    counts.add_one(0);
                })
            };
            let _ = route.count(0);
            let n = counts.decoded(0, &route);
            assert!(n <= 1, "decoded {n:#x}; the ring's count is 0 or 1");
            owner.join().unwrap();
        });
    }

    /// Property: a lane handed from one publisher to the next keeps every
    /// drop of both: the next owner's first load sees the previous owner's
    /// last store. Depends on the Release in `give_back` pairing with the
    /// Acquire in `take`: with both Relaxed, loom finds the second owner
    /// overwriting the first owner's count (sum 1, expected 2).
    #[test]
    fn lane_handover_keeps_every_drop() {
        loom::model(|| {
            let pool = Arc::new(LanePool::default());
            let counts = Arc::new(LaneCounts::default());
            let totals = Arc::new(AtomicU64::new(0));
            let drop_once = |pool: &LanePool, counts: &LaneCounts, totals: &AtomicU64| {
                let lane = pool.take();
                let i = lane.index().unwrap();
                if counts.count(i) {
                    counts.count_late(i, &RouteDrops::default(), totals, &FoldedAt::default());
                }
                pool.give_back(lane);
            };
            let other = {
                let (pool, counts, totals) =
                    (Arc::clone(&pool), Arc::clone(&counts), Arc::clone(&totals));
                loom::thread::spawn(move || drop_once(&pool, &counts, &totals))
            };
            drop_once(&pool, &counts, &totals);
            other.join().unwrap();
            assert_eq!(counts.sum(&RouteDrops::default()), 2);
            assert_eq!(totals.load(Ordering::Relaxed), 0);
        });
    }
}
