//! Readers: iterate the records of a journal from a starting point.

use std::{
    fs::File,
    io::{BufReader, Read, Seek, SeekFrom},
    path::{Path, PathBuf},
    sync::Arc,
};

use evbus_core::Timestamp;

use crate::{
    codec::Codec,
    error::{Error, Result},
    format::{
        DEFAULT_MAX_FRAME, FRAME_HEADER_LEN, HEADER_LEN, Position, Record, body_seq, decode_body,
        frame_crc, frame_len,
    },
    index, recovery,
    segment::{SHORT_HEADER, list_segments, read_header, segment_path},
    shared::Shared,
};

/// Where a [`Reader`] starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The first record.
    Beginning,
    /// The first record with this sequence number or a later one.
    Seq(u64),
    /// The first record whose time is at or after this time, and every
    /// record after it (in sequence order, whatever their times).
    Time(Timestamp),
    /// After the last record written when the reader is made: only records
    /// appended later.
    End,
}

/// An iterator over the records of a journal, in sequence order, yielding
/// `Result<Record, Error>`.
///
/// A reader has its own file handles and runs alongside the writer:
/// - made by [`Journal::reader`](crate::Journal::reader) (in the writer's
///   process), it reads up to what the writer has committed;
/// - made by [`Reader::open`] (any process), it reads up to the last
///   complete valid frame.
///
/// `None` means "no more records for now": a later `next` returns the
/// records appended since. After an error the reader ends (every later
/// `next` is `None`); it never returns a record whose CRC did not match.
pub struct Reader {
    dir: PathBuf,
    codec: Codec,
    /// The current segment's maximum frame body (from its header).
    max_frame_size: u32,
    shared: Option<Arc<Shared>>,
    /// The current segment's first sequence number, and its file.
    segment: u64,
    file: Option<BufReader<File>>,
    path: PathBuf,
    /// Offset of the next frame in the current segment.
    offset: u64,
    /// The last [`Reader::limit`] of the current segment: readable up to
    /// there, and whether the segment is final. Refreshed only when the
    /// reader reaches it (a limit only grows).
    limit: (u64, bool),
    /// Records below this sequence number are skipped (order check too).
    next_seq: u64,
    /// The sequence number of the last frame read, for the order check.
    last_read: Option<u64>,
    /// `Start::Time`: skip until a record at or after this time.
    from_time: Option<Timestamp>,
    failed: bool,
    /// Reused frame body buffer.
    body: Vec<u8>,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("dir", &self.dir)
            .field("position", &self.next_position())
            .finish_non_exhaustive()
    }
}

impl Reader {
    /// A reader of the journal in `dir` from `start`, for any process: it
    /// reads up to the last complete valid frame.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] without segments; header errors; I/O errors.
    pub fn open(dir: impl AsRef<Path>, start: Start) -> Result<Reader> {
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
        let mut r = Reader::blank(dir.to_path_buf(), codec, None);
        r.start_at(start, &segments)?;
        Ok(r)
    }

    pub(crate) fn in_process(shared: Arc<Shared>, start: Start) -> Result<Reader> {
        let segments = list_segments(&shared.dir)?;
        let mut r = Reader::blank(shared.dir.clone(), shared.codec, Some(Arc::clone(&shared)));
        if start == Start::End {
            let c = shared.committed();
            r.enter(c.end.segment)?;
            r.offset = c.end.offset;
            r.next_seq = c.next_seq;
            r.last_read = c.next_seq.checked_sub(1);
            r.seek()?;
            return Ok(r);
        }
        r.start_at(start, &segments)?;
        Ok(r)
    }

    fn blank(dir: PathBuf, codec: Codec, shared: Option<Arc<Shared>>) -> Self {
        Reader {
            dir,
            codec,
            max_frame_size: DEFAULT_MAX_FRAME,
            shared,
            segment: 0,
            file: None,
            path: PathBuf::new(),
            offset: HEADER_LEN,
            limit: (HEADER_LEN, false),
            next_seq: 0,
            last_read: None,
            from_time: None,
            failed: false,
            body: Vec::new(),
        }
    }

