//! Runs one tool call in a fresh store and classifies what happened.
//!
//! Whatever the guest does (loops, allocates without end, overflows its
//! stack, panics, prints megabytes), the result is a [`CallReport`] with an
//! [`Outcome`]; nothing here can take the host down.

use super::bindings::{ToolPre, WitToolError};
use super::capture::{Capture, Captured};
use super::egress::HttpRecord;
use super::sandbox::{STDIO_CAPTURE_BYTES, SandboxTemplate};
use super::state::{LogLine, ProgressSink, StoreState, truncate_utf8};
use serde::{Serialize, Serializer};
use std::time::{Duration, Instant};
use wasmtime::{Engine, Store, Trap};

/// Longest error message a tool may return, in bytes; the rest is cut
/// (and said so), so a 100 MiB `failed(...)` never reaches a model or a log.
pub const MAX_ERROR_BYTES: usize = 16 * 1024;

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The tool returned an output.
    Ok,
    /// The tool rejected its input (the model can fix and retry).
    InvalidInput,
    /// The tool ran and reported a failure (often a sandbox denial).
    Failed,
    /// The wall-clock limit passed; the call was stopped.
    Timeout,
    /// The tool asked for more memory than its limit.
    OutOfMemory,
    /// The tool's output was larger than its limit and was discarded.
    OutputTooLarge,
    /// The tool crashed: panic, stack overflow, or another wasm trap.
    Crashed,
    /// The call never started: the policy denies it or its sandbox could not be built.
    Denied,
}

impl Outcome {
    pub fn is_ok(self) -> bool {
        self == Outcome::Ok
    }
}

/// Everything known about one call.
#[derive(Debug, Clone, Serialize)]
pub struct CallReport {
    pub tool: String,
    /// SHA-256 of the component that ran.
    pub tool_hash: String,
    pub outcome: Outcome,
    /// The tool's output (JSON) when `outcome` is `ok`.
    #[serde(serialize_with = "as_raw_json")]
    pub output: Option<String>,
    /// What went wrong, in words for a person or a model, when not `ok`.
    pub error: Option<String>,
    #[serde(rename = "duration_us", serialize_with = "as_micros")]
    pub duration: Duration,
    /// Highest total linear memory of the instance, in bytes.
    pub memory_peak_bytes: u64,
    pub stdout: Captured,
    pub stderr: Captured,
    pub logs: Vec<LogLine>,
    pub logs_dropped: u64,
    /// Outgoing HTTP requests, allowed and denied.
    pub http: Vec<HttpRecord>,
}

impl CallReport {
    /// A call that was refused before it started.
    pub fn denied(tool: &str, tool_hash: &str, reason: String) -> Self {
        Self {
            tool: tool.to_string(),
            tool_hash: tool_hash.to_string(),
            outcome: Outcome::Denied,
            output: None,
            error: Some(reason),
            duration: Duration::ZERO,
            memory_peak_bytes: 0,
            stdout: Captured::default(),
            stderr: Captured::default(),
            logs: Vec::new(),
            logs_dropped: 0,
            http: Vec::new(),
        }
    }
}

impl CallReport {
    /// A call whose input the host refused before running it (not JSON,
    /// a key repeated, or not what the tool's schema declares).
    pub fn invalid_input(tool: &str, tool_hash: &str, problem: String) -> Self {
        let mut report = Self::denied(tool, tool_hash, problem);
        report.outcome = Outcome::InvalidInput;
        report
    }

    /// A call that found no place to run within its time limit: its tool's
    /// `concurrency` was taken, or the memory budget was.
    pub fn waited_too_long(tool: &str, tool_hash: &str, limits: crate::policy::Limits, budget_mb: u64) -> Self {
        let mut report = Self::denied(
            tool,
            tool_hash,
            format!(
                "waited the whole {} ms time limit for a place to run ({} calls of `{tool}` at once, \
                 {budget_mb} MiB memory budget for all calls); try again when fewer calls run",
                limits.timeout.as_millis(),
                limits.concurrency
            ),
        );
        report.outcome = Outcome::Timeout;
        report.duration = limits.timeout;
        report
    }
}

/// What one call adds to its sandbox: where progress goes, and the origins
/// its HTTP requests are limited to (what the user approved), if narrower
/// than the policy.
#[derive(Default)]
pub struct CallScope {
    pub progress: Option<ProgressSink>,
    pub origins: Option<std::sync::Arc<[String]>>,
}

