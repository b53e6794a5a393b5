//! The single-producer twin of `callgrind_workload k4`: 1 M publishes to
//! four subscriptions of a `Bus::single_producer` bus, drained in bursts of
//! 64 on the same thread. Measure `run_solo_workload`:
//!
//! ```text
//! valgrind --tool=callgrind --toggle-collect='*run_solo_workload*' \
//!     target/release/callgrind_solo
//! ```
//!
//! A binary of its own: sharing one with `callgrind_workload` would give
//! `Subscription::try_recv` a second caller and change how the k4 workload
//! inlines, which moves the committed baseline.

use evbus_benches::{EvbusSoloFanout, Fanout};

const PUBLISHES: usize = 1_000_000;
const BURST: usize = 64;
const SUBSCRIBERS: usize = 4;

evbus_benches::burst_workload!(run_solo_workload, EvbusSoloFanout<u64>, PUBLISHES, BURST);

fn main() {
    let mut fanout = EvbusSoloFanout::<u64>::new(SUBSCRIBERS, BURST);
    let delivered = run_solo_workload(&mut fanout);
    assert_eq!(delivered, PUBLISHES * SUBSCRIBERS);
    println!("s4: {PUBLISHES} publishes, {delivered} deliveries");
}