    fn start_at(&mut self, start: Start, segments: &[u64]) -> Result<()> {
        let first = segments.first().copied().unwrap_or(0);
        match start {
            Start::Beginning => self.enter(first),
            Start::Time(t) => {
                self.from_time = Some(t);
                // Index hook: seek past what is earlier (see index.rs).
                let at = self.locate(start, segments)?;
                self.enter_at(at.unwrap_or(first_frame(first)))
            }
            Start::Seq(n) => {
                let seg = segments
                    .iter()
                    .rev()
                    .find(|&&s| s <= n)
                    .copied()
                    .unwrap_or(first);
                let at = self.locate(start, segments)?;
                self.enter_at(at.unwrap_or(first_frame(seg)))?;
                self.next_seq = self.next_seq.max(n);
                Ok(())
            }
            Start::End => {
                // The end of the last segment's valid frames.
                let last = segments.last().copied().unwrap_or(0);
                self.enter(last)?;
                let file = self.file.as_ref().map(BufReader::get_ref);
                if let Some(file) = file {
                    let len = file.metadata().map_err(|e| Error::io(&self.path, e))?.len();
                    let scan = recovery::scan(
                        file,
                        &self.path,
                        HEADER_LEN,
                        len,
                        last,
                        self.max_frame_size,
                        |_, _| Ok(()),
                    )?;
                    self.offset = scan.end;
                    self.next_seq = scan.next_seq;
                    self.last_read = scan.next_seq.checked_sub(1);
                }
                self.seek()
            }
        }
    }

    fn locate(&self, start: Start, segments: &[u64]) -> Result<Option<Position>> {
        locate(&self.dir, self.shared.as_deref(), segments, start)
    }

    /// Opens the segment of `at` and positions at its offset.
    fn enter_at(&mut self, at: Position) -> Result<()> {
        self.enter(at.segment)?;
        if at.offset > HEADER_LEN {
            self.offset = at.offset;
            self.seek()?;
        }
        Ok(())
    }

    /// Opens segment `first_seq` and positions after its header.
    fn enter(&mut self, first_seq: u64) -> Result<()> {
        let path = segment_path(&self.dir, first_seq);
        let mut f = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let header = read_header(&mut f, &path, first_seq)?;
        if header.codec != self.codec {
            return Err(Error::BadHeader {
                segment: path,
                reason: "codec differs from the journal's first segment",
            });
        }
        self.segment = first_seq;
        self.max_frame_size = header.max_frame;
        self.path = path;
        self.file = Some(BufReader::with_capacity(1 << 16, f));
        self.offset = HEADER_LEN;
        self.limit = (HEADER_LEN, false);
        self.next_seq = self.next_seq.max(first_seq);
        self.seek()
    }

    fn seek(&mut self) -> Result<()> {
        if let Some(f) = &mut self.file {
            f.seek(SeekFrom::Start(self.offset))
                .map_err(|e| Error::io(&self.path, e))?;
        }
        Ok(())
    }

    /// The journal's payload codec.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Where the next frame is read from.
    pub fn next_position(&self) -> Position {
        Position {
            segment: self.segment,
            offset: self.offset,
        }
    }

