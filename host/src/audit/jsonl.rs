//! Append-only JSON Lines files that survive crashes: each record is one
//! `write` of a whole line to a file opened in append mode, and a torn last
//! line (from a crash mid-write) is cut off when the file is opened.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// An append-only `.jsonl` file shared by every thread of the process.
#[derive(Debug)]
pub struct JsonlFile {
    path: PathBuf,
    file: Mutex<File>,
    /// Cluster mode: where a copy of each line goes (PostgreSQL's `log_lines`).
    copy: Option<crate::store::postgres::logs::LineCopy>,
}

impl JsonlFile {
    /// Opens (creating parents and the file as needed) and repairs a torn tail.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        Self::open_with(path, false)
    }

    /// [`Self::open`] for a file only one process may write at a time (a
    /// transcript): takes an exclusive advisory lock (`flock`) held until
    /// the value is dropped, before the torn-tail repair — which must never
    /// cut a line another process is writing. `ErrorKind::WouldBlock` when
    /// another open file holds the lock.
    pub fn open_exclusive(path: &Path) -> std::io::Result<Self> {
        Self::open_with(path, true)
    }

    fn open_with(path: &Path, exclusive: bool) -> std::io::Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(path)?;
        if exclusive {
            rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(|e| {
                if e == rustix::io::Errno::WOULDBLOCK {
                    std::io::Error::new(std::io::ErrorKind::WouldBlock, "the file is locked by another writer")
                } else {
                    std::io::Error::from(e)
                }
            })?;
        }
        repair_torn_tail(&mut file)?;
        Ok(Self {
            path: path.to_path_buf(),
            file: Mutex::new(file),
            copy: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Also sends every line (after the local write, scrubbed the same way) to `copy`.
    pub fn with_copy(mut self, copy: Option<crate::store::postgres::logs::LineCopy>) -> Self {
        self.copy = copy;
        self
    }

    /// Appends `record` as one line.
    pub fn append<T: serde::Serialize>(&self, record: &T) -> std::io::Result<()> {
        // Every JSONL file (audit, usage, transcripts) passes the secret scrubber.
        let text = serde_json::to_string(record).map_err(std::io::Error::other)?;
        let text = crate::scrub::scrub(&text).into_owned();
        let mut line = Vec::with_capacity(text.len() + 1);
        line.extend_from_slice(text.as_bytes());
        line.push(b'\n');
        let written = {
            let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
            file.write_all(&line)
        };
        // The copy goes even when the local write failed (a full disk):
        // then it is the only trace of the line.
        if let Some(copy) = &self.copy {
            copy.send(&text);
        }
        written
    }
}

/// Truncates the file after its last newline when it does not end with one.
fn repair_torn_tail(file: &mut File) -> std::io::Result<()> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1))?;
    file.read_exact(&mut last)?;
    if last[0] == b'\n' {
        return Ok(());
    }
    // Scan backwards in blocks for the previous newline.
    let mut end = len;
    let mut keep = 0;
    let mut block = vec![0u8; 8192];
    while end > 0 {
        let start = end.saturating_sub(block.len() as u64);
        let chunk = &mut block[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            keep = start + i as u64 + 1;
            break;
        }
        end = start;
    }
    tracing::warn!(dropped_bytes = len - keep, "repaired a torn last line in a log file");
    file.set_len(keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_last_line_is_cut_on_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log.jsonl");
        std::fs::write(&path, "{\"a\":1}\n{\"a\":2}\n{\"a\":").expect("write");
        let log = JsonlFile::open(&path).expect("open");
        log.append(&serde_json::json!({"a": 3})).expect("append");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n"
        );
    }

    #[test]
    fn a_file_without_any_newline_is_emptied() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log.jsonl");
        std::fs::write(&path, "{\"a\":").expect("write");
        JsonlFile::open(&path).expect("open");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "");
    }
}
