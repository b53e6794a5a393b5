//! The benchmark report: every scenario for evbus and its peers,
//! interleaved in one process, as Markdown tables with ratios (evbus ÷
//! peer), and an SVG chart. Run by `bench-report` and by `evbus bench`.
//!
//! Scenario 8's lost-event counts follow the main table in a table of their
//! own, one line per round. Peers run round-robin inside each scenario
//! (evbus, tokio, crossbeam, evbus, ...) and each figure is the median over
//! rounds, so slow drift of a noisy VM hits all three alike. Only ratios
//! measured in the same run mean anything. `BENCHMARKS.md` at the repository
//! root defines every row.

mod lossless;
mod oversubscribed;
mod publish_cost;
mod subscribe_scale;
mod svg;
mod user_table;

use std::{
    hint::black_box,
    sync::{
        Arc, Barrier,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use crate::{
    CrossbeamFanout, EvbusFanout, EvbusSoloFanout, Fanout, Msg, Payload64, TokioFanout,
    burst_then_drain,
};
use evbus_core::{Bus, Filter, SubscribeOptions};

const BURST: usize = 64;

struct Config {
    rounds: usize,
    iters: usize,
    samples: usize,
    /// Scenario 9: publishes per run.
    lossless_publishes: usize,
    /// Scenario 14: events of workload (a); workload (b) has each of its 4
    /// publishers publish a fortieth of it (to 8 receivers).
    pinned_events: usize,
    /// Scenario 13: the build budget per peer.
    subscribe_budget: Duration,
}

/// One line of the report. `None` where a peer has no equivalent.
struct Row {
    scenario: String,
    unit: &'static str,
    evbus: f64,
    tokio: Option<f64>,
    crossbeam: Option<f64>,
    note: String,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Runs `f` `iters` times; returns ns per unit of work (`f` returns units).
fn ns_per<F: FnMut() -> usize>(iters: usize, mut f: F) -> f64 {
    let start = Instant::now();
    let mut units = 0;
    for _ in 0..iters {
        units += f();
    }
    start.elapsed().as_nanos() as f64 / units.max(1) as f64
}

/// Interleaves three measurements over `rounds`; returns their medians.
fn interleaved(
    rounds: usize,
    mut e: impl FnMut() -> f64,
    mut t: impl FnMut() -> f64,
    mut c: impl FnMut() -> f64,
) -> (f64, f64, f64) {
    let (mut ev, mut tv, mut cv) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        ev.push(e());
        tv.push(t());
        cv.push(c());
    }
    (median(ev), median(tv), median(cv))
}

/// The floor for a multi-producer delivery on one thread: per delivery one
/// uncontended `compare_exchange` on a per-ring position (its own cache
/// line), then the payload written into a slot and a Release store of the
/// slot's stamp beside it, then the same-thread drain of Acquire stamp
/// loads and payload reads, as scenario 1 does. No routing, no counters.
/// With a `u64` payload the slot is 16 bytes; with 64 B, 72 as in a ring.
struct CasFloor<T> {
    rings: Vec<FloorRing<T>>,
}

/// One ring of the [`CasFloor`]: its position, and its slots, each a stamp
/// and a payload.
type FloorRing<T> = (crossbeam_utils::CachePadded<AtomicU64>, Vec<(AtomicU64, T)>);

impl<T: Clone + Default> CasFloor<T> {
    fn new(k: usize) -> Self {
        let rings = (0..k)
            .map(|_| {
                let slots = (0..BURST)
                    .map(|_| (AtomicU64::new(0), T::default()))
                    .collect();
                (crossbeam_utils::CachePadded::new(AtomicU64::new(0)), slots)
            })
            .collect();
        Self { rings }
    }

    fn burst_then_drain(&mut self, value: &T) -> usize {
        for i in 0..BURST {
            for (pos, slots) in &mut self.rings {
                let at = pos.load(Ordering::Relaxed);
                // Relaxed: a floor measurement; the cost is the locked RMW.
                if pos
                    .compare_exchange(at, at + 1, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
                {
                    let (stamp, slot) = &mut slots[i];
                    *slot = black_box(value).clone();
                    // Release, as a ring's stamp store (the drain's Acquire
                    // load below pairs with it): the floor pays the same.
                    stamp.store(at + 1, Ordering::Release);
                }
            }
        }
        let mut n = 0;
        for (_, slots) in &self.rings {
            for (stamp, slot) in slots {
                // Acquire: pairs with the Release store above.
                black_box(stamp.load(Ordering::Acquire));
                black_box(slot);
                n += 1;
            }
        }
        n
    }
}

fn per_delivery<T: Clone + Send + Default + 'static>(
    cfg: &Config,
    payload: &str,
    rows: &mut Vec<Row>,
) {
    for k in [1usize, 4, 16] {
        let mut e = EvbusFanout::<T>::new(k, BURST);
        let mut m = EvbusFanout::<T>::with_lease_revoked(k, BURST);
        let mut s = EvbusSoloFanout::<T>::new(k, BURST);
        let mut t = TokioFanout::<T>::new(k, BURST);
        let mut c = CrossbeamFanout::<T>::new(k, BURST);
        let mut floor = CasFloor::<T>::new(k);
        let v = T::default();
        // Six-way interleave: evbus's `Publisher` (holding the lease), the
        // same with the lease revoked, single-producer evbus, the CAS floor
        // and both peers, round by round.
        let (mut sv, mut fv, mut mv) = (Vec::new(), Vec::new(), Vec::new());
        let (ev, tv, cv) = interleaved(
            cfg.rounds,
            || {
                sv.push(ns_per(cfg.iters, || burst_then_drain(&mut s, &v, BURST)));
                mv.push(ns_per(cfg.iters, || burst_then_drain(&mut m, &v, BURST)));
                fv.push(ns_per(cfg.iters, || floor.burst_then_drain(&v)));
                ns_per(cfg.iters, || burst_then_drain(&mut e, &v, BURST))
            },
            || ns_per(cfg.iters, || burst_then_drain(&mut t, &v, BURST)),
            || ns_per(cfg.iters, || burst_then_drain(&mut c, &v, BURST)),
        );
        rows.push(Row {
            scenario: format!("1. per delivery, {payload}, K={k}"),
            unit: "ns/delivery",
            evbus: ev,
            tokio: Some(tv),
            crossbeam: Some(cv),
            note: format!("burst {BURST}, drained on the same thread"),
        });
        let (floor, mv) = (median(fv), median(mv));
        rows.push(Row {
            scenario: format!("1m. per delivery, lease revoked (a CAS per delivery), {payload}, K={k}"),
            unit: "ns/delivery",
            evbus: mv,
            tokio: Some(tv),
            crossbeam: Some(cv),
            note: "a second `Publisher` came and went before the subscriptions: as with several publishers at once; peers as above".to_owned(),
        });
        rows.push(Row {
            scenario: format!("1f. floor: one CAS + one slot write per delivery, {payload}, K={k}"),
            unit: "ns/delivery",
            evbus: floor,
            tokio: None,
            crossbeam: None,
            note: format!(
                "no bus: the locked RMW a multi-producer delivery needs; evbus with the lease revoked is {:.2} x this",
                mv / floor
            ),
        });
        rows.push(Row {
            scenario: format!("1s. per delivery, single producer, {payload}, K={k}"),
            unit: "ns/delivery",
            evbus: median(sv),
            tokio: Some(tv),
            crossbeam: Some(cv),
            note: "`Bus::single_producer`; peers as in the row above".to_owned(),
        });
    }
}

fn full_rings<T: Clone + Send + Default + 'static>(
    cfg: &Config,
    payload: &str,
    rows: &mut Vec<Row>,
) {
    for k in [1usize, 4, 16] {
        fn filled<T: Default, F: Fanout<T>>(k: usize) -> F {
            let mut f = F::new(k, 16);
            for _ in 0..16 {
                f.publish(T::default());
            }
            f
        }
        let mut e: EvbusFanout<T> = filled(k);
        let mut t: TokioFanout<T> = filled(k);
        let mut c: CrossbeamFanout<T> = filled(k);
        let v = T::default();
        let n = cfg.iters * BURST;
        let (ev, tv, cv) = interleaved(
            cfg.rounds,
            || {
                ns_per(n, || {
                    black_box(e.publish(v.clone()));
                    1
                })
            },
            || {
                ns_per(n, || {
                    black_box(t.publish(v.clone()));
                    1
                })
            },
            || {
                ns_per(n, || {
                    black_box(c.publish(v.clone()));
                    1
                })
            },
        );
        rows.push(Row {
            scenario: format!("2. full rings, {payload}, K={k}"),
            unit: "ns/publish",
            evbus: ev,
            tokio: Some(tv),
            crossbeam: Some(cv),
            note: "never drained; tokio overwrites instead of dropping".into(),
        });
    }
}

fn no_subscribers(cfg: &Config, rows: &mut Vec<Row>) {
    let mut e = EvbusFanout::<u64>::new(0, 16);
    let mut t = TokioFanout::<u64>::new(0, 16);
    let mut c = CrossbeamFanout::<u64>::new(0, 16);
    let n = cfg.iters * BURST;
    let (ev, tv, cv) = interleaved(
        cfg.rounds,
        || {
            ns_per(n, || {
                black_box(e.publish(black_box(1)));
                1
            })
        },
        || {
            ns_per(n, || {
                black_box(t.publish(black_box(1)));
                1
            })
        },
        || {
            ns_per(n, || {
                black_box(c.publish(black_box(1)));
                1
            })
        },
    );
    rows.push(Row {
        scenario: "3. no subscribers".into(),
        unit: "ns/publish",
        evbus: ev,
        tokio: Some(tv),
        crossbeam: Some(cv),
        note: format!("evbus counts it: {}", e.bus().snapshot().no_subscribers > 0),
    });
}

/// evbus alone (the peers have no patterns); the ratio is to 10 patterns.
fn routing_scale(cfg: &Config, rows: &mut Vec<Row>) {
    for matching in [false, true] {
        let mut base_kind = 0.0;
        let mut base_trie = 0.0;
        for patterns in [10usize, 1_000, 10_000] {
            let bus = Bus::<Msg<u64>>::new();
            let mut keep = Vec::with_capacity(patterns + 1);
            for i in 0..patterns {
                let filter = Filter::pattern(&format!("noise.p{i}.*")).expect("valid pattern");
                keep.push(
                    bus.subscribe_with(filter, SubscribeOptions::new().capacity(1))
                        .expect("open bus"),
                );
            }
            if matching {
                let filter = Filter::pattern("bench.*").expect("valid pattern");
                keep.push(
                    bus.subscribe_with(filter, SubscribeOptions::new().capacity(BURST))
                        .expect("open bus"),
                );
            }
            let mut publisher = bus.publisher();
            let mut kind = Vec::new();
            let mut trie = Vec::new();
            for _ in 0..cfg.rounds {
                kind.push(ns_per(cfg.iters, || {
                    for i in 0..BURST {
                        let _ = black_box(publisher.publish(Msg(i as u64)));
                    }
                    if let Some(sub) = keep.last_mut().filter(|_| matching) {
                        while sub.try_recv().is_ok() {}
                    }
                    BURST
                }));
                trie.push(ns_per(cfg.iters, || {
                    for i in 0..BURST {
                        let _ = black_box(publisher.publish_to("bench.uninterned", Msg(i as u64)));
                    }
                    if let Some(sub) = keep.last_mut().filter(|_| matching) {
                        while sub.try_recv().is_ok() {}
                    }
                    BURST
                }));
            }
            let (k, t) = (median(kind), median(trie));
            if patterns == 10 {
                (base_kind, base_trie) = (k, t);
            }
            let what = if matching {
                "one matching"
            } else {
                "none matching"
            };
            rows.push(Row {
                scenario: format!("4. routing, {patterns} patterns, {what}, by kind"),
                unit: "ns/publish",
                evbus: k,
                tokio: None,
                crossbeam: None,
                note: format!("{:.2} x the 10-pattern figure", k / base_kind),
            });
            rows.push(Row {
                scenario: format!("4. routing, {patterns} patterns, {what}, publish_to (trie)"),
                unit: "ns/publish",
                evbus: t,
                tokio: None,
                crossbeam: None,
                note: format!("{:.2} x the 10-pattern figure", t / base_trie),
            });
        }
    }
}

/// Per-publish latencies (ns), K = `fast` drained every burst, plus
/// `stalled` subscribers that are never drained. With `churn`, another
/// thread adds and removes a subscriber in a loop.
/// Per-publish latencies, sorted; what the fast subscribers lost; and how
/// many subscribe-unsubscribe rounds the churn thread made meanwhile.
fn latencies<F: Fanout<u64>>(
    samples: usize,
    fast: usize,
    stalled: usize,
    churn: bool,
) -> (Vec<f64>, usize, usize) {
    let mut f = F::new(fast + stalled, BURST);
    let stop = Arc::new(AtomicBool::new(false));
    let churner = churn.then(|| {
        let mut c = f.churner();
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let mut rounds = 0;
            while !stop.load(Ordering::Relaxed) {
                c();
                rounds += 1;
            }
            rounds
        })
    });
    let mut lat = Vec::with_capacity(samples);
    let mut drained = 0;
    let mut published = 0;
    while published < samples {
        for i in 0..BURST {
            let start = Instant::now();
            black_box(f.publish(black_box(i as u64)));
            lat.push(start.elapsed().as_nanos() as f64);
        }
        published += BURST;
        drained += f.drain_first(fast);
    }
    stop.store(true, Ordering::Relaxed);
    let rounds = churner.map_or(0, |h| h.join().expect("churn thread"));
    lat.sort_by(f64::total_cmp);
    (lat, published * fast - drained, rounds)
}

