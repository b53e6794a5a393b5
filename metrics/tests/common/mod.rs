//! Shared test fixtures: an event type and a bus with a few subscriptions.
#![allow(dead_code, unreachable_pub)]

use evbus_core::{Bus, Event, EventKind, Filter, Overflow, SubscribeOptions, Subscription};
#[cfg(feature = "dispatch")]
use evbus_dispatch::{HandlerStats, Priority};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Placed,
    Shipped,
}

impl EventKind for Kind {
    const ALL: &'static [Self] = &[Kind::Placed, Kind::Shipped];
    fn topic(self) -> &'static str {
        match self {
            Kind::Placed => "orders.placed",
            Kind::Shipped => "orders.shipped",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Order {
    Placed(u64),
    Shipped(u64),
}

impl Event for Order {
    type Kind = Kind;
    fn kind(&self) -> Kind {
        match self {
            Order::Placed(_) => Kind::Placed,
            Order::Shipped(_) => Kind::Shipped,
        }
    }
}

/// A name that needs every escape of the text format.
pub const NASTY: &str = "audit \"eu\"\\west\nline2";

/// A bus with three subscriptions in known states, after 10 placed and 5
/// shipped orders:
/// - `all` (`orders.>`, capacity 64): received 4 of 15;
/// - `NASTY` (`orders.placed`, DropOldest, capacity 4): 6 lagged;
/// - unnamed (`orders.shipped`, DropNewest, capacity 2): 3 dropped.
pub fn busy_bus() -> (Bus<Order>, Vec<Subscription<Order>>) {
    let bus = Bus::<Order>::new();
    let mut all = bus
        .subscribe_with(
            Filter::pattern("orders.>").unwrap(),
            SubscribeOptions::new().name("all").capacity(64),
        )
        .unwrap();
    let lagging = bus
        .subscribe_with(
            Filter::pattern("orders.placed").unwrap(),
            SubscribeOptions::new()
                .name(NASTY)
                .capacity(4)
                .overflow(Overflow::DropOldest),
        )
        .unwrap();
    let small = bus
        .subscribe_with(
            Filter::pattern("orders.shipped").unwrap(),
            SubscribeOptions::new().capacity(2),
        )
        .unwrap();
    let mut publisher = bus.publisher();
    for i in 0..10 {
        publisher.publish(Order::Placed(i)).unwrap();
    }
    for i in 0..5 {
        publisher.publish(Order::Shipped(i)).unwrap();
    }
    for _ in 0..4 {
        all.try_recv().unwrap();
    }
    (bus, vec![all, lagging, small])
}

/// Handler stats as a dispatcher would report them.
#[cfg(feature = "dispatch")]
pub fn handler_stats() -> Vec<HandlerStats> {
    let mut mailer = HandlerStats::default();
    mailer.name = "mailer".into();
    mailer.priority = Priority::High;
    mailer.filter = vec!["orders.shipped".into()];
    mailer.enabled = true;
    mailer.received = 7;
    mailer.handled = 5;
    mailer.errors = 2;
    mailer.panics = 1;
    mailer.retries = 3;
    mailer.dead_lettered = 1;
    mailer.delivered = 9;
    mailer.dropped = 1;
    mailer.queued = 2;
    mailer.capacity = 128;
    let mut billing = HandlerStats::default();
    billing.name = "bill\"ing".into();
    billing.priority = Priority::Low;
    billing.filter = vec!["orders.>".into()];
    billing.skipped = 4;
    billing.received = 4;
    billing.capacity = 16;
    vec![mailer, billing]
}
