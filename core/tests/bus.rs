//! Routing and accounting of the bus: publish by kind, by topic name and by
//! interned handle; errors that hand the event back; publish reports,
//! publisher counters and snapshots.

mod common;

use common::{Event, Kind, bus_with_sub, drain, ev, ev_from, opts, scaled, seqs, sub};
use evbus_core::{
    Bus, EventKind, Filter, KindTableError, Overflow, PublishError, PublishReport, SubscribeError,
    SubscribeOptions, TopicError, validate_topic,
};

fn report(matched: u32, accepted: u32, dropped: u32) -> (u32, u32, u32) {
    (matched, accepted, dropped)
}

fn fields(r: PublishReport) -> (u32, u32, u32) {
    (r.matched, r.accepted, r.dropped)
}

// --- routing -------------------------------------------------------------

#[test]
fn publish_by_kind() {
    let bus = Bus::<Event>::new();
    let mut placed = bus.subscribe_kinds(&[Kind::Placed]).unwrap();
    let mut orders = bus
        .subscribe_kinds(&[Kind::Placed, Kind::Cancelled])
        .unwrap();
    let mut audit = bus.subscribe("audit.*").unwrap();
    let mut all = bus.subscribe(">").unwrap();

    assert_eq!(
        fields(bus.publish(ev(Kind::Placed, 1)).unwrap()),
        report(3, 3, 0)
    );
    assert_eq!(
        fields(bus.publish(ev(Kind::Cancelled, 2)).unwrap()),
        report(2, 2, 0)
    );
    assert_eq!(
        fields(bus.publish(ev(Kind::Login, 3)).unwrap()),
        report(2, 2, 0)
    );

    assert_eq!(seqs(&drain(&mut placed)), [1]);
    assert_eq!(seqs(&drain(&mut orders)), [1, 2]);
    assert_eq!(seqs(&drain(&mut audit)), [3]);
    assert_eq!(seqs(&drain(&mut all)), [1, 2, 3]);
    assert_eq!(orders.stats().filter, ["orders.placed", "orders.cancelled"]);
}

#[test]
fn publish_to_exact_wildcard_and_tail() {
    let (bus, mut exact) = bus_with_sub("orders.placed.eu");
    let mut star = bus.subscribe("orders.*").unwrap();
    let mut mid = bus.subscribe("*.placed.*").unwrap();
    let mut tail = bus.subscribe("orders.>").unwrap();
    let mut all = bus.subscribe(">").unwrap();

    // Not interned: resolved through the pattern index.
    let r = bus
        .publish_to("orders.placed.eu", ev(Kind::Placed, 1))
        .unwrap();
    assert_eq!(fields(r), report(4, 4, 0));
    // Interned (a kind topic): one route lookup.
    let r = bus
        .publish_to("orders.placed", ev(Kind::Placed, 2))
        .unwrap();
    assert_eq!(fields(r), report(3, 3, 0));
    // `>` needs at least one more segment; `*` exactly one.
    let r = bus.publish_to("orders", ev(Kind::Placed, 3)).unwrap();
    assert_eq!(fields(r), report(1, 1, 0));
    let r = bus.publish_to("orders.a.b.c", ev(Kind::Placed, 4)).unwrap();
    assert_eq!(fields(r), report(2, 2, 0));
    let r = bus
        .publish_to("billing.placed.us", ev(Kind::Placed, 5))
        .unwrap();
    assert_eq!(fields(r), report(2, 2, 0));
    // Case matters.
    let r = bus
        .publish_to("Orders.placed", ev(Kind::Placed, 6))
        .unwrap();
    assert_eq!(fields(r), report(1, 1, 0));

    assert_eq!(seqs(&drain(&mut exact)), [1]);
    assert_eq!(seqs(&drain(&mut star)), [2]);
    assert_eq!(seqs(&drain(&mut mid)), [1, 5]);
    assert_eq!(seqs(&drain(&mut tail)), [1, 2, 4]);
    assert_eq!(seqs(&drain(&mut all)), [1, 2, 3, 4, 5, 6]);

    // publish_to never interns.
    assert_eq!(bus.snapshot().topics, Kind::ALL.len());
}