fn churn(cfg: &Config, rows: &mut Vec<Row>) {
    for (label, on) in [("without churn", false), ("with churn", true)] {
        let (mut e, mut t, mut c) = (Vec::new(), Vec::new(), Vec::new());
        // Churn rounds per peer, summed over the runs.
        let mut rounds = [0usize; 3];
        let mut publishes = 0;
        for _ in 0..cfg.rounds.min(5) {
            for (at, (lat, _, r)) in [
                latencies::<EvbusFanout<u64>>(cfg.samples, 4, 0, on),
                latencies::<TokioFanout<u64>>(cfg.samples, 4, 0, on),
                latencies::<CrossbeamFanout<u64>>(cfg.samples, 4, 0, on),
            ]
            .into_iter()
            .enumerate()
            {
                publishes += usize::from(at == 0) * lat.len();
                rounds[at] += r;
                [&mut e, &mut t, &mut c][at].push(lat);
            }
        }
        let per_100 = |r: usize| 100.0 * r as f64 / publishes.max(1) as f64;
        let note = if on {
            format!(
                "subscribe+unsubscribe rounds per 100 publishes: evbus {:.1}, tokio {:.1}, crossbeam {:.1}",
                per_100(rounds[0]),
                per_100(rounds[1]),
                per_100(rounds[2])
            )
        } else {
            "timed per publish with Instant (includes ~20 ns clock cost)".into()
        };
        for (p, name) in [(0.5, "p50"), (0.99, "p99"), (0.999, "p99.9")] {
            let pick = |v: &Vec<Vec<f64>>| median(v.iter().map(|l| percentile(l, p)).collect());
            rows.push(Row {
                scenario: format!("5. publish {name}, K=4, {label}"),
                unit: "ns",
                evbus: pick(&e),
                tokio: Some(pick(&t)),
                crossbeam: Some(pick(&c)),
                note: note.clone(),
            });
        }
    }
}

