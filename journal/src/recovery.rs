//! Recovery: scanning a segment for its valid frames, cutting a torn tail on
//! open, and [`Journal::repair`](crate::Journal::repair).
//!
//! A scan never trusts a length field beyond the maximum frame size, reads
//! each byte of the file a bounded number of times, and never yields a frame
//! whose CRC did not match.

use std::{
    fs::File,
    io::{BufReader, Read, Seek, SeekFrom},
    path::{Path, PathBuf},
};

use crate::{
    error::{Error, Result},
    format::{FRAME_HEADER_LEN, HEADER_LEN, MIN_BODY_LEN, body_seq, frame_crc, frame_len},
};

/// What [`Journal::open`](crate::Journal::open) found and fixed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// The torn tail cut off the last segment, if there was one.
    pub truncated: Option<Truncation>,
}

/// A torn tail that was cut off: `bytes` bytes from `offset` on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    /// The segment file.
    pub segment: PathBuf,
    /// Where the cut was made (the end of the last valid frame).
    pub offset: u64,
    /// How many bytes were removed.
    pub bytes: u64,
}

/// What [`Journal::repair`](crate::Journal::repair) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Damaged ranges removed from segments, in order. The records in them
    /// are lost; the sequence numbers around them leave a gap.
    pub skipped: Vec<Skipped>,
    /// The torn tail cut off the last segment, if there was one.
    pub truncated: Option<Truncation>,
}

/// A damaged range that [`Journal::repair`](crate::Journal::repair) removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The segment file.
    pub segment: PathBuf,
    /// Where the damage starts.
    pub offset: u64,
    /// How many bytes were skipped (up to the next valid frame).
    pub bytes: u64,
    /// Why the first frame was invalid.
    pub reason: &'static str,
}

/// A valid frame found by a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameAt {
    pub(crate) offset: u64,
    pub(crate) len: u64,
    pub(crate) seq: u64,
}

/// The result of scanning frames from some offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scan {
    /// The end of the last valid frame (where the next frame goes).
    pub(crate) end: u64,
    /// The sequence number after the last valid frame's.
    pub(crate) next_seq: u64,
    /// The first invalid frame: its offset and what is wrong with it.
    pub(crate) bad: Option<(u64, &'static str)>,
}

/// Scans the frames of `file` (of `file_len` bytes) from `start`, where a
/// frame with sequence number at least `next_seq` is expected, calling
/// `on_frame` for each valid frame. Stops at the first invalid or
/// incomplete frame, or at the end.
pub(crate) fn scan(
    file: &File,
    path: &Path,
    start: u64,
    file_len: u64,
    mut next_seq: u64,
    max_body: u32,
    mut on_frame: impl FnMut(FrameAt, &[u8]) -> Result<()>,
) -> Result<Scan> {
    let mut r = BufReader::with_capacity(1 << 16, file);
    r.seek(SeekFrom::Start(start))
        .map_err(|e| Error::io(path, e))?;
    let mut offset = start;
    let mut body = Vec::new();
    loop {
        let remaining = file_len.saturating_sub(offset);
        if remaining == 0 {
            return Ok(Scan {
                end: offset,
                next_seq,
                bad: None,
            });
        }
        let bad = |reason| Scan {
            end: offset,
            next_seq,
            bad: Some((offset, reason)),
        };
        if remaining < FRAME_HEADER_LEN {
            return Ok(bad("incomplete frame header"));
        }
        let mut h = [0u8; 8];
        r.read_exact(&mut h).map_err(|e| Error::io(path, e))?;
        let len = match frame_len(&h, max_body) {
            Ok(len) => len,
            Err(reason) => return Ok(bad(reason)),
        };
        if u64::from(len) > remaining - FRAME_HEADER_LEN {
            return Ok(bad("incomplete frame"));
        }
        body.resize(len as usize, 0);
        r.read_exact(&mut body).map_err(|e| Error::io(path, e))?;
        if crc32c::crc32c(&body) != frame_crc(&h) {
            return Ok(bad("checksum mismatch"));
        }
        let seq = body_seq(&body).unwrap_or(0);
        if seq < next_seq {
            return Ok(bad("sequence number out of order"));
        }
        let frame = FrameAt {
            offset,
            len: FRAME_HEADER_LEN + u64::from(len),
            seq,
        };
        on_frame(frame, &body)?;
        offset += frame.len;
        next_seq = seq.saturating_add(1);
    }
}

