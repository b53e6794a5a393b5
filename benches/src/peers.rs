//! The peers of the user scenarios (issue 14): evbus (multi-producer and
//! single-producer), `tokio::sync::broadcast`, a crossbeam-channel fan-out,
//! the `disruptor` crate, the `bus` crate, an `rtrb` fan-out (one SPSC
//! ring per subscriber: the floor of a per-subscriber ring design) and an
//! `ArrayQueue` fan-out (one multi-producer queue per subscriber: the floor
//! of a per-subscriber ring that many producers may write).
//!
//! Each peer, one file each under `peers/`, is used the way its own docs
//! recommend, and says what its lossless publish and its refusal mean in
//! [`Peer::SEMANTICS`]. A peer that cannot be built for a scenario (the
//! disruptor without a consumer, a single-producer evbus bus with `Block`
//! while it refuses that policy) returns [`NotPossible`] from
//! [`Peer::build`], and the report says so instead of a figure.
//!
//! Every scenario is written once, generic over [`Peer`]; [`dispatch`] runs
//! it for one [`PeerKind`] with static dispatch, so no figure pays for a
//! virtual call.

mod array_queue;
mod bus;
mod crossbeam;
mod disruptor;
mod ours;
mod queue_fanout;
mod rtrb;
mod tokio;

pub use self::{
    array_queue::ArrayQueuePeer,
    bus::BusPeer,
    crossbeam::CrossbeamPeer,
    disruptor::DisruptorPeer,
    ours::{EvbusPeer, EvbusSoloPeer, not_possible},
    rtrb::RtrbPeer,
    tokio::TokioPeer,
};

/// What a payload must be for every peer: the disruptor fills its ring
/// from a factory (`Default`), the `bus` crate shares slots between
/// readers (`Sync`).
pub trait Item: Clone + Send + Sync + Default + 'static {}

impl<T: Clone + Send + Sync + Default + 'static> Item for T {}

/// Why a peer cannot run a scenario, printed in its cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotPossible(pub String);

/// A fan-out mechanism: one publishing half and one receiving half.
pub trait Peer<T: Item> {
    /// The peer's column in the report.
    const NAME: &'static str;
    /// One line: what a lossless publish and a refusal mean for this peer.
    const SEMANTICS: &'static str;
    /// The publishing half.
    type Tx: PeerTx<T>;
    /// The receiving half: every subscriber's queue.
    type Rx: PeerRx;

    /// `subscribers` queues of `capacity` events each. With `lossless`, the
    /// queues make [`PeerTx::send`] wait instead of dropping (evbus:
    /// `Overflow::Block`; the others wait in `send` whatever this says);
    /// without it, evbus uses `Overflow::DropNewest`.
    ///
    /// # Errors
    ///
    /// [`NotPossible`] when the peer cannot be built that way.
    fn build(
        subscribers: usize,
        capacity: usize,
        lossless: bool,
    ) -> Result<(Self::Tx, Self::Rx), NotPossible>;
}

/// The publishing half of a [`Peer`].
pub trait PeerTx<T>: Send + 'static {
    /// Publishes to every subscriber and returns once every queue took the
    /// event (lossless): each peer waits its own way (see
    /// [`Peer::SEMANTICS`]). Returns the events lost all the same (an evbus
    /// `Block` ring that timed out), normally 0.
    fn send(&mut self, value: T) -> usize;

    /// Publishes without waiting; returns how many subscribers did not get
    /// the event (refused by a full queue). tokio never refuses: it
    /// overwrites the oldest event.
    fn try_send(&mut self, value: T) -> usize;
}

/// The receiving half of a [`Peer`]: every subscriber, drained by one
/// thread.
pub trait PeerRx: Send + 'static {
    /// Takes every event buffered in every subscriber's queue, without
    /// waiting; returns how many.
    fn drain(&mut self) -> usize;
}

/// The peers, in the report's column order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerKind {
    /// [`EvbusPeer`].
    Evbus,
    /// [`EvbusSoloPeer`].
    EvbusSolo,
    /// [`TokioPeer`].
    Tokio,
    /// [`CrossbeamPeer`].
    Crossbeam,
    /// [`DisruptorPeer`].
    Disruptor,
    /// [`BusPeer`].
    Bus,
    /// [`RtrbPeer`].
    Rtrb,
    /// [`ArrayQueuePeer`].
    ArrayQueue,
}

impl PeerKind {
    /// Every peer, in column order.
    pub const ALL: [PeerKind; 8] = [
        PeerKind::Evbus,
        PeerKind::EvbusSolo,
        PeerKind::Tokio,
        PeerKind::Crossbeam,
        PeerKind::Disruptor,
        PeerKind::Bus,
        PeerKind::Rtrb,
        PeerKind::ArrayQueue,
    ];

