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
        DEFAULT_MAX_FRAME, FRAME_HEADER_LEN, HEADER_LEN, Position, Record, decode_body, frame_crc,
        frame_len,
    },
    index, recovery,
    segment::{list_segments, read_header, segment_path},
    writer::Shared,
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
        index::locate(&self.dir, self.shared.as_deref(), segments, start)
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
                    Some(s) => {
                        // Retention may delete `s` between the listing and
                        // the open: then look again (see retention.rs).
                        match self.enter(s) {
                            Err(Error::Io { source, .. })
                                if source.kind() == std::io::ErrorKind::NotFound
                                    && !list_segments(&self.dir)?.contains(&s) => {}
                            other => other?,
                        }
                        continue;
                    }
                    None => return Ok(None),
                }
            }
            let cross_tail = self.shared.is_none() && !is_final;
            let Some(record) = self.read_frame(limit, cross_tail)? else {
                // An unfinished frame: look at the file again next time.
                self.limit = (self.offset, false);
                return Ok(None);
            };
            if record.seq() < self.next_seq {
                continue;
            }
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
    fn read_frame(&mut self, limit: u64, cross_tail: bool) -> Result<Option<Record>> {
        let remaining = limit - self.offset;
        let unfinished = |this: &mut Self, reason| -> Result<Option<Record>> {
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
                    return Ok(None);
                }
            }
            Err(this.corrupt(reason))
        };
        if remaining < FRAME_HEADER_LEN {
            return unfinished(self, "incomplete frame header");
        }
        let Some(file) = self.file.as_mut() else {
            return Ok(None);
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
        let mut body = vec![0u8; len as usize];
        if let Err(e) = file.read_exact(&mut body) {
            self.seek()?;
            return Err(Error::io(&self.path, e));
        }
        if crc32c::crc32c(&body) != frame_crc(&h) {
            self.seek()?;
            return unfinished(self, "checksum mismatch");
        }
        let position = self.next_position();
        let record = match decode_body(&body, self.codec, position) {
            Ok(r) => r,
            Err(reason) => return Err(self.corrupt(reason)),
        };
        if record.seq() < self.segment || self.last_read.is_some_and(|prev| record.seq() <= prev) {
            return Err(self.corrupt("sequence number out of order"));
        }
        self.last_read = Some(record.seq());
        self.offset += FRAME_HEADER_LEN + u64::from(len);
        Ok(Some(record))
    }
}

/// The first frame of segment `first_seq`.
fn first_frame(first_seq: u64) -> Position {
    Position {
        segment: first_seq,
        offset: HEADER_LEN,
    }
}

impl Iterator for Reader {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.read_next() {
            Ok(Some(r)) => Some(Ok(r)),
            Ok(None) => None,
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}
