//! The lease (`core/src/ring/lease.rs`): a multi-producer bus's only
//! `Publisher` pushes with plain stores until a second producer revokes the
//! lease. Whatever order producers come and go in, every event arrives
//! exactly once, each producer's in order, and the counters balance. The
//! loom models (`loom-tests/tests/lease.rs`) check the races; these check
//! the hand-overs between producers, and many threads at once.

mod common;

use std::{
    sync::{Arc, Barrier},
    thread,
    time::Duration,
};

use common::{Event as Ev, Kind, TIMEOUT, ev};
use evbus_core::{Bus, Filter, Overflow, Publisher, SubscribeOptions, Subscription};

/// `n` subscriptions to every kind, of capacity `cap` with `overflow`.
fn subscribe(bus: &Bus<Ev>, n: usize, cap: usize, overflow: Overflow) -> Vec<Subscription<Ev>> {
    let opts = SubscribeOptions::new().capacity(cap).overflow(overflow);
    (0..n)
        .map(|_| {
            bus.subscribe_with(Filter::pattern(">").unwrap(), opts.clone())
                .unwrap()
        })
        .collect()
}

/// Everything buffered in `sub`, by sequence number.
fn drain(sub: &mut Subscription<Ev>) -> Vec<u64> {
    std::iter::from_fn(|| sub.try_recv().ok().map(|e| e.seq)).collect()
}

/// Publishes `seq` through `publisher`, which must be accepted by `k` rings.
#[track_caller]
fn publish(publisher: &mut Publisher<Ev>, seq: u64, k: u32) {
    let report = publisher.publish(ev(Kind::Placed, seq)).unwrap();
    assert_eq!((report.accepted, report.dropped), (k, 0), "event {seq}");
}

#[test]
fn every_hand_over_between_producers_keeps_order_and_counts() {
    // The holder publishes; a second publisher revokes; the bus publishes;
    // the holder goes, and a later publisher (no lease to take now) goes on.
    // Rings of capacity 3 wrap several times through each hand-over.
    let bus = Bus::<Ev>::new();
    let mut subs = subscribe(&bus, 3, 3, Overflow::DropNewest);
    let mut got = vec![Vec::new(); subs.len()];
    let mut take = |subs: &mut Vec<Subscription<Ev>>| {
        for (sub, got) in subs.iter_mut().zip(&mut got) {
            got.extend(drain(sub));
        }
    };
    let mut holder = bus.publisher();
    for seq in 0..5 {
        publish(&mut holder, seq, 3);
        take(&mut subs);
    }
    let mut second = bus.publisher();
    for seq in 5..10 {
        publish(&mut holder, seq, 3);
        publish(&mut second, 100 + seq, 3);
        take(&mut subs);
    }
    for seq in 10..12 {
        assert_eq!(bus.publish(ev(Kind::Placed, seq)).unwrap().accepted, 3);
    }
    drop(holder);
    let mut third = bus.publisher();
    for seq in 12..16 {
        publish(&mut third, seq, 3);
        take(&mut subs);
    }
    take(&mut subs);
    let mut expected: Vec<u64> = (0..5).collect();
    for seq in 5..10 {
        expected.extend([seq, 100 + seq]);
    }
    expected.extend(10..16);
    for got in &got {
        assert_eq!(got, &expected);
    }
    drop((second, third));
    let snap = bus.snapshot();
    assert_eq!(snap.published, expected.len() as u64);
    assert_eq!(
        (snap.delivered, snap.dropped),
        (3 * expected.len() as u64, 0)
    );
}

#[test]
fn a_new_holder_goes_on_from_the_last_ones_position() {
    // Holders one after another, never two at once: the lease passes on
    // with each ring's position, through full rings and wrap-arounds.
    let bus = Bus::<Ev>::new();
    let mut subs = subscribe(&bus, 2, 2, Overflow::DropNewest);
    let mut seq = 0;
    for _ in 0..5 {
        let mut holder = bus.publisher();
        for _ in 0..3 {
            let report = holder.publish(ev(Kind::Placed, seq)).unwrap();
            // Two slots: the third publish of each holder finds them full.
            assert_eq!(report.matched, 2);
            seq += 1;
        }
        for sub in &mut subs {
            let got = drain(sub);
            assert_eq!(got, [seq - 3, seq - 2], "the two the rings had room for");
        }
    }
    for sub in &subs {
        let stats = sub.stats();
        assert_eq!((stats.delivered, stats.dropped), (10, 5));
    }
}

