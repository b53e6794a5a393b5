//! Fuzzes the bus against a reference model: every byte pair of the input is
//! one operation (subscribe, unsubscribe, drop, publish, receive,
//! `drain_with`, `drain_into`, shutdown...), run both on a real `Bus` and on
//! a model built from a `Mutex<VecDeque>` per subscription
//! (`core/tests/common/reference.rs`).
//! Every result and counter must agree.
//!
//! Input: `[op, arg]*`; a trailing odd byte is ignored. Any input is valid:
//! the target panics only on a real disagreement with the model.

#![no_main]

use evbus_core::EventKind;
use libfuzzer_sys::fuzz_target;

/// The reference bus, shared with the model test of `evbus-core`.
#[path = "../../core/tests/common/reference.rs"]
mod reference;

use reference::{Lockstep, PATTERNS, Route};

/// The event type and checks both model targets use.
#[path = "../common/shared.rs"]
mod shared;

use shared::{Ev, Kind, MAX_SUBS, agree};

/// The last one is invalid.
const TOPICS: &[&str] = &[
    "orders.placed",
    "orders.cancelled",
    "audit.login",
    "orders.placed.eu",
    "billing.paid",
    "orders",
    "x.placed.eu",
    "a..b",
];
const VALID_TOPICS: usize = TOPICS.len() - 1;

fuzz_target!(|data: &[u8]| {
    let mut sut = Lockstep::<Ev>::new(TOPICS);
    for (step, pair) in data.chunks_exact(2).enumerate() {
        let (op, arg) = (pair[0], pair[1]);
        let seq = step as u64;
        match op % 12 {
            0 | 1 => {
                if sut.subs.len() >= MAX_SUBS {
                    continue;
                }
                let pattern = PATTERNS[arg as usize % PATTERNS.len()];
                let cap = (arg as usize >> 3) % 4 + 1;
                let oldest = arg & 0x80 != 0;
                agree(sut.subscribe(pattern, cap, oldest));
            }
            2 => agree(sut.unsubscribe(arg.into())),
            3 => sut.drop_sub(arg.into()),
            4..=6 => {
                let via = arg as usize % 3;
                let which = (arg as usize >> 2) % 3;
                let n = (arg as usize) >> 4;
                let (kind, route) = match which {
                    0 => (Kind::ALL[n % 3], Route::Kind),
                    1 => (Kind::Placed, Route::Name(n % TOPICS.len())),
                    _ => (Kind::Login, Route::Handle(n % VALID_TOPICS)),
                };
                agree(sut.publish(via, route, Ev { kind, seq }));
            }
            7..=9 => agree(sut.try_recv(arg.into()).map(drop)),
            10 if arg & 1 == 1 => agree(sut.drain(arg.into()).map(drop)),
            10 => {
                if let Some(i) = sut.pick(arg.into()) {
                    if let Some(s) = &mut sut.subs[i] {
                        let mut buf = Vec::new();
                        let n = s.drain_into(&mut buf);
                        assert_eq!(n, buf.len());
                        let got: Vec<u64> = buf.iter().map(|e| e.seq).collect();
                        assert_eq!(got, sut.model.drain(i), "drain_into {i}");
                    }
                }
            }
            _ => {
                if arg < 0x20 {
                    agree(sut.shutdown());
                } else {
                    sut.renew_publisher(arg as usize % 2);
                }
            }
        }
        agree(sut.check(step));
    }
});
