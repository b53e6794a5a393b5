//! Idempotency: records whose key was appended within the window are not
//! appended again, within a batch, across segments and across reopen.

use std::{path::Path, time::Duration};

use evbus_core::{Bus, Envelope, Timestamp};
use evbus_journal::{
    Appended, Duplicate, IdempotencyWindow, Journal, JournalOptions, Reader, Recorder, Start,
    SyncPolicy,
};

mod common;
use common::{Order, order};

fn options(window: IdempotencyWindow) -> JournalOptions {
    JournalOptions::new()
        .sync(SyncPolicy::Never)
        .segment_size(4 << 10)
        .idempotency(window)
}

/// Record `n` with key `key` at `ms` milliseconds.
fn keyed(n: u64, key: &str, ms: u64) -> Envelope<u64> {
    Envelope::on("payments.captured", n)
        .unwrap()
        .with_idempotency_key(key)
        .with_time(Timestamp::from_nanos(ms * 1_000_000))
}

fn payloads(dir: &Path) -> Vec<(u64, u64)> {
    Reader::open(dir, Start::Beginning)
        .unwrap()
        .map(|r| {
            let r = r.unwrap();
            (r.seq(), r.payload::<u64>().unwrap())
        })
        .collect()
}

#[test]
fn a_duplicate_within_the_record_window_is_not_appended() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::create(dir.path(), options(IdempotencyWindow::new().records(3))).unwrap();
    assert_eq!(
        j.append_outcome(&keyed(0, "a", 0)).unwrap(),
        Appended::New(0)
    );
    assert_eq!(
        j.append_outcome(&keyed(1, "a", 0)).unwrap(),
        Appended::Duplicate { original_seq: 0 }
    );
    // `append` returns the original's sequence number for a duplicate.
    assert_eq!(j.append(&keyed(2, "a", 0)).unwrap(), 0);
    // Records without a key are never duplicates.
    let plain = Envelope::on("payments.captured", 3u64).unwrap();
    assert_eq!(j.append(&plain).unwrap(), 1);
    assert_eq!(j.append(&plain).unwrap(), 2);
    assert_eq!(j.next_seq(), 3);
    assert_eq!(j.duplicates(), 2);
    // Seq 0 is 3 records back from 3: still inside; from 4 on, outside.
    assert_eq!(
        j.append_outcome(&keyed(4, "a", 0)).unwrap(),
        Appended::Duplicate { original_seq: 0 }
    );
    assert_eq!(j.append(&Envelope::on("x.y", 5u64).unwrap()).unwrap(), 3);
    assert_eq!(
        j.append_outcome(&keyed(6, "a", 0)).unwrap(),
        Appended::New(4)
    );
    assert_eq!(
        payloads(dir.path()),
        [(0, 0), (1, 3), (2, 3), (3, 5), (4, 6)]
    );
}

#[test]
fn duplicates_in_a_batch_are_listed_and_seqs_stay_gapless() {
    let dir = tempfile::tempdir().unwrap();
    let mut j =
        Journal::create(dir.path(), options(IdempotencyWindow::new().records(100))).unwrap();
    j.append(&keyed(0, "a", 0)).unwrap();
    let batch = [
        keyed(1, "b", 0),
        keyed(2, "a", 0),
        keyed(3, "c", 0),
        keyed(4, "b", 0),
        keyed(5, "d", 0),
    ];
    let out = j.append_batch_outcome(&batch).unwrap();
    assert_eq!(out.seqs, 1..4);
    assert_eq!(
        out.duplicates,
        [
            Duplicate {
                index: 1,
                original_seq: 0
            },
            Duplicate {
                index: 3,
                original_seq: 1
            },
        ]
    );
    // `append_batch` keeps its shape: the range of the new records.
    assert_eq!(j.append_batch(&batch).unwrap(), 4..4);
    assert_eq!(payloads(dir.path()), [(0, 0), (1, 1), (2, 3), (3, 5)]);
}

#[test]
fn the_time_window_uses_record_times() {
    let dir = tempfile::tempdir().unwrap();
    let window = IdempotencyWindow::new().time(Duration::from_millis(100));
    let mut j = Journal::create(dir.path(), options(window)).unwrap();
    assert_eq!(j.append(&keyed(0, "a", 1_000)).unwrap(), 0);
    // 100 ms later: inside.
    assert!(
        j.append_outcome(&keyed(1, "a", 1_100))
            .unwrap()
            .is_duplicate()
    );
    // Another record moves the window's "now" past it.
    assert_eq!(j.append(&keyed(2, "b", 1_101)).unwrap(), 1);
    assert_eq!(
        j.append_outcome(&keyed(3, "a", 1_050)).unwrap(),
        Appended::New(2)
    );
    assert_eq!(j.duplicates(), 1);
}

#[test]
fn both_bounds_must_hold() {
    let dir = tempfile::tempdir().unwrap();
    let window = IdempotencyWindow::new()
        .records(1_000)
        .time(Duration::from_millis(10));
    let mut j = Journal::create(dir.path(), options(window)).unwrap();
    j.append(&keyed(0, "a", 0)).unwrap();
    assert!(j.append_outcome(&keyed(1, "a", 10)).unwrap().is_duplicate());
    assert!(!j.append_outcome(&keyed(2, "a", 11)).unwrap().is_duplicate());
}

