//! `tokio::sync::broadcast`: one shared ring, every receiver with its own
//! cursor. It has no back-pressure: a send into a full channel overwrites
//! the oldest value and a slow receiver gets `Lagged`. Lossless is a credit
//! loop on `Sender::len()` (values not yet seen by every receiver).

use std::{hint::black_box, marker::PhantomData};

use tokio::sync::broadcast::{self, error::TryRecvError};

use super::{Item, NotPossible, Peer, PeerRx, PeerTx, back_off};

/// `tokio::sync::broadcast` with `K` receivers.
#[derive(Debug)]
pub struct TokioPeer<T>(PhantomData<T>);

/// The publishing half: the sender and the channel's capacity.
#[derive(Debug)]
pub struct TokioTx<T> {
    tx: broadcast::Sender<T>,
    capacity: usize,
}

/// The receiving half.
#[derive(Debug)]
pub struct TokioRx<T> {
    rxs: Vec<broadcast::Receiver<T>>,
}

impl<T: Item> Peer<T> for TokioPeer<T> {
    const NAME: &'static str = "tokio broadcast";
    const SEMANTICS: &'static str = "one shared ring, a cursor per receiver; a full channel overwrites the oldest value (receivers see `Lagged`), so it never refuses; lossless = a credit loop on `Sender::len()` (spin, then yield)";
    type Tx = TokioTx<T>;
    type Rx = TokioRx<T>;

    fn build(
        subscribers: usize,
        capacity: usize,
        _lossless: bool,
    ) -> Result<(Self::Tx, Self::Rx), NotPossible> {
        let (tx, rx) = broadcast::channel(capacity);
        let rxs = (0..subscribers).map(|_| rx.resubscribe()).collect();
        Ok((TokioTx { tx, capacity }, TokioRx { rxs }))
    }
}

impl<T: Item> PeerTx<T> for TokioTx<T> {
    #[inline]
    fn send(&mut self, value: T) -> usize {
        let mut round = 0;
        while self.tx.len() >= self.capacity {
            back_off(&mut round);
        }
        // `send` fails only when there is no receiver.
        let _ = self.tx.send(value);
        0
    }

    #[inline]
    fn try_send(&mut self, value: T) -> usize {
        let _ = self.tx.send(value);
        0
    }
}

impl<T: Item> PeerRx for TokioRx<T> {
    #[inline]
    fn drain(&mut self) -> usize {
        let mut n = 0;
        for rx in &mut self.rxs {
            loop {
                match rx.try_recv() {
                    Ok(v) => {
                        black_box(v);
                        n += 1;
                    }
                    Err(TryRecvError::Lagged(_)) => {}
                    Err(_) => break,
                }
            }
        }
        n
    }
}
