//! The recorder: what a bus publishes ends up in the journal.

mod common;

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    thread,
};

use common::{Kind, Order, order};
use evbus_core::{Bus, Envelope, ReplayMark};
use evbus_journal::{
    Journal, JournalOptions, Reader, Recorder, RecorderOptions, Start, SyncPolicy,
};

fn payloads(dir: &std::path::Path) -> Vec<Order> {
    Reader::open(dir, Start::Beginning)
        .unwrap()
        .map(|r| r.unwrap().payload::<Order>().unwrap())
        .collect()
}

#[test]
fn records_what_several_publishers_publish_in_order_per_publisher() {
    const PUBLISHERS: u64 = 3;
    const EACH: u64 = 2000;
    for sync in [
        SyncPolicy::Never,
        SyncPolicy::Always,
        SyncPolicy::EveryRecords(100),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::<Envelope<Order>>::new();
        let journal = Journal::create(
            dir.path(),
            JournalOptions::new().sync(sync).segment_size(64 << 10),
        )
        .unwrap();
        let recorder =
            Recorder::start_with(&bus, journal, RecorderOptions::new().capacity(64)).unwrap();
        let handles: Vec<_> = (0..PUBLISHERS)
            .map(|p| {
                let mut publisher = bus.publisher();
                thread::spawn(move || {
                    for i in 0..EACH {
                        let e = Envelope::new(Order {
                            shipped: false,
                            n: p * 1_000_000 + i,
                            note: String::new(),
                        });
                        publisher.publish(e).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        recorder.flush().unwrap();
        let got = payloads(dir.path());
        assert_eq!(got.len() as u64, PUBLISHERS * EACH, "{sync:?}");
        let mut next: HashMap<u64, u64> = HashMap::new();
        for o in &got {
            let (p, i) = (o.n / 1_000_000, o.n % 1_000_000);
            let expected = next.entry(p).or_insert(0);
            assert_eq!(i, *expected, "publisher {p} out of order ({sync:?})");
            *expected += 1;
        }
        let report = recorder.stop();
        assert_eq!(report.records, PUBLISHERS * EACH);
        assert_eq!((report.errors, report.dropped), (0, 0));
        assert!(report.batches >= 1 && report.batches <= report.records);
        if sync == SyncPolicy::Always {
            assert!(report.syncs >= report.batches, "{report:?}");
        }
    }
}

#[test]
fn flush_covers_every_publish_that_returned_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::<Envelope<Order>>::new();
    let journal =
        Journal::create(dir.path(), JournalOptions::new().sync(SyncPolicy::Never)).unwrap();
    let recorder = Recorder::start(&bus, journal).unwrap();
    // How many publishes have returned.
    let returned = Arc::new(AtomicU64::new(0));
    let publisher = {
        let returned = Arc::clone(&returned);
        let mut publisher = bus.publisher();
        thread::spawn(move || {
            for i in 0..20_000 {
                publisher.publish(order(i)).unwrap();
                returned.store(i + 1, Ordering::SeqCst);
            }
        })
    };
    let mut reader = recorder.reader(Start::Beginning).unwrap();
    let mut seen = 0u64;
    for _ in 0..50 {
        let before = returned.load(Ordering::SeqCst);
        recorder.flush().unwrap();
        // A cross-process reader sees them too: they are in the files.
        let cross = Reader::open(dir.path(), Start::Seq(seen)).unwrap().count() as u64;
        assert!(seen + cross >= before, "{seen} + {cross} < {before}");
        seen += reader.by_ref().count() as u64;
        assert!(
            seen >= before,
            "flush returned with {seen} of {before} recorded"
        );
    }
    publisher.join().unwrap();
    recorder.flush().unwrap();
    seen += reader.count() as u64;
    assert_eq!(seen, 20_000);
}

#[test]
fn the_recorder_closes_when_the_bus_goes() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::<Envelope<Order>>::new();
    let journal = Journal::create(dir.path(), JournalOptions::new()).unwrap();
    let recorder = Recorder::start(&bus, journal).unwrap();
    let mut publisher = bus.publisher();
    for i in 0..100 {
        publisher.publish(order(i)).unwrap();
    }
    // The last producer-side handles go: the bus closes, the recorder
    // drains its ring, closes the journal, and its thread ends.
    drop(publisher);
    drop(bus);
    recorder.flush().unwrap();
    let report = recorder.stop();
    assert_eq!(report.records, 100);
    // The lock is released and the records are all there.
    let j = Journal::open(dir.path(), JournalOptions::new()).unwrap();
    assert_eq!(j.next_seq(), 100);
    assert_eq!(payloads(dir.path()).len(), 100);
}

#[test]
fn dropping_the_recorder_drains_and_closes() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::<Envelope<Order>>::new();
    let journal = Journal::create(dir.path(), JournalOptions::new()).unwrap();
    let recorder = Recorder::start(&bus, journal).unwrap();
    for i in 0..500 {
        bus.publish(order(i)).unwrap();
    }
    drop(recorder);
    let ns: Vec<u64> = payloads(dir.path()).iter().map(|o| o.n).collect();
    assert_eq!(ns, (0..500).collect::<Vec<_>>());
    drop(Journal::open(dir.path(), JournalOptions::new()).unwrap());
    // The bus itself stays usable.
    assert_eq!(bus.subscriber_count(), 0);
}

#[test]
fn a_pattern_limits_what_is_recorded_and_dry_runs_are_not_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::<Envelope<Order>>::new();
    let journal = Journal::create(dir.path(), JournalOptions::new()).unwrap();
    let recorder = Recorder::start_with(
        &bus,
        journal,
        RecorderOptions::new().pattern("orders.shipped"),
    )
    .unwrap();
    for i in 0..10 {
        bus.publish(order(i)).unwrap();
    }
    let mark = |dry_run| {
        Some(ReplayMark {
            dry_run,
            recorded_seq: 1,
        })
    };
    bus.publish(order(11).with_replay_mark(mark(true))).unwrap();
    bus.publish(order(13).with_replay_mark(mark(false)))
        .unwrap();
    recorder.flush().unwrap();
    let records: Vec<_> = recorder
        .reader(Start::Beginning)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let ns: Vec<u64> = records
        .iter()
        .map(|r| r.payload::<Order>().unwrap().n)
        .collect();
    assert_eq!(ns, vec![1, 3, 5, 7, 9, 13]);
    assert!(records.iter().all(|r| r.topic() == "orders.shipped"));
    assert_eq!(records[5].replay(), mark(false));
    let report = recorder.stop();
    assert_eq!((report.records, report.dry_run_skipped), (6, 1));
    let _ = Kind::Shipped;
}

#[test]
fn a_bad_pattern_or_a_closed_bus_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::<Envelope<Order>>::new();
    let journal = Journal::create(dir.path(), JournalOptions::new()).unwrap();
    let err = Recorder::start_with(&bus, journal, RecorderOptions::new().pattern("a..b"));
    assert!(matches!(err, Err(evbus_journal::Error::Subscribe(_))));
    bus.shutdown();
    let journal = Journal::open(dir.path(), JournalOptions::new()).unwrap();
    assert!(matches!(
        Recorder::start(&bus, journal),
        Err(evbus_journal::Error::Subscribe(_))
    ));
}

