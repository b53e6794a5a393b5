//! The per-subscription ring, exercised through the public API (the ring
//! itself is private): capacity validation, wraparound with capacities that
//! are not powers of two, the three overflow policies, counters, and payload
//! drops.

mod common;

use std::{
    sync::{Arc, Barrier},
    thread,
    time::Duration,
};

use common::{Event, Kind, TIMEOUT, Tally, drain, ev, ev_from, opts, scaled, seqs, sub, tracked};
use evbus_core::{
    Bus, EventKind, Filter, MAX_CAPACITY, MAX_RING_BYTES, Overflow, RecvError, RecvTimeoutError,
    SubscribeError, SubscribeOptions, Subscription, TryRecvError,
};

const N: usize = scaled(10_000, 50);
const LAPS: usize = scaled(1_000, 6);

// --- capacity validation -------------------------------------------------

#[test]
fn zero_capacity() {
    let bus = Bus::<Event>::new();
    let err = bus
        .subscribe_with(Filter::pattern(">").unwrap(), opts(0, Overflow::DropNewest))
        .unwrap_err();
    assert_eq!(err, SubscribeError::ZeroCapacity);
    assert_eq!(bus.subscriber_count(), 0);
    assert!(!err.to_string().is_empty());
}

#[test]
fn capacity_too_large() {
    let bus = Bus::<Event>::new();
    // The bound for this event type: `MAX_CAPACITY` slots within
    // `MAX_RING_BYTES` (a slot holds an event and an 8-byte stamp).
    let slot = std::mem::size_of::<Event>() + std::mem::size_of::<usize>();
    let max = MAX_CAPACITY.min(MAX_RING_BYTES / slot);
    for requested in [max + 1, MAX_CAPACITY + 1, MAX_CAPACITY * 2, usize::MAX] {
        for overflow in [Overflow::DropNewest, Overflow::DropOldest] {
            let err = bus
                .subscribe_with(Filter::pattern(">").unwrap(), opts(requested, overflow))
                .unwrap_err();
            assert_eq!(err, SubscribeError::CapacityTooLarge { requested, max });
        }
    }
    assert_eq!(bus.subscriber_count(), 0);
    assert!(bus.snapshot().subscriptions.is_empty());
}

/// An event so large that a ring of `MAX_CAPACITY` slots (over 2^48 bytes)
/// exceeds the address space, and a ring of 1024 is over `MAX_RING_BYTES`.
/// Never constructed (it would not fit on the stack of a test thread).
#[derive(Clone)]
struct Huge(#[allow(dead_code)] [u8; 1 << 20]);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HugeKind {
    Only,
}

impl EventKind for HugeKind {
    const ALL: &'static [Self] = &[HugeKind::Only];
    fn topic(self) -> &'static str {
        "huge"
    }
    fn index(self) -> usize {
        self as usize
    }
}

impl evbus_core::Event for Huge {
    type Kind = HugeKind;
    fn kind(&self) -> HugeKind {
        HugeKind::Only
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "Miri aborts on huge allocations instead of failing them"
)]
fn huge_allocation_fails_cleanly() {
    let bus = Bus::<Huge>::new();
    let err = bus
        .subscribe_with(
            Filter::pattern("huge").unwrap(),
            SubscribeOptions::new().capacity(MAX_CAPACITY),
        )
        .unwrap_err();
    // 1 GiB holds 1023 slots of 1 MiB and a stamp each.
    assert_eq!(
        err,
        SubscribeError::CapacityTooLarge {
            requested: MAX_CAPACITY,
            max: 1023
        }
    );
    // The bus is untouched.
    assert_eq!(bus.subscriber_count(), 0);
    assert!(!bus.is_shut_down());
    let snap = bus.snapshot();
    assert!(snap.subscriptions.is_empty());
    assert_eq!(snap.topics, 1);
}

#[test]
fn capacity() {
    let bus = Bus::<Event>::new();
    for cap in [1, 2, 3, 5, 7, 8, 1000, 1024] {
        let s = sub(&bus, ">", cap, Overflow::DropNewest);
        assert_eq!(s.capacity(), cap);
        assert_eq!(s.stats().capacity, cap);
    }
    let default = bus.subscribe(">").unwrap();
    assert_eq!(default.capacity(), evbus_core::DEFAULT_CAPACITY);
    assert_eq!(default.stats().overflow, Overflow::DropNewest);
}

