//! Segment indexes: a sparse index (sequence number and time to offset) and
//! a correlation-id index per segment, kept in sidecar files for sealed
//! segments and in memory for the active one.
//!
//! # The sparse index
//!
//! A segment's frames are grouped in *blocks*: a new block starts every
//! [`EVERY_RECORDS`] records or once a block holds [`EVERY_BYTES`] bytes.
//! Each block records the sequence number and offset of its first frame and
//! the smallest and largest time of its records (times need not be
//! monotonic: an envelope's time is the publisher's). A reader that starts
//! at a sequence number or a time seeks to the right block instead of
//! scanning from the segment's start, and a time-range query skips every
//! segment (and block) whose times lie outside its range.
//!
//! # The correlation index
//!
//! Every frame's correlation id and offset, so that a query by correlation
//! id reads only the matching frames.
//!
//! # Sidecar files
//!
//! When the writer seals a segment (rolls to the next one) it writes
//! `<first_seq as 20 digits>.idx` beside `<first_seq>.seg`, through a
//! temporary file and a rename. All integers little-endian:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `EVBJIDX\0` |
//! | 8 | 2 | version, `u16`: 1 |
//! | 10 | 6 | reserved, 0 |
//! | 16 | 8 | the segment's first sequence number |
//! | 24 | 8 | the segment's length in bytes when indexed |
//! | 32 | 8 | offset of the segment's last frame (0 without frames) |
//! | 40 | 4 | CRC field of the segment's last frame |
//! | 44 | 4 | reserved, 0 |
//! | 48 | 8 | number of records |
//! | 56 | 8 | the sequence number after the last record |
//! | 64 | 8 | smallest record time (ns) |
//! | 72 | 8 | largest record time (ns) |
//! | 80 | 8 | number of blocks, `b` |
//! | 88 | 8 | number of correlation entries, `c` |
//! | 96 | 4 | CRC32C of the block table |
//! | 100 | 4 | CRC32C of the correlation table |
//! | 104 | 4 | CRC32C of bytes 0..104 |
//! | 108 | 4 | reserved, 0 |
//! | 112 | 32 × `b` | blocks: first seq, offset, min time, max time (`u64` each) |
//! | then | 24 × `c` | correlation entries sorted by (id, offset): id (16 bytes), offset (`u64`) |
//!
//! A sidecar is never trusted blindly: it is used only if its checksums
//! match, its tables are consistent (ascending, inside the segment), and the
//! segment still has the indexed length and the same last frame. Otherwise
//! (missing, stale, damaged) the segment is scanned and the index rebuilt;
//! the writer then replaces the sidecar.

use std::{
    fs::{self, File},
    io::{Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    sync::{Mutex, MutexGuard},
    thread::JoinHandle,
};

use evbus_core::EventId;

use crate::{
    error::{Error, Result},
    format::{FRAME_HEADER_LEN, HEADER_LEN, frame_crc},
    recovery,
    segment::{read_header, segment_path},
};

/// A block starts every this many records...
pub(crate) const EVERY_RECORDS: u64 = 128;
/// ...or once the block holds this many bytes.
pub(crate) const EVERY_BYTES: u64 = 64 << 10;

const MAGIC: [u8; 8] = *b"EVBJIDX\0";
const VERSION: u16 = 1;
const SIDECAR_HEADER: u64 = 112;
const BLOCK_LEN: u64 = 32;
const CORR_LEN: u64 = 24;

/// The sidecar path of segment `first_seq`.
pub(crate) fn sidecar_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.idx"))
}

/// A run of consecutive frames of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Block {
    /// Sequence number of the first frame.
    pub(crate) seq: u64,
    /// Offset of the first frame.
    pub(crate) offset: u64,
    /// Smallest time (ns) of the block's records.
    pub(crate) min_time: u64,
    /// Largest time (ns) of the block's records.
    pub(crate) max_time: u64,
}

