//! A reference bus (a `Mutex<VecDeque>` per subscription) run in lockstep
//! with a real [`Bus`]: every operation goes to both, and every result and
//! counter must agree.
//!
//! Shared by the model test (`core/tests/model.rs`, through `common`) and the
//! `ops` fuzz target (`fuzz/fuzz_targets/ops.rs`, which includes this file by
//! path), so it depends only on `std` and `evbus_core`. Disagreements are
//! returned as `Err(message)`: the model test turns them into proptest
//! failures, the fuzz target into panics.

use std::{
    collections::{BTreeSet, VecDeque},
    sync::Mutex,
};

use evbus_core::{
    Bus, Event, EventKind, Filter, Overflow, PublishError, Publisher, SubscribeError,
    SubscribeOptions, Subscription, Topic, TryRecvError,
};

/// The subscription patterns both users pick from.
pub(crate) const PATTERNS: &[&str] = &[
    "orders.placed",
    "orders.*",
    "orders.>",
    ">",
    "audit.*",
    "*.login",
    "billing.>",
    "*.*.eu",
];

/// An event with a sequence number, so results can be compared with the
/// model's, which stores only those.
pub(crate) trait Sequenced: Event {
    fn seq(&self) -> u64;
}

/// Returns `Err` with a message unless `left == right`.
macro_rules! ensure_eq {
    ($left:expr, $right:expr, $($what:tt)+) => {{
        let (left, right) = (&$left, &$right);
        if left != right {
            return Err(format!(
                "{}: {left:?} (real) != {right:?} (model)",
                format_args!($($what)+)
            ));
        }
    }};
}

/// Returns `Err` with a message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr) => {
        if !$cond {
            return Err(format!("failed: {}", stringify!($cond)));
        }
    };
}

// --- the reference bus -----------------------------------------------------

