//! The live side of history subscriptions: the bus a recorder publishes
//! each recorded batch on, and the gate that makes "history below the
//! boundary, live from it" exact (see [`history`](crate::history)).

use std::sync::{Mutex, MutexGuard};

use evbus_core::{Bus, Envelope, Event, Filter, SubscribeError, SubscribeOptions, Subscription};

use crate::error::{Error, Result};

/// The live bus and the gate of one recorder; see the [history module](crate::history).
pub(crate) struct Live<T> {
    bus: Bus<Envelope<T>>,
    /// The boundary: the sequence number of the first record not yet
    /// published on `bus`. Held while a batch is published and while a
    /// subscription is made.
    gate: Mutex<u64>,
}

impl<T> std::fmt::Debug for Live<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad("Live { .. }")
    }
}

impl<T> Live<T> {
    fn gate(&self) -> MutexGuard<'_, u64> {
        // The boundary is assigned whole: a poisoned lock is consistent.
        self.gate.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The boundary now.
    pub(crate) fn boundary(&self) -> u64 {
        *self.gate()
    }
}

impl<T: Event> Live<T> {
    /// A live bus whose boundary starts at `next_seq`.
    pub(crate) fn new(next_seq: u64) -> Self {
        Live {
            bus: Bus::new(),
            gate: Mutex::new(next_seq),
        }
    }

    /// Publishes a recorded batch on the live bus, in order, and moves the
    /// boundary to `next_seq` (the recorder's next sequence number after
    /// the batch). Takes the events only if someone listens; what is left
    /// in `batch` is the caller's to drop (outside the gate).
    pub(crate) fn publish(&self, batch: &mut Vec<Envelope<T>>, next_seq: u64) {
        let mut gate = self.gate();
        // Stable while the gate is held: subscriptions are made under it
        // (a dropped one only makes the count smaller).
        if self.bus.subscriber_count() > 0 {
            let mut topic = String::new();
            for e in batch.drain(..) {
                topic.clear();
                topic.push_str(e.topic());
                // A closed bus or no matching subscriber drops the event,
                // which is what we want.
                let _ = self.bus.publish_to(&topic, e);
            }
        }
        *gate = next_seq;
    }

    /// Subscribes under the gate; returns the subscription (`None` once the
    /// live bus is closed) and the boundary.
    pub(crate) fn subscribe(
        &self,
        filter: Filter,
        options: SubscribeOptions,
    ) -> Result<(Option<Subscription<Envelope<T>>>, u64)> {
        let gate = self.gate();
        let sub = match self.bus.subscribe_with(filter, options) {
            Ok(sub) => Some(sub),
            Err(SubscribeError::Closed) => None,
            Err(e) => return Err(Error::Subscribe(e)),
        };
        Ok((sub, *gate))
    }

    /// Closes the live bus: subscriptions drain, then disconnect.
    pub(crate) fn close(&self) {
        // Under the gate, so no batch is half published.
        let _gate = self.gate();
        self.bus.shutdown();
    }
}

/// Closes a [`Live`] when dropped: the recorder thread holds one, so its
/// history subscriptions disconnect even if the thread ends by a panic.
pub(crate) struct CloseOnDrop<'a, T: Event>(pub(crate) &'a Live<T>);

impl<T: Event> Drop for CloseOnDrop<'_, T> {
    fn drop(&mut self) {
        self.0.close();
    }
}
