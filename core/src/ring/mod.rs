//! Bounded multi-producer, single-consumer ring with per-slot stamps.
//!
//! The algorithm is Dmitry Vyukov's bounded MPMC queue
//! (<https://www.1024cores.net/home/lock-free-algorithms/queues/bounded-mpmc-queue>)
//! in the form crossbeam's array channel and `ArrayQueue::force_push` use it,
//! with two extra bits in `tail`: a mark bit for "closed" and a park bit for
//! "the consumer is asleep".
//!
//! # Encoding
//!
//! `head` and `tail` are *positions*: `{ lap, park bit, mark bit, index }`,
//! where `index < cap` is the slot and `lap` counts trips around the buffer.
//! `mark_bit = (cap + 1).next_power_of_two()`, `park_bit = 2 * mark_bit`,
//! `lease_bit = 4 * mark_bit` and `one_lap = 8 * mark_bit`. Only `tail` ever
//! carries the flag bits; the lease bit only while a ring is leased
//! (`ring/lease.rs`), when `tail` holds no position.
//!
//! Each slot's `stamp` says what the slot holds: `stamp == pos + 1` means the
//! value written at `pos` is ready for the consumer. In a `DropOldest` ring,
//! `stamp == pos` means the slot is free for the producer at `pos`; every
//! other ring says that with `head` instead (step 3).
//!
//! # Synchronization protocol
//!
//! 1. *Claim.* A producer claims `pos` with a CAS on `tail`. The CAS fails if
//!    the ring was closed (mark bit) or if the consumer parked meanwhile
//!    (park bit), so both are observed in `tail`'s modification order. A
//!    publish to a route of 8 rings or more (`deliver/batch.rs`) makes the
//!    values of up to 8 rings, then claims their slots one after another,
//!    then writes them: the same CAS, and still at most one claim in flight
//!    per ring and producer, with no user code between a claim and its
//!    stamp store.
//! 2. *Publish a slot.* The producer writes the value, then stores the stamp
//!    with `Release`; the consumer loads it with `Acquire`.
//! 3. *Free a slot.* The consumer reads the value, then moves `head` past
//!    it with a `Release` store. A producer has room at `pos` while `pos` is
//!    less than a lap ahead of `head` (positions order as integers), which
//!    it checks with an `Acquire` load before it claims: first of
//!    `head_seen`, the last `head` a producer loaded, shared by all of them
//!    on `tail`'s line, which only they write (stored with `Release`, so
//!    the consumer's read still happens before the write, transitively),
//!    then, only when that copy says full, of `head` itself. So the
//!    consumer never writes a slot: a slot's line travels one way, producer
//!    to consumer, as in an SPSC ring such as rtrb, instead of back and
//!    forth for every event between a polling consumer and the producer
//!    writing the next slot of the same line. `DropOldest` rings keep
//!    Vyukov's stamps, because an eviction and the consumer compete for the
//!    oldest slot with a CAS on `head` *before* reading it: their consumer
//!    (or evictor) stores `stamp = pos + one_lap` with `Release` after the
//!    read, and producers load the stamp with `Acquire`.
//! 4. *Park without a lost wake-up.* The consumer parks only after setting
//!    the park bit with a CAS whose expected value says "empty". A producer's
//!    claim CAS reads the bit (RMWs on one location are totally ordered, so
//!    either the producer sees the bit or the consumer's CAS fails) and the
//!    producer that clears it wakes the consumer after publishing its slot.
//!    The consumer holds the waiter mutex from its CAS until it is asleep, and
//!    the waker takes that mutex to notify, so the notification cannot fall
//!    between the two. Publishes that find no park bit pay nothing: no fence,
//!    no extra load.
//! 5. *Close.* `close` sets the mark bit with `fetch_or`; exactly one caller
//!    sees it clear. Every claim that succeeded before the close is included
//!    in the tail value that carries the mark bit, so a consumer that sees
//!    `mark && tail == head` has drained everything: no event is stranded.
//!    5a. A consumer that finds the slot at `head` unwritten reads `tail`:
//!    `pos(tail) == head` means empty (`Disconnected` with the mark bit).
//!    Otherwise a producer claimed `head` and is writing it, and the
//!    consumer waits it out instead of answering `Empty`, so a receive sees
//!    every publish that returned before it began (linearizable, as
//!    crossbeam's array channel): a preempted claim at `head` must not hide
//!    the completed slots behind it. On a bus that has had one producer
//!    at a time (`Totals::one_producer`) no claim can be in flight behind
//!    the one at `head`, so there the consumer answers `Empty` from the
//!    stamp and the ring's `closed` flag (set before the mark bit) alone,
//!    and reads `tail` only once the flag is set.
//! 6. *Block policy.* A producer that finds a `Block` ring full spins
//!    (`Backoff`), then yields, each a bounded number of rounds, and only
//!    then parks. To park it takes the space lock, counts itself in
//!    `sleepers`, sets `wanted`, runs a *heavy* barrier, and re-checks that
//!    the slot it wants still holds an unreceived value and the ring is
//!    open; it sleeps only if so. A consumer of a `Block` ring frees a slot,
//!    runs a *light* barrier, and reads `wanted`: the pair orders like two
//!    `fence(SeqCst)`, so either the consumer sees `wanted` or the producer
//!    sees the freed slot. A consumer that sees `wanted` takes the lock,
//!    clears `wanted` and notifies every sleeper; the pops after it find
//!    `wanted` clear and pay no lock and no system call, so a park costs
//!    one wake, not one per pop until the producer runs. A woken producer
//!    that finds the ring full again registers again; the last sleeper to
//!    leave (woken, timed out) clears `wanted`. Every change to `wanted`
//!    other than the pops' reads is made under the lock, which a producer
//!    holds from its registration until it is asleep, so no registration
//!    is cleared before its producer sleeps. A close sets the mark bit,
//!    then takes the lock to notify (`Closed::space`), so a producer sees
//!    the mark in its re-check or is asleep when the notification comes.
//!    Light and heavy barriers are those of `barrier.rs` (a compiler fence
//!    and `membarrier` where Linux has it, else two `fence(SeqCst)`): a pop
//!    that finds no producer waiting pays one load of `wanted`, and no
//!    fence.
//! 7. *Fold.* When a subscription leaves the registry its counters are
//!    added to the bus totals once (with the lane drops of step 8; the bus
//!    folds rings in batches, `fold_rings`). A `DropOldest` eviction
//!    announces itself
//!    in `evicting`, `fence(SeqCst)`, and re-checks for a close; the folder
//!    closes, `fence(SeqCst)`, and waits for `evicting == 0`. Later losses
//!    (`DropNewest`, `Block` timeouts) find the `FOLDED` flag in their
//!    counter and go to the bus totals directly.
//! 8. *Lane drops.* A publisher handle with a lane counts its refusals in
//!    its own cell of each ring, with plain stores; the fold reads the
//!    cells behind a heavy barrier that pairs with a light one after each
//!    such drop, and a drop that lands after the fold adds itself to the
//!    totals (`ring/lanes.rs`). 8b. While a publisher remembers a full
//!    route, one count per publish stands for a drop in each of its rings
//!    (`ring/route_drops.rs`).
//!
//! These steps hold once a ring is multi-producer. A ring of a
//! multi-producer bus starts *leased* (`ring/lease.rs`): while the bus has
//! one `Publisher`, that publisher pushes with plain stores as in
//! single-producer mode, and `tail` carries the lease bit and no position.
//! The first push of any other producer converts the ring (L3), and from
//! then on these steps apply.
//!
//! # Layout
//!
//! The protocol steps above, by file:
//!
//! | step | what | file |
//! |---|---|---|
//! | encoding, 5 | positions, `Slot`, `Ring`, close (`close_marked`, then `close_settled` for single-producer and leased rings), `Drop` | `ring/mod.rs` |
//! | 1, 2 | claim and publish a slot (`push_with`; for a batch `peek_free`, `claim_made`, `fill_made`), the full-ring policies (`force_push`), user code a push runs | `ring/push.rs` |
//! | 3, 5a | take and free a slot (`try_pop`, `pop_each`), `Empty` only with no claim in flight, lag before the gap | `ring/pop.rs` |
//! | 4, 6 | waiters: park, sleep, wake; `Block` producers spinning, yielding, parking (`wait_for_space`, `park_producer`) and woken by pops (`notify_space`, `wake_space`) | `ring/park.rs` |
//! | 7 | folded counts, losses, high-water, lag, length; latency and tracing hooks | `ring/accounting.rs` |
//! | 8 | drops counted in the publisher's lane, and their fold | `ring/lanes.rs` |
//! | 8b | the drops of a remembered full route, one count per publish | `ring/route_drops.rs` |
//! | S1-S5 | single-producer mode: plain-store pushes, publish epoch, `Block` waits that pause the publish | `ring/solo.rs` |
//! | L1-L6 | the lease: a multi-producer bus's only `Publisher` pushes as S1 says, until a second producer revokes it and each ring is converted to steps 1-8 | `ring/lease.rs`; its states in `ring/lease_state.rs` |

