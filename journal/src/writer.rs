//! The writer: [`Journal`], its options and sync policies, appends, segment
//! rolls, and the committed position it publishes to in-process readers.

use std::{
    fs::{File, OpenOptions},
    io::{Seek, SeekFrom, Write},
    ops::Range,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use evbus_core::{Envelope, Timestamp};
use serde::Serialize;

use crate::{
    codec::Codec,
    error::{Error, Result},
    format::{DEFAULT_MAX_FRAME, HEADER_LEN, MIN_BODY_LEN, Position, SegmentHeader, encode_frame},
    idempotency::{Appended, BatchAppend, Duplicate, IdempotencyWindow, Window},
    index::{self, ActiveIndex},
    reader::{Reader, Start},
    recovery::{self, OpenReport, RepairReport, Skipped, Tail, Truncation},
    retention::{self, Retention, RetentionReport},
    segment::{self, create_segment, list_segments, read_header, segment_path, sync_dir},
    shared::{Committed, Shared},
};

/// The default segment size limit: 64 MiB.
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 << 20;

/// When appended records are made durable (`fdatasync`).
///
/// Whatever the policy, every append is handed to the operating system
/// (one `write` per append or batch) before it returns, so records survive
/// a crash of the process; the policy decides what survives a power loss
/// or a kernel crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncPolicy {
    /// Never sync on append: the page cache only. Survives a process
    /// crash, not a power loss. [`Journal::flush`] hands everything to the
    /// OS and does not sync either.
    Never,
    /// Sync after every `n` records (`n ≥ 1`): a power loss loses at most
    /// the last `n - 1` acknowledged records.
    EveryRecords(u64),
    /// Sync on the first append (or flush) once this much time has passed
    /// since the last sync; a [`Recorder`](crate::Recorder) also syncs when
    /// the interval passes while it is idle.
    Interval(Duration),
    /// Sync every append or batch before it returns (group commit: one
    /// `fdatasync` per [`Journal::append_batch`]). The default.
    #[default]
    Always,
}

/// Options of a [`Journal`]: a builder, like
/// [`SubscribeOptions`](evbus_core::SubscribeOptions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalOptions {
    codec: Option<Codec>,
    sync: SyncPolicy,
    segment_size: u64,
    max_frame_size: u32,
    idempotency: IdempotencyWindow,
    retention: Retention,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions {
            codec: None,
            sync: SyncPolicy::default(),
            segment_size: DEFAULT_SEGMENT_SIZE,
            max_frame_size: DEFAULT_MAX_FRAME,
            idempotency: IdempotencyWindow::new(),
            retention: Retention::new(),
        }
    }
}

