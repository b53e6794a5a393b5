//! The on-disk format, byte by byte.
//!
//! A journal is a directory of *segment files* plus a `LOCK` file that the
//! writer holds. Other files (indexes, cursors) may sit beside them; readers
//! ignore every name that is not a segment's.
//!
//! # Segment files
//!
//! A segment is named after the sequence number of its first record, as 20
//! decimal digits: `00000000000000000000.seg`, `00000000000000065536.seg`.
//! Segments hold consecutive sequence numbers: segment *k + 1* starts right
//! after the last record of segment *k*. A segment is closed (no longer
//! written) once a later one exists; the writer rolls to a new segment when
//! the next frame would take the current one past the size limit
//! ([`JournalOptions::segment_size`]). A new segment is written as
//! `<name>.seg.tmp` with its header, then renamed into place, so a reader
//! never finds a segment without its header; a crash may leave a `.tmp`
//! file, which the next writer removes.
//!
//! All integers are little-endian. A segment starts with a 36-byte header
//! ([`HEADER_LEN`]):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic: the bytes `EVBJRNL\0` (`45 56 42 4A 52 4E 4C 00`) |
//! | 8 | 2 | format version, `u16`: currently 1 ([`VERSION`]) |
//! | 10 | 1 | payload codec id, `u8`: 1 = postcard, 2 = JSON ([`Codec::id`]) |
//! | 11 | 1 | reserved, 0 |
//! | 12 | 4 | maximum frame body length in this segment, `u32` (at least [`MIN_BODY_LEN`]) |
//! | 16 | 8 | first sequence number, `u64` (equal to the file name's) |
//! | 24 | 8 | creation time, `u64` nanoseconds since the Unix epoch |
//! | 32 | 4 | CRC32C (Castagnoli) of bytes 0..32, `u32` |
//!
//! # Frames
//!
//! After the header come frames, back to back, one per record:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | `len`: length of the body, `u32` |
//! | 4 | 4 | CRC32C of the body, `u32` |
//! | 8 | `len` | body |
//!
//! `len` is at least [`MIN_BODY_LEN`] and at most the segment header's
//! maximum (the writer's [`JournalOptions::max_frame_size`], 16 MiB by
//! default): a reader never allocates more than that for a frame, whatever
//! the length field says, and needs no option to know the bound. A frame whose length is out of range,
//! whose body is cut short by the end of the file, or whose CRC does not
//! match is never returned as a record.
//!
//! # Body
//!
//! The body holds the envelope's metadata in this fixed layout, owned by the
//! journal (so indexes, queries and recovery never need the payload's
//! codec), then the payload:
//!
//! | size | field |
//! |---|---|
//! | 8 | sequence number, `u64` |
//! | 8 | time, `u64` nanoseconds since the Unix epoch |
//! | 16 | event id (UUIDv7, RFC 9562 byte order) |
//! | 16 | correlation id |
//! | 1 | flags, `u8` (below) |
//! | 16 | causation id, only if flag bit 0 is set |
//! | 8 | replay mark's recorded sequence number, `u64`, only if flag bit 5 is set |
//! | 2 + n | topic: length `u16`, then `n` bytes of UTF-8 |
//! | 2 + n | session id, only if flag bit 1 is set |
//! | 2 + n | source, only if flag bit 2 is set |
//! | 2 + n | tenant, only if flag bit 3 is set |
//! | 2 + n | idempotency key, only if flag bit 4 is set |
//! | 1 | number of tags, `u8` |
//! | (2 + n) each | the tags, in order |
//! | the rest | the payload, encoded with the segment's codec |
//!
//! Sequence numbers increase strictly from frame to frame and across
//! segments; the first frame of a segment has the header's first sequence
//! number (or, after [`Journal::repair`] removed damage, a later one: repair
//! leaves gaps, nothing else does). A frame whose number does not increase
//! is invalid.
//!
//! Flag bits: 0 causation id present; 1 session id present; 2 source
//! present; 3 tenant present; 4 idempotency key present; 5 replay mark
//! present; 6 the replay mark's `dry_run`; 7 reserved (0). A set bit 6
//! without bit 5, or bit 7, makes the frame invalid. Strings must be valid
//! UTF-8 and the topic a valid topic, or the frame is invalid.
//!
//! # Crash safety
//!
//! The writer only ever appends. On open, the last segment is scanned: a
//! tail that does not hold a complete valid frame (a torn write) is cut
//! off and reported ([`OpenReport`]); an invalid frame
//! followed by a valid one is corruption, reported as
//! [`Error::Corrupt`] with the segment and offset,
//! which [`Journal::repair`] skips.

