//! Per-thread HDR histograms of sampled publish-to-receive latency,
//! merged at snapshot time (feature `latency`).
//!
//! The core stamps 1 event in N with its send time and, on receive, calls
//! the bus's [`LatencyRecorder`] on the receiving thread. Here each thread
//! records into its own shard: a histogram per subscription behind a mutex
//! that only that thread and a merging snapshot ever take, so receivers
//! never contend with each other and a publish never touches a histogram
//! at all. [`LatencyHistograms::summaries`] (and
//! [`Snapshot::with_latency`]) add the shards up.

use std::{
    cell::RefCell,
    collections::{BTreeMap, HashMap},
    fmt,
    num::NonZeroU32,
    sync::{Arc, Mutex, MutexGuard, Weak},
};

use evbus_core::{Bus, LatencyRecorder, LatencySampling};
use hdrhistogram::Histogram;

use crate::snapshot::{LatencySummary, Snapshot};

/// The largest latency a histogram tells apart: 60 s (larger samples count
/// as 60 s).
const HIGHEST_NS: u64 = 60_000_000_000;
/// Two significant digits: quantiles within 1 %, about 30 KiB per
/// histogram.
const SIGFIG: u8 = 2;

fn new_histogram() -> Option<Histogram<u64>> {
    Histogram::new_with_bounds(1, HIGHEST_NS, SIGFIG).ok()
}

/// Latency histograms of one bus's subscriptions, recorded per receiving
/// thread and merged when read.
///
/// Install it on a bus with [`install`](Self::install) (or pass
/// [`sampling`](Self::sampling) to
/// [`Bus::set_latency_sampling`](evbus_core::Bus::set_latency_sampling));
/// subscriptions made after that are sampled. Use one per bus: samples are
/// keyed by subscription id, which is unique only within a bus.
///
/// Cloning gives another handle to the same histograms.
///
/// # Examples
///
/// ```
/// # use evbus::{Bus, Event, EventKind};
/// # #[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// # enum Kind { Ping }
/// # impl EventKind for Kind {
/// #     const ALL: &'static [Self] = &[Kind::Ping];
/// #     fn topic(self) -> &'static str { "net.ping" }
/// #     fn index(self) -> usize { 0 }
/// # }
/// # #[derive(Debug, Clone)]
/// # struct Ping;
/// # impl Event for Ping {
/// #     type Kind = Kind;
/// #     fn kind(&self) -> Kind { Kind::Ping }
/// # }
/// use std::num::NonZeroU32;
/// use evbus::metrics::{LatencyHistograms, Snapshot};
///
/// let bus = Bus::<Ping>::new();
/// let latency = LatencyHistograms::new();
/// latency.install(&bus, NonZeroU32::new(10).unwrap()); // 1 event in 10
/// let mut sub = bus.subscribe("net.ping")?;
/// for _ in 0..100 {
///     bus.publish(Ping).unwrap();
/// }
/// while sub.try_recv().is_ok() {}
/// let snap = Snapshot::capture(&bus).with_latency(&latency);
/// let summary = snap.subscriptions[0].latency.expect("sampled");
/// assert_eq!(summary.samples, 10);
/// assert!(summary.p50_ns <= summary.p99_ns && summary.p99_ns <= summary.max_ns);
/// # Ok::<(), evbus::SubscribeError>(())
/// ```
#[derive(Clone)]
pub struct LatencyHistograms {
    inner: Arc<Inner>,
}

/// One thread's histograms, by subscription id.
type Shard = Mutex<HashMap<u64, Histogram<u64>>>;

struct Inner {
    /// A weak handle to itself, for threads to key their shards by.
    me: Weak<Inner>,
    /// Every live thread's shard.
    shards: Mutex<Vec<Arc<Shard>>>,
    /// Merged histograms of threads that have exited.
    retired: Mutex<BTreeMap<u64, Histogram<u64>>>,
}

thread_local! {
    /// This thread's shard of each live `LatencyHistograms`.
    static LOCAL: RefCell<Vec<(Weak<Inner>, Arc<Shard>)>> = const { RefCell::new(Vec::new()) };
}

/// Locks `m`, ignoring poisoning: a histogram is still valid after a panic
/// elsewhere (every update is a single `record` or `add`).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Default for LatencyHistograms {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for LatencyHistograms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatencyHistograms")
            .field("threads", &lock(&self.inner.shards).len())
            .finish_non_exhaustive()
    }
}

