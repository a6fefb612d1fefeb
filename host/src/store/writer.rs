//! Appends off the caller's thread. Each append-only file (audit log,
//! usage log, transcript, recording) is owned by one writer thread;
//! callers hand it whole lines and go on, so request and agent code never
//! waits on the disk on a tokio worker. A flush is the sync point: it
//! resolves once every line handed over before it is written, with the
//! first write error since the previous flush. The lines of one file are
//! written in the order they were handed over, each whole (lines that
//! queued up meanwhile go out in one `write`), so a crash can only cut the
//! last one (repaired when the file is next opened). The queue holds at
//! most [`QUEUE_LINES`] lines: a disk that stalls that long makes appends
//! wait (backpressure) instead of growing memory without bound. Dropping
//! the writer writes what is queued, closes the file (releasing its lock)
//! and ends the thread.

use std::fs::File;
use std::io::Write as _;
use std::path::Path;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::thread::JoinHandle;

/// What the writer thread is asked to do.
enum Op {
    Line(Vec<u8>),
    Flush(Ack),
}

/// Where a flush's result goes.
enum Ack {
    Async(tokio::sync::oneshot::Sender<std::io::Result<()>>),
    Blocking(Sender<std::io::Result<()>>),
}

impl Ack {
    fn send(self, result: std::io::Result<()>) {
        // A caller that stopped waiting does not care.
        let _ = match self {
            Ack::Async(tx) => tx.send(result).map_err(drop),
            Ack::Blocking(tx) => tx.send(result).map_err(drop),
        };
    }
}

/// The writer thread of one file.
#[derive(Debug)]
pub struct LineWriter {
    ops: Mutex<Option<SyncSender<Op>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl LineWriter {
    /// Starts the thread that owns `file` (opened for appending at `path`).
    pub fn spawn(file: File, path: &Path) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(QUEUE_LINES);
        let path = path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("boram-append".into())
            .spawn(move || write_loop(file, &path, &rx))?;
        Ok(Self {
            ops: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Hands `line` (ending with its newline) to the thread; never waits.
    pub fn write(&self, line: Vec<u8>) -> std::io::Result<()> {
        self.send(Op::Line(line))
    }

    /// Waits (without blocking the thread it is polled on) until every line
    /// handed over so far is written; the first write error since the last
    /// flush, if any.
    pub async fn flush(&self) -> std::io::Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Op::Flush(Ack::Async(tx)))?;
        rx.await.unwrap_or_else(|_| Err(gone()))
    }

    /// [`Self::flush`] for code outside the async runtime.
    pub fn flush_blocking(&self) -> std::io::Result<()> {
        let (tx, rx) = channel();
        self.send(Op::Flush(Ack::Blocking(tx)))?;
        rx.recv().unwrap_or_else(|_| Err(gone()))
    }

    fn send(&self, op: Op) -> std::io::Result<()> {
        let ops = self.ops.lock().unwrap_or_else(|e| e.into_inner());
        match ops.as_ref() {
            Some(tx) => tx.send(op).map_err(|_| gone()),
            None => Err(gone()),
        }
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        // Closing the channel ends the loop once the queue is written.
        drop(self.ops.lock().unwrap_or_else(|e| e.into_inner()).take());
        if let Some(thread) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = thread.join();
        }
    }
}

fn gone() -> std::io::Error {
    std::io::Error::other("the file's writer thread has stopped")
}

/// Writes lines as they come, several at once when they queue up, and
/// answers flushes after everything before them is written.
fn write_loop(mut file: File, path: &Path, ops: &Receiver<Op>) {
    let mut failed: Option<std::io::Error> = None;
    let mut batch = Vec::new();
    let mut acks = Vec::new();
    while let Ok(first) = ops.recv() {
        let mut next = Some(first);
        // Take what else is queued: one write for all of it.
        while let Some(op) = next {
            match op {
                Op::Line(line) => batch.extend_from_slice(&line),
                Op::Flush(ack) => acks.push(ack),
            }
            // Empty or closed: write what was gathered.
            next = ops.try_recv().ok();
            if batch.len() >= MAX_BATCH {
                break;
            }
        }
        if !batch.is_empty() {
            if let Err(e) = file.write_all(&batch) {
                // Losing a line must not go unnoticed, whoever waits for it.
                tracing::error!(path = %path.display(), error = %e, "lines were lost: cannot append to the file");
                failed.get_or_insert(e);
            }
            batch.clear();
        }
        for ack in acks.drain(..) {
            ack.send(match failed.take() {
                Some(e) => Err(e),
                None => Ok(()),
            });
        }
    }
}

/// Lines (and flushes) queued for the writer before appending waits.
pub const QUEUE_LINES: usize = 16 * 1024;

/// Lines are gathered into one write up to about this many bytes.
const MAX_BATCH: usize = 1 << 20;

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    fn open(path: &Path) -> File {
        OpenOptions::new().append(true).create(true).open(path).expect("open")
    }

    #[test]
    fn lines_from_many_threads_are_written_whole_and_in_each_threads_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log.jsonl");
        let writer = std::sync::Arc::new(LineWriter::spawn(open(&path), &path).expect("spawn"));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..2_000 {
                        writer
                            .write(format!("{t} {i} {}\n", "x".repeat(i % 97)).into_bytes())
                            .expect("write");
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().expect("join"));
        writer.flush_blocking().expect("flush");
        let text = std::fs::read_to_string(&path).expect("read");
        let mut next = [0usize; 4];
        for line in text.lines() {
            let mut parts = line.split(' ');
            let t: usize = parts.next().expect("t").parse().expect("t");
            let i: usize = parts.next().expect("i").parse().expect("i");
            assert_eq!(i, next[t], "thread {t}'s lines in order");
            assert_eq!(parts.next().expect("pad").len(), i % 97, "a whole line");
            next[t] += 1;
        }
        assert_eq!(next, [2_000; 4]);
    }

    #[test]
    fn dropping_the_writer_writes_what_is_queued_and_closes_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log.jsonl");
        let writer = LineWriter::spawn(open(&path), &path).expect("spawn");
        for i in 0..500 {
            writer.write(format!("{i}\n").into_bytes()).expect("write");
        }
        drop(writer);
        assert_eq!(std::fs::read_to_string(&path).expect("read").lines().count(), 500);
    }

    #[tokio::test]
    async fn a_full_disk_is_reported_by_the_next_flush_once() {
        let path = Path::new("/dev/full");
        let file = OpenOptions::new().append(true).open(path).expect("open /dev/full");
        let writer = LineWriter::spawn(file, path).expect("spawn");
        writer.write(b"lost\n".to_vec()).expect("handed over");
        let error = writer.flush().await.expect_err("ENOSPC reaches the flush");
        assert_eq!(error.raw_os_error(), Some(28), "{error}");
        // Nothing written since: the next flush has nothing to report.
        writer.flush().await.expect("no new failure");
    }
}
