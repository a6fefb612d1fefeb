//! The audit log: one JSON line per tool call and per outgoing HTTP
//! request (and per reload) in `audit.jsonl` in the data directory.
//!
//! A call is written twice: an intent line (`tool_call_started`) before it
//! runs and the `tool_call` line with its outcome after, so a crash between
//! the two leaves evidence that the call may have run. Lines go through the
//! file's writer thread ([`crate::store::writer`]). With `required`
//! (`[audit] required = true`, the default of `boram serve`) a call waits
//! for its intent line and does not run when it cannot be written (disk
//! full); otherwise the line is handed over, the call goes on, and a lost
//! line is reported on stderr.

mod jsonl;

pub use jsonl::JsonlFile;

use crate::runtime::{CallReport, Outcome};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::Path;

/// The current time as RFC 3339 with milliseconds, the format of every log line.
pub fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// File name of the audit log inside the data directory.
pub const AUDIT_FILE: &str = "audit.jsonl";

/// One tool call, as recorded. The input itself is not stored (it may hold
/// private data), only its SHA-256.
#[derive(Debug, Serialize)]
pub struct ToolCallRecord<'a> {
    pub time: String,
    pub event: &'static str,
    pub tool: &'a str,
    pub tool_hash: &'a str,
    pub input_sha256: String,
    pub outcome: Outcome,
    pub duration_us: u64,
    pub memory_peak_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
}

impl<'a> ToolCallRecord<'a> {
    pub fn new(report: &'a CallReport, input: &str) -> Self {
        Self {
            time: now(),
            event: "tool_call",
            tool: &report.tool,
            tool_hash: &report.tool_hash,
            input_sha256: hex::encode(Sha256::digest(input.as_bytes())),
            outcome: report.outcome,
            duration_us: report.duration.as_micros() as u64,
            memory_peak_bytes: report.memory_peak_bytes,
            error: report.error.as_deref(),
        }
    }
}

/// The line written before a call runs.
#[derive(Debug, Serialize)]
struct ToolCallStarted<'a> {
    time: String,
    event: &'static str,
    tool: &'a str,
    tool_hash: &'a str,
    input_sha256: String,
}

/// The audit log of one data directory.
#[derive(Debug)]
pub struct AuditLog {
    file: JsonlFile,
    required: bool,
}

impl AuditLog {
    pub fn open(data_dir: &Path) -> std::io::Result<Self> {
        Ok(Self {
            file: JsonlFile::open(&data_dir.join(AUDIT_FILE))?,
            required: false,
        })
    }

    /// Cluster mode: a copy of every line to the shared store as well.
    pub fn copied_to(mut self, copy: Option<crate::store::postgres::logs::LineCopy>) -> Self {
        self.file = self.file.with_copy(copy);
        self
    }

    /// With `required`, a call whose intent line cannot be written is refused.
    pub fn required(mut self, required: bool) -> Self {
        self.required = required;
        self
    }

    pub fn is_required(&self) -> bool {
        self.required
    }

    /// Writes the intent line of a call about to run. With `required`,
    /// waits until the line is written (the call must not run without its
    /// evidence, and only the write can tell) and returns `Err` with the
    /// reason when it was lost. Without, the line is handed to the writer
    /// and the call goes on at once: a lost line is logged by the writer,
    /// as a best-effort log's should be.
    pub async fn call_started(&self, tool: &str, tool_hash: &str, input: &str) -> Result<(), String> {
        let line = ToolCallStarted {
            time: now(),
            event: "tool_call_started",
            tool,
            tool_hash,
            input_sha256: hex::encode(Sha256::digest(input.as_bytes())),
        };
        if !self.required {
            if let Err(e) = self.file.append(&line) {
                tracing::warn!(path = %self.path().display(), error = %e, tool, "an audit line was lost; the call runs anyway");
            }
            return Ok(());
        }
        self.file.append_flushed(&line).await.map_err(|e| {
            format!(
                "the audit log {} cannot be written ({e}), and [audit] required = true refuses to run \
                 tools without an audit record; free disk space or fix the file",
                self.path().display()
            )
        })
    }

    /// Waits until every line recorded so far is in the file (for a reader
    /// in this process).
    pub async fn flush(&self) -> std::io::Result<()> {
        self.file.flush().await
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Records another event (a reload, a rejected swap, a refusal, an
    /// approval given) as one JSON line, handed to the writer.
    pub fn event(&self, line: &serde_json::Value) {
        if let Err(e) = self.file.append(line) {
            tracing::error!(path = %self.path().display(), error = %e, "cannot write the audit log");
        }
    }

    /// Records one outgoing HTTP request of a tool (allowed or denied).
    pub fn http_request(&self, record: &crate::runtime::HttpRecord) {
        if let Err(e) = self.file.append(record) {
            tracing::error!(path = %self.path().display(), error = %e, "cannot write the audit log");
        }
    }

    /// Records a tool call, handed to the writer. A failed write is logged
    /// by the writer, not returned: losing an audit line must not fail the
    /// call, but it must not go unnoticed.
    pub fn tool_call(&self, report: &CallReport, input: &str) {
        if let Err(e) = self.file.append(&ToolCallRecord::new(report, input)) {
            tracing::error!(path = %self.path().display(), error = %e, "cannot write the audit log");
        }
    }
}