fn stalled(cfg: &Config, rows: &mut Vec<Row>) {
    for (label, n_stalled) in [("none stalled", 0usize), ("one stalled", 1)] {
        let (mut e, mut t, mut c) = (Vec::new(), Vec::new(), Vec::new());
        let mut lost = [0usize; 3];
        for _ in 0..cfg.rounds.min(5) {
            let (l, x, _) = latencies::<EvbusFanout<u64>>(cfg.samples, 4, n_stalled, false);
            e.push(l);
            lost[0] += x;
            let (l, x, _) = latencies::<TokioFanout<u64>>(cfg.samples, 4, n_stalled, false);
            t.push(l);
            lost[1] += x;
            let (l, x, _) = latencies::<CrossbeamFanout<u64>>(cfg.samples, 4, n_stalled, false);
            c.push(l);
            lost[2] += x;
        }
        let pick = |v: &Vec<Vec<f64>>| median(v.iter().map(|l| percentile(l, 0.999)).collect());
        rows.push(Row {
            scenario: format!("6. publish p99.9, K=4 fast, {label}"),
            unit: "ns",
            evbus: pick(&e),
            tokio: Some(pick(&t)),
            crossbeam: Some(pick(&c)),
            note: format!(
                "fast subscribers lost: evbus {}, tokio {}, crossbeam {}",
                lost[0], lost[1], lost[2]
            ),
        });
    }
}

