//! Outgoing HTTP through the egress filter, with the `fetch` tool of the
//! hostile fixture aimed at servers on loopback addresses: allowed hosts
//! work; anything else — another port, another host, a redirect hop, a
//! name or odd IP spelling that lands on loopback — is denied and audited;
//! secrets reach only their host and never the tool; every limit holds;
//! the host keeps serving after each denial.

mod cli;
mod echo;
pub use echo::EchoServer;
mod tools;

use super::{call, host_with_audit, hostile_wasm};
use boram_host::audit::AuditLog;
use boram_host::registry::ToolHost;
use boram_host::runtime::{CallReport, Outcome};
use serde_json::{Value, json};

/// The variable the test secrets are made of: cargo sets it for every test
/// process, so no test has to set (unsafe) environment variables.
const SECRET_VAR: &str = "CARGO_MANIFEST_DIR";

fn secret_value() -> String {
    std::env::var(SECRET_VAR).expect("cargo sets CARGO_MANIFEST_DIR for tests")
}

/// A host running the hostile fixture under `[tools.fetch]` = `stanza`.
async fn fetch_host(dir: &std::path::Path, stanza: &str) -> ToolHost {
    let policy = format!("version = 1\n[defaults]\napproval = \"allow\"\n[tools.fetch]\n{stanza}\n[tools.env_list]\n");
    let audit = AuditLog::open(dir).expect("audit log");
    host_with_audit(&[hostile_wasm()], dir, &policy, Some(audit)).await
}

async fn fetch(host: &ToolHost, input: Value) -> CallReport {
    call(host, "fetch", input).await
}

fn body_of(report: &CallReport) -> Value {
    assert_eq!(
        report.outcome,
        Outcome::Ok,
        "{:?} {:?} {:?}",
        report.outcome,
        report.error,
        report.http
    );
    serde_json::from_str(report.output.as_deref().expect("output")).expect("json")
}

fn assert_denied(report: &CallReport, url: &str) {
    assert_eq!(
        report.outcome,
        Outcome::Failed,
        "{url} was not refused: {:?}",
        report.output
    );
    let record = report.http.last().unwrap_or_else(|| panic!("no http record for {url}"));
    assert_eq!(record.decision, "denied", "{url}: {record:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_allowed_host_works_and_is_audited() {
    let server = EchoServer::start("127.0.0.1").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let host = fetch_host(dir.path(), &format!("net = [\"{}\"]", server.url())).await;
    let report = fetch(&host, json!({"url": format!("{}/hello", server.url())})).await;
    let out = body_of(&report);
    assert_eq!(out["status"], 200);
    assert_eq!(out["body"], "hello");
    let record = &report.http[0];
    assert_eq!((record.decision, record.method.as_str()), ("allowed", "GET"));
    assert_eq!(record.rule.as_deref(), Some(server.url().as_str()));
    assert_eq!(record.address.as_deref(), Some("127.0.0.1"));
    assert_eq!((record.status, record.bytes_in), (Some(200), 5));

    host.flush_audit().await;
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).expect("audit");
    let line: Value = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json"))
        .find(|l| l["event"] == "http_request")
        .expect("an http_request line");
    assert_eq!(line["tool"], "fetch");
    assert_eq!(line["host"], "127.0.0.1");
    assert_eq!(line["status"], 200);
    assert_eq!(line["bytes_in"], 5);
    assert_eq!(line["decision"], "allowed");
}

