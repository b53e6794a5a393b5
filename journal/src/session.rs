//! Session files: a recorded session as JSON Lines, for sharing and tests.
//!
//! # Format
//!
//! A session file is UTF-8 text, one JSON value per line (`\n`, or
//! `\r\n`), in this order:
//!
//! 1. a header object:
//!    `{"format":"evbus-session","version":1,"topics":["orders.placed",..],"count":2,"created":1732..}`
//!    - `format`: always [`SESSION_FORMAT`];
//!    - `version`: the format version, [`SESSION_VERSION`]; a reader refuses
//!      any other with [`SessionError::UnsupportedVersion`];
//!    - `topics`: every topic that occurs in the file, sorted, each once;
//!    - `count`: how many envelope lines follow (a truncated file is caught
//!      by [`SessionError::CountMismatch`]);
//!    - `created`: when the file was written, in nanoseconds since the Unix
//!      epoch (a [`Timestamp`]);
//! 2. `count` lines, each one [`Envelope<T>`] in its serde form: one flat
//!    object with `id`, `time`, `topic`, `correlation_id`, `causation_id`,
//!    `session_id`, `source`, `tenant`, `tags`, `idempotency_key`, `replay`
//!    and `payload`.
//!
//! Line `n` of the file (1-based, the header is line 1) holds the envelope
//! with recorded sequence number `n - 2`: the readers hand out that number
//! with each envelope, so a [`Replay`](crate::Replay) of a session marks
//! every event with its place in the file.
//!
//! # Reading untrusted files
//!
//! [`SessionReader`] never panics on its input and never allocates more
//! than [`ReadOptions::max_line_len`] for a line (16 MiB by default): a
//! longer line is read through in small chunks, discarded, and reported as
//! [`SessionError::LineTooLong`]. Every bad line gives a typed error that
//! names its line number; with [`ReadOptions::skip_bad_lines`] the reader
//! counts and skips bad lines instead. An I/O error ends the iteration.
//!
//! # Examples
//!
//! ```
//! # #![cfg_attr(miri, allow(unused))]
//! use evbus::Envelope;
//! use evbus::journal::{SessionReader, SessionWriter};
//!
//! # #[cfg(not(miri))] { // Miri's isolation has no wall clock.
//! let a = Envelope::on("orders.placed", 7u32)?;
//! let b = a.caused_on("orders.shipped", 8u32)?;
//! let mut writer = SessionWriter::new(Vec::new());
//! writer.write(&a)?;
//! writer.write(&b)?;
//! let (bytes, header) = writer.finish()?;
//! assert_eq!(header.topics, ["orders.placed", "orders.shipped"]);
//!
//! let reader = SessionReader::<_, u32>::new(&bytes[..])?;
//! let back: Vec<_> = reader.collect::<Result<_, _>>()?;
//! assert_eq!(back, [(0, a), (1, b)]);
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::{
    borrow::Borrow,
    collections::BTreeSet,
    fmt,
    fs::{self, File},
    io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write},
    marker::PhantomData,
    path::{Path, PathBuf},
};

use evbus_core::{Envelope, Timestamp, validate_topic};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// The `format` field of every session header.
pub const SESSION_FORMAT: &str = "evbus-session";

/// The session format version this crate writes and reads.
pub const SESSION_VERSION: u32 = 1;

/// The default longest line a reader accepts and a writer writes: 16 MiB.
pub const DEFAULT_MAX_LINE_LEN: usize = 16 << 20;

/// The header line of a session file. See the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionHeader {
    /// Always [`SESSION_FORMAT`].
    pub format: String,
    /// The format version.
    pub version: u32,
    /// Every topic in the file, sorted, each once.
    pub topics: Vec<String>,
    /// How many envelope lines follow the header.
    pub count: u64,
    /// When the file was written.
    pub created: Timestamp,
}

