//! Every tool call appends one JSON line to the audit log.

use super::{host_with_audit, tools_dir};
use boram_host::audit::AuditLog;

#[tokio::test]
async fn each_call_appends_one_audit_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = AuditLog::open(&dir.path().join("data")).expect("audit");
    let path = audit.path().to_path_buf();
    let host = host_with_audit(
        &[tools_dir().join("text_stats.wasm")],
        dir.path(),
        "version = 1\n",
        Some(audit),
    )
    .await;

    host.call("text_stats", r#"{"text":"private words"}"#, None)
        .await
        .expect("call");
    host.call("text_stats", r#"{"nope":1}"#, None).await.expect("call");

    host.flush_audit().await;
    let text = std::fs::read_to_string(path).expect("audit log");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    // The call that runs: an intent line before, the outcome after; the
    // input refused before running has only its outcome.
    let events: Vec<&str> = lines.iter().filter_map(|l| l["event"].as_str()).collect();
    assert_eq!(events, ["tool_call_started", "tool_call", "tool_call"]);
    assert_eq!(lines[0]["tool"], "text_stats");
    assert_eq!(lines[0]["input_sha256"], lines[1]["input_sha256"]);
    assert_eq!(lines[0]["tool_hash"], lines[1]["tool_hash"]);
    assert_eq!(lines[1]["tool"], "text_stats");
    assert_eq!(lines[1]["outcome"], "ok");
    assert_eq!(lines[1]["tool_hash"].as_str().map(str::len), Some(64));
    assert_eq!(lines[1]["input_sha256"].as_str().map(str::len), Some(64));
    assert!(lines[1]["duration_us"].as_u64().is_some() && lines[1]["memory_peak_bytes"].as_u64() > Some(0));
    assert_eq!(lines[2]["outcome"], "invalid_input");
    assert!(!text.contains("private words"), "inputs are recorded by digest only");
}
