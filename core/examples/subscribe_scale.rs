//! Subscribe at scale: the time to build N subscriptions, one subscribe +
//! unsubscribe with N in place, and the publish cost with N non-matching
//! patterns. A measurement, not a test; run it in release:
//!
//! ```text
//! cargo run --release -p evbus-core --example subscribe_scale -- 1000 10000 100000
//! cargo run --release -p evbus-core --example subscribe_scale -- --publisher --literal 100000
//! ```
//!
//! Times are wall-clock and, in brackets, this thread's CPU time (from
//! `/proc/thread-self/schedstat`), which a busy machine inflates less.
//!
//! Every subscription has its own pattern that no publish matches, half of
//! them literal (`load.N`), half wildcards (`load.N.*`) (all literal with
//! `--literal`, as in `bench-report`'s scenario 13), with a ring of 4
//! slots; one extra subscription takes the published kind. With
//! `--publisher`, another thread publishes without pause while the
//! subscriptions are built and churned (scenario 13's setting), and the
//! report gives its publishes and its CPU time. With `--scattered`, the
//! numbers in successive patterns are in no order (a permutation), rather
//! than in sequence. With `--build-only`, the
//! program stops once the subscriptions are built (for a profile of that
//! phase alone).

use std::{
    hint::black_box,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Instant,
};

use evbus_core::{Bus, Event, EventKind, Filter, SubscribeOptions, Subscription};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tick,
}

impl EventKind for Kind {
    const ALL: &'static [Self] = &[Kind::Tick];
    fn topic(self) -> &'static str {
        "clock.tick"
    }
    fn index(self) -> usize {
        0
    }
}

#[derive(Debug, Clone)]
struct Tick(u64);

impl Event for Tick {
    type Kind = Kind;
    fn kind(&self) -> Kind {
        Kind::Tick
    }
}

/// This thread's time on a CPU so far, in seconds (0 where unknown).
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0.0, |ns| ns as f64 / 1e9)
}

/// This process's minor page faults so far (0 where unknown).
fn minor_faults() -> u64 {
    // Field 10 of /proc/self/stat, after the parenthesised command name.
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 2..];
            rest.split_whitespace().nth(7)?.parse().ok()
        })
        .unwrap_or(0)
}

/// Whether every pattern is literal (`--literal`).
static LITERAL: AtomicBool = AtomicBool::new(false);
/// Whether the numbers in successive patterns are scattered (`--scattered`)
/// rather than in sequence.
static SCATTERED: AtomicBool = AtomicBool::new(false);

fn pattern(i: usize) -> String {
    // A permutation of 0..1 048 573 (a prime), so that patterns stay
    // distinct.
    let i = if SCATTERED.load(Ordering::Relaxed) {
        i * 40_503 % 1_048_573
    } else {
        i
    };
    if i % 2 == 0 || LITERAL.load(Ordering::Relaxed) {
        format!("load.{i}")
    } else {
        format!("load.{i}.*")
    }
}

fn subscribe(bus: &Bus<Tick>, i: usize) -> Subscription<Tick> {
    let filter = Filter::pattern(&pattern(i)).expect("valid pattern");
    bus.subscribe_with(filter, SubscribeOptions::new().capacity(4))
        .expect("subscribe")
}

/// ns per publish to the one matching subscription, drained in bursts.
fn publish_ns(bus: &Bus<Tick>, sub: &mut Subscription<Tick>) -> f64 {
    const ROUNDS: u64 = 20_000;
    const BURST: u64 = 64;
    let mut publisher = bus.publisher();
    let start = Instant::now();
    for r in 0..ROUNDS {
        for j in 0..BURST {
            black_box(publisher.publish(Tick(r * BURST + j)).expect("publish"));
        }
        while let Ok(t) = sub.try_recv() {
            black_box(t.0);
        }
    }
    start.elapsed().as_nanos() as f64 / (ROUNDS * BURST) as f64
}

