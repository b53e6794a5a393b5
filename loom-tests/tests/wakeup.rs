//! Model 8: a receiver parked in `recv` is always woken: by the publish that
//! fills its ring, or by the shutdown that closes it.
//!
//! Loom reports a lost wake-up as a deadlock: every thread is blocked (the
//! receiver on the condvar, the main thread joining it).
#![cfg(evbus_loom)]

use evbus_core::{Overflow, RecvError, Subscription};
use evbus_loom_tests::{
    Ev, bus_with_sub, head_start_for_receiver, recv_until_closed, release, spawn_receiver,
};
use std::task::{Context, Poll, Waker};

use loom::{
    sync::{Arc, Notify},
    thread,
};

/// Model 8a: a receiver in `recv` (spins, then parks) and one publish.
///
/// Property: the model terminates (no lost wake-up) and the receiver gets
/// the event.
///
/// Depends on: step 4: the consumer sets the park bit with a CAS on `tail`
/// whose expected value says "empty", the producer's claim CAS expects the
/// exact `tail` it read (so it fails if the bit appeared) and clears the bit,
/// and the producer that cleared it takes the waiter mutex to notify; plus
/// the stamp Release/Acquire pair (step 2) for the payload.
#[test]
fn publish_wakes_parked_receiver() {
    loom::model(|| {
        let (bus, sub) = bus_with_sub(1, Overflow::DropNewest);
        let payload = Arc::new(1);

        let receiver = spawn_receiver(sub, recv_id);
        head_start_for_receiver();
        let report = bus.publish(Ev(payload.clone())).expect("bus is open");
        let (got, sub) = receiver.join().unwrap();

        assert_eq!(report.accepted, 1);
        assert_eq!(got, Ok(1));
        release(bus, sub, &[payload]);
    });
}

/// Model 8b: a receiver in `recv` and a `Bus::shutdown`.
///
/// Property: the model terminates and `recv` returns `Disconnected`.
///
/// Depends on: `close`'s `fetch_or` on `tail` reading the park bit (an RMW
/// on the same location as the consumer's park CAS: either the CAS fails on
/// the mark bit, or `close` sees the park bit and wakes under the waiter
/// mutex).
#[test]
fn shutdown_wakes_parked_receiver() {
    loom::model(|| {
        let (bus, sub) = bus_with_sub(1, Overflow::DropNewest);

        let receiver = spawn_receiver(sub, recv_id);
        head_start_for_receiver();
        let shutdown = bus.shutdown();
        let (got, sub) = receiver.join().unwrap();

        assert_eq!(shutdown.closed, 1);
        assert_eq!(got, Err(RecvError::Disconnected));
        drop(sub);
    });
}

/// Model 8c: a receiver in a `recv` loop, a publisher, and a shutdown after
/// the publish, on three threads.
///
/// Property: the model terminates; the receiver gets the event, then
/// `Disconnected`.
///
/// Depends on: as 8a and 8b together; in particular, the unpark after a wake
/// (`unpark_bit`) must not clear a park bit set by a later park.
#[test]
fn publish_then_shutdown_wakes_receiver() {
    loom::model(|| {
        let (bus, sub) = bus_with_sub(1, Overflow::DropNewest);
        let payload = Arc::new(1);

        let receiver = spawn_receiver(sub, recv_until_closed);
        let publisher = thread::spawn({
            let bus = bus.clone();
            let event = Ev(payload.clone());
            move || {
                head_start_for_receiver();
                let report = bus.publish(event).expect("bus is open");
                bus.shutdown();
                report
            }
        });
        let report = publisher.join().unwrap();
        let (got, sub) = receiver.join().unwrap();

        assert_eq!(report.accepted, 1);
        assert_eq!(got, [1]);
        release(bus, sub, &[payload]);
    });
}

