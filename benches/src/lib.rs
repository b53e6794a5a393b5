//! Fan-out peers measured in one binary: evbus, `tokio::sync::broadcast`,
//! and a crossbeam-channel fan-out (one `bounded` channel per subscriber,
//! registered in a `RwLock<Vec<Sender>>`).
//!
//! Every peer implements [`Fanout`], so each scenario runs the same code for
//! all three and reports their figures side by side.
//!
//! The user scenarios of `bench-report` (9 to 14) compare more peers (the
//! disruptor and bus crates, an rtrb fan-out, evbus's single-producer mode)
//! through [`peers::Peer`]; [`os`] has what scenario 14 needs from the OS.
//! [`report`] runs every scenario and prints the report (`bench-report`,
//! `evbus bench`).

use std::{
    hint::black_box,
    sync::{Arc, RwLock},
};

use evbus_core::{Bus, Event, EventKind, Publisher, SubscribeOptions, Subscription};

pub mod os;
pub mod peers;
pub mod report;

/// A 64-byte payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payload64(pub [u8; 64]);

impl Default for Payload64 {
    fn default() -> Self {
        Self([7; 64])
    }
}

/// The single kind bench events are published on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchKind {
    /// `bench.event`.
    Event,
}

impl EventKind for BenchKind {
    const ALL: &'static [Self] = &[BenchKind::Event];

    fn topic(self) -> &'static str {
        "bench.event"
    }

    fn index(self) -> usize {
        0
    }
}

/// A bench event carrying `T`.
#[derive(Debug, Clone)]
pub struct Msg<T>(pub T);

impl<T: Clone + Send + 'static> Event for Msg<T> {
    type Kind = BenchKind;

    fn kind(&self) -> BenchKind {
        BenchKind::Event
    }
}

/// One publisher fanning out to `subscribers` bounded queues.
pub trait Fanout<T> {
    /// The peer's name in reports.
    const NAME: &'static str;

    /// A fan-out with `subscribers` queues of `capacity` each.
    fn new(subscribers: usize, capacity: usize) -> Self;

    /// Publishes one event to every subscriber; returns how many queues
    /// refused it (full).
    fn publish(&mut self, value: T) -> usize;

    /// Drains every subscriber on this thread; returns the events taken.
    fn drain(&mut self) -> usize {
        self.drain_first(usize::MAX)
    }

    /// Drains the first `n` subscribers only; returns the events taken.
    fn drain_first(&mut self, n: usize) -> usize;

    /// A closure that adds a subscriber and removes it again, for the churn
    /// scenario; it runs on another thread.
    fn churner(&self) -> Box<dyn FnMut() + Send>;

    /// Another publishing handle, for another thread. Returns the number of
    /// full queues per publish. A single-producer fan-out hands over its one
    /// producer, after which its own `publish` is unavailable.
    fn producer(&mut self) -> Box<dyn FnMut(T) -> usize + Send>;

    /// Blocks until subscriber 0 has an event (parking, not spinning).
    fn recv_blocking(&mut self) -> Option<T>;

    /// Takes one event from subscriber 0 if there is one.
    fn try_recv_first(&mut self) -> Option<T>;
}

/// The receiving side shared by both evbus fan-outs: the bus and its
/// `DropNewest` subscriptions.
#[derive(Debug)]
struct EvbusSubs<T: Clone + Send + 'static> {
    bus: Bus<Msg<T>>,
    subs: Vec<Subscription<Msg<T>>>,
}

impl<T: Clone + Send + 'static> EvbusSubs<T> {
    fn new(bus: Bus<Msg<T>>, subscribers: usize, capacity: usize) -> Self {
        let subs = (0..subscribers)
            .map(|_| {
                bus.subscribe_with(
                    evbus_core::Filter::kinds(&[BenchKind::Event]).expect("valid topic"),
                    SubscribeOptions::new().capacity(capacity),
                )
                .expect("open bus")
            })
            .collect();
        Self { bus, subs }
    }

    #[inline]
    fn drain_first(&mut self, first: usize) -> usize {
        let mut n = 0;
        for sub in self.subs.iter_mut().take(first) {
            n += sub.drain_with(|m| {
                black_box(m);
            });
        }
        n
    }

    fn churner(&self) -> Box<dyn FnMut() + Send> {
        let bus = self.bus.clone();
        // Capacity 16, as the crossbeam churner's `bounded(16)`.
        let opts = SubscribeOptions::new().capacity(16);
        let filter = evbus_core::Filter::pattern("bench.*").expect("valid pattern");
        Box::new(move || {
            drop(
                bus.subscribe_with(filter.clone(), opts.clone())
                    .expect("open bus"),
            )
        })
    }
}

