//! The data of one call's `Store`: its WASI and wasi-http contexts (with the
//! egress filter as the http hooks), resource table, memory
//! accounting and what the guest reported through the host interface.

use super::bindings::{HostImports, Level};
use super::egress::EgressHooks;
use serde::Serialize;
use std::sync::Arc;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Most log lines kept per call; later ones are counted, not kept.
pub const MAX_LOG_LINES: usize = 200;
/// Longest log line kept, in bytes; longer ones are cut.
pub const MAX_LOG_LINE_BYTES: usize = 2048;
/// Most progress reports passed on per call; later ones are counted and
/// dropped (a tool reporting in a tight loop produced 200 MB in a second).
pub const MAX_PROGRESS_REPORTS: u64 = 1000;
/// Most host resources (open files, streams, HTTP bodies, pollables…) one
/// call may hold at once; wasmtime's default is a million.
pub const MAX_RESOURCES: usize = 16_384;
/// In-memory size of one set of wasi-http fields (headers), above the
/// largest `http_header_kb` the policy accepts; the egress filter enforces
/// the policy's own, smaller limit on what is sent and received.
pub const MAX_HTTP_FIELDS_BYTES: usize = 1 << 20;
/// Most table elements one instance may grow to (tables hold function references).
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Receives progress reports while a call runs (e.g. to draw a progress line).
pub type ProgressSink = Arc<dyn Fn(&Progress) + Send + Sync>;

/// One progress report from a tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Progress {
    pub tool: String,
    pub done: u64,
    pub total: Option<u64>,
    pub message: String,
}

/// One line the guest logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    pub level: &'static str,
    pub message: String,
}

pub struct StoreState {
    pub(super) wasi: WasiCtx,
    pub(super) http: WasiHttpCtx,
    pub(super) egress: EgressHooks,
    pub(super) table: ResourceTable,
    pub(super) memory: MemoryAccount,
    pub(super) tool: String,
    pub(super) logs: Vec<LogLine>,
    pub(super) logs_dropped: u64,
    pub(super) progress: Option<ProgressSink>,
    pub(super) progress_reports: u64,
}

impl StoreState {
    pub fn new(
        wasi: WasiCtx,
        egress: EgressHooks,
        memory_limit: u64,
        tool: &str,
        progress: Option<ProgressSink>,
    ) -> Self {
        Self {
            wasi,
            http: {
                let mut http = WasiHttpCtx::new();
                http.set_field_size_limit(MAX_HTTP_FIELDS_BYTES);
                http
            },
            egress,
            table: {
                let mut table = ResourceTable::new();
                table.set_max_capacity(MAX_RESOURCES);
                table
            },
            memory: MemoryAccount::new(memory_limit),
            tool: tool.to_string(),
            logs: Vec::new(),
            logs_dropped: 0,
            progress,
            progress_reports: 0,
        }
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for StoreState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.egress,
        }
    }
}

impl HostImports for StoreState {
    fn log(&mut self, level: Level, message: String) {
        let level = level_name(level);
        let message = truncate_utf8(message, MAX_LOG_LINE_BYTES);
        tracing::debug!(tool = %self.tool, guest_level = level, "{message}");
        if self.logs.len() < MAX_LOG_LINES {
            self.logs.push(LogLine { level, message });
        } else {
            self.logs_dropped += 1;
        }
    }

    fn progress(&mut self, done: u64, total: Option<u64>, message: String) {
        self.progress_reports += 1;
        if self.progress_reports > MAX_PROGRESS_REPORTS {
            return;
        }
        if let Some(sink) = &self.progress {
            let message = truncate_utf8(message, MAX_LOG_LINE_BYTES);
            sink(&Progress {
                tool: self.tool.clone(),
                done,
                total,
                message,
            });
        }
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Trace => "trace",
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    }
}

/// `s` cut to at most `max` bytes at a character boundary.
pub(super) fn truncate_utf8(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// Caps the total linear memory of all memories in one store and records
/// the peak, so a report can say how much a call used and whether it was
/// stopped for asking too much.
#[derive(Debug)]
pub struct MemoryAccount {
    limit: u64,
    current: u64,
    peak: u64,
    refused: bool,
}

impl MemoryAccount {
    fn new(limit: u64) -> Self {
        Self {
            limit,
            current: 0,
            peak: 0,
            refused: false,
        }
    }

    pub fn peak(&self) -> u64 {
        self.peak
    }

    /// True once a growth was refused for exceeding the limit.
    pub fn refused(&self) -> bool {
        self.refused
    }
}

impl ResourceLimiter for MemoryAccount {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let next = self.current + (desired as u64).saturating_sub(current as u64);
        if next > self.limit {
            self.refused = true;
            return Ok(false);
        }
        self.current = next;
        self.peak = self.peak.max(next);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
