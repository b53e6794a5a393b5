//! Models 2 and 3: a ring is closed exactly once, whoever races to close it.
#![cfg(evbus_loom)]

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use evbus_core::Overflow;
use evbus_loom_tests::{Ev, assert_sole_owner, bus_with_sub, drain_closed, release};
use loom::{sync::Arc, thread};

/// Model 2: `Subscription::unsubscribe` racing `Bus::shutdown`.
///
/// Property: the ring is closed exactly once: exactly one of
/// `unsubscribe()`'s `true` and `ShutdownReport::closed == 1` holds, and both
/// winners occur across the explored executions. Afterwards the bus stays
/// shut down, the subscription is gone from the registry, its counters are
/// folded into the bus totals once, the buffered event is still received,
/// then `Disconnected`; no payload leaks.
///
/// Depends on: `Ring::close`'s single `fetch_or(mark_bit, AcqRel)` on `tail`
/// (ring protocol step 5: one RMW decides the one closer), and on
/// `SnapshotCell::rcu` retrying, so `remove_sub` and shutdown's closed
/// successor do not overwrite each other.
#[test]
fn unsubscribe_races_shutdown() {
    static UNSUBSCRIBE_WON: AtomicUsize = AtomicUsize::new(0);
    static SHUTDOWN_WON: AtomicUsize = AtomicUsize::new(0);

    loom::model(|| {
        let (bus, sub) = bus_with_sub(1, Overflow::DropNewest);
        let payload = Arc::new(1);
        let report = bus.publish(Ev(payload.clone())).expect("bus is open");
        assert_eq!(report.accepted, 1);

        let unsubscriber = thread::spawn(move || {
            let won = sub.unsubscribe();
            (won, sub)
        });
        let shutdown = bus.shutdown();
        let (unsubscribe_won, mut sub) = unsubscriber.join().unwrap();

        assert!(!shutdown.already_shut_down);
        assert!(shutdown.closed <= 1);
        let shutdown_won = shutdown.closed == 1;
        assert!(
            unsubscribe_won ^ shutdown_won,
            "ring closed {} times (unsubscribe: {unsubscribe_won}, shutdown: {shutdown_won})",
            u8::from(unsubscribe_won) + u8::from(shutdown_won)
        );
        if unsubscribe_won {
            UNSUBSCRIBE_WON.fetch_add(1, Relaxed);
        } else {
            SHUTDOWN_WON.fetch_add(1, Relaxed);
        }

        assert!(bus.is_shut_down(), "remove_sub undid the shutdown");
        assert_eq!(bus.subscriber_count(), 0);
        let snap = bus.snapshot();
        assert!(snap.shut_down);
        assert_eq!(
            snap.delivered, 1,
            "counters folded {} times",
            snap.delivered
        );
        assert!(sub.stats().closed);
        assert_eq!(drain_closed(&mut sub), [1]);
        // A third close attempt (Drop) must not close again.
        assert!(!sub.unsubscribe());
        release(bus, sub, &[payload]);
    });

    let (u, s) = (UNSUBSCRIBE_WON.load(Relaxed), SHUTDOWN_WON.load(Relaxed));
    assert!(
        u > 0,
        "no explored execution had unsubscribe win (shutdown won {s})"
    );
    assert!(
        s > 0,
        "no explored execution had shutdown win (unsubscribe won {u})"
    );
}

/// Model 3: two threads call `unsubscribe` on one subscription, then the
/// subscription is dropped (a third, sequential unsubscribe).
///
/// Property: exactly one call returns `true`; the subscription is removed
/// from the registry once and its counters are folded into the bus totals
/// once (`snapshot().delivered == 1` for the one event it got); the buffered
/// event is still received; no payload leaks.
///
/// Depends on: `Ring::close`'s `fetch_or` on `tail` (step 5) for the single
/// `true`, and on `SnapshotCell::rcu` re-running `without_sub` on the value
/// it replaces, so only one `remove_sub` finds the entry.
#[test]
fn double_unsubscribe() {
    loom::model(|| {
        let (bus, mut sub) = bus_with_sub(1, Overflow::DropNewest);
        let payload = Arc::new(1);
        bus.publish(Ev(payload.clone())).expect("bus is open");
        // Received before the race: the ring's counters are not all zero.
        assert_eq!(sub.try_recv().map(|e| e.id()), Ok(1));
        let sub = Arc::new(sub);

        let other = thread::spawn({
            let sub = sub.clone();
            move || sub.unsubscribe()
        });
        let mine = sub.unsubscribe();
        let theirs = other.join().unwrap();
        assert!(
            mine ^ theirs,
            "unsubscribe returned true {} times",
            u8::from(mine) + u8::from(theirs)
        );

        let mut sub = Arc::try_unwrap(sub).expect("the thread dropped its handle");
        assert_eq!(drain_closed(&mut sub), Vec::<u64>::new());
        drop(sub); // Drop unsubscribes a third time.
        assert_eq!(bus.subscriber_count(), 0);
        let snap = bus.snapshot();
        assert_eq!(
            snap.delivered, 1,
            "counters folded {} times",
            snap.delivered
        );
        assert_eq!(snap.dropped, 0);
        drop(bus);
        assert_sole_owner(&payload);
    });
}
