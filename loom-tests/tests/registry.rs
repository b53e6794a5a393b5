//! Model 5: concurrent registry updates do not lose each other.
#![cfg(evbus_loom)]

use evbus_core::Overflow;
use evbus_loom_tests::{Ev, assert_sole_owner, bus, subscribe};
use loom::{sync::Arc, thread};

/// Model 5: two threads subscribe at once.
///
/// Property: both subscriptions end up registered: `subscriber_count() == 2`,
/// the snapshot lists both, and a later publish is matched and accepted by
/// both and received by each. No lost update in the registry.
///
/// Depends on: `SnapshotCell::rcu` (under loom, the `Mutex<Arc<_>>`
/// stand-in in `sync.rs`) re-running `with_sub` when another update replaced
/// the snapshot between its load and its swap: arc-swap's compare-and-swap
/// loop in production.
#[test]
fn concurrent_subscribes() {
    loom::model(|| {
        let bus = bus();
        let subscribers: Vec<_> = (0..2)
            .map(|_| {
                let bus = bus.clone();
                thread::spawn(move || subscribe(&bus, 1, Overflow::DropNewest))
            })
            .collect();
        let mut subs: Vec<_> = subscribers.into_iter().map(|t| t.join().unwrap()).collect();

        assert_eq!(bus.subscriber_count(), 2, "a subscribe was lost");
        assert_eq!(bus.snapshot().subscriptions.len(), 2);
        assert_ne!(subs[0].id(), subs[1].id());
        let payload = Arc::new(7);
        let report = bus.publish(Ev(payload.clone())).expect("bus is open");
        assert_eq!((report.matched, report.accepted), (2, 2));
        for sub in &mut subs {
            assert_eq!(sub.try_recv().map(|e| e.id()), Ok(7));
        }
        drop(subs);
        assert_eq!(bus.subscriber_count(), 0);
        drop(bus);
        assert_sole_owner(&payload);
    });
}
