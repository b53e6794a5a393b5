//! The in-memory journal: a bounded history of the last N envelopes, no
//! disk, serving the same history/live API as the disk [`Recorder`].
//!
//! [`MemoryJournal`] subscribes to a bus like the recorder (lossless,
//! [`Overflow::Block`], on its own thread), numbers the envelopes it keeps
//! from 0 like journal records, keeps the last `history_len` of them, and
//! publishes each batch on its live bus under the gate, exactly as the
//! recorder does (see the [`history`](crate::EventHistory) module docs for
//! the boundary argument). [`EventHistory`] is implemented for both.
//!
//! [`Recorder`]: crate::Recorder

use std::{
    collections::VecDeque,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{Arc, Condvar, Mutex, MutexGuard},
    thread::JoinHandle,
};

use evbus_core::{
    Bus, Envelope, Event, Filter, Overflow, RecvError, SubscribeOptions, Subscription, Unsubscriber,
};

use crate::{
    error::{Error, Result},
    history::{EventHistory, HistoryStart, HistorySubscription},
    live::Live,
    recorder::RecorderOptions,
};

#[derive(Debug)]
struct Store<T> {
    /// The kept envelopes with their sequence numbers, oldest first.
    events: VecDeque<(u64, Envelope<T>)>,
    /// Events taken from the ring and handled.
    handled: u64,
    /// The thread ended.
    done: bool,
}

#[derive(Debug)]
struct Inner<T> {
    store: Mutex<Store<T>>,
    changed: Condvar,
    history_len: usize,
}

impl<T> Inner<T> {
    fn store(&self) -> MutexGuard<'_, Store<T>> {
        // Updated in whole steps, and the one user code that runs under it
        // (`Clone`, copying a history out) is contained: a poisoned lock is
        // still consistent.
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A bounded in-memory journal of the last N envelopes a bus published; see
/// the [module docs](self).
///
/// ```
/// use evbus_core::{Bus, Envelope};
/// use evbus_journal::{HistoryStart, MemoryJournal};
/// # use evbus_core::{Event, EventKind};
/// # #[derive(Debug, Clone, Copy, PartialEq, Eq)] enum K { Tick }
/// # impl EventKind for K { const ALL: &'static [Self] = &[K::Tick];
/// #   fn topic(self) -> &'static str { "clock.tick" } fn index(self) -> usize { 0 } }
/// # #[derive(Debug, Clone, PartialEq)] struct Tick(u32);
/// # impl Event for Tick { type Kind = K; fn kind(&self) -> K { K::Tick } }
///
/// let bus = Bus::<Envelope<Tick>>::new();
/// let memory = MemoryJournal::start(&bus, 2)?; // keeps the last 2
/// for n in 0..5 {
///     bus.publish(Envelope::new(Tick(n)))?;
/// }
/// memory.flush()?;
/// let mut sub = memory.subscribe_with_history("clock.>", HistoryStart::Last(10))?;
/// bus.publish(Envelope::new(Tick(5)))?;
/// let seen: Vec<(u32, bool)> = (0..3)
///     .map(|_| sub.recv().map(|i| (i.envelope().payload().0, i.is_live())))
///     .collect::<Result<_, _>>()?;
/// assert_eq!(seen, [(3, false), (4, false), (5, true)]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MemoryJournal<T> {
    inner: Arc<Inner<T>>,
    live: Arc<Live<T>>,
    unsubscriber: Unsubscriber<Envelope<T>>,
    thread: Option<JoinHandle<()>>,
}

impl<T> std::fmt::Debug for MemoryJournal<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad("MemoryJournal { .. }")
    }
}

fn is_dry_run<T>(e: &Envelope<T>) -> bool {
    e.replay().is_some_and(|r| r.dry_run)
}

impl<T: Event> MemoryJournal<T> {
    /// Starts keeping the last `history_len` envelopes `bus` publishes.
    ///
    /// # Errors
    ///
    /// As [`MemoryJournal::start_with`].
    pub fn start(bus: &Bus<Envelope<T>>, history_len: usize) -> Result<Self> {
        Self::start_with(
            bus,
            history_len,
            RecorderOptions::new().name("memory-journal"),
        )
    }

