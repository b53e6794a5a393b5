//! Subscriptions: the receiving end of one ring.

use std::{
    fmt,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use crate::{
    error::{RecvError, RecvTimeoutError, TryRecvError},
    policy::Overflow,
    registry::SubEntry,
    ring::PopError,
    shared::{Shared, sub_stats},
    stats::SubscriptionStats,
    sync::{
        Arc, Backoff,
        atomic::{AtomicUsize, Ordering},
    },
    unwind::FirstPanic,
};

/// The receiving end of one subscription, with its own bounded ring.
///
/// Receiving methods take `&mut self`: a subscription has one consumer.
/// It is not `Clone`. Dropping it unsubscribes.
///
/// # Closing
///
/// After [`unsubscribe`](Subscription::unsubscribe) or
/// [`Bus::shutdown`](crate::Bus::shutdown), publishes no longer reach the
/// ring. The receiver still gets every event buffered before the close, then
/// `Disconnected`.
///
/// # Lagging
///
/// Under [`Overflow::DropOldest`], a full ring overwrites its oldest event.
/// The next receive then reports `Lagged(n)` once, and resumes with the
/// oldest event that remains.
pub struct Subscription<E> {
    /// The bus and the ring; also what `unsubscriber` hands out.
    handle: Unsubscriber<E>,
    /// `DropOldest` only: the ring's `head` as this receiver last moved it
    /// or reported it; evictions that move `head` past it are reported as
    /// `Lagged` before the next event (see `Ring::try_pop_oldest`).
    own_head: usize,
    /// The consumer's copy of the high-water mark.
    high_water: usize,
    /// Receives since the queue length was last sampled (see `try_recv`).
    since_sample: u32,
    /// Non-zero once an [`unsubscribe`](Subscription::unsubscribe) through
    /// this handle has closed the ring and taken it out of the registry, so
    /// the drop has neither left to do: a second close costs a heavy barrier
    /// on a single-producer bus (`Ring::close`), a second removal a registry
    /// load. (An `AtomicUsize` as a flag: `unsubscribe` takes `&self`.)
    left: AtomicUsize,
}

// Spin a little before parking: a publisher on another core usually
// delivers within this window, and a park costs a futex round trip.
pub(crate) const SPIN_ROUNDS: u32 = 3;

/// The `Backoff` cycles (spins, then yields, until `is_completed`) a
/// receiver runs through before its first park: two, as crossbeam-channel's
/// `recv` does (one in its try loop, one in `Context::wait_until`). On a
/// shared core each yield lets a publisher run, and a publisher that
/// delivers before the receiver parks saves the park and its wake: two
/// futex calls. With one cycle, a receiver started just before its
/// publisher parked in 0.4 to 0.5 of `bench-report` `14a.`'s windows,
/// crossbeam's in 0.1 to 0.2 (`benches/examples/futex_windows.rs`). Under
/// loom one cycle: the spinning is no part of the protocol, and each
/// snooze costs the models a preemption.
const RECV_BACKOFF_CYCLES: u32 = if cfg!(evbus_loom) { 1 } else { 2 };

// How often a draining receiver samples its queue length for the high-water
// mark. A full ring sets the mark to its capacity on the publisher side, so
// sampling loses only short peaks below capacity.
const SAMPLE_EVERY: u32 = 32;

impl<E> Subscription<E> {
    pub(crate) fn new(shared: Arc<Shared<E>>, entry: SubEntry<E>) -> Self {
        Self {
            handle: Unsubscriber { shared, entry },
            own_head: 0,
            high_water: 0,
            since_sample: 0,
            left: AtomicUsize::new(0),
        }
    }

    /// The subscription's id, unique within its bus.
    pub fn id(&self) -> u64 {
        self.handle.entry.id
    }

    /// Takes the oldest buffered event without blocking.
    ///
    /// # Errors
    ///
    /// `Empty` when nothing is buffered, `Lagged(n)` once after overwrites,
    /// `Disconnected` when closed and drained.
    #[inline]
    pub fn try_recv(&mut self) -> Result<E, TryRecvError> {
        let ring = &self.handle.entry.ring;
        let popped = if ring.policy() == Overflow::DropOldest {
            // Two rounds at most: a pop that found a gap leaves it for
            // `take_lag` to report.
            loop {
                if let Some(lag) = ring.take_lag(&mut self.own_head) {
                    return Err(TryRecvError::Lagged(lag));
                }
                // SAFETY: as below.
                match unsafe { ring.try_pop_oldest(&mut self.own_head) } {
                    Err(PopError::Lagged) => {}
                    other => break other,
                }
            }
        } else {
            // SAFETY: `&mut self` makes this the only consumer of the ring:
            // a `Subscription` is the ring's single receiving handle and is
            // not `Clone`.
            unsafe { ring.try_pop() }
        };
        match popped {
            Ok(v) => {
                self.sampled_take();
                Ok(v)
            }
            Err(PopError::Empty) => {
                self.since_sample = 0;
                Err(TryRecvError::Empty)
            }
            Err(PopError::Disconnected) => Err(TryRecvError::Disconnected),
            Err(PopError::Lagged) => unreachable!("only try_pop_oldest reports a gap"),
        }
    }

    /// Counts the receive just made for the high-water sample: the queue
    /// length is sampled on the first receive after the ring was seen empty
    /// (when a backlog is longest) and every `SAMPLE_EVERY` receives after
    /// that, not on every one. Sampled after a receive, never before, so a
    /// poll that finds the ring empty reads no position the producers write.
    #[inline]
    fn sampled_take(&mut self) {
        if self.since_sample == 0 {
            // The length before the receive: what is left, plus the event
            // just taken.
            self.handle.entry.ring.observe_len(&mut self.high_water, 1);
        }
        self.since_sample = (self.since_sample + 1) % SAMPLE_EVERY;
    }

    /// [`Subscription::sampled_take`] for `n` receives in a row, the first
    /// of them sampled if a sample is due.
    #[inline]
    fn sampled_takes(&mut self, n: usize) {
        self.sampled_take();
        self.since_sample = ((self.since_sample as usize + n - 1) % SAMPLE_EVERY as usize) as u32;
    }

    /// Blocks until an event arrives or the subscription is closed and
    /// drained. Spins and yields briefly (as crossbeam-channel's `recv`), then parks.
    ///
    /// # Errors
    ///
    /// `Lagged(n)` once after overwrites; `Disconnected` when closed and
    /// drained.
    pub fn recv(&mut self) -> Result<E, RecvError> {
        self.recv_until(None).map_err(|e| match e {
            RecvTimeoutError::Lagged(n) => RecvError::Lagged(n),
            _ => RecvError::Disconnected,
        })
    }

    /// Like [`recv`](Subscription::recv), giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// `Timeout`, `Lagged(n)` or `Disconnected`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<E, RecvTimeoutError> {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.recv_until(Some(deadline)),
            None => self.recv_until(None),
        }
    }

    /// Like [`recv`](Subscription::recv), giving up at `deadline`.
    ///
    /// # Errors
    ///
    /// `Timeout`, `Lagged(n)` or `Disconnected`.
    pub fn recv_deadline(&mut self, deadline: Instant) -> Result<E, RecvTimeoutError> {
        self.recv_until(Some(deadline))
    }

    fn recv_until(&mut self, deadline: Option<Instant>) -> Result<E, RecvTimeoutError> {
        let mut backoff = Backoff::new();
        let mut rounds = 0;
        let mut cycles = 1;
        loop {
            match self.try_recv() {
                Ok(v) => return Ok(v),
                Err(TryRecvError::Lagged(n)) => return Err(RecvTimeoutError::Lagged(n)),
                Err(TryRecvError::Disconnected) => return Err(RecvTimeoutError::Disconnected),
                Err(TryRecvError::Empty) => {}
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(RecvTimeoutError::Timeout);
            }
            if rounds < SPIN_ROUNDS || !backoff.is_completed() {
                rounds += 1;
                backoff.snooze();
                continue;
            }
            if cycles < RECV_BACKOFF_CYCLES {
                cycles += 1;
                backoff = Backoff::new();
                continue;
            }
            // SAFETY: `&mut self` makes this the only consumer, as in
            // `try_recv`.
            unsafe { self.handle.entry.ring.wait(deadline) };
        }
    }

    /// Polls for an event from an asynchronous context: `Pending` registers
    /// the task's waker, which fires when an event arrives or the
    /// subscription closes.
    ///
    /// Publishers pay for the wake only when they find the consumer
    /// registered (the ring's park bit), as with [`recv`](Subscription::recv).
    /// With the `async` feature, `Subscription` also implements
    /// `futures_core::Stream`.
    ///
    /// # Errors
    ///
    /// `Lagged(n)` once after overwrites; `Disconnected` when closed and
    /// drained.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<E, RecvError>> {
        loop {
            match self.try_recv() {
                Ok(v) => return Poll::Ready(Ok(v)),
                Err(TryRecvError::Lagged(n)) => return Poll::Ready(Err(RecvError::Lagged(n))),
                Err(TryRecvError::Disconnected) => {
                    return Poll::Ready(Err(RecvError::Disconnected));
                }
                Err(TryRecvError::Empty) => {}
            }
            // SAFETY: `&mut self` makes this the only consumer, as in
            // `try_recv`. A `false` means an event or a close arrived since
            // `try_recv`, so the next round returns it.
            if unsafe { self.handle.entry.ring.register(cx.waker()) } {
                return Poll::Pending;
            }
        }
    }

    /// Blocks for the first event, then takes up to `max` events in all
    /// into `buf` without blocking again. Returns how many it took.
    ///
    /// # Errors
    ///
    /// `Lagged(n)` or `Disconnected`, as [`recv`](Subscription::recv), when
    /// no event was taken.
    pub fn recv_batch(&mut self, buf: &mut Vec<E>, max: usize) -> Result<usize, RecvError> {
        if max == 0 {
            return Ok(0);
        }
        buf.push(self.recv()?);
        Ok(1 + self.take_bounded(max - 1, |e| buf.push(e)))
    }

    /// Takes every buffered event into `buf` without blocking. Returns how
    /// many it took (0 if empty or closed). Lag reports are skipped, as by
    /// [`drain_with`](Subscription::drain_with).
    pub fn drain_into(&mut self, buf: &mut Vec<E>) -> usize {
        self.take_bounded(usize::MAX, |e| buf.push(e))
    }

    /// Takes every buffered event without blocking, in order, handing each
    /// to `f`. Returns how many it took (0 if empty or closed).
    ///
    /// The cheapest way to drain a backlog: the bookkeeping that
    /// [`try_recv`](Subscription::try_recv) does per event (the lag check,
    /// the queue-length sample for the high-water mark, the ring-mode
    /// branch) runs once per call, and events are handed over without a
    /// `Result` around them. Lag reports are skipped; the overwrites stay
    /// counted in the [stats](Subscription::stats).
    ///
    /// ```
    /// use evbus::{Bus, Event, EventKind};
    /// # #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    /// # enum Kind { Tick }
    /// # impl EventKind for Kind {
    /// #     const ALL: &'static [Self] = &[Kind::Tick];
    /// #     fn topic(self) -> &'static str { "clock.tick" }
    /// #     fn index(self) -> usize { 0 }
    /// # }
    /// # #[derive(Clone, Debug)]
    /// # struct Tick(u64);
    /// # impl Event for Tick {
    /// #     type Kind = Kind;
    /// #     fn kind(&self) -> Kind { Kind::Tick }
    /// # }
    /// let bus = Bus::<Tick>::new();
    /// let mut sub = bus.subscribe("clock.*")?;
    /// let mut publisher = bus.publisher();
    /// for i in 1..=3 {
    ///     publisher.publish(Tick(i)).unwrap();
    /// }
    /// let mut sum = 0;
    /// assert_eq!(sub.drain_with(|Tick(i)| sum += i), 3);
    /// assert_eq!(sum, 6);
    /// # Ok::<(), evbus::SubscribeError>(())
    /// ```
    #[inline]
    pub fn drain_with(&mut self, f: impl FnMut(E)) -> usize {
        self.take_bounded(usize::MAX, f)
    }

    #[inline]
    fn take_bounded(&mut self, max: usize, mut f: impl FnMut(E)) -> usize {
        let ring = &self.handle.entry.ring;
        if ring.policy() == Overflow::DropOldest {
            // Overwrites race the receiver: a lag report falls where the gap
            // is, and is not an event; keep draining past it.
            let mut taken = 0;
            while taken < max {
                if self
                    .handle
                    .entry
                    .ring
                    .take_lag(&mut self.own_head)
                    .is_some()
                {
                    continue;
                }
                // The first event alone when a sample is due, as below.
                let batch = if self.since_sample == 0 {
                    1
                } else {
                    max - taken
                };
                // SAFETY: `&mut self` makes this the only consumer, as in
                // `try_recv`.
                let (n, stopped) = unsafe {
                    self.handle
                        .entry
                        .ring
                        .pop_each_oldest(&mut self.own_head, batch, &mut f)
                };
                taken += n;
                if n != 0 {
                    self.sampled_takes(n);
                }
                match stopped {
                    None | Some(PopError::Lagged) => {}
                    Some(PopError::Empty) => {
                        self.since_sample = 0;
                        break;
                    }
                    Some(PopError::Disconnected) => break,
                }
            }
            return taken;
        }
        // The first event alone, so that the high-water sample (taken after
        // it, as in `try_recv`) sees the rest of the backlog, and an empty
        // ring costs no sample.
        // SAFETY: `&mut self` makes this the only consumer, as in
        // `try_recv`.
        let (first, stopped) = unsafe { ring.pop_each(max.min(1), &mut f) };
        if first == 0 {
            if stopped == Some(PopError::Empty) {
                self.since_sample = 0;
            }
            return 0;
        }
        self.sampled_take();
        // SAFETY: as above.
        let (rest, stopped) = unsafe { self.handle.entry.ring.pop_each(max - 1, f) };
        self.since_sample = match stopped {
            // Empty: the next receive starts a new backlog; sample it.
            Some(PopError::Empty) => 0,
            _ => ((self.since_sample as usize + rest) % SAMPLE_EVERY as usize) as u32,
        };
        1 + rest
    }

    /// A blocking iterator that ends when the subscription is closed and
    /// drained. Lag reports are skipped (they stay in the stats).
    pub fn iter(&mut self) -> Iter<'_, E> {
        Iter { sub: self }
    }

    /// A non-blocking iterator over what is buffered now.
    pub fn try_iter(&mut self) -> TryIter<'_, E> {
        TryIter { sub: self }
    }

    /// Closes the subscription and removes it from the bus.
    ///
    /// Returns `true` if this call closed the ring, `false` if it was
    /// already closed (by an earlier unsubscribe or by shutdown). Buffered
    /// events can still be received.
    pub fn unsubscribe(&self) -> bool {
        // Relaxed: a hint for this handle's own later calls; the drop, which
        // acts on it, holds `&mut self`, so it sees every earlier store.
        if self.left.load(Ordering::Relaxed) != 0 {
            return false;
        }
        let first = self.handle.unsubscribe();
        // Relaxed: as above. Only once the ring is closed, settled and out
        // of the registry: `Unsubscriber::unsubscribe` returned.
        self.left.store(1, Ordering::Relaxed);
        first
    }

    /// A handle that can close this subscription and read its counters
    /// from another thread, without the receiving end. Its `len`,
    /// `capacity`, `is_closed` and `stats` are this subscription's.
    pub fn unsubscriber(&self) -> Unsubscriber<E> {
        self.handle.clone()
    }

    /// Events buffered now.
    pub fn len(&self) -> usize {
        self.handle.len()
    }

    /// Whether nothing is buffered now.
    pub fn is_empty(&self) -> bool {
        self.handle.is_empty()
    }

    /// The ring's capacity.
    pub fn capacity(&self) -> usize {
        self.handle.capacity()
    }

    /// Whether the subscription is closed (buffered events may remain).
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// This subscription's counters.
    pub fn stats(&self) -> SubscriptionStats {
        self.handle.stats()
    }
}

