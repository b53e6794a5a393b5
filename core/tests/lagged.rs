//! `SubscriptionStats::lagged`: the overwritten part of `dropped`.

use evbus_core::{Bus, Filter, Overflow, SubscribeOptions, TryRecvError};

#[path = "common/tick.rs"]
mod tick;

use tick::Tick;

fn sub(bus: &Bus<Tick>, overflow: Overflow) -> evbus_core::Subscription<Tick> {
    bus.subscribe_with(
        Filter::pattern("t.>").unwrap(),
        SubscribeOptions::new().capacity(4).overflow(overflow),
    )
    .unwrap()
}

#[test]
fn drop_oldest_counts_lagged() {
    let bus = Bus::<Tick>::new();
    let mut s = sub(&bus, Overflow::DropOldest);
    for i in 0..10 {
        bus.publish(Tick(i)).unwrap();
    }
    let st = s.stats();
    assert_eq!((st.dropped, st.lagged), (6, 6));
    assert_eq!(s.try_recv(), Err(TryRecvError::Lagged(6)));
    assert_eq!(s.try_recv(), Ok(Tick(6)));
    // Totals in the bus snapshot agree.
    let snap = bus.snapshot();
    assert_eq!(snap.subscriptions[0].lagged, 6);
}

#[test]
fn drop_newest_never_lags() {
    let bus = Bus::<Tick>::new();
    let s = sub(&bus, Overflow::DropNewest);
    for i in 0..10 {
        bus.publish(Tick(i)).unwrap();
    }
    let st = s.stats();
    assert_eq!((st.dropped, st.lagged), (6, 0));
}
