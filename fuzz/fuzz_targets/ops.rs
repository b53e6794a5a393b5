//! Fuzzes the bus against a reference model: every byte pair of the input is
//! one operation (subscribe, unsubscribe, drop, publish, receive, drain,
//! shutdown...), run both on a real `Bus` and on a model built from a
//! `VecDeque` per subscription. Every result and counter must agree.
//!
//! Input: `[op, arg]*`; a trailing odd byte is ignored. Any input is valid:
//! the target panics only on a real disagreement with the model.

#![no_main]

use std::collections::{BTreeSet, VecDeque};

use evbus_core::{
    Bus, Event, EventKind, Filter, Overflow, PublishError, PublishReport, Publisher,
    SubscribeError, SubscribeOptions, Subscription, Topic, TryRecvError,
};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
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
struct Ev {
    kind: Kind,
    seq: u64,
}

impl Event for Ev {
    type Kind = Kind;
    fn kind(&self) -> Kind {
        self.kind
    }
}

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

/// The last one is invalid.
const TOPICS: &[&str] = &[
    "orders.placed",
    "orders.cancelled",
    "audit.login",
    "orders.placed.eu",
    "billing.paid",
    "orders",
    "x.placed.eu",
    "a..b",
];
const VALID_TOPICS: usize = TOPICS.len() - 1;
const MAX_SUBS: usize = 24;

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

struct ModelSub {
    pattern: &'static str,
    cap: usize,
    oldest: bool,
    queue: VecDeque<u64>,
    closed: bool,
    registered: bool,
    delivered: u64,
    dropped: u64,
    received: u64,
    lag: u64,
    high_water: usize,
}

#[derive(Debug, PartialEq)]
enum PubErr {
    Closed(u64),
    Invalid(u64),
}

struct Model {
    subs: Vec<ModelSub>,
    shut_down: bool,
    published: u64,
    no_subscribers: u64,
    interned: BTreeSet<&'static str>,
}

