//! The queue of service runs and their journals, as one trait both backends
//! implement: [`crate::store::embedded::EmbeddedRuns`] (SQLite in the data
//! directory, one `boram serve`) and [`crate::store::postgres::PgStore`]
//! (any number of replicas on one database).
//!
//! A run is submitted, claimed by exactly one worker (a lease with an
//! `epoch` that the holder renews by heartbeat), and finished or released.
//! A run whose lease expired is claimable again with the epoch one higher;
//! every write of the old holder is fenced by the epoch it claimed at, so
//! a holder that was only slow can never write into a run it lost. The
//! run's events are numbered rows (sequence numbers, not clock order); a
//! duplicate number is a [`StoreError::Conflict`], never a second copy.

use crate::session::{Record, Session};
use crate::store::{RunSummary, StoreError};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A run to add to the queue.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub id: String,
    pub user: String,
    pub profile: Option<String>,
    pub prompt: String,
    pub provider: String,
    pub model: String,
    /// One run per key, across replicas (a schedule's slot).
    pub dedupe_key: Option<String>,
}

/// A run this worker now holds.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    pub user: String,
    pub session: String,
    pub profile: Option<String>,
    pub prompt: String,
    pub epoch: i64,
    /// 1 for the first claim; more when resuming after a lost holder.
    pub attempts: i32,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: String,
    pub answer: Option<String>,
    pub error: Option<String>,
    /// The `done` event, written with the status in one transaction.
    pub done: Value,
    pub done_seq: i64,
}

/// The lease a write must still hold: run `run` at claim `epoch`.
#[derive(Debug, Clone)]
pub struct Fence {
    pub run: String,
    pub epoch: i64,
}

/// Which numbered rows an [`crate::store::appender::Appender`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// A session's transcript (the PostgreSQL store only: the embedded
    /// store keeps transcripts as JSONL files in the user's directory).
    SessionRecords,
    /// A run's events, as followers read them.
    RunEvents,
}

/// The run queue and journal of one backend.
#[async_trait::async_trait]
pub trait RunStore: Send + Sync + std::fmt::Debug {
    /// Whether the store answers now.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Queues `run`; `Ok(false)` when a run with its dedupe key exists already.
    async fn submit(&self, run: &NewRun) -> Result<bool, StoreError>;
    /// Takes the oldest run that is queued or whose holder's lease expired.
    async fn claim(&self, replica: &str, lease: Duration) -> Result<Option<Claimed>, StoreError>;
    /// Renews the lease; `Ok(false)` when it was lost (expired and taken, or the run ended).
    async fn heartbeat(&self, run: &str, epoch: i64, lease: Duration) -> Result<bool, StoreError>;
    /// Records the end of a run still held at `epoch`, with its `done`
    /// event; `Ok(false)` when the lease was lost (the run is another's).
    async fn finish(&self, run: &str, epoch: i64, outcome: &Outcome) -> Result<bool, StoreError>;
    /// Gives a run back to the queue (shutting down): another worker resumes it.
    async fn release(&self, run: &str, epoch: i64) -> Result<(), StoreError>;
    /// The number the next event of `run` gets.
    async fn next_event_seq(&self, run: &str) -> Result<i64, StoreError>;
    /// Events of `run` after `after` (`-1`: from the start), at most `limit`.
    async fn events_after(&self, run: &str, after: i64, limit: i64) -> Result<Vec<(i64, Value)>, StoreError>;
    /// Run `id` if it belongs to `user`.
    async fn get(&self, user: &str, id: &str) -> Result<Option<RunSummary>, StoreError>;
    /// `user`'s newest `limit` runs, newest first.
    async fn list(&self, user: &str, limit: i64) -> Result<Vec<RunSummary>, StoreError>;
    /// Writes rows numbered `seqs` of `key` into `table` in one transaction,
    /// only while `fence` (if any) still holds; returns how many were
    /// written (0 when the lease was lost). A number already used is a
    /// [`StoreError::Conflict`] and writes nothing.
    async fn append_rows(
        &self,
        table: Table,
        key: &str,
        fence: Option<&Fence>,
        seqs: &[i64],
        rows: &[Value],
    ) -> Result<u64, StoreError>;
    /// Opens the transcript of a claimed run for writing (fenced by its
    /// lease where the backend can), with the records already in it.
    /// `sessions_dir` is the run's user's directory of transcripts (where
    /// the embedded store keeps them).
    async fn open_journal(
        self: Arc<Self>,
        claimed: &Claimed,
        fence: Fence,
        sessions_dir: &Path,
    ) -> Result<(Session, Vec<Record>), StoreError>;
}
