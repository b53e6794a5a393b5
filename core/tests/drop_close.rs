//! Drop-to-close: when the last producer-side handle (every `Bus` clone,
//! every `Publisher`, the `SoloPublisher`) is gone, the bus closes as if
//! `shutdown()` had run. Receivers drain what is buffered, then get
//! `Disconnected`, as with tokio broadcast and crossbeam-channel when the
//! last sender goes.

mod common;

use std::{sync::mpsc, thread};

use common::{Event, Kind, TIMEOUT, ev};
use evbus_core::{Bus, RecvError, RecvTimeoutError, TryRecvError};

#[test]
fn dropping_the_last_bus_handle_closes_after_draining() {
    let bus = Bus::<Event>::new();
    let mut sub = bus.subscribe(">").unwrap();
    bus.publish(ev(Kind::Placed, 1)).unwrap();
    drop(bus);
    assert!(sub.is_closed());
    assert_eq!(sub.try_recv(), Ok(ev(Kind::Placed, 1)));
    assert_eq!(sub.try_recv(), Err(TryRecvError::Disconnected));
    assert_eq!(
        sub.recv_timeout(TIMEOUT),
        Err(RecvTimeoutError::Disconnected)
    );
}

#[test]
fn a_live_clone_keeps_the_bus_open() {
    let bus = Bus::<Event>::new();
    let clone = bus.clone();
    let mut sub = bus.subscribe(">").unwrap();
    drop(bus);
    assert!(!sub.is_closed());
    clone.publish(ev(Kind::Login, 2)).unwrap();
    drop(clone);
    assert_eq!(sub.try_recv(), Ok(ev(Kind::Login, 2)));
    assert_eq!(sub.try_recv(), Err(TryRecvError::Disconnected));
}

#[test]
fn a_live_publisher_keeps_the_bus_open() {
    let bus = Bus::<Event>::new();
    let mut publisher = bus.publisher();
    let mut cloned = publisher.clone();
    let mut sub = bus.subscribe(">").unwrap();
    drop(bus);
    publisher.publish(ev(Kind::Placed, 1)).unwrap();
    drop(publisher);
    assert!(!sub.is_closed());
    cloned.publish(ev(Kind::Placed, 2)).unwrap();
    drop(cloned);
    assert!(sub.is_closed());
    let got: Vec<_> = sub.try_iter().collect();
    assert_eq!(got, [ev(Kind::Placed, 1), ev(Kind::Placed, 2)]);
    assert_eq!(sub.try_recv(), Err(TryRecvError::Disconnected));
}

#[test]
fn dropping_the_solo_publisher_and_the_bus_closes() {
    let (bus, mut publisher) = Bus::<Event>::single_producer().unwrap();
    let mut sub = bus.subscribe(">").unwrap();
    drop(bus);
    publisher.publish(ev(Kind::Cancelled, 3)).unwrap();
    assert!(!sub.is_closed());
    drop(publisher);
    assert_eq!(sub.try_recv(), Ok(ev(Kind::Cancelled, 3)));
    assert_eq!(sub.try_recv(), Err(TryRecvError::Disconnected));
}

#[test]
fn disconnect_wakes_a_parked_receiver() {
    let bus = Bus::<Event>::new();
    let mut sub = bus.subscribe(">").unwrap();
    let (ready_tx, ready_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let receiver = thread::spawn(move || {
        ready_tx.send(()).unwrap();
        // Parks (the bus is empty), and must wake when the bus goes.
        done_tx.send(sub.recv()).unwrap();
    });
    ready_rx.recv_timeout(TIMEOUT).unwrap();
    drop(bus);
    assert_eq!(
        done_rx.recv_timeout(TIMEOUT),
        Ok(Err(RecvError::Disconnected))
    );
    receiver.join().unwrap();
}

#[test]
fn iter_ends_when_the_bus_goes() {
    let bus = Bus::<Event>::new();
    let mut sub = bus.subscribe("orders.*").unwrap();
    let consumer = thread::spawn(move || sub.iter().map(|e| e.seq).collect::<Vec<_>>());
    {
        let mut publisher = bus.publisher();
        for seq in 0..10 {
            publisher.publish(ev(Kind::Placed, seq)).unwrap();
        }
    }
    drop(bus);
    // If the bus never closed, `join` would hang; the channel turns that
    // into a failure.
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || tx.send(consumer.join().unwrap()));
    assert_eq!(
        rx.recv_timeout(TIMEOUT).unwrap(),
        (0..10).collect::<Vec<_>>()
    );
}

#[test]
fn an_explicit_shutdown_then_drop_closes_once() {
    let bus = Bus::<Event>::new();
    let sub = bus.subscribe(">").unwrap();
    let report = bus.shutdown();
    assert_eq!(report.closed, 1);
    drop(bus);
    assert!(sub.is_closed());
    // The unsubscribe that the drop of `sub` makes finds it closed already.
    assert!(!sub.unsubscribe());
}
