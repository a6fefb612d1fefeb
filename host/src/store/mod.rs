//! State behind one seam (issue 16).
//!
//! Two places hold state. The data directory (embedded, the default):
//! JSONL journals (transcripts, usage, audit: [`crate::audit::JsonlFile`],
//! one whole-line append per record, a torn tail cut on open, one writer
//! per transcript), SQLite for memory and failures, and small JSON
//! documents (remembered approvals, schedules, the compile cache's entries
//! and key) replaced atomically through [`atomic::write`]. And
//! [`postgres`] (cluster mode): sessions, their transcripts and the queue
//! of agent runs with their events, shared by every `boram serve`
//! replica on one database.
//!
//! The queue of service runs and their events is one seam, [`runs::RunStore`],
//! with both backends behind it: [`embedded::EmbeddedRuns`] (SQLite in the
//! data directory) and [`postgres::PgStore`]; [`appender`] writes a run's
//! journal through either. In cluster mode each replica's audit and usage
//! lines are also copied into PostgreSQL ([`postgres::logs`]). Listings of
//! sessions read a cache of their lines ([`crate::session::index`]).
//! The service's API reaches a user's remembered approvals, schedules and
//! sessions through one seam each ([`approvals::ApprovalBook`],
//! [`schedules::ScheduleBook`], [`sessions::SessionBook`]): the data
//! directory's files, or the shared store's tables per user. JSONL
//! appends go through a writer thread per file ([`writer`]).

pub mod appender;
pub mod approvals;
pub mod atomic;
pub mod embedded;
pub mod local_user;
pub mod postgres;
pub mod runs;
pub mod schedules;
pub mod sessions;
pub mod writer;

/// Why a store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached (down, refusing, timed out): worth
    /// retrying later; the service answers 503.
    #[error("the database is unreachable ({0})")]
    Unavailable(String),
    /// A row with that key exists already (a second writer of one step).
    #[error("a row with that key exists already: {0}")]
    Conflict(String),
    /// The database answered with an error.
    #[error("the database refused the request: {0}")]
    Refused(String),
    /// A file of the data directory cannot be read or written (embedded store).
    #[error("{0}")]
    Local(String),
}

impl StoreError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// Runs `op` on tokio's blocking pool: the embedded store's file and
/// SQLite work, kept off the async workers. A panicked `op` is an error.
pub(crate) async fn on_blocking_pool<T: Send + 'static>(
    op: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(op)
        .await
        .map_err(|e| StoreError::Local(format!("the store's worker failed: {e}")))
}

/// One agent run, as listed (by either run backend).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSummary {
    pub id: String,
    pub session: String,
    pub prompt: String,
    pub started: String,
    /// `queued`, `running`, or how it stopped (`answered`, `max_rounds`, `error`, …).
    pub status: String,
    pub answer: Option<String>,
    pub error: Option<String>,
    /// The replica running it (or that ran it last), in cluster mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    /// How many times it was started: more than 1 when a replica died
    /// holding it and another resumed it.
    pub attempts: u32,
}