/// The sparse index of one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Summary {
    pub(crate) first_seq: u64,
    /// The segment bytes indexed (the end of the last frame).
    pub(crate) len: u64,
    /// Offset and CRC field of the last frame, if any.
    pub(crate) last_frame: Option<(u64, u32)>,
    pub(crate) count: u64,
    pub(crate) next_seq: u64,
    pub(crate) min_time: u64,
    pub(crate) max_time: u64,
    pub(crate) blocks: Vec<Block>,
}

impl Summary {
    fn empty(first_seq: u64) -> Self {
        Summary {
            first_seq,
            len: HEADER_LEN,
            last_frame: None,
            count: 0,
            next_seq: first_seq,
            min_time: u64::MAX,
            max_time: 0,
            blocks: Vec::new(),
        }
    }

    /// Whether some record's time may lie in `[from, to)` (no `to`: no
    /// upper bound).
    pub(crate) fn may_overlap(&self, from: u64, to: Option<u64>) -> bool {
        self.count > 0 && self.max_time >= from && to.is_none_or(|to| self.min_time < to)
    }

    /// The end offset of block `i` (the next block's start, or `len`).
    pub(crate) fn block_end(&self, i: usize) -> u64 {
        self.blocks.get(i + 1).map_or(self.len, |b| b.offset)
    }

    /// The offset of the block holding `seq` (or the first block after it),
    /// `None` if every record is below `seq`.
    pub(crate) fn seek_seq(&self, seq: u64) -> Option<u64> {
        if self.count == 0 || seq >= self.next_seq {
            return None;
        }
        let i = self.blocks.partition_point(|b| b.seq <= seq);
        Some(self.blocks[i.saturating_sub(1)].offset)
    }

    /// The offset of the first block with a record at or after `time` (ns):
    /// every record before it is earlier. `None` if no record is.
    pub(crate) fn seek_time(&self, time: u64) -> Option<u64> {
        self.blocks
            .iter()
            .find(|b| b.max_time >= time)
            .map(|b| b.offset)
    }
}

/// Builds a segment's index frame by frame.
#[derive(Debug, Clone)]
pub(crate) struct Builder {
    summary: Summary,
    /// Records and bytes in the current block.
    block_records: u64,
    /// (correlation id as a big-endian `u128`, which sorts like its bytes,
    /// frame offset).
    corr: Vec<(u128, u64)>,
}

impl Builder {
    pub(crate) fn new(first_seq: u64) -> Self {
        Builder {
            summary: Summary::empty(first_seq),
            block_records: 0,
            corr: Vec::new(),
        }
    }

    pub(crate) fn summary(&self) -> &Summary {
        &self.summary
    }

    /// Adds the frame at `offset` of `frame_len` bytes, with frame header
    /// `header` and `body` (whose CRC matched).
    fn push(&mut self, offset: u64, frame_len: u64, crc: u32, body: &[u8]) {
        let Some(meta) = Meta::parse(body) else {
            return;
        };
        let s = &mut self.summary;
        let new_block = match s.blocks.last() {
            None => true,
            Some(b) => self.block_records >= EVERY_RECORDS || offset - b.offset >= EVERY_BYTES,
        };
        if new_block {
            s.blocks.push(Block {
                seq: meta.seq,
                offset,
                min_time: meta.time,
                max_time: meta.time,
            });
            self.block_records = 0;
        } else if let Some(b) = s.blocks.last_mut() {
            b.min_time = b.min_time.min(meta.time);
            b.max_time = b.max_time.max(meta.time);
        }
        self.block_records += 1;
        s.count += 1;
        s.next_seq = meta.seq.saturating_add(1);
        s.min_time = s.min_time.min(meta.time);
        s.max_time = s.max_time.max(meta.time);
        s.len = offset + frame_len;
        s.last_frame = Some((offset, crc));
        self.corr
            .push((u128::from_be_bytes(meta.correlation), offset));
    }

    /// Adds the frames of `chunk`, written at `offset` of the segment (the
    /// writer's hook: `chunk` holds whole, valid frames).
    pub(crate) fn push_chunk(&mut self, chunk: &[u8], mut offset: u64) {
        let mut rest = chunk;
        while let Some(h) = rest.first_chunk::<8>() {
            let len = u64::from(u32::from_le_bytes([h[0], h[1], h[2], h[3]]));
            let total = FRAME_HEADER_LEN + len;
            let Some(body) = rest.get(8..total as usize) else {
                return;
            };
            self.push(offset, total, frame_crc(h), body);
            rest = &rest[total as usize..];
            offset += total;
        }
    }

