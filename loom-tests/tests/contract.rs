//! Models of the contract fixes of issue 12: linearizable receives, lag
//! reports before the event after their gap, and the single producer's
//! wake-up when user code panics mid-publish.
//!
//! Each was weakened once to see it fail (the commit that added it says
//! how): loom finds the interleaving within `LOOM_MAX_PREEMPTIONS=2`.
#![cfg(evbus_loom)]

use std::{
    panic::{self, AssertUnwindSafe},
    sync::atomic::{AtomicUsize, Ordering},
};

use evbus_core::{
    Bus, Event, Filter, Overflow, PublishReport, Publisher, SubscribeOptions, TryRecvError,
};
use evbus_loom_tests::{Ev, Kind, bus, head_start_for_receiver, spawn_receiver, subscribe};
use loom::{sync::Arc, thread};

/// Model 9: a receive that happens after a publish returned sees it.
///
/// Two threads each publish to both subscriptions, then `try_recv` on their
/// own. Each one's own event is in its ring, so neither may answer `Empty`,
/// even while the other has claimed the slot at `head` and not yet written
/// it.
///
/// Depends on: step 5a: a consumer that finds the slot at `head` unwritten
/// reads `tail`, and waits out a claim in flight instead of answering
/// `Empty`. Weakened (answering `Empty` from the stamp alone, as before),
/// loom finds the preempted claim.
#[test]
fn try_recv_sees_every_returned_publish() {
    loom::model(|| each_sees_its_own_publish(Bus::clone));
}

/// Model 9b: as model 9, with two `Publisher` handles instead of the bus
/// handle, the second made on its own thread while the first may be
/// publishing.
///
/// Depends on: step 5a's one-producer answer: a consumer answers `Empty`
/// from the stamp alone only while the bus has had one producer at a time,
/// and a second live `Publisher` clears that flag before its first claim
/// (`Totals::second_producer`), whose Release claim carries the store to a
/// consumer whose own claim reads it. Weakened (the second `Publisher`
/// leaves the flag set), loom finds the preempted claim hiding the other
/// thread's returned publish.
#[test]
fn try_recv_sees_every_returned_publish_of_two_publishers() {
    loom::model(|| each_sees_its_own_publish(Bus::publisher));
}

/// A producer-side handle for models 9 and 9b.
trait Handle: Send + 'static {
    fn send(&mut self, event: Ev) -> PublishReport;
}

impl Handle for Bus<Ev> {
    fn send(&mut self, event: Ev) -> PublishReport {
        self.publish(event).unwrap()
    }
}

impl Handle for Publisher<Ev> {
    fn send(&mut self, event: Ev) -> PublishReport {
        self.publish(event).unwrap()
    }
}

/// Models 9 and 9b: two threads each publish to both subscriptions through
/// a handle that `make` gives them (the other thread's made on that
/// thread), then `try_recv` on their own; neither may answer `Empty`.
fn each_sees_its_own_publish<H: Handle>(make: fn(&Bus<Ev>) -> H) {
    let bus = bus();
    let mut mine = subscribe(&bus, 2, Overflow::DropNewest);
    let mut theirs = subscribe(&bus, 2, Overflow::DropNewest);
    let mut own = make(&bus);
    let (p1, p2) = (Arc::new(1), Arc::new(2));
    let other = {
        let bus = bus.clone();
        let event = Ev(p2.clone());
        thread::spawn(move || {
            let mut handle = make(&bus);
            assert_eq!(handle.send(event).accepted, 2);
            let got = theirs.try_recv().map(|e| e.id());
            (got, theirs)
        })
    };
    assert_eq!(own.send(Ev(p1.clone())).accepted, 2);
    let got = mine.try_recv().map(|e| e.id());
    assert!(got.is_ok(), "own accepted publish not visible: {got:?}");
    let (got, theirs) = other.join().unwrap();
    assert!(got.is_ok(), "own accepted publish not visible: {got:?}");
    drop(theirs);
    drop(mine);
    drop(own);
    drop(bus);
    assert_eq!(Arc::strong_count(&p1), 1);
    assert_eq!(Arc::strong_count(&p2), 1);
}