/// Publishes through any evbus publisher; the number of full rings.
#[inline]
fn evbus_publish<T: Clone + Send + 'static, M: evbus_core::DeliveryMode>(
    publisher: &mut Publisher<Msg<T>, M>,
    value: T,
) -> usize {
    match publisher.publish(Msg(value)) {
        Ok(report) => report.dropped as usize,
        Err(_) => unreachable!("the bench bus is never shut down"),
    }
}

/// evbus with a [`Publisher`] (cached registry) and `DropNewest` rings.
#[derive(Debug)]
pub struct EvbusFanout<T: Clone + Send + 'static> {
    publisher: Publisher<Msg<T>>,
    rx: EvbusSubs<T>,
}

impl<T: Clone + Send + 'static> EvbusFanout<T> {
    /// As [`Fanout::new`], on a bus whose lease is revoked before the
    /// subscriptions exist (a second `Publisher` came and went), so that
    /// every delivery claims its slot with a CAS, as with several
    /// publishers at once. `new` measures the bus's only `Publisher`, which
    /// holds the lease and delivers to routes of two rings or more with
    /// plain stores.
    pub fn with_lease_revoked(subscribers: usize, capacity: usize) -> Self {
        let bus = Bus::new();
        let publisher = bus.publisher();
        drop(bus.publisher());
        Self {
            publisher,
            rx: EvbusSubs::new(bus, subscribers, capacity),
        }
    }
}

impl<T: Clone + Send + 'static> Fanout<T> for EvbusFanout<T> {
    const NAME: &'static str = "evbus";

    fn new(subscribers: usize, capacity: usize) -> Self {
        let bus = Bus::new();
        Self {
            publisher: bus.publisher(),
            rx: EvbusSubs::new(bus, subscribers, capacity),
        }
    }

    #[inline]
    fn publish(&mut self, value: T) -> usize {
        evbus_publish(&mut self.publisher, value)
    }

    fn drain_first(&mut self, first: usize) -> usize {
        self.rx.drain_first(first)
    }

    fn churner(&self) -> Box<dyn FnMut() + Send> {
        self.rx.churner()
    }

    fn producer(&mut self) -> Box<dyn FnMut(T) -> usize + Send> {
        let mut publisher = self.rx.bus.publisher();
        Box::new(move |v| publisher.publish(Msg(v)).map_or(0, |r| r.dropped as usize))
    }

    fn recv_blocking(&mut self) -> Option<T> {
        self.rx.subs[0].recv().ok().map(|m| m.0)
    }

    fn try_recv_first(&mut self) -> Option<T> {
        self.rx.subs[0].try_recv().ok().map(|m| m.0)
    }
}

impl<T: Clone + Send + 'static> EvbusFanout<T> {
    /// The bus, for scenarios that need more than [`Fanout`].
    pub fn bus(&self) -> &Bus<Msg<T>> {
        &self.rx.bus
    }
}

/// evbus in single-producer mode: [`Bus::single_producer`] and its
/// [`SoloPublisher`](evbus_core::SoloPublisher), which delivers with plain
/// stores. It has one producer by construction: `producer()` hands it over.
#[derive(Debug)]
pub struct EvbusSoloFanout<T: Clone + Send + 'static> {
    /// `None` once handed over by `producer()`.
    publisher: Option<evbus_core::SoloPublisher<Msg<T>>>,
    rx: EvbusSubs<T>,
}