    /// The offsets of the frames with correlation id `id`, ascending.
    pub(crate) fn correlation(&self, id: EventId) -> Vec<u64> {
        let id = u128::from_be_bytes(*id.as_bytes());
        self.corr
            .iter()
            .filter(|(c, _)| *c == id)
            .map(|&(_, o)| o)
            .collect()
    }

    /// Scans segment `first_seq` (its valid frames up to `file_len`).
    pub(crate) fn scan(
        file: &File,
        path: &Path,
        first_seq: u64,
        file_len: u64,
        max_frame: u32,
    ) -> Result<(Builder, recovery::Scan)> {
        let mut b = Builder::new(first_seq);
        let scan = recovery::scan(
            file,
            path,
            HEADER_LEN,
            file_len,
            first_seq,
            max_frame,
            |frame, body| {
                let crc = crc32c::crc32c(body);
                b.push(frame.offset, frame.len, crc, body);
                Ok(())
            },
        )?;
        Ok((b, scan))
    }

    /// The sidecar's bytes.
    pub(crate) fn encode(mut self) -> Vec<u8> {
        self.corr.sort_unstable();
        let s = &self.summary;
        let mut out = Vec::with_capacity(
            SIDECAR_HEADER as usize
                + s.blocks.len() * BLOCK_LEN as usize
                + self.corr.len() * CORR_LEN as usize,
        );
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&[0u8; 6]);
        let (last_off, last_crc) = s.last_frame.unwrap_or((0, 0));
        for v in [s.first_seq, s.len, last_off] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&last_crc.to_le_bytes());
        out.extend_from_slice(&[0u8; 4]);
        let (min, max) = if s.count == 0 {
            (0, 0)
        } else {
            (s.min_time, s.max_time)
        };
        for v in [
            s.count,
            s.next_seq,
            min,
            max,
            s.blocks.len() as u64,
            self.corr.len() as u64,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        let mut blocks = Vec::with_capacity(s.blocks.len() * BLOCK_LEN as usize);
        for b in &s.blocks {
            for v in [b.seq, b.offset, b.min_time, b.max_time] {
                blocks.extend_from_slice(&v.to_le_bytes());
            }
        }
        let mut corr = Vec::with_capacity(self.corr.len() * CORR_LEN as usize);
        for (id, off) in &self.corr {
            corr.extend_from_slice(&id.to_be_bytes());
            corr.extend_from_slice(&off.to_le_bytes());
        }
        out.extend_from_slice(&crc32c::crc32c(&blocks).to_le_bytes());
        out.extend_from_slice(&crc32c::crc32c(&corr).to_le_bytes());
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&[0u8; 4]);
        debug_assert_eq!(out.len() as u64, SIDECAR_HEADER);
        out.extend_from_slice(&blocks);
        out.extend_from_slice(&corr);
        out
    }
}

/// The metadata an index needs, at fixed offsets of a frame body.
struct Meta {
    seq: u64,
    time: u64,
    correlation: [u8; 16],
}

impl Meta {
    fn parse(body: &[u8]) -> Option<Meta> {
        let seq = u64::from_le_bytes(*body.first_chunk::<8>()?);
        let time = u64::from_le_bytes(*body.get(8..16)?.first_chunk::<8>()?);
        let correlation = *body.get(32..48)?.first_chunk::<16>()?;
        Some(Meta {
            seq,
            time,
            correlation,
        })
    }
}

/// Writes segment `first_seq`'s sidecar (temporary file, then rename). No
/// sync: a sidecar lost or torn by a power loss is detected and rebuilt.
pub(crate) fn write_sidecar(dir: &Path, builder: Builder) -> Result<()> {
    let path = sidecar_path(dir, builder.summary.first_seq);
    // A name of its own per process and thread: the sealer thread and a
    // query that rebuilt the same index may write at once.
    let thread: String = format!("{:?}", std::thread::current().id())
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let tmp = path.with_extension(format!("idx.{}-{thread}.tmp", std::process::id()));
    let bytes = builder.encode();
    let mut f = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    f.write_all(&bytes).map_err(|e| Error::io(&tmp, e))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))
}

