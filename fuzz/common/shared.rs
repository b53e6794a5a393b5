//! What the `ops` and `solo_ops` fuzz targets share, included by path: the
//! event type (three kinds and a sequence number the reference models
//! compare), the subscription cap, and the check that turns a disagreement
//! into a panic. Each target also includes `core/tests/common/reference.rs`
//! as `reference`.

use evbus_core::{Event, EventKind};

use crate::reference::Sequenced;

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

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ev {
    pub(crate) kind: Kind,
    pub(crate) seq: u64,
}

impl Event for Ev {
    type Kind = Kind;
    fn kind(&self) -> Kind {
        self.kind
    }
}

impl Sequenced for Ev {
    fn seq(&self) -> u64 {
        self.seq
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
