//! A reference for single-producer buses (a `VecDeque` per subscription) run
//! in lockstep with a real `Bus::single_producer`: every publish report,
//! receive, drain and counter must agree.
//!
//! Shared by the model test in `core/tests/solo.rs` (through `common`) and
//! the `solo_ops` fuzz target (`fuzz/fuzz_targets/solo_ops.rs`, which
//! includes this file and `reference.rs` by path), so it depends only on
//! `std`, `evbus_core` and its sibling `reference` module.

use std::{collections::VecDeque, fmt::Debug};

use evbus_core::{
    Bus, Event, EventKind, Filter, Pattern, PublishError, SoloPublisher, SubscribeError,
    SubscribeOptions, Subscription, TryRecvError,
};

use super::reference::Sequenced;

/// `Err` with a message unless `real == model`.
fn agree<T: PartialEq + Debug>(
    real: T,
    model: T,
    what: impl FnOnce() -> String,
) -> Result<(), String> {
    if real == model {
        Ok(())
    } else {
        Err(format!("{}: {real:?} (real) != {model:?} (model)", what()))
    }
}

/// One subscription as the model sees it.
struct Expected {
    pattern: Pattern,
    cap: usize,
    queue: VecDeque<u64>,
    open: bool,
    delivered: u64,
    dropped: u64,
}

/// A single-producer bus and its model, operated in lockstep.
pub(crate) struct SoloLockstep<E: Event> {
    bus: Bus<E>,
    publisher: SoloPublisher<E>,
    subs: Vec<(Subscription<E>, Expected)>,
    shut: bool,
}

impl<E: Event + Sequenced> SoloLockstep<E> {
    pub(crate) fn new() -> Self {
        let (bus, publisher) = Bus::single_producer().expect("valid kind table");
        Self {
            bus,
            publisher,
            subs: Vec::new(),
            shut: false,
        }
    }

    /// Subscriptions made so far (closed ones included).
    pub(crate) fn len(&self) -> usize {
        self.subs.len()
    }

    /// Subscribes to the valid `pattern` with capacity `cap` (at least 1).
    pub(crate) fn subscribe(&mut self, pattern: &str, cap: usize) -> Result<(), String> {
        let got = self.bus.subscribe_with(
            Filter::pattern(pattern).expect("valid pattern"),
            SubscribeOptions::new().capacity(cap),
        );
        if self.shut {
            return agree(got.err(), Some(SubscribeError::Closed), || {
                format!("subscribe {pattern} after shutdown")
            });
        }
        let sub = got.map_err(|e| format!("subscribe {pattern}: {e}"))?;
        let expected = Expected {
            pattern: Pattern::parse(pattern).expect("valid pattern"),
            cap,
            queue: VecDeque::new(),
            open: true,
            delivered: 0,
            dropped: 0,
        };
        self.subs.push((sub, expected));
        Ok(())
    }

    /// Unsubscribes subscription `i`, if there is one.
    pub(crate) fn unsubscribe(&mut self, i: usize) -> Result<(), String> {
        if let Some((sub, exp)) = self.subs.get_mut(i) {
            agree(sub.unsubscribe(), exp.open, || format!("unsubscribe {i}"))?;
            exp.open = false;
        }
        Ok(())
    }

    /// Publishes `event` by kind; the report must match the model's.
    pub(crate) fn publish(&mut self, event: E) -> Result<(), String> {
        let (topic, seq) = (event.kind().topic(), event.seq());
        let got = self.publisher.publish(event);
        if self.shut {
            return agree(matches!(got, Err(PublishError::Closed(_))), true, || {
                format!("publish {seq} after shutdown")
            });
        }
        let report = got.map_err(|_| format!("publish {seq} refused"))?;
        let (mut matched, mut accepted) = (0, 0);
        for (_, exp) in &mut self.subs {
            if !exp.open || !exp.pattern.matches(topic) {
                continue;
            }
            matched += 1;
            if exp.queue.len() < exp.cap {
                exp.queue.push_back(seq);
                exp.delivered += 1;
                accepted += 1;
            } else {
                exp.dropped += 1;
            }
        }
        agree(
            (report.matched, report.accepted, report.dropped),
            (matched, accepted, matched - accepted),
            || format!("publish {seq}: matched, accepted, dropped"),
        )
    }

    /// `try_recv` on subscription `i`, if there is one.
    pub(crate) fn try_recv(&mut self, i: usize) -> Result<(), String> {
        if let Some((sub, exp)) = self.subs.get_mut(i) {
            let expected = match exp.queue.pop_front() {
                Some(v) => Ok(v),
                None if exp.open => Err(TryRecvError::Empty),
                None => Err(TryRecvError::Disconnected),
            };
            agree(sub.try_recv().map(|e| e.seq()), expected, || {
                format!("try_recv {i}")
            })?;
        }
        Ok(())
    }

    /// `drain_with` on subscription `i`, if there is one.
    pub(crate) fn drain(&mut self, i: usize) -> Result<(), String> {
        if let Some((sub, exp)) = self.subs.get_mut(i) {
            let mut got = Vec::new();
            let n = sub.drain_with(|e| got.push(e.seq()));
            agree(n, got.len(), || format!("drain {i}: count"))?;
            let expected: Vec<u64> = exp.queue.drain(..).collect();
            agree(got, expected, || format!("drain {i}"))?;
        }
        Ok(())
    }

    pub(crate) fn shutdown(&mut self) {
        self.bus.shutdown();
        self.shut = true;
        for (_, exp) in &mut self.subs {
            exp.open = false;
        }
    }

    /// Every subscription's counters equal the model's.
    pub(crate) fn check(&self, step: usize) -> Result<(), String> {
        for (i, (sub, exp)) in self.subs.iter().enumerate() {
            let s = sub.stats();
            agree(
                (s.delivered, s.dropped, s.queued, s.closed),
                (exp.delivered, exp.dropped, exp.queue.len(), !exp.open),
                || {
                    format!(
                        "subscription {i} after step {step}: delivered, dropped, queued, closed"
                    )
                },
            )?;
        }
        Ok(())
    }
}
