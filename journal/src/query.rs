//! Queries: records filtered by topic pattern, time range, correlation id,
//! session, tenant and sequence number, read through the segment indexes.
//!
//! A [`Query`] is run by [`Journal::query`] (in the writer's process) or
//! [`Query::run`] (any process, read-only). The iterator reads only what
//! the indexes say may match:
//! - a segment whose times lie outside the time range is not opened, and
//!   inside a segment only the blocks whose times overlap the range are read;
//! - with a correlation id, only the frames the correlation index lists are
//!   read, and a segment without one is not opened;
//! - with a start sequence number, the segments before it are not opened
//!   and the first one is entered at the right block.
//!
//! [`QueryIter::stats`] says what was read. Without the writer's process,
//! the last segment may still be growing and has no index: it is scanned
//! whole (up to its last complete frame).

use std::{
    collections::VecDeque,
    fs::File,
    io::{BufReader, Read, Seek, SeekFrom},
    path::{Path, PathBuf},
    sync::Arc,
};

use evbus_core::{EventId, Pattern, Timestamp};

use crate::{
    codec::Codec,
    error::{Error, Result},
    format::{FRAME_HEADER_LEN, HEADER_LEN, Position, Record, decode_body, frame_crc, frame_len},
    index::{self, IoCount, Loaded, Summary},
    recorder::Recorder,
    segment::{SHORT_HEADER, list_segments, read_header, segment_path},
    shared::Shared,
    writer::Journal,
};

/// What to read from a journal: every filter that is set must match.
///
/// # Examples
///
/// ```
/// use evbus_core::{Envelope, Pattern};
/// use evbus_journal::{Journal, JournalOptions, Query};
///
/// let dir = tempfile::tempdir().unwrap();
/// let mut journal = Journal::create(dir.path(), JournalOptions::new()).unwrap();
/// let first = Envelope::on("orders.placed", 1u32).unwrap();
/// journal.append(&first).unwrap();
/// journal
///     .append(&first.caused_on("orders.shipped", 2u32).unwrap())
///     .unwrap();
/// journal.append(&Envelope::on("users.new", 3u32).unwrap()).unwrap();
///
/// let q = Query::new().correlation(first.correlation_id());
/// let seqs: Vec<u64> = journal.query(&q).unwrap().map(|r| r.unwrap().seq()).collect();
/// assert_eq!(seqs, [0, 1]);
///
/// let q = Query::new().pattern(Pattern::parse("orders.*").unwrap()).limit(1);
/// assert_eq!(journal.query(&q).unwrap().count(), 1);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Query {
    pattern: Option<Pattern>,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    correlation: Option<EventId>,
    session: Option<String>,
    tenant: Option<String>,
    start_seq: u64,
    limit: Option<u64>,
}

