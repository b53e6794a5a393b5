//! Feature `latency`: which events are sampled and who records them.
//! No assertion looks at the measured durations themselves.
#![cfg(feature = "latency")]

use std::{
    num::NonZeroU32,
    sync::{Arc, Mutex},
    thread,
};

use evbus_core::{Bus, Filter, LatencyRecorder, LatencySampling, Overflow, SubscribeOptions};

#[path = "common/tick.rs"]
mod tick;

use tick::Tick;

/// Records (subscription, thread) of every sample.
#[derive(Default)]
struct Samples(Mutex<Vec<(u64, thread::ThreadId)>>);

impl LatencyRecorder for Samples {
    fn record(&self, subscription: u64, _nanos: u64) {
        self.0
            .lock()
            .unwrap()
            .push((subscription, thread::current().id()));
    }
}

impl Samples {
    fn count(&self, subscription: u64) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(s, _)| *s == subscription)
            .count()
    }
}

fn sampling(every: u32, samples: &Arc<Samples>) -> Option<LatencySampling> {
    let recorder: Arc<dyn LatencyRecorder> = samples.clone();
    Some(LatencySampling::new(
        NonZeroU32::new(every).unwrap(),
        recorder,
    ))
}

#[test]
fn off_by_default() {
    let bus = Bus::<Tick>::new();
    let samples = Arc::new(Samples::default());
    let mut before = bus.subscribe("t.tick").unwrap();
    bus.set_latency_sampling(sampling(1, &samples));
    // Made before sampling was on: not sampled.
    for i in 0..10 {
        bus.publish(Tick(i)).unwrap();
    }
    while before.try_recv().is_ok() {}
    assert_eq!(samples.count(before.id()), 0);
}

#[test]
fn one_in_n_per_subscription() {
    let bus = Bus::<Tick>::new();
    let samples = Arc::new(Samples::default());
    bus.set_latency_sampling(sampling(3, &samples));
    let mut a = bus.subscribe("t.tick").unwrap();
    let mut b = bus
        .subscribe_with(
            Filter::pattern("t.>").unwrap(),
            SubscribeOptions::new().capacity(8),
        )
        .unwrap();
    let mut publisher = bus.publisher();
    // Positions 0, 3, ..., 27 are sampled: 10 of 30, for each ring that
    // took them. `b` wraps its ring of 8 several times.
    for i in 0..30 {
        publisher.publish(Tick(i)).unwrap();
        if i % 8 == 7 {
            while b.try_recv().is_ok() {}
        }
    }
    while a.try_recv().is_ok() {}
    while b.try_recv().is_ok() {}
    assert_eq!(samples.count(a.id()), 10);
    assert_eq!(samples.count(b.id()), 10);

    // Turning it off affects later subscriptions only.
    bus.set_latency_sampling(None);
    let mut c = bus.subscribe("t.tick").unwrap();
    bus.publish(Tick(30)).unwrap();
    while c.try_recv().is_ok() {}
    assert_eq!(samples.count(c.id()), 0);
}

#[test]
fn recorded_on_the_receiving_thread() {
    let bus = Bus::<Tick>::new();
    let samples = Arc::new(Samples::default());
    bus.set_latency_sampling(sampling(1, &samples));
    let mut sub = bus.subscribe("t.tick").unwrap();
    let id = sub.id();
    let receiver = thread::spawn(move || {
        for _ in 0..50 {
            sub.recv().unwrap();
        }
        thread::current().id()
    });
    let mut publisher = bus.publisher();
    for i in 0..50 {
        publisher.publish(Tick(i)).unwrap();
    }
    let receiver_id = receiver.join().unwrap();
    let recorded = samples.0.lock().unwrap().clone();
    assert_eq!(recorded.len(), 50);
    assert!(recorded.iter().all(|&(s, t)| s == id && t == receiver_id));
}

#[test]
fn overwritten_events_are_not_sampled() {
    let bus = Bus::<Tick>::new();
    let samples = Arc::new(Samples::default());
    bus.set_latency_sampling(sampling(1, &samples));
    let mut sub = bus
        .subscribe_with(
            Filter::pattern("t.tick").unwrap(),
            SubscribeOptions::new()
                .capacity(4)
                .overflow(Overflow::DropOldest),
        )
        .unwrap();
    for i in 0..10 {
        bus.publish(Tick(i)).unwrap();
    }
    let mut got = 0;
    loop {
        match sub.try_recv() {
            Ok(_) => got += 1,
            Err(evbus_core::TryRecvError::Lagged(6)) => {}
            Err(e) => {
                assert_eq!(e, evbus_core::TryRecvError::Empty);
                break;
            }
        }
    }
    assert_eq!(got, 4);
    assert_eq!(samples.count(sub.id()), 4);
}

#[test]
fn single_producer_rings_are_sampled() {
    let (bus, mut publisher) = Bus::<Tick>::single_producer().unwrap();
    let samples = Arc::new(Samples::default());
    bus.set_latency_sampling(sampling(2, &samples));
    let mut sub = bus.subscribe("t.tick").unwrap();
    for i in 0..20 {
        publisher.publish(Tick(i)).unwrap();
    }
    while sub.try_recv().is_ok() {}
    assert_eq!(samples.count(sub.id()), 10);
}
