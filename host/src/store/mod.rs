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

pub mod atomic;
pub mod local_user;
pub mod postgres;

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
