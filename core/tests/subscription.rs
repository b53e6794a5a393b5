//! The receiving side: non-blocking, blocking and timed receives, batches
//! and iterators, wake-ups across threads, stats, and trait bounds.

mod common;

use std::{
    sync::{Arc, Barrier, mpsc},
    thread,
    time::{Duration, Instant},
};

use common::{Event, Kind, TIMEOUT, bus_with_sub, drain, ev, ev_from, opts, scaled, seqs, sub};
use evbus_core::{
    Bus, EventKind, Filter, Iter, Overflow, PublishError, Publisher, RecvError, RecvTimeoutError,
    SubscribeOptions, Subscription, Topic, TryIter, TryRecvError,
};

const N: usize = scaled(10_000, 50);

#[test]
fn try_recv() {
    let (bus, mut s) = bus_with_sub("orders.*");
    assert_eq!(s.try_recv(), Err(TryRecvError::Empty));
    bus.publish(ev(Kind::Placed, 1)).unwrap();
    bus.publish(ev(Kind::Login, 2)).unwrap();
    bus.publish(ev(Kind::Cancelled, 3)).unwrap();
    assert_eq!(s.try_recv(), Ok(ev(Kind::Placed, 1)));
    assert_eq!(s.try_recv(), Ok(ev(Kind::Cancelled, 3)));
    assert_eq!(s.try_recv(), Err(TryRecvError::Empty));
    assert!(s.unsubscribe());
    assert_eq!(s.try_recv(), Err(TryRecvError::Disconnected));
    assert_eq!(
        TryRecvError::Empty.to_string(),
        "receiving on an empty subscription"
    );
}

#[test]
fn recv() {
    let (bus, mut s) = bus_with_sub(">");
    bus.publish(ev(Kind::Login, 1)).unwrap();
    assert_eq!(s.recv().unwrap().seq, 1);
    bus.shutdown();
    assert_eq!(s.recv(), Err(RecvError::Disconnected));
    assert_eq!(s.recv(), Err(RecvError::Disconnected));
}

#[test]
fn recv_timeout() {
    let (bus, mut s) = bus_with_sub(">");
    // Empty: times out (the duration itself is not measured).
    assert_eq!(
        s.recv_timeout(Duration::ZERO),
        Err(RecvTimeoutError::Timeout)
    );
    assert_eq!(
        s.recv_timeout(Duration::from_millis(1)),
        Err(RecvTimeoutError::Timeout)
    );
    bus.publish(ev(Kind::Login, 1)).unwrap();
    assert_eq!(s.recv_timeout(Duration::ZERO).unwrap().seq, 1);
    // A timeout too large for `Instant` means "no deadline".
    bus.publish(ev(Kind::Login, 2)).unwrap();
    assert_eq!(s.recv_timeout(Duration::MAX).unwrap().seq, 2);
    assert!(s.unsubscribe());
    assert_eq!(s.recv_timeout(TIMEOUT), Err(RecvTimeoutError::Disconnected));
    assert_eq!(
        RecvTimeoutError::Timeout.to_string(),
        "timed out waiting on a subscription"
    );
}

#[test]
fn recv_deadline() {
    let (bus, mut s) = bus_with_sub(">");
    let past = Instant::now();
    assert_eq!(s.recv_deadline(past), Err(RecvTimeoutError::Timeout));
    bus.publish(ev(Kind::Placed, 1)).unwrap();
    // Buffered events are returned even after the deadline.
    assert_eq!(s.recv_deadline(past).unwrap().seq, 1);
    bus.publish(ev(Kind::Placed, 2)).unwrap();
    assert_eq!(s.recv_deadline(Instant::now() + TIMEOUT).unwrap().seq, 2);
    bus.shutdown();
    assert_eq!(
        s.recv_deadline(Instant::now() + TIMEOUT),
        Err(RecvTimeoutError::Disconnected)
    );
}

#[test]
fn iter() {
    let (bus, mut s) = bus_with_sub(">");
    for i in 0..5 {
        bus.publish(ev(Kind::Placed, i)).unwrap();
    }
    bus.shutdown();
    // Drains what was buffered, then ends.
    assert_eq!(seqs(&s.iter().collect::<Vec<_>>()), [0, 1, 2, 3, 4]);
    assert_eq!(s.iter().next(), None);
    assert_eq!(format!("{:?}", s.iter()), "Iter { .. }");
}

