//! The cluster harness, shared by the cluster tests and the cluster
//! benchmark (`host/benches/cluster.rs` includes this file): `boram serve`
//! replicas as child processes, HAProxy in front of them with the README's
//! example config, and a scripted Anthropic model that answers every agent
//! by what its request says (requests from many runs arrive in no order).

use scripted_llm::anthropic::AnthropicReply;
use scripted_llm::{RecordedRequest, Reply, ScriptedServer};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running process, killed when dropped.
pub struct Process {
    pub child: Child,
    pub log: PathBuf,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// One replica.
pub struct Replica {
    pub name: String,
    pub process: Process,
    pub addr: String,
}

pub const POLICY: &str = r#"version = 1
[defaults]
approval = "allow"
"#;

/// Starts replica `name` with its own data and tools directories.
pub fn start_replica(root: &Path, name: &str, model: &ScriptedServer, database: &str) -> Replica {
    start_replica_with(root, name, model, Some(database), STORE, "")
}

/// The `[store]` section of the test replicas: a dead replica's runs move
/// after 2 s.
pub const STORE: &str = "[store]\nlease_secs = 2.0\nworkers = 4\n";

/// [`start_replica`] with this `[store]` section and more config (e.g.
/// `[[serve.users]]`); without a database, a service on the embedded store
/// (its data directory) and no `[store]`.
pub fn start_replica_with(
    root: &Path,
    name: &str,
    model: &ScriptedServer,
    database: Option<&str>,
    store: &str,
    config: &str,
) -> Replica {
    start_replica_on(root, name, model, database, store, config, None)
}

/// [`start_replica_with`] on the policy file `policy` (one file every
/// replica reads, as a deployment gives them one path) instead of
/// [`POLICY`] in a file of its own.
pub fn start_replica_on(
    root: &Path,
    name: &str,
    model: &ScriptedServer,
    database: Option<&str>,
    store: &str,
    config: &str,
    policy: Option<&Path>,
) -> Replica {
    let dir = root.join(name);
    std::fs::create_dir_all(dir.join("tools")).expect("tools dir");
    std::fs::copy(
        PathBuf::from(env!("BORAM_FIXTURES_DIR")).join("hostile.wasm"),
        dir.join("tools/hostile.wasm"),
    )
    .expect("copy tool");
    let policy = match policy {
        Some(path) => path.to_path_buf(),
        None => {
            std::fs::write(dir.join("policy.toml"), POLICY).expect("policy");
            dir.join("policy.toml")
        }
    };
    std::fs::write(
        dir.join("config.toml"),
        match database {
            Some(_) => format!("{store}{config}"),
            None => config.to_string(),
        },
    )
    .expect("config");
    let log = dir.join("serve.log");
    let child = Command::new(env!("CARGO_BIN_EXE_boram"))
        .args(["serve", "--addr", "127.0.0.1:0", "--policy"])
        .arg(&policy)
        .arg("--tools-dir")
        .arg(dir.join("tools"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--config")
        .arg(dir.join("config.toml"))
        .args([
            "--provider",
            "anthropic",
            "--base-url",
            &model.url(),
            "--model",
            "claude-sonnet-4-5",
        ])
        .env("ANTHROPIC_API_KEY", "test-key")
        .env("BORAM_DATABASE_URL", database.unwrap_or_default())
        .env("BORAM_REPLICA", name)
        .env("BORAM_SCHEDULE_TICK_MS", "300")
        .env("ALICE_TOKEN", "alice-token")
        .env("BOB_TOKEN", "bob-token")
        .env_remove("BORAM_SERVE_TOKEN")
        .env_remove("OPENAI_API_KEY")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawn boram serve");
    let process = Process { child, log };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let text = process.log();
        // The whole line: a read can land between the writes of one.
        if let Some(rest) = text.split("listening on http://").nth(1)
            && rest.contains('\n')
        {
            let addr = rest.split_whitespace().next().expect("address").to_string();
            return Replica {
                name: name.to_string(),
                process,
                addr,
            };
        }
        assert!(Instant::now() < deadline, "replica {name} did not start:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// HAProxy in front of `replicas` with the README's example config
/// (`deploy/cluster/haproxy.cfg`), its ports swapped for this test's; its URL.
pub fn start_haproxy(root: &Path, replicas: &[Replica]) -> (Process, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/cluster/haproxy.cfg");
    let mut config = std::fs::read_to_string(&example).expect("deploy/cluster/haproxy.cfg");
    assert!(
        config.contains("bind 127.0.0.1:8080"),
        "the example binds 127.0.0.1:8080"
    );
    config = config.replace("bind 127.0.0.1:8080", &format!("bind 127.0.0.1:{port}"));
    let mut lines: Vec<String> = config
        .lines()
        .filter(|l| !l.trim_start().starts_with("server "))
        .map(str::to_string)
        .collect();
    for replica in replicas {
        lines.push(format!(
            "    server {} {} check inter 200ms fall 1 rise 2",
            replica.name, replica.addr
        ));
    }
    let config = lines.join("\n") + "\n";
    let path = root.join("haproxy.cfg");
    std::fs::write(&path, config).expect("haproxy.cfg");
    let log = root.join("haproxy.log");
    let child = Command::new(haproxy_bin())
        .args(["-db", "-f"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawn haproxy (apt-get install haproxy; .ci/run does it)");
    let process = Process { child, log };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "haproxy did not start:\n{}", process.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    (process, format!("http://127.0.0.1:{port}"))
}

pub fn haproxy_bin() -> PathBuf {
    ["/usr/sbin/haproxy", "/usr/local/sbin/haproxy"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("haproxy"))
}

/// The first user message's text: the run's prompt.
pub fn prompt_of(request: &RecordedRequest) -> String {
    request.body["messages"][0]["content"]
        .as_array()
        .and_then(|blocks| blocks.iter().find_map(|b| b["text"].as_str()))
        .or_else(|| request.body["messages"][0]["content"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// The tool result in the request's last message, if that is what it carries.
pub fn last_tool_result(request: &RecordedRequest) -> Option<Value> {
    let messages = request.body["messages"].as_array()?;
    let last = messages.last()?;
    last["content"]
        .as_array()?
        .iter()
        .find(|b| b["type"] == "tool_result")
        .cloned()
}

/// The model: a run's first request gets a `sleep` call (10 s for a
/// prompt starting with "slow", else 10 ms); a request carrying its result
/// gets the final answer.
pub fn model_reply(request: &RecordedRequest) -> Reply {
    let prompt = prompt_of(request);
    match last_tool_result(request) {
        // Memory runs answer with what the tool returned.
        Some(result) if prompt.starts_with("remember") || prompt.starts_with("recall") => AnthropicReply::new()
            .text(&result["content"].to_string())
            .usage(20, 5)
            .build(),
        Some(_) => AnthropicReply::new()
            .text(&format!("finished {prompt}"))
            .usage(20, 5)
            .build(),
        None if prompt.starts_with("remember ") => AnthropicReply::new()
            .tool_use(
                "save",
                "memory_save",
                json!({"text": prompt.trim_start_matches("remember ")}),
            )
            .usage(10, 5)
            .build(),
        None if prompt.starts_with("recall ") => AnthropicReply::new()
            .tool_use(
                "search",
                "memory_search",
                json!({"query": prompt.trim_start_matches("recall ")}),
            )
            .usage(10, 5)
            .build(),
        None => {
            let ms = if prompt.starts_with("slower") {
                25_000
            } else if prompt.starts_with("slow") {
                10_000
            } else {
                10
            };
            let id = format!("call-{}", prompt.replace(' ', "-"));
            AnthropicReply::new()
                .tool_use(&id, "sleep", json!({"ms": ms}))
                .usage(10, 5)
                .build()
        }
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

pub async fn submit(http: &reqwest::Client, base: &str, prompt: &str) -> String {
    let response = http
        .post(format!("{base}/v1/runs"))
        .json(&json!({"prompt": prompt}))
        .send()
        .await
        .expect("POST /v1/runs");
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert_eq!(status, 202, "{body}");
    body["id"].as_str().expect("id").to_string()
}

pub async fn run_of(http: &reqwest::Client, base: &str, id: &str) -> Value {
    http.get(format!("{base}/v1/runs/{id}"))
        .send()
        .await
        .expect("GET run")
        .json()
        .await
        .expect("json")
}

/// Every SSE event of run `id`, followed to its end.
pub async fn events_of(http: &reqwest::Client, base: &str, id: &str) -> Vec<Value> {
    events_as(http, base, id, None).await
}

/// [`events_of`] as the user of `token`.
pub async fn events_as(http: &reqwest::Client, base: &str, id: &str, token: Option<&str>) -> Vec<Value> {
    let mut request = http.get(format!("{base}/v1/runs/{id}/events"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let text = request.send().await.expect("GET events").text().await.expect("events");
    text.lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).expect("event JSON"))
        .collect()
}

/// Polls run `id` on `base` (as the user of `token`) until it has ended;
/// the run. Fails after 60 s, showing `log`.
pub async fn wait_for_end(http: &reqwest::Client, base: &str, id: &str, token: Option<&str>, log: &Process) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut request = http.get(format!("{base}/v1/runs/{id}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let run: Value = request.send().await.expect("GET run").json().await.expect("json");
        if run["status"] != "queued" && run["status"] != "running" {
            return run;
        }
        assert!(Instant::now() < deadline, "{run}\n{}", log.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