/// One-way latency across threads: the publisher stamps each event with the
/// time since `epoch`; the consumer subtracts. Publishes are paced.
fn one_way<F: Fanout<u64> + Send + 'static>(samples: usize, busy_poll: bool) -> Vec<f64> {
    let epoch = Instant::now();
    let mut f = F::new(1, 1024);
    let mut produce = f.producer();
    let barrier = Arc::new(Barrier::new(2));
    let b = Arc::clone(&barrier);
    let done = Arc::new(AtomicBool::new(false));
    let d = Arc::clone(&done);
    let consumer = thread::spawn(move || {
        let mut lat = Vec::with_capacity(samples);
        b.wait();
        while lat.len() < samples {
            let got = if busy_poll {
                f.try_recv_first()
            } else {
                f.recv_blocking()
            };
            match got {
                Some(sent) => lat.push(epoch.elapsed().as_nanos() as f64 - sent as f64),
                // Acquire: pairs with the Release store after the last
                // publish; a poll after it that finds nothing ends the run.
                None if busy_poll && d.load(Ordering::Acquire) => break,
                None if busy_poll => std::hint::spin_loop(),
                None => break,
            }
        }
        lat
    });
    barrier.wait();
    for _ in 0..samples {
        // Pace: 50 µs between events, so a parked consumer really parks.
        // Bounded by the deadline; the consumer runs on the other core.
        let next = Instant::now() + Duration::from_micros(50);
        produce(epoch.elapsed().as_nanos() as u64);
        while Instant::now() < next {
            std::hint::spin_loop();
        }
    }
    done.store(true, Ordering::Release);
    drop(produce);
    let mut lat = consumer.join().expect("consumer thread");
    lat.sort_by(f64::total_cmp);
    lat
}