mod accounting;
mod lanes;
mod lease;
mod lease_state;
mod park;
mod pop;
mod push;
mod route_drops;
mod solo;

use std::mem::MaybeUninit;

use crossbeam_utils::CachePadded;

#[cfg(feature = "tracing")]
use crate::sync::atomic::AtomicU64;
use crate::{
    error::SubscribeError,
    policy::Overflow,
    sync::{
        Arc, UnsafeCell,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

use self::{
    accounting::{Cold, Hooks},
    lanes::LaneCounts,
    park::{Space, SpaceWait, Waiter},
    solo::SoloCursor,
};
pub(crate) use self::{
    accounting::{Totals, fold_rings},
    lanes::{Lane, LanePool},
    push::Tail,
    solo::{Epoch, SoloGuard},
};

/// The largest ring capacity evbus accepts, in events. A ring is also
/// bounded in bytes by [`MAX_RING_BYTES`], which is the tighter bound for
/// events larger than 4 bytes.
pub const MAX_CAPACITY: usize = 1 << 28;

/// The largest ring buffer evbus allocates: 1 GiB. A ring of `capacity`
/// slots takes `capacity * (size_of::<E>() + 8)` bytes or so (each slot
/// holds an event and its stamp), so for a 64-byte event the largest
/// capacity is about 14.9 million. Larger requests fail with
/// [`SubscribeError::CapacityTooLarge`], whose `max` is the bound for the
/// event type, instead of asking the allocator for memory that Linux would
/// promise (overcommit) and then kill the process for touching.
pub const MAX_RING_BYTES: usize = 1 << 30;

/// One slot of the buffer.
struct Slot<T> {
    /// `pos + 1` when the value written at `pos` is ready; in a
    /// `DropOldest` ring, `pos` when free for the producer at `pos` (step
    /// 3).
    stamp: AtomicUsize,
    value: UnsafeCell<MaybeUninit<T>>,
}

/// What happened to one push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Push {
    /// The value is in the ring (under `DropOldest`, possibly after evicting
    /// the oldest one).
    Accepted,
    /// The ring was full; the value was dropped and counted.
    Dropped,
    /// The ring is closed; the value was not taken.
    Closed,
}

/// What a [`Ring::close`] did, and the wake-ups it still owes
/// ([`Ring::wake_closed`]).
#[must_use = "a close owes its wake-ups: pass it to `Ring::wake_closed`"]
#[derive(Debug)]
pub(crate) struct Closed {
    /// This call closed the ring; every other found it closed.
    pub(crate) first: bool,
    /// The consumer was parked.
    consumer: bool,
    /// `Block` producers may be asleep.
    space: bool,
}

/// How far [`Ring::close_marked`] got.
#[must_use = "a close owes its wake-ups, and a marked one its settling"]
#[derive(Debug)]
pub(crate) enum Marking {
    /// A multi-producer ring: closed.
    Closed(Closed),
    /// A single-producer or leased ring, marked: [`Ring::close_settled`]
    /// finishes the close.
    Settle(Marked),
}

/// The `tail` that a single-producer or leased close's mark replaced.
#[derive(Debug)]
pub(crate) struct Marked(usize);

/// What a pop found instead of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PopError {
    /// Nothing is buffered.
    Empty,
    /// Nothing is buffered and the ring is closed.
    Disconnected,
    /// Evictions moved `head` past the consumer's own copy of it
    /// ([`Ring::try_pop_oldest`]): report the lag before the next event.
    Lagged,
}

