//! Closing: shutdown, unsubscribe and drop, alone and racing each other,
//! and exact accounting under subscribe/unsubscribe churn.

mod common;

use std::{
    collections::HashMap,
    sync::{
        Arc, Barrier,
        atomic::{AtomicBool, Ordering},
    },
    thread,
};

use common::{
    Event, Kind, TIMEOUT, Tally, bus_with_sub, drain, ev, ev_from, scaled, seqs, sub, tracked,
};
use evbus_core::{
    Bus, EventKind, Overflow, Pattern, PublishError, RecvError, RecvTimeoutError, SubscribeError,
    TryRecvError,
};

#[test]
fn shutdown_report() {
    let (bus, a) = bus_with_sub(">");
    let b = bus.subscribe("orders.*").unwrap();
    let c = bus.subscribe("audit.*").unwrap();
    let gone = bus.subscribe(">").unwrap();
    bus.publish(ev(Kind::Placed, 0)).unwrap();
    bus.publish(ev(Kind::Login, 1)).unwrap();
    assert!(gone.unsubscribe());
    let report = bus.shutdown();
    // `gone` was closed by its unsubscribe, not by this call.
    assert_eq!(report.closed, 3);
    assert_eq!(report.buffered, 2 + 1 + 1);
    assert!(!report.already_shut_down);
    assert!(bus.is_shut_down());
    assert!(a.is_closed() && b.is_closed() && c.is_closed());

    let again = bus.shutdown();
    assert!(again.already_shut_down);
    assert_eq!((again.closed, again.buffered), (0, 0));
    assert!(bus.snapshot().shut_down);
}

#[test]
fn publish_after_shutdown() {
    let tally = Tally::new();
    let (bus, _s) = bus_with_sub(">");
    let mut before = bus.publisher();
    let topic = bus.topic("billing.paid").unwrap();
    before.publish(ev(Kind::Placed, 0)).unwrap();
    bus.shutdown();
    let mut after = bus.publisher();

    let err = bus.publish(tracked(Kind::Placed, 1, &tally)).unwrap_err();
    assert!(matches!(err, PublishError::Closed(_)));
    assert_eq!(err.into_inner().seq, 1);
    let results = [
        before.publish(ev(Kind::Placed, 2)),
        after.publish(ev(Kind::Placed, 3)),
        bus.publish_to("orders.placed", ev(Kind::Placed, 4)),
        before.publish_to("x.y", ev(Kind::Placed, 5)),
        bus.publish_on(&topic, ev(Kind::Placed, 6)),
        after.publish_on(&topic, ev(Kind::Placed, 7)),
        // Closed is reported before the topic is validated.
        bus.publish_to("a..b", ev(Kind::Placed, 8)),
    ];
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Err(PublishError::Closed(e)) => assert_eq!(e.seq, i as u64 + 2),
            other => panic!("{i}: {other:?}"),
        }
    }
    // Attempts on a closed bus are not counted.
    assert_eq!(bus.snapshot().published, 1);
    tally.assert_all_dropped();
}

#[test]
fn subscribe_after_shutdown() {
    let bus = Bus::<Event>::new();
    bus.shutdown();
    assert_eq!(bus.subscribe(">").unwrap_err(), SubscribeError::Closed);
    assert_eq!(
        bus.subscribe_kinds(&[Kind::Login]).unwrap_err(),
        SubscribeError::Closed
    );
    // Argument errors are still reported first.
    assert!(matches!(
        bus.subscribe("a..b"),
        Err(SubscribeError::InvalidPattern(_))
    ));
    assert_eq!(bus.subscriber_count(), 0);
    assert_eq!(
        SubscribeError::Closed.to_string(),
        "subscribing to a closed bus"
    );
}