#[test]
fn overlapping_patterns_deliver_once() {
    let bus = Bus::<Event>::new();
    let filter = Filter::patterns(["orders.*", "orders.>", "*.placed", "orders.placed"]).unwrap();
    let mut s = bus.subscribe_with(filter, SubscribeOptions::new()).unwrap();
    assert_eq!(
        fields(bus.publish(ev(Kind::Placed, 1)).unwrap()),
        report(1, 1, 0)
    );
    let r = bus
        .publish_to("orders.placed", ev(Kind::Placed, 2))
        .unwrap();
    assert_eq!(fields(r), report(1, 1, 0));
    let t = bus.topic("orders.shipped").unwrap();
    assert_eq!(
        fields(bus.publish_on(&t, ev(Kind::Placed, 3)).unwrap()),
        report(1, 1, 0)
    );
    let r = bus.publish_to("orders.x.y", ev(Kind::Placed, 4)).unwrap();
    assert_eq!(fields(r), report(1, 1, 0));
    assert_eq!(seqs(&drain(&mut s)), [1, 2, 3, 4]);
    // Duplicate patterns are removed from the filter.
    let dup = Filter::patterns(["a.b", "a.b"])
        .unwrap()
        .or(Filter::pattern("a.b").unwrap());
    assert_eq!(dup.patterns_slice().len(), 1);
}

#[test]
fn publish_on_interned_topic() {
    let (bus, mut billing) = bus_with_sub("billing.*");
    let mut all = bus.subscribe(">").unwrap();
    let paid = bus.topic("billing.paid").unwrap();
    let refunded = bus.topic("billing.refunded.partial").unwrap();
    assert_eq!(paid.as_str(), "billing.paid");
    assert_eq!(format!("{paid:?}"), "Topic(\"billing.paid\")");
    // Interning twice gives an equal handle and no new topic.
    assert_eq!(bus.topic("billing.paid").unwrap(), paid);
    assert_ne!(paid, refunded);
    assert_eq!(bus.snapshot().topics, Kind::ALL.len() + 2);
    // A kind topic is already interned.
    let placed = bus.topic("orders.placed").unwrap();
    assert_eq!(bus.snapshot().topics, Kind::ALL.len() + 2);

    assert_eq!(
        fields(bus.publish_on(&paid, ev(Kind::Login, 1)).unwrap()),
        report(2, 2, 0)
    );
    assert_eq!(
        fields(bus.publish_on(&refunded, ev(Kind::Login, 2)).unwrap()),
        report(1, 1, 0)
    );
    // The event's kind does not matter on an explicit topic.
    assert_eq!(
        fields(bus.publish_on(&placed, ev(Kind::Login, 3)).unwrap()),
        report(1, 1, 0)
    );
    let mut p = bus.publisher();
    assert_eq!(
        fields(p.publish_on(&paid, ev(Kind::Login, 4)).unwrap()),
        report(2, 2, 0)
    );

    assert_eq!(seqs(&drain(&mut billing)), [1, 4]);
    assert_eq!(seqs(&drain(&mut all)), [1, 2, 3, 4]);

    // Invalid names are rejected and not interned.
    assert_eq!(
        bus.topic("billing.*").unwrap_err(),
        validate_topic("billing.*").unwrap_err()
    );
    assert!(bus.topic("").is_err());
    assert_eq!(bus.snapshot().topics, Kind::ALL.len() + 2);
}

