//! A single `boram serve` on its embedded store (no database) killed with
//! SIGKILL in the middle of a run's tool call, then started again on the
//! same data directory: the queued and interrupted runs are not lost. The
//! restarted service resumes the run from its JSONL transcript once the
//! dead process's lease has expired: the model is not asked again for the
//! step it had answered, the started call is reported as interrupted
//! ("it may have run") and not run again, and the run ends with one `done`.
//! Stopped with SIGTERM, a run outlasting the grace period is given back
//! to the queue and the next start finishes it (without waiting for a lease).

use super::cluster_env::*;
use scripted_llm::{RecordedRequest, ScriptedServer};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const STORE: &str = "[store]\nlease_secs = 1.0\n";

/// The transcript `<id>.jsonl` somewhere under `data`.
fn transcript_path(data: &Path, id: &str) -> Option<PathBuf> {
    let name = format!("{id}.jsonl");
    let mut dirs = vec![data.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).ok()?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.file_name().is_some_and(|n| n == name.as_str()) {
                return Some(path);
            }
        }
    }
    None
}

/// Whether run `id`'s transcript under `data` has a call that started.
fn call_started(data: &Path, id: &str) -> bool {
    transcript_path(data, id).is_some_and(|p| records(&p).iter().any(|r| r["type"] == "tool_started"))
}

fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_service_resumes_its_runs_after_a_restart() {
    let model = ScriptedServer::responding(model_reply).await;
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("solo/data");
    let first = start_replica_with(root.path(), "solo", &model, None, "", STORE);
    let http = client();
    let base = format!("http://{}", first.addr);

    let slow = submit(&http, &base, "slow one").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !call_started(&data, &slow) {
        assert!(
            Instant::now() < deadline,
            "the slow run's tool never started:\n{}",
            first.process.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let transcript = transcript_path(&data, &slow).expect("the transcript");
    // SIGKILL: no shutdown code runs, the lease stays with the dead process.
    let mut killed = first.process;
    killed.child.kill().expect("kill -9");
    killed.child.wait().expect("reap");
    assert!(data.join("runs.db").is_file(), "the queue is in the data directory");

    let second = start_replica_with(root.path(), "solo", &model, None, "", STORE);
    let base = format!("http://{}", second.addr);
    let quick = submit(&http, &base, "quick after").await;
    let run = wait_for_end(&http, &base, &slow, None, &second.process).await;
    assert_eq!(run["status"], "answered", "{run}");
    assert_eq!(run["answer"], "finished slow one");
    assert_eq!(run["attempts"], 2, "{run}");
    let after = wait_for_end(&http, &base, &quick, None, &second.process).await;
    assert_eq!(
        (after["status"].as_str(), after["attempts"].as_u64()),
        (Some("answered"), Some(1))
    );

    let requests = model.requests();
    let asked: Vec<&RecordedRequest> = requests.iter().filter(|r| prompt_of(r) == "slow one").collect();
    assert_eq!(asked.len(), 2, "one request per step, the answered one not asked again");
    assert!(last_tool_result(asked[0]).is_none());
    let result = last_tool_result(asked[1]).expect("the second request carries the call's result");
    let content = result["content"].to_string();
    assert!(
        content.contains("interrupted") && content.contains("may have run"),
        "{content}"
    );
    assert_eq!(result["is_error"], true);

    // The transcript file: one start, the call started once and never
    // finished (it was not run again), one end.
    let written = records(&transcript);
    let count = |kind: &str| written.iter().filter(|r| r["type"] == kind).count();
    assert_eq!(written[0]["type"], "started");
    assert_eq!(
        (
            count("started"),
            count("tool_started"),
            count("tool_finished"),
            count("turn_ended")
        ),
        (1, 1, 0, 1),
        "{written:#?}"
    );

    // Its events: the first process's, a `resumed`, exactly one `done`.
    let events = events_of(&http, &base, &slow).await;
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "tool_started").count(), 1, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "resumed").count(), 1, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "done").count(), 1, "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"done"));
    assert_eq!(events.last().expect("done")["text"], "finished slow one");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_still_going_at_shutdown_is_given_back_and_finished_by_the_next_start() {
    let model = ScriptedServer::responding(model_reply).await;
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("solo/data");
    // A long lease: the next start must take the run because it was given
    // back, not because its lease ran out.
    let config = "[store]\nlease_secs = 600.0\n";
    let first = start_replica_with(root.path(), "solo", &model, None, "", config);
    let http = client();
    let slower = submit(&http, &format!("http://{}", first.addr), "slower one").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !call_started(&data, &slower) {
        assert!(
            Instant::now() < deadline,
            "the call never started:\n{}",
            first.process.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut stopping = first.process;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &stopping.child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    // The 25 s call outlasts the 10 s grace: the run goes back to the queue.
    let exit = stopping.child.wait().expect("wait");
    assert!(exit.success(), "{exit:?}\n{}", stopping.log());
    assert!(
        stopping.log().contains("gave the run back to the queue"),
        "{}",
        stopping.log()
    );

    let second = start_replica_with(root.path(), "solo", &model, None, "", config);
    let base = format!("http://{}", second.addr);
    let run = wait_for_end(&http, &base, &slower, None, &second.process).await;
    assert_eq!(run["status"], "answered", "{run}");
    assert_eq!(run["attempts"], 2, "{run}");
    let asked: Vec<RecordedRequest> = model
        .requests()
        .into_iter()
        .filter(|r| prompt_of(r) == "slower one")
        .collect();
    assert_eq!(asked.len(), 2, "the model step was not repeated");
    let content = last_tool_result(&asked[1]).expect("the call's result")["content"].to_string();
    assert!(
        content.contains("cancelled before it finished") && content.contains("may have run"),
        "{content}"
    );
}

#[test]
fn a_damaged_run_queue_stops_the_start_with_the_fix() {
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    std::fs::create_dir_all(root.path().join("tools")).expect("tools dir");
    std::fs::copy(
        PathBuf::from(env!("BORAM_FIXTURES_DIR")).join("hostile.wasm"),
        root.path().join("tools/hostile.wasm"),
    )
    .expect("copy tool");
    std::fs::write(root.path().join("policy.toml"), POLICY).expect("policy");
    // Cut mid-write and overwritten by something else: not a database.
    std::fs::write(
        data.join("runs.db"),
        b"\xef\xbb\xbfSQLite format 2\r\n\xff\xfe\x00garbage",
    )
    .expect("garbage");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_boram"))
        .args(["serve", "--addr", "127.0.0.1:0", "--policy"])
        .arg(root.path().join("policy.toml"))
        .arg("--tools-dir")
        .arg(root.path().join("tools"))
        .arg("--data-dir")
        .arg(&data)
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("OPENAI_API_KEY")
        .env_remove("BORAM_DATABASE_URL")
        .env_remove("BORAM_SERVE_TOKEN")
        .output()
        .expect("run boram serve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let runs_db = data.join("runs.db");
    assert!(
        stderr.contains(&format!(
            "cannot open the run queue: the database refused the request: {}",
            runs_db.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "it is not a SQLite database (damaged, or another file): move it aside to start with an empty run queue (mv {0} {0}.damaged)",
            runs_db.display()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("listening on"), "it did not start: {stderr}");
}

/// The local user's schedules file, as the service keeps it.
fn schedules(data: &Path) -> Vec<Value> {
    std::fs::read_to_string(data.join("schedules.json"))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scheduled_run_cut_by_a_kill_is_resumed_and_its_schedule_records_the_end() {
    let model = ScriptedServer::responding(model_reply).await;
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("solo/data");
    std::fs::create_dir_all(&data).expect("data dir");
    // Its one slot (New Year 2026) has passed: due at once, then not for a year.
    let schedule = serde_json::json!([{
        "name": "yearly", "cron": "0 0 1 1 *", "profile": null, "task": "slow scheduled",
        "created": "2025-12-31T00:00:00Z", "last_run": null, "last_session": null, "last_status": null, "skipped": 0
    }]);
    std::fs::write(data.join("schedules.json"), schedule.to_string()).expect("schedules");
    let first = start_replica_with(root.path(), "solo", &model, None, "", STORE);
    let deadline = Instant::now() + Duration::from_secs(60);
    let run = loop {
        let listed = schedules(&data);
        if let Some(run) = listed[0]["last_session"].as_str()
            && call_started(&data, run)
        {
            assert_eq!(listed[0]["last_status"], "running");
            break run.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "the scheduled run's call never started:\n{}",
            first.process.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut killed = first.process;
    killed.child.kill().expect("kill -9");
    killed.child.wait().expect("reap");

    let second = start_replica_with(root.path(), "solo", &model, None, "", STORE);
    let deadline = Instant::now() + Duration::from_secs(60);
    while schedules(&data)[0]["last_status"] != "answered" {
        assert!(
            Instant::now() < deadline,
            "the schedule still says {:?}:\n{}",
            schedules(&data)[0]["last_status"],
            second.process.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let listed = schedules(&data);
    assert_eq!(listed[0]["last_session"], run.as_str(), "the same run, resumed");
    assert_eq!(listed[0]["skipped"], 0);
    let base = format!("http://{}", second.addr);
    let resumed = run_of(&client(), &base, &run).await;
    assert_eq!(
        (resumed["status"].as_str(), resumed["attempts"].as_u64()),
        (Some("answered"), Some(2))
    );
    // One step before the kill, one after the resume: no second run of the slot.
    let asked = model
        .requests()
        .iter()
        .filter(|r| prompt_of(r) == "slow scheduled")
        .count();
    assert_eq!(asked, 2);
}