/// What went wrong writing or reading a session. Every error about a line
/// names it (1-based; the header is line 1).
#[derive(Debug)]
#[non_exhaustive]
pub enum SessionError {
    /// Reading or writing failed. `line` is the line being read, if any.
    Io {
        /// The line being read, if reading.
        line: Option<u64>,
        /// The I/O error.
        source: io::Error,
    },
    /// The input is empty: no header line.
    MissingHeader,
    /// The first line is not a session header.
    BadHeader {
        /// What is wrong with it.
        reason: String,
    },
    /// The header's version is not [`SESSION_VERSION`].
    UnsupportedVersion {
        /// The version in the file.
        found: u64,
        /// The version this crate reads.
        supported: u32,
    },
    /// A line is longer than the limit (it was read through and discarded).
    LineTooLong {
        /// The line number.
        line: u64,
        /// The limit, in bytes.
        limit: usize,
    },
    /// A line is not an envelope (bad JSON, a missing or unknown field, a
    /// bad topic, an empty line, ...).
    BadLine {
        /// The line number.
        line: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// An envelope's topic is not listed in the header.
    UnlistedTopic {
        /// The line number.
        line: u64,
        /// The topic.
        topic: String,
    },
    /// The file holds another number of envelope lines than its header
    /// says: it was truncated or extended.
    CountMismatch {
        /// The header's count.
        expected: u64,
        /// The envelope lines found (good and bad).
        found: u64,
    },
    /// An envelope could not be encoded as JSON (its payload's `Serialize`
    /// failed), or its line would be longer than the limit.
    Encode {
        /// What went wrong.
        reason: String,
    },
}

impl SessionError {
    /// The line the error is about, if it is about one.
    pub fn line(&self) -> Option<u64> {
        match self {
            Self::Io { line, .. } => *line,
            Self::BadHeader { .. } | Self::UnsupportedVersion { .. } => Some(1),
            Self::LineTooLong { line, .. }
            | Self::BadLine { line, .. }
            | Self::UnlistedTopic { line, .. } => Some(*line),
            _ => None,
        }
    }

    fn io(line: Option<u64>, source: io::Error) -> Self {
        Self::Io { line, source }
    }
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io {
                line: Some(line),
                source,
            } => write!(f, "session i/o error at line {line}: {source}"),
            Self::Io { line: None, source } => write!(f, "session i/o error: {source}"),
            Self::MissingHeader => f.write_str("not a session: the input is empty"),
            Self::BadHeader { reason } => write!(f, "not a session header (line 1): {reason}"),
            Self::UnsupportedVersion { found, supported } => write!(
                f,
                "unsupported session format version {found} (this reader reads version {supported})"
            ),
            Self::LineTooLong { line, limit } => {
                write!(f, "line {line} is longer than {limit} bytes")
            }
            Self::BadLine { line, reason } => write!(f, "line {line} is not an envelope: {reason}"),
            Self::UnlistedTopic { line, topic } => write!(
                f,
                "line {line} has topic {topic:?}, which the session header does not list"
            ),
            Self::CountMismatch { expected, found } => write!(
                f,
                "the session header counts {expected} envelopes but the file holds {found}"
            ),
            Self::Encode { reason } => write!(f, "cannot encode an envelope: {reason}"),
        }
    }
}

impl std::error::Error for SessionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Where a writer keeps the envelope lines until it knows the header.
enum Spool {
    Memory(Vec<u8>),
    File(BufWriter<File>),
}

/// Writes a session: collects envelopes, then writes the header and the
/// envelope lines to `W` on [`finish`](SessionWriter::finish).
///
/// The header lists the topics and the count, so it can only be written
/// once every envelope is known: [`SessionWriter::new`] keeps the encoded
/// lines in memory until then; [`write_session`] keeps them in a temporary
/// file next to the target instead.
pub struct SessionWriter<W: Write> {
    out: W,
    spool: Spool,
    topics: BTreeSet<String>,
    count: u64,
    created: Option<Timestamp>,
    max_line_len: usize,
    line: Vec<u8>,
}

impl<W: Write> fmt::Debug for SessionWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionWriter")
            .field("count", &self.count)
            .field("topics", &self.topics.len())
            .finish_non_exhaustive()
    }
}

impl<W: Write> SessionWriter<W> {
    /// A writer to `out` that keeps the envelope lines in memory until
    /// [`finish`](SessionWriter::finish).
    pub fn new(out: W) -> Self {
        Self::with_spool(out, Spool::Memory(Vec::new()))
    }

    fn with_spool(out: W, spool: Spool) -> Self {
        Self {
            out,
            spool,
            topics: BTreeSet::new(),
            count: 0,
            created: None,
            max_line_len: DEFAULT_MAX_LINE_LEN,
            line: Vec::new(),
        }
    }

    /// Sets the header's `created` time (the time of `finish` by default).
    #[must_use]
    pub fn created(mut self, time: Timestamp) -> Self {
        self.created = Some(time);
        self
    }

    /// Sets the longest line this writer writes ([`DEFAULT_MAX_LINE_LEN`]
    /// by default), so it never writes a file a reader with the same limit
    /// refuses.
    #[must_use]
    pub fn max_line_len(mut self, limit: usize) -> Self {
        self.max_line_len = limit;
        self
    }

