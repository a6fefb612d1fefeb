//! MCP over streamable HTTP at `/mcp` on a real `boram serve` with two
//! users: the official Rust client (rmcp) and the official Python SDK
//! (`mcp` 2.3.0 from PyPI, in the venv `.ci/run` makes), each protocol
//! generation (the `initialize` handshake and the stateless 2026-07-28
//! one). Each user's client sees that user's tools under that user's
//! policy (the workspace), `prompt` tools go through elicitation or the
//! service's unattended rule, a token is required, calls are audited, and
//! a hot swap reaches the client as `tools/list_changed`.

use super::mcp::{Client, args, text};
use super::serve::{Service, client, setup};
use super::tools_dir;
use rmcp::model::{CallToolRequestParams, ProtocolVersion};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientLifecycleMode, ClientServiceExt as _, RoleClient, ServiceExt as _};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

const POLICY: &str = r#"version = 1
[defaults]
approval = "allow"
[tools.read_file]
fs = [{ host = "${workspace}", guest = "/workspace", access = "ro" }]
[tools.write_file]
approval = "prompt"
fs = [{ host = "${workspace}", guest = "/workspace", access = "rw" }]
[tools.grep]
approval = "deny"
"#;

/// A service with users alice and bob, each with a diary in their workspace.
fn two_users() -> (tempfile::TempDir, Service) {
    let dir = setup(POLICY, &["read_file", "write_file", "grep"]);
    for user in ["alice", "bob"] {
        std::fs::create_dir_all(dir.path().join(user)).expect("workspace");
        std::fs::write(dir.path().join(user).join("diary.txt"), format!("{user}'s secret")).expect("diary");
    }
    std::fs::write(
        dir.path().join("config.toml"),
        format!(
            "[[serve.users]]\nname = \"alice\"\ntoken_env = \"ALICE_TOKEN\"\nworkspace = \"{0}/alice\"\n\n\
             [[serve.users]]\nname = \"bob\"\ntoken_env = \"BOB_TOKEN\"\nworkspace = \"{0}/bob\"\n",
            dir.path().display()
        ),
    )
    .expect("config");
    let service = Service::start(
        dir.path(),
        &[],
        &[("ALICE_TOKEN", "alice-token"), ("BOB_TOKEN", "bob-token")],
    );
    (dir, service)
}

fn call(name: &str, input: Value) -> CallToolRequestParams {
    CallToolRequestParams::new(name.to_string()).with_arguments(args(input))
}

