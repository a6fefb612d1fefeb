//! `boram mcp` as a child process, driven by the official Rust MCP client
//! (`rmcp`): tools listed with their schemas (denied ones hidden), calls
//! run in the sandbox under the policy, tool failures are MCP tool errors,
//! `prompt` tools go through elicitation (accepted and declined), a client
//! without elicitation gets the non-interactive rule, and a hot swap sends
//! `tools/list_changed`. A raw JSON-RPC session checks that stdout carries
//! nothing but protocol.

use super::tools_dir;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, ElicitRequestParams, ElicitResult,
    ElicitationAction, Implementation, JsonObject,
};
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::transport::{ConfigureCommandExt as _, TokioChildProcess};
use rmcp::{ClientHandler, ErrorData, RoleClient, ServiceExt as _};
use serde_json::{Value, json};
use std::io::{BufRead as _, Write as _};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

const POLICY: &str = r#"version = 1
[defaults]
approval = "allow"
[tools.read_file]
fs = [{ host = "ws", guest = "/workspace", access = "ro" }]
[tools.write_file]
approval = "prompt"
fs = [{ host = "ws", guest = "/workspace", access = "rw" }]
[tools.grep]
approval = "deny"
"#;

/// A tools directory with three first-party tools, a workspace and the policy.
fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let tools = dir.path().join("tools");
    std::fs::create_dir_all(&tools).expect("tools");
    for tool in ["read_file", "write_file", "grep"] {
        std::fs::copy(
            tools_dir().join(format!("{tool}.wasm")),
            tools.join(format!("{tool}.wasm")),
        )
        .expect("copy");
    }
    std::fs::create_dir_all(dir.path().join("ws")).expect("ws");
    std::fs::write(dir.path().join("ws/notes.txt"), "Meeting moved to Thursday.\n").expect("notes");
    std::fs::write(dir.path().join("policy.toml"), POLICY).expect("policy");
    dir
}

fn boram_mcp(dir: &Path, extra: &[&str]) -> tokio::process::Command {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_boram")).configure(|c| {
        c.arg("mcp")
            .args(extra)
            .arg("--policy")
            .arg(dir.join("policy.toml"))
            .arg("--tools-dir")
            .arg(dir.join("tools"))
            .env("BORAM_DATA_DIR", dir.join("data"));
    })
}

/// An MCP client that answers elicitations with `approve` and counts
/// `tools/list_changed` notifications.
#[derive(Clone)]
pub(super) struct Client {
    elicitation: bool,
    pub(super) approve: Arc<AtomicBool>,
    pub(super) asked: Arc<AtomicUsize>,
    pub(super) list_changed: Arc<AtomicUsize>,
    pub(super) changed: Arc<tokio::sync::Notify>,
}

impl Client {
    pub(super) fn new(elicitation: bool) -> Self {
        Self {
            elicitation,
            approve: Arc::new(AtomicBool::new(true)),
            asked: Arc::default(),
            list_changed: Arc::default(),
            changed: Arc::default(),
        }
    }
}

impl ClientHandler for Client {
    fn get_info(&self) -> ClientConfig {
        let capabilities = if self.elicitation {
            ClientCapabilities::builder().enable_elicitation().build()
        } else {
            ClientCapabilities::default()
        };
        ClientConfig::new(capabilities, Implementation::new("boram-test", "0"))
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        let ElicitRequestParams::FormElicitationParams { message, .. } = request else {
            return Ok(ElicitResult::new(ElicitationAction::Decline));
        };
        assert!(
            message.contains("write_file") && message.contains("fs /workspace (rw)"),
            "{message}"
        );
        let approve = self.approve.load(Ordering::SeqCst);
        Ok(ElicitResult::new(ElicitationAction::Accept).with_content(json!({ "approve": approve })))
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.list_changed.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_one();
    }
}

pub(super) fn args(value: Value) -> JsonObject {
    match value {
        Value::Object(map) => map,
        _ => panic!("arguments must be an object"),
    }
}

