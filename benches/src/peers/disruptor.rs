//! The `disruptor` crate (4.x): one shared ring, pre-filled by a factory,
//! with a sequence per consumer. One `EventPoller` per subscriber (the
//! docs' poller API, so one thread can drain them all), built as the docs
//! show for a variable number of consumers (`with_multi_consumer`, then
//! `new_event_poller` per consumer). The producer needs room for every
//! consumer: `publish` spins until the slowest consumer moves on, and
//! `try_publish` refuses for everyone while it is behind.

use std::{hint::black_box, marker::PhantomData};

use disruptor::{
    BusySpin, EventPoller, MultiConsumerBarrier, Producer as _, SingleProducer,
    SingleProducerBarrier,
};

use super::{Item, NotPossible, Peer, PeerRx, PeerTx};

/// A single-producer disruptor with `K` event pollers.
#[derive(Debug)]
pub struct DisruptorPeer<T>(PhantomData<T>);

/// The publishing half: the producer and the consumer count.
pub struct DisruptorTx<T> {
    producer: SingleProducer<T, MultiConsumerBarrier>,
    consumers: usize,
}

impl<T> std::fmt::Debug for DisruptorTx<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DisruptorTx")
            .field("consumers", &self.consumers)
            .finish_non_exhaustive()
    }
}

/// The receiving half: one poller per subscriber.
pub struct DisruptorRx<T> {
    pollers: Vec<EventPoller<T, SingleProducerBarrier>>,
}

impl<T> std::fmt::Debug for DisruptorRx<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DisruptorRx")
            .field("pollers", &self.pollers.len())
            .finish()
    }
}

impl<T: Item> Peer<T> for DisruptorPeer<T> {
    const NAME: &'static str = "disruptor";
    const SEMANTICS: &'static str = "one shared ring (power-of-two size), a sequence per consumer (`EventPoller`s); lossless = `publish`, which spins until the slowest consumer frees a slot; otherwise `try_publish`, which refuses for all while the slowest consumer is behind; needs at least one consumer";
    type Tx = DisruptorTx<T>;
    type Rx = DisruptorRx<T>;

    fn build(
        subscribers: usize,
        capacity: usize,
        _lossless: bool,
    ) -> Result<(Self::Tx, Self::Rx), NotPossible> {
        if subscribers == 0 {
            return Err(NotPossible("not possible: needs a consumer".into()));
        }
        if !capacity.is_power_of_two() {
            return Err(NotPossible(format!(
                "not possible: size {capacity} is not a power of two"
            )));
        }
        let mut builder =
            disruptor::build_single_producer(capacity, T::default, BusySpin).with_multi_consumer();
        let mut pollers = Vec::with_capacity(subscribers);
        for _ in 0..subscribers {
            let (poller, next) = builder.new_event_poller();
            pollers.push(poller);
            builder = next;
        }
        Ok((
            DisruptorTx {
                producer: builder.build(),
                consumers: subscribers,
            },
            DisruptorRx { pollers },
        ))
    }
}

impl<T: Item> PeerTx<T> for DisruptorTx<T> {
    #[inline]
    fn send(&mut self, value: T) -> usize {
        self.producer.publish(|slot| *slot = value);
        0
    }

    #[inline]
    fn try_send(&mut self, value: T) -> usize {
        match self.producer.try_publish(|slot| *slot = value) {
            Ok(_) => 0,
            Err(_) => self.consumers,
        }
    }
}

impl<T: Item> PeerRx for DisruptorRx<T> {
    #[inline]
    fn drain(&mut self) -> usize {
        let mut n = 0;
        for poller in &mut self.pollers {
            if let Ok(mut events) = poller.poll() {
                for event in &mut events {
                    black_box(event.clone());
                    n += 1;
                }
            }
        }
        n
    }
}