/// The fields of a [`Ring`] that map positions to slots, copied out for a
/// loop over many positions. `Ring` holds atomics, so the compiler reloads
/// its fields after every atomic access made through `&Ring`; a local copy
/// stays in registers.
#[derive(Clone, Copy)]
struct Layout {
    cap: usize,
    /// `mark_bit - 1`: the index bits of a position.
    mask: usize,
    one_lap: usize,
}

impl Layout {
    /// The position after `pos`.
    #[inline(always)]
    fn next(self, pos: usize) -> usize {
        if (pos & self.mask) + 1 < self.cap {
            pos + 1
        } else {
            (pos & !(self.one_lap - 1)).wrapping_add(self.one_lap)
        }
    }

    /// The position `k` places after `pos`, for `k < cap`: `next` applied
    /// `k` times.
    #[inline]
    fn ahead(self, pos: usize, k: usize) -> usize {
        debug_assert!(k < self.cap, "at most a lap ahead");
        let index = (pos & self.mask) + k;
        if index < self.cap {
            pos + k
        } else {
            (pos & !(self.one_lap - 1))
                .wrapping_add(self.one_lap)
                .wrapping_add(index - self.cap)
        }
    }
}

/// Who produces into a ring.
enum Mode {
    /// Any number of producers, each claiming its slot with a CAS (steps
    /// 1-7).
    Multi,
    /// One producer, pushing with plain stores (`ring/solo.rs`, S1-S4),
    /// with the bus's publish epoch, which closers wait out (S2); `tail`
    /// then carries only the mark, park and final flags. The producer's
    /// cursor is the ring's `cursor` field, not part of this variant, so
    /// that its line also holds the cold counters (see [`Ring`]).
    Solo(Arc<Epoch>),
    /// Made on a multi-producer bus whose lease (`ring/lease.rs`) was not
    /// revoked: the single-producer protocol, with the bus's epoch, while
    /// `tail` carries the lease bit; the multi-producer one from the
    /// conversion that clears it.
    Leased(Arc<Epoch>),
}