#[test]
fn subscribe_after_topic_interned_still_routes() {
    let bus = Bus::<Event>::new();
    let t = bus.topic("billing.paid").unwrap();
    let mut p = bus.publisher();
    // Nobody yet.
    assert_eq!(
        fields(p.publish_on(&t, ev(Kind::Login, 0)).unwrap()),
        report(0, 0, 0)
    );
    let mut s = bus.subscribe("billing.>").unwrap();
    let mut kinds = bus.subscribe_kinds(&[Kind::Login]).unwrap();
    // Through the publisher's cached registry, the bus and publish_to.
    assert_eq!(
        fields(p.publish_on(&t, ev(Kind::Login, 1)).unwrap()),
        report(1, 1, 0)
    );
    assert_eq!(
        fields(bus.publish_on(&t, ev(Kind::Login, 2)).unwrap()),
        report(1, 1, 0)
    );
    assert_eq!(
        fields(p.publish_to("billing.paid", ev(Kind::Login, 3)).unwrap()),
        report(1, 1, 0)
    );
    // Kind routes are interned at construction and updated too.
    assert_eq!(
        fields(p.publish(ev(Kind::Login, 4)).unwrap()),
        report(1, 1, 0)
    );
    assert_eq!(seqs(&drain(&mut s)), [1, 2, 3]);
    assert_eq!(seqs(&drain(&mut kinds)), [4]);
    // A topic interned after the subscription routes as well.
    let late = bus.topic("billing.late").unwrap();
    assert_eq!(
        fields(p.publish_on(&late, ev(Kind::Login, 5)).unwrap()),
        report(1, 1, 0)
    );
    assert_eq!(seqs(&drain(&mut s)), [5]);
    // And an unsubscribed one stops routing.
    drop(s);
    assert_eq!(
        fields(p.publish_on(&late, ev(Kind::Login, 6)).unwrap()),
        report(0, 0, 0)
    );
}

#[test]
fn many_patterns_still_route() {
    let subs = scaled(10, 2);
    let per_sub = scaled(1_000, 10);
    let bus = Bus::<Event>::new();
    let mut handles: Vec<_> = (0..subs)
        .map(|j| {
            let literal = (0..per_sub).map(|i| format!("t{j}.{i}"));
            let wild = (0..per_sub / 10).map(|i| format!("w{i}.*.s{j}"));
            let filter = Filter::patterns(literal.chain(wild)).unwrap();
            assert_eq!(filter.patterns_slice().len(), per_sub + per_sub / 10);
            bus.subscribe_with(filter, opts(4096, Overflow::DropNewest))
                .unwrap()
        })
        .collect();
    let interned = bus
        .topic(&format!("t{}.{}", subs - 1, per_sub - 1))
        .unwrap();
    let mut seq = 0;
    for j in 0..subs {
        for i in (0..per_sub).step_by(per_sub / 5) {
            let r = bus
                .publish_to(&format!("t{j}.{i}"), ev_from(Kind::Placed, j as u32, seq))
                .unwrap();
            assert_eq!(fields(r), report(1, 1, 0), "t{j}.{i}");
            seq += 1;
        }
        let r = bus
            .publish_to(&format!("w0.x.s{j}"), ev_from(Kind::Placed, j as u32, seq))
            .unwrap();
        assert_eq!(fields(r), report(1, 1, 0));
        seq += 1;
        // Near misses.
        for miss in [
            format!("t{j}.{per_sub}"),
            format!("t{j}"),
            format!("w0.s{j}"),
            format!("t{j}.0.0"),
        ] {
            assert_eq!(
                fields(bus.publish_to(&miss, ev(Kind::Placed, 0)).unwrap()),
                report(0, 0, 0),
                "{miss}"
            );
        }
    }
    let r = bus
        .publish_on(&interned, ev_from(Kind::Placed, subs as u32 - 1, seq))
        .unwrap();
    assert_eq!(fields(r), report(1, 1, 0));
    for (j, h) in handles.iter_mut().enumerate() {
        let got = drain(h);
        assert!(!got.is_empty());
        assert!(
            got.iter().all(|e| e.src == j as u32),
            "sub {j} got another's event"
        );
        assert!(got.windows(2).all(|w| w[0].seq < w[1].seq));
    }
    // Kind topics are not matched by any of those patterns.
    assert_eq!(
        fields(bus.publish(ev(Kind::Placed, 0)).unwrap()),
        report(0, 0, 0)
    );
}

// --- errors --------------------------------------------------------------

