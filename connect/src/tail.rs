//! Following a file by its path as `tail -F` does: complete lines from a
//! byte position, appends as they come, a new file behind the path
//! (rotation: another inode) from its start, and a file cut below the
//! position (truncation) from its start again.

use crate::offsets::FilePosition;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub struct Tail {
    path: PathBuf,
    file: File,
    position: FilePosition,
}

impl Tail {
    /// Opens `path` at `stored`, or at its start when it is another file
    /// than the one `stored` was in, or shorter than `stored` now.
    pub fn open(path: &Path, stored: Option<FilePosition>) -> io::Result<Tail> {
        let file = File::open(path).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display()))
        })?;
        let meta = file.metadata()?;
        let offset = match stored {
            Some(p) if p.inode != meta.ino() => {
                log::warn!(
                    "{} is another file than at the stored position (rotated while stopped): reading it from its start",
                    path.display()
                );
                0
            }
            Some(p) if p.offset > meta.len() => {
                log::warn!(
                    "{} is shorter ({} bytes) than the stored position {} (truncated): reading it from its start",
                    path.display(),
                    meta.len(),
                    p.offset
                );
                0
            }
            Some(p) => p.offset,
            None => 0,
        };
        Ok(Tail {
            path: path.to_path_buf(),
            file,
            position: FilePosition {
                inode: meta.ino(),
                offset,
            },
        })
    }

    /// Where the lines read so far end.
    pub fn position(&self) -> FilePosition {
        self.position
    }

    /// Bytes of the open file after the position.
    pub fn remaining(&self) -> u64 {
        self.file
            .metadata()
            .map(|m| m.len().saturating_sub(self.position.offset))
            .unwrap_or(0)
    }

    /// Up to `max` complete lines after the position, without their line
    /// ends. A line still being written (no newline yet) waits for the
    /// next call, unless the file was rotated away: then it is its last.
    pub fn read_lines(&mut self, max: usize) -> io::Result<Vec<String>> {
        if self.file.metadata()?.len() < self.position.offset {
            log::warn!(
                "{} was truncated below position {}: reading it from its start",
                self.path.display(),
                self.position.offset
            );
            self.position.offset = 0;
        }
        let (mut lines, rest) = self.read_from_position(max)?;
        if lines.is_empty() && self.rotated() {
            // The old file is read to its end: what the writer left in it
            // without a newline is its last line.
            if !rest.is_empty() {
                self.position.offset += rest.len() as u64;
                lines.push(text(&rest));
            }
            match Tail::open(&self.path, None) {
                Ok(next) => {
                    log::info!("{} was rotated: reading the new file", self.path.display());
                    *self = next;
                }
                // Between the rename and the new file: the next poll looks again.
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(lines),
                Err(e) => return Err(e),
            }
            if lines.is_empty() {
                return self.read_lines(max);
            }
        }
        Ok(lines)
    }

    /// Complete lines and the incomplete rest after them.
    fn read_from_position(&mut self, max: usize) -> io::Result<(Vec<String>, Vec<u8>)> {
        self.file.seek(SeekFrom::Start(self.position.offset))?;
        let mut reader = BufReader::new(&self.file);
        let mut lines = Vec::new();
        let mut buffer = Vec::new();
        while lines.len() < max {
            buffer.clear();
            let n = reader.read_until(b'\n', &mut buffer)?;
            if n == 0 || buffer.last() != Some(&b'\n') {
                return Ok((lines, buffer));
            }
            self.position.offset += n as u64;
            buffer.pop();
            if buffer.last() == Some(&b'\r') {
                buffer.pop();
            }
            lines.push(text(&buffer));
        }
        Ok((lines, Vec::new()))
    }

    /// Whether the path no longer names the open file: another file, or
    /// none (renamed away, the new one not created yet).
    fn rotated(&self) -> bool {
        match std::fs::metadata(&self.path) {
            Ok(meta) => meta.ino() != self.position.inode,
            Err(_) => true,
        }
    }
}

/// Lines are text; bytes that are not UTF-8 are replaced, as Kafka's
/// FileStreamSource reads with a UTF-8 reader.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn reads_complete_lines_and_follows_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        append(&path, "one\ntwo\r\nthr");
        let mut tail = Tail::open(&path, None).unwrap();
        assert_eq!(tail.read_lines(10).unwrap(), ["one", "two"]);
        assert_eq!(tail.position().offset, 9);
        assert_eq!(tail.remaining(), 3);
        assert!(tail.read_lines(10).unwrap().is_empty());
        append(&path, "ee\nfour\nfive\n");
        assert_eq!(tail.read_lines(2).unwrap(), ["three", "four"]);
        assert_eq!(tail.read_lines(2).unwrap(), ["five"]);
    }

    #[test]
    fn resumes_at_a_stored_position_of_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        append(&path, "one\ntwo\n");
        let mut first = Tail::open(&path, None).unwrap();
        first.read_lines(1).unwrap();
        let mut again = Tail::open(&path, Some(first.position())).unwrap();
        assert_eq!(again.read_lines(10).unwrap(), ["two"]);

        let other_file = FilePosition {
            inode: first.position().inode + 1,
            offset: 4,
        };
        let mut rotated = Tail::open(&path, Some(other_file)).unwrap();
        assert_eq!(rotated.read_lines(10).unwrap(), ["one", "two"]);

        let past_the_end = FilePosition {
            offset: 100,
            ..first.position()
        };
        let mut truncated = Tail::open(&path, Some(past_the_end)).unwrap();
        assert_eq!(truncated.read_lines(10).unwrap(), ["one", "two"]);
    }

    #[test]
    fn rotation_finishes_the_old_file_then_reads_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        append(&path, "a1\na2\n");
        let mut tail = Tail::open(&path, None).unwrap();
        assert_eq!(tail.read_lines(1).unwrap(), ["a1"]);
        append(&path, "a3");
        std::fs::rename(&path, dir.path().join("in.txt.1")).unwrap();
        assert_eq!(tail.read_lines(10).unwrap(), ["a2"]);
        // Renamed, no new file yet: nothing, and no error.
        assert_eq!(tail.read_lines(10).unwrap(), ["a3"]);
        assert!(tail.read_lines(10).unwrap().is_empty());
        append(&path, "b1\n");
        assert_eq!(tail.read_lines(10).unwrap(), ["b1"]);
        assert_eq!(tail.position().offset, 3);
    }

    #[test]
    fn truncation_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        append(&path, "long line one\nlong line two\n");
        let mut tail = Tail::open(&path, None).unwrap();
        assert_eq!(tail.read_lines(10).unwrap().len(), 2);
        std::fs::write(&path, "new\n").unwrap();
        assert_eq!(tail.read_lines(10).unwrap(), ["new"]);
    }

    #[test]
    fn a_missing_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.txt");
        let e = Tail::open(&path, None).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("absent.txt"), "{e}");
    }
}
