//! Shared test fixtures: an event type, dispatcher builders, and a timeout
//! that guards every wait (no test sleeps or asserts on durations).
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use evbus_core::{Bus, Event, EventKind};
use evbus_dispatch::{Dispatcher, ManualClock, Signal};

/// Guards waits that should end at once; reaching it means a failure.
pub const TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Order,
    Payment,
    Heartbeat,
    Trivia,
}

impl EventKind for Kind {
    const ALL: &'static [Self] = &[Kind::Order, Kind::Payment, Kind::Heartbeat, Kind::Trivia];
    fn topic(self) -> &'static str {
        match self {
            Kind::Order => "shop.order",
            Kind::Payment => "shop.payment",
            Kind::Heartbeat => "sys.heartbeat",
            Kind::Trivia => "trivia.fact",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ev {
    pub kind: Kind,
    pub src: u32,
    pub n: u64,
}

impl Event for Ev {
    type Kind = Kind;
    fn kind(&self) -> Kind {
        self.kind
    }
}

pub fn ev(kind: Kind, n: u64) -> Ev {
    Ev { kind, src: 0, n }
}

/// A bus, a manual clock and a dispatcher with `workers` workers on them.
pub fn setup(workers: usize) -> (Bus<Ev>, ManualClock, Dispatcher<Ev>) {
    let bus = Bus::new();
    let clock = ManualClock::new();
    let d = Dispatcher::builder(&bus)
        .workers(workers)
        .clock(clock.clone())
        .build()
        .expect("dispatcher starts");
    (bus, clock, d)
}

/// Everything buffered on a signal subscription now.
pub fn signals(sub: &mut evbus_core::Subscription<Signal<Ev>>) -> Vec<Signal<Ev>> {
    sub.try_iter().collect()
}

pub fn idle(d: &Dispatcher<Ev>) {
    assert!(d.wait_idle(TIMEOUT), "dispatcher did not settle");
}
