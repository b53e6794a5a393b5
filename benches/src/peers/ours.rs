//! evbus itself (the module is `ours`, so that it does not read as the
//! facade crate `evbus`): one bus, `K` subscriptions on the bench kind, published by kind.
//! Lossless is `Overflow::Block` (the publisher waits on a full ring);
//! otherwise `Overflow::DropNewest` (a full ring refuses and counts).

use std::{hint::black_box, marker::PhantomData, time::Duration};

use evbus_core::{
    Bus, DeliveryMode, Filter, MultiProducer, Overflow, Publisher, SingleProducer, SubscribeError,
    SubscribeOptions, Subscription,
};

use super::{Item, NotPossible, Peer, PeerRx, PeerTx};
use crate::{BenchKind, Msg};

/// How long a lossless publish waits on a full ring before it drops and
/// counts: far longer than any scenario, so a drop is a failure the report
/// shows, not a policy.
const BLOCK: Duration = Duration::from_secs(30);

/// evbus with a multi-producer [`Publisher`].
#[derive(Debug)]
pub struct EvbusPeer<T>(PhantomData<T>);

/// evbus in single-producer mode ([`Bus::single_producer`]).
#[derive(Debug)]
pub struct EvbusSoloPeer<T>(PhantomData<T>);

/// The publishing half: a publisher of either mode.
#[derive(Debug)]
pub struct EvbusTx<T: Item, M: DeliveryMode> {
    publisher: Publisher<Msg<T>, M>,
    /// Keeps the bus open while only the halves hold it.
    _bus: Bus<Msg<T>>,
}

/// The receiving half: the subscriptions.
#[derive(Debug)]
pub struct EvbusRx<T: Item> {
    subs: Vec<Subscription<Msg<T>>>,
}

fn subscribe<T: Item>(
    bus: &Bus<Msg<T>>,
    subscribers: usize,
    capacity: usize,
    lossless: bool,
) -> Result<EvbusRx<T>, NotPossible> {
    let overflow = if lossless {
        Overflow::Block(BLOCK)
    } else {
        Overflow::DropNewest
    };
    let subs = (0..subscribers)
        .map(|_| {
            bus.subscribe_with(
                Filter::kinds(&[BenchKind::Event]).expect("valid topic"),
                SubscribeOptions::new()
                    .capacity(capacity)
                    .overflow(overflow),
            )
        })
        .collect::<Result<Vec<_>, SubscribeError>>()
        .map_err(not_possible)?;
    Ok(EvbusRx { subs })
}

/// The two halves of a peer: `subscribers` subscriptions on `bus`, and
/// `publisher` (either mode) with the bus handle that keeps it open.
fn halves<T: Item, M: DeliveryMode>(
    bus: Bus<Msg<T>>,
    publisher: Publisher<Msg<T>, M>,
    subscribers: usize,
    capacity: usize,
    lossless: bool,
) -> Result<(EvbusTx<T, M>, EvbusRx<T>), NotPossible> {
    let rx = subscribe(&bus, subscribers, capacity, lossless)?;
    Ok((
        EvbusTx {
            publisher,
            _bus: bus,
        },
        rx,
    ))
}

/// The cell text for a refused subscription.
pub fn not_possible(e: SubscribeError) -> NotPossible {
    NotPossible(match e {
        SubscribeError::SingleProducerPolicy(_) => {
            "not possible (single producer refuses `Block`)".to_owned()
        }
        other => format!("not possible: {other}"),
    })
}

impl<T: Item> Peer<T> for EvbusPeer<T> {
    const NAME: &'static str = "evbus";
    const SEMANTICS: &'static str = "one ring per subscription, multi-producer `Publisher`; lossless = `Overflow::Block` (the publisher waits on each full ring); otherwise `DropNewest` (a full ring refuses and counts)";
    type Tx = EvbusTx<T, MultiProducer>;
    type Rx = EvbusRx<T>;

    fn build(
        subscribers: usize,
        capacity: usize,
        lossless: bool,
    ) -> Result<(Self::Tx, Self::Rx), NotPossible> {
        let bus = Bus::new();
        let publisher = bus.publisher();
        halves(bus, publisher, subscribers, capacity, lossless)
    }
}

impl<T: Item> Peer<T> for EvbusSoloPeer<T> {
    const NAME: &'static str = "evbus single producer";
    const SEMANTICS: &'static str = "as evbus, with `Bus::single_producer` (deliveries are plain stores); lossless uses `Block` too (allowed in this mode since issue 14: a full ring pauses the publish and waits)";
    type Tx = EvbusTx<T, SingleProducer>;
    type Rx = EvbusRx<T>;

    fn build(
        subscribers: usize,
        capacity: usize,
        lossless: bool,
    ) -> Result<(Self::Tx, Self::Rx), NotPossible> {
        let (bus, publisher) = Bus::single_producer().expect("valid kind table");
        halves(bus, publisher, subscribers, capacity, lossless)
    }
}

impl<T: Item, M: DeliveryMode> PeerTx<T> for EvbusTx<T, M>
where
    Publisher<Msg<T>, M>: Send,
{
    #[inline]
    fn send(&mut self, value: T) -> usize {
        // Block rings wait; a drop here means one waited `BLOCK` in vain.
        self.try_send(value)
    }

    #[inline]
    fn try_send(&mut self, value: T) -> usize {
        match self.publisher.publish(Msg(value)) {
            Ok(report) => report.dropped as usize,
            Err(_) => unreachable!("the bench bus is never shut down"),
        }
    }
}

impl<T: Item> PeerRx for EvbusRx<T> {
    #[inline]
    fn drain(&mut self) -> usize {
        let mut n = 0;
        for sub in &mut self.subs {
            n += sub.drain_with(|m| {
                black_box(m);
            });
        }
        n
    }
}