#[test]
fn invalid_topic_hands_event_back() {
    let (bus, _all) = bus_with_sub(">");
    let mut p = bus.publisher();
    for bad in ["", "a..b", "orders.*", "orders.>", "a b", ".x", "x."] {
        let expected = validate_topic(bad).unwrap_err();
        match bus.publish_to(bad, ev(Kind::Placed, 7)) {
            Err(PublishError::InvalidTopic(e, err)) => {
                assert_eq!(e, ev(Kind::Placed, 7));
                assert_eq!(err, expected, "{bad:?}");
            }
            other => panic!("{bad:?}: {other:?}"),
        }
        let err = p.publish_to(bad, ev(Kind::Placed, 8)).unwrap_err();
        assert!(format!("{err:?}").starts_with("InvalidTopic"));
        assert!(err.to_string().starts_with("invalid topic"));
        assert_eq!(err.into_inner().seq, 8);
    }
    assert_eq!(
        validate_topic("a..b").unwrap_err(),
        TopicError::EmptySegment { position: 1 }
    );
    // Rejected publishes are not counted.
    let snap = bus.snapshot();
    assert_eq!((snap.published, snap.delivered), (0, 0));
}

#[test]
fn foreign_topic() {
    let a = Bus::<Event>::new();
    let b = Bus::<Event>::new();
    assert!(!a.same_bus(&b));
    assert!(a.same_bus(&a.clone()));
    let _sa = a.subscribe(">").unwrap();
    let _sb = b.subscribe(">").unwrap();
    // Same name, same id on both buses: still foreign.
    let ta = a.topic("x.y").unwrap();
    let tb = b.topic("x.y").unwrap();
    assert_ne!(ta, tb);
    let err = b.publish_on(&ta, ev(Kind::Placed, 1)).unwrap_err();
    assert!(matches!(err, PublishError::ForeignTopic(_)));
    assert_eq!(format!("{err:?}"), "ForeignTopic(..)");
    assert_eq!(err.into_inner().seq, 1);
    let err = b
        .publisher()
        .publish_on(&ta, ev(Kind::Placed, 2))
        .unwrap_err();
    assert!(matches!(err, PublishError::ForeignTopic(_)));
    assert_eq!(err.to_string(), "topic handle belongs to another bus");
    assert_eq!(b.snapshot().published, 0);
    assert_eq!(
        fields(b.publish_on(&tb, ev(Kind::Placed, 3)).unwrap()),
        report(1, 1, 0)
    );
}

