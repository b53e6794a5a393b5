//! Ordering promises across threads: an accepted publish is visible to every
//! receive that happens after it, and a `Lagged(n)` comes before the first
//! event after its gap.

mod common;

use std::{
    sync::{Arc, Barrier},
    thread,
};

use common::{Event, Kind, ev, ev_from, scaled, sub};
use evbus_core::{Bus, Overflow, Subscription, TryRecvError};

/// Runs `body` on `threads` threads, each with a handle of one bus, its own
/// subscription to everything on it (room for two rounds of everyone's
/// publishes) and a barrier shared by all; returns their handles.
fn on_threads<R: Send + 'static>(
    threads: usize,
    body: impl Fn(usize, Bus<Event>, Subscription<Event>, Arc<Barrier>) -> R + Send + Sync + 'static,
) -> Vec<thread::JoinHandle<R>> {
    let bus = Bus::<Event>::new();
    let subs: Vec<_> = (0..threads)
        .map(|_| sub(&bus, ">", 2 * threads, Overflow::DropNewest))
        .collect();
    let barrier = Arc::new(Barrier::new(threads));
    let body = Arc::new(body);
    subs.into_iter()
        .enumerate()
        .map(|(t, own)| {
            let (bus, barrier, body) = (bus.clone(), Arc::clone(&barrier), Arc::clone(&body));
            thread::spawn(move || body(t, bus, own, barrier))
        })
        .collect()
}

/// Four threads each publish one event to every subscription, then
/// `try_recv` on their own: their own accepted event is in the ring, so the
/// answer cannot be `Empty` (crossbeam's array flavour gives the same
/// guarantee by waiting out a claim that is being written). Each through
/// its own `Publisher`: a second live one ends the one-producer answer of
/// step 5a, whose consumers then read `tail` again.
#[test]
fn linearizable() {
    const THREADS: usize = 4;
    let rounds = scaled(20_000, 5);
    let handles = on_threads(THREADS, move |t, bus, mut own, barrier| {
        let mut publisher = bus.publisher();
        // Failures are collected, not raised: a thread that panicked
        // would leave the others waiting at the barrier.
        let mut failures = Vec::new();
        for round in 0..rounds as u64 {
            barrier.wait();
            let report = publisher
                .publish(ev_from(Kind::Placed, t as u32, round))
                .unwrap();
            assert_eq!(report.accepted as usize, THREADS);
            let first = own.try_recv();
            if first.as_ref().map(|e| e.seq) != Ok(round) {
                failures.push(format!("round {round}: {first:?} with len {}", own.len()));
            }
            barrier.wait();
            // Every publish of the round has returned: all are here.
            let rest = own.try_iter().count();
            if first.is_ok() && rest != THREADS - 1 {
                failures.push(format!("round {round}: {rest} more"));
            }
            // Nobody publishes the next round before all have drained.
            barrier.wait();
            own.try_iter().for_each(drop);
        }
        failures
    });
    let failures: Vec<String> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert!(
        failures.is_empty(),
        "{} failures, first: {:?}",
        failures.len(),
        failures.first()
    );
}

/// `recv_timeout(0)` and `drain_with` see an accepted publish too.
#[test]
fn linearizable_drain() {
    const THREADS: usize = 3;
    let rounds = scaled(10_000, 4);
    let handles = on_threads(THREADS, move |t, bus, mut own, barrier| {
        let mut failures = 0;
        for round in 0..rounds as u64 {
            barrier.wait();
            bus.publish(ev_from(Kind::Login, t as u32, round)).unwrap();
            let mut seen = Vec::new();
            if t % 2 == 0 {
                own.drain_with(|e| seen.push(e.src));
            } else if let Ok(e) = own.recv_timeout(std::time::Duration::ZERO) {
                seen.push(e.src);
            }
            if seen.is_empty() {
                failures += 1;
            }
            barrier.wait();
            own.try_iter().for_each(drop);
            barrier.wait();
        }
        failures
    });
    let failures: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(
        failures, 0,
        "receives that missed their own accepted publish"
    );
}

/// With one `Publisher` at a time, a receive answers `Empty` from the slot
/// alone (step 5a); a close must still come through: after an unsubscribe
/// or a shutdown on another thread, the receiver takes what was buffered,
/// then `Disconnected`, never `Empty`. Each round's publisher is a new
/// handle, made after the last one went (still one at a time).
#[test]
fn a_close_ends_the_one_producer_empty_answer() {
    for round in 0..scaled(200, 4) as u64 {
        let bus = Bus::<Event>::new();
        let mut own = sub(&bus, ">", 4, Overflow::DropNewest);
        let by_shutdown = round % 2 == 0;
        let closer = {
            let (bus, unsubscriber) = (bus.clone(), own.unsubscriber());
            thread::spawn(move || {
                let mut publisher = bus.publisher();
                for seq in 0..2 {
                    publisher.publish(ev(Kind::Placed, seq)).unwrap();
                }
                drop(publisher);
                if by_shutdown {
                    bus.shutdown();
                } else {
                    assert!(unsubscriber.unsubscribe());
                }
            })
        };
        closer.join().unwrap();
        let got: Vec<_> = (0..3).map(|_| own.try_recv().map(|e| e.seq)).collect();
        assert_eq!(
            got,
            [Ok(0), Ok(1), Err(TryRecvError::Disconnected)],
            "round {round}, closed by {}",
            if by_shutdown {
                "shutdown"
            } else {
                "unsubscribe"
            }
        );
    }
}

/// Under `DropOldest`, with the publisher on another thread, every gap in
/// the sequence is announced by `Lagged(n)` before the first event after
/// it, and the lag counts add up to what was lost.
#[test]
fn lagged_comes_before_the_event_after_the_gap() {
    let events = scaled(200_000, 100) as u64;
    for capacity in [2, 3, 8] {
        let bus = Bus::<Event>::new();
        let mut s = sub(&bus, ">", capacity, Overflow::DropOldest);
        let producer = {
            let bus = bus.clone();
            thread::spawn(move || {
                let mut p = bus.publisher();
                for seq in 0..events {
                    p.publish(ev(Kind::Placed, seq)).unwrap();
                }
            })
        };
        let mut next = 0u64;
        let mut gaps = 0;
        loop {
            match s.try_recv() {
                Ok(e) => {
                    assert_eq!(
                        e.seq, next,
                        "capacity {capacity}: event {} arrived where {next} was expected \
                         (a gap without a Lagged before it)",
                        e.seq
                    );
                    next += 1;
                }
                Err(TryRecvError::Lagged(n)) => {
                    gaps += 1;
                    next += n;
                }
                Err(TryRecvError::Empty) => {
                    if producer.is_finished() && s.is_empty() {
                        break;
                    }
                    thread::yield_now();
                }
                Err(TryRecvError::Disconnected) => unreachable!(),
            }
        }
        producer.join().unwrap();
        // Take what is left, now that the producer is done.
        loop {
            match s.try_recv() {
                Ok(e) => {
                    assert_eq!(e.seq, next);
                    next += 1;
                }
                Err(TryRecvError::Lagged(n)) => next += n,
                Err(_) => break,
            }
        }
        assert_eq!(next, events, "capacity {capacity}: received + lagged");
        let _ = gaps;
    }
}
