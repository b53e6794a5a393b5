//! Tests of a bus whose last producer-side handle goes
//! (`Shared::close_abandoned`): its rings are closed from the last
//! handle's cached registry, racing the subscriptions that leave. Apart
//! from `publisher.rs` and `subscription.rs`, whose types they drive
//! through a `Bus`, so that no module below `bus.rs` imports it.

/// Models of a subscription leaving a bus whose last producer-side handle
/// is going at the same moment (`Shared::close_abandoned`). Run with
/// `RUSTFLAGS="--cfg evbus_loom" cargo test -p evbus-core --release --lib loom_tests`.
#[cfg(all(test, evbus_loom))]
mod loom_tests {
    // Tallies across the explored executions: bookkeeping of the test, not
    // part of the modelled protocol, so std's atomics.
    use std::sync::atomic::{AtomicUsize as Tally, Ordering::Relaxed};

    use loom::thread;

    use crate::{
        bus::Bus,
        filter::Filter,
        kind::{Event, EventKind},
        policy::SubscribeOptions,
        sync::atomic::Ordering,
    };
    use crate::{
        error::{RecvError, TryRecvError},
        subscription::SPIN_ROUNDS,
        sync::Arc,
    };

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Kind {
        A,
    }

    impl EventKind for Kind {
        const ALL: &'static [Self] = &[Kind::A];

        fn topic(self) -> &'static str {
            "t.a"
        }

        fn index(self) -> usize {
            0
        }
    }

    /// Its payload is a loom `Arc`: a copy leaked or dropped twice fails
    /// the model.
    #[derive(Debug, Clone)]
    struct Ev(Arc<u64>);

    impl Event for Ev {
        type Kind = Kind;

        fn kind(&self) -> Kind {
            Kind::A
        }
    }

    /// Property: the last producer-side handle going (a `Publisher` drop,
    /// which closes the bus without replacing its registry) racing
    /// `unsubscribe` closes the ring exactly once: exactly one of
    /// `unsubscribe()`'s `true` and the abandoned close's count, and both
    /// winners occur across the executions. An event whose publish was
    /// accepted is received, then `Disconnected`; the payload is dropped
    /// exactly once.
    ///
    /// Depends on: `Ring::close`'s one `fetch_or` deciding the closer; the
    /// AcqRel of `Shared::release_producer`, so the last handle's cached
    /// registry holds the subscription made through the `Bus` handle that
    /// went first; `Shared::remove_sub` skipping an abandoned bus without
    /// leaving the ring open. (Checked by making the last drop close an
    /// empty registry instead: the drop never wins.)
    #[test]
    fn abandoned_close_races_unsubscribe() {
        static UNSUBSCRIBE_WON: Tally = Tally::new(0);
        static DROP_WON: Tally = Tally::new(0);

        loom::model(|| {
            let bus = Bus::<Ev>::new();
            let sub = bus
                .subscribe_with(
                    Filter::pattern("t.>").expect("valid pattern"),
                    SubscribeOptions::new().capacity(1),
                )
                .expect("open bus");
            let shared = Arc::clone(sub.shared());
            let mut publisher = bus.publisher();
            // From here the publisher is the last producer-side handle.
            drop(bus);
            let payload = Arc::new(7);

            let unsubscriber = thread::spawn(move || {
                let won = sub.unsubscribe();
                (won, sub)
            });
            let accepted = publisher
                .publish(Ev(Arc::clone(&payload)))
                .map_or(0, |report| report.accepted);
            drop(publisher);
            let (unsubscribe_won, mut sub) = unsubscriber.join().unwrap();

            // Relaxed: after the join.
            let drop_won = shared.abandoned_closed.load(Ordering::Relaxed);
            assert!(drop_won <= 1);
            assert!(
                unsubscribe_won ^ (drop_won == 1),
                "ring closed {} times (unsubscribe: {unsubscribe_won}, last drop: {drop_won})",
                usize::from(unsubscribe_won) + drop_won
            );
            if unsubscribe_won {
                UNSUBSCRIBE_WON.fetch_add(1, Relaxed);
            } else {
                DROP_WON.fetch_add(1, Relaxed);
            }
            assert!(sub.is_closed());
            let mut got = 0;
            loop {
                match sub.try_recv() {
                    Ok(Ev(v)) => {
                        assert_eq!(*v, 7);
                        got += 1;
                    }
                    Err(TryRecvError::Disconnected) => break,
                    Err(other) => panic!("closed, quiescent subscription returned {other:?}"),
                }
            }
            assert_eq!(got, accepted, "an accepted event was lost or came twice");
            drop(sub);
            drop(shared);
            assert_eq!(
                Arc::strong_count(&payload),
                1,
                "a payload copy outlived the bus"
            );
        });
        assert!(UNSUBSCRIBE_WON.load(Relaxed) > 0, "unsubscribe never won");
        assert!(DROP_WON.load(Relaxed) > 0, "the last drop never won");
    }

    /// How many `try_recv` calls `recv` makes before it parks: one, then
    /// one after each of `SPIN_ROUNDS` snoozes.
    const TRIES_BEFORE_PARK: u32 = SPIN_ROUNDS + 1;

    /// Property: a receiver parked in `recv` is woken when the last
    /// producer-side handle goes, and gets `Disconnected`. Depends on
    /// `close_abandoned` waking the rings it closes: without the wake the
    /// model deadlocks (checked by leaving the wake out).
    ///
    /// `recv` snoozes (a loom `yield_now`) between tries, so without a head
    /// start the receiver would need more preemptions than the bound allows
    /// to reach its park before the drop (see `head_start_for_receiver` in
    /// `loom-tests`); the yields below hand it those tries.
    #[test]
    fn abandoned_close_wakes_parked_receiver() {
        loom::model(|| {
            let bus = Bus::<Ev>::new();
            let mut sub = bus
                .subscribe_with(
                    Filter::pattern("t.>").expect("valid pattern"),
                    SubscribeOptions::new().capacity(1),
                )
                .expect("open bus");
            let publisher = bus.publisher();
            drop(bus);

            let receiver = thread::spawn(move || {
                let got = sub.recv().map(|Ev(v)| *v);
                drop(sub);
                got
            });
            for _ in 0..TRIES_BEFORE_PARK {
                thread::yield_now();
            }
            drop(publisher);
            assert_eq!(receiver.join().unwrap(), Err(RecvError::Disconnected));
        });
    }
}