impl Query {
    /// Every record.
    pub fn new() -> Self {
        Self::default()
    }
    /// Only records whose topic matches `pattern` (the bus's grammar and
    /// matcher).
    #[must_use]
    pub fn pattern(mut self, pattern: Pattern) -> Self {
        self.pattern = Some(pattern);
        self
    }
    /// Only records with a time in `[from, to)`.
    #[must_use]
    pub fn time_range(self, from: Timestamp, to: Timestamp) -> Self {
        self.from(from).until(to)
    }
    /// Only records with a time at or after `from`.
    #[must_use]
    pub fn from(mut self, from: Timestamp) -> Self {
        self.from = Some(from);
        self
    }
    /// Only records with a time before `to`.
    #[must_use]
    pub fn until(mut self, to: Timestamp) -> Self {
        self.to = Some(to);
        self
    }
    /// Only records with this correlation id.
    #[must_use]
    pub fn correlation(mut self, id: EventId) -> Self {
        self.correlation = Some(id);
        self
    }
    /// Only records with this session id.
    #[must_use]
    pub fn session(mut self, session_id: &str) -> Self {
        self.session = Some(session_id.to_owned());
        self
    }
    /// Only records with this tenant.
    #[must_use]
    pub fn tenant(mut self, tenant: &str) -> Self {
        self.tenant = Some(tenant.to_owned());
        self
    }
    /// Only records with this sequence number or a later one.
    #[must_use]
    pub fn start_seq(mut self, seq: u64) -> Self {
        self.start_seq = seq;
        self
    }
    /// At most `n` records.
    #[must_use]
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }

    /// Whether `record` passes every filter.
    pub fn matches(&self, record: &Record) -> bool {
        record.seq() >= self.start_seq
            && self.from.is_none_or(|f| record.time() >= f)
            && self.to.is_none_or(|t| record.time() < t)
            && self
                .correlation
                .is_none_or(|c| record.correlation_id() == c)
            && self
                .pattern
                .as_ref()
                .is_none_or(|p| p.matches(record.topic()))
            && self
                .session
                .as_deref()
                .is_none_or(|s| record.session_id() == Some(s))
            && self
                .tenant
                .as_deref()
                .is_none_or(|t| record.tenant() == Some(t))
    }

    /// The time range in nanoseconds, `[from, to)` (no `to`: no upper
    /// bound).
    fn range(&self) -> (u64, Option<u64>) {
        (
            self.from.map_or(0, Timestamp::as_nanos),
            self.to.map(Timestamp::as_nanos),
        )
    }

    fn has_time(&self) -> bool {
        self.from.is_some() || self.to.is_some()
    }

    /// Runs the query on the journal in `dir` read-only, from any process
    /// (the writer may be running). Indexes missing or stale on disk are
    /// rebuilt in memory, not written.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] without segments; header errors; I/O errors.
    pub fn run(dir: impl AsRef<Path>, query: &Query) -> Result<QueryIter> {
        let dir = dir.as_ref();
        let segments = list_segments(dir)?;
        let Some(&first) = segments.first() else {
            return Err(Error::NotFound {
                dir: dir.to_path_buf(),
            });
        };
        let path = segment_path(dir, first);
        let mut f = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let codec = read_header(&mut f, &path, first)?.codec;
        let mut stats = QueryStats::default();
        stats.bytes_read += HEADER_LEN;
        Ok(QueryIter::new(
            dir.to_path_buf(),
            codec,
            None,
            query.clone(),
            segments,
            stats,
        ))
    }
}

impl Journal {
    /// Runs `query` over this journal: the segments that exist now, up to
    /// what the writer has committed when the iterator reaches the last of
    /// them (so records appended while iterating may be included; segments
    /// started later are not). It first waits for the index of the segment
    /// sealed last, which a roll writes on a thread of its own (a few
    /// milliseconds at most); indexes missing or stale on disk are rebuilt
    /// and written back.
    ///
    /// # Errors
    ///
    /// I/O errors listing the directory.
    pub fn query(&self, query: &Query) -> Result<QueryIter> {
        QueryIter::in_process(Arc::clone(self.shared()), query)
    }
}

impl Recorder {
    /// Runs `query` over the recorder's journal, as [`Journal::query`].
    ///
    /// # Errors
    ///
    /// As [`Journal::query`].
    pub fn query(&self, query: &Query) -> Result<QueryIter> {
        QueryIter::in_process(Arc::clone(self.shared()), query)
    }
}

/// What a query read so far: see [`QueryIter::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueryStats {
    /// Segment files opened (to read frames or to rebuild an index).
    pub segments_opened: u64,
    /// Segments the indexes ruled out without opening them.
    pub segments_skipped: u64,
    /// Segment bytes read (headers, frames, and scans that rebuilt an
    /// index).
    pub bytes_read: u64,
    /// Index sidecar bytes read.
    pub index_bytes_read: u64,
    /// Indexes rebuilt by scanning a segment (sidecar missing, stale or
    /// damaged).
    pub indexes_rebuilt: u64,
    /// Frames decoded.
    pub records_read: u64,
    /// Records returned.
    pub records_matched: u64,
}

