//! Tailers: follow appends as they happen, woken by the writer.

mod common;

use std::{sync::mpsc, thread, time::Duration};

use common::{Order, order};
use evbus_core::{Bus, Envelope, Timestamp};
use evbus_journal::{Journal, JournalOptions, Recorder, Start, SyncPolicy, TailError};

fn journal(dir: &std::path::Path) -> Journal {
    Journal::create(
        dir,
        JournalOptions::new()
            .sync(SyncPolicy::Never)
            .segment_size(4096),
    )
    .unwrap()
}

#[test]
fn smoke() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = journal(dir.path());
    j.append(&order(0)).unwrap();
    let mut t = j.tailer(Start::Beginning).unwrap();
    assert_eq!(t.try_next().unwrap().seq(), 0);
    assert!(matches!(t.try_next(), Err(TailError::Empty)));
    j.append(&order(1)).unwrap();
    let r = t.try_next().unwrap();
    assert_eq!(r.seq(), 1);
    assert_eq!(r.payload::<Order>().unwrap().n, 1);
    drop(j);
    assert!(matches!(t.try_next(), Err(TailError::Closed)));
    assert!(t.next().is_none());
}

#[test]
fn follows_a_writer_across_segments_in_another_thread() {
    const N: u64 = 2000;
    let dir = tempfile::tempdir().unwrap();
    let mut j = journal(dir.path());
    let t = j.tailer(Start::Beginning).unwrap();
    let reader = thread::spawn(move || {
        t.map(|r| r.unwrap().payload::<Order>().unwrap().n)
            .collect::<Vec<_>>()
    });
    for n in 0..N {
        j.append(&order(n)).unwrap();
    }
    drop(j); // the tailer ends after the last record
    assert_eq!(reader.join().unwrap(), (0..N).collect::<Vec<_>>());
}

#[test]
fn a_blocked_tailer_wakes_for_the_next_record_and_for_the_close() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = journal(dir.path());
    let mut t = j.tailer(Start::End).unwrap();
    let (ready, waiting) = mpsc::channel();
    let tailer = thread::spawn(move || {
        ready.send(()).unwrap();
        let first = t.next_blocking().unwrap().seq();
        ready.send(()).unwrap();
        let end = t.next_blocking();
        (first, matches!(end, Err(TailError::Closed)))
    });
    waiting.recv().unwrap();
    j.append(&order(0)).unwrap();
    waiting.recv().unwrap();
    drop(j);
    assert_eq!(tailer.join().unwrap(), (0, true));
}

#[test]
fn filters_by_pattern() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = journal(dir.path());
    let mut t = j
        .tailer(Start::Beginning)
        .unwrap()
        .pattern("orders.shipped")
        .unwrap();
    for n in 0..10 {
        j.append(&order(n)).unwrap(); // odd n: shipped
    }
    drop(j);
    let seen: Vec<u64> = t.by_ref().map(|r| r.unwrap().seq()).collect();
    assert_eq!(seen, [1, 3, 5, 7, 9]);
}

#[test]
fn a_bad_pattern_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let j = journal(dir.path());
    assert!(matches!(
        j.tailer(Start::Beginning).unwrap().pattern("a..b"),
        Err(evbus_journal::Error::Subscribe(_))
    ));
}

#[test]
fn next_timeout_reports_a_timeout_without_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = journal(dir.path());
    let mut t = j.tailer(Start::Beginning).unwrap();
    assert!(matches!(
        t.next_timeout(Duration::ZERO),
        Err(TailError::Timeout)
    ));
    j.append(&order(0)).unwrap();
    assert_eq!(t.next_timeout(Duration::MAX).unwrap().seq(), 0);
}

#[test]
fn a_time_start_past_every_record_waits_instead_of_spinning() {
    // The reader skips records before the time without moving its
    // sequence number; the tailer must still wait for a *new* commit.
    let dir = tempfile::tempdir().unwrap();
    let mut j = journal(dir.path());
    for n in 0..3 {
        j.append(&order(n).with_time(Timestamp::from_nanos(10 + n)))
            .unwrap();
    }
    let mut t = j.tailer(Start::Time(Timestamp::from_nanos(100))).unwrap();
    assert!(matches!(t.try_next(), Err(TailError::Empty)));
    assert!(matches!(
        t.next_timeout(Duration::ZERO),
        Err(TailError::Timeout)
    ));
    let (ready, waiting) = mpsc::channel();
    let tailer = thread::spawn(move || {
        ready.send(()).unwrap();
        t.next_blocking().unwrap().seq()
    });
    waiting.recv().unwrap();
    j.append(&order(9).with_time(Timestamp::from_nanos(200)))
        .unwrap();
    assert_eq!(tailer.join().unwrap(), 3);
}

#[test]
fn a_recorder_tailer_sees_what_the_bus_publishes() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::<Envelope<Order>>::new();
    let rec = Recorder::start(&bus, journal(dir.path())).unwrap();
    let t = rec.tailer(Start::Beginning).unwrap();
    let reader = thread::spawn(move || {
        t.map(|r| r.unwrap().payload::<Order>().unwrap().n)
            .collect::<Vec<_>>()
    });
    for n in 0..100 {
        bus.publish(order(n)).unwrap();
    }
    rec.stop();
    assert_eq!(reader.join().unwrap(), (0..100).collect::<Vec<_>>());
}

#[test]
fn start_end_and_seq() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = journal(dir.path());
    for n in 0..5 {
        j.append(&order(n)).unwrap();
    }
    let mut from_end = j.tailer(Start::End).unwrap();
    let mut from_3 = j.tailer(Start::Seq(3)).unwrap();
    let mut ahead = j.tailer(Start::Seq(6)).unwrap();
    j.append(&order(5)).unwrap();
    j.append(&order(6)).unwrap();
    drop(j);
    let seqs = |t: &mut evbus_journal::Tailer| t.map(|r| r.unwrap().seq()).collect::<Vec<_>>();
    assert_eq!(seqs(&mut from_end), [5, 6]);
    assert_eq!(seqs(&mut from_3), [3, 4, 5, 6]);
    assert_eq!(seqs(&mut ahead), [6]);
}