use std::{path::Path, sync::Arc};

use evbus_core::{Envelope, EventId, ReplayMark, Timestamp, validate_topic};
use serde::{Serialize, de::DeserializeOwned};

#[cfg(doc)]
use crate::{Journal, JournalOptions, OpenReport};
use crate::{
    codec::Codec,
    error::{Error, Result},
};

pub use crate::layout::{
    DEFAULT_MAX_FRAME, FRAME_HEADER_LEN, HEADER_LEN, MAGIC, MIN_BODY_LEN, VERSION,
};

const FLAG_CAUSATION: u8 = 1 << 0;
const FLAG_SESSION: u8 = 1 << 1;
const FLAG_SOURCE: u8 = 1 << 2;
const FLAG_TENANT: u8 = 1 << 3;
const FLAG_IDEMPOTENCY: u8 = 1 << 4;
const FLAG_REPLAY: u8 = 1 << 5;
const FLAG_DRY_RUN: u8 = 1 << 6;
const FLAG_RESERVED: u8 = 1 << 7;

/// A decoded segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub(crate) codec: Codec,
    pub(crate) max_frame: u32,
    pub(crate) first_seq: u64,
    pub(crate) created: Timestamp,
}

impl SegmentHeader {
    pub(crate) fn encode(&self) -> [u8; HEADER_LEN as usize] {
        let mut h = [0u8; HEADER_LEN as usize];
        h[0..8].copy_from_slice(&MAGIC);
        h[8..10].copy_from_slice(&VERSION.to_le_bytes());
        h[10] = self.codec.id();
        h[12..16].copy_from_slice(&self.max_frame.to_le_bytes());
        h[16..24].copy_from_slice(&self.first_seq.to_le_bytes());
        h[24..32].copy_from_slice(&self.created.as_nanos().to_le_bytes());
        let crc = crc32c::crc32c(&h[0..32]);
        h[32..36].copy_from_slice(&crc.to_le_bytes());
        h
    }

