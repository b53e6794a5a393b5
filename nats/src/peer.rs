//! The event `evbus-nats-peer` exchanges, shared by that binary, the bridge
//! tests and the `nats_report` benchmark, so the processes they start agree
//! on the wire form. Not part of the bridge's API.

use evbus_core::{Event, EventKind};

/// The payload the peers exchange.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PeerEvent {
    /// The publishing process.
    pub from: String,
    /// Its sequence number at that process.
    pub seq: u64,
    /// The publish time, microseconds since the epoch (0 when unused).
    pub micros: u64,
    /// Filler, to set the size of an event.
    pub body: String,
}

/// The one kind of [`PeerEvent`]; events go on explicit topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerKind;

impl EventKind for PeerKind {
    const ALL: &'static [Self] = &[PeerKind];
    fn topic(self) -> &'static str {
        "peer"
    }
    fn index(self) -> usize {
        0
    }
}

impl Event for PeerEvent {
    type Kind = PeerKind;
    fn kind(&self) -> PeerKind {
        PeerKind
    }
}
