//! Recovery after a crash: torn tails, corruption in the middle, repair.

mod common;

use std::{fs, path::Path};

use common::{Order, Rng, order};
use evbus_journal::{
    Error, Journal, JournalOptions, Reader, Record, Start, SyncPolicy, Truncation,
};

fn seg(dir: &Path, first: u64) -> std::path::PathBuf {
    dir.join(format!("{first:020}.seg"))
}

fn records(dir: &Path) -> Vec<Record> {
    Reader::open(dir, Start::Beginning)
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn seqs_of(rs: &[Record]) -> Vec<u64> {
    rs.iter().map(Record::seq).collect()
}

/// A closed journal with `n` records in one segment; returns each frame's
/// offset and the file length.
fn written(dir: &Path, n: u64, opts: JournalOptions) -> (Vec<u64>, u64) {
    let mut j = Journal::create(dir, opts).unwrap();
    for i in 0..n {
        j.append(&order(i)).unwrap();
    }
    drop(j);
    let offsets = records(dir).iter().map(|r| r.position().offset).collect();
    (offsets, fs::metadata(seg(dir, 0)).unwrap().len())
}

#[test]
fn a_torn_tail_is_cut_at_every_byte_of_the_last_frame() {
    let src = tempfile::tempdir().unwrap();
    let (offsets, len) = written(src.path(), 5, JournalOptions::new().sync(SyncPolicy::Never));
    let last = offsets[4];
    let bytes = fs::read(seg(src.path(), 0)).unwrap();
    for cut in last..len {
        let dir = tempfile::tempdir().unwrap();
        let path = seg(dir.path(), 0);
        fs::write(&path, &bytes[..cut as usize]).unwrap();
        // A reader before recovery stops at the last complete frame.
        assert_eq!(seqs_of(&records(dir.path())), vec![0, 1, 2, 3], "cut {cut}");
        let mut j = Journal::open(dir.path(), JournalOptions::new()).unwrap();
        let expected = (cut > last).then(|| Truncation {
            segment: path.clone(),
            offset: last,
            bytes: cut - last,
        });
        assert_eq!(j.open_report().truncated, expected, "cut {cut}");
        assert_eq!(fs::metadata(&path).unwrap().len(), last);
        assert_eq!(j.next_seq(), 4);
        let got: Vec<_> = j
            .reader(Start::Beginning)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(seqs_of(&got), vec![0, 1, 2, 3]);
        for (i, r) in got.iter().enumerate() {
            assert_eq!(r.payload::<Order>().unwrap().n, i as u64);
        }
        // Appending goes on where the valid frames end.
        assert_eq!(j.append(&order(9)).unwrap(), 4);
        drop(j);
        assert_eq!(seqs_of(&records(dir.path())), vec![0, 1, 2, 3, 4]);
    }
}

#[test]
fn garbage_and_zeros_after_the_last_frame_are_a_torn_tail() {
    for tail in [
        vec![0u8; 4096],
        vec![0xFF; 100],
        b"\x40\x00\x00\x00garbage".to_vec(),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (offsets, len) = written(dir.path(), 3, JournalOptions::new());
        let _ = offsets;
        let path = seg(dir.path(), 0);
        let mut bytes = fs::read(&path).unwrap();
        bytes.extend_from_slice(&tail);
        fs::write(&path, bytes).unwrap();
        let j = Journal::open(dir.path(), JournalOptions::new()).unwrap();
        assert_eq!(
            j.open_report().truncated,
            Some(Truncation {
                segment: path,
                offset: len,
                bytes: tail.len() as u64
            })
        );
        assert_eq!(j.next_seq(), 3);
    }
}

#[test]
fn a_reader_waits_out_a_frame_being_written_by_another_process() {
    let src = tempfile::tempdir().unwrap();
    let (offsets, len) = written(src.path(), 3, JournalOptions::new());
    let bytes = fs::read(seg(src.path(), 0)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = seg(dir.path(), 0);
    let middle = (offsets[2] + 11) as usize;
    fs::write(&path, &bytes[..middle]).unwrap();
    let mut reader = Reader::open(dir.path(), Start::Beginning).unwrap();
    assert_eq!(
        reader
            .by_ref()
            .map(|r| r.unwrap().seq())
            .collect::<Vec<_>>(),
        vec![0, 1]
    );
    assert!(reader.next().is_none());
    // The rest of the write lands.
    fs::write(&path, &bytes[..len as usize]).unwrap();
    assert_eq!(reader.next().unwrap().unwrap().seq(), 2);
    assert!(reader.next().is_none());
}

#[test]
fn a_torn_segment_header_is_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let opts = JournalOptions::new().segment_size(300);
    let mut j = Journal::create(dir.path(), opts.clone()).unwrap();
    for i in 0..6 {
        j.append(&order(i)).unwrap();
    }
    let next = j.next_seq();
    drop(j);
    // A crash while a new segment's header was being written.
    let torn = seg(dir.path(), next);
    fs::write(&torn, b"EVBJ").unwrap();
    let mut j = Journal::open(dir.path(), opts).unwrap();
    assert_eq!(
        j.open_report().truncated,
        Some(Truncation {
            segment: torn,
            offset: 0,
            bytes: 4
        })
    );
    assert_eq!(j.next_seq(), next);
    assert_eq!(j.append(&order(next)).unwrap(), next);
    drop(j);
    assert_eq!(
        seqs_of(&records(dir.path())),
        (0..=next).collect::<Vec<_>>()
    );
}

/// Flips one byte at `frame offset + at` of record 2 of 5.
fn flipped(at: u64) -> (tempfile::TempDir, Vec<u64>) {
    let dir = tempfile::tempdir().unwrap();
    let (offsets, _) = written(dir.path(), 5, JournalOptions::new());
    let path = seg(dir.path(), 0);
    let mut bytes = fs::read(&path).unwrap();
    bytes[(offsets[2] + at) as usize] ^= 0x10;
    fs::write(&path, bytes).unwrap();
    (dir, offsets)
}

#[test]
fn a_flipped_byte_in_the_middle_is_corrupt_and_repair_skips_it() {
    // In the length, the CRC, the sequence number, the topic, the payload.
    for at in [0, 2, 5, 9, 60, 70] {
        let (dir, offsets) = flipped(at);
        let path = seg(dir.path(), 0);
        match Journal::open(dir.path(), JournalOptions::new()) {
            Err(Error::Corrupt {
                segment, offset, ..
            }) => assert_eq!((segment, offset), (path.clone(), offsets[2]), "at {at}"),
            other => panic!("at {at}: {other:?}"),
        }
        let mut reader = Reader::open(dir.path(), Start::Beginning).unwrap();
        assert_eq!(reader.next().unwrap().unwrap().seq(), 0);
        assert_eq!(reader.next().unwrap().unwrap().seq(), 1);
        match reader.next() {
            Some(Err(Error::Corrupt { offset, .. })) => assert_eq!(offset, offsets[2]),
            other => panic!("at {at}: {other:?}"),
        }
        assert!(reader.next().is_none());

        let report = Journal::repair(dir.path(), JournalOptions::new()).unwrap();
        assert_eq!(report.truncated, None);
        assert_eq!(report.skipped.len(), 1, "at {at}: {report:?}");
        let s = &report.skipped[0];
        assert_eq!(
            (&s.segment, s.offset, s.bytes),
            (&path, offsets[2], offsets[3] - offsets[2])
        );
        // The records around the damage remain, with a gap.
        assert_eq!(seqs_of(&records(dir.path())), vec![0, 1, 3, 4]);
        let mut j = Journal::open(dir.path(), JournalOptions::new()).unwrap();
        assert_eq!(j.append(&order(5)).unwrap(), 5);
        // A second repair finds nothing.
        drop(j);
        let again = Journal::repair(dir.path(), JournalOptions::new()).unwrap();
        assert!(again.skipped.is_empty() && again.truncated.is_none());
    }
}

#[test]
fn corruption_in_an_older_segment_is_reported_by_readers_and_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let opts = JournalOptions::new().segment_size(400);
    let mut j = Journal::create(dir.path(), opts.clone()).unwrap();
    for i in 0..12 {
        j.append(&order(i)).unwrap();
    }
    drop(j);
    let all = records(dir.path());
    // The second record of the first segment.
    let victim = &all[1];
    assert_eq!(victim.position().segment, 0);
    let path = seg(dir.path(), 0);
    let mut bytes = fs::read(&path).unwrap();
    bytes[victim.position().offset as usize + 20] ^= 1;
    fs::write(&path, bytes).unwrap();
    // Opening scans only the last segment.
    drop(Journal::open(dir.path(), opts.clone()).unwrap());
    let got: Vec<_> = Reader::open(dir.path(), Start::Beginning)
        .unwrap()
        .collect();
    assert_eq!(got.len(), 2);
    assert!(
        matches!(&got[1], Err(Error::Corrupt { segment, offset, .. })
        if *segment == path && *offset == victim.position().offset)
    );
    let report = Journal::repair(dir.path(), opts).unwrap();
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.skipped[0].offset, victim.position().offset);
    let expected: Vec<u64> = (0..12).filter(|&s| s != 1).collect();
    assert_eq!(seqs_of(&records(dir.path())), expected);
}

