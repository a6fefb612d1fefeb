//! Append-only JSON Lines files that survive crashes: records are whole
//! lines written to a file opened in append mode by the file's writer
//! thread ([`crate::store::writer`]), so appending never waits on the disk;
//! [`JsonlFile::flush`] is the sync point. A torn last line (from a crash
//! mid-write) is cut off when the file is opened.

use crate::store::writer::LineWriter;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// An append-only `.jsonl` file shared by every thread of the process.
#[derive(Debug)]
pub struct JsonlFile {
    path: PathBuf,
    writer: LineWriter,
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
            writer: LineWriter::spawn(file, path)?,
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

    /// Appends `record` as one line: handed to the writer thread, written
    /// in order with the others; [`Self::flush`] waits for it. `Err` only
    /// when the record cannot be encoded or the writer is gone; a failed
    /// write is logged by the writer and reported by the next flush.
    pub fn append<T: serde::Serialize>(&self, record: &T) -> std::io::Result<()> {
        // Every JSONL file (audit, usage, transcripts) passes the secret scrubber.
        let text = serde_json::to_string(record).map_err(std::io::Error::other)?;
        let text = crate::scrub::scrub(&text).into_owned();
        let mut line = Vec::with_capacity(text.len() + 1);
        line.extend_from_slice(text.as_bytes());
        line.push(b'\n');
        let handed = self.writer.write(line);
        // The copy goes even when the local write fails (a full disk):
        // then it is the only trace of the line.
        if let Some(copy) = &self.copy {
            copy.send(&text);
        }
        handed
    }

    /// Waits until every line appended so far is written (without
    /// blocking the thread it is polled on); the first write error since
    /// the last flush.
    pub async fn flush(&self) -> std::io::Result<()> {
        self.writer.flush().await
    }

    /// [`Self::append`] and [`Self::flush`].
    pub async fn append_flushed<T: serde::Serialize>(&self, record: &T) -> std::io::Result<()> {
        self.append(record)?;
        self.flush().await
    }

    /// [`Self::flush`] for code outside the async runtime (a command that
    /// reads the file next, a test).
    pub fn flush_blocking(&self) -> std::io::Result<()> {
        self.writer.flush_blocking()
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
        log.flush_blocking().expect("flush");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n"
        );
    }

    /// A file whose writes block (here a FIFO nobody reads yet, standing
    /// for a stalled disk) stalls its writer thread, not the async runtime:
    /// with one runtime thread, appending 1 MiB to it returns, and another
    /// task still runs. (Written with the lines from the caller's thread,
    /// as before the writer thread, this test never ends.)
    #[tokio::test(flavor = "current_thread")]
    async fn a_stalled_file_does_not_stall_the_runtime_issue_16() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("stalled.jsonl");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        let log = JsonlFile::open(&fifo).expect("open");
        let line = serde_json::json!({"pad": "x".repeat(1000)});
        for _ in 0..1024 {
            log.append(&line).expect("handed to the writer");
        }
        let other = tokio::spawn(async { "ran" });
        assert_eq!(other.await.expect("join"), "ran");
        // Let the "disk" move again: every line arrives, whole and in order.
        let expected = 1024 * (serde_json::to_string(&line).expect("json").len() + 1);
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                let mut bytes = vec![0u8; expected];
                File::open(&fifo)
                    .expect("open the read end")
                    .read_exact(&mut bytes)
                    .expect("read");
                bytes
            })
        };
        log.flush().await.expect("flushed once read");
        let bytes = reader.join().expect("reader");
        let text = String::from_utf8(bytes).expect("utf-8");
        assert_eq!(text.lines().count(), 1024);
        assert!(text.lines().all(|l| l == serde_json::to_string(&line).expect("json")));
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
