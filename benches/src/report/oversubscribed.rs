//! Scenario 14: lossless on oversubscribed cores. Every thread of a
//! workload is pinned (`sched_setaffinity`) to the same core set, so
//! publishers and receivers take turns on it and every wait is a real
//! sleep and wake-up. (a) One publisher and one `Block` subscription on one
//! core. (b) Four publishers and eight receivers in `recv()`, on one core
//! and on two. The peer is a crossbeam-channel `bounded` doing the same
//! work (blocking `send` to each receiver's channel).
//!
//! Besides the time, it counts the process's context switches
//! (`getrusage(RUSAGE_SELF)`: `ru_nvcsw + ru_nivcsw`) and the futex system
//! calls of the workload's threads (the `syscalls:sys_enter_futex`
//! tracepoint through `perf_event_open`, inherited by the workload's
//! threads; "n/a" where the kernel refuses).
//!
//! The measuring thread's own calls are counted apart and left out of the
//! futex row (its note gives their mean per peer): they are its `join`s,
//! and whether a `join` waits (one futex call) or finds the thread gone
//! depends on a race between this thread waking up on another core, tens
//! of microseconds on this machine, and the receiver's teardown on the
//! pinned core. In 14a that race decided the whole gap between evbus and
//! crossbeam: the workload threads made the same calls (a barrier wake,
//! and a receiver that parks before its publisher thread runs, woken by the
//! first publish), but evbus's receiver took about 20 µs longer to drop
//! its `Subscription` (unsubscribing from the registry, freeing the bus)
//! than crossbeam's takes to drop its `Receiver`, so the measuring thread's
//! second `join` waited 0.1 to 0.35 times more per window. Since the last
//! producer's drop closes the rings of its cached registry and an
//! unsubscribe on an abandoned bus leaves the registry alone (session 11),
//! the gap is about 6 µs, most of it arc-swap's per-thread registration
//! when the last handle frees the bus (`examples/futex_windows.rs` shows
//! the figures).
//!
//! Both peers are measured over the same window, and end the stream the
//! same way: the window opens before the bus (or the channels) is built
//! and closes after every thread is joined, and the stream ends when the
//! last publisher thread drops its handle (evbus: its `Publisher` or
//! `SoloPublisher`, the bus's last producer-side handle once the
//! workload's own `Bus` is dropped; crossbeam: its `Sender`s), not from the
//! measuring thread after it joined the publishers. Closing from the
//! measuring thread made evbus's receiver finish its ring, park, be woken
//! by `Bus::shutdown` and be waited for in `join`: up to three futex calls
//! in 14a that crossbeam's receiver, disconnected by its publisher on the
//! same core, never made.

use std::{
    sync::{Arc, Barrier},
    thread,
    time::{Duration, Instant},
};

use crate::{
    BenchKind, Msg,
    os::{FutexCounter, context_switches, pin_current_thread},
    peers::{NotPossible, PeerKind},
};
use evbus_core::{Bus, Filter, Overflow, SubscribeOptions, Subscription};

use super::{
    Config, median,
    user_table::{Cell, UserRow, empty_cells, index},
};

const CAPACITY: usize = 1024;
/// Far longer than a run: a timed-out `Block` is a failure, counted.
const BLOCK: Duration = Duration::from_secs(30);

/// One workload's cost.
#[derive(Debug, Clone, Copy)]
struct Cost {
    ms: f64,
    switches: Option<u64>,
    /// The workload threads' futex calls.
    futex: Option<u64>,
    /// The measuring thread's own futex calls (its `join`s).
    futex_measuring: Option<u64>,
    /// Deliveries that did not arrive.
    lost: u64,
}

/// Runs `work` (which spawns and joins its threads) under the counters.
fn measured(work: impl FnOnce() -> Result<u64, NotPossible>) -> Result<Cost, NotPossible> {
    let futex = FutexCounter::start();
    let own = FutexCounter::start_this_thread();
    let f0 = futex.as_ref().and_then(FutexCounter::read);
    let o0 = own.as_ref().and_then(FutexCounter::read);
    let s0 = context_switches();
    let start = Instant::now();
    let lost = work()?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    let s1 = context_switches();
    let f1 = futex.as_ref().and_then(FutexCounter::read);
    let o1 = own.as_ref().and_then(FutexCounter::read);
    let all = f0.zip(f1).map(|(a, b)| b - a);
    let measuring = o0.zip(o1).map(|(a, b)| b - a);
    Ok(Cost {
        ms,
        switches: s0.zip(s1).map(|(a, b)| b - a),
        futex: all.zip(measuring).map(|(a, m)| a.saturating_sub(m)),
        futex_measuring: measuring,
        lost,
    })
}

fn pin(cores: &[usize]) {
    // A core set this machine lacks leaves the thread unpinned; the
    // report's "cores" column then overstates the squeeze, it does not fail.
    let _ = pin_current_thread(cores);
}

