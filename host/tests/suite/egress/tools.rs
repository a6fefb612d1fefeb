//! The web tools end to end: `http_get`, `arxiv_search` and
//! `github_pr_digest` run in their sandboxes against recorded API responses
//! (real formats) served on 127.0.0.1, under policies that allow only that
//! server; the GitHub token is injected by the host.

use super::*;
use crate::suite::{host_with, tools_dir, workspace_dir};
use scripted_llm::{Reply, ScriptedServer};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(workspace_dir().join("tests/fixtures/http").join(name)).expect("fixture")
}

pub fn reply(name: &str, content_type: &str) -> Reply {
    Reply::new(200, fixture(name)).with_header("content-type", content_type)
}

async fn tool_host(tool: &str, dir: &std::path::Path, stanza: &str) -> ToolHost {
    let policy = format!("version = 1\n[tools.{tool}]\napproval = \"allow\"\n{stanza}\n");
    host_with(&[tools_dir().join(format!("{tool}.wasm"))], dir, &policy).await
}

#[tokio::test(flavor = "multi_thread")]
async fn http_get_returns_readable_text_from_html() {
    let server = ScriptedServer::start(vec![reply("page.html", "text/html; charset=utf-8")]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let host = tool_host("http_get", dir.path(), &format!("net = [\"{}\"]", server.url())).await;
    let out = super::super::output(&call(&host, "http_get", json!({"url": format!("{}/page", server.url())})).await);
    assert_eq!(out["status"], 200);
    let text = out["text"].as_str().expect("text");
    assert!(!text.contains("<script") && !text.contains("<p>"), "{text}");
    assert!(text.contains('&'), "entities decoded: {text}");

    // A URL the policy does not list is a failure naming the policy.
    let report = call(&host, "http_get", json!({"url": "https://example.com/"})).await;
    assert_eq!(report.outcome, Outcome::Failed);
    assert_eq!(report.http[0].decision, "denied");
}

#[tokio::test(flavor = "multi_thread")]
async fn arxiv_search_parses_the_atom_feed() {
    let server = ScriptedServer::start(vec![reply("arxiv_query.xml", "application/atom+xml; charset=UTF-8")]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let host = tool_host("arxiv_search", dir.path(), &format!("net = [\"{}\"]", server.url())).await;
    let input = json!({"query": "sandboxed agents", "max_results": 3, "api_base": server.url()});
    let out = super::super::output(&call(&host, "arxiv_search", input).await);
    let papers = out["papers"].as_array().expect("papers");
    assert_eq!(papers.len(), 3, "{out}");
    assert!(papers.iter().all(|p| !p["title"].as_str().unwrap_or("").contains('\n')));
    assert!(papers[0]["authors"].as_array().is_some_and(|a| !a.is_empty()));
    let request = &server.requests()[0];
    assert_eq!(request.path, "/api/query");
    assert_eq!(request.method, "GET");
}

#[tokio::test(flavor = "multi_thread")]
async fn github_pr_digest_summarises_with_a_host_injected_token() {
    let server = ScriptedServer::start(vec![
        reply("github_pr.json", "application/json; charset=utf-8"),
        reply("github_pr_files.json", "application/json; charset=utf-8"),
        reply("github_pr_reviews.json", "application/json; charset=utf-8"),
    ])
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let stanza = format!(
        "net = [\"{}\"]\nsecrets = [{{ host = \"127.0.0.1\", header = \"Authorization\", value = \"Bearer ${{env:{SECRET_VAR}}}\" }}]",
        server.url()
    );
    let host = tool_host("github_pr_digest", dir.path(), &stanza).await;
    let input = json!({"repo": "boram/claw", "number": 42, "api_base": server.url()});
    let out = super::super::output(&call(&host, "github_pr_digest", input).await);
    assert!(out["title"].as_str().is_some_and(|t| !t.is_empty()), "{out}");
    assert!(out["files"].as_array().is_some_and(|f| !f.is_empty()), "{out}");
    assert!(out["review_state"].is_string(), "{out}");
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    let expected = format!("Bearer {}", secret_value());
    for request in &requests {
        assert_eq!(
            request.header("authorization"),
            Some(expected.as_str()),
            "{}",
            request.path
        );
    }
    assert!(
        !out.to_string().contains(&secret_value()),
        "the token never reaches the tool's output"
    );

    // Bad input is rejected before any request.
    let report = call(&host, "github_pr_digest", json!({"repo": "no-slash", "number": 1})).await;
    assert_eq!(report.outcome, Outcome::InvalidInput, "{:?}", report.error);
}
