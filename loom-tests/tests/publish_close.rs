//! Models 1 (a, b, c, d), 4 and 7: publishes racing the close of a ring (by unsubscribe or
//! by shutdown). Nothing accepted is lost, nothing refused is delivered, and
//! every report and counter agrees with what the receiver got.
#![cfg(evbus_loom)]

use evbus_core::{Overflow, PublishError, PublishReport};
use evbus_loom_tests::{
    Ev, bus, bus_with_sub, drain_closed, recv_until_closed, release, revoke_lease, spawn_publish,
    spawn_publisher, spawn_receiver, spin_until_disconnected, subscribe,
};
use loom::{sync::Arc, thread::JoinHandle};

/// Model 1: `Bus::publish` racing `Subscription::unsubscribe`, with the
/// receiver trying once before it unsubscribes and draining after.
///
/// Property: the event is either received (before `Disconnected`) or was
/// never accepted (`Push::Closed`: the report does not count the ring as
/// matched); `report.accepted` equals what the receiver got, and the ring's
/// and the bus's counters say the same; the unsubscribe is the one closer; no
/// payload leaks or is dropped twice (a refused event is dropped by the bus,
/// exactly once).
///
/// Depends on: the claim CAS on `tail` failing once `close`'s `fetch_or` set
/// the mark bit (steps 1 and 5: a claim is either in the closing value of
/// `tail` or sees the mark); the Release stamp store / Acquire stamp load
/// (step 2) for the payload's visibility to the receiver; `try_pop`
/// reporting `Disconnected` only when `tail`'s position equals `head`.
#[test]
fn publish_races_unsubscribe() {
    loom::model(|| {
        let (bus, mut sub) = bus_with_sub(1, Overflow::DropNewest);
        let payload = Arc::new(1);

        let publisher = spawn_publish(&bus, &payload);
        let mut got: Vec<u64> = sub.try_recv().ok().iter().map(Ev::id).collect();
        assert!(sub.unsubscribe(), "nobody else closes this ring");
        let report = join_unsubscribed(publisher);
        got.extend(drain_closed(&mut sub));

        assert_eq!(report.dropped, 0, "an empty ring of capacity 1 dropped");
        assert_eq!(report.matched, report.accepted);
        assert_eq!(
            got.len(),
            report.accepted as usize,
            "accepted {report:?}, got {got:?}"
        );
        let stats = sub.stats();
        assert!(stats.closed);
        assert_eq!(stats.delivered, u64::from(report.accepted));
        assert_eq!(stats.received, u64::from(report.accepted));
        assert_eq!((stats.queued, stats.dropped), (0, 0));
        let snap = bus.snapshot();
        assert_eq!(snap.published, 1);
        assert_eq!(snap.no_subscribers, u64::from(report.matched == 0));
        assert_eq!(snap.delivered, u64::from(report.accepted));
        assert!(snap.subscriptions.is_empty());
        release(bus, sub, &[payload]);
    });
}

/// Model 1d: a `Publisher`'s publish to two rings racing the unsubscribe of
/// the first ring, while the second ring's receiver polls. The lease
/// revoked first, so the publisher claims with a CAS; under loom a route of
/// two rings then goes in a batch (`core/src/deliver/batch.rs`: both values
/// made, then both slots claimed, then both written), as a route of eight
/// does otherwise.
///
/// Property: the second ring gets the event exactly once, by the time the
/// publish returned; the first got it exactly when the report counts it; the
/// counters agree; no payload leaks or is dropped twice.
///
/// Depends on: the claim CAS on `tail` failing once `close`'s `fetch_or` set
/// the mark bit (steps 1 and 5), for the first ring (its value then goes the
/// usual way and finds the ring closed); the Release stamp store of each slot
/// (step 2); a receiver that finds its slot claimed but
/// unwritten answering `Empty` only while the publish is in flight, on a bus
/// with one `Publisher` (step 5a).
#[test]
fn two_ring_publish_races_unsubscribe() {
    loom::model(|| two_ring_race(true));
}

/// Model 10c: model 1d with the lease held (`core/src/ring/lease.rs`): the
/// holder's publish to two leased rings, with plain stores, races the
/// unsubscribe of the first, while the second ring's receiver polls.
///
/// Property: as 1d.
///
/// Depends on: S2 and L6: a close that finds the lease bit waits out the
/// holder's publish and sets the final bit; the first ring's consumer
/// reports `Disconnected` only after it.
#[test]
fn holders_two_ring_publish_races_unsubscribe() {
    loom::model(|| two_ring_race(false));
}