#[test]
fn subscribe_errors() {
    let bus = Bus::<Event>::new();
    assert_eq!(
        bus.subscribe("a..b").unwrap_err(),
        SubscribeError::InvalidPattern(TopicError::EmptySegment { position: 1 })
    );
    assert!(matches!(
        bus.subscribe("a.>.b"),
        Err(SubscribeError::InvalidPattern(_))
    ));
    assert_eq!(
        bus.subscribe_kinds(&[]).unwrap_err(),
        SubscribeError::EmptyFilter
    );
    assert_eq!(
        bus.subscribe_with(Filter::default(), SubscribeOptions::new())
            .unwrap_err(),
        SubscribeError::EmptyFilter
    );
    let err = bus.subscribe("a..b").unwrap_err();
    assert!(std::error::Error::source(&err).is_some());
    assert_eq!(bus.subscriber_count(), 0);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dup {
    A,
    B,
}
impl EventKind for Dup {
    const ALL: &'static [Self] = &[Dup::A, Dup::B];
    fn topic(self) -> &'static str {
        "same.topic"
    }
    fn index(self) -> usize {
        self as usize
    }
}
#[derive(Clone)]
struct DupEvent;
impl evbus_core::Event for DupEvent {
    type Kind = Dup;
    fn kind(&self) -> Dup {
        Dup::A
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Swapped {
    A,
    B,
}
impl EventKind for Swapped {
    const ALL: &'static [Self] = &[Swapped::B, Swapped::A];
    fn topic(self) -> &'static str {
        match self {
            Swapped::A => "a",
            Swapped::B => "b",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}
#[derive(Clone)]
struct SwappedEvent;
impl evbus_core::Event for SwappedEvent {
    type Kind = Swapped;
    fn kind(&self) -> Swapped {
        Swapped::A
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wild {
    W,
}
impl EventKind for Wild {
    const ALL: &'static [Self] = &[Wild::W];
    fn topic(self) -> &'static str {
        "orders.*"
    }
    fn index(self) -> usize {
        0
    }
}
#[derive(Clone)]
struct WildEvent;
impl evbus_core::Event for WildEvent {
    type Kind = Wild;
    fn kind(&self) -> Wild {
        Wild::W
    }
}

#[test]
fn kind_table_errors() {
    assert_eq!(
        Bus::<DupEvent>::try_new().unwrap_err(),
        KindTableError::DuplicateTopic("same.topic")
    );
    assert_eq!(
        Bus::<SwappedEvent>::try_new().unwrap_err(),
        KindTableError::IndexMismatch {
            topic: "b",
            index: 1,
            position: 0
        }
    );
    let err = Bus::<WildEvent>::try_new().unwrap_err();
    assert_eq!(
        err,
        KindTableError::InvalidTopic("orders.*", validate_topic("orders.*").unwrap_err())
    );
    assert!(err.to_string().contains("orders.*"));
    assert!(Bus::<Event>::try_new().is_ok());
}

#[test]
#[should_panic(expected = "invalid EventKind table")]
fn new_panics_on_bad_kind_table() {
    let _ = Bus::<DupEvent>::new();
}

// --- counting ------------------------------------------------------------

#[test]
fn no_subscribers_counted() {
    let bus = Bus::<Event>::new();
    let mut p = bus.publisher();
    assert_eq!(
        fields(bus.publish(ev(Kind::Placed, 0)).unwrap()),
        report(0, 0, 0)
    );
    assert_eq!(
        fields(p.publish_to("x.y", ev(Kind::Placed, 0)).unwrap()),
        report(0, 0, 0)
    );
    let _s = bus.subscribe("orders.placed").unwrap();
    p.publish(ev(Kind::Placed, 0)).unwrap();
    p.publish(ev(Kind::Login, 0)).unwrap();
    let snap = bus.snapshot();
    assert_eq!(
        (snap.published, snap.no_subscribers, snap.delivered),
        (4, 3, 1)
    );
}

#[test]
fn publish_report_fields() {
    let bus = Bus::<Event>::new();
    let _full = sub(&bus, "orders.>", 1, Overflow::DropNewest);
    let _roomy = sub(&bus, "orders.placed", 10, Overflow::DropNewest);
    let _oldest = sub(&bus, ">", 1, Overflow::DropOldest);
    let _other = sub(&bus, "audit.*", 1, Overflow::DropNewest);
    assert_eq!(
        fields(bus.publish(ev(Kind::Placed, 0)).unwrap()),
        report(3, 3, 0)
    );
    // `_full` is full now; `_oldest` overwrites and counts as accepted.
    assert_eq!(
        fields(bus.publish(ev(Kind::Placed, 1)).unwrap()),
        report(3, 2, 1)
    );
    assert_eq!(
        fields(bus.publish(ev(Kind::Cancelled, 2)).unwrap()),
        report(2, 1, 1)
    );
    assert_eq!(
        fields(bus.publish(ev(Kind::Login, 3)).unwrap()),
        report(2, 2, 0)
    );
    assert_eq!(
        fields(bus.publish_to("nobody", ev(Kind::Login, 4)).unwrap()),
        report(1, 1, 0)
    );
    let empty = Bus::<Event>::new();
    assert_eq!(
        empty.publish(ev(Kind::Login, 5)).unwrap(),
        PublishReport::default()
    );
}

#[test]
fn publisher_clones_counted_separately() {
    let (bus, _s) = bus_with_sub("orders.*");
    let mut p1 = bus.publisher();
    let mut p2 = p1.clone();
    for i in 0..3 {
        p1.publish(ev(Kind::Placed, i)).unwrap();
    }
    for i in 0..5 {
        p2.publish(ev(Kind::Login, i)).unwrap();
    }
    bus.publish(ev(Kind::Cancelled, 0)).unwrap();
    let snap = bus.snapshot();
    assert_eq!(
        (snap.published, snap.no_subscribers, snap.delivered),
        (9, 5, 4)
    );
    // A dropped publisher's counts stay in the totals, exactly once.
    drop(p2);
    let after = bus.snapshot();
    assert_eq!((after.published, after.no_subscribers), (9, 5));
    let mut p3 = p1.clone();
    drop(p1);
    p3.publish(ev(Kind::Placed, 9)).unwrap();
    let last = bus.snapshot();
    assert_eq!(
        (last.published, last.no_subscribers, last.delivered),
        (10, 5, 5)
    );
    assert_eq!(format!("{p3:?}"), "Publisher { .. }");
}

#[test]
fn snapshot_totals() {
    let bus = Bus::<Event>::new();
    let mut a = bus
        .subscribe_with(
            Filter::pattern("orders.*").unwrap(),
            opts(2, Overflow::DropNewest).name("orders"),
        )
        .unwrap();
    let b = sub(&bus, ">", 3, Overflow::DropOldest);
    let gone = sub(&bus, "audit.>", 8, Overflow::DropNewest);
    let _t = bus.topic("billing.paid").unwrap();

    for i in 0..4 {
        bus.publish(ev(Kind::Placed, i)).unwrap();
    }
    bus.publish(ev(Kind::Login, 4)).unwrap();
    a.try_recv().unwrap();

    let snap = bus.snapshot();
    assert_eq!(snap.published, 5);
    assert_eq!(snap.no_subscribers, 0);
    assert_eq!(snap.topics, 4);
    assert!(!snap.shut_down);
    // a: 2 delivered, 2 dropped; b: 3 kept, 2 overwritten; gone: 1.
    assert_eq!(
        (snap.delivered, snap.dropped, snap.queued),
        (6, 4, 1 + 3 + 1)
    );
    let ids: Vec<u64> = snap.subscriptions.iter().map(|s| s.id).collect();
    assert_eq!(ids, [a.id(), b.id(), gone.id()]);
    let sa = &snap.subscriptions[0];
    assert_eq!(sa, &a.stats());
    assert_eq!(sa.name.as_deref(), Some("orders"));
    assert_eq!(sa.filter, ["orders.*"]);
    assert_eq!((sa.capacity, sa.overflow), (2, Overflow::DropNewest));
    assert_eq!(
        (sa.delivered, sa.received, sa.dropped, sa.queued),
        (2, 1, 2, 1)
    );
    assert_eq!(snap.subscriptions[1].overflow, Overflow::DropOldest);
    assert_eq!(snap.subscriptions[2].name, None);

    // A dropped subscription leaves the list but stays in the totals.
    drop(gone);
    let snap = bus.snapshot();
    assert_eq!(snap.subscriptions.len(), 2);
    assert_eq!((snap.delivered, snap.dropped, snap.queued), (6, 4, 4));
    assert_eq!(bus.subscriber_count(), 2);
}

#[cfg(feature = "serde")]
#[test]
fn snapshot_serde_round_trip() {
    let bus = Bus::<Event>::new();
    let mut s = bus
        .subscribe_with(
            Filter::patterns(["orders.*", "audit.>"]).unwrap(),
            opts(2, Overflow::Block(std::time::Duration::from_millis(250))).name("n"),
        )
        .unwrap();
    let _o = sub(&bus, ">", 1, Overflow::DropOldest);
    bus.publish(ev(Kind::Placed, 1)).unwrap();
    bus.publish(ev(Kind::Login, 2)).unwrap();
    s.try_recv().unwrap();
    let snap = bus.snapshot();
    let json = serde_json::to_string(&snap).unwrap();
    let back: evbus_core::BusSnapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(back, snap);
    assert_eq!(
        back.subscriptions[0].overflow,
        Overflow::Block(std::time::Duration::from_millis(250))
    );

    let r = bus.publish(ev(Kind::Cancelled, 3)).unwrap();
    let back: PublishReport = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
    assert_eq!(back, r);
    let shut = bus.shutdown();
    let back: evbus_core::ShutdownReport =
        serde_json::from_str(&serde_json::to_string(&shut).unwrap()).unwrap();
    assert_eq!(back, shut);
}

#[test]
fn snapshot_of_a_new_bus() {
    let bus = Bus::<Event>::default();
    let snap = bus.snapshot();
    assert_eq!(snap.topics, Kind::ALL.len());
    assert_eq!(
        (
            snap.published,
            snap.no_subscribers,
            snap.delivered,
            snap.dropped
        ),
        (0, 0, 0, 0)
    );
    assert_eq!(snap.queued, 0);
    assert!(!snap.shut_down);
    assert!(snap.subscriptions.is_empty());
    assert_eq!(snap.clone(), snap);
    assert_eq!(format!("{bus:?}"), "Bus { .. }");
}
