//! State on disk, behind one seam (issue 16, first steps).
//!
//! Today's state lives in the data directory: JSONL journals (transcripts,
//! usage, audit: [`crate::audit::JsonlFile`], one whole-line append per
//! record, a torn tail cut on open, one writer per transcript), SQLite for
//! memory and failures, and small JSON documents (remembered approvals,
//! schedules) and the compile cache's entries and key, all replaced
//! atomically through [`atomic::write`]. The backends behind narrow traits
//! (embedded and PostgreSQL) are to come here.

pub mod atomic;