/// Unsubscribes, then drops what is still buffered right away, so the
/// events do not live on in registry snapshots that an idle publisher's
/// cache may hold. Their `Drop` is user code: each runs contained, and the
/// first panic is raised again once all are dropped.
impl<E> Drop for Subscription<E> {
    fn drop(&mut self) {
        self.unsubscribe();
        let mut panic = FirstPanic::new();
        // Bounded: the ring is closed, so no claim can land any more; a pop
        // waits out only the claims already made (step 5a), then reports
        // `Disconnected`.
        // SAFETY: `&mut self`: this is the ring's only consumer, as in
        // `try_recv`.
        while let Ok(v) = unsafe { self.handle.entry.ring.try_pop() } {
            panic.drop(v);
        }
        panic.resume();
    }
}

impl<E> fmt::Debug for Subscription<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.handle.entry.id)
            .field("capacity", &self.handle.entry.ring.capacity())
            .finish_non_exhaustive()
    }
}

/// Closes a [`Subscription`] from anywhere: a cloneable handle to its ring
/// that cannot receive. See [`Subscription::unsubscriber`].
///
/// A runtime that owns the receiving end on a worker thread (such as
/// evbus-dispatch) uses it to unsubscribe while the worker is busy.
pub struct Unsubscriber<E> {
    shared: Arc<Shared<E>>,
    entry: SubEntry<E>,
}