/// The race of models 1d (`revoked`: the lease revoked first) and 10c.
fn two_ring_race(revoked: bool) {
    let bus = bus();
    if revoked {
        revoke_lease(&bus);
    }
    let mut first = subscribe(&bus, 1, Overflow::DropNewest);
    let mut second = subscribe(&bus, 1, Overflow::DropNewest);
    let payloads = [Arc::new(1)];

    let publisher = spawn_publisher(&bus, &payloads, |r| r.expect("an open bus"));
    let mut got: Vec<u64> = second.try_recv().ok().iter().map(Ev::id).collect();
    assert!(first.unsubscribe(), "nobody else closes this ring");
    let [report] = publisher.join().unwrap();
    got.extend(second.try_recv().ok().iter().map(Ev::id));
    let got_first = drain_closed(&mut first);

    assert_eq!(got, [1], "the open ring's event, once: {report:?}");
    assert_eq!(report.dropped, 0);
    assert_eq!(report.matched, report.accepted);
    assert_eq!(report.accepted as usize, 1 + got_first.len(), "{report:?}");
    let stats = first.stats();
    assert_eq!(stats.delivered, got_first.len() as u64);
    assert_eq!(second.stats().delivered, 1);
    let snap = bus.snapshot();
    assert_eq!(snap.published, 1);
    assert_eq!(snap.delivered, u64::from(report.accepted));
    drop(first);
    release(bus, second, &payloads);
}

/// Model 1b: a publish that finds the ring full racing `unsubscribe`.
///
/// Property: every drop a publish report counts is in the bus totals once
/// the subscription is gone: `snapshot().dropped == report.dropped`.
///
/// Depends on: the `FOLDED` flag sharing one atomic with `cold.dropped`
/// (`core/src/ring/accounting.rs`, step 7): the fold's `fetch_or` and the
/// drop's `fetch_add` are RMWs of one location, so the drop is either in the
/// fold or, finding the flag, goes to the bus totals. Before that flag existed this model failed
/// with "publish reported ... dropped: 1, bus totals say 0 dropped".
#[test]
fn full_ring_drop_races_unsubscribe() {
    loom::model(|| {
        let (bus, sub) = bus_with_sub(1, Overflow::DropNewest);
        let first = Arc::new(1);
        let second = Arc::new(2);
        bus.publish(Ev(first.clone())).expect("bus is open");

        let publisher = spawn_publish(&bus, &second);
        assert!(sub.unsubscribe());
        // A snapshot folds the rings that left (in batches otherwise):
        // taken here, its fold races the publish.
        let _ = bus.snapshot();
        let report = join_unsubscribed(publisher);
        assert_eq!(report.accepted, 0, "a full ring accepted");
        assert_eq!(sub.stats().dropped, u64::from(report.dropped));
        let snap = bus.snapshot();
        assert_eq!(
            snap.dropped,
            u64::from(report.dropped),
            "publish reported {report:?}, bus totals say {} dropped",
            snap.dropped
        );
        release(bus, sub, &[first, second]);
    });
}

/// Model 1c: model 1b through a `Publisher` handle, which counts the drop in
/// its own lane of the ring with plain stores (step 8).
///
/// Property: as model 1b, for the publisher's two publishes into a full
/// ring: the ring's counter and, once it is gone, the bus totals equal the
/// drops the reports count.
///
/// Depends on: the light barrier after the lane store and the heavy barrier
/// in the fold (`core/src/ring/lanes.rs`): either the fold reads the cell,
/// or the publisher sees the fold and adds its drop to the totals. With the
/// light barrier removed this model fails with "publisher reported ... 2
/// dropped, bus totals say 1".
#[test]
fn lane_drop_races_unsubscribe() {
    loom::model(|| {
        let (bus, sub) = bus_with_sub(1, Overflow::DropNewest);
        let payloads = [Arc::new(1), Arc::new(2), Arc::new(3)];
        bus.publish(Ev(payloads[0].clone())).expect("bus is open");

        let publisher = spawn_publisher(&bus, &[payloads[1].clone(), payloads[2].clone()], |r| {
            r.expect("bus is open")
        });
        assert!(sub.unsubscribe());
        // The fold (here, by a snapshot) races the publisher's drops.
        let _ = bus.snapshot();
        let reports = publisher.join().unwrap();
        let dropped: u64 = reports.iter().map(|r| u64::from(r.dropped)).sum();
        assert!(
            reports.iter().all(|r| r.accepted == 0),
            "a full ring accepted"
        );
        assert_eq!(sub.stats().dropped, dropped);
        let snap = bus.snapshot();
        assert_eq!(
            snap.dropped, dropped,
            "publisher reported {reports:?}: {dropped} dropped, bus totals say {}",
            snap.dropped
        );
        release(bus, sub, &payloads);
    });
}