fn block_sub(bus: &Bus<Msg<u64>>) -> Result<Subscription<Msg<u64>>, NotPossible> {
    bus.subscribe_with(
        Filter::kinds(&[BenchKind::Event]).expect("valid topic"),
        SubscribeOptions::new()
            .capacity(CAPACITY)
            .overflow(Overflow::Block(BLOCK)),
    )
    .map_err(crate::peers::not_possible)
}

/// Receives until the bus is shut down and drained; the count.
fn receive_all(mut sub: Subscription<Msg<u64>>, cores: Vec<usize>) -> thread::JoinHandle<u64> {
    thread::spawn(move || {
        pin(&cores);
        let mut got = 0;
        while sub.recv().is_ok() {
            got += 1;
        }
        got
    })
}

/// Spawns `publishers` threads pinned to `cores` that start together (a
/// barrier) and then run the work `each` makes for them (`each` runs on
/// the calling thread, once per publisher, before its thread starts).
fn spawn_publishers<T, W>(
    publishers: usize,
    cores: &[usize],
    mut each: impl FnMut() -> W,
) -> Vec<thread::JoinHandle<T>>
where
    W: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let start = Arc::new(Barrier::new(publishers));
    (0..publishers)
        .map(|_| {
            let cores = cores.to_vec();
            let start = Arc::clone(&start);
            let work = each();
            thread::spawn(move || {
                pin(&cores);
                start.wait();
                work()
            })
        })
        .collect()
}

/// evbus: `publishers` threads publish `per_publisher` events each into
/// `receivers` `Block` subscriptions, each received by its own thread in
/// `recv()`. `solo` uses `Bus::single_producer` (one publisher only).
fn evbus(
    publishers: usize,
    receivers: usize,
    per_publisher: usize,
    cores: &[usize],
    solo: bool,
) -> Result<Cost, NotPossible> {
    measured(|| {
        let (bus, mut solo_publisher) = if solo {
            let (bus, p) = Bus::single_producer().expect("valid kind table");
            (bus, Some(p))
        } else {
            (Bus::new(), None)
        };
        let subs = (0..receivers)
            .map(|_| block_sub(&bus))
            .collect::<Result<Vec<_>, _>>()?;
        let rx: Vec<_> = subs
            .into_iter()
            .map(|s| receive_all(s, cores.to_vec()))
            .collect();
        let tx = spawn_publishers(publishers, cores, || {
            // Each thread owns its handle and drops it when its work is
            // done, as each crossbeam publisher drops its senders.
            let mut solo = solo_publisher.take();
            let mut multi = bus.publisher();
            move || {
                let mut dropped = 0u64;
                for i in 0..per_publisher {
                    let report = match &mut solo {
                        Some(p) => p.publish(Msg(i as u64)),
                        None => multi.publish(Msg(i as u64)),
                    };
                    dropped += report.map_or(0, |r| u64::from(r.dropped));
                }
                dropped
            }
        });
        // As crossbeam's `drop(senders)`: from here the publishers' handles
        // are the bus's last producer-side handles, and the last of them to
        // go (at the end of its thread) shuts the bus down; receivers drain
        // what is buffered, then see the shutdown.
        drop(bus);
        let dropped: u64 = tx.into_iter().map(|h| h.join().expect("publisher")).sum();
        let got: u64 = rx.into_iter().map(|h| h.join().expect("receiver")).sum();
        let expected = (publishers * per_publisher * receivers) as u64;
        Ok((expected - got.min(expected)).max(dropped))
    })
}

/// crossbeam-channel: one `bounded` channel per receiver; each publisher
/// sends every event to every channel with the blocking `send`.
fn crossbeam(
    publishers: usize,
    receivers: usize,
    per_publisher: usize,
    cores: &[usize],
) -> Result<Cost, NotPossible> {
    measured(|| {
        let (senders, rxs): (Vec<_>, Vec<_>) = (0..receivers)
            .map(|_| crossbeam_channel::bounded::<u64>(CAPACITY))
            .unzip();
        let rx: Vec<_> = rxs
            .into_iter()
            .map(|r| {
                let cores = cores.to_vec();
                thread::spawn(move || {
                    pin(&cores);
                    let mut got = 0u64;
                    while r.recv().is_ok() {
                        got += 1;
                    }
                    got
                })
            })
            .collect();
        let tx = spawn_publishers(publishers, cores, || {
            let senders = senders.clone();
            move || {
                for i in 0..per_publisher {
                    for s in &senders {
                        s.send(i as u64).expect("receiver alive");
                    }
                }
            }
        });
        drop(senders);
        for h in tx {
            h.join().expect("publisher");
        }
        let got: u64 = rx.into_iter().map(|h| h.join().expect("receiver")).sum();
        let expected = (publishers * per_publisher * receivers) as u64;
        Ok(expected - got.min(expected))
    })
}

/// The mean of `figures` (not empty).
fn mean(figures: Vec<f64>) -> f64 {
    figures.iter().sum::<f64>() / figures.len() as f64
}

