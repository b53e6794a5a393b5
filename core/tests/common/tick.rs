//! A one-kind event for tests that need nothing more: `Tick(n)` on `t.tick`.
//! Included with `#[path = "common/tick.rs"] mod tick;`.

use evbus_core::{Event, EventKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Tick,
}

impl EventKind for Kind {
    const ALL: &'static [Self] = &[Kind::Tick];
    fn topic(self) -> &'static str {
        "t.tick"
    }
    fn index(self) -> usize {
        0
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tick(pub(crate) u32);

impl Event for Tick {
    type Kind = Kind;
    fn kind(&self) -> Kind {
        Kind::Tick
    }
}
