//! A fan-out over crossbeam's `ArrayQueue`: one bounded multi-producer
//! queue per subscriber, nothing else (no topics, no registry, no shared
//! counters). A push claims its slot with a CAS on the queue's tail, as an
//! evbus multi-producer delivery does, and a consumer that finds the queue
//! empty reads that tail. So this is the floor of a per-subscriber ring that
//! many producers may write: what the rtrb floor saves beyond it is the
//! price of taking producers one at a time. Lossless: a full queue is
//! retried, spinning a bounded number of times, then yielding.

use std::{marker::PhantomData, sync::Arc};

use crossbeam_queue::ArrayQueue;

use super::{
    Item, NotPossible, Peer,
    queue_fanout::{QueueRx, QueueTx, RxQueue, TxQueue, halves},
};

/// One `ArrayQueue` per subscriber.
#[derive(Debug)]
pub struct ArrayQueuePeer<T>(PhantomData<T>);

/// One end of a subscriber's queue: the publisher's and the consumer's
/// share it.
#[derive(Debug)]
pub struct Shared<T>(Arc<ArrayQueue<T>>);

impl<T: Item> Peer<T> for ArrayQueuePeer<T> {
    const NAME: &'static str = "ArrayQueue fan-out (multi-producer floor)";
    const SEMANTICS: &'static str = "one crossbeam `ArrayQueue` (bounded, multi-producer: a CAS claims each slot) per subscriber, no topics or counters (the floor of a per-subscriber ring that many producers may write); lossless = retry a full queue, spinning 64 times, then yielding; otherwise a full queue refuses";
    type Tx = QueueTx<Shared<T>>;
    type Rx = QueueRx<Shared<T>>;

    fn build(
        subscribers: usize,
        capacity: usize,
        _lossless: bool,
    ) -> Result<(Self::Tx, Self::Rx), NotPossible> {
        Ok(halves((0..subscribers).map(|_| {
            let queue = Arc::new(ArrayQueue::new(capacity));
            (Shared(Arc::clone(&queue)), Shared(queue))
        })))
    }
}

impl<T: Send + 'static> TxQueue<T> for Shared<T> {
    #[inline]
    fn push(&mut self, value: T) -> Result<(), T> {
        self.0.push(value)
    }

    #[inline]
    fn abandoned(&self) -> bool {
        // The consumer's end is the other reference.
        Arc::strong_count(&self.0) == 1
    }
}

impl<T: Send + 'static> RxQueue for Shared<T> {
    type Item = T;

    #[inline]
    fn pop(&mut self) -> Option<T> {
        self.0.pop()
    }
}
