//! A crossbeam-channel fan-out: one `bounded` channel per subscriber, the
//! senders in a `RwLock<Vec<Sender>>` (so subscribers could come and go),
//! as the `CrossbeamFanout` of the other scenarios. Lossless is the
//! blocking `send` on each channel in turn (it spins, then parks).

use std::{
    hint::black_box,
    marker::PhantomData,
    sync::{Arc, RwLock},
};

use crossbeam_channel::{Receiver, Sender};

use super::{Item, NotPossible, Peer, PeerRx, PeerTx};

/// A crossbeam-channel fan-out.
#[derive(Debug)]
pub struct CrossbeamPeer<T>(PhantomData<T>);

/// The publishing half.
#[derive(Debug)]
pub struct CrossbeamTx<T> {
    senders: Arc<RwLock<Vec<Sender<T>>>>,
}

/// The receiving half.
#[derive(Debug)]
pub struct CrossbeamRx<T> {
    receivers: Vec<Receiver<T>>,
}

impl<T: Item> Peer<T> for CrossbeamPeer<T> {
    const NAME: &'static str = "crossbeam fan-out";
    const SEMANTICS: &'static str = "one `bounded` channel per subscriber, senders in a `RwLock<Vec<_>>`; lossless = blocking `send` to each in turn (spins, then parks); otherwise `try_send`, a full channel refuses";
    type Tx = CrossbeamTx<T>;
    type Rx = CrossbeamRx<T>;

    fn build(
        subscribers: usize,
        capacity: usize,
        _lossless: bool,
    ) -> Result<(Self::Tx, Self::Rx), NotPossible> {
        let (senders, receivers) = (0..subscribers)
            .map(|_| crossbeam_channel::bounded(capacity))
            .unzip();
        Ok((
            CrossbeamTx {
                senders: Arc::new(RwLock::new(senders)),
            },
            CrossbeamRx { receivers },
        ))
    }
}

impl<T: Item> PeerTx<T> for CrossbeamTx<T> {
    #[inline]
    fn send(&mut self, value: T) -> usize {
        let senders = self.senders.read().unwrap_or_else(|p| p.into_inner());
        let mut lost = 0;
        if let Some((last, rest)) = senders.split_last() {
            for tx in rest {
                lost += usize::from(tx.send(value.clone()).is_err());
            }
            lost += usize::from(last.send(value).is_err());
        }
        lost
    }

    #[inline]
    fn try_send(&mut self, value: T) -> usize {
        crate::publish_all(&self.senders, value)
    }
}

impl<T: Item> PeerRx for CrossbeamRx<T> {
    #[inline]
    fn drain(&mut self) -> usize {
        let mut n = 0;
        for rx in &self.receivers {
            while let Ok(v) = rx.try_recv() {
                black_box(v);
                n += 1;
            }
        }
        n
    }
}
