//! Adversarial user code for the lockstep model (`reference.rs`): an event
//! whose `Clone` panics on a chosen call and whose `Drop` panics or calls
//! back into the bus when a chosen event is first dropped, and task wakers
//! that panic.
//!
//! Shared by the model test (`core/tests/model.rs`, through `common`) and the
//! `ops` fuzz target, which includes this file by path, so it depends only on
//! `std` and `evbus_core`. Everything the user code does is logged in its
//! [`Control`], for the model to compare with what it expected.

use std::{
    fmt,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    task::Wake,
    thread,
};

use evbus_core::{
    Bus, Event, EventKind, Filter, Overflow, SubscribeError, SubscribeOptions, Subscription,
    Unsubscriber,
};

use super::reference::{PATTERNS, Sequenced};

/// Locks `m`, ignoring poison: a panic injected while a test lock was held
/// must not hide the state behind it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the first drop of an armed event does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnDrop {
    /// Panics.
    Panic,
    /// Interns the `i`-th valid topic of the lockstep's list (see
    /// [`reentrant_topic`]) with `Bus::topic`.
    Topic(usize),
    /// Subscribes to `PATTERNS[i]` (see [`reentrant_options`]).
    Subscribe(usize),
    /// Unsubscribes subscription slot `i` modulo the number of slots,
    /// through its `Unsubscriber`.
    Unsubscribe(usize),
}

/// The capacity and policy of a subscription made from inside a `Drop`
/// with `OnDrop::Subscribe(pattern)`: `(cap, oldest)`.
pub(crate) fn reentrant_options(pattern: usize) -> (usize, bool) {
    (pattern % 3 + 1, pattern % 2 == 1)
}

/// The topic `OnDrop::Topic(i)` interns: the `i`-th of the valid `topics`
/// (modulo their number).
pub(crate) fn reentrant_topic(topics: &[&'static str], i: usize) -> &'static str {
    let valid: Vec<&'static str> = topics
        .iter()
        .copied()
        .filter(|t| !t.split('.').any(str::is_empty))
        .collect();
    valid[i % valid.len()]
}

/// What a fired [`OnDrop`] did; the model computes the same list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fired {
    /// `OnDrop::Panic` on the event with this sequence number.
    Panicked(u64),
    /// `OnDrop::Topic`: the topic interned.
    Topic(u64, &'static str),
    /// `OnDrop::Subscribe`: the result.
    Subscribed(u64, Result<(), SubscribeError>),
    /// `OnDrop::Unsubscribe`: the slot, and the return value of
    /// `unsubscribe`, or `None` if the waker it ran panicked.
    Unsubscribed(u64, usize, Option<bool>),
}

/// The state every copy of an [`Armed`] event shares: its counters, what it
/// is armed to do, and the bus it calls back into.
pub(crate) struct Control<K: EventKind> {
    /// Events made (created or cloned).
    made: AtomicU64,
    /// Events dropped.
    dropped: AtomicU64,
    /// Calls of `Clone::clone`, including the one that panics.
    clones: AtomicU64,
    /// The number of the clone that panics; 0 for none.
    panic_on_clone: AtomicU64,
    /// Sequence numbers armed, and what the first drop of a copy of each
    /// does (once; then it is disarmed).
    armed: Mutex<Vec<(u64, OnDrop)>>,
    /// What fired, in order.
    fired: Mutex<Vec<Fired>>,
    /// The bus the events call back into; cleared before teardown, since
    /// events in its rings hold this block.
    pub(crate) bus: Mutex<Option<Bus<Armed<K>>>>,
    /// An unsubscriber per subscription slot, in slot order.
    pub(crate) unsubs: Mutex<Vec<Unsubscriber<Armed<K>>>>,
    /// Subscriptions made from inside a `Drop`, for the lockstep to adopt.
    pub(crate) adopted: Mutex<Vec<Subscription<Armed<K>>>>,
    /// The topics of `OnDrop::Topic`.
    topics: &'static [&'static str],
}

impl<K: EventKind> Control<K> {
    pub(crate) fn new(topics: &'static [&'static str]) -> Arc<Self> {
        Arc::new(Self {
            made: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            clones: AtomicU64::new(0),
            panic_on_clone: AtomicU64::new(0),
            armed: Mutex::new(Vec::new()),
            fired: Mutex::new(Vec::new()),
            bus: Mutex::new(None),
            unsubs: Mutex::new(Vec::new()),
            adopted: Mutex::new(Vec::new()),
            topics,
        })
    }

    /// A new event counted by this block.
    pub(crate) fn event(self: &Arc<Self>, kind: K, seq: u64) -> Armed<K> {
        self.made.fetch_add(1, Ordering::SeqCst);
        Armed {
            kind,
            seq,
            control: Arc::clone(self),
        }
    }

    /// Events made and not dropped yet (wraps on a double drop, which the
    /// comparison then reports).
    pub(crate) fn live(&self) -> u64 {
        self.made
            .load(Ordering::SeqCst)
            .wrapping_sub(self.dropped.load(Ordering::SeqCst))
    }

    /// `(made, dropped)`.
    pub(crate) fn made_dropped(&self) -> (u64, u64) {
        (
            self.made.load(Ordering::SeqCst),
            self.dropped.load(Ordering::SeqCst),
        )
    }

    pub(crate) fn clones(&self) -> u64 {
        self.clones.load(Ordering::SeqCst)
    }

    /// Makes the clone with this number (counted from the first) panic.
    pub(crate) fn panic_on_clone(&self, number: u64) {
        self.panic_on_clone.store(number, Ordering::SeqCst);
    }

    /// Arms `seq`: the first drop of a copy of it does `action`.
    pub(crate) fn arm(&self, seq: u64, action: OnDrop) {
        lock(&self.armed).push((seq, action));
    }

    /// Disarms everything.
    pub(crate) fn disarm(&self) {
        self.panic_on_clone(0);
        lock(&self.armed).clear();
    }

    /// Takes the log of what fired.
    pub(crate) fn take_fired(&self) -> Vec<Fired> {
        std::mem::take(&mut *lock(&self.fired))
    }

    /// Runs `action` for the event `seq` from inside its `Drop`.
    fn fire(&self, seq: u64, action: OnDrop) {
        let bus = lock(&self.bus).clone();
        let fired = match (action, bus) {
            (OnDrop::Panic, _) => Fired::Panicked(seq),
            (_, None) => return,
            (OnDrop::Topic(t), Some(bus)) => {
                let name = reentrant_topic(self.topics, t);
                bus.topic(name).expect("valid topic");
                Fired::Topic(seq, name)
            }
            (OnDrop::Subscribe(p), Some(bus)) => {
                let (cap, oldest) = reentrant_options(p);
                let policy = if oldest {
                    Overflow::DropOldest
                } else {
                    Overflow::DropNewest
                };
                let got = bus.subscribe_with(
                    Filter::pattern(PATTERNS[p % PATTERNS.len()]).expect("valid pattern"),
                    SubscribeOptions::new().capacity(cap).overflow(policy),
                );
                let result = got.map(|sub| {
                    lock(&self.unsubs).push(sub.unsubscriber());
                    lock(&self.adopted).push(sub);
                });
                Fired::Subscribed(seq, result)
            }
            (OnDrop::Unsubscribe(k), Some(_)) => {
                let unsub = {
                    let unsubs = lock(&self.unsubs);
                    let k = k % unsubs.len().max(1);
                    unsubs.get(k).cloned().map(|u| (k, u))
                };
                let Some((k, unsub)) = unsub else { return };
                // A panicking waker of the ring it closes is contained here,
                // so this `Drop` does one thing; the waker counts it.
                let got =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsub.unsubscribe()));
                Fired::Unsubscribed(seq, k, got.ok())
            }
        };
        lock(&self.fired).push(fired);
        if action == OnDrop::Panic {
            panic!("injected: drop of event {seq}");
        }
    }
}