impl JournalOptions {
    /// Postcard (for a new journal; an existing one keeps its codec),
    /// [`SyncPolicy::Always`], 64 MiB segments, 16 MiB frames.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the payload codec. Opening an existing journal with another
    /// codec is an error ([`Error::CodecMismatch`]); without this call an
    /// existing journal keeps its own.
    #[must_use]
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = Some(codec);
        self
    }
    /// Sets the sync policy.
    #[must_use]
    pub fn sync(mut self, sync: SyncPolicy) -> Self {
        self.sync = sync;
        self
    }
    /// Sets the segment size limit in bytes: the writer starts a new segment
    /// when the next frame would take the current one past it (a segment
    /// always takes at least one frame).
    #[must_use]
    pub fn segment_size(mut self, bytes: u64) -> Self {
        self.segment_size = bytes;
        self
    }
    /// Sets the maximum frame body size (at least
    /// [`MIN_BODY_LEN`](crate::format::MIN_BODY_LEN) bytes). It is stored
    /// in each new segment's header; readers and recovery treat a longer
    /// length field as damage, so never allocate more than a segment's
    /// maximum for one frame. Appends to a segment made with a smaller
    /// maximum keep to that one; a larger value takes effect from the next
    /// segment.
    #[must_use]
    pub fn max_frame_size(mut self, bytes: u32) -> Self {
        self.max_frame_size = bytes;
        self
    }
    /// Sets the idempotency window: a record whose idempotency key was
    /// appended within it is not appended again (see
    /// [`Journal::append_outcome`]). Off by default.
    #[must_use]
    pub fn idempotency(mut self, window: IdempotencyWindow) -> Self {
        self.idempotency = window;
        self
    }
    /// Sets the retention policy, applied after every segment roll and by
    /// [`Journal::apply_retention`]. Off by default.
    #[must_use]
    pub fn retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }
    /// The idempotency window.
    pub fn get_idempotency(&self) -> IdempotencyWindow {
        self.idempotency
    }
    /// The retention policy.
    pub fn get_retention(&self) -> Retention {
        self.retention
    }
    /// The codec set with [`codec`](JournalOptions::codec), if any.
    pub fn get_codec(&self) -> Option<Codec> {
        self.codec
    }
    /// The sync policy.
    pub fn get_sync(&self) -> SyncPolicy {
        self.sync
    }
    /// The segment size limit.
    pub fn get_segment_size(&self) -> u64 {
        self.segment_size
    }
    /// The maximum frame body size.
    pub fn get_max_frame_size(&self) -> u32 {
        self.max_frame_size
    }

    fn validate(&self) -> Result<()> {
        if self.max_frame_size < MIN_BODY_LEN {
            return Err(Error::InvalidOptions {
                reason: "max_frame_size is below the smallest frame",
            });
        }
        if self.idempotency.get_records() == Some(0) {
            return Err(Error::InvalidOptions {
                reason: "IdempotencyWindow::records(0): n must be at least 1",
            });
        }
        if matches!(self.sync, SyncPolicy::EveryRecords(0)) {
            return Err(Error::InvalidOptions {
                reason: "SyncPolicy::EveryRecords(0): n must be at least 1",
            });
        }
        Ok(())
    }
}

/// A journal open for writing: the single writer of a directory.
///
/// Appends assign gapless sequence numbers from 0, encode each envelope as
/// one frame (see [`format`](crate::format)), and write each append or batch
/// with one `write` call, then sync per the [`SyncPolicy`].
///
/// One writer per directory: the journal holds the advisory lock on
/// `<dir>/LOCK` until it is dropped or closed; a second writer, in this
/// process or another, gets [`Error::Locked`].
///
/// Dropping the journal flushes it ([`Journal::flush`]), ignoring errors;
/// call [`Journal::close`] to see them.
pub struct Journal {
    shared: Arc<Shared>,
    options: JournalOptions,
    _lock: File,
    file: File,
    path: PathBuf,
    segment: u64,
    /// The largest frame body the current segment takes (its header's).
    seg_max: u32,
    len: u64,
    next_seq: u64,
    unsynced: u64,
    last_sync: Instant,
    /// Reused by appends: the encoded frames, and each one's end.
    buf: Vec<u8>,
    ends: Vec<usize>,
    report: OpenReport,
    poisoned: bool,
    syncs: u64,
    /// The idempotency keys in the window.
    idem: Window,
    /// How many envelopes of the last batch were handled (appended, or
    /// found duplicates): all of them unless the batch failed.
    consumed: usize,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.shared.dir)
            .field("segment", &self.path)
            .field("next_seq", &self.next_seq)
            .finish_non_exhaustive()
    }
}

/// Opens an existing segment for reading and writing, with its length.
fn open_segment_rw(path: &Path) -> Result<(File, u64)> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    Ok((file, len))
}

fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join("LOCK");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked { path }),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(path, e)),
    }
}

