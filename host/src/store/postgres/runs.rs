//! The shared queue of agent runs: submitted by any replica, claimed by
//! exactly one, resumed by another when its holder dies.
//!
//! A claim is one `UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED
//! LIMIT 1)`: concurrent claimers skip each other's rows instead of
//! waiting, so each run goes to one replica and none blocks. (A queue
//! crate would add its own tables and worker model; the run already has a
//! row with its state, so the lease lives on it.) A claim sets a lease
//! that the holder renews ([`heartbeat`]); a run whose lease expired is
//! claimable again, with `epoch` one higher, and every write of the old
//! holder is refused from then on (see [`crate::store::appender`]).

use super::PgStore;
use crate::session::{Record, Session};
use crate::store::appender::Appender;
use crate::store::runs::{Claimed, Fence, NewRun, Outcome, RunStore, Table};
use crate::store::{RunSummary, StoreError};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Queues `run` (and creates its session); `Ok(false)` when a run with
/// its dedupe key exists already.
async fn submit(store: &PgStore, run: &NewRun) -> Result<bool, StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    if !insert(&tx, run).await? {
        return Ok(false);
    }
    tx.commit().await?;
    Ok(true)
}

/// [`submit`] inside the caller's transaction (a schedule's tick).
pub async fn insert(tx: &deadpool_postgres::Transaction<'_>, run: &NewRun) -> Result<bool, StoreError> {
    // The run first: its dedupe key decides whether there is one (the
    // session key is checked at commit).
    let inserted = tx
        .execute(
            "INSERT INTO runs (id, user_name, session_id, profile, prompt, dedupe_key)
             VALUES ($1, $2, $1, $3, $4, $5) ON CONFLICT (dedupe_key) DO NOTHING",
            &[&run.id, &run.user, &run.profile, &run.prompt, &run.dedupe_key],
        )
        .await?;
    if inserted == 0 {
        return Ok(false);
    }
    tx.execute(
        "INSERT INTO sessions (id, user_name, provider, model) VALUES ($1, $2, $3, $4)",
        &[&run.id, &run.user, &run.provider, &run.model],
    )
    .await?;
    Ok(true)
}

/// Takes the oldest run that is queued or whose holder's lease expired.
async fn claim(store: &PgStore, replica: &str, lease: Duration) -> Result<Option<Claimed>, StoreError> {
    let client = store.client().await?;
    let row = client
        .query_opt(
            "UPDATE runs SET status = 'running', owner = $1, epoch = epoch + 1, attempts = attempts + 1,
                 lease_until = now() + make_interval(secs => $2)
             WHERE id = (
                 SELECT id FROM runs
                 WHERE status = 'queued' OR (status = 'running' AND lease_until < now())
                 ORDER BY created
                 FOR UPDATE SKIP LOCKED
                 LIMIT 1)
             RETURNING id, user_name, session_id, profile, prompt, epoch, attempts",
            &[&replica, &lease.as_secs_f64()],
        )
        .await?;
    Ok(row.map(|row| Claimed {
        id: row.get(0),
        user: row.get(1),
        session: row.get(2),
        profile: row.get(3),
        prompt: row.get(4),
        epoch: row.get(5),
        attempts: row.get(6),
    }))
}

/// Renews the lease; `Ok(false)` when it was lost (expired and taken, or the run ended).
async fn heartbeat(store: &PgStore, run: &str, epoch: i64, lease: Duration) -> Result<bool, StoreError> {
    let client = store.client().await?;
    let renewed = client
        .execute(
            "UPDATE runs SET lease_until = now() + make_interval(secs => $3)
             WHERE id = $1 AND epoch = $2 AND status = 'running' AND lease_until > now()",
            &[&run, &epoch, &lease.as_secs_f64()],
        )
        .await?;
    Ok(renewed == 1)
}