    /// The smallest sequence number the next record can have.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    fn corrupt(&mut self, reason: &'static str) -> Error {
        self.failed = true;
        Error::Corrupt {
            segment: self.path.clone(),
            offset: self.offset,
            reason,
        }
    }

    fn file_len(&self) -> Result<u64> {
        match &self.file {
            Some(f) => Ok(f
                .get_ref()
                .metadata()
                .map_err(|e| Error::io(&self.path, e))?
                .len()),
            None => Ok(0),
        }
    }

    /// How far the current segment may be read, and whether it is final
    /// (a later segment exists, so nothing more will be appended to it).
    fn limit(&self) -> Result<(u64, bool)> {
        if let Some(shared) = &self.shared {
            let c = shared.committed();
            if c.end.segment == self.segment {
                return Ok((c.end.offset, false));
            }
            if c.end.segment > self.segment {
                return Ok((self.file_len()?, true));
            }
            return Ok((HEADER_LEN, false));
        }
        // Check for a later segment first, then take the length: a writer
        // rolls only after its last write to this segment.
        let later = list_segments(&self.dir)?
            .into_iter()
            .any(|s| s > self.segment);
        Ok((self.file_len()?, later))
    }

    /// The segment after the current one, if any.
    fn next_segment(&self) -> Result<Option<u64>> {
        Ok(list_segments(&self.dir)?
            .into_iter()
            .find(|&s| s > self.segment))
    }

    fn read_next(&mut self) -> Result<Option<Record>> {
        loop {
            if self.file.is_none() {
                return Ok(None);
            }
            if self.offset >= self.limit.0 {
                self.limit = self.limit()?;
            }
            let (limit, is_final) = self.limit;
            if self.offset >= limit {
                if !is_final {
                    return Ok(None);
                }
                match self.next_segment()? {
                    Some(s) => match self.enter(s) {
                        Ok(()) => continue,
                        // Retention may delete `s` between the listing and
                        // the open: then look again (see retention.rs).
                        Err(Error::Io { source, .. })
                            if source.kind() == std::io::ErrorKind::NotFound
                                && !list_segments(&self.dir)?.contains(&s) =>
                        {
                            continue;
                        }
                        // A header lost to a power loss (writers rename a
                        // segment into place with its header written):
                        // the writer rewrites it when it reopens.
                        Err(Error::BadHeader { reason, .. })
                            if self.shared.is_none() && reason == SHORT_HEADER =>
                        {
                            return Ok(None);
                        }
                        Err(e) => return Err(e),
                    },
                    None => return Ok(None),
                }
            }
            let cross_tail = self.shared.is_none() && !is_final;
            let record = match self.read_frame(limit, cross_tail)? {
                Frame::Record(r) => r,
                Frame::Skipped => continue,
                Frame::Unfinished => {
                    // Look at the file again next time.
                    self.limit = (self.offset, false);
                    return Ok(None);
                }
            };
            if let Some(t) = self.from_time {
                if record.time() < t {
                    continue;
                }
                self.from_time = None;
            }
            self.next_seq = record.seq().saturating_add(1);
            return Ok(Some(record));
        }
    }

    /// Reads the frame at `self.offset` (below `limit`). `cross_tail`: the
    /// segment may still grow under another process's writer, so a damaged
    /// frame with no valid frame after it is an unfinished write (`None`).
    fn read_frame(&mut self, limit: u64, cross_tail: bool) -> Result<Frame> {
        let remaining = limit - self.offset;
        let unfinished = |this: &mut Self, reason| -> Result<Frame> {
            if cross_tail {
                let file = this.file.as_ref().map(BufReader::get_ref);
                let later = match file {
                    Some(f) => recovery::find_next_valid(
                        f,
                        &this.path,
                        this.offset,
                        limit,
                        this.next_seq,
                        this.max_frame_size,
                    )?,
                    None => None,
                };
                this.seek()?;
                if later.is_none() {
                    return Ok(Frame::Unfinished);
                }
            }
            Err(this.corrupt(reason))
        };
        if remaining < FRAME_HEADER_LEN {
            return unfinished(self, "incomplete frame header");
        }
        let Some(file) = self.file.as_mut() else {
            return Ok(Frame::Unfinished);
        };
        let mut h = [0u8; 8];
        if let Err(e) = file.read_exact(&mut h) {
            self.seek()?;
            return Err(Error::io(&self.path, e));
        }
        let len = match frame_len(&h, self.max_frame_size) {
            Ok(len) => len,
            Err(reason) => {
                self.seek()?;
                return unfinished(self, reason);
            }
        };
        if u64::from(len) > remaining - FRAME_HEADER_LEN {
            self.seek()?;
            return unfinished(self, "incomplete frame");
        }
        let mut body = std::mem::take(&mut self.body);
        body.resize(len as usize, 0);
        let read = file_read(file, &mut body);
        let result = self.check_body(read, &h, &body, unfinished);
        self.body = body;
        let seq = match result? {
            Ok(seq) => seq,
            Err(frame) => return Ok(frame),
        };
        let frame_end = self.offset + FRAME_HEADER_LEN + u64::from(len);
        if seq < self.next_seq {
            // Before the start: not decoded.
            self.last_read = Some(seq);
            self.offset = frame_end;
            return Ok(Frame::Skipped);
        }
        let position = self.next_position();
        let record = match decode_body(&self.body, self.codec, position) {
            Ok(r) => r,
            Err(reason) => return Err(self.corrupt(reason)),
        };
        self.last_read = Some(seq);
        self.offset = frame_end;
        Ok(Frame::Record(record))
    }

    /// Checks a body just read: I/O error, CRC, sequence order. `Ok(Ok(seq))`
    /// for a good frame, `Ok(Err(frame))` for an unfinished one.
    fn check_body(
        &mut self,
        read: std::io::Result<()>,
        h: &[u8; 8],
        body: &[u8],
        unfinished: impl FnOnce(&mut Self, &'static str) -> Result<Frame>,
    ) -> Result<Result<u64, Frame>> {
        if let Err(e) = read {
            self.seek()?;
            return Err(Error::io(&self.path, e));
        }
        if crc32c::crc32c(body) != frame_crc(h) {
            self.seek()?;
            return unfinished(self, "checksum mismatch").map(Err);
        }
        let seq = body_seq(body).unwrap_or(0);
        if seq < self.segment || self.last_read.is_some_and(|prev| seq <= prev) {
            return Err(self.corrupt("sequence number out of order"));
        }
        Ok(Ok(seq))
    }
}

/// The first frame of segment `first_seq`.
fn first_frame(first_seq: u64) -> Position {
    Position {
        segment: first_seq,
        offset: HEADER_LEN,
    }
}