/// What producers write on every claim: on one line (with the rarer
/// fields of [`Ring`]'s line 2), which the consumer reads only to tell an
/// empty ring from a claim in flight (step 5a) and to park.
struct Producers {
    /// Producer position `{ lap, park, mark, index }`.
    tail: AtomicUsize,
    /// A `head` that a producer loaded, for the others (step 3): never
    /// ahead of `head`. Rings without evictions only. Beside `tail`, which
    /// a claim writes anyway, so reading it costs no transfer from the
    /// consumer and no line of its own.
    head_seen: AtomicUsize,
}

/// A zero-sized field that starts a cache line: in a `#[repr(C)]` struct
/// the field after it is placed at the next multiple of `CachePadded`'s
/// alignment (128 bytes on x86_64, where the adjacent-line prefetcher pairs
/// 64-byte lines).
type LineBreak = [CachePadded<()>; 0];

/// A bounded MPSC ring. See the module docs for the protocol.
///
/// # Layout
///
/// Four cache lines (of `CachePadded`'s size), each holding the fields that
/// one side writes, so that no line is written by both sides on a fast
/// path, and so that the padding of a line holds that side's rarer fields
/// instead of being wasted: a subscription's ring is 512 bytes on x86_64
/// instead of 1024, which is what subscribing at scale allocates and
/// faults in. `#[repr(C)]` keeps the fields in this order; each
/// [`LineBreak`] starts the next line.
///
/// 1. *Configuration*, never written after construction: what every push
///    and pop reads.
/// 2. *Producers*: `tail` and `head_seen`, which every multi-producer claim
///    writes; the lane drop cells (step 8), which producers write on the
///    full path; and the consumer's waiter, which a parking consumer locks
///    just before its CAS on `tail` and a waking producer just after its
///    own.
/// 3. *Consumer*: `head`, which every pop writes; the `Block` producers'
///    waiter, whose `wanted` flag every `Block` pop reads right after
///    storing `head`; the high-water mark, which the consumer raises.
/// 4. *Single producer and cold counters*: the single producer's cursor,
///    which it writes on every push (in multi-producer mode unused, but
///    not a line of its own any more), and the counters that only the full
///    path, an eviction and the fold write.
///
/// A line that outgrows its share (a larger `Waiter` elsewhere than on
/// Linux, the test-only counters of `Space`) spills into one more line
/// before the next break: the ring grows, the separation stays.
#[repr(C)]
pub(crate) struct Ring<T> {
    // Line 1: configuration.
    buffer: Box<[Slot<T>]>,
    cap: usize,
    mark_bit: usize,
    park_bit: usize,
    one_lap: usize,
    /// `mark_bit - 1`: the index bits of a position. Kept, not derived, as
    /// is `flag_bits`: each is one operand on the hot path instead of two or
    /// three instructions (`benches/callgrind.sh`).
    index_mask: usize,
    /// `mark_bit | park_bit | lease_bit`: a `tail` with no flag is its own
    /// position, so a push's first round tests every flag at once and
    /// neither masks the position nor tests the park bit after its claim.
    /// (`pos` masks with its complement, off the fast paths.)
    flag_bits: usize,
    policy: Overflow,
    /// Who produces: any number of producers, one, or one while the bus's
    /// lease holds (see `ring/solo.rs`, `ring/lease.rs`).
    mode: Mode,
    /// What the latency and tracing hooks need (empty without those
    /// features).
    hooks: Hooks,

