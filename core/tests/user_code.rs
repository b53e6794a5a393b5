//! User code that panics or calls back into the bus: an event's `Clone`
//! and `Drop`, and task wakers. Whatever it does, every ring closes exactly
//! once, every parked receiver wakes, the counters balance, each payload is
//! dropped exactly once, and nothing hangs.

mod common;

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    task::{Context, Poll, Wake, Waker},
    thread,
};

use common::{Kind, TIMEOUT, Tally};
use evbus_core::{Bus, Event, Filter, Publisher, SubscribeOptions, Subscription, TryRecvError};

/// What a [`Trap`] does, shared by every copy of it.
#[derive(Default)]
struct Control {
    /// Clones made so far.
    clones: AtomicUsize,
    /// Panic in the clone with this number (1-based); 0 never.
    panic_on_clone: AtomicUsize,
    /// Drops so far.
    drops: AtomicUsize,
    /// Panic in every drop while set (not during an unwind).
    panic_on_drop: AtomicUsize,
    /// Call back into this bus from `Drop`.
    reenter: Mutex<Option<Bus<Trap>>>,
    /// Run by the clone with this number (1-based, before it would panic);
    /// 0 never.
    hook_on_clone: AtomicUsize,
    /// What that clone runs: taken out before it runs, so the clones it
    /// makes itself (by publishing) do not run it again.
    hook: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl Control {
    /// Runs `hook` in the next clone but `later` (0: the next one).
    fn hook_clone(&self, later: usize, hook: impl FnOnce() + Send + 'static) {
        *self.hook.lock().unwrap() = Some(Box::new(hook));
        let n = self.clones.load(Ordering::SeqCst) + 1 + later;
        self.hook_on_clone.store(n, Ordering::SeqCst);
    }
}

/// An event whose `Clone` and `Drop` are user code under the test's control.
struct Trap {
    seq: u64,
    control: Arc<Control>,
    _tally: common::Payload,
}

impl Trap {
    fn new(seq: u64, control: &Arc<Control>, tally: &Arc<Tally>) -> Self {
        Trap {
            seq,
            control: Arc::clone(control),
            _tally: tally.payload(),
        }
    }
}

impl Clone for Trap {
    fn clone(&self) -> Self {
        let n = self.control.clones.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.control.hook_on_clone.load(Ordering::SeqCst) {
            let hook = self.control.hook.lock().unwrap().take();
            if let Some(hook) = hook {
                hook();
            }
        }
        if n == self.control.panic_on_clone.load(Ordering::SeqCst) {
            panic!("Trap::clone number {n}");
        }
        Trap {
            seq: self.seq,
            control: Arc::clone(&self.control),
            _tally: self._tally.clone(),
        }
    }
}

impl Drop for Trap {
    fn drop(&mut self) {
        self.control.drops.fetch_add(1, Ordering::SeqCst);
        let bus = self.control.reenter.lock().unwrap().clone();
        if let Some(bus) = bus {
            // A registry update from inside a free.
            bus.topic("reentered.from.drop").unwrap();
        }
        if self.control.panic_on_drop.load(Ordering::SeqCst) != 0 && !thread::panicking() {
            panic!("Trap::drop of {}", self.seq);
        }
    }
}

impl Event for Trap {
    type Kind = Kind;

    fn kind(&self) -> Kind {
        Kind::Placed
    }
}

/// Runs `f` on its own thread and fails instead of hanging if it does not
/// finish.
#[track_caller]
fn within_timeout<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(TIMEOUT).expect("hung")
}

/// A waker that panics when woken, counting its wakes first.
struct PanickingWaker(AtomicUsize);

impl Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
        panic!("waker panics");
    }
}

