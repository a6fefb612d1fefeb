//! `boram serve` as a child process on 127.0.0.1, used over real HTTP:
//! health, metrics, tools and calls (with every error status), an agent
//! run against a scripted model followed over SSE, per-user isolation of
//! files and runs, refusing an open non-loopback bind, graceful shutdown
//! with a call in flight, and the dashboard in headless Chromium.

use super::{hostile_wasm, tools_dir};
use scripted_llm::ScriptedServer;
use scripted_llm::anthropic::AnthropicReply;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `boram serve`; killed when dropped.
pub(super) struct Service {
    pub(super) child: Child,
    pub(super) url: String,
    stderr: std::path::PathBuf,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    /// Starts `boram serve` in `dir` (which holds `tools/`, `policy.toml` and
    /// maybe `config.toml`) and waits for its "listening on" line.
    pub(super) fn start(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Service {
        let stderr = dir.join(format!("serve-{}.log", fastrand::u32(..)));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_boram"));
        cmd.args(["serve", "--addr", "127.0.0.1:0", "--policy"])
            .arg(dir.join("policy.toml"))
            .arg("--tools-dir")
            .arg(dir.join("tools"))
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(extra)
            .env_remove("ANTHROPIC_API_KEY")
            .env_remove("OPENAI_API_KEY")
            .env_remove("BORAM_SERVE_TOKEN")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("log"));
        if dir.join("config.toml").exists() {
            cmd.arg("--config").arg(dir.join("config.toml"));
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        Service::spawn(cmd, stderr)
    }

    /// Spawns `cmd` (a `boram serve` logging to `stderr`) and waits for
    /// its "listening on" line.
    fn spawn(mut cmd: Command, stderr: std::path::PathBuf) -> Service {
        let mut child = cmd.spawn().expect("spawn boram serve");
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            let log = std::fs::read_to_string(&stderr).unwrap_or_default();
            // The whole line: a read can land between the writes of one.
            if let Some(rest) = log.split("listening on ").nth(1)
                && rest.contains('\n')
            {
                let url = rest.split_whitespace().next().expect("address").to_string();
                return Service { child, url, stderr };
            }
            let exited = child.try_wait().expect("wait").is_some();
            assert!(
                !exited && std::time::Instant::now() < deadline,
                "serve did not start:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// [`Service::start`] with `model` (a scripted Anthropic server) as
    /// the model for runs.
    fn with_model(dir: &Path, model: &ScriptedServer, env: &[(&str, &str)]) -> Service {
        let url = model.url();
        let mut env = env.to_vec();
        env.push(("ANTHROPIC_API_KEY", "test-key"));
        let flags = [
            "--provider",
            "anthropic",
            "--base-url",
            &url,
            "--model",
            "claude-sonnet-4-5",
        ];
        Service::start(dir, &flags, &env)
    }

    pub(super) fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

pub(super) fn setup(policy: &str, tools: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("tools")).expect("tools");
    for tool in tools {
        let from = if *tool == "hostile" {
            hostile_wasm()
        } else {
            tools_dir().join(format!("{tool}.wasm"))
        };
        std::fs::copy(from, dir.path().join("tools").join(format!("{tool}.wasm"))).expect("copy");
    }
    std::fs::write(dir.path().join("policy.toml"), policy).expect("policy");
    dir
}

pub(super) fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().expect("client")
}

/// GET `url`, as the user of `token` when given, and its JSON body.
async fn get_json(http: &reqwest::Client, url: &str, token: Option<&str>) -> Value {
    let mut request = http.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    response
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"))
}

/// POST a run of `prompt` to `url` (`…/v1/runs`), as the user of `token`
/// when given; the 202's JSON (`id`, `events`).
async fn start_run(http: &reqwest::Client, url: &str, prompt: &str, token: Option<&str>) -> Value {
    let mut request = http.post(url).body(json!({"prompt": prompt}).to_string());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("POST {url}: {e}"));
    response.json().await.expect("a JSON body")
}

/// GET `url` and its body as text.
async fn get_text(http: &reqwest::Client, url: &str) -> String {
    let response = http.get(url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    response.text().await.unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

const POLICY: &str = r#"version = 1
[defaults]
approval = "allow"
[tools.read_file]
fs = [{ host = "ws", guest = "/workspace", access = "ro" }]
[tools.write_file]
approval = "prompt"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn health_metrics_tools_calls_and_a_run_over_sse() {
    let dir = setup(POLICY, &["read_file", "write_file", "text_stats"]);
    std::fs::create_dir_all(dir.path().join("ws")).expect("ws");
    std::fs::write(dir.path().join("ws/notes.txt"), "Meeting moved to Thursday.\n").expect("notes");
    std::fs::write(dir.path().join("config.toml"), "[serve]\nbody_limit_kb = 1\n").expect("config");
    let model = ScriptedServer::start(vec![
        // write_file needs approval: refused inside the run, counted and audited (issue 18).
        AnthropicReply::new()
            .tool_use("toolu_1", "read_file", json!({"path": "/workspace/notes.txt"}))
            .tool_use("toolu_2", "write_file", json!({"path": "/workspace/x", "content": "y"}))
            .usage(100, 10)
            .build(),
        AnthropicReply::new()
            .text("It moved to Thursday.")
            .usage(150, 8)
            .build(),
    ])
    .await;
    let service = Service::with_model(dir.path(), &model, &[]);
    let http = client();
    let url = |path: &str| format!("{}{path}", service.url);

    let health = get_json(&http, &url("/health"), None).await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["tools"], 3);

    let tools = get_json(&http, &url("/v1/tools"), None).await;
    let names: Vec<&str> = tools["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        names.contains(&"text_stats") && names.contains(&"read_file"),
        "{names:?}"
    );

    // A call: 200 with the report, and a request id on the response (kept when sent).
    let response = http
        .post(url("/v1/tools/text_stats/call"))
        .header("x-request-id", "test-42")
        .body(r#"{"text": "one two two"}"#)
        .send()
        .await
        .expect("call");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "test-42");
    let report: Value = response.json().await.expect("json");
    assert_eq!(report["outcome"], "ok");
    assert_eq!(report["output"]["words"], 3);
    let generated = http.get(url("/health")).send().await.expect("health");
    assert!(!generated.headers()["x-request-id"].is_empty());
    // Error statuses.
    let status = |path: &str, body: &str| {
        let request = http.post(url(path)).body(body.to_string());
        async move { request.send().await.expect("send").status().as_u16() }
    };
    assert_eq!(status("/v1/tools/nope/call", "{}").await, 404);
    assert_eq!(status("/v1/tools/text_stats/call", "not json").await, 400);
    assert_eq!(status("/v1/tools/text_stats/call", "[1]").await, 400);
    assert_eq!(
        status("/v1/tools/write_file/call", r#"{"path":"/x","content":"y"}"#).await,
        403
    );
    let big = json!({"text": "x".repeat(4096)}).to_string();
    assert_eq!(status("/v1/tools/text_stats/call", &big).await, 413);
    // Error bodies are JSON everywhere and name no server file (issue 18).
    let body = |path: &str, body: &str| {
        let request = http.post(url(path)).body(body.to_string());
        async move {
            let response = request.send().await.expect("send");
            assert_eq!(response.headers()["content-type"], "application/json");
            response.json::<Value>().await.expect("a JSON error body")
        }
    };
    let too_big = body("/v1/tools/text_stats/call", &big).await;
    assert!(
        too_big["error"].as_str().is_some_and(|e| e.contains("body_limit_kb")),
        "{too_big}"
    );
    let denied = body("/v1/tools/write_file/call", r#"{"path":"/x","content":"y"}"#).await;
    let server_dir = dir.path().canonicalize().expect("canonical").display().to_string();
    assert!(
        !denied.to_string().contains(&server_dir) && !denied.to_string().contains(&dir.path().display().to_string()),
        "{denied}"
    );
    assert!(
        denied["error"].as_str().is_some_and(|e| e.contains("needs approval")),
        "{denied}"
    );

    // A run: 202, then its events over SSE until `done`.
    let started = http
        .post(url("/v1/runs"))
        .body(r#"{"prompt": "When is the meeting?"}"#)
        .send()
        .await
        .expect("run");
    assert_eq!(started.status(), 202);
    let started: Value = started.json().await.expect("json");
    let events = read_sse(&http, &url(started["events"].as_str().expect("events url")), None).await;
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(
        kinds.contains(&"tool_call") && kinds.contains(&"tool_result"),
        "{kinds:?}"
    );
    let done = events.last().expect("events");
    assert_eq!(
        (done["type"].as_str(), done["stop"].as_str()),
        (Some("done"), Some("answered")),
        "{done}"
    );
    assert_eq!(done["text"], "It moved to Thursday.");
    // One `done`, carrying the run's cost and tokens (issue 18).
    assert_eq!(kinds.iter().filter(|k| **k == "done").count(), 1, "{kinds:?}");
    assert!(done["cost_usd"].is_number(), "{done}");
    assert_eq!(done["usage"]["input_tokens"], 250, "{done}");
    let result = events
        .iter()
        .find(|e| e["type"] == "tool_result" && e["name"] == "read_file")
        .expect("tool_result");
    assert!(
        result["content"].as_str().is_some_and(|c| c.contains("Thursday")),
        "{result}"
    );
    let run = get_json(
        &http,
        &url(&format!("/v1/runs/{}", started["id"].as_str().expect("id"))),
        None,
    )
    .await;
    assert_eq!(run["status"], "answered");

    // Metrics: tool calls by tool and outcome, latency, denials, model usage, runs.
    let metrics = get_text(&http, &url("/metrics")).await;
    for line in [
        "boram_tool_calls_total{tool=\"text_stats\",outcome=\"ok\"} 1",
        "boram_tool_calls_total{tool=\"read_file\",outcome=\"ok\"} 1",
        // write_file was refused twice above (its status, then its body),
        // and once inside the run.
        "boram_denials_total{kind=\"approval\"} 3",
        "boram_model_calls_total{model=\"claude-sonnet-4-5\"} 2",
        "boram_model_tokens_total{model=\"claude-sonnet-4-5\",kind=\"input\"} 250",
        "boram_runs_total{kind=\"answered\"} 1",
    ] {
        assert!(metrics.contains(line), "missing {line}:\n{metrics}");
    }
    assert!(metrics.contains("boram_tool_call_duration_seconds_bucket"), "{metrics}");
    assert!(metrics.contains("boram_model_cost_usd_total"), "{metrics}");
    // Each refusal is an audit line, the run's naming its session.
    let audit = super::settled_text(&dir.path().join("data/audit.jsonl"), |a| {
        a.matches(r#""event":"tool_denied""#).count() >= 3
    });
    let denied: Vec<Value> = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["event"] == "tool_denied")
        .collect();
    assert_eq!(denied.len(), 3, "{audit}");
    assert_eq!(denied[2]["tool"], "write_file");
    assert_eq!(denied[2]["session"], started["id"]);
}

/// Reads server-sent events (as the user of `token`, if given) until a
/// `done` event (or 60 s).
async fn read_sse(http: &reqwest::Client, url: &str, token: Option<&str>) -> Vec<Value> {
    use futures::StreamExt as _;
    let mut request = http.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("events");
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/event-stream")
    );
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while let Ok(Some(chunk)) = tokio::time::timeout_at(deadline, stream.next()).await {
        buffer.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let data: String = block
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim)
                .collect();
            if data.is_empty() {
                continue;
            }
            let event: Value = serde_json::from_str(&data).expect("event JSON");
            let done = event["type"] == "done";
            events.push(event);
            if done {
                return events;
            }
        }
    }
    panic!("no done event; got {events:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn users_see_only_their_own_workspace_and_runs() {
    let policy = "version = 1\n[defaults]\napproval = \"allow\"\n[tools.read_file]\n\
                  fs = [{ host = \"${workspace}\", guest = \"/workspace\", access = \"ro\" }]\n";
    let dir = setup(policy, &["read_file"]);
    let (alice_ws, bob_ws) = (dir.path().join("alice"), dir.path().join("bob"));
    std::fs::create_dir_all(&alice_ws).expect("ws");
    std::fs::write(alice_ws.join("diary.txt"), "alice's secret").expect("diary");
    let bob_hash = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(b"bob-token"))
    };
    std::fs::write(
        dir.path().join("config.toml"),
        format!(
            "[[serve.users]]\nname = \"alice\"\ntoken_env = \"ALICE_TOKEN\"\nworkspace = \"{}\"\n\n\
             [[serve.users]]\nname = \"bob\"\ntoken_sha256 = \"{bob_hash}\"\nworkspace = \"{}\"\n",
            alice_ws.display(),
            bob_ws.display()
        ),
    )
    .expect("config");
    let model = ScriptedServer::start(vec![AnthropicReply::new().text("Hello Alice.").build()]).await;
    let service = Service::with_model(dir.path(), &model, &[("ALICE_TOKEN", "alice-token")]);
    let http = client();
    let url = |path: &str| format!("{}{path}", service.url);
    let read = |token: &str| {
        http.post(url("/v1/tools/read_file/call"))
            .bearer_auth(token)
            .body(r#"{"path": "/workspace/diary.txt"}"#)
            .send()
    };
    let alice: Value = read("alice-token").await.expect("call").json().await.expect("json");
    assert_eq!(alice["output"]["content"], "alice's secret", "{alice}");
    let bob: Value = read("bob-token").await.expect("call").json().await.expect("json");
    assert_eq!(bob["outcome"], "failed", "{bob}");
    assert!(bob.to_string().contains("No such file"), "{bob}");

    // No token, a wrong token: 401. /health stays open.
    assert_eq!(http.get(url("/v1/tools")).send().await.expect("send").status(), 401);
    assert_eq!(
        http.get(url("/v1/tools"))
            .bearer_auth("nope")
            .send()
            .await
            .expect("send")
            .status(),
        401
    );
    assert_eq!(http.get(url("/metrics")).send().await.expect("send").status(), 401);
    assert_eq!(http.get(url("/health")).send().await.expect("send").status(), 200);

    // Alice's run is invisible to Bob.
    let started = start_run(&http, &url("/v1/runs"), "hi", Some("alice-token")).await;
    let id = started["id"].as_str().expect("id");
    let events_url = url(started["events"].as_str().expect("events"));
    let events = read_sse(&http, &events_url, Some("alice-token")).await;
    assert_eq!(events.last().expect("done")["stop"], "answered");
    // Her transcript, as JSON Lines, is hers alone.
    let transcript = http
        .get(url(&format!("/v1/sessions/{id}/transcript")))
        .bearer_auth("alice-token")
        .send()
        .await
        .expect("send");
    assert_eq!(transcript.status(), 200);
    assert_eq!(
        transcript.headers()["content-type"],
        "application/x-ndjson; charset=utf-8"
    );
    let records: Vec<Value> = transcript
        .text()
        .await
        .expect("text")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(records[0]["type"], "started");
    assert_eq!(records.last().expect("last")["type"], "turn_ended");
    // No way out of the sessions directory.
    for bad in ["..%2F..%2Fpolicy", "..", "a.b"] {
        let status = http
            .get(url(&format!("/v1/sessions/{bad}/transcript")))
            .bearer_auth("alice-token")
            .send()
            .await
            .expect("send")
            .status();
        assert_eq!(status, 404, "{bad}");
    }
    for path in [
        format!("/v1/runs/{id}"),
        format!("/v1/runs/{id}/events"),
        format!("/v1/sessions/{id}/transcript"),
    ] {
        let status = http
            .get(url(&path))
            .bearer_auth("bob-token")
            .send()
            .await
            .expect("send")
            .status();
        assert_eq!(status, 404, "{path}");
    }
    let bob_runs = get_json(&http, &url("/v1/runs"), Some("bob-token")).await;
    assert_eq!(bob_runs["runs"], json!([]));
    // Sessions are kept per user.
    assert!(
        dir.path()
            .join(format!("data/users/alice/sessions/{id}.jsonl"))
            .exists()
    );
    assert!(!dir.path().join(format!("data/users/bob/sessions/{id}.jsonl")).exists());
    drop(service);
}

#[test]
fn an_open_service_refuses_a_public_address() {
    let dir = setup("version = 1\n", &["text_stats"]);
    let out = Command::new(env!("CARGO_BIN_EXE_boram"))
        .args(["serve", "--addr", "0.0.0.0:0", "--policy"])
        .arg(dir.path().join("policy.toml"))
        .arg("--tools-dir")
        .arg(dir.path().join("tools"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env_remove("BORAM_SERVE_TOKEN")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0 without authentication"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_lets_a_call_in_flight_finish() {
    let dir = setup("version = 1\n[defaults]\napproval = \"allow\"\n", &["hostile"]);
    let mut service = Service::start(dir.path(), &[], &[]);
    let http = client();
    let call = tokio::spawn(
        http.post(format!("{}/v1/tools/sleep/call", service.url))
            .body(r#"{"ms": 1500}"#)
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = service.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let response = call.await.expect("join").expect("the call in flight is answered");
    assert_eq!(response.status(), 200);
    let report: Value = response.json().await.expect("json");
    assert_eq!(report["output"], 1500, "{report}");
    let status = tokio::task::spawn_blocking(move || {
        let status = service.child.wait().expect("exit");
        (status, service.log())
    })
    .await
    .expect("join");
    assert!(status.0.success(), "{}", status.1);
    assert!(status.1.contains("stopped"), "{}", status.1);
}

/// The dashboard in headless Chromium (Debian's `chromium`, installed by
/// `.ci/run`): the page loads, shows the tool calls made through the API
/// and by an agent run, the run and the usage chart, and a screenshot is
/// saved as `target/artifacts/dashboard.png`.
#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_shows_a_run_as_a_timeline_in_headless_chromium_at_1400_and_800_px_issue_18() {
    let dir = setup(POLICY, &["text_stats", "write_file"]);
    std::fs::create_dir_all(dir.path().join("ws")).expect("ws");
    let model = ScriptedServer::start(vec![
        AnthropicReply::new()
            .tool_use("toolu_1", "text_stats", json!({"text": "from the agent"}))
            .tool_use(
                "toolu_2",
                "write_file",
                json!({"path": "/workspace/x.txt", "content": "x"}),
            )
            .usage(1200, 40)
            .build(),
        AnthropicReply::new().text("Three words.").usage(1300, 12).build(),
    ])
    .await;
    let service = Service::with_model(dir.path(), &model, &[]);
    let http = client();
    // One agent run (one call that runs, one the policy's `prompt` refuses),
    // so the timeline, usage, cost, runs and sessions have something to show.
    let started = start_run(
        &http,
        &format!("{}/v1/runs", service.url),
        "Count the words of 'from the agent'.",
        None,
    )
    .await;
    let run = started["id"].as_str().expect("id").to_string();
    read_sse(
        &http,
        &format!("{}{}", service.url, started["events"].as_str().expect("events")),
        None,
    )
    .await;
    for text in ["one", "two words", "three more words"] {
        let response = http
            .post(format!("{}/v1/tools/text_stats/call", service.url))
            .body(json!({"text": text}).to_string())
            .send()
            .await
            .expect("call");
        assert_eq!(response.status(), 200);
    }
    let artifacts = super::workspace_dir().join("target/artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");
    let page = format!("{}/?run={run}", service.url);
    for width in [1400, 800] {
        // The page fills itself from the API after loading; a slow first
        // start of Chromium can take the DOM before that, so look up to 3 times.
        let mut dom = String::new();
        for _ in 0..3 {
            dom = chromium(dir.path(), width, "--dump-dom", &page);
            if dom.contains("<td>text_stats</td>") && dom.contains("data-timeline=\"done\"") {
                break;
            }
        }
        let row = dom
            .lines()
            .find(|l| l.contains("<td>text_stats</td>"))
            .unwrap_or_else(|| panic!("{width} px: no text_stats row in the dashboard:\n{dom}"));
        // Three calls through the API and one by the agent's run.
        assert!(row.contains("<td class=\"num\">4</td>"), "{row}");
        assert!(dom.contains("4 tool calls"), "{dom}");
        // The run as a timeline a person reads: the prompt, the call that ran
        // (outcome, duration), the refused one with the operator's fix, the
        // answer set apart, the end with its cost.
        let item = |class: &str| -> String {
            let start = dom
                .find(&format!("<li class=\"{class}\">"))
                .unwrap_or_else(|| panic!("{width} px: no <li class=\"{class}\"> in\n{dom}"));
            dom[start..start + dom[start..].find("</li>").expect("end of item")].to_string()
        };
        assert!(item("prompt").contains("Count the words of 'from the agent'."));
        let ran = item("tool");
        assert!(
            ran.contains("<span class=\"badge ok\">ok</span>") && ran.contains("text_stats · "),
            "{ran}"
        );
        let refused = item("tool denied");
        assert!(
            refused.contains("<span class=\"badge denied\">denied</span>"),
            "{refused}"
        );
        assert!(
            refused.contains("approval = \"allow\"") && refused.contains("[tools.write_file]"),
            "the fix is the operator's, not a CLI flag: {refused}"
        );
        assert!(!refused.contains("--yes"), "{refused}");
        assert_eq!(refused.matches("Operator:").count(), 1, "the fix once: {refused}");
        assert!(item("answer").contains("Three words."));
        let done = item("done");
        assert!(
            done.contains("Done: answered") && done.contains("2500 in / 52 out tokens") && done.contains("$"),
            "{done}"
        );
        // Both usage series visible: tokens and cost on charts of their own.
        for chart in ["tokens-chart", "cost-chart"] {
            assert!(
                dom.contains(&format!("<div id=\"{chart}\"><div class=\"uplot")),
                "{width} px: {chart} is not drawn:\n{dom}"
            );
        }
        assert!(
            dom.contains("data-overflow=\"no\""),
            "{width} px: the page is wider than the window:\n{dom}"
        );
        let screenshot = artifacts.join(format!("dashboard-{width}.png"));
        let _ = std::fs::remove_file(&screenshot);
        chromium(
            dir.path(),
            width,
            &format!("--screenshot={}", screenshot.display()),
            &page,
        );
        let png = std::fs::read(&screenshot).expect("screenshot written");
        assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{} bytes", png.len());
    }
}

/// Headless Chromium on `url` at `width` px, doing `mode` (`--dump-dom` or
/// `--screenshot=…`); its standard output. Headless Chromium now and then
/// never exits on a loaded machine (seen in CI with `--virtual-time-budget`
/// and a screenshot): a run that takes over 60 s is killed and tried again,
/// up to 3 times.
fn chromium(dir: &Path, width: u32, mode: &str, url: &str) -> String {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("Chromium is needed for this test: `apt-get install chromium` (.ci/run installs it)");
    for attempt in 1..=3 {
        let profile = dir.join(format!("chromium-{}", fastrand::u32(..)));
        let out = dir.join(format!("chromium-{}.out", fastrand::u32(..)));
        let err = dir.join(format!("chromium-{}.err", fastrand::u32(..)));
        let mut child = Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                // Let the page's fetches finish before the DOM or the picture is taken.
                "--virtual-time-budget=5000",
                "--timeout=5000",
                "--run-all-compositor-stages-before-draw",
            ])
            .arg(format!("--window-size={width},1600"))
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(mode)
            .arg(url)
            .stdout(std::fs::File::create(&out).expect("stdout file"))
            .stderr(std::fs::File::create(&err).expect("stderr file"))
            .spawn()
            .expect("run chromium");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for chromium") {
                break Some(status);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        match status {
            Some(status) => {
                let stderr = std::fs::read_to_string(&err).unwrap_or_default();
                assert!(status.success(), "{stderr}");
                return std::fs::read_to_string(&out).unwrap_or_default();
            }
            None => eprintln!("chromium hung ({mode}, {width} px, attempt {attempt}); killed"),
        }
    }
    panic!("chromium did not finish {mode} of {url} in 3 attempts of 60 s");
}

/// With a token required and none given, the dashboard says what is hidden
/// and how to get in, instead of showing empty headings.
#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_without_a_token_says_what_is_hidden_issue_18() {
    let dir = setup(POLICY, &["text_stats"]);
    std::fs::create_dir_all(dir.path().join("ws")).expect("ws");
    let service = Service::start(dir.path(), &[], &[("BORAM_SERVE_TOKEN", "secret-token")]);
    let dom = chromium(dir.path(), 1400, "--dump-dom", &format!("{}/", service.url));
    let gate = &dom[dom.find("<section id=\"gate\"").expect("the gate")..];
    assert!(
        gate.starts_with("<section id=\"gate\" style=\"display: block;\">"),
        "{dom}"
    );
    assert!(
        gate.contains("/?token=YOUR_TOKEN") && gate.contains("are hidden"),
        "{gate}"
    );
    assert!(dom.contains("<main id=\"main\" style=\"display: none;\">"), "{dom}");
    assert!(!dom.contains("<td>"), "no data without the token: {dom}");
    let with_token = chromium(
        dir.path(),
        1400,
        "--dump-dom",
        &format!("{}/?token=secret-token", service.url),
    );
    assert!(
        with_token.contains("<main id=\"main\" style=\"display: grid;\">"),
        "{with_token}"
    );
}

/// An edited policy applies to the next call; an invalid edit is rejected
/// and the previous one stays; both are counted in the metrics.
#[tokio::test(flavor = "multi_thread")]
async fn a_policy_edit_applies_to_the_next_call() {
    let dir = setup(POLICY, &["read_file"]);
    std::fs::create_dir_all(dir.path().join("ws")).expect("ws");
    std::fs::write(dir.path().join("ws/notes.txt"), "hello").expect("notes");
    let service = Service::start(dir.path(), &[], &[]);
    let http = client();
    let call = || {
        http.post(format!("{}/v1/tools/read_file/call", service.url))
            .body(r#"{"path": "/workspace/notes.txt"}"#)
            .send()
    };
    let outcome = |v: Value| v["outcome"].as_str().unwrap_or_default().to_string();
    assert_eq!(outcome(call().await.expect("call").json().await.expect("json")), "ok");

    std::fs::write(
        dir.path().join("policy.toml"),
        POLICY.replace("approval = \"allow\"", "approval = \"deny\""),
    )
    .expect("edit");
    super::eventually(
        Duration::from_secs(20),
        || format!("the edit to apply:\n{}", service.log()),
        async || outcome(call().await.expect("call").json().await.expect("json")) == "denied",
    )
    .await;

    std::fs::write(
        dir.path().join("policy.toml"),
        "version = 1\n[defaults]\napproval = \"sometimes\"\n",
    )
    .expect("bad edit");
    let metrics_url = format!("{}/metrics", service.url);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = get_text(&http, &metrics_url).await;
        if metrics.contains("boram_reloads_total{event=\"policy_rejected\"} 1") {
            assert!(
                metrics.contains("boram_reloads_total{event=\"policy_reloaded\"} 1"),
                "{metrics}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no rejection:\n{metrics}\n{}",
            service.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The rejected edit changed nothing: still denied.
    assert_eq!(
        outcome(call().await.expect("call").json().await.expect("json")),
        "denied"
    );
}

/// Schedules over HTTP: add (201, with the next run), refused input (400
/// with the reason), list, remove (204, then 404); kept in the user's data
/// directory, where the scheduler reads them.
#[tokio::test(flavor = "multi_thread")]
async fn schedules_over_http() {
    let dir = setup(POLICY, &["text_stats"]);
    std::fs::create_dir_all(dir.path().join("ws")).expect("ws");
    let service = Service::start(dir.path(), &[], &[]);
    let http = client();
    let url = |path: &str| format!("{}{path}", service.url);
    let add = |body: Value| http.post(url("/v1/schedules")).body(body.to_string()).send();

    let created = add(json!({"name": "daily_notes", "cron": "0 7 * * *", "profile": "ops", "task": "check the notes"}))
        .await
        .expect("add");
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.expect("json");
    assert!(
        created["next_run"].as_str().is_some_and(|t| t.contains("T07:00:00")),
        "{created}"
    );

    let bad = add(json!({"name": "x", "cron": "0 7 * *", "task": "t"}))
        .await
        .expect("add");
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.expect("text").contains("five-field"));
    let taken = add(json!({"name": "daily_notes", "cron": "* * * * *", "task": "t"}))
        .await
        .expect("add");
    assert_eq!(taken.status(), 400);

    let listed = get_json(&http, &url("/v1/schedules"), None).await;
    assert_eq!(listed["schedules"][0]["name"], "daily_notes");
    assert_eq!(listed["schedules"][0]["profile"], "ops");
    assert!(dir.path().join("data/schedules.json").exists());

    let removed = http
        .delete(url("/v1/schedules/daily_notes"))
        .send()
        .await
        .expect("delete");
    assert_eq!(removed.status(), 204);
    let again = http
        .delete(url("/v1/schedules/daily_notes"))
        .send()
        .await
        .expect("delete");
    assert_eq!(again.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_runs_against_an_overloaded_provider_share_one_breaker_and_all_end_issue_15() {
    let overloaded: Vec<_> = (0..300)
        .map(|_| scripted_llm::anthropic::error_reply(529, "overloaded_error", "Overloaded"))
        .collect();
    let model = ScriptedServer::start(overloaded).await;
    let dir = setup(POLICY, &["read_file"]);
    std::fs::create_dir_all(dir.path().join("ws")).expect("ws");
    // Fast retries, default breaker (5 failures) and queue (4 at once).
    std::fs::write(
        dir.path().join("config.toml"),
        "[gateway]\nbackoff_base_ms = 5\nbackoff_max_ms = 20\n",
    )
    .expect("config");
    let service = Service::with_model(dir.path(), &model, &[]);
    let http = client();
    let url = |path: &str| format!("{}{path}", service.url);
    let starts = (0..50).map(|n| {
        let http = http.clone();
        let url = url("/v1/runs");
        async move {
            let response = http
                .post(url)
                .body(json!({"prompt": format!("task {n}")}).to_string())
                .send()
                .await
                .expect("run");
            assert_eq!(response.status(), 202);
            response.json::<Value>().await.expect("json")["id"]
                .as_str()
                .expect("id")
                .to_string()
        }
    });
    let ids = futures::future::join_all(starts).await;
    for id in &ids {
        let run_url = url(&format!("/v1/runs/{id}"));
        super::eventually(
            Duration::from_secs(60),
            || format!("run {id} to end: {}", service.log()),
            async || {
                !matches!(
                    get_json(&http, &run_url, None).await["status"].as_str(),
                    Some("queued" | "running")
                )
            },
        )
        .await;
        let run = get_json(&http, &run_url, None).await;
        assert_eq!(run["status"], "error", "{run}");
    }
    // One breaker for the process: it opens after 5 failures, and at most
    // the 4 calls already out when it opened fail after it.
    let requests = model.requests().len();
    assert!(
        (5..=9).contains(&requests),
        "{requests} requests reached the overloaded provider for 50 runs"
    );
    // A failed run still ends its event stream with one `done`.
    let events = read_sse(&http, &url(&format!("/v1/runs/{}/events", ids[0])), None).await;
    let done = events.last().expect("events");
    assert_eq!(done["stop"], "error", "{done}");
    assert!(
        done["error"]
            .as_str()
            .is_some_and(|e| e.contains("not calling it again")),
        "{done}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_compile_over_the_memory_cap_is_stopped_and_the_previous_version_keeps_serving_issue_14() {
    let dir = setup(POLICY, &["read_file"]);
    std::fs::create_dir_all(dir.path().join("ws")).expect("ws");
    std::fs::write(dir.path().join("ws/notes.txt"), "hello").expect("notes");
    // read_file compiles in about 16 MiB; the new build below needs more
    // than 32 just to be read.
    let service = Service::start(dir.path(), &[], &[("BORAM_COMPILE_MEMORY_MB", "32")]);
    let http = client();
    let call = || async {
        let response = http
            .post(format!("{}/v1/tools/read_file/call", service.url))
            .body(r#"{"path": "/workspace/notes.txt"}"#)
            .send()
            .await
            .expect("call");
        response.json::<Value>().await.expect("json")["outcome"].clone()
    };
    assert_eq!(call().await, "ok");

    // A new build of read_file.wasm that needs more than the cap: a valid
    // component with a 48 MiB custom section (id 0, size, name, bytes).
    let staged = dir.path().join("tools/.read_file.wasm.tmp");
    let mut inflated = std::fs::read(tools_dir().join("read_file.wasm")).expect("read_file");
    let mut section = vec![7u8];
    section.extend_from_slice(b"padding");
    section.resize(section.len() + (48 << 20), 0);
    inflated.push(0);
    let mut size = section.len();
    loop {
        let byte = (size & 0x7f) as u8;
        size >>= 7;
        inflated.push(if size > 0 { byte | 0x80 } else { byte });
        if size == 0 {
            break;
        }
    }
    inflated.extend_from_slice(&section);
    std::fs::write(&staged, &inflated).expect("stage");
    std::fs::rename(&staged, dir.path().join("tools/read_file.wasm")).expect("rename");
    super::eventually(
        Duration::from_secs(90),
        || format!("the oversized compile to be stopped:\n{}", service.log()),
        async || {
            service
                .log()
                .contains("compiling needed more than 32 MiB of memory and was stopped")
        },
    )
    .await;
    let health = http
        .get(format!("{}/health", service.url))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), 200);
    assert_eq!(call().await, "ok", "the previous read_file still serves");
}

/// Parses `text` with the `prometheus-client` Python package's classic
/// (`openmetrics = false`) or OpenMetrics parser; `{family: [[sample, labels, value]]}`.
fn parse_with_python(text: &str, openmetrics: bool) -> Value {
    let module = if openmetrics {
        "prometheus_client.openmetrics.parser"
    } else {
        "prometheus_client.parser"
    };
    let script = format!(
        "import json, sys\nfrom {module} import text_string_to_metric_families as parse\n\
         out = {{f.name: [[s.name, s.labels, s.value] for s in f.samples] for f in parse(sys.stdin.read())}}\n\
         print(json.dumps(out))\n"
    );
    let mut child = Command::new("python3")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (with `pip install prometheus-client`, as .ci/run does)");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("python3");
    assert!(
        out.status.success(),
        "the {module} parser refused the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_in_both_formats_read_by_prometheus_own_parsers_issue_18() {
    let dir = setup(POLICY, &["text_stats"]);
    std::fs::create_dir_all(dir.path().join("ws")).expect("ws");
    let service = Service::start(dir.path(), &[], &[]);
    let http = client();
    let metrics = |accept: Option<&'static str>| {
        let (http, url) = (http.clone(), format!("{}/metrics", service.url));
        async move {
            let mut request = http.get(url);
            if let Some(accept) = accept {
                request = request.header("accept", accept);
            }
            let response = request.send().await.expect("GET /metrics");
            let kind = response.headers()["content-type"].to_str().expect("type").to_string();
            (kind, response.text().await.expect("text"))
        }
    };
    // A fresh service: every family is there, the fixed ones at 0.
    let (kind, fresh) = metrics(None).await;
    assert_eq!(kind, "text/plain; version=0.0.4; charset=utf-8");
    let families = parse_with_python(&fresh, false);
    let kinds: Vec<&str> = families["boram_denials"]
        .as_array()
        .expect("denials")
        .iter()
        .map(|s| s[1]["kind"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(kinds.len(), 4, "{families}");
    for kind in ["policy", "approval", "http", "sandbox"] {
        assert!(kinds.contains(&kind), "{kinds:?}");
    }
    assert_eq!(families["boram_runs"].as_array().map(Vec::len), Some(6), "{families}");
    assert_eq!(families["boram_build_info"][0][1]["version"], env!("CARGO_PKG_VERSION"));
    // The loaded tools' families exist before any call.
    assert_eq!(families["boram_tool_calls"][0][1]["tool"], "text_stats", "{families}");
    assert_eq!(families["boram_tool_calls"][0][2], 0.0);

    let call = http
        .post(format!("{}/v1/tools/text_stats/call", service.url))
        .json(&json!({"text": "one two"}))
        .send()
        .await
        .expect("call");
    assert_eq!(call.status(), 200);
    let sample = |families: &Value, family: &str, name: &str, labels: Value| -> Option<f64> {
        families[family].as_array()?.iter().find_map(|s| {
            let matches = s[0] == name
                && labels
                    .as_object()
                    .is_some_and(|want| want.iter().all(|(k, v)| &s[1][k] == v));
            matches.then(|| s[2].as_f64()).flatten()
        })
    };
    // The classic parser (curl's default Accept) and the OpenMetrics one
    // (what Prometheus asks for) read the same samples.
    let prometheus_accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let (classic_kind, classic) = metrics(Some("*/*")).await;
    let (open_kind, open) = metrics(Some(prometheus_accept)).await;
    assert_eq!(classic_kind, "text/plain; version=0.0.4; charset=utf-8");
    assert_eq!(open_kind, "application/openmetrics-text; version=1.0.0; charset=utf-8");
    for (families, openmetrics) in [
        (parse_with_python(&classic, false), false),
        (parse_with_python(&open, true), true),
    ] {
        let what = if openmetrics { "OpenMetrics" } else { "classic" };
        assert_eq!(
            sample(
                &families,
                "boram_tool_calls",
                "boram_tool_calls_total",
                json!({"tool": "text_stats", "outcome": "ok"})
            ),
            Some(1.0),
            "{what}: {families}"
        );
        assert_eq!(
            sample(
                &families,
                "boram_http_requests",
                "boram_http_requests_total",
                json!({"route": "/v1/tools/{name}/call", "method": "POST", "status": "200"})
            ),
            Some(1.0),
            "{what}: {families}"
        );
        assert!(
            sample(
                &families,
                "boram_http_request_duration_seconds",
                "boram_http_request_duration_seconds_count",
                json!({"route": "/metrics"})
            )
            .is_some_and(|n| n >= 1.0),
            "{what}: {families}"
        );
        assert_eq!(
            sample(
                &families,
                "boram_denials",
                "boram_denials_total",
                json!({"kind": "sandbox"})
            ),
            Some(0.0),
            "{what}"
        );
    }
}

/// `boram` with the test's data and tools directories, no model key.
fn cli(dir: &Path, data: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_boram"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .arg("--tools-dir")
        .arg(dir.join("tools"))
        .env_remove("ANTHROPIC_API_KEY")
        .stdin(Stdio::null())
        .output()
        .expect("run boram")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_and_the_open_local_service_are_one_user_issue_17() {
    let dir = setup(POLICY, &["text_stats"]);
    std::fs::create_dir_all(dir.path().join("ws")).expect("ws");
    let data = dir.path().join("data");
    // A note an earlier build's service kept apart, in `data/users/local`…
    let legacy = cli(
        dir.path(),
        &data.join("users/local"),
        &["memory", "save", "엄마 생신은 5월 8일"],
    );
    assert!(legacy.status.success(), "{legacy:?}");
    // …is merged by the first command that opens the data directory, which says so.
    let saved = cli(dir.path(), &data, &["memory", "save", "프로젝트 마감일은 3월 1일이야"]);
    assert!(saved.status.success(), "{saved:?}");
    let said = String::from_utf8_lossy(&saved.stderr);
    assert!(
        said.contains("1 memory note(s) and 0 recorded failure(s) copied into"),
        "{said}"
    );
    assert!(!data.join("users/local").exists(), "{said}");

    // A service run searches the notes the CLI saved.
    let model = ScriptedServer::start(vec![
        AnthropicReply::new()
            .tool_use("toolu_1", "memory_search", json!({"query": "마감일은"}))
            .tool_use("toolu_2", "memory_search", json!({"query": "생신은"}))
            .build(),
        AnthropicReply::new().text("3월 1일, 5월 8일.").build(),
    ])
    .await;
    let service = Service::with_model(dir.path(), &model, &[]);
    let http = client();
    let started = start_run(
        &http,
        &format!("{}/v1/runs", service.url),
        "마감일과 엄마 생신은?",
        None,
    )
    .await;
    let events = read_sse(
        &http,
        &format!("{}{}", service.url, started["events"].as_str().expect("events")),
        None,
    )
    .await;
    let found: Vec<String> = events
        .iter()
        .filter(|e| e["type"] == "tool_result" && e["name"] == "memory_search")
        .map(|e| e["content"].to_string())
        .collect();
    assert_eq!(found.len(), 2, "{events:?}");
    assert!(found[0].contains("프로젝트 마감일은 3월 1일이야"), "{found:?}");
    assert!(found[1].contains("엄마 생신은 5월 8일"), "{found:?}");
    let run = get_json(
        &http,
        &format!("{}/v1/runs/{}", service.url, started["id"].as_str().expect("id")),
        None,
    )
    .await;
    drop(service);

    // The CLI lists the service's session as the local user's and finds it by id.
    let session = run["session"].as_str().expect("session");
    let listed = cli(dir.path(), &data, &["sessions", "list", "--json"]);
    let sessions: Vec<Value> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let listed = sessions.iter().find(|s| s["id"] == session).expect("listed");
    assert_eq!(listed["user"], "local", "{listed}");
    assert!(data.join(format!("sessions/{session}.jsonl")).is_file());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tool_rebuilt_in_a_relative_tools_dir_is_swapped_once_issue_17() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tools = dir.path().join("tools");
    std::fs::create_dir_all(&tools).expect("tools");
    std::fs::copy(hostile_wasm(), tools.join("echo.wasm")).expect("v1");
    std::fs::write(
        dir.path().join("policy.toml"),
        "version = 1\n[defaults]\napproval = \"allow\"\n",
    )
    .expect("policy");
    // Every path relative, as `boram serve` is started from a project directory.
    let stderr = dir.path().join("serve.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_boram"));
    cmd.current_dir(dir.path())
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--policy",
            "policy.toml",
            "--tools-dir",
            "tools",
            "--data-dir",
            "data",
        ])
        .env_remove("BORAM_SERVE_TOKEN")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).expect("log"));
    let service = Service::spawn(cmd, stderr);
    let http = client();
    let echo = async || -> Value {
        http.post(format!("{}/v1/tools/echo/call", service.url))
            .body(r#"{"text":"hi"}"#)
            .send()
            .await
            .expect("call")
            .json()
            .await
            .expect("json")
    };
    assert_eq!(echo().await["output"], json!({"text": "hi"}));

    // A new build renamed into place, as `boram tool build` does.
    let partial = tools.join(".echo.partial");
    std::fs::copy(PathBuf::from(env!("BORAM_FIXTURES_DIR")).join("echo_v2.wasm"), &partial).expect("v2");
    std::fs::rename(&partial, tools.join("echo.wasm")).expect("rename");
    super::eventually(
        Duration::from_secs(30),
        || format!("the new build to answer; log:\n{}", service.log()),
        async || echo().await["output"] == json!({"text": "HI"}),
    )
    .await;
    // Then quiet: exactly one swap, nothing refused.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let metrics = get_text(&http, &format!("{}/metrics", service.url)).await;
    for line in [
        "boram_reloads_total{event=\"tool_swapped\"} 1",
        "boram_reloads_total{event=\"tool_rejected\"} 0",
    ] {
        assert!(metrics.contains(line), "missing {line}:\n{metrics}");
    }
    assert!(!service.log().contains("second component"), "{}", service.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approval_remembered_over_http_lets_a_prompt_tool_run_until_forgotten_issue_16() {
    let policy = "version = 1\n[defaults]\napproval = \"allow\"\n\
                  [tools.write_file]\napproval = \"prompt\"\nfs = [{ host = \"ws\", guest = \"/workspace\", access = \"rw\" }]\n\
                  [tools.http_get]\napproval = \"prompt\"\nnet = [\"http://127.0.0.1\"]\n";
    let dir = setup(policy, &["write_file", "text_stats", "http_get"]);
    std::fs::create_dir_all(dir.path().join("ws")).expect("ws");
    let model = ScriptedServer::start(vec![
        AnthropicReply::new()
            .tool_use(
                "toolu_1",
                "write_file",
                json!({"path": "/workspace/run.txt", "content": "from the run"}),
            )
            .usage(100, 10)
            .build(),
        AnthropicReply::new().text("Written.").usage(150, 8).build(),
    ])
    .await;
    let service = Service::with_model(dir.path(), &model, &[]);
    let http = client();
    let url = |path: &str| format!("{}{path}", service.url);
    let call = || {
        http.post(url("/v1/tools/write_file/call"))
            .body(r#"{"path": "/workspace/direct.txt", "content": "direct"}"#)
            .send()
    };
    let approve = |body: Value| http.post(url("/v1/approvals")).body(body.to_string()).send();

    // Not approved: refused, and the refusal names the way to approve it.
    let refused = call().await.expect("call");
    assert_eq!(refused.status(), 403);
    assert!(refused.text().await.expect("text").contains("POST /v1/approvals"));

    // Answers that do not fit are refused with the reason.
    let unknown = approve(json!({"tool": "write_fil"})).await.expect("post");
    assert_eq!(unknown.status(), 404);
    assert!(
        unknown.text().await.expect("text").contains("write_file"),
        "did you mean"
    );
    let needless = approve(json!({"tool": "text_stats"})).await.expect("post");
    assert_eq!(needless.status(), 400);
    assert!(needless.text().await.expect("text").contains("needs no approval"));
    let scoped = approve(json!({"tool": "write_file", "origins": ["https://example.com"]}))
        .await
        .expect("post");
    assert_eq!(scoped.status(), 400);
    let unscoped = approve(json!({"tool": "http_get"})).await.expect("post");
    assert_eq!(unscoped.status(), 400);
    assert!(unscoped.text().await.expect("text").contains("origins"));
    assert!(
        get_json(&http, &url("/v1/approvals"), None).await["approvals"]
            .as_array()
            .is_some_and(|a| a.is_empty()),
        "nothing remembered by refused answers"
    );

    // Approved: bound to the tool's hash and grant, in the user's approvals.json.
    let created = approve(json!({"tool": "write_file"})).await.expect("post");
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.expect("json");
    assert_eq!(
        (created["tool"].as_str(), created["current"].as_bool()),
        (Some("write_file"), Some(true))
    );
    assert_eq!(created["sha256"].as_str().map(str::len), Some(64), "{created}");
    let id = created["id"].as_str().expect("id").to_string();
    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("data/approvals.json")).expect("file"))
            .expect("json");
    assert_eq!(stored[0]["id"], id.as_str());

    // A direct call runs now, and so does the call inside a run.
    let ran = call().await.expect("call");
    assert_eq!(ran.status(), 200);
    assert_eq!(ran.json::<Value>().await.expect("json")["outcome"], "ok");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("ws/direct.txt")).expect("written"),
        "direct"
    );
    let started = start_run(&http, &url("/v1/runs"), "Write it.", None).await;
    let events = read_sse(&http, &url(started["events"].as_str().expect("events url")), None).await;
    let decision = events
        .iter()
        .find(|e| e["type"] == "approval")
        .unwrap_or_else(|| panic!("no approval event: {events:?}"));
    assert_eq!(decision["decision"], "allow (always)", "{decision}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("ws/run.txt")).expect("written"),
        "from the run"
    );

    // Forgotten: refused again.
    let listed = get_json(&http, &url("/v1/approvals"), None).await;
    assert_eq!(listed["approvals"].as_array().map(Vec::len), Some(1), "{listed}");
    let removed = http
        .delete(url(&format!("/v1/approvals/{id}")))
        .send()
        .await
        .expect("delete");
    assert_eq!(removed.status(), 204);
    let again = http
        .delete(url(&format!("/v1/approvals/{id}")))
        .send()
        .await
        .expect("delete");
    assert_eq!(again.status(), 404);
    assert_eq!(call().await.expect("call").status(), 403);
}
