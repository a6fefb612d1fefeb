//! Cluster mode for real: three `boram serve` replicas on one PostgreSQL
//! (a throwaway cluster from Debian's packages) behind HAProxy (Debian's
//! package, on 127.0.0.1), a scripted Anthropic server answering every
//! agent by what its request says.
//!
//! - 30 runs submitted through the balancer all finish, each executed once
//!   (two model requests per run, no more).
//! - kill -9 of the replica holding a run in the middle of a tool call: the
//!   run finishes on another replica; the model is not asked again for the
//!   step it had answered, and it is told the call was interrupted.
//! - PostgreSQL stopped: runs are refused with 503 and the reason; started
//!   again: the service takes runs again, without a restart.
//! - Every replica's audit and usage lines are copied into `log_lines`,
//!   exactly its files' lines, also those written while the database was away.

use super::cluster_env::*;
use super::pg::TestPostgres;
use scripted_llm::{RecordedRequest, ScriptedServer};
use serde_json::{Value, json};
use std::process::Command;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn three_replicas_run_every_run_once_and_resume_a_killed_replicas_run() {
    let pg = TestPostgres::start();
    let database = pg.database("cluster");
    // A schedule whose one slot (New Year 2026) passed: due at once, and
    // then not for a year. Three replicas tick every 300 ms.
    boram_host::store::postgres::PgStore::connect(&database)
        .await
        .expect("migrate");
    let schedule = json!({
        "name": "yearly", "cron": "0 0 1 1 *", "profile": null, "task": "quick scheduled",
        "created": "2025-12-31T00:00:00Z", "last_run": null, "last_session": null, "last_status": null, "skipped": 0
    });
    pg.psql(
        "cluster",
        &format!("INSERT INTO schedules (user_name, name, schedule) VALUES ('local', 'yearly', '{schedule}')"),
    );
    let model = ScriptedServer::responding(model_reply).await;
    let root = tempfile::tempdir().expect("tempdir");
    let mut replicas: Vec<Replica> = ["r0", "r1", "r2"]
        .iter()
        .map(|name| start_replica(root.path(), name, &model, &database))
        .collect();
    let (_haproxy, base) = start_haproxy(root.path(), &replicas);
    let http = client();

    // The schedule fires once (its run ends before anything is killed).
    let deadline = Instant::now() + Duration::from_secs(60);
    let scheduled = loop {
        let listed: Value = http
            .get(format!("{base}/v1/schedules"))
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("json");
        let yearly = &listed["schedules"][0];
        if yearly["last_status"] == "answered" {
            break yearly["last_session"].as_str().expect("its run").to_string();
        }
        assert!(Instant::now() < deadline, "the schedule did not run: {listed}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // A run whose tool call takes 10 s; kill -9 its replica mid-call.
    let slow = submit(&http, &base, "slow one").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let sql = format!("SELECT count(*) FROM run_events WHERE run_id = '{slow}' AND event->>'type' = 'tool_started'");
    while pg.psql("cluster", &sql) != "1" {
        assert!(Instant::now() < deadline, "the slow run's tool never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let holder = run_of(&http, &base, &slow).await["replica"]
        .as_str()
        .expect("a replica holds it")
        .to_string();
    let index = replicas.iter().position(|r| r.name == holder).expect("a known replica");
    let killed = replicas.remove(index);
    let killed_at = Instant::now();
    // SIGKILL: no shutdown code runs.
    let mut killed_process = killed.process;
    killed_process.child.kill().expect("kill -9");
    killed_process.child.wait().expect("reap");

    let mut quick = Vec::new();
    for n in 0..30 {
        quick.push(submit(&http, &base, &format!("quick {n}")).await);
    }

    // Everything ends.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut resumed_after = None;
    loop {
        let runs: Value = http
            .get(format!("{base}/v1/runs"))
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        let runs = runs["runs"].as_array().cloned().unwrap_or_default();
        let slow_status = runs
            .iter()
            .find(|r| r["id"] == slow.as_str())
            .map(|r| r["status"].clone());
        if resumed_after.is_none() && slow_status.as_ref().is_some_and(|s| s != "running" && s != "queued") {
            resumed_after = Some(killed_at.elapsed());
        }
        let open = runs
            .iter()
            .filter(|r| r["status"] == "queued" || r["status"] == "running")
            .count();
        if runs.len() == 32 && open == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "runs did not finish: {open} open of {}; logs:\n{}",
            runs.len(),
            replicas
                .iter()
                .map(|r| r.process.log())
                .collect::<Vec<_>>()
                .join("\n---\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("kill -9 → slow run finished elsewhere: {:?}", resumed_after);

    let requests = model.requests();
    // Dozens of ticks on three replicas later: still one scheduled run.
    assert_eq!(
        requests.iter().filter(|r| prompt_of(r) == "quick scheduled").count(),
        2,
        "the scheduled run ran once"
    );
    assert_eq!(run_of(&http, &base, &scheduled).await["attempts"], 1);
    assert_eq!(
        pg.psql("cluster", "SELECT count(*) FROM runs WHERE prompt = 'quick scheduled'"),
        "1"
    );
    let for_prompt =
        |prompt: &str| -> Vec<&RecordedRequest> { requests.iter().filter(|r| prompt_of(r) == prompt).collect() };
    // Each quick run ran once: one request for its step, one with its result.
    for (n, id) in quick.iter().enumerate() {
        let run = run_of(&http, &base, id).await;
        assert_eq!(run["status"], "answered", "{run}");
        assert_eq!(run["answer"], json!(format!("finished quick {n}")));
        assert_eq!(run["attempts"], 1, "{run}");
        assert_ne!(
            run["replica"],
            json!(holder),
            "the killed replica ran nothing after its death"
        );
        assert_eq!(for_prompt(&format!("quick {n}")).len(), 2, "quick {n} ran once");
    }

    // The slow run: finished on another replica, its model step not asked
    // again, its interrupted call reported as such and not run again.
    let run = run_of(&http, &base, &slow).await;
    assert_eq!(run["status"], "answered", "{run}");
    assert_eq!(run["attempts"], 2, "{run}");
    assert_ne!(run["replica"], json!(holder));
    let asked = for_prompt("slow one");
    assert_eq!(asked.len(), 2, "one request per step, none repeated");
    assert!(last_tool_result(asked[0]).is_none());
    // Exactly the conversation so far: the prompt, the recorded reply, the
    // call's result; nothing repeated.
    let shape: Vec<(String, Vec<String>)> = asked[1].body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            let blocks = m["content"].as_array().cloned().unwrap_or_default();
            let kinds = blocks
                .iter()
                .map(|b| b["type"].as_str().unwrap_or("?").to_string())
                .collect();
            (m["role"].as_str().unwrap_or("?").to_string(), kinds)
        })
        .collect();
    let expected = [
        ("user", vec!["text"]),
        ("assistant", vec!["tool_use"]),
        ("user", vec!["tool_result"]),
    ];
    let expected: Vec<(String, Vec<String>)> = expected
        .iter()
        .map(|(role, kinds)| (role.to_string(), kinds.iter().map(|k| k.to_string()).collect()))
        .collect();
    assert_eq!(shape, expected);
    let result = last_tool_result(asked[1]).expect("the second request carries the call's result");
    let content = result["content"].to_string();
    assert!(
        content.contains("interrupted") && content.contains("may have run"),
        "{content}"
    );
    assert_eq!(result["is_error"], true);
    let started = pg.psql(
        "cluster",
        &format!(
            "SELECT count(*) FROM session_records WHERE session_id = '{slow}' AND record->>'type' = 'tool_started'"
        ),
    );
    assert_eq!(started, "1", "the tool ran once, before the kill");

    // Its events, read through the balancer: the first attempt's, a
    // `resumed`, and exactly one `done` with the answer and the cost.
    let events = events_of(&http, &base, &slow).await;
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "done").count(), 1, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "resumed").count(), 1, "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"done"));
    let done = events.last().expect("done");
    assert_eq!(done["text"], "finished slow one");

    // Its transcript, exported from PostgreSQL as JSON Lines: one start,
    // the call started once and never finished, the interrupted result, the end.
    let transcript = http
        .get(format!("{base}/v1/sessions/{slow}/transcript"))
        .send()
        .await
        .expect("GET transcript")
        .text()
        .await
        .expect("text");
    let records: Vec<Value> = transcript
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let count = |kind: &str| records.iter().filter(|r| r["type"] == kind).count();
    assert_eq!(records[0]["type"], "started");
    assert_eq!(
        (count("started"), count("tool_started"), count("tool_finished")),
        (1, 1, 0)
    );
    assert_eq!(count("turn_ended"), 1);
    assert!(
        done["usage"]["input_tokens"].as_u64().unwrap_or(0) >= 30,
        "both steps counted: {done}"
    );
}

async fn wait_answered(http: &reqwest::Client, base: &str, id: &str, replica: &Replica) {
    let run = wait_for_end(http, base, id, None, &replica.process).await;
    assert_eq!(run["status"], "answered", "{run}\n{}", replica.process.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn with_postgres_down_runs_are_refused_with_503_and_taken_again_when_it_returns() {
    let pg = TestPostgres::start();
    let database = pg.database("outage");
    let model = ScriptedServer::responding(model_reply).await;
    let root = tempfile::tempdir().expect("tempdir");
    let replica = start_replica(root.path(), "solo", &model, &database);
    let base = format!("http://{}", replica.addr);
    let http = client();

    let before = submit(&http, &base, "quick before").await;
    wait_answered(&http, &base, &before, &replica).await;
    pg.stop();
    let response = http
        .post(format!("{base}/v1/runs"))
        .json(&json!({"prompt": "quick during"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.expect("JSON error body");
    let message = body["error"].as_str().unwrap_or_default();
    assert!(
        message.contains("cannot queue the run") && message.contains("unreachable"),
        "{body}"
    );
    let listed = http.get(format!("{base}/v1/runs")).send().await.expect("GET");
    assert_eq!(listed.status(), 503);

    pg.start_server();
    let after = submit(&http, &base, "quick after").await;
    wait_answered(&http, &base, &after, &replica).await;
    let prompts: Vec<String> = model.requests().iter().map(prompt_of).collect();
    assert!(
        !prompts.iter().any(|p| p == "quick during"),
        "the refused run never ran"
    );
    assert_eq!(prompts.iter().filter(|p| *p == "quick before").count(), 2, "ran once");
    assert_eq!(prompts.iter().filter(|p| *p == "quick after").count(), 2, "ran once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_note_saved_through_one_replica_is_found_through_another_and_users_stay_apart() {
    let pg = TestPostgres::start();
    let database = pg.database("memory");
    let model = ScriptedServer::responding(model_reply).await;
    let root = tempfile::tempdir().expect("tempdir");
    let users = alice_and_bob(root.path());
    let http = client();

    // Only replica a is up: it runs the save.
    let a = start_replica_with(root.path(), "a", &model, Some(&database), STORE, &users);
    let saved = ask_and_wait(&http, &a, "alice-token", "remember 프로젝트 deadline is March 1").await;
    assert_eq!(saved["replica"], "a");
    assert!(
        saved["answer"].as_str().unwrap_or_default().contains("saved"),
        "{saved}"
    );
    drop(a);

    // Only replica b is up: it finds alice's note, and bob finds nothing.
    let b = start_replica_with(root.path(), "b", &model, Some(&database), STORE, &users);
    let found = ask_and_wait(&http, &b, "alice-token", "recall deadline").await;
    assert_eq!(found["replica"], "b");
    assert!(
        found["answer"].as_str().unwrap_or_default().contains("March 1"),
        "{found}"
    );
    let other = ask_and_wait(&http, &b, "bob-token", "recall deadline").await;
    assert_eq!(other["status"], "answered", "{other}");
    assert!(
        !other["answer"].as_str().unwrap_or_default().contains("March"),
        "{other}"
    );
    // The dashboard's sessions come from the shared store: alice's two, newest first.
    let stats: Value = http
        .get(format!("http://{}/v1/stats", b.addr))
        .bearer_auth("alice-token")
        .send()
        .await
        .expect("GET stats")
        .json()
        .await
        .expect("json");
    let titles: Vec<&str> = stats["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .filter_map(|s| s["title"].as_str())
        .collect();
    assert_eq!(
        titles,
        ["recall deadline", "remember 프로젝트 deadline is March 1"],
        "{stats}"
    );
    // Nor can bob see alice's run.
    let peek = http
        .get(format!(
            "http://{}/v1/runs/{}",
            b.addr,
            found["id"].as_str().unwrap_or_default()
        ))
        .bearer_auth("bob-token")
        .send()
        .await
        .expect("GET");
    assert_eq!(peek.status(), 404);
}

/// Starts `prompt` on `replica` as the user of `token` and waits for its end.
async fn ask_and_wait(http: &reqwest::Client, replica: &Replica, token: &str, prompt: &str) -> Value {
    let base = format!("http://{}", replica.addr);
    let response = http
        .post(format!("{base}/v1/runs"))
        .bearer_auth(token)
        .json(&json!({"prompt": prompt}))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_string();
    wait_for_end(http, &base, &id, Some(token), &replica.process).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_shutting_down_gives_its_run_back_and_another_finishes_it() {
    let pg = TestPostgres::start();
    let database = pg.database("handover");
    let model = ScriptedServer::responding(model_reply).await;
    let root = tempfile::tempdir().expect("tempdir");
    let a = start_replica(root.path(), "a", &model, &database);
    let http = client();
    // Only a runs it; b starts once the call is under way.
    let id = submit(&http, &format!("http://{}", a.addr), "slower one").await;
    let sql = format!("SELECT count(*) FROM run_events WHERE run_id = '{id}' AND event->>'type' = 'tool_started'");
    let deadline = Instant::now() + Duration::from_secs(60);
    while pg.psql("handover", &sql) != "1" {
        assert!(
            Instant::now() < deadline,
            "the call never started:\n{}",
            a.process.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let b = start_replica(root.path(), "b", &model, &database);
    let status = Command::new("kill")
        .args(["-TERM", &a.process.child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    // a waits its grace period (10 s), then hands the run over; b resumes it.
    let base = format!("http://{}", b.addr);
    let deadline = Instant::now() + Duration::from_secs(60);
    let run = loop {
        let run = run_of(&http, &base, &id).await;
        if run["status"] == "answered" {
            break run;
        }
        assert!(
            Instant::now() < deadline,
            "{run}\n{}\n{}",
            a.process.log(),
            b.process.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(run["replica"], "b");
    assert_eq!(run["attempts"], 2);
    assert!(
        a.process.log().contains("gave the run back to the queue"),
        "{}",
        a.process.log()
    );
    let asked: Vec<RecordedRequest> = model
        .requests()
        .into_iter()
        .filter(|r| prompt_of(r) == "slower one")
        .collect();
    assert_eq!(asked.len(), 2, "the model step was not repeated");
    let result = last_tool_result(&asked[1]).expect("the call's result");
    assert!(result["content"].to_string().contains("may have run"), "{result}");
}

/// The JSON lines of a file (none when it does not exist).
fn json_lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// `replica`'s copies of `kind` lines in the database, in the order written.
fn copies(pg: &TestPostgres, database: &str, kind: &str, replica: &str) -> Vec<Value> {
    let rows = pg.psql(
        database,
        &format!(
            "SELECT coalesce(json_agg(line ORDER BY id), '[]') FROM log_lines WHERE kind = '{kind}' AND replica = '{replica}' AND user_name = 'local'"
        ),
    );
    serde_json::from_str::<Vec<Value>>(&rows).expect("json_agg")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_replicas_audit_and_usage_lines_reach_the_database_even_across_an_outage() {
    let pg = TestPostgres::start();
    let database = pg.database("logs");
    let model = ScriptedServer::responding(model_reply).await;
    let root = tempfile::tempdir().expect("tempdir");
    let replicas: Vec<Replica> = ["r0", "r1"]
        .iter()
        .map(|name| start_replica(root.path(), name, &model, &database))
        .collect();
    let http = client();
    for (n, replica) in replicas.iter().enumerate() {
        let base = format!("http://{}", replica.addr);
        let id = submit(&http, &base, &format!("quick {n}")).await;
        wait_answered(&http, &base, &id, replica).await;
    }
    // With the database away, a direct tool call is still audited on disk;
    // its copy reaches the database once it is back.
    pg.stop();
    let call = http
        .post(format!("http://{}/v1/tools/sleep/call", replicas[0].addr))
        .body(r#"{"ms": 5}"#)
        .send()
        .await
        .expect("call");
    assert_eq!(call.status(), 200, "{}", call.text().await.unwrap_or_default());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !replicas[0]
        .process
        .log()
        .contains("cannot copy audit/usage lines to the database; retrying")
    {
        assert!(Instant::now() < deadline, "{}", replicas[0].process.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pg.start_server();

    // Every line of each replica's files, and nothing else, is in the
    // database under its replica's name, in order.
    for replica in &replicas {
        let data = root.path().join(&replica.name).join("data");
        for (kind, file) in [("audit", "audit.jsonl"), ("usage", "usage.jsonl")] {
            let deadline = Instant::now() + Duration::from_secs(30);
            // Both sides are re-read: a replica's line can land in its file
            // a moment after its copy was sent (the writer thread).
            while copies(&pg, "logs", kind, &replica.name) != json_lines(&data.join(file)) {
                let local = json_lines(&data.join(file));
                assert!(
                    Instant::now() < deadline,
                    "{} {kind}: local {local:#?}\ncopies {:#?}\n{}",
                    replica.name,
                    copies(&pg, "logs", kind, &replica.name),
                    replica.process.log()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    // What each holds: r0's run and the direct call, r1's run; two model
    // calls per run with their cost.
    let events = |replica: &str| -> Vec<String> {
        copies(&pg, "logs", "audit", replica)
            .iter()
            .filter(|l| l["tool"] == "sleep")
            .map(|l| l["event"].as_str().unwrap_or("?").to_string())
            .collect()
    };
    assert_eq!(
        events("r0"),
        ["tool_call_started", "tool_call", "tool_call_started", "tool_call"]
    );
    assert_eq!(events("r1"), ["tool_call_started", "tool_call"]);
    for replica in ["r0", "r1"] {
        let usage = copies(&pg, "logs", "usage", replica);
        assert_eq!(usage.len(), 2, "{replica}: {usage:#?}");
        let tokens: Vec<u64> = usage.iter().filter_map(|u| u["input_tokens"].as_u64()).collect();
        assert_eq!(tokens, [10, 20], "{replica}: the step and the answer");
        assert!(usage.iter().all(|u| u["cost_usd"].as_f64() > Some(0.0)), "{usage:#?}");
    }
    // The README's two queries, as written there.
    let trail = pg.psql(
        "logs",
        "SELECT replica, line->>'tool', line->>'outcome' FROM log_lines WHERE kind = 'audit' ORDER BY id",
    );
    assert_eq!(trail.lines().filter(|l| *l == "r0|sleep|ok").count(), 2, "{trail}");
    assert_eq!(trail.lines().filter(|l| *l == "r1|sleep|ok").count(), 1, "{trail}");
    let spend = pg.psql(
        "logs",
        "SELECT user_name, sum((line->>'cost_usd')::float) FROM log_lines WHERE kind = 'usage' GROUP BY 1",
    );
    let (user, total) = spend.split_once('|').expect("one row");
    assert_eq!(user, "local");
    assert!((total.parse::<f64>().expect("a sum") - 0.00048).abs() < 1e-9, "{spend}");
}

/// `[[serve.users]]` alice and bob (tokens in `ALICE_TOKEN` and
/// `BOB_TOKEN`), each with a workspace made under `root`.
fn alice_and_bob(root: &std::path::Path) -> String {
    for user in ["alice", "bob"] {
        std::fs::create_dir_all(root.join(user)).expect("workspace");
    }
    format!(
        "[[serve.users]]\nname = \"alice\"\ntoken_env = \"ALICE_TOKEN\"\nworkspace = \"{0}/alice\"\n\
         [[serve.users]]\nname = \"bob\"\ntoken_env = \"BOB_TOKEN\"\nworkspace = \"{0}/bob\"\n",
        root.display()
    )
}

/// How run `prompt` of the user of `token` on `replica` was let call its
/// tool: the decision of its approval event (`allow (always)`, `deny (…)`).
async fn decision_in_run(http: &reqwest::Client, replica: &Replica, token: &str, prompt: &str) -> String {
    let run = ask_and_wait(http, replica, token, prompt).await;
    let base = format!("http://{}", replica.addr);
    let events = events_as(http, &base, run["id"].as_str().expect("id"), Some(token)).await;
    events
        .iter()
        .find(|e| e["type"] == "approval")
        .and_then(|e| e["decision"].as_str())
        .unwrap_or_else(|| panic!("no approval event in {events:?}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approval_given_through_one_replica_holds_on_another_for_that_user_only_issue_16() {
    let pg = TestPostgres::start();
    let database = pg.database("approvals");
    let model = ScriptedServer::responding(model_reply).await;
    let root = tempfile::tempdir().expect("tempdir");
    let users = alice_and_bob(root.path());
    // One policy path for every replica (as a deployment gives them): an
    // approval is bound to the grant under that policy file.
    let policy = root.path().join("policy.toml");
    std::fs::write(&policy, format!("{POLICY}[tools.sleep]\napproval = \"prompt\"\n")).expect("policy");
    let a = start_replica_on(root.path(), "a", &model, Some(&database), STORE, &users, Some(&policy));
    let b = start_replica_on(root.path(), "b", &model, Some(&database), STORE, &users, Some(&policy));
    let http = client();
    let approvals_on = |replica: &Replica, token: &str| {
        http.get(format!("http://{}/v1/approvals", replica.addr))
            .bearer_auth(token.to_string())
            .send()
    };

    assert_eq!(
        decision_in_run(&http, &b, "alice-token", "quick before").await,
        "deny (unattended)"
    );
    // Alice approves `sleep` through replica a…
    let created = http
        .post(format!("http://{}/v1/approvals", a.addr))
        .bearer_auth("alice-token")
        .json(&json!({"tool": "sleep"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.expect("json");
    let id = created["id"].as_str().expect("id").to_string();
    // … replica b lists it for her and not for bob, and her runs there use it.
    let listed: Value = approvals_on(&b, "alice-token")
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    assert_eq!(listed["approvals"][0]["id"], id.as_str(), "{listed}");
    assert_eq!(listed["approvals"][0]["current"], true, "{listed}");
    let bobs: Value = approvals_on(&b, "bob-token")
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    assert_eq!(bobs["approvals"], json!([]), "{bobs}");
    assert_eq!(
        decision_in_run(&http, &b, "alice-token", "quick after").await,
        "allow (always)"
    );
    assert_eq!(
        decision_in_run(&http, &b, "bob-token", "quick bob").await,
        "deny (unattended)"
    );
    // Bob cannot forget alice's answer; she can, through b, and a refuses again.
    let delete = |token: &str| {
        http.delete(format!("http://{}/v1/approvals/{id}", b.addr))
            .bearer_auth(token.to_string())
            .send()
    };
    assert_eq!(delete("bob-token").await.expect("DELETE").status(), 404);
    assert_eq!(delete("alice-token").await.expect("DELETE").status(), 204);
    assert_eq!(
        decision_in_run(&http, &a, "alice-token", "quick forgotten").await,
        "deny (unattended)"
    );
}
