//! The PostgreSQL store against a real server (a throwaway cluster from
//! Debian's packages, [`super::pg`]): migrations under concurrent starts,
//! exclusive claims, lease expiry with fencing of the old holder, journal
//! order across batches, a second writer refused, and an unreachable
//! database reported as such.

use super::pg::TestPostgres;
use boram_host::store::postgres::appender::{Appender, Fence, Table};
use boram_host::store::postgres::runs::{self, NewRun};
use boram_host::store::postgres::{PgStore, StoreError};
use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;

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
        "1:runs_and_sessions,2:schedules,3:notes"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn each_run_is_claimed_by_exactly_one_of_many_claimers() {
    let pg = TestPostgres::start();
    let store = PgStore::connect(&pg.database("claims")).await.expect("connect");
    for n in 0..40 {
        assert!(runs::submit(&store, &new_run(n)).await.expect("submit"));
    }
    let claimers: Vec<_> = (0..8)
        .map(|c| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                while let Some(claimed) = runs::claim(&store, &format!("replica-{c}"), Duration::from_secs(60))
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
    assert_eq!(all.len(), 40, "every run claimed once: {all:?}");
    assert_eq!(distinct.len(), 40);
    assert_eq!(
        pg.psql(
            "claims",
            "SELECT count(*) FROM runs WHERE attempts = 1 AND status = 'running'"
        ),
        "40"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scheduled_slot_queues_one_run_however_many_replicas_submit_it() {
    let pg = TestPostgres::start();
    let store = PgStore::connect(&pg.database("dedupe")).await.expect("connect");
    let submits: Vec<_> = (0..5)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut run = new_run(n);
                run.dedupe_key = Some("schedule:alice:daily:2026-12-02T09:00Z".into());
                runs::submit(&store, &run).await.expect("submit")
            })
        })
        .collect();
    let mut queued = 0;
    for submit in submits {
        queued += usize::from(submit.await.expect("join"));
    }
    assert_eq!(queued, 1);
    assert_eq!(pg.psql("dedupe", "SELECT count(*) FROM runs"), "1");
    assert_eq!(
        pg.psql("dedupe", "SELECT count(*) FROM sessions"),
        "1",
        "no orphan session"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_lease_goes_to_another_replica_and_fences_the_old_holder_off() {
    let pg = TestPostgres::start();
    let store = PgStore::connect(&pg.database("lease")).await.expect("connect");
    runs::submit(&store, &new_run(1)).await.expect("submit");
    let lease = Duration::from_millis(600);
    let first = runs::claim(&store, "a", lease).await.expect("claim").expect("a run");
    assert_eq!((first.attempts, first.epoch), (1, 1));
    assert!(
        runs::claim(&store, "b", lease).await.expect("claim").is_none(),
        "held by a"
    );
    let journal_a = Appender::spawn(
        store.clone(),
        Table::SessionRecords,
        first.session.clone(),
        Some(Fence {
            run: first.id.clone(),
            epoch: first.epoch,
        }),
        0,
    );
    journal_a.append(json!({"step": "a-0"})).expect("append");
    journal_a.sync().await.expect("a still holds the lease");

    tokio::time::sleep(lease + Duration::from_millis(300)).await;
    let second = runs::claim(&store, "b", lease)
        .await
        .expect("claim")
        .expect("expired: claimable");
    assert_eq!(second.id, first.id);
    assert_eq!((second.attempts, second.epoch), (2, 2));
    assert!(
        !runs::heartbeat(&store, &first.id, first.epoch, lease)
            .await
            .expect("heartbeat")
    );
    assert!(
        runs::heartbeat(&store, &second.id, second.epoch, lease)
            .await
            .expect("heartbeat")
    );

    // a was only slow: its next write is refused, and nothing of it lands.
    journal_a.append(json!({"step": "a-1"})).expect("queued");
    let refused = journal_a.sync().await.expect_err("fenced");
    assert!(
        refused.to_string().contains("no longer holds the run's lease"),
        "{refused}"
    );
    assert!(
        journal_a.append(json!({"step": "a-2"})).is_err(),
        "the writer stopped for good"
    );
    let (records_before, next) = runs::session_records(&store, &first.session).await.expect("read");
    assert_eq!(next, 1);
    assert!(
        records_before.is_empty(),
        "{{\"step\"}} rows are not transcript records"
    );
    assert_eq!(
        pg.psql(
            "lease",
            "SELECT string_agg(record->>'step', ',' ORDER BY seq) FROM session_records"
        ),
        "a-0"
    );
    let outcome = runs::Outcome {
        status: "answered".into(),
        answer: Some("done".into()),
        error: None,
        done: json!({"type": "done"}),
        done_seq: 0,
    };
    assert!(
        !runs::finish(&store, &first.id, first.epoch, &outcome)
            .await
            .expect("finish")
    );
    assert!(
        runs::finish(&store, &second.id, second.epoch, &outcome)
            .await
            .expect("finish")
    );
    assert_eq!(
        pg.psql("lease", "SELECT status || ':' || attempts FROM runs"),
        "answered:2"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_journal_keeps_its_order_across_batches_and_refuses_a_second_writer() {
    let pg = TestPostgres::start();
    let store = PgStore::connect(&pg.database("journal")).await.expect("connect");
    runs::submit(&store, &new_run(1)).await.expect("submit");
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
    let read = runs::events_after(&store, "run-001", -1, 5000).await.expect("read");
    assert_eq!(read.len(), 2000);
    for (n, (seq, event)) in read.iter().enumerate() {
        assert_eq!(*seq, n as i64);
        assert_eq!(event["text"], json!(format!("{n}")));
    }
    // A second writer of the same steps (a replica resuming without a
    // lease, a bug) fails instead of interleaving.
    let second = Appender::spawn(store.clone(), Table::RunEvents, "run-001".into(), None, 1999);
    second
        .append(json!({"type": "text_delta", "text": "again"}))
        .expect("append");
    let refused = second.sync().await.expect_err("duplicate step");
    assert!(
        refused.to_string().contains("another process wrote the same step"),
        "{refused}"
    );
    assert_eq!(runs::next_event_seq(&store, "run-001").await.expect("next"), 2000);
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