#[test]
fn a_damaged_length_never_allocates_or_loops() {
    for len in [u32::MAX, 0, 1, 16 << 20] {
        let dir = tempfile::tempdir().unwrap();
        let (offsets, _) = written(dir.path(), 4, JournalOptions::new());
        let path = seg(dir.path(), 0);
        let mut bytes = fs::read(&path).unwrap();
        let at = offsets[1] as usize;
        bytes[at..at + 4].copy_from_slice(&len.to_le_bytes());
        fs::write(&path, bytes).unwrap();
        assert!(matches!(
            Journal::open(dir.path(), JournalOptions::new()),
            Err(Error::Corrupt { offset, .. }) if offset == offsets[1]
        ));
        let report = Journal::repair(dir.path(), JournalOptions::new()).unwrap();
        assert_eq!(report.skipped.len(), 1);
        assert_eq!(seqs_of(&records(dir.path())), vec![0, 2, 3]);
    }
}

/// Random damage (flipped bytes, overwritten runs, cuts, garbage tails) to
/// a two-segment journal: opening, reading and repairing never panic, and
/// every record any of them returns is one that was written, unchanged.
#[test]
fn random_damage_never_yields_a_record_that_was_not_written() {
    let src = tempfile::tempdir().unwrap();
    let opts = JournalOptions::new().segment_size(1500);
    let mut j = Journal::create(src.path(), opts.clone()).unwrap();
    for i in 0..40 {
        j.append(&order(i).with_tag("t")).unwrap();
    }
    drop(j);
    let originals = records(src.path());
    let files: Vec<_> = fs::read_dir(src.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    assert!(files.len() >= 2);
    let check = |got: &Record| {
        let want = &originals[got.seq() as usize];
        assert_eq!(got.id(), want.id());
        assert_eq!(got.payload_bytes(), want.payload_bytes());
        assert_eq!(got.tags().collect::<Vec<_>>(), ["t"]);
    };
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for round in 0..200 {
        let dir = tempfile::tempdir().unwrap();
        for f in &files {
            fs::copy(f, dir.path().join(f.file_name().unwrap())).unwrap();
        }
        let victim = dir.path().join(
            files[rng.below(files.len() as u64) as usize]
                .file_name()
                .unwrap(),
        );
        let mut bytes = fs::read(&victim).unwrap();
        let len = bytes.len() as u64;
        match rng.below(4) {
            0 => {
                for _ in 0..=rng.below(3) {
                    let at = 36 + rng.below(len - 36) as usize;
                    bytes[at] ^= 1 << rng.below(8);
                }
            }
            1 => {
                let at = 36 + rng.below(len - 36) as usize;
                let n = (rng.below(64) as usize).min(bytes.len() - at);
                for b in &mut bytes[at..at + n] {
                    *b = rng.next() as u8;
                }
            }
            2 => bytes.truncate(36 + rng.below(len - 36) as usize),
            _ => bytes.extend((0..rng.below(200)).map(|_| rng.next() as u8)),
        }
        fs::write(&victim, bytes).unwrap();
        let read_all = |dir: &Path| {
            let mut seqs = Vec::new();
            for r in Reader::open(dir, Start::Beginning).unwrap() {
                match r {
                    Ok(r) => {
                        check(&r);
                        seqs.push(r.seq());
                    }
                    Err(e) => assert!(matches!(e, Error::Corrupt { .. }), "round {round}: {e}"),
                }
            }
            seqs
        };
        read_all(dir.path());
        match Journal::open(dir.path(), opts.clone()) {
            Ok(j) => drop(j),
            Err(e) => assert!(matches!(e, Error::Corrupt { .. }), "round {round}: {e}"),
        }
        Journal::repair(dir.path(), opts.clone()).unwrap();
        // After a repair, the journal opens and reads without an error.
        let j = Journal::open(dir.path(), opts.clone()).unwrap();
        let seqs = read_all(dir.path());
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "round {round}: {seqs:?}"
        );
        for r in j.reader(Start::Beginning).unwrap() {
            check(&r.unwrap());
        }
    }
}
