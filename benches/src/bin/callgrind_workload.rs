//! A fixed workload for `valgrind --tool=callgrind`, whose instruction
//! counts repeat exactly (wall times on this VM do not).
//!
//! `callgrind_workload k4`: 1 M publishes to four subscriptions, drained in
//! bursts of 64 on the same thread, through the bus's only `Publisher`,
//! which holds its lease (plain-store deliveries). `k4m`: the same with the
//! lease revoked (a CAS per delivery, as with several publishers).
//! `callgrind_workload k0`: 1 M publishes with no subscriber. Only `run_workload` is measured
//! (`--toggle-collect=*run_workload*`); see `benches/callgrind.sh`.

use evbus_benches::{EvbusFanout, Fanout};

const PUBLISHES: usize = 1_000_000;
const BURST: usize = 64;

evbus_benches::burst_workload!(run_workload, EvbusFanout<u64>, PUBLISHES, BURST);

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let (subscribers, revoked) = match mode.as_str() {
        "k4" => (4, false),
        "k0" => (0, false),
        "k4m" => (4, true),
        other => {
            eprintln!("usage: callgrind_workload k4|k0|k4m (got {other:?})");
            std::process::exit(2);
        }
    };
    let mut fanout = if revoked {
        EvbusFanout::<u64>::with_lease_revoked(subscribers, BURST)
    } else {
        EvbusFanout::<u64>::new(subscribers, BURST)
    };
    let delivered = run_workload(&mut fanout);
    assert_eq!(
        delivered,
        PUBLISHES * subscribers,
        "every publish delivered to every subscriber"
    );
    println!("{mode}: {PUBLISHES} publishes, {delivered} deliveries");
}
