//! A handler may call back into the bus and the dispatcher from inside its
//! callback: publish, subscribe, register, unregister (itself included),
//! disable itself, shut down. Each case is guarded by a timeout on a
//! channel; a deadlock fails the test instead of hanging it.

mod common;

use std::sync::{Arc, Mutex, mpsc};

use common::{Ev, Kind, TIMEOUT, ev, idle, setup};
use evbus_dispatch::HandlerOptions;

fn opts(name: &str, pattern: &str) -> HandlerOptions {
    HandlerOptions::pattern(name, pattern).unwrap()
}

#[test]
fn publish_from_a_handler() {
    for workers in [1, 2] {
        let (bus, _clock, d) = setup(workers);
        let (tx, rx) = mpsc::channel();
        let b = bus.clone();
        // Re-publishes orders as payments, its own topic included.
        d.register(opts("relay", "shop.*"), move |e: &Ev| {
            if e.kind == Kind::Order {
                b.publish(ev(Kind::Payment, e.n)).unwrap();
            }
            tx.send((e.kind, e.n)).unwrap();
            Ok(())
        })
        .unwrap();
        bus.publish(ev(Kind::Order, 1)).unwrap();
        assert_eq!(rx.recv_timeout(TIMEOUT), Ok((Kind::Order, 1)));
        assert_eq!(rx.recv_timeout(TIMEOUT), Ok((Kind::Payment, 1)));
        assert!(d.shutdown(TIMEOUT).drained);
    }
}

#[test]
fn subscribe_and_register_from_a_handler() {
    let (bus, _clock, d) = setup(1);
    let (tx, rx) = mpsc::channel();
    let subs = Arc::new(Mutex::new(Vec::new()));
    let (b, d2, s2) = (bus.clone(), d.clone(), Arc::clone(&subs));
    d.register(opts("spawner", "shop.order"), move |e: &Ev| {
        s2.lock().unwrap().push(b.subscribe("trivia.>").unwrap());
        let tx = tx.clone();
        d2.register(
            opts(&format!("child-{}", e.n), "trivia.>"),
            move |t: &Ev| {
                tx.send(t.n).unwrap();
                Ok(())
            },
        )
        .unwrap();
        Ok(())
    })
    .unwrap();
    bus.publish(ev(Kind::Order, 1)).unwrap();
    idle(&d);
    assert!(d.handler_names().contains(&"child-1".to_owned()));
    bus.publish(ev(Kind::Trivia, 42)).unwrap();
    assert_eq!(rx.recv_timeout(TIMEOUT), Ok(42));
    assert_eq!(subs.lock().unwrap()[0].try_recv().map(|e| e.n), Ok(42));
    assert!(d.shutdown(TIMEOUT).drained);
}

#[test]
fn unregister_itself_and_another_from_a_handler() {
    let (bus, _clock, d) = setup(2);
    let (tx, rx) = mpsc::channel();
    let d2 = d.clone();
    let t2 = tx.clone();
    d.register(opts("victim", ">"), move |e: &Ev| {
        t2.send(("victim", e.n)).unwrap();
        Ok(())
    })
    .unwrap();
    d.register(opts("once", ">"), move |e: &Ev| {
        assert!(d2.unregister("once"), "unregisters itself");
        assert!(d2.unregister("victim"));
        tx.send(("once", e.n)).unwrap();
        Ok(())
    })
    .unwrap();
    bus.publish(ev(Kind::Order, 1)).unwrap();
    let mut got = vec![rx.recv_timeout(TIMEOUT).unwrap()];
    idle(&d);
    got.extend(rx.try_iter());
    assert!(got.contains(&("once", 1)), "{got:?}");
    // Nothing runs after the unregister.
    bus.publish(ev(Kind::Order, 2)).unwrap();
    idle(&d);
    assert!(rx.try_recv().is_err(), "a call after unregister");
    assert!(d.handler_names().is_empty());
    assert_eq!(
        bus.subscriber_count(),
        0,
        "both rings were closed and removed"
    );
    assert!(d.shutdown(TIMEOUT).drained);
}

#[test]
fn disable_itself_from_a_handler() {
    let (bus, _clock, d) = setup(1);
    let (tx, rx) = mpsc::channel();
    let d2 = d.clone();
    d.register(opts("one-shot", ">"), move |e: &Ev| {
        assert!(d2.disable("one-shot"));
        tx.send(e.n).unwrap();
        Ok(())
    })
    .unwrap();
    for n in 0..3 {
        bus.publish(ev(Kind::Order, n)).unwrap();
    }
    assert_eq!(rx.recv_timeout(TIMEOUT), Ok(0));
    idle(&d);
    assert!(rx.try_recv().is_err());
    let s = d.stats("one-shot").unwrap();
    assert_eq!((s.handled, s.skipped, s.enabled), (1, 2, false));
    assert!(d.shutdown(TIMEOUT).drained);
}

#[test]
fn shutdown_from_a_handler() {
    for workers in [1, 2] {
        let (bus, _clock, d) = setup(workers);
        let (tx, rx) = mpsc::channel();
        let d2 = d.clone();
        d.register(opts("stopper", "shop.order"), move |_: &Ev| {
            tx.send(d2.shutdown(TIMEOUT)).unwrap();
            Ok(())
        })
        .unwrap();
        bus.publish(ev(Kind::Order, 1)).unwrap();
        let report = rx
            .recv_timeout(TIMEOUT)
            .expect("shutdown returned inside the handler");
        assert!(report.drained, "{report:?}");
        assert!(report.wedged.is_empty());
        assert_eq!(report.workers_joined, workers - 1);
        assert_eq!(report.workers_detached, 1, "the caller's own worker");
        assert!(d.is_shut_down());
        assert!(d.shutdown(TIMEOUT).already_shut_down);
    }
}
