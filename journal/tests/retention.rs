//! Retention: whole sealed segments deleted oldest first, by size, age or
//! record count, with their sidecars; never the active segment.

use std::{fs, path::Path, time::Duration};

use evbus_core::{Envelope, Timestamp};
use evbus_journal::{Journal, JournalOptions, Reader, Retention, Start, SyncPolicy};

fn options(retention: Retention) -> JournalOptions {
    JournalOptions::new()
        .sync(SyncPolicy::Never)
        .segment_size(8 << 10)
        .retention(retention)
}

/// Record `i` at time `1_000_000 * (i + 1)` ns.
fn envelope(i: u64) -> Envelope<u64> {
    Envelope::on("orders.placed", i)
        .unwrap()
        .with_time(Timestamp::from_nanos(1_000_000 * (i + 1)))
}

fn files(dir: &Path, ext: &str) -> Vec<u64> {
    let mut v: Vec<u64> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .map(|p| p.file_stem().unwrap().to_str().unwrap().parse().unwrap())
        .collect();
    v.sort_unstable();
    v
}

fn seqs(dir: &Path) -> Vec<u64> {
    Reader::open(dir, Start::Beginning)
        .unwrap()
        .map(|r| r.unwrap().seq())
        .collect()
}

fn fill(j: &mut Journal, range: std::ops::Range<u64>) {
    for i in range {
        j.append(&envelope(i)).unwrap();
    }
}

#[test]
fn by_record_count() {
    let dir = tempfile::tempdir().unwrap();
    // Fill without retention, then apply it on demand.
    let mut j = Journal::create(dir.path(), options(Retention::new())).unwrap();
    fill(&mut j, 0..1_000);
    drop(j);
    let before = files(dir.path(), "seg");
    assert!(before.len() >= 6);
    let mut j = Journal::open(dir.path(), options(Retention::new().max_records(300))).unwrap();
    let report = j.apply_retention().unwrap();
    let after = files(dir.path(), "seg");
    // At least 300 records kept, and the oldest kept segment is needed for
    // that: without it fewer than 300 would remain.
    let first = after[0];
    assert!(1_000 - first >= 300);
    assert!(1_000 - after[1] < 300);
    assert_eq!(report.segments, before[..before.len() - after.len()]);
    assert_eq!(report.records, first);
    assert_eq!(seqs(dir.path()), (first..1_000).collect::<Vec<_>>());
    // Sidecars went with their segments.
    assert!(files(dir.path(), "idx").iter().all(|s| *s >= first));
    // Nothing more to do.
    assert_eq!(j.apply_retention().unwrap().segments, Vec::<u64>::new());
}

#[test]
fn by_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::create(dir.path(), options(Retention::new())).unwrap();
    fill(&mut j, 0..1_000);
    drop(j);
    let size = |dir: &Path| -> u64 {
        files(dir, "seg")
            .iter()
            .map(|s| {
                fs::metadata(dir.join(format!("{s:020}.seg")))
                    .unwrap()
                    .len()
            })
            .sum()
    };
    let total = size(dir.path());
    let max = 20 << 10;
    let mut j = Journal::open(dir.path(), options(Retention::new().max_bytes(max))).unwrap();
    let report = j.apply_retention().unwrap();
    let kept = size(dir.path());
    assert!(kept <= max, "{kept} > {max}");
    assert_eq!(report.bytes, total - kept);
    // The oldest kept segment was needed to stay under the bound... or
    // deleting it would go below: it is the first that fits.
    let segs = files(dir.path(), "seg");
    let oldest = fs::metadata(dir.path().join(format!("{:020}.seg", segs[0])))
        .unwrap()
        .len();
    assert!(kept + report.bytes > max);
    assert!(kept - oldest < max);
    assert_eq!(*seqs(dir.path()).last().unwrap(), 999);
}