/// A waker that counts its wakes.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_panicking_clone_mid_fan_out_is_counted() {
    let tally = Tally::new();
    let control = Arc::new(Control::default());
    let bus = Bus::<Trap>::new();
    let mut subs: Vec<_> = (0..3).map(|_| bus.subscribe(">").unwrap()).collect();
    // The first ring gets clone 1; clone 2, for the second ring, panics.
    control.panic_on_clone.store(2, Ordering::SeqCst);
    let event = Trap::new(1, &control, &tally);
    let outcome = catch_unwind(AssertUnwindSafe(|| bus.publish(event)));
    assert!(outcome.is_err(), "the clone's panic reaches the publisher");
    let snap = bus.snapshot();
    assert_eq!(snap.published, 1, "a panicked publish is still a publish");
    assert_eq!(snap.delivered, 1, "the ring served before the panic");
    assert_eq!(snap.dropped, 2, "the rings it never reached count a drop");
    assert_eq!(subs[0].try_recv().map(|t| t.seq), Ok(1));
    assert_eq!(subs[1].try_recv().err(), Some(TryRecvError::Empty));
    assert_eq!(subs[2].try_recv().err(), Some(TryRecvError::Empty));
    let stats: Vec<_> = subs
        .iter()
        .map(|s| (s.stats().delivered, s.stats().dropped))
        .collect();
    assert_eq!(stats, [(1, 0), (0, 1), (0, 1)]);
    drop(subs);
    drop(bus);
    tally.assert_all_dropped();
}

#[test]
fn a_panicking_clone_on_a_single_producer_bus_still_wakes_the_parked_receiver() {
    let tally = Tally::new();
    let control = Arc::new(Control::default());
    let (bus, mut publisher) = Bus::<Trap>::single_producer().unwrap();
    let mut first = bus.subscribe(">").unwrap();
    let _second = bus.subscribe(">").unwrap();
    let _third = bus.subscribe(">").unwrap();
    // Park the first receiver: a registered waker sets the park bit exactly
    // as a blocked `recv` does.
    let waker = Arc::new(CountingWaker::default());
    let w = Waker::from(Arc::clone(&waker));
    assert!(first.poll_recv(&mut Context::from_waker(&w)).is_pending());
    control.panic_on_clone.store(2, Ordering::SeqCst);
    let event = Trap::new(7, &control, &tally);
    assert!(catch_unwind(AssertUnwindSafe(|| publisher.publish(event))).is_err());
    assert_eq!(first.len(), 1);
    assert_eq!(
        waker.0.load(Ordering::SeqCst),
        1,
        "the parked receiver was not woken"
    );
    match first.poll_recv(&mut Context::from_waker(&w)) {
        Poll::Ready(Ok(t)) => assert_eq!(t.seq, 7),
        other => panic!("got {:?}", other.map(|r| r.map(|t| t.seq))),
    }
}

#[test]
fn a_blocked_recv_wakes_after_a_panicking_clone_on_a_single_producer_bus() {
    let tally = Tally::new();
    let control = Arc::new(Control::default());
    let (bus, mut publisher) = Bus::<Trap>::single_producer().unwrap();
    let mut first = bus.subscribe(">").unwrap();
    let _others: Vec<_> = (0..2).map(|_| bus.subscribe(">").unwrap()).collect();
    let (tx, rx) = mpsc::channel();
    let receiver = thread::spawn(move || {
        tx.send(first.recv().map(|t| t.seq)).unwrap();
    });
    control.panic_on_clone.store(2, Ordering::SeqCst);
    let event = Trap::new(9, &control, &tally);
    assert!(catch_unwind(AssertUnwindSafe(|| publisher.publish(event))).is_err());
    assert_eq!(rx.recv_timeout(TIMEOUT), Ok(Ok(9)));
    receiver.join().unwrap();
}

#[test]
fn a_panicking_waker_does_not_stop_shutdown() {
    let bus = Bus::<common::Event>::new();
    let mut subs: Vec<_> = (0..3).map(|_| bus.subscribe(">").unwrap()).collect();
    let waker = Arc::new(PanickingWaker(AtomicUsize::new(0)));
    let w = Waker::from(Arc::clone(&waker));
    for sub in &mut subs {
        assert!(sub.poll_recv(&mut Context::from_waker(&w)).is_pending());
    }
    let outcome = catch_unwind(AssertUnwindSafe(|| bus.shutdown()));
    assert!(outcome.is_err(), "the waker's panic reaches the caller");
    for sub in &subs {
        assert!(sub.is_closed(), "every ring closes before anyone is woken");
    }
    assert_eq!(waker.0.load(Ordering::SeqCst), 3, "every waker was woken");
    assert!(bus.shutdown().already_shut_down);
    for sub in &mut subs {
        assert_eq!(sub.try_recv(), Err(TryRecvError::Disconnected));
    }
}