impl Journal {
    /// Creates a new journal in `dir` (made if missing).
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyExists`] if `dir` holds segments; [`Error::Locked`]
    /// if another writer holds it; I/O errors.
    pub fn create(dir: impl AsRef<Path>, options: JournalOptions) -> Result<Journal> {
        let dir = dir.as_ref();
        options.validate()?;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let lock = lock_dir(dir)?;
        if !list_segments(dir)?.is_empty() {
            return Err(Error::AlreadyExists {
                dir: dir.to_path_buf(),
            });
        }
        Self::fresh(dir, options, lock)
    }

    /// Opens the journal in `dir`, or creates it if `dir` holds no segment.
    ///
    /// The last segment is scanned: a torn tail is cut off and reported in
    /// [`Journal::open_report`].
    ///
    /// # Errors
    ///
    /// [`Error::Locked`] if another writer holds the journal;
    /// [`Error::Corrupt`] if the last segment has a damaged frame followed by
    /// valid ones (see [`Journal::repair`]); header errors
    /// ([`Error::BadMagic`], [`Error::UnsupportedVersion`],
    /// [`Error::UnknownCodec`], [`Error::BadHeader`]);
    /// [`Error::CodecMismatch`]; I/O errors.
    pub fn open(dir: impl AsRef<Path>, options: JournalOptions) -> Result<Journal> {
        let dir = dir.as_ref();
        options.validate()?;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let lock = lock_dir(dir)?;
        segment::remove_leftovers(dir)?;
        index::remove_temporaries(dir)?;
        let segments = list_segments(dir)?;
        let Some(&last) = segments.last() else {
            return Self::fresh(dir, options, lock);
        };
        let path = segment_path(dir, last);
        let (mut file, file_len) = open_segment_rw(&path)?;
        let mut report = OpenReport::default();
        let header = if file_len < HEADER_LEN {
            // A segment whose header write was cut short: nothing was
            // ever appended to it. Write the header again.
            let codec = match segments.len() {
                1 => options.codec.unwrap_or_default(),
                _ => {
                    let prev = segments[segments.len() - 2];
                    let prev_path = segment_path(dir, prev);
                    let mut f = File::open(&prev_path).map_err(|e| Error::io(&prev_path, e))?;
                    read_header(&mut f, &prev_path, prev)?.codec
                }
            };
            let header = SegmentHeader {
                codec,
                max_frame: options.max_frame_size,
                first_seq: last,
                created: Timestamp::now(),
            };
            let (f, _) = create_segment(dir, &header)?;
            f.sync_all().map_err(|e| Error::io(&path, e))?;
            file = f;
            report.truncated = Some(Truncation {
                segment: path.clone(),
                offset: 0,
                bytes: file_len,
            });
            header
        } else {
            read_header(&mut file, &path, last)?
        };
        if let Some(requested) = options.codec
            && requested != header.codec
        {
            return Err(Error::CodecMismatch {
                requested,
                found: header.codec,
            });
        }
        let file_len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        let max = header.max_frame;
        let scan = match recovery::classify(&file, &path, file_len, last, max)? {
            Tail::Clean(scan) => scan,
            Tail::Torn(scan) => {
                file.set_len(scan.end).map_err(|e| Error::io(&path, e))?;
                file.sync_all().map_err(|e| Error::io(&path, e))?;
                report.truncated = Some(Truncation {
                    segment: path.clone(),
                    offset: scan.end,
                    bytes: file_len - scan.end,
                });
                scan
            }
            Tail::Corrupt { scan, reason, .. } => {
                return Err(Error::Corrupt {
                    segment: path,
                    offset: scan.end,
                    reason,
                });
            }
        };
        let active = index::scan_active(&file, &path, last, scan.end, max)?;
        file.seek(SeekFrom::Start(scan.end))
            .map_err(|e| Error::io(&path, e))?;
        let seg_max = max.min(options.max_frame_size);
        let shared = Arc::new(Shared::new(
            dir.to_path_buf(),
            header.codec,
            ActiveIndex::new(active),
            Committed {
                next_seq: scan.next_seq,
                end: Position {
                    segment: last,
                    offset: scan.end,
                },
                durable_seq: scan.next_seq,
                closed: false,
            },
        ));
        let mut idem = Window::new(options.idempotency);
        idem.rebuild(&shared, scan.next_seq)?;
        Ok(Journal {
            shared,
            options,
            _lock: lock,
            file,
            path,
            segment: last,
            seg_max,
            len: scan.end,
            next_seq: scan.next_seq,
            unsynced: 0,
            last_sync: Instant::now(),
            buf: Vec::new(),
            ends: Vec::new(),
            report,
            poisoned: false,
            syncs: 0,
            idem,
            consumed: 0,
        })
    }

    fn fresh(dir: &Path, options: JournalOptions, lock: File) -> Result<Journal> {
        let idempotency = options.idempotency;
        let codec = options.codec.unwrap_or_default();
        let seg_max = options.max_frame_size;
        let header = SegmentHeader {
            codec,
            max_frame: options.max_frame_size,
            first_seq: 0,
            created: Timestamp::now(),
        };
        let (file, path) = create_segment(dir, &header)?;
        if options.sync != SyncPolicy::Never {
            file.sync_all().map_err(|e| Error::io(&path, e))?;
            sync_dir(dir)?;
        }
        let shared = Arc::new(Shared::new(
            dir.to_path_buf(),
            codec,
            ActiveIndex::new(index::Builder::new(0)),
            Committed {
                next_seq: 0,
                end: Position {
                    segment: 0,
                    offset: HEADER_LEN,
                },
                durable_seq: 0,
                closed: false,
            },
        ));
        Ok(Journal {
            shared,
            options,
            _lock: lock,
            file,
            path,
            segment: 0,
            seg_max,
            len: HEADER_LEN,
            next_seq: 0,
            unsynced: 0,
            last_sync: Instant::now(),
            buf: Vec::new(),
            ends: Vec::new(),
            report: OpenReport::default(),
            poisoned: false,
            syncs: 0,
            idem: Window::new(idempotency),
            consumed: 0,
        })
    }

    /// What opening found and fixed (a torn tail cut off).
    pub fn open_report(&self) -> &OpenReport {
        &self.report
    }

    /// The journal's directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The payload codec.
    pub fn codec(&self) -> Codec {
        self.shared.codec
    }

    /// The options the journal was opened with.
    pub fn options(&self) -> &JournalOptions {
        &self.options
    }

    /// The sequence number the next appended record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Where the next frame goes: the current segment and its length.
    pub fn end(&self) -> Position {
        Position {
            segment: self.segment,
            offset: self.len,
        }
    }

    /// A reader over this journal from `start`, that reads up to what this
    /// writer has committed, including records appended after this call.
    ///
    /// # Errors
    ///
    /// I/O errors and header errors of the segments.
    pub fn reader(&self, start: Start) -> Result<Reader> {
        Reader::in_process(Arc::clone(&self.shared), start)
    }

    /// How many times this handle synced a segment (`fdatasync`).
    pub fn syncs(&self) -> u64 {
        self.syncs
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Appends one record; returns its sequence number. Syncs per the
    /// policy before returning.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`], [`Error::FieldTooLong`] or
    /// [`Error::FrameTooLarge`] (nothing is written); I/O errors (the
    /// partial write is undone, or the journal is poisoned:
    /// [`Error::Poisoned`] from then on).
    ///
    /// With an [idempotency window](JournalOptions::idempotency), a record
    /// whose key is a duplicate is not appended and the *original*'s
    /// sequence number is returned; [`Journal::append_outcome`] tells the
    /// two apart.
    pub fn append<T: Serialize>(&mut self, envelope: &Envelope<T>) -> Result<u64> {
        self.append_outcome(envelope).map(|a| a.seq())
    }

    /// Appends one record unless its idempotency key was appended within
    /// the [window](JournalOptions::idempotency): says which happened.
    ///
    /// # Errors
    ///
    /// As [`Journal::append`].
    pub fn append_outcome<T: Serialize>(&mut self, envelope: &Envelope<T>) -> Result<Appended> {
        let batch = self.append_batch_outcome(std::iter::once(envelope))?;
        Ok(match batch.duplicates.first() {
            Some(d) => Appended::Duplicate {
                original_seq: d.original_seq,
            },
            None => Appended::New(batch.seqs.start),
        })
    }

    /// Duplicates (by idempotency key) not appended since the journal was
    /// opened.
    pub fn duplicates(&self) -> u64 {
        self.idem.duplicates
    }

    /// How many envelopes of the last batch were handled (appended or
    /// found duplicates): after a failed batch, where to retry from.
    pub(crate) fn batch_consumed(&self) -> usize {
        self.consumed
    }

    /// Appends a batch of records, all or nothing as far as encoding goes:
    /// every envelope is encoded first, then the batch is written with one
    /// `write` per segment it lands in, and synced once under
    /// [`SyncPolicy::Always`] (group commit). Returns the sequence numbers
    /// assigned (empty for an empty batch); duplicates by idempotency key
    /// are left out (see [`Journal::append_batch_outcome`]).
    ///
    /// # Errors
    ///
    /// As [`Journal::append`]; an encoding error writes nothing. A batch
    /// that spans segments is written one segment at a time: after an I/O
    /// error the chunks before the failing one stay appended
    /// ([`Journal::next_seq`] says how far).
    pub fn append_batch<'a, T, I>(&mut self, envelopes: I) -> Result<Range<u64>>
    where
        T: Serialize + 'a,
        I: IntoIterator<Item = &'a Envelope<T>>,
    {
        self.append_batch_outcome(envelopes).map(|b| b.seqs)
    }

    /// [`Journal::append_batch`], also listing the records not appended
    /// because their idempotency key was appended within the
    /// [window](JournalOptions::idempotency) (before, or earlier in the
    /// batch).
    ///
    /// # Errors
    ///
    /// As [`Journal::append_batch`].
    pub fn append_batch_outcome<'a, T, I>(&mut self, envelopes: I) -> Result<BatchAppend>
    where
        T: Serialize + 'a,
        I: IntoIterator<Item = &'a Envelope<T>>,
    {
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        let first = self.next_seq;
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        // Each frame's end in buf, to split the batch at segment rolls.
        let mut ends = std::mem::take(&mut self.ends);
        ends.clear();
        let codec = self.shared.codec;
        let max = self.seg_max;
        let mut duplicates = Vec::new();
        // The batch index of each frame.
        let mut frame_index = Vec::new();
        self.consumed = 0;
        let mut seq = first;
        for (index, e) in envelopes.into_iter().enumerate() {
            // Idempotency hook (see idempotency.rs).
            let key = e.idempotency_key();
            if let Some(original_seq) = self.idem.check(key, seq, e.time().as_nanos()) {
                duplicates.push(Duplicate {
                    index,
                    original_seq,
                });
                continue;
            }
            if let Err(err) = encode_frame(&mut buf, seq, e, codec, max) {
                self.buf = buf;
                self.ends = ends;
                self.idem.rollback(first);
                return Err(err);
            }
            ends.push(buf.len());
            frame_index.push(index);
            // A damaged header can start a segment near `u64::MAX`: a typed
            // error, never an overflow (found by fuzz/frame_reader).
            let Some(next) = seq.checked_add(1) else {
                self.buf = buf;
                self.ends = ends;
                self.idem.rollback(first);
                return Err(Error::SeqExhausted);
            };
            seq = next;
        }
        let inputs = frame_index.len() + duplicates.len();
        let result = self.write_frames(&buf, &ends, first);
        self.buf = buf;
        self.ends = ends;
        // The inputs before the first frame that did not land are done.
        let landed = (self.next_seq - first) as usize;
        self.consumed = frame_index.get(landed).copied().unwrap_or(inputs);
        let done = duplicates.partition_point(|d| d.index < self.consumed);
        self.idem.duplicates += done as u64;
        if result.is_err() {
            self.idem.rollback(self.next_seq);
        }
        result?;
        Ok(BatchAppend {
            seqs: first..self.next_seq,
            duplicates,
        })
    }

    /// Writes encoded frames, rolling segments as needed.
    fn write_frames(&mut self, buf: &[u8], ends: &[usize], first: u64) -> Result<()> {
        let mut i = 0; // next frame index
        let mut start = 0; // its start in buf
        while i < ends.len() {
            // Take as many frames as fit in the current segment (at least
            // one if the segment holds no frame yet).
            let room = self.options.segment_size.saturating_sub(self.len);
            let mut j = i;
            while j < ends.len() && (ends[j] - start) as u64 <= room {
                j += 1;
            }
            if j == i {
                if self.len > HEADER_LEN {
                    self.roll(first + i as u64)?;
                    continue;
                }
                j = i + 1;
            }
            let chunk = &buf[start..ends[j - 1]];
            self.write_chunk(chunk)?;
            // Index hook (see index.rs).
            let at = self.len - chunk.len() as u64;
            self.shared.index.on_written(self.segment, chunk, at);
            self.next_seq = first + j as u64;
            self.unsynced += (j - i) as u64;
            self.maybe_sync(false)?;
            self.publish();
            start = ends[j - 1];
            i = j;
        }
        Ok(())
    }

    fn write_chunk(&mut self, chunk: &[u8]) -> Result<()> {
        if let Err(e) = self.file.write_all(chunk) {
            // Undo the partial write, so the file ends on a frame boundary.
            let undone = self.file.set_len(self.len).is_ok()
                && self.file.seek(SeekFrom::Start(self.len)).is_ok();
            if !undone {
                self.poisoned = true;
            }
            return Err(Error::io(&self.path, e));
        }
        self.len += chunk.len() as u64;
        Ok(())
    }

    fn publish(&self) {
        let durable = if self.unsynced == 0 {
            self.next_seq
        } else {
            self.next_seq - self.unsynced
        };
        self.shared.publish(Committed {
            next_seq: self.next_seq,
            end: Position {
                segment: self.segment,
                offset: self.len,
            },
            durable_seq: durable,
            closed: false,
        });
    }

    /// Syncs if the policy says so now (or `force`, unless `Never`).
    fn maybe_sync(&mut self, force: bool) -> Result<()> {
        if self.unsynced == 0 {
            return Ok(());
        }
        let due = match self.options.sync {
            SyncPolicy::Never => false,
            SyncPolicy::Always => true,
            SyncPolicy::EveryRecords(n) => force || self.unsynced >= n,
            SyncPolicy::Interval(d) => force || self.last_sync.elapsed() >= d,
        };
        if due {
            self.sync_now()?;
        } else if self.options.sync == SyncPolicy::Never {
            // The page cache is the policy's durability.
            self.unsynced = 0;
        }
        Ok(())
    }

    /// `fdatasync`. A failed sync poisons the journal: after it, the kernel
    /// may have dropped the dirty pages and report success on a retry, so
    /// nothing written before can be called durable any more.
    fn sync_now(&mut self) -> Result<()> {
        if let Err(e) = self.file.sync_data() {
            self.poisoned = true;
            return Err(Error::io(&self.path, e));
        }
        self.unsynced = 0;
        self.last_sync = Instant::now();
        self.syncs += 1;
        Ok(())
    }

    /// Under [`SyncPolicy::Interval`], with records not yet synced: how long
    /// until a sync is due. `None` otherwise.
    pub(crate) fn sync_due_in(&self) -> Option<Duration> {
        match self.options.sync {
            SyncPolicy::Interval(d) if self.unsynced > 0 => {
                Some(d.saturating_sub(self.last_sync.elapsed()))
            }
            _ => None,
        }
    }

    /// Syncs if the interval policy's time has come (for an idle recorder).
    pub(crate) fn sync_if_due(&mut self) -> Result<()> {
        self.maybe_sync(false)?;
        self.publish();
        Ok(())
    }

    /// Starts a new segment whose first record is `first_seq`.
    fn roll(&mut self, first_seq: u64) -> Result<()> {
        // The old segment is complete: make it durable under any policy
        // but `Never` (its records would otherwise wait for no later sync).
        if self.options.sync != SyncPolicy::Never && self.unsynced > 0 {
            self.sync_now()?;
        }
        let header = SegmentHeader {
            codec: self.shared.codec,
            max_frame: self.options.max_frame_size,
            first_seq,
            created: Timestamp::now(),
        };
        let (file, path) = create_segment(&self.shared.dir, &header)?;
        if self.options.sync != SyncPolicy::Never {
            file.sync_data().map_err(|e| Error::io(&path, e))?;
            sync_dir(&self.shared.dir)?;
        }
        // Index hook: seal the old segment's index into its sidecar.
        self.shared.index.on_roll(&self.shared.dir, first_seq);
        self.file = file;
        self.path = path;
        self.segment = first_seq;
        self.seg_max = self.options.max_frame_size;
        self.len = HEADER_LEN;
        self.publish();
        // Retention hook, best effort: `apply_retention` reports errors.
        let _ = self.apply_retention();
        Ok(())
    }

    /// Makes everything appended before the call durable under the policy:
    /// synced (`fdatasync`) under every policy but [`SyncPolicy::Never`],
    /// where every append is already in the OS's hands.
    ///
    /// # Errors
    ///
    /// I/O errors of the sync; [`Error::Poisoned`].
    pub fn flush(&mut self) -> Result<()> {
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        self.maybe_sync(true)?;
        self.publish();
        Ok(())
    }

    /// Flushes and closes the journal, releasing the lock.
    ///
    /// # Errors
    ///
    /// As [`Journal::flush`].
    pub fn close(mut self) -> Result<()> {
        self.flush()
    }

    /// Repairs the journal in `dir`: in every segment, each damaged range
    /// (from an invalid frame to the next valid frame) is removed, and a
    /// torn tail of the last segment is cut off. Records in removed ranges
    /// are lost; their sequence numbers stay unused (a gap), which the
    /// report lists.
    ///
    /// A damaged segment is rewritten to a temporary file, synced, and
    /// renamed over the original. Takes the writer's lock.
    ///
    /// # Errors
    ///
    /// [`Error::Locked`] if a writer holds the journal; [`Error::NotFound`]
    /// without segments; header errors; I/O errors.
    pub fn repair(dir: impl AsRef<Path>, options: JournalOptions) -> Result<RepairReport> {
        let dir = dir.as_ref();
        options.validate()?;
        let _lock = lock_dir(dir)?;
        segment::remove_leftovers(dir)?;
        let segments = list_segments(dir)?;
        if segments.is_empty() {
            return Err(Error::NotFound {
                dir: dir.to_path_buf(),
            });
        }
        let mut report = RepairReport::default();
        let mut next_seq = 0;
        for (k, &first) in segments.iter().enumerate() {
            let last = k + 1 == segments.len();
            let path = segment_path(dir, first);
            let (mut file, file_len) = open_segment_rw(&path)?;
            if last && file_len < HEADER_LEN {
                // A torn header: opening rewrites it.
                continue;
            }
            let max = read_header(&mut file, &path, first)?.max_frame;
            next_seq = next_seq.max(first);
            // Valid ranges to keep, and skipped ranges.
            let mut keep: Vec<(u64, u64)> = Vec::new();
            let mut skipped: Vec<Skipped> = Vec::new();
            let mut at = HEADER_LEN;
            let mut torn = None;
            loop {
                let scan =
                    recovery::scan(&file, &path, at, file_len, next_seq, max, |_, _| Ok(()))?;
                keep.push((at, scan.end));
                next_seq = scan.next_seq;
                let Some((bad_at, reason)) = scan.bad else {
                    break;
                };
                match recovery::find_next_valid(&file, &path, bad_at, file_len, next_seq, max)? {
                    Some(next) => {
                        skipped.push(Skipped {
                            segment: path.clone(),
                            offset: bad_at,
                            bytes: next.offset - bad_at,
                            reason,
                        });
                        at = next.offset;
                    }
                    None => {
                        torn = Some((bad_at, reason));
                        break;
                    }
                }
            }
            if skipped.is_empty() {
                if let Some((bad_at, reason)) = torn {
                    if last {
                        file.set_len(bad_at).map_err(|e| Error::io(&path, e))?;
                        file.sync_all().map_err(|e| Error::io(&path, e))?;
                        report.truncated = Some(Truncation {
                            segment: path.clone(),
                            offset: bad_at,
                            bytes: file_len - bad_at,
                        });
                    } else {
                        rewrite(dir, &path, &mut file, &keep)?;
                        report.skipped.push(Skipped {
                            segment: path.clone(),
                            offset: bad_at,
                            bytes: file_len - bad_at,
                            reason,
                        });
                    }
                }
                continue;
            }
            if let Some((bad_at, reason)) = torn {
                if last {
                    report.truncated = Some(Truncation {
                        segment: path.clone(),
                        offset: bad_at,
                        bytes: file_len - bad_at,
                    });
                } else {
                    skipped.push(Skipped {
                        segment: path.clone(),
                        offset: bad_at,
                        bytes: file_len - bad_at,
                        reason,
                    });
                }
            }
            rewrite(dir, &path, &mut file, &keep)?;
            report.skipped.extend(skipped);
        }
        Ok(report)
    }
}

