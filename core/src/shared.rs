//! The state every handle of one bus shares: the registry, the publishers'
//! counters, the totals of what left, and the stats of one subscription.
//!
//! # Synchronization protocol
//!
//! - The registry is a [`SnapshotCell`]: publishers load it without a lock;
//!   subscribe, unsubscribe and topic interning update it with `rcu`, so two
//!   concurrent updates never lose each other; shutdown replaces it with a
//!   closed successor, also with `rcu`.
//! - The last producer-side handle to go (`producers` reaching zero with
//!   an AcqRel RMW, which acquires every other handle's updates) closes the
//!   rings of the registry it reads and leaves the registry as it is: no
//!   handle that could read it is left, or can be made again. From then on
//!   an unsubscribe closes its ring and skips the registry.
//! - Publisher counters are summed under the `publishers` lock, then the
//!   `retired` lock, in that order everywhere, so a publisher that goes away
//!   is counted exactly once.

use crossbeam_utils::CachePadded;
use smallvec::SmallVec;

#[cfg(feature = "latency")]
use crate::latency::LatencySampling;
use crate::{
    registry::{Registry, SubEntry},
    ring::{Closed, Epoch, Lane, LanePool, Marking, Ring, Totals, fold_rings},
    stats::{ShutdownReport, SubscriptionStats},
    sync::{
        Arc, Mutex, SnapshotCell,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    unwind::FirstPanic,
};

/// Rings that left the registry and wait for their fold (at most
/// [`FOLD_BATCH`] of them, and [`FOLD_BYTES`] of buffers).
pub(crate) struct Unfolded<E> {
    rings: Vec<Arc<Ring<E>>>,
    bytes: usize,
}

impl<E> Default for Unfolded<E> {
    fn default() -> Self {
        Self {
            rings: Vec::new(),
            bytes: 0,
        }
    }
}

/// Rings folded together, with one heavy barrier (a system call of 10 to
/// 20 µs on a VM) for the batch instead of one per unsubscribe.
const FOLD_BATCH: usize = 64;

/// The most buffer memory that waiting rings keep alive.
const FOLD_BYTES: usize = 4 << 20;

/// Totals of publishers that are gone.
#[derive(Debug, Default)]
pub(crate) struct Retired {
    pub(crate) published: u64,
    pub(crate) no_subscribers: u64,
}

/// State shared by every handle of one bus.
pub(crate) struct Shared<E> {
    pub(crate) id: u64,
    pub(crate) registry: SnapshotCell<Registry<E>>,
    pub(crate) next_sub_id: AtomicU64,
    /// Live producer-side handles: every [`Bus`](crate::Bus) clone and every
    /// [`Publisher`](crate::Publisher). The last one to go shuts the bus
    /// down (subscriptions do not count: they only receive).
    pub(crate) producers: AtomicUsize,
    /// Counters of publishes made through [`Bus`](crate::Bus) itself.
    pub(crate) direct: CachePadded<Counters>,
    /// Counters of each live [`Publisher`](crate::Publisher), summed by
    /// snapshots.
    pub(crate) publishers: Mutex<Vec<Arc<Counters>>>,
    pub(crate) retired: Mutex<Retired>,
    /// The drop-counting lanes of live publishers (`ring/lanes.rs`).
    pub(crate) lanes: LanePool,
    /// Totals of subscriptions that left the registry (see `fold_rings`).
    pub(crate) totals: Arc<Totals>,
    /// Subscriptions that left the registry, not yet in `totals`.
    pub(crate) unfolded: Mutex<Unfolded<E>>,
    /// The publish epoch of the single producer, on a bus made by
    /// [`Bus::single_producer`](crate::Bus::single_producer) (whether it is
    /// one is `Registry::solo`); its rings hold it for their closers.
    /// Its lease (`epoch.lease`) says whether one `Publisher` is the only
    /// producer of a multi-producer bus, which then pushes into its rings
    /// as a single producer does (`ring/lease.rs`).
    pub(crate) epoch: Arc<Epoch>,
    /// Latency sampling for subscriptions made from now on.
    #[cfg(feature = "latency")]
    pub(crate) latency: Mutex<Option<LatencySampling>>,
    /// Rings that [`Shared::close_abandoned`] closed, for the models, which
    /// cannot see the report of a handle's drop.
    #[cfg(all(test, evbus_loom))]
    pub(crate) abandoned_closed: AtomicUsize,
}

impl<E> Shared<E> {
    /// Counts a new producer-side handle.
    pub(crate) fn add_producer(&self) {
        // Relaxed: a new handle is made from a live one, which keeps the
        // count above zero meanwhile (as `Arc::clone`).
        let old = self.producers.fetch_add(1, Ordering::Relaxed);
        if old > isize::MAX as usize {
            // As `Arc` and crossbeam's counter: leaking handles in a loop is
            // the only way here, and wrapping would close a live bus.
            std::process::abort();
        }
    }

    /// Counts a producer-side handle gone. Returns whether it was the last
    /// one; its caller then runs [`Shared::close_abandoned`], so receivers
    /// drain what is buffered and then get `Disconnected`, as with
    /// crossbeam-channel and tokio broadcast when the last sender goes.
    #[must_use = "the last producer-side handle owes the bus its close"]
    pub(crate) fn release_producer(&self) -> bool {
        // AcqRel: Release makes this handle's publishes, subscribes and
        // interned topics happen before the close that the last handle
        // runs; Acquire, in that last one, pairs with every other handle's
        // Release (as `Arc`'s drop), so the registry it reads holds every
        // subscription made.
        self.producers.fetch_sub(1, Ordering::AcqRel) == 1
    }

    /// Whether every producer-side handle is gone. None can be made again
    /// (only a `Bus` or a `Publisher` makes one), so nothing can publish,
    /// subscribe, intern a topic or take a snapshot any more: the registry
    /// and the bus totals have no reader left.
    fn abandoned(&self) -> bool {
        // Relaxed: the count never rises from zero, so a zero is final; a
        // stale non-zero only makes the caller do work it could skip.
        self.producers.load(Ordering::Relaxed) == 0
    }

    /// Closes the bus when its last producer-side handle has gone
    /// ([`Shared::release_producer`] returned `true`), as
    /// [`shutdown`](Shared::shutdown) would, and as cheaply as a channel
    /// whose last sender goes: it closes and wakes every ring of
    /// `registry`, a current snapshot (the caller's cached one will do: see
    /// `release_producer`), and stops there.
    ///
    /// Nothing can read the registry any more (see [`Shared::abandoned`]),
    /// so it is not replaced by a closed successor: that would cost an
    /// arc-swap update, allocations and the debts of every thread, on the
    /// teardown path of the last publisher, all for nobody. Subscriptions
    /// that leave later skip the registry for the same reason
    /// ([`Shared::remove_sub`]). A ring whose unsubscribe races this close
    /// is closed exactly once all the same: the ring's own close decides.
    pub(crate) fn close_abandoned(&self, registry: &Registry<E>) {
        if registry.closed {
            // `shutdown` ran, and returned before its `Bus` handle went:
            // every ring is closed and woken.
            return;
        }
        let mut report = ShutdownReport::default();
        let panic = self.close_rings(registry, &mut report);
        #[cfg(all(test, evbus_loom))]
        // Relaxed: read after the models join their threads.
        self.abandoned_closed
            .fetch_add(report.closed, Ordering::Relaxed);
        #[cfg(feature = "tracing")]
        crate::trace::shut_down(&report);
        panic.resume();
    }

    /// [`Bus::shutdown`](crate::Bus::shutdown): closes the registry, then
    /// every ring, and only then wakes the sleepers, whose task wakers are
    /// user code: a panicking one cannot leave a ring open. The first such
    /// panic is raised again once every ring is closed and woken.
    pub(crate) fn shutdown(&self) -> ShutdownReport {
        let old = self.registry.rcu(|cur| {
            if cur.closed {
                Arc::clone(cur)
            } else {
                Arc::new(cur.closed_successor())
            }
        });
        let mut report = ShutdownReport {
            already_shut_down: old.closed,
            ..ShutdownReport::default()
        };
        if old.closed {
            return report;
        }
        let panic = self.close_rings(&old, &mut report);
        #[cfg(feature = "tracing")]
        crate::trace::shut_down(&report);
        panic.resume();
        report
    }

    /// Closes every ring of `registry`, then wakes the sleepers of those it
    /// closed, counting in `report`; returns the first panic of a task
    /// waker (user code), for the caller to raise again.
    fn close_rings(&self, registry: &Registry<E>, report: &mut ShutdownReport) -> FirstPanic {
        // On the stack for the usual handful of subscriptions: an abandoned
        // bus closes on its last publisher's teardown path.
        // Every ring marked first; then, if single-producer or leased rings
        // were among them, one wait for the publish in flight (S2) covers
        // them all, instead of a heavy barrier per ring.
        let mut marks: SmallVec<[Marking; 16]> = SmallVec::with_capacity(registry.sub_count());
        marks.extend(registry.subs().map(|entry| entry.ring.close_marked()));
        let settle = marks.iter().any(|m| matches!(m, Marking::Settle(_)));
        if settle && !self.epoch.publishing_here() {
            self.epoch.wait_out_publish();
        }
        let mut closes: SmallVec<[Closed; 16]> = SmallVec::with_capacity(marks.len());
        closes.extend(registry.subs().zip(marks).map(|(entry, mark)| {
            let closed = match mark {
                Marking::Closed(closed) => closed,
                // `waited`: the wait above, after this ring's mark, or this
                // is the producer's own thread inside its publish (S4).
                Marking::Settle(marked) => entry.ring.close_settled(marked, true),
            };
            if closed.first {
                report.closed += 1;
            }
            report.buffered += entry.ring.len();
            closed
        }));
        let mut panic = FirstPanic::new();
        for (entry, closed) in registry.subs().zip(closes) {
            panic.run(|| entry.ring.wake_closed(closed));
        }
        panic
    }

    /// Removes a publisher's counters from the live list and adds them to
    /// the retired totals.
    pub(crate) fn retire_publisher(&self, counters: &Arc<Counters>) {
        // After this handle's last publish: the lane's next owner continues
        // its cells (`ring/lanes.rs`).
        self.lanes.give_back(counters.lane);
        let mut list = self.publishers.lock();
        if let Some(at) = list.iter().position(|c| Arc::ptr_eq(c, counters)) {
            list.swap_remove(at);
        }
        // Fold while holding the list lock, so a snapshot never counts these
        // twice or misses them.
        let (published, none) = counters.read();
        let mut retired = self.retired.lock();
        retired.published += published;
        retired.no_subscribers += none;
    }

    /// Removes subscription `id`, which must be closed, from the registry and
    /// folds its counters into the bus totals. Does nothing if it is already
    /// gone.
    ///
    /// On an abandoned bus (see [`Shared::abandoned`]) it leaves the
    /// registry as it is: nothing can read it or the totals any more, and
    /// the update would be the costliest step of the subscription's
    /// teardown (an arc-swap update, the registry's nodes, a fold). The
    /// ring's buffer, which the subscription's drop empties, is then freed
    /// with the bus, when its last subscription goes. With the `tracing`
    /// feature it removes all the same, so that every subscription still
    /// reports `unsubscribed` once.
    pub(crate) fn remove_sub(&self, id: u64) {
        if !cfg!(feature = "tracing") && self.abandoned() {
            return;
        }
        // A second unsubscribe (an explicit one, then the drop; or an
        // `Unsubscriber`'s) finds it gone without an update. Ids are never
        // reused, and an entry is in the registry before its subscription
        // exists, so an entry found missing stays missing.
        if !self.registry.load().has_sub(id) {
            return;
        }
        let mut removed = None;
        self.registry.rcu(|cur| match cur.without_sub(id) {
            Some((next, entry)) => {
                removed = Some(entry);
                Arc::new(next)
            }
            None => {
                removed = None;
                Arc::clone(cur)
            }
        });
        if let Some(entry) = removed {
            #[cfg(feature = "tracing")]
            {
                let c = entry.ring.counters();
                crate::trace::unsubscribed(entry.ring.trace_info(), c.delivered, c.dropped);
            }
            let mut unfolded = self.unfolded.lock();
            unfolded.bytes += entry.ring.buffer_bytes();
            unfolded.rings.push(Arc::clone(&entry.ring));
            let folded = if unfolded.rings.len() >= FOLD_BATCH || unfolded.bytes >= FOLD_BYTES {
                Self::fold(&mut *unfolded)
            } else {
                Vec::new()
            };
            drop(unfolded);
            // Outside the lock: a ring's last handle may go here, and its
            // `Drop` drops buffered events (user code).
            drop(folded);
        }
    }

    /// Folds the rings that left the registry into the bus totals now; a
    /// snapshot calls it first, so it is exact when the bus is quiet.
    pub(crate) fn fold_unfolded(&self) {
        let folded = Self::fold(&mut *self.unfolded.lock());
        // After the unlock, as in `remove_sub`.
        drop(folded);
    }

    /// Folds `unfolded` and returns its rings, for the caller to drop after
    /// the unlock (a ring's `Drop` drops buffered events: user code). Under
    /// its lock, so no snapshot sees a ring both waiting and in the totals.
    fn fold(unfolded: &mut Unfolded<E>) -> Vec<Arc<Ring<E>>> {
        fold_rings(&unfolded.rings);
        unfolded.bytes = 0;
        std::mem::take(&mut unfolded.rings)
    }
}

/// Publish counters of one publisher, and its drop-counting lane.
#[derive(Debug)]
pub(crate) struct Counters {
    published: AtomicU64,
    no_subscribers: AtomicU64,
    /// Where this publisher's refusals count in each ring (step 8 of
    /// `ring/mod.rs`): its own lane, or [`Lane::SHARED`] for the `Bus`
    /// handle's shared counters and publishers beyond the lanes.
    pub(crate) lane: Lane,
}

impl Default for Counters {
    fn default() -> Self {
        Self::with_lane(Lane::SHARED)
    }
}

impl Counters {
    /// Counters of a publisher that owns `lane`.
    pub(crate) fn with_lane(lane: Lane) -> Self {
        Self {
            published: AtomicU64::new(0),
            no_subscribers: AtomicU64::new(0),
            lane,
        }
    }

    /// Counts a publish, before it delivers: by the single owner of these
    /// counters (a `Publisher`, through `&mut`) with a plain load and store,
    /// else (the `Bus` handle's shared counters) with an RMW.
    #[inline(always)]
    pub(crate) fn count_publish(&self, owner: bool) {
        if owner {
            // Relaxed: single writer; snapshot readers only need some recent
            // value.
            bump(&self.published);
        } else {
            // Relaxed: an independent counter, read only by snapshots.
            self.published.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a publish that no ring took part in, after it delivered.
    #[inline(always)]
    pub(crate) fn count_unmatched(&self, owner: bool) {
        if owner {
            // Relaxed: as in `count_publish`.
            bump(&self.no_subscribers);
        } else {
            // Relaxed: as in `count_publish`.
            self.no_subscribers.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `(published, no_subscribers)`.
    pub(crate) fn read(&self) -> (u64, u64) {
        (
            self.published.load(Ordering::Relaxed),
            self.no_subscribers.load(Ordering::Relaxed),
        )
    }
}

#[inline]
fn bump(counter: &AtomicU64) {
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// Stats of a registered subscription.
pub(crate) fn sub_stats<E>(entry: &SubEntry<E>) -> SubscriptionStats {
    let c = entry.ring.counters();
    SubscriptionStats {
        id: entry.id,
        name: entry.name.as_deref().map(str::to_owned),
        filter: entry
            .patterns
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect(),
        capacity: entry.ring.capacity(),
        overflow: entry.ring.policy(),
        delivered: c.delivered,
        received: c.received,
        dropped: c.dropped,
        lagged: c.overwritten,
        queued: c.queued,
        high_water: c.high_water,
        closed: c.closed,
    }
}