/// What [`Reader::read_frame`] found.
#[expect(
    clippy::large_enum_variant,
    reason = "matched at once by its caller; a Box would cost an allocation per record"
)]
enum Frame {
    Record(Record),
    /// A valid frame before the start.
    Skipped,
    /// An unfinished frame at the end (or no file).
    Unfinished,
}

fn file_read(file: &mut BufReader<File>, body: &mut [u8]) -> std::io::Result<()> {
    file.read_exact(body)
}

impl Iterator for Reader {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let item = self.read_next().transpose();
        self.failed = matches!(item, Some(Err(_)));
        item
    }
}

/// Where a reader that starts at `start` (a sequence number or a time) can
/// begin instead of the first segment's first frame: the segment and the
/// offset of the block to read from. `None`: no index helps, start at the
/// header of the segment the caller picked. `shared`: the in-process
/// writer's state (its active segment is indexed in memory); without it the
/// last segment may still grow and is scanned.
fn locate(
    dir: &Path,
    shared: Option<&Shared>,
    segments: &[u64],
    start: Start,
) -> Result<Option<crate::format::Position>> {
    let mut io = index::IoCount::default();
    // The summary of `seg`: in memory if active, `None` if it may grow and
    // has no index, else from its sidecar (or rebuilt).
    let summary = |seg: u64, io: &mut index::IoCount| -> Result<Option<index::Summary>> {
        if let Some(shared) = shared {
            let active = shared.index.lock();
            if active.summary().first_seq == seg {
                return Ok(Some(active.summary().clone()));
            }
        } else if segments.last() == Some(&seg) {
            return Ok(index::try_sidecar(dir, seg, io));
        }
        let loaded = index::load_summary(dir, seg, io)?;
        if let (Some(_), index::Loaded::Rebuilt(b)) = (shared, &loaded) {
            let _ = index::write_sidecar(dir, b.clone());
        }
        Ok(Some(loaded.summary().clone()))
    };
    match start {
        Start::Seq(n) => {
            let Some(&seg) = segments.iter().rev().find(|&&s| s <= n) else {
                return Ok(None);
            };
            Ok(summary(seg, &mut io)?.map(|s| Position {
                segment: seg,
                offset: s.seek_seq(n).unwrap_or(s.len),
            }))
        }
        Start::Time(t) => {
            let t = t.as_nanos();
            for &seg in segments {
                let Some(s) = summary(seg, &mut io)? else {
                    return Ok(Some(Position {
                        segment: seg,
                        offset: HEADER_LEN,
                    }));
                };
                if let Some(offset) = s.seek_time(t) {
                    return Ok(Some(Position {
                        segment: seg,
                        offset,
                    }));
                }
            }
            // Every record is earlier: start after the last one.
            Ok(segments.last().map(|&seg| Position {
                segment: seg,
                offset: HEADER_LEN,
            }))
        }
        Start::Beginning | Start::End => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use std::thread;

    use evbus_core::Envelope;

    use super::*;
    use crate::{Journal, JournalOptions, SyncPolicy};

    /// A reader in another thread follows a writer that appends batches and
    /// rolls segments, waiting on the committed position: it sees every
    /// record once, in order, and never an error. `cross`: the reader is a
    /// cross-process one (reading to the last complete frame on disk, not to
    /// the committed position), woken by the same notifications.
    fn follow(cross: bool) {
        const N: u64 = 3000;
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::create(
            dir.path(),
            JournalOptions::new()
                .sync(SyncPolicy::Never)
                .segment_size(4096),
        )
        .unwrap();
        let shared = Arc::clone(j.shared());
        let mut reader = if cross {
            Reader::open(dir.path(), Start::Beginning).unwrap()
        } else {
            j.reader(Start::Beginning).unwrap()
        };
        let follower = thread::spawn(move || {
            let mut seen = Vec::new();
            while (seen.len() as u64) < N {
                match reader.next() {
                    Some(r) => seen.push(r.unwrap().payload::<u64>().unwrap()),
                    None => {
                        shared.wait_for_seq(reader.next_seq(), None);
                    }
                }
            }
            seen
        });
        let mut n = 0;
        while n < N {
            let size = (n % 7 + 1).min(N - n);
            let batch: Vec<_> = (n..n + size)
                .map(|i| Envelope::on("a.b", i).unwrap())
                .collect();
            j.append_batch(&batch).unwrap();
            n += size;
        }
        let seen = follower.join().unwrap();
        assert_eq!(seen, (0..N).collect::<Vec<_>>());
    }

    #[test]
    fn an_in_process_reader_follows_a_concurrent_writer() {
        follow(false);
    }

    #[test]
    fn a_cross_process_reader_follows_a_concurrent_writer() {
        follow(true);
    }
}
