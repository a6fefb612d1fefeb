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
pub mod postgres;
