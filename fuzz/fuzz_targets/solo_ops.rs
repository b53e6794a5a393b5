//! Fuzzes a single-producer bus (`Bus::single_producer` and its
//! `SoloPublisher`) against a reference model: every byte pair of the input
//! is one operation (subscribe, unsubscribe, publish, receive, drain,
//! shutdown), run both on the bus and on a `VecDeque` per subscription
//! (`core/tests/common/solo_reference.rs`). Every publish report, receive,
//! drain and counter must agree.
//!
//! Input: `[op, arg]*`; a trailing odd byte is ignored. Any input is valid:
//! the target panics only on a real disagreement with the model.

#![no_main]

use evbus_core::EventKind;
use libfuzzer_sys::fuzz_target;

/// The armed events, shared with the model tests of `evbus-core`.
#[allow(dead_code)]
#[path = "../../core/tests/common/inject.rs"]
mod inject;
/// `PATTERNS` and `Sequenced`, which the single-producer reference needs.
#[allow(dead_code)]
#[path = "../../core/tests/common/reference.rs"]
mod reference;
/// The single-producer reference, shared with the model test of
/// `evbus-core`.
#[path = "../../core/tests/common/solo_reference.rs"]
mod solo_reference;

use reference::PATTERNS;
use solo_reference::SoloLockstep;

/// The event kinds and checks both model targets use.
#[path = "../common/shared.rs"]
mod shared;

use shared::{Kind, MAX_SUBS, agree};

fuzz_target!(|data: &[u8]| {
    inject::quiet_injected_panics();
    let mut sut = SoloLockstep::<Kind>::new();
    for (step, pair) in data.chunks_exact(2).enumerate() {
        let (op, arg) = (pair[0], pair[1]);
        let i = usize::from(arg) % MAX_SUBS;
        match op % 12 {
            0 | 1 => {
                if sut.len() < MAX_SUBS {
                    let pattern = PATTERNS[usize::from(arg) % PATTERNS.len()];
                    let cap = (usize::from(arg) >> 3) % 4 + 1;
                    agree(sut.subscribe(pattern, cap));
                }
            }
            2 => agree(sut.unsubscribe(i)),
            3..=5 => {
                let kind = Kind::ALL[usize::from(arg) % 3];
                agree(sut.publish(kind, step as u64));
            }
            6 | 7 => agree(sut.try_recv(i)),
            8 => agree(sut.drain(i)),
            10 => agree(sut.park(i, arg & 0x80 != 0)),
            11 => sut.arm_clone(u64::from(arg % 3) + 1),
            _ => {
                if arg < 0x20 {
                    agree(sut.shutdown());
                }
            }
        }
        agree(sut.check(step));
    }
    agree(sut.teardown());
});