/// Records the end of a run still held at `epoch`; `Ok(false)` when the
/// lease was lost (the run is another replica's, which will end it).
async fn finish(store: &PgStore, run: &str, epoch: i64, outcome: &Outcome) -> Result<bool, StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    let updated = tx
        .execute(
            "UPDATE runs SET status = $3, answer = $4, error = $5, finished = now(), lease_until = NULL
             WHERE id = $1 AND epoch = $2 AND status = 'running'",
            &[&run, &epoch, &outcome.status, &outcome.answer, &outcome.error],
        )
        .await?;
    if updated == 0 {
        return Ok(false);
    }
    tx.execute(
        "INSERT INTO run_events (run_id, seq, event) VALUES ($1, $2, $3)",
        &[&run, &outcome.done_seq, &outcome.done],
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Gives a run back to the queue (this replica is shutting down): another
/// replica resumes it from its journal.
async fn release(store: &PgStore, run: &str, epoch: i64) -> Result<(), StoreError> {
    let client = store.client().await?;
    client
        .execute(
            "UPDATE runs SET status = 'queued', lease_until = NULL WHERE id = $1 AND epoch = $2 AND status = 'running'",
            &[&run, &epoch],
        )
        .await?;
    Ok(())
}

/// The transcript of a session, in order, and the number its next record gets.
pub async fn session_records(store: &PgStore, session: &str) -> Result<(Vec<Record>, i64), StoreError> {
    let client = store.client().await?;
    let rows = client
        .query(
            "SELECT seq, record FROM session_records WHERE session_id = $1 ORDER BY seq",
            &[&session],
        )
        .await?;
    let mut next = 0;
    let mut records = Vec::with_capacity(rows.len());
    for row in rows {
        let seq: i64 = row.get(0);
        next = seq + 1;
        if let Some(record) = parse_record(session, seq, row.get(1)) {
            records.push(record);
        }
    }
    Ok((records, next))
}

/// A stored transcript record; `None` (and a warning) for one this build
/// cannot read, which is skipped rather than losing the rest.
fn parse_record(session: &str, seq: i64, value: Value) -> Option<Record> {
    serde_json::from_value(value)
        .inspect_err(|e| tracing::warn!(session, seq, error = %e, "skipping an unreadable transcript record"))
        .ok()
}

/// The number the next event of `run` gets.
async fn next_event_seq(store: &PgStore, run: &str) -> Result<i64, StoreError> {
    let client = store.client().await?;
    let row = client
        .query_one(
            "SELECT coalesce(max(seq) + 1, 0) FROM run_events WHERE run_id = $1",
            &[&run],
        )
        .await?;
    Ok(row.get(0))
}

/// Events of `run` after `after` (`-1`: from the start), at most `limit`.
async fn events_after(store: &PgStore, run: &str, after: i64, limit: i64) -> Result<Vec<(i64, Value)>, StoreError> {
    let client = store.client().await?;
    let rows = client
        .query(
            "SELECT seq, event FROM run_events WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            &[&run, &after, &limit],
        )
        .await?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}

const ROW_COLUMNS: &str = "id, session_id, prompt, to_char(created AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), \
                           status, answer, error, owner, attempts";

fn run_row(row: &tokio_postgres::Row) -> RunSummary {
    RunSummary {
        id: row.get(0),
        session: row.get(1),
        prompt: row.get(2),
        started: row.get(3),
        status: row.get(4),
        answer: row.get(5),
        error: row.get(6),
        replica: row.get(7),
        attempts: row.get::<_, i32>(8).max(0) as u32,
    }
}

/// Run `id` if it belongs to `user`.
async fn get(store: &PgStore, user: &str, id: &str) -> Result<Option<RunSummary>, StoreError> {
    let client = store.client().await?;
    let row = client
        .query_opt(
            &format!("SELECT {ROW_COLUMNS} FROM runs WHERE id = $1 AND user_name = $2"),
            &[&id, &user],
        )
        .await?;
    Ok(row.as_ref().map(run_row))
}

/// `user`'s newest `limit` runs, newest first.
async fn list(store: &PgStore, user: &str, limit: i64) -> Result<Vec<RunSummary>, StoreError> {
    let client = store.client().await?;
    let rows = client
        .query(
            &format!("SELECT {ROW_COLUMNS} FROM runs WHERE user_name = $1 ORDER BY created DESC LIMIT $2"),
            &[&user, &limit],
        )
        .await?;
    Ok(rows.iter().map(run_row).collect())
}

/// `user`'s session `id` with its records, if it is theirs.
pub async fn user_session(store: &PgStore, user: &str, id: &str) -> Result<Option<Vec<Record>>, StoreError> {
    let client = store.client().await?;
    let owned = client
        .query_opt("SELECT 1 FROM sessions WHERE id = $1 AND user_name = $2", &[&id, &user])
        .await?;
    if owned.is_none() {
        return Ok(None);
    }
    drop(client);
    Ok(Some(session_records(store, id).await?.0))
}

/// `user`'s `n` newest sessions with their records, oldest first, in one
/// query (the dashboard asks every 2 s).
pub async fn newest_sessions(store: &PgStore, user: &str, n: i64) -> Result<Vec<(String, Vec<Record>)>, StoreError> {
    let client = store.client().await?;
    let rows = client
        .query(
            "WITH newest AS (
                 SELECT id, started FROM sessions WHERE user_name = $1 ORDER BY started DESC, id DESC LIMIT $2)
             SELECT n.id, r.seq, r.record FROM newest n LEFT JOIN session_records r ON r.session_id = n.id
             ORDER BY n.started, n.id, r.seq",
            &[&user, &n],
        )
        .await?;
    let mut sessions: Vec<(String, Vec<Record>)> = Vec::new();
    for row in &rows {
        let id: String = row.get(0);
        if sessions.last().is_none_or(|(last, _)| *last != id) {
            sessions.push((id.clone(), Vec::new()));
        }
        if let (Some(seq), Some(value)) = (row.get::<_, Option<i64>>(1), row.get::<_, Option<Value>>(2))
            && let Some(record) = parse_record(&id, seq, value)
            && let Some((_, records)) = sessions.last_mut()
        {
            records.push(record);
        }
    }
    Ok(sessions)
}

