//! What one event costs to publish and to drain, by overflow policy, payload
//! and mode, on one thread: four subscriptions of capacity 64, a burst of 64
//! publishes through a `Publisher` (or the `SoloPublisher`), then
//! `drain_with` on each subscription. The publish and the drain are timed
//! apart, so a receive-side cost shows up in its own column.
//!
//! ```text
//! cargo build --release -p evbus-benches --example drain_cost
//! chrt -f 10 target/release/examples/drain_cost [rounds]
//! ```
//!
//! The configurations take turns, round by round; each figure is the
//! median over the rounds, in ns per delivery (one event into one ring).
//! `bench-report`'s scenario 1 measures the sum for `DropNewest` rings
//! against the peers; this example splits it, and adds `DropOldest`, whose
//! receiver competes with evictions for every slot (a CAS per event).

use std::{hint::black_box, time::Instant};

use evbus_benches::{BenchKind, Msg, Payload64};
use evbus_core::{Bus, Filter, Overflow, SubscribeOptions, Subscription};

const SUBSCRIBERS: usize = 4;
const BURST: usize = 64;
const BURSTS: usize = 20_000;

/// One configuration: a bus, its publish and its subscriptions.
struct Case<T: Clone + Send + 'static> {
    name: String,
    publish: Box<dyn FnMut(Msg<T>)>,
    subs: Vec<Subscription<Msg<T>>>,
    /// Nanoseconds per delivery of each round: publish, drain.
    times: Vec<(f64, f64)>,
}

impl<T: Clone + Send + Default + 'static> Case<T> {
    fn new(payload: &str, policy: Overflow, solo: bool) -> Self {
        let options = SubscribeOptions::new().capacity(BURST).overflow(policy);
        let filter = Filter::kinds(&[BenchKind::Event]).expect("valid topic");
        let subscribe = |bus: &Bus<Msg<T>>| {
            (0..SUBSCRIBERS)
                .map(|_| {
                    bus.subscribe_with(filter.clone(), options.clone())
                        .expect("open bus")
                })
                .collect::<Vec<_>>()
        };
        let (publish, subs): (Box<dyn FnMut(Msg<T>)>, _) = if solo {
            let (bus, mut publisher) = Bus::single_producer().expect("a valid kind table");
            let subs = subscribe(&bus);
            let publish = move |m| {
                publisher.publish(m).expect("open bus");
            };
            (Box::new(publish), subs)
        } else {
            let bus = Bus::new();
            let subs = subscribe(&bus);
            let mut publisher = bus.publisher();
            let publish = move |m| {
                publisher.publish(m).expect("open bus");
            };
            (Box::new(publish), subs)
        };
        let mode = if solo { "single producer" } else { "Publisher" };
        Self {
            name: format!("{payload}, {policy:?}, {mode}"),
            publish,
            subs,
            times: Vec::new(),
        }
    }

    /// One round: `BURSTS` bursts, each published, then drained.
    fn round(&mut self) {
        let value = T::default();
        let (mut publish, mut drain) = (0u128, 0u128);
        for _ in 0..BURSTS {
            let start = Instant::now();
            for _ in 0..BURST {
                (self.publish)(Msg(black_box(value.clone())));
            }
            let published = Instant::now();
            let mut taken = 0;
            for sub in &mut self.subs {
                taken += sub.drain_with(|m| {
                    black_box(m);
                });
            }
            let drained = Instant::now();
            assert_eq!(taken, BURST * SUBSCRIBERS, "every event delivered");
            publish += (published - start).as_nanos();
            drain += (drained - published).as_nanos();
        }
        #[expect(clippy::cast_precision_loss, reason = "a ratio of times")]
        let per = |ns: u128| ns as f64 / (BURSTS * BURST * SUBSCRIBERS) as f64;
        self.times.push((per(publish), per(drain)));
    }

    fn report(&self) {
        let median = |pick: fn(&(f64, f64)) -> f64| {
            let mut v: Vec<f64> = self.times.iter().map(pick).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "| {} | {:.2} | {:.2} |",
            self.name,
            median(|t| t.0),
            median(|t| t.1)
        );
    }
}

/// The same rounds for either payload type.
trait Round {
    fn round(&mut self);
    fn report(&self);
}

impl<T: Clone + Send + Default + 'static> Round for Case<T> {
    fn round(&mut self) {
        Case::round(self);
    }

    fn report(&self) {
        Case::report(self);
    }
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map_or(Ok(5), |s| s.parse())
        .unwrap_or_else(|_| {
            eprintln!("usage: drain_cost [rounds]");
            std::process::exit(2);
        });
    let mut cases: Vec<Box<dyn Round>> = Vec::new();
    for policy in [Overflow::DropNewest, Overflow::DropOldest] {
        for solo in [false, true] {
            // A single-producer bus refuses `DropOldest` subscriptions.
            if solo && policy == Overflow::DropOldest {
                continue;
            }
            cases.push(Box::new(Case::<u64>::new("u64", policy, solo)));
            cases.push(Box::new(Case::<Payload64>::new("64 B", policy, solo)));
        }
    }
    for _ in 0..rounds.max(1) {
        for case in &mut cases {
            case.round();
        }
    }
    println!("| payload, policy, publishing handle | publish ns/delivery | drain ns/delivery |");
    println!("|---|---|---|");
    for case in &cases {
        case.report();
    }
}