/// Model 8d: as 8c, on a `DropOldest` ring of capacity 1 that the producer
/// overflows (its second publish takes `force_push`).
///
/// Property: the model terminates: the receiver, parked or not, gets the
/// last event (possibly after a `Lagged`), then `Disconnected`.
///
/// Depends on: step 4 for every writer of `tail`, including `force_push`'s
/// tail CAS loop, which keeps the mark bit but clears the park bit without
/// waking the consumer: between `force_push`'s head CAS and its tail CAS,
/// `pos(tail) == head`, so `Ring::wait` can see an empty ring and park, and
/// `force_push` must then wake it.
///
/// Loom does NOT reach that interleaving through the public API (this model
/// passes even with `LOOM_MAX_PREEMPTIONS=5`): `recv` snoozes with
/// `yield_now` before parking, and loom's DPOR never backtracks to a thread
/// that is in its yield state, so the receiver is never preempted between
/// its last empty `try_recv` and the loads in `Ring::wait`. A ring-level
/// model that calls `try_pop`/`wait` directly lives in `core/src/ring/mod.rs`
/// (`loom_tests::force_push_wakes_parked_consumer`); it deadlocked before
/// `force_push` learned to wake the consumer. Kept as the public-API
/// statement of the property.
#[test]
fn drop_oldest_overflow_wakes_receiver() {
    loom::model(|| {
        let (bus, sub) = bus_with_sub(1, Overflow::DropOldest);
        let payloads = [Arc::new(1), Arc::new(2)];

        let receiver = spawn_receiver(sub, |sub| {
            let mut got = Vec::new();
            loop {
                match sub.recv() {
                    Ok(e) => got.push(e.id()),
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Disconnected) => break,
                }
            }
            got
        });
        let publisher = thread::spawn({
            let bus = bus.clone();
            let events = payloads.clone().map(Ev);
            move || {
                head_start_for_receiver();
                for e in events {
                    assert_eq!(bus.publish(e).expect("bus is open").accepted, 1);
                }
                bus.shutdown();
            }
        });
        publisher.join().unwrap();
        let (got, sub) = receiver.join().unwrap();

        assert_eq!(got.last(), Some(&2), "got {got:?}");
        release(bus, sub, &payloads);
    });
}

/// Model 8e: an asynchronous receiver (`poll_recv` with a task waker) racing
/// a publish and then a shutdown.
///
/// Property: the model terminates (no lost wake-up: the receiver waits on a
/// loom `Notify` that only its waker signals) and the receiver gets the
/// event, then `Disconnected`.
///
/// Depends on: `register` storing the waker under the waiter mutex *before*
/// its park-bit CAS, and the producer or closer that clears or sees the bit
/// taking the waker under the same mutex (`wake`); the CAS failing when a
/// claim or close changed `tail` since the emptiness check (step 4).
#[test]
fn publish_then_shutdown_wakes_async_receiver() {
    loom::model(|| {
        let (bus, sub) = bus_with_sub(1, Overflow::DropNewest);
        let payload = Arc::new(1);

        let receiver = spawn_receiver(sub, |sub| {
            let notify = Arc::new(Notify::new());
            let waker = Waker::from(std::sync::Arc::new(NotifyWaker(Arc::clone(&notify))));
            let mut cx = Context::from_waker(&waker);
            let mut got = Vec::new();
            loop {
                match sub.poll_recv(&mut cx) {
                    Poll::Ready(Ok(e)) => got.push(e.id()),
                    Poll::Ready(Err(RecvError::Disconnected)) => return got,
                    Poll::Ready(Err(RecvError::Lagged(n))) => panic!("lagged {n}"),
                    Poll::Pending => notify.wait(),
                }
            }
        });
        let publisher = thread::spawn({
            let bus = bus.clone();
            let event = Ev(payload.clone());
            move || {
                assert_eq!(bus.publish(event).expect("bus is open").accepted, 1);
                bus.shutdown();
            }
        });
        publisher.join().unwrap();
        let (got, sub) = receiver.join().unwrap();

        assert_eq!(got, vec![1]);
        release(bus, sub, &[payload]);
    });
}

/// A task waker that signals a loom `Notify`.
struct NotifyWaker(Arc<Notify>);

impl std::task::Wake for NotifyWaker {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.notify();
    }
}

/// One blocking `recv`: the id received, or why none was.
fn recv_id(sub: &mut Subscription<Ev>) -> Result<u64, RecvError> {
    sub.recv().map(|e| e.id())
}
