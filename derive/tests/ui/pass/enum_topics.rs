//! The example from the issue: explicit topics on every variant.
#![deny(warnings, missing_debug_implementations, rust_2018_idioms)]

use evbus::{Bus, Event, EventKind};

#[derive(Debug, Clone, PartialEq, Event)]
enum Order {
    #[event(topic = "orders.placed")]
    Placed { id: u64 },
    #[event(topic = "orders.paid")]
    Paid { id: u64, cents: u64 },
    #[event(topic = "payments.failed")]
    PaymentFailed { id: u64, reason: String },
}

fn main() {
    assert_eq!(
        OrderKind::ALL,
        [OrderKind::Placed, OrderKind::Paid, OrderKind::PaymentFailed]
    );
    let topics: Vec<&str> = OrderKind::ALL.iter().map(|kind| kind.topic()).collect();
    assert_eq!(topics, ["orders.placed", "orders.paid", "payments.failed"]);
    for (i, kind) in OrderKind::ALL.iter().enumerate() {
        assert_eq!(kind.index(), i);
    }
    let failed = Order::PaymentFailed { id: 1, reason: "declined".into() };
    assert_eq!(failed.kind(), OrderKind::PaymentFailed);
    assert_eq!(Order::Paid { id: 1, cents: 5 }.kind(), OrderKind::Paid);

    // The kind enum has the traits a kind table is used with.
    let copy = OrderKind::Paid;
    let set: std::collections::HashSet<OrderKind> = [copy, copy, OrderKind::Placed].into();
    assert_eq!(set.len(), 2);
    assert_eq!(format!("{copy:?}"), "Paid");

    let bus = Bus::<Order>::try_new().expect("the derived table is valid");
    let mut payments = bus.subscribe("payments.>").unwrap();
    let mut paid = bus.subscribe_kinds(&[OrderKind::Paid]).unwrap();
    bus.publish(Order::Placed { id: 1 }).unwrap();
    bus.publish(Order::Paid { id: 1, cents: 5 }).unwrap();
    bus.publish(failed.clone()).unwrap();
    assert_eq!(payments.try_recv(), Ok(failed));
    assert!(payments.try_recv().is_err());
    assert_eq!(paid.try_recv(), Ok(Order::Paid { id: 1, cents: 5 }));
    assert!(paid.try_recv().is_err());
}