/// Model 10: under `DropOldest`, a `Lagged(n)` comes before the first event
/// after its gap, and the lags add up to what was evicted.
///
/// A publisher sends 0, 1, 2 into a ring of capacity 1 while the receiver
/// makes two receives, then takes what is left; every event it gets must be
/// the next one it expects, counting the lags it was told.
///
/// Depends on: the receiver comparing `head` with its own copy
/// (`Ring::try_pop_oldest`, `Ring::take_lag`): an eviction is seen by the
/// `head` it moved, never by the counter it raises afterwards. Weakened
/// (the pop takes the event at a `head` that an eviction moved, and the gap
/// is reported after it), loom finds the event after the gap first.
#[test]
fn lag_comes_before_the_event_after_the_gap() {
    loom::model(|| {
        let bus = bus();
        let sub = subscribe(&bus, 1, Overflow::DropOldest);
        let payloads = [Arc::new(0), Arc::new(1), Arc::new(2)];
        let receiver = spawn_receiver(sub, |sub| {
            let mut next = 0;
            let mut check = |got: Result<Ev, TryRecvError>| match got {
                Ok(e) => {
                    assert_eq!(e.id(), next, "an event after a gap came before its lag");
                    next += 1;
                }
                Err(TryRecvError::Lagged(n)) => next += n,
                Err(_) => {}
            };
            for _ in 0..2 {
                check(sub.try_recv());
            }
            next
        });
        let mut publisher = bus.publisher();
        for p in &payloads {
            assert!(publisher.publish(Ev(p.clone())).is_ok());
        }
        let (mut next, mut sub) = receiver.join().unwrap();
        loop {
            match sub.try_recv() {
                Ok(e) => {
                    assert_eq!(e.id(), next, "an event after a gap came before its lag");
                    next += 1;
                }
                Err(TryRecvError::Lagged(n)) => next += n,
                Err(_) => break,
            }
        }
        assert_eq!(next, 3, "received and lagged add up to what was sent");
        drop(publisher);
        drop(sub);
        drop(bus);
    });
}

/// An event whose `Clone` panics on the clone with a chosen number.
#[derive(Debug)]
struct Fragile {
    id: Arc<u64>,
    clones: std::sync::Arc<AtomicUsize>,
    panic_at: usize,
}

const FRAGILE: &str = "Fragile::clone panics";

impl Clone for Fragile {
    fn clone(&self) -> Self {
        // A std atomic: the count is the model's own bookkeeping, not part
        // of the protocol under test.
        let n = self.clones.fetch_add(1, Ordering::Relaxed) + 1;
        if n == self.panic_at {
            panic::panic_any(FRAGILE);
        }
        Self {
            id: self.id.clone(),
            clones: self.clones.clone(),
            panic_at: self.panic_at,
        }
    }
}

impl Event for Fragile {
    type Kind = Kind;

    fn kind(&self) -> Kind {
        Kind::A
    }
}