    // Line 2: what producers write.
    _producers_line: LineBreak,
    /// The producers' position and their copy of `head`.
    producers: Producers,
    /// Refusals (`DropNewest`, or a `Block` timeout) counted by publishers
    /// with a lane (step 8): written on the full path, where a
    /// multi-producer push has just read `tail`'s line.
    lanes: LaneCounts,
    /// Where the consumer sleeps.
    consumer: Waiter,

    // Line 3: what the consumer writes.
    _consumer_line: LineBreak,
    /// Consumer position `{ lap, 0, 0, index }`.
    head: AtomicUsize,
    /// Largest queue length seen by the consumer, or `cap` once full.
    high_water: AtomicUsize,
    /// Where `Block` producers sleep (step 6).
    space: Space,
    /// Set by `close` before its mark bit: a consumer that finds the ring
    /// empty reads it here, on its own line, instead of `tail` (step 5a).
    closed: AtomicBool,
    /// Feature `tracing`: 0 while no loss was seen since the receiver last
    /// found the ring empty; else the loss count, the episode's first loss
    /// included, when the episode began (never 0; see `trace.rs`). Read by
    /// the consumer whenever it finds the ring empty.
    #[cfg(feature = "tracing")]
    dropping: AtomicU64,

    // Line 4: the single producer's, and cold.
    _cold_line: LineBreak,
    /// The single producer's position and its copy of `head` (S1), written
    /// on each of its pushes; unused in multi-producer mode. Inline, not
    /// boxed: the extra pointer load cost a single-producer publish to four
    /// rings about 2 % (benches/src/bin/callgrind_solo.rs).
    cursor: SoloCursor,
    /// Counters written only off the fast path.
    cold: Cold,
    /// `log2(one_lap)`, so counting laps is a shift, not a division: read
    /// by statistics only, so it sits here, not on line 1 (which the
    /// three-way `mode` and the hooks of both features fill).
    lap_shift: u32,
    /// Delivery order within a publish (higher first); see
    /// [`SubscribeOptions::priority`](crate::SubscribeOptions::priority).
    /// Read when routes are built, not when they are used.
    priority: i32,
    /// Shared with every ring of the bus: where drops after the fold
    /// ([`fold_rings`]) are counted, and whether the bus has one producer
    /// (step 5a; read by a consumer that finds the ring empty, on this line
    /// that a multi-producer ring writes only on its full path).
    totals: Arc<Totals>,
}

// SAFETY: a `Ring` hands each `T` from exactly one producer to the consumer,
// so it moves values between threads (`T: Send`) but never shares one.
unsafe impl<T: Send> Send for Ring<T> {}
// SAFETY: concurrent access to a slot's value (and, with the `latency`
// feature, to its entry in the sampler's send times) is excluded by the
// stamp protocol (module docs, steps 1-3); only `T: Send` is needed for that.
unsafe impl<T: Send> Sync for Ring<T> {}

impl<T> Ring<T> {
    /// Creates a ring holding at most `cap` events.
    ///
    /// # Errors
    ///
    /// [`SubscribeError::ZeroCapacity`] for 0, and
    /// [`SubscribeError::CapacityTooLarge`] above [`Ring::max_capacity`] or
    /// when the buffer cannot be allocated.
    pub(crate) fn new(
        cap: usize,
        policy: Overflow,
        totals: Arc<Totals>,
    ) -> Result<Self, SubscribeError> {
        if cap == 0 {
            return Err(SubscribeError::ZeroCapacity);
        }
        let max = Self::max_capacity();
        let too_large = SubscribeError::CapacityTooLarge {
            requested: cap,
            max,
        };
        if cap > max {
            return Err(too_large);
        }
        // The `Block` handshake (step 6) and the fold of lane drops (step 8)
        // pair a light and a heavy barrier, whose kind is settled once per
        // process.
        crate::barrier::init();
        let mut buffer = Vec::new();
        buffer.try_reserve_exact(cap).map_err(|_| too_large)?;
        buffer.extend((0..cap).map(|i| Slot {
            // Slot `i` is free for the producer at position `i` of lap 0.
            stamp: AtomicUsize::new(i),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }));
        let mark_bit = (cap + 1).next_power_of_two();
        Ok(Self {
            buffer: buffer.into_boxed_slice(),
            cap,
            mark_bit,
            park_bit: mark_bit << 1,
            one_lap: mark_bit << 3,
            index_mask: mark_bit - 1,
            flag_bits: mark_bit | (mark_bit << 1) | (mark_bit << 2),
            policy,
            mode: Mode::Multi,
            lap_shift: (mark_bit << 3).trailing_zeros(),
            priority: 0,
            hooks: Hooks::default(),
            _producers_line: [],
            producers: Producers {
                tail: AtomicUsize::new(0),
                head_seen: AtomicUsize::new(0),
            },
            lanes: LaneCounts::default(),
            consumer: Waiter::default(),
            _consumer_line: [],
            head: AtomicUsize::new(0),
            high_water: AtomicUsize::new(0),
            space: Space::default(),
            closed: AtomicBool::new(false),
            #[cfg(feature = "tracing")]
            dropping: AtomicU64::new(0),
            _cold_line: [],
            cursor: SoloCursor::default(),
            cold: Cold::default(),
            totals,
        })
    }

