//! A model-based test: random single-threaded operation sequences run
//! against the bus and against a reference bus written here (a
//! `Mutex<VecDeque>` per subscription), comparing every result and counter
//! after every operation.

mod common;

use std::{
    collections::{BTreeSet, VecDeque},
    sync::Mutex,
};

use common::{Event, Kind, Tally, tracked};
use evbus_core::{
    Bus, EventKind, Filter, Overflow, PublishError, PublishReport, Publisher, SubscribeError,
    SubscribeOptions, Subscription, Topic, TryRecvError,
};
use proptest::prelude::*;

const PATTERNS: &[&str] = &[
    "orders.placed",
    "orders.*",
    "orders.>",
    ">",
    "audit.*",
    "*.login",
    "billing.>",
    "*.*.eu",
];

/// Topics for `publish_to` and `publish_on`; the last one is invalid.
const TOPICS: &[&str] = &[
    "orders.placed",
    "orders.cancelled",
    "audit.login",
    "orders.placed.eu",
    "billing.paid",
    "orders",
    "a..b",
];
const VALID_TOPICS: usize = TOPICS.len() - 1;

/// Operations per case (Miri runs each one much more slowly).
const MAX_OPS: usize = if cfg!(miri) { 24 } else { 80 };

#[derive(Debug, Clone)]
enum Target {
    /// `publish` with an event of this kind.
    Kind(Kind),
    /// `publish_to(TOPICS[i])`.
    Name(usize),
    /// `publish_on` an interned handle of `TOPICS[i]` (valid ones only).
    Handle(usize),
}

#[derive(Debug, Clone)]
enum Op {
    Subscribe {
        pattern: usize,
        cap: usize,
        oldest: bool,
    },
    Unsubscribe(usize),
    Drop(usize),
    /// `via`: 0 is the bus itself, 1 and 2 are publishers.
    Publish {
        via: usize,
        target: Target,
    },
    TryRecv(usize),
    RenewPublisher(usize),
    Shutdown,
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        prop::sample::select(Kind::ALL).prop_map(Target::Kind),
        (0..TOPICS.len()).prop_map(Target::Name),
        (0..VALID_TOPICS).prop_map(Target::Handle),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..PATTERNS.len(), 1..=4usize, any::<bool>())
            .prop_map(|(pattern, cap, oldest)| Op::Subscribe { pattern, cap, oldest }),
        2 => (0..8usize).prop_map(Op::Unsubscribe),
        2 => (0..8usize).prop_map(Op::Drop),
        16 => (0..3usize, target()).prop_map(|(via, target)| Op::Publish { via, target }),
        12 => (0..8usize).prop_map(Op::TryRecv),
        2 => (0..2usize).prop_map(Op::RenewPublisher),
        1 => Just(Op::Shutdown),
    ]
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
}

#[derive(Debug, PartialEq)]
enum ModelPublishError {
    Closed(u64),
    InvalidTopic(u64),
}

#[derive(Debug, Default)]
struct Model {
    subs: Vec<ModelSub>,
    shut_down: bool,
    published: u64,
    no_subscribers: u64,
    /// Overwrites are dropped events for the counters, but accepted ones for
    /// the publish report.
    interned: BTreeSet<&'static str>,
}

impl Model {
    fn new() -> Self {
        Self {
            interned: Kind::TOPICS.iter().copied().collect(),
            ..Self::default()
        }
    }

