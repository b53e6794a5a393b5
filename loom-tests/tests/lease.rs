//! Model 10: the lease (`core/src/ring/lease.rs`): a multi-producer bus's
//! only `Publisher` pushes into its rings with plain stores, until a second
//! producer revokes the lease and each ring turns to the multi-producer
//! protocol on its next push.
//!
//! Loom's cells report a slot written by both protocols at once (a
//! conversion that let a claim and a plain-store push take the same slot),
//! and a lost wake-up as a deadlock. Under loom the holder pushes with
//! plain stores from one ring on (two otherwise), so these models need few
//! rings.
#![cfg(evbus_loom)]

use evbus_core::{Bus, Overflow, PublishReport, Subscription};
use evbus_loom_tests::{
    Ev, bus, head_start_for_receiver, release, spawn_publisher, spawn_receiver, subscribe,
};
use loom::{sync::Arc, thread};

/// Receives from `sub`, which nobody else produces into any more, until it
/// is empty: the ids, in order.
fn drain(sub: &mut Subscription<Ev>) -> Vec<u64> {
    std::iter::from_fn(|| sub.try_recv().ok().map(|e| e.id())).collect()
}

/// Checks that `got` holds the events a holder published (`ours`, in
/// order) and one event `theirs` from another producer, each exactly once
/// if its report says it was accepted.
#[track_caller]
fn assert_each_once(got: &[u64], ours: &[(u64, PublishReport)], theirs: (u64, PublishReport)) {
    let accepted = |(id, report): &(u64, PublishReport)| (report.accepted == 1).then_some(*id);
    let mine: Vec<u64> = got.iter().copied().filter(|&id| id != theirs.0).collect();
    let expected: Vec<u64> = ours.iter().filter_map(accepted).collect();
    assert_eq!(mine, expected, "the holder's events, in order: got {got:?}");
    let other = got.iter().filter(|&&id| id == theirs.0).count();
    assert_eq!(other, usize::from(theirs.1.accepted == 1), "got {got:?}");
}

/// Model 10a: a publish through `Bus` (which revokes the lease, then
/// converts the ring) racing the holder's two publishes.
///
/// Property: every accepted event arrives exactly once, the holder's in
/// order; nothing is dropped (capacity 4); no slot is written twice.
///
/// Depends on: L2, the revoker's heavy barrier and epoch wait against the
/// holder's odd epoch, light barrier and state load (either the holder sees
/// the revocation and claims with a CAS, or the revoker waits for its
/// publish to end); L3, the conversion's CAS reading the holder's cursor
/// through the revocation's Release/Acquire chain.
#[test]
fn bus_publish_races_the_holders_publish() {
    loom::model(|| {
        race_the_holder(|bus, event| bus.publish(event).expect("an open bus"));
    });
}

/// Model 10b: a second `Publisher`, made and publishing while the holder
/// publishes: as 10a, with the revocation in `Publisher::new`.
#[test]
fn second_publisher_races_the_holders_publish() {
    loom::model(|| {
        race_the_holder(|bus, event| {
            let mut second = bus.publisher();
            second.publish(event).expect("an open bus")
        });
    });
}

/// The race of models 10a and 10b: the holder publishes events 1 and 2 on
/// its thread while `other` publishes event 3 on this one.
fn race_the_holder(other: impl FnOnce(&Bus<Ev>, Ev) -> PublishReport) {
    let bus = bus();
    let mut sub = subscribe(&bus, 4, Overflow::DropNewest);
    let (payloads, third) = ([Arc::new(1), Arc::new(2)], Arc::new(3));

    let holder = spawn_publisher(&bus, &payloads, |r| r.expect("an open bus"));
    let theirs = other(&bus, Ev(third.clone()));
    let [a, b] = holder.join().unwrap();

    let got = drain(&mut sub);
    assert_each_once(&got, &[(1, a), (2, b)], (3, theirs));
    assert_eq!(got.len(), 3, "capacity 4 drops nothing");
    let [one, two] = payloads;
    release(bus, sub, &[one, two, third]);
}

/// Model 10d: the holder waits on a full `Block` ring (capacity 1) while a
/// publish through `Bus` revokes the lease and waits on the same ring; a
/// receiver takes every event.
///
/// Property: the model terminates (the revoker does not wait for the
/// parked holder, and every parked producer is woken), every event arrives
/// exactly once, and none is dropped.
///
/// Depends on: S5, the holder pausing its publish (even epoch) before it
/// parks, so the revocation's epoch wait ends; L4, the holder loading the
/// lease state when it resumes and pushing the multi-producer way once
/// revoked, instead of writing the slot the converted ring hands to claims.
#[test]
fn revocation_while_the_holder_waits_on_a_full_block_ring() {
    loom::model(|| {
        let bus: Bus<Ev> = bus();
        let block = Overflow::Block(std::time::Duration::MAX);
        let sub = subscribe(&bus, 1, block);
        let (first, second, other) = (Arc::new(1), Arc::new(2), Arc::new(3));
        let mut holder = bus.publisher();
        // The ring is full before the race begins.
        let report = holder.publish(Ev(first.clone())).expect("an open bus");
        assert_eq!(report.accepted, 1);

        let receiver = spawn_receiver(sub, |sub| {
            let mut got: Vec<u64> = (0..3)
                .map(|_| sub.recv().expect("an open bus").id())
                .collect();
            got.sort_unstable();
            got
        });
        let waits = thread::spawn({
            let event = Ev(second.clone());
            move || holder.publish(event).expect("an open bus")
        });
        let theirs = bus.publish(Ev(other.clone())).expect("an open bus");
        let ours = waits.join().unwrap();
        let (got, sub) = receiver.join().unwrap();

        assert_eq!(
            (ours.accepted, theirs.accepted),
            (1, 1),
            "Block drops nothing"
        );
        assert_eq!(got, [1, 2, 3]);
        release(bus, sub, &[first, second, other]);
    });
}

/// Model 10e: a receiver in `recv` (spins, then parks) on a leased ring,
/// and one publish of the holder.
///
/// Property: the model terminates (no lost wake-up) and the receiver gets
/// the event.
///
/// Depends on: L6 and S3, per ring: the holder's light barrier after its
/// stamp store, then its load of the park bit (`settle_leased`), against
/// the consumer's park CAS on the flags, heavy barrier and look at the
/// stamp (`park_solo`).
#[test]
fn holders_publish_wakes_parked_receiver() {
    loom::model(|| {
        let bus = bus();
        let sub = subscribe(&bus, 1, Overflow::DropNewest);
        let payloads = [Arc::new(1)];

        let receiver = spawn_receiver(sub, |sub| sub.recv().map(|e| e.id()));
        head_start_for_receiver();
        let mut holder = bus.publisher();
        let report = holder
            .publish(Ev(payloads[0].clone()))
            .expect("an open bus");
        let (got, sub) = receiver.join().unwrap();

        assert_eq!(report.accepted, 1);
        assert_eq!(got, Ok(1));
        drop(holder);
        release(bus, sub, &payloads);
    });
}
