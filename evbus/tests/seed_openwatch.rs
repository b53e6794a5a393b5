//! Acceptance criteria of the seed issue, on an OpenWatch-style event type:
//! a service monitor that publishes service-up, service-down and alert
//! events.
//!
//! Tests wait with `recv_timeout` (a hang guard only, never an expectation
//! about speed) or a `Barrier`; none sleeps and none asserts on wall-clock
//! time.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    path::Path,
    process::Command,
    sync::{Arc, Barrier},
    thread,
    time::Duration,
};

use evbus::{
    Bus, BusSnapshot, Event, EventKind, Filter, PublishError, RecvTimeoutError, SubscribeError,
    SubscribeOptions, Subscription, TryRecvError,
};

/// How long a receive may wait before the test calls it a hang. Generous on
/// purpose: it only turns a deadlock into a failure, it measures nothing.
const HANG_GUARD: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    ServiceUp,
    ServiceDown,
    Alert,
}

impl EventKind for Kind {
    const ALL: &'static [Self] = &[Kind::ServiceUp, Kind::ServiceDown, Kind::Alert];

    fn topic(self) -> &'static str {
        match self {
            Kind::ServiceUp => "watch.service.up",
            Kind::ServiceDown => "watch.service.down",
            Kind::Alert => "watch.alert",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Watch {
    ServiceUp { service: String, seq: u64 },
    ServiceDown { service: String, seq: u64 },
    Alert { severity: u8, seq: u64 },
}

impl Event for Watch {
    type Kind = Kind;

    fn kind(&self) -> Kind {
        match self {
            Watch::ServiceUp { .. } => Kind::ServiceUp,
            Watch::ServiceDown { .. } => Kind::ServiceDown,
            Watch::Alert { .. } => Kind::Alert,
        }
    }
}

impl Watch {
    fn up(service: &str, seq: u64) -> Self {
        Watch::ServiceUp {
            service: service.to_owned(),
            seq,
        }
    }

    fn down(service: &str, seq: u64) -> Self {
        Watch::ServiceDown {
            service: service.to_owned(),
            seq,
        }
    }

    fn alert(severity: u8, seq: u64) -> Self {
        Watch::Alert { severity, seq }
    }

    /// An event of `kind` carrying `seq`.
    fn of(kind: Kind, seq: u64) -> Self {
        match kind {
            Kind::ServiceUp => Watch::up("api", seq),
            Kind::ServiceDown => Watch::down("api", seq),
            Kind::Alert => Watch::alert(2, seq),
        }
    }

    fn seq(&self) -> u64 {
        match self {
            Watch::ServiceUp { seq, .. }
            | Watch::ServiceDown { seq, .. }
            | Watch::Alert { seq, .. } => *seq,
        }
    }
}

fn opts(name: &str) -> SubscribeOptions {
    SubscribeOptions::new().name(name)
}

/// Receives exactly `n` events, failing on a hang or a disconnect.
fn recv_n(sub: &mut Subscription<Watch>, n: usize) -> Vec<Watch> {
    (0..n)
        .map(|i| match sub.recv_timeout(HANG_GUARD) {
            Ok(ev) => ev,
            Err(err) => panic!("receive {i} of {n} failed: {err:?}"),
        })
        .collect()
}

/// Asserts that the snapshot's totals are the sums over its subscriptions
/// (valid while no subscription has been dropped) and that every
/// subscription's own counters add up.
fn assert_totals_are_sums(snap: &BusSnapshot) {
    let delivered: u64 = snap.subscriptions.iter().map(|s| s.delivered).sum();
    let dropped: u64 = snap.subscriptions.iter().map(|s| s.dropped).sum();
    let queued: u64 = snap.subscriptions.iter().map(|s| s.queued as u64).sum();
    assert_eq!(snap.delivered, delivered, "delivered total");
    assert_eq!(snap.dropped, dropped, "dropped total");
    assert_eq!(snap.queued, queued, "queued total");
    for s in &snap.subscriptions {
        assert_eq!(s.delivered, s.received + s.queued as u64, "{s:?}");
        assert!(s.high_water <= s.capacity, "{s:?}");
        assert!(s.queued <= s.high_water, "{s:?}");
    }
}

#[test]
fn ac01_one_subscriber_receives_an_event() {
    let bus = Bus::<Watch>::new();
    let mut sub = bus
        .subscribe_with(Filter::pattern("watch.service.up").unwrap(), opts("one"))
        .unwrap();

    let report = bus.publish(Watch::up("checkout", 1)).unwrap();
    assert_eq!((report.matched, report.accepted, report.dropped), (1, 1, 0));

    assert_eq!(sub.recv_timeout(HANG_GUARD), Ok(Watch::up("checkout", 1)));
    assert_eq!(sub.try_recv(), Err(TryRecvError::Empty));

    let stats = sub.stats();
    assert_eq!(stats.name.as_deref(), Some("one"));
    assert_eq!(stats.filter, vec!["watch.service.up".to_owned()]);
    assert_eq!((stats.delivered, stats.received, stats.dropped), (1, 1, 0));
}

#[test]
fn ac02_no_subscribers_is_counted() {
    let bus = Bus::<Watch>::new();
    assert_eq!(bus.snapshot().no_subscribers, 0);

    let report = bus.publish(Watch::alert(1, 1)).unwrap();
    assert_eq!((report.matched, report.accepted, report.dropped), (0, 0, 0));
    let snap = bus.snapshot();
    assert_eq!((snap.published, snap.no_subscribers), (1, 1));

    // A subscriber to another kind does not make an alert "heard".
    let _ups = bus.subscribe_kinds(&[Kind::ServiceUp]).unwrap();
    let mut publisher = bus.publisher();
    assert_eq!(publisher.publish(Watch::alert(1, 2)).unwrap().matched, 0);
    assert_eq!(publisher.publish(Watch::up("db", 3)).unwrap().matched, 1);
    let snap = bus.snapshot();
    assert_eq!((snap.published, snap.no_subscribers), (3, 2));

    // Counts of a publisher that is gone stay in the totals.
    drop(publisher);
    let snap = bus.snapshot();
    assert_eq!((snap.published, snap.no_subscribers), (3, 2));
}

#[test]
fn ac03_three_subscribers_all_receive() {
    let bus = Bus::<Watch>::new();
    let mut by_kind = bus.subscribe_kinds(&[Kind::ServiceDown]).unwrap();
    let mut by_topic = bus.subscribe("watch.service.down").unwrap();
    let mut by_wildcard = bus.subscribe("watch.>").unwrap();

    let event = Watch::down("payments", 7);
    let report = bus.publish(event.clone()).unwrap();
    assert_eq!((report.matched, report.accepted, report.dropped), (3, 3, 0));

    for sub in [&mut by_kind, &mut by_topic, &mut by_wildcard] {
        assert_eq!(sub.recv_timeout(HANG_GUARD).as_ref(), Ok(&event));
        assert_eq!(sub.try_recv(), Err(TryRecvError::Empty));
    }
}

#[test]
fn ac04_concurrent_publishes_give_exact_counts() {
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 250;
    const TOTAL: u64 = THREADS * PER_THREAD;
    const SUBSCRIBERS: usize = 10;

    let bus = Bus::<Watch>::new();
    let mut subs: Vec<_> = (0..SUBSCRIBERS)
        .map(|i| {
            bus.subscribe_with(
                Filter::pattern("watch.>").unwrap(),
                opts(&format!("sub-{i}")).capacity(2048),
            )
            .unwrap()
        })
        .collect();

    let start = Arc::new(Barrier::new(THREADS as usize));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let mut publisher = bus.publisher();
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                for i in 0..PER_THREAD {
                    let kind = Kind::ALL[(i % 3) as usize];
                    let report = publisher
                        .publish(Watch::of(kind, t * PER_THREAD + i))
                        .unwrap();
                    assert_eq!(report.matched, SUBSCRIBERS as u32);
                    assert_eq!(report.accepted, SUBSCRIBERS as u32);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }

    for sub in &mut subs {
        let got = recv_n(sub, TOTAL as usize);
        assert_eq!(sub.try_recv(), Err(TryRecvError::Empty));
        // Every event exactly once ...
        let seqs: BTreeSet<u64> = got.iter().map(Watch::seq).collect();
        assert_eq!(seqs, (0..TOTAL).collect());
        // ... and each publisher's events in the order it published them.
        let mut last: HashMap<u64, u64> = HashMap::new();
        for ev in &got {
            let (t, seq) = (ev.seq() / PER_THREAD, ev.seq());
            if let Some(prev) = last.insert(t, seq) {
                assert!(prev < seq, "publisher {t}: {seq} after {prev}");
            }
        }
        let stats = sub.stats();
        assert_eq!(
            (stats.delivered, stats.received, stats.dropped),
            (TOTAL, TOTAL, 0)
        );
    }

    let snap = bus.snapshot();
    assert_eq!(snap.published, TOTAL);
    assert_eq!(snap.delivered, TOTAL * SUBSCRIBERS as u64);
    assert_eq!((snap.dropped, snap.no_subscribers, snap.queued), (0, 0, 0));
}

#[test]
fn ac05_shutdown_closes_and_later_publish_is_a_noop() {
    let bus = Bus::<Watch>::new();
    let mut sub = bus
        .subscribe_with(Filter::kinds(&[Kind::Alert]).unwrap(), opts("a"))
        .unwrap();
    let mut other = bus.subscribe("watch.service.*").unwrap();
    let mut publisher = bus.publisher();
    publisher.publish(Watch::alert(3, 1)).unwrap();
    publisher.publish(Watch::alert(3, 2)).unwrap();

    let report = bus.shutdown();
    assert_eq!(report.closed, 2);
    assert_eq!(report.buffered, 2);
    assert!(!report.already_shut_down);
    assert!(bus.is_shut_down());
    assert!(sub.is_closed() && other.is_closed());

    let before = bus.snapshot();
    assert!(before.shut_down);

    // Publishing after shutdown hands the event back, through every path.
    let event = Watch::alert(5, 3);
    match bus.publish(event.clone()) {
        Err(PublishError::Closed(back)) => assert_eq!(back, event),
        other => panic!("expected Closed, got {other:?}"),
    }
    match publisher.publish(event.clone()) {
        Err(PublishError::Closed(back)) => assert_eq!(back, event),
        other => panic!("expected Closed, got {other:?}"),
    }
    assert_eq!(
        bus.publish(Watch::up("x", 4))
            .map_err(PublishError::into_inner),
        Err(Watch::up("x", 4))
    );

    // ... and changes no counter.
    let after = bus.snapshot();
    assert_eq!(
        (
            after.published,
            after.no_subscribers,
            after.delivered,
            after.dropped,
            after.queued
        ),
        (
            before.published,
            before.no_subscribers,
            before.delivered,
            before.dropped,
            before.queued
        )
    );
    assert_eq!(after.published, 2);

    // Receivers drain what was buffered, then see the close.
    assert_eq!(sub.recv_timeout(HANG_GUARD), Ok(Watch::alert(3, 1)));
    assert_eq!(sub.recv_timeout(HANG_GUARD), Ok(Watch::alert(3, 2)));
    assert_eq!(
        sub.recv_timeout(HANG_GUARD),
        Err(RecvTimeoutError::Disconnected)
    );
    assert_eq!(other.try_recv(), Err(TryRecvError::Disconnected));

    // Subscribing fails; a second shutdown does nothing.
    assert_eq!(bus.subscribe("watch.>").err(), Some(SubscribeError::Closed));
    assert!(bus.shutdown().already_shut_down);
    // Closed already by shutdown: unsubscribe does not close it again.
    assert!(!sub.unsubscribe());
}

#[test]
fn ac06_capacity_one_keeps_one_and_drops_four() {
    let bus = Bus::<Watch>::new();
    let sub = bus
        .subscribe_with(
            Filter::pattern("watch.alert").unwrap(),
            opts("tiny").capacity(1),
        )
        .unwrap();

    let reports: Vec<_> = (0..5)
        .map(|i| bus.publish(Watch::alert(1, i)).unwrap())
        .collect();
    assert_eq!((reports[0].accepted, reports[0].dropped), (1, 0));
    for r in &reports[1..] {
        assert_eq!((r.matched, r.accepted, r.dropped), (1, 0, 1));
    }

    let stats = sub.stats();
    assert_eq!(stats.capacity, 1);
    assert_eq!(stats.queued, 1);
    assert_eq!(stats.dropped, 4);
    assert_eq!(stats.delivered, 1);
    assert_eq!(stats.received, 0);
    assert_eq!(stats.high_water, 1);
    assert_eq!(sub.len(), 1);

    let snap = bus.snapshot();
    assert_eq!(
        (snap.published, snap.delivered, snap.dropped, snap.queued),
        (5, 1, 4, 1)
    );

    // DropNewest keeps the oldest event.
    let mut sub = sub;
    assert_eq!(sub.try_recv(), Ok(Watch::alert(1, 0)));
    assert_eq!(sub.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn ac07_kind_enum_lists_exactly_its_kinds() {
    assert_eq!(
        Kind::ALL,
        &[Kind::ServiceUp, Kind::ServiceDown, Kind::Alert]
    );

    let topics: Vec<&str> = Kind::ALL.iter().map(|k| k.topic()).collect();
    assert_eq!(
        topics,
        ["watch.service.up", "watch.service.down", "watch.alert"]
    );
    let distinct: HashSet<&str> = topics.iter().copied().collect();
    assert_eq!(distinct.len(), Kind::ALL.len());

    for (position, kind) in Kind::ALL.iter().enumerate() {
        assert_eq!(kind.index(), position, "{kind:?}");
        evbus::validate_topic(kind.topic()).unwrap();
        // Each kind's event maps back to it.
        assert_eq!(Watch::of(*kind, 0).kind(), *kind);
    }

    // The bus accepts the table.
    assert!(Bus::<Watch>::try_new().is_ok());
}

#[test]
fn ac08_subscriber_never_receives_another_kind() {
    let bus = Bus::<Watch>::new();
    let mut ups = bus.subscribe_kinds(&[Kind::ServiceUp]).unwrap();
    let mut downs = bus.subscribe("watch.service.down").unwrap();
    let mut alerts = bus.subscribe_kinds(&[Kind::Alert]).unwrap();

    let mut sent: HashMap<Kind, Vec<Watch>> = HashMap::new();
    for i in 0..90 {
        let event = Watch::of(Kind::ALL[i % 3], i as u64);
        sent.entry(event.kind()).or_default().push(event.clone());
        assert_eq!(bus.publish(event).unwrap().matched, 1);
    }

    for (kind, sub) in [
        (Kind::ServiceUp, &mut ups),
        (Kind::ServiceDown, &mut downs),
        (Kind::Alert, &mut alerts),
    ] {
        let got: Vec<Watch> = sub.try_iter().collect();
        assert!(got.iter().all(|e| e.kind() == kind), "{kind:?}: {got:?}");
        assert_eq!(got, sent[&kind]);
    }
}

#[test]
fn ac09_counters_are_right_after_publish_and_drop() {
    let bus = Bus::<Watch>::new();
    let mut all = bus
        .subscribe_with(
            Filter::pattern("watch.>").unwrap(),
            opts("all").capacity(64),
        )
        .unwrap();
    let mut small = bus
        .subscribe_with(
            Filter::kinds(&[Kind::Alert]).unwrap(),
            opts("small").capacity(3),
        )
        .unwrap();
    let services = bus
        .subscribe_with(
            Filter::pattern("watch.service.*").unwrap(),
            opts("services").capacity(8),
        )
        .unwrap();

    // 30 events: 10 of each kind.
    let mut publisher = bus.publisher();
    for i in 0..30 {
        publisher
            .publish(Watch::of(Kind::ALL[i % 3], i as u64))
            .unwrap();
    }
    // 2 publishes on a topic nobody matches.
    bus.publish_to("other.topic", Watch::alert(0, 99)).unwrap();
    bus.publish_to("other.topic", Watch::alert(0, 100)).unwrap();

    let s = all.stats();
    assert_eq!(
        (s.delivered, s.dropped, s.queued, s.received),
        (30, 0, 30, 0)
    );
    let s = small.stats();
    assert_eq!(
        (s.delivered, s.dropped, s.queued, s.high_water),
        (3, 7, 3, 3)
    );
    let s = services.stats();
    assert_eq!(
        (s.delivered, s.dropped, s.queued, s.high_water),
        (8, 12, 8, 8)
    );

    // Receiving moves events from queued to received.
    assert_eq!(all.try_iter().take(10).count(), 10);
    assert_eq!(small.try_iter().count(), 3);
    let s = all.stats();
    assert_eq!((s.delivered, s.received, s.queued), (30, 10, 20));
    let s = small.stats();
    assert_eq!((s.delivered, s.received, s.queued, s.dropped), (3, 3, 0, 7));

    let snap = bus.snapshot();
    assert_eq!(snap.published, 32);
    assert_eq!(snap.no_subscribers, 2);
    assert_eq!(snap.delivered, 30 + 3 + 8);
    assert_eq!(snap.dropped, 7 + 12);
    assert_eq!(snap.queued, 20 + 8);
    assert_eq!(snap.subscriptions.len(), 3);
    assert_totals_are_sums(&snap);

    // A subscription that is gone leaves the list, not the totals.
    drop(services);
    let after = bus.snapshot();
    assert_eq!(after.subscriptions.len(), 2);
    assert_eq!(
        (after.delivered, after.dropped),
        (snap.delivered, snap.dropped)
    );
    assert_eq!(after.queued, 20);
}

#[test]
fn ac10_smoke_1000_publishes_to_10_subscribers() {
    const EVENTS: u64 = 1000;
    const SUBSCRIBERS: usize = 10;

    let bus = Bus::<Watch>::new();
    let ready = Arc::new(Barrier::new(SUBSCRIBERS + 1));
    let consumers: Vec<_> = (0..SUBSCRIBERS)
        .map(|i| {
            // Default capacity (1024) holds the whole run: no drops whatever
            // the scheduling.
            let mut sub = bus
                .subscribe_with(Filter::pattern("watch.>").unwrap(), opts(&format!("c{i}")))
                .unwrap();
            let ready = Arc::clone(&ready);
            thread::spawn(move || {
                ready.wait();
                let got = recv_n(&mut sub, EVENTS as usize);
                let seqs: Vec<u64> = got.iter().map(Watch::seq).collect();
                assert_eq!(seqs, (0..EVENTS).collect::<Vec<_>>());
                sub.stats()
            })
        })
        .collect();

    let mut publisher = bus.publisher();
    ready.wait();
    for i in 0..EVENTS {
        let report = publisher
            .publish(Watch::of(Kind::ALL[(i % 3) as usize], i))
            .unwrap();
        assert_eq!(report.accepted, SUBSCRIBERS as u32);
    }
    for c in consumers {
        let stats = c.join().unwrap();
        assert_eq!(
            (stats.delivered, stats.received, stats.dropped),
            (EVENTS, EVENTS, 0)
        );
    }
    let snap = bus.snapshot();
    assert_eq!(
        (snap.published, snap.delivered, snap.dropped),
        (EVENTS, EVENTS * 10, 0)
    );
}

#[test]
fn ac11_stalled_subscriber_does_not_stop_a_fast_one() {
    const EVENTS: u64 = 100;

    let bus = Bus::<Watch>::new();
    let stalled = bus
        .subscribe_with(
            Filter::pattern("watch.>").unwrap(),
            opts("stalled").capacity(4),
        )
        .unwrap();
    let mut fast = bus
        .subscribe_with(Filter::pattern("watch.>").unwrap(), opts("fast"))
        .unwrap();

    let start = Arc::new(Barrier::new(2));
    let consumer = {
        let start = Arc::clone(&start);
        thread::spawn(move || {
            start.wait();
            let got = recv_n(&mut fast, EVENTS as usize);
            (got, fast.stats())
        })
    };

    start.wait();
    let mut publisher = bus.publisher();
    let mut reports = Vec::new();
    for i in 0..EVENTS {
        reports.push(
            publisher
                .publish(Watch::of(Kind::ALL[(i % 3) as usize], i))
                .unwrap(),
        );
    }
    // Every publish reached both subscribers, and none of them was lost
    // for the fast one.
    assert!(reports.iter().all(|r| r.matched == 2));
    assert_eq!(
        reports.iter().map(|r| u64::from(r.dropped)).sum::<u64>(),
        EVENTS - 4
    );

    let (got, fast_stats) = consumer.join().unwrap();
    assert_eq!(
        got.iter().map(Watch::seq).collect::<Vec<_>>(),
        (0..EVENTS).collect::<Vec<_>>()
    );
    assert_eq!((fast_stats.received, fast_stats.dropped), (EVENTS, 0));

    let s = stalled.stats();
    assert_eq!(
        (s.delivered, s.dropped, s.queued, s.received),
        (4, 96, 4, 0)
    );
    assert_eq!(s.high_water, 4);
}

#[test]
fn ac12_core_depends_on_no_network_or_broker_crate() {
    const FORBIDDEN: &[&str] = &[
        "tokio",
        "async-nats",
        "nats",
        "reqwest",
        "hyper",
        "rdkafka",
        "lapin",
        "redis",
        "mio",
        "socket2",
    ];

    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1"])
        .current_dir(&workspace)
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();

    let names: HashMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let nodes: HashMap<&str, &serde_json::Value> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let core = names
        .iter()
        .find(|(_, name)| **name == "evbus-core")
        .map(|(id, _)| *id)
        .expect("evbus-core in the workspace");

    // The closure over normal dependencies (on any target platform), the
    // ones a user of evbus-core builds.
    let mut closure: BTreeSet<&str> = BTreeSet::new();
    let mut seen: HashSet<&str> = HashSet::from([core]);
    let mut todo = vec![core];
    while let Some(id) = todo.pop() {
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let normal = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null());
            let pkg = dep["pkg"].as_str().unwrap();
            if normal && seen.insert(pkg) {
                closure.insert(names[pkg]);
                todo.push(pkg);
            }
        }
    }

    // The walk found the real dependencies ...
    assert!(closure.contains("arc-swap"), "{closure:?}");
    // ... and none of them talks to a network or a broker.
    let found: Vec<&str> = closure
        .iter()
        .copied()
        .filter(|n| FORBIDDEN.contains(n))
        .collect();
    assert!(
        found.is_empty(),
        "evbus-core depends on {found:?} (closure: {closure:?})"
    );
}

#[test]
fn ac13_unsubscribe_closes_and_later_publish_does_not_deliver() {
    let bus = Bus::<Watch>::new();
    let mut sub = bus
        .subscribe_with(
            Filter::kinds(&[Kind::ServiceDown]).unwrap(),
            opts("leaving"),
        )
        .unwrap();
    bus.publish(Watch::down("cache", 1)).unwrap();
    bus.publish(Watch::down("cache", 2)).unwrap();

    assert!(sub.unsubscribe(), "the first unsubscribe closes the ring");
    assert!(!sub.unsubscribe(), "a second one finds it closed");
    assert!(sub.is_closed());
    assert_eq!(bus.subscriber_count(), 0);

    // A later publish reaches nobody and does not panic.
    let report = bus.publish(Watch::down("cache", 3)).unwrap();
    assert_eq!((report.matched, report.accepted, report.dropped), (0, 0, 0));
    assert_eq!(bus.snapshot().no_subscribers, 1);

    // Buffered events drain, then the receiver sees the close.
    assert_eq!(sub.recv_timeout(HANG_GUARD), Ok(Watch::down("cache", 1)));
    assert_eq!(sub.recv_timeout(HANG_GUARD), Ok(Watch::down("cache", 2)));
    assert_eq!(
        sub.recv_timeout(HANG_GUARD),
        Err(RecvTimeoutError::Disconnected)
    );
    assert_eq!(sub.try_recv(), Err(TryRecvError::Disconnected));
    assert_eq!(sub.recv(), Err(evbus::RecvError::Disconnected));

    let stats = sub.stats();
    assert!(stats.closed);
    assert_eq!((stats.delivered, stats.received, stats.dropped), (2, 2, 0));

    // Dropping a subscription unsubscribes it too.
    let other = bus.subscribe("watch.alert").unwrap();
    assert_eq!(bus.publish(Watch::alert(1, 4)).unwrap().matched, 1);
    drop(other);
    assert_eq!(bus.publish(Watch::alert(1, 5)).unwrap().matched, 0);
    assert_eq!(bus.subscriber_count(), 0);
}
