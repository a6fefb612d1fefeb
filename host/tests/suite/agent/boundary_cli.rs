//! The agent boundary from the command line (issue 15): a run killed with
//! SIGKILL mid-call resumes honestly, configured secrets echoed by a
//! provider reach no file and no stderr, a retried stream leaves only the
//! answer on stdout, a budget without a price refuses to start, and a
//! required audit log that cannot be written stops tool calls.

use super::cli::{Env, args, text};
use super::*;
use base64::Engine as _;
use scripted_llm::anthropic::AnthropicReply;
use serde_json::{Value, json};
use std::process::Stdio;
use tokio::io::AsyncWriteExt;

/// `boram ARGS` in `env` with extra environment variables, `stdin` typed in.
async fn run_with(env: &Env, args: &[&str], vars: &[(&str, &str)], stdin: &str) -> std::process::Output {
    let mut command = env.command(args);
    for (name, value) in vars {
        command.env(name, value);
    }
    let mut child = command.stdin(Stdio::piped()).spawn().expect("spawn boram");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.as_bytes()).await.expect("write stdin");
    drop(input);
    child.wait_with_output().await.expect("boram output")
}

/// The `tool_result` blocks of the last message of request `n`.
fn results_of(server: &ScriptedServer, n: usize) -> Vec<Value> {
    last_tool_results(&server.requests()[n].body)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_during_a_tool_call_resumes_as_interrupted_not_as_not_run_issue_15() {
    // Two calls at once: `fast` finishes, `slow` is running at the kill.
    let server = ScriptedServer::start(vec![
        AnthropicReply::new()
            .tool_use("fast", "read_file", json!({"path": "/workspace/notes.txt"}))
            .tool_use("slow", "sleep", json!({"ms": 60_000}))
            .build(),
    ])
    .await;
    let env = Env::new();
    let tools = env.dir.path().join("tools");
    std::fs::create_dir_all(&tools).expect("tools");
    std::fs::copy(super::super::hostile_wasm(), tools.join("hostile.wasm")).expect("copy");
    std::fs::copy(
        super::super::tools_dir().join("read_file.wasm"),
        tools.join("read_file.wasm"),
    )
    .expect("copy");
    std::fs::write(
        env.dir.path().join("policy.toml"),
        policy("[tools.sleep]\ntimeout_ms = 120000"),
    )
    .expect("policy");
    let model = env.model_args(&server);
    let tools_dir = tools.display().to_string();
    let mut child = env
        .command(&args(&model, &["run", "sleep for a minute"]))
        .env("BORAM_TOOLS_DIR", &tools_dir)
        .spawn()
        .expect("spawn");
    let audit = env.dir.path().join("data/audit.jsonl");
    let transcript_says = |what: &str| {
        std::fs::read_dir(env.dir.path().join("data/sessions")).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| std::fs::read_to_string(e.path()).is_ok_and(|text| text.contains(what)))
        })
    };
    super::super::eventually(
        Duration::from_secs(60),
        || "`fast` to finish while `sleep` runs".into(),
        async || {
            transcript_says(r#""type":"tool_finished","time""#)
                && std::fs::read_to_string(&audit).is_ok_and(|a| a.contains(r#""tool_call_started","tool":"sleep""#))
        },
    )
    .await;
    child.kill().await.expect("kill -9");
    let audit = std::fs::read_to_string(&audit).expect("audit");
    assert!(
        !audit.contains(r#""event":"tool_call","tool":"sleep""#),
        "the sleep call never finished: {audit}"
    );

    server.push(AnthropicReply::new().text("It may have run; I will check.").build());
    let out = run_with(
        &env,
        &args(&model, &["chat", "--resume", "last"]),
        &[("BORAM_TOOLS_DIR", &tools_dir)],
        "what happened?\n",
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let body = &server.requests()[1].body;
    let closing = &body["messages"][2]["content"];
    // The finished call keeps its real result (issue 16: it is not run again)…
    assert_eq!(closing[0]["type"], "tool_result", "{body}");
    assert_eq!(closing[0]["tool_use_id"], "fast");
    assert_eq!(closing[0]["is_error"], false);
    assert!(closing[0]["content"].as_str().expect("content").contains("Thursday"));
    // …the running one is reported as interrupted.
    assert_eq!(closing[1]["tool_use_id"], "slow");
    assert_eq!(closing[1]["is_error"], true);
    let content = closing[1]["content"].as_str().expect("content");
    assert!(
        content.contains("it may have run, and its side effects are unknown"),
        "{content}"
    );
    assert_eq!(closing[2]["text"], "what happened?");
    let audit = std::fs::read_to_string(env.dir.path().join("data/audit.jsonl")).expect("audit");
    assert_eq!(
        audit.matches(r#""event":"tool_call","tool":"read_file""#).count(),
        1,
        "the finished call did not run again"
    );
}

/// Every file under `dir`, as bytes.
fn all_files(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(all_files(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path, bytes));
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_key_echoed_by_the_provider_reaches_no_file_no_stderr_and_no_stdout_issue_15() {
    const KEY: &str = "sk-ant-canary+7f3e/9a1b=2c4d5e6f";
    let b64 = base64::engine::general_purpose::STANDARD.encode(KEY);
    let url = "sk-ant-canary%2B7f3e%2F9a1b%3D2c4d5e6f";
    let echo = format!("invalid x-api-key {KEY}; as base64 {b64}; in a URL ?key={url}");
    let server = ScriptedServer::start(vec![
        scripted_llm::anthropic::error_reply(401, "authentication_error", &echo),
        AnthropicReply::new()
            .text(&format!("Your key is {KEY}, or {b64}."))
            .build(),
    ])
    .await;
    let env = Env::new();
    let model = env.model_args(&server);
    let key = [("ANTHROPIC_API_KEY", KEY)];
    let failed = run_with(&env, &args(&model, &["run", "-v", "hello"]), &key, "").await;
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed.stderr));
    assert!(text(&failed.stderr).contains("[REDACTED]"), "{}", text(&failed.stderr));
    let answered = run_with(&env, &args(&model, &["run", "-v", "hello again"]), &key, "").await;
    assert!(answered.status.success(), "{}", text(&answered.stderr));
    assert_eq!(
        text(&answered.stdout).trim_end(),
        "Your key is [REDACTED], or [REDACTED]."
    );
    // The key really went to the server, in its header.
    assert!(
        server.requests()[0]
            .headers
            .iter()
            .any(|(n, v)| n == "x-api-key" && v == KEY)
    );

    let forms = [KEY, b64.trim_end_matches('='), url, "7f3e/9a1b"];
    for out in [&failed, &answered] {
        for stream in [&out.stderr, &out.stdout] {
            for form in forms {
                assert!(!contains(stream, form), "`{form}` printed: {}", text(stream));
            }
        }
    }
    let files = all_files(&env.dir.path().join("data"));
    assert!(
        files.iter().any(|(p, _)| p.ends_with("memory.db")),
        "the failure went to memory.db: {files:?}",
        files = files.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    for (path, bytes) in &files {
        for form in forms {
            assert!(!contains(bytes, form), "`{form}` in {}", path.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_retried_midway_leaves_only_the_answer_on_stdout_issue_15() {
    let partial = AnthropicReply::new()
        .text("Half of a wrong answer that gets discarded")
        .build();
    let cut = partial.body.len() * 3 / 4;
    let server = ScriptedServer::start(vec![
        partial.truncated_at(cut),
        AnthropicReply::new().text("The full answer.").build(),
    ])
    .await;
    let env = Env::new();
    let model = env.model_args(&server);
    let out = env.run(&args(&model, &["run", "answer me"]), "").await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(server.requests().len(), 2, "the cut stream was retried");
    assert_eq!(text(&out.stdout), "The full answer.\n");
    assert!(text(&out.stderr).contains("retry 1"), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_budget_for_a_model_without_a_price_refuses_to_start_issue_15() {
    let server = ScriptedServer::start(vec![AnthropicReply::new().text("never").build()]).await;
    let env = Env::new();
    std::fs::write(env.dir.path().join("policy.toml"), policy("[agent]\nbudget_usd = 1.0")).expect("policy");
    let model = env.model_args(&server);
    let out = env
        .run(&args(&model, &["run", "--model", "local-llama", "hello"]), "")
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("budget_usd = 1 is set, but model `local-llama` has no price")
            && stderr.contains("[prices.\"local-llama\"]"),
        "{stderr}"
    );
    assert!(server.requests().is_empty(), "nothing was sent");

    // A priced model runs under the same budget.
    let out = env.run(&args(&model, &["run", "hello"]), "").await;
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_required_audit_log_that_cannot_be_written_stops_tool_calls_issue_15() {
    let read = || {
        AnthropicReply::new()
            .tool_use("r", "read_file", json!({"path": "/workspace/notes.txt"}))
            .build()
    };
    let server = ScriptedServer::start(vec![
        read(),
        AnthropicReply::new().text("ok").build(),
        read(),
        AnthropicReply::new().text("ok").build(),
    ])
    .await;
    let env = Env::new();
    // A full disk: every write to the audit log fails with ENOSPC.
    std::fs::create_dir_all(env.dir.path().join("data")).expect("data");
    std::os::unix::fs::symlink("/dev/full", env.dir.path().join("data/audit.jsonl")).expect("symlink");
    std::fs::write(env.dir.path().join("config.toml"), "[audit]\nrequired = true\n").expect("config");
    let model = env.model_args(&server);
    let config = env.path("config.toml");
    let out = env
        .run(&args(&model, &["run", "--config", &config, "read my notes"]), "")
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let refused = &results_of(&server, 1)[0];
    assert_eq!(refused["is_error"], true);
    let content = refused["content"].as_str().expect("content");
    assert!(
        content.starts_with("denied:")
            && content.contains("cannot be written")
            && content.contains("[audit] required = true"),
        "{content}"
    );
    assert!(!content.contains("Thursday"), "the tool did not run");

    // Best effort (the CLI default): the call runs, the lost line is reported.
    let out = env.run(&args(&model, &["run", "read my notes"]), "").await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let ran = &results_of(&server, 3)[0];
    assert_eq!(ran["is_error"], false, "{ran}");
    assert!(ran["content"].as_str().expect("content").contains("Thursday"));
    let stderr = text(&out.stderr);
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("lines were lost") && l.contains("audit.jsonl")),
        "{stderr}"
    );
}

/// A tmux server of its own (its socket in `dir`), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new(dir: &std::path::Path) -> Self {
        Self {
            socket: dir.join("tmux.sock").display().to_string(),
        }
    }

    fn run(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux (Debian's tmux package) runs");
        assert!(out.status.success(), "tmux {args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tmux")
            .args(["-S", &self.socket, "kill-server"])
            .output();
    }
}

/// The shell command that runs `boram ARGS` in `env` inside tmux: env's
/// data dir, the built tools, no API key, no user config.
fn boram_in_tmux(env: &Env, vars: &str, args: &str) -> String {
    format!(
        "env -u ANTHROPIC_API_KEY BORAM_DATA_DIR={} BORAM_TOOLS_DIR={} HOME={} XDG_CONFIG_HOME={} {vars} {} {args}",
        env.path("data"),
        super::super::tools_dir().display(),
        env.dir.path().display(),
        env.path("config"),
        env!("CARGO_BIN_EXE_boram"),
    )
}

/// `boram chat` against `server` under the env's `policy.toml`, as a tmux command.
fn chat_in_tmux(env: &Env, server: &ScriptedServer) -> String {
    let args = format!(
        "chat --provider anthropic --base-url {} --policy {}",
        server.url(),
        env.path("policy.toml")
    );
    boram_in_tmux(env, "", &args)
}

/// Model text that tries to hide what follows it (SGR 8, conceal), retitle
/// the terminal (OSC 0) and reverse the text after it (U+202E).
const HOSTILE_TEXT: &str = "Sure.\u{1b}[8m\u{1b}]0;PWNED\u{7}\u{202e}";

#[tokio::test(flavor = "multi_thread")]
async fn model_text_cannot_hide_the_approval_prompt_or_retitle_a_real_terminal_issue_15() {
    let server = ScriptedServer::start(vec![
        AnthropicReply::new()
            .text(HOSTILE_TEXT)
            .tool_use("w", "write_file", json!({"path": "/workspace/out.txt", "content": "x"}))
            .build(),
        AnthropicReply::new().text("Done.").build(),
    ])
    .await;
    let env = Env::new();
    std::fs::write(
        env.dir.path().join("policy.toml"),
        policy("").replace("[tools.write_file]\n", "[tools.write_file]\napproval = \"prompt\"\n"),
    )
    .expect("policy");
    let tmux = Tmux::new(env.dir.path());
    let command = chat_in_tmux(&env, &server);
    let workdir = super::super::workspace_dir().display().to_string();
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "chat",
        "-x",
        "160",
        "-y",
        "50",
        "-c",
        &workdir,
        &command,
    ]);
    tmux.run(&["send-keys", "-t", "chat", "write the file", "Enter"]);
    super::super::eventually(
        Duration::from_secs(60),
        || {
            format!(
                "the approval prompt on screen:\n{}",
                tmux.run(&["capture-pane", "-p", "-t", "chat"])
            )
        },
        async || {
            tmux.run(&["capture-pane", "-p", "-t", "chat"])
                .contains("answer o/s/a/d?")
        },
    )
    .await;
    // With attributes: nothing the model sent is in force on the screen.
    let screen = tmux.run(&["capture-pane", "-p", "-e", "-t", "chat"]);
    assert!(!screen.contains("\u{1b}[8m"), "conceal is on:\n{screen:?}");
    assert!(!screen.contains('\u{202e}'), "{screen:?}");
    // The model's bytes are shown as visible escapes instead.
    assert!(screen.contains(r"Sure.\x1b[8m\x1b]0;PWNED\x07\u{202e}"), "{screen}");
    assert!(
        screen.contains("? `write_file` (") && screen.contains("write_file.wasm, sha256 "),
        "the prompt names the tool's file and hash:\n{screen}"
    );
    let title = tmux.run(&["display-message", "-p", "-t", "chat", "#{pane_title}"]);
    assert_ne!(title.trim(), "PWNED", "the model retitled the terminal");

    tmux.run(&["send-keys", "-t", "chat", "o", "Enter"]);
    super::super::eventually(
        Duration::from_secs(60),
        || format!("the answer:\n{}", tmux.run(&["capture-pane", "-p", "-t", "chat"])),
        async || tmux.run(&["capture-pane", "-p", "-t", "chat"]).contains("Done."),
    )
    .await;
    assert!(
        env.dir.path().join("ws/out.txt").exists(),
        "approved once: the file was written"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn json_output_keeps_json_escaping_of_hostile_text_issue_15() {
    let server = ScriptedServer::start(vec![AnthropicReply::new().text(HOSTILE_TEXT).build()]).await;
    let env = Env::new();
    let model = env.model_args(&server);
    let out = env.run(&args(&model, &["run", "--json", "hi"]), "").await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!out.stdout.contains(&0x1b), "no raw ESC on stdout");
    let stdout = text(&out.stdout);
    assert!(stdout.contains(r"\u001b[8m"), "{stdout}");
    let streamed: String = stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON line"))
        .filter(|e| e["type"] == "text_delta")
        .filter_map(|e| e["text"].as_str().map(str::to_string))
        .collect();
    assert_eq!(streamed, HOSTILE_TEXT, "the JSON carries the text exactly");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_open_in_one_chat_is_refused_in_a_second_issue_16() {
    let server = ScriptedServer::start(vec![AnthropicReply::new().text("First answer.").build()]).await;
    let env = Env::new();
    let model = env.model_args(&server);
    let (mut first, stdin) = env.chat(&model, "hello").await;
    super::cli::wait_for_requests(&server, 1).await;
    let second = env.run(&args(&model, &["chat", "--resume", "last"]), "again\n").await;
    assert_eq!(second.status.code(), Some(2), "{}", text(&second.stderr));
    let stderr = text(&second.stderr);
    assert!(
        stderr.contains("is open in another boram process; quit it there first"),
        "{stderr}"
    );
    assert_eq!(server.requests().len(), 1, "the second chat sent nothing");
    drop(stdin);
    let out = first.wait().await.expect("first chat ends");
    assert!(out.success());

    // Once the first has quit, the session continues.
    server.push(AnthropicReply::new().text("Continued.").build());
    let third = env.run(&args(&model, &["chat", "--resume", "last"]), "again\n").await;
    assert!(third.status.success(), "{}", text(&third.stderr));
    assert!(text(&third.stdout).contains("Continued."));
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_listening_at_a_local_base_url_is_said_once_issue_17() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let env = Env::new();
    let out = env
        .run(
            &[
                "run",
                "--provider",
                "anthropic",
                "--base-url",
                &url,
                "--policy",
                &env.path("policy.toml"),
                "hi",
            ],
            "",
        )
        .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    let retries = stderr.lines().filter(|l| l.contains("↻ retry")).count();
    assert_eq!(
        retries, 1,
        "one retry for a local server that is not running:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "nothing is listening at {url} — is the model server (Ollama, llama.cpp, vLLM…) running?"
        )),
        "{stderr}"
    );
    for line in stderr.lines() {
        assert!(line.matches(&url).count() <= 1, "the URL twice in one line: {line}");
    }
}

/// `boram ARGS` from `cwd`, with `env`'s data dir and the model at `server`, no --policy.
async fn run_in(env: &Env, cwd: &std::path::Path, server: &ScriptedServer, rest: &[&str]) -> std::process::Output {
    let url = server.url();
    let mut args = vec!["run", "--provider", "anthropic", "--base-url", url.as_str()];
    args.extend_from_slice(rest);
    let child = env.command(&args).current_dir(cwd).spawn().expect("spawn boram");
    child.wait_with_output().await.expect("output")
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_policy_the_agent_works_on_the_current_directory_issue_17() {
    let read = || {
        AnthropicReply::new()
            .tool_use(
                &format!("r{}", fastrand::u32(..)),
                "read_file",
                json!({"path": "/workspace/todo.txt"}),
            )
            .build()
    };
    let server = ScriptedServer::start(vec![
        read(),
        AnthropicReply::new().text("ok").build(),
        read(),
        AnthropicReply::new().text("ok").build(),
    ])
    .await;
    let env = Env::new();
    let project = env.dir.path().join("project");
    std::fs::create_dir_all(&project).expect("project");
    std::fs::write(project.join("todo.txt"), "ship the release\n").expect("todo");
    let out = run_in(&env, &project, &server, &["what is on my list?"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    let shown = project.canonicalize().expect("canonical").display().to_string();
    assert!(
        stderr.contains(&format!(
            "workspace {shown} (read tools read it, write_file writes after asking"
        )),
        "{stderr}"
    );
    let result = &results_of(&server, 1)[0];
    assert_eq!(result["is_error"], false, "{result}");
    assert!(
        result["content"]
            .as_str()
            .expect("content")
            .contains("ship the release")
    );

    // --workspace picks another directory, from anywhere.
    let other = env.dir.path().join("other");
    std::fs::create_dir_all(&other).expect("other");
    std::fs::write(other.join("todo.txt"), "water the plants\n").expect("todo");
    let out = run_in(&env, &project, &server, &["--workspace", "../other", "and there?"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let result = &results_of(&server, 3)[0];
    assert!(
        result["content"]
            .as_str()
            .expect("content")
            .contains("water the plants"),
        "{result}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_workspace_holding_the_tools_directory_is_read_only_and_a_missing_grant_says_so_issue_17() {
    let server = ScriptedServer::start(vec![
        AnthropicReply::new()
            .tool_use("w", "write_file", json!({"path": "/workspace/x.txt", "content": "x"}))
            .build(),
        AnthropicReply::new().text("ok").build(),
        AnthropicReply::new()
            .tool_use("r", "read_file", json!({"path": "/workspace/notes.txt"}))
            .build(),
        AnthropicReply::new().text("ok").build(),
    ])
    .await;
    let env = Env::new();
    // A checkout: the tools directory lies inside the working directory.
    let checkout = env.dir.path().join("checkout");
    let tools = checkout.join("tools");
    std::fs::create_dir_all(&tools).expect("tools");
    for tool in ["read_file", "write_file"] {
        std::fs::copy(
            super::super::tools_dir().join(format!("{tool}.wasm")),
            tools.join(format!("{tool}.wasm")),
        )
        .expect("copy");
    }
    let url = server.url();
    let out = env
        .command(&["run", "--provider", "anthropic", "--base-url", &url, "--yes", "write x"])
        .current_dir(&checkout)
        .env("BORAM_TOOLS_DIR", &tools)
        .spawn()
        .expect("spawn")
        .wait_with_output()
        .await
        .expect("output");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("read-only: write_file gets no directory") && stderr.contains("tools directory"),
        "{stderr}"
    );
    let refused = &results_of(&server, 1)[0];
    assert_eq!(refused["is_error"], true);
    assert!(
        refused["content"]
            .as_str()
            .expect("content")
            .contains("no policy grants `write_file` a directory"),
        "{refused}"
    );
    assert!(!checkout.join("x.txt").exists());

    // A --policy that grants read_file nothing: the denial says why.
    std::fs::write(
        env.dir.path().join("bare.toml"),
        "version = 1\n[defaults]\napproval = \"allow\"\n",
    )
    .expect("policy");
    let bare = env.path("bare.toml");
    let out = run_in(&env, env.dir.path(), &server, &["--policy", &bare, "read"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let result = &results_of(&server, 3)[0];
    assert!(
        result["content"]
            .as_str()
            .expect("content")
            .contains("no policy grants `read_file` a directory: pass --workspace DIR or a --policy"),
        "{result}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_md_in_the_workspace_joins_the_system_prompt_issue_17() {
    let server = ScriptedServer::start(vec![AnthropicReply::new().text("네.").build()]).await;
    let env = Env::new();
    let project = env.dir.path().join("project");
    std::fs::create_dir_all(&project).expect("project");
    std::fs::write(project.join("AGENTS.md"), "# House rules\nAlways answer in Korean.\n").expect("agents");
    let out = run_in(&env, &project, &server, &["hello"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let system = server.requests()[0].body["system"].to_string();
    assert!(
        system.contains("Instructions from AGENTS.md in the workspace") && system.contains("Always answer in Korean."),
        "{system}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn boram_alone_on_a_terminal_starts_chat_issue_17() {
    let server = ScriptedServer::start(vec![]).await;
    let env = Env::new();
    let tmux = Tmux::new(env.dir.path());
    let vars = format!("BORAM_PROVIDER=anthropic ANTHROPIC_BASE_URL={}", server.url());
    let command = boram_in_tmux(&env, &vars, "");
    let project = env.dir.path().join("project");
    std::fs::create_dir_all(&project).expect("project");
    let cwd = project.display().to_string();
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "bare",
        "-x",
        "160",
        "-y",
        "40",
        "-c",
        &cwd,
        &command,
    ]);
    super::super::eventually(
        Duration::from_secs(60),
        || format!("the chat banner:\n{}", tmux.run(&["capture-pane", "-p", "-t", "bare"])),
        async || {
            tmux.run(&["capture-pane", "-p", "-t", "bare"])
                .contains("boram chat · session")
        },
    )
    .await;
}

const MARKDOWN: &str = "# Plan\n**Step one** uses `grep`.\n- first\n- second\n```\nlet x = 1;\n```\nDone.";

#[tokio::test(flavor = "multi_thread")]
async fn markdown_is_rendered_on_a_terminal_and_left_as_is_in_a_pipe_issue_17() {
    let server = ScriptedServer::start(vec![
        AnthropicReply::new().text(MARKDOWN).build(),
        AnthropicReply::new().text(MARKDOWN).build(),
    ])
    .await;
    let env = Env::new();
    let tmux = Tmux::new(env.dir.path());
    let command = chat_in_tmux(&env, &server);
    tmux.run(&["new-session", "-d", "-s", "md", "-x", "120", "-y", "40", &command]);
    tmux.run(&["send-keys", "-t", "md", "plan it", "Enter"]);
    super::super::eventually(
        Duration::from_secs(60),
        || format!("the answer:\n{}", tmux.run(&["capture-pane", "-p", "-t", "md"])),
        async || tmux.run(&["capture-pane", "-p", "-t", "md"]).contains("Done."),
    )
    .await;
    let plain = tmux.run(&["capture-pane", "-p", "-t", "md"]);
    assert!(plain.contains("• first") && plain.contains("let x = 1;"), "{plain}");
    assert!(!plain.contains("**Step one**") && !plain.contains("```"), "{plain}");
    let styled = tmux.run(&["capture-pane", "-p", "-e", "-t", "md"]);
    // tmux re-encodes the attributes it holds: bold and underline on the heading.
    assert!(
        styled.contains("\u{1b}[1;4mPlan"),
        "a styled heading on screen: {styled:?}"
    );

    let model = env.model_args(&server);
    let out = env.run(&args(&model, &["run", "plan it"]), "").await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("{MARKDOWN}\n"),
        "a pipe gets the Markdown as written"
    );
}

/// The tool names a recorded request offered the model.
fn offered(request: &scripted_llm::RecordedRequest) -> Vec<String> {
    request.body["tools"]
        .as_array()
        .map(|tools| {
            tools
                .iter()
                .filter_map(|t| t["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_big_uncompiled_tool_compiles_in_the_background_and_is_offered_once_ready_issue_17() {
    let env = Env::new();
    let tools = env.dir.path().join("tools");
    std::fs::create_dir_all(&tools).expect("tools");
    std::fs::copy(super::tools_dir().join("read_file.wasm"), tools.join("read_file.wasm")).expect("copy");
    // read_file is in the compile cache already; text_stats is not.
    let listed = env
        .command(&["tool", "list", "--tools-dir", &tools.display().to_string()])
        .output()
        .await
        .expect("tool list");
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    std::fs::copy(
        super::tools_dir().join("text_stats.wasm"),
        tools.join("text_stats.wasm"),
    )
    .expect("copy");

    // The model's first reply waits until boram says text_stats is ready,
    // so the second request is made after it: deterministic, not timed.
    let log = env.dir.path().join("run.log");
    let server = {
        let log = log.clone();
        ScriptedServer::responding(move |request| {
            let answered = request.body["messages"].as_array().is_some_and(|m| m.len() > 1);
            if answered {
                return AnthropicReply::new().text("done").build();
            }
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
            while !std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("✓ text_stats.wasm compiled")
            {
                assert!(std::time::Instant::now() < deadline, "text_stats never compiled");
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            AnthropicReply::new()
                .tool_use("t1", "read_file", json!({"path": "/workspace/notes.txt"}))
                .build()
        })
        .await
    };
    let model = env.model_args(&server);
    let tools_dir = tools.display().to_string();
    let status = env
        .command(&args(
            &model,
            &["run", "--tools-dir", &tools_dir, "what do the notes say?"],
        ))
        // Every uncached component, however small, compiles in the background.
        .env("BORAM_BACKGROUND_COMPILE_MB", "0")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .status()
        .await
        .expect("run");
    let stderr = std::fs::read_to_string(&log).expect("log");
    assert!(status.success(), "{status:?} {stderr}");
    assert!(
        stderr.contains("compiling text_stats.wasm (0.") && stderr.contains("MB) in the background"),
        "{stderr}"
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "{stderr}");
    let (first, second) = (offered(&requests[0]), offered(&requests[1]));
    assert!(first.contains(&"read_file".to_string()), "{first:?}");
    assert!(!first.contains(&"text_stats".to_string()), "not ready yet: {first:?}");
    assert!(second.contains(&"text_stats".to_string()), "ready now: {second:?}");
    // The next start finds it cached: nothing compiles in the background.
    let again = env
        .command(&["tool", "list", "--tools-dir", &tools.display().to_string()])
        .env("BORAM_BACKGROUND_COMPILE_MB", "0")
        .output()
        .await
        .expect("tool list");
    assert!(!text(&again.stderr).contains("compiling"), "{}", text(&again.stderr));
}