    /// Adds one envelope. Its replay mark, if any, is kept.
    ///
    /// # Errors
    ///
    /// [`SessionError::Encode`] if the payload cannot be encoded or the
    /// line would be too long (the envelope is then not added);
    /// [`SessionError::Io`] if the spool file cannot be written.
    pub fn write<T: Serialize>(&mut self, envelope: &Envelope<T>) -> Result<(), SessionError> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, envelope).map_err(|e| SessionError::Encode {
            reason: e.to_string(),
        })?;
        if self.line.len() > self.max_line_len {
            return Err(SessionError::Encode {
                reason: format!(
                    "its line has {} bytes, more than the limit of {}",
                    self.line.len(),
                    self.max_line_len
                ),
            });
        }
        self.line.push(b'\n');
        match &mut self.spool {
            Spool::Memory(buf) => buf.extend_from_slice(&self.line),
            Spool::File(file) => file
                .write_all(&self.line)
                .map_err(|e| SessionError::io(None, e))?,
        }
        if !self.topics.contains(envelope.topic()) {
            self.topics.insert(envelope.topic().to_owned());
        }
        self.count += 1;
        Ok(())
    }

    /// Adds every envelope of `envelopes`, in order; returns how many.
    ///
    /// # Errors
    ///
    /// As [`write`](SessionWriter::write); the envelopes before the one
    /// that failed are added.
    pub fn write_all<T, I>(&mut self, envelopes: I) -> Result<u64, SessionError>
    where
        T: Serialize,
        I: IntoIterator,
        I::Item: Borrow<Envelope<T>>,
    {
        let before = self.count;
        for envelope in envelopes {
            self.write(envelope.borrow())?;
        }
        Ok(self.count - before)
    }

    /// How many envelopes were added so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Writes the header and every envelope line to the output, flushes
    /// it, and returns it with the header.
    ///
    /// # Errors
    ///
    /// [`SessionError::Io`] if writing fails.
    pub fn finish(mut self) -> Result<(W, SessionHeader), SessionError> {
        let header = SessionHeader {
            format: SESSION_FORMAT.to_owned(),
            version: SESSION_VERSION,
            topics: std::mem::take(&mut self.topics).into_iter().collect(),
            count: self.count,
            created: self.created.unwrap_or_else(Timestamp::now),
        };
        let io = |e| SessionError::io(None, e);
        serde_json::to_writer(&mut self.out, &header).map_err(|e| SessionError::Encode {
            reason: e.to_string(),
        })?;
        self.out.write_all(b"\n").map_err(io)?;
        match self.spool {
            Spool::Memory(buf) => self.out.write_all(&buf).map_err(io)?,
            Spool::File(file) => {
                let mut file = file.into_inner().map_err(|e| io(e.into_error()))?;
                file.seek(SeekFrom::Start(0)).map_err(io)?;
                io::copy(&mut file, &mut self.out).map_err(io)?;
            }
        }
        self.out.flush().map_err(io)?;
        Ok((self.out, header))
    }
}

/// Writes `envelopes` as a session file at `path`, replacing any file
/// there; returns the header.
///
/// The envelope lines go to a temporary file next to `path` first (so a
/// long session is not held in memory); the session is then written to
/// another temporary file, synced and renamed over `path`, so `path` never
/// holds half a session.
///
/// # Errors
///
/// As [`SessionWriter::write`] and [`SessionWriter::finish`]; the
/// temporary files are removed.
pub fn write_session<T, I>(
    path: impl AsRef<Path>,
    envelopes: I,
) -> Result<SessionHeader, SessionError>
where
    T: Serialize,
    I: IntoIterator,
    I::Item: Borrow<Envelope<T>>,
{
    let path = path.as_ref();
    let body = sibling(path, "lines.tmp");
    let whole = sibling(path, "tmp");
    let result = (|| {
        let io = |e| SessionError::io(None, e);
        let spool = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&body)
            .map_err(io)?;
        let out = BufWriter::new(File::create(&whole).map_err(io)?);
        let mut writer = SessionWriter::with_spool(out, Spool::File(BufWriter::new(spool)));
        writer.write_all(envelopes)?;
        let (out, header) = writer.finish()?;
        let file = out.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        fs::rename(&whole, path).map_err(io)?;
        Ok(header)
    })();
    // Best effort: they may not exist (the rename took `whole`).
    let _ = fs::remove_file(&body);
    if result.is_err() {
        let _ = fs::remove_file(&whole);
    }
    result
}

/// `path` with `.suffix` appended to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(suffix);
    path.with_file_name(name)
}

/// How a [`SessionReader`] reads.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    max_line_len: usize,
    skip_bad_lines: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            max_line_len: DEFAULT_MAX_LINE_LEN,
            skip_bad_lines: false,
        }
    }
}

