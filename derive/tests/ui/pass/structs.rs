//! A struct is one kind, named like the struct, with its topic or with the
//! prefix and its own name.
#![deny(warnings)]

use evbus::{Bus, Event, EventKind};

#[derive(Debug, Clone, PartialEq, Event)]
#[event(topic = "system.heartbeat")]
struct Heartbeat {
    seq: u64,
}

#[derive(Debug, Clone, PartialEq, Event)]
#[event(prefix = "budget")]
struct BudgetExceeded(u64);

#[derive(Debug, Clone, Event)]
#[event(prefix = "session")]
struct Ping;

fn main() {
    assert_eq!(HeartbeatKind::ALL, [HeartbeatKind::Heartbeat]);
    assert_eq!(HeartbeatKind::Heartbeat.topic(), "system.heartbeat");
    assert_eq!(HeartbeatKind::Heartbeat.index(), 0);
    assert_eq!(Heartbeat { seq: 1 }.kind(), HeartbeatKind::Heartbeat);
    assert_eq!(BudgetExceededKind::BudgetExceeded.topic(), "budget.budget_exceeded");
    assert_eq!(BudgetExceeded(9).kind(), BudgetExceededKind::BudgetExceeded);
    assert_eq!(Ping.kind().topic(), "session.ping");

    let bus = Bus::<Heartbeat>::new();
    let mut all = bus.subscribe(">").unwrap();
    bus.publish(Heartbeat { seq: 7 }).unwrap();
    assert_eq!(all.try_recv(), Ok(Heartbeat { seq: 7 }));
}
