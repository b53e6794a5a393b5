//! The writer and readers: round trips, segments, starts, locking, headers.

mod common;

use std::fs;

use common::{Order, order};
use evbus_core::{Envelope, EventId, ReplayMark, Timestamp};
use evbus_journal::{
    Codec, Error, Journal, JournalOptions, Reader, Record, Start, SyncPolicy, format,
};

fn seqs(reader: impl Iterator<Item = evbus_journal::Result<Record>>) -> Vec<u64> {
    reader.map(|r| r.unwrap().seq()).collect()
}

fn full_envelope() -> Envelope<Order> {
    let root = order(1);
    root.caused(Order {
        shipped: false,
        n: 2,
        note: "ünïcode ✓".into(),
    })
    .with_session("s-1")
    .with_source("svc-a")
    .with_tenant("acme")
    .with_tag("x")
    .with_tag("y")
    .with_idempotency_key("key-9")
    .with_time(Timestamp::from_nanos(123_456_789))
    .with_replay_mark(Some(ReplayMark {
        dry_run: false,
        recorded_seq: 77,
    }))
}

fn check_fields(r: &Record, e: &Envelope<Order>, seq: u64) {
    assert_eq!(r.seq(), seq);
    assert_eq!(r.time(), e.time());
    assert_eq!(r.topic(), e.topic());
    assert_eq!(r.id(), e.id());
    assert_eq!(r.correlation_id(), e.correlation_id());
    assert_eq!(r.causation_id(), e.causation_id());
    assert_eq!(r.session_id(), e.session_id());
    assert_eq!(r.source(), e.source());
    assert_eq!(r.tenant(), e.tenant());
    assert_eq!(r.tags().collect::<Vec<_>>(), e.tags().collect::<Vec<_>>());
    assert_eq!(r.idempotency_key(), e.idempotency_key());
    assert_eq!(r.replay(), e.replay());
    assert_eq!(&r.envelope::<Order>().unwrap(), e);
}

#[test]
fn round_trip_every_field_with_both_codecs() {
    for codec in [Codec::Postcard, Codec::Json] {
        let dir = tempfile::tempdir().unwrap();
        let full = full_envelope();
        let bare = Envelope::on("a.b", full.payload().clone()).unwrap();
        let dry = bare.clone().with_replay_mark(Some(ReplayMark {
            dry_run: true,
            recorded_seq: 3,
        }));
        {
            let mut j = Journal::create(dir.path(), JournalOptions::new().codec(codec)).unwrap();
            assert_eq!(j.append(&full).unwrap(), 0);
            assert_eq!(j.append_batch([&bare, &dry]).unwrap(), 1..3);
            j.close().unwrap();
        }
        let records: Vec<Record> = Reader::open(dir.path(), Start::Beginning)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(records.len(), 3);
        check_fields(&records[0], &full, 0);
        check_fields(&records[1], &bare, 1);
        check_fields(&records[2], &dry, 2);
        assert_eq!(records[0].codec(), codec);
        if codec == Codec::Json {
            let text = std::str::from_utf8(records[0].payload_bytes()).unwrap();
            assert!(text.contains("ünïcode ✓"), "{text}");
        }
        // Reopening appends after the existing records, with the stored codec.
        let mut j = Journal::open(dir.path(), JournalOptions::new()).unwrap();
        assert_eq!(j.codec(), codec);
        assert_eq!(j.next_seq(), 3);
        assert_eq!(j.open_report().truncated, None);
        assert_eq!(j.append(&bare).unwrap(), 3);
    }
}

#[test]
fn a_wrong_payload_type_is_a_decode_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::create(dir.path(), JournalOptions::new().codec(Codec::Json)).unwrap();
    j.append(&order(1)).unwrap();
    let r = j.reader(Start::Beginning).unwrap().next().unwrap().unwrap();
    assert!(matches!(
        r.payload::<u64>(),
        Err(Error::Decode { seq: 0, .. })
    ));
}

fn small_segments() -> JournalOptions {
    JournalOptions::new()
        .segment_size(600)
        .sync(SyncPolicy::Never)
}

#[test]
fn segments_roll_and_readers_cross_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::create(dir.path(), small_segments()).unwrap();
    let envs: Vec<_> = (0..50).map(order).collect();
    for chunk in envs.chunks(7) {
        j.append_batch(chunk).unwrap();
    }
    let segments: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".seg"))
        .collect();
    assert!(segments.len() > 3, "{segments:?}");
    for name in &segments {
        assert_eq!(name.len(), 24, "{name}");
        let len = fs::metadata(dir.path().join(name)).unwrap().len();
        // One frame may exceed the limit only if it is alone in its segment.
        assert!(len <= 600, "{name}: {len}");
    }
    let in_process: Vec<_> = j
        .reader(Start::Beginning)
        .unwrap()
        .map(|r| r.unwrap().payload::<Order>().unwrap().n)
        .collect();
    assert_eq!(in_process, (0..50).collect::<Vec<_>>());
    assert_eq!(
        seqs(Reader::open(dir.path(), Start::Beginning).unwrap()),
        (0..50).collect::<Vec<_>>()
    );
    drop(j);
    let mut j = Journal::open(dir.path(), small_segments()).unwrap();
    assert_eq!(j.next_seq(), 50);
    assert_eq!(j.append(&order(50)).unwrap(), 50);
    assert_eq!(seqs(j.reader(Start::Beginning).unwrap()).len(), 51);
}