fn matches(pattern: &str, topic: &str) -> bool {
    fn go(p: &[&str], t: &[&str]) -> bool {
        match (p.split_first(), t.split_first()) {
            (None, None) => true,
            (Some((&">", _)), Some(_)) => true,
            (Some((&"*", p)), Some((_, t))) => go(p, t),
            (Some((lit, p)), Some((seg, t))) => lit == seg && go(p, t),
            _ => false,
        }
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let t: Vec<&str> = topic.split('.').collect();
    go(&p, &t)
}

/// The receiver samples its queue length every this many receives
/// (`SubscriptionStats::high_water`).
const HIGH_WATER_SAMPLE_EVERY: u32 = 32;

#[derive(Debug)]
struct ModelSub {
    pattern: &'static str,
    cap: usize,
    oldest: bool,
    queue: Mutex<VecDeque<u64>>,
    /// No longer receives events.
    closed: bool,
    /// Still listed by the bus (not unsubscribed or dropped).
    registered: bool,
    delivered: u64,
    dropped: u64,
    received: u64,
    lag: u64,
    high_water: usize,
    /// Receives since the queue length was last sampled, as documented on
    /// `SubscriptionStats::high_water`.
    since_sample: u32,
}

impl ModelSub {
    fn queued(&self) -> usize {
        self.queue.lock().unwrap().len()
    }
}

#[derive(Debug, PartialEq)]
enum ModelPublishError {
    Closed(u64),
    InvalidTopic(u64),
}

#[derive(Debug, Default)]
pub(crate) struct Model {
    subs: Vec<ModelSub>,
    shut_down: bool,
    published: u64,
    no_subscribers: u64,
    /// Topics the bus has interned: the kind topics, then every handle made.
    interned: BTreeSet<&'static str>,
}

impl Model {
    fn new<K: EventKind>() -> Self {
        Self {
            interned: K::ALL.iter().map(|k| k.topic()).collect(),
            ..Self::default()
        }
    }

    fn subscribe(
        &mut self,
        pattern: &'static str,
        cap: usize,
        oldest: bool,
    ) -> Result<(), SubscribeError> {
        if self.shut_down {
            return Err(SubscribeError::Closed);
        }
        self.subs.push(ModelSub {
            pattern,
            cap,
            oldest,
            queue: Mutex::new(VecDeque::new()),
            closed: false,
            registered: true,
            delivered: 0,
            dropped: 0,
            received: 0,
            lag: 0,
            high_water: 0,
            since_sample: 0,
        });
        Ok(())
    }

    fn publish(&mut self, topic: &str, seq: u64) -> Result<(u32, u32, u32), ModelPublishError> {
        if self.shut_down {
            return Err(ModelPublishError::Closed(seq));
        }
        if topic.split('.').any(str::is_empty) {
            return Err(ModelPublishError::InvalidTopic(seq));
        }
        let (mut matched, mut accepted, mut dropped) = (0, 0, 0);
        for s in self
            .subs
            .iter_mut()
            .filter(|s| !s.closed && matches(s.pattern, topic))
        {
            matched += 1;
            let mut q = s.queue.lock().unwrap();
            if q.len() < s.cap {
                q.push_back(seq);
                s.delivered += 1;
                accepted += 1;
            } else if s.oldest {
                // An overwrite is a dropped event for the counters, but an
                // accepted one for the publish report.
                q.pop_front();
                q.push_back(seq);
                s.dropped += 1;
                s.lag += 1;
                s.high_water = s.cap;
                accepted += 1;
            } else {
                s.dropped += 1;
                s.high_water = s.cap;
                dropped += 1;
            }
        }
        self.published += 1;
        if matched == 0 {
            self.no_subscribers += 1;
        }
        Ok((matched, accepted, dropped))
    }

    pub(crate) fn try_recv(&mut self, i: usize) -> Result<u64, TryRecvError> {
        let s = &mut self.subs[i];
        if s.oldest && s.lag > 0 {
            return Err(TryRecvError::Lagged(std::mem::take(&mut s.lag)));
        }
        let mut q = s.queue.lock().unwrap();
        match q.pop_front() {
            Some(v) => {
                s.received += 1;
                // Sampled after the receive: what is left, plus the event taken.
                if s.since_sample == 0 {
                    s.high_water = s.high_water.max(q.len() + 1);
                }
                s.since_sample = (s.since_sample + 1) % HIGH_WATER_SAMPLE_EVERY;
                Ok(v)
            }
            None if s.closed => Err(TryRecvError::Disconnected),
            None => {
                s.since_sample = 0;
                Err(TryRecvError::Empty)
            }
        }
    }

    /// `drain_with`: every buffered event. Under `DropOldest` event by event
    /// with lag reports skipped; otherwise one high-water sample for the
    /// whole batch.
    pub(crate) fn drain(&mut self, i: usize) -> Vec<u64> {
        let mut out = Vec::new();
        if self.subs[i].oldest {
            loop {
                match self.try_recv(i) {
                    Ok(v) => out.push(v),
                    Err(TryRecvError::Lagged(_)) => {}
                    Err(_) => return out,
                }
            }
        }
        let s = &mut self.subs[i];
        let mut q = s.queue.lock().unwrap();
        if let Some(first) = q.pop_front() {
            // One sample, after the first event, as `try_recv`.
            if s.since_sample == 0 {
                s.high_water = s.high_water.max(q.len() + 1);
            }
            s.since_sample = (s.since_sample + 1) % HIGH_WATER_SAMPLE_EVERY;
            out.push(first);
        }
        let rest = q.len();
        out.extend(q.drain(..));
        s.received += out.len() as u64;
        // Stopped on `Empty` (start sampling again) or on `Disconnected`.
        s.since_sample = if s.closed {
            (s.since_sample + rest as u32) % HIGH_WATER_SAMPLE_EVERY
        } else {
            0
        };
        out
    }

    /// Unsubscribe or drop: returns whether this closed the subscription.
    fn close(&mut self, i: usize) -> bool {
        let s = &mut self.subs[i];
        let was_open = !s.closed;
        s.closed = true;
        s.registered = false;
        was_open
    }

    /// `(closed, buffered, already_shut_down)`.
    fn shutdown(&mut self) -> (usize, usize, bool) {
        if self.shut_down {
            return (0, 0, true);
        }
        self.shut_down = true;
        let (mut closed, mut buffered) = (0, 0);
        for s in self.subs.iter_mut().filter(|s| s.registered) {
            closed += usize::from(!s.closed);
            s.closed = true;
            buffered += s.queued();
        }
        (closed, buffered, false)
    }
}

// --- the system under test, in lockstep with the model ----------------------

/// Where a publish goes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Route {
    /// `publish`: to the topic of the event's kind.
    Kind,
    /// `publish_to(topics[i])`.
    Name(usize),
    /// `publish_on` an interned handle of `topics[i]` (valid topics only).
    Handle(usize),
}

