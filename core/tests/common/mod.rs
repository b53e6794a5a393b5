//! Shared fixtures of the integration tests: a three-kind event type, a
//! payload that counts how often it is made and dropped, and small helpers.
//!
//! Every test file uses a different subset of these helpers.
#![allow(dead_code)]

pub(crate) mod inject;
pub(crate) mod reference;
pub(crate) mod solo_reference;

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use evbus_core::{Bus, EventKind, Filter, Overflow, SubscribeOptions, Subscription};

/// Hang guard for blocking receives: never a measurement.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of the model-based proptests: `cases` cases (`miri_cases` under
/// Miri, which runs each one much more slowly), and no regression files,
/// which Miri's isolation cannot write.
pub(crate) fn proptest_config(cases: u32, miri_cases: u32) -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        cases: if cfg!(miri) { miri_cases } else { cases },
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    }
}

/// `normal`, or `miri` when running under Miri.
pub(crate) const fn scaled(normal: usize, miri: usize) -> usize {
    if cfg!(miri) { miri } else { normal }
}

/// The kinds of the test events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Kind {
    Placed,
    Cancelled,
    Login,
}

impl Kind {
    pub(crate) const TOPICS: [&'static str; 3] =
        ["orders.placed", "orders.cancelled", "audit.login"];
}

impl EventKind for Kind {
    const ALL: &'static [Self] = &[Kind::Placed, Kind::Cancelled, Kind::Login];

    fn topic(self) -> &'static str {
        Self::TOPICS[self as usize]
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Counts payloads made (created or cloned) and dropped.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    made: AtomicUsize,
    dropped: AtomicUsize,
}

impl Tally {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A new payload counted by this tally.
    pub(crate) fn payload(self: &Arc<Self>) -> Payload {
        self.made.fetch_add(1, Ordering::SeqCst);
        Payload {
            tally: Arc::clone(self),
        }
    }

    pub(crate) fn made(&self) -> usize {
        self.made.load(Ordering::SeqCst)
    }

    pub(crate) fn dropped(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }

    /// Payloads made and not dropped yet.
    pub(crate) fn live(&self) -> usize {
        self.made() - self.dropped()
    }

    /// Every payload made was dropped, and none twice (a double drop would
    /// make `dropped` exceed `made`).
    #[track_caller]
    pub(crate) fn assert_all_dropped(&self) {
        assert_eq!(
            self.dropped(),
            self.made(),
            "payloads dropped vs made (leak if fewer, double drop if more)"
        );
    }
}

/// A payload whose clones and drops are counted by a [`Tally`].
pub(crate) struct Payload {
    tally: Arc<Tally>,
}

impl Clone for Payload {
    fn clone(&self) -> Self {
        self.tally.payload()
    }
}

impl Drop for Payload {
    fn drop(&mut self) {
        let before = self.tally.dropped.fetch_add(1, Ordering::SeqCst);
        assert!(
            before < self.tally.made.load(Ordering::SeqCst),
            "more drops than payloads"
        );
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("Payload")
    }
}

/// Payloads carry no identity: two events are equal when their kind, source
/// and sequence number are.
impl PartialEq for Payload {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// The test event: a kind, the publisher it came from, a sequence number,
/// and an optional counted payload.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Event {
    pub(crate) kind: Kind,
    pub(crate) src: u32,
    pub(crate) seq: u64,
    pub(crate) payload: Option<Payload>,
}

impl evbus_core::Event for Event {
    type Kind = Kind;

    fn kind(&self) -> Kind {
        self.kind
    }
}

/// The reference models compare sequence numbers.
impl reference::Sequenced for Event {
    fn seq(&self) -> u64 {
        self.seq
    }
}

/// An event without payload from source 0.
pub(crate) fn ev(kind: Kind, seq: u64) -> Event {
    Event {
        kind,
        src: 0,
        seq,
        payload: None,
    }
}

/// An event from source `src`.
pub(crate) fn ev_from(kind: Kind, src: u32, seq: u64) -> Event {
    Event {
        kind,
        src,
        seq,
        payload: None,
    }
}

/// An event carrying a payload counted by `tally`.
pub(crate) fn tracked(kind: Kind, seq: u64, tally: &Arc<Tally>) -> Event {
    Event {
        kind,
        src: 0,
        seq,
        payload: Some(tally.payload()),
    }
}

pub(crate) fn opts(capacity: usize, overflow: Overflow) -> SubscribeOptions {
    SubscribeOptions::new()
        .capacity(capacity)
        .overflow(overflow)
}

/// Subscribes to `pattern` with a capacity and policy.
#[track_caller]
pub(crate) fn sub(
    bus: &Bus<Event>,
    pattern: &str,
    capacity: usize,
    overflow: Overflow,
) -> Subscription<Event> {
    bus.subscribe_with(
        Filter::pattern(pattern).expect("valid pattern"),
        opts(capacity, overflow),
    )
    .expect("subscribe")
}

/// A fresh bus with one default subscription to `pattern`.
#[track_caller]
pub(crate) fn bus_with_sub(pattern: &str) -> (Bus<Event>, Subscription<Event>) {
    let bus = Bus::new();
    let sub = bus.subscribe(pattern).expect("subscribe");
    (bus, sub)
}

/// Everything buffered now, without blocking.
pub(crate) fn drain(sub: &mut Subscription<Event>) -> Vec<Event> {
    sub.try_iter().collect()
}

/// The sequence numbers of `events`.
pub(crate) fn seqs(events: &[Event]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}