/// Looks for the next valid frame after a bad one at `bad_at`: a complete
/// frame at some offset `p > bad_at` whose length is in range, whose CRC
/// matches, and whose sequence number is plausible (at least `next_seq`,
/// and not more frames ahead than could fit between `bad_at` and `p`).
///
/// Reads the bytes after `bad_at` once, plus the bodies of the candidates
/// that pass the cheap checks.
pub(crate) fn find_next_valid(
    file: &File,
    path: &Path,
    bad_at: u64,
    file_len: u64,
    next_seq: u64,
    max_body: u32,
) -> Result<Option<FrameAt>> {
    const WINDOW: usize = 1 << 16;
    let min_frame = FRAME_HEADER_LEN + u64::from(MIN_BODY_LEN);
    let io = |e| Error::io(path, e);
    let mut f = file;
    // window[i] is the byte at offset win_start + i.
    let mut window: Vec<u8> = Vec::with_capacity(WINDOW + 16);
    let mut win_start = bad_at + 1;
    let mut p = bad_at + 1;
    let mut body = Vec::new();
    while p + min_frame <= file_len {
        // Keep at least 16 bytes (frame header + seq) from p in the window.
        if p + 16 > win_start + window.len() as u64 {
            let keep_from = (p - win_start) as usize;
            window.drain(..keep_from.min(window.len()));
            win_start = p;
            let want = (WINDOW as u64).min(file_len - (win_start + window.len() as u64));
            let old = window.len();
            window.resize(old + want as usize, 0);
            f.seek(SeekFrom::Start(win_start + old as u64))
                .map_err(io)?;
            f.read_exact(&mut window[old..]).map_err(io)?;
        }
        let i = (p - win_start) as usize;
        let Some(h) = window.get(i..i + 16) else {
            break;
        };
        let mut hdr = [0u8; 8];
        hdr.copy_from_slice(&h[..8]);
        if let Ok(len) = frame_len(&hdr, max_body) {
            let seq = body_seq(&h[8..]).unwrap_or(0);
            let max_between = (p - bad_at) / min_frame + 1;
            let plausible = seq >= next_seq && seq - next_seq <= max_between;
            if plausible && u64::from(len) <= file_len - p - FRAME_HEADER_LEN {
                body.resize(len as usize, 0);
                f.seek(SeekFrom::Start(p + FRAME_HEADER_LEN)).map_err(io)?;
                f.read_exact(&mut body).map_err(io)?;
                if crc32c::crc32c(&body) == frame_crc(&hdr) {
                    return Ok(Some(FrameAt {
                        offset: p,
                        len: FRAME_HEADER_LEN + u64::from(len),
                        seq,
                    }));
                }
            }
        }
        p += 1;
    }
    Ok(None)
}

/// How the frames after the header of a segment end.
#[derive(Debug)]
pub(crate) enum Tail {
    /// Every byte is a valid frame.
    Clean(Scan),
    /// A torn tail from `scan.end` on: no valid frame follows the bad one.
    Torn(Scan),
    /// A bad frame with a valid one after it.
    Corrupt { scan: Scan, reason: &'static str },
}

/// Scans a whole segment after its header and classifies its end.
pub(crate) fn classify(
    file: &File,
    path: &Path,
    file_len: u64,
    first_seq: u64,
    max_body: u32,
) -> Result<Tail> {
    let scan = scan(
        file,
        path,
        HEADER_LEN,
        file_len,
        first_seq,
        max_body,
        |_, _| Ok(()),
    )?;
    let Some((bad_at, reason)) = scan.bad else {
        return Ok(Tail::Clean(scan));
    };
    match find_next_valid(file, path, bad_at, file_len, scan.next_seq, max_body)? {
        Some(_) => Ok(Tail::Corrupt { scan, reason }),
        None => Ok(Tail::Torn(scan)),
    }
}
