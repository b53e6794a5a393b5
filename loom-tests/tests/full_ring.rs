//! Model 6: producers racing at the full-ring boundary.
#![cfg(evbus_loom)]

use evbus_core::{Overflow, TryRecvError};
use evbus_loom_tests::{Ev, bus, bus_with_sub, release, subscribe};
use loom::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
};

/// Model 6: two `Publisher`s publish one event each into a `DropNewest`
/// ring of capacity 1 while the consumer takes one event concurrently.
///
/// Property: each report is consistent (`matched == 1 == accepted +
/// dropped`); over both, `accepted + dropped == 2` (attempted); the receiver
/// gets exactly the accepted events; the ring's `delivered`, `dropped`,
/// `received` and `queued` and the bus's `published` agree with the reports;
/// no payload leaks (a dropped event is dropped exactly once by the bus).
///
/// Depends on: the claim CAS on `tail` (step 1: one producer per position);
/// the stamp Release/Acquire pair of step 2 and the `head` pair of step 3
/// (the second producer writes the slot only after the consumer's read of
/// the first value; with the producers' `head` load made Relaxed, loom
/// finds the two accesses to the slot concurrent); `room` deciding "full"
/// only when it is.
#[test]
fn two_producers_full_ring() {
    loom::model(|| {
        let (bus, mut sub) = bus_with_sub(1, Overflow::DropNewest);
        let payloads = [Arc::new(1), Arc::new(2)];

        let producers: Vec<_> = payloads
            .iter()
            .map(|p| {
                let mut publisher = bus.publisher();
                let event = Ev(p.clone());
                thread::spawn(move || publisher.publish(event).expect("bus is open"))
            })
            .collect();
        let mut got: Vec<u64> = sub.try_recv().ok().iter().map(Ev::id).collect();
        let reports: Vec<_> = producers.into_iter().map(|t| t.join().unwrap()).collect();
        loop {
            match sub.try_recv() {
                Ok(e) => got.push(e.id()),
                Err(TryRecvError::Empty) => break,
                Err(other) => panic!("open ring returned {other:?}"),
            }
        }

        let mut accepted = 0;
        let mut dropped = 0;
        for (id, r) in (1..).zip(&reports) {
            assert_eq!(r.matched, 1);
            assert_eq!(r.accepted + r.dropped, 1, "report {r:?}");
            accepted += u64::from(r.accepted);
            dropped += u64::from(r.dropped);
            assert_eq!(
                r.accepted == 1,
                got.contains(&id),
                "reports {reports:?}, got {got:?}"
            );
        }
        assert_eq!(accepted + dropped, 2);
        assert_eq!(got.len() as u64, accepted);
        let stats = sub.stats();
        assert_eq!(stats.delivered, accepted);
        assert_eq!(stats.received, accepted);
        assert_eq!(stats.dropped, dropped);
        assert_eq!(stats.queued, 0);
        assert_eq!(stats.high_water, 1);
        let snap = bus.snapshot();
        assert_eq!(
            (snap.published, snap.delivered, snap.dropped),
            (2, accepted, dropped)
        );
        release(bus, sub, &payloads);
    });
}

