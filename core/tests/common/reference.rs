//! A reference bus (a `Mutex<VecDeque>` per subscription) run in lockstep
//! with a real [`Bus`]: every operation goes to both, and every result and
//! counter must agree.
//!
//! Shared by the model test (`core/tests/model.rs`, through `common`) and the
//! `ops` fuzz target (`fuzz/fuzz_targets/ops.rs`, which includes this file by
//! path), so it depends only on `std` and `evbus_core`. Disagreements are
//! returned as `Err(message)`: the model test turns them into proptest
//! failures, the fuzz target into panics.
//!
//! The events are `inject.rs`'s [`Armed`] events, whose `Clone` and `Drop`
//! can be armed to panic or to call back into the bus, and receivers can
//! park task wakers that panic. The model predicts what each such call does
//! and what state it leaves; after every operation, the lockstep compares
//! everything the user code ran and the task wakes, on top of every counter.

use std::{
    collections::{BTreeSet, VecDeque},
    fmt,
    panic::{self, AssertUnwindSafe},
    sync::{Arc, Mutex},
    task::{Context, Poll, Waker},
};

use evbus_core::{
    Bus, Event, EventKind, Filter, Overflow, PublishError, Publisher, RecvError, SubscribeError,
    SubscribeOptions, Subscription, Topic, TryRecvError,
};

use super::inject::{
    Armed, Control, Fired, OnDrop, TestWaker, lock, reentrant_options, reentrant_topic,
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
    /// The task waker registered by `poll_recv` (an index into
    /// `Model::wakes`), until a publish or a close wakes it.
    parked: Option<usize>,
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

/// An operation that user code (an event's `Clone` or `Drop`, a task waker)
/// cut short with a panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Panicked;

#[derive(Debug, Default)]
pub(crate) struct Model {
    subs: Vec<ModelSub>,
    shut_down: bool,
    published: u64,
    no_subscribers: u64,
    /// Topics the bus has interned: the kind topics, then every handle made.
    interned: BTreeSet<&'static str>,
    /// The topics of `OnDrop::Topic`.
    topics: &'static [&'static str],
    /// Calls of `Clone::clone` so far.
    clones: u64,
    /// The clone that panics (0: none).
    panic_on_clone: u64,
    /// Armed sequence numbers, as `Control::arm`.
    armed: Vec<(u64, OnDrop)>,
    /// What fired since the last check, as `Control::take_fired`.
    fired: Vec<Fired>,
    /// Expected wakes of each task waker.
    wakes: Vec<u64>,
    /// Whether each task waker panics.
    panicky: Vec<bool>,
}