#[test]
fn a_panicking_waker_on_publish_leaves_the_event_in_its_ring() {
    let bus = Bus::<common::Event>::new();
    let mut sub = bus.subscribe(">").unwrap();
    let mut other = bus.subscribe(">").unwrap();
    let waker = Arc::new(PanickingWaker(AtomicUsize::new(0)));
    let w = Waker::from(Arc::clone(&waker));
    assert!(sub.poll_recv(&mut Context::from_waker(&w)).is_pending());
    let _ = catch_unwind(AssertUnwindSafe(|| {
        bus.publish(common::ev(Kind::Placed, 1))
    }));
    assert_eq!(sub.try_recv(), Ok(common::ev(Kind::Placed, 1)));
    // Whether or not the publish reached `other`, it is counted.
    let delivered_or_dropped = other.stats().delivered + other.stats().dropped;
    assert_eq!(delivered_or_dropped, 1);
    let _ = other.try_recv();
    // Shutdown and unsubscribe still work.
    assert!(sub.unsubscribe());
    assert_eq!(bus.shutdown().closed, 1);
}

#[test]
fn a_reentrant_drop_during_a_snapshot_free_does_not_deadlock() {
    let tally = Tally::new();
    let control = Arc::new(Control::default());
    let bus = Bus::<Trap>::new();
    // An idle publisher's cache holds the registry it loaded.
    let mut idle = bus.publisher();
    let sub = bus.subscribe(">").unwrap();
    idle.publish(Trap::new(1, &control, &tally)).unwrap();
    idle.publish(Trap::new(2, &control, &tally)).unwrap();
    *control.reenter.lock().unwrap() = Some(bus.clone());
    let bus2 = bus.clone();
    within_timeout(move || {
        drop(sub);
        for i in 0..4 {
            bus2.topic(&format!("update.{i}")).unwrap();
        }
    });
    *control.reenter.lock().unwrap() = None;
    drop(idle);
    assert_eq!(control.drops.load(Ordering::SeqCst), 2);
    tally.assert_all_dropped();
}

#[test]
fn a_panicking_drop_of_buffered_events_leaves_no_ghost_subscription() {
    let tally = Tally::new();
    let control = Arc::new(Control::default());
    let bus = Bus::<Trap>::new();
    let sub = bus.subscribe(">").unwrap();
    bus.publish(Trap::new(1, &control, &tally)).unwrap();
    bus.publish(Trap::new(2, &control, &tally)).unwrap();
    control.panic_on_drop.store(1, Ordering::SeqCst);
    // Wherever the buffered events are freed (the unsubscribe, or a later
    // registry update), a panic there must not leave a subscription that
    // nobody owns.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(sub)));
    let mut made = Vec::new();
    for _ in 0..3 {
        if let Ok(Ok(s)) = catch_unwind(AssertUnwindSafe(|| bus.subscribe("orders.>"))) {
            made.push(s);
        }
    }
    control.panic_on_drop.store(0, Ordering::SeqCst);
    assert_eq!(bus.subscriber_count(), made.len(), "a ghost subscription");
    assert_eq!(
        control.drops.load(Ordering::SeqCst),
        2,
        "each event dropped once"
    );
    drop(made);
    drop(bus);
    tally.assert_all_dropped();
}

#[test]
fn an_idle_publisher_does_not_pin_a_dropped_subscriptions_events() {
    let tally = Tally::new();
    let bus = Bus::<common::Event>::new();
    let mut idle = bus.publisher();
    let sub = bus.subscribe(">").unwrap();
    for seq in 0..100 {
        idle.publish(common::tracked(Kind::Placed, seq, &tally))
            .unwrap();
    }
    assert_eq!(tally.live(), 100);
    drop(sub);
    assert_eq!(
        tally.live(),
        0,
        "buffered events outlived their subscription"
    );
    drop(idle);
}

