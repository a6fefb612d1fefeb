//! Copies of every replica's audit and usage lines in PostgreSQL (the
//! `log_lines` table), so an operator reads a cluster's audit trail and
//! costs with one query instead of collecting files from each machine.
//!
//! The local file stays the record of first resort: an audit intent line
//! is on this machine's disk before a tool runs, with no network in the
//! way (`[audit] required` is judged on it). Each line is then handed to
//! [`SharedLog`], whose writer task inserts the copies in batches. While
//! the database is down the copies wait in memory (up to
//! [`MAX_PENDING`] lines, then the oldest are dropped with a warning: the
//! local files still have them) and are written when it returns. Every
//! line carries an `origin` (replica, process, number) that is unique in
//! the table, so a batch retried after a lost answer is stored once.

use super::PgStore;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Copies waiting for the database, at most; beyond this the oldest go.
pub const MAX_PENDING: usize = 100_000;
/// Lines per insert.
const BATCH: usize = 500;

/// Which log a line is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogKind {
    Audit,
    Usage,
}

impl LogKind {
    fn as_str(self) -> &'static str {
        match self {
            LogKind::Audit => "audit",
            LogKind::Usage => "usage",
        }
    }
}

struct Line {
    kind: LogKind,
    user: String,
    text: String,
}

enum Command {
    Line(Line),
    Flush(oneshot::Sender<bool>),
}

/// The handle every log of this replica copies its lines through.
#[derive(Debug, Clone)]
pub struct SharedLog {
    tx: mpsc::UnboundedSender<Command>,
}

impl SharedLog {
    /// Starts the writer of replica `replica`'s copies into `store`.
    pub fn spawn(store: PgStore, replica: &str) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        // Unique per process: a restarted replica numbers its lines afresh.
        let boot = format!(
            "{replica}/{}/{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
        );
        tokio::spawn(write_copies(store, replica.to_string(), boot, rx));
        Self { tx }
    }

    /// Queues a copy of `text` (one JSON line, already scrubbed of secrets)
    /// from `user`'s `kind` log. Never blocks.
    pub fn copy(&self, kind: LogKind, user: &str, text: &str) {
        let _ = self.tx.send(Command::Line(Line {
            kind,
            user: user.to_string(),
            text: text.to_string(),
        }));
    }

    /// Where `user`'s `kind` log sends its copies.
    pub fn copy_as(&self, kind: LogKind, user: &str) -> LineCopy {
        LineCopy {
            log: self.clone(),
            kind,
            user: user.to_string(),
        }
    }

    /// Waits until every copy queued so far is in the database, at most
    /// `timeout`; whether they all are.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Flush(tx)).is_err() {
            return false;
        }
        matches!(tokio::time::timeout(timeout, rx).await, Ok(Ok(true)))
    }
}

/// Where a [`crate::audit::JsonlFile`] sends a copy of each line it writes.
#[derive(Debug, Clone)]
pub struct LineCopy {
    pub log: SharedLog,
    pub kind: LogKind,
    pub user: String,
}

impl LineCopy {
    pub fn send(&self, text: &str) {
        self.log.copy(self.kind, &self.user, text);
    }
}

const INSERT: &str = "INSERT INTO log_lines (origin, kind, replica, user_name, line)
     SELECT o, k, $1, u, l::jsonb FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) AS t(o, k, u, l)
     ON CONFLICT (origin) DO NOTHING";

/// The copies not yet in the database, in order, and who waits for them.
struct Pending {
    /// Names this process's lines: `{boot}/{number}`.
    boot: String,
    lines: VecDeque<(u64, Line)>,
    numbered: u64,
    dropped: u64,
    /// Flushes, each answered once every line numbered up to its mark is written.
    waiting: Vec<(u64, oneshot::Sender<bool>)>,
}

impl Pending {
    fn accept(&mut self, command: Command) {
        match command {
            Command::Line(line) => {
                self.numbered += 1;
                self.lines.push_back((self.numbered, line));
                if self.lines.len() > MAX_PENDING {
                    self.lines.pop_front();
                    self.dropped += 1;
                    // Once, then every 10,000: a long outage must not flood the log.
                    if self.dropped % 10_000 == 1 {
                        tracing::warn!(
                            dropped = self.dropped,
                            "the database has been away too long: the oldest audit/usage copies were dropped \
                             (this replica's own files still hold them)"
                        );
                    }
                }
            }
            Command::Flush(waiter) => self.waiting.push((self.numbered, waiter)),
        }
    }

    /// Marks lines up to `number` written and answers the flushes they complete.
    fn written_up_to(&mut self, number: u64) {
        let (done, still): (Vec<_>, Vec<_>) = self.waiting.drain(..).partition(|(mark, _)| *mark <= number);
        self.waiting = still;
        for (_, waiter) in done {
            let _ = waiter.send(true);
        }
    }
}

/// The writer task: batches of pending copies, in order, until every
/// handle is gone and nothing is pending (or the process ends).
async fn write_copies(store: PgStore, replica: String, boot: String, mut rx: mpsc::UnboundedReceiver<Command>) {
    let mut pending = Pending {
        boot,
        lines: VecDeque::new(),
        numbered: 0,
        dropped: 0,
        waiting: Vec::new(),
    };
    let mut down_since: Option<std::time::Instant> = None;
    let mut backoff = Duration::from_millis(200);
    loop {
        // Wait for something when there is nothing to write.
        if pending.lines.is_empty() {
            pending.written_up_to(pending.numbered);
            match rx.recv().await {
                Some(command) => pending.accept(command),
                None => return,
            }
        }
        while let Ok(command) = rx.try_recv() {
            pending.accept(command);
        }
        if pending.lines.is_empty() {
            continue;
        }
        let batch: Vec<&(u64, Line)> = pending.lines.iter().take(BATCH).collect();
        match insert(&store, &replica, &pending.boot, &batch).await {
            Ok(()) => {
                let last = batch.last().map_or(0, |(n, _)| *n);
                let count = batch.len();
                pending.lines.drain(..count);
                pending.written_up_to(last);
                if let Some(since) = down_since.take() {
                    tracing::info!(
                        after_s = since.elapsed().as_secs(),
                        "the database is back: audit/usage copies are written again"
                    );
                }
                backoff = Duration::from_millis(200);
            }
            Err(e) => {
                if down_since.is_none() {
                    tracing::warn!(error = %e, pending = pending.lines.len(), "cannot copy audit/usage lines to the database; retrying");
                    down_since = Some(std::time::Instant::now());
                }
                if rx.is_closed() && pending.waiting.is_empty() {
                    // Every handle is gone and nobody waits: the process is
                    // ending, and the local files have every line.
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn insert(store: &PgStore, replica: &str, boot: &str, batch: &[&(u64, Line)]) -> Result<(), super::StoreError> {
    let origins: Vec<String> = batch.iter().map(|(n, _)| format!("{boot}/{n}")).collect();
    let kinds: Vec<&str> = batch.iter().map(|(_, l)| l.kind.as_str()).collect();
    let users: Vec<&str> = batch.iter().map(|(_, l)| l.user.as_str()).collect();
    // A line that is not JSON (it never should be) is kept as a string
    // rather than failing the whole batch forever.
    let lines: Vec<String> = batch
        .iter()
        .map(|(_, l)| match serde_json::from_str::<serde_json::Value>(&l.text) {
            Ok(_) => l.text.clone(),
            Err(_) => serde_json::Value::String(l.text.clone()).to_string(),
        })
        .collect();
    let client = store.client().await?;
    client
        .execute(INSERT, &[&replica, &origins, &kinds, &users, &lines])
        .await?;
    Ok(())
}