#[test]
fn unsubscribe_once() {
    let (bus, mut s) = bus_with_sub(">");
    let other = bus.subscribe(">").unwrap();
    bus.publish(ev(Kind::Placed, 0)).unwrap();
    assert_eq!(bus.subscriber_count(), 2);
    assert!(s.unsubscribe());
    assert!(!s.unsubscribe());
    assert_eq!(bus.subscriber_count(), 1);
    assert!(s.is_closed() && !other.is_closed());
    // No longer routed to; the buffered event is still received.
    let r = bus.publish(ev(Kind::Placed, 1)).unwrap();
    assert_eq!(r.matched, 1);
    assert_eq!(s.try_recv().unwrap().seq, 0);
    assert_eq!(s.try_recv(), Err(TryRecvError::Disconnected));
    let st = s.stats();
    assert_eq!((st.delivered, st.dropped, st.received), (1, 0, 1));
    // Its counters stay in the bus totals.
    let snap = bus.snapshot();
    assert_eq!((snap.delivered, snap.subscriptions.len()), (3, 1));
}

#[test]
fn unsubscribe_after_shutdown() {
    let (bus, s) = bus_with_sub(">");
    let t = bus.subscribe(">").unwrap();
    bus.publish(ev(Kind::Login, 0)).unwrap();
    assert_eq!(bus.shutdown().closed, 2);
    // Still registered (snapshots report them) until unsubscribed or dropped.
    assert_eq!(bus.subscriber_count(), 2);
    assert!(!s.unsubscribe());
    assert_eq!(bus.subscriber_count(), 1);
    drop(t);
    assert_eq!(bus.subscriber_count(), 0);
    let snap = bus.snapshot();
    assert_eq!((snap.delivered, snap.queued), (2, 0));
}

#[test]
fn drop_unsubscribes() {
    let bus = Bus::<Event>::new();
    let subs: Vec<_> = (0..4).map(|_| bus.subscribe("orders.>").unwrap()).collect();
    assert_eq!(bus.subscriber_count(), 4);
    for (i, s) in subs.into_iter().enumerate() {
        drop(s);
        assert_eq!(bus.subscriber_count(), 3 - i);
    }
    assert_eq!(bus.publish(ev(Kind::Placed, 0)).unwrap().matched, 0);
    assert_eq!(bus.snapshot().no_subscribers, 1);
}

#[test]
fn receivers_drain_then_disconnected() {
    let (bus, mut a) = bus_with_sub(">");
    let mut b = sub(&bus, ">", 2, Overflow::DropOldest);
    for i in 0..4 {
        bus.publish(ev(Kind::Cancelled, i)).unwrap();
    }
    bus.shutdown();
    assert_eq!(a.len(), 4);
    assert_eq!(seqs(&drain(&mut a)), [0, 1, 2, 3]);
    assert_eq!(a.try_recv(), Err(TryRecvError::Disconnected));
    assert_eq!(a.recv(), Err(RecvError::Disconnected));
    // A pending lag is still reported before the rest and the disconnect.
    assert_eq!(b.recv_timeout(TIMEOUT), Err(RecvTimeoutError::Lagged(2)));
    assert_eq!(b.recv_timeout(TIMEOUT).unwrap().seq, 2);
    assert_eq!(b.recv_timeout(TIMEOUT).unwrap().seq, 3);
    assert_eq!(b.recv_timeout(TIMEOUT), Err(RecvTimeoutError::Disconnected));
}

/// Closing is one atomic RMW on the ring: whichever of unsubscribe and
/// shutdown comes first closes it, and exactly one reports it.
#[test]
fn concurrent_unsubscribe_vs_shutdown() {
    let rounds = scaled(200, 3);
    let subs_per_round = 4;
    for _ in 0..rounds {
        let bus = Bus::<Event>::new();
        let barrier = Arc::new(Barrier::new(subs_per_round + 1));
        let handles: Vec<_> = (0..subs_per_round)
            .map(|_| {
                let s = bus.subscribe(">").unwrap();
                let barrier = Arc::clone(&barrier);
                thread::spawn(move || {
                    barrier.wait();
                    let closed_it = s.unsubscribe();
                    assert!(!s.unsubscribe());
                    assert!(s.is_closed());
                    closed_it
                })
            })
            .collect();
        barrier.wait();
        let report = bus.shutdown();
        let by_unsubscribe = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|&c| c)
            .count();
        assert_eq!(report.closed + by_unsubscribe, subs_per_round);
        assert_eq!(bus.subscriber_count(), 0);
        assert!(bus.shutdown().already_shut_down);
    }
}