impl Model {
    fn new<K: EventKind>(topics: &'static [&'static str]) -> Self {
        Self {
            interned: K::ALL.iter().map(|k| k.topic()).collect(),
            topics,
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
            parked: None,
        });
        Ok(())
    }

    /// Wakes the task waker parked on subscription `i`, if any: whether it
    /// panicked.
    fn wake(&mut self, i: usize) -> bool {
        match self.subs[i].parked.take() {
            Some(w) => {
                self.wakes[w] += 1;
                self.panicky[w]
            }
            None => false,
        }
    }

    /// A copy of event `seq` is dropped: runs what it is armed with, if
    /// anything; whether that panicked.
    fn drop_event(&mut self, seq: u64) -> bool {
        let Some(at) = self.armed.iter().position(|&(s, _)| s == seq) else {
            return false;
        };
        let fired = match self.armed.remove(at).1 {
            OnDrop::Panic => Fired::Panicked(seq),
            OnDrop::Topic(t) => {
                let name = reentrant_topic(self.topics, t);
                self.interned.insert(name);
                Fired::Topic(seq, name)
            }
            OnDrop::Subscribe(p) => {
                let (cap, oldest) = reentrant_options(p);
                Fired::Subscribed(
                    seq,
                    self.subscribe(PATTERNS[p % PATTERNS.len()], cap, oldest),
                )
            }
            OnDrop::Unsubscribe(k) => {
                if self.subs.is_empty() {
                    return false;
                }
                let k = k % self.subs.len();
                let (first, panicked) = self.close(k);
                Fired::Unsubscribed(seq, k, (!panicked).then_some(first))
            }
        };
        let panicked = matches!(fired, Fired::Panicked(_));
        self.fired.push(fired);
        panicked
    }

    /// Whether a publish on `topic` now would be delivered to a ring.
    fn routes(&self, topic: &str) -> bool {
        !self.shut_down
            && !topic.split('.').any(str::is_empty)
            && self
                .subs
                .iter()
                .any(|s| !s.closed && matches(s.pattern, topic))
    }

    /// A publish on `topic`; `Err(Panicked)` if user code cut it short.
    ///
    /// The accounting of a publish that a panic cut short (see `Reach` in
    /// `core/src/deliver.rs`): `published` counts it; the rings served
    /// before the panic got the event; the ring whose clone panicked, and
    /// every open ring after the one whose waker or evicted event panicked,
    /// count a drop, as a full ring would.
    fn publish(
        &mut self,
        topic: &str,
        seq: u64,
    ) -> Result<Result<(u32, u32, u32), ModelPublishError>, Panicked> {
        if self.shut_down {
            return Ok(Err(ModelPublishError::Closed(seq)));
        }
        if topic.split('.').any(str::is_empty) {
            return Ok(Err(ModelPublishError::InvalidTopic(seq)));
        }
        // The route is loaded once: a subscription made meanwhile (from a
        // `Drop`) is not on it; one closed meanwhile is skipped.
        let route: Vec<usize> = (0..self.subs.len())
            .filter(|&i| !self.subs[i].closed && matches(self.subs[i].pattern, topic))
            .collect();
        self.published += 1;
        if route.is_empty() {
            self.no_subscribers += 1;
        }
        let (mut matched, mut accepted, mut dropped) = (0, 0, 0);
        let last = route.len().saturating_sub(1);
        for (pos, &i) in route.iter().enumerate() {
            if self.subs[i].closed {
                // Closed meanwhile (from a `Drop`): on the last ring, the
                // original is dropped unused.
                if pos == last && self.drop_event(seq) {
                    return Err(Panicked);
                }
                continue;
            }
            let s = &mut self.subs[i];
            let full = s.queued() >= s.cap;
            if full && !s.oldest {
                // The clone is never made; on the last ring, the original
                // is dropped here, after the ring counted it.
                s.dropped += 1;
                s.high_water = s.cap;
                matched += 1;
                dropped += 1;
                if pos == last && self.drop_event(seq) {
                    return Err(Panicked);
                }
                continue;
            }
            if pos != last {
                self.clones += 1;
                if self.clones == self.panic_on_clone {
                    return Err(self.cut_short(&route, pos));
                }
            }
            let s = &mut self.subs[i];
            matched += 1;
            accepted += 1;
            let mut q = s.queue.lock().unwrap();
            if !full {
                q.push_back(seq);
                drop(q);
                s.delivered += 1;
                if self.wake(i) {
                    return Err(self.cut_short(&route, pos + 1));
                }
            } else {
                // An overwrite is a dropped event for the counters, but an
                // accepted one for the publish report.
                let evicted = q.pop_front().expect("a full ring");
                q.push_back(seq);
                drop(q);
                s.dropped += 1;
                s.lag += 1;
                s.high_water = s.cap;
                if self.drop_event(evicted) {
                    return Err(self.cut_short(&route, pos + 1));
                }
            }
        }
        Ok(Ok((matched, accepted, dropped)))
    }

    /// Counts a drop on every ring of `route` from `first` on that is still
    /// open: the rings a panicked publish did not reach.
    fn cut_short(&mut self, route: &[usize], first: usize) -> Panicked {
        for &i in &route[first..] {
            if !self.subs[i].closed {
                self.subs[i].dropped += 1;
            }
        }
        Panicked
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

    /// Unsubscribe: `(closed by this call, its waker panicked)`. The ring
    /// closes, leaves the registry, and only then wakes its parked task.
    fn close(&mut self, i: usize) -> (bool, bool) {
        let s = &mut self.subs[i];
        let was_open = !s.closed;
        s.closed = true;
        s.registered = false;
        let panicked = was_open && self.wake(i);
        (was_open, panicked)
    }

    /// Drops subscription `i`: unsubscribes, then drops what is buffered,
    /// each drop contained. Whether it panicked.
    fn drop_sub(&mut self, i: usize) -> bool {
        let (_, panicked) = self.close(i);
        if panicked {
            // A parked receiver's ring is empty: the skipped drain has
            // nothing to drop.
            assert_eq!(self.subs[i].queued(), 0, "parked with events buffered");
            return true;
        }
        let buffered: Vec<u64> = self.subs[i].queue.lock().unwrap().drain(..).collect();
        let mut panicked = false;
        for seq in buffered {
            panicked |= self.drop_event(seq);
        }
        panicked
    }

    /// `(closed, buffered, already_shut_down)`, or `Err` if a task waker
    /// panicked (after every ring was closed and every waker run).
    fn shutdown(&mut self) -> Result<(usize, usize, bool), Panicked> {
        if self.shut_down {
            return Ok((0, 0, true));
        }
        self.shut_down = true;
        let (mut closed, mut buffered) = (0, 0);
        let mut opened = Vec::new();
        for (i, s) in self
            .subs
            .iter_mut()
            .enumerate()
            .filter(|(_, s)| s.registered)
        {
            if !s.closed {
                closed += 1;
                opened.push(i);
            }
            s.closed = true;
            buffered += s.queued();
        }
        let mut panicked = false;
        for i in opened {
            panicked |= self.wake(i);
        }
        if panicked {
            Err(Panicked)
        } else {
            Ok((closed, buffered, false))
        }
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

/// Runs `f`, turning a panic into `Err(Panicked)`.
/// Publisher `p` (1 or 2) of `publishers`, made by its first use.
fn publisher<K: EventKind>(
    publishers: &mut [Option<Publisher<Armed<K>>>; 2],
    p: usize,
) -> &mut Publisher<Armed<K>> {
    publishers[p - 1]
        .as_mut()
        .expect("made before its first publish")
}

fn contained<T>(f: impl FnOnce() -> T) -> Result<T, Panicked> {
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|_| Panicked)
}

/// A real bus and the reference model, driven together, with events whose
/// user code is armed through `control` (see `inject.rs`).
pub(crate) struct Lockstep<K: EventKind> {
    pub(crate) model: Model,
    pub(crate) bus: Bus<Armed<K>>,
    /// Made on first use, so that the first one made holds the bus's lease
    /// (`core/src/ring/lease.rs`) until the bus publishes or a second one
    /// is made while it lives; `None` after a renewal, until used again.
    publishers: [Option<Publisher<Armed<K>>>; 2],
    /// Parallel to `model.subs`; `None` once dropped.
    pub(crate) subs: Vec<Option<Subscription<Armed<K>>>>,
    /// The topics of [`Route::Name`] and [`Route::Handle`].
    topics: &'static [&'static str],
    /// The handle of `topics[i]`, once made.
    handles: Vec<Option<Topic>>,
    /// What every event of this run shares.
    pub(crate) control: Arc<Control<K>>,
    /// Every task waker registered, parallel to `model.wakes`.
    wakers: Vec<Arc<TestWaker>>,
    /// What the injected user code did so far, as the model predicted it.
    pub(crate) seen: Seen,
    /// What the next publish's own event does when first dropped.
    arm_next: Option<OnDrop>,
}