#[test]
fn by_age_with_an_injected_now() {
    let dir = tempfile::tempdir().unwrap();
    // Times are 1 ms apart, far in the past for the wall clock: a roll's
    // own pass (at the real now) would delete everything, so append without
    // retention and apply it after, at an injected now.
    let mut w = Journal::create(dir.path(), options(Retention::new())).unwrap();
    fill(&mut w, 0..1_000);
    drop(w);
    let mut j = Journal::open(
        dir.path(),
        options(Retention::new().max_age(Duration::from_millis(400))),
    )
    .unwrap();
    let now = Timestamp::from_nanos(1_000_000 * 1_001);
    let report = j.apply_retention_at(now).unwrap();
    assert!(!report.segments.is_empty());
    let kept = seqs(dir.path());
    let first = kept[0];
    // Record i has time (i + 1) ms: records below 600 are more than 400 ms
    // before now. Every deleted segment held only those; the oldest kept
    // one holds a newer record.
    assert!(first <= 600, "{first}");
    let segs = files(dir.path(), "seg");
    assert!(segs[1] > 600, "{segs:?}");
    // Everything is old: only the active segment stays.
    let later = Timestamp::from_nanos(1_000_000 * 1_000_000);
    let report = j.apply_retention_at(later).unwrap();
    assert!(!report.segments.is_empty());
    assert_eq!(files(dir.path(), "seg"), [j.end().segment]);
    assert_eq!(*seqs(dir.path()).last().unwrap(), 999);
}

#[test]
fn never_the_active_segment_and_applied_after_each_roll() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::create(dir.path(), options(Retention::new().max_records(1))).unwrap();
    fill(&mut j, 0..1_000);
    // A roll's pass runs before the new segment holds a record: the
    // segment just sealed keeps "at least one record", every older one
    // went.
    let segs = files(dir.path(), "seg");
    assert!(
        segs.len() <= 2 && segs.last() == Some(&j.end().segment),
        "{segs:?}"
    );
    // On demand, with records in the active segment: only it stays.
    j.apply_retention().unwrap();
    assert_eq!(files(dir.path(), "seg"), [j.end().segment]);
    assert!(files(dir.path(), "idx").is_empty());
    assert!(j.apply_retention().unwrap().segments.is_empty());
    assert_eq!(
        seqs(dir.path()),
        (j.end().segment..1_000).collect::<Vec<_>>()
    );
}

#[test]
fn readers_skip_ahead_over_deleted_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::create(dir.path(), options(Retention::new())).unwrap();
    fill(&mut j, 0..600);
    let segs = files(dir.path(), "seg");
    assert!(segs.len() >= 4);
    // A reader in the first segment, one that has not started, and one
    // that starts in a segment that is about to go.
    let mut inside = j.reader(Start::Beginning).unwrap();
    assert_eq!(inside.next().unwrap().unwrap().seq(), 0);
    drop(j);
    let mut j = Journal::open(dir.path(), options(Retention::new().max_records(200))).unwrap();
    let report = j.apply_retention().unwrap();
    assert!(report.segments.len() >= 2);
    let first_kept = files(dir.path(), "seg")[0];
    // The reader that had the first segment open reads it to its end (the
    // open file outlives its name), then skips to the oldest segment left.
    let rest: Vec<u64> = inside.by_ref().map(|r| r.unwrap().seq()).collect();
    let end_of_first = segs[1];
    assert_eq!(
        rest[..end_of_first as usize - 1],
        (1..end_of_first).collect::<Vec<_>>()
    );
    assert_eq!(rest[end_of_first as usize - 1], first_kept);
    assert_eq!(*rest.last().unwrap(), 599);
    // A reader that starts at a deleted sequence number starts at the
    // oldest record left.
    let seqs: Vec<u64> = j
        .reader(Start::Seq(5))
        .unwrap()
        .map(|r| r.unwrap().seq())
        .collect();
    assert_eq!(seqs, (first_kept..600).collect::<Vec<_>>());
}

#[test]
fn a_query_made_before_retention_skips_the_deleted_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::create(dir.path(), options(Retention::new())).unwrap();
    fill(&mut j, 0..600);
    drop(j);
    // The query lists the segments now, and opens them as it goes.
    let mut query = evbus_journal::Query::run(dir.path(), &evbus_journal::Query::new()).unwrap();
    let mut j = Journal::open(dir.path(), options(Retention::new().max_records(200))).unwrap();
    let report = j.apply_retention().unwrap();
    assert!(report.segments.len() >= 2);
    let first_kept = files(dir.path(), "seg")[0];
    let got: Vec<u64> = query.by_ref().map(|r| r.unwrap().seq()).collect();
    assert_eq!(got, (first_kept..600).collect::<Vec<_>>());
    assert_eq!(
        query.stats().segments_skipped as usize,
        report.segments.len()
    );
}
