//! Scenario 14a's workload, window by window, for finding where its futex
//! calls come from: one publisher and one `Block` subscription (or a
//! crossbeam-channel `bounded`) pinned to core 0, the stream ended by the
//! publisher's drop, the same threads and the same window as
//! `bench-report --only 14` (`src/report/oversubscribed.rs`). The peers
//! take turns (evbus, single-producer evbus, crossbeam), as in the report.
//!
//! ```text
//! cargo build --release -p evbus-benches --example futex_windows
//! chrt -f 10 target/release/examples/futex_windows [windows] [events]
//! ```
//!
//! For each peer it prints the mean futex calls per window, split by who
//! made them: the publisher thread (start: pinning and the start barrier;
//! the stream; the end: dropping its handle), the receiver thread (start:
//! until its first event; the stream; the end: dropping its handle), the
//! measuring thread's `join`s, and the rest (thread starts and exits).
//! Each thread counts its own calls (`FutexCounter::start_this_thread`),
//! which costs it a system call per phase. Then the end of the stream: the
//! events left in the ring at the last publish, and the microseconds from
//! the last publish to each step of the teardown (medians).
//!
//! To see each call's stack, record them with a call graph:
//!
//! ```text
//! chrt -f 10 perf record -e syscalls:sys_enter_futex \
//!     -e syscalls:sys_enter_getppid -e syscalls:sys_enter_getuid \
//!     --call-graph dwarf -o futex.data \
//!     target/release/examples/futex_windows 50
//! perf script -i futex.data
//! ```
//!
//! Each window starts with `getppid` called 1 (evbus), 2 (single-producer
//! evbus) or 3 (crossbeam) times and ends with one `getuid`: markers for
//! splitting the recorded calls by window.