/// The raw cost of a handoff between cores, measured the way `one_way`
/// measures a bus: the publisher stores its timestamp in a bare atomic, the
/// other thread busy-polls it and subtracts. Same pacing, same clock reads.
fn raw_handoff(samples: usize) -> Vec<f64> {
    let epoch = Instant::now();
    let cell = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(2));
    let (c, b) = (Arc::clone(&cell), Arc::clone(&barrier));
    let consumer = thread::spawn(move || {
        let mut lat = Vec::with_capacity(samples);
        let mut last = 0;
        b.wait();
        loop {
            // Acquire: pairs with the publisher's Release store.
            let sent = c.load(Ordering::Acquire);
            if sent == u64::MAX {
                break;
            }
            if sent != last {
                lat.push(epoch.elapsed().as_nanos() as f64 - sent as f64);
                last = sent;
            } else {
                std::hint::spin_loop();
            }
        }
        lat
    });
    barrier.wait();
    for _ in 0..samples {
        let next = Instant::now() + Duration::from_micros(50);
        // +1: never store 0, which the consumer reads as "nothing yet".
        cell.store(epoch.elapsed().as_nanos() as u64 + 1, Ordering::Release);
        while Instant::now() < next {
            std::hint::spin_loop();
        }
    }
    // A stamp overwritten before it was read is a lost sample, not a hang:
    // the sentinel ends the consumer's loop.
    cell.store(u64::MAX, Ordering::Release);
    let mut lat = consumer.join().expect("consumer thread");
    lat.sort_by(f64::total_cmp);
    lat
}