#[test]
fn interval_policy_flushes_and_records() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::<Envelope<Order>>::new();
    let journal = Journal::create(
        dir.path(),
        JournalOptions::new().sync(SyncPolicy::Interval(std::time::Duration::from_millis(5))),
    )
    .unwrap();
    let recorder = Recorder::start(&bus, journal).unwrap();
    for i in 0..300 {
        bus.publish(order(i)).unwrap();
    }
    recorder.flush().unwrap();
    assert_eq!(payloads(dir.path()).len(), 300);
    let report = recorder.stop();
    assert_eq!(report.records, 300);
    assert!(report.syncs >= 1);
}

/// A payload whose `Serialize` fails for odd values and panics for 13.
#[derive(Debug, Clone)]
struct Picky(u64);

impl serde::Serialize for Picky {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        assert!(self.0 != 13, "Picky(13) panics");
        if self.0 % 2 == 1 {
            return Err(serde::ser::Error::custom("odd"));
        }
        s.serialize_u64(self.0)
    }
}

impl evbus_core::Event for Picky {
    type Kind = Kind;
    fn kind(&self) -> Kind {
        Kind::Placed
    }
}

#[test]
fn records_that_cannot_be_encoded_are_counted_and_the_rest_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::<Envelope<Picky>>::new();
    let journal = Journal::create(dir.path(), JournalOptions::new()).unwrap();
    let recorder = Recorder::start(&bus, journal).unwrap();
    for i in 0..20 {
        bus.publish(Envelope::new(Picky(i))).unwrap();
    }
    assert!(matches!(
        recorder.flush(),
        Err(evbus_journal::Error::RecordsLost { count: 10 })
    ));
    let got: Vec<u64> = recorder
        .reader(Start::Beginning)
        .unwrap()
        .map(|r| r.unwrap().payload::<u64>().unwrap())
        .collect();
    assert_eq!(got, (0..20).step_by(2).collect::<Vec<_>>());
    let report = recorder.stop();
    assert_eq!((report.records, report.errors), (10, 10));
    assert!(report.first_error.is_some());
}

#[test]
fn stopping_while_publishers_wait_on_a_full_ring_releases_them() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::<Envelope<Order>>::new();
    let journal = Journal::create(dir.path(), JournalOptions::new()).unwrap();
    let recorder = Recorder::start_with(&bus, journal, RecorderOptions::new().capacity(2)).unwrap();
    let publishers: Vec<_> = (0..2)
        .map(|_| {
            let mut publisher = bus.publisher();
            thread::spawn(move || {
                for i in 0..5000 {
                    publisher.publish(order(i)).unwrap();
                }
            })
        })
        .collect();
    let report = recorder.stop();
    for p in publishers {
        p.join().unwrap();
    }
    // Everything the recorder took before it stopped is in the journal.
    assert_eq!(payloads(dir.path()).len() as u64, report.records);
    assert_eq!(report.errors, 0);
}
