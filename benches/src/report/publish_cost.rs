//! Scenarios 10 to 12: what a publish costs the publishing thread, for every
//! peer, on one thread. 10: every queue full and never drained. 11: K = 4
//! queues drained between timed batches of 64 publishes (the drains not
//! timed). 12: no subscriber at all.

use std::{hint::black_box, time::Instant};

use crate::peers::{Item, Job, NotPossible, Peer, PeerRx, PeerTx};

use super::{
    BURST, Config, percentile,
    user_table::{UserRow, run_all},
};

/// Queue capacity in these scenarios.
const CAPACITY: usize = 1024;

/// Times `n` non-waiting publishes; ns per publish.
fn time_try_sends<T: Item>(tx: &mut impl PeerTx<T>, n: usize) -> f64 {
    let value = T::default();
    let start = Instant::now();
    for _ in 0..n {
        black_box(tx.try_send(black_box(value.clone())));
    }
    start.elapsed().as_nanos() as f64 / n.max(1) as f64
}

/// Scenario 10's run: ns per publish into `subscribers` full queues.
struct FullRings {
    subscribers: usize,
    publishes: usize,
}

impl Job<u64> for FullRings {
    type Out = Result<Vec<f64>, NotPossible>;

    fn run<P: Peer<u64>>(&mut self) -> Self::Out {
        let (mut tx, rx) = P::build(self.subscribers, CAPACITY, false)?;
        for i in 0..CAPACITY {
            tx.try_send(i as u64);
        }
        let ns = time_try_sends(&mut tx, self.publishes);
        drop(rx);
        Ok(vec![ns])
    }
}

pub(crate) fn full_rings(cfg: &Config, rows: &mut Vec<UserRow>) {
    for k in [1usize, 4, 16] {
        let mut job = FullRings {
            subscribers: k,
            publishes: cfg.iters * BURST,
        };
        let mut out = run_all::<u64, _>(cfg.rounds, &mut job).into_iter();
        let Some(ns) = out.next() else { continue };
        rows.push(UserRow {
            scenario: format!("10. full rings (never drained), u64, K={k}"),
            unit: "ns/publish",
            cells: ns,
            note: format!(
                "capacity {CAPACITY}, {} publishes per round; each peer refuses (tokio overwrites; the disruptor and bus refuse for all)",
                cfg.iters * BURST
            ),
        });
    }
}

/// Scenario 11's run: per-publish p50, p99 and p99.9 of timed batches.
struct PublishSide {
    batches: usize,
}

impl Job<u64> for PublishSide {
    type Out = Result<Vec<f64>, NotPossible>;

    fn run<P: Peer<u64>>(&mut self) -> Self::Out {
        let (mut tx, mut rx) = P::build(4, CAPACITY, false)?;
        let mut per_publish = Vec::with_capacity(self.batches);
        let mut refused = 0;
        // One untimed batch first: page faults, first touches.
        for i in 0..BURST {
            tx.try_send(i as u64);
        }
        rx.drain();
        for _ in 0..self.batches {
            let start = Instant::now();
            for i in 0..BURST {
                refused += black_box(tx.try_send(black_box(i as u64)));
            }
            per_publish.push(start.elapsed().as_nanos() as f64 / BURST as f64);
            black_box(rx.drain());
        }
        assert_eq!(refused, 0, "{}: a drained queue refused", P::NAME);
        per_publish.sort_by(f64::total_cmp);
        Ok([0.5, 0.99, 0.999]
            .iter()
            .map(|&p| percentile(&per_publish, p))
            .collect())
    }
}

pub(crate) fn publish_side(cfg: &Config, rows: &mut Vec<UserRow>) {
    let batches = cfg.samples / 5;
    let mut job = PublishSide { batches };
    let out = run_all::<u64, _>(cfg.rounds, &mut job);
    for (cells, name) in out.into_iter().zip(["p50", "p99", "p99.9"]) {
        rows.push(UserRow {
            scenario: format!(
                "11. publish side alone, K=4 drained between timed batches of {BURST}, {name}"
            ),
            unit: "ns/publish",
            cells,
            note: format!(
                "{batches} batches per round, each timed as a whole (two clock reads per {BURST} publishes) and divided by {BURST}; drains not timed"
            ),
        });
    }
}

/// Scenario 12's run: ns per publish with no subscriber.
struct NoSubscribers {
    publishes: usize,
}

impl Job<u64> for NoSubscribers {
    type Out = Result<Vec<f64>, NotPossible>;

    fn run<P: Peer<u64>>(&mut self) -> Self::Out {
        let (mut tx, rx) = P::build(0, CAPACITY, false)?;
        let ns = time_try_sends(&mut tx, self.publishes);
        drop(rx);
        Ok(vec![ns])
    }
}

pub(crate) fn no_subscribers(cfg: &Config, rows: &mut Vec<UserRow>) {
    let mut job = NoSubscribers {
        publishes: cfg.iters * BURST,
    };
    if let Some(cells) = run_all::<u64, _>(cfg.rounds, &mut job).into_iter().next() {
        rows.push(UserRow {
            scenario: "12. no subscribers".into(),
            unit: "ns/publish",
            cells,
            note: format!("{} publishes per round", cfg.iters * BURST),
        });
    }
}