    pub(crate) fn decode(h: &[u8; HEADER_LEN as usize], segment: &Path) -> Result<Self> {
        if h[0..8] != MAGIC {
            return Err(Error::BadMagic {
                segment: segment.to_path_buf(),
            });
        }
        let version = u16::from_le_bytes([h[8], h[9]]);
        if version != VERSION {
            return Err(Error::UnsupportedVersion {
                segment: segment.to_path_buf(),
                version,
            });
        }
        let crc = u32::from_le_bytes([h[32], h[33], h[34], h[35]]);
        if crc != crc32c::crc32c(&h[0..32]) {
            return Err(Error::BadHeader {
                segment: segment.to_path_buf(),
                reason: "header checksum mismatch",
            });
        }
        let codec = Codec::from_id(h[10]).ok_or_else(|| Error::UnknownCodec {
            segment: segment.to_path_buf(),
            id: h[10],
        })?;
        if h[11] != 0 {
            return Err(Error::BadHeader {
                segment: segment.to_path_buf(),
                reason: "reserved byte set",
            });
        }
        let max_frame = u32::from_le_bytes([h[12], h[13], h[14], h[15]]);
        if max_frame < MIN_BODY_LEN {
            return Err(Error::BadHeader {
                segment: segment.to_path_buf(),
                reason: "maximum frame length below the smallest frame",
            });
        }
        Ok(SegmentHeader {
            codec,
            max_frame,
            first_seq: u64_at(h, 16),
            created: Timestamp::from_nanos(u64_at(h, 24)),
        })
    }
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Appends one frame for `envelope` with sequence number `seq` to `out`.
/// On error, `out` keeps its length from before the call.
pub(crate) fn encode_frame<T: Serialize>(
    out: &mut Vec<u8>,
    seq: u64,
    envelope: &Envelope<T>,
    codec: Codec,
    max_body: u32,
) -> Result<()> {
    let start = out.len();
    let result = encode_frame_inner(out, start, seq, envelope, codec, max_body);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn encode_frame_inner<T: Serialize>(
    out: &mut Vec<u8>,
    start: usize,
    seq: u64,
    e: &Envelope<T>,
    codec: Codec,
    max_body: u32,
) -> Result<()> {
    out.extend_from_slice(&[0u8; FRAME_HEADER_LEN as usize]);
    let body = out.len();
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&e.time().as_nanos().to_le_bytes());
    out.extend_from_slice(e.id().as_bytes());
    out.extend_from_slice(e.correlation_id().as_bytes());
    let mut flags = 0u8;
    let opt = |flag: u8, present: bool| if present { flag } else { 0 };
    flags |= opt(FLAG_CAUSATION, e.causation_id().is_some());
    flags |= opt(FLAG_SESSION, e.session_id().is_some());
    flags |= opt(FLAG_SOURCE, e.source().is_some());
    flags |= opt(FLAG_TENANT, e.tenant().is_some());
    flags |= opt(FLAG_IDEMPOTENCY, e.idempotency_key().is_some());
    flags |= opt(FLAG_REPLAY, e.replay().is_some());
    flags |= opt(FLAG_DRY_RUN, e.replay().is_some_and(|r| r.dry_run));
    out.push(flags);
    if let Some(c) = e.causation_id() {
        out.extend_from_slice(c.as_bytes());
    }
    if let Some(r) = e.replay() {
        out.extend_from_slice(&r.recorded_seq.to_le_bytes());
    }
    put_str(out, "topic", e.topic())?;
    for (field, value) in [
        ("session_id", e.session_id()),
        ("source", e.source()),
        ("tenant", e.tenant()),
        ("idempotency_key", e.idempotency_key()),
    ] {
        if let Some(v) = value {
            put_str(out, field, v)?;
        }
    }
    let tags = e.tags();
    out.push(u8::try_from(tags.len()).map_err(|_| Error::FieldTooLong { field: "tags" })?);
    for t in tags {
        put_str(out, "tags", t)?;
    }
    codec.encode_into(e.payload(), out)?;
    let len = out.len() - body;
    let len32 = u32::try_from(len)
        .ok()
        .filter(|&l| l <= max_body)
        .ok_or(Error::FrameTooLarge { len, max: max_body })?;
    let crc = crc32c::crc32c(&out[body..]);
    out[start..start + 4].copy_from_slice(&len32.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

fn put_str(out: &mut Vec<u8>, field: &'static str, s: &str) -> Result<()> {
    let n = u16::try_from(s.len()).map_err(|_| Error::FieldTooLong { field })?;
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// What the bytes at a frame's start hold.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameCheck {
    /// A complete frame of this many bytes (header + body) whose CRC matches.
    Valid(u64),
    /// Fewer bytes than the frame's header or its length field says.
    Incomplete,
    /// Not a frame: impossible length or bad CRC.
    Invalid(&'static str),
}

/// Reads the frame header at the start of `header` (8 bytes): the body
/// length if it is in range.
pub(crate) fn frame_len(header: &[u8; 8], max_body: u32) -> Result<u32, &'static str> {
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    if len < MIN_BODY_LEN {
        Err("frame length below the minimum")
    } else if len > max_body {
        Err("frame length above the maximum frame size")
    } else {
        Ok(len)
    }
}

/// Checks the frame at the start of `bytes` (which may hold more after it).
#[cfg(test)]
pub(crate) fn check_frame(bytes: &[u8], max_body: u32) -> FrameCheck {
    let Some(header) = bytes.first_chunk::<8>() else {
        return FrameCheck::Incomplete;
    };
    let len = match frame_len(header, max_body) {
        Ok(len) => len as usize,
        Err(reason) => return FrameCheck::Invalid(reason),
    };
    let Some(body) = bytes.get(8..8 + len) else {
        return FrameCheck::Incomplete;
    };
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if crc32c::crc32c(body) != crc {
        return FrameCheck::Invalid("checksum mismatch");
    }
    FrameCheck::Valid(FRAME_HEADER_LEN + len as u64)
}

/// The CRC field of a frame header.
pub(crate) fn frame_crc(header: &[u8; 8]) -> u32 {
    u32::from_le_bytes([header[4], header[5], header[6], header[7]])
}

/// The sequence number at the start of a body (at least [`MIN_BODY_LEN`]
/// bytes long).
pub(crate) fn body_seq(body: &[u8]) -> Option<u64> {
    body.first_chunk::<8>().map(|b| u64::from_le_bytes(*b))
}

/// Where a record sits: its segment (named by the segment's first sequence
/// number) and the byte offset of its frame in that file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// The first sequence number of the segment, which names its file.
    pub segment: u64,
    /// Byte offset in the segment file.
    pub offset: u64,
}

/// One record read back from a journal: the envelope's metadata, decoded,
/// and the payload's bytes, still encoded with the journal's [`Codec`].
///
/// A tool that does not know the payload type reads everything but the
/// payload; [`Record::envelope`] and [`Record::payload`] decode it as `T`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    seq: u64,
    time: Timestamp,
    id: EventId,
    correlation_id: EventId,
    causation_id: Option<EventId>,
    replay: Option<ReplayMark>,
    topic: Arc<str>,
    session_id: Option<Arc<str>>,
    source: Option<Arc<str>>,
    tenant: Option<Arc<str>>,
    idempotency_key: Option<Arc<str>>,
    tags: Vec<Arc<str>>,
    payload: Vec<u8>,
    codec: Codec,
    position: Position,
}

impl Record {
    /// The sequence number the journal assigned.
    pub fn seq(&self) -> u64 {
        self.seq
    }
    /// The envelope's time.
    pub fn time(&self) -> Timestamp {
        self.time
    }
    /// The envelope's id.
    pub fn id(&self) -> EventId {
        self.id
    }
    /// The correlation id.
    pub fn correlation_id(&self) -> EventId {
        self.correlation_id
    }
    /// The causation id, if any.
    pub fn causation_id(&self) -> Option<EventId> {
        self.causation_id
    }
    /// The replay mark, if a replay published the recorded event.
    pub fn replay(&self) -> Option<ReplayMark> {
        self.replay
    }
    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }
    /// The session id, if any.
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }
    /// The source, if any.
    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }
    /// The tenant, if any.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }
    /// The idempotency key, if any.
    pub fn idempotency_key(&self) -> Option<&str> {
        self.idempotency_key.as_deref()
    }
    /// The tags, in order.
    pub fn tags(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.tags.iter().map(|t| &**t)
    }
    /// The payload's bytes, encoded with [`Record::codec`].
    pub fn payload_bytes(&self) -> &[u8] {
        &self.payload
    }
    /// The codec of the payload's bytes.
    pub fn codec(&self) -> Codec {
        self.codec
    }
    /// Where the record's frame sits.
    pub fn position(&self) -> Position {
        self.position
    }

    /// Decodes the payload as `T`.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] if the bytes are not a `T` in the record's codec.
    pub fn payload<T: DeserializeOwned>(&self) -> Result<T> {
        self.codec.decode(&self.payload, self.seq)
    }

    /// The recorded envelope, with its payload decoded as `T`.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] if the payload is not a `T` in the record's codec.
    pub fn envelope<T: DeserializeOwned>(&self) -> Result<Envelope<T>> {
        let payload = self.payload::<T>()?;
        let mut e = Envelope::on(&self.topic, payload)
            .map_err(|err| Error::Decode {
                seq: self.seq,
                message: err.to_string(),
            })?
            .with_id(self.id)
            .with_time(self.time)
            .with_correlation_id(self.correlation_id)
            .with_replay_mark(self.replay);
        if let Some(c) = self.causation_id {
            e = e.with_causation_id(c);
        }
        if let Some(s) = &self.session_id {
            e = e.with_session(s);
        }
        if let Some(s) = &self.source {
            e = e.with_source(s);
        }
        if let Some(s) = &self.tenant {
            e = e.with_tenant(s);
        }
        if let Some(s) = &self.idempotency_key {
            e = e.with_idempotency_key(s);
        }
        for t in &self.tags {
            e = e.with_tag(t);
        }
        Ok(e)
    }
}