/// Publishers racing shutdown: every publish either returns `Closed` or is
/// fully accounted for, and every accepted event is drained.
#[test]
#[cfg_attr(miri, ignore = "thread-heavy stress")]
fn publish_vs_shutdown() {
    let bus = Bus::<Event>::new();
    let mut s = sub(&bus, ">", 1 << 16, Overflow::DropNewest);
    let barrier = Arc::new(Barrier::new(3));
    let publishers: Vec<_> = (0..2u32)
        .map(|src| {
            let mut p = bus.publisher();
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                let mut accepted = 0u64;
                for i in 0.. {
                    match p.publish(ev_from(Kind::Login, src, i)) {
                        Ok(r) => accepted += u64::from(r.accepted),
                        Err(PublishError::Closed(_)) => break,
                        Err(e) => panic!("{e:?}"),
                    }
                }
                accepted
            })
        })
        .collect();
    barrier.wait();
    let mut received = 0u64;
    while received < 1000 {
        if s.recv_timeout(TIMEOUT).is_ok() {
            received += 1;
        }
    }
    bus.shutdown();
    let accepted: u64 = publishers.into_iter().map(|h| h.join().unwrap()).sum();
    received += s.iter().count() as u64;
    assert_eq!(received, accepted);
    assert_eq!(s.stats().delivered, accepted);
    assert_eq!(bus.snapshot().delivered, accepted);
}

/// The topic the stress publishers use for their `i`-th event.
fn topic_of(i: u64) -> &'static str {
    if i % 4 == 3 {
        "audit.login"
    } else {
        Kind::ALL[(i % 3) as usize].topic()
    }
}

#[derive(Default)]
struct Totals {
    published: u64,
    no_subscribers: u64,
    matched: u64,
    accepted: u64,
    dropped: u64,
}

