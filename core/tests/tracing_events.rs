//! Feature `tracing`: which events the core emits, and that a lossy
//! subscriber yields one `dropping` event per episode, not one per loss.
#![cfg(feature = "tracing")]

use std::{
    fmt,
    sync::{Arc, Mutex},
};

use evbus_core::{Bus, Filter, Overflow, SubscribeOptions, TryRecvError};
use tracing::{
    Level, Metadata, Subscriber,
    field::{Field, Visit},
    span,
};

#[path = "common/tick.rs"]
mod tick;

use tick::Tick;

/// One captured event: level, message and the other fields as text.
#[derive(Debug, Clone)]
struct Captured {
    level: Level,
    message: String,
    fields: Vec<(String, String)>,
}

impl Captured {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A minimal collector: records events with target `evbus`.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Captured>>>);

impl Collector {
    fn take(&self) -> Vec<Captured> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

struct Fields<'a>(&'a mut Captured);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.0.message = text;
        } else {
            self.0.fields.push((field.name().to_owned(), text));
        }
    }
}

impl Subscriber for Collector {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target() == "evbus"
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut captured = Captured {
            level: *event.metadata().level(),
            message: String::new(),
            fields: Vec::new(),
        };
        event.record(&mut Fields(&mut captured));
        self.0.lock().unwrap().push(captured);
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

fn messages(events: &[Captured]) -> Vec<&str> {
    events.iter().map(|e| e.message.as_str()).collect()
}

#[test]
fn subscribe_unsubscribe_and_shutdown() {
    let collector = Collector::default();
    tracing::subscriber::with_default(collector.clone(), || {
        let bus = Bus::<Tick>::new();
        let sub = bus
            .subscribe_with(
                Filter::pattern("t.>").unwrap(),
                SubscribeOptions::new().name("audit").capacity(8),
            )
            .unwrap();
        let events = collector.take();
        assert_eq!(messages(&events), ["subscribed"]);
        assert_eq!(events[0].level, Level::DEBUG);
        assert_eq!(events[0].field("name"), Some("\"audit\""));
        assert_eq!(events[0].field("capacity"), Some("8"));

        bus.publish(Tick(1)).unwrap();
        assert!(sub.unsubscribe());
        let events = collector.take();
        assert_eq!(messages(&events), ["unsubscribed"]);
        assert_eq!(events[0].field("delivered"), Some("1"));
        // Dropping the handle after unsubscribe emits nothing more.
        drop(sub);
        assert!(collector.take().is_empty());

        let _other = bus.subscribe("t.tick").unwrap();
        collector.take();
        bus.shutdown();
        let events = collector.take();
        assert_eq!(messages(&events), ["shut down"]);
        assert_eq!(events[0].level, Level::INFO);
        assert_eq!(events[0].field("closed"), Some("1"));
        // A second shutdown did nothing and says nothing.
        bus.shutdown();
        assert!(collector.take().is_empty());
    });
}

#[test]
fn one_dropping_event_per_episode() {
    for overflow in [Overflow::DropNewest, Overflow::DropOldest] {
        let collector = Collector::default();
        tracing::subscriber::with_default(collector.clone(), || {
            let bus = Bus::<Tick>::new();
            let mut sub = bus
                .subscribe_with(
                    Filter::pattern("t.tick").unwrap(),
                    SubscribeOptions::new().capacity(4).overflow(overflow),
                )
                .unwrap();
            collector.take();
            // Fill the ring, then lose 10 events: one warning.
            for i in 0..14 {
                bus.publish(Tick(i)).unwrap();
            }
            let events = collector.take();
            assert_eq!(
                messages(&events),
                ["dropping: ring full, events are being lost"]
            );
            assert_eq!(events[0].level, Level::WARN);

            // Draining to empty ends the episode and reports its losses.
            loop {
                match sub.try_recv() {
                    Ok(_) | Err(TryRecvError::Lagged(_)) => {}
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => unreachable!("open"),
                }
            }
            let events = collector.take();
            assert_eq!(
                messages(&events),
                ["recovered: ring drained after losing events"]
            );
            assert_eq!(events[0].field("lost"), Some("10"), "{overflow:?}");
            // Finding it empty again says nothing.
            assert_eq!(sub.try_recv(), Err(TryRecvError::Empty));
            assert!(collector.take().is_empty());

            // A clean period, then a new episode: one more warning.
            for i in 0..6 {
                bus.publish(Tick(i)).unwrap();
            }
            assert_eq!(collector.take().len(), 1);
        });
    }
}

#[test]
fn single_producer_rings_report_episodes_too() {
    let collector = Collector::default();
    tracing::subscriber::with_default(collector.clone(), || {
        let (bus, mut publisher) = Bus::<Tick>::single_producer().unwrap();
        let mut sub = bus
            .subscribe_with(
                Filter::pattern("t.tick").unwrap(),
                SubscribeOptions::new().capacity(4),
            )
            .unwrap();
        collector.take();
        for i in 0..10 {
            publisher.publish(Tick(i)).unwrap();
        }
        assert_eq!(
            messages(&collector.take()),
            ["dropping: ring full, events are being lost"]
        );
        while sub.try_recv().is_ok() {}
        let events = collector.take();
        assert_eq!(
            messages(&events),
            ["recovered: ring drained after losing events"]
        );
        assert_eq!(events[0].field("lost"), Some("6"));
    });
}

/// A `Publisher` that remembers a route full counts one drop for all its
/// rings at once (`ring/route_drops.rs`); each ring still reports its own
/// episode, with its own losses.
#[test]
fn a_remembered_full_route_reports_each_ring_episode() {
    let collector = Collector::default();
    tracing::subscriber::with_default(collector.clone(), || {
        let bus = Bus::<Tick>::new();
        let mut subs: Vec<_> = (0..2)
            .map(|_| {
                bus.subscribe_with(
                    Filter::pattern("t.tick").unwrap(),
                    SubscribeOptions::new().capacity(4),
                )
                .unwrap()
            })
            .collect();
        let mut publisher = bus.publisher();
        collector.take();
        // Fill, then lose 10 in each ring: the third refusal on is counted
        // on the remembered route.
        for i in 0..14 {
            publisher.publish(Tick(i)).unwrap();
        }
        assert_eq!(
            messages(&collector.take()),
            ["dropping: ring full, events are being lost"; 2]
        );
        for sub in &mut subs {
            while sub.try_recv().is_ok() {}
            let events = collector.take();
            assert_eq!(
                messages(&events),
                ["recovered: ring drained after losing events"]
            );
            assert_eq!(events[0].field("lost"), Some("10"));
            assert_eq!(sub.stats().dropped, 10);
        }
    });
}