#[test]
fn try_iter() {
    let (bus, mut s) = bus_with_sub(">");
    assert_eq!(s.try_iter().next(), None);
    for i in 0..3 {
        bus.publish(ev(Kind::Placed, i)).unwrap();
    }
    assert_eq!(seqs(&s.try_iter().collect::<Vec<_>>()), [0, 1, 2]);
    // Ends when empty, but the subscription stays open.
    bus.publish(ev(Kind::Placed, 3)).unwrap();
    assert_eq!(s.try_iter().map(|e| e.seq).collect::<Vec<_>>(), [3]);
    assert_eq!(format!("{:?}", s.try_iter()), "TryIter { .. }");
}

#[test]
fn recv_batch() {
    let (bus, mut s) = bus_with_sub(">");
    let mut buf = Vec::new();
    assert_eq!(s.recv_batch(&mut buf, 0), Ok(0));
    for i in 0..5 {
        bus.publish(ev(Kind::Placed, i)).unwrap();
    }
    assert_eq!(s.recv_batch(&mut buf, 3), Ok(3));
    assert_eq!(seqs(&buf), [0, 1, 2]);
    // Appends, and takes only what is there.
    assert_eq!(s.recv_batch(&mut buf, 10), Ok(2));
    assert_eq!(seqs(&buf), [0, 1, 2, 3, 4]);
    bus.publish(ev(Kind::Placed, 5)).unwrap();
    bus.shutdown();
    assert_eq!(s.recv_batch(&mut buf, 10), Ok(1));
    assert_eq!(s.recv_batch(&mut buf, 10), Err(RecvError::Disconnected));
    assert_eq!(buf.len(), 6);
}

#[test]
fn recv_batch_blocks_for_the_first_event() {
    let (bus, mut s) = bus_with_sub(">");
    let (tx, rx) = mpsc::channel();
    let receiver = thread::spawn(move || {
        let mut buf = Vec::new();
        let n = s.recv_batch(&mut buf, 4).unwrap();
        tx.send(()).unwrap();
        (n, buf)
    });
    bus.publish(ev(Kind::Placed, 7)).unwrap();
    rx.recv_timeout(TIMEOUT).expect("recv_batch returned");
    let (n, buf) = receiver.join().unwrap();
    assert!(n >= 1);
    assert_eq!(buf[0].seq, 7);
}

#[test]
fn drain_into() {
    let (bus, mut s) = bus_with_sub(">");
    let mut buf = vec![ev(Kind::Login, 100)];
    assert_eq!(s.drain_into(&mut buf), 0);
    for i in 0..4 {
        bus.publish(ev(Kind::Login, i)).unwrap();
    }
    assert_eq!(s.drain_into(&mut buf), 4);
    assert_eq!(seqs(&buf), [100, 0, 1, 2, 3]);
    assert!(s.is_empty());
    s.unsubscribe();
    assert_eq!(s.drain_into(&mut buf), 0);
}

// --- wake-ups ------------------------------------------------------------

#[test]
fn publish_wakes_parked_receiver() {
    let rounds = scaled(200, 3);
    let (bus, mut s) = bus_with_sub(">");
    let barrier = Arc::new(Barrier::new(2));
    let receiver = {
        let barrier = Arc::clone(&barrier);
        thread::spawn(move || {
            for i in 0..rounds as u64 {
                barrier.wait();
                // Nothing is buffered: this spins, then parks.
                assert_eq!(s.recv_timeout(TIMEOUT).unwrap().seq, i);
            }
            s
        })
    };
    let mut p = bus.publisher();
    for i in 0..rounds as u64 {
        barrier.wait();
        if i % 2 == 0 {
            thread::yield_now();
        }
        p.publish(ev(Kind::Placed, i)).unwrap();
    }
    let s = receiver.join().unwrap();
    assert_eq!(s.stats().received, rounds as u64);
}

