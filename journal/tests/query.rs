//! Indexes and queries: index-assisted starts equal full scans, time-range
//! queries skip segments, correlation lookups read only matching frames,
//! and sidecars that are missing, damaged or stale are rebuilt.

use std::{fs, path::Path};

use evbus_core::{Envelope, EventId, Pattern, Timestamp};
use evbus_journal::{
    Journal, JournalOptions, Query, QueryStats, Reader, Record, Start, SyncPolicy,
};

mod common;

/// A small deterministic generator (no timed or random-seeded behaviour).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn options() -> JournalOptions {
    JournalOptions::new()
        .sync(SyncPolicy::Never)
        .segment_size(64 << 10)
}

const TOPICS: [&str; 3] = ["orders.placed", "orders.shipped", "users.new"];

/// Record `i`: a topic, a session and tenant by residue, and `time`.
fn envelope(i: u64, time: u64, correlation: EventId) -> Envelope<u64> {
    let mut e = Envelope::on(TOPICS[(i % 3) as usize], i)
        .unwrap()
        .with_time(Timestamp::from_nanos(time))
        .with_correlation_id(correlation);
    if i.is_multiple_of(4) {
        e = e.with_session("s-1");
    }
    if i.is_multiple_of(5) {
        e = e.with_tenant("acme");
    }
    e
}