#[test]
fn the_window_survives_reopen_and_segment_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let window = IdempotencyWindow::new().records(500);
    let mut j = Journal::create(dir.path(), options(window)).unwrap();
    for i in 0..1_000u64 {
        assert_eq!(j.append(&keyed(i, &format!("k{i}"), i)).unwrap(), i);
    }
    assert!(j.end().segment > 0);
    drop(j);
    let mut j = Journal::open(dir.path(), options(window)).unwrap();
    // Inside the window (the last 500 records): duplicates, across
    // segments.
    for i in [999u64, 750, 500] {
        assert_eq!(
            j.append_outcome(&keyed(0, &format!("k{i}"), 2_000))
                .unwrap(),
            Appended::Duplicate { original_seq: i },
            "k{i}"
        );
    }
    assert_eq!(j.next_seq(), 1_000);
    // Outside: appended.
    assert_eq!(
        j.append_outcome(&keyed(0, "k499", 2_000)).unwrap(),
        Appended::New(1_000)
    );
    drop(j);
    // The time window too.
    let window = IdempotencyWindow::new().time(Duration::from_millis(300));
    let mut j = Journal::open(dir.path(), options(window)).unwrap();
    // The newest time is 2 000 ms (record 1 000): keys from 1 700 ms on.
    assert!(
        j.append_outcome(&keyed(0, "k499", 2_000))
            .unwrap()
            .is_duplicate()
    );
    assert!(
        !j.append_outcome(&keyed(0, "k999", 2_000))
            .unwrap()
            .is_duplicate()
    );
    drop(j);
    // Off: everything is appended.
    let mut j = Journal::open(dir.path(), options(IdempotencyWindow::new())).unwrap();
    assert!(!j.append_outcome(&keyed(0, "k1", 0)).unwrap().is_duplicate());
}

#[test]
fn a_zero_record_window_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let err =
        Journal::create(dir.path(), options(IdempotencyWindow::new().records(0))).unwrap_err();
    assert!(
        matches!(err, evbus_journal::Error::InvalidOptions { .. }),
        "{err}"
    );
}

#[test]
fn the_recorder_counts_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::create(dir.path(), options(IdempotencyWindow::new().records(100))).unwrap();
    let bus: Bus<Envelope<Order>> = Bus::new();
    let recorder = Recorder::start(&bus, j).unwrap();
    let mut publisher = bus.publisher();
    for i in 0..10u64 {
        // Every key twice.
        let e = order(i).with_idempotency_key(&format!("k{}", i / 2));
        publisher.publish(e).unwrap();
    }
    recorder.flush().unwrap();
    let report = recorder.stop();
    assert_eq!(report.records, 5);
    assert_eq!(report.duplicates, 5);
    assert_eq!(report.errors, 0);
    let got: Vec<u64> = Reader::open(dir.path(), Start::Beginning)
        .unwrap()
        .map(|r| r.unwrap().payload::<Order>().unwrap().n)
        .collect();
    assert_eq!(got, [0, 2, 4, 6, 8]);
}

#[test]
fn a_failed_batch_counts_no_duplicate_and_forgets_its_keys() {
    let dir = tempfile::tempdir().unwrap();
    let mut j =
        Journal::create(dir.path(), options(IdempotencyWindow::new().records(100))).unwrap();
    j.append(&keyed(0, "a", 0)).unwrap();
    // A key too long for the format fails the batch before anything is
    // written.
    let long = "x".repeat(70_000);
    let batch = [keyed(1, "a", 0), keyed(2, "b", 0), keyed(3, &long, 0)];
    assert!(matches!(
        j.append_batch_outcome(&batch),
        Err(evbus_journal::Error::FieldTooLong { .. })
    ));
    assert_eq!(j.duplicates(), 0);
    assert_eq!(j.next_seq(), 1);
    // "b" did not land, so it is not a duplicate now.
    assert_eq!(
        j.append_outcome(&keyed(2, "b", 0)).unwrap(),
        Appended::New(1)
    );
    assert!(j.append_outcome(&keyed(1, "a", 0)).unwrap().is_duplicate());
    assert_eq!(j.duplicates(), 1);
}

#[test]
fn the_recorder_retries_around_a_bad_record_without_recounting() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::create(dir.path(), options(IdempotencyWindow::new().records(100))).unwrap();
    let bus: Bus<Envelope<Order>> = Bus::new();
    let recorder = Recorder::start(&bus, j).unwrap();
    let mut publisher = bus.publisher();
    let long = "x".repeat(70_000);
    for (n, key) in [(0, "a"), (1, "a"), (2, long.as_str()), (3, "b"), (4, "b")] {
        publisher
            .publish(order(n).with_idempotency_key(key))
            .unwrap();
    }
    recorder.flush().unwrap_err();
    let report = recorder.stop();
    assert_eq!(report.records, 2);
    assert_eq!(report.duplicates, 2);
    assert_eq!(report.errors, 1);
    let got: Vec<u64> = Reader::open(dir.path(), Start::Beginning)
        .unwrap()
        .map(|r| r.unwrap().payload::<Order>().unwrap().n)
        .collect();
    assert_eq!(got, [0, 3]);
}
