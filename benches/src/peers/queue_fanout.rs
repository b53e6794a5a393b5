//! The fan-out of the two floor peers: one queue per subscriber and
//! nothing else (no topics, no registry, no shared counters). A lossless
//! send retries a full queue, spinning a bounded number of times, then
//! yielding the core ([`back_off`]); a drain pops every queue dry in turn.
//!
//! [`RtrbPeer`](super::RtrbPeer) fills it with `rtrb` SPSC rings (the floor
//! of a per-subscriber ring), [`ArrayQueuePeer`](super::ArrayQueuePeer)
//! with crossbeam's `ArrayQueue` (the floor of a per-subscriber ring that
//! many producers may write: a CAS claims each slot, as in evbus).

use std::hint::black_box;

use super::{PeerRx, PeerTx, back_off};

/// The producing end of one subscriber's queue.
pub trait TxQueue<T>: Send + 'static {
    /// Pushes `value`, or hands it back when the queue is full.
    ///
    /// # Errors
    ///
    /// `value` itself, when the queue is full.
    fn push(&mut self, value: T) -> Result<(), T>;

    /// Whether the consumer is gone, so that a full queue stays full.
    fn abandoned(&self) -> bool;
}

/// The consuming end of one subscriber's queue.
pub trait RxQueue: Send + 'static {
    /// What the queue holds.
    type Item;

    /// The oldest value, if any.
    fn pop(&mut self) -> Option<Self::Item>;
}

/// The publishing half: every subscriber's producing end.
#[derive(Debug)]
pub struct QueueTx<Q> {
    queues: Vec<Q>,
}

/// The receiving half: every subscriber's consuming end.
#[derive(Debug)]
pub struct QueueRx<Q> {
    queues: Vec<Q>,
}

/// The two halves over `pairs`, one (producer, consumer) pair per
/// subscriber.
pub(super) fn halves<P, C>(pairs: impl IntoIterator<Item = (P, C)>) -> (QueueTx<P>, QueueRx<C>) {
    let (tx, rx) = pairs.into_iter().unzip();
    (QueueTx { queues: tx }, QueueRx { queues: rx })
}

/// Pushes into one queue, waiting while it is full; 1 if its consumer is
/// gone (the event is lost), else 0.
#[inline]
fn push_waiting<T, Q: TxQueue<T>>(queue: &mut Q, mut value: T) -> usize {
    let mut round = 0;
    loop {
        match queue.push(value) {
            Ok(()) => return 0,
            Err(back) => {
                if queue.abandoned() {
                    return 1;
                }
                value = back;
                back_off(&mut round);
            }
        }
    }
}

impl<T: Clone, Q: TxQueue<T>> PeerTx<T> for QueueTx<Q> {
    #[inline]
    fn send(&mut self, value: T) -> usize {
        let mut lost = 0;
        if let Some((last, rest)) = self.queues.split_last_mut() {
            for queue in rest {
                lost += push_waiting(queue, value.clone());
            }
            lost += push_waiting(last, value);
        }
        lost
    }

    #[inline]
    fn try_send(&mut self, value: T) -> usize {
        let mut refused = 0;
        if let Some((last, rest)) = self.queues.split_last_mut() {
            for queue in rest {
                refused += usize::from(queue.push(value.clone()).is_err());
            }
            refused += usize::from(last.push(value).is_err());
        }
        refused
    }
}

impl<Q: RxQueue> PeerRx for QueueRx<Q> {
    #[inline]
    fn drain(&mut self) -> usize {
        let mut n = 0;
        for queue in &mut self.queues {
            while let Some(v) = queue.pop() {
                black_box(v);
                n += 1;
            }
        }
        n
    }
}
