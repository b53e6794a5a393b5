//! Model 9: single-producer buses (`Bus::single_producer`), whose publisher
//! pushes with plain stores (`core/src/ring/solo.rs`, steps S1 to S4).
#![cfg(evbus_loom)]

use evbus_core::{Bus, Overflow, SoloPublisher, Subscription, TryRecvError};
use evbus_loom_tests::{Ev, head_start_for_receiver, recv_until_closed, release, spawn_receiver};
use loom::{sync::Arc, thread};

fn solo_with_sub(capacity: usize) -> (Bus<Ev>, SoloPublisher<Ev>, Subscription<Ev>) {
    let (bus, publisher) = Bus::single_producer().expect("valid kind table");
    let sub = evbus_loom_tests::subscribe(&bus, capacity, Overflow::DropNewest);
    (bus, publisher, sub)
}

/// Model 9a: a receiver in `recv` (spins, then parks) and one solo publish.
///
/// Property: the model terminates (no lost wake-up) and the receiver gets
/// the event.
///
/// Depends on: S3, the producer's `fence(SeqCst)` after its stamp stores
/// before it loads the park bit, and the consumer's `fence(SeqCst)` after
/// its park CAS before it re-checks the stamp.
#[test]
fn solo_publish_wakes_parked_receiver() {
    loom::model(|| {
        let (bus, mut publisher, sub) = solo_with_sub(1);
        let payload = Arc::new(1);

        let receiver = spawn_receiver(sub, |sub| sub.recv().map(|e| e.id()));
        head_start_for_receiver();
        let report = publisher.publish(Ev(payload.clone())).expect("bus is open");
        let (got, sub) = receiver.join().unwrap();

        assert_eq!(report.accepted, 1);
        assert_eq!(got, Ok(1));
        drop(publisher);
        release(bus, sub, &[payload]);
    });
}

/// Model 9b: a solo publish racing an unsubscribe, then a drain.
///
/// Property: if the publish reports the event accepted, the drain receives
/// it before `Disconnected` (nothing stranded by the close); if not, no copy
/// is left anywhere. `Empty` from the closed, quiescent ring fails.
///
/// Depends on: S2, the publish epoch: the producer's odd epoch and
/// `fence(SeqCst)` before its mark check, against the closer's mark,
/// `fence(SeqCst)` and epoch load; and the final bit (Release/Acquire) that
/// lets the consumer report `Disconnected`.
#[test]
fn solo_publish_racing_unsubscribe_strands_nothing() {
    loom::model(|| {
        let (bus, mut publisher, sub) = solo_with_sub(2);
        let payload = Arc::new(1);

        let closer = sub.unsubscriber();
        let unsubscribe = thread::spawn(move || closer.unsubscribe());
        let report = publisher.publish(Ev(payload.clone())).expect("bus is open");
        assert!(unsubscribe.join().unwrap(), "the one close");

        let mut sub = sub;
        let mut got = Vec::new();
        loop {
            match sub.try_recv() {
                Ok(e) => got.push(e.id()),
                Err(TryRecvError::Disconnected) => break,
                Err(other) => panic!("closed, quiescent ring returned {other:?}"),
            }
        }
        assert_eq!(
            got.len(),
            report.accepted as usize,
            "got {got:?}, {report:?}"
        );
        drop(publisher);
        release(bus, sub, &[payload]);
    });
}

/// Model 9c: a receiver in a `recv` loop, a solo publisher, and a shutdown,
/// on three threads.
///
/// Property: the model terminates; the receiver gets exactly the accepted
/// events, then `Disconnected`.
///
/// Depends on: S2 and S3 together: the closer wakes a receiver parked
/// before the final bit, and a receiver never parks once it is set.
#[test]
fn solo_publish_and_shutdown_wake_receiver() {
    loom::model(|| {
        let (bus, mut publisher, sub) = solo_with_sub(1);
        let payload = Arc::new(1);

        let receiver = spawn_receiver(sub, recv_until_closed);
        let producer = thread::spawn({
            let payload = payload.clone();
            move || {
                let accepted = publisher.publish(Ev(payload)).map_or(0, |r| r.accepted);
                drop(publisher);
                accepted
            }
        });
        bus.shutdown();
        let accepted = producer.join().unwrap();
        let (got, sub) = receiver.join().unwrap();

        assert_eq!(got.len(), accepted as usize, "got {got:?}");
        release(bus, sub, &[payload]);
    });
}