#[test]
fn disconnect_wakes_receiver() {
    let bus = Bus::<Event>::new();
    let receivers: Vec<_> = (0..3)
        .map(|i| {
            let mut s = bus.subscribe(">").unwrap();
            let (tx, rx) = mpsc::channel();
            let h = thread::spawn(move || {
                let r = match i {
                    0 => s.recv().map(|e| e.seq).map_err(|e| format!("{e:?}")),
                    1 => s
                        .recv_timeout(TIMEOUT)
                        .map(|e| e.seq)
                        .map_err(|e| format!("{e:?}")),
                    _ => s
                        .iter()
                        .next()
                        .map(|e| e.seq)
                        .ok_or_else(|| "Disconnected".into()),
                };
                tx.send(()).unwrap();
                r
            });
            (h, rx)
        })
        .collect();
    let report = bus.shutdown();
    assert_eq!(report.closed, 3);
    for (h, rx) in receivers {
        rx.recv_timeout(TIMEOUT).expect("receiver woke up");
        assert_eq!(h.join().unwrap(), Err("Disconnected".to_string()));
    }
}

#[test]
fn shutdown_through_a_clone_wakes_receiver() {
    let (bus, mut s) = bus_with_sub(">");
    bus.publish(ev(Kind::Placed, 1)).unwrap();
    assert_eq!(s.recv().unwrap().seq, 1);
    // Dropping the bus handle does not close anything: the subscription
    // keeps the bus alive.
    let bus2 = bus.clone();
    drop(bus);
    let h = thread::spawn(move || {
        let r = s.recv_timeout(TIMEOUT);
        (r, s)
    });
    bus2.shutdown();
    let (r, s) = h.join().unwrap();
    assert_eq!(r, Err(RecvTimeoutError::Disconnected));
    assert!(s.is_closed());
}

#[test]
fn spsc() {
    let bus = Bus::<Event>::new();
    let mut s = sub(&bus, ">", 64, Overflow::Block(TIMEOUT));
    let h = {
        let mut p = bus.publisher();
        let bus = bus.clone();
        thread::spawn(move || {
            for i in 0..N as u64 {
                p.publish(ev(Kind::Placed, i)).unwrap();
            }
            bus.shutdown();
        })
    };
    let got: Vec<u64> = s.iter().map(|e| e.seq).collect();
    h.join().unwrap();
    assert_eq!(got, (0..N as u64).collect::<Vec<_>>());
}

#[test]
#[cfg_attr(miri, ignore = "thread-heavy stress")]
fn mpsc() {
    let producers = 4u32;
    let bus = Bus::<Event>::new();
    let mut s = sub(&bus, ">", 32, Overflow::Block(TIMEOUT));
    let handles: Vec<_> = (0..producers)
        .map(|src| {
            let mut p = bus.publisher();
            thread::spawn(move || {
                for i in 0..N as u64 {
                    let kind = Kind::ALL[i as usize % 3];
                    p.publish(ev_from(kind, src, i)).unwrap();
                }
            })
        })
        .collect();
    let mut next = vec![0u64; producers as usize];
    let mut batch = Vec::new();
    let mut total = 0;
    while total < N * producers as usize {
        batch.clear();
        total += s.recv_batch(&mut batch, 16).unwrap();
        for e in &batch {
            assert_eq!(e.seq, next[e.src as usize], "FIFO per publisher");
            next[e.src as usize] += 1;
        }
    }
    for h in handles {
        h.join().unwrap();
    }
    assert!(next.iter().all(|&n| n == N as u64));
    let st = s.stats();
    assert_eq!(
        (st.delivered, st.received, st.dropped),
        (total as u64, total as u64, 0)
    );
}

/// A subscriber that never reads does not slow down or starve the others.
#[test]
fn fairness() {
    let bus = Bus::<Event>::new();
    let slow = sub(&bus, ">", 1, Overflow::DropNewest);
    let mut fast = sub(&bus, ">", 8, Overflow::DropNewest);
    let mut got = Vec::new();
    for i in 0..scaled(1000, 20) as u64 {
        bus.publish(ev(Kind::Cancelled, i)).unwrap();
        got.push(fast.try_recv().unwrap().seq);
    }
    assert_eq!(got.len(), scaled(1000, 20));
    assert!(got.windows(2).all(|w| w[1] == w[0] + 1));
    assert_eq!(slow.stats().dropped, got.len() as u64 - 1);
    assert_eq!(fast.stats().dropped, 0);
}