/// Many publishers and a thread that keeps subscribing and unsubscribing.
/// At the end, with everything quiet, every counter adds up exactly.
#[test]
#[cfg_attr(miri, ignore = "thread-heavy stress")]
fn stress_small() {
    const PUBLISHERS: u32 = 3;
    let per_publisher: u64 = 5_000;
    let total = u64::from(PUBLISHERS) * per_publisher;
    let tally = Tally::new();
    let bus = Bus::<Event>::new();
    // Open throughout: exact per-subscription accounting.
    let mut all = sub(&bus, ">", total as usize, Overflow::DropNewest);
    let tiny = sub(&bus, ">", 1, Overflow::DropNewest);
    let orders = sub(&bus, "orders.*", 3, Overflow::DropOldest);
    let topic = bus.topic("audit.login").unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(PUBLISHERS as usize + 1));

    let churn = {
        let bus = bus.clone();
        let done = Arc::clone(&done);
        let barrier = Arc::clone(&barrier);
        thread::spawn(move || {
            barrier.wait();
            let patterns = ["orders.placed", "orders.*", ">", "audit.>", "*.login"];
            let (mut churned, mut dropped_any) = (0u32, 0u64);
            let mut i = 0usize;
            while !done.load(Ordering::Relaxed) || churned < 50 {
                i += 1;
                // Rings that never fill, so every count here is exact; drops
                // racing a close are `churned_drops_reach_bus_totals`' job.
                let cap = total as usize;
                let mut s = sub(
                    &bus,
                    patterns[i % patterns.len()],
                    cap,
                    Overflow::DropNewest,
                );
                for _ in 0..i % 7 {
                    thread::yield_now();
                }
                if i % 4 == 0 {
                    let _ = s.try_recv();
                }
                assert!(s.unsubscribe());
                let mut events = drain(&mut s);
                assert_eq!(s.try_recv(), Err(TryRecvError::Disconnected));
                let st = s.stats();
                assert_eq!(st.queued, 0);
                assert_eq!(
                    st.received, st.delivered,
                    "all delivered events were received"
                );
                // FIFO per publisher; contiguous when nothing was dropped.
                events.sort_by_key(|e| e.src);
                let mut by_src: HashMap<u32, Vec<u64>> = HashMap::new();
                for e in events {
                    by_src.entry(e.src).or_default().push(e.seq);
                }
                let pattern = Pattern::parse(patterns[i % patterns.len()]).unwrap();
                let next_match = |after: u64| {
                    (after + 1..)
                        .find(|&j| pattern.matches(topic_of(j)))
                        .unwrap()
                };
                for seqs in by_src.values() {
                    if st.dropped == 0 {
                        // The events routed while the subscription was open
                        // are a run of the publisher's matching events.
                        assert!(
                            seqs.windows(2).all(|w| w[1] == next_match(w[0])),
                            "{seqs:?}"
                        );
                    } else {
                        assert!(seqs.windows(2).all(|w| w[1] > w[0]), "{seqs:?}");
                    }
                }
                dropped_any += st.dropped;
                churned += 1;
            }
            (churned, dropped_any)
        })
    };

    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|src| {
            let mut p = bus.publisher();
            let topic = topic.clone();
            let barrier = Arc::clone(&barrier);
            let tally = Arc::clone(&tally);
            thread::spawn(move || {
                barrier.wait();
                let mut t = Totals::default();
                for i in 0..per_publisher {
                    let kind = Kind::ALL[(i % 3) as usize];
                    let mut e = tracked(kind, i, &tally);
                    e.src = src;
                    let r = match i % 4 {
                        0 | 1 => p.publish(e),
                        2 => p.publish_to(kind.topic(), e),
                        _ => p.publish_on(&topic, e),
                    }
                    .unwrap();
                    debug_assert_eq!(
                        topic_of(i),
                        if i % 4 == 3 {
                            topic.as_str()
                        } else {
                            kind.topic()
                        }
                    );
                    t.published += 1;
                    t.no_subscribers += u64::from(r.matched == 0);
                    t.matched += u64::from(r.matched);
                    t.accepted += u64::from(r.accepted);
                    t.dropped += u64::from(r.dropped);
                    assert_eq!(r.matched, r.accepted + r.dropped);
                }
                t
            })
        })
        .collect();

    let mut t = Totals::default();
    for h in publishers {
        let p = h.join().unwrap();
        t.published += p.published;
        t.no_subscribers += p.no_subscribers;
        t.matched += p.matched;
        t.accepted += p.accepted;
        t.dropped += p.dropped;
    }
    done.store(true, Ordering::Relaxed);
    let (churned, _) = churn.join().unwrap();
    assert!(churned >= 50);

    // Quiescent from here on.
    assert_eq!(t.published, total);
    assert_eq!(t.no_subscribers, 0, "`all` is always subscribed");
    let st = all.stats();
    assert_eq!((st.delivered, st.dropped), (total, 0));
    let mut next = [0u64; PUBLISHERS as usize];
    for e in drain(&mut all) {
        assert_eq!(e.seq, next[e.src as usize], "FIFO per publisher");
        next[e.src as usize] += 1;
    }
    assert!(next.iter().all(|&n| n == per_publisher));
    let st = tiny.stats();
    assert_eq!((st.delivered, st.dropped), (1, total - 1));
    let st = orders.stats();
    let routed_to_orders = (0..per_publisher)
        .filter(|i| i % 4 != 3 && i % 3 != 2)
        .count() as u64
        * u64::from(PUBLISHERS);
    assert_eq!(st.delivered + st.dropped, routed_to_orders);
    assert_eq!((st.delivered, st.queued), (3, 3));

    let snap = bus.snapshot();
    assert_eq!(snap.published, t.published);
    assert_eq!(snap.no_subscribers, t.no_subscribers);
    // Reports and subscription counters agree, retired subscriptions
    // included. Under DropOldest an overwrite counts as accepted by the
    // report and as dropped by the ring, hence the correction.
    let overwritten = st.dropped;
    assert_eq!(
        snap.delivered + snap.dropped,
        t.matched,
        "every routed event counted once"
    );
    assert_eq!(
        snap.dropped,
        t.dropped + overwritten,
        "drops: reports vs counters"
    );
    assert_eq!(
        snap.delivered,
        t.accepted - overwritten,
        "deliveries: reports vs counters"
    );
    assert_eq!(snap.subscriptions.len(), 3);
    assert_eq!(snap.queued, 1 + 3);

    drop((all, tiny, orders, topic, bus));
    tally.assert_all_dropped();
}

