//! The run store's contract, one suite over both backends: the embedded
//! store (`runs.db`, SQLite, in a temp data directory) and PostgreSQL (a
//! throwaway cluster from Debian's packages, [`super::pg`]). Exclusive
//! claims under many claimers, one run per dedupe key, lease expiry with
//! fencing of the old holder, journal order across batches, a second
//! writer refused. Then what only one backend has: PostgreSQL's
//! migrations under concurrent starts and an unreachable server; the
//! embedded store's queue surviving a reopen and refusing a newer schema.

use super::pg::TestPostgres;
use boram_host::store::StoreError;
use boram_host::store::appender::Appender;
use boram_host::store::embedded::EmbeddedRuns;
use boram_host::store::postgres::PgStore;
use boram_host::store::runs::{Fence, NewRun, Outcome, RunStore, Table};
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// A backend under test and what keeps it alive (its temp dir or server).
struct Backend {
    label: &'static str,
    store: Arc<dyn RunStore>,
    /// Another handle on the same state, as a second process would open it.
    reopen: Box<dyn Fn() -> Arc<dyn RunStore> + Send + Sync>,
    _keep: Box<dyn std::any::Any + Send + Sync>,
}

async fn backends(name: &str) -> Vec<Backend> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    let embedded: Arc<dyn RunStore> = Arc::new(EmbeddedRuns::open(&path).expect("open runs.db"));
    let pg = TestPostgres::start();
    let url = pg.database(name);
    let postgres = PgStore::connect(&url).await.expect("connect");
    let postgres_again = postgres.clone();
    vec![
        Backend {
            label: "embedded",
            store: embedded,
            reopen: Box::new(move || Arc::new(EmbeddedRuns::open(&path).expect("reopen runs.db"))),
            _keep: Box::new(dir),
        },
        Backend {
            label: "postgres",
            store: Arc::new(postgres),
            reopen: Box::new(move || Arc::new(postgres_again.clone())),
            _keep: Box::new(pg),
        },
    ]
}

fn new_run(n: usize) -> NewRun {
    NewRun {
        id: format!("run-{n:03}"),
        user: "alice".into(),
        profile: None,
        prompt: format!("task {n}"),
        provider: "anthropic".into(),
        model: "claude-sonnet-4-5".into(),
        dedupe_key: None,
    }
}

