//! The embedded run store: the queue of one `boram serve`'s runs and their
//! events in `runs.db` (SQLite, WAL) in the data directory, so a run
//! survives its process: after a kill -9 the service, started again,
//! claims the run once its lease has expired and resumes it from its
//! transcript like a cluster replica would.
//!
//! The same [`RunStore`] as PostgreSQL, with the same rules: one claim per
//! run at a time (a claim is one `UPDATE … RETURNING`, atomic across
//! processes), leases renewed by heartbeat with an `epoch` that fences an
//! old holder off, numbered events where a duplicate number is a conflict.
//! Times are milliseconds since the Unix epoch from this machine's clock
//! (one machine, one clock). Transcripts stay JSONL files in the user's
//! sessions directory, readable and resumable by the CLI; only the queue
//! and the events live in the database. Commits are `synchronous = FULL`:
//! an event a follower has seen is on disk. SQLite calls block, so each
//! runs on tokio's blocking pool, never on a worker thread.

use crate::session::{Record, Session};
use crate::store::runs::{Claimed, Fence, NewRun, Outcome, RunStore, Table};
use crate::store::{RunSummary, StoreError};
use rusqlite::{Connection, OptionalExtension as _, params};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The schema version this build writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    session_id TEXT NOT NULL,
    profile TEXT,
    prompt TEXT NOT NULL,
    dedupe_key TEXT UNIQUE,
    status TEXT NOT NULL DEFAULT 'queued',
    owner TEXT,
    epoch INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_until INTEGER,
    created TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    finished_ms INTEGER,
    answer TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS runs_claimable ON runs (status, created_ms);
CREATE INDEX IF NOT EXISTS runs_by_user ON runs (user_name, created_ms);
CREATE TABLE IF NOT EXISTS run_events (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
";

/// The run store of a data directory.
#[derive(Clone)]
pub struct EmbeddedRuns {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl std::fmt::Debug for EmbeddedRuns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedRuns").field("path", &self.path).finish()
    }
}

impl EmbeddedRuns {
    /// Opens (creating) `runs.db` in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open_file(&data_dir.join("runs.db"))
    }

    /// Opens (creating) the store at `path`.
    pub fn open_file(path: &Path) -> Result<Self, StoreError> {
        let refused = |e: rusqlite::Error| {
            let fix = match e.sqlite_error_code() {
                Some(rusqlite::ErrorCode::NotADatabase) => format!(
                    "; it is not a SQLite database (damaged, or another file): move it aside to start with an \
                     empty run queue (mv {0} {0}.damaged)",
                    path.display()
                ),
                Some(
                    rusqlite::ErrorCode::CannotOpen
                    | rusqlite::ErrorCode::ReadOnly
                    | rusqlite::ErrorCode::PermissionDenied,
                ) => "; check that the data directory is writable".to_string(),
                _ => String::new(),
            };
            StoreError::Refused(format!("{}: {e}{fix}", path.display()))
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Refused(format!("cannot create {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path).map_err(refused)?;
        // Another `boram serve` on the same directory may be mid-write.
        conn.busy_timeout(Duration::from_secs(5)).map_err(refused)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(refused)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(refused)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(refused)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Refused(format!(
                "{} has schema version {version}, newer than this boram knows ({SCHEMA_VERSION}); upgrade boram",
                path.display()
            )));
        }
        conn.execute_batch(SCHEMA).map_err(refused)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(refused)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `work` on the connection on the blocking pool.
    async fn with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        super::on_blocking_pool(move || {
            let mut conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            work(&mut conn)
        })
        .await?
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::ConstraintViolation) => StoreError::Conflict(e.to_string()),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                StoreError::Unavailable(format!("{e}; another process holds runs.db"))
            }
            _ => StoreError::Refused(e.to_string()),
        }
    }
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn lease_ms(lease: Duration) -> i64 {
    lease.as_millis().min(i64::MAX as u128) as i64
}

const ROW_COLUMNS: &str = "id, session_id, prompt, created, status, answer, error, owner, attempts";

