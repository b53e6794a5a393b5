//! What the `ops` and `solo_ops` fuzz targets share, included by path: the
//! event kinds (the events are `core/tests/common/inject.rs`'s armed events
//! of these kinds), the subscription cap, and the check that turns a
//! disagreement into a panic. Each target also includes
//! `core/tests/common/reference.rs` as `reference` and `inject.rs` as
//! `inject`.

use evbus_core::EventKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Placed,
    Cancelled,
    Login,
}

const KIND_TOPICS: [&str; 3] = ["orders.placed", "orders.cancelled", "audit.login"];

impl EventKind for Kind {
    const ALL: &'static [Self] = &[Kind::Placed, Kind::Cancelled, Kind::Login];
    fn topic(self) -> &'static str {
        KIND_TOPICS[self as usize]
    }
    fn index(self) -> usize {
        self as usize
    }
}

/// At most this many subscriptions per input, so a run stays short.
pub(crate) const MAX_SUBS: usize = 24;

/// Panics on a disagreement with the model.
#[track_caller]
pub(crate) fn agree(result: Result<(), String>) {
    if let Err(e) = result {
        panic!("{e}");
    }
}
