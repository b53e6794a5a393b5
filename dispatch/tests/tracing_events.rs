//! Feature `tracing`: the dispatcher emits an event on a handler panic, when
//! retries run out, when a stall watchdog fires, and on shutdown. Workers
//! run on their own threads, so the capturing subscriber is global (this
//! file holds one test for that reason).
#![cfg(feature = "tracing")]

mod common;

use std::{
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{Ev, Kind, TIMEOUT, ev, setup};
use evbus_core::Filter;
use evbus_dispatch::{HandlerOptions, RetryPolicy};
use tracing::{
    Metadata, Subscriber,
    field::{Field, Visit},
    span,
};

/// Records the `message` of every event.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut m = Message(String::new());
        event.record(&mut m);
        self.0.lock().unwrap().push(m.0);
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

#[test]
fn dispatcher_emits_panic_give_up_stall_and_shutdown_events() {
    let capture = Capture::default();
    tracing::subscriber::set_global_default(capture.clone()).unwrap();
    let count = |needle: &str| {
        capture
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.contains(needle))
            .count()
    };

    let (bus, clock, d) = setup(1);
    d.register(
        HandlerOptions::pattern("crashy", "shop.order")
            .unwrap()
            .retry(RetryPolicy::never()),
        |_: &Ev| panic!("boom"),
    )
    .unwrap();
    d.watch_stall(
        "beat",
        Filter::kinds(&[Kind::Heartbeat]).unwrap(),
        Duration::from_secs(1),
    )
    .unwrap();
    bus.publish(ev(Kind::Order, 1)).unwrap();
    assert!(d.wait_idle(TIMEOUT));
    assert_eq!(count("handler panicked"), 1);
    assert_eq!(count("dead-lettered"), 1);
    clock.advance(Duration::from_secs(1));
    assert_eq!(count("stall watchdog fired"), 1);
    d.shutdown(TIMEOUT);
    assert_eq!(count("dispatcher shut down"), 1);
}