/// Removes sidecar temporaries a killed process left (`*.idx.*.tmp`); the
/// writer's hook on open, when no other process writes sidecars.
pub(crate) fn remove_temporaries(dir: &Path) -> Result<()> {
    let entries = fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        if name
            .to_str()
            .is_some_and(|n| n.contains(".idx.") && n.ends_with(".tmp"))
        {
            let _ = fs::remove_file(entry.path());
        }
    }
    Ok(())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|s| s.first_chunk::<8>())
        .map_or(0, |a| u64::from_le_bytes(*a))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| s.first_chunk::<4>())
        .map_or(0, |a| u32::from_le_bytes(*a))
}

/// A sidecar's header, checked.
struct SidecarHeader {
    summary: Summary,
    n_blocks: u64,
    n_corr: u64,
    blocks_crc: u32,
    corr_crc: u32,
}

/// Counts of what loading an index read.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct IoCount {
    /// Sidecar bytes read.
    pub(crate) index_bytes: u64,
    /// Segment bytes read to rebuild an index.
    pub(crate) segment_bytes: u64,
    /// Segments opened to rebuild an index.
    pub(crate) segments_opened: u64,
}

/// Reads and checks the header of a sidecar (`None`: missing, damaged or
/// stale, rebuild).
fn read_sidecar_header(
    f: &mut File,
    first_seq: u64,
    seg: &mut File,
    seg_len: u64,
    io: &mut IoCount,
) -> Option<SidecarHeader> {
    let file_len = f.metadata().ok()?.len();
    let mut h = [0u8; SIDECAR_HEADER as usize];
    f.read_exact(&mut h).ok()?;
    io.index_bytes += SIDECAR_HEADER;
    if h[0..8] != MAGIC
        || u16::from_le_bytes([h[8], h[9]]) != VERSION
        || u32_at(&h, 104) != crc32c::crc32c(&h[..104])
    {
        return None;
    }
    let n_blocks = u64_at(&h, 80);
    let n_corr = u64_at(&h, 88);
    let expected = n_blocks
        .checked_mul(BLOCK_LEN)?
        .checked_add(n_corr.checked_mul(CORR_LEN)?)?
        .checked_add(SIDECAR_HEADER)?;
    if expected != file_len || u64_at(&h, 16) != first_seq || u64_at(&h, 24) != seg_len {
        return None;
    }
    let count = u64_at(&h, 48);
    let last_off = u64_at(&h, 32);
    let last_crc = u32_at(&h, 40);
    let last_frame = if count == 0 {
        if seg_len != HEADER_LEN || n_blocks != 0 || n_corr != 0 {
            return None;
        }
        None
    } else {
        // The segment must still end with the indexed last frame.
        if last_off < HEADER_LEN || last_off.checked_add(FRAME_HEADER_LEN)? > seg_len {
            return None;
        }
        let mut fh = [0u8; 8];
        seg.seek(SeekFrom::Start(last_off)).ok()?;
        seg.read_exact(&mut fh).ok()?;
        io.segment_bytes += FRAME_HEADER_LEN;
        let len = u64::from(u32::from_le_bytes([fh[0], fh[1], fh[2], fh[3]]));
        if frame_crc(&fh) != last_crc || last_off + FRAME_HEADER_LEN + len != seg_len {
            return None;
        }
        Some((last_off, last_crc))
    };
    if n_corr != count || (count > 0) != (n_blocks > 0) || n_blocks > count {
        return None;
    }
    Some(SidecarHeader {
        summary: Summary {
            first_seq,
            len: seg_len,
            last_frame,
            count,
            next_seq: u64_at(&h, 56),
            min_time: if count == 0 { u64::MAX } else { u64_at(&h, 64) },
            max_time: u64_at(&h, 72),
            blocks: Vec::new(),
        },
        n_blocks,
        n_corr,
        blocks_crc: u32_at(&h, 96),
        corr_crc: u32_at(&h, 100),
    })
}