#[test]
fn a_panicking_drop_of_an_event_received_is_the_receivers_own() {
    // The receiver owns what it took; the bus is not involved.
    let tally = Tally::new();
    let control = Arc::new(Control::default());
    let bus = Bus::<Trap>::new();
    let mut sub = bus.subscribe(">").unwrap();
    bus.publish(Trap::new(1, &control, &tally)).unwrap();
    let got = sub.recv().unwrap();
    control.panic_on_drop.store(1, Ordering::SeqCst);
    assert!(catch_unwind(AssertUnwindSafe(move || drop(got))).is_err());
    control.panic_on_drop.store(0, Ordering::SeqCst);
    assert_eq!(sub.try_recv().err(), Some(TryRecvError::Empty));
    drop(sub);
    assert!(matches!(bus.subscribe(">").map(|_| ()), Ok(())));
}

/// Three `DropNewest` rings of capacity 1 on one route, each holding event
/// 1, and a `Publisher` that found the route full twice in a row since
/// (events 2 and 3), so that it now remembers it full (`full_route.rs`).
struct RememberedFull {
    tally: Arc<Tally>,
    control: Arc<Control>,
    bus: Bus<Trap>,
    subs: Vec<Subscription<Trap>>,
    publisher: Publisher<Trap>,
}

impl RememberedFull {
    fn new() -> Self {
        let bus = Bus::<Trap>::new();
        let one = SubscribeOptions::new().capacity(1);
        let subs = (0..3)
            .map(|_| {
                bus.subscribe_with(Filter::pattern(">").unwrap(), one.clone())
                    .unwrap()
            })
            .collect();
        let mut route = Self {
            tally: Tally::new(),
            control: Arc::new(Control::default()),
            publisher: bus.publisher(),
            bus,
            subs,
        };
        assert_eq!(route.publish(1), (3, 3, 0));
        assert_eq!(route.publish(2), (3, 0, 3));
        assert_eq!(route.publish(3), (3, 0, 3));
        route
    }

    fn event(&self, seq: u64) -> Trap {
        Trap::new(seq, &self.control, &self.tally)
    }

    /// Publishes event `seq`: `(matched, accepted, dropped)`.
    fn publish(&mut self, seq: u64) -> (u32, u32, u32) {
        let r = self.publisher.publish(self.event(seq)).unwrap();
        (r.matched, r.accepted, r.dropped)
    }

    /// Publishes event `seq`, whose user code panics; the panic must reach
    /// the publisher.
    fn publish_panicking(&mut self, seq: u64) {
        let event = self.event(seq);
        let outcome = catch_unwind(AssertUnwindSafe(|| self.publisher.publish(event)));
        assert!(outcome.is_err(), "the panic reaches the publisher");
    }

    /// Each subscription's `(delivered, dropped)`.
    fn counts(&self) -> Vec<(u64, u64)> {
        self.subs
            .iter()
            .map(|s| (s.stats().delivered, s.stats().dropped))
            .collect()
    }

    /// Drops everything, checking the bus totals on the way and that every
    /// payload was dropped exactly once.
    fn finish(self, published: u64, delivered: u64, dropped: u64) {
        drop(self.publisher);
        let snap = self.bus.snapshot();
        assert_eq!(snap.published, published);
        assert_eq!((snap.delivered, snap.dropped), (delivered, dropped));
        drop(self.subs);
        drop(self.bus);
        self.tally.assert_all_dropped();
    }
}

#[test]
fn a_panicking_drop_on_a_route_remembered_full_is_counted() {
    // The remembered route refuses every ring without making a value, then
    // drops the event: its panic reaches the publisher after the counts.
    let mut route = RememberedFull::new();
    route.control.panic_on_drop.store(1, Ordering::SeqCst);
    route.publish_panicking(4);
    route.control.panic_on_drop.store(0, Ordering::SeqCst);
    assert_eq!(route.counts(), [(1, 3); 3], "each ring counted the refusal");
    // The memory still answers: full rings refuse, a drained one takes.
    assert_eq!(route.publish(5), (3, 0, 3));
    assert_eq!(route.subs[2].try_recv().map(|t| t.seq), Ok(1));
    assert_eq!(route.publish(6), (3, 1, 2));
    assert_eq!(route.subs[2].try_recv().map(|t| t.seq), Ok(6));
    assert_eq!(route.counts(), [(1, 5), (1, 5), (2, 4)]);
    route.finish(6, 4, 14);
}

