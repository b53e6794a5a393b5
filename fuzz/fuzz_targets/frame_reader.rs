//! Fuzzes the journal's frame reader, recovery and repair: arbitrary bytes
//! as one segment file, or as a directory of two, then read, open (which
//! cuts a torn tail), read again, append, and repair.
//!
//! Checked on every input:
//! - nothing panics;
//! - every record a reader returns is a frame on disk at the record's
//!   position whose CRC32C matches its body, whose body starts with the
//!   record's sequence number and ends with its payload; sequence numbers
//!   strictly increase;
//! - work is bounded: a reader returns at most one record per smallest
//!   frame's worth of bytes, and ends (`None`) after an error;
//! - after a successful open, an acknowledged append reads back.
//!
//! Input: a flags byte, then the files.
//! - bit 0 clear: the rest is segment `00000000000000000000.seg`;
//! - bit 0 set: the next two bytes (`u16`, little-endian) are the length of
//!   the first segment (`0….seg`), the rest is the second, named after the
//!   first sequence number its header claims (bytes 12..20; 1 when the file
//!   is shorter or the claim is 0);
//! - bit 1: the writer and repair opened with a 4 KiB maximum frame size
//!   instead of the default 16 MiB (readers take it from each header).
//!
//! The seed corpus (`corpus/frame_reader/`) holds real segments written by
//! the journal: both codecs, every metadata field, rolled segments, torn
//! tails and flipped bytes.

#![no_main]

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    sync::OnceLock,
};

use evbus_core::Envelope;
use evbus_journal::{
    Journal, JournalOptions, Reader, Start, SyncPolicy,
    format::{FRAME_HEADER_LEN, MIN_BODY_LEN},
};
use libfuzzer_sys::fuzz_target;

/// A directory of this process for the files (fuzzing runs one input at a
/// time per process).
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("evbus-fuzz-frame-reader-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("scratch dir");
        dir
    })
}

fn seg_name(first_seq: u64) -> String {
    format!("{first_seq:020}.seg")
}

/// Empties the scratch directory and writes `files` (first seq → bytes).
fn lay_out(dir: &Path, files: &BTreeMap<u64, Vec<u8>>) {
    for entry in fs::read_dir(dir).expect("read scratch dir") {
        let path = entry.expect("scratch entry").path();
        if path.is_dir() {
            fs::remove_dir_all(&path).expect("remove");
        } else {
            fs::remove_file(&path).expect("remove");
        }
    }
    for (first, bytes) in files {
        fs::write(dir.join(seg_name(*first)), bytes).expect("write segment");
    }
}

/// The segment files on disk now.
fn on_disk(dir: &Path) -> BTreeMap<u64, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in fs::read_dir(dir).expect("read scratch dir") {
        let entry = entry.expect("scratch entry");
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(stem) = name.strip_suffix(".seg")
            && stem.len() == 20
            && let Ok(first) = stem.parse::<u64>()
        {
            files.insert(first, fs::read(entry.path()).expect("read segment"));
        }
    }
    files
}

/// Drains `reader`, checking each record against `files`; returns the
/// records read.
fn drain(mut reader: Reader, files: &BTreeMap<u64, Vec<u8>>, extra: usize) -> u64 {
    let total: usize = files.values().map(Vec::len).sum();
    let bound = (total / (FRAME_HEADER_LEN as usize + MIN_BODY_LEN as usize)) as u64 + extra as u64;
    let mut count = 0u64;
    let mut last: Option<u64> = None;
    while let Some(item) = reader.next() {
        match item {
            Ok(record) => {
                count += 1;
                assert!(
                    count <= bound,
                    "more records ({count}) than bytes allow ({bound})"
                );
                let pos = record.position();
                let file = files
                    .get(&pos.segment)
                    .unwrap_or_else(|| panic!("record in a segment that does not exist: {pos:?}"));
                let at = usize::try_from(pos.offset).expect("offset");
                let header = file
                    .get(at..at + 8)
                    .unwrap_or_else(|| panic!("record past the end of its segment: {pos:?}"));
                let len = u32::from_le_bytes(header[0..4].try_into().unwrap()) as usize;
                let crc = u32::from_le_bytes(header[4..8].try_into().unwrap());
                let body = file
                    .get(at + 8..at + 8 + len)
                    .unwrap_or_else(|| panic!("record body past the end: {pos:?}"));
                assert_eq!(
                    crc32c::crc32c(body),
                    crc,
                    "a record whose CRC does not match"
                );
                assert_eq!(
                    &body[0..8],
                    &record.seq().to_le_bytes(),
                    "seq differs from the body"
                );
                assert!(
                    body.ends_with(record.payload_bytes()),
                    "payload is not the body's tail"
                );
                if let Some(prev) = last {
                    assert!(record.seq() > prev, "seq {} after {prev}", record.seq());
                }
                last = Some(record.seq());
                // The accessors never panic.
                let _ = (record.topic(), record.tags().count(), record.replay());
                let _ = record.payload::<serde_json::Value>();
            }
            Err(e) => {
                let _ = e.to_string();
                assert!(reader.next().is_none(), "a reader went on after an error");
                break;
            }
        }
    }
    count
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut files = BTreeMap::new();
    if flags & 1 == 0 {
        files.insert(0, rest.to_vec());
    } else {
        let Some((split, rest)) = rest.split_first_chunk::<2>() else {
            return;
        };
        let split = usize::from(u16::from_le_bytes(*split)).min(rest.len());
        let (a, b) = rest.split_at(split);
        let claimed = b
            .get(12..20)
            .map_or(0, |s| u64::from_le_bytes(s.try_into().unwrap()));
        files.insert(0, a.to_vec());
        files.insert(if claimed == 0 { 1 } else { claimed }, b.to_vec());
    }
    let max_frame = if flags & 2 != 0 { 4096 } else { 16 << 20 };
    let options = JournalOptions::new()
        .sync(SyncPolicy::Never)
        .max_frame_size(max_frame);
    let dir = scratch();

    // 1. Readers of another process: the files as they are.
    lay_out(dir, &files);
    for start in [Start::Beginning, Start::Seq(3), Start::End] {
        if let Ok(reader) = Reader::open(dir, start) {
            drain(reader, &files, 0);
        }
    }

    // 2. Open (recovery), read, append, read again.
    if let Ok(mut journal) = Journal::open(dir, options.clone()) {
        let now = on_disk(dir);
        let next = journal.next_seq();
        if let Ok(reader) = journal.reader(Start::Beginning) {
            drain(reader, &now, 0);
        }
        let e = Envelope::on("fuzz.append", 7u32).expect("topic");
        // An error is allowed (typed); an acknowledged append must read back.
        if let Ok(seq) = journal.append(&e) {
            assert_eq!(seq, next);
            let now = on_disk(dir);
            if let Ok(mut reader) = journal.reader(Start::Seq(seq)) {
                let record = reader
                    .next()
                    .expect("the appended record")
                    .expect("the appended record reads back");
                assert_eq!(record.seq(), seq);
                assert_eq!(record.topic(), "fuzz.append");
            }
            if let Ok(reader) = journal.reader(Start::Beginning) {
                drain(reader, &now, 1);
            }
        }
        drop(journal);
    }

    // 3. Repair the original files, then read.
    lay_out(dir, &files);
    if Journal::repair(dir, options).is_ok() {
        let now = on_disk(dir);
        if let Ok(reader) = Reader::open(dir, Start::Beginning) {
            drain(reader, &now, 0);
        }
    }
});
