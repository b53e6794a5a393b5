//! History then live: `subscribe_with_history` on the disk recorder and on
//! the memory journal, and the stress test of the boundary.

mod common;

use std::{collections::HashMap, sync::mpsc, thread};

use common::{Order, Rng, order};
use evbus_core::{Bus, Envelope, EventId, Filter, Overflow, SubscribeOptions, Timestamp};
use evbus_journal::{
    Error, EventHistory, HistoryError, HistoryItem, HistoryStart, HistorySubscription, Journal,
    JournalOptions, MemoryJournal, Recorder, RecorderOptions, SyncPolicy,
};

fn journal(dir: &std::path::Path) -> Journal {
    Journal::create(
        dir,
        JournalOptions::new()
            .sync(SyncPolicy::Never)
            .segment_size(2048),
    )
    .unwrap()
}

fn n_of(item: &HistoryItem<Order>) -> (u64, bool) {
    (item.envelope().payload().n, item.is_live())
}

#[test]
fn smoke_disk() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::<Envelope<Order>>::new();
    let rec = Recorder::start(&bus, journal(dir.path())).unwrap();
    for n in 0..50 {
        bus.publish(order(n)).unwrap();
    }
    rec.flush().unwrap();
    let mut sub: HistorySubscription<Order> = rec
        .subscribe_with_history("orders.shipped", HistoryStart::Last(3))
        .unwrap();
    assert_eq!(sub.boundary(), 50);
    for n in 50..54 {
        bus.publish(order(n)).unwrap();
    }
    let seen: Vec<_> = (0..5).map(|_| n_of(&sub.recv().unwrap())).collect();
    assert_eq!(
        seen,
        [
            (45, false),
            (47, false),
            (49, false),
            (51, true),
            (53, true)
        ]
    );
    let first = rec
        .subscribe_with_history::<Order>(">", HistoryStart::Last(1))
        .unwrap()
        .try_recv()
        .unwrap();
    assert_eq!(first.seq(), Some(53));
    rec.stop();
    assert!(matches!(sub.recv(), Err(HistoryError::Disconnected)));
}

#[test]
fn last_n_spans_segments_and_counts_only_matching_records() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::<Envelope<Order>>::new();
    let rec = Recorder::start(&bus, journal(dir.path())).unwrap();
    for n in 0..400 {
        bus.publish(order(n)).unwrap();
    }
    rec.flush().unwrap();
    assert!(std::fs::read_dir(dir.path()).unwrap().count() > 10);
    for (n, pattern) in [
        (0, ">"),
        (1, ">"),
        (57, "orders.placed"),
        (399, ">"),
        (1000, ">"),
    ] {
        let got: Vec<u64> = EventHistory::<Order>::history(
            &rec,
            Filter::pattern(pattern).unwrap(),
            HistoryStart::Last(n),
        )
        .unwrap()
        .into_iter()
        .map(|(_, e)| e.payload().n)
        .collect();
        let all: Vec<u64> = (0..400).filter(|k| pattern == ">" || k % 2 == 0).collect();
        assert_eq!(got, all[all.len().saturating_sub(n)..], "{n} {pattern}");
    }
}

#[test]
fn seq_time_and_live_only_starts() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::<Envelope<Order>>::new();
    let rec = Recorder::start(&bus, journal(dir.path())).unwrap();
    let mem = MemoryJournal::start(&bus, 1000).unwrap();
    for n in 0..20 {
        bus.publish(order(n).with_time(Timestamp::from_nanos(1000 + n)))
            .unwrap();
    }
    rec.flush().unwrap();
    mem.flush().unwrap();
    let all = Filter::pattern(">").unwrap();
    let check = |h: &dyn EventHistory<Order>| {
        let ns = |from| -> Vec<u64> {
            h.history(all.clone(), from)
                .unwrap()
                .into_iter()
                .map(|(_, e)| e.payload().n)
                .collect()
        };
        assert_eq!(ns(HistoryStart::Seq(17)), [17, 18, 19]);
        assert_eq!(ns(HistoryStart::Seq(20)), [] as [u64; 0]);
        assert_eq!(
            ns(HistoryStart::Time(Timestamp::from_nanos(1018))),
            [18, 19]
        );
        assert_eq!(ns(HistoryStart::LiveOnly), [] as [u64; 0]);
    };
    check(&rec);
    check(&mem);
    let mut sub = rec
        .subscribe_with_history::<Order>(">", HistoryStart::LiveOnly)
        .unwrap();
    assert!(sub.history_done());
    assert!(matches!(sub.try_recv(), Err(HistoryError::Empty)));
    bus.publish(order(20)).unwrap();
    assert_eq!(n_of(&sub.recv().unwrap()), (20, true));
}