impl<E> Clone for Unsubscriber<E> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            entry: self.entry.clone(),
        }
    }
}

impl<E> Unsubscriber<E> {
    /// Same as [`Subscription::unsubscribe`]: returns `true` for the one
    /// call, here or there, that closed the ring.
    pub fn unsubscribe(&self) -> bool {
        let closed = self.entry.ring.close();
        let first = closed.first;
        self.shared.remove_sub(self.entry.id);
        // Last: a waker is user code, and may panic; the ring is closed and
        // out of the registry by now.
        self.entry.ring.wake_closed(closed);
        first
    }

    /// The subscription's id.
    pub fn id(&self) -> u64 {
        self.entry.id
    }

    /// Whether the subscription is closed.
    pub fn is_closed(&self) -> bool {
        self.entry.ring.is_closed()
    }

    /// Events buffered now.
    pub fn len(&self) -> usize {
        self.entry.ring.len()
    }

    /// Whether nothing is buffered now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ring's capacity.
    pub fn capacity(&self) -> usize {
        self.entry.ring.capacity()
    }

    /// The subscription's counters, as [`Subscription::stats`].
    pub fn stats(&self) -> SubscriptionStats {
        sub_stats(&self.entry)
    }
}

impl<E> fmt::Debug for Unsubscriber<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unsubscriber")
            .field("id", &self.entry.id)
            .finish_non_exhaustive()
    }
}

