//! Fuzzes the bus against a reference model: every byte pair of the input is
//! one operation (subscribe, unsubscribe, drop, publish, receive,
//! `drain_with`, `drain_into`, shutdown...), run both on a real `Bus` and on
//! a model built from a `Mutex<VecDeque>` per subscription
//! (`core/tests/common/reference.rs`).
//! Every result and counter must agree.
//!
//! The events are the model test's armed events (`core/tests/common/inject.rs`):
//! operations arm a `Clone` that panics, a `Drop` that panics or calls back
//! into the bus, and park task wakers that panic. Every operation runs
//! contained, and what the user code did, the task wakes and the events
//! alive must agree with the model too.
//!
//! Input: `[op, arg]*`; a trailing odd byte is ignored. Any input is valid:
//! the target panics only on a real disagreement with the model (the
//! injected panics are caught, and kept off libFuzzer's panic hook).

#![no_main]

use evbus_core::EventKind;
use libfuzzer_sys::fuzz_target;

/// The reference bus, shared with the model test of `evbus-core`.
#[path = "../../core/tests/common/reference.rs"]
mod reference;

use reference::{Lockstep, PATTERNS, Route};

/// The armed events and wakers, shared with the model test of `evbus-core`.
#[path = "../../core/tests/common/inject.rs"]
mod inject;

use inject::OnDrop;

/// The event kinds and checks both model targets use.
#[path = "../common/shared.rs"]
mod shared;

use shared::{Kind, MAX_SUBS, agree};

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
    inject::quiet_injected_panics();
    let mut sut = Lockstep::<Kind>::new(TOPICS);
    for (step, pair) in data.chunks_exact(2).enumerate() {
        let (op, arg) = (pair[0], pair[1]);
        let seq = step as u64;
        match op % 16 {
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
            3 => agree(sut.drop_sub(arg.into())),
            4..=6 => {
                let via = arg as usize % 3;
                let which = (arg as usize >> 2) % 3;
                let n = (arg as usize) >> 4;
                let (kind, route) = match which {
                    0 => (Kind::ALL[n % 3], Route::Kind),
                    1 => (Kind::Placed, Route::Name(n % TOPICS.len())),
                    _ => (Kind::Login, Route::Handle(n % VALID_TOPICS)),
                };
                agree(sut.publish(via, route, kind, seq));
            }
            7..=9 => agree(sut.try_recv(arg.into()).map(drop)),
            10 => agree(sut.drain(arg.into(), arg & 1 == 0).map(drop)),
            11 => {
                if arg < 0x20 {
                    agree(sut.shutdown());
                } else {
                    sut.renew_publisher(arg as usize % 2);
                }
            }
            12 => agree(sut.park(usize::from(arg >> 1), arg & 1 == 1).map(drop)),
            13 => sut.arm_clone(u64::from(arg % 4) + 1),
            _ => {
                let sub = usize::from(arg & 7);
                let nth = usize::from((arg >> 3) & 3);
                let action = match (arg >> 5) & 3 {
                    0 | 1 => OnDrop::Panic,
                    2 if arg & 1 == 0 => OnDrop::Topic(sub),
                    2 => OnDrop::Subscribe(sub),
                    _ => OnDrop::Unsubscribe(nth),
                };
                if op % 16 == 14 {
                    sut.arm_drop(sub, nth, action);
                } else {
                    sut.arm_next(action);
                }
            }
        }
        agree(sut.check(step));
    }
    agree(sut.teardown().map(drop));
});
