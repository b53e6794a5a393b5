//! Fixed workloads of the user scenarios (issue 14) for
//! `valgrind --tool=callgrind`, whose instruction counts repeat exactly.
//!
//! `callgrind_scenarios lossless`: 1 M publishes to one `Overflow::Block`
//! subscription of capacity 128, drained on the same thread after every 64
//! publishes, so the ring is never full and nothing ever waits: the cost of
//! the lossless path itself. Measure `run_lossless`.
//!
//! `callgrind_scenarios full4`: 1 M publishes to four `DropNewest`
//! subscriptions of capacity 16, filled before the measured part and never
//! drained: the cost of refusing. Measure `run_full`. `full1`: the same
//! with one subscription.
//!
//! `callgrind_scenarios lossless-floor` and `full4-floor`: the same two
//! workloads on the rtrb fan-out of `bench-report` (one `rtrb` SPSC ring per
//! subscriber, nothing else), the floor that scenarios `9.` and `10.`
//! compare evbus with. Measure `run_lossless_floor` and `run_full_floor`.
//! Its wall time moves by up to 2 × between builds of the same code (code
//! layout); its instruction count does not, so these give a ratio to the
//! floor that repeats.
//!
//! `benches/callgrind.sh` runs them all, with `--toggle-collect` on the
//! function named. A binary apart from `callgrind_workload`, so that these
//! workloads cannot change how the committed `k4`/`k0` loops inline.

use std::{hint::black_box, time::Duration};

use evbus_benches::{
    BenchKind, Msg,
    peers::{Peer, PeerRx, PeerTx, RtrbPeer},
};
use evbus_core::{Bus, Filter, Overflow, Publisher, SubscribeOptions, Subscription};

const PUBLISHES: usize = 1_000_000;
const BURST: usize = 64;

fn subscribe(bus: &Bus<Msg<u64>>, capacity: usize, overflow: Overflow) -> Subscription<Msg<u64>> {
    bus.subscribe_with(
        Filter::kinds(&[BenchKind::Event]).expect("valid topic"),
        SubscribeOptions::new()
            .capacity(capacity)
            .overflow(overflow),
    )
    .expect("open bus")
}

/// Publishes in bursts of `BURST`, draining `sub` after each; the events
/// drained.
#[inline(never)]
fn run_lossless(publisher: &mut Publisher<Msg<u64>>, sub: &mut Subscription<Msg<u64>>) -> usize {
    let mut delivered = 0;
    let mut published = 0;
    while published < PUBLISHES {
        for i in 0..BURST {
            let report = publisher.publish(Msg(black_box(i as u64)));
            debug_assert!(report.is_ok_and(|r| r.dropped == 0));
        }
        published += BURST;
        delivered += sub.drain_with(|m| {
            black_box(m);
        });
    }
    delivered
}

/// Publishes into full rings; the refusals reported.
#[inline(never)]
fn run_full(publisher: &mut Publisher<Msg<u64>>) -> usize {
    let mut dropped = 0;
    for i in 0..PUBLISHES {
        if let Ok(report) = publisher.publish(Msg(black_box(i as u64))) {
            dropped += report.dropped as usize;
        }
    }
    dropped
}

/// `run_lossless` on the rtrb floor: the events drained.
#[inline(never)]
fn run_lossless_floor<Tx: PeerTx<u64>, Rx: PeerRx>(tx: &mut Tx, rx: &mut Rx) -> usize {
    let mut delivered = 0;
    let mut published = 0;
    while published < PUBLISHES {
        for i in 0..BURST {
            let lost = tx.send(black_box(i as u64));
            debug_assert_eq!(lost, 0);
        }
        published += BURST;
        delivered += rx.drain();
    }
    delivered
}

/// `run_full` on the rtrb floor: the refusals.
#[inline(never)]
fn run_full_floor<Tx: PeerTx<u64>>(tx: &mut Tx) -> usize {
    let mut dropped = 0;
    for i in 0..PUBLISHES {
        dropped += tx.try_send(black_box(i as u64));
    }
    dropped
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let bus = Bus::<Msg<u64>>::new();
    let mut publisher = bus.publisher();
    match mode.as_str() {
        "lossless" => {
            // Never full, so the timeout never runs out; it only names the
            // policy.
            let mut sub = subscribe(&bus, 2 * BURST, Overflow::Block(Duration::from_secs(1)));
            let delivered = run_lossless(&mut publisher, &mut sub);
            assert_eq!(delivered, PUBLISHES, "every publish delivered");
            println!("lossless: {PUBLISHES} publishes, {delivered} deliveries");
        }
        "full1" | "full4" => {
            let k = if mode == "full1" { 1 } else { 4 };
            let subs: Vec<_> = (0..k)
                .map(|_| subscribe(&bus, 16, Overflow::DropNewest))
                .collect();
            for i in 0..16 {
                let _ = publisher.publish(Msg(i));
            }
            let dropped = run_full(&mut publisher);
            assert_eq!(
                dropped,
                k * PUBLISHES,
                "every full ring refused every publish"
            );
            assert!(subs.iter().all(|s| s.len() == 16));
            println!("{mode}: {PUBLISHES} publishes, {dropped} refusals");
        }
        "lossless-floor" => {
            let (mut tx, mut rx) = RtrbPeer::<u64>::build(1, 2 * BURST, true).expect("rtrb");
            let delivered = run_lossless_floor(&mut tx, &mut rx);
            assert_eq!(delivered, PUBLISHES, "every publish delivered");
            println!("lossless-floor: {PUBLISHES} publishes, {delivered} deliveries");
        }
        "full4-floor" => {
            let (mut tx, _rx) = RtrbPeer::<u64>::build(4, 16, false).expect("rtrb");
            for i in 0..16 {
                assert_eq!(tx.try_send(i), 0, "room for the first 16");
            }
            let dropped = run_full_floor(&mut tx);
            assert_eq!(
                dropped,
                4 * PUBLISHES,
                "every full ring refused every publish"
            );
            println!("full4-floor: {PUBLISHES} publishes, {dropped} refusals");
        }
        other => {
            eprintln!(
                "usage: callgrind_scenarios lossless|full1|full4|lossless-floor|full4-floor (got {other:?})"
            );
            std::process::exit(2);
        }
    }
}
