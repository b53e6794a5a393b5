//! A publisher's memory of a route whose every ring is full: the next
//! publishes on it refuse each ring by one look at the consumer's line,
//! until a consumer moves.
//!
//! A publish into a full `DropNewest` ring loads `tail` and the producers'
//! copy of `head`, masks, tests the policy twice, then loads `head` itself
//! (`ring/push.rs`). A service whose subscribers stopped reading pays that
//! for every ring on every publish. A [`Publisher`](crate::Publisher) that
//! found every ring of a route full twice in a row keeps, for each ring,
//! the `head` it was full at ([`Ring::full_at`]); while a ring's `head`
//! stays there it is still full, and [`Ring::refuse_while_full`] counts the
//! drop after that one load. The counts stay exact: each drop is counted in
//! its ring's own lane cell, as before, with the same fold protocol
//! (step 8 of `ring/mod.rs`).
//!
//! The memory is keyed by the registry snapshot and the topic. The snapshot
//! is the publisher's cached one, alive while cached, so no other snapshot
//! can have its address while the memory holds it, and a publish that finds
//! another snapshot forgets the memory ([`FullRoute::held_topic`]): the rings of
//! a remembered route are the ones whose heads it holds.

use crate::{
    registry::Registry,
    ring::{Lane, Ring},
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
    /// one load each, with no inline-or-heap test on every publish.
    rings: Vec<(*const Ring<E>, usize)>,
}

impl<E> Default for FullRoute<E> {
    fn default() -> Self {
        Self {
            seen: None,
            held: None,
            rings: Vec::new(),
        }
    }
}

// SAFETY: the pointers are dereferenced only through `&mut self`
// (`refuse_held`), while the snapshot that holds their rings is cached by
// the same publisher (`held_topic`); a `Ring<E>` is `Send + Sync` for
// `E: Send`, so the memory may move with its publisher.
unsafe impl<E: Send> Send for FullRoute<E> {}
// SAFETY: as for `Send`; `&FullRoute` gives no access to the rings.
unsafe impl<E: Send> Sync for FullRoute<E> {}

impl<E> FullRoute<E> {
    /// The topic of the remembered route, if `registry` (the snapshot this
    /// publish loaded) is the one it belongs to. Run before every publish
    /// through the publisher's cache: a route remembered in another
    /// snapshot is forgotten here, so that a later snapshot at that address
    /// cannot be mistaken for it, and the rings whose addresses `rings`
    /// holds are alive while it answers `Some` (that snapshot holds them).
    #[inline(always)]
    pub(crate) fn held_topic(&mut self, registry: &Registry<E>) -> Option<u32> {
        let key = self.held?;
        if key.registry == std::ptr::from_ref(registry) as usize {
            Some(key.topic)
        } else {
            self.held = None;
            None
        }
    }

    /// How many rings the remembered route has.
    pub(crate) fn len(&self) -> usize {
        self.rings.len()
    }

    /// Refuses the leading rings of the remembered route that are still
    /// full, and returns how many; forgets the route unless that is all of
    /// them (a consumer moved, or a ring closed: the next publish that
    /// finds it full twice remembers it anew). Only after
    /// [`FullRoute::held_topic`] answered `Some` for this publish's
    /// snapshot.
    #[inline]
    pub(crate) fn refuse_held(&mut self, lane: Lane) -> usize {
        for (i, &(ring, head)) in self.rings.iter().enumerate() {
            // SAFETY: `ring` points to a ring of the remembered route, whose
            // snapshot `held_topic` just found still cached by this
            // publisher: that snapshot holds an `Arc` of the ring.
            let ring = unsafe { &*ring };
            if !ring.refuse_while_full(head, lane) {
                self.held = None;
                return i;
            }
        }
        self.rings.len()
    }

    /// A publish on topic `topic` of `registry` found no ring with room
    /// (`report`): if every ring refused, the second time in a row,
    /// remember each ring's full `head`.
    #[cold]
    pub(crate) fn saw_full(&mut self, registry: &Registry<E>, topic: u32, report: PublishReport) {
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
        self.rings.clear();
        for ring in route {
            match ring.full_at() {
                Some(head) => self.rings.push((Arc::as_ptr(ring), head)),
                None => return,
            }
        }
        self.held = Some(key);
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