/// Reads the block table after the header and checks it against the
/// summary.
fn read_blocks(f: &mut File, h: &mut SidecarHeader, io: &mut IoCount) -> Option<()> {
    let n = usize::try_from(h.n_blocks).ok()?;
    let mut bytes = vec![0u8; n.checked_mul(BLOCK_LEN as usize)?];
    f.read_exact(&mut bytes).ok()?;
    io.index_bytes += bytes.len() as u64;
    if crc32c::crc32c(&bytes) != h.blocks_crc {
        return None;
    }
    let s = &mut h.summary;
    let mut blocks: Vec<Block> = Vec::with_capacity(n);
    for c in bytes.chunks_exact(BLOCK_LEN as usize) {
        let b = Block {
            seq: u64_at(c, 0),
            offset: u64_at(c, 8),
            min_time: u64_at(c, 16),
            max_time: u64_at(c, 24),
        };
        let ok = match blocks.last() {
            None => b.offset == HEADER_LEN && b.seq >= s.first_seq,
            Some(p) => b.offset > p.offset && b.seq > p.seq,
        };
        if !ok || b.offset >= s.len || b.seq >= s.next_seq || b.min_time > b.max_time {
            return None;
        }
        blocks.push(b);
    }
    let min = blocks.iter().map(|b| b.min_time).min();
    let max = blocks.iter().map(|b| b.max_time).max();
    if s.count > 0 && (min != Some(s.min_time) || max != Some(s.max_time)) {
        return None;
    }
    s.blocks = blocks;
    Some(())
}

/// Where an index comes from.
#[derive(Debug)]
pub(crate) enum Loaded {
    /// From a valid sidecar.
    Sidecar(Summary),
    /// Rebuilt by a scan of the segment (the sidecar was missing, damaged
    /// or stale).
    Rebuilt(Builder),
}

impl Loaded {
    pub(crate) fn summary(&self) -> &Summary {
        match self {
            Loaded::Sidecar(s) => s,
            Loaded::Rebuilt(b) => &b.summary,
        }
    }
}

/// Opens segment `first_seq`: the file, its path, its length, and the
/// maximum frame length its header records.
fn open_segment(dir: &Path, first_seq: u64) -> Result<(File, PathBuf, u64, u32)> {
    let path = segment_path(dir, first_seq);
    let mut f = File::open(&path).map_err(|e| Error::io(&path, e))?;
    let len = f.metadata().map_err(|e| Error::io(&path, e))?.len();
    let max_frame = read_header(&mut f, &path, first_seq)?.max_frame;
    Ok((f, path, len, max_frame))
}

/// The sparse index of sealed segment `first_seq`: from its sidecar, or
/// rebuilt by a scan. A sealed segment's frames must all be valid: a
/// damaged one is [`Error::Corrupt`].
pub(crate) fn load_summary(dir: &Path, first_seq: u64, io: &mut IoCount) -> Result<Loaded> {
    let (mut seg, path, seg_len, max_frame) = open_segment(dir, first_seq)?;
    if let Some(s) = sidecar_summary(dir, first_seq, &mut seg, seg_len, io) {
        return Ok(Loaded::Sidecar(s));
    }
    rebuild(&seg, &path, first_seq, seg_len, max_frame, io).map(Loaded::Rebuilt)
}

fn sidecar_summary(
    dir: &Path,
    first_seq: u64,
    seg: &mut File,
    seg_len: u64,
    io: &mut IoCount,
) -> Option<Summary> {
    let mut f = File::open(sidecar_path(dir, first_seq)).ok()?;
    let mut h = read_sidecar_header(&mut f, first_seq, seg, seg_len, io)?;
    read_blocks(&mut f, &mut h, io)?;
    Some(h.summary)
}