#[test]
fn a_panicking_clone_past_a_route_remembered_full_is_counted() {
    // The first ring still refuses; the second has room, so the publish
    // clones for it, and that clone panics: the second and third ring count
    // a drop each, as in a publish that remembered nothing.
    let mut route = RememberedFull::new();
    assert_eq!(route.subs[1].try_recv().map(|t| t.seq), Ok(1));
    let next = route.control.clones.load(Ordering::SeqCst) + 1;
    route.control.panic_on_clone.store(next, Ordering::SeqCst);
    route.publish_panicking(4);
    assert_eq!(route.counts(), [(1, 3); 3]);
    assert_eq!(route.subs[1].try_recv().err(), Some(TryRecvError::Empty));
    // The next publish: the first ring refuses, the second takes a clone,
    // the third (full) refuses.
    assert_eq!(route.publish(5), (3, 1, 2));
    assert_eq!(route.subs[1].try_recv().map(|t| t.seq), Ok(5));
    assert_eq!(route.counts(), [(1, 4), (2, 3), (1, 4)]);
    route.finish(5, 4, 11);
}

/// Nine subscriptions to `>` of capacity 4: a publish to them goes in
/// batches (`deliver/batch.rs`: routes of 8 rings or more make every value
/// of a batch before they claim a slot).
fn wide_route(bus: &Bus<Trap>) -> Arc<Mutex<Vec<Option<Subscription<Trap>>>>> {
    let opts = SubscribeOptions::new().capacity(4);
    let subs = (0..9)
        .map(|_| {
            Some(
                bus.subscribe_with(Filter::pattern(">").unwrap(), opts.clone())
                    .unwrap(),
            )
        })
        .collect();
    Arc::new(Mutex::new(subs))
}

/// What each subscription of `subs` holds, by sequence number (`None` for
/// one that left).
fn received(subs: &Mutex<Vec<Option<Subscription<Trap>>>>) -> Vec<Option<Vec<u64>>> {
    let mut subs = subs.lock().unwrap();
    subs.iter_mut()
        .map(|sub| {
            let sub = sub.as_mut()?;
            Some(std::iter::from_fn(|| sub.try_recv().ok().map(|t| t.seq)).collect())
        })
        .collect()
}

/// A publisher of `bus` that does not hold its lease (`ring/lease.rs`), so
/// its publishes claim with a CAS, in batches on wide routes: the second
/// one made while the first lives revokes the lease, and rings made from
/// then on are never leased.
fn batching_publisher(bus: &Bus<Trap>) -> Publisher<Trap> {
    let _holder = bus.publisher();
    bus.publisher()
}

/// The clone for the third ring calls back into the bus: it subscribes,
/// publishes, and unsubscribes the first ring. Nothing deadlocks, the
/// unsubscribed ring counts nothing more, and the new one gets only what
/// was published after it joined. `leased` says which publisher publishes
/// first, and so what each ring sees first.
fn reentrant_clone_publishes_subscribes_and_unsubscribes(leased: bool) {
    let tally = Tally::new();
    let control = Arc::new(Control::default());
    let bus = Bus::<Trap>::new();
    let mut publisher = if leased {
        bus.publisher()
    } else {
        batching_publisher(&bus)
    };
    let subs = wide_route(&bus);
    let late = Arc::new(Mutex::new(None));
    {
        let (bus, subs, late) = (bus.clone(), Arc::clone(&subs), Arc::clone(&late));
        let (control, tally) = (Arc::clone(&control), Arc::clone(&tally));
        control.clone().hook_clone(2, move || {
            let sub = bus.subscribe(">").unwrap();
            *late.lock().unwrap() = Some(sub);
            let nested = bus.publish(Trap::new(100, &control, &tally)).unwrap();
            assert_eq!((nested.matched, nested.accepted), (10, 10));
            let first = subs.lock().unwrap()[0].take().unwrap();
            assert!(first.unsubscribe(), "the first ring closes here");
        });
    }
    let report = publisher.publish(Trap::new(1, &control, &tally)).unwrap();
    let mut expected = vec![Some(vec![100, 1]); 9];
    expected[0] = None;
    if leased {
        // The holder pushes ring by ring, each value made just before its
        // push: the first two rings had event 1 before the callback; from
        // the third on, the nested publish revoked the lease and converted
        // every ring, and the holder's pushes go the multi-producer way.
        assert_eq!((report.accepted, report.dropped), (9, 0));
        expected[1] = Some(vec![1, 100]);
    } else {
        // A batch makes every value before it claims a slot: the first
        // ring closed before its claim, so it takes nothing and counts
        // nothing, and every ring has the nested publish first.
        assert_eq!((report.accepted, report.dropped), (8, 0));
    }
    assert_eq!(received(&subs), expected);
    let mut late = late.lock().unwrap().take().unwrap();
    assert_eq!(late.try_recv().map(|t| t.seq), Ok(100));
    assert_eq!(late.try_recv().err(), Some(TryRecvError::Empty));
    drop(publisher);
    let snap = bus.snapshot();
    assert_eq!(snap.published, 2);
    // Event 100 to the nine rings and the late one, event 1 to the rest.
    let delivered = 10 + u64::from(report.accepted);
    assert_eq!((snap.delivered, snap.dropped), (delivered, 0));
    drop((late, subs, bus));
    tally.assert_all_dropped();
}

