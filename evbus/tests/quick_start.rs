//! The README's quick start, verbatim between the markers: ten lines, no
//! hidden ones. It runs here as the body of a test, as it runs in the
//! README's doctest as the body of `main`. If it changes here, change the
//! README, and the other way round.

#[test]
#[rustfmt::skip] // Verbatim: the README's lines, as a reader sees them.
fn quick_start() {
// README quick start: begin
use evbus::{Bus, Event};
#[derive(Debug, Clone, PartialEq, Event)]
#[event(prefix = "orders")] // topics orders.placed and orders.shipped
enum Order { Placed { id: u64 }, Shipped { id: u64 } }

let bus = Bus::<Order>::new();
let mut shipped = bus.subscribe("orders.shipped").unwrap();
bus.publish(Order::Placed { id: 7 }).unwrap();
bus.publish(Order::Shipped { id: 7 }).unwrap();
assert_eq!(shipped.try_recv(), Ok(Order::Shipped { id: 7 }));
// README quick start: end
}