/// Model 4: `Bus::publish` racing `Bus::shutdown`, with a receiver blocked
/// in `recv` until `Disconnected`.
///
/// Property: the publish returns `Closed` with the very event (not
/// delivered), or `Ok`; if `Ok` and accepted, the receiver gets the event,
/// then `Disconnected`; if `Ok` and not accepted, the report counts no
/// subscriber. Never lost silently, never leaked, the receiver always
/// terminates (the shutdown wakes it).
///
/// Depends on: shutdown's `rcu` to a closed registry (a publish that loads it
/// returns `Closed`); the claim CAS vs `close`'s `fetch_or` on `tail`
/// (steps 1, 5); the stamp Release/Acquire pair (step 2); the park-bit CAS
/// and `close` waking a parked consumer (step 4).
#[test]
fn publish_races_shutdown() {
    loom::model(|| {
        let (bus, sub) = bus_with_sub(1, Overflow::DropNewest);
        let payload = Arc::new(1);

        let publisher = spawn_publish(&bus, &payload);
        let receiver = spawn_receiver(sub, recv_until_closed);
        let shutdown = bus.shutdown();
        let published = publisher.join().unwrap();
        let (got, sub) = receiver.join().unwrap();

        assert_eq!(shutdown.closed, 1);
        assert!(shutdown.buffered <= 1);
        let accepted = match published {
            Err(PublishError::Closed(e)) => {
                assert!(
                    Arc::ptr_eq(&e.0, &payload),
                    "Closed handed back another event"
                );
                0
            }
            Err(other) => panic!("unexpected {other:?}"),
            Ok(report) => {
                assert_eq!(report.matched, report.accepted);
                assert_eq!(report.dropped, 0);
                report.accepted
            }
        };
        assert_eq!(
            got.len(),
            accepted as usize,
            "accepted {accepted}, got {got:?}"
        );
        let stats = sub.stats();
        assert_eq!(stats.delivered, u64::from(accepted));
        assert_eq!(stats.received, u64::from(accepted));
        assert_eq!(stats.queued, 0);
        release(bus, sub, &[payload]);
    });
}

/// Model 7a: close, then re-check. A publisher sends two events while the
/// receiver takes one, unsubscribes, and drains until `Disconnected`.
///
/// Property: the receiver gets exactly the accepted events, in order, before
/// `Disconnected`: no event is stranded behind the mark bit, and a claim made
/// before the close but written after it is waited for, not skipped.
///
/// Depends on: step 5 (every successful claim is in the `tail` value that
/// carries the mark bit; `try_pop` returns `Disconnected` only when
/// `pos(tail) == head`, and snoozes on a claimed, unwritten slot) and step 2
/// (stamp Release/Acquire, so the drained payload is visible).
#[test]
fn close_then_recheck_unsubscribe() {
    loom::model(|| {
        let (bus, mut sub) = bus_with_sub(2, Overflow::DropNewest);
        let payloads = [Arc::new(1), Arc::new(2)];

        let publisher = spawn_publisher(&bus, &payloads, |r| r.expect("bus is open"));
        let mut got: Vec<u64> = sub.try_recv().ok().iter().map(Ev::id).collect();
        assert!(sub.unsubscribe());
        got.extend(drain_closed(&mut sub));
        let reports = publisher.join().unwrap();

        check_in_order(&reports, &got);
        assert_eq!(sub.stats().received, got.len() as u64);
        release(bus, sub, &payloads);
    });
}

/// Model 7b: close, then re-check, with the close coming from
/// `Bus::shutdown` on a third thread while the receiver spins on `try_recv`.
///
/// Property: as 7a; also a publish refused with `Closed` hands its event
/// back and later events of the same publisher are refused too.
///
/// Depends on: as 7a, plus shutdown's registry `rcu` (a publisher whose
/// registry load sees `closed` stops there).
#[test]
fn close_then_recheck_shutdown() {
    loom::model(|| {
        let (bus, sub) = bus_with_sub(2, Overflow::DropNewest);
        let payloads = [Arc::new(1), Arc::new(2)];

        let publisher = spawn_publisher(&bus, &payloads, |r| match r {
            Ok(report) => report,
            Err(PublishError::Closed(_)) => PublishReport::default(),
            Err(other) => panic!("unexpected {other:?}"),
        });
        let receiver = spawn_receiver(sub, spin_until_disconnected);
        let shutdown = bus.shutdown();
        let reports = publisher.join().unwrap();
        let (got, sub) = receiver.join().unwrap();

        assert_eq!(shutdown.closed, 1);
        check_in_order(&reports, &got);
        release(bus, sub, &payloads);
    });
}

/// The result of a publish that raced an unsubscribe: never an error.
#[track_caller]
fn join_unsubscribed(
    publisher: JoinHandle<Result<PublishReport, PublishError<Ev>>>,
) -> PublishReport {
    match publisher.join().unwrap() {
        Ok(report) => report,
        Err(_) => panic!("an unsubscribe must not make publish fail"),
    }
}

/// The events received are exactly the accepted ones, in publish order.
#[track_caller]
fn check_in_order(reports: &[PublishReport; 2], got: &[u64]) {
    let accepted: Vec<u64> = (1..)
        .zip(reports)
        .filter(|(_, r)| r.accepted == 1)
        .map(|(id, _)| id)
        .collect();
    for r in reports {
        assert_eq!(r.dropped, 0, "a ring of capacity 2 dropped: {reports:?}");
    }
    assert_eq!(got, accepted, "reports {reports:?}");
}