/// Calls `name` with `input` and returns its JSON output (a tool error fails the test).
async fn output_of(client: &RunningService<RoleClient, Client>, name: &str, input: Value) -> Value {
    let result = client.call_tool(call(name, input)).await.expect("tools/call");
    assert_ne!(result.is_error, Some(true), "{name}: {}", text(&result));
    serde_json::from_str(&text(&result)).expect("tool output JSON")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rust_client_over_http_sees_its_users_tools_under_their_policy() {
    let (dir, service) = two_users();
    let endpoint = format!("{}/mcp", service.url);
    let connect = |token: &str, handler: Client| {
        let transport = StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(endpoint.clone()).auth_header(token.to_string()),
        );
        async move { handler.serve(transport).await.expect("MCP handshake over HTTP") }
    };
    let alice_handler = Client::new(true);
    let alice = connect("alice-token", alice_handler.clone()).await;
    let info = alice.peer_info().expect("server info");
    assert_eq!(info.server_info.as_ref().map(|s| s.name.as_str()), Some("boram"));
    assert_eq!(
        info.protocol_version,
        ProtocolVersion::V_2025_11_25,
        "the initialize handshake"
    );

    let tools = alice.list_all_tools().await.expect("tools/list");
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort();
    assert_eq!(
        names,
        ["memory_save", "memory_search", "read_file", "write_file"],
        "grep is denied: not listed"
    );
    let output = output_of(&alice, "read_file", json!({"path": "/workspace/diary.txt"})).await;
    assert_eq!(output["content"], "alice's secret");
    // A `prompt` tool asks alice through elicitation (over the session's SSE stream).
    let wrote = alice
        .call_tool(call(
            "write_file",
            json!({"path": "/workspace/out.txt", "content": "by mcp"}),
        ))
        .await
        .expect("tools/call");
    assert_eq!(wrote.is_error, Some(false), "{}", text(&wrote));
    assert_eq!(alice_handler.asked.load(Ordering::SeqCst), 1);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("alice/out.txt")).expect("written"),
        "by mcp"
    );
    let unknown = alice
        .call_tool(call("read_fil", json!({})))
        .await
        .expect_err("an unknown tool is a protocol error");
    assert!(unknown.to_string().contains("did you mean `read_file`"), "{unknown}");

    // Bob's client: bob's workspace, and without elicitation the service's rule.
    let bob = connect("bob-token", Client::new(false)).await;
    let output = output_of(&bob, "read_file", json!({"path": "/workspace/diary.txt"})).await;
    assert_eq!(output["content"], "bob's secret");
    let refused = bob
        .call_tool(call(
            "write_file",
            json!({"path": "/workspace/out.txt", "content": "x"}),
        ))
        .await
        .expect("tools/call");
    assert_eq!(refused.is_error, Some(true));
    assert!(
        text(&refused).contains("set [serve] approve_prompt = true"),
        "{}",
        text(&refused)
    );
    assert!(!dir.path().join("bob/out.txt").exists());
    // Memory is per user: alice's note is hers.
    let saved = alice
        .call_tool(call("memory_save", json!({"text": "ship the release on Friday"})))
        .await
        .expect("tools/call");
    assert_eq!(saved.is_error, Some(false), "{}", text(&saved));
    let search = json!({"query": "Friday"});
    let mine = output_of(&alice, "memory_search", search.clone()).await;
    assert_eq!(mine["notes"][0]["text"], "ship the release on Friday", "{mine}");
    let theirs = output_of(&bob, "memory_search", search).await;
    assert_eq!(theirs["notes"], json!([]), "{theirs}");

    // No token, a wrong one: 401 before any MCP is spoken.
    let http = client();
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "curl", "version": "0"}}});
    for token in [None, Some("nope")] {
        let mut request = http
            .post(&endpoint)
            .header("accept", "application/json, text/event-stream")
            .json(&initialize);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        assert_eq!(request.send().await.expect("POST /mcp").status(), 401);
    }

    // Alice's calls are in alice's audit log, with the approval.
    let audit = super::settled_text(&dir.path().join("data/users/alice/audit.jsonl"), |a| {
        a.matches(r#""event":"tool_call""#).count() >= 2
    });
    let lines: Vec<Value> = audit.lines().map(|l| serde_json::from_str(l).expect("JSON")).collect();
    let calls: Vec<&str> = lines
        .iter()
        .filter(|l| l["event"] == "tool_call")
        .filter_map(|l| l["tool"].as_str())
        .collect();
    assert_eq!(calls, ["read_file", "write_file"], "{audit}");
    assert!(
        lines
            .iter()
            .any(|l| l["event"] == "approval" && l["via"] == "mcp" && l["decision"] == "approved_by_user"),
        "{audit}"
    );

    // Hot swap: a new tool reaches alice's open session as list_changed.
    let tmp = dir.path().join("tools/text_stats.wasm.tmp");
    std::fs::copy(tools_dir().join("text_stats.wasm"), &tmp).expect("copy");
    std::fs::rename(&tmp, dir.path().join("tools/text_stats.wasm")).expect("rename");
    tokio::time::timeout(Duration::from_secs(60), async {
        while alice_handler.list_changed.load(Ordering::SeqCst) == 0 {
            alice_handler.changed.notified().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no tools/list_changed after the swap:\n{}", service.log()));
    let tools = alice.list_all_tools().await.expect("tools/list");
    assert!(tools.iter().any(|t| t.name == "text_stats"));
    alice.cancel().await.expect("close");
    bob.cancel().await.expect("close");

    // The stateless generation (2026-07-28: server/discover, no initialize, no session).
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(endpoint.clone()).auth_header("alice-token".to_string()),
    );
    let modern = Client::new(false)
        .serve_with_lifecycle(
            transport,
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .expect("server/discover over HTTP");
    assert_eq!(
        modern.peer_info().expect("server info").protocol_version,
        ProtocolVersion::V_2026_07_28
    );
    let output = output_of(&modern, "read_file", json!({"path": "/workspace/diary.txt"})).await;
    assert_eq!(output["content"], "alice's secret");
    modern.cancel().await.expect("close");
}

/// The venv with the official MCP Python SDK (`.ci/run` makes it).
fn mcp_python() -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/mcp-venv/bin/python");
    assert!(
        python.exists(),
        "the MCP Python SDK is needed: python3 -m venv target/mcp-venv && target/mcp-venv/bin/pip install mcp==2.3.0 \
         (.ci/run does it)"
    );
    python
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_sdk_over_http_speaks_both_protocol_generations() {
    let (_dir, service) = two_users();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/mcp_http.py");
    // "auto" discovers (server/discover) and picks the newest both speak;
    // a pinned modern version skips discovery, so it learns no server name.
    for (mode, expected, server) in [
        ("legacy", "2025-11-25", json!("boram")),
        ("auto", "2026-07-28", json!("boram")),
        ("2026-07-28", "2026-07-28", Value::Null),
    ] {
        let out = tokio::process::Command::new(mcp_python())
            .arg(&script)
            .args([&format!("{}/mcp", service.url), "alice-token", mode])
            .output()
            .await
            .expect("run the Python client");
        assert!(
            out.status.success(),
            "{mode}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            service.log()
        );
        let seen: Value = serde_json::from_slice(&out.stdout).expect("the client's JSON");
        assert_eq!(seen["protocol"], expected, "{seen}");
        assert_eq!(seen["server"], server, "{mode}: {seen}");
        let mut tools: Vec<&str> = seen["tools"]
            .as_object()
            .expect("tools")
            .keys()
            .map(String::as_str)
            .collect();
        tools.sort();
        assert_eq!(
            tools,
            ["memory_save", "memory_search", "read_file", "write_file"],
            "{mode}"
        );
        assert_eq!(
            seen["tools"]["read_file"]["annotations"]["readOnlyHint"], true,
            "{seen}"
        );
        let read = &seen["read"];
        assert_ne!(read["isError"], true, "{read}");
        let output: Value =
            serde_json::from_str(read["content"][0]["text"].as_str().expect("text content")).expect("output JSON");
        assert_eq!(output["content"], "alice's secret", "{mode}");
        let unknown = seen["unknown"].as_str().expect("unknown");
        assert!(unknown.contains("no tool named `no_such_tool`"), "{mode}: {unknown}");
    }
}

/// The MCP Inspector's CLI (npm `@modelcontextprotocol/inspector` 2.12.0,
/// installed by `.ci/run`) with `args`; its exit code, stdout and stderr.
async fn inspector(args: &[&str]) -> (i32, String, String) {
    let cli = super::workspace_dir().join("target/inspector/node_modules/.bin/mcp-inspector");
    assert!(
        cli.exists(),
        "the MCP Inspector is needed: npm install --prefix target/inspector @modelcontextprotocol/inspector@2.12.0 \
         (.ci/run does it)"
    );
    let out = tokio::process::Command::new(cli)
        .arg("--cli")
        .args(args)
        .current_dir(super::workspace_dir())
        .output()
        .await
        .expect("run the Inspector");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_inspectors_strict_schema_check_finds_nothing_over_stdio_or_http_issue_18() {
    // Every first-party tool, over stdio, as the README's `boram mcp` runs them.
    let data = tempfile::tempdir().expect("data dir");
    let boram = env!("CARGO_BIN_EXE_boram");
    let tools = tools_dir();
    let data_arg = format!("BORAM_DATA_DIR={}", data.path().display());
    let (code, stdout, stderr) = inspector(&[
        "-e",
        &data_arg,
        "--method",
        "tools/list",
        "--strict",
        "--",
        boram,
        "mcp",
        "--policy",
        "policies/dev.toml",
        "--tools-dir",
        tools.to_str().expect("utf-8 path"),
    ])
    .await;
    assert_eq!(code, 0, "{stderr}");
    let listed: Value = serde_json::from_str(&stdout).expect("tools/list JSON");
    let count = listed["tools"].as_array().map_or(0, Vec::len);
    assert!(count >= 10, "every first-party tool and the memory built-ins: {count}");
    // Quiet when there is nothing to report; any finding names "Warning" or "Error".
    assert!(
        !stderr.contains("Warning") && !stderr.contains("Error") && !stderr.contains("warning across"),
        "{stderr}"
    );

    // Over HTTP with alice's token: the same check, and a call.
    let (_dir, service) = two_users();
    let url = format!("{}/mcp", service.url);
    let auth = "Authorization: Bearer alice-token";
    let (code, _, stderr) = inspector(&[&url, "--header", auth, "--method", "tools/list", "--strict"]).await;
    assert_eq!(code, 0, "{stderr}\n{}", service.log());
    assert!(!stderr.contains("Warning") && !stderr.contains("Error"), "{stderr}");
    let (code, stdout, stderr) = inspector(&[
        &url,
        "--header",
        auth,
        "--method",
        "tools/call",
        "--tool-name",
        "read_file",
        "--tool-arg",
        "path=/workspace/diary.txt",
    ])
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("alice's secret"), "{stdout}");
    // Without the token the Inspector cannot connect.
    let (code, _, _) = inspector(&[&url, "--method", "tools/list"]).await;
    assert_ne!(code, 0, "no token, no tools");
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_requests_to_mcp_get_http_errors_and_the_endpoint_keeps_serving() {
    let (_dir, service) = two_users();
    let endpoint = format!("{}/mcp", service.url);
    let http = client();
    let post = |body: Vec<u8>| {
        http.post(&endpoint)
            .bearer_auth("alice-token")
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    // Over the service's body limit (1 MiB): 413 with a JSON body, read no further.
    let huge = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{{"pad":"{}"}}}}"#,
        "x".repeat(2 << 20)
    );
    // On a connection of its own: the service answers before reading the
    // body and then closes that connection, which a pooled request after it
    // could otherwise be sent on.
    let response = client()
        .post(&endpoint)
        .bearer_auth("alice-token")
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.expect("a JSON error body");
    assert!(body["error"].is_string(), "{body}");
    // Not JSON, invalid UTF-8, a BOM and CR line ends: refused, not a crash.
    for junk in [
        b"not json".to_vec(),
        b"\xff\xfe\x00{".to_vec(),
        b"\xef\xbb\xbf{\"jsonrpc\":\"2.0\",\r\n\"id\":1,".to_vec(),
    ] {
        let response = post(junk).await.expect("POST");
        assert!(
            response.status().is_client_error(),
            "{}: {}",
            response.status(),
            response.text().await.unwrap_or_default()
        );
    }
    // A session id nobody issued: 404, so the client initializes again.
    let response = http
        .post(&endpoint)
        .bearer_auth("alice-token")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", "no-such-session")
        .json(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 404);
    // And the endpoint still serves a real client.
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(endpoint.clone()).auth_header("alice-token".to_string()),
    );
    let alice = Client::new(false)
        .serve(transport)
        .await
        .expect("handshake after the junk");
    let output = output_of(&alice, "read_file", json!({"path": "/workspace/diary.txt"})).await;
    assert_eq!(output["content"], "alice's secret");
    alice.cancel().await.expect("close");
}