impl ReadOptions {
    /// The defaults: lines up to [`DEFAULT_MAX_LINE_LEN`], bad lines are
    /// errors.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the longest line accepted, in bytes (without its line end). A
    /// longer line is a [`SessionError::LineTooLong`]; no more than this is
    /// ever buffered for one line.
    #[must_use]
    pub fn max_line_len(mut self, limit: usize) -> Self {
        self.max_line_len = limit;
        self
    }

    /// Skips bad envelope lines (too long, not an envelope, unlisted
    /// topic) and counts them in [`SessionReader::skipped`] instead of
    /// returning an error for each. A bad header, an I/O error and a count
    /// mismatch are still errors.
    #[must_use]
    pub fn skip_bad_lines(mut self, skip: bool) -> Self {
        self.skip_bad_lines = skip;
        self
    }
}

/// One line read with a bound.
enum Line {
    /// The line's bytes (without its end) are in the buffer.
    Ok,
    /// The line was longer than the limit; it was read through.
    TooLong,
    /// End of input.
    Eof,
}

/// Reads a session: checks the header, then yields
/// `(recorded_seq, envelope)` for each line, in file order. See the
/// [module docs](self).
///
/// The iterator yields an error for each bad line and goes on with the
/// next; after an I/O error, or once the input ends (with a
/// [`SessionError::CountMismatch`] last if the count is off), it yields
/// nothing more.
pub struct SessionReader<R, T> {
    input: R,
    header: SessionHeader,
    options: ReadOptions,
    buf: Vec<u8>,
    /// The number of the last line read (the header is line 1).
    line: u64,
    skipped: u64,
    done: bool,
    payload: PhantomData<fn() -> T>,
}

impl<R, T> fmt::Debug for SessionReader<R, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionReader")
            .field("header", &self.header)
            .field("line", &self.line)
            .field("skipped", &self.skipped)
            .finish_non_exhaustive()
    }
}

impl<T: DeserializeOwned> SessionReader<BufReader<File>, T> {
    /// Opens the session file at `path` and reads its header, with default
    /// options.
    ///
    /// # Errors
    ///
    /// [`SessionError::Io`] if the file cannot be opened; the header errors
    /// of [`SessionReader::new`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, SessionError> {
        Self::open_with(path, ReadOptions::default())
    }

    /// Opens the session file at `path` with `options`.
    ///
    /// # Errors
    ///
    /// As [`open`](SessionReader::open).
    pub fn open_with(path: impl AsRef<Path>, options: ReadOptions) -> Result<Self, SessionError> {
        let file = File::open(path).map_err(|e| SessionError::io(None, e))?;
        Self::with_options(BufReader::new(file), options)
    }
}

impl<R: BufRead, T: DeserializeOwned> SessionReader<R, T> {
    /// Reads the header from `input`, with default options.
    ///
    /// # Errors
    ///
    /// [`SessionError::MissingHeader`] for empty input,
    /// [`SessionError::BadHeader`] for a first line that is not a session
    /// header, [`SessionError::UnsupportedVersion`] for another version,
    /// [`SessionError::LineTooLong`] or [`SessionError::Io`].
    pub fn new(input: R) -> Result<Self, SessionError> {
        Self::with_options(input, ReadOptions::default())
    }

    /// Reads the header from `input`, with `options`.
    ///
    /// # Errors
    ///
    /// As [`new`](SessionReader::new).
    pub fn with_options(input: R, options: ReadOptions) -> Result<Self, SessionError> {
        let mut reader = Self {
            input,
            header: SessionHeader {
                format: String::new(),
                version: 0,
                topics: Vec::new(),
                count: 0,
                created: Timestamp::EPOCH,
            },
            options,
            buf: Vec::new(),
            line: 0,
            skipped: 0,
            done: false,
            payload: PhantomData,
        };
        match reader.read_line()? {
            Line::Eof => return Err(SessionError::MissingHeader),
            Line::TooLong => {
                return Err(SessionError::LineTooLong {
                    line: 1,
                    limit: reader.options.max_line_len,
                });
            }
            Line::Ok => {}
        }
        reader.header = parse_header(&reader.buf)?;
        reader.buf = Vec::new();
        Ok(reader)
    }

    /// The header.
    pub fn header(&self) -> &SessionHeader {
        &self.header
    }

