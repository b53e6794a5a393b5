//! Dropping the last `Dispatcher` handle without `shutdown()` shuts the
//! dispatcher down, as dropping a tokio `Runtime` does: handler rings and
//! the signal bus close, handlers' state is dropped, and the worker
//! threads exit. Observed through channels (a worker thread's
//! thread-local destructor, a handler's captured state), never by timing.

mod common;

use std::{cell::RefCell, sync::mpsc};

use common::{Kind, TIMEOUT, ev, setup};
use evbus_core::RecvTimeoutError;
use evbus_dispatch::HandlerOptions;

/// Sends on its channel when dropped.
struct Notify(mpsc::Sender<&'static str>, &'static str);

impl Drop for Notify {
    fn drop(&mut self) {
        let _ = self.0.send(self.1);
    }
}

thread_local! {
    /// Set on the worker thread by the handler: its destructor runs when
    /// that thread exits.
    static ON_EXIT: RefCell<Option<Notify>> = const { RefCell::new(None) };
}

#[test]
fn dropping_the_dispatcher_without_shutdown_ends_its_workers() {
    let (bus, _clock, d) = setup(1);
    let mut signals = d.signals().subscribe(">").unwrap();
    // A handle of the signal bus held elsewhere does not keep it open.
    let signal_bus = d.signals().clone();
    let (tx, rx) = mpsc::channel();
    let state = Notify(tx.clone(), "handler state dropped");
    d.register(HandlerOptions::pattern("h", ">").unwrap(), move |_| {
        let _keep = &state;
        ON_EXIT.with(|slot| {
            slot.borrow_mut()
                .get_or_insert_with(|| Notify(tx.clone(), "worker thread exited"));
        });
        Ok(())
    })
    .unwrap();
    bus.publish(ev(Kind::Order, 1)).unwrap();
    common::idle(&d);
    assert_eq!(bus.subscriber_count(), 1);
    drop(d);
    assert_dispatcher_ended(&rx);
    // The handler's ring is gone from the bus, which stays open.
    assert_eq!(bus.subscriber_count(), 0);
    assert!(!bus.is_shut_down());
    // The signal bus closed: its subscribers see `Disconnected`, not a
    // timeout.
    assert!(matches!(
        signals.recv_timeout(TIMEOUT),
        Err(RecvTimeoutError::Disconnected)
    ));
    assert!(signal_bus.is_shut_down());
}

#[test]
fn a_handler_holding_a_weak_handle_does_not_keep_the_dispatcher_alive() {
    let (bus, _clock, d) = setup(1);
    let (tx, rx) = mpsc::channel();
    let weak = d.downgrade();
    let on_drop = Notify(tx.clone(), "handler state dropped");
    d.register(HandlerOptions::pattern("h", ">").unwrap(), move |_| {
        let _keep = &on_drop;
        // A handler that needs its dispatcher upgrades for the call.
        let alive = weak.upgrade().is_some_and(|d| !d.is_shut_down());
        ON_EXIT.with(|slot| {
            slot.borrow_mut()
                .get_or_insert_with(|| Notify(tx.clone(), "worker thread exited"));
        });
        tx.send(if alive { "upgraded" } else { "gone" })?;
        Ok(())
    })
    .unwrap();
    bus.publish(ev(Kind::Order, 1)).unwrap();
    assert_eq!(rx.recv_timeout(TIMEOUT), Ok("upgraded"));
    common::idle(&d);
    let weak = d.downgrade();
    drop(d);
    assert_dispatcher_ended(&rx);
    assert!(weak.upgrade().is_none());
    assert_eq!(bus.subscriber_count(), 0);
}

/// Waits for the two signs that a dispatcher ended: its handler state was
/// dropped and its worker thread exited (in either order).
#[track_caller]
fn assert_dispatcher_ended(rx: &std::sync::mpsc::Receiver<&'static str>) {
    let mut events: Vec<_> = (0..2)
        .map(|_| {
            rx.recv_timeout(TIMEOUT)
                .expect("the dispatcher did not end")
        })
        .collect();
    events.sort_unstable();
    assert_eq!(events, ["handler state dropped", "worker thread exited"]);
}