/// Subscriptions with full rings closing while publishers keep dropping
/// into them: every drop a publish report counts must reach the bus totals.
///
/// A publisher that found a ring full just before it was closed and folded
/// into the bus totals counts its drop after the fold; `Ring::fold`'s flag
/// bit routes such late drops to the bus totals directly.
#[test]
#[cfg_attr(miri, ignore = "thread-heavy stress")]
fn churned_drops_reach_bus_totals() {
    const PUBLISHERS: usize = 2;
    let per_publisher = 50_000u64;
    // The race is narrow: a few rounds make a failure very likely.
    for _round in 0..10 {
        let bus = Bus::<Event>::new();
        let done = Arc::new(AtomicBool::new(false));
        let churn = {
            let bus = bus.clone();
            let done = Arc::clone(&done);
            thread::spawn(move || {
                // Kept until the end, so their final counters can be read when
                // everything is quiet.
                let mut closed = Vec::new();
                let mut matched = 0u64;
                let mut i = 0usize;
                while !done.load(Ordering::Relaxed) {
                    i += 1;
                    let overflow = if i % 2 == 0 {
                        Overflow::DropNewest
                    } else {
                        Overflow::DropOldest
                    };
                    let s = sub(&bus, ">", 1, overflow);
                    matched += u64::from(bus.publish(ev(Kind::Login, 0)).unwrap().matched);
                    for _ in 0..i % 5 {
                        thread::yield_now();
                    }
                    s.unsubscribe();
                    closed.push(s);
                }
                (closed, matched)
            })
        };
        let publishers: Vec<_> = (0..PUBLISHERS as u32)
            .map(|src| {
                let mut p = bus.publisher();
                thread::spawn(move || {
                    let mut matched = 0u64;
                    for i in 0..per_publisher {
                        matched +=
                            u64::from(p.publish(ev_from(Kind::Placed, src, i)).unwrap().matched);
                    }
                    matched
                })
            })
            .collect();
        let mut matched: u64 = publishers.into_iter().map(|h| h.join().unwrap()).sum();
        done.store(true, Ordering::Relaxed);
        let (closed, churn_matched) = churn.join().unwrap();
        matched += churn_matched;

        // Quiescent from here on.
        let (delivered, dropped) = closed.iter().fold((0, 0), |(d, x), s| {
            let st = s.stats();
            (d + st.delivered, x + st.dropped)
        });
        assert_eq!(
            delivered + dropped,
            matched,
            "rings count every routed event"
        );
        let snap = bus.snapshot();
        assert!(snap.subscriptions.is_empty());
        assert_eq!(snap.delivered, delivered, "bus totals: delivered");
        assert_eq!(snap.dropped, dropped, "bus totals: dropped");
    }
}
