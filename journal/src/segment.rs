//! Segment files: names, listing, headers.

use std::{
    fs::{self, File, OpenOptions},
    io::{Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

use crate::{
    error::{Error, Result},
    format::{HEADER_LEN, SegmentHeader},
};

/// The suffix of segment file names.
pub(crate) const SUFFIX: &str = ".seg";

/// `<dir>/<first_seq as 20 digits>.seg`.
pub(crate) fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}{SUFFIX}"))
}

/// The first sequence numbers of the segments in `dir`, ascending. Names
/// that are not segments' are ignored.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    let entries = fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(SUFFIX) else {
            continue;
        };
        if stem.len() == 20
            && stem.bytes().all(|b| b.is_ascii_digit())
            && let Ok(n) = stem.parse::<u64>()
        {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Reads and checks the header of an open segment file whose name says it
/// starts at `first_seq`.
pub(crate) fn read_header(file: &mut File, path: &Path, first_seq: u64) -> Result<SegmentHeader> {
    let mut h = [0u8; HEADER_LEN as usize];
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_exact(&mut h))
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Error::BadHeader {
                    segment: path.to_path_buf(),
                    reason: SHORT_HEADER,
                }
            } else {
                Error::io(path, e)
            }
        })?;
    let header = SegmentHeader::decode(&h, path)?;
    if header.first_seq != first_seq {
        return Err(Error::BadHeader {
            segment: path.to_path_buf(),
            reason: "first sequence number differs from the file name",
        });
    }
    Ok(header)
}

/// The message of [`Error::BadHeader`] for a file shorter than a header.
pub(crate) const SHORT_HEADER: &str = "file shorter than a segment header";

/// Creates (or replaces) a segment file with `header`; the returned file is
/// positioned after the header.
///
/// The header is written to `<name>.seg.tmp`, which is then renamed into
/// place, so a reader that lists the directory never sees a segment
/// without its header (a `.tmp` name is not a segment's).
pub(crate) fn create_segment(dir: &Path, header: &SegmentHeader) -> Result<(File, PathBuf)> {
    let path = segment_path(dir, header.first_seq);
    let tmp = path.with_extension("seg.tmp");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| Error::io(&tmp, e))?;
    file.write_all(&header.encode())
        .map_err(|e| Error::io(&tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    Ok((file, path))
}

/// Removes the temporary files a crash may leave: a segment not yet
/// renamed into place (`.seg.tmp`), a repair not yet renamed (`.seg.repair`).
/// Called with the writer's lock held.
pub(crate) fn remove_leftovers(dir: &Path) -> Result<()> {
    let entries = fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".seg.tmp") || name.ends_with(".seg.repair") {
            let path = entry.path();
            fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    Ok(())
}

/// Makes a directory entry durable (a new or renamed segment).
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}