#[test]
fn every_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::create(dir.path(), small_segments()).unwrap();
    let envs: Vec<_> = (0..30u64)
        .map(|n| order(n).with_time(Timestamp::from_nanos(1000 + n * 10)))
        .collect();
    j.append_batch(&envs).unwrap();
    for (start, expected) in [
        (Start::Beginning, (0..30).collect::<Vec<u64>>()),
        (Start::Seq(0), (0..30).collect()),
        (Start::Seq(17), (17..30).collect()),
        (Start::Seq(29), vec![29]),
        (Start::Seq(30), vec![]),
        (Start::Seq(1000), vec![]),
        (Start::Time(Timestamp::from_nanos(0)), (0..30).collect()),
        (Start::Time(Timestamp::from_nanos(1125)), (13..30).collect()),
        (Start::Time(Timestamp::from_nanos(1130)), (13..30).collect()),
        (Start::Time(Timestamp::from_nanos(99_999)), vec![]),
        (Start::End, vec![]),
    ] {
        assert_eq!(
            seqs(j.reader(start).unwrap()),
            expected,
            "in-process {start:?}"
        );
        assert_eq!(
            seqs(Reader::open(dir.path(), start).unwrap()),
            expected,
            "cross-process {start:?}"
        );
    }
    // End, then appends: the reader sees exactly the new records.
    let mut in_proc = j.reader(Start::End).unwrap();
    let mut cross = Reader::open(dir.path(), Start::End).unwrap();
    assert!(in_proc.next().is_none());
    j.append_batch(&envs[..3]).unwrap();
    assert_eq!(seqs(in_proc), vec![30, 31, 32]);
    assert_eq!(seqs(cross.by_ref()), vec![30, 31, 32]);
    assert!(cross.next().is_none());
}

#[test]
fn a_reader_follows_appends_across_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::create(dir.path(), small_segments()).unwrap();
    let mut in_proc = j.reader(Start::Beginning).unwrap();
    let mut cross = Reader::open(dir.path(), Start::Beginning).unwrap();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for n in 0..40 {
        j.append(&order(n)).unwrap();
        if n % 3 == 0 {
            a.extend(in_proc.by_ref().map(|r| r.unwrap().seq()));
            b.extend(cross.by_ref().map(|r| r.unwrap().seq()));
        }
    }
    a.extend(in_proc.map(|r| r.unwrap().seq()));
    b.extend(cross.map(|r| r.unwrap().seq()));
    assert_eq!(a, (0..40).collect::<Vec<_>>());
    assert_eq!(b, a);
}

#[test]
fn a_second_writer_gets_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::create(dir.path(), JournalOptions::new()).unwrap();
    assert!(matches!(
        Journal::open(dir.path(), JournalOptions::new()),
        Err(Error::Locked { .. })
    ));
    assert!(matches!(
        Journal::repair(dir.path(), JournalOptions::new()),
        Err(Error::Locked { .. })
    ));
    drop(j);
    assert!(matches!(
        Journal::create(dir.path(), JournalOptions::new()),
        Err(Error::AlreadyExists { .. })
    ));
    assert!(matches!(
        Journal::open(dir.path(), JournalOptions::new().codec(Codec::Json)),
        Err(Error::CodecMismatch {
            requested: Codec::Json,
            found: Codec::Postcard
        })
    ));
    Journal::open(dir.path(), JournalOptions::new()).unwrap();
}

#[test]
fn bad_options_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    for opts in [
        JournalOptions::new().sync(SyncPolicy::EveryRecords(0)),
        JournalOptions::new().max_frame_size(10),
    ] {
        assert!(matches!(
            Journal::open(dir.path(), opts),
            Err(Error::InvalidOptions { .. })
        ));
    }
}