fn answered() -> Outcome {
    Outcome {
        status: "answered".into(),
        answer: Some("done".into()),
        error: None,
        done: json!({"type": "done"}),
        done_seq: 0,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_run_is_claimed_by_exactly_one_of_many_claimers() {
    for backend in backends("claims").await {
        let label = backend.label;
        for n in 0..40 {
            assert!(backend.store.submit(&new_run(n)).await.expect("submit"), "{label}");
        }
        // Half the claimers on their own handle (another connection, as
        // another process would have).
        let claimers: Vec<_> = (0..8)
            .map(|c| {
                let store = if c % 2 == 0 {
                    backend.store.clone()
                } else {
                    (backend.reopen)()
                };
                tokio::spawn(async move {
                    let mut mine = Vec::new();
                    while let Some(claimed) = store
                        .claim(&format!("replica-{c}"), Duration::from_secs(60))
                        .await
                        .expect("claim")
                    {
                        mine.push(claimed.id);
                    }
                    mine
                })
            })
            .collect();
        let mut all = Vec::new();
        for claimer in claimers {
            all.extend(claimer.await.expect("join"));
        }
        let distinct: HashSet<&String> = all.iter().collect();
        assert_eq!(all.len(), 40, "{label}: every run claimed once: {all:?}");
        assert_eq!(distinct.len(), 40, "{label}");
        let runs = backend.store.list("alice", 100).await.expect("list");
        assert_eq!(runs.len(), 40, "{label}");
        for run in &runs {
            assert_eq!((run.status.as_str(), run.attempts), ("running", 1), "{label}: {run:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scheduled_slot_queues_one_run_however_many_submit_it() {
    for backend in backends("dedupe").await {
        let label = backend.label;
        let submits: Vec<_> = (0..5)
            .map(|n| {
                let store = (backend.reopen)();
                tokio::spawn(async move {
                    let mut run = new_run(n);
                    run.dedupe_key = Some("schedule:alice:daily:2026-12-02T09:00Z".into());
                    store.submit(&run).await.expect("submit")
                })
            })
            .collect();
        let mut queued = 0;
        for submit in submits {
            queued += usize::from(submit.await.expect("join"));
        }
        assert_eq!(queued, 1, "{label}");
        let runs = backend.store.list("alice", 100).await.expect("list");
        assert_eq!(runs.len(), 1, "{label}: {runs:?}");
        assert_eq!(runs[0].status, "queued", "{label}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_lease_goes_to_another_holder_and_fences_the_old_one_off() {
    for backend in backends("lease").await {
        let label = backend.label;
        let store = backend.store.clone();
        store.submit(&new_run(1)).await.expect("submit");
        let lease = Duration::from_millis(600);
        let first = store.claim("a", lease).await.expect("claim").expect("a run");
        assert_eq!((first.attempts, first.epoch), (1, 1), "{label}");
        assert!(
            store.claim("b", lease).await.expect("claim").is_none(),
            "{label}: held by a"
        );
        let events_a = Appender::spawn(
            store.clone(),
            Table::RunEvents,
            first.id.clone(),
            Some(Fence {
                run: first.id.clone(),
                epoch: first.epoch,
            }),
            0,
        );
        events_a.append(json!({"step": "a-0"})).expect("append");
        events_a.sync().await.expect("a still holds the lease");

        tokio::time::sleep(lease + Duration::from_millis(300)).await;
        let second = (backend.reopen)()
            .claim("b", lease)
            .await
            .expect("claim")
            .expect("expired: claimable");
        assert_eq!(second.id, first.id, "{label}");
        assert_eq!((second.attempts, second.epoch), (2, 2), "{label}");
        assert!(
            !store.heartbeat(&first.id, first.epoch, lease).await.expect("heartbeat"),
            "{label}"
        );
        assert!(
            store
                .heartbeat(&second.id, second.epoch, lease)
                .await
                .expect("heartbeat"),
            "{label}"
        );

        // a was only slow: its next write is refused, and nothing of it lands.
        events_a.append(json!({"step": "a-1"})).expect("queued");
        let refused = events_a.sync().await.expect_err("fenced");
        assert!(
            refused.to_string().contains("no longer holds the run's lease"),
            "{label}: {refused}"
        );
        assert!(
            events_a.append(json!({"step": "a-2"})).is_err(),
            "{label}: the writer stopped for good"
        );
        let events = store.events_after(&first.id, -1, 100).await.expect("read");
        assert_eq!(events, vec![(0, json!({"step": "a-0"}))], "{label}");
        assert_eq!(store.next_event_seq(&first.id).await.expect("next"), 1, "{label}");

        assert!(
            !store.finish(&first.id, first.epoch, &answered()).await.expect("finish"),
            "{label}"
        );
        let mut done = answered();
        done.done_seq = 1;
        assert!(
            store.finish(&second.id, second.epoch, &done).await.expect("finish"),
            "{label}"
        );
        let run = store.get("alice", &first.id).await.expect("get").expect("the run");
        assert_eq!((run.status.as_str(), run.attempts), ("answered", 2), "{label}");
        assert_eq!(run.answer.as_deref(), Some("done"), "{label}");
        assert_eq!(
            store.events_after(&first.id, 0, 10).await.expect("read"),
            vec![(1, json!({"type": "done"}))],
            "{label}: the done event is written with the status"
        );
        assert!(
            store.get("bob", &first.id).await.expect("get").is_none(),
            "{label}: not bob's"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_released_run_is_claimed_again_at_once_with_a_new_epoch() {
    for backend in backends("release").await {
        let label = backend.label;
        let store = backend.store.clone();
        store.submit(&new_run(1)).await.expect("submit");
        let lease = Duration::from_secs(60);
        let first = store.claim("a", lease).await.expect("claim").expect("a run");
        store.release(&first.id, first.epoch).await.expect("release");
        let second = store
            .claim("b", lease)
            .await
            .expect("claim")
            .expect("released: claimable");
        assert_eq!((second.id.as_str(), second.epoch), (first.id.as_str(), 2), "{label}");
        assert!(
            !store.heartbeat(&first.id, first.epoch, lease).await.expect("heartbeat"),
            "{label}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_journal_keeps_its_order_across_batches_and_refuses_a_second_writer() {
    for backend in backends("journal").await {
        let label = backend.label;
        let store = backend.store.clone();
        store.submit(&new_run(1)).await.expect("submit");
        let events = Appender::spawn(store.clone(), Table::RunEvents, "run-001".into(), None, 0);
        for n in 0..2000 {
            events
                .append(json!({"type": "text_delta", "text": format!("{n}")}))
                .expect("append");
            if n % 500 == 0 {
                tokio::task::yield_now().await;
            }
        }
        events.sync().await.expect("sync");
        let read = store.events_after("run-001", -1, 5000).await.expect("read");
        assert_eq!(read.len(), 2000, "{label}");
        for (n, (seq, event)) in read.iter().enumerate() {
            assert_eq!(*seq, n as i64, "{label}");
            assert_eq!(event["text"], json!(format!("{n}")), "{label}");
        }
        // A second writer of the same steps (resuming without a lease, a
        // bug) fails instead of interleaving.
        let second = Appender::spawn((backend.reopen)(), Table::RunEvents, "run-001".into(), None, 1999);
        second
            .append(json!({"type": "text_delta", "text": "again"}))
            .expect("append");
        let refused = second.sync().await.expect_err("duplicate step");
        assert!(
            refused.to_string().contains("another process wrote the same step"),
            "{label}: {refused}"
        );
        assert_eq!(store.next_event_seq("run-001").await.expect("next"), 2000, "{label}");
        assert_eq!(
            store.events_after("run-001", 1998, 10).await.expect("read")[0].1["text"],
            json!("1999"),
            "{label}: the first writer's step stands"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn migrations_apply_once_when_replicas_start_together() {
    let pg = TestPostgres::start();
    let url = pg.database("migrate");
    let starts: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PgStore::connect(&url).await.map(|_| ()) })
        })
        .collect();
    for start in starts {
        start.await.expect("join").expect("connect and migrate");
    }
    // Each in order, once; every replica started (none tripped over another's CREATE TABLE).
    assert_eq!(
        pg.psql(
            "migrate",
            "SELECT string_agg(version || ':' || name, ',' ORDER BY version) FROM boram_migrations"
        ),
        "1:runs_and_sessions,2:schedules,3:notes,4:log_lines,5:approvals"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_database_is_reported_as_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let error = PgStore::connect(&format!("postgres://postgres@127.0.0.1:{port}/none"))
        .await
        .expect_err("nothing listens there");
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(error.to_string().contains("unreachable"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_embedded_queue_survives_its_process_and_resumes_the_held_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lease = Duration::from_millis(400);
    let held = {
        let store = EmbeddedRuns::open(dir.path()).expect("open");
        for n in 0..3 {
            store.submit(&new_run(n)).await.expect("submit");
        }
        store.claim("before", lease).await.expect("claim").expect("run-000")
        // Dropped holding run-000, as a kill -9 would leave it.
    };
    assert_eq!(held.id, "run-000");
    let store = EmbeddedRuns::open(dir.path()).expect("reopen");
    let next = store.claim("after", lease).await.expect("claim").expect("queued");
    assert_eq!(
        next.id, "run-001",
        "the held run waits for its lease; the queue goes on"
    );
    tokio::time::sleep(lease + Duration::from_millis(200)).await;
    let resumed = store.claim("after", lease).await.expect("claim").expect("expired");
    assert_eq!(
        (resumed.id.as_str(), resumed.attempts, resumed.epoch),
        ("run-000", 2, 2)
    );
    let statuses: Vec<(String, String)> = store
        .list("alice", 10)
        .await
        .expect("list")
        .into_iter()
        .map(|r| (r.id, r.status))
        .collect();
    assert_eq!(
        statuses,
        [("run-002", "queued"), ("run-001", "running"), ("run-000", "running")]
            .map(|(id, status)| (id.to_string(), status.to_string()))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_embedded_transcript_has_one_writer_at_a_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(EmbeddedRuns::open(dir.path()).expect("open"));
    store.submit(&new_run(1)).await.expect("submit");
    let claimed = store
        .claim("a", Duration::from_secs(60))
        .await
        .expect("claim")
        .expect("run");
    let fence = Fence {
        run: claimed.id.clone(),
        epoch: claimed.epoch,
    };
    let sessions = dir.path().join("alice/sessions");
    let (journal, records) = store
        .clone()
        .open_journal(&claimed, fence.clone(), &sessions)
        .await
        .expect("first open creates the transcript");
    assert!(records.is_empty());
    assert!(sessions.join(format!("{}.jsonl", claimed.session)).is_file());
    let refused = store
        .clone()
        .open_journal(&claimed, fence.clone(), &sessions)
        .await
        .expect_err("second writer");
    assert!(
        refused.to_string().contains("is open in another boram process"),
        "{refused}"
    );
    drop(journal);
    store
        .clone()
        .open_journal(&claimed, fence, &sessions)
        .await
        .expect("free again once the first writer closed it");
}