impl LatencyHistograms {
    /// Empty histograms.
    pub fn new() -> Self {
        Self {
            inner: Arc::new_cyclic(|me| Inner {
                me: me.clone(),
                shards: Mutex::new(Vec::new()),
                retired: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// Sampling of 1 event in `every` into these histograms, for
    /// [`Bus::set_latency_sampling`].
    pub fn sampling(&self, every: NonZeroU32) -> LatencySampling {
        let recorder: Arc<dyn LatencyRecorder> = self.inner.clone();
        LatencySampling::new(every, recorder)
    }

    /// Turns sampling of 1 event in `every` on for `bus`'s future
    /// subscriptions, into these histograms.
    pub fn install<E: Clone + Send + 'static>(&self, bus: &Bus<E>, every: NonZeroU32) {
        bus.set_latency_sampling(Some(self.sampling(every)));
    }

    /// Every thread's histograms added up: a summary per subscription that
    /// has samples, by id.
    pub fn summaries(&self) -> BTreeMap<u64, LatencySummary> {
        self.inner
            .merged()
            .into_iter()
            .filter(|(_, h)| !h.is_empty())
            .map(|(id, h)| (id, summarize(&h)))
            .collect()
    }
}

impl Inner {
    /// Adds up the shards; folds the shards of exited threads into
    /// `retired` on the way.
    fn merged(&self) -> BTreeMap<u64, Histogram<u64>> {
        let mut out: BTreeMap<u64, Histogram<u64>> = BTreeMap::new();
        let mut shards = lock(&self.shards);
        let mut retired = lock(&self.retired);
        shards.retain(|shard| {
            // Only the list holds it: its thread has exited, and no one can
            // reach it again (threads find their shard through their own
            // thread-local only).
            let gone = Arc::strong_count(shard) == 1;
            let hists = lock(shard);
            // A gone shard moves to `retired`, which is added below.
            let into = if gone { &mut *retired } else { &mut out };
            for (&id, h) in hists.iter() {
                add_into(into, id, h);
            }
            !gone
        });
        for (&id, h) in retired.iter() {
            add_into(&mut out, id, h);
        }
        out
    }

    /// This thread's shard, registered on first use.
    fn with_shard(&self, f: impl FnOnce(&Shard)) {
        // `try_with`: a sample taken while this thread's locals are being
        // destroyed is dropped rather than panicking.
        let _ = LOCAL.try_with(|local| {
            let mut local = local.borrow_mut();
            let me: *const Inner = self;
            if let Some((_, shard)) = local.iter().find(|(w, _)| std::ptr::eq(w.as_ptr(), me)) {
                f(shard);
                return;
            }
            // First sample of this thread: forget the shards of histograms
            // that are gone, and register a new one.
            local.retain(|(w, _)| w.strong_count() > 0);
            let shard: Arc<Shard> = Arc::new(Mutex::new(HashMap::new()));
            lock(&self.shards).push(Arc::clone(&shard));
            f(&shard);
            local.push((self.me.clone(), shard));
        });
    }
}

impl LatencyRecorder for Inner {
    fn record(&self, subscription: u64, nanos: u64) {
        self.with_shard(|shard| {
            let mut hists = lock(shard);
            let h = match hists.get_mut(&subscription) {
                Some(h) => h,
                None => match new_histogram() {
                    Some(h) => hists.entry(subscription).or_insert(h),
                    None => return,
                },
            };
            h.saturating_record(nanos.max(1));
        });
    }
}

fn add_into(map: &mut BTreeMap<u64, Histogram<u64>>, id: u64, h: &Histogram<u64>) {
    match map.get_mut(&id) {
        // Same bounds on both sides, so `add` cannot fail on range; if it
        // ever did, the sample set would only be smaller.
        Some(existing) => {
            let _ = existing.add(h);
        }
        None => {
            map.insert(id, h.clone());
        }
    }
}

fn summarize(h: &Histogram<u64>) -> LatencySummary {
    LatencySummary {
        samples: h.len(),
        p50_ns: h.value_at_quantile(0.5),
        p95_ns: h.value_at_quantile(0.95),
        p99_ns: h.value_at_quantile(0.99),
        p999_ns: h.value_at_quantile(0.999),
        max_ns: h.max(),
        sum_ns: (h.mean() * h.len() as f64) as u64,
    }
}

impl Snapshot {
    /// Fills in the latency of every subscription that has samples in
    /// `histograms` (merging every thread's histograms now).
    #[must_use]
    pub fn with_latency(mut self, histograms: &LatencyHistograms) -> Self {
        let summaries = histograms.summaries();
        for sub in &mut self.subscriptions {
            if let Some(summary) = summaries.get(&sub.id) {
                sub.latency = Some(*summary);
            }
        }
        self
    }
}