impl<T: Clone + Send + 'static> Fanout<T> for EvbusSoloFanout<T> {
    const NAME: &'static str = "evbus-solo";

    fn new(subscribers: usize, capacity: usize) -> Self {
        let (bus, publisher) = Bus::single_producer().expect("valid kind table");
        Self {
            publisher: Some(publisher),
            rx: EvbusSubs::new(bus, subscribers, capacity),
        }
    }

    #[inline]
    fn publish(&mut self, value: T) -> usize {
        let publisher = self.publisher.as_mut().expect("producer not handed over");
        evbus_publish(publisher, value)
    }

    fn drain_first(&mut self, first: usize) -> usize {
        self.rx.drain_first(first)
    }

    fn churner(&self) -> Box<dyn FnMut() + Send> {
        self.rx.churner()
    }

    fn producer(&mut self) -> Box<dyn FnMut(T) -> usize + Send> {
        let mut publisher = self
            .publisher
            .take()
            .expect("a single-producer bus has exactly one producer");
        Box::new(move |v| publisher.publish(Msg(v)).map_or(0, |r| r.dropped as usize))
    }

    fn recv_blocking(&mut self) -> Option<T> {
        self.rx.subs[0].recv().ok().map(|m| m.0)
    }

    fn try_recv_first(&mut self) -> Option<T> {
        self.rx.subs[0].try_recv().ok().map(|m| m.0)
    }
}

/// `tokio::sync::broadcast` (overwrites the oldest when full; receivers
/// see `Lagged`).
#[derive(Debug)]
pub struct TokioFanout<T> {
    tx: tokio::sync::broadcast::Sender<T>,
    rxs: Vec<tokio::sync::broadcast::Receiver<T>>,
}

impl<T: Clone + Send + 'static> Fanout<T> for TokioFanout<T> {
    const NAME: &'static str = "tokio-broadcast";

    fn new(subscribers: usize, capacity: usize) -> Self {
        let (tx, rx) = tokio::sync::broadcast::channel(capacity);
        let rxs = (0..subscribers).map(|_| rx.resubscribe()).collect();
        Self { tx, rxs }
    }

    #[inline]
    fn publish(&mut self, value: T) -> usize {
        // `send` fails only when there is no receiver.
        let _ = self.tx.send(value);
        0
    }

    fn drain_first(&mut self, first: usize) -> usize {
        let mut n = 0;
        for rx in self.rxs.iter_mut().take(first) {
            loop {
                match rx.try_recv() {
                    Ok(m) => {
                        black_box(m);
                        n += 1;
                    }
                    Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {}
                    Err(_) => break,
                }
            }
        }
        n
    }

    fn churner(&self) -> Box<dyn FnMut() + Send> {
        let tx = self.tx.clone();
        Box::new(move || drop(tx.subscribe()))
    }

    fn producer(&mut self) -> Box<dyn FnMut(T) -> usize + Send> {
        let tx = self.tx.clone();
        Box::new(move |v| {
            let _ = tx.send(v);
            0
        })
    }

    fn recv_blocking(&mut self) -> Option<T> {
        loop {
            match self.rxs[0].blocking_recv() {
                Ok(v) => return Some(v),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return None,
            }
        }
    }

    fn try_recv_first(&mut self) -> Option<T> {
        loop {
            match self.rxs[0].try_recv() {
                Ok(v) => return Some(v),
                Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {}
                Err(_) => return None,
            }
        }
    }
}

/// One crossbeam `bounded` channel per subscriber, senders in a
/// `RwLock<Vec<Sender>>` so subscribers could be added at runtime.
#[derive(Debug)]
pub struct CrossbeamFanout<T> {
    senders: Arc<RwLock<Vec<crossbeam_channel::Sender<T>>>>,
    receivers: Vec<crossbeam_channel::Receiver<T>>,
}