/// The summary of a segment that may still grow (the last one, read from
/// another process), if it has a sidecar that matches its current length
/// (the writer writes one when it closes); `None` otherwise (no rebuild).
pub(crate) fn try_sidecar(dir: &Path, first_seq: u64, io: &mut IoCount) -> Option<Summary> {
    let (mut seg, _, seg_len, _) = open_segment(dir, first_seq).ok()?;
    sidecar_summary(dir, first_seq, &mut seg, seg_len, io)
}

/// [`try_sidecar`] with the offsets of correlation id `id`.
pub(crate) fn try_sidecar_correlation(
    dir: &Path,
    first_seq: u64,
    id: EventId,
    io: &mut IoCount,
) -> Option<(Summary, Vec<u64>)> {
    let (mut seg, _, seg_len, _) = open_segment(dir, first_seq).ok()?;
    let mut f = File::open(sidecar_path(dir, first_seq)).ok()?;
    let mut h = read_sidecar_header(&mut f, first_seq, &mut seg, seg_len, io)?;
    read_blocks(&mut f, &mut h, io)?;
    let found = read_correlation(&mut f, &h, id, io)?;
    Some((h.summary, found))
}

fn rebuild(
    seg: &File,
    path: &Path,
    first_seq: u64,
    seg_len: u64,
    max_frame: u32,
    io: &mut IoCount,
) -> Result<Builder> {
    io.segments_opened += 1;
    io.segment_bytes += seg_len;
    let (b, scan) = Builder::scan(seg, path, first_seq, seg_len, max_frame)?;
    if let Some((offset, reason)) = scan.bad {
        return Err(Error::Corrupt {
            segment: path.to_path_buf(),
            offset,
            reason,
        });
    }
    Ok(b)
}

/// The offsets of the frames with correlation id `id` in sealed segment
/// `first_seq`, ascending: from its sidecar, or from a rebuilt index
/// (returned too, so the writer can store it).
pub(crate) fn load_correlation(
    dir: &Path,
    first_seq: u64,
    id: EventId,
    io: &mut IoCount,
) -> Result<(Vec<u64>, Option<Builder>)> {
    let (mut seg, path, seg_len, max_frame) = open_segment(dir, first_seq)?;
    if let Ok(mut f) = File::open(sidecar_path(dir, first_seq))
        && let Some(mut h) = read_sidecar_header(&mut f, first_seq, &mut seg, seg_len, io)
        && read_blocks(&mut f, &mut h, io).is_some()
        && let Some(found) = read_correlation(&mut f, &h, id, io)
    {
        return Ok((found, None));
    }
    let b = rebuild(&seg, &path, first_seq, seg_len, max_frame, io)?;
    Ok((b.correlation(id), Some(b)))
}

fn read_correlation(
    f: &mut File,
    h: &SidecarHeader,
    id: EventId,
    io: &mut IoCount,
) -> Option<Vec<u64>> {
    let n = usize::try_from(h.n_corr).ok()?;
    let mut bytes = vec![0u8; n.checked_mul(CORR_LEN as usize)?];
    f.read_exact(&mut bytes).ok()?;
    io.index_bytes += bytes.len() as u64;
    if crc32c::crc32c(&bytes) != h.corr_crc {
        return None;
    }
    // Checked whole (sorted, inside the segment) while looking for `id`:
    // the checksum covers damage, this covers a table that lies.
    let want = u128::from_be_bytes(*id.as_bytes());
    let s = &h.summary;
    let mut found = Vec::new();
    let mut prev: Option<(u128, u64)> = None;
    for c in bytes.chunks_exact(CORR_LEN as usize) {
        let e = (u128_be_at(c), u64_at(c, 16));
        if prev.is_some_and(|p| p >= e) || e.1 < HEADER_LEN || e.1 >= s.len {
            return None;
        }
        if e.0 == want {
            found.push(e.1);
        }
        prev = Some(e);
    }
    Some(found)
}

fn u128_be_at(b: &[u8]) -> u128 {
    b.first_chunk::<16>().map_or(0, |a| u128::from_be_bytes(*a))
}

/// The active segment's index, kept in memory by the writer and shared with
/// in-process readers and queries.
#[derive(Debug)]
pub(crate) struct ActiveIndex {
    inner: Mutex<Builder>,
    /// The thread writing the last sealed segment's sidecar, off the
    /// append path.
    sealer: Mutex<Option<JoinHandle<()>>>,
}

