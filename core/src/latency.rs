//! Sampled publish-to-receive latency (feature `latency`).
//!
//! A ring with a [`Sampler`] records, for every `every`-th position, the
//! time its producer wrote it, in the sampler's array of send times at the
//! slot's index; the consumer that takes that position reads it and hands
//! the difference to a [`LatencyRecorder`] on its own thread. Both sides
//! pick the same positions from the position alone
//! (`count(pos) % every == 0`), so no flag travels with the event and
//! unsampled pushes write nothing extra.
//!
//! A send time is written after the producer's claim and before its
//! Release stamp store, and read after the consumer's Acquire stamp load
//! and before it frees the slot: it is handed over exactly like the value
//! (see the ring's synchronization protocol, steps 2 and 3).
//!
//! The array lives in the sampler, not in the slots, so a ring without
//! sampling keeps the slot layout of a build without the feature; its push
//! and pop each pay one check of an empty `Option`. Without the feature
//! none of this exists.

use std::{fmt, num::NonZeroU32, time::Instant};

use crate::sync::{StdArc, UnsafeCell};

/// Receives latency samples, on the receiving thread.
///
/// `evbus-metrics` implements it with per-thread HDR histograms. An
/// implementation must be cheap: it runs inside `try_recv` (and every
/// receive built on it) for each sampled event.
pub trait LatencyRecorder: Send + Sync + 'static {
    /// One sample: subscription `subscription` received an event
    /// `nanos` nanoseconds after its publisher wrote it into the ring.
    fn record(&self, subscription: u64, nanos: u64);
}

/// Latency sampling of a bus: 1 event in `every`, per subscription, sent to
/// `recorder`. Set it with
/// [`Bus::set_latency_sampling`](crate::Bus::set_latency_sampling).
#[derive(Clone)]
pub struct LatencySampling {
    every: NonZeroU32,
    recorder: StdArc<dyn LatencyRecorder>,
}

impl LatencySampling {
    /// Samples one event in `every` of each subscription (by its position
    /// in the ring), reporting to `recorder`.
    pub fn new(every: NonZeroU32, recorder: StdArc<dyn LatencyRecorder>) -> Self {
        Self { every, recorder }
    }

    /// One event in how many is sampled.
    pub fn every(&self) -> NonZeroU32 {
        self.every
    }
}

impl fmt::Debug for LatencySampling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatencySampling")
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

/// The sampling state of one ring.
pub(crate) struct Sampler {
    every: u64,
    /// Stamps are nanoseconds since this instant.
    epoch: Instant,
    recorder: StdArc<dyn LatencyRecorder>,
    /// The subscription reported to the recorder.
    subscription: u64,
    /// The send time of the sampled event in each slot, by slot index.
    sent: Box<[UnsafeCell<u64>]>,
}

impl Sampler {
    /// A sampler for a ring of `capacity` slots, or `None` if its array of
    /// send times cannot be allocated (the ring then goes unsampled).
    pub(crate) fn new(
        sampling: &LatencySampling,
        subscription: u64,
        capacity: usize,
    ) -> Option<Self> {
        let mut sent = Vec::new();
        sent.try_reserve_exact(capacity).ok()?;
        sent.extend((0..capacity).map(|_| UnsafeCell::new(0)));
        Some(Self {
            every: u64::from(sampling.every.get()),
            epoch: Instant::now(),
            recorder: StdArc::clone(&sampling.recorder),
            subscription,
            sent: sent.into_boxed_slice(),
        })
    }

    /// Records `sent` as the send time of the event in slot `index`.
    ///
    /// # Safety
    ///
    /// - The caller is the producer that owns the position in slot `index`
    ///   (it won the claim CAS, or `force_push`'s head CAS) and has not yet
    ///   stored the slot's Release stamp.
    #[inline]
    pub(crate) unsafe fn write(&self, index: usize, sent: u64) {
        debug_assert!(index < self.sent.len());
        // SAFETY: no other thread touches this entry until the slot's
        // Release stamp store, by the caller's contract.
        self.sent[index].with_mut(|p| unsafe { *p = sent });
    }

    /// The send time recorded for the event in slot `index`.
    ///
    /// # Safety
    ///
    /// - The caller is the consumer, has loaded the slot's stamp with
    ///   Acquire and found the event ready, and has not yet freed the slot.
    ///   The event's position is sampled, so its producer wrote the entry.
    #[inline]
    pub(crate) unsafe fn read(&self, index: usize) -> u64 {
        debug_assert!(index < self.sent.len());
        // SAFETY: the producer's write happened before its Release stamp
        // store, which the caller's Acquire load saw; no producer writes
        // the entry again until the caller frees the slot.
        self.sent[index].with(|p| unsafe { *p })
    }

    /// Whether the event at sequence number `seq` (positions counted from
    /// the ring's start) is sampled.
    #[inline]
    pub(crate) fn samples(&self, seq: u64) -> bool {
        seq % self.every == 0
    }

    /// Now, as a stamp.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Reports the latency of an event stamped `sent`.
    #[inline]
    pub(crate) fn record(&self, sent: u64) {
        self.recorder
            .record(self.subscription, self.now().saturating_sub(sent));
    }
}

impl fmt::Debug for Sampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sampler")
            .field("every", &self.every)
            .field("subscription", &self.subscription)
            .finish_non_exhaustive()
    }
}
