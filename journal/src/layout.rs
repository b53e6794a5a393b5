//! The fixed sizes and markers of the segment format, shared by the
//! format, its errors and the readers (documented in [`format`](crate::format)).

/// The magic bytes a segment starts with.
pub const MAGIC: [u8; 8] = *b"EVBJRNL\0";
/// The format version this crate writes and reads.
pub const VERSION: u16 = 1;
/// The length of a segment header.
pub const HEADER_LEN: u64 = 36;
/// The length of a frame's `len` and CRC fields.
pub const FRAME_HEADER_LEN: u64 = 8;
/// The smallest valid body: the fixed metadata fields, an empty topic
/// length, and the tag count.
pub const MIN_BODY_LEN: u32 = 8 + 8 + 16 + 16 + 1 + 2 + 1;
/// The default maximum frame body: 16 MiB.
pub const DEFAULT_MAX_FRAME: u32 = 16 << 20;