pub(super) fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_mcp_client_lists_and_calls_the_sandboxed_tools() {
    let dir = setup();
    let handler = Client::new(true);
    let transport = TokioChildProcess::new(boram_mcp(dir.path(), &[])).expect("spawn boram mcp");
    let client = handler.clone().serve(transport).await.expect("MCP handshake");
    let info = client.peer_info().expect("server info");
    assert_eq!(info.server_info.as_ref().map(|s| s.name.as_str()), Some("boram"));
    assert!(info.capabilities.tools.as_ref().and_then(|t| t.list_changed) == Some(true));

    // tools/list: every tool the policy does not deny, with its JSON Schema.
    let tools = client.list_all_tools().await.expect("tools/list");
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort();
    assert_eq!(names, ["memory_save", "memory_search", "read_file", "write_file"]);
    let read_file = tools.iter().find(|t| t.name == "read_file").expect("read_file");
    assert_eq!(read_file.input_schema["type"], "object");
    // Hints from the grants (issue 18): a read-only grant, an rw one.
    let hints = |name: &str| {
        let tool = tools.iter().find(|t| t.name == name).expect("tool");
        let a = tool.annotations.clone().expect("annotations");
        (
            tool.title.clone(),
            a.read_only_hint,
            a.destructive_hint,
            a.open_world_hint,
        )
    };
    assert_eq!(
        hints("read_file"),
        (Some("Read file".into()), Some(true), Some(false), Some(false))
    );
    assert_eq!(
        hints("write_file"),
        (Some("Write file".into()), Some(false), Some(true), Some(false))
    );
    assert!(read_file.input_schema["properties"]["path"].is_object());
    assert_eq!(
        hints("memory_search"),
        (Some("Memory search".into()), Some(true), Some(false), Some(false))
    );
    assert_eq!(
        hints("memory_save"),
        (Some("Memory save".into()), Some(false), Some(false), Some(false))
    );

    let call = |name: &str, input: Value| CallToolRequestParams::new(name.to_string()).with_arguments(args(input));
    // The memory built-ins: a note saved over MCP is found again, in
    // Korean too, and both calls are audit lines.
    let saved = client
        .call_tool(call(
            "memory_save",
            json!({"text": "엄마 생신은 5월 8일", "tags": ["family"]}),
        ))
        .await
        .expect("tools/call");
    assert_eq!(saved.is_error, Some(false), "{}", text(&saved));
    let found = client
        .call_tool(call("memory_search", json!({"query": "5월"})))
        .await
        .expect("tools/call");
    let found: Value = serde_json::from_str(&text(&found)).expect("search output JSON");
    assert_eq!(found["notes"][0]["text"], "엄마 생신은 5월 8일", "{found}");
    let bad = client
        .call_tool(call("memory_search", json!({"query": "x", "limit": 99})))
        .await
        .expect("tools/call");
    assert_eq!(bad.is_error, Some(true));
    assert!(text(&bad).contains("`limit` must be 1 to 20"), "{}", text(&bad));
    let audit = super::settled_text(&dir.path().join("data/audit.jsonl"), |a| {
        a.matches(r#""event":"builtin_call""#).count() >= 3
    });
    let builtin_calls: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON"))
        .filter(|l| l["event"] == "builtin_call")
        .map(|l| json!([l["tool"], l["outcome"]]))
        .collect();
    assert_eq!(
        builtin_calls,
        [
            json!(["memory_save", "ok"]),
            json!(["memory_search", "ok"]),
            json!(["memory_search", "invalid_input"])
        ]
    );

    // A granted read runs in the sandbox.
    let ok = client
        .call_tool(call("read_file", json!({"path": "/workspace/notes.txt"})))
        .await
        .expect("tools/call");
    assert_eq!(ok.is_error, Some(false), "{}", text(&ok));
    let output: Value = serde_json::from_str(&text(&ok)).expect("tool output JSON");
    assert_eq!(output["content"], "Meeting moved to Thursday.\n");

    // Outside the grant: a tool error, not a protocol error.
    let outside = client
        .call_tool(call("read_file", json!({"path": "/etc/passwd"})))
        .await
        .expect("tools/call");
    assert_eq!(outside.is_error, Some(true));
    assert!(
        text(&outside).starts_with("failed: cannot open /etc/passwd"),
        "{}",
        text(&outside)
    );
    // An unknown tool is a JSON-RPC error, as the spec says (issue 18);
    // a denied one is a tool error.
    let unknown = client
        .call_tool(call("read_fil", json!({})))
        .await
        .expect_err("an unknown tool is a protocol error");
    let unknown = unknown.to_string();
    assert!(unknown.contains("did you mean `read_file`"), "{unknown}");
    assert!(
        unknown.contains("-32602") || unknown.to_lowercase().contains("invalid"),
        "{unknown}"
    );
    let denied = client
        .call_tool(call("grep", json!({"pattern": "x", "path": "/"})))
        .await
        .expect("tools/call");
    assert_eq!(denied.is_error, Some(true));
    assert!(text(&denied).contains("policy denies `grep`"), "{}", text(&denied));

    // A `prompt` tool asks through elicitation: approved, it runs…
    let write = json!({"path": "/workspace/out.txt", "content": "approved"});
    let approved = client
        .call_tool(call("write_file", write.clone()))
        .await
        .expect("tools/call");
    assert_eq!(approved.is_error, Some(false), "{}", text(&approved));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("ws/out.txt")).expect("written"),
        "approved"
    );
    // …declined, it does not.
    handler.approve.store(false, Ordering::SeqCst);
    let declined = client
        .call_tool(call(
            "write_file",
            json!({"path": "/workspace/other.txt", "content": "no"}),
        ))
        .await
        .expect("tools/call");
    assert_eq!(declined.is_error, Some(true));
    assert!(text(&declined).contains("did not approve"), "{}", text(&declined));
    assert!(!dir.path().join("ws/other.txt").exists());
    assert_eq!(handler.asked.load(Ordering::SeqCst), 2);

    // Hot swap: a new component in the tools directory → list_changed, and it is listed.
    let tmp = dir.path().join("tools/text_stats.wasm.tmp");
    std::fs::copy(tools_dir().join("text_stats.wasm"), &tmp).expect("copy");
    std::fs::rename(&tmp, dir.path().join("tools/text_stats.wasm")).expect("rename");
    tokio::time::timeout(Duration::from_secs(60), async {
        while handler.list_changed.load(Ordering::SeqCst) == 0 {
            handler.changed.notified().await;
        }
    })
    .await
    .expect("tools/list_changed after the swap");
    let tools = client.list_all_tools().await.expect("tools/list");
    assert!(tools.iter().any(|t| t.name == "text_stats"));
    let stats = client
        .call_tool(call("text_stats", json!({"text": "one two"})))
        .await
        .expect("tools/call");
    assert_eq!(stats.is_error, Some(false), "{}", text(&stats));

    client.cancel().await.expect("close");
    // Every call is in the audit log, and so is each approval decision.
    let audit = super::settled_text(&dir.path().join("data/audit.jsonl"), |a| {
        a.contains("\"approved_by_user\"") && a.contains("\"declined_by_user\"")
    });
    assert!(
        audit.contains("\"approved_by_user\"") && audit.contains("\"declined_by_user\""),
        "{audit}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_elicitation_prompt_tools_follow_the_non_interactive_rule() {
    let dir = setup();
    for (extra, expect_error) in [(&[][..], true), (&["--yes"][..], false)] {
        let transport = TokioChildProcess::new(boram_mcp(dir.path(), extra)).expect("spawn");
        let client = Client::new(false).serve(transport).await.expect("handshake");
        let result = client
            .call_tool(
                CallToolRequestParams::new("write_file")
                    .with_arguments(args(json!({"path": "/workspace/y.txt", "content": "y"}))),
            )
            .await
            .expect("tools/call");
        assert_eq!(result.is_error, Some(expect_error), "{extra:?}: {}", text(&result));
        if expect_error {
            assert!(text(&result).contains("boram mcp --yes"), "{}", text(&result));
        }
        client.cancel().await.expect("close");
    }
}

