//! Small durable files: checksummed records and atomic replacement.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Bytes before each record's payload: length (u32 LE) and CRC32C (u32 LE).
pub const RECORD_HEADER: usize = 8;

/// Frames `payload` as a record: a reader can tell a complete record from a
/// torn one (short, or failing its checksum).
pub fn encode_record(payload: &[u8]) -> io::Result<Vec<u8>> {
    let len = u32::try_from(payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "record over 4 GiB"))?;
    let mut out = Vec::with_capacity(RECORD_HEADER + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// Reads the record starting at `buf[at..]`: its payload and the offset of
/// the next record, or None if it is incomplete or corrupt.
pub fn decode_record(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let header = buf.get(at..at.checked_add(RECORD_HEADER)?)?;
    let len = u32::from_le_bytes(header[0..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..8].try_into().ok()?);
    let start = at + RECORD_HEADER;
    let payload = buf.get(start..start.checked_add(len)?)?;
    (crc32c::crc32c(payload) == crc).then_some((payload, start + len))
}

/// Makes renames and creations in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replaces `path` with `contents` so that a crash leaves either the old or
/// the new file, never a mix: write a temporary, fsync it, rename it over,
/// and (if `durable`) fsync the directory so the rename survives power loss.
pub fn replace_file(path: &Path, contents: &[u8], durable: bool) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no directory"))?;
    let tmp = path.with_extension("tmp");
    {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        file.write_all(contents)?;
        if durable {
            file.sync_all()?;
        }
    }
    fs::rename(&tmp, path)?;
    if durable {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Reads a file written by [`replace_file`] holding one record; None if it
/// does not exist.
pub fn read_record_file(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let buf = match fs::read(path) {
        Ok(buf) => buf,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match decode_record(&buf, 0) {
        Some((payload, end)) if end == buf.len() => Ok(Some(payload.to_vec())),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is corrupt", path.display()),
        )),
    }
}

/// Writes one record with [`replace_file`].
pub fn write_record_file(path: &Path, payload: &[u8], durable: bool) -> io::Result<()> {
    replace_file(path, &encode_record(payload)?, durable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_detect_tears_and_corruption() {
        let mut buf = encode_record(b"hello").unwrap();
        buf.extend(encode_record(b"world").unwrap());
        let (p, next) = decode_record(&buf, 0).unwrap();
        assert_eq!(p, b"hello");
        let (p, end) = decode_record(&buf, next).unwrap();
        assert_eq!((p, end), (&b"world"[..], buf.len()));
        assert!(decode_record(&buf[..buf.len() - 1], next).is_none());
        assert!(decode_record(&buf, end).is_none());
        buf[next + RECORD_HEADER] ^= 1;
        assert!(decode_record(&buf, next).is_none());
    }

    #[test]
    fn record_files_replace_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vote");
        assert_eq!(read_record_file(&path).unwrap(), None);
        write_record_file(&path, b"one", true).unwrap();
        write_record_file(&path, b"two", true).unwrap();
        assert_eq!(read_record_file(&path).unwrap(), Some(b"two".to_vec()));
        fs::write(&path, b"garbage").unwrap();
        assert!(read_record_file(&path).is_err());
    }
}