/// Rewrites a segment with only its header and the `keep` ranges.
fn rewrite(dir: &Path, path: &Path, file: &mut File, keep: &[(u64, u64)]) -> Result<()> {
    use std::io::Read;
    let tmp = path.with_extension("seg.repair");
    let mut out = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let mut copy = |from: u64, to: u64| -> Result<()> {
        file.seek(SeekFrom::Start(from))
            .map_err(|e| Error::io(path, e))?;
        let mut take = (&mut *file).take(to - from);
        std::io::copy(&mut take, &mut out).map_err(|e| Error::io(&tmp, e))?;
        Ok(())
    };
    copy(0, HEADER_LEN)?;
    for &(from, to) in keep {
        copy(from, to)?;
    }
    out.sync_all().map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    segment::sync_dir(dir)
}

impl Drop for Journal {
    fn drop(&mut self) {
        if !self.poisoned {
            let _ = self.maybe_sync(true);
            // Index hook: the active segment's sidecar (see index.rs).
            self.shared.index.on_close(&self.shared.dir);
        }
        let mut c = self.shared.committed();
        c.closed = true;
        self.shared.publish(c);
    }
}

impl Journal {
    /// Applies the [retention policy](JournalOptions::retention) now,
    /// measuring ages from the current time: deletes whole sealed segments
    /// (never the active one), oldest first, with their index sidecars.
    /// Readers in deleted segments skip ahead (see [`Retention`]).
    ///
    /// # Errors
    ///
    /// I/O errors; [`Error::Corrupt`] if a segment whose age must be known
    /// has a damaged frame and no valid index.
    pub fn apply_retention(&mut self) -> Result<RetentionReport> {
        self.apply_retention_at(Timestamp::now())
    }