/// The batch insert of numbered rows, fenced by the lease when `$4` names a run.
fn insert_sql(table: Table) -> &'static str {
    match table {
        Table::SessionRecords => {
            "INSERT INTO session_records (session_id, seq, record)
             SELECT $1, s, v FROM unnest($2::int8[], $3::jsonb[]) AS t(s, v)
             WHERE $4::text IS NULL OR EXISTS (
                 SELECT 1 FROM runs WHERE id = $4 AND epoch = $5 AND status = 'running' AND lease_until > now())"
        }
        Table::RunEvents => {
            "INSERT INTO run_events (run_id, seq, event)
             SELECT $1, s, v FROM unnest($2::int8[], $3::jsonb[]) AS t(s, v)
             WHERE $4::text IS NULL OR EXISTS (
                 SELECT 1 FROM runs WHERE id = $4 AND epoch = $5 AND status = 'running' AND lease_until > now())"
        }
    }
}

#[async_trait::async_trait]
impl RunStore for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        PgStore::ping(self).await
    }
    async fn submit(&self, run: &NewRun) -> Result<bool, StoreError> {
        submit(self, run).await
    }
    async fn claim(&self, replica: &str, lease: Duration) -> Result<Option<Claimed>, StoreError> {
        claim(self, replica, lease).await
    }
    async fn heartbeat(&self, run: &str, epoch: i64, lease: Duration) -> Result<bool, StoreError> {
        heartbeat(self, run, epoch, lease).await
    }
    async fn finish(&self, run: &str, epoch: i64, outcome: &Outcome) -> Result<bool, StoreError> {
        finish(self, run, epoch, outcome).await
    }
    async fn release(&self, run: &str, epoch: i64) -> Result<(), StoreError> {
        release(self, run, epoch).await
    }
    async fn next_event_seq(&self, run: &str) -> Result<i64, StoreError> {
        next_event_seq(self, run).await
    }
    async fn events_after(&self, run: &str, after: i64, limit: i64) -> Result<Vec<(i64, Value)>, StoreError> {
        events_after(self, run, after, limit).await
    }
    async fn get(&self, user: &str, id: &str) -> Result<Option<RunSummary>, StoreError> {
        get(self, user, id).await
    }
    async fn list(&self, user: &str, limit: i64) -> Result<Vec<RunSummary>, StoreError> {
        list(self, user, limit).await
    }
    async fn append_rows(
        &self,
        table: Table,
        key: &str,
        fence: Option<&Fence>,
        seqs: &[i64],
        rows: &[Value],
    ) -> Result<u64, StoreError> {
        let fence_run = fence.map(|f| f.run.clone());
        let fence_epoch = fence.map_or(0, |f| f.epoch);
        let client = self.client().await?;
        Ok(client
            .execute(insert_sql(table), &[&key, &seqs, &rows, &fence_run, &fence_epoch])
            .await?)
    }
    /// The transcript is in `session_records`, written through an
    /// [`Appender`] fenced by the run's lease.
    async fn open_journal(
        self: Arc<Self>,
        claimed: &Claimed,
        fence: Fence,
        _sessions_dir: &Path,
    ) -> Result<(Session, Vec<Record>), StoreError> {
        let (records, next) = session_records(&self, &claimed.session).await?;
        let appender = Appender::spawn(self, Table::SessionRecords, claimed.session.clone(), Some(fence), next);
        Ok((Session::shared(&claimed.session, appender), records))
    }
}