    /// Starts with the recorder's options (pattern, ring capacity,
    /// publishers' wait limit, name). Like the recorder, it does not keep
    /// dry-run replays.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOptions`] if `history_len` is 0; [`Error::Subscribe`]
    /// for a bad pattern or capacity or a shut-down bus; I/O errors starting
    /// the thread.
    pub fn start_with(
        bus: &Bus<Envelope<T>>,
        history_len: usize,
        options: RecorderOptions,
    ) -> Result<Self> {
        if history_len == 0 {
            return Err(Error::InvalidOptions {
                reason: "a memory journal keeps at least one envelope",
            });
        }
        let filter =
            Filter::pattern(options.get_pattern()).map_err(evbus_core::SubscribeError::from)?;
        let sub = bus.subscribe_with(
            filter,
            SubscribeOptions::new()
                .capacity(options.get_capacity())
                .overflow(Overflow::Block(options.get_block_timeout()))
                .name(options.get_name().to_owned()),
        )?;
        let unsubscriber = sub.unsubscriber();
        let inner = Arc::new(Inner {
            store: Mutex::new(Store {
                events: VecDeque::new(),
                handled: 0,
                done: false,
            }),
            changed: Condvar::new(),
            history_len,
        });
        let live = Arc::new(Live::new(0));
        let (thread_inner, thread_live) = (Arc::clone(&inner), Arc::clone(&live));
        let thread = std::thread::Builder::new()
            .name(options.get_name().to_owned())
            .spawn(move || run(&thread_inner, sub, &thread_live))
            .map_err(|e| Error::io("<memory journal thread>", e))?;
        Ok(MemoryJournal {
            inner,
            live,
            unsubscriber,
            thread: Some(thread),
        })
    }
}

impl<T> MemoryJournal<T> {
    /// Waits until every event published before the call is kept (the same
    /// argument as [`Recorder::flush`](crate::Recorder::flush)).
    ///
    /// # Errors
    ///
    /// [`Error::RecorderStopped`] if the thread ended before handling them.
    pub fn flush(&self) -> Result<()> {
        let target = self.unsubscriber.stats().delivered;
        let st = self
            .inner
            .changed
            .wait_while(self.inner.store(), |st| st.handled < target && !st.done)
            .unwrap_or_else(|e| e.into_inner());
        if st.handled < target {
            return Err(Error::RecorderStopped);
        }
        Ok(())
    }

    /// How many envelopes are kept now.
    pub fn len(&self) -> usize {
        self.inner.store().events.len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most envelopes kept.
    pub fn history_len(&self) -> usize {
        self.inner.history_len
    }

    /// The sequence number the next kept envelope gets.
    pub fn next_seq(&self) -> u64 {
        self.live.boundary()
    }

    /// Whether the thread has ended (the bus shut down, or stopped).
    pub fn is_closed(&self) -> bool {
        self.inner.store().done
    }

    /// Stops: unsubscribes, keeps what the ring still holds, and waits for
    /// the thread. History subscriptions then drain and disconnect.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        self.unsubscriber.unsubscribe();
        if let Some(t) = self.thread.take() {
            // A panic in the thread was a panic in user code (an event's
            // `Clone` or `Drop`); `DoneGuard` marked the journal done.
            let _ = t.join();
        }
    }
}

impl<T: Event> MemoryJournal<T> {
    /// History then live events; see [`EventHistory::subscribe_with_history`].
    ///
    /// # Errors
    ///
    /// [`Error::Subscribe`] for a bad pattern.
    pub fn subscribe_with_history(
        &self,
        pattern: &str,
        from: HistoryStart,
    ) -> Result<HistorySubscription<T>> {
        EventHistory::subscribe_with_history(self, pattern, from)
    }

    /// A query over the kept envelopes; see [`EventHistory::history`].
    ///
    /// # Errors
    ///
    /// None in practice (the trait's signature allows reading errors).
    pub fn history(&self, filter: Filter, from: HistoryStart) -> Result<Vec<(u64, Envelope<T>)>> {
        EventHistory::history(self, filter, from)
    }
}