/// Model 6b: a `Publisher` that remembers its route full (`full_route.rs`)
/// while the consumer takes one event. Into a ring of capacity 1, three
/// publishes race the consumer's first pop: the first fills the ring, a
/// full one is remembered from its second refusal on (the publisher keeps
/// the `head` it is full at). The fourth comes after the pop (the consumer
/// says so through a flag).
///
/// Property: the fourth is accepted exactly when the ring has room for it
/// (one of the first three was accepted, and it was popped); the receiver
/// gets exactly the accepted events, in order; the ring's and the bus's
/// counts agree with the reports; no payload leaks.
///
/// Depends on: `Ring::still_full_at` refusing only while `head` is
/// still at the remembered one, and the consumer's Release `head` store
/// (step 3). Weakened (the refusal without comparing `head`), loom finds
/// the fourth refused with room.
#[test]
fn remembered_full_route_races_a_pop() {
    loom::model(|| {
        let (bus, mut sub) = bus_with_sub(1, Overflow::DropNewest);
        let payloads: Vec<_> = (1..=4).map(Arc::new).collect();
        let popped = Arc::new(AtomicBool::new(false));
        let mut publisher = bus.publisher();
        let mut events: Vec<_> = payloads.iter().map(|p| Ev(p.clone())).collect();
        let producer = {
            let popped = Arc::clone(&popped);
            thread::spawn(move || {
                let last = events.pop().unwrap();
                let mut reports: Vec<_> = events
                    .into_iter()
                    .map(|e| publisher.publish(e).expect("bus is open"))
                    .collect();
                // Acquire: pairs with the consumer's Release below.
                while !popped.load(Ordering::Acquire) {
                    thread::yield_now();
                }
                reports.push(publisher.publish(last).expect("bus is open"));
                (reports, publisher)
            })
        };
        let mut got = loop {
            match sub.try_recv() {
                Ok(e) => break vec![e.id()],
                Err(TryRecvError::Empty) => thread::yield_now(),
                Err(other) => panic!("open ring returned {other:?}"),
            }
        };
        // Release: the pop happens before the fourth publish.
        popped.store(true, Ordering::Release);
        let (reports, publisher) = producer.join().unwrap();
        while let Ok(e) = sub.try_recv() {
            got.push(e.id());
        }
        let accepted: Vec<u64> = (1..)
            .zip(&reports)
            .filter(|(_, r)| r.accepted == 1)
            .map(|(id, _)| id)
            .collect();
        assert_eq!(got, accepted, "reports {reports:?}");
        let early = accepted.iter().filter(|&&id| id < 4).count();
        assert_eq!(
            reports[3].accepted == 1,
            early == 1,
            "the fourth publish and the room the pop left: {reports:?}"
        );
        let dropped = 4 - accepted.len() as u64;
        for r in &reports {
            assert_eq!((r.matched, r.accepted + r.dropped), (1, 1), "{r:?}");
        }
        let stats = sub.stats();
        assert_eq!(
            (stats.delivered, stats.dropped),
            (accepted.len() as u64, dropped)
        );
        drop(publisher);
        let snap = bus.snapshot();
        assert_eq!(
            (snap.delivered, snap.dropped),
            (accepted.len() as u64, dropped)
        );
        release(bus, sub, &payloads);
    });
}

/// Models 6c and 6d: a `Publisher` whose full route is counted in its
/// lane's route count (step 8b, `ring/route_drops.rs`) publishes while the
/// main thread unsubscribes one of the route's two rings and folds it (the
/// snapshot folds the rings that left). Before the race the publisher
/// filled both rings (capacity 1) and refused once (6d: its first racing
/// publish holds the route, its second counts on it) or twice (6c: it
/// holds the route already, and its one racing publish counts on it).
///
/// Property: every drop is counted once, in the bus totals (through the
/// fold's read, or by the publisher itself) and in the remaining ring's
/// stats; no payload leaks.
///
/// Depends on: the fold's announcement (`RouteDrops::announce_fold`) before
/// its heavy barrier, and the publisher's check of it after its light one
/// (`RouteDrops::refuse_all`). Weakened (that check skipped), loom finds in
/// 6c the fold reading the route count before the publisher's store, and
/// the drop missing from the totals. With `hold_route`'s check of each
/// ring's `state` skipped, 6d still passes: a ring closes before it folds,
/// and in every execution loom explores the holding publish's `full_at`
/// sees the close's mark and holds nothing. The check stays, as that
/// `tail` load is Relaxed and not ordered with the fold count's.
fn route_counted_drops_race_a_fold(before: usize) {
    loom::model(move || {
        let bus = bus();
        let gone = subscribe(&bus, 1, Overflow::DropNewest);
        let kept = subscribe(&bus, 1, Overflow::DropNewest);
        let payloads: Vec<_> = (1..=4).map(Arc::new).collect();
        let mut publisher = bus.publisher();
        for p in &payloads[..before] {
            publisher.publish(Ev(p.clone())).expect("bus is open");
        }
        let racing: Vec<_> = payloads[before..].iter().map(|p| Ev(p.clone())).collect();
        let racer = thread::spawn(move || {
            let reports: Vec<_> = racing
                .into_iter()
                .map(|e| publisher.publish(e).expect("bus is open"))
                .collect();
            drop(publisher);
            reports
        });
        assert!(gone.unsubscribe());
        let _ = bus.snapshot();
        let reports = racer.join().unwrap();
        // `kept` refused every publish after its first.
        assert_eq!(kept.stats().dropped, 3);
        let racing_drops: u64 = reports.iter().map(|r| u64::from(r.dropped)).sum();
        let snap = bus.snapshot();
        assert_eq!(
            (snap.delivered, snap.dropped),
            (2, 2 * (before as u64 - 1) + racing_drops),
            "{reports:?}"
        );
        drop(gone);
        release(bus, kept, &payloads);
    });
}

#[test]
fn route_counted_drop_races_a_fold() {
    route_counted_drops_race_a_fold(3);
}

#[test]
fn route_hold_races_a_fold() {
    route_counted_drops_race_a_fold(2);
}