    /// How many bad lines were skipped (with
    /// [`ReadOptions::skip_bad_lines`]).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Reads the next line into `buf`, reading at most `max_line_len + 1`
    /// bytes into it; the rest of a longer line is consumed and discarded.
    fn read_line(&mut self) -> Result<Line, SessionError> {
        self.buf.clear();
        let limit = self.options.max_line_len;
        let mut too_long = false;
        let mut any = false;
        let line = self.line + 1;
        loop {
            let chunk = match self.input.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(SessionError::io(Some(line), e)),
            };
            if chunk.is_empty() {
                break;
            }
            any = true;
            let (take, end) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (i, true),
                None => (chunk.len(), false),
            };
            if !too_long {
                // `+ 1`: room for a final `\r`, stripped below.
                if self.buf.len() + take > limit.saturating_add(1) {
                    too_long = true;
                    self.buf.clear();
                } else {
                    self.buf.extend_from_slice(&chunk[..take]);
                }
            }
            self.input.consume(take + usize::from(end));
            if end {
                break;
            }
        }
        if !any {
            return Ok(Line::Eof);
        }
        self.line = line;
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        if too_long || self.buf.len() > limit {
            self.buf.clear();
            return Ok(Line::TooLong);
        }
        Ok(Line::Ok)
    }

    /// The next envelope or error, skipping bad lines if asked to.
    fn next_item(&mut self) -> Option<Result<(u64, Envelope<T>), SessionError>> {
        loop {
            if self.done {
                return None;
            }
            let result = match self.read_line() {
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
                Ok(Line::Eof) => {
                    self.done = true;
                    let found = self.line - 1;
                    if found != self.header.count {
                        return Some(Err(SessionError::CountMismatch {
                            expected: self.header.count,
                            found,
                        }));
                    }
                    return None;
                }
                Ok(Line::TooLong) => Err(SessionError::LineTooLong {
                    line: self.line,
                    limit: self.options.max_line_len,
                }),
                Ok(Line::Ok) => self.parse_envelope(),
            };
            match result {
                Err(_) if self.options.skip_bad_lines => self.skipped += 1,
                other => return Some(other),
            }
        }
    }

    fn parse_envelope(&self) -> Result<(u64, Envelope<T>), SessionError> {
        let line = self.line;
        if self.buf.iter().all(u8::is_ascii_whitespace) {
            return Err(SessionError::BadLine {
                line,
                reason: "empty line".to_owned(),
            });
        }
        let envelope: Envelope<T> =
            serde_json::from_slice(&self.buf).map_err(|e| SessionError::BadLine {
                line,
                reason: e.to_string(),
            })?;
        if self
            .header
            .topics
            .binary_search_by(|t| t.as_str().cmp(envelope.topic()))
            .is_err()
        {
            return Err(SessionError::UnlistedTopic {
                line,
                topic: envelope.topic().to_owned(),
            });
        }
        // Line 2 holds seq 0.
        Ok((line - 2, envelope))
    }
}

impl<R: BufRead, T: DeserializeOwned> Iterator for SessionReader<R, T> {
    type Item = Result<(u64, Envelope<T>), SessionError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_item()
    }
}

/// Just enough of a header to tell a session of another version from a
/// file that is not a session.
#[derive(Deserialize)]
struct Probe {
    format: String,
    version: u64,
}

fn parse_header(line: &[u8]) -> Result<SessionHeader, SessionError> {
    let bad = |reason: String| SessionError::BadHeader { reason };
    let probe: Probe = serde_json::from_slice(line).map_err(|e| bad(e.to_string()))?;
    if probe.format != SESSION_FORMAT {
        return Err(bad(format!(
            "format {:?}, expected {SESSION_FORMAT:?}",
            probe.format
        )));
    }
    if probe.version != u64::from(SESSION_VERSION) {
        return Err(SessionError::UnsupportedVersion {
            found: probe.version,
            supported: SESSION_VERSION,
        });
    }
    let header: SessionHeader = serde_json::from_slice(line).map_err(|e| bad(e.to_string()))?;
    for topic in &header.topics {
        validate_topic(topic).map_err(|e| bad(format!("topic {topic:?}: {e}")))?;
    }
    if !header.topics.windows(2).all(|w| w[0] < w[1]) {
        return Err(bad("topics are not sorted and distinct".to_owned()));
    }
    Ok(header)
}

/// Reads every byte of `input` as a session and collects the envelopes,
/// failing at the first error. A shorthand for tests and small files.
///
/// # Errors
///
/// The first [`SessionError`] met.
pub fn read_session<T: DeserializeOwned>(
    input: impl Read,
) -> Result<(SessionHeader, Vec<Envelope<T>>), SessionError> {
    let reader = SessionReader::<_, T>::new(BufReader::new(input))?;
    let header = reader.header().clone();
    let envelopes = reader
        .map(|item| item.map(|(_, e)| e))
        .collect::<Result<_, _>>()?;
    Ok((header, envelopes))
}
