//! Sampled publish-to-receive latency (feature `latency`).
//!
//! A ring with a [`Sampler`] stamps every `every`-th position with the time
//! its producer wrote it, in the slot next to the value; the consumer that
//! takes that position reads the stamp and hands the difference to a
//! [`LatencyRecorder`] on its own thread. Both sides pick the same
//! positions from the position alone (`count(pos) % every == 0`), so no
//! flag travels with the event and unsampled pushes write nothing extra.
//!
//! The stamp is part of the slot, written after the producer's claim and
//! before its Release stamp store, and read after the consumer's Acquire
//! stamp load and before it frees the slot: it is handed over exactly like
//! the value (see the ring's synchronization protocol, steps 2 and 3).
//!
//! Without the feature none of this exists: slots carry no stamp and the
//! push path has no sampling branch.

use std::{fmt, num::NonZeroU32, time::Instant};

use crate::sync::StdArc;

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
}

impl Sampler {
    pub(crate) fn new(sampling: &LatencySampling, subscription: u64) -> Self {
        Self {
            every: u64::from(sampling.every.get()),
            epoch: Instant::now(),
            recorder: StdArc::clone(&sampling.recorder),
            subscription,
        }
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