/// Runs `tool` on `input` in a fresh instance built from `sandbox`.
pub async fn invoke(
    engine: &Engine,
    pre: &ToolPre<StoreState>,
    tool_hash: &str,
    tool: &str,
    input: &str,
    sandbox: &SandboxTemplate,
    scope: CallScope,
) -> CallReport {
    let CallScope { progress, origins } = scope;
    let started = Instant::now();
    let stdout = Capture::new(STDIO_CAPTURE_BYTES);
    let stderr = Capture::new(STDIO_CAPTURE_BYTES);
    let wasi = match sandbox.wasi_ctx(&stdout, &stderr) {
        Ok(wasi) => wasi,
        Err(e) => return CallReport::denied(tool, tool_hash, format!("sandbox could not be built: {e}")),
    };
    let limits = sandbox.limits;
    let egress = sandbox.egress.hooks_within(origins);
    let http = egress.activity();
    let mut store = new_store(
        engine,
        StoreState::new(wasi, egress, limits.memory_bytes, tool, progress),
    );

    let result = tokio::time::timeout(limits.timeout, run(&mut store, pre, tool, input)).await;
    let (outcome, output, error) = match result {
        Err(_) => (
            Outcome::Timeout,
            None,
            Some(format!(
                "stopped after the {} ms time limit",
                limits.timeout.as_millis()
            )),
        ),
        Ok(Err(e)) => {
            let (outcome, message) = classify_trap(&e, store.data().memory.refused(), &stderr, limits.memory_bytes);
            (outcome, None, Some(message))
        }
        Ok(Ok(Err(WitToolError::InvalidInput(m)))) => (Outcome::InvalidInput, None, Some(cap_error(m))),
        Ok(Ok(Err(WitToolError::Failed(m)))) => (Outcome::Failed, None, Some(cap_error(m))),
        Ok(Ok(Ok(out))) if out.len() as u64 > limits.max_output_bytes => (
            Outcome::OutputTooLarge,
            None,
            Some(format!(
                "the output was {} bytes, over the {} byte limit; ask for less (e.g. a smaller range)",
                out.len(),
                limits.max_output_bytes
            )),
        ),
        Ok(Ok(Ok(out))) => (Outcome::Ok, Some(out), None),
    };
    let mut state = store.into_data();
    // Response bodies the tool left unread finish their records when dropped.
    drop(std::mem::take(&mut state.table));
    CallReport {
        tool: tool.to_string(),
        tool_hash: tool_hash.to_string(),
        outcome,
        output,
        error,
        duration: started.elapsed(),
        memory_peak_bytes: state.memory.peak(),
        stdout: stdout.snapshot(),
        stderr: stderr.snapshot(),
        logs: state.logs,
        logs_dropped: state.logs_dropped,
        http: http.records(),
    }
}

/// `message` cut to [`MAX_ERROR_BYTES`], saying how much was cut.
fn cap_error(message: String) -> String {
    let len = message.len();
    if len <= MAX_ERROR_BYTES {
        return message;
    }
    let mut cut = truncate_utf8(message, MAX_ERROR_BYTES);
    cut.push_str(&format!(" … [error cut: {} of {len} bytes shown]", cut.len()));
    cut
}

/// Bytes a guest may have the host copy in from its memory in one host
/// call (strings, lists); wasmtime's default is 128 MiB.
pub const HOSTCALL_FUEL: usize = 16 << 20;
/// Component handles (resources, streams, borrows) the guest may hold at
/// once; wasmtime's default is 100 000.
pub const MAX_COMPONENT_HANDLES: usize = 16_384;

/// A store with the memory limiter on, wasmtime's per-store caps set
/// explicitly, and an epoch deadline that makes the
/// guest yield to the executor at every tick, so a `tokio::time::timeout`
/// around the call can cancel a guest that never returns.
pub(super) fn new_store(engine: &Engine, state: StoreState) -> Store<StoreState> {
    let mut store = Store::new(engine, state);
    store.set_hostcall_fuel(HOSTCALL_FUEL);
    store.set_max_component_handles(MAX_COMPONENT_HANDLES);
    store.limiter(|s| &mut s.memory);
    store.set_epoch_deadline(1);
    store.epoch_deadline_async_yield_and_update(1);
    store
}

async fn run(
    store: &mut Store<StoreState>,
    pre: &ToolPre<StoreState>,
    tool: &str,
    input: &str,
) -> wasmtime::Result<Result<String, WitToolError>> {
    let instance = pre.instantiate_async(&mut *store).await?;
    instance.call_call(&mut *store, tool, input).await
}

/// Turns a trap or host error into an outcome and a message that says what
/// the tool did, including the end of its stderr (where panics are printed).
fn classify_trap(e: &wasmtime::Error, memory_refused: bool, stderr: &Capture, limit: u64) -> (Outcome, String) {
    if memory_refused {
        return (
            Outcome::OutOfMemory,
            format!("the tool needed more than its {} MiB memory limit", limit >> 20),
        );
    }
    if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return (
            Outcome::Crashed,
            format!("the tool exited with status {} instead of returning", exit.0),
        );
    }
    let what = match e.downcast_ref::<Trap>() {
        Some(Trap::StackOverflow) => "the tool overflowed its stack (too deep recursion)".to_string(),
        Some(Trap::UnreachableCodeReached) => "the tool crashed (it panicked or aborted)".to_string(),
        Some(trap) => format!("the tool crashed: {trap}"),
        None => format!("the tool could not run: {e:#}"),
    };
    let said = crash_message(&stderr.snapshot().text);
    let message = if said.is_empty() {
        what
    } else {
        format!("{what}: {said}")
    };
    (Outcome::Crashed, message)
}

/// What the guest said as it died: a Rust panic's message (the lines after
/// `panicked at`, without the backtrace note), else its last stderr line.
fn crash_message(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let said = match lines.iter().rposition(|l| l.contains("panicked at")) {
        Some(i) => lines[i..]
            .iter()
            .take_while(|l| !l.starts_with("note:"))
            .copied()
            .collect::<Vec<_>>()
            .join(" "),
        None => lines.last().copied().unwrap_or("").to_string(),
    };
    said.chars().take(500).collect()
}

fn as_raw_json<S: Serializer>(output: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match output.as_deref().map(serde_json::from_str::<serde_json::Value>) {
        Some(Ok(value)) => value.serialize(s),
        Some(Err(_)) => output.serialize(s),
        None => s.serialize_none(),
    }
}

fn as_micros<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_micros() as u64)
}
