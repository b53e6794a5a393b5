//! An `rtrb` fan-out: one wait-free SPSC ring per subscriber, nothing else
//! (no topics, no registry, no shared counters). The floor of a
//! per-subscriber ring design. Lossless: a full ring is retried, spinning a
//! bounded number of times, then yielding.

use std::marker::PhantomData;

use rtrb::{Consumer, Producer, PushError, RingBuffer};

use super::{
    Item, NotPossible, Peer,
    queue_fanout::{QueueRx, QueueTx, RxQueue, TxQueue, halves},
};

/// One `rtrb` ring per subscriber.
#[derive(Debug)]
pub struct RtrbPeer<T>(PhantomData<T>);

impl<T: Item> Peer<T> for RtrbPeer<T> {
    const NAME: &'static str = "rtrb fan-out (floor)";
    const SEMANTICS: &'static str = "one `rtrb` SPSC ring per subscriber, no topics or counters (the floor of a per-subscriber ring design); lossless = retry a full ring, spinning 64 times, then yielding; otherwise a full ring refuses";
    type Tx = QueueTx<Producer<T>>;
    type Rx = QueueRx<Consumer<T>>;

    fn build(
        subscribers: usize,
        capacity: usize,
        _lossless: bool,
    ) -> Result<(Self::Tx, Self::Rx), NotPossible> {
        Ok(halves((0..subscribers).map(|_| RingBuffer::new(capacity))))
    }
}

impl<T: Send + 'static> TxQueue<T> for Producer<T> {
    #[inline]
    fn push(&mut self, value: T) -> Result<(), T> {
        Producer::push(self, value).map_err(|PushError::Full(back)| back)
    }

    #[inline]
    fn abandoned(&self) -> bool {
        self.is_abandoned()
    }
}

impl<T: Send + 'static> RxQueue for Consumer<T> {
    type Item = T;

    #[inline]
    fn pop(&mut self) -> Option<T> {
        Consumer::pop(self).ok()
    }
}
