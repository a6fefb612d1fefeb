//! Cluster benchmark (issue 16): the same work on the embedded store, on
//! PostgreSQL with one replica, and on three replicas behind HAProxy, in
//! one run; plus what the store adds to each journalled step and how long
//! a killed replica's run takes to continue elsewhere.
//!
//! `cargo bench -p boram-host --bench cluster` needs Debian's `postgresql`
//! and `haproxy` (as the tests do; `.ci/run` installs them) and prints a
//! Markdown table:
//! - tool calls/s: `POST /v1/tools/echo/call`, 16 connections (tool calls
//!   do not touch the store: this row shows what the balancer and the
//!   replicas sharing two cores cost);
//! - agent runs/s: 120 runs of two model steps and one tool call each
//!   (scripted model on 127.0.0.1), submitted by 8 clients, until all ended
//!   (32 workers a replica, so the worker limit does not hold runs back);
//! - per journalled step: one record appended and made durable (the
//!   transcript file on the embedded store: handed to its writer thread
//!   and waited for, one `write` that survives a crash of the process but
//!   is not fsynced; the fenced writer task on
//!   PostgreSQL, committed with `fsync = on`), p50 and p99 of 2000 in a row;
//! - kill -9 of the replica holding a run → the run continuing on another
//!   (its `resumed` event), with `lease_secs = 2`.

#[path = "../tests/suite/cluster_env.rs"]
#[allow(dead_code)]
mod cluster_env;
#[path = "../tests/suite/pg.rs"]
#[allow(dead_code)]
mod pg;

use boram_host::audit::JsonlFile;
use boram_host::store::appender::Appender;
use boram_host::store::postgres::PgStore;
use boram_host::store::runs::{Fence, NewRun, RunStore as _, Table};
use cluster_env::{Replica, client, model_reply, start_haproxy, start_replica_with};
use scripted_llm::ScriptedServer;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOOL_CALLS: usize = 4000;
const CONNECTIONS: usize = 16;
const RUNS: usize = 120;
const SUBMITTERS: usize = 8;
const STEPS: usize = 2000;
/// Enough workers that no replica holds runs back (the embedded store runs
/// every run at once): the rows compare the stores, not the worker limits.
const STORE: &str = "[store]\nlease_secs = 2.0\nworkers = 32\n";

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    rt.block_on(run());
}

async fn run() {
    let pg = pg::TestPostgres::start_durable();
    let model = ScriptedServer::responding(model_reply).await;
    let root = tempfile::tempdir().expect("tempdir");
    let http = client();

    let mut rows = Vec::new();
    {
        let embedded = start_replica_with(root.path(), "embedded", &model, None, "", "");
        let base = format!("http://{}", embedded.addr);
        rows.push(("embedded store, 1 process", measure(&http, &base).await));
    }
    {
        let database = pg.database("one");
        let replica = start_replica_with(root.path(), "one", &model, Some(&database), STORE, "");
        let base = format!("http://{}", replica.addr);
        rows.push(("PostgreSQL, 1 replica", measure(&http, &base).await));
    }
    let database = pg.database("three");
    let replicas: Vec<Replica> = ["r0", "r1", "r2"]
        .iter()
        .map(|name| start_replica_with(root.path(), name, &model, Some(&database), STORE, ""))
        .collect();
    let (_haproxy, base) = start_haproxy(root.path(), &replicas);
    rows.push(("PostgreSQL, 3 replicas behind HAProxy", measure(&http, &base).await));

    println!("| store | tool calls/s ({CONNECTIONS} connections) | agent runs/s ({RUNS} runs, {SUBMITTERS} clients) |");
    println!("|---|---|---|");
    let (base_calls, base_runs) = rows[0].1;
    for (name, (calls, runs)) in &rows {
        println!(
            "| {name} | {calls:.0} ({:.2}x) | {runs:.1} ({:.2}x) |",
            calls / base_calls,
            runs / base_runs
        );
    }

    let (file_p50, file_p99) = file_step_latency(root.path()).await;
    let (pg_p50, pg_p99) = pg_step_latency(&pg.database("steps")).await;
    println!();
    println!("| one journalled step, appended and durable | p50 | p99 |");
    println!("|---|---|---|");
    println!("| transcript file (embedded) | {file_p50:.1} µs | {file_p99:.1} µs |");
    println!("| PostgreSQL writer task, fenced by the lease | {pg_p50:.1} µs | {pg_p99:.1} µs |");

    let takeover = kill_and_resume(&http, &base, &replicas, &database, &pg).await;
    println!();
    println!("kill -9 of the replica holding a run → the run continuing on another: {takeover:.2} s (lease_secs = 2)");
}

/// (tool calls/s, agent runs/s) against `base`.
async fn measure(http: &reqwest::Client, base: &str) -> (f64, f64) {
    // Warm up: the first call instantiates, the first run opens the store.
    call_tools(http, base, 100).await;
    run_agents(http, base, 8).await;
    let calls = call_tools(http, base, TOOL_CALLS).await;
    let runs = run_agents(http, base, RUNS).await;
    (calls, runs)
}