impl QueryStats {
    fn add_io(&mut self, io: IoCount) {
        self.segments_opened += io.segments_opened;
        self.indexes_rebuilt += io.segments_opened;
        self.bytes_read += io.segment_bytes;
        self.index_bytes_read += io.index_bytes;
    }
}

/// A part of a segment to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Span {
    /// The frames in `[from, to)`.
    Range(u64, u64),
    /// The one frame at this offset.
    One(u64),
}

/// The segment being read.
#[derive(Debug)]
struct SegRead {
    segment: u64,
    path: PathBuf,
    file: BufReader<File>,
    /// Where the file is positioned.
    pos: u64,
    /// Readable up to here.
    limit: u64,
    /// The maximum frame length the segment's header records.
    max_frame: u32,
    /// The segment may still grow under another process: an incomplete or
    /// invalid frame at its end is its end, not damage.
    growing: bool,
    spans: VecDeque<Span>,
    /// The frame after the last one of the current range.
    range_end: Option<u64>,
}

/// The iterator of a [`Query`], in sequence order, yielding
/// `Result<Record, Error>`. Ends after an error.
#[derive(Debug)]
pub struct QueryIter {
    dir: PathBuf,
    codec: Codec,
    shared: Option<Arc<Shared>>,
    query: Query,
    segments: VecDeque<u64>,
    last_listed: Option<u64>,
    current: Option<SegRead>,
    stats: QueryStats,
    done: bool,
}

impl QueryIter {
    fn new(
        dir: PathBuf,
        codec: Codec,
        shared: Option<Arc<Shared>>,
        query: Query,
        segments: Vec<u64>,
        stats: QueryStats,
    ) -> Self {
        QueryIter {
            dir,
            codec,
            shared,
            query,
            last_listed: segments.last().copied(),
            segments: segments.into(),
            current: None,
            stats,
            done: false,
        }
    }

    fn in_process(shared: Arc<Shared>, query: &Query) -> Result<QueryIter> {
        // The last roll seals its segment's index on a thread of its own;
        // wait for that sidecar rather than rebuild the index by a scan.
        shared.index.wait_sealed();
        let segments = list_segments(&shared.dir)?;
        Ok(QueryIter::new(
            shared.dir.clone(),
            shared.codec,
            Some(shared),
            query.clone(),
            segments,
            QueryStats::default(),
        ))
    }

    /// What the query has read so far.
    pub fn stats(&self) -> QueryStats {
        self.stats
    }

