//! An `rtrb` fan-out: one wait-free SPSC ring per subscriber, nothing else
//! (no topics, no registry, no shared counters). The floor of a
//! per-subscriber ring design. Lossless: a full ring is retried, spinning a
//! bounded number of times, then yielding the core.

use std::{hint::black_box, marker::PhantomData};

use rtrb::{Consumer, Producer, PushError, RingBuffer};

use super::{Item, NotPossible, Peer, PeerRx, PeerTx, back_off};

/// One `rtrb` ring per subscriber.
#[derive(Debug)]
pub struct RtrbPeer<T>(PhantomData<T>);

/// The publishing half: every ring's producer.
#[derive(Debug)]
pub struct RtrbTx<T> {
    producers: Vec<Producer<T>>,
}

/// The receiving half: every ring's consumer.
#[derive(Debug)]
pub struct RtrbRx<T> {
    consumers: Vec<Consumer<T>>,
}

impl<T: Item> Peer<T> for RtrbPeer<T> {
    const NAME: &'static str = "rtrb fan-out (floor)";
    const SEMANTICS: &'static str = "one `rtrb` SPSC ring per subscriber, no topics or counters (the floor of a per-subscriber ring design); lossless = retry a full ring, spinning 64 times, then yielding; otherwise a full ring refuses";
    type Tx = RtrbTx<T>;
    type Rx = RtrbRx<T>;

    fn build(
        subscribers: usize,
        capacity: usize,
        _lossless: bool,
    ) -> Result<(Self::Tx, Self::Rx), NotPossible> {
        let (producers, consumers) = (0..subscribers).map(|_| RingBuffer::new(capacity)).unzip();
        Ok((RtrbTx { producers }, RtrbRx { consumers }))
    }
}

/// Pushes into one ring, waiting while it is full.
#[inline]
fn push_waiting<T>(ring: &mut Producer<T>, mut value: T) -> usize {
    let mut round = 0;
    loop {
        match ring.push(value) {
            Ok(()) => return 0,
            Err(PushError::Full(back)) => {
                if ring.is_abandoned() {
                    return 1;
                }
                value = back;
                back_off(&mut round);
            }
        }
    }
}

impl<T: Item> PeerTx<T> for RtrbTx<T> {
    #[inline]
    fn send(&mut self, value: T) -> usize {
        let mut lost = 0;
        if let Some((last, rest)) = self.producers.split_last_mut() {
            for ring in rest {
                lost += push_waiting(ring, value.clone());
            }
            lost += push_waiting(last, value);
        }
        lost
    }

    #[inline]
    fn try_send(&mut self, value: T) -> usize {
        let mut refused = 0;
        if let Some((last, rest)) = self.producers.split_last_mut() {
            for ring in rest {
                refused += usize::from(ring.push(value.clone()).is_err());
            }
            refused += usize::from(last.push(value).is_err());
        }
        refused
    }
}

impl<T: Item> PeerRx for RtrbRx<T> {
    #[inline]
    fn drain(&mut self) -> usize {
        let mut n = 0;
        for ring in &mut self.consumers {
            while let Ok(v) = ring.pop() {
                black_box(v);
                n += 1;
            }
        }
        n
    }
}
