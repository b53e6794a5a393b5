//! Drops counted by their publishers (step 8 of `ring/mod.rs`): each
//! `Publisher` handle counts its refusals in a lane of its own, without a
//! shared read-modify-write. Whatever the mix of lanes, the shared counter,
//! unsubscribes and shutdown, every refusal is counted exactly once, in its
//! subscription's stats while it lives and in the bus totals after.
//!
//! crossbeam-channel and tokio broadcast keep no drop counts to compare
//! with: a full crossbeam channel hands the value back (`TrySendError::Full`)
//! and leaves counting to the caller, and tokio overwrites. Here the sum of
//! the publishers' own `PublishReport::dropped` is the reference.

mod common;

use std::{
    sync::{Arc, Barrier},
    thread,
};

use common::{Event, Kind, drain, ev, scaled, sub};
use evbus_core::{Bus, Overflow, PublishReport};

const PUBLISHES: usize = scaled(20_000, 40);

/// Sums the reports of a run of publishes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Sum {
    accepted: u64,
    dropped: u64,
}

impl Sum {
    fn add(&mut self, r: PublishReport) {
        self.accepted += u64::from(r.accepted);
        self.dropped += u64::from(r.dropped);
    }

    fn merge(self, other: Sum) -> Sum {
        Sum {
            accepted: self.accepted + other.accepted,
            dropped: self.dropped + other.dropped,
        }
    }
}

/// Twelve publisher handles (more than the eight lanes, so some count in
/// the shared counter) and the `Bus` handle itself publish into capacity-1
/// rings that nobody drains, while the main thread unsubscribes half of the
/// subscriptions mid-run: the bus totals equal what the publishers were told,
/// exactly.
#[test]
fn refusals_count_once_across_lanes_and_unsubscribes() {
    let bus = Bus::<Event>::new();
    let subs: Vec<_> = (0..6)
        .map(|_| sub(&bus, ">", 1, Overflow::DropNewest))
        .collect();
    let start = Arc::new(Barrier::new(14));
    let mut threads = Vec::new();
    for t in 0..12 {
        let mut publisher = bus.publisher();
        let start = Arc::clone(&start);
        threads.push(thread::spawn(move || {
            start.wait();
            let mut sum = Sum::default();
            for i in 0..PUBLISHES {
                sum.add(
                    publisher
                        .publish(ev(Kind::Placed, (t * PUBLISHES + i) as u64))
                        .unwrap(),
                );
            }
            sum
        }));
    }
    {
        let bus = bus.clone();
        let start = Arc::clone(&start);
        threads.push(thread::spawn(move || {
            start.wait();
            let mut sum = Sum::default();
            for i in 0..PUBLISHES {
                sum.add(bus.publish(ev(Kind::Login, i as u64)).unwrap());
            }
            sum
        }));
    }
    start.wait();
    for s in &subs[..3] {
        thread::yield_now();
        assert!(s.unsubscribe());
    }
    let told = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .fold(Sum::default(), Sum::merge);
    let live: Sum = subs[3..]
        .iter()
        .map(|s| {
            let st = s.stats();
            Sum {
                accepted: st.delivered,
                dropped: st.dropped,
            }
        })
        .fold(Sum::default(), Sum::merge);
    let snap = bus.snapshot();
    assert_eq!(
        (snap.delivered, snap.dropped),
        (told.accepted, told.dropped)
    );
    // The live rings took one event each, refused the rest of their share.
    assert_eq!(live.accepted, 3);
    assert_eq!(live.dropped, 3 * (13 * PUBLISHES as u64 - 1));
    // Unsubscribing the rest moves their lane counts into the totals once.
    for s in &subs[3..] {
        assert!(s.unsubscribe());
    }
    let after = bus.snapshot();
    assert_eq!(
        (after.delivered, after.dropped),
        (told.accepted, told.dropped)
    );
}