impl Model {
    fn publish(&mut self, topic: &str, seq: u64) -> Result<(u32, u32, u32), PubErr> {
        if self.shut_down {
            return Err(PubErr::Closed(seq));
        }
        if topic.split('.').any(str::is_empty) {
            return Err(PubErr::Invalid(seq));
        }
        let (mut matched, mut accepted, mut dropped) = (0, 0, 0);
        for s in self
            .subs
            .iter_mut()
            .filter(|s| !s.closed && matches(s.pattern, topic))
        {
            matched += 1;
            if s.queue.len() < s.cap {
                s.queue.push_back(seq);
                s.delivered += 1;
                accepted += 1;
            } else if s.oldest {
                s.queue.pop_front();
                s.queue.push_back(seq);
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
        s.high_water = s.high_water.max(s.queue.len());
        match s.queue.pop_front() {
            Some(v) => {
                s.received += 1;
                Ok(v)
            }
            None if s.closed => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }

    fn close(&mut self, i: usize) -> bool {
        let s = &mut self.subs[i];
        let was_open = !s.closed;
        s.closed = true;
        s.registered = false;
        was_open
    }
}

fn fields(r: PublishReport) -> (u32, u32, u32) {
    (r.matched, r.accepted, r.dropped)
}

fn real_err(e: PublishError<Ev>) -> PubErr {
    match e {
        PublishError::Closed(e) => PubErr::Closed(e.seq),
        PublishError::InvalidTopic(e, _) => PubErr::Invalid(e.seq),
        other => panic!("unexpected publish error {other:?}"),
    }
}

struct Real {
    bus: Bus<Ev>,
    publishers: [Publisher<Ev>; 2],
    subs: Vec<Option<Subscription<Ev>>>,
    handles: Vec<Option<Topic>>,
}

fn pick(len: usize, arg: u8) -> Option<usize> {
    (len > 0).then(|| arg as usize % len)
}

fn check(real: &Real, model: &Model) {
    let mut registered = Vec::new();
    for (i, (s, m)) in real.subs.iter().zip(&model.subs).enumerate() {
        let Some(s) = s else {
            assert!(!m.registered);
            continue;
        };
        let st = s.stats();
        let queued = m.queue.len();
        assert_eq!(
            (st.delivered, st.dropped, st.received, st.queued),
            (m.delivered, m.dropped, m.received, queued),
            "sub {i}: delivered, dropped, received, queued"
        );
        assert_eq!(
            st.high_water,
            m.high_water.max(queued),
            "sub {i}: high water"
        );
        assert_eq!(st.closed, m.closed, "sub {i}: closed");
        assert_eq!(s.len(), queued);
        assert_eq!(st.capacity, m.cap);
        if m.registered {
            registered.push(s.id());
        }
    }
    let snap = real.bus.snapshot();
    assert_eq!(snap.published, model.published, "published");
    assert_eq!(snap.no_subscribers, model.no_subscribers, "no_subscribers");
    assert_eq!(
        snap.delivered,
        model.subs.iter().map(|s| s.delivered).sum::<u64>()
    );
    assert_eq!(
        snap.dropped,
        model.subs.iter().map(|s| s.dropped).sum::<u64>()
    );
    let queued: usize = model
        .subs
        .iter()
        .filter(|s| s.registered)
        .map(|s| s.queue.len())
        .sum();
    assert_eq!(snap.queued, queued as u64);
    assert_eq!(snap.shut_down, model.shut_down);
    assert_eq!(snap.topics, model.interned.len());
    let ids: Vec<u64> = snap.subscriptions.iter().map(|s| s.id).collect();
    assert_eq!(ids, registered);
}

fuzz_target!(|data: &[u8]| {
    let mut model = Model {
        subs: Vec::new(),
        shut_down: false,
        published: 0,
        no_subscribers: 0,
        interned: KIND_TOPICS.iter().copied().collect(),
    };
    let bus = Bus::<Ev>::new();
    let mut real = Real {
        publishers: [bus.publisher(), bus.publisher()],
        bus,
        subs: Vec::new(),
        handles: vec![None; VALID_TOPICS],
    };
    for (step, pair) in data.chunks_exact(2).enumerate() {
        let (op, arg) = (pair[0], pair[1]);
        let seq = step as u64;
        match op % 12 {
            0 | 1 => {
                if real.subs.len() >= MAX_SUBS {
                    continue;
                }
                let pattern = PATTERNS[arg as usize % PATTERNS.len()];
                let cap = (arg as usize >> 3) % 4 + 1;
                let oldest = arg & 0x80 != 0;
                let overflow = if oldest {
                    Overflow::DropOldest
                } else {
                    Overflow::DropNewest
                };
                let got = real.bus.subscribe_with(
                    Filter::pattern(pattern).unwrap(),
                    SubscribeOptions::new().capacity(cap).overflow(overflow),
                );
                match got {
                    Ok(s) => {
                        assert!(!model.shut_down, "subscribed to a closed bus");
                        real.subs.push(Some(s));
                        model.subs.push(ModelSub {
                            pattern,
                            cap,
                            oldest,
                            queue: VecDeque::new(),
                            closed: false,
                            registered: true,
                            delivered: 0,
                            dropped: 0,
                            received: 0,
                            lag: 0,
                            high_water: 0,
                        });
                    }
                    Err(e) => {
                        assert_eq!(e, SubscribeError::Closed);
                        assert!(model.shut_down);
                    }
                }
            }
            2 => {
                if let Some(i) = pick(real.subs.len(), arg) {
                    if let Some(s) = &real.subs[i] {
                        assert_eq!(s.unsubscribe(), model.close(i), "unsubscribe {i}");
                    }
                }
            }
            3 => {
                if let Some(i) = pick(real.subs.len(), arg) {
                    if real.subs[i].take().is_some() {
                        model.close(i);
                    }
                }
            }
            4..=6 => {
                let via = arg as usize % 3;
                let which = (arg as usize >> 2) % 3;
                let n = (arg as usize) >> 4;
                let (topic, got) = match which {
                    0 => {
                        let kind = Kind::ALL[n % 3];
                        let e = Ev { kind, seq };
                        let got = match via {
                            0 => real.bus.publish(e),
                            p => real.publishers[p - 1].publish(e),
                        };
                        (kind.topic(), got)
                    }
                    1 => {
                        let t = TOPICS[n % TOPICS.len()];
                        let e = Ev {
                            kind: Kind::Placed,
                            seq,
                        };
                        let got = match via {
                            0 => real.bus.publish_to(t, e),
                            p => real.publishers[p - 1].publish_to(t, e),
                        };
                        (t, got)
                    }
                    _ => {
                        let t = n % VALID_TOPICS;
                        let bus = &real.bus;
                        let handle = real.handles[t]
                            .get_or_insert_with(|| bus.topic(TOPICS[t]).unwrap())
                            .clone();
                        model.interned.insert(TOPICS[t]);
                        let e = Ev {
                            kind: Kind::Login,
                            seq,
                        };
                        let got = match via {
                            0 => real.bus.publish_on(&handle, e),
                            p => real.publishers[p - 1].publish_on(&handle, e),
                        };
                        (TOPICS[t], got)
                    }
                };
                let expected = model.publish(topic, seq);
                assert_eq!(
                    got.map(fields).map_err(real_err),
                    expected,
                    "publish on {topic}"
                );
            }
            7..=9 => {
                if let Some(i) = pick(real.subs.len(), arg) {
                    if let Some(s) = &mut real.subs[i] {
                        let got = s.try_recv().map(|e| e.seq);
                        assert_eq!(got, model.try_recv(i), "try_recv {i}");
                    }
                }
            }
            10 => {
                if let Some(i) = pick(real.subs.len(), arg) {
                    if let Some(s) = &mut real.subs[i] {
                        let mut buf = Vec::new();
                        let n = s.drain_into(&mut buf);
                        let mut expected = Vec::new();
                        loop {
                            match model.try_recv(i) {
                                Ok(v) => expected.push(v),
                                Err(TryRecvError::Lagged(_)) => {}
                                Err(_) => break,
                            }
                        }
                        assert_eq!(n, buf.len());
                        let got: Vec<u64> = buf.iter().map(|e| e.seq).collect();
                        assert_eq!(got, expected, "drain_into {i}");
                    }
                }
            }
            _ => {
                if arg < 0x20 {
                    let r = real.bus.shutdown();
                    let expected = if model.shut_down {
                        (0, 0, true)
                    } else {
                        model.shut_down = true;
                        let (mut closed, mut buffered) = (0, 0);
                        for s in model.subs.iter_mut().filter(|s| s.registered) {
                            closed += usize::from(!s.closed);
                            s.closed = true;
                            buffered += s.queue.len();
                        }
                        (closed, buffered, false)
                    };
                    assert_eq!((r.closed, r.buffered, r.already_shut_down), expected);
                } else {
                    real.publishers[arg as usize % 2] = real.bus.publisher();
                }
            }
        }
        check(&real, &model);
    }
});