    fn subscribe(
        &mut self,
        pattern: usize,
        cap: usize,
        oldest: bool,
    ) -> Result<(), SubscribeError> {
        if self.shut_down {
            return Err(SubscribeError::Closed);
        }
        self.subs.push(ModelSub {
            pattern: PATTERNS[pattern],
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

    fn try_recv(&mut self, i: usize) -> Result<u64, TryRecvError> {
        let s = &mut self.subs[i];
        if s.oldest && s.lag > 0 {
            return Err(TryRecvError::Lagged(std::mem::take(&mut s.lag)));
        }
        let mut q = s.queue.lock().unwrap();
        s.high_water = s.high_water.max(q.len());
        match q.pop_front() {
            Some(v) => {
                s.received += 1;
                Ok(v)
            }
            None if s.closed => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
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
            buffered += s.queue.lock().unwrap().len();
        }
        (closed, buffered, false)
    }
}

// --- the system under test ---------------------------------------------------

struct Real {
    bus: Bus<Event>,
    publishers: [Publisher<Event>; 2],
    /// Parallel to `Model::subs`; `None` once dropped.
    subs: Vec<Option<Subscription<Event>>>,
    /// Last value received per subscription, for the FIFO check.
    last: Vec<Option<u64>>,
    handles: Vec<Option<Topic>>,
}

fn fields(r: PublishReport) -> (u32, u32, u32) {
    (r.matched, r.accepted, r.dropped)
}

fn real_err(e: PublishError<Event>) -> ModelPublishError {
    match e {
        PublishError::Closed(e) => ModelPublishError::Closed(e.seq),
        PublishError::InvalidTopic(e, _) => ModelPublishError::InvalidTopic(e.seq),
        other => panic!("unexpected {other:?}"),
    }
}

/// Picks the `i`-th slot modulo the number of subscriptions made.
fn pick(len: usize, i: usize) -> Option<usize> {
    (len > 0).then(|| i % len)
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let tally = Tally::new();
    let mut model = Model::new();
    let bus = Bus::<Event>::new();
    let mut real = Real {
        publishers: [bus.publisher(), bus.publisher()],
        bus,
        subs: Vec::new(),
        last: Vec::new(),
        handles: vec![None; VALID_TOPICS],
    };
    for (step, op) in ops.iter().enumerate() {
        let seq = step as u64;
        match op {
            &Op::Subscribe {
                pattern,
                cap,
                oldest,
            } => {
                let overflow = if oldest {
                    Overflow::DropOldest
                } else {
                    Overflow::DropNewest
                };
                let got = real.bus.subscribe_with(
                    Filter::pattern(PATTERNS[pattern]).unwrap(),
                    SubscribeOptions::new().capacity(cap).overflow(overflow),
                );
                match (got, model.subscribe(pattern, cap, oldest)) {
                    (Ok(s), Ok(())) => {
                        real.subs.push(Some(s));
                        real.last.push(None);
                    }
                    (Err(a), Err(b)) => prop_assert_eq!(a, b),
                    (a, b) => prop_assert!(false, "subscribe: {:?} vs {:?}", a.map(|_| ()), b),
                }
            }
            &Op::Unsubscribe(i) => {
                if let Some(i) = pick(real.subs.len(), i) {
                    if let Some(s) = &real.subs[i] {
                        prop_assert_eq!(s.unsubscribe(), model.close(i), "unsubscribe {}", i);
                    }
                }
            }
            &Op::Drop(i) => {
                if let Some(i) = pick(real.subs.len(), i) {
                    if real.subs[i].take().is_some() {
                        model.close(i);
                    }
                }
            }
            Op::Publish { via, target } => {
                let kind = match target {
                    Target::Kind(k) => *k,
                    _ => Kind::Placed,
                };
                let event = tracked(kind, seq, &tally);
                let (topic, got) = match (target, via) {
                    (Target::Kind(k), 0) => (k.topic(), real.bus.publish(event)),
                    (Target::Kind(k), p) => (k.topic(), real.publishers[p - 1].publish(event)),
                    (&Target::Name(t), 0) => (TOPICS[t], real.bus.publish_to(TOPICS[t], event)),
                    (&Target::Name(t), p) => (
                        TOPICS[t],
                        real.publishers[p - 1].publish_to(TOPICS[t], event),
                    ),
                    (&Target::Handle(t), via) => {
                        let handle = real.handles[t]
                            .get_or_insert_with(|| real.bus.topic(TOPICS[t]).unwrap())
                            .clone();
                        model.interned.insert(TOPICS[t]);
                        let got = if *via == 0 {
                            real.bus.publish_on(&handle, event)
                        } else {
                            real.publishers[via - 1].publish_on(&handle, event)
                        };
                        (TOPICS[t], got)
                    }
                };
                let expected = model.publish(topic, seq);
                prop_assert_eq!(
                    got.map(fields).map_err(real_err),
                    expected,
                    "publish on {}",
                    topic
                );
            }
            &Op::TryRecv(i) => {
                if let Some(i) = pick(real.subs.len(), i) {
                    if let Some(s) = &mut real.subs[i] {
                        let got = s.try_recv().map(|e| e.seq);
                        prop_assert_eq!(got, model.try_recv(i), "try_recv {}", i);
                        if let Ok(v) = got {
                            prop_assert!(real.last[i].is_none_or(|l| l < v), "FIFO");
                            real.last[i] = Some(v);
                        }
                    }
                }
            }
            &Op::RenewPublisher(i) => {
                real.publishers[i] = real.bus.publisher();
            }
            Op::Shutdown => {
                let r = real.bus.shutdown();
                prop_assert_eq!(
                    (r.closed, r.buffered, r.already_shut_down),
                    model.shutdown()
                );
            }
        }
        check(&real, &model, step)?;
    }
    drop(real);
    prop_assert_eq!(tally.dropped(), tally.made(), "every payload dropped once");
    Ok(())
}

/// Every observable counter equals the model's.
fn check(real: &Real, model: &Model, step: usize) -> Result<(), TestCaseError> {
    let mut registered = Vec::new();
    for (i, (s, m)) in real.subs.iter().zip(&model.subs).enumerate() {
        let queued = m.queue.lock().unwrap().len();
        if let Some(s) = s {
            let st = s.stats();
            prop_assert_eq!(
                (st.delivered, st.dropped, st.received, st.queued),
                (m.delivered, m.dropped, m.received, queued),
                "step {} sub {}: delivered, dropped, received, queued",
                step,
                i
            );
            prop_assert_eq!(
                st.high_water,
                m.high_water.max(queued),
                "step {} high water",
                step
            );
            prop_assert_eq!(st.closed, m.closed);
            prop_assert_eq!(s.is_closed(), m.closed);
            prop_assert_eq!(s.len(), queued);
            prop_assert_eq!(st.capacity, m.cap);
            prop_assert_eq!(&st.filter, &[m.pattern.to_string()]);
            if m.registered {
                registered.push(s.id());
            }
        } else {
            prop_assert!(!m.registered);
        }
    }
    let snap = real.bus.snapshot();
    let sum = |f: fn(&ModelSub) -> u64| model.subs.iter().map(f).sum::<u64>();
    prop_assert_eq!(snap.published, model.published, "step {} published", step);
    prop_assert_eq!(snap.no_subscribers, model.no_subscribers, "step {}", step);
    prop_assert_eq!(
        snap.delivered,
        sum(|s| s.delivered),
        "step {} delivered",
        step
    );
    prop_assert_eq!(snap.dropped, sum(|s| s.dropped), "step {} dropped", step);
    prop_assert_eq!(
        snap.queued,
        model
            .subs
            .iter()
            .filter(|s| s.registered)
            .map(|s| s.queue.lock().unwrap().len() as u64)
            .sum::<u64>(),
        "step {} queued",
        step
    );
    prop_assert_eq!(snap.shut_down, model.shut_down);
    prop_assert_eq!(real.bus.is_shut_down(), model.shut_down);
    prop_assert_eq!(snap.topics, model.interned.len());
    let ids: Vec<u64> = snap.subscriptions.iter().map(|s| s.id).collect();
    prop_assert_eq!(ids, registered);
    prop_assert_eq!(real.bus.subscriber_count(), snap.subscriptions.len());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 16 } else { 256 },
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn bus_matches_model(ops in prop::collection::vec(op(), 1..MAX_OPS)) {
        run(&ops)?;
    }
}

/// A fixed sequence through every operation, so the model itself is
/// checked even if the random cases happen to miss a path.
#[test]
fn model_smoke() {
    use Op::*;
    let ops = [
        Subscribe {
            pattern: 3,
            cap: 2,
            oldest: true,
        },
        Subscribe {
            pattern: 1,
            cap: 1,
            oldest: false,
        },
        Subscribe {
            pattern: 7,
            cap: 3,
            oldest: false,
        },
        Publish {
            via: 0,
            target: Target::Kind(Kind::Placed),
        },
        Publish {
            via: 1,
            target: Target::Kind(Kind::Cancelled),
        },
        Publish {
            via: 2,
            target: Target::Name(3),
        },
        Publish {
            via: 1,
            target: Target::Handle(4),
        },
        Publish {
            via: 0,
            target: Target::Name(6),
        },
        TryRecv(0),
        TryRecv(0),
        TryRecv(1),
        TryRecv(2),
        Unsubscribe(1),
        Unsubscribe(1),
        TryRecv(1),
        Publish {
            via: 2,
            target: Target::Kind(Kind::Login),
        },
        RenewPublisher(0),
        Drop(2),
        Shutdown,
        TryRecv(0),
        TryRecv(0),
        Publish {
            via: 1,
            target: Target::Kind(Kind::Placed),
        },
        Subscribe {
            pattern: 0,
            cap: 1,
            oldest: false,
        },
        Shutdown,
    ];
    run(&ops).unwrap();
}