    /// [`Journal::apply_retention`] with ages measured from `now` (for
    /// tests and tools with their own clock).
    ///
    /// # Errors
    ///
    /// As [`Journal::apply_retention`].
    pub fn apply_retention_at(&mut self, now: Timestamp) -> Result<RetentionReport> {
        let shared = self.shared();
        retention::apply(
            &shared.dir,
            &shared.index,
            &self.options().get_retention(),
            self.end().segment,
            self.next_seq(),
            now,
        )
    }
}

#[cfg(test)]
mod tests {
    use std::thread;

    use super::*;

    #[test]
    fn a_waiter_wakes_when_the_record_is_committed_or_the_writer_goes() {
        let dir = tempfile::tempdir().unwrap();
        let mut j =
            Journal::create(dir.path(), JournalOptions::new().sync(SyncPolicy::Never)).unwrap();
        let shared = Arc::clone(j.shared());
        let waiter = thread::spawn(move || {
            let first = shared.wait_for_seq(1, None);
            let last = shared.wait_for_seq(u64::MAX, None);
            (first, last)
        });
        let e = Envelope::on("a.b", 1u8).unwrap();
        j.append_batch([&e, &e, &e]).unwrap();
        drop(j);
        let (first, last) = waiter.join().unwrap();
        assert!(first.next_seq >= 2);
        assert!(last.closed);
        assert_eq!(last.next_seq, 3);
        assert_eq!(last.durable_seq, 3);
    }

    #[test]
    fn a_deadline_ends_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::create(dir.path(), JournalOptions::new()).unwrap();
        let c = j.shared().wait_for_seq(0, Some(Instant::now()));
        assert_eq!((c.next_seq, c.closed), (0, false));
    }
}