/// A real bus and the reference model, driven together.
#[derive(Debug)]
pub(crate) struct Lockstep<E> {
    pub(crate) model: Model,
    pub(crate) bus: Bus<E>,
    publishers: [Publisher<E>; 2],
    /// Parallel to `model.subs`; `None` once dropped.
    pub(crate) subs: Vec<Option<Subscription<E>>>,
    /// The topics of [`Route::Name`] and [`Route::Handle`].
    topics: &'static [&'static str],
    /// The handle of `topics[i]`, once made.
    handles: Vec<Option<Topic>>,
}

impl<E: Sequenced> Lockstep<E> {
    pub(crate) fn new(topics: &'static [&'static str]) -> Self {
        let bus = Bus::new();
        Self {
            model: Model::new::<E::Kind>(),
            publishers: [bus.publisher(), bus.publisher()],
            bus,
            subs: Vec::new(),
            topics,
            handles: vec![None; topics.len()],
        }
    }

    /// Picks the `i`-th subscription slot modulo the number made.
    pub(crate) fn pick(&self, i: usize) -> Option<usize> {
        let len = self.subs.len();
        (len > 0).then(|| i % len)
    }

    pub(crate) fn subscribe(
        &mut self,
        pattern: &'static str,
        cap: usize,
        oldest: bool,
    ) -> Result<(), String> {
        let overflow = if oldest {
            Overflow::DropOldest
        } else {
            Overflow::DropNewest
        };
        let got = self.bus.subscribe_with(
            Filter::pattern(pattern).unwrap(),
            SubscribeOptions::new().capacity(cap).overflow(overflow),
        );
        match (got, self.model.subscribe(pattern, cap, oldest)) {
            (Ok(s), Ok(())) => {
                self.subs.push(Some(s));
                Ok(())
            }
            (Err(a), Err(b)) => {
                ensure_eq!(a, b, "subscribe");
                Ok(())
            }
            (a, b) => Err(format!("subscribe: {:?} vs {b:?}", a.map(|_| ()))),
        }
    }

    /// `unsubscribe` on the `i`-th subscription (see [`Self::pick`]).
    pub(crate) fn unsubscribe(&mut self, i: usize) -> Result<(), String> {
        if let Some(i) = self.pick(i) {
            if let Some(s) = &self.subs[i] {
                ensure_eq!(s.unsubscribe(), self.model.close(i), "unsubscribe {i}");
            }
        }
        Ok(())
    }

    /// Drops the `i`-th subscription (see [`Self::pick`]).
    pub(crate) fn drop_sub(&mut self, i: usize) {
        if let Some(i) = self.pick(i) {
            if self.subs[i].take().is_some() {
                self.model.close(i);
            }
        }
    }

    /// Publishes `event` on `route`; `via` 0 is the bus itself, 1 and 2 are
    /// publishers.
    pub(crate) fn publish(&mut self, via: usize, route: Route, event: E) -> Result<(), String> {
        let seq = event.seq();
        let (topic, got) = match route {
            Route::Kind => {
                let topic = event.kind().topic();
                let got = match via {
                    0 => self.bus.publish(event),
                    p => self.publishers[p - 1].publish(event),
                };
                (topic, got)
            }
            Route::Name(t) => {
                let topic = self.topics[t];
                let got = match via {
                    0 => self.bus.publish_to(topic, event),
                    p => self.publishers[p - 1].publish_to(topic, event),
                };
                (topic, got)
            }
            Route::Handle(t) => {
                let topic = self.topics[t];
                let bus = &self.bus;
                let handle = self.handles[t]
                    .get_or_insert_with(|| bus.topic(topic).unwrap())
                    .clone();
                self.model.interned.insert(topic);
                let got = match via {
                    0 => self.bus.publish_on(&handle, event),
                    p => self.publishers[p - 1].publish_on(&handle, event),
                };
                (topic, got)
            }
        };
        let got = match got {
            Ok(r) => Ok((r.matched, r.accepted, r.dropped)),
            Err(PublishError::Closed(e)) => Err(ModelPublishError::Closed(e.seq())),
            Err(PublishError::InvalidTopic(e, _)) => Err(ModelPublishError::InvalidTopic(e.seq())),
            Err(other) => return Err(format!("publish on {topic}: unexpected {other:?}")),
        };
        ensure_eq!(got, self.model.publish(topic, seq), "publish on {topic}");
        Ok(())
    }

    /// `try_recv` on the `i`-th subscription (see [`Self::pick`]): the slot
    /// and sequence number of the event received, if any.
    pub(crate) fn try_recv(&mut self, i: usize) -> Result<Option<(usize, u64)>, String> {
        if let Some(i) = self.pick(i) {
            if let Some(s) = &mut self.subs[i] {
                let got = s.try_recv().map(|e| e.seq());
                ensure_eq!(got, self.model.try_recv(i), "try_recv {i}");
                return Ok(got.ok().map(|v| (i, v)));
            }
        }
        Ok(None)
    }

    /// `drain_with` on the `i`-th subscription: its slot and the sequence
    /// numbers taken.
    pub(crate) fn drain(&mut self, i: usize) -> Result<Option<(usize, Vec<u64>)>, String> {
        if let Some(i) = self.pick(i) {
            if let Some(s) = &mut self.subs[i] {
                let mut got = Vec::new();
                let n = s.drain_with(|e| got.push(e.seq()));
                ensure_eq!(n, got.len(), "drain {i}: count");
                ensure_eq!(got, self.model.drain(i), "drain {i}");
                return Ok(Some((i, got)));
            }
        }
        Ok(None)
    }

    pub(crate) fn renew_publisher(&mut self, i: usize) {
        self.publishers[i] = self.bus.publisher();
    }

    pub(crate) fn shutdown(&mut self) -> Result<(), String> {
        let r = self.bus.shutdown();
        ensure_eq!(
            (r.closed, r.buffered, r.already_shut_down),
            self.model.shutdown(),
            "shutdown: closed, buffered, already shut down"
        );
        Ok(())
    }

    /// Every observable counter equals the model's.
    ///
    /// Reading stats records the current queue length in the high-water
    /// mark, on both sides.
    pub(crate) fn check(&mut self, step: usize) -> Result<(), String> {
        let model = &mut self.model;
        let mut registered = Vec::new();
        for (i, (s, m)) in self.subs.iter().zip(&mut model.subs).enumerate() {
            let queued = m.queued();
            let Some(s) = s else {
                ensure!(!m.registered);
                continue;
            };
            let st = s.stats();
            ensure_eq!(
                (st.delivered, st.dropped, st.received, st.queued),
                (m.delivered, m.dropped, m.received, queued),
                "step {step} sub {i}: delivered, dropped, received, queued"
            );
            m.high_water = m.high_water.max(queued);
            ensure_eq!(
                st.high_water,
                m.high_water,
                "step {step} sub {i}: high water"
            );
            ensure_eq!(st.closed, m.closed, "step {step} sub {i}: closed");
            ensure_eq!(s.is_closed(), m.closed, "step {step} sub {i}: is_closed");
            ensure_eq!(s.len(), queued, "step {step} sub {i}: len");
            ensure_eq!(st.capacity, m.cap, "step {step} sub {i}: capacity");
            ensure_eq!(
                &st.filter,
                &[m.pattern.to_string()],
                "step {step} sub {i}: filter"
            );
            if m.registered {
                registered.push(s.id());
            }
        }
        let snap = self.bus.snapshot();
        let sum = |f: fn(&ModelSub) -> u64| model.subs.iter().map(f).sum::<u64>();
        ensure_eq!(snap.published, model.published, "step {step} published");
        ensure_eq!(
            snap.no_subscribers,
            model.no_subscribers,
            "step {step} no_subscribers"
        );
        ensure_eq!(
            snap.delivered,
            sum(|s| s.delivered),
            "step {step} delivered"
        );
        ensure_eq!(snap.dropped, sum(|s| s.dropped), "step {step} dropped");
        ensure_eq!(
            snap.queued,
            model
                .subs
                .iter()
                .filter(|s| s.registered)
                .map(|s| s.queued() as u64)
                .sum::<u64>(),
            "step {step} queued"
        );
        ensure_eq!(snap.shut_down, model.shut_down, "step {step} shut_down");
        ensure_eq!(
            self.bus.is_shut_down(),
            model.shut_down,
            "step {step} is_shut_down"
        );
        ensure_eq!(snap.topics, model.interned.len(), "step {step} topics");
        let ids: Vec<u64> = snap.subscriptions.iter().map(|s| s.id).collect();
        ensure_eq!(ids, registered, "step {step} registered ids");
        ensure_eq!(
            self.bus.subscriber_count(),
            snap.subscriptions.len(),
            "step {step} subscriber_count"
        );
        Ok(())
    }
}