// --- basic behaviour -----------------------------------------------------

#[test]
fn smoke() {
    let bus = Bus::<Event>::new();
    let mut s = sub(&bus, "orders.placed", 4, Overflow::DropNewest);
    assert_eq!(s.try_recv(), Err(TryRecvError::Empty));
    bus.publish(ev(Kind::Placed, 1)).unwrap();
    assert_eq!(s.try_recv(), Ok(ev(Kind::Placed, 1)));
    assert_eq!(s.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn len_empty_full() {
    for cap in [1, 3, 5, 7] {
        let bus = Bus::<Event>::new();
        let mut s = sub(&bus, ">", cap, Overflow::DropNewest);
        assert!(s.is_empty());
        assert_eq!(s.len(), 0);
        for i in 0..cap {
            let report = bus.publish(ev(Kind::Placed, i as u64)).unwrap();
            assert_eq!((report.matched, report.accepted, report.dropped), (1, 1, 0));
            assert_eq!(s.len(), i + 1);
            assert!(!s.is_empty());
        }
        // Full: the next one is dropped and the length stays at capacity.
        let report = bus.publish(ev(Kind::Placed, 99)).unwrap();
        assert_eq!((report.matched, report.accepted, report.dropped), (1, 0, 1));
        assert_eq!(s.len(), cap);
        assert_eq!(s.stats().queued, cap);
        for i in 0..cap {
            assert_eq!(s.try_recv().unwrap().seq, i as u64);
            assert_eq!(s.len(), cap - i - 1);
        }
        assert!(s.is_empty());
        assert_eq!(s.try_recv(), Err(TryRecvError::Empty));
    }
}

#[test]
fn fifo() {
    let bus = Bus::<Event>::new();
    let mut s = sub(&bus, ">", 64, Overflow::DropNewest);
    let kinds = [Kind::Placed, Kind::Cancelled, Kind::Login];
    for i in 0..60u64 {
        bus.publish(ev(kinds[i as usize % 3], i)).unwrap();
    }
    let got = drain(&mut s);
    assert_eq!(seqs(&got), (0..60).collect::<Vec<_>>());
    for (i, e) in got.iter().enumerate() {
        assert_eq!(e.kind, kinds[i % 3]);
    }
}

/// Capacities that are not powers of two leave gaps in the position
/// encoding; many laps around the buffer must keep FIFO order and counts.
#[test]
fn wraparound_non_power_of_two() {
    for overflow in [Overflow::DropNewest, Overflow::DropOldest] {
        for cap in [1, 3, 5, 7] {
            let bus = Bus::<Event>::new();
            let mut s = sub(&bus, ">", cap, overflow);
            let mut next = 0u64;
            let mut expected = 0u64;
            for lap in 0..LAPS {
                // Vary the fill level so head and tail wrap at every offset.
                let batch = lap % cap + 1;
                for _ in 0..batch {
                    let r = bus.publish(ev(Kind::Placed, next)).unwrap();
                    assert_eq!(r.accepted, 1, "cap {cap} lap {lap}");
                    next += 1;
                }
                assert_eq!(s.len(), batch);
                for _ in 0..batch {
                    assert_eq!(s.try_recv().unwrap().seq, expected, "cap {cap} lap {lap}");
                    expected += 1;
                }
                assert_eq!(s.try_recv(), Err(TryRecvError::Empty));
            }
            let st = s.stats();
            assert_eq!(st.delivered, next);
            assert_eq!(st.received, next);
            assert_eq!(st.dropped, 0);
            assert_eq!(st.queued, 0);
            assert_eq!(st.high_water, cap.min(LAPS));
        }
    }
}

/// Full-ring paths (drop or overwrite) at every wrap offset.
#[test]
fn wraparound_while_full() {
    for cap in [3, 5, 7] {
        let bus = Bus::<Event>::new();
        let mut newest = sub(&bus, ">", cap, Overflow::DropNewest);
        let mut oldest = sub(&bus, ">", cap, Overflow::DropOldest);
        let mut seq = 0u64;
        let mut refused = 0u64;
        let mut lagged = 0u64;
        for lap in 0..LAPS.min(200) {
            // Fill `newest` past capacity by `extra`, then take `take` from it.
            let extra = lap % 4;
            let take = lap % cap + 1;
            let fill = cap - newest.len() + extra;
            let start = seq;
            for _ in 0..fill {
                bus.publish(ev(Kind::Placed, seq)).unwrap();
                seq += 1;
            }
            refused += extra as u64;
            assert_eq!(newest.stats().dropped, refused);
            assert_eq!(newest.len(), cap);
            for _ in 0..take {
                assert!(newest.try_recv().unwrap().seq < start + (fill - extra) as u64);
            }
            // `oldest` keeps exactly the last `cap` events published.
            let mut kept = Vec::new();
            loop {
                match oldest.try_recv() {
                    Ok(e) => kept.push(e.seq),
                    Err(TryRecvError::Lagged(n)) => lagged += n,
                    Err(TryRecvError::Empty) => break,
                    Err(e) => panic!("unexpected {e:?}"),
                }
            }
            let expect: Vec<u64> = (seq.saturating_sub(cap as u64).max(start)..seq).collect();
            assert_eq!(kept, expect, "cap {cap} lap {lap}");
        }
        let st = oldest.stats();
        assert_eq!(st.delivered + st.dropped, seq);
        assert_eq!(st.dropped, lagged);
        assert_eq!(st.received + st.queued as u64, st.delivered);
        let st = newest.stats();
        assert_eq!(st.delivered + st.dropped, seq);
        assert_eq!(st.dropped, refused);
        assert_eq!(st.received + st.queued as u64, st.delivered);
    }
}

// --- overflow policies ---------------------------------------------------

#[test]
fn drop_newest_counts() {
    let bus = Bus::<Event>::new();
    let mut s = sub(&bus, ">", 3, Overflow::DropNewest);
    let mut reports = Vec::new();
    for i in 0..10 {
        reports.push(bus.publish(ev(Kind::Placed, i)).unwrap());
    }
    assert!(
        reports[..3]
            .iter()
            .all(|r| (r.matched, r.accepted, r.dropped) == (1, 1, 0))
    );
    assert!(
        reports[3..]
            .iter()
            .all(|r| (r.matched, r.accepted, r.dropped) == (1, 0, 1))
    );
    let st = s.stats();
    assert_eq!(
        (st.delivered, st.dropped, st.received, st.queued),
        (3, 7, 0, 3)
    );
    assert_eq!(seqs(&drain(&mut s)), [0, 1, 2]);
    let st = s.stats();
    assert_eq!(
        (st.delivered, st.dropped, st.received, st.queued),
        (3, 7, 3, 0)
    );
    // Room again: the next event is accepted.
    bus.publish(ev(Kind::Placed, 10)).unwrap();
    assert_eq!(s.try_recv().unwrap().seq, 10);
    let snap = bus.snapshot();
    assert_eq!((snap.delivered, snap.dropped), (4, 7));
}

#[test]
fn drop_oldest_lagged() {
    let bus = Bus::<Event>::new();
    let mut s = sub(&bus, ">", 3, Overflow::DropOldest);
    for i in 0..10 {
        let r = bus.publish(ev(Kind::Placed, i)).unwrap();
        // Overwriting still accepts the new event.
        assert_eq!((r.matched, r.accepted, r.dropped), (1, 1, 0));
    }
    assert_eq!(s.try_recv(), Err(TryRecvError::Lagged(7)));
    assert_eq!(s.try_recv().unwrap().seq, 7);
    assert_eq!(s.try_recv().unwrap().seq, 8);
    assert_eq!(s.try_recv().unwrap().seq, 9);
    assert_eq!(s.try_recv(), Err(TryRecvError::Empty));
    let st = s.stats();
    assert_eq!(
        (st.delivered, st.dropped, st.received, st.queued),
        (3, 7, 3, 0)
    );
    assert_eq!(st.high_water, 3);

    // A second round: the lag is reported relative to the last report.
    for i in 10..15 {
        bus.publish(ev(Kind::Placed, i)).unwrap();
    }
    assert_eq!(s.try_recv(), Err(TryRecvError::Lagged(2)));
    assert_eq!(seqs(&drain(&mut s)), [12, 13, 14]);
    let st = s.stats();
    assert_eq!((st.delivered, st.dropped, st.received), (6, 9, 6));

    // Lag through the blocking API.
    for i in 15..20 {
        bus.publish(ev(Kind::Placed, i)).unwrap();
    }
    assert_eq!(s.recv(), Err(RecvError::Lagged(2)));
    assert_eq!(s.recv().unwrap().seq, 17);
    for i in 20..24 {
        bus.publish(ev(Kind::Placed, i)).unwrap();
    }
    assert_eq!(s.recv_timeout(TIMEOUT), Err(RecvTimeoutError::Lagged(3)));
    assert_eq!(s.recv_timeout(TIMEOUT).unwrap().seq, 21);
}

#[test]
fn drop_oldest_lag_is_skipped_by_iterators_and_drain() {
    let bus = Bus::<Event>::new();
    let mut s = sub(&bus, ">", 2, Overflow::DropOldest);
    for i in 0..5 {
        bus.publish(ev(Kind::Login, i)).unwrap();
    }
    assert_eq!(seqs(&s.try_iter().collect::<Vec<_>>()), [3, 4]);
    for i in 5..9 {
        bus.publish(ev(Kind::Login, i)).unwrap();
    }
    let mut buf = Vec::new();
    assert_eq!(s.drain_into(&mut buf), 2);
    assert_eq!(seqs(&buf), [7, 8]);
    assert_eq!(s.stats().dropped, 5);
}

#[test]
fn block_lossless_spsc() {
    let n = scaled(10_000, 40);
    let bus = Bus::<Event>::new();
    let mut s = sub(&bus, ">", 2, Overflow::Block(TIMEOUT));
    let publisher = {
        let mut p = bus.publisher();
        thread::spawn(move || {
            for i in 0..n as u64 {
                let r = p.publish(ev(Kind::Placed, i)).unwrap();
                assert_eq!(r.accepted, 1, "event {i} was not accepted");
            }
        })
    };
    for i in 0..n as u64 {
        assert_eq!(s.recv_timeout(TIMEOUT).unwrap().seq, i);
    }
    publisher.join().unwrap();
    let st = s.stats();
    assert_eq!(
        (st.delivered, st.dropped, st.received),
        (n as u64, 0, n as u64)
    );
    assert!(st.high_water <= 2);
}

#[test]
fn block_lossless_mpsc() {
    let n = scaled(5_000, 20);
    let producers = 3;
    let bus = Bus::<Event>::new();
    let mut s = sub(&bus, ">", 3, Overflow::Block(TIMEOUT));
    let handles: Vec<_> = (0..producers)
        .map(|src| {
            let mut p = bus.publisher();
            thread::spawn(move || {
                for i in 0..n as u64 {
                    assert_eq!(p.publish(ev_from(Kind::Login, src, i)).unwrap().accepted, 1);
                }
            })
        })
        .collect();
    let mut next = vec![0u64; producers as usize];
    for _ in 0..n * producers as usize {
        let e = s.recv_timeout(TIMEOUT).unwrap();
        assert_eq!(e.seq, next[e.src as usize], "FIFO per publisher");
        next[e.src as usize] += 1;
    }
    for h in handles {
        h.join().unwrap();
    }
    assert!(next.iter().all(|&c| c == n as u64));
    assert_eq!(s.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(s.stats().dropped, 0);
}

/// With nobody receiving, a `Block` publisher gives up after the timeout
/// and counts the drop. Only the counts are asserted, never the time.
#[test]
fn block_drops_after_timeout() {
    let tally = Tally::new();
    let bus = Bus::<Event>::new();
    let mut s = sub(&bus, ">", 1, Overflow::Block(Duration::from_millis(1)));
    let r = bus.publish(tracked(Kind::Placed, 0, &tally)).unwrap();
    assert_eq!((r.matched, r.accepted, r.dropped), (1, 1, 0));
    for i in 1..4 {
        let r = bus.publish(tracked(Kind::Placed, i, &tally)).unwrap();
        assert_eq!((r.matched, r.accepted, r.dropped), (1, 0, 1));
    }
    let st = s.stats();
    assert_eq!((st.delivered, st.dropped, st.queued), (1, 3, 1));
    assert_eq!(st.high_water, 1);
    // The three timed-out events were dropped, the buffered one is alive.
    assert_eq!((tally.made(), tally.dropped()), (4, 3));
    assert_eq!(s.try_recv().unwrap().seq, 0);
    assert_eq!(s.try_recv(), Err(TryRecvError::Empty));
    tally.assert_all_dropped();
    // Room again: accepted without waiting.
    assert_eq!(bus.publish(ev(Kind::Placed, 9)).unwrap().accepted, 1);
}

/// A `Block` timeout on one ring does not lose events on the others.
#[test]
fn block_timeout_does_not_affect_other_rings() {
    let bus = Bus::<Event>::new();
    let blocked = sub(&bus, ">", 1, Overflow::Block(Duration::from_millis(1)));
    let mut other = sub(&bus, ">", 8, Overflow::DropNewest);
    for i in 0..5 {
        let r = bus.publish(ev(Kind::Cancelled, i)).unwrap();
        assert_eq!(r.matched, 2);
        assert_eq!(r.accepted + r.dropped, 2);
    }
    assert_eq!(seqs(&drain(&mut other)), [0, 1, 2, 3, 4]);
    assert_eq!(blocked.stats().dropped, 4);
}

/// A producer waiting on a full `Block` ring returns when the ring closes;
/// the event is then not counted as routed or dropped.
#[test]
fn block_producer_released_by_close() {
    let bus = Bus::<Event>::new();
    let mut s = sub(&bus, ">", 1, Overflow::Block(TIMEOUT));
    bus.publish(ev(Kind::Placed, 0)).unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let producer = {
        let bus = bus.clone();
        let barrier = Arc::clone(&barrier);
        thread::spawn(move || {
            barrier.wait();
            bus.publish(ev(Kind::Placed, 1)).unwrap()
        })
    };
    barrier.wait();
    assert!(s.unsubscribe());
    let report = producer.join().unwrap();
    assert_eq!(report.matched, 0);
    assert_eq!(s.stats().dropped, 0);
    assert_eq!(s.try_recv().unwrap().seq, 0);
    assert_eq!(s.try_recv(), Err(TryRecvError::Disconnected));
}

// --- counters ------------------------------------------------------------

#[test]
fn high_water() {
    let bus = Bus::<Event>::new();
    let mut s = sub(&bus, ">", 5, Overflow::DropNewest);
    assert_eq!(s.stats().high_water, 0);
    for i in 0..3 {
        bus.publish(ev(Kind::Placed, i)).unwrap();
    }
    assert_eq!(s.stats().high_water, 3);
    s.try_recv().unwrap();
    assert_eq!(s.stats().high_water, 3);
    bus.publish(ev(Kind::Placed, 3)).unwrap();
    assert_eq!(s.stats().high_water, 3);
    bus.publish(ev(Kind::Placed, 4)).unwrap();
    assert_eq!(s.stats().high_water, 4);
    drain(&mut s);
    // The mark never goes down.
    assert_eq!(s.stats().high_water, 4);
    assert_eq!(s.stats().queued, 0);
    for i in 0..7 {
        bus.publish(ev(Kind::Placed, 10 + i)).unwrap();
    }
    assert_eq!(s.stats().high_water, 5);
    drain(&mut s);
    assert_eq!(s.stats().high_water, 5);
}

/// The mark keeps the longest backlog a receiver met even when no stats
/// were read during it (the receiver's own sample, which looks ahead of
/// `head` before it reads the producers' position), across laps of rings
/// whose capacity is and is not a power of two, by `try_recv` and by
/// `drain_with`.
#[test]
fn high_water_sampled_by_the_receiver() {
    for cap in [1usize, 2, 3, 5, 8] {
        let bus = Bus::<Event>::new();
        let mut s = sub(&bus, ">", cap, Overflow::DropNewest);
        let mut longest = 0;
        let mut seq = 0;
        // Bursts that grow, shrink and grow again, over several laps.
        for (round, burst) in [1usize, 3, 2, 5, 1, 4, 8, 2, 6, 3].into_iter().enumerate() {
            let burst = burst.min(cap);
            for _ in 0..burst {
                bus.publish(ev(Kind::Placed, seq)).unwrap();
                seq += 1;
            }
            let taken = if round % 2 == 0 {
                drain(&mut s).len()
            } else {
                s.drain_with(drop)
            };
            assert_eq!(taken, burst, "cap {cap}, round {round}");
            longest = longest.max(burst);
            let st = s.stats();
            assert_eq!(st.queued, 0);
            assert_eq!(st.high_water, longest, "cap {cap}, round {round}");
        }
    }
}

// --- concurrency ---------------------------------------------------------

#[test]
fn spsc() {
    let bus = Bus::<Event>::new();
    let mut s = sub(&bus, ">", 16, Overflow::Block(TIMEOUT));
    let mut p = bus.publisher();
    let h = thread::spawn(move || {
        for i in 0..N as u64 {
            p.publish(ev(Kind::Login, i)).unwrap();
        }
    });
    for i in 0..N as u64 {
        assert_eq!(s.recv_timeout(TIMEOUT).unwrap().seq, i);
    }
    h.join().unwrap();
}

/// Overwrites racing with the consumer: the consumer's head CAS competes
/// with `force_push` for the oldest slot. Received one by one.
#[test]
#[cfg_attr(miri, ignore = "thread-heavy stress")]
fn drop_oldest_stress() {
    drop_oldest_race(true, |s, got| {
        loop {
            match s.try_recv() {
                Ok(e) => got.push(e.seq),
                Err(TryRecvError::Lagged(n)) => return n,
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return 0,
            }
        }
    });
}

/// As [`drop_oldest_stress`], drained with `drain_with`, which takes the
/// events in one loop (`Ring::pop_each_oldest`) and skips each lag report
/// where it falls: the lags are then in the subscription's `dropped`.
#[test]
#[cfg_attr(miri, ignore = "thread-heavy stress")]
fn drop_oldest_drain_stress() {
    drop_oldest_race(false, |s, got| {
        s.drain_with(|e| got.push(e.seq));
        0
    });
}

/// One publisher fills `DropOldest` rings of capacity 1, 3 and 4 with `N`
/// events while this thread takes them with `take` (which returns the lags
/// it reported, if it `reports_lags`); every event is received once, in
/// order, or counted as dropped, and the newest is never lost.
fn drop_oldest_race(
    reports_lags: bool,
    mut take: impl FnMut(&mut Subscription<Event>, &mut Vec<u64>) -> u64,
) {
    let tally = Tally::new();
    for cap in [1, 3, 4] {
        let bus = Bus::<Event>::new();
        let mut s = sub(&bus, ">", cap, Overflow::DropOldest);
        let barrier = Arc::new(Barrier::new(2));
        let producer = {
            let mut p = bus.publisher();
            let tally = Arc::clone(&tally);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                for i in 0..N as u64 {
                    assert_eq!(
                        p.publish(tracked(Kind::Placed, i, &tally))
                            .unwrap()
                            .accepted,
                        1
                    );
                }
            })
        };
        barrier.wait();
        let (mut got, mut lagged) = (Vec::new(), 0u64);
        while !producer.is_finished() || !s.is_empty() {
            let before = got.len();
            lagged += take(&mut s, &mut got);
            if got.len() == before {
                thread::yield_now();
            }
        }
        producer.join().unwrap();
        loop {
            let before = got.len();
            let lags = take(&mut s, &mut got);
            lagged += lags;
            if lags == 0 && got.len() == before {
                break;
            }
        }
        assert!(got.windows(2).all(|w| w[0] < w[1]), "FIFO: {got:?}");
        assert_eq!(
            got.last(),
            Some(&(N as u64 - 1)),
            "the newest event is never lost"
        );
        let st = s.stats();
        let received = got.len() as u64;
        assert_eq!((st.received, st.delivered), (received, received));
        assert_eq!(received + st.dropped, N as u64);
        let reported = if reports_lags { st.dropped } else { 0 };
        assert_eq!(lagged, reported, "{st:?}");
    }
    tally.assert_all_dropped();
}

// --- payload drops -------------------------------------------------------

#[test]
fn drops() {
    let tally = Tally::new();
    {
        let bus = Bus::<Event>::new();
        let mut newest = sub(&bus, ">", 2, Overflow::DropNewest);
        let mut oldest = sub(&bus, ">", 2, Overflow::DropOldest);
        let mut orders = sub(&bus, "orders.*", 3, Overflow::DropNewest);

        // Fan-out: one clone per subscriber beyond the first.
        bus.publish(tracked(Kind::Placed, 0, &tally)).unwrap();
        assert_eq!((tally.made(), tally.live()), (3, 3));

        // Received and dropped by the receiver.
        drop(newest.try_recv().unwrap());
        assert_eq!(tally.dropped(), 1);

        // newest: [1], oldest: [0, 1]; then oldest overwrites 0.
        bus.publish(tracked(Kind::Login, 1, &tally)).unwrap();
        bus.publish(tracked(Kind::Login, 2, &tally)).unwrap();
        assert_eq!(tally.made(), 7);
        assert_eq!(tally.dropped(), 2, "seq 0 overwritten in `oldest`");
        // newest is full: the event is refused without being cloned for it;
        // oldest overwrites 1 (dropped at overwrite time).
        let r = bus.publish(tracked(Kind::Login, 3, &tally)).unwrap();
        assert_eq!((r.matched, r.accepted, r.dropped), (2, 1, 1));
        assert_eq!(tally.made(), 8);
        assert_eq!(tally.dropped(), 3);
        assert_eq!(oldest.try_recv(), Err(TryRecvError::Lagged(2)));

        // Handed back by an error: the caller owns it.
        let back = bus.publish_to("bad..topic", tracked(Kind::Placed, 4, &tally));
        let event = back.unwrap_err().into_inner();
        assert_eq!(tally.live(), 6);
        drop(event);
        assert_eq!(tally.live(), 5);

        // Left in rings: dropped with the subscriptions and the bus.
        assert_eq!(orders.len(), 1);
        assert_eq!(newest.len(), 2);
        assert_eq!(oldest.len(), 2);
        drop(orders.try_recv().unwrap());
        assert_eq!(tally.live(), 4);
    }
    tally.assert_all_dropped();
}

#[test]
fn drops_left_in_ring_across_laps() {
    let tally = Tally::new();
    for cap in [3, 5, 7] {
        for overflow in [Overflow::DropNewest, Overflow::DropOldest] {
            let bus = Bus::<Event>::new();
            let mut s = sub(&bus, ">", cap, overflow);
            let mut p = bus.publisher();
            for i in 0..(cap * 4 + 1) as u64 {
                p.publish(tracked(Kind::Placed, i, &tally)).unwrap();
                if i % 3 == 0 {
                    let _ = s.try_recv();
                }
            }
            assert!(!s.is_empty());
            // Drop order: subscription first, then the publisher (which may
            // cache a registry still holding the ring), then the bus.
            drop(s);
            drop(p);
            drop(bus);
            tally.assert_all_dropped();
        }
    }
}

#[test]
fn drops_after_shutdown_with_buffered_events() {
    let tally = Tally::new();
    let bus = Bus::<Event>::new();
    let subs: Vec<_> = (0..3)
        .map(|_| sub(&bus, ">", 4, Overflow::DropNewest))
        .collect();
    for i in 0..6 {
        bus.publish(tracked(Kind::Cancelled, i, &tally)).unwrap();
    }
    assert_eq!(tally.live(), 12);
    let report = bus.shutdown();
    assert_eq!((report.closed, report.buffered), (3, 12));
    let err = bus
        .publish(tracked(Kind::Cancelled, 6, &tally))
        .unwrap_err();
    drop(err);
    assert_eq!(tally.live(), 12);
    drop(bus);
    assert_eq!(tally.live(), 12, "subscriptions keep their rings alive");
    drop(subs);
    tally.assert_all_dropped();
}