    /// Plans the reads of segment `seg` (`next`: the segment after it, if
    /// listed). `None`: nothing to read in it.
    fn plan(&mut self, seg: u64, next: Option<u64>) -> Result<Option<SegRead>> {
        let (correlation, start_seq, has_time) = (
            self.query.correlation,
            self.query.start_seq,
            self.query.has_time(),
        );
        // Every record of `seg` is below the start.
        if next.is_some_and(|n| n <= start_seq) {
            self.stats.segments_skipped += 1;
            return Ok(None);
        }
        let (from, to) = self.query.range();
        let mut io = IoCount::default();
        // The summary and correlation offsets, and the readable limit.
        let mut limit = None;
        let mut growing = false;
        let mut known: Option<(Summary, Option<Vec<u64>>)> = None;
        if let Some(shared) = &self.shared {
            // The committed end first, then the index (which the writer
            // updates before it publishes): the index covers the limit.
            let c = shared.committed();
            if seg > c.end.segment {
                return Ok(None);
            }
            if seg == c.end.segment {
                limit = Some(c.end.offset);
                let b = shared.index.lock();
                let corr = correlation.map(|id| b.correlation(id));
                known = Some((b.summary().clone(), corr));
            }
        } else if Some(seg) == self.last_listed {
            // A sidecar that matches the segment's length (its writer
            // closed) stands for it; otherwise scan it whole.
            let found = match correlation {
                Some(id) => index::try_sidecar_correlation(&self.dir, seg, id, &mut io)
                    .map(|(s, c)| (s, Some(c))),
                None => index::try_sidecar(&self.dir, seg, &mut io).map(|s| (s, None)),
            };
            match found {
                Some((s, corr)) => {
                    limit = Some(s.len);
                    known = Some((s, corr));
                }
                None => growing = true,
            }
        }
        if known.is_none() && !growing {
            if let Some(id) = correlation {
                let (offsets, rebuilt) = index::load_correlation(&self.dir, seg, id, &mut io)?;
                let summary = match rebuilt {
                    Some(b) => {
                        let s = b.summary().clone();
                        self.persist(b);
                        s
                    }
                    None => self.load_summary(seg, &mut io)?,
                };
                known = Some((summary, Some(offsets)));
            } else if has_time || start_seq > seg {
                known = Some((self.load_summary(seg, &mut io)?, None));
            }
        }
        self.stats.add_io(io);
        let mut spans = VecDeque::new();
        match &known {
            Some((s, corr)) => {
                let end = limit.unwrap_or(s.len);
                if has_time && !s.may_overlap(from, to) && s.len >= end {
                    self.stats.segments_skipped += 1;
                    return Ok(None);
                }
                match corr {
                    Some(offsets) => {
                        spans.extend(offsets.iter().filter(|&&o| o < end).map(|&o| Span::One(o)));
                    }
                    None => {
                        for (i, b) in s.blocks.iter().enumerate() {
                            let next_seq = s.blocks.get(i + 1).map_or(s.next_seq, |n| n.seq);
                            let wanted = !has_time
                                || (b.max_time >= from && to.is_none_or(|to| b.min_time < to));
                            if !wanted || next_seq <= start_seq || b.offset >= end {
                                continue;
                            }
                            let block_end = s.block_end(i).min(end);
                            match spans.back_mut() {
                                Some(Span::Range(_, e)) if *e == b.offset => *e = block_end,
                                _ => spans.push_back(Span::Range(b.offset, block_end)),
                            }
                        }
                    }
                }
                // Frames written after the index was taken (active segment).
                if end > s.len {
                    spans.push_back(Span::Range(s.len, end));
                }
            }
            None => spans.push_back(Span::Range(HEADER_LEN, u64::MAX)),
        }
        if spans.is_empty() {
            self.stats.segments_skipped += 1;
            return Ok(None);
        }
        let path = segment_path(&self.dir, seg);
        let mut file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        self.stats.segments_opened += 1;
        let limit = match limit {
            Some(l) => l,
            None => file.metadata().map_err(|e| Error::io(&path, e))?.len(),
        };
        let header = match read_header(&mut file, &path, seg) {
            Ok(h) => h,
            // A header lost to a power loss, in the last segment: no
            // records yet (its writer rewrites it when it reopens).
            Err(Error::BadHeader { reason, .. }) if growing && reason == SHORT_HEADER => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        self.stats.bytes_read += HEADER_LEN;
        if header.codec != self.codec {
            return Err(Error::BadHeader {
                segment: path,
                reason: "codec differs from the journal's first segment",
            });
        }
        Ok(Some(SegRead {
            segment: seg,
            path,
            file: BufReader::with_capacity(1 << 16, file),
            pos: u64::MAX,
            limit,
            max_frame: header.max_frame,
            growing,
            spans,
            range_end: None,
        }))
    }

    fn load_summary(&self, seg: u64, io: &mut IoCount) -> Result<Summary> {
        let loaded = index::load_summary(&self.dir, seg, io)?;
        Ok(match loaded {
            Loaded::Sidecar(s) => s,
            Loaded::Rebuilt(b) => {
                let s = b.summary().clone();
                self.persist(b);
                s
            }
        })
    }

    /// Writes a rebuilt index back, in the writer's process (best effort).
    fn persist(&self, builder: index::Builder) {
        if self.shared.is_some() {
            let _ = index::write_sidecar(&self.dir, builder);
        }
    }

    fn read_next(&mut self) -> Result<Option<Record>> {
        loop {
            if self
                .query
                .limit
                .is_some_and(|l| self.stats.records_matched >= l)
            {
                return Ok(None);
            }
            let Some(cur) = self.current.as_mut() else {
                let Some(seg) = self.segments.pop_front() else {
                    return Ok(None);
                };
                let next = self.segments.front().copied();
                self.current = match self.plan(seg, next) {
                    // Deleted by retention since the listing: skip it.
                    Err(Error::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::NotFound =>
                    {
                        self.stats.segments_skipped += 1;
                        None
                    }
                    other => other?,
                };
                continue;
            };
            let Some(record) = read_one(cur, self.codec, &mut self.stats)? else {
                self.current = None;
                continue;
            };
            self.stats.records_read += 1;
            if self.query.matches(&record) {
                self.stats.records_matched += 1;
                return Ok(Some(record));
            }
        }
    }
}

/// Reads the next frame of the current spans; `None` when they are done.
fn read_one(cur: &mut SegRead, codec: Codec, stats: &mut QueryStats) -> Result<Option<Record>> {
    loop {
        let at = match cur.range_end {
            Some(_) if cur.pos < cur.range_end.unwrap_or(0).min(cur.limit) => cur.pos,
            _ => {
                cur.range_end = None;
                match cur.spans.pop_front() {
                    None => return Ok(None),
                    Some(Span::One(o)) => o,
                    Some(Span::Range(from, to)) => {
                        cur.range_end = Some(to);
                        if from >= to.min(cur.limit) {
                            cur.range_end = None;
                            continue;
                        }
                        from
                    }
                }
            }
        };
        if at >= cur.limit {
            continue;
        }
        if cur.pos != at {
            cur.file
                .seek(SeekFrom::Start(at))
                .map_err(|e| Error::io(&cur.path, e))?;
            cur.pos = at;
        }
        match read_frame(cur, codec, stats)? {
            Some(r) => return Ok(Some(r)),
            None => {
                // The end of a growing segment.
                cur.spans.clear();
                cur.range_end = None;
                return Ok(None);
            }
        }
    }
}

/// Reads the frame at `cur.pos`. `None`: an unfinished frame at the end of
/// a growing segment.
fn read_frame(cur: &mut SegRead, codec: Codec, stats: &mut QueryStats) -> Result<Option<Record>> {
    let offset = cur.pos;
    let corrupt = |cur: &mut SegRead, reason| -> Result<Option<Record>> {
        cur.pos = u64::MAX;
        if cur.growing {
            return Ok(None);
        }
        Err(Error::Corrupt {
            segment: cur.path.clone(),
            offset,
            reason,
        })
    };
    let remaining = cur.limit - offset;
    if remaining < FRAME_HEADER_LEN {
        return corrupt(cur, "incomplete frame header");
    }
    let mut h = [0u8; 8];
    cur.file
        .read_exact(&mut h)
        .map_err(|e| Error::io(&cur.path, e))?;
    stats.bytes_read += FRAME_HEADER_LEN;
    let len = match frame_len(&h, cur.max_frame) {
        Ok(len) => len,
        Err(reason) => return corrupt(cur, reason),
    };
    if u64::from(len) > remaining - FRAME_HEADER_LEN {
        return corrupt(cur, "incomplete frame");
    }
    let mut body = vec![0u8; len as usize];
    cur.file
        .read_exact(&mut body)
        .map_err(|e| Error::io(&cur.path, e))?;
    stats.bytes_read += u64::from(len);
    if crc32c::crc32c(&body) != frame_crc(&h) {
        return corrupt(cur, "checksum mismatch");
    }
    let position = Position {
        segment: cur.segment,
        offset,
    };
    let record = match decode_body(&body, codec, position) {
        Ok(r) => r,
        Err(reason) => {
            cur.growing = false;
            return corrupt(cur, reason);
        }
    };
    cur.pos = offset + FRAME_HEADER_LEN + u64::from(len);
    Ok(Some(record))
}

impl Iterator for QueryIter {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.read_next().transpose();
        self.done = matches!(item, Some(Err(_)));
        item
    }
}