#[cfg(all(test, not(evbus_loom)))]
mod tests {
    use std::thread;

    use crate::{
        bus::Bus,
        error::TryRecvError,
        kind::{Event, EventKind},
        sync::atomic::{AtomicUsize as Tally, Ordering},
    };

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Kind {
        A,
        B,
    }

    impl EventKind for Kind {
        const ALL: &'static [Self] = &[Kind::A, Kind::B];

        fn topic(self) -> &'static str {
            match self {
                Kind::A => "t.a",
                Kind::B => "t.b",
            }
        }

        fn index(self) -> usize {
            self as usize
        }
    }

    /// Counts its drops in `drops`.
    #[derive(Debug)]
    struct Ev(Kind, &'static Tally);

    impl Clone for Ev {
        fn clone(&self) -> Self {
            Ev(self.0, self.1)
        }
    }

    impl Drop for Ev {
        fn drop(&mut self) {
            self.1.fetch_add(1, Ordering::Relaxed);
        }
    }

    impl Event for Ev {
        type Kind = Kind;

        fn kind(&self) -> Kind {
            self.0
        }
    }

    /// The last publisher closes the bus from its cached registry: the
    /// subscriptions made after its cache was filled (through the `Bus`
    /// handle, on topics it never published to) are closed too, on another
    /// thread as well.
    #[test]
    fn the_last_publisher_closes_subscriptions_made_after_it() {
        static DROPS: Tally = Tally::new(0);
        let bus = Bus::<Ev>::new();
        let mut publisher = bus.publisher();
        let mut a = bus.subscribe("t.a").unwrap();
        let mut b = bus.subscribe("t.b").unwrap();
        publisher.publish(Ev(Kind::A, &DROPS)).unwrap();
        drop(bus);
        assert!(!a.is_closed() && !b.is_closed());
        thread::spawn(move || drop(publisher)).join().unwrap();
        assert!(a.is_closed() && b.is_closed());
        assert_eq!(a.try_recv().map(|e| e.0), Ok(Kind::A));
        assert_eq!(a.try_recv().map(|e| e.0), Err(TryRecvError::Disconnected));
        assert_eq!(b.try_recv().map(|e| e.0), Err(TryRecvError::Disconnected));
        // The drop closed them: an unsubscribe now finds them closed.
        assert!(!a.unsubscribe());
        drop((a, b));
        // The one event published, moved into its one ring and received.
        assert_eq!(DROPS.load(Ordering::Relaxed), 1);
    }

    /// A subscription that leaves an abandoned bus with events buffered
    /// drops them at once, each exactly once, and a second unsubscribe
    /// (here the drop's) changes nothing.
    #[test]
    fn leaving_an_abandoned_bus_drops_buffered_events_once() {
        static DROPS: Tally = Tally::new(0);
        let bus = Bus::<Ev>::new();
        let mut publisher = bus.publisher();
        let sub = bus.subscribe(">").unwrap();
        let keep = bus.subscribe(">").unwrap();
        drop(bus);
        for _ in 0..3 {
            publisher.publish(Ev(Kind::B, &DROPS)).unwrap();
        }
        drop(publisher);
        // Each publish cloned its event once: one copy in each ring, all
        // still buffered.
        assert_eq!(DROPS.load(Ordering::Relaxed), 0);
        assert!(!sub.unsubscribe());
        drop(sub);
        assert_eq!(DROPS.load(Ordering::Relaxed), 3);
        assert_eq!(keep.len(), 3);
        drop(keep);
        assert_eq!(DROPS.load(Ordering::Relaxed), 6);
    }
}