impl ActiveIndex {
    pub(crate) fn new(builder: Builder) -> Self {
        ActiveIndex {
            inner: Mutex::new(builder),
            sealer: Mutex::new(None),
        }
    }

    /// Waits until the sidecar of the last sealed segment is written.
    ///
    /// Joins with the lock held, so that every caller returns only once
    /// that sidecar is written, not only the one that took the handle (an
    /// in-process query may wait while the writer rolls; the sealer thread
    /// never takes this lock).
    pub(crate) fn wait_sealed(&self) {
        let mut sealer = self.sealer.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = sealer.take() {
            let _ = h.join();
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Builder> {
        // Every update is a push of whole values: a panic cannot leave the
        // builder inconsistent beyond a missing frame.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The writer's hook after a chunk of whole frames was written at
    /// `offset` of segment `segment`.
    pub(crate) fn on_written(&self, segment: u64, chunk: &[u8], offset: u64) {
        let mut b = self.lock();
        if b.summary.first_seq == segment {
            b.push_chunk(chunk, offset);
        }
    }

    /// The writer's hook on close: writes the active segment's sidecar too,
    /// so readers of a closed journal need not scan its last segment (the
    /// sidecar is stale, hence ignored, once the segment grows again).
    pub(crate) fn on_close(&self, dir: &Path) {
        self.wait_sealed();
        let active = self.lock().clone();
        let _ = write_sidecar(dir, active);
    }

    /// The writer's hook on a roll to segment `next`: starts the next
    /// index and seals the current one into its sidecar on a thread of its
    /// own (sorting and writing it costs about as much as the appends
    /// themselves). Best effort: until the sidecar is there, or if it cannot
    /// be written, readers rebuild the index by a scan.
    pub(crate) fn on_roll(&self, dir: &Path, next: u64) {
        let sealed = std::mem::replace(&mut *self.lock(), Builder::new(next));
        self.wait_sealed();
        let dir = dir.to_path_buf();
        let spawned = std::thread::Builder::new()
            .name("evbus-journal-seal".to_owned())
            .spawn(move || {
                let _ = write_sidecar(&dir, sealed);
            });
        if let Ok(h) = spawned {
            *self.sealer.lock().unwrap_or_else(|e| e.into_inner()) = Some(h);
        }
    }
}

/// Scans the active segment on open, for its in-memory index.
pub(crate) fn scan_active(
    file: &File,
    path: &Path,
    first_seq: u64,
    end: u64,
    max_frame: u32,
) -> Result<Builder> {
    Builder::scan(file, path, first_seq, end, max_frame).map(|(b, _)| b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(seq: u64, offset: u64, min: u64, max: u64) -> Block {
        Block {
            seq,
            offset,
            min_time: min,
            max_time: max,
        }
    }

    #[test]
    fn seeks_pick_the_right_block() {
        let s = Summary {
            first_seq: 10,
            len: 400,
            last_frame: Some((350, 0)),
            count: 30,
            next_seq: 40,
            min_time: 1,
            max_time: 90,
            blocks: vec![
                block(10, 32, 5, 50),
                block(20, 150, 1, 20),
                block(30, 260, 60, 90),
            ],
        };
        assert_eq!(s.seek_seq(0), Some(32));
        assert_eq!(s.seek_seq(19), Some(32));
        assert_eq!(s.seek_seq(20), Some(150));
        assert_eq!(s.seek_seq(39), Some(260));
        assert_eq!(s.seek_seq(40), None);
        assert_eq!(s.seek_time(0), Some(32));
        assert_eq!(s.seek_time(51), Some(260));
        assert_eq!(s.seek_time(91), None);
        assert!(s.may_overlap(90, Some(100)));
        assert!(s.may_overlap(90, None));
        assert!(!s.may_overlap(91, Some(100)));
        assert!(!s.may_overlap(0, Some(1)));
        assert_eq!(s.block_end(1), 260);
        assert_eq!(s.block_end(2), 400);
    }
}