async fn call_tools(http: &reqwest::Client, base: &str, total: usize) -> f64 {
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let (http, url) = (http.clone(), format!("{base}/v1/tools/echo/call"));
            tokio::spawn(async move {
                for _ in 0..total / CONNECTIONS {
                    let response = http.post(&url).json(&json!({"text": "hi"})).send().await.expect("call");
                    assert_eq!(response.status(), 200);
                    response.bytes().await.expect("body");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("join");
    }
    (total / CONNECTIONS * CONNECTIONS) as f64 / started.elapsed().as_secs_f64()
}

async fn run_agents(http: &reqwest::Client, base: &str, total: usize) -> f64 {
    let started = Instant::now();
    let tasks: Vec<_> = (0..SUBMITTERS)
        .map(|s| {
            let (http, base) = (http.clone(), base.to_string());
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for n in (s..total).step_by(SUBMITTERS) {
                    ids.push(cluster_env::submit(&http, &base, &format!("quick {n}")).await);
                }
                ids
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.extend(task.await.expect("join"));
    }
    for id in &ids {
        loop {
            let run = cluster_env::run_of(http, base, id).await;
            match run["status"].as_str() {
                Some("queued" | "running") => tokio::time::sleep(Duration::from_millis(20)).await,
                Some("answered") => break,
                other => panic!("run {id} ended {other:?}: {run}"),
            }
        }
    }
    total as f64 / started.elapsed().as_secs_f64()
}

fn percentiles(mut micros: Vec<f64>) -> (f64, f64) {
    micros.sort_by(f64::total_cmp);
    let at = |q: f64| micros[((micros.len() as f64 * q) as usize).min(micros.len() - 1)];
    (at(0.50), at(0.99))
}

/// One transcript-sized record appended to a JSONL transcript and synced
/// (handed to the file's writer thread, then waited for), as the agent
/// does before a tool call and before a model request.
async fn file_step_latency(root: &std::path::Path) -> (f64, f64) {
    let file = JsonlFile::open_exclusive(&root.join("steps.jsonl")).expect("open");
    let record = step_record();
    let mut micros = Vec::with_capacity(STEPS);
    for _ in 0..STEPS {
        let started = Instant::now();
        file.append_flushed(&record).await.expect("append");
        micros.push(started.elapsed().as_secs_f64() * 1e6);
    }
    percentiles(micros)
}

/// The same record through the PostgreSQL writer, each one synced (the
/// agent syncs before a tool call and before a model request).
async fn pg_step_latency(database: &str) -> (f64, f64) {
    let store = Arc::new(PgStore::connect(database).await.expect("connect"));
    let run = NewRun {
        id: "bench-run".into(),
        user: "local".into(),
        profile: None,
        prompt: "bench".into(),
        provider: "anthropic".into(),
        model: "claude-sonnet-4-5".into(),
        dedupe_key: None,
    };
    store.submit(&run).await.expect("submit");
    let claimed = store
        .claim("bench", Duration::from_secs(600))
        .await
        .expect("claim")
        .expect("the run");
    let fence = Fence {
        run: claimed.id.clone(),
        epoch: claimed.epoch,
    };
    let journal = Appender::spawn(store.clone(), Table::SessionRecords, claimed.session, Some(fence), 0);
    let record = serde_json::to_value(step_record()).expect("json");
    let mut micros = Vec::with_capacity(STEPS);
    for _ in 0..STEPS {
        let started = Instant::now();
        journal.append(record.clone()).expect("append");
        journal.sync().await.expect("sync");
        micros.push(started.elapsed().as_secs_f64() * 1e6);
    }
    percentiles(micros)
}

fn step_record() -> Value {
    json!({
        "type": "tool_finished", "time": "2026-12-02T06:00:00.000Z", "id": "toolu_01",
        "tool": "read_file", "content": "Meeting moved to Thursday.\n".repeat(8), "is_error": false
    })
}

/// Seconds from kill -9 of the replica holding a slow run to its `resumed` event.
async fn kill_and_resume(
    http: &reqwest::Client,
    base: &str,
    replicas: &[Replica],
    database: &str,
    pg: &pg::TestPostgres,
) -> f64 {
    let store = PgStore::connect(database).await.expect("connect");
    let id = cluster_env::submit(http, base, "slow bench").await;
    let name = database.rsplit('/').next().expect("database name");
    let started_sql =
        format!("SELECT count(*) FROM run_events WHERE run_id = '{id}' AND event->>'type' = 'tool_started'");
    while pg.psql(name, &started_sql) != "1" {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let holder = cluster_env::run_of(http, base, &id).await["replica"]
        .as_str()
        .expect("holder")
        .to_string();
    let replica = replicas.iter().find(|r| r.name == holder).expect("a replica");
    let pid = replica.process.child.id();
    let killed = Instant::now();
    std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill -9");
    loop {
        let events = store.events_after(&id, -1, 10_000).await.expect("events");
        if events.iter().any(|(_, e)| e["type"] == "resumed") {
            return killed.elapsed().as_secs_f64();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
