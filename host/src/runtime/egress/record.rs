//! One record per outgoing request — allowed or denied — for the audit
//! log and the call report: tool, method, where it went (host, port, the
//! address actually connected to), the rule that allowed it or why it was
//! refused, status, bytes each way, duration.

use crate::policy::net::Target;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Receives each finished record (the audit log).
pub type HttpRecordSink = Arc<dyn Fn(&HttpRecord) + Send + Sync>;

#[derive(Debug, Clone, Serialize)]
pub struct HttpRecord {
    pub time: String,
    pub event: &'static str,
    pub tool: String,
    pub method: String,
    pub scheme: String,
    pub host: String,
    pub port: u16,
    /// Path and query as sent (secret values scrubbed), so what went to an
    /// allowed host can be reconstructed from the audit log.
    pub path: String,
    /// `allowed` or `denied` (by the policy: rule, address or request count).
    pub decision: &'static str,
    /// The `net` rule that allowed the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The address connected to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(serialize_with = "load")]
    pub bytes_out: Arc<AtomicU64>,
    pub bytes_in: u64,
    pub duration_ms: u64,
    /// Why it was refused or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn load<S: serde::Serializer>(n: &Arc<AtomicU64>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(n.load(Ordering::Relaxed))
}

impl HttpRecord {
    pub(super) fn start(tool: &str, method: &str) -> Self {
        Self {
            time: crate::audit::now(),
            event: "http_request",
            tool: tool.to_string(),
            method: method.to_string(),
            scheme: String::new(),
            host: String::new(),
            port: 0,
            path: String::new(),
            decision: "allowed",
            rule: None,
            address: None,
            status: None,
            bytes_out: Arc::default(),
            bytes_in: 0,
            duration_ms: 0,
            error: None,
        }
    }

    pub(super) fn target(&mut self, target: &Target) {
        self.scheme = target.scheme.clone();
        self.host = target.host.to_string();
        self.port = target.port;
    }

    pub(super) fn finish_refused(&mut self, denied: bool, reason: String, started: Instant) {
        if denied {
            self.decision = "denied";
        }
        self.error = Some(reason);
        self.duration_ms = started.elapsed().as_millis() as u64;
    }

    pub fn denied(&self) -> bool {
        self.decision == "denied"
    }
}

/// The requests of one call, shared by the hooks and the response bodies
/// still being read.
pub struct HttpActivity {
    records: Mutex<Vec<HttpRecord>>,
    sink: Option<HttpRecordSink>,
}

impl std::fmt::Debug for HttpActivity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpActivity").finish_non_exhaustive()
    }
}

impl HttpActivity {
    pub fn new(sink: Option<HttpRecordSink>) -> Self {
        Self {
            records: Mutex::default(),
            sink,
        }
    }

    pub(super) fn push(&self, record: HttpRecord) {
        tracing::info!(
            tool = %record.tool,
            method = %record.method,
            host = %record.host,
            decision = record.decision,
            status = record.status,
            error = record.error.as_deref(),
            "http request"
        );
        if let Some(sink) = &self.sink {
            sink(&record);
        }
        self.records.lock().unwrap_or_else(|e| e.into_inner()).push(record);
    }

    /// The finished records so far.
    pub fn records(&self) -> Vec<HttpRecord> {
        self.records.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