/// The three rows of one workload: time, context switches, futex calls.
fn push_rows(
    rows: &mut Vec<UserRow>,
    label: &str,
    runs: &[(PeerKind, Vec<Result<Cost, NotPossible>>)],
    note: &str,
) {
    let cell = |runs: &Vec<Result<Cost, NotPossible>>,
                pick: fn(&Cost) -> Option<f64>,
                summary: fn(Vec<f64>) -> f64| {
        let mut figures = Vec::new();
        for run in runs {
            match run {
                Ok(cost) => match pick(cost) {
                    Some(v) => figures.push(v),
                    None => return Cell::Text("n/a".into()),
                },
                Err(NotPossible(why)) => return Cell::Text(why.clone()),
            }
        }
        if figures.is_empty() {
            Cell::none()
        } else {
            Cell::Value(summary(figures))
        }
    };
    let lost: Vec<String> = runs
        .iter()
        .filter_map(|(kind, r)| {
            let lost: u64 = r
                .iter()
                .filter_map(|c| c.as_ref().ok())
                .map(|c| c.lost)
                .sum();
            (lost > 0).then(|| format!("{} {lost}", kind.name()))
        })
        .collect();
    let lost = if lost.is_empty() {
        "nothing lost".to_owned()
    } else {
        format!("LOST over all rounds: {}", lost.join(", "))
    };
    let measuring: Vec<String> = runs
        .iter()
        .filter_map(|(kind, r)| {
            let calls: Option<Vec<u64>> = r
                .iter()
                .map(|c| c.as_ref().ok().and_then(|c| c.futex_measuring))
                .collect();
            let calls = calls.filter(|c| !c.is_empty())?;
            let mean = calls.iter().sum::<u64>() as f64 / calls.len() as f64;
            Some(format!("{} {mean:.2}", kind.name()))
        })
        .collect();
    // Times are medians. Counts are means: a handful of calls, each of which
    // depends on which thread reaches the core first (a park and its wake,
    // a `join` that waits), so the median of a few small integers swings
    // the ratio from 0.6 to 2.5 between runs of the same build.
    for (what, unit, pick, summary, how) in [
        (
            "time",
            "ms",
            (|c: &Cost| Some(c.ms)) as fn(&Cost) -> Option<f64>,
            median as fn(Vec<f64>) -> f64,
            format!("{note}; time the median; {lost}"),
        ),
        (
            "context switches",
            "switches",
            |c: &Cost| c.switches.map(|v| v as f64),
            mean,
            "getrusage(RUSAGE_SELF) ru_nvcsw + ru_nivcsw, whole process; the mean".to_owned(),
        ),
        (
            "futex calls",
            "calls",
            |c: &Cost| c.futex.map(|v| v as f64),
            mean,
            format!(
                "perf_event_open on the syscalls:sys_enter_futex tracepoint, inherited by the workload's threads; the mean; the measuring thread's own calls (its joins, a race with the teardown) left out, their mean: {}",
                measuring.join(", ")
            ),
        ),
    ] {
        let mut cells = empty_cells();
        for (kind, r) in runs {
            cells[index(*kind)] = cell(r, pick, summary);
        }
        rows.push(UserRow {
            scenario: format!("14{label}, {what}"),
            unit,
            cells,
            note: how,
        });
    }
}

pub(crate) fn oversubscribed(cfg: &Config, rows: &mut Vec<UserRow>) {
    // A round takes tens of milliseconds: four per round of the run (20 by
    // default), so that the means of the counts settle (see `push_rows`).
    let rounds = 4 * cfg.rounds;
    // (a) one publisher, one Block subscription, one core.
    let n = cfg.pinned_events;
    let (mut e, mut s, mut c) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        e.push(evbus(1, 1, n, &[0], false));
        s.push(evbus(1, 1, n, &[0], true));
        c.push(crossbeam(1, 1, n, &[0]));
    }
    push_rows(
        rows,
        "a. lossless, 1 publisher + 1 receiver in recv(), both pinned to core 0",
        &[
            (PeerKind::Evbus, e),
            (PeerKind::EvbusSolo, s),
            (PeerKind::Crossbeam, c),
        ],
        &format!(
            "{n} events, capacity {CAPACITY}; evbus `Overflow::Block`, crossbeam `bounded` + `send`; {rounds} rounds"
        ),
    );
    // (b) 4 publishers, 8 receivers, on one core and on two.
    let per = cfg.pinned_events / 40;
    for cores in [&[0usize][..], &[0, 1]] {
        let (mut e, mut c) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            e.push(evbus(4, 8, per, cores, false));
            c.push(crossbeam(4, 8, per, cores));
        }
        let one_publisher = "n/a (one publisher by design)".to_owned();
        push_rows(
            rows,
            &format!(
                "b. lossless, 4 publishers + 8 receivers in recv(), pinned to {} core{}",
                cores.len(),
                if cores.len() == 1 { "" } else { "s" }
            ),
            &[
                (PeerKind::Evbus, e),
                (
                    PeerKind::EvbusSolo,
                    (0..rounds)
                        .map(|_| Err(NotPossible(one_publisher.clone())))
                        .collect(),
                ),
                (PeerKind::Crossbeam, c),
            ],
            &format!(
                "4 x {per} events, each to 8 receivers ({} deliveries), capacity {CAPACITY}; {rounds} rounds",
                4 * per * 8
            ),
        );
    }
}