fn run_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RunSummary> {
    Ok(RunSummary {
        id: row.get(0)?,
        session: row.get(1)?,
        prompt: row.get(2)?,
        started: row.get(3)?,
        status: row.get(4)?,
        answer: row.get(5)?,
        error: row.get(6)?,
        replica: row.get(7)?,
        attempts: row.get::<_, i64>(8)?.max(0) as u32,
    })
}

/// An event as stored: JSON text. One this build cannot parse (damaged)
/// reads as `null` rather than hiding the rest.
fn parse_event(text: String) -> Value {
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

#[async_trait::async_trait]
impl RunStore for EmbeddedRuns {
    async fn ping(&self) -> Result<(), StoreError> {
        self.with(|conn| Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?)).await
    }

    async fn submit(&self, run: &NewRun) -> Result<bool, StoreError> {
        let run = run.clone();
        self.with(move |conn| {
            let inserted = conn.execute(
                "INSERT INTO runs (id, user_name, session_id, profile, prompt, dedupe_key, created, created_ms)
                 VALUES (?1, ?2, ?1, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (dedupe_key) DO NOTHING",
                params![
                    run.id,
                    run.user,
                    run.profile,
                    run.prompt,
                    run.dedupe_key,
                    crate::audit::now(),
                    now_ms()
                ],
            )?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn claim(&self, replica: &str, lease: Duration) -> Result<Option<Claimed>, StoreError> {
        let replica = replica.to_string();
        self.with(move |conn| {
            let now = now_ms();
            Ok(conn
                .query_row(
                    "UPDATE runs SET status = 'running', owner = ?1, epoch = epoch + 1, attempts = attempts + 1,
                         lease_until = ?2
                     WHERE id = (
                         SELECT id FROM runs
                         WHERE status = 'queued' OR (status = 'running' AND lease_until < ?3)
                         ORDER BY created_ms, rowid
                         LIMIT 1)
                     RETURNING id, user_name, session_id, profile, prompt, epoch, attempts",
                    params![replica, now + lease_ms(lease), now],
                    |row| {
                        Ok(Claimed {
                            id: row.get(0)?,
                            user: row.get(1)?,
                            session: row.get(2)?,
                            profile: row.get(3)?,
                            prompt: row.get(4)?,
                            epoch: row.get(5)?,
                            attempts: row.get(6)?,
                        })
                    },
                )
                .optional()?)
        })
        .await
    }

    async fn heartbeat(&self, run: &str, epoch: i64, lease: Duration) -> Result<bool, StoreError> {
        let run = run.to_string();
        self.with(move |conn| {
            let now = now_ms();
            let renewed = conn.execute(
                "UPDATE runs SET lease_until = ?3
                 WHERE id = ?1 AND epoch = ?2 AND status = 'running' AND lease_until > ?4",
                params![run, epoch, now + lease_ms(lease), now],
            )?;
            Ok(renewed == 1)
        })
        .await
    }

    async fn finish(&self, run: &str, epoch: i64, outcome: &Outcome) -> Result<bool, StoreError> {
        let (run, outcome) = (run.to_string(), outcome.clone());
        self.with(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let updated = tx.execute(
                "UPDATE runs SET status = ?3, answer = ?4, error = ?5, finished_ms = ?6, lease_until = NULL
                 WHERE id = ?1 AND epoch = ?2 AND status = 'running'",
                params![run, epoch, outcome.status, outcome.answer, outcome.error, now_ms()],
            )?;
            if updated == 0 {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO run_events (run_id, seq, event) VALUES (?1, ?2, ?3)",
                params![run, outcome.done_seq, outcome.done.to_string()],
            )?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn release(&self, run: &str, epoch: i64) -> Result<(), StoreError> {
        let run = run.to_string();
        self.with(move |conn| {
            conn.execute(
                "UPDATE runs SET status = 'queued', lease_until = NULL WHERE id = ?1 AND epoch = ?2 AND status = 'running'",
                params![run, epoch],
            )?;
            Ok(())
        })
        .await
    }

    async fn next_event_seq(&self, run: &str) -> Result<i64, StoreError> {
        let run = run.to_string();
        self.with(move |conn| {
            Ok(conn.query_row(
                "SELECT coalesce(max(seq) + 1, 0) FROM run_events WHERE run_id = ?1",
                params![run],
                |row| row.get(0),
            )?)
        })
        .await
    }

    async fn events_after(&self, run: &str, after: i64, limit: i64) -> Result<Vec<(i64, Value)>, StoreError> {
        let run = run.to_string();
        self.with(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT seq, event FROM run_events WHERE run_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )?;
            let rows = statement.query_map(params![run, after, limit], |row| {
                Ok((row.get::<_, i64>(0)?, parse_event(row.get(1)?)))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn get(&self, user: &str, id: &str) -> Result<Option<RunSummary>, StoreError> {
        let (user, id) = (user.to_string(), id.to_string());
        self.with(move |conn| {
            Ok(conn
                .query_row(
                    &format!("SELECT {ROW_COLUMNS} FROM runs WHERE id = ?1 AND user_name = ?2"),
                    params![id, user],
                    run_row,
                )
                .optional()?)
        })
        .await
    }

    async fn list(&self, user: &str, limit: i64) -> Result<Vec<RunSummary>, StoreError> {
        let user = user.to_string();
        self.with(move |conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {ROW_COLUMNS} FROM runs WHERE user_name = ?1 ORDER BY created_ms DESC, rowid DESC LIMIT ?2"
            ))?;
            let rows = statement.query_map(params![user, limit], run_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn append_rows(
        &self,
        table: Table,
        key: &str,
        fence: Option<&Fence>,
        seqs: &[i64],
        rows: &[Value],
    ) -> Result<u64, StoreError> {
        if table == Table::SessionRecords {
            return Err(StoreError::Refused(
                "the embedded store keeps transcripts as files, not rows".into(),
            ));
        }
        let (key, fence) = (key.to_string(), fence.cloned());
        let batch: Vec<(i64, String)> = seqs.iter().copied().zip(rows.iter().map(Value::to_string)).collect();
        self.with(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            if let Some(fence) = &fence {
                let held = tx
                    .query_row(
                        "SELECT 1 FROM runs WHERE id = ?1 AND epoch = ?2 AND status = 'running' AND lease_until > ?3",
                        params![fence.run, fence.epoch, now_ms()],
                        |_| Ok(()),
                    )
                    .optional()?;
                if held.is_none() {
                    return Ok(0);
                }
            }
            {
                let mut insert =
                    tx.prepare_cached("INSERT INTO run_events (run_id, seq, event) VALUES (?1, ?2, ?3)")?;
                for (seq, event) in &batch {
                    insert.execute(params![key, seq, event])?;
                }
            }
            tx.commit()?;
            Ok(batch.len() as u64)
        })
        .await
    }

    /// The transcript is `<id>.jsonl` in the user's sessions directory:
    /// created on the first claim, reopened (one writer at a time) on a
    /// resume. Its lock on the file fences a second writer in this or
    /// another process.
    async fn open_journal(
        self: Arc<Self>,
        claimed: &Claimed,
        _fence: Fence,
        sessions_dir: &Path,
    ) -> Result<(Session, Vec<Record>), StoreError> {
        let (dir, id) = (sessions_dir.to_path_buf(), claimed.session.clone());
        super::on_blocking_pool(move || Session::claim_file(&dir, &id))
            .await?
            .map_err(|e| StoreError::Refused(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_newer_schema_is_refused_rather_than_used() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("runs.db");
        drop(EmbeddedRuns::open_file(&path).expect("create"));
        Connection::open(&path)
            .and_then(|c| c.pragma_update(None, "user_version", 7))
            .expect("bump");
        let error = EmbeddedRuns::open_file(&path).expect_err("newer");
        assert!(
            error
                .to_string()
                .contains("schema version 7, newer than this boram knows (1)"),
            "{error}"
        );
    }
}