/// An event under the test's control; see [`Control`].
pub(crate) struct Armed<K: EventKind> {
    pub(crate) kind: K,
    pub(crate) seq: u64,
    control: Arc<Control<K>>,
}

impl<K: EventKind> Clone for Armed<K> {
    fn clone(&self) -> Self {
        let c = &self.control;
        let n = c.clones.fetch_add(1, Ordering::SeqCst) + 1;
        if n == c.panic_on_clone.load(Ordering::SeqCst) {
            panic!("injected: clone number {n}");
        }
        c.event(self.kind, self.seq)
    }
}

impl<K: EventKind> Drop for Armed<K> {
    fn drop(&mut self) {
        let c = &self.control;
        c.dropped.fetch_add(1, Ordering::SeqCst);
        // A second panic during an unwind would abort: user code that
        // follows the std advice fires nothing then.
        if thread::panicking() {
            return;
        }
        let action = {
            let mut armed = lock(&c.armed);
            let at = armed.iter().position(|&(s, _)| s == self.seq);
            at.map(|at| armed.remove(at).1)
        };
        if let Some(action) = action {
            c.fire(self.seq, action);
        }
    }
}

impl<K: EventKind> fmt::Debug for Armed<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Armed")
            .field("kind", &self.kind)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl<K: EventKind> Event for Armed<K> {
    type Kind = K;

    fn kind(&self) -> K {
        self.kind
    }
}

impl<K: EventKind> Sequenced for Armed<K> {
    fn seq(&self) -> u64 {
        self.seq
    }
}

/// A task waker that counts its wakes, and panics after counting if
/// `panics`.
#[derive(Debug, Default)]
pub(crate) struct TestWaker {
    wakes: AtomicU64,
    panics: bool,
}

impl TestWaker {
    pub(crate) fn new(panics: bool) -> Arc<Self> {
        Arc::new(Self {
            wakes: AtomicU64::new(0),
            panics,
        })
    }

    pub(crate) fn wakes(&self) -> u64 {
        self.wakes.load(Ordering::SeqCst)
    }
}

impl Wake for TestWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        if self.panics && !thread::panicking() {
            panic!("injected: waker");
        }
    }
}

/// Keeps the panics this module injects off stderr (and away from a fuzzer's
/// abort-on-panic hook): the hook in place before the first call still sees
/// every other panic. Idempotent.
pub(crate) fn quiet_injected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("");
            if !message.starts_with("injected: ") {
                previous(info);
            }
        }));
    });
}