    /// The largest capacity of a ring of `T`: [`MAX_CAPACITY`] slots, and at
    /// most [`MAX_RING_BYTES`] of them.
    pub(crate) fn max_capacity() -> usize {
        let slot = std::mem::size_of::<Slot<T>>().max(1);
        MAX_CAPACITY.min(MAX_RING_BYTES / slot)
    }

    /// Sets the delivery priority (see [`Ring::priority`]).
    #[must_use]
    pub(crate) fn with_priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    pub(crate) fn capacity(&self) -> usize {
        self.cap
    }

    /// Delivery order within a publish: routes list rings by descending
    /// priority.
    pub(crate) fn priority(&self) -> i32 {
        self.priority
    }

    pub(crate) fn policy(&self) -> Overflow {
        self.policy
    }

    /// `tail` as the statistics and `Drop` read it: in single-producer mode
    /// the producer's position comes from its cursor, the flags from
    /// `tail`.
    #[inline]
    fn tail_word(&self, order: Ordering) -> usize {
        let tail = self.producers.tail.load(order);
        match &self.mode {
            Mode::Leased(_) if tail & self.lease_bit() != 0 => {
                self.cursor.tail(order) | (tail & (self.mark_bit | self.park_bit))
            }
            Mode::Multi | Mode::Leased(_) => tail,
            Mode::Solo(_) => self.cursor.tail(order) | (tail & (self.mark_bit | self.park_bit)),
        }
    }

    /// Whether the ring is in single-producer mode.
    #[inline(always)]
    fn is_solo(&self) -> bool {
        matches!(self.mode, Mode::Solo(_))
    }

    /// The bit of `tail` that says a leased ring still runs the
    /// single-producer protocol (`ring/lease.rs`): `4 * mark_bit`, below
    /// the lap bits, so no position carries it.
    #[inline(always)]
    fn lease_bit(&self) -> usize {
        self.mark_bit << 2
    }

    /// `tail` without its flag bits.
    #[inline]
    fn pos(&self, tail: usize) -> usize {
        tail & !self.flag_bits
    }

    /// The position after `pos`.
    #[inline]
    fn next(&self, pos: usize) -> usize {
        self.layout().next(pos)
    }

    /// The fields that place positions in the buffer, as a copy.
    #[inline]
    fn layout(&self) -> Layout {
        Layout {
            cap: self.cap,
            mask: self.index_mask,
            one_lap: self.one_lap,
        }
    }

    /// The number of positions before `pos`, counted from the start.
    #[inline]
    fn count(&self, pos: usize) -> u64 {
        let laps = (pos >> self.lap_shift) as u64;
        laps * self.cap as u64 + (pos & self.index_mask) as u64
    }

    /// The slot of `pos`, and its buffer index for [`Ring::after`].
    #[inline(always)]
    fn place(&self, pos: usize) -> (&Slot<T>, usize) {
        let index = self.index(pos);
        (self.slot_at(index), index)
    }

    /// The buffer index of `pos`.
    #[inline(always)]
    fn index(&self, pos: usize) -> usize {
        pos & self.index_mask
    }

    /// The position after `pos`, whose buffer index is `index`: `next`
    /// without masking `pos` again.
    #[inline(always)]
    fn after(&self, pos: usize, index: usize) -> usize {
        if index + 1 < self.cap {
            pos + 1
        } else {
            self.layout().next(pos)
        }
    }

    #[inline]
    fn slot(&self, pos: usize) -> &Slot<T> {
        self.slot_at(pos & self.index_mask)
    }

    /// The slot at buffer index `index`, which must come from a position
    /// masked with `index_mask`.
    #[inline(always)]
    fn slot_at(&self, index: usize) -> &Slot<T> {
        debug_assert!(index < self.cap, "index {index} out of {}", self.cap);
        // SAFETY: `index` is a position masked with `index_mask` (the
        // callers' contract); every position is made by `next` from 0 (or is
        // one of those plus flag bits, which the mask removes), and `next`
        // wraps the index to 0 at `cap`; so `index < cap == buffer.len()`.
        unsafe { self.buffer.get_unchecked(index) }
    }