fn cross_thread(cfg: &Config, rows: &mut Vec<Row>) {
    let raw = raw_handoff(cfg.samples / 10);
    let handoff = percentile(&raw, 0.5);
    rows.push(Row {
        scenario: "7. bare atomic handoff between cores, p50 (one way)".into(),
        unit: "ns",
        evbus: handoff,
        tokio: None,
        crossbeam: None,
        note: "a timestamp in one atomic, busy-polled: the floor for scenario 7".into(),
    });
    for (label, busy) in [
        ("consumer parked in recv", false),
        ("consumer busy-polling try_recv", true),
    ] {
        let n = cfg.samples / 10;
        let e = one_way::<EvbusFanout<u64>>(n, busy);
        let s = one_way::<EvbusSoloFanout<u64>>(n, busy);
        let t = one_way::<TokioFanout<u64>>(n, busy);
        let c = one_way::<CrossbeamFanout<u64>>(n, busy);
        for (p, name) in [(0.5, "p50"), (0.99, "p99")] {
            for (mode, lat) in [("", &e), ("single producer, ", &s)] {
                rows.push(Row {
                    scenario: format!("7. one-way latency {name}, {mode}{label}"),
                    unit: "ns",
                    evbus: percentile(lat, p),
                    tokio: Some(percentile(&t, p)),
                    crossbeam: Some(percentile(&c, p)),
                    note: if busy && p == 0.5 {
                        format!("{:.2} x the bare handoff", percentile(lat, p) / handoff)
                    } else {
                        String::new()
                    },
                });
            }
        }
    }
}

/// Two publisher threads into K = 4, one consumer thread draining.
fn many_producers<F: Fanout<u64> + Send + 'static>(per_producer: usize) -> (f64, usize, usize) {
    let mut f = F::new(4, 1024);
    let producers: Vec<_> = (0..2).map(|_| f.producer()).collect();
    let done = Arc::new(AtomicBool::new(false));
    let d2 = Arc::clone(&done);
    let barrier = Arc::new(Barrier::new(3));
    let b = Arc::clone(&barrier);
    let consumer = thread::spawn(move || {
        b.wait();
        let mut got = 0;
        loop {
            let n = f.drain();
            got += n;
            if n == 0 {
                if d2.load(Ordering::Acquire) {
                    return got + f.drain();
                }
                thread::yield_now();
            }
        }
    });
    let handles: Vec<_> = producers
        .into_iter()
        .map(|mut p| {
            let b = Arc::clone(&barrier);
            thread::spawn(move || {
                b.wait();
                let mut full = 0;
                for i in 0..per_producer {
                    full += p(i as u64);
                }
                full
            })
        })
        .collect();
    let start = Instant::now();
    let full: usize = handles
        .into_iter()
        .map(|h| h.join().expect("producer"))
        .sum();
    done.store(true, Ordering::Release);
    let got = consumer.join().expect("consumer");
    let secs = start.elapsed().as_secs_f64();
    (got as f64 / secs / 1e6, full, 2 * per_producer * 4 - got)
}

/// Scenario 8's events not received, per round: evbus, tokio, crossbeam.
type Losses = Vec<[usize; 3]>;

fn producers(cfg: &Config, rows: &mut Vec<Row>, losses: &mut Losses) {
    let n = cfg.samples;
    let (mut e, mut t, mut c) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..cfg.rounds.min(3) {
        let re = many_producers::<EvbusFanout<u64>>(n);
        e.push(re.0);
        let rt = many_producers::<TokioFanout<u64>>(n);
        t.push(rt.0);
        let rc = many_producers::<CrossbeamFanout<u64>>(n);
        c.push(rc.0);
        losses.push([re.2, rt.2, rc.2]);
    }
    rows.push(Row {
        scenario: "8. two publishers, K=4, one consumer thread".into(),
        unit: "M deliveries/s",
        evbus: median(e),
        tokio: Some(median(t)),
        crossbeam: Some(median(c)),
        note: format!(
            "{} deliveries per round (2 publishers x {n} publishes x K=4); those not received are in the table below",
            2 * n * 4
        ),
    });
}

fn fmt(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn ratio(e: f64, p: Option<f64>) -> String {
    p.map_or("–".into(), |p| format!("{:.2}", e / p))
}

/// Writes the `--svg` chart: every row with both peers, in nanoseconds.
fn write_svg(path: &std::path::Path, rows: &[Row], command: &str) -> Result<usize, String> {
    let groups: Vec<svg::Group<'_>> = rows
        .iter()
        .filter(|r| r.unit.starts_with("ns"))
        .filter_map(|r| {
            Some(svg::Group {
                label: &r.scenario,
                evbus: r.evbus,
                tokio: r.tokio?,
                crossbeam: r.crossbeam?,
            })
        })
        .collect();
    let title = format!("evbus vs tokio broadcast vs crossbeam fan-out ({command})");
    svg::write(path, &title, "ns per delivery or publish", &groups)?;
    Ok(groups.len())
}

/// Prints the table of scenarios 1 to 8.
fn print_main_table(rows: &[Row]) {
    println!(
        "| scenario | unit | evbus | tokio broadcast | crossbeam fan-out | evbus ÷ tokio | evbus ÷ crossbeam | note |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.scenario,
            r.unit,
            fmt(r.evbus),
            r.tokio.map_or("–".into(), fmt),
            r.crossbeam.map_or("–".into(), fmt),
            ratio(r.evbus, r.tokio),
            ratio(r.evbus, r.crossbeam),
            r.note
        );
    }
}

