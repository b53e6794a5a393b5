//! Scenario 9: lossless fan-out between threads. One publisher thread (the
//! caller) publishes `n` events to `K` subscriptions, each publish waiting
//! until every queue took the event; one consumer thread drains all `K`
//! queues in turn (spinning 64 times on an empty pass, then yielding). `9c.`
//! runs the same deliveries on one thread: the ceiling of the two-thread run.

use std::{
    sync::{
        Arc, Barrier,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Instant,
};

use crate::{
    Payload64,
    peers::{Item, Job, NotPossible, Peer, PeerRx, PeerTx, back_off},
};

use super::{
    Config,
    user_table::{UserRow, run_all},
};

/// Ring capacity of every lossless queue.
const CAPACITY: usize = 1024;

/// One run: M deliveries per second and the deliveries lost.
struct LosslessFanout {
    subscribers: usize,
    publishes: usize,
}

impl<T: Item> Job<T> for LosslessFanout {
    type Out = Result<Vec<f64>, NotPossible>;

    fn run<P: Peer<T>>(&mut self) -> Self::Out {
        let (mut tx, mut rx) = P::build(self.subscribers, CAPACITY, true)?;
        let expected = self.subscribers * self.publishes;
        let done = Arc::new(AtomicBool::new(false));
        let barrier = Arc::new(Barrier::new(2));
        let (d, b) = (Arc::clone(&done), Arc::clone(&barrier));
        let consumer = thread::spawn(move || {
            b.wait();
            let mut got = 0;
            let mut idle = 0;
            loop {
                let n = rx.drain();
                got += n;
                if got >= expected {
                    break;
                }
                if n > 0 {
                    idle = 0;
                // Acquire: pairs with the Release store after the last
                // publish; a drain after it takes whatever is left.
                } else if d.load(Ordering::Acquire) {
                    got += rx.drain();
                    break;
                } else {
                    back_off(&mut idle);
                }
            }
            // Returned, so that dropping the queues is not timed.
            (got, rx)
        });
        let value = T::default();
        barrier.wait();
        let start = Instant::now();
        let mut lost = 0;
        for _ in 0..self.publishes {
            lost += tx.send(value.clone());
        }
        done.store(true, Ordering::Release);
        let (got, rx) = consumer.join().expect("consumer thread");
        let secs = start.elapsed().as_secs_f64();
        drop((tx, rx));
        Ok(vec![
            got as f64 / secs / 1e6,
            (expected - got.min(expected)).max(lost) as f64,
        ])
    }
}

/// The same deliveries as [`LosslessFanout`] made by one thread: it
/// publishes a burst of [`BURST`] events, then drains them, and again. No
/// event waits for another thread, so this is what the two-thread run could
/// reach if moving events between cores cost nothing: the ceiling that the
/// publish and drain paths themselves set.
struct OneThread {
    subscribers: usize,
    publishes: usize,
}

/// Events published before each drain of [`OneThread`]: a quarter of the
/// capacity, so no peer is ever full.
const BURST: usize = CAPACITY / 4;

impl<T: Item> Job<T> for OneThread {
    type Out = Result<Vec<f64>, NotPossible>;

    fn run<P: Peer<T>>(&mut self) -> Self::Out {
        let (mut tx, mut rx) = P::build(self.subscribers, CAPACITY, true)?;
        let value = T::default();
        let start = Instant::now();
        let (mut got, mut lost, mut published) = (0, 0, 0);
        while published < self.publishes {
            for _ in 0..BURST {
                lost += tx.send(value.clone());
            }
            published += BURST;
            got += rx.drain();
        }
        let secs = start.elapsed().as_secs_f64();
        let expected = self.subscribers * published;
        Ok(vec![
            got as f64 / secs / 1e6,
            (expected - got.min(expected)).max(lost) as f64,
        ])
    }
}

/// The rows of `job(k)` for K = 1, 4 and 16: its rate, named `scenario(k)`,
/// and whether any peer lost a delivery.
fn rows_for<T: Item, J: Job<T, Out = Result<Vec<f64>, NotPossible>>>(
    cfg: &Config,
    job: impl Fn(usize) -> J,
    scenario: impl Fn(usize) -> String,
    rows: &mut Vec<UserRow>,
) {
    for k in [1usize, 4, 16] {
        let mut out = run_all::<T, _>(cfg.rounds, &mut job(k)).into_iter();
        let (Some(rate), Some(lost)) = (out.next(), out.next()) else {
            continue;
        };
        let lost: Vec<String> = lost
            .iter()
            .filter_map(|c| match c {
                super::user_table::Cell::Value(v) if *v > 0.0 => Some(format!("{v:.0}")),
                _ => None,
            })
            .collect();
        rows.push(UserRow {
            scenario: scenario(k),
            unit: "M deliveries/s",
            cells: rate,
            note: format!(
                "{} publishes, capacity {CAPACITY}; higher is better; {}",
                cfg.lossless_publishes,
                if lost.is_empty() {
                    "nothing lost".to_owned()
                } else {
                    format!("LOST (median per peer): {}", lost.join(", "))
                }
            ),
        });
    }
}

pub(crate) fn lossless_fanout(cfg: &Config, rows: &mut Vec<UserRow>) {
    let publishes = cfg.lossless_publishes;
    let two_threads = |subscribers| LosslessFanout {
        subscribers,
        publishes,
    };
    let one_thread = |subscribers| OneThread {
        subscribers,
        publishes,
    };
    // The scenario's name for `payload` and K.
    let named = |scenario: &str, payload: &'static str| {
        let scenario = scenario.to_owned();
        move |k| format!("{scenario}, {payload}, K={k}")
    };
    let two = "9. lossless fan-out, 1 publisher thread, 1 consumer thread draining all K";
    rows_for::<u64, _>(cfg, two_threads, named(two, "u64"), rows);
    rows_for::<Payload64, _>(cfg, two_threads, named(two, "64 B"), rows);
    let one = format!(
        "9c. ceiling of 9.: the same deliveries on one thread (publish {BURST}, drain them, repeat)"
    );
    rows_for::<u64, _>(cfg, one_thread, named(&one, "u64"), rows);
    rows_for::<Payload64, _>(cfg, one_thread, named(&one, "64 B"), rows);
}
