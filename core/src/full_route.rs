//! A publisher's memory of a route whose every ring is full: the next
//! publishes on it refuse each ring by one look at the consumer's line,
//! until a consumer moves, and count the drops of all of them at once.
//!
//! A publish into a full `DropNewest` ring loads `tail` and the producers'
//! copy of `head`, masks, tests the policy twice, then loads `head` itself
//! (`ring/push.rs`), and counts the drop in its lane cell (step 8). A
//! service whose subscribers stopped reading pays that for every ring on
//! every publish. A [`Publisher`](crate::Publisher) that found every ring
//! of a route full twice in a row keeps, for each ring, the `head` it was
//! full at ([`Ring::full_at`]); while a ring's `head` stays there it is
//! still full ([`Ring::still_full_at`]). A publish that finds every ring
//! still full counts one drop in each with one store, in its lane's route
//! count (step 8b, `ring/route_drops.rs`); a publisher without a lane
//! counts in each ring's shared counter. The counts stay exact, in each
//! subscription's stats and, through the fold, in the bus totals.
//!
//! The memory is keyed by the registry snapshot and the topic. The snapshot
//! is the publisher's cached one, alive while cached, so no other snapshot
//! can have its address while the memory holds it, and a publish that finds
//! another snapshot forgets the memory ([`FullRoute::held_topic`]). The
//! memory keeps a handle of each ring it holds, so that it can release their
//! cells whenever it forgets them.

use crate::{
    registry::Registry,
    ring::{Lane, Ring, Totals},
    stats::PublishReport,
    sync::Arc,
};

/// A route, by its snapshot's address and its topic.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Key {
    registry: usize,
    topic: u32,
}

/// What a publisher remembers of the last route it found full.
pub(crate) struct FullRoute<E> {
    /// The route of the last publish whose every ring refused.
    seen: Option<Key>,
    /// The route whose rings `rings` describes: seen full twice in a row.
    held: Option<Key>,
    /// Each ring of `held`, in route order, and the `head` it is full at.
    /// One array, walked alone: the refusals need neither the route nor
    /// its lookup. A `Vec`, not a `SmallVec`: its length and pointer are
    /// one load each, with no inline-or-heap test on every publish. Its
    /// own handles: the rings stay alive until the route is released, even
    /// after the publisher's cache has moved to a later snapshot.
    rings: Vec<(Arc<Ring<E>>, usize)>,
    /// While `held` is counted in a lane's route count (step 8b). `None`
    /// for a publisher without a lane, whose drops go to each ring's
    /// shared counter.
    counted: Option<Counted>,
}

/// A route counted in a lane's route count (step 8b).
struct Counted {
    /// The lane.
    lane: usize,
    /// The fold count the route was held at.
    folds: u64,
    /// The bus's totals, which hold the route counts: here, so that a
    /// refusal reaches them in one load.
    totals: Arc<Totals>,
}

impl<E> Default for FullRoute<E> {
    fn default() -> Self {
        Self {
            seen: None,
            held: None,
            rings: Vec::new(),
            counted: None,
        }
    }
}

impl<E> FullRoute<E> {
    /// The topic of the remembered route, if `registry` (the snapshot this
    /// publish loaded) is the one it belongs to. Run before every publish
    /// through the publisher's cache: a route remembered in another
    /// snapshot is forgotten here, so that a later snapshot at that address
    /// cannot be mistaken for it.
    #[inline(always)]
    pub(crate) fn held_topic(&mut self, registry: &Registry<E>) -> Option<u32> {
        let key = self.held?;
        if key.registry == std::ptr::from_ref(registry) as usize {
            Some(key.topic)
        } else {
            self.forget();
            None
        }
    }

    /// How many rings the remembered route has.
    pub(crate) fn len(&self) -> usize {
        self.rings.len()
    }