/// Yields events until the subscription is closed and drained; a
/// `DropOldest` overwrite is reported once as `Err(Lagged(n))`.
#[cfg(feature = "async")]
impl<E> futures_core::Stream for Subscription<E> {
    type Item = Result<E, crate::error::Lagged>;

    fn poll_next(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.get_mut().poll_recv(cx) {
            Poll::Ready(Ok(v)) => Poll::Ready(Some(Ok(v))),
            Poll::Ready(Err(RecvError::Lagged(n))) => {
                Poll::Ready(Some(Err(crate::error::Lagged(n))))
            }
            Poll::Ready(Err(RecvError::Disconnected)) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Blocking iterator returned by [`Subscription::iter`].
pub struct Iter<'a, E> {
    sub: &'a mut Subscription<E>,
}

impl<E> Iterator for Iter<'_, E> {
    type Item = E;

    fn next(&mut self) -> Option<E> {
        loop {
            match self.sub.recv() {
                Ok(v) => return Some(v),
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Disconnected) => return None,
            }
        }
    }
}

impl<E> fmt::Debug for Iter<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("Iter { .. }")
    }
}

/// Non-blocking iterator returned by [`Subscription::try_iter`].
pub struct TryIter<'a, E> {
    sub: &'a mut Subscription<E>,
}

impl<E> Iterator for TryIter<'_, E> {
    type Item = E;

    fn next(&mut self) -> Option<E> {
        loop {
            match self.sub.try_recv() {
                Ok(v) => return Some(v),
                Err(TryRecvError::Lagged(_)) => {}
                Err(_) => return None,
            }
        }
    }
}

impl<E> fmt::Debug for TryIter<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("TryIter { .. }")
    }
}

#[cfg(all(test, evbus_loom))]
impl<E> Subscription<E> {
    /// Test builds: the bus this subscription belongs to
    /// (`abandoned_tests.rs`).
    pub(crate) fn shared(&self) -> &Arc<Shared<E>> {
        &self.handle.shared
    }
}