/// The scenarios, by number, with a short name (`BENCHMARKS.md` has the
/// rows of each).
pub const SCENARIOS: [(u32, &str); 14] = [
    (1, "per delivery"),
    (2, "full rings"),
    (3, "no subscribers"),
    (4, "routing scale"),
    (5, "publish latency with churn"),
    (6, "a stalled subscriber"),
    (7, "one-way latency between threads"),
    (8, "two publishers, one consumer"),
    (9, "lossless fan-out, every peer"),
    (10, "full rings, every peer"),
    (11, "the publish side alone, every peer"),
    (12, "no subscribers, every peer"),
    (13, "subscribe at scale, every peer"),
    (14, "lossless on oversubscribed cores, every peer"),
];

/// What a report measures; also the command-line options of
/// `bench-report` and `evbus bench` (flattened into their parsers).
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct Options {
    /// A short run: 3 rounds, 200 iterations per measurement, 20 000
    /// latency samples, 50 000 lossless publishes (scenario 9), 100 000
    /// pinned events (14) and a 5 s subscribe budget (13) (default: 5
    /// rounds, 1 000 iterations, 100 000 samples, 200 000 publishes,
    /// 1 000 000 events, 20 s).
    #[arg(long)]
    pub quick: bool,
    /// Interleaved rounds per figure, each figure the median over them
    /// (default 5, or 3 with --quick). Scenarios 5 and 6 use at most 5,
    /// scenario 8 at most 3.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub rounds: Option<u16>,
    /// Run only these scenarios, by number (1 to 14), comma-separated
    /// (default: all).
    #[arg(
        long,
        value_name = "N,M",
        value_delimiter = ',',
        value_parser = clap::value_parser!(u32).range(1..=14)
    )]
    pub only: Vec<u32>,
    /// Scenario 13: seconds each peer may spend building subscriptions;
    /// past it the report says how many it built (default 20, or 5 with
    /// --quick).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub subscribe_budget: Option<u64>,
}

/// The command-line options of `bench-report` and `evbus bench`: what to
/// measure, and where to write the chart.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct ReportArgs {
    /// What to measure.
    #[command(flatten)]
    pub options: Options,
    /// Also write an SVG bar chart of the rows measured in ns for evbus,
    /// tokio and crossbeam (scenarios 1 to 8).
    #[arg(long, value_name = "PATH")]
    pub svg: Option<std::path::PathBuf>,
}

impl Options {
    /// The options that shaped the figures, as command-line flags, for
    /// the chart's title.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.quick {
            parts.push("--quick".to_owned());
        }
        if let Some(n) = self.rounds {
            parts.push(format!("--rounds {n}"));
        }
        if let Some(n) = self.subscribe_budget {
            parts.push(format!("--subscribe-budget {n}"));
        }
        if !self.only.is_empty() {
            let list: Vec<String> = self.only.iter().map(u32::to_string).collect();
            parts.push(format!("--only {}", list.join(",")));
        }
        parts.join(" ")
    }

    /// Whether scenario `n` runs.
    pub fn wants(&self, n: u32) -> bool {
        self.only.is_empty() || self.only.contains(&n)
    }

    /// The scenarios that run, in order.
    pub fn scenarios(&self) -> impl Iterator<Item = (u32, &'static str)> + '_ {
        SCENARIOS.into_iter().filter(|(n, _)| self.wants(*n))
    }

    fn config(&self) -> Config {
        let mut cfg = if self.quick {
            Config {
                rounds: 3,
                iters: 200,
                samples: 20_000,
                lossless_publishes: 50_000,
                pinned_events: 100_000,
                subscribe_budget: Duration::from_secs(5),
            }
        } else {
            Config {
                rounds: 5,
                iters: 1_000,
                samples: 100_000,
                lossless_publishes: 200_000,
                pinned_events: 1_000_000,
                subscribe_budget: Duration::from_secs(20),
            }
        };
        if let Some(n) = self.rounds {
            cfg.rounds = usize::from(n);
        }
        if let Some(secs) = self.subscribe_budget {
            cfg.subscribe_budget = Duration::from_secs(secs);
        }
        cfg
    }
}