/// A thread publishing without pause until the returned flag is set; it
/// returns its publishes and its CPU time.
fn spawn_publisher(bus: &Bus<Tick>) -> (Arc<AtomicBool>, thread::JoinHandle<(u64, f64)>) {
    let stop = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&stop);
    let mut publisher = bus.publisher();
    let handle = thread::spawn(move || {
        let cpu = cpu_seconds();
        let mut n = 0u64;
        while !s.load(Ordering::Relaxed) {
            black_box(publisher.publish(Tick(n)).ok());
            n += 1;
        }
        (n, cpu_seconds() - cpu)
    });
    (stop, handle)
}

fn main() {
    let mut with_publisher = false;
    let mut build_only = false;
    let mut sizes: Vec<usize> = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--publisher" => with_publisher = true,
            "--literal" => LITERAL.store(true, Ordering::Relaxed),
            "--build-only" => build_only = true,
            "--scattered" => SCATTERED.store(true, Ordering::Relaxed),
            n => sizes.push(n.parse().expect("sizes are numbers")),
        }
    }
    let sizes = if sizes.is_empty() {
        vec![1_000, 10_000, 100_000]
    } else {
        sizes
    };
    for n in sizes {
        let bus = Bus::<Tick>::new();
        let mut tick = bus
            .subscribe_with(
                Filter::pattern("clock.tick").expect("valid"),
                SubscribeOptions::new().capacity(1024),
            )
            .expect("subscribe");
        let before = publish_ns(&bus, &mut tick);
        let publishing = with_publisher.then(|| spawn_publisher(&bus));
        let faults = minor_faults();
        let (start, cpu) = (Instant::now(), cpu_seconds());
        let subs: Vec<_> = (0..n).map(|i| subscribe(&bus, i)).collect();
        let (build, build_cpu) = (start.elapsed().as_secs_f64(), cpu_seconds() - cpu);
        let faults = minor_faults() - faults;
        if build_only {
            println!(
                "n={n}: build {build:.3} s [cpu {build_cpu:.3} s, {faults} page faults], {:.2} us/subscribe",
                build * 1e6 / n as f64
            );
            // Neither churned nor dropped: the profile ends here.
            std::process::exit(0);
        }
        // One subscribe + unsubscribe with `n` in place, repeated; the
        // median of the repeats.
        let reps = 1001;
        let mut pairs: Vec<f64> = Vec::with_capacity(reps);
        let cpu = cpu_seconds();
        for k in 0..reps {
            let start = Instant::now();
            let sub = subscribe(&bus, n + k);
            drop(sub);
            pairs.push(start.elapsed().as_nanos() as f64 / 1e3);
        }
        let pair_cpu = (cpu_seconds() - cpu) * 1e6 / reps as f64;
        pairs.sort_by(f64::total_cmp);
        if let Some((stop, handle)) = publishing {
            stop.store(true, Ordering::Relaxed);
            let (publishes, cpu) = handle.join().expect("publisher thread");
            println!("  publisher thread: {publishes} publishes, cpu {cpu:.3} s");
        }
        let after = publish_ns(&bus, &mut tick);
        println!(
            "n={n}: build {build:.3} s [cpu {build_cpu:.3} s, {faults} page faults], {:.2} us/subscribe; \
             subscribe+unsubscribe at n: median {:.1} us, p90 {:.1} us [cpu mean {pair_cpu:.1} us]; \
             publish {before:.1} ns with no other pattern, {after:.1} ns with n",
            build * 1e6 / n as f64,
            pairs[reps / 2],
            pairs[reps * 9 / 10],
        );
        let (start, cpu) = (Instant::now(), cpu_seconds());
        drop(subs);
        println!(
            "  dropping the n subscriptions: {:.3} s [cpu {:.3} s]",
            start.elapsed().as_secs_f64(),
            cpu_seconds() - cpu
        );
    }
}