#[test]
fn full_rings_refuse_the_holder_exactly() {
    // The holder's memory of a full route (`full_route.rs`) reads a leased
    // ring's position from its cursor: refusals stay exact, and a drained
    // ring takes again.
    let bus = Bus::<Ev>::new();
    let mut subs = subscribe(&bus, 4, 2, Overflow::DropNewest);
    let mut holder = bus.publisher();
    for seq in 0..2 {
        publish(&mut holder, seq, 4);
    }
    for seq in 2..10 {
        let report = holder.publish(ev(Kind::Placed, seq)).unwrap();
        assert_eq!((report.accepted, report.dropped), (0, 4));
    }
    assert_eq!(drain(&mut subs[1]), [0, 1]);
    let report = holder.publish(ev(Kind::Placed, 10)).unwrap();
    assert_eq!((report.accepted, report.dropped), (1, 3));
    assert_eq!(drain(&mut subs[1]), [10]);
    let stats: Vec<_> = subs
        .iter()
        .map(|s| (s.stats().delivered, s.stats().dropped))
        .collect();
    assert_eq!(stats, [(2, 9), (3, 8), (2, 9), (2, 9)]);
}

/// One thread per producer kind racing the holder: the holder publishes
/// `n` events on its thread while a second producer (through `Bus`, or a
/// `Publisher` made on its thread) starts at a barrier and publishes `n`
/// more; one receiver per `Block` ring takes them all. Each receiver must
/// see each producer's events in order, all of them, none twice.
fn race_the_holder(through_bus: bool, cap: usize, rounds: usize) {
    let n: u64 = if cfg!(miri) { 12 } else { 300 };
    for _ in 0..rounds {
        let bus = Bus::<Ev>::new();
        let block = Overflow::Block(Duration::MAX);
        let subs = subscribe(&bus, 3, cap, block);
        let start = Arc::new(Barrier::new(2));
        let receivers: Vec<_> = subs
            .into_iter()
            .map(|mut sub| {
                thread::spawn(move || {
                    (0..2 * n)
                        .map(|_| sub.recv_timeout(TIMEOUT).expect("every event").seq)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut holder = bus.publisher();
        let holding = {
            let start = Arc::clone(&start);
            thread::spawn(move || {
                for seq in 0..n {
                    if seq == n / 3 {
                        start.wait();
                    }
                    assert_eq!(holder.publish(ev(Kind::Placed, seq)).unwrap().accepted, 3);
                }
            })
        };
        let other = {
            let bus = bus.clone();
            thread::spawn(move || {
                start.wait();
                let mut second = (!through_bus).then(|| bus.publisher());
                for seq in n..2 * n {
                    let event = ev(Kind::Placed, seq);
                    let report = match &mut second {
                        Some(p) => p.publish(event),
                        None => bus.publish(event),
                    };
                    assert_eq!(report.unwrap().accepted, 3);
                }
            })
        };
        holding.join().unwrap();
        other.join().unwrap();
        for receiver in receivers {
            let got = receiver.join().unwrap();
            let ours: Vec<u64> = got.iter().copied().filter(|&s| s < n).collect();
            let theirs: Vec<u64> = got.iter().copied().filter(|&s| s >= n).collect();
            assert_eq!(ours, (0..n).collect::<Vec<_>>());
            assert_eq!(theirs, (n..2 * n).collect::<Vec<_>>());
        }
    }
}

#[test]
fn a_bus_publish_racing_the_holder_on_block_rings_loses_nothing() {
    race_the_holder(true, 1, if cfg!(miri) { 1 } else { 20 });
    race_the_holder(true, 4, if cfg!(miri) { 1 } else { 20 });
}

#[test]
fn a_second_publisher_racing_the_holder_on_block_rings_loses_nothing() {
    race_the_holder(false, 1, if cfg!(miri) { 1 } else { 20 });
    race_the_holder(false, 4, if cfg!(miri) { 1 } else { 20 });
}
