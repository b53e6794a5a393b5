//! Durable named cursors: a consumer's acknowledged position, persisted so
//! that it resumes after a crash (at-least-once).
//!
//! A cursor lives in `<journal dir>/cursors/<name>.cursor`, a 24-byte file:
//!
//! | bytes | field |
//! | --- | --- |
//! | 0..8 | magic `EVBCURSR` |
//! | 8..10 | format version, `u16` LE (1) |
//! | 10 | 1 if a record was acknowledged, else 0 |
//! | 11 | reserved, 0 |
//! | 12..20 | the acknowledged sequence number, `u64` LE |
//! | 20..24 | CRC32C of bytes 0..20, `u32` LE |
//!
//! [`Cursor::ack`] replaces the file atomically: it writes
//! `<name>.cursor.tmp`, syncs it, renames it over the cursor and syncs the
//! directory. A crash leaves either the old position or the new one, never
//! a torn file (and a damaged file is a typed error, not a guess).
//!
//! # At-least-once
//!
//! A consumer processes a record, then acknowledges it. After a crash it
//! starts again from [`Cursor::start`], the record after the last one
//! acknowledged: a record processed but not yet acknowledged is delivered
//! again, none is skipped.
//!
//! One consumer per cursor: an open cursor holds the advisory lock
//! `<name>.lock`; a second [`Cursor::open`] of the same name gets
//! [`Error::Locked`].

use std::{
    fs::{File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
};

use crate::{
    error::{Error, Result},
    reader::{Reader, Start},
    recorder::Recorder,
    segment::sync_dir,
    writer::Journal,
};

const MAGIC: &[u8; 8] = b"EVBCURSR";
const VERSION: u16 = 1;
const FILE_LEN: usize = 24;
/// The longest cursor name, in bytes.
pub const MAX_CURSOR_NAME: usize = 128;

/// A named, durable consumer position; see the [module docs](self).
///
/// ```
/// use evbus_core::Envelope;
/// use evbus_journal::{Journal, JournalOptions, Start};
///
/// let dir = tempfile::tempdir()?;
/// let mut journal = Journal::create(dir.path(), JournalOptions::new())?;
/// for n in 0..3u32 {
///     journal.append(&Envelope::on("jobs.done", n)?)?;
/// }
/// let mut cursor = journal.cursor("billing")?;
/// assert_eq!(cursor.start(), Start::Beginning);
/// let first = journal.reader(cursor.start())?.next().unwrap()?;
/// cursor.ack(first.seq())?; // processed record 0
/// drop(cursor); // the consumer stops (or crashes)
///
/// let cursor = journal.cursor("billing")?;
/// assert_eq!(cursor.acked(), Some(0));
/// let rest: Vec<u64> = journal.reader(cursor.start())?.map(|r| r.unwrap().seq()).collect();
/// assert_eq!(rest, [1, 2]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Cursor {
    journal_dir: PathBuf,
    name: String,
    path: PathBuf,
    acked: Option<u64>,
    _lock: File,
}

impl std::fmt::Debug for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cursor")
            .field("name", &self.name)
            .field("acked", &self.acked)
            .finish_non_exhaustive()
    }
}