    /// The peer's column heading.
    pub fn name(self) -> &'static str {
        self.describe().0
    }

    /// The peer's semantics line (see [`Peer::SEMANTICS`]).
    pub fn semantics(self) -> &'static str {
        self.describe().1
    }

    fn describe(self) -> (&'static str, &'static str) {
        fn of<P: Peer<u64>>() -> (&'static str, &'static str) {
            (P::NAME, P::SEMANTICS)
        }
        match self {
            PeerKind::Evbus => of::<EvbusPeer<u64>>(),
            PeerKind::EvbusSolo => of::<EvbusSoloPeer<u64>>(),
            PeerKind::Tokio => of::<TokioPeer<u64>>(),
            PeerKind::Crossbeam => of::<CrossbeamPeer<u64>>(),
            PeerKind::Disruptor => of::<DisruptorPeer<u64>>(),
            PeerKind::Bus => of::<BusPeer<u64>>(),
            PeerKind::Rtrb => of::<RtrbPeer<u64>>(),
            PeerKind::ArrayQueue => of::<ArrayQueuePeer<u64>>(),
        }
    }
}

/// A measurement written once for every peer: [`dispatch`] calls `run`
/// with the peer's type.
pub trait Job<T: Item> {
    /// What one run yields.
    type Out;

    /// Runs the measurement with peer `P`.
    fn run<P: Peer<T>>(&mut self) -> Self::Out;
}

/// Runs `job` with the peer `kind` names (static dispatch).
pub fn dispatch<T: Item, J: Job<T>>(kind: PeerKind, job: &mut J) -> J::Out {
    match kind {
        PeerKind::Evbus => job.run::<EvbusPeer<T>>(),
        PeerKind::EvbusSolo => job.run::<EvbusSoloPeer<T>>(),
        PeerKind::Tokio => job.run::<TokioPeer<T>>(),
        PeerKind::Crossbeam => job.run::<CrossbeamPeer<T>>(),
        PeerKind::Disruptor => job.run::<DisruptorPeer<T>>(),
        PeerKind::Bus => job.run::<BusPeer<T>>(),
        PeerKind::Rtrb => job.run::<RtrbPeer<T>>(),
        PeerKind::ArrayQueue => job.run::<ArrayQueuePeer<T>>(),
    }
}

/// Waits a bounded number of spins, then yields the core: the back-off of
/// the peers that have none of their own (tokio's credit loop, the rtrb
/// fan-out). `round` counts the failed attempts so far.
#[inline]
pub fn back_off(round: &mut u32) {
    const SPINS: u32 = 64;
    if *round < SPINS {
        std::hint::spin_loop();
        *round += 1;
    } else {
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Publishes 3 events losslessly to 4 subscribers and drains them.
    struct Roundtrip;

    impl Job<u64> for Roundtrip {
        type Out = Result<(usize, usize), NotPossible>;

        fn run<P: Peer<u64>>(&mut self) -> Self::Out {
            let (mut tx, mut rx) = P::build(4, 8, true)?;
            let lost: usize = (0..3).map(|i| tx.send(i)).sum();
            Ok((lost, rx.drain()))
        }
    }

    /// Fills 2 queues of 4, then publishes once more.
    struct Overfill;

    impl Job<u64> for Overfill {
        type Out = Result<(usize, usize), NotPossible>;

        fn run<P: Peer<u64>>(&mut self) -> Self::Out {
            let (mut tx, mut rx) = P::build(2, 4, false)?;
            let refused_filling: usize = (0..4).map(|i| tx.try_send(i)).sum();
            assert_eq!(refused_filling, 0, "{}", P::NAME);
            let refused = tx.try_send(9);
            Ok((refused, rx.drain()))
        }
    }

    #[test]
    fn every_peer_delivers_losslessly_or_says_why_not() {
        for kind in PeerKind::ALL {
            match dispatch(kind, &mut Roundtrip) {
                Ok(got) => assert_eq!(got, (0, 12), "{}", kind.name()),
                Err(NotPossible(why)) => {
                    assert_eq!(kind, PeerKind::EvbusSolo, "{why}");
                }
            }
        }
    }

    #[test]
    fn full_queues_refuse_except_tokio_which_overwrites() {
        for kind in PeerKind::ALL {
            let (refused, drained) = dispatch(kind, &mut Overfill).expect("DropNewest is possible");
            let expected = match kind {
                PeerKind::Tokio => (0, 8),
                _ => (2, 8),
            };
            assert_eq!((refused, drained), expected, "{}", kind.name());
        }
    }

    #[test]
    fn names_are_distinct() {
        let mut names: Vec<_> = PeerKind::ALL.iter().map(|k| k.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PeerKind::ALL.len());
    }
}