#[test]
fn bad_headers_are_typed_errors() {
    let first = |dir: &std::path::Path| dir.join(format!("{:020}.seg", 0));
    let make = || {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::create(dir.path(), JournalOptions::new()).unwrap();
        j.append(&order(0)).unwrap();
        drop(j);
        dir
    };
    let patch = |at: usize, bytes: &[u8], fix_crc: bool| {
        let dir = make();
        let path = first(dir.path());
        let mut data = fs::read(&path).unwrap();
        data[at..at + bytes.len()].copy_from_slice(bytes);
        if fix_crc {
            let crc = crc32c_of(&data[..32]);
            data[32..36].copy_from_slice(&crc.to_le_bytes());
        }
        fs::write(&path, data).unwrap();
        dir
    };
    let open = |dir: &tempfile::TempDir| {
        (
            Journal::open(dir.path(), JournalOptions::new()).map(drop),
            Reader::open(dir.path(), Start::Beginning).map(drop),
        )
    };
    let dir = patch(0, b"NOTAJRNL", false);
    assert!(matches!(
        open(&dir),
        (Err(Error::BadMagic { .. }), Err(Error::BadMagic { .. }))
    ));
    let dir = patch(8, &7u16.to_le_bytes(), true);
    assert!(matches!(
        open(&dir),
        (
            Err(Error::UnsupportedVersion { version: 7, .. }),
            Err(Error::UnsupportedVersion { version: 7, .. })
        )
    ));
    let dir = patch(10, &[9], true);
    assert!(matches!(
        open(&dir),
        (
            Err(Error::UnknownCodec { id: 9, .. }),
            Err(Error::UnknownCodec { id: 9, .. })
        )
    ));
    let dir = patch(12, &3u32.to_le_bytes(), true);
    assert!(matches!(
        open(&dir),
        (Err(Error::BadHeader { .. }), Err(Error::BadHeader { .. }))
    ));
    let dir = patch(16, &5u64.to_le_bytes(), true);
    assert!(matches!(
        open(&dir),
        (Err(Error::BadHeader { .. }), Err(Error::BadHeader { .. }))
    ));
    let dir = patch(16, &5u64.to_le_bytes(), false);
    assert!(matches!(
        open(&dir),
        (Err(Error::BadHeader { .. }), Err(Error::BadHeader { .. }))
    ));
    assert_eq!(format::MAGIC, *b"EVBJRNL\0");
}

/// CRC32C, bitwise (independent of the crate's), for patched headers.
fn crc32c_of(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn the_frame_limit_comes_from_the_segment_header() {
    let big = Envelope::on("a.b", "x".repeat(10_000)).unwrap();
    let small = JournalOptions::new().max_frame_size(1000);
    // A journal made with the small limit refuses the big frame, typed.
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::create(dir.path(), small.clone()).unwrap();
    assert!(matches!(
        j.append(&big),
        Err(Error::FrameTooLarge { max: 1000, .. })
    ));
    assert_eq!(j.append(&order(1)).unwrap(), 0);
    drop(j);
    // Reopened with a larger limit, the segment keeps its own until the
    // next segment.
    let mut j = Journal::open(dir.path(), JournalOptions::new()).unwrap();
    assert!(matches!(
        j.append(&big),
        Err(Error::FrameTooLarge { max: 1000, .. })
    ));
    drop(j);

    // A big frame written under the default limit...
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::create(dir.path(), JournalOptions::new()).unwrap();
    j.append(&big).unwrap();
    drop(j);
    // ...is not taken for damage when reopened with a smaller limit, which
    // then applies to new appends.
    let mut j = Journal::open(dir.path(), small).unwrap();
    assert_eq!(j.open_report().truncated, None);
    assert!(matches!(
        j.append(&big),
        Err(Error::FrameTooLarge { max: 1000, .. })
    ));
    assert_eq!(j.append(&order(1)).unwrap(), 1);
    drop(j);
    let records = seqs(Reader::open(dir.path(), Start::Beginning).unwrap());
    assert_eq!(records, vec![0, 1]);
}

#[test]
fn ids_survive_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::create(dir.path(), JournalOptions::new()).unwrap();
    let id = EventId::from_bytes([0xAB; 16]);
    let e = order(5).with_id(id).with_correlation_id(id);
    j.append(&e).unwrap();
    let r = j.reader(Start::Beginning).unwrap().next().unwrap().unwrap();
    assert_eq!((r.id(), r.correlation_id()), (id, id));
}

#[test]
fn sync_policies_sync_when_they_say() {
    let e = order(1);
    let batch: Vec<_> = (0..10).map(order).collect();
    let count = |policy, appends: &dyn Fn(&mut Journal)| {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::create(dir.path(), JournalOptions::new().sync(policy)).unwrap();
        appends(&mut j);
        let before_flush = j.syncs();
        j.flush().unwrap();
        (before_flush, j.syncs())
    };
    let singles = |j: &mut Journal| {
        for _ in 0..10 {
            j.append(&e).unwrap();
        }
    };
    let one_batch = |j: &mut Journal| {
        j.append_batch(&batch).unwrap();
    };
    // Always: one sync per append, and one per batch (group commit).
    assert_eq!(count(SyncPolicy::Always, &singles), (10, 10));
    assert_eq!(count(SyncPolicy::Always, &one_batch), (1, 1));
    // Every 3 records: after the 3rd, 6th and 9th; flush syncs the 10th.
    assert_eq!(count(SyncPolicy::EveryRecords(3), &singles), (3, 4));
    assert_eq!(count(SyncPolicy::EveryRecords(3), &one_batch), (1, 1));
    // A long interval: nothing until the flush.
    let hour = std::time::Duration::from_secs(3600);
    assert_eq!(count(SyncPolicy::Interval(hour), &singles), (0, 1));
    // Never: not even then.
    assert_eq!(count(SyncPolicy::Never, &singles), (0, 0));
}