fn all(dir: &Path) -> Vec<Record> {
    Reader::open(dir, Start::Beginning)
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn seqs(it: impl Iterator<Item = evbus_journal::Result<Record>>) -> Vec<u64> {
    it.map(|r| r.unwrap().seq()).collect()
}

fn segment_files(dir: &Path, ext: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

/// Writes `n` records with times that wander (not monotonic).
fn wandering(dir: &Path, n: u64) -> Journal {
    let mut j = Journal::create(dir, options()).unwrap();
    let mut rng = Lcg(7);
    let ids: Vec<EventId> = (0..8).map(|_| EventId::new()).collect();
    let envs: Vec<_> = (0..n)
        .map(|i| {
            let time = 1_000_000 + i * 100 + rng.below(5_000);
            envelope(i, time, ids[rng.below(8) as usize])
        })
        .collect();
    for chunk in envs.chunks(37) {
        j.append_batch(chunk).unwrap();
    }
    j
}

/// What a reader from `start` must return, from the full list.
fn expected(records: &[Record], start: Start) -> Vec<u64> {
    let from = match start {
        Start::Beginning => 0,
        Start::Seq(n) => records
            .iter()
            .position(|r| r.seq() >= n)
            .unwrap_or(records.len()),
        Start::Time(t) => records
            .iter()
            .position(|r| r.time() >= t)
            .unwrap_or(records.len()),
        Start::End => records.len(),
    };
    records[from..].iter().map(Record::seq).collect()
}

fn check_starts(dir: &Path, j: Option<&Journal>, records: &[Record], seed: u64) {
    let mut rng = Lcg(seed);
    let last_time = records.iter().map(|r| r.time().as_nanos()).max().unwrap();
    let n = records.len() as u64;
    let mut starts = vec![
        Start::Seq(0),
        Start::Seq(n - 1),
        Start::Seq(n),
        Start::Seq(n + 10),
        Start::Time(Timestamp::from_nanos(0)),
        Start::Time(Timestamp::from_nanos(last_time)),
        Start::Time(Timestamp::from_nanos(last_time + 1)),
    ];
    for _ in 0..40 {
        starts.push(Start::Seq(rng.below(n)));
        starts.push(Start::Time(Timestamp::from_nanos(
            1_000_000 + rng.below(last_time - 1_000_000),
        )));
    }
    for start in starts {
        let got = match j {
            Some(j) => seqs(j.reader(start).unwrap()),
            None => seqs(Reader::open(dir, start).unwrap()),
        };
        assert_eq!(got, expected(records, start), "{start:?}");
    }
}

#[test]
fn index_assisted_starts_equal_full_scans() {
    let dir = tempfile::tempdir().unwrap();
    let j = wandering(dir.path(), 3_000);
    assert!(segment_files(dir.path(), "seg").len() >= 4);
    let records = all(dir.path());
    assert_eq!(records.len(), 3_000);
    // In process (active segment indexed in memory), and from another
    // reader (sidecars; the last segment scanned).
    check_starts(dir.path(), Some(&j), &records, 1);
    check_starts(dir.path(), None, &records, 2);
    // The start is found through the index: the reader is positioned in the
    // target's segment, at most one block (128 records) before it, not at
    // the segment's first frame. (Another process scans the growing last
    // segment, which has no index while the writer runs.)
    for target in [&records[1_000], &records[2_999]] {
        let mut readers = vec![j.reader(Start::Seq(target.seq())).unwrap()];
        if target.position().segment != j.end().segment {
            readers.push(Reader::open(dir.path(), Start::Seq(target.seq())).unwrap());
        }
        for reader in readers {
            let at = reader.next_position();
            assert_eq!(at.segment, target.position().segment);
            assert!(at.offset <= target.position().offset);
            let before = records
                .iter()
                .filter(|r| r.position().segment == at.segment && r.position().offset >= at.offset)
                .take_while(|r| r.seq() < target.seq())
                .count();
            assert!(before < 128, "{before} records before {}", target.seq());
        }
    }
    drop(j);
    // Every segment has its sidecar (sealed ones on their roll, the last
    // one on close).
    assert_eq!(
        segment_files(dir.path(), "idx").len(),
        segment_files(dir.path(), "seg").len()
    );
    // Without sidecars: rebuilt by scanning.
    for p in segment_files(dir.path(), "idx") {
        fs::remove_file(p).unwrap();
    }
    check_starts(dir.path(), None, &records, 3);
    let j = Journal::open(dir.path(), options()).unwrap();
    check_starts(dir.path(), Some(&j), &records, 4);
}

/// Records with increasing times: record `i` at `1_000 * (i + 1)`.
fn monotonic(dir: &Path, n: u64, correlations: &[EventId]) -> Journal {
    let mut j = Journal::create(dir, options()).unwrap();
    let envs: Vec<_> = (0..n)
        .map(|i| {
            envelope(
                i,
                1_000 * (i + 1),
                correlations[(i % 7) as usize % correlations.len()],
            )
        })
        .collect();
    for chunk in envs.chunks(50) {
        j.append_batch(chunk).unwrap();
    }
    j
}

fn run(dir: &Path, j: Option<&Journal>, q: &Query) -> (Vec<u64>, QueryStats) {
    let mut it = match j {
        Some(j) => j.query(q).unwrap(),
        None => Query::run(dir, q).unwrap(),
    };
    let got = seqs(&mut it);
    (got, it.stats())
}

fn brute(records: &[Record], q: &Query) -> Vec<u64> {
    records
        .iter()
        .filter(|r| q.matches(r))
        .map(Record::seq)
        .collect()
}

#[test]
fn a_time_range_query_opens_only_the_segments_in_its_range() {
    let dir = tempfile::tempdir().unwrap();
    let j = monotonic(dir.path(), 4_000, &[EventId::new()]);
    let records = all(dir.path());
    let segs = segment_files(dir.path(), "seg");
    assert!(segs.len() >= 5);
    let total: u64 = segs.iter().map(|p| fs::metadata(p).unwrap().len()).sum();
    // A range inside the second segment.
    let second: Vec<&Record> = records
        .iter()
        .filter(|r| r.position().segment == records[0].position().segment)
        .collect();
    let first_len = second.len() as u64;
    let from = Timestamp::from_nanos(1_000 * (first_len + 10));
    let to = Timestamp::from_nanos(1_000 * (first_len + 60));
    let q = Query::new().time_range(from, to);
    // While the writer runs, another process cannot know the times of the
    // growing last segment: it scans it. Once the writer closed, its
    // sidecar stands for it.
    let (got, stats) = run(dir.path(), None, &q);
    assert_eq!(got, brute(&records, &q));
    assert_eq!(stats.segments_opened, 2, "{stats:?}");
    let mut j = Some(j);
    for label in ["in process", "read-only, writer closed"] {
        let (got, stats) = run(dir.path(), j.as_ref(), &q);
        j = None;
        assert_eq!(got, brute(&records, &q), "{label}");
        assert_eq!(got.len(), 50, "{label}");
        assert_eq!(stats.segments_opened, 1, "{label}: {stats:?}");
        assert_eq!(
            stats.segments_skipped as usize,
            segs.len() - 1,
            "{label}: {stats:?}"
        );
        assert_eq!(stats.indexes_rebuilt, 0, "{label}");
        // Only the blocks around the range: far less than the journal.
        assert!(
            stats.bytes_read * 20 < total,
            "{label}: {stats:?} of {total}"
        );
        assert_eq!(stats.records_matched, 50);
    }
    // An empty range opens nothing.
    let q = Query::new().time_range(Timestamp::from_nanos(0), Timestamp::from_nanos(1_000));
    let (got, stats) = run(dir.path(), None, &q);
    assert!(got.is_empty());
    assert_eq!(stats.segments_opened, 0, "{stats:?}");
}

#[test]
fn every_filter_agrees_with_a_full_scan() {
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<EventId> = (0..5).map(|_| EventId::new()).collect();
    let j = monotonic(dir.path(), 2_500, &ids);
    let records = all(dir.path());
    let queries = [
        Query::new(),
        Query::new().pattern(Pattern::parse("orders.*").unwrap()),
        Query::new()
            .pattern(Pattern::parse(">").unwrap())
            .session("s-1"),
        Query::new().tenant("acme").start_seq(777),
        Query::new().start_seq(1_234).limit(10),
        Query::new().correlation(ids[2]).tenant("acme"),
        Query::new()
            .correlation(ids[1])
            .from(Timestamp::from_nanos(900_000))
            .until(Timestamp::from_nanos(2_000_000)),
        Query::new().from(Timestamp::from_nanos(2_400_000)),
        Query::new()
            .until(Timestamp::from_nanos(50_000))
            .pattern(Pattern::parse("users.new").unwrap()),
    ];
    for q in &queries {
        let mut want = brute(&records, q);
        // `matches` does not count; the limit is the iterator's.
        if format!("{q:?}").contains("limit: Some(10)") {
            want.truncate(10);
        }
        assert_eq!(run(dir.path(), Some(&j), q).0, want, "{q:?}");
        assert_eq!(run(dir.path(), None, q).0, want, "{q:?}");
    }
    // A start sequence number skips the segments before it unopened.
    let (_, stats) = run(dir.path(), None, &Query::new().start_seq(2_400));
    assert_eq!(stats.segments_opened, 1, "{stats:?}");
}

#[test]
fn correlation_queries_read_only_matching_frames() {
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<EventId> = (0..7).map(|_| EventId::new()).collect();
    // One rare id: records 100, 1_500 and 3_100 (three segments).
    let rare = EventId::new();
    let mut j = Journal::create(dir.path(), options()).unwrap();
    for i in 0..3_500u64 {
        let c = if matches!(i, 100 | 1_500 | 3_100) {
            rare
        } else {
            ids[(i % 7) as usize]
        };
        j.append(&envelope(i, 1_000 * (i + 1), c)).unwrap();
    }
    let records = all(dir.path());
    let q = Query::new().correlation(rare);
    let check = |label: &str, journal: Option<&Journal>| -> QueryStats {
        let (got, stats) = run(dir.path(), journal, &q);
        assert_eq!(got, [100, 1_500, 3_100], "{label}");
        // Three frames read, not the journal.
        assert_eq!(stats.records_read, 3, "{label}: {stats:?}");
        stats
    };
    let live = check("in process", Some(&j));
    assert_eq!(live.indexes_rebuilt, 0);
    // Every correlation id, exactly.
    for &id in &ids {
        let q = Query::new().correlation(id);
        assert_eq!(run(dir.path(), Some(&j), &q).0, brute(&records, &q));
    }
    drop(j);
    // After reopen: from the sidecars.
    let stats = check("read-only", None);
    assert_eq!(stats.indexes_rebuilt, 0);
    assert!(stats.index_bytes_read > 0);
    let j = Journal::open(dir.path(), options()).unwrap();
    check("reopened", Some(&j));
    drop(j);

    let idx = segment_files(dir.path(), "idx");
    // A deleted sidecar is rebuilt (in memory, read-only)...
    fs::remove_file(&idx[0]).unwrap();
    let stats = check("deleted sidecar", None);
    assert_eq!(stats.indexes_rebuilt, 1, "{stats:?}");
    assert!(!idx[0].exists());
    // ...and written back by the writer's process.
    let j = Journal::open(dir.path(), options()).unwrap();
    check("deleted sidecar, writer", Some(&j));
    assert!(idx[0].exists());
    drop(j);
    let stats = check("rewritten", None);
    assert_eq!(stats.indexes_rebuilt, 0);
}

/// Damages `path` with `f`, then checks that queries and starts still
/// return exactly the full scan's answers (the sidecar is rebuilt, never
/// trusted).
fn damaged_sidecar_is_rebuilt(label: &str, f: impl Fn(&Path, &Path)) {
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<EventId> = (0..3).map(|_| EventId::new()).collect();
    let j = monotonic(dir.path(), 3_000, &ids);
    drop(j);
    let records = all(dir.path());
    let idx = segment_files(dir.path(), "idx");
    f(&idx[1], &idx[2]);
    let q = Query::new().correlation(ids[1]);
    let (got, stats) = run(dir.path(), None, &q);
    assert_eq!(got, brute(&records, &q), "{label}");
    assert_eq!(stats.indexes_rebuilt, 1, "{label}: {stats:?}");
    let seg2 = records
        .iter()
        .find(|r| r.position().segment > records[0].position().segment)
        .unwrap();
    let q = Query::new().time_range(
        seg2.time(),
        Timestamp::from_nanos(seg2.time().as_nanos() + 5_000),
    );
    assert_eq!(run(dir.path(), None, &q).0, brute(&records, &q), "{label}");
    check_starts(dir.path(), None, &records, 9);
}

#[test]
fn a_damaged_sidecar_is_rebuilt_never_trusted() {
    damaged_sidecar_is_rebuilt("flipped byte in the correlation table", |p, _| {
        let mut b = fs::read(p).unwrap();
        let n = b.len();
        b[n - 3] ^= 0x10;
        fs::write(p, b).unwrap();
    });
    damaged_sidecar_is_rebuilt("flipped byte in the header", |p, _| {
        let mut b = fs::read(p).unwrap();
        b[50] ^= 0x01;
        fs::write(p, b).unwrap();
    });
    damaged_sidecar_is_rebuilt("flipped byte in the block table", |p, _| {
        let mut b = fs::read(p).unwrap();
        b[120] ^= 0x01;
        fs::write(p, b).unwrap();
    });
    damaged_sidecar_is_rebuilt("truncated", |p, _| {
        let b = fs::read(p).unwrap();
        fs::write(p, &b[..b.len() / 2]).unwrap();
    });
    damaged_sidecar_is_rebuilt("garbage", |p, _| {
        fs::write(p, vec![0xAB; 4096]).unwrap();
    });
    damaged_sidecar_is_rebuilt("another segment's sidecar", |p, other| {
        fs::copy(other, p).unwrap();
    });
}

#[test]
fn a_stale_sidecar_is_rebuilt() {
    // The segment changed after it was indexed (here: a frame appended
    // behind the index's back, as a repair or a copy could do).
    let dir = tempfile::tempdir().unwrap();
    let ids = [EventId::new()];
    let j = monotonic(dir.path(), 3_000, &ids);
    drop(j);
    let segs = segment_files(dir.path(), "seg");
    let idx = segment_files(dir.path(), "idx");
    let before = all(dir.path());
    // Cut the first segment's last frame: its records change, its sidecar
    // is stale.
    let first_seg: Vec<&Record> = before
        .iter()
        .filter(|r| r.position().segment == 0)
        .collect();
    let last = first_seg.last().unwrap();
    let f = fs::OpenOptions::new().write(true).open(&segs[0]).unwrap();
    f.set_len(last.position().offset).unwrap();
    drop(f);
    assert!(idx[0].exists());
    let q = Query::new().correlation(ids[0]);
    let (got, stats) = run(dir.path(), None, &q);
    assert!(!got.contains(&last.seq()));
    assert_eq!(got.len(), before.len() - 1);
    assert_eq!(stats.indexes_rebuilt, 1, "{stats:?}");
}

#[test]
fn queries_see_records_appended_to_the_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let id = EventId::new();
    let mut j = Journal::create(dir.path(), options()).unwrap();
    for i in 0..10 {
        j.append(&envelope(i, 1_000 * (i + 1), id)).unwrap();
    }
    let q = Query::new().correlation(id).start_seq(5);
    assert_eq!(run(dir.path(), Some(&j), &q).0, [5, 6, 7, 8, 9]);
    j.append(&envelope(10, 11_000, id)).unwrap();
    assert_eq!(run(dir.path(), Some(&j), &q).0, [5, 6, 7, 8, 9, 10]);
    // A reader from another process scans the growing last segment.
    assert_eq!(run(dir.path(), None, &q).0, [5, 6, 7, 8, 9, 10]);
    // The latest time there is has no upper bound to fall outside of.
    j.append(&envelope(11, u64::MAX, id)).unwrap();
    let q = Query::new().from(Timestamp::from_nanos(u64::MAX - 1));
    assert_eq!(run(dir.path(), Some(&j), &q).0, [11]);
    drop(j);
    assert_eq!(run(dir.path(), None, &q).0, [11]);
}

#[test]
fn the_writer_removes_sidecar_temporaries_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let j = monotonic(dir.path(), 10, &[EventId::new()]);
    drop(j);
    let tmp = dir.path().join("00000000000000000000.idx.123-4.tmp");
    fs::write(&tmp, b"half a sidecar").unwrap();
    let _j = Journal::open(dir.path(), options()).unwrap();
    assert!(!tmp.exists());
    assert!(dir.path().join("00000000000000000000.idx").exists());
}

#[test]
fn a_recorder_answers_queries_while_it_records() {
    use evbus_core::Bus;
    use evbus_journal::Recorder;
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::create(dir.path(), options()).unwrap();
    let bus: Bus<Envelope<common::Order>> = Bus::new();
    let recorder = Recorder::start(&bus, j).unwrap();
    let mut publisher = bus.publisher();
    let root = common::order(0);
    publisher.publish(root.clone()).unwrap();
    for i in 1..100 {
        let e = if i % 10 == 0 {
            root.caused(common::Order {
                shipped: true,
                n: i,
                note: String::new(),
            })
        } else {
            common::order(i)
        };
        publisher.publish(e).unwrap();
    }
    recorder.flush().unwrap();
    let q = Query::new().correlation(root.correlation_id());
    let got: Vec<u64> = recorder
        .query(&q)
        .unwrap()
        .map(|r| r.unwrap().payload::<common::Order>().unwrap().n)
        .collect();
    assert_eq!(got, [0, 10, 20, 30, 40, 50, 60, 70, 80, 90]);
    recorder.stop();
}