/// Checks a cursor name: 1 to [`MAX_CURSOR_NAME`] bytes of ASCII letters,
/// digits, `-`, `_` and `.`, not starting with `.`.
fn validate(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidCursorName {
            name: name.chars().take(MAX_CURSOR_NAME + 1).collect(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > MAX_CURSOR_NAME {
        return bad("longer than 128 bytes");
    }
    if name.starts_with('.') {
        return bad("starts with '.'");
    }
    if name.contains(['/', '\\']) {
        return bad("contains a path separator");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return bad("only ASCII letters, digits, '-', '_' and '.' are allowed");
    }
    Ok(())
}

fn encode(acked: Option<u64>) -> [u8; FILE_LEN] {
    let mut b = [0u8; FILE_LEN];
    b[0..8].copy_from_slice(MAGIC);
    b[8..10].copy_from_slice(&VERSION.to_le_bytes());
    b[10] = u8::from(acked.is_some());
    b[12..20].copy_from_slice(&acked.unwrap_or(0).to_le_bytes());
    let crc = crc32c::crc32c(&b[..20]);
    b[20..24].copy_from_slice(&crc.to_le_bytes());
    b
}

fn decode(b: &[u8], path: &Path) -> Result<Option<u64>> {
    let bad = |reason| {
        Err(Error::BadCursor {
            path: path.to_path_buf(),
            reason,
        })
    };
    if b.len() != FILE_LEN {
        return bad("wrong length");
    }
    if &b[0..8] != MAGIC {
        return bad("bad magic");
    }
    let crc = u32::from_le_bytes([b[20], b[21], b[22], b[23]]);
    if crc32c::crc32c(&b[..20]) != crc {
        return bad("checksum mismatch");
    }
    if u16::from_le_bytes([b[8], b[9]]) != VERSION {
        return bad("unsupported version");
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&b[12..20]);
    match (b[10], b[11]) {
        (0, 0) => Ok(None),
        (1, 0) => Ok(Some(u64::from_le_bytes(seq))),
        _ => bad("reserved bits set"),
    }
}

impl Cursor {
    /// Opens (or creates, with nothing acknowledged) the cursor `name` of
    /// the journal in `journal_dir`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidCursorName`]; [`Error::Locked`] if the cursor is open
    /// elsewhere; [`Error::BadCursor`] for a damaged file; I/O errors.
    pub fn open(journal_dir: impl AsRef<Path>, name: &str) -> Result<Cursor> {
        validate(name)?;
        let journal_dir = journal_dir.as_ref().to_path_buf();
        let dir = journal_dir.join("cursors");
        if !dir.is_dir() {
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            sync_dir(&journal_dir)?;
        }
        let lock_path = dir.join(format!("{name}.lock"));
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::Locked { path: lock_path });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(lock_path, e)),
        }
        let path = dir.join(format!("{name}.cursor"));
        let acked = match std::fs::read(&path) {
            Ok(bytes) => decode(&bytes, &path)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(&path, e)),
        };
        Ok(Cursor {
            journal_dir,
            name: name.to_owned(),
            path,
            acked,
            _lock: lock,
        })
    }

    /// The cursor's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The last acknowledged sequence number, if any.
    pub fn acked(&self) -> Option<u64> {
        self.acked
    }

    /// Where a consumer resumes: the record after the last acknowledged
    /// one, or the beginning.
    pub fn start(&self) -> Start {
        match self.acked {
            None => Start::Beginning,
            Some(seq) => Start::Seq(seq.saturating_add(1)),
        }
    }

    /// Acknowledges every record up to and including `seq`, durably: when
    /// `ack` returns, a crash resumes after `seq`. A `seq` at or below the
    /// position already acknowledged changes nothing (a cursor never moves
    /// back).
    ///
    /// # Errors
    ///
    /// I/O errors (the acknowledged position is then unchanged, in memory
    /// and, as far as the file system says, on disk).
    pub fn ack(&mut self, seq: u64) -> Result<()> {
        if self.acked.is_some_and(|a| a >= seq) {
            return Ok(());
        }
        self.store(Some(seq))
    }

    /// Sets the position back (or forward) to "acknowledged up to `acked`"
    /// (`None`: nothing), to reprocess records; durable as [`Cursor::ack`].
    ///
    /// # Errors
    ///
    /// As [`Cursor::ack`].
    pub fn reset(&mut self, acked: Option<u64>) -> Result<()> {
        self.store(acked)
    }

    fn store(&mut self, acked: Option<u64>) -> Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let tmp = self.path.with_extension("cursor.tmp");
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&encode(acked))?;
            f.sync_all()
        };
        write().map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| Error::io(&self.path, e))?;
        sync_dir(dir)?;
        self.acked = acked;
        Ok(())
    }

    /// A reader of the journal (in any process) from [`Cursor::start`].
    ///
    /// # Errors
    ///
    /// As [`Reader::open`].
    pub fn reader(&self) -> Result<Reader> {
        Reader::open(&self.journal_dir, self.start())
    }
}

impl Journal {
    /// Opens (or creates) the named cursor of this journal; see [`Cursor`].
    ///
    /// # Errors
    ///
    /// As [`Cursor::open`].
    pub fn cursor(&self, name: &str) -> Result<Cursor> {
        Cursor::open(&self.shared().dir, name)
    }
}

impl Recorder {
    /// Opens (or creates) the named cursor of the recorded journal.
    ///
    /// # Errors
    ///
    /// As [`Cursor::open`].
    pub fn cursor(&self, name: &str) -> Result<Cursor> {
        Cursor::open(&self.shared().dir, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_round_trips_and_damage_is_caught() {
        let p = Path::new("x.cursor");
        for acked in [None, Some(0), Some(7), Some(u64::MAX)] {
            assert_eq!(decode(&encode(acked), p).unwrap(), acked);
        }
        let good = encode(Some(5));
        for i in 0..FILE_LEN {
            let mut b = good;
            b[i] ^= 0x40;
            assert!(
                matches!(decode(&b, p), Err(Error::BadCursor { .. })),
                "byte {i}"
            );
        }
        assert!(decode(&good[..20], p).is_err());
    }

    #[test]
    fn names_are_checked() {
        for ok in ["billing", "a", "a.b-c_d9", &"x".repeat(MAX_CURSOR_NAME)] {
            validate(ok).unwrap();
        }
        for bad in [
            "",
            ".hidden",
            "..",
            "a/b",
            "a\\b",
            "é",
            "a b",
            "a\0",
            &"x".repeat(MAX_CURSOR_NAME + 1),
        ] {
            assert!(
                matches!(validate(bad), Err(Error::InvalidCursorName { .. })),
                "{bad:?}"
            );
        }
    }
}