use std::{
    cell::Cell,
    sync::{
        Arc, Barrier, OnceLock,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    thread,
    time::{Duration, Instant},
};

use evbus_benches::{
    BenchKind, Msg,
    os::{FutexCounter, pin_current_thread},
};
use evbus_core::{Bus, Filter, Overflow, SubscribeOptions};

const CAPACITY: usize = 1024;
const PEERS: [&str; 3] = ["evbus", "solo", "crossbeam"];

/// The receiver's count so far, read by the publisher at its last publish.
static RX_GOT: AtomicU64 = AtomicU64::new(0);
/// Events left in the ring at the last publish.
static LEFT: AtomicU64 = AtomicU64::new(0);
/// Nanoseconds since `EPOCH` at each step of the end of a window.
static STAMPS: [AtomicU64; STEPS.len()] = [const { AtomicU64::new(0) }; STEPS.len()];
static EPOCH: OnceLock<Instant> = OnceLock::new();
/// The steps `STAMPS` records, the first being the time origin.
const STEPS: [&str; 6] = [
    "last publish",
    "publisher's handle dropped",
    "receiver saw the end",
    "receiver unsubscribed (evbus)",
    "receiver's handle dropped",
    "join(publisher) returned",
];

fn stamp(step: usize) {
    let ns = EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64;
    STAMPS[step].store(ns, Relaxed);
}

/// Markers for `perf record` (see the module docs).
fn mark(kind: usize) {
    for _ in 0..=kind {
        // SAFETY: `getppid` takes no arguments and cannot fail.
        unsafe { libc::syscall(libc::SYS_getppid) };
    }
}

fn end_mark() {
    // SAFETY: `getuid` takes no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_getuid) };
}

fn pin() {
    let _ = pin_current_thread(&[0]);
}

/// A thread's own futex calls, by phase: start, stream, end.
struct Phases {
    counter: Option<FutexCounter>,
    calls: Cell<[u64; 3]>,
}

impl Phases {
    fn start() -> Self {
        Self {
            counter: FutexCounter::start_this_thread(),
            calls: Cell::new([0; 3]),
        }
    }

    /// Ends phase `i`; returns the calls of every phase so far.
    fn end(&self, i: usize) -> [u64; 3] {
        let now = self
            .counter
            .as_ref()
            .and_then(FutexCounter::read)
            .unwrap_or(0);
        let mut calls = self.calls.get();
        calls[i] = now - calls[..i].iter().sum::<u64>();
        self.calls.set(calls);
        calls
    }
}

/// One window: the events received, the publisher's and the receiver's
/// calls by phase, the measuring thread's calls in `join`.
struct Window {
    got: u64,
    publisher: [u64; 3],
    receiver: [u64; 3],
    joins: u64,
}

fn evbus(events: usize, solo: bool) -> Window {
    let (bus, solo_publisher) = if solo {
        let (bus, p) = Bus::<Msg<u64>>::single_producer().expect("kind table");
        (bus, Some(p))
    } else {
        (Bus::new(), None)
    };
    let sub = bus
        .subscribe_with(
            Filter::kinds(&[BenchKind::Event]).expect("valid topic"),
            SubscribeOptions::new()
                .capacity(CAPACITY)
                .overflow(Overflow::Block(Duration::from_secs(30))),
        )
        .expect("open bus");
    let rx = thread::spawn(move || {
        receive(
            sub,
            |sub| sub.recv().is_ok(),
            |sub| {
                sub.unsubscribe();
            },
        )
    });
    let multi = bus.publisher();
    let tx = thread::spawn(move || {
        // Fields drop in order: the single producer, then `multi`.
        publish((solo_publisher, multi), events, |(solo, multi), i| {
            let _ = match solo {
                Some(p) => p.publish(Msg(i)),
                None => multi.publish(Msg(i)),
            };
        })
    });
    drop(bus);
    join(tx, rx)
}

fn crossbeam(events: usize) -> Window {
    let (s, r) = crossbeam_channel::bounded::<u64>(CAPACITY);
    let rx = thread::spawn(move || receive(r, |r| r.recv().is_ok(), |_| {}));
    let tx = thread::spawn(move || publish(s, events, |s, i| s.send(i).expect("receiver alive")));
    join(tx, rx)
}

/// A receiver thread's body: receives with `recv` until the stream ends,
/// then runs `leave` (an unsubscribe) and drops `rx`, stamping each step.
/// The events received, and the calls by phase.
fn receive<R>(
    mut rx: R,
    mut recv: impl FnMut(&mut R) -> bool,
    leave: impl FnOnce(&mut R),
) -> (u64, [u64; 3]) {
    let calls = Phases::start();
    pin();
    let mut got = 0u64;
    while recv(&mut rx) {
        if got == 0 {
            calls.end(0);
        }
        got += 1;
        RX_GOT.store(got, Relaxed);
    }
    stamp(2);
    calls.end(1);
    leave(&mut rx);
    stamp(3);
    drop(rx);
    stamp(4);
    (got, calls.end(2))
}

/// A publisher thread's body: after a one-party barrier (as the report's
/// workload), sends `events` with `send`, then drops `tx` (which ends the
/// stream), stamping each step. The calls by phase.
fn publish<S>(mut tx: S, events: usize, mut send: impl FnMut(&mut S, u64)) -> [u64; 3] {
    let calls = Phases::start();
    pin();
    Arc::new(Barrier::new(1)).wait();
    calls.end(0);
    for i in 0..events {
        send(&mut tx, i as u64);
    }
    LEFT.store(events as u64 - RX_GOT.load(Relaxed), Relaxed);
    stamp(0);
    calls.end(1);
    drop(tx);
    stamp(1);
    calls.end(2)
}

/// Joins the publisher, then the receiver, as the report does.
fn join(tx: thread::JoinHandle<[u64; 3]>, rx: thread::JoinHandle<(u64, [u64; 3])>) -> Window {
    let calls = Phases::start();
    let publisher = tx.join().expect("publisher");
    stamp(5);
    let (got, receiver) = rx.join().expect("receiver");
    Window {
        got,
        publisher,
        receiver,
        joins: calls.end(0)[0],
    }
}

#[derive(Default)]
struct Sums {
    windows: u64,
    total: u64,
    publisher: [u64; 3],
    receiver: [u64; 3],
    joins: u64,
    left: u64,
    /// Microseconds from the last publish to each step, per window.
    steps: [Vec<f64>; STEPS.len()],
}

fn main() {
    let mut args = std::env::args().skip(1);
    let windows: usize = args.next().map_or(50, |a| a.parse().expect("windows"));
    let events: usize = args
        .next()
        .map_or(1_000_000, |a| a.parse().expect("events"));
    let mut sums: [Sums; 3] = Default::default();
    for _ in 0..windows {
        for (kind, sum) in sums.iter_mut().enumerate() {
            RX_GOT.store(0, Relaxed);
            let futex = FutexCounter::start();
            let f0 = futex.as_ref().and_then(FutexCounter::read);
            mark(kind);
            let w = match kind {
                0 => evbus(events, false),
                1 => evbus(events, true),
                _ => crossbeam(events),
            };
            end_mark();
            let f1 = futex.as_ref().and_then(FutexCounter::read);
            assert_eq!(w.got, events as u64, "every event arrived");
            sum.windows += 1;
            sum.total += f0.zip(f1).map_or(0, |(a, b)| b - a);
            for i in 0..3 {
                sum.publisher[i] += w.publisher[i];
                sum.receiver[i] += w.receiver[i];
            }
            sum.joins += w.joins;
            sum.left += LEFT.load(Relaxed);
            let origin = STAMPS[0].load(Relaxed) as f64;
            for (step, t) in sum.steps.iter_mut().enumerate() {
                t.push((STAMPS[step].load(Relaxed) as f64 - origin) / 1e3);
            }
        }
    }
    for (name, s) in PEERS.iter().zip(&sums) {
        let n = s.windows as f64;
        let per = |v: u64| v as f64 / n;
        let threads: u64 = s.publisher.iter().chain(&s.receiver).sum::<u64>() + s.joins;
        println!(
            "{name}: {:.2} futex calls per window: publisher start {:.2} / stream {:.2} / end {:.2}; \
             receiver start {:.2} / stream {:.2} / end {:.2}; measuring thread's joins {:.2}; \
             thread starts and exits {:.2}",
            per(s.total),
            per(s.publisher[0]),
            per(s.publisher[1]),
            per(s.publisher[2]),
            per(s.receiver[0]),
            per(s.receiver[1]),
            per(s.receiver[2]),
            per(s.joins),
            per(s.total.saturating_sub(threads)),
        );
        let steps: Vec<String> = STEPS
            .iter()
            .zip(&s.steps)
            .skip(1)
            .map(|(step, t)| {
                let mut t = t.clone();
                t.sort_by(f64::total_cmp);
                format!("{step} {:.1}", t[t.len() / 2])
            })
            .collect();
        println!(
            "  end of stream: {:.0} events left at the last publish; µs after it (medians): {}",
            per(s.left),
            steps.join(", ")
        );
    }
}