impl<T: Clone + Send + 'static> Fanout<T> for CrossbeamFanout<T> {
    const NAME: &'static str = "crossbeam-fanout";

    fn new(subscribers: usize, capacity: usize) -> Self {
        let (senders, receivers) = (0..subscribers)
            .map(|_| crossbeam_channel::bounded(capacity))
            .unzip();
        Self {
            senders: Arc::new(RwLock::new(senders)),
            receivers,
        }
    }

    #[inline]
    fn publish(&mut self, value: T) -> usize {
        publish_all(&self.senders, value)
    }

    fn drain_first(&mut self, first: usize) -> usize {
        let mut n = 0;
        for rx in self.receivers.iter().take(first) {
            while let Ok(m) = rx.try_recv() {
                black_box(m);
                n += 1;
            }
        }
        n
    }

    fn churner(&self) -> Box<dyn FnMut() + Send> {
        let senders = Arc::clone(&self.senders);
        Box::new(move || {
            let (tx, rx) = crossbeam_channel::bounded(16);
            senders.write().unwrap_or_else(|p| p.into_inner()).push(tx);
            drop(rx);
            let mut list = senders.write().unwrap_or_else(|p| p.into_inner());
            list.pop();
        })
    }

    fn producer(&mut self) -> Box<dyn FnMut(T) -> usize + Send> {
        let senders = Arc::clone(&self.senders);
        Box::new(move |v| publish_all(&senders, v))
    }

    fn recv_blocking(&mut self) -> Option<T> {
        self.receivers[0].recv().ok()
    }

    fn try_recv_first(&mut self) -> Option<T> {
        self.receivers[0].try_recv().ok()
    }
}

/// Offers `value` to every sender without waiting (`try_send`); returns
/// how many refused it (full). The crossbeam fan-out's publish.
pub fn publish_all<T: Clone>(
    senders: &RwLock<Vec<crossbeam_channel::Sender<T>>>,
    value: T,
) -> usize {
    let senders = senders.read().unwrap_or_else(|p| p.into_inner());
    let mut full = 0;
    if let Some((last, rest)) = senders.split_last() {
        for tx in rest {
            full += usize::from(tx.try_send(value.clone()).is_err());
        }
        full += usize::from(last.try_send(value).is_err());
    }
    full
}

/// Scenario 1: publishes `burst` events, then drains them on this thread.
/// Returns the deliveries made.
#[inline]
pub fn burst_then_drain<T: Clone, F: Fanout<T>>(fanout: &mut F, value: &T, burst: usize) -> usize {
    for _ in 0..burst {
        fanout.publish(value.clone());
    }
    fanout.drain()
}

/// Defines `fn $name(fanout: &mut $ty) -> usize` for the callgrind
/// workloads: `$publishes` publishes of `u64`s in bursts of `$burst`, each
/// burst drained on the same thread; returns the events drained.
///
/// A macro rather than a generic function: each workload binary gets the
/// loop compiled in place, as the committed baseline was measured. Through a
/// shared generic function the drain inlines differently and the count moves
/// by about 90 instructions per publish.
#[macro_export]
macro_rules! burst_workload {
    ($name:ident, $ty:ty, $publishes:expr, $burst:expr) => {
        #[inline(never)]
        fn $name(fanout: &mut $ty) -> usize {
            use $crate::Fanout as _;
            let mut delivered = 0;
            let mut published = 0;
            while published < $publishes {
                let burst = ($burst).min($publishes - published);
                for i in 0..burst {
                    fanout.publish(::std::hint::black_box(i as u64));
                }
                published += burst;
                delivered += fanout.drain();
            }
            delivered
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deliveries<F: Fanout<u64>>() -> usize {
        let mut f = F::new(4, 64);
        burst_then_drain(&mut f, &1, 32)
    }

    #[test]
    fn every_peer_delivers_a_burst_to_every_subscriber() {
        assert_eq!(deliveries::<EvbusFanout<u64>>(), 128);
        assert_eq!(deliveries::<TokioFanout<u64>>(), 128);
        assert_eq!(deliveries::<CrossbeamFanout<u64>>(), 128);
    }

    #[test]
    fn full_rings_drop_on_evbus_and_crossbeam() {
        let mut e = EvbusFanout::<u64>::new(2, 4);
        let mut c = CrossbeamFanout::<u64>::new(2, 4);
        let dropped_e: usize = (0..10).map(|i| e.publish(i)).sum();
        let dropped_c: usize = (0..10).map(|i| c.publish(i)).sum();
        assert_eq!((dropped_e, dropped_c), (12, 12));
        assert_eq!((e.drain(), c.drain()), (8, 8));
    }
}