/// Counts of injected user code that ran, so that a fixed sequence can show
/// it reached each path.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seen {
    /// Operations that a panic cut short.
    pub(crate) panics: u64,
    /// `Drop`s that fired an armed action (a panic or a call into the bus).
    pub(crate) fired: u64,
    /// Task wakes.
    pub(crate) wakes: u64,
}

impl<K: EventKind> fmt::Debug for Lockstep<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lockstep")
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl<K: EventKind> Lockstep<K> {
    pub(crate) fn new(topics: &'static [&'static str]) -> Self {
        let bus = Bus::new();
        let control = Control::new(topics);
        *lock(&control.bus) = Some(bus.clone());
        Self {
            model: Model::new::<K>(topics),
            publishers: [None, None],
            bus,
            subs: Vec::new(),
            topics,
            handles: vec![None; topics.len()],
            control,
            wakers: Vec::new(),
            seen: Seen::default(),
            arm_next: None,
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
                lock(&self.control.unsubs).push(s.unsubscriber());
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
                let got = contained(|| s.unsubscribe());
                let (first, panicked) = self.model.close(i);
                let want = if panicked { Err(Panicked) } else { Ok(first) };
                ensure_eq!(got, want, "unsubscribe {i}");
                self.seen.panics += u64::from(got.is_err());
            }
        }
        Ok(())
    }

    /// Drops subscription `i`, if it is live, and checks against the model
    /// whether its drop panicked (an injected `Drop` of a buffered event);
    /// returns whether it did.
    fn drop_sub_at(&mut self, i: usize, what: &str) -> Result<bool, String> {
        let Some(s) = self.subs[i].take() else {
            return Ok(false);
        };
        let got = contained(move || drop(s));
        let want = if self.model.drop_sub(i) {
            Err(Panicked)
        } else {
            Ok(())
        };
        ensure_eq!(got, want, "{what} {i}");
        Ok(got.is_err())
    }

    /// Drops the `i`-th subscription (see [`Self::pick`]).
    pub(crate) fn drop_sub(&mut self, i: usize) -> Result<(), String> {
        if let Some(i) = self.pick(i) {
            let panicked = self.drop_sub_at(i, "drop subscription")?;
            self.seen.panics += u64::from(panicked);
        }
        Ok(())
    }

    /// Publishes an event of `kind` numbered `seq` on `route`; `via` 0 is
    /// the bus itself, 1 and 2 are publishers.
    pub(crate) fn publish(
        &mut self,
        via: usize,
        route: Route,
        kind: K,
        seq: u64,
    ) -> Result<(), String> {
        let event = self.control.event(kind, seq);
        let topic = match route {
            Route::Kind => kind.topic(),
            Route::Name(t) | Route::Handle(t) => self.topics[t],
        };
        if self.model.routes(topic) {
            if let Some(action) = self.arm_next.take() {
                self.control.arm(seq, action);
                self.model.armed.push((seq, action));
            }
        }
        let handle = match route {
            Route::Handle(t) => {
                let bus = &self.bus;
                let handle = self.handles[t]
                    .get_or_insert_with(|| bus.topic(topic).unwrap())
                    .clone();
                self.model.interned.insert(topic);
                Some(handle)
            }
            _ => None,
        };
        if via > 0 && self.publishers[via - 1].is_none() {
            self.publishers[via - 1] = Some(self.bus.publisher());
        }
        let (bus, publishers) = (&self.bus, &mut self.publishers);
        let got = contained(|| match (route, via) {
            (Route::Kind, 0) => bus.publish(event),
            (Route::Kind, p) => publisher(publishers, p).publish(event),
            (Route::Name(_), 0) => bus.publish_to(topic, event),
            (Route::Name(_), p) => publisher(publishers, p).publish_to(topic, event),
            (Route::Handle(_), 0) => bus.publish_on(handle.as_ref().unwrap(), event),
            (Route::Handle(_), p) => {
                publisher(publishers, p).publish_on(handle.as_ref().unwrap(), event)
            }
        });
        let got = match got {
            Err(Panicked) => Err(Panicked),
            Ok(Ok(r)) => Ok(Ok((r.matched, r.accepted, r.dropped))),
            Ok(Err(PublishError::Closed(e))) => Ok(Err(ModelPublishError::Closed(e.seq()))),
            Ok(Err(PublishError::InvalidTopic(e, _))) => {
                Ok(Err(ModelPublishError::InvalidTopic(e.seq())))
            }
            Ok(Err(other)) => return Err(format!("publish on {topic}: unexpected {other:?}")),
        };
        ensure_eq!(got, self.model.publish(topic, seq), "publish on {topic}");
        self.seen.panics += u64::from(got.is_err());
        Ok(())
    }

    /// Drops `events` one by one, each drop contained, and checks which
    /// panicked against the model.
    fn drop_received(&mut self, events: Vec<Armed<K>>) -> Result<(), String> {
        for e in events {
            let seq = e.seq;
            let got = contained(move || drop(e)).is_err();
            ensure_eq!(got, self.model.drop_event(seq), "drop of received {seq}");
            self.seen.panics += u64::from(got);
        }
        Ok(())
    }

    /// `try_recv` on the `i`-th subscription (see [`Self::pick`]): the slot
    /// and sequence number of the event received, if any.
    pub(crate) fn try_recv(&mut self, i: usize) -> Result<Option<(usize, u64)>, String> {
        if let Some(i) = self.pick(i) {
            if let Some(s) = &mut self.subs[i] {
                let got = s.try_recv();
                let seq = got.as_ref().map(|e| e.seq).map_err(|e| *e);
                ensure_eq!(seq, self.model.try_recv(i), "try_recv {i}");
                self.drop_received(got.into_iter().collect())?;
                return Ok(seq.ok().map(|v| (i, v)));
            }
        }
        Ok(None)
    }

    /// `drain_with` (or `drain_into` if `into`) on the `i`-th subscription:
    /// its slot and the sequence numbers taken.
    pub(crate) fn drain(
        &mut self,
        i: usize,
        into: bool,
    ) -> Result<Option<(usize, Vec<u64>)>, String> {
        if let Some(i) = self.pick(i) {
            if let Some(s) = &mut self.subs[i] {
                let mut events = Vec::new();
                let n = if into {
                    s.drain_into(&mut events)
                } else {
                    s.drain_with(|e| events.push(e))
                };
                ensure_eq!(n, events.len(), "drain {i}: count");
                let got: Vec<u64> = events.iter().map(|e| e.seq).collect();
                ensure_eq!(got, self.model.drain(i), "drain {i}");
                self.drop_received(events)?;
                return Ok(Some((i, got)));
            }
        }
        Ok(None)
    }

    /// `poll_recv` on the `i`-th subscription with a new task waker, which
    /// panics when woken if `panics`: the slot and sequence number of the
    /// event received, if any.
    pub(crate) fn park(&mut self, i: usize, panics: bool) -> Result<Option<(usize, u64)>, String> {
        let Some(i) = self.pick(i) else {
            return Ok(None);
        };
        let Some(s) = &mut self.subs[i] else {
            return Ok(None);
        };
        let waker = TestWaker::new(panics);
        let w = Waker::from(Arc::clone(&waker));
        let got = s.poll_recv(&mut Context::from_waker(&w));
        let want = self.model.try_recv(i);
        match got {
            Poll::Pending => {
                ensure_eq!(Err(TryRecvError::Empty), want, "poll_recv {i}");
                self.subs_parked(i, waker, panics);
                Ok(None)
            }
            Poll::Ready(Ok(e)) => {
                ensure_eq!(Ok(e.seq), want, "poll_recv {i}");
                let seq = e.seq;
                self.drop_received(vec![e])?;
                Ok(Some((i, seq)))
            }
            Poll::Ready(Err(RecvError::Lagged(n))) => {
                ensure_eq!(Err(TryRecvError::Lagged(n)), want, "poll_recv {i}");
                Ok(None)
            }
            Poll::Ready(Err(RecvError::Disconnected)) => {
                ensure_eq!(Err(TryRecvError::Disconnected), want, "poll_recv {i}");
                Ok(None)
            }
        }
    }

    /// Records `waker` as parked on slot `i`, replacing (without waking) any
    /// waker registered before.
    fn subs_parked(&mut self, i: usize, waker: Arc<TestWaker>, panics: bool) {
        self.wakers.push(waker);
        self.model.wakes.push(0);
        self.model.panicky.push(panics);
        self.model.subs[i].parked = Some(self.wakers.len() - 1);
    }

    /// Arms the event of the next publish that has a ring to go to: the
    /// first drop of a copy of it does `action`. (A publish that matches
    /// nothing drops its event inside the bus too; that case is left to
    /// `a_panicking_drop_with_no_subscribers_counts_no_subscribers` in
    /// `model.rs`.)
    pub(crate) fn arm_next(&mut self, action: OnDrop) {
        self.arm_next = Some(action);
    }

    /// Makes the `n`-th clone from now panic (`n` from 1).
    pub(crate) fn arm_clone(&mut self, n: u64) {
        self.control.panic_on_clone(self.control.clones() + n);
        self.model.panic_on_clone = self.model.clones + n;
    }

    /// Arms the event `nth` (modulo their number) buffered in the `i`-th
    /// subscription: the first drop of a copy of it does `action`.
    pub(crate) fn arm_drop(&mut self, i: usize, nth: usize, action: OnDrop) {
        let Some(i) = self.pick(i) else { return };
        let seq = {
            let q = self.model.subs[i].queue.lock().unwrap();
            if q.is_empty() {
                return;
            }
            q[nth % q.len()]
        };
        self.control.arm(seq, action);
        self.model.armed.push((seq, action));
    }

    /// Drops publisher `i`; the next publish through it makes a new one,
    /// which takes the lease if it is free then.
    pub(crate) fn renew_publisher(&mut self, i: usize) {
        self.publishers[i] = None;
    }

    pub(crate) fn shutdown(&mut self) -> Result<(), String> {
        let got =
            contained(|| self.bus.shutdown()).map(|r| (r.closed, r.buffered, r.already_shut_down));
        ensure_eq!(
            got,
            self.model.shutdown(),
            "shutdown: closed, buffered, already shut down"
        );
        self.seen.panics += u64::from(got.is_err());
        Ok(())
    }

    /// Takes the subscriptions made from inside a `Drop` into `subs`.
    fn adopt(&mut self) {
        let adopted = std::mem::take(&mut *lock(&self.control.adopted));
        self.subs.extend(adopted.into_iter().map(Some));
    }

    /// Every observable counter equals the model's, and so does everything
    /// the injected user code did.
    ///
    /// Reading stats records the current queue length in the high-water
    /// mark, on both sides.
    pub(crate) fn check(&mut self, step: usize) -> Result<(), String> {
        self.adopt();
        ensure_eq!(
            self.subs.len(),
            self.model.subs.len(),
            "step {step} subscription slots"
        );
        let fired = self.control.take_fired();
        ensure_eq!(
            fired,
            std::mem::take(&mut self.model.fired),
            "step {step} user code run"
        );
        self.seen.fired += fired.len() as u64;
        ensure_eq!(
            self.control.clones(),
            self.model.clones,
            "step {step} clones"
        );
        let wakes: Vec<u64> = self.wakers.iter().map(|w| w.wakes()).collect();
        ensure_eq!(wakes, self.model.wakes, "step {step} task wakes");
        self.seen.wakes = wakes.iter().sum();
        // Every event is in exactly one place: a live subscription's ring.
        let live: usize = self
            .subs
            .iter()
            .zip(&self.model.subs)
            .filter(|(s, _)| s.is_some())
            .map(|(_, m)| m.queued())
            .sum();
        ensure_eq!(
            self.control.live(),
            live as u64,
            "step {step} events alive (made - dropped)"
        );
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

    /// Disarms the user code, drops every subscription and handle, and
    /// checks that every parked task was woken exactly once and every event
    /// dropped exactly once.
    pub(crate) fn teardown(mut self) -> Result<Seen, String> {
        self.control.disarm();
        self.model.armed.clear();
        self.model.panic_on_clone = 0;
        self.arm_next = None;
        self.adopt();
        for i in 0..self.subs.len() {
            self.drop_sub_at(i, "teardown: drop subscription")?;
        }
        let wakes: Vec<u64> = self.wakers.iter().map(|w| w.wakes()).collect();
        ensure_eq!(wakes, self.model.wakes, "teardown: task wakes");
        ensure!(self.model.subs.iter().all(|s| s.parked.is_none()));
        // The control block's handles hold the bus, whose rings hold events
        // that hold the control block.
        *lock(&self.control.bus) = None;
        lock(&self.control.unsubs).clear();
        let seen = self.seen;
        let Self {
            control,
            bus,
            publishers,
            handles,
            ..
        } = self;
        let dropped = contained(move || drop((bus, publishers, handles)));
        ensure_eq!(dropped, Ok(()), "teardown: drop the bus");
        let (made, dropped) = control.made_dropped();
        ensure_eq!(
            dropped,
            made,
            "events dropped vs made (leak if fewer, double drop if more)"
        );
        Ok(seen)
    }
}