#[test]
fn a_wrong_payload_type_is_a_typed_error() {
    #[derive(Debug, Clone, serde::Deserialize)]
    struct Other;
    impl evbus_core::Event for Other {
        type Kind = common::Kind;
        fn kind(&self) -> common::Kind {
            common::Kind::Placed
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::<Envelope<Order>>::new();
    let rec = Recorder::start(&bus, journal(dir.path())).unwrap();
    assert!(matches!(
        rec.subscribe_with_history::<Other>(">", HistoryStart::LiveOnly),
        Err(Error::WrongPayloadType { .. })
    ));
    assert!(matches!(
        rec.subscribe_with_history::<Order>("a..", HistoryStart::LiveOnly),
        Err(Error::Subscribe(_))
    ));
}

#[test]
fn a_full_live_ring_reports_the_lag() {
    let bus = Bus::<Envelope<Order>>::new();
    let mem = MemoryJournal::start(&bus, 10).unwrap();
    let mut sub = mem
        .subscribe_with_history_opts(
            Filter::pattern(">").unwrap(),
            HistoryStart::LiveOnly,
            SubscribeOptions::new()
                .capacity(2)
                .overflow(Overflow::DropOldest),
        )
        .unwrap();
    for n in 0..5 {
        bus.publish(order(n)).unwrap();
    }
    mem.flush().unwrap();
    assert!(matches!(sub.recv(), Err(HistoryError::Lagged(3))));
    assert_eq!(n_of(&sub.recv().unwrap()), (3, true));
    assert_eq!(n_of(&sub.recv().unwrap()), (4, true));
}

#[test]
fn after_the_recorder_stops_the_history_is_still_served() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::<Envelope<Order>>::new();
    let rec = Recorder::start(&bus, journal(dir.path())).unwrap();
    for n in 0..5 {
        bus.publish(order(n)).unwrap();
    }
    drop(bus); // the recorder drains and closes
    rec.flush().unwrap();
    let sub = rec
        .subscribe_with_history::<Order>(">", HistoryStart::Seq(0))
        .unwrap();
    let seen: Vec<_> = sub.map(|i| n_of(&i)).collect();
    assert_eq!(seen, (0..5).map(|n| (n, false)).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------
// The boundary stress test.

const PUBLISHERS: u64 = 3;
/// Publishers tell the test how far they are every `STEP` events.
const STEP: u64 = 25;

/// One consumer's view: what it asked for and what it got.
struct Seen {
    pattern: &'static str,
    from: HistoryStart,
    boundary: u64,
    items: Vec<(Option<u64>, EventId, bool)>,
}

/// One round: `PUBLISHERS` threads publish `each` numbered envelopes
/// (`n = publisher * 1_000_000 + i`, topics alternating) while the test
/// thread calls `subscribe_with_history` at random points (after a random
/// number of progress reports) with a random start and pattern. Every
/// consumer drains until the recorder stops.
///
/// Then, against the recorded order (the full history, read once everything
/// is recorded), each consumer's sequence must be exactly a suffix of the
/// recorded order restricted to its pattern: every event after some point,
/// each once, none missing between history and live, history before live;
/// the history part is what `from` selects below the boundary; and the
/// recorded order keeps each publisher's order and holds every event once.
fn round<H>(seed: u64, each: u64, subs: usize, history: &H, bus: Bus<Envelope<Order>>)
where
    H: EventHistory<Order> + Sync,
{
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let (progress, reports) = mpsc::channel::<()>();
    let total = PUBLISHERS * each;
    thread::scope(|s| {
        let publishers: Vec<_> = (0..PUBLISHERS)
            .map(|p| {
                let bus = bus.clone();
                let progress = progress.clone();
                s.spawn(move || {
                    for i in 0..each {
                        bus.publish(order(p * 1_000_000 + i)).unwrap();
                        if i % STEP == STEP - 1 {
                            let _ = progress.send(());
                        }
                    }
                })
            })
            .collect();
        drop(progress);
        let mut consumers = Vec::new();
        for _ in 0..subs {
            let wait = rng.below(total / STEP / subs as u64 + 1);
            for _ in 0..wait {
                if reports.recv().is_err() {
                    break;
                }
            }
            let pattern = match rng.below(3) {
                0 => "orders.placed",
                _ => ">",
            };
            let from = match rng.below(5) {
                0 => HistoryStart::LiveOnly,
                1 => HistoryStart::Seq(0),
                2 => HistoryStart::Seq(rng.below(total)),
                _ => HistoryStart::Last(rng.below(200) as usize),
            };
            let options = SubscribeOptions::new()
                .capacity(total as usize + 1)
                .overflow(Overflow::DropOldest);
            let mut sub = history
                .subscribe_with_history_opts(Filter::pattern(pattern).unwrap(), from, options)
                .unwrap();
            consumers.push(s.spawn(move || {
                let boundary = sub.boundary();
                let mut items = Vec::new();
                loop {
                    match sub.recv() {
                        Ok(item) => items.push((item.seq(), item.envelope().id(), item.is_live())),
                        Err(HistoryError::Disconnected) => break,
                        Err(e) => panic!("seed {seed}: {e}"),
                    }
                }
                Seen {
                    pattern,
                    from,
                    boundary,
                    items,
                }
            }));
        }
        for p in publishers {
            p.join().unwrap();
        }
        // Every publisher handle is gone: the recorder drains, stops, and
        // the consumers disconnect once they have everything.
        drop(bus);
        let seen: Vec<Seen> = consumers.into_iter().map(|c| c.join().unwrap()).collect();

        let recorded = history
            .history(Filter::pattern(">").unwrap(), HistoryStart::Seq(0))
            .unwrap();
        assert_eq!(recorded.len() as u64, total, "seed {seed}");
        let mut next_of: HashMap<u64, u64> = HashMap::new();
        for (k, (seq, e)) in recorded.iter().enumerate() {
            assert_eq!(*seq, k as u64, "seed {seed}: gapless record numbers");
            let n = e.payload().n;
            let expected = next_of.entry(n / 1_000_000).or_insert(0);
            assert_eq!(n % 1_000_000, *expected, "seed {seed}: publisher order");
            *expected += 1;
        }
        for v in seen {
            let matching: Vec<(u64, EventId)> = recorded
                .iter()
                .filter(|(_, e)| v.pattern == ">" || e.topic() == v.pattern)
                .map(|(seq, e)| (*seq, e.id()))
                .collect();
            let ids: Vec<EventId> = v.items.iter().map(|i| i.1).collect();
            let suffix: Vec<EventId> = matching[matching.len() - ids.len().min(matching.len())..]
                .iter()
                .map(|m| m.1)
                .collect();
            assert_eq!(
                ids, suffix,
                "seed {seed}: {:?} {} is not a suffix of the recorded order",
                v.from, v.pattern
            );
            // History first, below the boundary, with the right seqs; then
            // live, from the boundary on.
            let hist = v.items.iter().take_while(|i| !i.2).count();
            assert!(v.items[hist..].iter().all(|i| i.2), "seed {seed}");
            let below = matching.iter().filter(|m| m.0 < v.boundary).count();
            let above = matching.len() - below;
            assert_eq!(ids.len() - hist, above, "seed {seed}: live part");
            let expected_hist = match v.from {
                HistoryStart::LiveOnly => 0,
                HistoryStart::Last(n) => n.min(below),
                HistoryStart::Seq(s) => matching
                    .iter()
                    .filter(|m| m.0 >= s && m.0 < v.boundary)
                    .count(),
                HistoryStart::Time(_) => unreachable!(),
            };
            assert_eq!(
                hist, expected_hist,
                "seed {seed}: {:?} history part",
                v.from
            );
            for (item, m) in v.items[..hist].iter().zip(&matching[below - hist..below]) {
                assert_eq!(item.0, Some(m.0), "seed {seed}: history seq");
            }
        }
    });
}

fn stress_disk(rounds: u64, each: u64) {
    for seed in 0..rounds {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::<Envelope<Order>>::new();
        // A small recorder ring: publishers block on it often, which is
        // where a boundary taken on the application's bus would leak.
        let rec = Recorder::start_with(
            &bus,
            journal(dir.path()),
            RecorderOptions::new().capacity(8),
        )
        .unwrap();
        round(seed, each, 4, &rec, bus);
        assert_eq!(rec.stop().errors, 0);
    }
}

fn stress_memory(rounds: u64, each: u64) {
    for seed in 0..rounds {
        let bus = Bus::<Envelope<Order>>::new();
        let mem = MemoryJournal::start_with(
            &bus,
            (PUBLISHERS * each) as usize,
            RecorderOptions::new().capacity(8),
        )
        .unwrap();
        round(seed, each, 4, &mem, bus);
    }
}

#[test]
fn stress_boundary_disk_small() {
    stress_disk(if cfg!(miri) { 1 } else { 20 }, 300);
}

#[test]
fn stress_boundary_memory_small() {
    stress_memory(if cfg!(miri) { 1 } else { 40 }, 300);
}

#[test]
#[ignore = "long: run with --release -- --ignored"]
fn stress_boundary_disk_large() {
    stress_disk(400, 2000);
}

#[test]
#[ignore = "long: run with --release -- --ignored"]
fn stress_boundary_memory_large() {
    stress_memory(1000, 2000);
}