/// A cursor over a body's bytes; every read is bounds-checked.
struct Cur<'a> {
    b: &'a [u8],
}

impl<'a> Cur<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if n > self.b.len() {
            return Err("metadata runs past the end of the frame");
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }
    fn u64(&mut self) -> Result<u64, &'static str> {
        Ok(u64_at(self.take(8)?, 0))
    }
    fn id(&mut self) -> Result<EventId, &'static str> {
        let mut a = [0u8; 16];
        a.copy_from_slice(self.take(16)?);
        Ok(EventId::from_bytes(a))
    }
    fn str(&mut self) -> Result<Arc<str>, &'static str> {
        let n = self.take(2)?;
        let n = u16::from_le_bytes([n[0], n[1]]) as usize;
        let s = std::str::from_utf8(self.take(n)?).map_err(|_| "string is not UTF-8")?;
        Ok(Arc::from(s))
    }
    fn opt_str(&mut self, present: bool) -> Result<Option<Arc<str>>, &'static str> {
        if present {
            self.str().map(Some)
        } else {
            Ok(None)
        }
    }
}

/// Decodes a body whose CRC matched.
pub(crate) fn decode_body(
    body: &[u8],
    codec: Codec,
    position: Position,
) -> Result<Record, &'static str> {
    let mut c = Cur { b: body };
    let seq = c.u64()?;
    let time = Timestamp::from_nanos(c.u64()?);
    let id = c.id()?;
    let correlation_id = c.id()?;
    let flags = c.u8()?;
    if flags & FLAG_RESERVED != 0 {
        return Err("reserved flag bit set");
    }
    if flags & FLAG_DRY_RUN != 0 && flags & FLAG_REPLAY == 0 {
        return Err("dry-run flag without a replay mark");
    }
    let causation_id = if flags & FLAG_CAUSATION != 0 {
        Some(c.id()?)
    } else {
        None
    };
    let replay = if flags & FLAG_REPLAY != 0 {
        Some(ReplayMark {
            dry_run: flags & FLAG_DRY_RUN != 0,
            recorded_seq: c.u64()?,
        })
    } else {
        None
    };
    let topic = c.str()?;
    if validate_topic(&topic).is_err() {
        return Err("invalid topic");
    }
    let session_id = c.opt_str(flags & FLAG_SESSION != 0)?;
    let source = c.opt_str(flags & FLAG_SOURCE != 0)?;
    let tenant = c.opt_str(flags & FLAG_TENANT != 0)?;
    let idempotency_key = c.opt_str(flags & FLAG_IDEMPOTENCY != 0)?;
    let n_tags = c.u8()?;
    let mut tags = Vec::with_capacity(usize::from(n_tags));
    for _ in 0..n_tags {
        tags.push(c.str()?);
    }
    Ok(Record {
        seq,
        time,
        id,
        correlation_id,
        causation_id,
        replay,
        topic,
        session_id,
        source,
        tenant,
        idempotency_key,
        tags,
        payload: c.b.to_vec(),
        codec,
        position,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let h = SegmentHeader {
            codec: Codec::Json,
            max_frame: DEFAULT_MAX_FRAME,
            first_seq: 42,
            created: Timestamp::from_nanos(7),
        };
        let bytes = h.encode();
        let p = Path::new("x.seg");
        assert_eq!(SegmentHeader::decode(&bytes, p).unwrap(), h);
        let mut bad = bytes;
        bad[0] = b'X';
        assert!(matches!(
            SegmentHeader::decode(&bad, p),
            Err(Error::BadMagic { .. })
        ));
        let mut bad = bytes;
        bad[8] = 9;
        assert!(matches!(
            SegmentHeader::decode(&bad, p),
            Err(Error::UnsupportedVersion { version: 9, .. })
        ));
        let mut bad = bytes;
        bad[19] ^= 1;
        assert!(matches!(
            SegmentHeader::decode(&bad, p),
            Err(Error::BadHeader { .. })
        ));
    }

    #[test]
    fn a_frame_checks_its_length_and_crc() {
        let e = Envelope::on("a.b", 5u32).unwrap();
        let mut out = Vec::new();
        encode_frame(&mut out, 3, &e, Codec::Postcard, DEFAULT_MAX_FRAME).unwrap();
        assert_eq!(
            check_frame(&out, DEFAULT_MAX_FRAME),
            FrameCheck::Valid(out.len() as u64)
        );
        for cut in 0..out.len() {
            assert_eq!(
                check_frame(&out[..cut], DEFAULT_MAX_FRAME),
                FrameCheck::Incomplete
            );
        }
        let mut bad = out.clone();
        *bad.last_mut().unwrap() ^= 0x40;
        assert!(matches!(
            check_frame(&bad, DEFAULT_MAX_FRAME),
            FrameCheck::Invalid(_)
        ));
        // A frame bigger than the maximum is refused when written and read.
        let small = (out.len() - 9) as u32;
        assert!(matches!(
            encode_frame(&mut Vec::new(), 3, &e, Codec::Postcard, small),
            Err(Error::FrameTooLarge { .. })
        ));
        assert!(matches!(check_frame(&out, small), FrameCheck::Invalid(_)));
    }

    #[test]
    fn truncated_metadata_is_an_error_not_a_panic() {
        let e = Envelope::on("a.b", "payload".to_string())
            .unwrap()
            .with_tenant("t")
            .with_tag("x");
        let mut out = Vec::new();
        encode_frame(&mut out, 0, &e, Codec::Json, DEFAULT_MAX_FRAME).unwrap();
        let body = &out[8..];
        let pos = Position {
            segment: 0,
            offset: 32,
        };
        let r = decode_body(body, Codec::Json, pos).unwrap();
        assert_eq!(r.payload::<String>().unwrap(), "payload");
        for cut in 0..body.len() {
            // Every prefix either fails or decodes with a shorter payload.
            let _ = decode_body(&body[..cut], Codec::Json, pos);
        }
    }
}
