//! Retention: deleting whole sealed segments, oldest first, by total size,
//! age or record count.
//!
//! Retention never deletes the active segment (the one the writer appends
//! to), and deletes a segment together with its index sidecar. It runs
//! after every segment roll and on demand ([`Journal::apply_retention`]).
//!
//! # Readers and deleted segments
//!
//! Readers and queries skip ahead rather than fail: a reader that has a
//! deleted segment open keeps reading it to its end (an open file outlives
//! its name on Unix), then continues with the next segment that exists; one
//! that had not reached it yet, or a query that listed it, skips ahead to the
//! oldest remaining segment; a reader made with a [`Start`](crate::Start)
//! in deleted records starts at the oldest record left. The records skipped
//! show as a jump in [`Record::seq`](crate::Record::seq). (A reader being
//! *made* at the very moment its first segment is deleted may still get an
//! I/O error for it.)

use std::{fs, path::Path, time::Duration};

use evbus_core::Timestamp;

#[cfg(doc)]
use crate::{Journal, JournalOptions};
use crate::{
    error::{Error, Result},
    index::{self, ActiveIndex, IoCount, sidecar_path},
    segment::{list_segments, segment_path},
};

/// Which sealed segments to delete. A segment is deleted when any set
/// bound says so; without a bound nothing is deleted (the default).
///
/// Set it with [`JournalOptions::retention`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use evbus_journal::Retention;
///
/// // Keep at most 10 GiB, and nothing older than a week.
/// let r = Retention::new()
///     .max_bytes(10 << 30)
///     .max_age(Duration::from_secs(7 * 24 * 3600));
/// assert!(r.is_enabled());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    max_bytes: Option<u64>,
    max_age: Option<Duration>,
    max_records: Option<u64>,
}

impl Retention {
    /// No bound: keep everything.
    pub const fn new() -> Self {
        Retention {
            max_bytes: None,
            max_age: None,
            max_records: None,
        }
    }
    /// Deletes the oldest sealed segments while the journal's segment files
    /// take more than `bytes` in total.
    #[must_use]
    pub const fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = Some(bytes);
        self
    }
    /// Deletes sealed segments whose newest record time is more than `age`
    /// before now.
    #[must_use]
    pub const fn max_age(mut self, age: Duration) -> Self {
        self.max_age = Some(age);
        self
    }
    /// Deletes the oldest sealed segments while the segments after them
    /// still hold at least `records` records (so at least `records` are
    /// kept, or every record if there are fewer).
    #[must_use]
    pub const fn max_records(mut self, records: u64) -> Self {
        self.max_records = Some(records);
        self
    }
    /// The size bound.
    pub const fn get_max_bytes(&self) -> Option<u64> {
        self.max_bytes
    }
    /// The age bound.
    pub const fn get_max_age(&self) -> Option<Duration> {
        self.max_age
    }
    /// The record bound.
    pub const fn get_max_records(&self) -> Option<u64> {
        self.max_records
    }
    /// Whether a bound is set.
    pub const fn is_enabled(&self) -> bool {
        self.max_bytes.is_some() || self.max_age.is_some() || self.max_records.is_some()
    }
}

/// What a retention pass deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetentionReport {
    /// The first sequence numbers of the deleted segments, ascending.
    pub segments: Vec<u64>,
    /// Records in the deleted segments.
    pub records: u64,
    /// Bytes of the deleted segment files (sidecars not counted).
    pub bytes: u64,
}

/// Deletes the sealed segments `policy` selects. `active` is the writer's
/// current segment (never deleted), `next_seq` the next sequence number,
/// `now` the time ages are measured from.
pub(crate) fn apply(
    dir: &Path,
    index: &ActiveIndex,
    policy: &Retention,
    active: u64,
    next_seq: u64,
    now: Timestamp,
) -> Result<RetentionReport> {
    let mut report = RetentionReport::default();
    if !policy.is_enabled() {
        return Ok(report);
    }
    // The sidecar being sealed may be one to delete.
    index.wait_sealed();
    let segments = list_segments(dir)?;
    let mut sizes = Vec::with_capacity(segments.len());
    for &s in &segments {
        let path = segment_path(dir, s);
        let len = fs::metadata(&path).map_err(|e| Error::io(&path, e))?.len();
        sizes.push(len);
    }
    let mut total: u64 = sizes.iter().sum();
    let now = now.as_nanos();
    let mut io = IoCount::default();
    for (k, &seg) in segments.iter().enumerate() {
        if seg >= active {
            break;
        }
        // Records from the next segment on.
        let next_first = segments.get(k + 1).copied().unwrap_or(next_seq);
        let kept_after = next_seq.saturating_sub(next_first);
        let by_bytes = policy.max_bytes.is_some_and(|max| total > max);
        let by_records = policy.max_records.is_some_and(|max| kept_after >= max);
        let by_age = match policy.max_age {
            None => false,
            Some(age) => {
                let age = u64::try_from(age.as_nanos()).unwrap_or(u64::MAX);
                let s = index::load_summary(dir, seg, &mut io)?;
                let s = s.summary();
                // An empty segment has no age: it goes with its neighbours.
                s.count == 0 || s.max_time.saturating_add(age) < now
            }
        };
        if !(by_bytes || by_records || by_age) {
            break;
        }
        let path = segment_path(dir, seg);
        fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        let idx = sidecar_path(dir, seg);
        match fs::remove_file(&idx) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(idx, e)),
        }
        total -= sizes[k];
        report.segments.push(seg);
        report.bytes += sizes[k];
        report.records += next_first.saturating_sub(seg);
    }
    if let Some(&last) = report.segments.last() {
        remove_orphan_sidecars(dir, last)?;
        crate::segment::sync_dir(dir)?;
    }
    Ok(report)
}

/// Removes sidecars of segments up to `last` (deleted) that a concurrent
/// query may have written back while they were being deleted, and their
/// temporary files.
fn remove_orphan_sidecars(dir: &Path, last: u64) -> Result<()> {
    let entries = fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let Some(stem) = name
            .to_str()
            .and_then(|n| n.split_once(".idx"))
            .map(|(s, _)| s)
        else {
            continue;
        };
        if stem.len() == 20
            && let Ok(seq) = stem.parse::<u64>()
            && seq <= last
        {
            let _ = fs::remove_file(entry.path());
        }
    }
    Ok(())
}