/// Model 11: on a single-producer bus, a receiver parked in `recv` on the
/// first ring wakes when the publish that reached it panics in `E::clone`
/// for the second ring.
///
/// Depends on: the delivery's unwind guard (`SoloReach` in `deliver.rs`)
/// running the wake-up step (S3) for every ring of a publish cut short.
/// Weakened (no wake-up on unwind, as before), loom reports the receiver
/// asleep with an event in its ring as a deadlock.
#[test]
fn solo_receiver_wakes_when_clone_panics() {
    // Keep the expected panics quiet; report every other one. Expected:
    // the clone's, and loom's own when a wake-up locks a loom mutex while
    // the thread unwinds (loom poisons its inner std mutex then, and the
    // next lock unwraps the poison; `FirstPanic` contains that one, and the
    // real shim's mutex ignores poisoning).
    let previous = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        let expected = info.payload().downcast_ref::<&str>() == Some(&FRAGILE)
            || info
                .payload()
                .downcast_ref::<String>()
                .is_some_and(|m| m.contains("PoisonError"));
        if !expected {
            previous(info);
        }
    }));
    loom::model(|| {
        let (bus, mut publisher) = Bus::<Fragile>::single_producer().unwrap();
        let subscribe = || {
            bus.subscribe_with(
                Filter::pattern(">").unwrap(),
                SubscribeOptions::new().capacity(1),
            )
            .unwrap()
        };
        let mut first = subscribe();
        let _second = subscribe();
        let _third = subscribe();
        let receiver = thread::spawn(move || {
            let got = first.recv().map(|e| *e.id);
            drop(first);
            got
        });
        head_start_for_receiver();
        let event = Fragile {
            id: Arc::new(7),
            clones: Default::default(),
            // Clone 1 goes to the first ring; clone 2, for the second, panics.
            panic_at: 2,
        };
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| publisher.publish(event)));
        assert!(outcome.is_err());
        assert_eq!(receiver.join().unwrap(), Ok(7));
    });
}

/// Model 9b: a drain (`drain_with`) after a publish returned sees it, takes
/// every accepted event once, and keeps each publisher's order, while
/// another publisher claims slots of the same small ring.
///
/// Depends on: `Ring::pop_each_multi` keeping `head` in a local (only the
/// consumer moves `head` of a ring without evictions) and handing a slot it
/// finds unwritten to `try_pop_multi`, which waits out a claim in flight
/// (step 5a). Weakened (the drain stops at the first unwritten slot,
/// answering `Empty` without reading `tail`), loom finds the other
/// publisher's claim in flight at `head` hiding this thread's own event.
///
/// Also the model of the producers' shared `head_seen` (step 3): with its
/// load or its store made Relaxed, or the consumer's `head` store, loom
/// finds a producer writing the slot the drain is reading.
#[test]
fn drain_sees_every_returned_publish() {
    loom::model(|| {
        let bus = bus();
        let mut sub = subscribe(&bus, 2, Overflow::DropNewest);
        let payloads: Vec<_> = (1..=4).map(Arc::new).collect();
        let other = {
            let bus = bus.clone();
            let (a1, a2) = (Ev(payloads[0].clone()), Ev(payloads[1].clone()));
            thread::spawn(move || {
                let mut publisher = bus.publisher();
                let first = publisher.publish(a1).unwrap().accepted;
                let second = publisher.publish(a2).unwrap().accepted;
                [first, second]
            })
        };
        let mut publisher = bus.publisher();
        let mut got = Vec::new();
        let b1 = publisher.publish(Ev(payloads[2].clone())).unwrap().accepted;
        sub.drain_with(|e| got.push(e.id()));
        if b1 == 1 {
            assert!(
                got.contains(&3),
                "own accepted publish not drained: {got:?}"
            );
        }
        let b2 = publisher.publish(Ev(payloads[3].clone())).unwrap().accepted;
        let [a1, a2] = other.join().unwrap();
        sub.drain_with(|e| got.push(e.id()));
        let mut accepted: Vec<u64> = [(1, a1), (2, a2), (3, b1), (4, b2)]
            .into_iter()
            .filter(|&(_, n)| n == 1)
            .map(|(id, _)| id)
            .collect();
        let order = |x: u64, y: u64| {
            let at = |id| got.iter().position(|&g| g == id);
            if let (Some(i), Some(j)) = (at(x), at(y)) {
                assert!(i < j, "{x} published before {y}, drained after: {got:?}");
            }
        };
        order(1, 2);
        order(3, 4);
        got.sort_unstable();
        accepted.sort_unstable();
        assert_eq!(got, accepted, "drained exactly the accepted events");
        drop(publisher);
        drop(sub);
        drop(bus);
        for p in &payloads {
            assert_eq!(Arc::strong_count(p), 1, "every event dropped once");
        }
    });
}