/// A raw session: every line on stdout is a JSON-RPC message; logs (here
/// at debug level) go to stderr.
#[test]
fn stdout_carries_only_protocol() {
    let dir = setup();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_boram"))
        .args(["mcp", "-vv", "--policy"])
        .arg(dir.path().join("policy.toml"))
        .arg("--tools-dir")
        .arg(dir.path().join("tools"))
        .env("BORAM_DATA_DIR", dir.path().join("data"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        // A file, not a pipe: debug logs are large and nobody reads them until the end.
        .stderr(std::fs::File::create(dir.path().join("stderr.log")).expect("log"))
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    for line in [
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}),
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
        json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}),
        json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"/workspace/notes.txt"}}}),
    ] {
        writeln!(stdin, "{line}").expect("write");
    }
    let stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut answered = std::collections::BTreeSet::new();
    for line in stdout.lines() {
        let line = line.expect("line");
        let message: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON-RPC ({e}): {line}"));
        assert_eq!(message["jsonrpc"], "2.0", "{line}");
        if let Some(id) = message["id"].as_u64() {
            answered.insert(id);
        }
        if answered.len() == 3 {
            break;
        }
    }
    drop(stdin);
    child.wait().expect("exit");
    assert_eq!(answered.into_iter().collect::<Vec<_>>(), [1, 2, 3]);
    let stderr = std::fs::read_to_string(dir.path().join("stderr.log")).expect("stderr");
    assert!(stderr.contains("MCP server on stdio"), "{stderr}");
}
