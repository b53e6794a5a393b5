//! Scenario 13: subscribe at scale. Builds 1 000, then 10 000, then
//! 100 000 subscriptions (distinct exact topics for evbus), while another
//! thread publishes without pause, and at each size times one subscribe +
//! unsubscribe. Building stops at a time budget (`--subscribe-budget`), and
//! the report says how far it got, so a run stays bounded whatever the
//! registry costs. Beside the wall-clock times, the note gives the
//! subscribing thread's CPU time (from `/proc/thread-self/schedstat`),
//! which other work on the machine inflates less: with two cores, the
//! publisher thread and anything else running share the subscriber's. (The
//! kernel updates that figure at scheduler ticks, so below about 10 ms it
//! is coarse.)

use std::{
    sync::{
        Arc, Barrier, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use crate::{Msg, os::thread_cpu, peers::PeerKind};
use evbus_core::{Bus, Filter, SubscribeOptions};

use super::{
    median,
    user_table::{Cell, Cells, UserRow, empty_cells, index},
};

const SIZES: [usize; 3] = [1_000, 10_000, 100_000];
/// Subscribe + unsubscribe rounds timed at each size (the median is kept).
const CHURN_TRIALS: usize = 9;

/// What one peer did at each size: the time to build up to it (from empty)
/// and the median subscribe + unsubscribe there; `None` past the budget.
struct Scaling {
    built: Vec<Option<Duration>>,
    /// The subscribing thread's CPU time for the same builds (`None` where
    /// unknown).
    built_cpu: Vec<Option<Duration>>,
    churn: Vec<Option<Duration>>,
    /// Subscriptions made when the budget ran out.
    reached: usize,
    /// Publishes the other thread made meanwhile.
    publishes: u64,
}

/// Runs `add(i)` up to each size within `budget`, and `churn_once(i)` at
/// each size reached; `publish` runs in a loop on another thread meanwhile.
fn scale(
    budget: Duration,
    mut add: impl FnMut(usize),
    mut churn_once: impl FnMut(usize),
    mut publish: impl FnMut(u64) + Send + 'static,
) -> Scaling {
    let stop = Arc::new(AtomicBool::new(false));
    let running = Arc::new(Barrier::new(2));
    let (s, r) = (Arc::clone(&stop), Arc::clone(&running));
    let publisher = thread::spawn(move || {
        // The clock starts once the publisher has published.
        publish(0);
        r.wait();
        let mut n = 1u64;
        while !s.load(Ordering::Relaxed) {
            publish(n);
            n += 1;
        }
        n
    });
    let mut built = Vec::new();
    let mut built_cpu = Vec::new();
    let mut churn = Vec::new();
    running.wait();
    let start = Instant::now();
    let cpu = thread_cpu();
    let mut made = 0;
    'sizes: for size in SIZES {
        while made < size {
            add(made);
            made += 1;
            if made % 64 == 0 && start.elapsed() > budget {
                break 'sizes;
            }
        }
        built.push(Some(start.elapsed()));
        built_cpu.push(
            thread_cpu()
                .zip(cpu)
                .map(|(now, then)| now.saturating_sub(then)),
        );
        let trials: Vec<f64> = (0..CHURN_TRIALS)
            .map(|t| {
                let one = Instant::now();
                churn_once(t);
                one.elapsed().as_nanos() as f64
            })
            .collect();
        churn.push(Some(Duration::from_nanos(median(trials) as u64)));
    }
    stop.store(true, Ordering::Relaxed);
    let publishes = publisher.join().expect("publisher thread");
    built.resize(SIZES.len(), None);
    built_cpu.resize(SIZES.len(), None);
    churn.resize(SIZES.len(), None);
    Scaling {
        built,
        built_cpu,
        churn,
        reached: made,
        publishes,
    }
}

fn evbus(budget: Duration) -> Scaling {
    let bus = Bus::<Msg<u64>>::new();
    let opts = SubscribeOptions::new().capacity(1);
    let mut keep = Vec::with_capacity(SIZES[SIZES.len() - 1]);
    let mut publisher = bus.publisher();
    let b = bus.clone();
    let o = opts.clone();
    scale(
        budget,
        |i| {
            let filter = Filter::pattern(&format!("sub.t{i}")).expect("valid topic");
            keep.push(b.subscribe_with(filter, o.clone()).expect("open bus"));
        },
        |i| {
            let filter = Filter::pattern(&format!("churn.t{i}")).expect("valid topic");
            // Dropping a subscription unsubscribes it.
            drop(bus.subscribe_with(filter, opts.clone()).expect("open bus"));
        },
        move |n| {
            let _ = publisher.publish(Msg(n));
        },
    )
}

fn tokio(budget: Duration) -> Scaling {
    let (tx, _rx) = tokio::sync::broadcast::channel::<u64>(1024);
    let mut keep = Vec::with_capacity(SIZES[SIZES.len() - 1]);
    let t = tx.clone();
    scale(
        budget,
        |_| keep.push(t.subscribe()),
        |_| drop(tx.subscribe()),
        {
            let tx = tx.clone();
            move |n| {
                let _ = tx.send(n);
            }
        },
    )
}

fn crossbeam(budget: Duration) -> Scaling {
    let senders: Arc<RwLock<Vec<crossbeam_channel::Sender<u64>>>> = Arc::default();
    let mut keep = Vec::with_capacity(SIZES[SIZES.len() - 1]);
    let s = Arc::clone(&senders);
    scale(
        budget,
        |_| {
            let (t, r) = crossbeam_channel::bounded(1);
            s.write().unwrap_or_else(|p| p.into_inner()).push(t);
            keep.push(r);
        },
        |_| {
            let (t, r) = crossbeam_channel::bounded(1);
            senders.write().unwrap_or_else(|p| p.into_inner()).push(t);
            drop(r);
            senders.write().unwrap_or_else(|p| p.into_inner()).pop();
        },
        {
            let senders = Arc::clone(&senders);
            move |n| {
                crate::publish_all(&senders, n);
            }
        },
    )
}

pub(crate) fn subscribe_scale(budget: Duration, rows: &mut Vec<UserRow>) {
    let mut built_rows: Vec<Cells> = SIZES.iter().map(|_| empty_cells()).collect();
    let mut churn_rows: Vec<Cells> = SIZES.iter().map(|_| empty_cells()).collect();
    let mut notes = Vec::new();
    let mut cpu_notes = Vec::new();
    for (kind, run) in [
        (PeerKind::Evbus, evbus as fn(Duration) -> Scaling),
        (PeerKind::Tokio, tokio),
        (PeerKind::Crossbeam, crossbeam),
    ] {
        let s = run(budget);
        let at = index(kind);
        for (size_at, size) in SIZES.iter().enumerate() {
            built_rows[size_at][at] = match s.built[size_at] {
                Some(d) => Cell::Value(d.as_secs_f64() * 1e3),
                None => Cell::Text(format!(
                    "> {} s ({} built)",
                    budget.as_secs(),
                    s.reached.min(*size)
                )),
            };
            churn_rows[size_at][at] = match s.churn[size_at] {
                Some(d) => Cell::Value(d.as_secs_f64() * 1e6),
                None => Cell::Text("not reached".into()),
            };
        }
        notes.push(format!("{} {}", kind.name(), s.publishes));
        let cpu: Vec<String> = s
            .built_cpu
            .iter()
            .zip(SIZES)
            .filter_map(|(cpu, size)| {
                Some(format!(
                    "{size}: {:.1} ms",
                    cpu.as_ref()?.as_secs_f64() * 1e3
                ))
            })
            .collect();
        if !cpu.is_empty() {
            cpu_notes.push(format!("{} {}", kind.name(), cpu.join(", ")));
        }
    }
    let fixed = "not possible: consumers are fixed when it is built";
    for cells in built_rows.iter_mut().chain(churn_rows.iter_mut()) {
        cells[index(PeerKind::Disruptor)] = Cell::Text(fixed.into());
        cells[index(PeerKind::Bus)] =
            Cell::Text("not possible: `add_rx` needs `&mut Bus`, which the publisher holds".into());
    }
    for (size_at, size) in SIZES.iter().enumerate() {
        rows.push(UserRow {
            scenario: format!("13. build {size} subscriptions, a publisher thread running"),
            unit: "ms",
            cells: built_rows[size_at].clone(),
            note: if size_at == 0 {
                format!(
                    "evbus: distinct exact topics `sub.t{{i}}`, capacity 1; tokio: `Sender::subscribe`; crossbeam: push a `bounded(1)` sender under the write lock; each peer stops at a {} s budget (`--subscribe-budget`); publishes meanwhile: {}; CPU time of the subscribing thread: {}",
                    budget.as_secs(),
                    notes.join(", "),
                    cpu_notes.join("; ")
                )
            } else {
                "as above".into()
            },
        });
    }
    for (size_at, size) in SIZES.iter().enumerate() {
        rows.push(UserRow {
            scenario: format!("13. one subscribe + unsubscribe at {size} subscriptions"),
            unit: "µs",
            cells: churn_rows[size_at].clone(),
            note: format!("median of {CHURN_TRIALS}, the publisher thread running"),
        });
    }
}