/// A lane goes back to the pool when its publisher is dropped, and the next
/// handle continues its cells: nothing counted by the first is lost or
/// counted twice. A lane drop leaves the high-water mark at the capacity,
/// as a shared-counter drop does.
#[test]
fn lanes_are_reused_and_keep_their_counts() {
    let bus = Bus::<Event>::new();
    let mut s = sub(&bus, ">", 2, Overflow::DropNewest);
    let mut told = Sum::default();
    for round in 0..20_u64 {
        let mut publishers: Vec<_> = (0..10).map(|_| bus.publisher()).collect();
        for (i, p) in publishers.iter_mut().enumerate() {
            told.add(p.publish(ev(Kind::Placed, round * 100 + i as u64)).unwrap());
        }
        // Dropped in an order other than the one they were made in: every
        // second one, then the rest from the last.
        let (odd, even): (Vec<_>, Vec<_>) = publishers
            .into_iter()
            .enumerate()
            .partition(|(i, _)| i % 2 == 1);
        drop(odd);
        even.into_iter().rev().for_each(drop);
        let st = s.stats();
        assert_eq!((st.delivered, st.dropped), (told.accepted, told.dropped));
        assert_eq!(st.high_water, 2);
        drain(&mut s);
    }
    assert_eq!(told.accepted, 40);
    assert_eq!(told.dropped, 20 * 8);
    drop(s);
    let snap = bus.snapshot();
    assert_eq!(
        (snap.delivered, snap.dropped),
        (told.accepted, told.dropped)
    );
}

/// The single producer counts in its lane too; its refusals reach the
/// subscription's stats and, after an unsubscribe, the bus totals.
#[test]
fn single_producer_refusals_are_exact() {
    let (bus, mut publisher) = Bus::<Event>::single_producer().unwrap();
    let s = sub(&bus, ">", 4, Overflow::DropNewest);
    let mut told = Sum::default();
    for i in 0..100 {
        told.add(publisher.publish(ev(Kind::Placed, i)).unwrap());
    }
    assert_eq!((told.accepted, told.dropped), (4, 96));
    let st = s.stats();
    assert_eq!((st.delivered, st.dropped, st.high_water), (4, 96, 4));
    assert!(s.unsubscribe());
    let snap = bus.snapshot();
    assert_eq!((snap.delivered, snap.dropped), (4, 96));
}

/// Subscriptions that leave are folded into the bus totals in batches (one
/// heavy barrier per batch): 150 of them dropped while a publisher keeps
/// refusing into their full rings, so some batches fold mid-run and the
/// last ones only at the snapshot. The totals still equal the reports.
#[test]
fn batched_folds_stay_exact() {
    let bus = Bus::<Event>::new();
    // More than a fold batch (64) even under Miri, where each publish to
    // every ring is slow.
    let subs: Vec<_> = (0..scaled(150, 70))
        .map(|_| sub(&bus, ">", 1, Overflow::DropNewest))
        .collect();
    let mut publisher = bus.publisher();
    let start = Arc::new(Barrier::new(2));
    let go = Arc::clone(&start);
    let publishing = thread::spawn(move || {
        go.wait();
        let mut sum = Sum::default();
        for i in 0..scaled(PUBLISHES, 16) as u64 {
            sum.add(publisher.publish(ev(Kind::Placed, i)).unwrap());
        }
        sum
    });
    start.wait();
    for s in subs {
        drop(s);
    }
    let told = publishing.join().unwrap();
    let snap = bus.snapshot();
    assert!(snap.subscriptions.is_empty());
    assert_eq!(
        (snap.delivered, snap.dropped),
        (told.accepted, told.dropped)
    );
}

