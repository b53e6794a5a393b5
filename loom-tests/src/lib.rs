//! Loom models of the evbus lifecycle protocol; see `tests/`.
//!
//! Everything here exists only under `--cfg evbus_loom`, which is also what
//! switches `evbus-core` onto loom's atomics, locks and cells. Without the
//! cfg this crate and its tests are empty, so `cargo test --workspace` stays
//! fast and loom-free.
//!
//! Run the models with:
//!
//! ```text
//! RUSTFLAGS="--cfg evbus_loom" LOOM_MAX_PREEMPTIONS=2 \
//!     CARGO_TARGET_DIR=target/loom cargo test -p evbus-loom-tests --release
//! ```
//!
//! This module holds what every model shares: a one-kind event whose payload
//! is a `loom::sync::Arc`, so that a payload leaked or dropped twice by the
//! bus fails the model, plus small helpers.

#[cfg(evbus_loom)]
pub use self::imp::*;

#[cfg(evbus_loom)]
mod imp {
    use evbus_core::{
        Bus, Event, EventKind, Filter, Overflow, PublishError, PublishReport, SubscribeOptions,
        Subscription, TryRecvError,
    };
    use loom::{
        sync::Arc,
        thread::{self, JoinHandle},
    };

    /// The only kind of [`Ev`], on topic `t.a`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Kind {
        /// Topic `t.a`.
        A,
    }

    impl EventKind for Kind {
        const ALL: &'static [Self] = &[Kind::A];

        fn topic(self) -> &'static str {
            "t.a"
        }

        fn index(self) -> usize {
            self as usize
        }
    }

    /// A model event: its payload is a loom `Arc`, so loom reports a payload
    /// that the bus leaks, and [`Arc::strong_count`] on a test-held witness
    /// shows how many copies are still alive.
    #[derive(Debug, Clone)]
    pub struct Ev(pub Arc<u64>);

    impl Ev {
        /// The payload value.
        pub fn id(&self) -> u64 {
            *self.0
        }
    }

    impl Event for Ev {
        type Kind = Kind;

        fn kind(&self) -> Kind {
            Kind::A
        }
    }

    /// A fresh bus carrying [`Ev`]. Must be called inside `loom::model`.
    pub fn bus() -> Bus<Ev> {
        Bus::new()
    }

    /// Subscribes to `t.a` with a small ring (loom models every slot, so the
    /// default capacity of 1024 would only slow the models down).
    pub fn subscribe(bus: &Bus<Ev>, capacity: usize, overflow: Overflow) -> Subscription<Ev> {
        bus.subscribe_with(
            Filter::pattern("t.>").expect("valid pattern"),
            SubscribeOptions::new()
                .capacity(capacity)
                .overflow(overflow),
        )
        .expect("subscribe on an open bus")
    }

    /// A fresh bus with one subscription, as [`bus`] and [`subscribe`].
    pub fn bus_with_sub(capacity: usize, overflow: Overflow) -> (Bus<Ev>, Subscription<Ev>) {
        let bus = bus();
        let sub = subscribe(&bus, capacity, overflow);
        (bus, sub)
    }

    /// Spawns a thread that publishes one event carrying `payload` through
    /// `Bus::publish`, and returns the result.
    pub fn spawn_publish(
        bus: &Bus<Ev>,
        payload: &Arc<u64>,
    ) -> JoinHandle<Result<PublishReport, PublishError<Ev>>> {
        let bus = bus.clone();
        let event = Ev(payload.clone());
        thread::spawn(move || bus.publish(event))
    }

    /// Spawns a thread that publishes one event per payload, in order,
    /// through one `Publisher`, and returns what `outcome` makes of each
    /// result.
    pub fn spawn_publisher<const N: usize, R: 'static>(
        bus: &Bus<Ev>,
        payloads: &[Arc<u64>; N],
        outcome: fn(Result<PublishReport, PublishError<Ev>>) -> R,
    ) -> JoinHandle<[R; N]> {
        let mut publisher = bus.publisher();
        let events = payloads.clone().map(Ev);
        thread::spawn(move || events.map(|e| outcome(publisher.publish(e))))
    }

    /// Revokes `bus`'s lease (`core/src/ring/lease.rs`): a second
    /// `Publisher` made while the first lives revokes it for good, so every
    /// publisher of `bus` claims with a CAS from now on, and rings made from
    /// now on are never leased.
    pub fn revoke_lease(bus: &Bus<Ev>) {
        let holder = bus.publisher();
        drop(bus.publisher());
        drop(holder);
    }

    /// Spawns a thread that runs `receive` on `sub`, and returns its result
    /// together with the subscription.
    pub fn spawn_receiver<T: 'static>(
        mut sub: Subscription<Ev>,
        receive: impl FnOnce(&mut Subscription<Ev>) -> T + 'static,
    ) -> JoinHandle<(T, Subscription<Ev>)> {
        thread::spawn(move || (receive(&mut sub), sub))
    }

    /// Receives with `recv` (parking when empty) until it fails: the ids
    /// received before `Disconnected`.
    pub fn recv_until_closed(sub: &mut Subscription<Ev>) -> Vec<u64> {
        let mut got = Vec::new();
        while let Ok(e) = sub.recv() {
            got.push(e.id());
        }
        got
    }

    /// Takes every buffered event of a subscription that is already closed
    /// and whose producers have all returned. `Empty` is a failure here: a
    /// closed, quiescent ring must end with `Disconnected` (step 5 of the
    /// ring protocol), never leave an event or a claim behind.
    pub fn drain_closed(sub: &mut Subscription<Ev>) -> Vec<u64> {
        let mut got = Vec::new();
        loop {
            match sub.try_recv() {
                Ok(e) => got.push(e.id()),
                Err(TryRecvError::Disconnected) => return got,
                Err(other) => panic!("closed, quiescent subscription returned {other:?}"),
            }
        }
    }

    /// Receives until `Disconnected` without parking: `Empty` yields to the
    /// loom scheduler and tries again. Use from a consumer thread that races
    /// the close.
    pub fn spin_until_disconnected(sub: &mut Subscription<Ev>) -> Vec<u64> {
        let mut got = Vec::new();
        loop {
            match sub.try_recv() {
                Ok(e) => got.push(e.id()),
                Err(TryRecvError::Disconnected) => return got,
                Err(TryRecvError::Empty) => loom::thread::yield_now(),
                Err(TryRecvError::Lagged(n)) => panic!("unexpected lag of {n}"),
            }
        }
    }

    /// How many `try_recv` calls `Subscription::recv` makes before it parks:
    /// `SPIN_ROUNDS` (3) snoozes, each followed by another try.
    pub const RECV_TRIES_BEFORE_PARK: usize = 4;

    /// Gives a receiver thread that has just entered `recv` the chance to
    /// reach its park without a preemption.
    ///
    /// `recv` snoozes (a loom `yield_now`) between tries, and loom then runs
    /// another thread; switching *back* to the receiver while that thread can
    /// still run costs a preemption. Without a head start, a receiver needs
    /// about four preemptions to get past its spin phase before the other
    /// side acts, more than `LOOM_MAX_PREEMPTIONS=2` allows, and the park
    /// path would go unexplored. Each yield here hands the receiver one try
    /// for free; loom still explores every interleaving of the yields within
    /// the preemption bound, so a model using it also covers the receiver
    /// being anywhere in its spin phase.
    ///
    /// Call it at the start of the thread that races the receiver, and spawn
    /// that thread before anything else happens: loom's DPOR can only move a
    /// thread's operation to an earlier point if the thread already existed
    /// there, so a racer spawned after the head start would never be
    /// scheduled inside the receiver's park sequence.
    pub fn head_start_for_receiver() {
        for _ in 0..RECV_TRIES_BEFORE_PARK {
            loom::thread::yield_now();
        }
    }

    /// Drops the subscription, then the bus, then asserts that the test's
    /// witnesses are the only owners left of `payloads`.
    #[track_caller]
    pub fn release(bus: Bus<Ev>, sub: Subscription<Ev>, payloads: &[Arc<u64>]) {
        drop(sub);
        drop(bus);
        for payload in payloads {
            assert_sole_owner(payload);
        }
    }

    /// Asserts that only the test's own witness still holds `payload`.
    #[track_caller]
    pub fn assert_sole_owner(payload: &Arc<u64>) {
        assert_eq!(
            Arc::strong_count(payload),
            1,
            "a copy of payload {} outlived the bus and every receiver",
            **payload
        );
    }
}
