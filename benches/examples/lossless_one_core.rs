//! One lossless publisher and one receiver, for counting context switches
//! and futex calls (issue 14, "lossless without the round trips"). Pin it to
//! one core to see the round trips a full ring costs:
//!
//! ```text
//! cargo build --release -p evbus-benches --example lossless_one_core
//! taskset -c 0 /usr/bin/time -v target/release/examples/lossless_one_core evbus
//! taskset -c 0 /usr/bin/time -v target/release/examples/lossless_one_core solo
//! taskset -c 0 /usr/bin/time -v target/release/examples/lossless_one_core crossbeam
//! ```
//!
//! `evbus`: a multi-producer bus, one `Overflow::Block` subscription of
//! capacity 1024, the receiver in `recv()`. `solo`: the same on a
//! single-producer bus. `crossbeam`: a `crossbeam_channel::bounded(1024)`,
//! `send` and `recv`. Each moves 1 M `u64`s and checks that every one
//! arrived, in order.

use std::time::{Duration, Instant};

use evbus_benches::{BenchKind, Msg};
use evbus_core::{Bus, Filter, Overflow, SubscribeOptions};

const EVENTS: u64 = 1_000_000;
const CAPACITY: usize = 1024;

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let start = Instant::now();
    let received = match mode.as_str() {
        "evbus" | "solo" => evbus(mode == "solo"),
        "crossbeam" => crossbeam(),
        other => {
            eprintln!("usage: lossless_one_core evbus|solo|crossbeam (got {other:?})");
            std::process::exit(2);
        }
    };
    assert_eq!(received, EVENTS, "every event arrived");
    println!("{mode}: {received} events in {:?}", start.elapsed());
}

fn evbus(solo: bool) -> u64 {
    let opts = SubscribeOptions::new()
        .capacity(CAPACITY)
        .overflow(Overflow::Block(Duration::MAX));
    let filter = Filter::kinds(&[BenchKind::Event]).expect("valid topic");
    let (bus, solo_publisher) = if solo {
        let (bus, p) = Bus::<Msg<u64>>::single_producer().expect("kind table");
        (bus, Some(p))
    } else {
        (Bus::<Msg<u64>>::new(), None)
    };
    let mut sub = bus.subscribe_with(filter, opts).expect("open bus");
    let receiver = std::thread::spawn(move || {
        let mut next = 0;
        while let Ok(Msg(v)) = sub.recv() {
            assert_eq!(v, next, "in order");
            next += 1;
        }
        next
    });
    match solo_publisher {
        Some(mut p) => {
            for i in 0..EVENTS {
                assert_eq!(p.publish(Msg(i)).expect("open bus").accepted, 1);
            }
        }
        None => {
            let mut p = bus.publisher();
            for i in 0..EVENTS {
                assert_eq!(p.publish(Msg(i)).expect("open bus").accepted, 1);
            }
        }
    }
    bus.shutdown();
    receiver.join().expect("receiver")
}

fn crossbeam() -> u64 {
    let (tx, rx) = crossbeam_channel::bounded::<u64>(CAPACITY);
    let receiver = std::thread::spawn(move || {
        let mut next = 0;
        while let Ok(v) = rx.recv() {
            assert_eq!(v, next, "in order");
            next += 1;
        }
        next
    });
    for i in 0..EVENTS {
        tx.send(i).expect("receiver alive");
    }
    drop(tx);
    receiver.join().expect("receiver")
}
