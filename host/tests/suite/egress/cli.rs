//! Outgoing HTTP end to end through `boram tool call`, as an operator runs
//! it: the web tools against recorded API responses on 127.0.0.1, the token
//! taken from the environment `boram` runs in, denials with exit code 1 and
//! an `[http]` line saying why.

use super::tools::reply;
use crate::suite::{tools_dir, workspace_dir};
use scripted_llm::ScriptedServer;
use serde_json::Value;
use std::process::Output;

/// A policy file in `dir` with `[tools.TOOL]` = `stanza`.
fn policy(dir: &std::path::Path, tool: &str, stanza: &str) -> String {
    let path = dir.join("policy.toml");
    std::fs::write(
        &path,
        format!("version = 1\n[tools.{tool}]\napproval = \"allow\"\n{stanza}\n"),
    )
    .expect("policy");
    path.display().to_string()
}

async fn boram(dir: &std::path::Path, args: &[&str], token: Option<&str>) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_boram"));
    cmd.args(args)
        .current_dir(workspace_dir())
        .env("BORAM_DATA_DIR", dir.join("data"))
        .env("BORAM_TOOLS_DIR", tools_dir())
        .env_remove("BORAM_POLICY");
    match token {
        Some(token) => cmd.env("GITHUB_TOKEN", token),
        None => cmd.env_remove("GITHUB_TOKEN"),
    };
    cmd.output().await.expect("run boram")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn github_pr_digest_through_tool_call_gets_the_token_from_the_environment() {
    let server = ScriptedServer::start(vec![
        reply("github_pr.json", "application/json"),
        reply("github_pr_files.json", "application/json"),
        reply("github_pr_reviews.json", "application/json"),
    ])
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let stanza = format!(
        "net = [\"{}\"]\nsecrets = [{{ host = \"127.0.0.1\", header = \"Authorization\", value = \"Bearer ${{env:GITHUB_TOKEN}}\" }}]",
        server.url()
    );
    let policy = policy(dir.path(), "github_pr_digest", &stanza);
    let input = format!(
        r#"{{"repo": "acme-widgets/widget-sync", "number": 482, "api_base": "{}"}}"#,
        server.url()
    );
    let out = boram(
        dir.path(),
        &["tool", "call", "github_pr_digest", &input, "--policy", &policy],
        Some("ghp_cli_test_token"),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let digest: Value = serde_json::from_slice(&out.stdout).expect("json output");
    assert!(digest["title"].is_string(), "{digest}");
    for request in server.requests() {
        assert_eq!(request.header("authorization"), Some("Bearer ghp_cli_test_token"));
    }
    let stderr = text(&out.stderr);
    assert_eq!(
        stderr.matches("[http] allowed GET http://127.0.0.1:").count(),
        3,
        "{stderr}"
    );
    assert!(!stderr.contains("ghp_cli_test_token") && !text(&out.stdout).contains("ghp_cli_test_token"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_denied_request_through_tool_call_fails_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = policy(dir.path(), "http_get", "net = [\"https://export.arxiv.org\"]");
    let out = boram(
        dir.path(),
        &[
            "tool",
            "call",
            "http_get",
            r#"{"url": "http://0x7f000001:8080/admin"}"#,
            "--policy",
            &policy,
        ],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("[http] denied GET http://127.0.0.1:8080"), "{stderr}");
    assert!(stderr.contains("no `net` rule matches"), "{stderr}");
    let audit = std::fs::read_to_string(dir.path().join("data/audit.jsonl")).expect("audit");
    assert!(
        audit.contains("\"event\":\"http_request\"") && audit.contains("\"decision\":\"denied\""),
        "{audit}"
    );
}
