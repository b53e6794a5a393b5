//! A model-based test: random single-threaded operation sequences run
//! against the bus and against the reference bus of `common/reference.rs` (a
//! `Mutex<VecDeque>` per subscription, shared with the `ops` fuzz target),
//! comparing every result and counter after every operation.

mod common;

use common::{
    Event, Kind, Tally,
    reference::{Lockstep, PATTERNS, Route},
    tracked,
};
use evbus_core::EventKind;
use proptest::prelude::*;

/// Topics for `publish_to` and `publish_on`; the last one is invalid.
const TOPICS: &[&str] = &[
    "orders.placed",
    "orders.cancelled",
    "audit.login",
    "orders.placed.eu",
    "billing.paid",
    "orders",
    "a..b",
];
const VALID_TOPICS: usize = TOPICS.len() - 1;

/// Operations per case (Miri runs each one much more slowly).
const MAX_OPS: usize = if cfg!(miri) { 24 } else { 80 };

#[derive(Debug, Clone)]
enum Target {
    /// `publish` with an event of this kind.
    Kind(Kind),
    /// `publish_to(TOPICS[i])`.
    Name(usize),
    /// `publish_on` an interned handle of `TOPICS[i]` (valid ones only).
    Handle(usize),
}

#[derive(Debug, Clone)]
enum Op {
    Subscribe {
        pattern: usize,
        cap: usize,
        oldest: bool,
    },
    Unsubscribe(usize),
    Drop(usize),
    /// `via`: 0 is the bus itself, 1 and 2 are publishers.
    Publish {
        via: usize,
        target: Target,
    },
    TryRecv(usize),
    /// `drain_with`.
    Drain(usize),
    RenewPublisher(usize),
    Shutdown,
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        prop::sample::select(Kind::ALL).prop_map(Target::Kind),
        (0..TOPICS.len()).prop_map(Target::Name),
        (0..VALID_TOPICS).prop_map(Target::Handle),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..PATTERNS.len(), 1..=4usize, any::<bool>())
            .prop_map(|(pattern, cap, oldest)| Op::Subscribe { pattern, cap, oldest }),
        2 => (0..8usize).prop_map(Op::Unsubscribe),
        2 => (0..8usize).prop_map(Op::Drop),
        16 => (0..3usize, target()).prop_map(|(via, target)| Op::Publish { via, target }),
        12 => (0..8usize).prop_map(Op::TryRecv),
        3 => (0..8usize).prop_map(Op::Drain),
        2 => (0..2usize).prop_map(Op::RenewPublisher),
        1 => Just(Op::Shutdown),
    ]
}

/// Runs `ops` on the bus and the reference model in lockstep.
fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let tally = Tally::new();
    let mut sut = Lockstep::<Event>::new(TOPICS);
    // Last value received per subscription, for the FIFO check.
    let mut last: Vec<Option<u64>> = Vec::new();
    for (step, op) in ops.iter().enumerate() {
        let seq = step as u64;
        match op {
            &Op::Subscribe {
                pattern,
                cap,
                oldest,
            } => {
                sut.subscribe(PATTERNS[pattern], cap, oldest)
                    .map_err(TestCaseError::fail)?;
                last.resize(sut.subs.len(), None);
            }
            &Op::Unsubscribe(i) => sut.unsubscribe(i).map_err(TestCaseError::fail)?,
            &Op::Drop(i) => sut.drop_sub(i),
            &Op::Publish { via, ref target } => {
                let (kind, route) = match *target {
                    Target::Kind(k) => (k, Route::Kind),
                    Target::Name(t) => (Kind::Placed, Route::Name(t)),
                    Target::Handle(t) => (Kind::Placed, Route::Handle(t)),
                };
                sut.publish(via, route, tracked(kind, seq, &tally))
                    .map_err(TestCaseError::fail)?;
            }
            &Op::TryRecv(i) => {
                if let Some((i, v)) = sut.try_recv(i).map_err(TestCaseError::fail)? {
                    prop_assert!(last[i].is_none_or(|l| l < v), "FIFO");
                    last[i] = Some(v);
                }
            }
            &Op::Drain(i) => {
                if let Some((i, got)) = sut.drain(i).map_err(TestCaseError::fail)? {
                    for v in got {
                        prop_assert!(last[i].is_none_or(|l| l < v), "FIFO");
                        last[i] = Some(v);
                    }
                }
            }
            &Op::RenewPublisher(i) => sut.renew_publisher(i),
            Op::Shutdown => sut.shutdown().map_err(TestCaseError::fail)?,
        }
        sut.check(step).map_err(TestCaseError::fail)?;
    }
    drop(sut);
    prop_assert_eq!(tally.dropped(), tally.made(), "every payload dropped once");
    Ok(())
}

proptest! {
    #![proptest_config(common::proptest_config(256, 16))]

    #[test]
    fn bus_matches_model(ops in prop::collection::vec(op(), 1..MAX_OPS)) {
        run(&ops)?;
    }
}

/// A fixed sequence through every operation, so the model itself is
/// checked even if the random cases happen to miss a path.
#[test]
fn model_smoke() {
    use Op::*;
    let ops = [
        Subscribe {
            pattern: 3,
            cap: 2,
            oldest: true,
        },
        Subscribe {
            pattern: 1,
            cap: 1,
            oldest: false,
        },
        Subscribe {
            pattern: 7,
            cap: 3,
            oldest: false,
        },
        Publish {
            via: 0,
            target: Target::Kind(Kind::Placed),
        },
        Publish {
            via: 1,
            target: Target::Kind(Kind::Cancelled),
        },
        Publish {
            via: 2,
            target: Target::Name(3),
        },
        Publish {
            via: 1,
            target: Target::Handle(4),
        },
        Publish {
            via: 0,
            target: Target::Name(6),
        },
        TryRecv(0),
        TryRecv(0),
        TryRecv(1),
        TryRecv(2),
        Unsubscribe(1),
        Unsubscribe(1),
        TryRecv(1),
        Publish {
            via: 2,
            target: Target::Kind(Kind::Login),
        },
        RenewPublisher(0),
        Drop(2),
        Shutdown,
        TryRecv(0),
        TryRecv(0),
        Publish {
            via: 1,
            target: Target::Kind(Kind::Placed),
        },
        Subscribe {
            pattern: 0,
            cap: 1,
            oldest: false,
        },
        Shutdown,
    ];
    run(&ops).unwrap();
}