    /// Forgets the remembered route, and releases its rings' cells if it
    /// was counted in the route count. Also before the publisher's lane
    /// goes back to its bus.
    pub(crate) fn forget(&mut self) {
        if let Some(c) = self.counted.take() {
            c.totals
                .route
                .release_route(self.rings.iter().map(|(ring, _)| &**ring), c.lane);
        }
        self.held = None;
        self.rings.clear();
    }

    /// Refuses the leading rings of the remembered route that are still
    /// full, and returns how many; forgets the route unless that is all of
    /// them (a consumer moved, or a ring closed: the next publish that
    /// finds it full twice remembers it anew). Only after
    /// [`FullRoute::held_topic`] answered `Some` for this publish's
    /// snapshot.
    #[inline]
    pub(crate) fn refuse_held(&mut self, lane: Lane) -> usize {
        let refused = self
            .rings
            .iter()
            .position(|(ring, head)| !ring.still_full_at(*head))
            .unwrap_or(self.rings.len());
        match &self.counted {
            Some(c) if refused == self.rings.len() => {
                // One count for every ring (step 8b).
                let (lane, settled) = (c.lane, c.totals.route.refuse_all(c.lane, c.folds));
                // After the count, as `Ring::count_refusal` traces.
                #[cfg(feature = "tracing")]
                for (ring, _) in &self.rings {
                    ring.trace_refusal();
                }
                if !settled {
                    self.settle_folds(lane);
                }
            }
            _ => {
                // Each of the leading rings counts its drop (in a held cell
                // too: a count adds to its offset), then the rest go the
                // usual way.
                for (ring, _) in &self.rings[..refused] {
                    ring.count_refusal(lane);
                }
                if refused < self.rings.len() {
                    self.forget();
                }
            }
        }
        refused
    }

    /// A fold began since the route was held: settles each ring whose fold
    /// has begun, then forgets the route (step 8b).
    #[cold]
    #[inline(never)]
    fn settle_folds(&mut self, i: usize) {
        for (ring, _) in &self.rings {
            ring.settle_route(i);
        }
        self.forget();
    }

    /// A publish on topic `topic` of `registry` found no ring with room
    /// (`report`): if every ring refused, the second time in a row,
    /// remember each ring's full `head`, counted from now on in the route
    /// count of the publisher's `lane` (if it has one).
    #[cold]
    pub(crate) fn saw_full(
        &mut self,
        registry: &Registry<E>,
        topic: u32,
        report: PublishReport,
        lane: Lane,
    ) {
        // First what the report says: a route with some rings full and
        // some not (one slow subscriber) returns here, without the lookup.
        if report.accepted != 0 {
            return;
        }
        let route = registry.route(topic);
        if report.dropped as usize != route.len() {
            return;
        }
        let key = Key {
            registry: std::ptr::from_ref(registry) as usize,
            topic,
        };
        if self.seen != Some(key) {
            self.seen = Some(key);
            return;
        }
        self.forget();
        for ring in route {
            match ring.full_at() {
                Some(head) => self.rings.push((Arc::clone(ring), head)),
                None => {
                    self.rings.clear();
                    return;
                }
            }
        }
        if let (Some(i), Some((first, _))) = (lane.index(), self.rings.first()) {
            let totals = Arc::clone(first.totals());
            match totals
                .route
                .hold_route(self.rings.iter().map(|(ring, _)| &**ring), i)
            {
                Some(folds) => {
                    self.counted = Some(Counted {
                        lane: i,
                        folds,
                        totals,
                    });
                }
                None => {
                    self.rings.clear();
                    return;
                }
            }
        }
        self.held = Some(key);
    }
}

impl<E> Drop for FullRoute<E> {
    fn drop(&mut self) {
        // Normally done already, before the lane went back
        // (`Publisher::drop`).
        self.forget();
    }
}

/// The report of `n` refusals.
pub(crate) fn refusals(n: usize) -> PublishReport {
    #[expect(
        clippy::cast_possible_truncation,
        reason = "a route's length fits the report's u32 (see `Tally`)"
    )]
    let n = n as u32;
    PublishReport {
        matched: n,
        accepted: 0,
        dropped: n,
    }
}