    /// Closes the ring (step 5). Its [`Closed::first`] is `true` for the one
    /// call that closed it. The wake-ups the close owes are left to
    /// [`Ring::wake_closed`]: a task waker is user code, and an operation
    /// that closes several rings closes them all before it runs any.
    pub(crate) fn close(&self) -> Closed {
        match self.close_marked() {
            Marking::Closed(closed) => closed,
            Marking::Settle(marked) => self.close_settled(marked, false),
        }
    }

    /// The first half of [`Ring::close`]: sets the `closed` flag and the
    /// mark bit. A multi-producer ring is closed then; a single-producer
    /// or leased one still owes the wait for a publish in flight and its
    /// final bit (S2, S4), which [`Ring::close_settled`] makes. A caller
    /// that closes many rings of one bus marks them all, waits out the
    /// publish once ([`Epoch::wait_out_publish`], `Shared::close_rings`),
    /// then settles each.
    pub(crate) fn close_marked(&self) -> Marking {
        // Before the mark, which releases it (Relaxed): a consumer that sees
        // the mark with Acquire (`park`, `is_closed`), another closer's RMW,
        // and a receive that began after this close returned all see the
        // flag, and a consumer that sees the flag reads `tail`, whose mark
        // is what counts (step 5a). Set early, it only sends a receive to
        // `tail` a little sooner.
        self.closed.store(true, Ordering::Relaxed);
        // AcqRel: a single RMW decides the one closer; every claim before it
        // is in the value it writes (step 5).
        let old = self
            .producers
            .tail
            .fetch_or(self.mark_bit, Ordering::AcqRel);
        let single = match &self.mode {
            Mode::Solo(_) => true,
            Mode::Leased(_) => old & self.lease_bit() != 0,
            Mode::Multi => false,
        };
        if single {
            return Marking::Settle(Marked(old));
        }
        let first = old & self.mark_bit == 0;
        Marking::Closed(Closed {
            first,
            consumer: first && old & self.park_bit != 0,
            space: first && matches!(self.policy, Overflow::Block(_)),
        })
    }

    /// The second half of a single-producer or leased ring's close
    /// ([`Ring::close_marked`]): waits out a publish in flight, unless
    /// `waited` says the caller did so after this ring's mark, then sets
    /// the final bit (S2, S4).
    pub(crate) fn close_settled(&self, marked: Marked, waited: bool) -> Closed {
        let (Mode::Solo(epoch) | Mode::Leased(epoch)) = &self.mode else {
            unreachable!("only a single-producer or leased close is settled")
        };
        let (first, parked) = self.close_solo(epoch, marked.0, waited);
        Closed {
            first,
            consumer: parked,
            space: first && matches!(self.policy, Overflow::Block(_)),
        }
    }

    /// Wakes whoever `closed` (this ring's close) left asleep: the parked
    /// consumer, and `Block` producers. Runs the consumer's task waker, if
    /// it registered one; a panic there leaves the ring closed.
    pub(crate) fn wake_closed(&self, closed: Closed) {
        if closed.space {
            self.wake_space();
        }
        if closed.consumer {
            self.wake(&self.consumer);
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        // Acquire: pairs with the mark's `fetch_or` in `close`, so that a
        // receive after this answer sees the ring's `closed` flag (step 5a)
        // and answers `Disconnected`, not `Empty`.
        self.producers.tail.load(Ordering::Acquire) & self.mark_bit != 0
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        // Relaxed: `&mut self` excludes every other thread.
        let tail = self.pos(self.tail_word(Ordering::Relaxed));
        let mut head = self.head.load(Ordering::Relaxed);
        while head != tail {
            let slot = self.slot(head);
            // SAFETY: we hold `&mut self`, so every producer is gone; every
            // position in `head..tail` was claimed and written (values are
            // made before claiming), and not yet popped.
            slot.value.with_mut(|p| unsafe { (*p).assume_init_drop() });
            head = self.next(head);
        }
    }
}

impl<T> std::fmt::Debug for Ring<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("capacity", &self.cap)
            .field("len", &self.len())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::mem::{align_of, offset_of, size_of};

    use super::*;

