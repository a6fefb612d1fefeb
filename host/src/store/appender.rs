//! An ordered, fenced writer of numbered JSON rows into either run store
//! ([`RunStore::append_rows`]): a run's events, or (PostgreSQL) its
//! transcript records.
//!
//! Appends return at once (the agent's code never waits on the database
//! for a record that need not be durable yet); a writer task inserts them
//! in order, in batches. [`Appender::sync`] waits until everything
//! appended so far is committed: the agent calls it at the points where a
//! crash must find the step in the journal (before a tool call starts,
//! before the next model request).
//!
//! Every batch is written only while the run's lease is still held by this
//! holder (`runs.epoch` unchanged, lease not expired): a replica that was
//! too slow and lost the run to another cannot add a step to it. A
//! database that is down is retried until it returns (the appends wait in
//! order); a lost lease or a second writer is final: every later append
//! and sync fails with the reason.

use crate::store::StoreError;
use crate::store::runs::{Fence, RunStore, Table};
use serde_json::Value;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot};

enum Command {
    Append(i64, Value),
    Sync(oneshot::Sender<Result<(), String>>),
}

/// Appends rows keyed by `key` (a session or run id), numbered from `first_seq`.
#[derive(Debug)]
pub struct Appender {
    tx: mpsc::UnboundedSender<Command>,
    next_seq: AtomicI64,
    /// Set once the writer stopped for good: why.
    failed: Arc<Mutex<Option<String>>>,
}

/// How long the writer waits before retrying an unreachable database, at most.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

impl Appender {
    /// Starts the writer task (on the current tokio runtime).
    pub fn spawn(store: Arc<dyn RunStore>, table: Table, key: String, fence: Option<Fence>, first_seq: i64) -> Self {
        Self::spawn_notifying(store, table, key, fence, first_seq, Arc::new(Notify::new()))
    }

    /// [`Self::spawn`], waking everyone waiting on `written` after each
    /// committed batch (followers of a run's events in this process read
    /// them at once instead of at their next poll).
    pub fn spawn_notifying(
        store: Arc<dyn RunStore>,
        table: Table,
        key: String,
        fence: Option<Fence>,
        first_seq: i64,
        written: Arc<Notify>,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let failed = Arc::new(Mutex::new(None));
        tokio::spawn(write_loop(store, table, key, fence, rx, failed.clone(), written));
        Self {
            tx,
            next_seq: AtomicI64::new(first_seq),
            failed,
        }
    }

    /// Queues `row` as the next one; fails only when the writer stopped for good.
    pub fn append(&self, row: Value) -> std::io::Result<i64> {
        if let Some(why) = self.failure() {
            return Err(std::io::Error::other(why));
        }
        let seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
        self.tx
            .send(Command::Append(seq, row))
            .map_err(|_| std::io::Error::other("the journal writer stopped"))?;
        Ok(seq)
    }

    /// Waits until every row appended before this call is committed.
    pub async fn sync(&self) -> std::io::Result<()> {
        let (done, wait) = oneshot::channel();
        self.tx.send(Command::Sync(done)).map_err(|_| {
            std::io::Error::other(self.failure().unwrap_or_else(|| "the journal writer stopped".into()))
        })?;
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(why)) => Err(std::io::Error::other(why)),
            Err(_) => Err(std::io::Error::other(
                self.failure().unwrap_or_else(|| "the journal writer stopped".into()),
            )),
        }
    }

    /// The sequence number the next append gets.
    pub fn next_seq(&self) -> i64 {
        self.next_seq.load(Ordering::SeqCst)
    }

    fn failure(&self) -> Option<String> {
        self.failed.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

async fn write_loop(
    store: Arc<dyn RunStore>,
    table: Table,
    key: String,
    fence: Option<Fence>,
    mut rx: mpsc::UnboundedReceiver<Command>,
    failed: Arc<Mutex<Option<String>>>,
    written: Arc<Notify>,
) {
    while let Some(first) = rx.recv().await {
        // Everything already queued goes in one batch, in order.
        let mut commands = vec![first];
        while let Ok(more) = rx.try_recv() {
            commands.push(more);
        }
        let mut seqs = Vec::new();
        let mut rows = Vec::new();
        let mut waiting = Vec::new();
        for command in commands {
            match command {
                Command::Append(seq, row) => {
                    seqs.push(seq);
                    rows.push(row);
                }
                Command::Sync(done) => waiting.push(done),
            }
        }
        let outcome = if seqs.is_empty() {
            Ok(())
        } else {
            let outcome = write_batch(store.as_ref(), table, &key, fence.as_ref(), &seqs, &rows).await;
            if outcome.is_ok() {
                written.notify_waiters();
            }
            outcome
        };
        if let Err(why) = &outcome {
            tracing::error!(key, error = %why, "the journal cannot be written; this run stops here");
            *failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(why.clone());
        }
        for done in waiting {
            let _ = done.send(outcome.clone());
        }
        if outcome.is_err() {
            // Fail every later sync with the same reason.
            let why = outcome.err().unwrap_or_default();
            while let Some(command) = rx.recv().await {
                if let Command::Sync(done) = command {
                    let _ = done.send(Err(why.clone()));
                }
            }
            return;
        }
    }
}

/// Inserts one batch, retrying while the database is unreachable; `Err`
/// when it can never be written (lease lost, a second writer, refused).
async fn write_batch(
    store: &dyn RunStore,
    table: Table,
    key: &str,
    fence: Option<&Fence>,
    seqs: &[i64],
    rows: &[Value],
) -> Result<(), String> {
    let mut backoff = Duration::from_millis(50);
    loop {
        match store.append_rows(table, key, fence, seqs, rows).await {
            Ok(n) if n as usize == seqs.len() => return Ok(()),
            Ok(_) => {
                return Err(
                    "this replica no longer holds the run's lease (it expired, and the run is another replica's now)"
                        .into(),
                );
            }
            Err(StoreError::Unavailable(e)) => {
                tracing::warn!(key, error = %e, "the database is unreachable; the journal waits for it");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(StoreError::Conflict(_)) => {
                return Err("another process wrote the same step of this journal; this one stops".into());
            }
            Err(e @ (StoreError::Refused(_) | StoreError::Local(_))) => return Err(e.to_string()),
        }
    }
}