/// A `Publisher` that found every ring of a route full twice in a row
/// refuses the next publishes after one look at each ring
/// (`full_route.rs`). Whatever moves under it (a receiver draining, an
/// unsubscribe, a new subscription, another topic in between), each
/// publish's report is what the rings' own states say, and every
/// subscription's `delivered + dropped` is the publishes routed to it.
#[test]
fn a_route_remembered_full_follows_every_change() {
    const CAP: usize = 2;
    let bus = Bus::<Event>::new();
    let mut subs: Vec<_> = (0..3)
        .map(|_| sub(&bus, "orders.placed", CAP, Overflow::DropNewest))
        .collect();
    let other = sub(&bus, "orders.cancelled", CAP, Overflow::DropNewest);
    let mut publisher = bus.publisher();
    let mut seq = 0;
    // Publishes on the route; `(matched, accepted, dropped)`.
    let mut placed = |publisher: &mut evbus_core::Publisher<Event>| {
        seq += 1;
        let r = publisher.publish(ev(Kind::Placed, seq)).unwrap();
        (r.matched, r.accepted, r.dropped)
    };
    // Fill, then full: from the third full publish on, the route is known.
    for _ in 0..CAP {
        assert_eq!(placed(&mut publisher), (3, 3, 0));
    }
    for _ in 0..5 {
        assert_eq!(placed(&mut publisher), (3, 0, 3));
    }
    // A receiver takes one: its ring has room for exactly one more.
    assert_eq!(subs[1].try_recv().unwrap().seq, 1);
    assert_eq!(placed(&mut publisher), (3, 1, 2));
    for _ in 0..4 {
        assert_eq!(placed(&mut publisher), (3, 0, 3));
    }
    // Another topic in between does not disturb what is known.
    for _ in 0..3 {
        let room = u32::from(other.len() < CAP);
        let r = publisher.publish(ev(Kind::Cancelled, 0)).unwrap();
        assert_eq!((r.matched, r.accepted, r.dropped), (1, room, 1 - room));
    }
    assert_eq!(placed(&mut publisher), (3, 0, 3));
    // An unsubscribe: that ring no longer counts.
    let gone = subs.remove(0);
    drop(gone);
    let gone_routed = 13;
    for _ in 0..4 {
        assert_eq!(placed(&mut publisher), (2, 0, 2));
    }
    // A new subscription takes the next events; the others still refuse.
    subs.push(sub(&bus, "orders.placed", CAP, Overflow::DropNewest));
    let new_from = 18;
    for _ in 0..CAP {
        assert_eq!(placed(&mut publisher), (3, 1, 2));
    }
    for _ in 0..4 {
        assert_eq!(placed(&mut publisher), (3, 0, 3));
    }
    // Draining every ring opens the route again.
    for s in &mut subs {
        drain(s);
    }
    assert_eq!(placed(&mut publisher), (3, 3, 0));
    // Every subscription's counts cover exactly what was routed to it.
    let published = seq;
    let routed = [published, published, published - new_from + 1];
    for (s, routed) in subs.iter().zip(routed) {
        let stats = s.stats();
        assert_eq!(stats.delivered + stats.dropped, routed, "{stats:?}");
    }
    drop(publisher);
    let totals = bus.snapshot();
    assert_eq!(
        totals.dropped + totals.delivered,
        gone_routed + routed.iter().sum::<u64>() + 3,
        "{totals:?}"
    );
    drop(other);
}

