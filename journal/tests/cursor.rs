//! Durable cursors: a consumer resumes after the last record it
//! acknowledged.

mod common;

use std::{sync::mpsc, thread};

use common::{Order, order};
use evbus_core::{Bus, Envelope};
use evbus_journal::{
    Cursor, Error, Journal, JournalOptions, Recorder, Start, SyncPolicy, TailError,
};

fn journal(dir: &std::path::Path) -> Journal {
    Journal::open(
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
    let j = journal(dir.path());
    let mut c = j.cursor("billing").unwrap();
    assert_eq!(c.name(), "billing");
    assert_eq!((c.acked(), c.start()), (None, Start::Beginning));
    c.ack(4).unwrap();
    assert_eq!((c.acked(), c.start()), (Some(4), Start::Seq(5)));
    c.ack(2).unwrap(); // never moves back
    assert_eq!(c.acked(), Some(4));
    drop(c);
    let mut c = Cursor::open(dir.path(), "billing").unwrap();
    assert_eq!(c.acked(), Some(4));
    c.reset(None).unwrap();
    drop(c);
    assert_eq!(Cursor::open(dir.path(), "billing").unwrap().acked(), None);
}

/// A consumer processes records from a tailer and acknowledges some; it
/// "crashes" (drops everything without acknowledging the rest); the next
/// one resumes right after the last acknowledged record: at-least-once,
/// nothing skipped.
#[test]
fn a_crashed_consumer_resumes_after_its_last_ack() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::<Envelope<Order>>::new();
    let rec = Recorder::start(&bus, journal(dir.path())).unwrap();
    for n in 0..100 {
        bus.publish(order(n)).unwrap();
    }
    rec.flush().unwrap();

    let mut processed = Vec::new();
    {
        let mut cursor = rec.cursor("worker").unwrap();
        let mut t = rec.tailer_from(&cursor).unwrap();
        for _ in 0..40 {
            let r = t.try_next().unwrap();
            processed.push(r.payload::<Order>().unwrap().n);
            if r.seq() % 10 == 4 {
                cursor.ack(r.seq()).unwrap();
            }
        }
        // Crash: records 35..=39 were processed, not acknowledged.
    }
    let cursor = rec.cursor("worker").unwrap();
    assert_eq!(cursor.acked(), Some(34));
    let mut t = rec.tailer_from(&cursor).unwrap();
    for n in 100..110 {
        bus.publish(order(n)).unwrap();
    }
    rec.stop();
    let rest: Vec<u64> = t
        .by_ref()
        .map(|r| r.unwrap().payload::<Order>().unwrap().n)
        .collect();
    assert_eq!(rest, (35..110).collect::<Vec<_>>());
    // Everything was seen at least once; 35..40 twice.
    processed.extend(rest);
    processed.sort_unstable();
    processed.dedup();
    assert_eq!(processed, (0..110).collect::<Vec<_>>());
    // A cross-process reader from the cursor, after the writer is gone.
    let seqs: Vec<u64> = cursor.reader().unwrap().map(|r| r.unwrap().seq()).collect();
    assert_eq!(seqs, (35..110).collect::<Vec<_>>());
}

#[test]
fn a_journal_tailer_from_a_cursor_waits_for_new_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = journal(dir.path());
    j.append(&order(0)).unwrap();
    let mut c = j.cursor("c").unwrap();
    c.ack(0).unwrap();
    let mut t = j.tailer_from(&c).unwrap();
    assert!(matches!(t.try_next(), Err(TailError::Empty)));
    let (ready, waiting) = mpsc::channel();
    let h = thread::spawn(move || {
        ready.send(()).unwrap();
        t.next().map(|r| r.unwrap().seq())
    });
    waiting.recv().unwrap();
    j.append(&order(1)).unwrap();
    assert_eq!(h.join().unwrap(), Some(1));
}

#[test]
fn one_consumer_per_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let j = journal(dir.path());
    let a = j.cursor("x").unwrap();
    assert!(matches!(j.cursor("x"), Err(Error::Locked { .. })));
    let _other = j.cursor("y").unwrap();
    drop(a);
    j.cursor("x").unwrap();
}

#[test]
fn invalid_names_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let long = "n".repeat(evbus_journal::MAX_CURSOR_NAME + 1);
    for name in [
        "",
        "a/b",
        "../up",
        "a\\b",
        ".hidden",
        "sp ace",
        long.as_str(),
    ] {
        assert!(
            matches!(
                Cursor::open(dir.path(), name),
                Err(Error::InvalidCursorName { .. })
            ),
            "{name:?}"
        );
    }
    // Nothing was created outside the cursors directory.
    assert!(!dir.path().parent().unwrap().join("up.cursor").exists());
}

#[test]
fn a_damaged_cursor_file_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cursor::open(dir.path(), "d").unwrap();
    c.ack(7).unwrap();
    drop(c);
    let path = dir.path().join("cursors").join("d.cursor");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[13] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        Cursor::open(dir.path(), "d"),
        Err(Error::BadCursor { .. })
    ));
    std::fs::write(&path, &bytes[..5]).unwrap();
    assert!(matches!(
        Cursor::open(dir.path(), "d"),
        Err(Error::BadCursor { .. })
    ));
}

#[test]
fn a_leftover_temp_file_from_a_crashed_ack_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cursor::open(dir.path(), "t").unwrap();
    c.ack(3).unwrap();
    drop(c);
    // A crash between writing the temp file and the rename.
    std::fs::write(dir.path().join("cursors").join("t.cursor.tmp"), b"garbage").unwrap();
    let mut c = Cursor::open(dir.path(), "t").unwrap();
    assert_eq!(c.acked(), Some(3));
    c.ack(4).unwrap();
    drop(c);
    assert_eq!(Cursor::open(dir.path(), "t").unwrap().acked(), Some(4));
}

#[test]
fn cursors_do_not_disturb_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = journal(dir.path());
    j.append(&order(0)).unwrap();
    j.cursor("c").unwrap().ack(0).unwrap();
    j.close().unwrap();
    let mut j = journal(dir.path());
    assert_eq!(j.next_seq(), 1);
    j.append(&order(1)).unwrap();
    let c = j.cursor("c").unwrap();
    let seqs: Vec<u64> = j
        .reader(c.start())
        .unwrap()
        .map(|r| r.unwrap().seq())
        .collect();
    assert_eq!(seqs, [1]);
}