impl<T: Event> EventHistory<T> for MemoryJournal<T> {
    fn subscribe_with_history_opts(
        &self,
        filter: Filter,
        from: HistoryStart,
        options: SubscribeOptions,
    ) -> Result<HistorySubscription<T>> {
        let (sub, boundary) = self.live.subscribe(filter.clone(), options)?;
        let wanted = |e: &Envelope<T>| filter.patterns_slice().iter().any(|p| p.matches(e.topic()));
        // Copied under the store lock. This runs the payload's `Clone` (user
        // code) under a lock that only this journal's thread, `flush`, `len`
        // and other history copies take; a panicking `Clone` is contained
        // and loses only its own event. (An `Arc` per envelope would move
        // the clones out of the lock but need `T: Sync`.)
        let copy = |seq: u64, e: &Envelope<T>| {
            catch_unwind(AssertUnwindSafe(|| e.clone()))
                .ok()
                .map(|e| (seq, e))
        };
        let history: VecDeque<(u64, Envelope<T>)> = {
            let st = self.inner.store();
            let below = st.events.iter().filter(|(seq, _)| *seq < boundary);
            match from {
                HistoryStart::LiveOnly => VecDeque::new(),
                HistoryStart::Seq(s) => below
                    .filter(|(seq, e)| *seq >= s && wanted(e))
                    .filter_map(|(seq, e)| copy(*seq, e))
                    .collect(),
                HistoryStart::Time(t) => below
                    .skip_while(|(_, e)| e.time() < t)
                    .filter(|(_, e)| wanted(e))
                    .filter_map(|(seq, e)| copy(*seq, e))
                    .collect(),
                HistoryStart::Last(n) => {
                    let mut last: VecDeque<_> = below
                        .rev()
                        .filter(|(_, e)| wanted(e))
                        .take(n)
                        .filter_map(|(seq, e)| copy(*seq, e))
                        .collect();
                    last.make_contiguous().reverse();
                    last
                }
            }
        };
        Ok(HistorySubscription::from_memory(history, sub, boundary))
    }
}

impl<T> Drop for MemoryJournal<T> {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

/// Marks the thread done (and closes the live bus) when it ends, even by a
/// panic.
struct DoneGuard<'a, T: Event>(&'a Inner<T>, &'a Live<T>);

impl<T: Event> Drop for DoneGuard<'_, T> {
    fn drop(&mut self) {
        self.0.store().done = true;
        self.0.changed.notify_all();
        self.1.close();
    }
}

/// The memory journal's thread.
fn run<T: Event>(inner: &Inner<T>, mut sub: Subscription<Envelope<T>>, live: &Live<T>) {
    let _done = DoneGuard(inner, live);
    let mut buf: Vec<Envelope<T>> = Vec::new();
    let mut next_seq = 0u64;
    loop {
        match sub.recv() {
            Ok(e) => buf.push(e),
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Disconnected) => break,
        }
        sub.drain_into(&mut buf);
        // Clones (user code) before the lock; a panicking `Clone` loses
        // only its own event (it is still published live).
        let mut kept = Vec::with_capacity(buf.len());
        for e in buf.iter().filter(|e| !is_dry_run(e)) {
            if let Ok(e) = catch_unwind(AssertUnwindSafe(|| e.clone())) {
                kept.push((next_seq, e));
                next_seq += 1;
            }
        }
        let mut evicted = Vec::new();
        {
            let mut st = inner.store();
            st.events.extend(kept);
            let over = st.events.len().saturating_sub(inner.history_len);
            evicted.extend(st.events.drain(..over));
        }
        let handled = buf.len() as u64;
        // Live before `flush` sees the batch handled (as in the recorder).
        live.publish(&mut buf, next_seq);
        inner.store().handled += handled;
        inner.changed.notify_all();
        // `Drop` (user code) outside every lock.
        drop(evicted);
        buf.clear();
    }
}