// --- stats ---------------------------------------------------------------

#[test]
fn stats_fields() {
    let bus = Bus::<Event>::new();
    let mut s = bus
        .subscribe_with(
            Filter::pattern("orders.*")
                .unwrap()
                .or(Filter::kinds(&[Kind::Login]).unwrap()),
            opts(3, Overflow::DropOldest).name("audit-trail"),
        )
        .unwrap();
    let other = bus.subscribe(">").unwrap();
    assert_ne!(s.id(), other.id());
    let st = s.stats();
    assert_eq!(st.id, s.id());
    assert_eq!(st.name.as_deref(), Some("audit-trail"));
    assert_eq!(st.filter, ["orders.*", "audit.login"]);
    assert_eq!((st.capacity, st.overflow), (3, Overflow::DropOldest));
    assert_eq!(
        (
            st.delivered,
            st.received,
            st.dropped,
            st.queued,
            st.high_water
        ),
        (0, 0, 0, 0, 0)
    );
    assert!(!st.closed);

    for i in 0..5 {
        bus.publish(ev(Kind::ALL[i % 3], i as u64)).unwrap();
    }
    assert_eq!(s.try_recv(), Err(TryRecvError::Lagged(2)));
    s.try_recv().unwrap();
    let st = s.stats();
    assert_eq!(
        (
            st.delivered,
            st.received,
            st.dropped,
            st.queued,
            st.high_water
        ),
        (3, 1, 2, 2, 3)
    );
    assert_eq!(st.delivered, st.received + st.queued as u64);
    s.unsubscribe();
    let st = s.stats();
    assert!(st.closed && s.is_closed());
    assert_eq!(st.queued, 2);
    drain(&mut s);
    assert_eq!(s.stats().received, 3);
    assert_eq!(
        SubscribeOptions::new().name("x").get_name(),
        Some("x"),
        "options keep the name"
    );
}

// --- trait bounds --------------------------------------------------------

/// An event type without `Debug`, `PartialEq` or `Sync`.
#[derive(Clone)]
struct Opaque(#[allow(dead_code)] std::cell::Cell<u8>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpaqueKind {
    Only,
}
impl EventKind for OpaqueKind {
    const ALL: &'static [Self] = &[OpaqueKind::Only];
    fn topic(self) -> &'static str {
        "opaque"
    }
    fn index(self) -> usize {
        0
    }
}
impl evbus_core::Event for Opaque {
    type Kind = OpaqueKind;
    fn kind(&self) -> OpaqueKind {
        OpaqueKind::Only
    }
}

#[test]
fn debug_does_not_need_event_debug() {
    let bus = Bus::<Opaque>::new();
    let mut s = bus.subscribe(">").unwrap();
    assert!(format!("{s:?}").starts_with("Subscription { id: "));
    assert_eq!(format!("{bus:?}"), "Bus { .. }");
    assert_eq!(format!("{:?}", bus.publisher()), "Publisher { .. }");
    assert_eq!(format!("{:?}", s.iter()), "Iter { .. }");
    assert_eq!(format!("{:?}", s.try_iter()), "TryIter { .. }");
    bus.shutdown();
    let err = bus.publish(Opaque(0.into())).unwrap_err();
    assert_eq!(format!("{err:?}"), "Closed(..)");
    assert_eq!(err.to_string(), "publishing on a closed bus");
    let err: PublishError<Opaque> = bus.publish_to("a..b", Opaque(0.into())).unwrap_err();
    assert_eq!(format!("{err:?}"), "Closed(..)");
}

#[test]
fn send_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Bus<Event>>();
    send_sync::<Publisher<Event>>();
    send_sync::<Subscription<Event>>();
    send_sync::<Topic>();
    send_sync::<evbus_core::BusSnapshot>();
    send_sync::<PublishError<Event>>();
    // Only `Send` is required of the event.
    send_sync::<Bus<Opaque>>();
    send_sync::<Publisher<Opaque>>();
    send_sync::<Subscription<Opaque>>();
    send::<Iter<'static, Event>>();
    send::<TryIter<'static, Event>>();
}