/// While a `Publisher` remembers a route full, one count per publish
/// stands for a drop in each of its rings (step 8b, `ring/route_drops.rs`).
/// Each subscription's `dropped` stays exact at every read: while the route
/// is held, when another route counts into one of its rings in between,
/// across the publisher's drop and the next handle on the same lane, and
/// across an unsubscribe and its fold into the bus totals.
#[test]
fn route_counted_drops_are_exact_at_every_read() {
    let bus = Bus::<Event>::new();
    // `wide` is on both topics' routes, `placed` on one.
    let wide = sub(&bus, "orders.>", 1, Overflow::DropNewest);
    let placed = sub(&bus, "orders.placed", 1, Overflow::DropNewest);
    let mut publisher = bus.publisher();
    let (mut wide_routed, mut placed_routed) = (0u64, 0u64);
    let check = |wide_routed: u64, placed_routed: u64| {
        let (w, p) = (wide.stats(), placed.stats());
        assert_eq!((w.delivered, w.dropped), (1, wide_routed - 1), "{w:?}");
        assert_eq!((p.delivered, p.dropped), (1, placed_routed - 1), "{p:?}");
    };
    for _ in 0..2 {
        for i in 0..40 {
            let r = publisher.publish(ev(Kind::Placed, i)).unwrap();
            wide_routed += 1;
            placed_routed += 1;
            assert_eq!(r.matched, 2);
            check(wide_routed, placed_routed);
            if i % 7 == 3 {
                // Into `wide` through the other route: a plain lane count
                // into a cell the held route counts.
                let r = publisher.publish(ev(Kind::Cancelled, i)).unwrap();
                assert_eq!((r.matched, r.dropped), (1, 1));
                wide_routed += 1;
                check(wide_routed, placed_routed);
            }
        }
        // The next handle takes the lane this one gives back, and holds the
        // route anew from its cells.
        drop(publisher);
        check(wide_routed, placed_routed);
        publisher = bus.publisher();
    }
    // An unsubscribe under the held route: its fold (the snapshot's) and
    // the later publishes still count each drop once.
    let placed_stats = placed.stats();
    assert!(placed.unsubscribe());
    for i in 0..10 {
        let r = publisher.publish(ev(Kind::Placed, i)).unwrap();
        assert_eq!((r.matched, r.dropped), (1, 1));
        wide_routed += 1;
        let w = wide.stats();
        assert_eq!(w.dropped, wide_routed - 1);
    }
    drop(publisher);
    let snap = bus.snapshot();
    assert_eq!(
        (snap.delivered, snap.dropped),
        (2, wide_routed - 1 + placed_stats.dropped)
    );
}

/// A reader's `stats()` races a publisher that holds a full route, lets it
/// go when a receiver drains, and holds it again: every read is between
/// the publishes done before it began and those begun before it ended, and
/// reads never go back (`LaneCounts::decoded` retries a cell that changed
/// under it).
#[test]
fn route_counts_read_by_another_thread_are_consistent() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    const ROUNDS: u64 = scaled(2_000, 20) as u64;
    let bus = Bus::<Event>::new();
    let mut subs: Vec<_> = (0..3)
        .map(|_| sub(&bus, "orders.placed", 1, Overflow::DropNewest))
        .collect();
    let watched = subs[0].unsubscriber();
    let done = Arc::new(AtomicBool::new(false));
    let published = Arc::new(AtomicU64::new(0));
    let reader = {
        let (done, published) = (Arc::clone(&done), Arc::clone(&published));
        thread::spawn(move || {
            let mut last = 0;
            let mut reads = 0u64;
            while !done.load(Ordering::Acquire) {
                // Acquire: pairs with the Release after each publish.
                let before = published.load(Ordering::Acquire);
                let st = watched.stats();
                let after = published.load(Ordering::Acquire);
                let seen = st.delivered + st.dropped;
                assert!(
                    before <= seen && seen <= after + 1,
                    "{before} <= {seen} <= {after} + 1"
                );
                assert!(st.dropped >= last, "{} after {last}", st.dropped);
                last = st.dropped;
                reads += 1;
            }
            reads
        })
    };
    let mut publisher = bus.publisher();
    let mut n = 0;
    for round in 0..ROUNDS {
        // Fill, refuse three times (the third is counted on the route),
        // then drain every ring: the route is let go at the next publish.
        for _ in 0..4 {
            publisher.publish(ev(Kind::Placed, n)).unwrap();
            n += 1;
            // Release: the publish happens before a read that sees it.
            published.store(n, Ordering::Release);
        }
        for s in &mut subs {
            drain(s);
        }
        if round % 64 == 63 {
            thread::yield_now();
        }
    }
    done.store(true, Ordering::Release);
    assert!(reader.join().unwrap() > 0);
    let st = subs[0].stats();
    assert_eq!((st.delivered, st.dropped), (ROUNDS, 3 * ROUNDS));
}