/// Where a run is, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Scenario `number` (`name`) starts.
    Started {
        /// Its number.
        number: u32,
        /// Its short name.
        name: &'static str,
    },
    /// Scenario `number` is measured.
    Finished {
        /// Its number.
        number: u32,
        /// Its short name.
        name: &'static str,
    },
}

/// The figures of a run: print them as Markdown ([`Report::print`]) or
/// chart them ([`Report::write_svg`]).
pub struct Report {
    rows: Vec<Row>,
    user_rows: Vec<user_table::UserRow>,
    losses: Losses,
}

impl std::fmt::Debug for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Report")
            .field("rows", &self.rows.len())
            .field("user_rows", &self.user_rows.len())
            .field("loss_rounds", &self.losses.len())
            .finish()
    }
}

/// Runs the scenarios `options` selects, in order, telling `progress`
/// when each starts and ends.
pub fn run(options: &Options, mut progress: impl FnMut(Progress)) -> Report {
    let cfg = options.config();
    let mut report = Report {
        rows: Vec::new(),
        user_rows: Vec::new(),
        losses: Losses::new(),
    };
    for (number, name) in options.scenarios() {
        progress(Progress::Started { number, name });
        let Report {
            rows,
            user_rows,
            losses,
        } = &mut report;
        match number {
            1 => {
                per_delivery::<u64>(&cfg, "u64", rows);
                per_delivery::<Payload64>(&cfg, "64 B", rows);
            }
            2 => {
                full_rings::<u64>(&cfg, "u64", rows);
                full_rings::<Payload64>(&cfg, "64 B", rows);
            }
            3 => no_subscribers(&cfg, rows),
            4 => routing_scale(&cfg, rows),
            5 => churn(&cfg, rows),
            6 => stalled(&cfg, rows),
            7 => cross_thread(&cfg, rows),
            8 => producers(&cfg, rows, losses),
            9 => lossless::lossless_fanout(&cfg, user_rows),
            10 => publish_cost::full_rings(&cfg, user_rows),
            11 => publish_cost::publish_side(&cfg, user_rows),
            12 => publish_cost::no_subscribers(&cfg, user_rows),
            13 => subscribe_scale::subscribe_scale(cfg.subscribe_budget, user_rows),
            _ => oversubscribed::oversubscribed(&cfg, user_rows),
        }
        progress(Progress::Finished { number, name });
    }
    report
}

impl Report {
    /// Prints the tables on standard output, as Markdown: scenarios 1 to
    /// 8, the user scenarios, and scenario 8's losses per round.
    pub fn print(&self) {
        let (rows, user_rows, losses) = (&self.rows, &self.user_rows, &self.losses);
        if !rows.is_empty() {
            print_main_table(rows);
        }
        if !user_rows.is_empty() {
            if !rows.is_empty() {
                println!();
            }
            println!(
                "User scenarios (issue 14): every peer in the same run; ratios are evbus ÷ peer."
            );
            println!();
            user_table::print(user_rows);
        }
        if !losses.is_empty() {
            println!();
            println!(
                "Scenario 8, deliveries the consumer did not receive (refused by a full ring, or overwritten for tokio), per round:"
            );
            println!();
            println!("| round | evbus | tokio broadcast | crossbeam fan-out |");
            println!("|---:|---:|---:|---:|");
            for (i, [e, t, c]) in losses.iter().enumerate() {
                println!("| {} | {e} | {t} | {c} |", i + 1);
            }
        }
    }

    /// Writes an SVG bar chart of the rows of scenarios 1 to 8 measured in
    /// nanoseconds for all three peers, titled with `command`; returns
    /// how many groups it drew.
    ///
    /// # Errors
    ///
    /// The drawing or file error, as text.
    pub fn write_svg(&self, path: &std::path::Path, command: &str) -> Result<usize, String> {
        write_svg(path, &self.rows, command)
    }
}
