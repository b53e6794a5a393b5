//! The `bus` crate: one shared ring with a read cursor per reader. A
//! broadcast needs room for every reader, so when the slowest reader is
//! behind it waits (`broadcast`) or refuses for everyone (`try_broadcast`).

use std::{hint::black_box, marker::PhantomData};

use bus::{Bus, BusReader};

use super::{Item, NotPossible, Peer, PeerRx, PeerTx};

/// A `bus::Bus` with `K` readers.
#[derive(Debug)]
pub struct BusPeer<T>(PhantomData<T>);

/// The publishing half: the bus and its reader count.
pub struct BusTx<T> {
    bus: Bus<T>,
    readers: usize,
}

impl<T> std::fmt::Debug for BusTx<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusTx")
            .field("readers", &self.readers)
            .finish_non_exhaustive()
    }
}

/// The receiving half: the readers.
pub struct BusRx<T> {
    readers: Vec<BusReader<T>>,
}

impl<T> std::fmt::Debug for BusRx<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusRx")
            .field("readers", &self.readers.len())
            .finish()
    }
}

impl<T: Item> Peer<T> for BusPeer<T> {
    const NAME: &'static str = "bus";
    const SEMANTICS: &'static str = "one shared ring, a cursor per reader; a broadcast needs room for every reader: lossless = `broadcast` (waits for the slowest reader: spins, then parks); otherwise `try_broadcast`, which refuses for all when one reader is behind";
    type Tx = BusTx<T>;
    type Rx = BusRx<T>;

    fn build(
        subscribers: usize,
        capacity: usize,
        _lossless: bool,
    ) -> Result<(Self::Tx, Self::Rx), NotPossible> {
        let mut bus = Bus::new(capacity);
        let readers = (0..subscribers).map(|_| bus.add_rx()).collect();
        Ok((
            BusTx {
                bus,
                readers: subscribers,
            },
            BusRx { readers },
        ))
    }
}

impl<T: Item> PeerTx<T> for BusTx<T> {
    #[inline]
    fn send(&mut self, value: T) -> usize {
        self.bus.broadcast(value);
        0
    }

    #[inline]
    fn try_send(&mut self, value: T) -> usize {
        match self.bus.try_broadcast(value) {
            Ok(()) => 0,
            Err(_) => self.readers,
        }
    }
}

impl<T: Item> PeerRx for BusRx<T> {
    #[inline]
    fn drain(&mut self) -> usize {
        let mut n = 0;
        for reader in &mut self.readers {
            while let Ok(v) = reader.try_recv() {
                black_box(v);
                n += 1;
            }
        }
        n
    }
}