    /// Property: the words that a fast path writes (`tail` by every
    /// multi-producer claim, `head` by every pop, the single producer's
    /// cursor by each of its pushes) sit on three different lines, none of
    /// them the configuration's, which every push and pop reads; and on
    /// x86_64 Linux the whole ring takes those four lines, 512 bytes (1024
    /// before the cold fields moved into the lines' padding).
    #[test]
    fn layout_keeps_hot_words_apart() {
        let line = align_of::<CachePadded<()>>();
        assert_eq!(align_of::<Ring<u64>>(), line);
        let config = [
            offset_of!(Ring<u64>, buffer),
            offset_of!(Ring<u64>, cap),
            offset_of!(Ring<u64>, index_mask),
            offset_of!(Ring<u64>, policy),
            offset_of!(Ring<u64>, mode),
        ]
        .map(|at| at / line);
        assert!(
            config.iter().all(|&l| l == 0),
            "configuration on line 0: {config:?}"
        );
        let tail = offset_of!(Ring<u64>, producers.tail) / line;
        let head_seen = offset_of!(Ring<u64>, producers.head_seen) / line;
        let head = offset_of!(Ring<u64>, head) / line;
        let cursor = offset_of!(Ring<u64>, cursor) / line;
        assert_eq!(tail, head_seen);
        let hot = [0, tail, head, cursor];
        for (i, a) in hot.iter().enumerate() {
            for b in &hot[i + 1..] {
                assert_ne!(a, b, "lines of config, tail, head, cursor: {hot:?}");
            }
        }
        if cfg!(all(target_arch = "x86_64", target_os = "linux")) {
            assert_eq!(size_of::<Ring<u64>>(), 4 * 128);
        }
    }

    /// `Layout::ahead` is `next` applied `k` times, across lap boundaries,
    /// for capacities that are and are not powers of two.
    #[test]
    fn ahead_is_next_repeated() {
        for cap in [1, 2, 3, 5, 8, 13] {
            let ring =
                Ring::<u64>::new(cap, Overflow::DropNewest, Arc::new(Totals::default())).unwrap();
            let layout = ring.layout();
            let mut pos = 0;
            for _ in 0..3 * cap {
                let mut stepped = pos;
                for k in 0..cap {
                    assert_eq!(layout.ahead(pos, k), stepped, "cap {cap}, pos {pos}, k {k}");
                    stepped = layout.next(stepped);
                }
                pos = layout.next(pos);
            }
        }
    }
}

/// Models of ring internals that the public API cannot reach reliably.
/// Run with `RUSTFLAGS="--cfg evbus_loom" cargo test -p evbus-core --release --lib`.
#[cfg(all(test, evbus_loom))]
mod loom_tests {
    use super::*;

    /// Spawns the only consumer of `ring`, which receives one value,
    /// parking (`wait`) while the ring is empty, and returns it. The ring
    /// is never closed and never lags.
    pub(super) fn spawn_receive_one(ring: &Arc<Ring<u64>>) -> loom::thread::JoinHandle<u64> {
        let ring = Arc::clone(ring);
        loom::thread::spawn(move || {
            loop {
                // SAFETY: this thread is the only consumer.
                match unsafe { ring.try_pop() } {
                    Ok(v) => return v,
                    Err(PopError::Disconnected | PopError::Lagged) => {
                        unreachable!("never closed, never lags")
                    }
                    // SAFETY: as above.
                    Err(PopError::Empty) => unsafe { ring.wait(None) },
                }
            }
        })
    }

    /// Property: a consumer that parks while a `DropOldest` eviction is half
    /// done (capacity 1: `head == pos(tail)` between its two CASes) is woken.
    /// Depends on `force_push` waking the consumer when its tail CAS clears
    /// the park bit (step 4); without that wake the model deadlocks.
    #[test]
    fn force_push_wakes_parked_consumer() {
        loom::model(|| {
            let ring = Arc::new(
                Ring::<u64>::new(1, Overflow::DropOldest, Arc::new(Totals::default())).unwrap(),
            );
            let consumer = {
                let ring = Arc::clone(&ring);
                loom::thread::spawn(move || {
                    loop {
                        // SAFETY: this thread is the only consumer.
                        match unsafe { ring.try_pop() } {
                            Ok(2) | Err(PopError::Disconnected | PopError::Lagged) => return,
                            Ok(_) => {}
                            // SAFETY: as above.
                            Err(PopError::Empty) => unsafe { ring.wait(None) },
                        }
                    }
                })
            };
            assert_eq!(ring.push_alone(1), Push::Accepted);
            assert_eq!(ring.push_alone(2), Push::Accepted);
            consumer.join().unwrap();
        });
    }
}