#[tokio::test(flavor = "multi_thread")]
async fn unlisted_hosts_ports_and_schemes_are_denied_and_the_host_keeps_serving() {
    let server = EchoServer::start("127.0.0.1").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let host = fetch_host(dir.path(), &format!("net = [\"{}\"]", server.url())).await;
    for url in [
        format!("http://127.0.0.1:{}/", server.port + 1),
        "https://example.com/".to_string(),
        format!("https://127.0.0.1:{}/", server.port),
        "http://169.254.169.254/latest/meta-data/".to_string(),
    ] {
        let report = fetch(&host, json!({ "url": url })).await;
        assert_denied(&report, &url);
        assert!(
            report.error.as_deref().unwrap_or("").contains("policy"),
            "{:?}",
            report.error
        );
        // …and the next allowed request still works.
        assert_eq!(
            body_of(&fetch(&host, json!({"url": server.url()})).await)["body"],
            "hello"
        );
    }
    host.flush_audit().await;
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).expect("audit");
    let denied = audit.lines().filter(|l| l.contains("\"decision\":\"denied\"")).count();
    assert_eq!(denied, 4);
    assert!(audit.contains("169.254.169.254"));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_redirect_hop_is_checked() {
    let allowed = EchoServer::start("127.0.0.1").await;
    let unlisted = EchoServer::start("127.0.0.2").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let host = fetch_host(dir.path(), &format!("net = [\"{}\"]", allowed.url())).await;
    // A hop to an allowed place is followed…
    let hop = format!("{}/redirect?to={}/final", allowed.url(), allowed.url());
    assert_eq!(body_of(&fetch(&host, json!({ "url": hop })).await)["body"], "hello");
    // …a hop elsewhere is refused, and nothing reaches the other server.
    let hop = format!("{}/redirect?to={}/steal", allowed.url(), unlisted.url());
    let report = fetch(&host, json!({ "url": hop })).await;
    assert_denied(&report, &hop);
    assert_eq!(report.http.len(), 2, "{:?}", report.http);
    assert!(unlisted.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn loopback_by_name_or_odd_ip_spelling_is_denied() {
    let server = EchoServer::start("127.0.0.1").await;
    let dir = tempfile::tempdir().expect("tempdir");
    // The rule names `localhost`: the name matches, but it resolves to a
    // loopback address the rule does not name exactly.
    let host = fetch_host(dir.path(), &format!("net = [\"http://localhost:{}\"]", server.port)).await;
    let report = fetch(&host, json!({"url": format!("http://localhost:{}/", server.port)})).await;
    assert_denied(&report, "localhost");
    assert!(
        report.http[0].error.as_deref().unwrap_or("").contains("loopback"),
        "{:?}",
        report.http
    );
    for spelling in [
        "2130706433",
        "0x7f000001",
        "0177.0.0.1",
        "127.1",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
    ] {
        let url = format!("http://{spelling}:{}/", server.port);
        let report = fetch(&host, json!({ "url": url })).await;
        assert_denied(&report, &url);
        // The record shows the normalised address, not the spelling.
        assert!(
            report.http[0].host == "127.0.0.1" || report.http[0].host.contains("::ffff:"),
            "{url}: {:?}",
            report.http[0]
        );
    }
    assert!(
        server.requests().is_empty(),
        "nothing got through: {:?}",
        server.requests()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_go_only_to_their_host_and_never_reach_the_tool() {
    let with_secret = EchoServer::start("127.0.0.1").await;
    let without = EchoServer::start("127.0.0.2").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let stanza = format!(
        "net = [\"{}\", \"{}\"]\nsecrets = [{{ host = \"127.0.0.1\", header = \"Authorization\", value = \"Token ${{env:{SECRET_VAR}}}\" }}]\nenv = []",
        with_secret.url(),
        without.url()
    );
    let host = fetch_host(dir.path(), &stanza).await;
    let secret = secret_value();

    // The tool tries to forge the header; the host's value replaces it.
    let input = json!({"url": format!("{}/echo", with_secret.url()), "headers": [["authorization", "forged"]]});
    let out = body_of(&fetch(&host, input).await);
    let received = &with_secret.requests()[0];
    assert!(
        received.contains(&format!("authorization: Token {secret}")),
        "{received}"
    );
    assert!(!received.contains("forged"), "{received}");
    // The echoed secret is scrubbed before the tool reads it.
    let seen = out["body"].as_str().expect("body");
    assert!(!seen.contains(&secret), "the tool saw the secret: {seen}");
    assert!(seen.contains("authorization: [REDACTED]"), "{seen}");

    // Another host gets no secret.
    body_of(&fetch(&host, json!({"url": format!("{}/echo", without.url())})).await);
    assert!(!without.requests()[0].to_ascii_lowercase().contains("authorization"));

    // Nor is it in the tool's environment.
    let names = super::output(&call(&host, "env_list", json!({})).await);
    assert!(!names.to_string().contains(SECRET_VAR), "{names}");
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_are_enforced_with_clear_errors() {
    let server = EchoServer::start("127.0.0.1").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let stanza = format!(
        "net = [\"{}\"]\nhttp_requests = 3\nhttp_request_kb = 1\nhttp_response_kb = 1\nhttp_header_kb = 1\nhttp_timeout_ms = 500",
        server.url()
    );
    let host = fetch_host(dir.path(), &stanza).await;
    let url = server.url();
    let cases = [
        (
            json!({"url": format!("{url}/big?n=5000")}),
            "response body size exceeds limit",
        ),
        (
            json!({"url": format!("{url}/echo"), "method": "POST", "body": "x".repeat(5000)}),
            "request body",
        ),
        (
            json!({"url": format!("{url}/echo"), "headers": [["x-pad", "p".repeat(2000)]]}),
            "request headers",
        ),
        (json!({"url": format!("{url}/fat-headers?n=2000")}), "response headers"),
        (json!({"url": format!("{url}/slow")}), "timed out"),
        (json!({"url": format!("{url}/"), "times": 4}), "`http_requests`"),
    ];
    let mut wrong = Vec::new();
    for (input, expected) in cases {
        let report = fetch(&host, input.clone()).await;
        assert_eq!(report.outcome, Outcome::Failed, "{input}: {:?}", report.output);
        let error = report.error.as_deref().unwrap_or("").to_ascii_lowercase();
        if !error.contains(expected) {
            wrong.push(format!("{input} -> {error}"));
        }
    }
    assert!(wrong.is_empty(), "unclear errors:\n{}", wrong.join("\n"));
    // Still serving within the limits.
    assert_eq!(body_of(&fetch(&host, json!({ "url": url })).await)["body"], "hello");
}
