//! The audit log: one JSON line per tool call and per outgoing HTTP
//! request (later also per reload) in `audit.jsonl` in the data directory.

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

/// The audit log of one data directory.
#[derive(Debug)]
pub struct AuditLog {
    file: JsonlFile,
}

impl AuditLog {
    pub fn open(data_dir: &Path) -> std::io::Result<Self> {
        Ok(Self {
            file: JsonlFile::open(&data_dir.join(AUDIT_FILE))?,
        })
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Records another event (a reload, a rejected swap) as one JSON line.
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

    /// Records a tool call. A failed write is logged, not returned: losing an
    /// audit line must not fail the call, but it must not go unnoticed.
    pub fn tool_call(&self, report: &CallReport, input: &str) {
        if let Err(e) = self.file.append(&ToolCallRecord::new(report, input)) {
            tracing::error!(path = %self.path().display(), error = %e, "cannot write the audit log");
        }
    }
}