#[test]
fn a_reentrant_clone_in_a_batch_publishes_subscribes_and_unsubscribes() {
    within_timeout(|| reentrant_clone_publishes_subscribes_and_unsubscribes(false));
}

#[test]
fn a_reentrant_clone_of_the_lease_holder_revokes_from_inside_its_publish() {
    within_timeout(|| reentrant_clone_publishes_subscribes_and_unsubscribes(true));
}

#[test]
fn a_panicking_waker_while_a_batch_unwinds_is_contained() {
    // The clone for the third ring of a batch first parks the first ring's
    // receiver with a waker that panics, then panics itself. The batch's
    // unwind pushes the two values made before it; the first ring's claim
    // finds the park bit, so its push wakes the receiver, whose waker
    // panics inside the unwind. That second panic is contained: the
    // clone's reaches the publisher, both values are in their rings, the
    // rings never reached count a drop, and every payload is dropped once.
    within_timeout(|| {
        let tally = Tally::new();
        let control = Arc::new(Control::default());
        let bus = Bus::<Trap>::new();
        let mut publisher = batching_publisher(&bus);
        let subs = wide_route(&bus);
        let waker = Arc::new(PanickingWaker(AtomicUsize::new(0)));
        {
            let (subs, waker) = (Arc::clone(&subs), Arc::clone(&waker));
            control.hook_clone(2, move || {
                let w = Waker::from(waker);
                let mut subs = subs.lock().unwrap();
                let first = subs[0].as_mut().unwrap();
                assert!(first.poll_recv(&mut Context::from_waker(&w)).is_pending());
            });
        }
        let third = control.hook_on_clone.load(Ordering::SeqCst);
        control.panic_on_clone.store(third, Ordering::SeqCst);
        let event = Trap::new(1, &control, &tally);
        let panic = catch_unwind(AssertUnwindSafe(|| publisher.publish(event)))
            .expect_err("the clone's panic reaches the publisher");
        let message = panic.downcast_ref::<String>().map(String::as_str);
        assert_eq!(
            message,
            Some(format!("Trap::clone number {third}").as_str())
        );
        assert_eq!(waker.0.load(Ordering::SeqCst), 1, "the receiver was woken");
        let mut expected = vec![Some(vec![]); 9];
        expected[0] = Some(vec![1]);
        expected[1] = Some(vec![1]);
        assert_eq!(received(&subs), expected);
        let stats: Vec<_> = subs
            .lock()
            .unwrap()
            .iter()
            .map(|s| {
                let stats = s.as_ref().unwrap().stats();
                (stats.delivered, stats.dropped)
            })
            .collect();
        let mut expected = vec![(0, 1); 9];
        expected[0] = (1, 0);
        expected[1] = (1, 0);
        assert_eq!(stats, expected);
        drop(publisher);
        let snap = bus.snapshot();
        assert_eq!((snap.published, snap.delivered, snap.dropped), (1, 2, 7));
        drop((subs, bus));
        tally.assert_all_dropped();
    });
}
