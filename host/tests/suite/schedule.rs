//! Schedules from the command line (add, list, run-now, remove) and run
//! by `boram serve`: a schedule whose slot passed while the service was
//! down runs once at start, as a normal run with a session (the
//! scheduler's rules themselves are unit-tested with an injected clock).

use super::output_text;
use scripted_llm::ScriptedServer;
use scripted_llm::anthropic::AnthropicReply;
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn boram(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_boram"))
        .args(args)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--tools-dir")
        .arg(super::tools_dir())
        .env_remove("ANTHROPIC_API_KEY")
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .stdin(Stdio::null())
        .output()
        .expect("run boram")
}

#[tokio::test(flavor = "multi_thread")]
async fn add_list_run_now_and_remove() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = boram(
        dir.path(),
        &[
            "schedule",
            "add",
            "weekly_digest",
            "--cron",
            "0 8 * * 1",
            "--profile",
            "research",
            "summarise",
            "the",
            "week",
        ],
    );
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(output_text(&out).contains("next run"), "{}", output_text(&out));
    let bad = boram(dir.path(), &["schedule", "add", "x", "--cron", "0 8 * *", "task"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(output_text(&bad).contains("five-field"), "{}", output_text(&bad));
    let dup = boram(
        dir.path(),
        &["schedule", "add", "weekly_digest", "--cron", "* * * * *", "task"],
    );
    assert_eq!(dup.status.code(), Some(2));

    let server = ScriptedServer::start(vec![AnthropicReply::new().text("Digest ready.").usage(10, 3).build()]).await;
    let url = server.url();
    let out = tokio::task::spawn_blocking({
        let dir = dir.path().to_path_buf();
        move || {
            Command::new(env!("CARGO_BIN_EXE_boram"))
                .args([
                    "schedule",
                    "run-now",
                    "weekly_digest",
                    "--provider",
                    "anthropic",
                    "--base-url",
                    &url,
                ])
                .arg("--data-dir")
                .arg(dir.join("data"))
                .arg("--tools-dir")
                .arg(super::tools_dir())
                .env("ANTHROPIC_API_KEY", "k")
                .env("XDG_CONFIG_HOME", dir.join("config"))
                .stdin(Stdio::null())
                .output()
                .expect("run-now")
        }
    })
    .await
    .expect("join");
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Digest ready."),
        "{}",
        output_text(&out)
    );
    // It ran as the research profile, with the schedule's task.
    let body = &server.requests()[0].body;
    assert!(
        body["system"][0]["text"]
            .as_str()
            .is_some_and(|s| s.starts_with("You are a research assistant"))
    );
    assert_eq!(body["messages"][0]["content"][0]["text"], "summarise the week");

    let listed = boram(dir.path(), &["schedule", "list", "--json"]);
    let schedules: Value = serde_json::from_slice(&listed.stdout).expect("json");
    assert_eq!(schedules[0]["last_status"], "answered");
    let session = schedules[0]["last_session"].as_str().expect("session");
    assert!(dir.path().join(format!("data/sessions/{session}.jsonl")).exists());
    // The id it printed is one `sessions list` shows and `chat --resume` finds (issue 17).
    let listed = boram(dir.path(), &["sessions", "list", "--json"]);
    let sessions: Vec<Value> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert!(
        sessions.iter().any(|s| s["id"] == session && s["user"] == "local"),
        "{sessions:?}"
    );
    server.push(AnthropicReply::new().text("Resumed the digest.").build());
    let url = server.url();
    let resumed = Command::new(env!("CARGO_BIN_EXE_boram"))
        .args([
            "chat",
            "--resume",
            session,
            "--provider",
            "anthropic",
            "--base-url",
            &url,
        ])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--tools-dir")
        .arg(super::tools_dir())
        .env("ANTHROPIC_API_KEY", "k")
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child.stdin.take().expect("stdin").write_all(b"and now?\n")?;
            child.wait_with_output()
        })
        .expect("resume");
    assert!(resumed.status.success(), "{}", output_text(&resumed));
    assert!(String::from_utf8_lossy(&resumed.stdout).contains("Resumed the digest."));

    assert!(
        boram(dir.path(), &["schedule", "remove", "weekly_digest"])
            .status
            .success()
    );
    assert_eq!(
        boram(dir.path(), &["schedule", "remove", "weekly_digest"])
            .status
            .code(),
        Some(2)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_runs_a_schedule_missed_while_it_was_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let user_dir = dir.path().join("data");
    std::fs::create_dir_all(&user_dir).expect("user dir");
    // Every minute, last run ten minutes ago: ten slots or so missed.
    let ten_minutes_ago = (chrono::Utc::now() - chrono::Duration::minutes(10)).to_rfc3339();
    std::fs::write(
        user_dir.join("schedules.json"),
        json!([{
            "name": "minutely", "cron": "* * * * *", "profile": "cheap", "task": "check the notes",
            "created": ten_minutes_ago, "last_run": ten_minutes_ago, "last_session": null, "last_status": null
        }])
        .to_string(),
    )
    .expect("schedules");
    std::fs::write(dir.path().join("policy.toml"), "version = 1\n").expect("policy");
    // The schedule's profile talks to a model of its own.
    std::fs::write(
        dir.path().join("config.toml"),
        "[profiles.cheap]\ndescription = \"routine checks\"\nmodel = \"claude-haiku-4-5\"\n",
    )
    .expect("config");
    let server = ScriptedServer::start(vec![AnthropicReply::new().text("All quiet.").build()]).await;
    let log = dir.path().join("serve.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_boram"))
        .args([
            "serve",
            "-v",
            "--log-json",
            "--addr",
            "127.0.0.1:0",
            "--provider",
            "anthropic",
            "--base-url",
            &server.url(),
        ])
        .arg("--policy")
        .arg(dir.path().join("policy.toml"))
        .arg("--config")
        .arg(dir.path().join("config.toml"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--tools-dir")
        .arg(super::tools_dir())
        .env("ANTHROPIC_API_KEY", "k")
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("serve");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let schedules = loop {
        let text = std::fs::read_to_string(user_dir.join("schedules.json")).unwrap_or_default();
        if let Ok(list) = serde_json::from_str::<Value>(&text)
            && list[0]["last_status"] == "answered"
        {
            break list;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the missed schedule did not run:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    // One catch-up run for all the missed slots, a normal session.
    assert_eq!(server.requests().len(), 1);
    let session = schedules[0]["last_session"].as_str().expect("session");
    // The profile's model was asked, and the transcript says so.
    assert_eq!(server.requests()[0].body["model"], "claude-haiku-4-5");
    let transcript =
        std::fs::read_to_string(user_dir.join(format!("sessions/{session}.jsonl"))).expect("the run's transcript");
    let started: Value = serde_json::from_str(transcript.lines().next().expect("a first record")).expect("JSON");
    assert_eq!(started["type"], "started", "{started}");
    assert_eq!(started["model"], "claude-haiku-4-5", "{started}");
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    // Ten or eleven slots, depending on where in its minute the test started.
    let slots: u64 = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["fields"]["message"] == "scheduled run started")
        .and_then(|l| l["fields"]["slots"].as_u64())
        .unwrap_or_else(|| panic!("no start line:\n{log}"));
    assert!((10..=11).contains(&slots), "{slots} slots:\n{log}");
}
